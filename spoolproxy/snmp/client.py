"""An SNMPv1/v2c manager over a trio UDP socket (the messages: ``protocol``).

    async with SnmpClient("printer.example.com", version="2c", community="public") as c:
        values = await c.get(["1.3.6.1.2.1.1.1.0"])          # {oid: value}
        rows = await c.walk("1.3.6.1.2.1.43.11.1.1.9")      # [(oid, value), ...]

One socket per client, connected to the agent's address, so the kernel drops what
other hosts send.  A request is sent, then datagrams are read until the one that
answers it (same request-id) arrives; others are skipped.  Each try waits
``timeout`` seconds and a request is tried ``retries + 1`` times with the same
request-id (a late answer to the first try still counts), then ``SnmpTimeout``.
Requests on one client run one at a time; clients are independent, so a silent agent
holds up only the tasks that ask it.
"""
from __future__ import annotations

import random
from typing import Any, Callable, Iterable

import trio

from .protocol import (
    END_OF_MIB_VIEW,
    NO_SUCH_NAME,
    Oid,
    SnmpError,
    SnmpErrorStatus,
    SnmpMismatch,
    Version,
    build_get,
    build_getbulk,
    build_getnext,
    format_oid,
    parse_oid,
    parse_response,
)

__all__ = ["SnmpClient", "SnmpTimeout"]

MAX_DATAGRAM = 65535


class SnmpTimeout(SnmpError):
    """No usable answer within timeout x (retries + 1)."""


