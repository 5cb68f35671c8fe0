"""The IPP server and printer object, in-process, over real sockets.

A node runs in the test's trio loop with a folder printer; requests are written by
hand so that malformed ones can be sent too.
"""
from __future__ import annotations

import functools
import gzip
import struct
import zlib
from pathlib import Path

import pytest
import trio

from spoolproxy import config
from spoolproxy.app import run_node
from spoolproxy.ipp import codec, server as server_mod
from spoolproxy.ipp.model import JobState, Op, Status, Tag
from spoolproxy.ipp.types import Attribute, Message

PDF = b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n" + bytes(range(256)) * 40


def settings_for(tmp_path: Path, ipp: dict | None = None, **queue) -> config.Settings:
    q = {"printer": f"folder:{tmp_path / 'out'}", "default": True, **queue}
    return config.from_mapping({
        "node": {"state_dir": str(tmp_path / "state")},
        "ipp": {"listen": "127.0.0.1", "port": 0, **(ipp or {})},
        "lpd": {"listen": "127.0.0.1", "port": 0},
        "web": {"listen": "127.0.0.1", "port": 0},
        "queues": {"demo": q},
    })


def request(op: int, port: int, *, queue: str = "demo", user: str = "alice", request_id: int = 7,
            version=(2, 0), job_id: int | None = None, **attrs) -> Message:
    m = Message(version=version, code=op, request_id=request_id)
    g = m.add_group(Tag.OPERATION)
    g.add("attributes-charset", Tag.CHARSET, "utf-8")
    g.add("attributes-natural-language", Tag.LANGUAGE, "en")
    g.add("printer-uri", Tag.URI, f"ipp://127.0.0.1:{port}/ipp/print/{queue}")
    g.add("requesting-user-name", Tag.NAME, user)
    if job_id is not None:
        g.add("job-id", Tag.INTEGER, job_id)
    for name, (tag, *values) in attrs.items():
        g.add(name.replace("_", "-"), tag, *values)
    return m


async def http_post(stream, body: bytes, *, headers: dict | None = None, chunked=False) -> tuple[int, dict, bytes]:
    h = {"Host": "127.0.0.1", "Content-Type": "application/ipp", **(headers or {})}
    if chunked:
        h["Transfer-Encoding"] = "chunked"
    else:
        h["Content-Length"] = str(len(body))
    head = "POST /ipp/print/demo HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in h.items()) + "\r\n"
    await stream.send_all(head.encode())
    if chunked:
        for i in range(0, len(body), 1000):
            piece = body[i:i + 1000]
            await stream.send_all(b"%x\r\n%s\r\n" % (len(piece), piece))
        await stream.send_all(b"0\r\n\r\n")
    else:
        await stream.send_all(body)
    return await read_response(stream)


async def read_response(stream) -> tuple[int, dict, bytes]:
    buf = b""
    while b"\r\n\r\n" not in buf:
        data = await stream.receive_some(65536)
        if not data:
            raise EOFError("connection closed before a response")
        buf += data
    head, _, rest = buf.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {k.lower(): v.strip() for k, v in (ln.split(":", 1) for ln in lines[1:])}
    if status == 100:
        return await read_response_after(stream, rest)
    n = int(headers.get("content-length", "0"))
    while len(rest) < n:
        data = await stream.receive_some(65536)
        if not data:
            break
        rest += data
    return status, headers, rest[:n]


async def read_response_after(stream, rest: bytes):
    class Prefixed:
        def __init__(self, pre):
            self.pre = pre

        async def receive_some(self, n):
            if self.pre:
                p, self.pre = self.pre, b""
                return p
            return await stream.receive_some(n)
    return await read_response(Prefixed(rest))


async def ipp(port: int, msg: Message, data: bytes = b"", **kw) -> Message:
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    async with stream:
        status, _, body = await http_post(stream, codec.encode(msg) + data, **kw)
    assert status == 200, body
    resp, _ = codec.decode(body)
    return resp


@pytest.fixture
async def node(tmp_path, nursery):
    s = settings_for(tmp_path, ipp={"document_uri_schemes": ["http", "https"]})
    info = await nursery.start(run_node, s)
    info.settings = s
    info.out = tmp_path / "out"
    yield info
    nursery.cancel_scope.cancel()


