"""Streaming HTTP(S) / FTP document fetcher for Print-URI / Send-URI (RFC 8011 §4.2.2, §4.3.2).

    check_uri(uri, ("http", "https", "ftp"))     # pure; at request validation time
    async with open_uri(uri, schemes=("http", "https", "ftp")) as doc:
        doc.content_type                          # "application/pdf" or None
        async for chunk in doc.body:              # decoded bytes, never buffered whole
            ...

trio + h11, one connection per hop, ``Connection: close``. Redirects 301/302/303/307/308
are followed up to ``max_redirects``; every hop's URI is checked against ``schemes``
(a redirect to a scheme not allowed is ``URI_SCHEME_NOT_SUPPORTED``). ``Content-Encoding``
gzip / x-gzip / deflate is decoded; any other coding is a document access error.

Timeouts: connecting (DNS, TCP, TLS handshake) has ``timeout`` seconds; sending the
request and receiving the whole response head has another ``timeout`` seconds; then
every read of the body has ``timeout`` seconds (a slow server that keeps sending is
fine, a silent one fails).

Every failure is a :class:`FetchError` carrying the IPP status to answer with; those
of the body (truncated, timed out, bad encoding) are raised by the body iterator.
The connection is closed when the ``async with`` block exits, however it exits.

``ftp`` (RFC 959 / RFC 1738 URLs) uses the stdlib :mod:`ftplib` in a worker thread: passive
mode, ``TYPE I``, ``RETR``; anonymous login unless the URI carries ``user[:password]@``
(allowed for ftp only; http(s) URIs with credentials are refused). As in RFC 1738 the path
is relative to the login directory (``ftp://h/a/b`` retrieves ``a/b``; ``ftp://h/%2Fa/b``
the absolute ``/a/b``); it is percent-decoded as UTF-8. The thread hands the data over
through a small bounded channel, so a slow reader stalls the transfer (back-pressure)
instead of buffering the file. Every control/data socket operation has ``timeout``
seconds. Leaving the ``async with`` block (normally, by an exception or by cancellation)
shuts the FTP sockets down, which ends the thread at once; ``content_type`` is always
None (FTP has no media type; the caller sniffs). A transfer is incomplete when the
server's final reply is not 2xx or fewer bytes came than its ``150`` reply announced.
Error texts never show the URI's password. ftp is reached through ``redirects`` too
when allowed. At most :data:`FTP_MAX_THREADS` transfers run at once per trio run (more
wait for a thread); they do not use trio's default thread limiter.

There is no ``file:`` support, on purpose: reading local files on behalf of network
clients would be a hole. Only ``http``, ``https`` and ``ftp`` can be allowed; anything
else in ``schemes`` is a programming error (``ValueError``).

Not done here: a limit on the document's size (the spool enforces it) and any
restriction on which hosts may be fetched (see the caller: loopback and internal
addresses are reachable).
"""
from __future__ import annotations

import ftplib
import inspect
import socket
import ssl
import threading
import zlib
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import AsyncIterator, Callable, Collection
from urllib.parse import quote, unquote_to_bytes, urljoin, urlsplit

import h11
import trio

from .. import __version__
from .model import Status

__all__ = ["FetchError", "Fetched", "open_uri", "check_uri", "SUPPORTED_SCHEMES"]

SUPPORTED_SCHEMES = frozenset({"http", "https", "ftp"})
DEFAULT_PORTS = {"http": 80, "https": 443, "ftp": 21}
REDIRECTS = frozenset({301, 302, 303, 307, 308})
USER_AGENT = f"spoolproxy/{__version__}"
CHUNK = 64 << 10
MAX_HEAD_BYTES = 64 << 10  # status line + headers of a response
FTP_MAX_THREADS = 64  # concurrent ftp transfers per trio run (each holds a worker thread)
FTP_QUEUE = 4  # chunks buffered between the ftp thread and the reader


class FetchError(Exception):
    """A document-uri that cannot be fetched; ``status`` is the IPP status to answer with."""

    def __init__(self, status: Status, message: str) -> None:
        super().__init__(message)
        self.status = status


@dataclass
class Fetched:
    content_type: str | None  # MIME type without parameters, lower-case; None if absent
    body: AsyncIterator[bytes]  # decoded document bytes, streamed


