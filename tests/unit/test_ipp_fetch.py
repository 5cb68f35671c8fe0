"""spoolproxy.ipp.fetch against a tiny in-test HTTP server (trio, raw sockets), a real FTP
server (pyftpdlib, in a thread) and a scripted fake FTP server (trio)."""
from __future__ import annotations

import datetime
import gzip
import ipaddress
import logging
import os
import ssl
import threading
import zlib
from functools import partial

import pytest
import trio

import peers
from spoolproxy import __version__
from spoolproxy.ipp.fetch import FetchError, Fetched, check_uri, open_uri
from spoolproxy.ipp.model import Status

DOC = bytes(range(256)) * 1000 + b"%%EOF\n"  # 256 kB, several reads


def head(status: str, *headers: str) -> bytes:
    return ("HTTP/1.1 " + status + "\r\n" + "".join(h + "\r\n" for h in headers) + "\r\n").encode()


def chunked(data: bytes, size: int = 7000) -> bytes:
    out = b""
    for i in range(0, len(data), size):
        piece = data[i:i + size]
        out += b"%x\r\n" % len(piece) + piece + b"\r\n"
    return out + b"0\r\n\r\n"


class Server:
    """Answers by request path; records each request head."""

    def __init__(self) -> None:
        self.requests: list[bytes] = []
        self.port = 0
        self.peer_closed = trio.Event()
        self.ftp_uri = ""

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def handle(self, stream: trio.abc.Stream) -> None:
        try:
            buf = b""
            while b"\r\n\r\n" not in buf:
                if buf.startswith(b"\x16") and isinstance(stream, trio.SocketStream):
                    # a TLS ClientHello to the plain server: answer in plain HTTP, as a real one would
                    await stream.send_all(head("400 Bad Request", "Content-Length: 0"))
                    return
                data = await stream.receive_some(4096)
                if not data:
                    return
                buf += data
            self.requests.append(buf)
            await self.answer(buf.split(b" ", 2)[1].decode(), stream)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass  # the client went away (or refused our certificate)
        finally:
            await trio.aclose_forcefully(stream)

    async def answer(self, path: str, s: trio.SocketStream) -> None:
        b = self.base
        if path == "/doc.pdf":
            await s.send_all(head("200 OK", "Content-Type: Application/PDF; charset=binary",
                                  f"Content-Length: {len(DOC)}") + DOC)
        elif path == "/chunked":
            await s.send_all(head("200 OK", "Content-Type: application/postscript",
                                  "Transfer-Encoding: chunked") + chunked(DOC))
        elif path == "/until-close":
            await s.send_all(head("200 OK") + DOC)
        elif path == "/gzip":
            z = gzip.compress(DOC)
            await s.send_all(head("200 OK", "Content-Type: application/pdf", "Content-Encoding: gzip",
                                  "Transfer-Encoding: chunked") + chunked(z, 999))
        elif path == "/gzip-multi":
            z = gzip.compress(DOC[:1000]) + gzip.compress(DOC[1000:])
            await s.send_all(head("200 OK", "Content-Encoding: gzip", f"Content-Length: {len(z)}") + z)
        elif path == "/gzip-truncated":
            z = gzip.compress(DOC)[:-100]
            await s.send_all(head("200 OK", "Content-Encoding: gzip", f"Content-Length: {len(z)}") + z)
        elif path == "/gzip-bad":
            z = b"this is not gzip data at all"
            await s.send_all(head("200 OK", "Content-Encoding: gzip", f"Content-Length: {len(z)}") + z)
        elif path == "/deflate":
            z = zlib.compress(DOC)
            await s.send_all(head("200 OK", "Content-Encoding: deflate", f"Content-Length: {len(z)}") + z)
        elif path == "/raw-deflate":
            c = zlib.compressobj(wbits=-15)
            z = c.compress(DOC) + c.flush()
            await s.send_all(head("200 OK", "Content-Encoding: deflate", f"Content-Length: {len(z)}") + z)
        elif path == "/br":
            await s.send_all(head("200 OK", "Content-Encoding: br", "Content-Length: 3") + b"xyz")
        elif path == "/r1":
            await s.send_all(head("301 Moved Permanently", f"Location: {b}/r2", "Content-Length: 0"))
        elif path == "/r2":
            await s.send_all(head("302 Found", "Location: /dir/r3?x=1", "Content-Length: 0"))
        elif path == "/dir/r3?x=1":
            await s.send_all(head("307 Temporary Redirect", "Location: ../doc.pdf", "Content-Length: 0"))
        elif path == "/loop":
            await s.send_all(head("308 Permanent Redirect", "Location: /loop", "Content-Length: 0"))
        elif path == "/to-ftp":
            await s.send_all(head("302 Found", "Location: ftp://127.0.0.1/doc.pdf", "Content-Length: 0"))
        elif path == "/to-ftp-server":
            await s.send_all(head("302 Found", f"Location: {self.ftp_uri}", "Content-Length: 0"))
        elif path == "/to-file":
            await s.send_all(head("302 Found", "Location: file:///etc/passwd", "Content-Length: 0"))
        elif path == "/to-https":
            await s.send_all(head("303 See Other", "Location: https://127.0.0.1/doc.pdf", "Content-Length: 0"))
        elif path == "/no-location":
            await s.send_all(head("302 Found", "Content-Length: 0"))
        elif path == "/500":
            await s.send_all(head("500 Internal Server Error", "Content-Length: 4") + b"oops")
        elif path == "/early-close":
            await s.send_all(head("200 OK", f"Content-Length: {len(DOC)}") + DOC[:5000])
        elif path == "/chunked-early-close":
            await s.send_all(head("200 OK", "Transfer-Encoding: chunked") + chunked(DOC)[:20000])
        elif path == "/silent":
            await trio.sleep_forever()
        elif path == "/silent-body":
            await s.send_all(head("200 OK", f"Content-Length: {len(DOC)}") + DOC[:100])
            await trio.sleep_forever()
        elif path == "/slow":
            await s.send_all(head("200 OK", "Transfer-Encoding: chunked"))
            for i in range(0, 500, 100):
                await trio.sleep(0.02)
                await s.send_all(chunked(DOC[i:i + 100])[:-5])  # one chunk, no terminator
            await s.send_all(b"0\r\n\r\n")
        elif path == "/endless":
            try:  # until the client goes away (EOF on read or a reset on write)
                await s.send_all(head("200 OK", "Transfer-Encoding: chunked"))
                while True:
                    await s.send_all(b"%x\r\n" % 4096 + b"x" * 4096 + b"\r\n")
                    with trio.move_on_after(0.01):
                        if not await s.receive_some(1):
                            return
            finally:
                self.peer_closed.set()
        elif path == "/garbage":
            await s.send_all(b"SSH-2.0-OpenSSH_9.0\r\n\r\n")
        else:
            await s.send_all(head("404 Not Found", "Content-Length: 9") + b"not found")


