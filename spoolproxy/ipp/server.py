"""IPP over HTTP/1.1 on trio: the transport around operations.PrinterService.

h11 does the HTTP (keep-alive, chunked bodies, Expect: 100-continue); this module
reads the IPP attribute section with codec.MessageReader, hands the rest of the body
to the operation as a stream (a job is never held in memory whole), and writes the
response. A misbehaving client gets an HTTP or IPP error or a closed connection,
never more than its own connection's worth of the server's time and memory.
"""
from __future__ import annotations

import logging
import zlib
from typing import AsyncIterator

import h11
import trio

from ..config import Settings
from ..netutil import aclose_quietly
from . import codec
from .model import Status, Tag
from .operations import DOCUMENT_OPS, PrinterService, RequestContext
from .types import Message

log = logging.getLogger("spoolproxy.ipp")

READ_SIZE = 1 << 16
HEADER_TIMEOUT = 30.0  # request line, HTTP headers and IPP attributes must arrive within this
DRAIN_LIMIT = 1 << 20  # unread body we are willing to swallow to keep a connection alive
MAX_CONNECTIONS = 1000


class ClientGone(Exception):
    """The client closed the connection or stopped sending."""


class _Conn:
    """One client connection: h11 state plus the trio stream."""

    def __init__(self, stream: trio.abc.Stream, idle_timeout: float):
        self.stream = stream
        self.h11 = h11.Connection(h11.SERVER, max_incomplete_event_size=16 * 1024)
        self.idle_timeout = idle_timeout

    async def next_event(self):
        while True:
            event = self.h11.next_event()
            if event is not h11.NEED_DATA:
                return event
            if self.h11.they_are_waiting_for_100_continue:
                await self.send(h11.InformationalResponse(status_code=100, headers=[]))
            with trio.move_on_after(self.idle_timeout) as scope:
                try:
                    data = await self.stream.receive_some(READ_SIZE)
                except (trio.BrokenResourceError, trio.ClosedResourceError, OSError) as e:
                    raise ClientGone(str(e)) from None
            if scope.cancelled_caught:
                raise ClientGone("idle timeout")
            self.h11.receive_data(data)

    async def send(self, *events) -> None:
        """Send one or more h11 events in a single write (a response's head, body
        and end go out together: one syscall, not three)."""
        data = b"".join(self.h11.send(e) or b"" for e in events)
        if data:
            try:
                await self.stream.send_all(data)
            except (trio.BrokenResourceError, trio.ClosedResourceError, OSError) as e:
                raise ClientGone(str(e)) from None

    async def body(self) -> AsyncIterator[bytes]:
        while True:
            event = await self.next_event()
            if isinstance(event, h11.Data):
                yield bytes(event.data)
            elif isinstance(event, h11.EndOfMessage):
                return
            else:
                raise ClientGone(f"unexpected {type(event).__name__} in request body")


def _content_decoder(coding: str):
    if coding in ("", "identity"):
        return None
    if coding in ("gzip", "x-gzip"):
        return zlib.decompressobj(31)
    if coding == "deflate":
        return zlib.decompressobj(47)  # zlib or gzip wrapper, auto-detected
    raise ValueError(coding)