def job_attr(resp: Message, name: str):
    g = resp.group(Tag.JOB)
    return g.value(name) if g is not None else None


async def wait_state(port: int, job_id: int, states=(JobState.COMPLETED,)) -> Message:
    with trio.fail_after(20):
        while True:
            r = await ipp(port, request(Op.GET_JOB_ATTRIBUTES, port, job_id=job_id))
            if job_attr(r, "job-state") in states:
                return r
            await trio.sleep(0.05)


async def test_print_job_is_spooled_and_delivered_byte_identical(node):
    port = node.ipp_port
    r = await ipp(port, request(Op.PRINT_JOB, port, job_name=(Tag.NAME, "report"),
                                document_format=(Tag.MIME_TYPE, "application/pdf")), PDF, chunked=True)
    assert r.code == Status.OK
    job_id = job_attr(r, "job-id")
    assert job_id > 0 and job_attr(r, "job-uri").startswith("ipp://")
    done = await wait_state(port, job_id)
    assert job_attr(done, "job-name") == "report"
    files = list(node.out.iterdir())
    assert len(files) == 1 and files[0].read_bytes() == PDF


async def test_expect_100_continue_and_keep_alive(node):
    port = node.ipp_port
    body = codec.encode(request(Op.PRINT_JOB, port)) + PDF
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    async with stream:
        head = (f"POST /ipp/print/demo HTTP/1.1\r\nHost: x\r\nContent-Type: application/ipp\r\n"
                f"Expect: 100-continue\r\nContent-Length: {len(body)}\r\n\r\n")
        await stream.send_all(head.encode())
        first = await stream.receive_some(100)
        assert first.startswith(b"HTTP/1.1 100"), first  # server asks for the body before we send it
        await stream.send_all(body)
        status, _, data = await read_response_after(stream, first.partition(b"\r\n\r\n")[2])
        assert status == 200 and codec.decode(data)[0].code == Status.OK
        # same connection, second request
        status, _, data = await http_post(stream, codec.encode(request(Op.GET_JOBS, port, request_id=8)))
        resp = codec.decode(data)[0]
        assert status == 200 and resp.request_id == 8 and len(resp.groups_of(Tag.JOB)) >= 0


@pytest.mark.parametrize("how", ["ipp-gzip", "ipp-deflate-raw", "ipp-deflate-zlib", "http-gzip"])
async def test_compressed_documents_are_stored_decompressed(node, how):
    port = node.ipp_port
    headers = {}
    if how == "ipp-gzip":
        msg, data = request(Op.PRINT_JOB, port, compression=(Tag.KEYWORD, "gzip")), gzip.compress(PDF)
        body = codec.encode(msg) + data
    elif how.startswith("ipp-deflate"):
        c = zlib.compressobj(wbits=-15 if how.endswith("raw") else 15)
        data = c.compress(PDF) + c.flush()
        body = codec.encode(request(Op.PRINT_JOB, port, compression=(Tag.KEYWORD, "deflate"))) + data
    else:
        body = gzip.compress(codec.encode(request(Op.PRINT_JOB, port)) + PDF)
        headers["Content-Encoding"] = "gzip"
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    async with stream:
        status, _, resp_body = await http_post(stream, body, headers=headers, chunked=True)
    resp = codec.decode(resp_body)[0]
    assert resp.code == Status.OK
    await wait_state(port, job_attr(resp, "job-id"))
    assert [p.read_bytes() for p in node.out.iterdir()] == [PDF]


async def test_bad_compressed_data_is_a_compression_error(node):
    port = node.ipp_port
    r = await ipp(port, request(Op.PRINT_JOB, port, compression=(Tag.KEYWORD, "gzip")), b"not gzip at all")
    assert r.code == Status.COMPRESSION_ERROR
    assert r.operation.value("status-message")
    assert not node.out.exists() or not list(node.out.iterdir())