@pytest.fixture
async def server(nursery):
    srv = Server()
    listeners = await nursery.start(partial(trio.serve_tcp, srv.handle, 0, host="127.0.0.1"))
    srv.port = listeners[0].socket.getsockname()[1]
    return srv


async def fetch(uri: str, **kw) -> tuple[Fetched, bytes]:
    async with open_uri(uri, **kw) as doc:
        data = b"".join([chunk async for chunk in doc.body])
    return doc, data


async def fetch_error(uri: str, **kw) -> FetchError:
    with pytest.raises(FetchError) as info:
        await fetch(uri, **kw)
    return info.value


# ---------------------------------------------------------------- documents

async def test_content_length(server):
    doc, data = await fetch(server.base + "/doc.pdf")
    assert data == DOC
    assert doc.content_type == "application/pdf"
    req = server.requests[0].decode().lower()
    assert req.startswith("get /doc.pdf http/1.1\r\n")
    assert f"host: 127.0.0.1:{server.port}\r\n" in req
    assert f"user-agent: spoolproxy/{__version__}\r\n" in req
    assert "accept: */*\r\n" in req
    assert "connection: close\r\n" in req


async def test_chunked(server):
    doc, data = await fetch(server.base + "/chunked#fragment-not-sent")
    assert data == DOC
    assert doc.content_type == "application/postscript"
    assert server.requests[0].startswith(b"GET /chunked HTTP/1.1")