class IppServer:
    def __init__(self, settings: Settings, service: PrinterService):
        self.settings = settings
        self.service = service
        self._slots = trio.Semaphore(MAX_CONNECTIONS)

    async def serve(self, *, task_status=trio.TASK_STATUS_IGNORED) -> None:
        """Listen and serve; reports the listeners (their real ports) to nursery.start."""
        listeners = await trio.open_tcp_listeners(self.settings.ipp.port, host=self.settings.ipp.listen)
        task_status.started(listeners)
        await trio.serve_listeners(self.handle_connection, listeners)

    async def handle_connection(self, stream: trio.SocketStream) -> None:
        if self._slots.value == 0:
            await stream.aclose()
            return
        async with self._slots:
            try:
                peer = stream.socket.getpeername()[0]
            except (OSError, AttributeError):
                peer = ""
            conn = _Conn(stream, self.settings.ipp.idle_timeout)
            try:
                while True:
                    keep = await self._one_request(conn, peer)
                    if not keep or conn.h11.our_state is not h11.DONE or conn.h11.their_state is not h11.DONE:
                        break
                    conn.h11.start_next_cycle()
            except ClientGone as e:
                log.debug("connection from %s ended: %s", peer, e)
            except h11.RemoteProtocolError as e:
                await self._http_error(conn, e.error_status_hint, f"Bad HTTP request: {e}")
            except Exception:
                log.exception("error serving %s", peer)
            finally:
                await aclose_quietly(stream)

    async def _http_error(self, conn: _Conn, status: int, text: str) -> None:
        if conn.h11.our_state not in (h11.IDLE, h11.SEND_RESPONSE):
            return
        body = (text + "\n").encode()
        try:
            await conn.send(h11.Response(status_code=status, headers=[
                ("Content-Type", "text/plain; charset=utf-8"), ("Content-Length", str(len(body))),
                ("Connection", "close")]))
            await conn.send(h11.Data(data=body))
            await conn.send(h11.EndOfMessage())
        except (ClientGone, h11.LocalProtocolError):
            pass

    async def _one_request(self, conn: _Conn, peer: str) -> bool:
        """Serve one HTTP request; False when the connection must close."""
        with trio.move_on_after(HEADER_TIMEOUT) as head_deadline:
            request = await conn.next_event()
        if head_deadline.cancelled_caught:
            raise ClientGone("request head timeout")
        if isinstance(request, h11.ConnectionClosed):
            return False
        if not isinstance(request, h11.Request):
            raise ClientGone("no request")
        headers = {k.decode().lower(): v.decode("latin-1") for k, v in request.headers}
        method = request.method.decode()
        path = request.target.decode("latin-1")
        if method in ("GET", "HEAD"):
            return await self._get(conn, method, path)
        if method != "POST":
            await self._http_error(conn, 405, f"{method} is not allowed here")
            return False
        ctype = headers.get("content-type", "").split(";")[0].strip().lower()
        if ctype != "application/ipp":
            await self._http_error(conn, 400, "Content-Type must be application/ipp")
            return False
        try:
            decoder = _content_decoder(headers.get("content-encoding", "").strip().lower())
        except ValueError:
            await self._http_error(conn, 415, "Unsupported Content-Encoding")
            return False

        if headers.get("expect", "").strip().lower() == "100-continue":
            # CUPS clients send the request right after the headers and then wait up
            # to a second for this; h11 stops asking once body bytes have arrived.
            await conn.send(h11.InformationalResponse(status_code=100, headers=[]))
        body = conn.body()
        if decoder is not None:
            body = _decoded(body, decoder)
        reader = codec.MessageReader(codec.Limits(max_header_bytes=self.settings.ipp.max_header_bytes))
        ended = False
        req: Message | None = None
        with trio.move_on_after(HEADER_TIMEOUT) as ipp_deadline:
            try:
                async for chunk in body:
                    req = reader.feed(chunk)
                    if req is not None:
                        break
                else:
                    ended = True
            except codec.TooLarge as e:
                await self._http_error(conn, 413, str(e))
                return False
            except (codec.CodecError, zlib.error) as e:
                await self._http_error(conn, 400, f"Bad IPP request: {e}")
                return False
        if ipp_deadline.cancelled_caught:
            raise ClientGone("IPP attributes timeout")
        if req is None:
            await self._http_error(conn, 400, "Bad IPP request: the attribute section is incomplete")
            return False
        del ended

        state = {"consumed": False}

        async def document() -> AsyncIterator[bytes]:
            if reader.rest:
                yield reader.rest
            async for chunk in body:
                yield chunk
            state["consumed"] = True

        ctx = RequestContext(host=headers.get("host", ""), peer=peer, path=path)
        doc = document()
        try:
            resp = await self.service.handle(req, doc, ctx)
        except ClientGone:
            raise
        except Exception:
            log.exception("operation %#06x failed", req.code)
            resp = _internal_error(req)
        keep_alive = True
        if not state["consumed"] and conn.h11.their_state is not h11.DONE:
            # Finish reading what the client sent so the connection can be reused, but
            # only while it is small: a refused 1 GiB job is not worth reading.
            keep_alive = req.code not in DOCUMENT_OPS or resp.code < 0x0100
            if keep_alive:
                keep_alive = await _drain(doc, DRAIN_LIMIT)
        try:
            data = codec.encode(resp)
        except codec.CodecError:
            log.exception("operation %#06x built a response that cannot be encoded", req.code)
            data = codec.encode(_internal_error(req))
        out_headers = [("Content-Type", "application/ipp"), ("Content-Length", str(len(data)))]
        if not keep_alive:
            out_headers.append(("Connection", "close"))
        await conn.send(h11.Response(status_code=200, headers=out_headers), h11.Data(data=data),
                        h11.EndOfMessage())
        return keep_alive

    async def _get(self, conn: _Conn, method: str, path: str) -> bool:
        # drain any (unexpected) GET body
        while not isinstance(await conn.next_event(), h11.EndOfMessage):
            pass
        if path.split("?")[0] != "/":
            await self._http_error(conn, 404, "Not found. Print to /ipp/print/QUEUE.")
            return False
        names = "".join(f"<li>{q}</li>" for q in sorted(self.settings.queues))
        body = (f"<!doctype html><title>spoolproxy</title><h1>spoolproxy</h1>"
                f"<p>Queues (ipp://HOST:{self.settings.ipp.port}/ipp/print/NAME):</p><ul>{names}</ul>").encode()
        await conn.send(h11.Response(status_code=200, headers=[
            ("Content-Type", "text/html; charset=utf-8"), ("Content-Length", str(len(body)))]))
        if method == "GET":
            await conn.send(h11.Data(data=body))
        await conn.send(h11.EndOfMessage())
        return True


async def _decoded(body: AsyncIterator[bytes], decoder) -> AsyncIterator[bytes]:
    async for chunk in body:
        out = decoder.decompress(chunk)
        if out:
            yield out
    tail = decoder.flush()
    if tail:
        yield tail


async def _drain(doc: AsyncIterator[bytes], limit: int) -> bool:
    seen = 0
    try:
        async for chunk in doc:
            seen += len(chunk)
            if seen > limit:
                return False
    except (codec.CodecError, zlib.error):
        return False
    return True


def _internal_error(req: Message) -> Message:
    resp = Message(version=(2, 0) if req.version[0] == 2 else (1, 1), code=Status.INTERNAL_ERROR,
                   request_id=req.request_id)
    g = resp.add_group(Tag.OPERATION)
    g.add("attributes-charset", Tag.CHARSET, "utf-8")
    g.add("attributes-natural-language", Tag.LANGUAGE, "en")
    g.add("status-message", Tag.TEXT, "Internal error; the administrator can find it in the log.")
    return resp