class SnmpClient:
    def __init__(self, host: str, port: int = 161, *, version: Version = "2c", community: str = "public",
                 timeout: float = 2.0, retries: int = 1, max_repetitions: int = 25) -> None:
        if version not in ("1", "2c"):
            raise ValueError(f"SNMP version must be '1' or '2c', not {version!r}")
        if timeout <= 0 or retries < 0 or max_repetitions < 1:
            raise ValueError("timeout must be > 0, retries >= 0, max_repetitions >= 1")
        self.host = host
        self.port = port
        self.version: Version = version
        self.community = community
        self.timeout = timeout
        self.retries = retries
        self.max_repetitions = max_repetitions
        self._sock: trio.socket.SocketType | None = None
        self._lock = trio.Lock()
        self._ids = random.Random()  # request-ids: unpredictable, so stale answers rarely match

    @property
    def address(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"

    def __repr__(self) -> str:
        return f"<SnmpClient {self.address} v{self.version}>"

    async def __aenter__(self) -> "SnmpClient":
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the socket (a later request opens a new one)."""
        if self._sock is not None:
            self._sock.close()
            self._sock = None
        await trio.lowlevel.checkpoint()

    # -- transport --------------------------------------------------------------------------

    async def _socket(self) -> trio.socket.SocketType:
        if self._sock is None:
            try:
                infos = await trio.socket.getaddrinfo(self.host, self.port, type=trio.socket.SOCK_DGRAM)
            except OSError as e:  # socket.gaierror
                raise SnmpError(f"{self.address}: cannot resolve {self.host!r}: {e.strerror or e}") from None
            if not infos:
                raise SnmpError(f"{self.address}: {self.host!r} has no address")
            family, type_, proto, _, sockaddr = infos[0]
            sock = trio.socket.socket(family, type_, proto)
            try:
                await sock.connect(sockaddr)
            except OSError as e:
                sock.close()
                raise SnmpError(f"{self.address}: cannot reach it: {e.strerror or e}") from None
            self._sock = sock
        return self._sock

    async def _request(self, build: Callable[[int], bytes]) -> list[tuple[str, Any]]:
        """Send ``build(request_id)``, return the varbinds of its answer."""
        async with self._lock:
            sock = await self._socket()
            request_id = self._ids.randrange(1, 2**31 - 1)
            data = build(request_id)
            ignored = 0
            last_problem = ""
            for _ in range(self.retries + 1):
                try:
                    await sock.send(data)
                except trio.ClosedResourceError:
                    raise SnmpError(f"{self.address}: the client was closed") from None
                except ConnectionRefusedError:
                    # the ICMP port unreachable of an earlier try, reported on this send
                    raise SnmpError(f"{self.address}: refused (nothing listens on that UDP port)") from None
                except OSError as e:
                    raise SnmpError(f"{self.address}: cannot send: {e.strerror or e}") from None
                with trio.move_on_after(self.timeout):
                    while True:
                        try:
                            reply = await sock.recv(MAX_DATAGRAM)
                        except trio.ClosedResourceError:
                            raise SnmpError(f"{self.address}: the client was closed") from None
                        except ConnectionRefusedError:
                            # ICMP port unreachable: nothing listens there, retrying will not help
                            raise SnmpError(f"{self.address}: refused (nothing listens on that UDP port)") from None
                        except OSError as e:
                            raise SnmpError(f"{self.address}: {e.strerror or e}") from None
                        try:
                            return parse_response(reply, request_id=request_id, version=self.version)
                        except SnmpMismatch:
                            ignored += 1  # a late answer to an earlier request
                        except SnmpErrorStatus:
                            raise
                        except SnmpError as e:
                            ignored += 1  # not an SNMP answer: skip it, as net-snmp does, but say so
                            last_problem = str(e)
            tries = self.retries + 1
            why = (f"no answer from {self.address} after {tries} {'try' if tries == 1 else 'tries'} "
                   f"of {self.timeout:g} s")
            if last_problem:
                why += f" (ignored {ignored} datagram{'s' if ignored != 1 else ''}; the last: {last_problem})"
            raise SnmpTimeout(why)

    # -- operations -------------------------------------------------------------------------

    async def get(self, oids: Iterable[Oid]) -> dict[str, Any]:
        """GET: {oid: value} in the order asked (OIDs as dotted strings).  An object the
        agent does not have is None (noSuchObject/noSuchInstance; SNMPv1's noSuchName is
        handled by asking again without that object)."""
        asked = list(dict.fromkeys(format_oid(o) for o in oids))
        result: dict[str, Any] = {}
        pending = list(asked)
        while pending:
            batch = list(pending)
            try:
                varbinds = await self._request(
                    lambda rid: build_get(self.version, self.community, rid, batch))
            except SnmpErrorStatus as e:
                if self.version == "1" and e.status == NO_SUCH_NAME and 1 <= e.index <= len(batch):
                    result[batch[e.index - 1]] = None
                    pending.remove(batch[e.index - 1])
                    continue
                raise
            if len(varbinds) != len(batch):
                raise SnmpError(f"{self.address}: answered {len(varbinds)} values for {len(batch)} objects")
            for oid, (_, value) in zip(batch, varbinds):
                result[oid] = None if value is END_OF_MIB_VIEW else value
            break
        return {oid: result[oid] for oid in asked}

    async def walk(self, prefix: Oid, limit: int = 200) -> list[tuple[str, Any]]:
        """Every object under ``prefix`` in OID order (at most ``limit``): GETBULK on
        v2c, GETNEXT on v1.  Stops at the end of the subtree, at endOfMibView (v1:
        noSuchName) or at the limit; SnmpError if the agent goes backwards."""
        root = parse_oid(prefix)
        current = root
        out: list[tuple[str, Any]] = []
        while len(out) < limit:
            cursor = current
            if self.version == "2c":
                count = min(self.max_repetitions, limit - len(out))
                varbinds = await self._request(
                    lambda rid: build_getbulk("2c", self.community, rid, [cursor], max_repetitions=count))
            else:
                try:
                    varbinds = await self._request(
                        lambda rid: build_getnext("1", self.community, rid, [cursor]))
                except SnmpErrorStatus as e:
                    if e.status == NO_SUCH_NAME:
                        return out
                    raise
            if not varbinds:
                return out
            for oid, value in varbinds:
                arcs = tuple(map(int, oid.split(".")))
                if value is END_OF_MIB_VIEW or len(arcs) <= len(root) or arcs[:len(root)] != root:
                    return out
                if arcs <= current:
                    raise SnmpError(f"{self.address}: OID not increasing ({oid} after "
                                    f"{'.'.join(map(str, current))})")
                out.append((oid, value))
                current = arcs
                if len(out) >= limit:
                    break
        return out
