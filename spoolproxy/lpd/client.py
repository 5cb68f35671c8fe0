"""An LPD (RFC 1179) client for delivering to LPD printers and daemons, on trio.

``send_job`` sends one job on one connection: the receive-job command, every data
file, then the control file LAST. The RFC allows either order; sending the control
file last means a receiver that commits a job when its control file arrives (BSD lpd,
LPRng, spoolproxy) already has every data file then, and a connection that breaks
earlier leaves no job behind. Every acknowledgement is awaited with ``timeout``.

Errors: ``LpdRefused`` - the daemon answered a step with a negative acknowledgement;
``LpdUnreachable`` - no connection, a timeout, or the connection broke (``connected``
says whether it was ever made); plain ``LpdError`` - our own data was not the size
announced.
"""
from __future__ import annotations

import contextlib
import os
from typing import AsyncContextManager, AsyncIterator, Callable, Sequence, Union

import trio

from . import protocol as p

__all__ = ["DEFAULT_PORT", "LpdError", "LpdRefused", "LpdUnreachable", "open_connection", "queue_state",
           "send_job"]

DEFAULT_PORT = 515
MAX_STATE = 1 << 20  # a queue listing longer than this is cut
MAX_REFUSAL_TEXT = 1024  # LPRng sends a message after its reject code; we keep this much

Chunks = AsyncIterator[bytes]
#: opens a data file's bytes: returns an async iterator of chunks, or an async context
#: manager giving one (as ``DeliveryContext.document`` does)
Opener = Callable[[], Union[Chunks, AsyncContextManager[Chunks]]]


class LpdError(Exception):
    """Base of the client's errors."""


class LpdRefused(LpdError):
    """The daemon sent a negative acknowledgement. ``step``: "job" (the receive-job
    command: usually no such queue), "data" or "control"; ``name`` the file's name."""

    def __init__(self, step: str, name: str = "", *, code: int = 1, detail: str = "") -> None:
        self.step, self.name, self.code, self.detail = step, name, code, detail
        what = {"job": "the queue", "data": f"data file {name}", "control": f"control file {name}"}.get(step, step)
        super().__init__(f"LPD daemon refused {what} (code {code})" + (f": {detail}" if detail else ""))


class LpdUnreachable(LpdError):
    """No usable connection: cannot connect, timed out, or the connection broke.
    ``connected`` is False when no connection was ever made (nothing was sent)."""

    def __init__(self, message: str, *, connected: bool) -> None:
        super().__init__(message)
        self.connected = connected


def _reason(e: BaseException) -> str:
    """A short reason ("Connection refused"); trio reports a failed connect as an OSError
    whose cause is a group of the attempts' errors."""
    if isinstance(e, OSError) and isinstance(e.errno, int) and e.errno > 0:
        return os.strerror(e.errno)
    subs = getattr(e.__cause__, "exceptions", None) or ([e.__cause__] if e.__cause__ is not None else [])
    reasons = list(dict.fromkeys(_reason(s) for s in subs))
    return "; ".join(reasons) if reasons else (getattr(e, "strerror", None) or str(e) or type(e).__name__)


async def open_connection(host: str, port: int, timeout: float) -> trio.SocketStream:
    """A TCP connection to the daemon, or LpdUnreachable(connected=False)."""
    try:
        with trio.fail_after(timeout):
            return await trio.open_tcp_stream(host, port)
    except trio.TooSlowError:
        raise LpdUnreachable(f"no connection to {host}:{port} within {timeout:g} s", connected=False) from None
    except OSError as e:
        raise LpdUnreachable(f"cannot connect to {host}:{port}: {_reason(e)}", connected=False) from None