@dataclass(frozen=True)
class _Target:
    uri: str  # without fragment
    scheme: str
    host: str  # for connecting / SNI: no brackets
    port: int
    host_header: str
    path: str  # http: request target; ftp: decoded file path for RETR (relative to the login dir)
    user: str | None = None  # ftp only (decoded); None: anonymous
    password: str | None = None  # ftp only (decoded)


def _check_schemes(schemes: Collection[str]) -> frozenset[str]:
    if isinstance(schemes, str):
        raise TypeError("schemes must be a collection of scheme names, not a str")
    norm = frozenset(s.lower() for s in schemes)
    bad = norm - SUPPORTED_SCHEMES
    if bad:
        raise ValueError(f"unsupported document-uri scheme(s) {sorted(bad)}: only http, https and ftp can "
                         "be fetched (file: is never supported)")
    return norm


def _parse(uri: str, allowed: frozenset[str], *, bad_status: Status = Status.BAD_REQUEST) -> _Target:
    if not isinstance(uri, str) or not uri:
        raise FetchError(bad_status, "document-uri is empty.")
    if len(uri) > 8192:
        raise FetchError(bad_status, "document-uri is too long.")
    shown = _redact(uri)  # for messages: no password
    if any(not (0x21 <= ord(c) <= 0x7E) for c in uri):
        raise FetchError(bad_status, f"{shown!r}: document-uri contains spaces, control or non-ASCII characters.")
    try:
        parts = urlsplit(uri)
        port = parts.port
    except ValueError as e:
        raise FetchError(bad_status, f"{shown}: malformed URI ({e}).") from None
    scheme = parts.scheme.lower()
    if not scheme:
        raise FetchError(bad_status, f"{shown}: not an absolute URI (no scheme).")
    if scheme not in allowed:
        raise FetchError(Status.URI_SCHEME_NOT_SUPPORTED, f"{shown}: URI scheme \"{scheme}\" is not supported.")
    host = parts.hostname
    if not host:
        raise FetchError(bad_status, f"{shown}: URI has no host.")
    has_userinfo = "@" in parts.netloc
    if has_userinfo and scheme != "ftp":
        raise FetchError(Status.ATTRIBUTES_OR_VALUES_NOT_SUPPORTED,
                         f"{shown}: user names or passwords in the document-uri are not supported.")
    if port == 0:
        raise FetchError(bad_status, f"{shown}: port 0 is not valid.")
    default = DEFAULT_PORTS[scheme]
    port = port or default
    hh = f"[{host}]" if ":" in host else host
    if port != default:
        hh = f"{hh}:{port}"
    if scheme == "ftp":
        return _parse_ftp(uri, parts, host, port, hh, bad_status)
    path = parts.path or "/"
    if not path.startswith("/"):
        raise FetchError(bad_status, f"{shown}: malformed URI path.")
    if parts.query:
        path = f"{path}?{parts.query}"
    clean = uri.split("#", 1)[0]
    return _Target(clean, scheme, host, port, hh, path)


def _decode(uri: str, text: str, what: str, bad_status: Status) -> str:
    """Percent-decode ``text`` as UTF-8; no control characters (they would end an FTP command)."""
    try:
        out = unquote_to_bytes(text).decode("utf-8")
    except UnicodeDecodeError:
        raise FetchError(bad_status, f"{_redact(uri)}: the {what} is not UTF-8 once percent-decoded.") from None
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in out):
        raise FetchError(bad_status, f"{_redact(uri)}: the {what} contains control characters.")
    return out


def _redact(uri: str) -> str:
    """``uri`` without its userinfo (the password must not end up in a status message)."""
    scheme, sep, rest = uri.partition("://")
    if not sep:
        return uri
    end = len(rest)
    for c in "/?#":
        i = rest.find(c)
        if i != -1:
            end = min(end, i)
    at = rest.rfind("@", 0, end)
    return uri if at == -1 else f"{scheme}://{rest[at + 1:]}"