@pytest.mark.parametrize("mutate, status", [
    (lambda m: setattr(m, "version", (0, 0)), Status.VERSION_NOT_SUPPORTED),
    (lambda m: setattr(m, "request_id", 0), Status.BAD_REQUEST),
    (lambda m: m.operation.attributes.pop(0), Status.BAD_REQUEST),  # no charset first
    (lambda m: m.operation.attributes.pop(1), Status.BAD_REQUEST),  # no natural-language
    (lambda m: m.operation.attributes.pop(2), Status.BAD_REQUEST),  # no printer-uri
    (lambda m: setattr(m, "code", 0x3FFF), Status.OPERATION_NOT_SUPPORTED),
    (lambda m: m.operation.attributes.__setitem__(0, Attribute.of("attributes-charset", Tag.CHARSET, "koi8-r")),
     Status.CHARSET_NOT_SUPPORTED),
    (lambda m: m.operation.attributes.__setitem__(2, Attribute.of("printer-uri", Tag.URI, "ipp://h/ipp/print/nope")),
     Status.NOT_FOUND),
])
async def test_request_checks(node, mutate, status):
    port = node.ipp_port
    msg = request(Op.GET_PRINTER_ATTRIBUTES, port)
    mutate(msg)
    r = await ipp(port, msg)
    assert r.code == status
    assert r.operation.value("status-message")
    assert r.group(Tag.PRINTER) is None


async def test_groups_out_of_order_are_refused(node):
    port = node.ipp_port
    msg = request(Op.PRINT_JOB, port)
    msg.add_group(Tag.JOB).add("copies", Tag.INTEGER, 1)
    msg.groups.append(msg.groups.pop(0))  # job group before operation group
    r = await ipp(port, msg, PDF)
    assert r.code == Status.BAD_REQUEST


async def test_unsupported_format_and_fidelity(node):
    port = node.ipp_port
    r = await ipp(port, request(Op.PRINT_JOB, port, document_format=(Tag.MIME_TYPE, "application/x-nope")), PDF)
    assert r.code == Status.DOCUMENT_FORMAT_NOT_SUPPORTED
    assert r.group(Tag.UNSUPPORTED_GROUP).get("document-format").value == "application/x-nope"
    msg = request(Op.PRINT_JOB, port, ipp_attribute_fidelity=(Tag.BOOLEAN, True))
    msg.add_group(Tag.JOB).add("sides", Tag.KEYWORD, "three-sided")
    r = await ipp(port, msg, PDF)
    assert r.code == Status.ATTRIBUTES_OR_VALUES_NOT_SUPPORTED
    msg = request(Op.PRINT_JOB, port)
    msg.add_group(Tag.JOB).add("sides", Tag.KEYWORD, "three-sided")
    r = await ipp(port, msg, PDF)
    assert r.code == Status.OK_IGNORED_OR_SUBSTITUTED
    assert r.group(Tag.UNSUPPORTED_GROUP).get("sides").value == "three-sided"


async def test_create_job_send_document_and_cancel_rules(node):
    port = node.ipp_port
    r = await ipp(port, request(Op.CREATE_JOB, port, job_name=(Tag.NAME, "two docs")))
    job_id = job_attr(r, "job-id")
    assert r.code == Status.OK and job_attr(r, "job-state") == JobState.PENDING
    r = await ipp(port, request(Op.SEND_DOCUMENT, port, job_id=job_id), PDF)
    assert r.code == Status.BAD_REQUEST  # last-document is required
    r = await ipp(port, request(Op.SEND_DOCUMENT, port, job_id=job_id, user="mallory",
                                last_document=(Tag.BOOLEAN, True)), PDF)
    assert r.code == Status.NOT_AUTHORIZED
    r = await ipp(port, request(Op.SEND_DOCUMENT, port, job_id=job_id, last_document=(Tag.BOOLEAN, False)), PDF)
    assert r.code == Status.OK
    r = await ipp(port, request(Op.SEND_DOCUMENT, port, job_id=job_id, last_document=(Tag.BOOLEAN, True)), b"%!PS\n")
    assert r.code == Status.OK
    done = await wait_state(port, job_id)
    assert job_attr(done, "number-of-documents") == 2
    r = await ipp(port, request(Op.CANCEL_JOB, port, job_id=job_id))
    assert r.code == Status.NOT_POSSIBLE
    r = await ipp(port, request(Op.CANCEL_JOB, port, job_id=987654))
    assert r.code == Status.NOT_FOUND