class _Conn:
    """A connection with the acknowledgement bookkeeping."""

    def __init__(self, stream: trio.SocketStream, timeout: float) -> None:
        self.stream = stream
        self.timeout = timeout
        self.pending = bytearray()

    async def send(self, data: bytes, what: str) -> None:
        try:
            with trio.fail_after(self.timeout):
                await self.stream.send_all(data)
        except trio.TooSlowError:
            raise LpdUnreachable(f"the daemon stopped reading {what} for {self.timeout:g} s",
                                 connected=True) from None

    async def _receive(self) -> bytes:
        return await self.stream.receive_some(4096)

    async def ack(self, step: str, name: str = "") -> None:
        what = {"job": "the receive-job command"}.get(step, f"{step} file {name}")
        try:
            with trio.fail_after(self.timeout):
                while True:
                    # some daemons send LF after an acknowledgement: skip it before the next
                    while self.pending[:1] == b"\n":
                        del self.pending[:1]
                    if self.pending:
                        break
                    data = await self._receive()
                    if not data:
                        raise LpdUnreachable(f"the daemon closed the connection instead of acknowledging {what}",
                                             connected=True)
                    self.pending += data
        except trio.TooSlowError:
            raise LpdUnreachable(f"no acknowledgement of {what} within {self.timeout:g} s",
                                 connected=True) from None
        code = self.pending[0]
        del self.pending[:1]
        if code == 0:
            return
        # a negative answer: LPRng follows its reject code with a message; take what comes soon
        with trio.move_on_after(min(self.timeout, 1.0)):
            with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError, OSError):
                while len(self.pending) < MAX_REFUSAL_TEXT:
                    data = await self._receive()
                    if not data:
                        break
                    self.pending += data
        detail = bytes(self.pending[:MAX_REFUSAL_TEXT]).decode("utf-8", "replace").strip()
        raise LpdRefused(step, name, code=code, detail=" ".join(detail.split()))


@contextlib.asynccontextmanager
async def _chunks_of(opener: Opener) -> AsyncIterator[Chunks]:
    source = opener()
    if hasattr(source, "__aenter__"):
        async with source as chunks:  # type: ignore[union-attr]
            yield chunks
    else:
        yield source  # type: ignore[misc]


async def send_job(host: str, port: int, queue: str, *, control: bytes, control_name: str,
                   data: Sequence[tuple[str, int, Opener]], timeout: float) -> None:
    """Send one job: ``data`` is (file name, exact size > 0, opener) per data file.
    Returns once the daemon acknowledged the control file (it has the job)."""
    if not control:
        raise ValueError("empty control file")
    cmd = p.command(p.Command.RECEIVE_JOB, queue)
    heads = [(name, size, opener, p.subcommand_data(size, name)) for name, size, opener in data]
    if any(size < 1 for _, size, _, _ in heads):
        raise ValueError("a data file of 0 bytes cannot be sent (0 means 'until the connection closes')")
    control_head = p.subcommand_control(len(control), control_name)
    stream = await open_connection(host, port, timeout)
    conn = _Conn(stream, timeout)
    try:
        await conn.send(cmd, "the receive-job command")
        await conn.ack("job")
        for name, size, opener, head in heads:
            await conn.send(head, f"data file {name}")
            await conn.ack("data", name)
            sent = 0
            async with _chunks_of(opener) as chunks:
                async for chunk in chunks:
                    sent += len(chunk)
                    if sent > size:
                        break
                    await conn.send(chunk, f"data file {name}")
            if sent != size:  # the daemon would mistake what follows for data, or wait forever
                raise LpdError(f"data file {name}: {'more' if sent > size else 'fewer'} than the "
                               f"{size} bytes announced")
            await conn.send(p.ACK, f"data file {name}")  # the \0 that ends a file
            await conn.ack("data", name)
        await conn.send(control_head, f"control file {control_name}")
        await conn.ack("control", control_name)
        await conn.send(control + b"\0", f"control file {control_name}")
        await conn.ack("control", control_name)
    except (trio.BrokenResourceError, trio.ClosedResourceError, OSError) as e:
        raise LpdUnreachable(f"connection to {host}:{port} lost: {_reason(e)}",
                             connected=True) from None
    finally:
        await trio.aclose_forcefully(stream)


async def queue_state(host: str, port: int, queue: str, long: bool = False, *, timeout: float = 30.0,
                      users: Sequence[str] = (), limit: int = MAX_STATE) -> str:
    """The daemon's queue listing (short or long; of ``users``' jobs or all), read until
    it closes the connection (at most ``limit`` bytes; ``timeout`` bounds the exchange)."""
    cmd = p.command(p.Command.QUEUE_LONG if long else p.Command.QUEUE_SHORT, queue, *users)
    stream = await open_connection(host, port, timeout)
    out = bytearray()
    try:
        with trio.fail_after(timeout):
            await stream.send_all(cmd)
            while len(out) < limit:
                data = await stream.receive_some(65536)
                if not data:
                    break
                out += data
    except trio.TooSlowError:
        raise LpdUnreachable(f"no complete queue listing from {host}:{port} within {timeout:g} s",
                             connected=True) from None
    except (trio.BrokenResourceError, trio.ClosedResourceError, OSError) as e:
        raise LpdUnreachable(f"connection to {host}:{port} lost: {_reason(e)}",
                             connected=True) from None
    finally:
        await trio.aclose_forcefully(stream)
    return bytes(out[:limit]).decode("utf-8", "replace")