def _parse_ftp(uri: str, parts, host: str, port: int, hh: str, bad_status: Status) -> _Target:
    shown = _redact(uri.split("#", 1)[0])
    user = password = None
    userinfo = parts.netloc.rpartition("@")[0] if "@" in parts.netloc else None
    if userinfo is not None:
        raw_user, colon, raw_pw = userinfo.partition(":")
        user = _decode(uri, raw_user, "user name", bad_status)
        password = _decode(uri, raw_pw, "password", bad_status) if colon else None
        if not user:
            raise FetchError(bad_status, f"{shown}: empty user name.")
    if parts.query or uri.split("#", 1)[0].endswith("?"):
        raise FetchError(bad_status, f"{shown}: an ftp URI has no query (encode \"?\" as %3F).")
    raw = parts.path
    if not raw.startswith("/") or raw == "/" or raw.endswith("/"):
        raise FetchError(bad_status, f"{shown}: the ftp URI does not name a file.")
    path = _decode(uri, raw[1:], "path", bad_status)  # RFC 1738: relative to the login directory
    return _Target(f"ftp://{hh}{raw}", "ftp", host, port, hh, path, user, password)


def check_uri(uri: str, schemes: Collection[str]) -> None:
    """Raise :class:`FetchError` if ``uri`` cannot be fetched with ``schemes`` allowed (no I/O).

    Scheme not allowed → ``URI_SCHEME_NOT_SUPPORTED``; malformed (no host, bad port,
    spaces / non-ASCII, relative; for ftp: no file name, a query, control characters or
    non-UTF-8 once decoded) → ``BAD_REQUEST``; credentials in an http(s) URI →
    ``ATTRIBUTES_OR_VALUES_NOT_SUPPORTED`` (ftp URIs may carry ``user:password@``).
    ``ValueError`` if ``schemes`` holds a scheme this module cannot fetch (anything but
    http/https/ftp, e.g. file).
    """
    _parse(uri, _check_schemes(schemes))


def _access(uri: str, what: str) -> FetchError:
    return FetchError(Status.DOCUMENT_ACCESS_ERROR, f"{uri}: {what}")


def _describe(e: BaseException) -> str:
    cause = e.__cause__ or e.__context__ if isinstance(e, trio.BrokenResourceError) else None
    inner = cause if cause is not None else e
    text = str(inner) or type(inner).__name__
    if isinstance(inner, ssl.SSLCertVerificationError):
        return f"TLS certificate verification failed ({inner.verify_message or text})"
    if isinstance(inner, ssl.SSLError):
        return f"TLS failure ({text})"
    if isinstance(inner, OSError) and inner.__cause__ is not None:
        # trio.open_tcp_stream: "all attempts to connect to h:p failed" from a group of the real errors
        errors = getattr(inner.__cause__, "exceptions", None) or [inner.__cause__]
        first = errors[0]
        return getattr(first, "strerror", None) or str(first) or text
    return text


# ---------------------------------------------------------------- content decoding

def _decoder(coding: str) -> Callable[[], "_Inflate"]:
    if coding in ("gzip", "x-gzip"):
        return lambda: _Inflate(31, multi=True)
    if coding == "deflate":
        return lambda: _Inflate(None)
    raise ValueError(coding)


class _Inflate:
    """Incremental gzip / zlib / raw-deflate decoder; at most CHUNK bytes out per drain()."""

    def __init__(self, wbits: int | None, multi: bool = False) -> None:
        self.wbits = wbits  # None: "deflate", zlib-wrapped or raw (sniffed from the first 2 bytes)
        self.multi = multi  # gzip: concatenated members are one document
        self.d = zlib.decompressobj(wbits) if wbits is not None else None
        self.pending = b""  # input not yet handed to self.d
        self.ended = False  # the (last) stream ended; anything after it is ignored

    def feed(self, data: bytes) -> None:
        if self.ended or not data:
            return
        self.pending += data
        if self.d is None and len(self.pending) >= 2:
            # RFC 9110 deflate is zlib-wrapped; some servers send raw deflate
            b0, b1 = self.pending[0], self.pending[1]
            self.d = zlib.decompressobj(15 if b0 & 0x0F == 8 and ((b0 << 8) | b1) % 31 == 0 else -15)

    def drain(self) -> bytes:
        """Decoded bytes from what was fed (at most CHUNK); b"" when more input is needed."""
        while not self.ended and self.d is not None:
            d = self.d
            if d.eof:
                rest = d.unused_data + self.pending
                self.pending = b""
                rest = rest.lstrip(b"\0") if self.multi else b""  # zero padding after gzip is common
                if rest:
                    self.d = zlib.decompressobj(self.wbits)
                    self.pending = rest
                    continue
                self.ended = True
                break
            data = d.unconsumed_tail + self.pending
            self.pending = b""
            if not data:
                break
            out = d.decompress(data, CHUNK)
            if out:
                return out
            if not d.unconsumed_tail and not d.eof:
                break  # needs more input
        return b""

    def finished(self) -> bool:
        return self.ended or (self.d is None and not self.pending)


