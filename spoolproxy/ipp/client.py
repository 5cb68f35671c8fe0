"""Async IPP client (RFC 8010 §4 over HTTP/1.1) on trio + h11.

    async with IppClient("ipp://printer.example/ipp/print") as c:
        attrs = await c.get_printer_attributes()
        req = new_request(Op.PRINT_JOB, c.uri, user="alice")
        resp = await c.request(req, chunks_of_the_document())

``ipp://`` is HTTP on port 631, ``ipps://`` is HTTP over TLS on port 631; ``http://``
and ``https://`` URIs (ports 80 and 443) are accepted as well. One keep-alive
connection per client; requests of concurrent tasks are serialised.

A document given as an async iterable of bytes is streamed with chunked transfer
encoding and never buffered; ``bytes`` go with a Content-Length. The response is
read while the request is still being sent, so a printer that answers early (an
error before it has read the document) is heard rather than seen as a reset.

Errors: every failure is an :class:`IppClientError`. :class:`PrinterUnreachable`
means no usable HTTP exchange happened (refused, reset, timed out, TLS failure);
:class:`HttpStatusError` a non-200 HTTP answer; :class:`BadResponse` a reply that is
not HTTP/IPP. An IPP error status is not an exception of ``request`` (the caller
decides); :func:`check` turns one into :class:`IppStatusError`.

Retry: a request is retried once on a fresh connection only when it failed before
any of it was written (a kept-alive connection the printer had closed), or - for
read-only operations with a replayable body - when a reused connection died
before any byte of the answer came back. A request that may have reached the
printer is never sent twice by this module; the caller owns that decision.

The pure helpers (:func:`parse_uri`, :func:`new_request`, :func:`request_headers`,
:func:`status_of`, :func:`check`) do no I/O.
"""
from __future__ import annotations

import itertools
import os
import select
import ssl
from dataclasses import dataclass
from typing import AsyncIterable, Iterable
from urllib.parse import urlsplit

import h11
import trio

from .codec import CodecError, decode, encode
from .model import Op, Status, Tag
from .types import Group, Message

__all__ = [
    "IppClient", "IppClientError", "PrinterUnreachable", "HttpStatusError", "BadResponse",
    "IppStatusError", "Target", "parse_uri", "new_request", "request_headers", "status_of",
    "status_message", "status_name", "check", "READ_ONLY_OPS",
]

USER_AGENT = "spoolproxy"
MAX_RESPONSE_BYTES = 64 << 20  # a Get-Printer-Attributes answer is tens of kB
CHUNK = 64 << 10

# operations that change nothing at the printer: safe to send again
READ_ONLY_OPS = frozenset({
    Op.GET_PRINTER_ATTRIBUTES, Op.GET_JOB_ATTRIBUTES, Op.GET_JOBS,
    Op.GET_PRINTER_SUPPORTED_VALUES, Op.GET_SUBSCRIPTION_ATTRIBUTES, Op.GET_SUBSCRIPTIONS,
    Op.VALIDATE_JOB, Op.VALIDATE_DOCUMENT, Op.CUPS_GET_DEFAULT, Op.CUPS_GET_PRINTERS,
})


# -- errors -----------------------------------------------------------------------

class IppClientError(Exception):
    """An IPP request did not produce an IPP response."""

    def __init__(self, message: str, *, uri: str = "") -> None:
        super().__init__(message)
        self.uri = uri


class PrinterUnreachable(IppClientError):
    """The printer could not be talked to: name lookup, connect, TLS, reset, silence
    longer than the timeout, or the connection closed before a whole answer.

    ``maybe_sent`` is False when no byte of the request can have reached the
    printer (no connection was made), True when it may have."""

    def __init__(self, message: str, *, uri: str = "", maybe_sent: bool = True) -> None:
        super().__init__(message, uri=uri)
        self.maybe_sent = maybe_sent


class HttpStatusError(IppClientError):
    """The printer answered with an HTTP status other than 200 OK."""

    def __init__(self, status_code: int, reason: str, *, uri: str = "") -> None:
        super().__init__(f"HTTP {status_code} {reason}".rstrip(), uri=uri)
        self.status_code = status_code
        self.reason = reason


class BadResponse(IppClientError):
    """The answer is not well-formed HTTP/1.1 or not a decodable IPP message."""