async def test_read_until_close(server):
    doc, data = await fetch(server.base + "/until-close")
    assert data == DOC
    assert doc.content_type is None


@pytest.mark.parametrize("path", ["/gzip", "/gzip-multi", "/deflate", "/raw-deflate"])
async def test_content_encoding(server, path):
    _, data = await fetch(server.base + path)
    assert data == DOC


async def test_chunks_are_bounded(server):
    async with open_uri(server.base + "/gzip") as doc:
        sizes = [len(c) async for c in doc.body]
    assert sum(sizes) == len(DOC) and max(sizes) <= 64 << 10


@pytest.mark.parametrize("path", ["/gzip-truncated", "/gzip-bad", "/br"])
async def test_bad_content_encoding(server, path):
    e = await fetch_error(server.base + path)
    assert e.status == Status.DOCUMENT_ACCESS_ERROR


async def test_slow_server_that_keeps_sending_is_fine(server):
    _, data = await fetch(server.base + "/slow", timeout=5.0)
    assert data == DOC[:500]


# ---------------------------------------------------------------- redirects

async def test_redirect_chain(server):
    doc, data = await fetch(server.base + "/r1")
    assert data == DOC and doc.content_type == "application/pdf"
    paths = [r.split(b" ")[1] for r in server.requests]
    assert paths == [b"/r1", b"/r2", b"/dir/r3?x=1", b"/doc.pdf"]


async def test_redirect_limit(server):
    e = await fetch_error(server.base + "/r1", max_redirects=2)
    assert e.status == Status.DOCUMENT_ACCESS_ERROR
    assert "redirect" in str(e)


async def test_redirect_loop(server):
    e = await fetch_error(server.base + "/loop")
    assert e.status == Status.DOCUMENT_ACCESS_ERROR
    assert "too many redirects" in str(e)
    assert len(server.requests) == 4  # the first request and 3 redirects


@pytest.mark.parametrize("path", ["/to-ftp", "/to-file"])
async def test_redirect_to_unsupported_scheme(server, path):
    e = await fetch_error(server.base + path)
    assert e.status == Status.URI_SCHEME_NOT_SUPPORTED


async def test_redirect_to_scheme_not_allowed(server):
    e = await fetch_error(server.base + "/to-https", schemes=("http",))
    assert e.status == Status.URI_SCHEME_NOT_SUPPORTED
    assert len(server.requests) == 1


async def test_redirect_without_location(server):
    e = await fetch_error(server.base + "/no-location")
    assert e.status == Status.DOCUMENT_ACCESS_ERROR


# ---------------------------------------------------------------- failures

async def test_404(server):
    uri = server.base + "/missing.pdf"
    e = await fetch_error(uri)
    assert e.status == Status.DOCUMENT_ACCESS_ERROR
    assert str(e) == f"{uri}: HTTP 404 Not Found."


async def test_500(server):
    e = await fetch_error(server.base + "/500")
    assert e.status == Status.DOCUMENT_ACCESS_ERROR
    assert "HTTP 500" in str(e)


@pytest.mark.parametrize("path", ["/early-close", "/chunked-early-close"])
async def test_early_close_raised_from_body(server, path):
    got = bytearray()
    with pytest.raises(FetchError) as info:
        async with open_uri(server.base + path) as doc:  # the head is fine: no error on entry
            async for chunk in doc.body:
                got += chunk
    assert info.value.status == Status.DOCUMENT_ACCESS_ERROR
    assert 0 < len(got) < len(DOC) and DOC.startswith(bytes(got))