# ---------------------------------------------------------------- the connection

class _Conn:
    def __init__(self, target: _Target, timeout: float) -> None:
        self.t = target
        self.timeout = timeout
        self.stream: trio.abc.Stream | None = None
        self.h11 = h11.Connection(h11.CLIENT, max_incomplete_event_size=MAX_HEAD_BYTES)

    async def connect(self, verify_tls: bool) -> None:
        t = self.t
        try:
            with trio.fail_after(self.timeout):
                tcp = await trio.open_tcp_stream(t.host, t.port)
                self.stream = tcp
                if t.scheme == "https":
                    ctx = ssl.create_default_context()
                    if not verify_tls:
                        ctx.check_hostname = False
                        ctx.verify_mode = ssl.CERT_NONE
                    self.stream = trio.SSLStream(tcp, ctx, server_hostname=t.host, https_compatible=True)
                    await self.stream.do_handshake()
        except trio.TooSlowError:
            raise _access(t.uri, f"timed out connecting to {t.host_header} after {self.timeout:g} s.") from None
        except (OSError, trio.BrokenResourceError, ssl.SSLError) as e:
            raise _access(t.uri, f"cannot connect to {t.host_header}: {_describe(e)}.") from None

    async def request(self) -> h11.Response:
        t = self.t
        req = h11.Request(method="GET", target=t.path, headers=[
            ("Host", t.host_header),
            ("User-Agent", USER_AGENT),
            ("Accept", "*/*"),
            ("Accept-Encoding", "gzip, deflate"),
            ("Connection", "close"),
        ])
        try:
            with trio.fail_after(self.timeout):
                await self.stream.send_all(self.h11.send(req) + self.h11.send(h11.EndOfMessage()))
                while True:
                    ev = await self._event()
                    if isinstance(ev, h11.Response):
                        return ev
                    if isinstance(ev, h11.ConnectionClosed):
                        raise _access(t.uri, "the server closed the connection without answering.")
                    # InformationalResponse (1xx): skip
        except trio.TooSlowError:
            raise _access(t.uri, f"no answer from {t.host_header} within {self.timeout:g} s.") from None
        except h11.RemoteProtocolError as e:
            raise _access(t.uri, f"bad HTTP response ({e}).") from None
        except (OSError, trio.BrokenResourceError, trio.ClosedResourceError, ssl.SSLError) as e:
            raise _access(t.uri, f"connection failed: {_describe(e)}.") from None

    async def _event(self) -> h11.Event:
        while True:
            ev = self.h11.next_event()
            if ev is not h11.NEED_DATA:
                return ev
            self.h11.receive_data(await self.stream.receive_some(CHUNK))

    async def body_event(self) -> h11.Event:
        """Next body event, each read bounded by ``timeout``; errors as FetchError."""
        t = self.t
        try:
            with trio.fail_after(self.timeout):
                return await self._event()
        except trio.TooSlowError:
            raise _access(t.uri, f"the server sent nothing for {self.timeout:g} s; document incomplete.") from None
        except h11.RemoteProtocolError as e:
            raise _access(t.uri, f"document truncated or malformed ({e}).") from None
        except (OSError, trio.BrokenResourceError, ssl.SSLError) as e:
            raise _access(t.uri, f"connection lost while reading the document: {_describe(e)}.") from None
        except trio.ClosedResourceError:
            raise _access(t.uri, "the document was read after its open_uri() block ended.") from None

    async def aclose(self) -> None:
        if self.stream is not None:
            stream, self.stream = self.stream, None
            await trio.aclose_forcefully(stream)