async def test_hold_release_and_get_jobs(node):
    port = node.ipp_port
    msg = request(Op.PRINT_JOB, port)
    msg.add_group(Tag.JOB).add("job-hold-until", Tag.KEYWORD, "indefinite")
    r = await ipp(port, msg, PDF)
    job_id = job_attr(r, "job-id")
    assert job_attr(r, "job-state") == JobState.PENDING_HELD
    await trio.sleep(0.3)
    assert not node.out.exists() or not list(node.out.iterdir())  # held jobs are not delivered
    r = await ipp(port, request(Op.GET_JOBS, port, which_jobs=(Tag.KEYWORD, "not-completed"),
                                requested_attributes=(Tag.KEYWORD, "job-id", "job-state")))
    assert [(g.value("job-id"), g.value("job-state")) for g in r.groups_of(Tag.JOB)] == [(job_id, JobState.PENDING_HELD)]
    r = await ipp(port, request(Op.GET_JOBS, port, my_jobs=(Tag.BOOLEAN, True), user="bob"))
    assert r.groups_of(Tag.JOB) == []
    r = await ipp(port, request(Op.RELEASE_JOB, port, job_id=job_id))
    assert r.code == Status.OK
    await wait_state(port, job_id)
    r = await ipp(port, request(Op.RELEASE_JOB, port, job_id=job_id))
    assert r.code == Status.NOT_POSSIBLE
    r = await ipp(port, request(Op.GET_JOBS, port, which_jobs=(Tag.KEYWORD, "completed")))
    g = r.groups_of(Tag.JOB)
    assert [x.value("job-id") for x in g] == [job_id] and {a.name for a in g[0]} == {"job-id", "job-uri"}
    r = await ipp(port, request(Op.GET_JOBS, port, which_jobs=(Tag.KEYWORD, "bogus")))
    assert r.code == Status.ATTRIBUTES_OR_VALUES_NOT_SUPPORTED


async def test_printer_attributes_and_cups_operations(node):
    port = node.ipp_port
    r = await ipp(port, request(Op.GET_PRINTER_ATTRIBUTES, port,
                                requested_attributes=(Tag.KEYWORD, "printer-uri-supported", "operations-supported")))
    p = r.group(Tag.PRINTER)
    assert {a.name for a in p} == {"printer-uri-supported", "operations-supported"}
    assert p.value("printer-uri-supported") == "ipp://127.0.0.1/ipp/print/demo"  # the Host the client used
    assert Op.CREATE_JOB in p.get("operations-supported").values
    r = await ipp(port, request(Op.GET_PRINTER_ATTRIBUTES, port))
    p = r.group(Tag.PRINTER)
    for name in ("printer-state", "printer-is-accepting-jobs", "document-format-supported", "media-supported",
                 "printer-uuid", "compression-supported", "printer-up-time"):
        assert p.get(name) is not None, name
    msg = Message(code=Op.CUPS_GET_PRINTERS, request_id=3)
    g = msg.add_group(Tag.OPERATION)
    g.add("attributes-charset", Tag.CHARSET, "utf-8")
    g.add("attributes-natural-language", Tag.LANGUAGE, "en")
    r = await ipp(port, msg)
    assert [x.value("printer-name") for x in r.groups_of(Tag.PRINTER)] == ["demo"]
    msg.code = Op.CUPS_GET_DEFAULT
    r = await ipp(port, msg)
    assert r.group(Tag.PRINTER).value("printer-name") == "demo"


async def test_a_second_node_on_the_same_state_dir_is_refused(node, nursery):
    from spoolproxy.app import StateDirBusy
    with pytest.raises(StateDirBusy):
        await nursery.start(run_node, node.settings)


def test_serve_reports_a_busy_port_as_a_start_error(tmp_path):
    from spoolproxy.app import ListenError, serve
    import socket as _socket
    with _socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        s = config.from_mapping({"node": {"state_dir": str(tmp_path / "st")},
                                 "ipp": {"listen": "127.0.0.1", "port": port},
                                 "web": {"enabled": False},
                                 "queues": {"q": {"printer": f"folder:{tmp_path / 'o'}"}}})
        with pytest.raises(ListenError, match=f"127.0.0.1:{port}"):
            serve(s)


# ---- malformed input: the server answers or closes, and keeps serving others ----

