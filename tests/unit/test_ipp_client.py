"""IppClient (spoolproxy.ipp.client) against a small in-test trio HTTP/IPP printer.

``FakePrinter`` is also used by test_upstream.py: an h11 server on 127.0.0.1 whose
``handler(request, printer)`` decides, per request, what to answer (a Message, an
HTTP error, a dropped connection, an early answer before the document, ...).
"""
from __future__ import annotations

import hashlib
import os
import socket
from dataclasses import dataclass
from typing import Callable

import h11
import pytest
import trio

from spoolproxy.ipp.client import (BadResponse, HttpStatusError, IppClient, IppStatusError,
                                   PrinterUnreachable, check, new_request, parse_uri,
                                   request_headers, status_message)
from spoolproxy.ipp.codec import MessageReader, decode, encode
from spoolproxy.ipp.model import Op, Status, Tag
from spoolproxy.ipp.types import Group, Message


# --------------------------------------------------------------------------- fake printer

@dataclass
class Reply:
    """What the fake printer does with one request.

    msg: the IPP response (None with drop/http_status).
    early: answer right after the IPP header, before reading the document, then close.
    drop: close the connection without answering (after reading the whole request,
        unless early).
    http_status: answer with this HTTP status and no IPP body.
    continue_100: send "100 Continue" first.
    close: close the connection after answering (no keep-alive).
    delay: seconds to wait before answering.
    """

    msg: Message | None = None
    early: bool = False
    drop: bool = False
    http_status: int = 200
    continue_100: bool = False
    close: bool = False
    delay: float = 0.0


@dataclass
class Received:
    msg: Message
    data: bytes
    headers: dict[str, str]
    connection: int
    complete: bool = True


def response(status: int = Status.OK, request: Message | None = None, *,
             message: str = "", groups: list[Group] = ()) -> Message:
    resp = Message(version=(2, 0), code=int(status), request_id=request.request_id if request else 1)
    op = resp.add_group(Tag.OPERATION)
    op.add("attributes-charset", Tag.CHARSET, "utf-8")
    op.add("attributes-natural-language", Tag.LANGUAGE, "en")
    if message:
        op.add("status-message", Tag.TEXT, message)
    for g in groups:
        resp.groups.append(g)
    return resp