class _Body:
    """The response body as an async iterator of decoded chunks."""

    def __init__(self, conn: _Conn, decoders: list[_Inflate]) -> None:
        self.conn = conn
        self.decoders = decoders  # applied in order
        self.done = False
        self.closed = False

    def __aiter__(self) -> "_Body":
        return self

    def _decode(self, data: bytes) -> bytes:
        """Push ``data`` through the decoders; returns what comes out now (maybe b"")."""
        if not self.decoders:
            return data
        try:
            self.decoders[0].feed(data)
            return bytes(self._pull(0))
        except zlib.error as e:
            raise _access(self.conn.t.uri, f"bad Content-Encoding data ({e}).") from None

    def _pull(self, i: int) -> bytearray:
        out = bytearray()
        while True:
            piece = self.decoders[i].drain()
            if not piece:
                return out
            if i + 1 < len(self.decoders):
                self.decoders[i + 1].feed(piece)
                out += self._pull(i + 1)
            else:
                out += piece
            if len(out) >= CHUNK:
                return out  # rest stays buffered in the decoders (bounded memory)

    async def __anext__(self) -> bytes:
        if self.closed:
            raise _access(self.conn.t.uri, "the document was read after its open_uri() block ended.")
        while not self.done:
            if self.decoders:
                out = self._decode(b"")
                if out:
                    return out
            ev = await self.conn.body_event()
            if isinstance(ev, h11.Data):
                out = self._decode(bytes(ev.data))
                if out:
                    return out
            elif isinstance(ev, h11.EndOfMessage):
                self.done = True
            elif isinstance(ev, h11.ConnectionClosed):
                self.done = True
            else:  # pragma: no cover - h11 sends nothing else after the head
                raise _access(self.conn.t.uri, f"unexpected HTTP event {type(ev).__name__}.")
        if self.decoders:
            out = self._decode(b"")
            if out:
                return out
            if not all(d.finished() for d in self.decoders):
                raise _access(self.conn.t.uri, "compressed document (Content-Encoding) is truncated.")
        raise StopAsyncIteration


def _header(resp: h11.Response, name: bytes) -> list[str]:
    return [v.decode("latin-1").strip() for k, v in resp.headers if k == name]


def _reason(resp: h11.Response) -> str:
    r = resp.reason.decode("latin-1", "replace").strip()
    return f"HTTP {resp.status_code} {r}" if r else f"HTTP {resp.status_code}"


# ---------------------------------------------------------------- ftp

class _Stop(Exception):
    """The trio side is gone (block left, run over): the ftp thread just ends."""


_FTP_LIMITER: trio.lowlevel.RunVar = trio.lowlevel.RunVar("spoolproxy_ftp_limiter")


def _ftp_limiter() -> trio.CapacityLimiter:
    try:
        return _FTP_LIMITER.get()
    except LookupError:
        limiter = trio.CapacityLimiter(FTP_MAX_THREADS)
        _FTP_LIMITER.set(limiter)
        return limiter


def _reply(e: BaseException) -> str:
    """An FTP reply (or any error) as short printable text for a status message."""
    text = " ".join(str(e).split()) or type(e).__name__
    text = "".join(c if 0x20 <= ord(c) < 0x7F else "?" for c in text)
    return text if len(text) <= 200 else text[:197] + "..."