class IppStatusError(IppClientError):
    """The printer answered with an IPP error status (raised by :func:`check`)."""

    def __init__(self, status: int, message: str = "", *, uri: str = "") -> None:
        name = status_name(status)
        super().__init__(f"{name}: {message}" if message else name, uri=uri)
        self.status = status
        self.status_message = message


# -- pure helpers -----------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Target:
    """Where an IPP URI points: TCP host and port, TLS or not, HTTP request path."""

    uri: str
    host: str
    port: int
    tls: bool
    path: str

    @property
    def host_header(self) -> str:
        h = f"[{self.host}]" if ":" in self.host else self.host
        return f"{h}:{self.port}"


_DEFAULT_PORTS = {"ipp": (631, False), "ipps": (631, True), "http": (80, False), "https": (443, True)}


def parse_uri(uri: str) -> Target:
    """``ipp://host[:port]/path`` -> Target. Raises ValueError for other schemes."""
    try:
        parts = urlsplit(uri)
        port = parts.port
    except ValueError as e:
        raise ValueError(f"not a valid printer URI {uri!r}: {e}") from None
    scheme = parts.scheme.lower()
    if scheme not in _DEFAULT_PORTS:
        raise ValueError(f"not an IPP URI (scheme {scheme or '(none)'!r}): {uri!r}")
    if not parts.hostname:
        raise ValueError(f"printer URI has no host: {uri!r}")
    default_port, tls = _DEFAULT_PORTS[scheme]
    path = parts.path or "/"
    if parts.query:
        path += "?" + parts.query
    return Target(uri, parts.hostname, port or default_port, tls, path)


_request_ids = itertools.count(1)


def new_request(op: int, printer_uri: str, *, user: str | None = "spoolproxy",
                request_id: int | None = None, version: tuple[int, int] = (2, 0)) -> Message:
    """A request with the operation attributes every request starts with (RFC 8011
    §4.1.4): attributes-charset, attributes-natural-language, printer-uri and
    requesting-user-name (left out when ``user`` is None)."""
    msg = Message(version=version, code=int(op),
                  request_id=next(_request_ids) if request_id is None else request_id)
    g = msg.add_group(Tag.OPERATION)
    g.add("attributes-charset", Tag.CHARSET, "utf-8")
    g.add("attributes-natural-language", Tag.LANGUAGE, "en")
    g.add("printer-uri", Tag.URI, printer_uri)
    if user is not None:
        g.add("requesting-user-name", Tag.NAME, user or "anonymous")
    return msg


def request_headers(target: Target, length: int | None) -> list[tuple[str, str]]:
    """HTTP headers of an IPP POST: Content-Length when the size is known, else
    chunked transfer encoding."""
    headers = [("Host", target.host_header), ("Content-Type", "application/ipp"),
               ("User-Agent", USER_AGENT), ("Accept-Encoding", "identity")]
    if length is None:
        headers.append(("Transfer-Encoding", "chunked"))
    else:
        headers.append(("Content-Length", str(length)))
    return headers


_OK_NAMES = {0x0000: "successful-ok", 0x0001: "successful-ok-ignored-or-substituted-attributes",
             0x0002: "successful-ok-conflicting-attributes"}


def status_name(code: int) -> str:
    """RFC 8011 name of a status code: client-error-not-found, server-error-busy, ..."""
    if code in _OK_NAMES:
        return _OK_NAMES[code]
    try:
        kw = Status(code).keyword
    except ValueError:
        return f"0x{code:04x}"
    if 0x0400 <= code < 0x0500:
        return "client-error-" + kw
    if 0x0500 <= code < 0x0600:
        return "server-error-" + kw
    return kw


def status_of(msg: Message) -> int:
    """The status-code of a response."""
    return msg.code


def status_message(msg: Message) -> str:
    """The response's status-message (or detailed-status-message), "" if none."""
    g = msg.group(Tag.OPERATION)
    if g is None:
        return ""
    for name in ("status-message", "detailed-status-message"):
        v = g.value(name)
        if v:
            return str(getattr(v, "text", v))
    return ""


def check(msg: Message, *, uri: str = "") -> Message:
    """Return ``msg`` if its status is successful, else raise IppStatusError."""
    if msg.code >= 0x0100:
        raise IppStatusError(msg.code, status_message(msg), uri=uri)
    return msg