class FakePrinter:
    def __init__(self, handler: Callable[[Message, "FakePrinter"], Reply | Message]) -> None:
        self.handler = handler
        self.received: list[Received] = []
        self.connections = 0
        self.port = 0
        self._listeners: list[trio.SocketListener] = []
        self._cancel: trio.CancelScope | None = None
        self.hashes: list[str] = []

    @property
    def uri(self) -> str:
        return f"ipp://127.0.0.1:{self.port}/ipp/print"

    async def start(self, nursery: trio.Nursery) -> "FakePrinter":
        self._listeners = await trio.open_tcp_listeners(self.port, host="127.0.0.1")
        self.port = self._listeners[0].socket.getsockname()[1]
        self._cancel = trio.CancelScope()

        async def serve() -> None:
            with self._cancel:
                await trio.serve_listeners(self._serve, self._listeners)

        nursery.start_soon(serve)
        return self

    def stop(self) -> None:
        """Stop listening and drop every connection (the port then refuses)."""
        if self._cancel is not None:
            self._cancel.cancel()

    async def restart(self, nursery: trio.Nursery) -> None:
        await trio.sleep(0)
        await self.start(nursery)

    async def _serve(self, stream: trio.SocketStream) -> None:
        self.connections += 1
        number = self.connections
        conn = h11.Connection(h11.SERVER)
        try:
            while True:
                if not await self._one(stream, conn, number):
                    return
                if conn.our_state is h11.MUST_CLOSE or conn.their_state is h11.MUST_CLOSE:
                    return
                conn.start_next_cycle()
        except (trio.BrokenResourceError, trio.ClosedResourceError, h11.RemoteProtocolError):
            return
        finally:
            await trio.aclose_forcefully(stream)

    async def _event(self, stream, conn):
        while True:
            ev = conn.next_event()
            if ev is h11.NEED_DATA:
                data = await stream.receive_some(65536)
                conn.receive_data(data)
                continue
            return ev

    async def _one(self, stream, conn, number) -> bool:
        ev = await self._event(stream, conn)
        if isinstance(ev, h11.ConnectionClosed):
            return False
        assert isinstance(ev, h11.Request), ev
        headers = {k.decode().lower(): v.decode() for k, v in ev.headers}
        reader = MessageReader()
        msg = None
        ended = False
        while msg is None:
            ev = await self._event(stream, conn)
            if isinstance(ev, h11.Data):
                msg = reader.feed(ev.data)
            elif isinstance(ev, h11.EndOfMessage):
                ended = True
                break
            else:
                return False
        assert msg is not None, "request without a complete IPP header"
        rec = Received(msg, b"", headers, number, complete=False)
        self.received.append(rec)  # the handler sees it as received[-1]; data comes later
        reply = self.handler(msg, self)
        if isinstance(reply, Message):
            reply = Reply(reply)
        if reply.continue_100:
            await stream.send_all(conn.send(h11.InformationalResponse(status_code=100, headers=[])))
        h = hashlib.sha256()
        body = bytearray(reader.rest)
        if not reply.early:
            while not ended:
                ev = await self._event(stream, conn)
                if isinstance(ev, h11.Data):
                    body += ev.data
                elif isinstance(ev, h11.EndOfMessage):
                    ended = True
                else:
                    return False
            rec.complete = True
        rec.data = bytes(body)
        h.update(rec.data)
        self.hashes.append(h.hexdigest())
        if reply.delay:
            await trio.sleep(reply.delay)
        if reply.drop:
            return False
        if reply.http_status != 200:
            payload = b"error"
            await stream.send_all(conn.send(h11.Response(
                status_code=reply.http_status,
                headers=[("Content-Length", str(len(payload))), ("Connection", "close")])))
            await stream.send_all(conn.send(h11.Data(data=payload)) + conn.send(h11.EndOfMessage()))
            return False
        out = encode(reply.msg)
        hdrs = [("Content-Type", "application/ipp"), ("Content-Length", str(len(out)))]
        if reply.close or reply.early:
            hdrs.append(("Connection", "close"))
        await stream.send_all(conn.send(h11.Response(status_code=200, headers=hdrs)))
        await stream.send_all(conn.send(h11.Data(data=out)) + conn.send(h11.EndOfMessage()))
        return not (reply.close or reply.early)


def ok_handler(msg: Message, printer: FakePrinter) -> Message:
    resp = response(Status.OK, msg)
    g = resp.add_group(Tag.PRINTER)
    g.add("printer-state", Tag.ENUM, 3)
    g.add("printer-name", Tag.NAME, "fake")
    return resp


async def chunks_of(data: bytes, size: int = 1000):
    for i in range(0, len(data), size):
        await trio.sleep(0)
        yield data[i:i + size]


# --------------------------------------------------------------------------- pure helpers

def test_parse_uri_schemes_and_ports():
    t = parse_uri("ipp://printer.example/ipp/print")
    assert (t.host, t.port, t.tls, t.path) == ("printer.example", 631, False, "/ipp/print")
    t = parse_uri("ipps://printer.example/ipp/print")
    assert (t.port, t.tls) == (631, True)
    t = parse_uri("ipp://10.0.0.7:8631")
    assert (t.port, t.path) == (8631, "/")
    t = parse_uri("http://[::1]:8080/printers/q")
    assert (t.host, t.port, t.path, t.host_header) == ("::1", 8080, "/printers/q", "[::1]:8080")
    assert parse_uri("https://h/x").port == 443
    with pytest.raises(ValueError):
        parse_uri("socket://h:9100")
    with pytest.raises(ValueError):
        parse_uri("ipp:///nohost")


def test_new_request_has_the_mandatory_operation_attributes():
    msg = new_request(Op.PRINT_JOB, "ipp://h/ipp/print", user="alice", request_id=7)
    assert (msg.code, msg.request_id, msg.version) == (Op.PRINT_JOB, 7, (2, 0))
    names = [a.name for a in msg.operation]
    assert names == ["attributes-charset", "attributes-natural-language", "printer-uri",
                     "requesting-user-name"]
    assert msg.operation.value("attributes-charset") == "utf-8"
    assert msg.operation.value("attributes-natural-language") == "en"
    assert msg.operation.value("printer-uri") == "ipp://h/ipp/print"
    assert msg.operation.value("requesting-user-name") == "alice"
    assert new_request(Op.GET_JOBS, "ipp://h/").request_id != new_request(Op.GET_JOBS, "ipp://h/").request_id
    assert decode(encode(msg))[0].operation.value("printer-uri") == "ipp://h/ipp/print"