class _FtpSession:
    """One RETR, run by :meth:`run` in a worker thread; items go to the trio side through
    ``send``: ("start", None), then ("data", bytes)..., then ("end", None); or
    ("error", message) at any point. :meth:`abort` (trio side) shuts the sockets down."""

    def __init__(self, target: _Target, timeout: float, send: trio.MemorySendChannel) -> None:
        self.t = target
        self.timeout = timeout
        self.send = send
        self.lock = threading.Lock()  # guards aborted / socks against close-vs-shutdown races
        self.aborted = False
        self.socks: list[socket.socket] = []

    # -------- trio side

    def abort(self) -> None:
        with self.lock:
            self.aborted = True
            for s in self.socks:
                try:
                    s.shutdown(socket.SHUT_RDWR)  # wakes a recv() blocked in the thread
                except OSError:
                    pass

    # -------- worker thread

    def _emit(self, kind: str, payload: object) -> None:
        try:
            trio.from_thread.run(self.send.send, (kind, payload))
        except BaseException:  # channel closed (block left), run finished, cancelled
            raise _Stop() from None

    def _track(self, sock: socket.socket | None) -> None:
        with self.lock:
            if self.aborted or sock is None:
                raise _Stop()
            self.socks.append(sock)

    def _close(self, sock: socket.socket | None, ftp: ftplib.FTP | None = None) -> None:
        with self.lock:
            if sock is not None:
                if sock in self.socks:
                    self.socks.remove(sock)
                sock.close()
            if ftp is not None:
                if ftp.sock in self.socks:
                    self.socks.remove(ftp.sock)
                ftp.close()

    def run(self) -> None:
        t, timeout = self.t, self.timeout
        ftp = ftplib.FTP(timeout=timeout)  # utf-8 commands; passive mode; PASV host ignored (peer used)
        conn: socket.socket | None = None
        stage = "connect"
        try:
            ftp.connect(t.host, t.port)
            self._track(ftp.sock)
            stage = "login"
            if t.user is None:
                ftp.login()  # anonymous
            else:
                ftp.login(t.user, t.password or "")
            stage = "retrieve"
            ftp.voidcmd("TYPE I")
            conn, size = ftp.ntransfercmd("RETR " + t.path)
            self._track(conn)
            self._emit("start", None)
            stage = "data"
            got = 0
            while True:
                data = conn.recv(CHUNK)
                if not data:
                    break
                got += len(data)
                self._emit("data", data)
            self._close(conn)
            conn = None
            stage = "finish"
            ftp.voidresp()  # 226; 426 / 451 when the server cut the transfer
            if size is not None and got != size:
                self._emit("error", f"document truncated: got {got} of the {size} bytes announced.")
                return
            self._emit("end", None)
            stage = "quit"
            try:
                ftp.quit()
            except Exception:
                pass
        except _Stop:
            pass
        except Exception as e:
            if not self.aborted and stage != "quit":
                try:
                    self._emit("error", self._message(stage, e))
                except _Stop:
                    pass
        finally:
            self._close(conn, ftp)

    def _message(self, stage: str, e: Exception) -> str:
        t, timeout = self.t, self.timeout
        incomplete = stage in ("data", "finish")
        if isinstance(e, ftplib.Error):
            reply = _reply(e)
            if stage == "login":
                return f"login failed ({reply})."
            if stage == "retrieve":
                return f"cannot retrieve the file ({reply})."
            if incomplete:
                return f"transfer failed ({reply}); document incomplete."
            return f"unexpected FTP reply ({reply})."
        if isinstance(e, TimeoutError):
            if stage == "connect":
                return f"timed out connecting to {t.host_header} after {timeout:g} s."
            if incomplete:
                return f"the server sent nothing for {timeout:g} s; document incomplete."
            return f"no answer from {t.host_header} within {timeout:g} s."
        if isinstance(e, EOFError):
            what = "; document incomplete" if incomplete else ""
            return f"the server closed the connection{what}."
        if isinstance(e, OSError):
            reason = e.strerror or _reply(e)
            if stage == "connect":
                return f"cannot connect to {t.host_header}: {reason}."
            if incomplete:
                return f"connection lost while reading the document: {reason}."
            return f"connection failed: {reason}."
        return f"FTP failure ({type(e).__name__}: {_reply(e)})."


# trio >= 0.23 calls it abandon_on_cancel; 0.22 had cancellable
_ABANDON = ("abandon_on_cancel" if "abandon_on_cancel" in inspect.signature(trio.to_thread.run_sync).parameters
            else "cancellable")


@asynccontextmanager
async def _open_ftp(target: _Target, timeout: float) -> AsyncIterator[Fetched]:
    send, recv = trio.open_memory_channel(FTP_QUEUE)
    session = _FtpSession(target, timeout, send)

    async def worker() -> None:
        async with send:  # the reader sees EndOfChannel if the thread ends without a last item
            # abandoned on cancellation: a cancelled caller never waits for a blocking connect /
            # DNS; the thread then ends by itself (closed channel, shut-down sockets, timeouts)
            await trio.to_thread.run_sync(session.run, limiter=_ftp_limiter(), **{_ABANDON: True},
                                          thread_name=f"spoolproxy ftp {target.uri}")

    body = _FtpBody(target, recv)
    caught: BaseException | None = None
    async with trio.open_nursery() as nursery:
        nursery.start_soon(worker)
        try:
            kind, payload = await body.receive()
            if kind == "error":
                raise _access(target.uri, payload)
            yield Fetched(None, body)
        except BaseException as e:
            # raised again below, outside the nursery, so that it is not wrapped in an
            # exception group. An outside cancellation also cancels the worker (the thread
            # is abandoned) and the nursery re-raises it; otherwise the nursery waits for
            # the thread, which the abort below ends promptly (the FTP connection is closed
            # when this returns).
            caught = e
        finally:
            body.closed = True
            session.abort()
            recv.close()  # a send blocked in the thread fails: it ends
    if caught is not None:
        try:
            raise caught
        finally:
            caught = None