async def raw_exchange(port: int, payload: bytes, *, headers=None) -> tuple[int, bytes] | None:
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    async with stream:
        try:
            status, _, body = await http_post(stream, payload, headers=headers)
        except (EOFError, trio.BrokenResourceError):
            return None
    return status, body


@pytest.mark.parametrize("payload", [
    b"\x02\x00\x00\x0b\x00\x00\x00\x01\x01\x47\x00",  # truncated inside an attribute
    b"\x02\x00\x00\x0b\x00\x00\x00\x01\x01\x47\x00\x12attributes-charset\x7f\xffutf-8\x03",  # length past end
    b"\x02\x00\x00\x0b\x00\x00\x00\x01\x00\x03",  # reserved delimiter tag 0
    b"\x02\x00",  # header cut short
])
async def test_malformed_ipp_gets_http_400(node, payload):
    result = await raw_exchange(node.ipp_port, payload)
    assert result is None or result[0] == 400


async def test_oversized_attribute_section_is_refused_without_buffering(node):
    # 10 MB of additional values for one attribute: the server stops at max_header_bytes
    msg = request(Op.GET_PRINTER_ATTRIBUTES, node.ipp_port)
    head = codec.encode(msg)[:-1]  # drop end-of-attributes
    value = b"\x44\x00\x00" + struct.pack(">H", 32000) + b"k" * 32000
    payload = head + value * (10_000_000 // len(value))
    result = await raw_exchange(node.ipp_port, payload)
    assert result is None or result[0] == 413


async def test_slow_client_does_not_stop_others(node, monkeypatch):
    monkeypatch.setattr(server_mod, "HEADER_TIMEOUT", 1.5)
    port = node.ipp_port
    body = codec.encode(request(Op.GET_PRINTER_ATTRIBUTES, port))
    closed = trio.Event()

    async def slowloris():
        stream = await trio.open_tcp_stream("127.0.0.1", port)
        async with stream:
            await stream.send_all(f"POST / HTTP/1.1\r\nHost: x\r\nContent-Type: application/ipp\r\n"
                                  f"Content-Length: {len(body)}\r\n\r\n".encode())
            try:
                for b in body:
                    await stream.send_all(bytes([b]))
                    await trio.sleep(0.5)
            except (trio.BrokenResourceError, OSError):
                pass
            # the server gave up on us: the next read sees the connection closed
            with trio.fail_after(10):
                while await stream.receive_some(1000):
                    pass
            closed.set()

    async with trio.open_nursery() as n:
        n.start_soon(slowloris)
        for i in range(3):  # meanwhile others print
            r = await ipp(port, request(Op.PRINT_JOB, port, request_id=10 + i), PDF)
            assert r.code == Status.OK
        with trio.fail_after(15):
            await closed.wait()


async def test_open_jobs_time_out_unless_their_data_is_arriving(tmp_path):
    import time as _time
    from spoolproxy.db import Database
    from spoolproxy.ipp.operations import PrinterService
    from spoolproxy.spool import JobStore

    class Upstream:
        def wake(self, queue):
            pass

    s = settings_for(tmp_path)
    with Database(tmp_path / "db", sync=False) as db:
        store = JobStore(db, tmp_path / "spool", fsync=False)
        svc = PrinterService(s, store, Upstream())
        idle = store.new_job(queue="demo", user="a")
        busy = store.new_job(queue="demo", user="a")
        for job in (idle, busy):
            job.extra["activity"] = _time.time()
            await store.save(job)
        svc._receiving.add(busy.id)
        await svc._expire_open_jobs(_time.time() + 10)  # within multiple-operation-time-out
        assert idle.state == JobState.PENDING
        await svc._expire_open_jobs(_time.time() + 3600)
        assert idle.state == JobState.ABORTED and idle.closed and idle.state_message
        assert busy.state == JobState.PENDING and not busy.closed


async def test_100_continue_is_sent_even_when_the_body_came_with_the_headers(node):
    # CUPS clients (ipptool, lp, the ipp backend) send everything, then wait up to 1 s
    # for the interim response; without it every request costs them a second.
    port = node.ipp_port
    body = codec.encode(request(Op.GET_PRINTER_ATTRIBUTES, port))
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    async with stream:
        await stream.send_all((f"POST /ipp/print/demo HTTP/1.1\r\nHost: x\r\nContent-Type: application/ipp\r\n"
                               f"Expect: 100-continue\r\nContent-Length: {len(body)}\r\n\r\n").encode() + body)
        data = b""
        while b"\r\n\r\n" not in data:
            data += await stream.receive_some(100)
        assert data.startswith(b"HTTP/1.1 100")
        status, _, resp = await read_response_after(stream, data.partition(b"\r\n\r\n")[2])
        assert status == 200 and codec.decode(resp)[0].code == Status.OK


# ---- Print-URI / Send-URI: the proxy fetches the document itself ----

async def serve_document(nursery, payload: bytes) -> int:
    """A one-file HTTP server on loopback; returns its port."""
    async def handler(stream):
        async with stream:
            data = b""
            while b"\r\n\r\n" not in data:
                chunk = await stream.receive_some(4096)
                if not chunk:
                    return
                data += chunk
            if data.startswith(b"GET /doc.pdf "):
                await stream.send_all(b"HTTP/1.1 200 OK\r\nContent-Type: application/pdf\r\n"
                                      b"Content-Length: %d\r\nConnection: close\r\n\r\n" % len(payload) + payload)
            else:
                await stream.send_all(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
    listeners = await nursery.start(functools.partial(trio.serve_tcp, handler, 0, host="127.0.0.1"))
    return listeners[0].socket.getsockname()[1]


async def test_print_uri_and_send_uri_fetch_the_document(node, nursery):
    port = node.ipp_port
    web = await serve_document(nursery, PDF)
    r = await ipp(port, request(Op.PRINT_URI, port, document_uri=(Tag.URI, f"http://127.0.0.1:{web}/doc.pdf")))
    assert r.code == Status.OK, r.operation.value("status-message")
    await wait_state(port, job_attr(r, "job-id"))
    r = await ipp(port, request(Op.CREATE_JOB, port))
    job_id = job_attr(r, "job-id")
    r = await ipp(port, request(Op.SEND_URI, port, job_id=job_id, last_document=(Tag.BOOLEAN, True),
                                document_uri=(Tag.URI, f"http://127.0.0.1:{web}/doc.pdf")))
    assert r.code == Status.OK, r.operation.value("status-message")
    await wait_state(port, job_id)
    assert [p.read_bytes() for p in sorted(node.out.iterdir())] == [PDF, PDF]
    p = (await ipp(port, request(Op.GET_PRINTER_ATTRIBUTES, port))).group(Tag.PRINTER)
    assert {Op.PRINT_URI, Op.SEND_URI} <= set(p.get("operations-supported").values)
    assert set(p.get("reference-uri-schemes-supported").values) == {"http", "https"}  # as configured


@pytest.mark.parametrize("uri, status", [
    ("bogus://bogus", Status.URI_SCHEME_NOT_SUPPORTED),
    ("file:///etc/passwd", Status.URI_SCHEME_NOT_SUPPORTED),  # never read local files for a client
    ("http://127.0.0.1:{web}/missing.pdf", Status.DOCUMENT_ACCESS_ERROR),
])
async def test_print_uri_refusals(node, nursery, uri, status):
    port = node.ipp_port
    web = await serve_document(nursery, PDF)
    r = await ipp(port, request(Op.PRINT_URI, port, document_uri=(Tag.URI, uri.format(web=web))))
    assert r.code == status and r.operation.value("status-message")
    r = await ipp(port, request(Op.GET_JOBS, port, which_jobs=(Tag.KEYWORD, "all")))
    assert r.groups_of(Tag.JOB) == []  # nothing was created


async def test_uri_operations_are_off_by_default(tmp_path, nursery):
    s = settings_for(tmp_path)
    assert s.ipp.document_uri_schemes == ()
    info = await nursery.start(run_node, s)
    port = info.ipp_port
    r = await ipp(port, request(Op.PRINT_URI, port, document_uri=(Tag.URI, "http://127.0.0.1:9/x")))
    assert r.code == Status.OPERATION_NOT_SUPPORTED
    p = (await ipp(port, request(Op.GET_PRINTER_ATTRIBUTES, port))).group(Tag.PRINTER)
    assert Op.PRINT_URI not in p.get("operations-supported").values
    assert p.get("reference-uri-schemes-supported") is None
    nursery.cancel_scope.cancel()