def test_request_headers_chunked_or_length():
    t = parse_uri("ipp://h:631/ipp/print")
    chunked = dict(request_headers(t, None))
    assert chunked["Transfer-Encoding"] == "chunked" and "Content-Length" not in chunked
    assert chunked["Content-Type"] == "application/ipp" and chunked["Host"] == "h:631"
    assert dict(request_headers(t, 42))["Content-Length"] == "42"


def test_check_and_status_message():
    ok = response(Status.OK)
    assert check(ok) is ok
    bad = response(Status.DOCUMENT_FORMAT_NOT_SUPPORTED, message="PCL? no.")
    assert status_message(bad) == "PCL? no."
    with pytest.raises(IppStatusError) as ei:
        check(bad)
    assert ei.value.status == Status.DOCUMENT_FORMAT_NOT_SUPPORTED
    assert "client-error-document-format-not-supported" in str(ei.value)


# --------------------------------------------------------------------------- I/O

async def test_get_printer_attributes_and_keep_alive(nursery):
    printer = await FakePrinter(ok_handler).start(nursery)
    async with IppClient(printer.uri, timeout=5) as client:
        g = await client.get_printer_attributes()
        assert g.value("printer-name") == "fake"
        await client.get_printer_attributes(("printer-state",))
    assert printer.connections == 1  # the second request reused the connection
    req = printer.received[0].msg
    assert req.code == Op.GET_PRINTER_ATTRIBUTES
    assert req.operation.get("requested-attributes").values == ["all", "media-col-database"]
    assert printer.received[0].headers["content-type"] == "application/ipp"
    assert printer.received[1].msg.operation.get("requested-attributes").values == ["printer-state"]


async def test_streamed_document_is_chunked_and_arrives_whole(nursery):
    printer = await FakePrinter(lambda m, p: response(Status.OK, m)).start(nursery)
    data = os.urandom(300_000)
    async with IppClient(printer.uri, timeout=5) as client:
        resp = await client.request(new_request(Op.PRINT_JOB, printer.uri), chunks_of(data, 7777))
        assert resp.code == Status.OK
        resp = await client.request(new_request(Op.PRINT_JOB, printer.uri), b"abc" * 1000)
    first, second = printer.received
    assert first.headers.get("transfer-encoding") == "chunked"
    assert first.data == data
    assert second.headers.get("content-length") and second.data == b"abc" * 1000


async def test_100_continue_is_skipped(nursery):
    printer = await FakePrinter(lambda m, p: Reply(response(Status.OK, m), continue_100=True)).start(nursery)
    async with IppClient(printer.uri, timeout=5) as client:
        resp = await client.request(new_request(Op.PRINT_JOB, printer.uri), b"x" * 5000)
    assert resp.code == Status.OK and printer.received[0].data == b"x" * 5000


async def test_early_answer_before_the_document_is_heard(nursery):
    # like ippeveprinter answering server-error-busy right after the IPP header
    printer = await FakePrinter(lambda m, p: Reply(response(Status.BUSY, m, message="busy"),
                                                   early=True)).start(nursery)

    async def endless():
        while True:
            await trio.sleep(0)
            yield b"z" * 65536

    async with IppClient(printer.uri, timeout=5) as client:
        with trio.fail_after(20):
            resp = await client.request(new_request(Op.PRINT_JOB, printer.uri), endless())
        assert resp.code == Status.BUSY and status_message(resp) == "busy"
        # the connection was not reusable (request unfinished): the next one opens another
        printer.handler = ok_handler
        await client.get_printer_attributes()
    assert printer.connections == 2


async def test_http_error_is_typed(nursery):
    printer = await FakePrinter(lambda m, p: Reply(http_status=404)).start(nursery)
    async with IppClient(printer.uri, timeout=5) as client:
        with pytest.raises(HttpStatusError) as ei:
            await client.get_printer_attributes()
    assert ei.value.status_code == 404