class _FtpBody:
    def __init__(self, target: _Target, recv: trio.MemoryReceiveChannel) -> None:
        self.t = target
        self.recv = recv
        self.done = False
        self.closed = False

    def __aiter__(self) -> "_FtpBody":
        return self

    async def receive(self) -> tuple[str, object]:
        try:
            return await self.recv.receive()
        except trio.EndOfChannel:
            return "error", "the FTP transfer ended unexpectedly."
        except trio.ClosedResourceError:
            return "error", "the document was read after its open_uri() block ended."

    async def __anext__(self) -> bytes:
        if self.closed:
            raise _access(self.t.uri, "the document was read after its open_uri() block ended.")
        if self.done:
            raise StopAsyncIteration
        kind, payload = await self.receive()
        if kind == "data":
            return payload
        self.done = True
        if kind == "end":
            raise StopAsyncIteration
        raise _access(self.t.uri, payload if kind == "error" else f"unexpected item {kind!r}.")



@asynccontextmanager
async def open_uri(uri: str, *, schemes: Collection[str] = ("http", "https"), timeout: float = 30.0,
                   max_redirects: int = 3, verify_tls: bool = True) -> AsyncIterator[Fetched]:
    """Fetch ``uri``; yields a :class:`Fetched` whose body streams the document.

    Raises :class:`FetchError` (status set) on entry for connect / TLS / timeout /
    HTTP error / redirect / FTP login or RETR problems, and from ``body`` iteration for a
    document cut short. ``ValueError`` if ``schemes`` allows anything but http/https/ftp.
    """
    allowed = _check_schemes(schemes)
    if timeout <= 0:
        raise ValueError("timeout must be > 0")
    if max_redirects < 0:
        raise ValueError("max_redirects must be >= 0")
    target = _parse(uri, allowed)
    hops = 0
    while True:
        if target.scheme == "ftp":
            async with _open_ftp(target, timeout) as doc:
                yield doc
            return
        conn = _Conn(target, timeout)
        try:
            await conn.connect(verify_tls)
            resp = await conn.request()
            status = resp.status_code
            if status in REDIRECTS:
                loc = _header(resp, b"location")
                if not loc or not loc[0]:
                    raise _access(target.uri, f"{_reason(resp)} without a Location.")
                hops += 1
                if hops > max_redirects:
                    raise _access(uri, f"too many redirects (more than {max_redirects}).")
                new = urljoin(target.uri, quote(loc[0], safe="!#$%&'()*+,/:;=?@[]~"))
                try:
                    target = _parse(new, allowed, bad_status=Status.DOCUMENT_ACCESS_ERROR)
                except FetchError as e:
                    if e.status == Status.URI_SCHEME_NOT_SUPPORTED:
                        raise FetchError(e.status, f"{uri}: redirected to {new}, whose scheme is not "
                                                   "supported.") from None
                    raise FetchError(Status.DOCUMENT_ACCESS_ERROR, f"{uri}: bad redirect: {e}") from None
                continue
            if not (200 <= status < 300) or status == 206:
                raise _access(target.uri, f"{_reason(resp)}.")
            decoders: list[_Inflate] = []
            for value in _header(resp, b"content-encoding"):
                for coding in (c.strip().lower() for c in value.split(",")):
                    if coding in ("", "identity"):
                        continue
                    try:
                        decoders.append(_decoder(coding)())
                    except ValueError:
                        raise _access(target.uri, f"unsupported Content-Encoding \"{coding}\".") from None
            decoders.reverse()  # the last coding applied is the first to undo
            ctype = None
            types = _header(resp, b"content-type")
            if types:
                ctype = types[0].split(";", 1)[0].strip().lower() or None
            body = _Body(conn, decoders)
            try:
                yield Fetched(ctype, body)
            finally:
                body.closed = True
            return
        finally:
            await conn.aclose()