async def test_silent_server_times_out(server):
    e = await fetch_error(server.base + "/silent", timeout=0.2)
    assert e.status == Status.DOCUMENT_ACCESS_ERROR


async def test_silent_body_times_out(server):
    with pytest.raises(FetchError) as info:
        async with open_uri(server.base + "/silent-body", timeout=0.2) as doc:
            async for _ in doc.body:
                pass
    assert info.value.status == Status.DOCUMENT_ACCESS_ERROR


async def test_not_http(server):
    e = await fetch_error(server.base + "/garbage")
    assert e.status == Status.DOCUMENT_ACCESS_ERROR


async def test_connection_refused():
    with trio.socket.socket() as sock:
        await sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    e = await fetch_error(f"http://127.0.0.1:{port}/doc.pdf")
    assert e.status == Status.DOCUMENT_ACCESS_ERROR
    assert "cannot connect" in str(e)


async def test_tls_failure(server):
    # the test server speaks plain HTTP; a TLS handshake with it fails
    e = await fetch_error(f"https://127.0.0.1:{server.port}/doc.pdf", timeout=2.0)
    assert e.status == Status.DOCUMENT_ACCESS_ERROR


async def test_connection_closed_when_block_exits_early(server):
    async with open_uri(server.base + "/endless") as doc:
        async for chunk in doc.body:
            assert chunk
            break
    with trio.fail_after(5):
        await server.peer_closed.wait()


async def test_connection_closed_on_caller_exception(server):
    with pytest.raises(KeyError):
        async with open_uri(server.base + "/endless") as doc:
            await doc.body.__anext__()
            raise KeyError("caller failed")
    with trio.fail_after(5):
        await server.peer_closed.wait()


async def test_body_after_block_exit(server):
    async with open_uri(server.base + "/doc.pdf") as doc:
        pass
    with pytest.raises(FetchError):
        await doc.body.__anext__()


# ---------------------------------------------------------------- schemes and check_uri

@pytest.mark.parametrize("schemes", [("file",), ("http", "file"), ("ftp", "file"), ("FILE",), ("ftps",),
                                     ("gopher",)])
async def test_file_and_other_schemes_refused_at_call_time(schemes):
    with pytest.raises(ValueError):
        async with open_uri("http://127.0.0.1/x", schemes=schemes):
            pass  # pragma: no cover
    with pytest.raises(ValueError):
        check_uri("http://127.0.0.1/x", schemes)


async def test_scheme_not_allowed_at_call_time():
    e = await fetch_error("https://127.0.0.1/x", schemes=("http",))
    assert e.status == Status.URI_SCHEME_NOT_SUPPORTED


@pytest.mark.parametrize("uri", [
    "http://example.com/doc.pdf", "https://example.com", "HTTP://Example.COM:8080/a?b=c#d",
    "http://[::1]:631/x", "https://10.0.0.1/%7Euser/doc.ps",
])
def test_check_uri_ok(uri):
    check_uri(uri, ("http", "https"))


@pytest.mark.parametrize("uri,status", [
    ("file:///etc/passwd", Status.URI_SCHEME_NOT_SUPPORTED),
    ("ftp://example.com/doc.pdf", Status.URI_SCHEME_NOT_SUPPORTED),
    ("ipp://example.com/printers/x", Status.URI_SCHEME_NOT_SUPPORTED),
    ("https://example.com/doc.pdf", Status.URI_SCHEME_NOT_SUPPORTED),  # only http allowed below
    ("http:///doc.pdf", Status.BAD_REQUEST),
    ("http:doc.pdf", Status.BAD_REQUEST),
    ("/doc.pdf", Status.BAD_REQUEST),
    ("", Status.BAD_REQUEST),
    ("http://example.com:99999/x", Status.BAD_REQUEST),
    ("http://example.com:abc/x", Status.BAD_REQUEST),
    ("http://example.com:0/x", Status.BAD_REQUEST),
    ("http://example.com/a b", Status.BAD_REQUEST),
    ("http://example.com/\r\nX-Injected: 1", Status.BAD_REQUEST),
    ("http://exämple.com/", Status.BAD_REQUEST),
    ("http://user:pw@example.com/doc.pdf", Status.ATTRIBUTES_OR_VALUES_NOT_SUPPORTED),
])
def test_check_uri_errors(uri, status):
    with pytest.raises(FetchError) as info:
        check_uri(uri, ("http",))
    assert info.value.status == status
    assert str(info.value)