async def test_garbage_answer_is_bad_response(nursery):
    listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
    port = listeners[0].socket.getsockname()[1]

    async def garbage(stream):
        await stream.receive_some(65536)
        await stream.send_all(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello")
        await trio.sleep(1)

    nursery.start_soon(trio.serve_listeners, garbage, listeners)
    async with IppClient(f"ipp://127.0.0.1:{port}/", timeout=5) as client:
        with pytest.raises(BadResponse):
            await client.get_printer_attributes()


async def test_connection_refused_is_unreachable():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # nobody listens once closed
    async with IppClient(f"ipp://127.0.0.1:{port}/ipp/print", timeout=5) as client:
        with pytest.raises(PrinterUnreachable) as ei:
            await client.get_printer_attributes()
    assert ei.value.maybe_sent is False
    assert "cannot connect" in str(ei.value)


async def test_silent_printer_times_out_as_unreachable(nursery):
    listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
    port = listeners[0].socket.getsockname()[1]

    async def mute(stream):
        await trio.sleep_forever()

    nursery.start_soon(trio.serve_listeners, mute, listeners)
    async with IppClient(f"ipp://127.0.0.1:{port}/", timeout=0.3) as client:
        with pytest.raises(PrinterUnreachable) as ei:
            await client.get_printer_attributes()
    assert ei.value.maybe_sent is True


async def test_dropped_answer_is_unreachable_and_not_retried_for_print_job(nursery):
    printer = await FakePrinter(lambda m, p: Reply(drop=True)).start(nursery)
    async with IppClient(printer.uri, timeout=5) as client:
        with pytest.raises(PrinterUnreachable):
            await client.request(new_request(Op.PRINT_JOB, printer.uri), b"doc")
    assert len(printer.received) == 1  # a request that may have arrived is never repeated


async def test_stale_keep_alive_connection_is_replaced(nursery):
    # the printer closes its side after each answer although it said keep-alive:
    # the client notices before writing and connects again, without losing the request
    closing = []

    def handler(m, p):
        return Reply(response(Status.OK, m))

    printer = await FakePrinter(handler).start(nursery)
    async with IppClient(printer.uri, timeout=5) as client:
        await client.request(new_request(Op.CREATE_JOB, printer.uri))
        # kill the server side of the idle connection
        printer.stop()
        await trio.sleep(0.1)
        await printer.start(nursery)
        closing.append(printer.port)
        resp = await client.request(new_request(Op.CREATE_JOB, printer.uri))
    assert resp.code == Status.OK
    assert [r.msg.code for r in printer.received] == [Op.CREATE_JOB, Op.CREATE_JOB]


async def test_requests_of_concurrent_tasks_are_serialised(nursery):
    printer = await FakePrinter(lambda m, p: Reply(response(Status.OK, m), delay=0.01)).start(nursery)
    results = []
    async with IppClient(printer.uri, timeout=5) as client:
        async def one(i):
            r = await client.request(new_request(Op.GET_JOBS, printer.uri, request_id=100 + i))
            results.append(r.request_id)
        async with trio.open_nursery() as n:
            for i in range(5):
                n.start_soon(one, i)
    assert sorted(results) == [100, 101, 102, 103, 104]
    assert printer.connections == 1


async def test_cancelled_request_leaves_the_client_usable(nursery):
    printer = await FakePrinter(lambda m, p: Reply(response(Status.OK, m), delay=5)).start(nursery)
    async with IppClient(printer.uri, timeout=10) as client:
        with trio.move_on_after(0.2):
            await client.request(new_request(Op.GET_JOBS, printer.uri))
        printer.handler = ok_handler
        g = await client.get_printer_attributes()
        assert g.value("printer-name") == "fake"


async def test_failing_document_source_aborts_the_request(nursery):
    printer = await FakePrinter(lambda m, p: response(Status.OK, m)).start(nursery)

    async def broken():
        yield b"first part"
        raise OSError(5, "Input/output error")

    async with IppClient(printer.uri, timeout=5) as client:
        with pytest.raises(OSError) as ei:
            await client.request(new_request(Op.PRINT_JOB, printer.uri), broken())
        assert ei.value.errno == 5  # the caller's own error, not "printer unreachable"
        resp = await client.request(new_request(Op.GET_JOBS, printer.uri))
        assert resp.code == Status.OK
    assert printer.received[0].complete is False  # the printer never saw a whole request