# -- the client -------------------------------------------------------------------

class _NothingSent(Exception):
    """Internal: the connection failed before any byte of the request was written."""


class _DiedBeforeAnswer(Exception):
    """Internal: a reused connection closed before any byte of the answer."""


class IppClient:
    """One printer, one keep-alive HTTP/1.1 connection."""

    def __init__(self, uri: str, *, timeout: float = 30, verify_tls: bool = False,
                 ssl_context: ssl.SSLContext | None = None) -> None:
        self.uri = uri
        self.target = parse_uri(uri)
        self.timeout = timeout
        self.verify_tls = verify_tls
        self._ssl_context = ssl_context
        self._stream: trio.abc.Stream | None = None
        self._conn: h11.Connection | None = None
        self._lock = trio.Lock()
        self.version: tuple[int, int] = (2, 0)  # IPP version new_request() uses via self.new_request

    # context manager
    async def __aenter__(self) -> "IppClient":
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    def new_request(self, op: int, *, user: str | None = "spoolproxy") -> Message:
        """new_request() for this printer's URI and IPP version."""
        return new_request(op, self.uri, user=user, version=self.version)

    async def aclose(self) -> None:
        stream, self._stream, self._conn = self._stream, None, None
        if stream is not None:
            with trio.CancelScope(shield=True):
                await trio.aclose_forcefully(stream)

    # -- public requests --

    async def request(self, msg: Message,
                      data: bytes | AsyncIterable[bytes] | None = None) -> Message:
        """Send one IPP request (and document data) and return the response."""
        head = encode(msg)
        replayable = data is None or isinstance(data, (bytes, bytearray, memoryview))
        async with self._lock:
            for attempt in (1, 2):
                try:
                    return await self._exchange(head, data, msg.code,
                                                retry_ok=attempt == 1,
                                                idempotent=replayable and msg.code in READ_ONLY_OPS)
                except (_NothingSent, _DiedBeforeAnswer) as e:
                    await self.aclose()
                    if attempt == 2:
                        raise PrinterUnreachable(f"{self.uri}: {e}", uri=self.uri,
                                                 maybe_sent=isinstance(e, _DiedBeforeAnswer)) from None
            raise AssertionError("unreachable")  # pragma: no cover

    async def get_printer_attributes(self, requested: Iterable[str] = ("all", "media-col-database"),
                                     *, user: str | None = "spoolproxy") -> Group:
        """Get-Printer-Attributes; the printer attributes group (empty if the printer
        sent none). Raises IppStatusError on an IPP error status."""
        req = self.new_request(Op.GET_PRINTER_ATTRIBUTES, user=user)
        req.operation.add("requested-attributes", Tag.KEYWORD, *requested)
        resp = check(await self.request(req), uri=self.uri)
        return resp.group(Tag.PRINTER) or Group(Tag.PRINTER)

    # -- connection --

    def _ssl(self) -> ssl.SSLContext:
        if self._ssl_context is None:
            ctx = ssl.create_default_context()
            if not self.verify_tls:  # printers mostly have self-signed certificates
                ctx.check_hostname = False
                ctx.verify_mode = ssl.CERT_NONE
            self._ssl_context = ctx
        return self._ssl_context

    async def _connect(self) -> None:
        t = self.target
        try:
            with trio.fail_after(self.timeout):
                stream: trio.abc.Stream = await trio.open_tcp_stream(t.host, t.port)
                if t.tls:
                    stream = trio.SSLStream(stream, self._ssl(), server_hostname=t.host,
                                            https_compatible=True)
                    try:
                        await stream.do_handshake()
                    except BaseException:
                        await trio.aclose_forcefully(stream)
                        raise
        except trio.TooSlowError:
            raise PrinterUnreachable(f"{self.uri}: no connection within {self.timeout:g} s",
                                     uri=self.uri, maybe_sent=False) from None
        except (OSError, trio.BrokenResourceError, ssl.SSLError) as e:
            raise PrinterUnreachable(f"{self.uri}: cannot connect: {describe_error(e)}", uri=self.uri,
                                     maybe_sent=False) from None
        self._stream = stream
        self._conn = h11.Connection(our_role=h11.CLIENT)

    def _idle_connection_ok(self) -> bool:
        """A kept-alive connection is usable when nothing is waiting to be read on it
        (readable while idle means the printer closed it or sent garbage)."""
        stream = self._stream
        if stream is None or self._conn is None or self._conn.our_state is not h11.IDLE:
            return False
        sock_stream = stream.transport_stream if isinstance(stream, trio.SSLStream) else stream
        try:
            fd = sock_stream.socket.fileno()  # type: ignore[attr-defined]
            readable, _, _ = select.select([fd], [], [], 0)
        except (AttributeError, OSError, ValueError):
            return False
        return not readable

    async def _exchange(self, head: bytes, data: bytes | AsyncIterable[bytes] | None, op: int,
                        *, retry_ok: bool, idempotent: bool) -> Message:
        reused = self._stream is not None and self._idle_connection_ok()
        if not reused:
            await self.aclose()
            await self._connect()
        stream, conn = self._stream, self._conn
        assert stream is not None and conn is not None

        if data is None:
            length: int | None = len(head)
        elif isinstance(data, (bytes, bytearray, memoryview)):
            length = len(head) + len(data)
        else:
            length = None
        request = h11.Request(method="POST", target=self.target.path,
                              headers=request_headers(self.target, length))
        ok = False
        try:
            try:
                with trio.fail_after(self.timeout):
                    await stream.send_all(conn.send(request) + conn.send(h11.Data(data=head)))
            except (trio.BrokenResourceError, trio.ClosedResourceError, OSError, trio.TooSlowError) as e:
                if reused and retry_ok:
                    raise _NothingSent(describe_error(e)) from None
                raise self._unreachable(e) from None

            response = await self._send_body_and_receive(stream, conn, data, reused and retry_ok
                                                         and idempotent)
            ok = True
            return response
        finally:
            if not ok or not self._reusable(conn):
                await self.aclose()
            else:
                conn.start_next_cycle()

    @staticmethod
    def _reusable(conn: h11.Connection) -> bool:
        return conn.our_state is h11.DONE and conn.their_state is h11.DONE

    def _unreachable(self, e: BaseException) -> PrinterUnreachable:
        if isinstance(e, trio.TooSlowError):
            return PrinterUnreachable(f"{self.uri}: no answer within {self.timeout:g} s", uri=self.uri)
        return PrinterUnreachable(f"{self.uri}: connection lost: {describe_error(e)}", uri=self.uri)

    async def _send_body_and_receive(self, stream: trio.abc.Stream, conn: h11.Connection,
                                     data: bytes | AsyncIterable[bytes] | None,
                                     may_retry: bool) -> Message:
        """Send the body in one task while another reads the answer. Errors are
        collected and raised after the nursery, so they reach the caller as they are
        (no exception groups)."""
        sent = trio.Event()
        send_error: list[BaseException] = []  # network trouble while sending
        source_error: list[BaseException] = []  # the document iterator failed
        result: list[Message] = []
        receive_error: list[BaseException] = []

        async def sender(nursery: trio.Nursery) -> None:
            try:
                if isinstance(data, (bytes, bytearray, memoryview)):
                    view = memoryview(data)
                    for i in range(0, len(view), CHUNK):
                        await self._send(stream, conn.send(h11.Data(data=bytes(view[i:i + CHUNK]))))
                elif data is not None:
                    chunks = data.__aiter__()
                    while True:
                        try:
                            chunk = await chunks.__anext__()
                        except StopAsyncIteration:
                            break
                        except Exception as e:  # reading the document failed: abandon the request
                            source_error.append(e)
                            nursery.cancel_scope.cancel()
                            return
                        if chunk:
                            await self._send(stream, conn.send(h11.Data(data=chunk)))
                await self._send(stream, conn.send(h11.EndOfMessage()))
            except (trio.BrokenResourceError, trio.ClosedResourceError, OSError,
                    trio.TooSlowError, h11.LocalProtocolError) as e:
                # the printer may have answered early and closed: the receiver decides
                send_error.append(e)
            finally:
                sent.set()

        async def receiver(nursery: trio.Nursery) -> None:
            try:
                result.append(await self._receive(stream, conn, sent, send_error, may_retry))
            except Exception as e:
                receive_error.append(e)
            finally:
                # an early answer ends the exchange: stop sending (connection is not reused)
                nursery.cancel_scope.cancel()

        async with trio.open_nursery() as nursery:
            nursery.start_soon(sender, nursery)
            nursery.start_soon(receiver, nursery)
        if source_error:
            raise source_error[0]
        if receive_error:
            raise receive_error[0]
        if not result:  # pragma: no cover - only if the nursery was cancelled from outside
            raise PrinterUnreachable(f"{self.uri}: request abandoned", uri=self.uri)
        return result[0]

    async def _send(self, stream: trio.abc.Stream, payload: bytes) -> None:
        with trio.fail_after(self.timeout):
            await stream.send_all(payload)

    async def _receive(self, stream: trio.abc.Stream, conn: h11.Connection, sent: trio.Event,
                       send_error: list[BaseException], may_retry: bool) -> Message:
        status: int | None = None
        reason = ""
        body = bytearray()
        got_bytes = False
        eof = False
        while True:
            try:
                event = conn.next_event()
            except h11.RemoteProtocolError as e:
                if eof:
                    raise PrinterUnreachable(f"{self.uri}: connection closed in the middle of the answer",
                                             uri=self.uri) from None
                raise BadResponse(f"{self.uri}: bad HTTP response: {e}", uri=self.uri) from None
            if event is h11.NEED_DATA:
                data = await self._receive_some(stream, sent, send_error)
                if not data and not got_bytes:
                    if may_retry:
                        raise _DiedBeforeAnswer("connection closed before an answer")
                    raise self._unreachable(send_error[0] if send_error
                                            else ConnectionResetError("connection closed before an answer"))
                got_bytes = got_bytes or bool(data)
                eof = not data
                conn.receive_data(data)
                continue
            if isinstance(event, h11.InformationalResponse):
                continue  # 100 Continue and friends
            if isinstance(event, h11.Response):
                status, reason = event.status_code, event.reason.decode("latin-1", "replace")
                continue
            if isinstance(event, h11.Data):
                body += event.data
                if len(body) > MAX_RESPONSE_BYTES:
                    raise BadResponse(f"{self.uri}: response larger than {MAX_RESPONSE_BYTES} bytes",
                                      uri=self.uri)
                continue
            if isinstance(event, h11.EndOfMessage):
                break
            if isinstance(event, h11.ConnectionClosed):  # pragma: no cover - NEED_DATA path above
                raise PrinterUnreachable(f"{self.uri}: connection closed before the answer",
                                         uri=self.uri)
        assert status is not None
        if status != 200:
            raise HttpStatusError(status, reason, uri=self.uri)
        try:
            msg, _ = decode(bytes(body))
        except CodecError as e:
            raise BadResponse(f"{self.uri}: response is not IPP: {e}", uri=self.uri) from None
        except Exception as e:  # Incomplete / TooLarge or any other decode failure
            raise BadResponse(f"{self.uri}: response is not IPP: {type(e).__name__}: {e}",
                              uri=self.uri) from None
        return msg

    async def _receive_some(self, stream: trio.abc.Stream, sent: trio.Event,
                            send_error: list[BaseException]) -> bytes:
        """Read some bytes. While the request body is still going out the printer
        may legitimately be silent (it reads the document first); once it is all
        sent, silence longer than the timeout is a failure."""
        while True:
            with trio.move_on_after(self.timeout) as cs:
                try:
                    return await stream.receive_some(CHUNK)
                except (trio.BrokenResourceError, trio.ClosedResourceError, OSError) as e:
                    if send_error:
                        raise self._unreachable(send_error[0]) from None
                    raise self._unreachable(e) from None
            if cs.cancelled_caught and sent.is_set():
                raise self._unreachable(send_error[0] if send_error else trio.TooSlowError())


def describe_error(e: BaseException) -> str:
    """A short human reason: "Connection refused", "Name or service not known"."""
    if isinstance(e, OSError) and isinstance(e.errno, int) and e.errno > 0:
        return os.strerror(e.errno)
    if isinstance(e, OSError) and e.strerror:
        return e.strerror
    inner = getattr(e.__cause__, "exceptions", None) or (
        [e.__cause__] if e.__cause__ is not None else [])
    reasons = []
    for sub in inner:
        r = describe_error(sub)
        if r not in reasons:
            reasons.append(r)
    if reasons:
        return "; ".join(reasons)
    return str(e) or type(e).__name__