@pytest.mark.parametrize("uri", [
    "ftp://example.com/doc.pdf", "FTP://Example.COM:2121/pub/doc.ps#frag", "ftp://[::1]/x",
    "ftp://anonymous@example.com/doc.pdf", "ftp://alice:s%3Acret%40x@example.com/%2Fetc/doc.pdf",
    "ftp://example.com/my%20doc%C3%A9.pdf", "ftp://user:@example.com/a",
])
def test_check_uri_ftp_ok(uri):
    check_uri(uri, ("http", "https", "ftp"))


@pytest.mark.parametrize("uri,status", [
    ("ftp:///doc.pdf", Status.BAD_REQUEST),
    ("ftp://example.com", Status.BAD_REQUEST),  # names no file
    ("ftp://example.com/", Status.BAD_REQUEST),
    ("ftp://example.com/dir/", Status.BAD_REQUEST),
    ("ftp://example.com/a?b", Status.BAD_REQUEST),
    ("ftp://example.com/a%0D%0ADELE%20x", Status.BAD_REQUEST),  # command injection
    ("ftp://us%0Aer:pw@example.com/a", Status.BAD_REQUEST),
    ("ftp://example.com/%FF", Status.BAD_REQUEST),
    ("ftp://:pw@example.com/a", Status.BAD_REQUEST),
    ("ftp://example.com:0/a", Status.BAD_REQUEST),
    ("http://user:pw@example.com/doc.pdf", Status.ATTRIBUTES_OR_VALUES_NOT_SUPPORTED),  # ftp only
    ("https://user@example.com/doc.pdf", Status.ATTRIBUTES_OR_VALUES_NOT_SUPPORTED),
    ("file:///etc/passwd", Status.URI_SCHEME_NOT_SUPPORTED),
])
def test_check_uri_ftp_errors(uri, status):
    with pytest.raises(FetchError) as info:
        check_uri(uri, ("http", "https", "ftp"))
    assert info.value.status == status
    assert str(info.value)


def test_check_uri_password_not_in_message():
    with pytest.raises(FetchError) as info:
        check_uri("ftp://alice:s3cret@example.com/", ("ftp",))
    assert "s3cret" not in str(info.value) and "example.com" in str(info.value)
    with pytest.raises(FetchError) as info:
        check_uri("http://alice:s3cret@example.com/", ("http", "ftp"))
    assert "s3cret" not in str(info.value)


def test_check_uri_no_schemes_allowed():
    with pytest.raises(FetchError) as info:
        check_uri("http://example.com/", ())
    assert info.value.status == Status.URI_SCHEME_NOT_SUPPORTED


# ---------------------------------------------------------------- TLS

def self_signed(tmp_path) -> ssl.SSLContext:
    x509 = pytest.importorskip("cryptography.x509")
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "spoolproxy test")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1)).not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                           critical=False)
            .sign(key, hashes.SHA256()))
    pem = tmp_path / "cert.pem"
    pem.write_bytes(cert.public_bytes(serialization.Encoding.PEM) + key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(pem)
    return ctx


@pytest.fixture
async def tls_server(nursery, tmp_path):
    srv = Server()
    ctx = self_signed(tmp_path)
    listeners = await nursery.start(partial(trio.serve_ssl_over_tcp, srv.handle, 0, ctx, host="127.0.0.1",
                                            https_compatible=True))
    srv.port = listeners[0].transport_listener.socket.getsockname()[1]
    return srv


async def test_https_without_verification(tls_server):
    doc, data = await fetch(f"https://127.0.0.1:{tls_server.port}/chunked", verify_tls=False)
    assert data == DOC and doc.content_type == "application/postscript"


async def test_https_untrusted_certificate(tls_server):
    e = await fetch_error(f"https://127.0.0.1:{tls_server.port}/doc.pdf")
    assert e.status == Status.DOCUMENT_ACCESS_ERROR
    assert "certificate" in str(e)
    assert tls_server.requests == []


# ---------------------------------------------------------------- ftp (pyftpdlib)

FTP_DOC = os.urandom(3 << 20)  # 3 MB: many chunks, more than the channel and socket buffers hold
FTP_SCHEMES = ("http", "https", "ftp")


def _pyftpdlib():
    try:
        from pyftpdlib.authorizers import DummyAuthorizer
        from pyftpdlib.handlers import FTPHandler
        from pyftpdlib.servers import FTPServer
    except ImportError:
        peers.unavailable("pyftpdlib is not installed (pip install pyftpdlib)")
    return DummyAuthorizer, FTPHandler, FTPServer


class FtpServer:
    """pyftpdlib on 127.0.0.1 in a daemon thread; counts control connections."""

    def __init__(self, root) -> None:
        DummyAuthorizer, FTPHandler, FTPServer = _pyftpdlib()
        logging.getLogger("pyftpdlib").setLevel(logging.WARNING)
        (root / "pub").mkdir()
        (root / "pub" / "doc.bin").write_bytes(FTP_DOC)
        (root / "my doc é.ps").write_bytes(b"%!PS\nshowpage\n")
        home = root / "alice"
        home.mkdir()
        (home / "private.pdf").write_bytes(b"%PDF-1.4 alice\n")
        auth = DummyAuthorizer()
        auth.add_anonymous(str(root))  # read-only
        auth.add_user("alice", "s3cret", str(home), perm="elr")
        srv = self
        self.lock = threading.Lock()
        self.connects = self.disconnects = 0

        class Handler(FTPHandler):
            authorizer = auth
            auth_failed_timeout = 0  # no 3 s penalty on a bad password

            def on_connect(self):
                with srv.lock:
                    srv.connects += 1

            def on_disconnect(self):
                with srv.lock:
                    srv.disconnects += 1

        self.server = FTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.socket.getsockname()[1]
        self.base = f"ftp://127.0.0.1:{self.port}"
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._serve, name="test ftp server", daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        try:
            while not self.stopping.is_set():
                self.server.serve_forever(timeout=0.05, blocking=False, handle_exit=False)
        finally:
            self.server.close_all()

    def stop(self) -> None:
        self.stopping.set()
        self.thread.join(10)

    def idle(self) -> bool:
        with self.lock:
            return self.connects > 0 and self.connects == self.disconnects


@pytest.fixture
def ftp_server(tmp_path):
    srv = FtpServer(tmp_path)
    yield srv
    srv.stop()


def ftp_threads() -> list[str]:
    return [t.name for t in threading.enumerate() if t.name.startswith("spoolproxy ftp")]


async def wait_closed(srv: FtpServer) -> None:
    """The FTP session ended on the server and no fetch thread is left (bounded wait, no timing)."""
    with trio.fail_after(10):
        while not srv.idle() or ftp_threads():
            await trio.sleep(0.01)


async def test_ftp_anonymous_large_file(ftp_server):
    got = bytearray()
    sizes = []
    async with open_uri(ftp_server.base + "/pub/doc.bin", schemes=FTP_SCHEMES) as doc:
        assert doc.content_type is None
        async for chunk in doc.body:
            got += chunk
            sizes.append(len(chunk))
    assert bytes(got) == FTP_DOC
    assert max(sizes) <= 64 << 10
    await wait_closed(ftp_server)


async def test_ftp_decoded_path(ftp_server):
    _, data = await fetch(ftp_server.base + "/my%20doc%20%C3%A9.ps", schemes=("ftp",))
    assert data == b"%!PS\nshowpage\n"


async def test_ftp_user_password(ftp_server):
    # the path is relative to the login directory (alice's home), as in RFC 1738
    doc, data = await fetch(f"ftp://alice:s3cret@127.0.0.1:{ftp_server.port}/private.pdf", schemes=("ftp",))
    assert data == b"%PDF-1.4 alice\n" and doc.content_type is None


async def test_ftp_missing_file(ftp_server):
    uri = ftp_server.base + "/pub/missing.pdf"
    e = await fetch_error(uri, schemes=("ftp",))
    assert e.status == Status.DOCUMENT_ACCESS_ERROR
    assert str(e).startswith(f"{uri}: ") and "550" in str(e)
    await wait_closed(ftp_server)


async def test_ftp_bad_password(ftp_server):
    e = await fetch_error(f"ftp://alice:wrong@127.0.0.1:{ftp_server.port}/private.pdf", schemes=("ftp",))
    assert e.status == Status.DOCUMENT_ACCESS_ERROR
    assert "login failed" in str(e) and "530" in str(e)
    assert "wrong" not in str(e) and str(e).startswith(f"ftp://127.0.0.1:{ftp_server.port}/private.pdf: ")
    await wait_closed(ftp_server)


async def test_ftp_directory_is_not_a_document(ftp_server):
    e = await fetch_error(ftp_server.base + "/pub", schemes=("ftp",))
    assert e.status == Status.DOCUMENT_ACCESS_ERROR


async def test_ftp_caller_leaves_early(ftp_server):
    async with open_uri(ftp_server.base + "/pub/doc.bin", schemes=("ftp",)) as doc:
        async for chunk in doc.body:
            assert chunk
            break
    await wait_closed(ftp_server)  # the thread was blocked handing over a chunk: it ended


async def test_ftp_caller_exception(ftp_server):
    with pytest.raises(KeyError):
        async with open_uri(ftp_server.base + "/pub/doc.bin", schemes=("ftp",)) as doc:
            await doc.body.__anext__()
            raise KeyError("caller failed")
    await wait_closed(ftp_server)


async def test_ftp_caller_cancelled(ftp_server):
    with trio.CancelScope() as scope:
        async with open_uri(ftp_server.base + "/pub/doc.bin", schemes=("ftp",)) as doc:
            async for _ in doc.body:
                scope.cancel()
    assert scope.cancelled_caught
    await wait_closed(ftp_server)


async def test_ftp_body_after_block_exit(ftp_server):
    async with open_uri(ftp_server.base + "/pub/doc.bin", schemes=("ftp",)) as doc:
        pass
    with pytest.raises(FetchError):
        await doc.body.__anext__()
    await wait_closed(ftp_server)


async def test_ftp_concurrent(ftp_server):
    results = {}

    async def one(i):
        results[i] = (await fetch(ftp_server.base + "/pub/doc.bin", schemes=("ftp",)))[1]

    async with trio.open_nursery() as nursery:
        for i in range(4):
            nursery.start_soon(one, i)
    assert all(r == FTP_DOC for r in results.values()) and len(results) == 4


async def test_http_redirect_to_ftp(server, ftp_server):
    server.ftp_uri = ftp_server.base + "/pub/doc.bin"
    _, data = await fetch(server.base + "/to-ftp-server", schemes=FTP_SCHEMES)
    assert data == FTP_DOC
    e = await fetch_error(server.base + "/to-ftp-server")  # ftp not allowed
    assert e.status == Status.URI_SCHEME_NOT_SUPPORTED


async def test_ftp_not_allowed(ftp_server):
    e = await fetch_error(ftp_server.base + "/pub/doc.bin", schemes=("http", "https"))
    assert e.status == Status.URI_SCHEME_NOT_SUPPORTED


async def test_ftp_connection_refused():
    port = peers.free_port()
    e = await fetch_error(f"ftp://127.0.0.1:{port}/doc.pdf", schemes=("ftp",))
    assert e.status == Status.DOCUMENT_ACCESS_ERROR
    assert str(e).startswith(f"ftp://127.0.0.1:{port}/doc.pdf: cannot connect")


# ---------------------------------------------------------------- ftp (scripted fake server)

class FakeFtp:
    """Just enough FTP for ftplib's RETR; ``mode`` picks how the transfer goes wrong."""

    def __init__(self, mode: str) -> None:
        self.mode = mode
        self.port = 0
        self.data = DOC

    async def handle(self, stream: trio.SocketStream) -> None:
        async with stream:
            if self.mode == "silent":
                await trio.sleep_forever()
            buf = b""

            async def reply(text: str) -> None:
                await stream.send_all(text.encode() + b"\r\n")

            await reply("220 fake")
            data_listener = None
            try:
                while True:
                    while b"\r\n" not in buf:
                        more = await stream.receive_some(1024)
                        if not more:
                            return
                        buf += more
                    line, buf = buf.split(b"\r\n", 1)
                    cmd = line.split(b" ", 1)[0].upper()
                    if cmd == b"USER":
                        await reply("331 password please")
                    elif cmd == b"PASS":
                        await reply("230 logged in")
                    elif cmd == b"TYPE":
                        await reply("200 binary")
                    elif cmd == b"PASV":
                        data_listener = (await trio.open_tcp_listeners(0, host="127.0.0.1"))[0]
                        p = data_listener.socket.getsockname()[1]
                        await reply(f"227 Entering Passive Mode (127,0,0,1,{p >> 8},{p & 255}).")
                    elif cmd == b"RETR":
                        size = len(self.data)
                        await reply(f"150 Opening BINARY mode data connection ({size} bytes).")
                        data = await data_listener.accept()
                        if self.mode == "silent-data":
                            await data.send_all(self.data[:1000])
                            await trio.sleep_forever()
                        await data.send_all(self.data[:size // 2])
                        await data.aclose()
                        if self.mode == "short":
                            await reply("226 Transfer complete.")  # but fewer bytes than announced
                        else:
                            await reply("426 Connection closed; transfer aborted.")
                    elif cmd == b"QUIT":
                        await reply("221 bye")
                        return
                    else:
                        await reply("502 not implemented")
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                pass
            finally:
                if data_listener is not None:
                    await data_listener.aclose()


@pytest.fixture
async def fake_ftp(nursery, request):
    srv = FakeFtp(request.param)
    listeners = await nursery.start(partial(trio.serve_tcp, srv.handle, 0, host="127.0.0.1"))
    srv.port = listeners[0].socket.getsockname()[1]
    return srv


@pytest.mark.parametrize("fake_ftp", ["short", "aborted"], indirect=True)
async def test_ftp_truncated(fake_ftp):
    got = bytearray()
    with pytest.raises(FetchError) as info:
        async with open_uri(f"ftp://127.0.0.1:{fake_ftp.port}/doc.pdf", schemes=("ftp",)) as doc:
            async for chunk in doc.body:  # no error on entry: the transfer started
                got += chunk
    assert info.value.status == Status.DOCUMENT_ACCESS_ERROR
    assert "truncated" in str(info.value) or "426" in str(info.value)
    assert bytes(got) == DOC[:len(DOC) // 2]


@pytest.mark.parametrize("fake_ftp", ["silent"], indirect=True)
async def test_ftp_silent_server_times_out(fake_ftp):
    e = await fetch_error(f"ftp://127.0.0.1:{fake_ftp.port}/doc.pdf", schemes=("ftp",), timeout=0.3)
    assert e.status == Status.DOCUMENT_ACCESS_ERROR


@pytest.mark.parametrize("fake_ftp", ["silent-data"], indirect=True)
async def test_ftp_silent_data_times_out(fake_ftp):
    with pytest.raises(FetchError) as info:
        async with open_uri(f"ftp://127.0.0.1:{fake_ftp.port}/doc.pdf", schemes=("ftp",), timeout=0.3) as doc:
            async for _ in doc.body:
                pass
    assert info.value.status == Status.DOCUMENT_ACCESS_ERROR
    assert "incomplete" in str(info.value)
