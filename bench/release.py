#!/usr/bin/env python3
"""Secure Print release (issue 5): from the release request to the first byte at the
printer, with 10,000 held jobs in the store, and how long a device login takes.

    python3 bench/release.py [--quick] [--json FILE] [--jobs 10000] [--users 500]
                             [--samples 300] [--concurrency 8]      (--help for the rest)

It starts its own peers in a temporary directory and removes them afterwards:

* an AppSocket printer in a thread of this process (``TimedSink``): it reads and discards
  every connection and notes, with ``time.perf_counter``, when the first byte of each one
  arrived; every document carries a tag in a PDF comment on its second line
  (``%BENCH tag``), so a first byte is matched to the job it belongs to;
* a spoolproxy node (``spoolproxy serve``, ``fsync = true`` as in production, web on a
  free port) with ``--printers`` hold queues ``hold1..N`` (``mode = "hold"``: Secure
  Print) and one direct queue ``direct``, every one to that sink
  (``socket://127.0.0.1:PORT``), priced 10 per gray and 50 per colour page; a device
  ``mfdK`` at each hold queue (admin API), ``--users`` users with a card each (admin API
  CSV import; the first ``--pin-users`` with a PIN too, unrestricted, 100.00 credit).

Then: ``--jobs`` held jobs by IPP Print-Job (``--connections`` keep-alive connections,
every user's jobs on the hold queue ``hold((i mod N) + 1)``; a 3-page PDF of about 1 KB
that the engine counts without Ghostscript, each one tagged), and the wait until the node
has counted and holds every one: each user logs in at their device and lists their held
jobs (``GET /device/jobs``); that pass is timed too ("list held jobs").

Measured, one request at a time, interleaved in tenths so that a burst of other load
hits every row alike (the samples' time is ``perf_counter`` in this one process):

* **release**: a device logs a user in by card (not timed), then ``POST /device/release``
  of one of that user's held jobs; the latency is the sink's first byte of that job
  minus the moment the request was sent (and, beside it, until the HTTP answer). Target:
  **p99 under 50 ms**. Then the device logs out, the sink has seen the job to its end,
  and ``--gap`` seconds pass before the next sample (a printer that is idle again);
* the peers, same document, same sink: **direct queue** (IPP Print-Job to the node's
  direct queue: spooled, fsynced, counted, charged and sent: the node's own path without
  a hold) and **direct socket** (open a connection to the sink and send the document:
  the floor);
* **login**: ``POST /device/login`` by card alone and by card and PIN (the PIN is checked
  against its scrypt hash, tens of milliseconds by design).

Then, reported on its own: **release, C devices at once** (``--concurrency``, each at
its own hold queue's printer, one release after another).

Output: a table (n, p50/p90/p99/max ms per row), the ratios ``release p99 / direct-queue
p99`` and ``release p99 / direct-socket p99``, and the target line; ``--json FILE``
writes every sample. Benchmarks report, tests assert: exit 0 when it ran, whatever the
numbers; 1 when requests failed (a refused release or login, an HTTP error, a job that
never reached the printer); 3 when the node did not start.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import random
import selectors
import shutil
import socket
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Callable, Iterator

import trio

REPO = Path(__file__).resolve().parents[1]
BENCH = Path(__file__).resolve().parent
for _p in (str(REPO), str(BENCH), str(REPO / "tests")):
    if _p not in sys.path:
        sys.path.insert(0, _p)

import peers  # noqa: E402  (tests/peers.py: the hand-made PDFs the tests use too)
from _report import new_result, phase, say, stop_on_sigterm  # noqa: E402
from accept_rate import (LIVE, HttpConn, PeerFailed, Proc, cpu_seconds, http_post, machine_busy, tail,  # noqa: E402
                         wait_until)
from spoolproxy.ipp import codec  # noqa: E402
from spoolproxy.ipp.model import Op, Tag  # noqa: E402
from spoolproxy.ipp.types import Message  # noqa: E402

EXIT_OK, EXIT_FAILED, EXIT_PEER = 0, 1, 3
TARGET_P99_MS = 50.0
GRAY, COLOR = 10, 50  # the queues' prices (minor units)
PIN = "4711"
API = "/api/v1"
TAG_MARK = b"%BENCH "
WAIT = 30.0  # longest wait for one job's first byte or end at the sink





@contextlib.contextmanager
def progress(text: str, total: int) -> Iterator[Callable[[int], None]]:
    """A rich progress bar when stdout is a terminal, else a line; yields advance(n)."""
    if sys.stdout.isatty():
        try:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
        except ImportError:
            pass
        else:
            with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                          TimeElapsedColumn(), transient=True) as bar:
                task = bar.add_task(text, total=total)
                yield lambda n: bar.advance(task, n)
            return
    say(f"{text} ({total:,})")
    yield lambda n: None


def percentiles(ms: list[float]) -> dict[str, float]:
    """n, p50 / p90 / p99 (nearest rank: the smallest sample with at least q of them at or
    below it), max and mean of samples in milliseconds; {"n": 0} for none."""
    s = sorted(ms)
    n = len(s)
    if not n:
        return {"n": 0}

    def at(q: float) -> float:
        k = math.ceil(round(q * n, 6))  # (0.99 * 300 is 297.00000000000006 in floats)
        return s[min(n - 1, max(0, k - 1))]

    return {"n": n, "p50_ms": at(0.50), "p90_ms": at(0.90), "p99_ms": at(0.99), "max_ms": s[-1],
            "mean_ms": sum(s) / n}


# --------------------------------------------------------------------------- documents


def tagged_pdf(tag: str, colors: tuple[bool, ...] = (True, False, False)) -> bytes:
    """tests/peers.py simple_pdf (one A4 page per entry, a red square where True, a grey
    one where False, coloured without Ghostscript) whose second line is the comment
    ``%BENCH tag``: what the sink reads to know the job."""
    if not tag or not tag.isascii() or any(c.isspace() for c in tag):
        raise ValueError(f"a tag is ASCII without spaces, not {tag!r}")
    return peers.simple_pdf(colors, comment=TAG_MARK + tag.encode())


def parse_tag(head: bytes) -> str | None:
    """The tag of a document from its first bytes: the word after ``%BENCH `` up to the
    end of that line; None until the whole line is there (or when there is none)."""
    i = head.find(TAG_MARK)
    if i < 0:
        return None
    j = head.find(b"\n", i)
    if j < 0:
        return None
    tag = head[i + len(TAG_MARK):j].strip(b"\r ")
    return tag.decode("ascii", "replace") or None


# --------------------------------------------------------------------------- the printer


class _Conn:
    __slots__ = ("first", "head", "tag", "size")

    def __init__(self) -> None:
        self.first: float | None = None
        self.head = bytearray()
        self.tag: str | None = None
        self.size = 0


class TimedSink:
    """An AppSocket printer in a thread of this process: it reads every connection to its
    end, closes its side when the sender shuts down its write side (as bench/_sink.py and
    a raw printer do), and notes per tagged document the ``perf_counter`` of the
    connection's first byte (``first[tag]``) and of its end (``done[tag]``). Connections
    without a byte (the node's printer probes) are only counted.

    ``on_event(kind, tag)`` (kind "first" or "done") is called from the sink's thread."""

    HEAD_MAX = 4096  # the tag must be within this many bytes

    def __init__(self, host: str = "127.0.0.1") -> None:
        self.lsock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.lsock.bind((host, 0))
        self.lsock.listen(1024)
        self.lsock.setblocking(False)
        self.port: int = self.lsock.getsockname()[1]
        self.first: dict[str, float] = {}
        self.done: dict[str, float] = {}
        self.sizes: dict[str, int] = {}
        self.stats = {"connections": 0, "jobs": 0, "bytes": 0, "empty": 0, "untagged": 0, "duplicate_tags": 0}
        self.on_event: Callable[[str, str], None] | None = None
        self._wake_r, self._wake_w = socket.socketpair()
        self._stop = False
        self._thread = threading.Thread(target=self._run, name="timed-sink", daemon=True)

    def start(self) -> "TimedSink":
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop = True
        with contextlib.suppress(OSError):
            self._wake_w.send(b"x")
        if self._thread.is_alive():
            self._thread.join(10)
        for s in (self.lsock, self._wake_r, self._wake_w):
            s.close()

    def _emit(self, kind: str, tag: str) -> None:
        cb = self.on_event
        if cb is not None:
            try:
                cb(kind, tag)
            except Exception:  # (the trio run it reports to has ended)
                pass

    def _run(self) -> None:
        clock = time.perf_counter
        sel = selectors.DefaultSelector()
        sel.register(self.lsock, selectors.EVENT_READ, None)
        sel.register(self._wake_r, selectors.EVENT_READ, "wake")
        try:
            while not self._stop:
                for key, _ in sel.select(1.0):
                    if key.data == "wake":
                        continue
                    if key.data is None:
                        while True:
                            try:
                                c, _addr = self.lsock.accept()
                            except (BlockingIOError, InterruptedError):
                                break
                            c.setblocking(False)
                            self.stats["connections"] += 1
                            sel.register(c, selectors.EVENT_READ, _Conn())
                        continue
                    sock, st = key.fileobj, key.data
                    try:
                        data = sock.recv(65536)  # type: ignore[union-attr]
                    except (BlockingIOError, InterruptedError):
                        continue
                    except OSError:
                        data = b""
                    now = clock()
                    if data:
                        if st.first is None:
                            st.first = now
                        st.size += len(data)
                        if st.tag is None and len(st.head) < self.HEAD_MAX:
                            st.head += data[:self.HEAD_MAX]
                            tag = parse_tag(bytes(st.head))
                            if tag is not None:
                                st.tag = tag
                                st.head = bytearray()
                                if tag in self.first:
                                    self.stats["duplicate_tags"] += 1
                                self.first[tag] = st.first
                                self._emit("first", tag)
                        continue
                    # end of the job: close our side, which is what the sender waits for
                    sel.unregister(sock)
                    sock.close()  # type: ignore[union-attr]
                    if not st.size:
                        self.stats["empty"] += 1
                        continue
                    self.stats["jobs"] += 1
                    self.stats["bytes"] += st.size
                    if st.tag is None:
                        self.stats["untagged"] += 1
                        continue
                    self.sizes[st.tag] = st.size
                    self.done[st.tag] = now
                    self._emit("done", st.tag)
        finally:
            for key in list(sel.get_map().values()):
                if key.data not in (None, "wake"):
                    key.fileobj.close()  # type: ignore[union-attr]
            sel.close()


class SinkWaiter:
    """The trio side of the sink: wait for a tag's first byte or end."""

    def __init__(self, sink: TimedSink) -> None:
        self.sink = sink
        self.events: dict[tuple[str, str], trio.Event] = {}

    def attach(self) -> None:
        token = trio.lowlevel.current_trio_token()
        self.sink.on_event = lambda kind, tag: token.run_sync_soon(self._fire, kind, tag)

    def detach(self) -> None:
        self.sink.on_event = None

    def _fire(self, kind: str, tag: str) -> None:
        ev = self.events.pop((kind, tag), None)
        if ev is not None:
            ev.set()

    async def wait(self, kind: str, tag: str, timeout: float = WAIT) -> float:
        """The perf_counter of the tag's first byte ("first") or end ("done")."""
        seen = self.sink.first if kind == "first" else self.sink.done
        if tag not in seen:
            ev = self.events.setdefault((kind, tag), trio.Event())
            if tag not in seen:  # (the sink's thread may have been quicker)
                with trio.move_on_after(timeout):
                    await ev.wait()
            self.events.pop((kind, tag), None)
        if tag not in seen:
            raise Failure(f"job {tag} did not {'reach' if kind == 'first' else 'finish at'} the printer "
                          f"within {timeout:g} s")
        return seen[tag]


class Failure(Exception):
    """A request of the benchmark failed (counted; the run goes on)."""


# --------------------------------------------------------------------------- the node


class Node:
    """``python -m spoolproxy serve --config FILE``: hold queues hold1..N and a direct
    queue, all to the sink; web on a free port."""

    def __init__(self, work: Path, sink_port: int, printers: int, *, cprofile: Path | None = None):
        self.dir = work / "node"
        self.dir.mkdir(parents=True, exist_ok=True)
        self.state = self.dir / "state"
        cfg = self.dir / "node.toml"
        printer = f"socket://127.0.0.1:{sink_port}"
        cost = f"cost = {{ gray = {GRAY}, color = {COLOR} }}"
        queues = "".join(f'\n[queues.hold{k}]\nprinter = "{printer}"\nmode = "hold"\n{cost}\n'
                         for k in range(1, printers + 1))
        cfg.write_text(f"""\
[node]
name = "release-bench"
state_dir = "{self.state}"
fsync = true

[ipp]
listen = "127.0.0.1"
port = 0

[lpd]
enabled = false

[web]
enabled = true
listen = "127.0.0.1"
port = 0

[queues.direct]
printer = "{printer}"
default = true
{cost}
{queues}""")
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH", "")) if p)
        self.log = self.dir / "node.log"
        prefix = [sys.executable] + (["-m", "cProfile", "-o", str(cprofile.resolve())] if cprofile else [])
        self.proc = Proc("node", [*prefix, "-m", "spoolproxy", "serve", "--config", str(cfg)], self.log, env=env,
                         cwd=self.dir)

        def ready() -> tuple[int, int] | None:
            ipp = web = None
            for line in self.log.read_text(errors="replace").splitlines():
                if "IPP queue direct " in line and ipp is None:
                    uri = line.split("IPP queue direct ", 1)[1].split()[0]
                    ipp = int(uri.split("://", 1)[1].split("/", 1)[0].rsplit(":", 1)[1])
                elif " web  http://" in line or line.startswith("web  http://"):
                    web = int(line.rsplit(":", 1)[1].strip().rstrip("/"))
            return (ipp, web) if ipp and web else None

        self.ipp_port, self.web_port = wait_until(ready, 90, "the node logging its IPP queue and web port",
                                                  self.proc)
        self.admin_token = (self.state / "admin-token").read_text().strip()

    def stop(self) -> None:
        self.proc.stop(15)


# --------------------------------------------------------------------------- HTTP


def http_request(method: str, port: int, path: str, body: Any = None, headers: dict[str, str] | None = None,
                 content_type: str = "application/json") -> bytes:
    data = b"" if body is None else body if isinstance(body, bytes) else json.dumps(body).encode()
    head = [f"{method} {path} HTTP/1.1", f"Host: 127.0.0.1:{port}", "User-Agent: spoolproxy-bench"]
    head += [f"{k}: {v}" for k, v in (headers or {}).items()]
    if data or method in ("POST", "PUT"):
        head += [f"Content-Type: {content_type}", f"Content-Length: {len(data)}"]
    return ("\r\n".join(head) + "\r\n\r\n").encode() + data


class WebConn:
    """One keep-alive HTTP/1.1 connection to the node's web server; just enough HTTP for
    its JSON answers (Content-Length, chunked, or none for 204). A connection idle for
    ``IDLE`` seconds is replaced before the next request, untimed: hypercorn closes idle
    keep-alive connections after 5 s (its keep_alive_timeout), and a device that has been
    idle opens a new one."""

    IDLE = 2.0

    def __init__(self, port: int):
        self.port = port
        self.stream: trio.SocketStream | None = None
        self.buf = bytearray()
        self.used = 0.0

    async def _fill(self) -> None:
        assert self.stream is not None
        data = await self.stream.receive_some(65536)
        if not data:
            raise ConnectionError("the node closed the connection")
        self.buf += data

    async def call(self, payload: bytes) -> tuple[int, Any, float, float]:
        """Send a pre-encoded request; (status, decoded JSON or None, perf_counter just
        before it was sent, perf_counter when the whole answer was read)."""
        if self.stream is not None and time.monotonic() - self.used > self.IDLE:
            await self.aclose()
        if self.stream is None:
            self.stream = await trio.open_tcp_stream("127.0.0.1", self.port)
            self.buf.clear()
        t0 = time.perf_counter()
        try:
            await self.stream.send_all(payload)
            code, body, close = await self._response()
        except (OSError, ConnectionError, trio.BrokenResourceError) as e:
            await self.aclose()
            raise Failure(f"HTTP connection to the node: {type(e).__name__}: {e}") from None
        t1 = time.perf_counter()
        self.used = time.monotonic()
        if close:
            await self.aclose()
        try:
            data = json.loads(body) if body else None
        except ValueError:
            data = body[:200].decode(errors="replace")
        return code, data, t0, t1

    async def _response(self) -> tuple[int, bytes, bool]:
        end = self.buf.find(b"\r\n\r\n")
        while end < 0:
            await self._fill()
            end = self.buf.find(b"\r\n\r\n")
        head = bytes(self.buf[:end]).lower()
        del self.buf[:end + 4]
        code = int(head[9:12])
        close = b"\nconnection: close" in head
        if code in (204, 304) or 100 <= code < 200:
            return code, b"", close
        i = head.find(b"\ncontent-length:")
        if i >= 0:
            j = head.find(b"\r", i + 16)
            n = int(head[i + 16:j if j > 0 else len(head)])
            while len(self.buf) < n:
                await self._fill()
            body = bytes(self.buf[:n])
            del self.buf[:n]
            return code, body, close
        if b"\ntransfer-encoding: chunked" in head:
            out = bytearray()
            while True:
                j = self.buf.find(b"\r\n")
                while j < 0:
                    await self._fill()
                    j = self.buf.find(b"\r\n")
                size = int(bytes(self.buf[:j]).split(b";")[0], 16)
                while len(self.buf) < j + 2 + size + 2:
                    await self._fill()
                out += self.buf[j + 2:j + 2 + size]
                del self.buf[:j + 2 + size + 2]
                if size == 0:
                    return code, bytes(out), close
        with contextlib.suppress(ConnectionError):
            while True:
                await self._fill()
        body = bytes(self.buf)
        self.buf.clear()
        return code, body, True

    async def aclose(self) -> None:
        if self.stream is not None:
            with trio.move_on_after(1):
                await self.stream.aclose()
        self.stream = None


class Device:
    """A device at one hold queue's printer, with its own connection."""

    def __init__(self, name: str, queue: str, key: str, port: int):
        self.name, self.queue, self.key, self.port = name, queue, key, port
        self.conn = WebConn(port)

    def _headers(self, token: str = "") -> dict[str, str]:
        h = {"X-Device-Key": self.key}
        if token:
            h["Authorization"] = f"Bearer {token}"
        return h

    async def login(self, card: str, pin: str = "") -> tuple[str, float]:
        """(token, seconds from sending to the answer)."""
        body = {"card": card, **({"pin": pin} if pin else {})}
        code, data, t0, t1 = await self.conn.call(http_request("POST", self.port, f"{API}/device/login", body,
                                                               self._headers()))
        if code != 200 or not isinstance(data, dict) or not data.get("token"):
            raise Failure(f"login by card{'+PIN' if pin else ''} at {self.name}: HTTP {code}: {data}")
        return data["token"], t1 - t0

    async def logout(self, token: str) -> None:
        code, data, _, _ = await self.conn.call(http_request("POST", self.port, f"{API}/device/logout", None,
                                                             self._headers(token)))
        if code != 204:
            raise Failure(f"logout at {self.name}: HTTP {code}: {data}")

    async def jobs(self, token: str) -> tuple[list[dict], float]:
        code, data, t0, t1 = await self.conn.call(http_request("GET", self.port, f"{API}/device/jobs", None,
                                                               self._headers(token)))
        if code != 200 or not isinstance(data, dict):
            raise Failure(f"GET /device/jobs at {self.name}: HTTP {code}: {data}")
        return data["jobs"], t1 - t0

    def release_payload(self, token: str, job_ids: list[int]) -> bytes:
        return http_request("POST", self.port, f"{API}/device/release", {"jobs": job_ids}, self._headers(token))

    async def release(self, token: str, job_ids: list[int]) -> tuple[float, float]:
        """(perf_counter just before the request was sent, perf_counter of the answer);
        Failure unless every job was released."""
        code, data, t0, t1 = await self.conn.call(self.release_payload(token, job_ids))
        if code != 200 or not isinstance(data, dict):
            raise Failure(f"release of {job_ids} at {self.name}: HTTP {code}: {data}")
        bad = [r for r in data.get("results", []) if not r.get("ok")]
        if bad or data.get("released") != len(job_ids):
            raise Failure(f"release of {job_ids} at {self.name}: {bad or data}")
        return t0, t1


async def admin_call(port: int, token: str, method: str, path: str, body: Any = None,
                     content_type: str = "application/json") -> tuple[int, Any]:
    conn = WebConn(port)
    try:
        code, data, _, _ = await conn.call(http_request(method, port, f"{API}/admin{path}", body,
                                                        {"Authorization": f"Bearer {token}"}, content_type))
    finally:
        await conn.aclose()
    return code, data


# --------------------------------------------------------------------------- IPP


def print_job(port: int, queue: str, user: str, doc: bytes, name: str) -> bytes:
    uri = f"ipp://127.0.0.1:{port}/ipp/print/{queue}"
    m = Message(version=(2, 0), code=Op.PRINT_JOB, request_id=1)
    g = m.add_group(Tag.OPERATION)
    g.add("attributes-charset", Tag.CHARSET, "utf-8")
    g.add("attributes-natural-language", Tag.LANGUAGE, "en")
    g.add("printer-uri", Tag.URI, uri)
    g.add("requesting-user-name", Tag.NAME, user)
    g.add("job-name", Tag.NAME, name)
    g.add("document-format", Tag.MIME_TYPE, "application/pdf")
    return http_post(port, f"/ipp/print/{queue}", codec.encode(m), doc)


def job_id_of(code: int, body: bytes) -> int:
    if code != 200:
        raise Failure(f"Print-Job: HTTP {code}: {body[:200]!r}")
    resp = codec.decode(body)[0]
    if resp.code >= 0x0100:
        raise Failure(f"Print-Job: IPP status 0x{resp.code:04x}")
    job = resp.group(Tag.JOB)
    job_id = job.value("job-id") if job is not None else None
    if not isinstance(job_id, int):
        raise Failure("Print-Job: no job-id in the answer")
    return job_id


# --------------------------------------------------------------------------- the run


def tree_cpu(pid: int) -> float:
    """CPU seconds of a process and of its live descendants (the node's document-engine
    worker is a child process that lives as long as the node)."""
    total = cpu_seconds(pid)
    try:
        tasks = list(Path(f"/proc/{pid}/task").iterdir())
    except OSError:
        return total
    for task in tasks:
        try:
            kids = (task / "children").read_text().split()
        except OSError:
            continue
        total += sum(tree_cpu(int(k)) for k in kids)
    return total


def user_name(i: int) -> str:
    return f"u{i:05d}"


def card_of(i: int) -> str:
    return f"{80_000_000 + i}"


def users_csv(users: int, pin_users: int, credit: str = "100.00") -> str:
    """The admin API's import: username,restricted,card,pin,initial_credit."""
    rows = ["username,restricted,card,pin,initial_credit"]
    rows += [f"{user_name(i)},false,{card_of(i)},{PIN if i < pin_users else ''},{credit}" for i in range(users)]
    return "\n".join(rows) + "\n"


class Bench:
    def __init__(self, args: argparse.Namespace, node: Node, sink: TimedSink):
        self.args = args
        self.node = node
        self.sink = sink
        self.waiter = SinkWaiter(sink)
        self.devices: list[Device] = []
        self.held: dict[int, list[tuple[int, str]]] = {}  # user -> [(job id, tag)] still held
        self.errors: list[str] = []
        self.samples: dict[str, list[float]] = {}
        self.answered: dict[str, list[float]] = {}
        self.result: dict[str, Any] = {}

    def queue_of(self, user: int) -> int:
        return user % self.args.printers

    def fail(self, what: str, e: Exception) -> None:
        self.errors.append(f"{what}: {e}")
        if len(self.errors) <= 5:
            say(f"  error: {what}: {e}")

    # -- set-up -----------------------------------------------------------------

    async def setup(self) -> None:
        a, port, token = self.args, self.node.web_port, self.node.admin_token
        with phase(f"users: {a.users:,} with a card ({a.pin_users} with a PIN too) by the admin API's CSV import"):
            code, data = await admin_call(port, token, "POST", "/users/import",
                                          users_csv(a.users, a.pin_users).encode(), "text/csv")
        if code != 200 or not isinstance(data, dict) or data.get("errors") or data.get("created") != a.users:
            raise PeerFailed(f"users import: HTTP {code}: {data}")
        for k in range(1, a.printers + 1):
            code, data = await admin_call(port, token, "POST", "/devices", {"name": f"mfd{k}", "printer": f"hold{k}"})
            if code != 201:
                raise PeerFailed(f"adding device mfd{k}: HTTP {code}: {data}")
            self.devices.append(Device(f"mfd{k}", f"hold{k}", data["key"], port))

    async def fill(self) -> None:
        """--jobs held jobs over --connections keep-alive IPP connections."""
        a = self.args
        order = [(n, n % a.users) for n in range(a.jobs)]  # job n belongs to user n mod users
        todo = iter(order)
        port = self.node.ipp_port
        held: dict[int, list[tuple[int, str]]] = {u: [] for u in range(a.users)}
        t0 = time.perf_counter()
        with progress(f"filling the store: {a.jobs:,} Print-Jobs to {a.printers} hold queues "
                      f"over {a.connections} connections", a.jobs) as advance:
            async def worker() -> None:
                conn = await HttpConn.open(port)
                try:
                    for n, u in todo:
                        tag = f"h{n:06d}"
                        payload = print_job(port, f"hold{self.queue_of(u) + 1}", user_name(u), tagged_pdf(tag),
                                            f"held-{n}.pdf")
                        try:
                            code, body = await conn.request(payload)
                            held[u].append((job_id_of(code, body), tag))
                        except (Failure, OSError, ConnectionError, trio.BrokenResourceError, ValueError) as e:
                            self.fail(f"held job {n}", e)
                            with trio.move_on_after(1):
                                await conn.aclose()
                            conn = await HttpConn.open(port)
                            continue
                        if conn.close_after:
                            await conn.aclose()
                            conn = await HttpConn.open(port)
                        advance(1)
                finally:
                    with trio.move_on_after(1):
                        await conn.aclose()

            async with trio.open_nursery() as nursery:
                for _ in range(a.connections):
                    nursery.start_soon(worker)
        secs = time.perf_counter() - t0
        for u in held:
            held[u].sort()
        self.held = held
        accepted = sum(len(v) for v in held.values())
        say(f"  {accepted:,} jobs accepted in {secs:.1f} s ({accepted / secs:,.0f} jobs/s)")
        self.result["fill"] = {"jobs": accepted, "seconds": secs, "jobs_per_s": accepted / secs if secs else 0.0}

    async def wait_held(self) -> None:
        """Until every user's device lists all of their jobs (counted and held); the last
        pass, one login and one list per user, is the "list held jobs" sample."""
        a = self.args
        t0 = time.perf_counter()
        deadline = trio.current_time() + a.settle_timeout
        last = max(self.held, key=lambda u: self.held[u][-1][0] if self.held[u] else 0)
        with phase("waiting until the node has counted and holds every job"):
            dev = self.devices[self.queue_of(last)]
            token, _ = await dev.login(card_of(last))
            want = {j for j, _ in self.held[last]}
            while True:
                listed, _ = await dev.jobs(token)
                if want <= {j["id"] for j in listed}:
                    break
                if trio.current_time() > deadline:
                    raise PeerFailed(f"user {user_name(last)}'s jobs were not all held within "
                                     f"{a.settle_timeout:g} s\n{tail(self.node.log)}")
                await trio.sleep(0.25)
            await dev.logout(token)
        counted = time.perf_counter() - t0
        lists: list[float] = []
        held_total = 0
        with progress("every user lists their held jobs (timed: GET /device/jobs)", a.users) as advance:
            for u in range(a.users):
                dev = self.devices[self.queue_of(u)]
                token, _ = await dev.login(card_of(u))
                want = {j for j, _ in self.held[u]}
                while True:
                    listed, secs = await dev.jobs(token)
                    got = {j["id"] for j in listed if j["here"]}
                    if want <= got:
                        break
                    if trio.current_time() > deadline:
                        raise PeerFailed(f"user {user_name(u)}: {len(want - got)} job(s) not held within "
                                         f"{a.settle_timeout:g} s")
                    await trio.sleep(0.25)
                lists.append(secs * 1e3)
                held_total += len(listed)
                await dev.logout(token)
                advance(1)
        say(f"  every job counted and held {counted:.1f} s after the last was accepted; {held_total:,} held jobs "
            f"listed by {a.users:,} users")
        self.samples["list"] = lists
        self.result["held"] = {"jobs": held_total, "counted_after_s": counted}

    # -- one sample of each kind ------------------------------------------------

    def next_job(self, user: int) -> tuple[int, str]:
        return self.held[user].pop()  # the newest: any of them will do

    async def release_one(self, dev: Device, user: int, kind: str) -> None:
        job_id, tag = self.next_job(user)
        token, _ = await dev.login(card_of(user))
        t0, t1 = await dev.release(token, [job_id])
        first = await self.waiter.wait("first", tag)
        self.samples.setdefault(kind, []).append((first - t0) * 1e3)
        self.answered.setdefault(kind, []).append((t1 - t0) * 1e3)
        await self.waiter.wait("done", tag)
        await dev.logout(token)

    async def direct_queue_one(self, conn_box: list[HttpConn], n: int) -> None:
        tag = f"q{n:06d}"
        payload = print_job(self.node.ipp_port, "direct", user_name(n % self.args.users), tagged_pdf(tag),
                            f"direct-{n}.pdf")
        conn = conn_box[0]
        t0 = time.perf_counter()
        try:
            code, body = await conn.request(payload)
        except (OSError, ConnectionError, trio.BrokenResourceError, ValueError) as e:
            conn_box[0] = await HttpConn.open(self.node.ipp_port)
            raise Failure(f"Print-Job to the direct queue: {type(e).__name__}: {e}") from None
        t1 = time.perf_counter()
        job_id_of(code, body)
        if conn.close_after:
            await conn.aclose()
            conn_box[0] = await HttpConn.open(self.node.ipp_port)
        first = await self.waiter.wait("first", tag)
        self.samples.setdefault("direct_queue", []).append((first - t0) * 1e3)
        self.answered.setdefault("direct_queue", []).append((t1 - t0) * 1e3)
        await self.waiter.wait("done", tag)

    async def direct_socket_one(self, n: int) -> None:
        """A plain blocking socket in this thread (the sink has its own): connect, send,
        shut down the write side; then the sink's close is read."""
        tag = f"s{n:06d}"
        doc = tagged_pdf(tag)
        t0 = time.perf_counter()
        with socket.create_connection(("127.0.0.1", self.sink.port), timeout=WAIT) as sock:
            sock.sendall(doc)
            sock.shutdown(socket.SHUT_WR)
            first = await self.waiter.wait("first", tag)
            while sock.recv(65536):
                pass
        self.samples.setdefault("direct_socket", []).append((first - t0) * 1e3)
        await self.waiter.wait("done", tag)

    async def login_one(self, user: int, pin: bool) -> None:
        dev = self.devices[self.queue_of(user)]
        token, secs = await dev.login(card_of(user), PIN if pin else "")
        self.samples.setdefault("login_pin" if pin else "login_card", []).append(secs * 1e3)
        await dev.logout(token)

    # -- the phases -------------------------------------------------------------

    async def sequential(self) -> None:
        """Every kind one at a time, interleaved in tenths."""
        a = self.args
        rnd = random.Random(a.seed)
        users = list(range(a.users))
        rnd.shuffle(users)
        pin_users = list(range(a.pin_users))
        ipp = [await HttpConn.open(self.node.ipp_port)]
        kinds = [k for k in ("direct_socket", "direct_queue", "release", "login_card", "login_pin")
                 if k.split("_")[0] not in a.skip and k not in a.skip]
        counts = {"direct_socket": a.samples, "direct_queue": a.samples, "release": a.samples,
                  "login_card": a.login_samples, "login_pin": a.pin_samples}
        total = sum(counts[k] for k in kinds)
        slices = 10
        done = {k: 0 for k in kinds}
        with progress("one request at a time: " + ", ".join(kinds), total) as advance:
            for s in range(slices):
                for kind in kinds:
                    upto = counts[kind] * (s + 1) // slices
                    while done[kind] < upto:
                        n = done[kind]
                        done[kind] += 1
                        try:
                            if kind == "release":
                                u = self._user_with_jobs(users, n)
                                await self.release_one(self.devices[self.queue_of(u)], u, "release")
                            elif kind == "direct_queue":
                                await self.direct_queue_one(ipp, n)
                            elif kind == "direct_socket":
                                await self.direct_socket_one(n)
                            elif kind == "login_card":
                                await self.login_one(users[n % len(users)], False)
                            else:
                                await self.login_one(pin_users[n % len(pin_users)], True)
                        except Failure as e:
                            self.fail(kind, e)
                        advance(1)
                        await trio.sleep(a.gap)
        with trio.move_on_after(1):
            await ipp[0].aclose()

    def _user_with_jobs(self, users: list[int], n: int) -> int:
        for k in range(len(users)):
            u = users[(n + k) % len(users)]
            if self.held[u]:
                return u
        raise Failure("no held job left to release")

    async def concurrent(self) -> None:
        """--concurrency devices (each at its own printer) releasing at once."""
        a = self.args
        c = a.concurrency
        per = [a.concurrent_samples // c + (1 if k < a.concurrent_samples % c else 0) for k in range(c)]
        t0 = time.perf_counter()
        with progress(f"{c} devices at once, each at its own printer: {a.concurrent_samples} releases",
                      a.concurrent_samples) as advance:
            async def device(k: int) -> None:
                dev = self.devices[k]
                mine = [u for u in range(a.users) if self.queue_of(u) == k]
                for n in range(per[k]):
                    try:
                        u = self._user_with_jobs(mine, n)
                        await self.release_one(dev, u, "release_concurrent")
                    except Failure as e:
                        self.fail(f"release ({c} devices at once)", e)
                    advance(1)
                    await trio.sleep(a.gap)

            async with trio.open_nursery() as nursery:
                for k in range(c):
                    nursery.start_soon(device, k)
        secs = time.perf_counter() - t0
        self.result["concurrent"] = {"devices": c, "releases": len(self.samples.get("release_concurrent", [])),
                                     "seconds": secs}

    def cpu(self) -> tuple[float, float, float]:
        return tree_cpu(self.node.proc.pid), time.process_time(), machine_busy()

    async def run(self) -> None:
        self.waiter.attach()
        try:
            await self.setup()
            await self.fill()
            await self.wait_held()
            before = self.cpu()
            t0 = time.perf_counter()
            await self.sequential()
            if "concurrent" not in self.args.skip:
                await self.concurrent()
            secs = time.perf_counter() - t0
            node, own, busy = (x - y for x, y in zip(self.cpu(), before))
            # other load: cores busy with anything but the node (with its document-engine
            # worker) and this process; the kernel's work for the node's fsyncs counts here
            self.result["measure"] = {"seconds": secs, "node_cpu_s": node, "bench_cpu_s": own,
                                      "other_load": max(0.0, busy - node - own) / secs if secs else 0.0}
            self.result["held_at_end"] = sum(len(v) for v in self.held.values())
        finally:
            self.waiter.detach()


# --------------------------------------------------------------------------- report


ROWS = [  # key, label, whose answer time goes beside it
    ("release", "release -> first byte at the printer", "release"),
    ("release_concurrent", "release, {c} devices at once -> first byte", "release_concurrent"),
    ("direct_queue", "peer: Print-Job to the direct queue -> first byte", "direct_queue"),
    ("direct_socket", "peer: direct socket to the printer -> first byte", None),
    ("login_card", "login by card", None),
    ("login_pin", "login by card + PIN (one scrypt)", None),
    ("list", "list held jobs (GET /device/jobs)", None),
]


def summarise(samples: dict[str, list[float]], answered: dict[str, list[float]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, _label, ans in ROWS:
        if samples.get(key):
            out[key] = percentiles(samples[key])
            if ans and answered.get(ans):
                out[key]["answered"] = percentiles(answered[ans])
    return out


def ratio(summary: dict[str, Any], a: str, b: str, q: str = "p99_ms") -> float | None:
    if a in summary and b in summary and summary[b].get(q):
        return summary[a][q] / summary[b][q]
    return None


def table(summary: dict[str, Any], concurrency: int) -> None:
    head = ("what", "n", "p50 ms", "p90 ms", "p99 ms", "max ms", "answered p50/p99 ms", "target")
    rows = []
    for key, label, _ans in ROWS:
        r = summary.get(key)
        if not r:
            continue
        ans = r.get("answered")
        target = ""
        if key == "release":
            target = f"p99 < {TARGET_P99_MS:g}: {'PASS' if r['p99_ms'] < TARGET_P99_MS else 'MISS'}"
        rows.append((label.format(c=concurrency), str(r["n"]), f"{r['p50_ms']:.2f}", f"{r['p90_ms']:.2f}",
                     f"{r['p99_ms']:.2f}", f"{r['max_ms']:.2f}",
                     f"{ans['p50_ms']:.2f} / {ans['p99_ms']:.2f}" if ans else "", target))
    try:
        from rich.console import Console
        from rich.table import Table
    except ImportError:
        widths = [max(len(r[i]) for r in (head, *rows)) for i in range(len(head))]
        for k, r in enumerate((head, *rows)):
            say("  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths))))
            if k == 0:
                say("  ".join("-" * w for w in widths))
        return
    t = Table(title="release latency (perf_counter in this process; sink in this process)", title_justify="left")
    for i, h in enumerate(head):
        t.add_column(h, justify="left" if i in (0, 7) else "right", no_wrap=True)
    for r in rows:
        t.add_row(*r)
    Console(width=max(140, shutil.get_terminal_size((140, 24)).columns), soft_wrap=True).print(t)


def report(args: argparse.Namespace, bench: Bench) -> dict[str, Any]:
    s = summarise(bench.samples, bench.answered)
    held = bench.result.get("held", {}).get("jobs", 0)
    say(f"\nRelease with {held:,} held jobs in the store ({args.users:,} users, {args.printers} hold queues), "
        f"one request at a time, {args.gap * 1e3:.0f} ms between samples; fsync = true")
    table(s, args.concurrency)
    ratios = {}
    for a, b in (("release", "direct_queue"), ("release", "direct_socket"), ("release_concurrent", "release")):
        for q in ("p99_ms", "p50_ms"):
            ratios[f"{a}/{b} {q[:3]}"] = ratio(s, a, b, q)
    for a, b, label in (("release", "direct_queue", "release p99 / direct-queue p99"),
                        ("release", "direct_socket", "release p99 / direct-socket p99"),
                        ("release_concurrent", "release",
                         f"release with {args.concurrency} devices at once p99 / one at a time p99")):
        r99, r50 = ratios[f"{a}/{b} p99"], ratios[f"{a}/{b} p50"]
        if r99 is not None:
            say(f"ratio {label} = {r99:.2f} (p50: {r50:.2f})")
    met = None
    if "release" in s:
        met = s["release"]["p99_ms"] < TARGET_P99_MS
        say(f"target: release p99 < {TARGET_P99_MS:g} ms with {held:,} held jobs: {s['release']['p99_ms']:.2f} ms "
            f"-> {'met' if met else 'NOT met'}")
    if "login_pin" in s:
        say("note: a card + PIN login checks the PIN against its scrypt hash (N=16384, r=8: tens of ms of CPU) by "
            "design; a card alone costs no hash")
    if "release" in s:
        say("note: a release is one fsynced commit before the answer, then the printer's lane debits the job "
            "(a commit), marks it processing and sending (two more), connects and sends")
    return {"summary": s, "ratios": ratios, "target_met": met}


# --------------------------------------------------------------------------- main


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description="Secure Print release latency (release request to the printer's first "
                                            "byte) with many held jobs, against the direct paths; login latency.")
    p.add_argument("--quick", action="store_true",
                   help="CI: 1,000 held jobs of 100 users, 50 samples per row, 10 PIN logins, 40 concurrent releases")
    p.add_argument("--jobs", type=int, default=None, help="held jobs in the store (default 10000)")
    p.add_argument("--users", type=int, default=None, help="users who hold them (default 500)")
    p.add_argument("--printers", type=int, default=None,
                   help="hold queues, each with its printer and a device (default 8; 4 with --quick)")
    p.add_argument("--pin-users", type=int, default=None, help="users with a PIN too (default 20)")
    p.add_argument("--samples", type=int, default=None,
                   help="releases timed one at a time, and as many of each direct peer (default 300)")
    p.add_argument("--login-samples", type=int, default=None, help="card logins timed (default 300)")
    p.add_argument("--pin-samples", type=int, default=None, help="card + PIN logins timed (default 50)")
    p.add_argument("--concurrency", "-c", type=int, default=None,
                   help="devices releasing at once in the concurrent phase (default: --printers)")
    p.add_argument("--concurrent-samples", type=int, default=None, help="releases in that phase (default 200)")
    p.add_argument("--connections", type=int, default=8, help="IPP connections that fill the store (default 8)")
    p.add_argument("--gap", type=float, default=0.05, help="seconds between two samples (default 0.05)")
    p.add_argument("--skip", default="", help="comma list of what to leave out: direct,login,concurrent")
    p.add_argument("--seed", type=int, default=5)
    p.add_argument("--settle-timeout", type=float, default=600.0,
                   help="longest wait for the node to count and hold every job")
    p.add_argument("--node-cprofile", type=Path, metavar="FILE",
                   help="run the node under cProfile and write its stats here (python -m pstats FILE); its "
                        "latencies are then not comparable")
    p.add_argument("--keep", action="store_true", help="keep the temporary directory (node log and state)")
    p.add_argument("--json", type=Path, help="write the results here")
    a = p.parse_args(argv)
    defaults = {"jobs": (10_000, 1_000), "users": (500, 100), "printers": (8, 4), "pin_users": (20, 10),
                "samples": (300, 50), "login_samples": (300, 50), "pin_samples": (50, 10),
                "concurrent_samples": (200, 40)}
    for k, (full, small) in defaults.items():
        if getattr(a, k) is None:
            setattr(a, k, small if a.quick else full)
    if a.concurrency is None:
        a.concurrency = a.printers
    a.skip = {s.strip() for s in a.skip.split(",") if s.strip()}
    if a.skip - {"direct", "login", "concurrent"}:
        p.error("--skip: a comma list of direct,login,concurrent")
    if min(a.jobs, a.users, a.printers, a.samples, a.connections, a.concurrency) < 1 or a.gap < 0 \
            or min(a.login_samples, a.pin_samples, a.concurrent_samples, a.pin_users) < 0:
        p.error("--jobs, --users, --printers, --samples, --connections and --concurrency must be positive")
    if a.concurrency > a.printers:
        p.error(f"--concurrency: at most one device per printer ({a.printers}: raise --printers)")
    if a.printers > a.users:
        p.error("--printers: at most --users (every hold queue needs a user)")
    a.pin_users = min(a.pin_users, a.users)
    if a.pin_samples and not a.pin_users:
        p.error("--pin-samples needs --pin-users")
    releases = a.samples + (0 if "concurrent" in a.skip else a.concurrent_samples)
    if releases > a.jobs:
        p.error(f"{releases} releases need at least as many held jobs (--jobs {a.jobs})")
    return a


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    stop_on_sigterm()  # trio turns the Ctrl-C into a KeyboardInterrupt: the finally below stops the node
    work = Path(tempfile.mkdtemp(prefix="spoolproxy-bench-release-"))
    started = time.time()
    load0 = os.getloadavg()
    result = new_result("release", args, started, load0, target={"release_p99_ms": TARGET_P99_MS},
                        document={"bytes": len(tagged_pdf("h000000")), "pages": 3, "color_pages": 1,
                                  "cost": COLOR + 2 * GRAY})
    sink = TimedSink()  # bound and listening before the node starts (it probes its printers)
    try:
        say(f"bench/release.py: {os.cpu_count()} CPUs, load {load0[0]:.2f}; {args.jobs:,} held jobs of {args.users:,} "
            f"users on {args.printers} hold queues; node in {work}")
        try:
            with phase("starting the node (fsync = true)"):
                node = Node(work, sink.port, args.printers, cprofile=args.node_cprofile)
        except PeerFailed as e:
            print(f"bench/release.py: the node did not start: {e}", file=sys.stderr)
            return EXIT_PEER
        if args.node_cprofile:
            say(f"  the node runs under cProfile ({args.node_cprofile}): its latencies are not comparable")
        sink.start()  # (a thread: after every subprocess is started, see accept_rate.Proc)
        bench = Bench(args, node, sink)
        try:
            trio.run(bench.run)
        except PeerFailed as e:
            print(f"bench/release.py: {e}", file=sys.stderr)
            return EXIT_PEER
        for proc in LIVE:
            if not proc.alive():
                print(f"bench/release.py: {proc.name} died\n{tail(proc.log)}", file=sys.stderr)
                return EXIT_PEER
        result.update(bench.result)
        result.update(report(args, bench))
        result["samples_ms"] = {k: [round(v, 3) for v in vs] for k, vs in bench.samples.items()}
        result["answered_ms"] = {k: [round(v, 3) for v in vs] for k, vs in bench.answered.items()}
    finally:
        for proc in reversed(LIVE):
            try:
                proc.stop()
            except Exception as e:  # keep cleaning up
                print(f"bench/release.py: stopping {proc.name}: {e}", file=sys.stderr)
        sink.stop()
        if args.keep:
            say(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    result["sink"] = dict(sink.stats)
    result["elapsed"] = time.time() - started
    result["loadavg_end"] = os.getloadavg()
    result["errors"] = bench.errors
    other = result.get("measure", {}).get("other_load", 0.0)
    if other > 0.25 or load0[0] > 0.5 * (os.cpu_count() or 1):
        say(f"note: the machine was busy (load {load0[0]:.2f} at the start; {other:.2f} cores busy with other work "
            f"while measuring): latencies are noisy, rerun on an idle one")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2, default=str) + "\n")
        say(f"results: {args.json}")
    if bench.errors:
        print(f"bench/release.py: {len(bench.errors)} request(s) failed:\n  " + "\n  ".join(bench.errors[:20]),
              file=sys.stderr)
        return EXIT_FAILED
    return EXIT_OK


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        print("bench/release.py: interrupted", file=sys.stderr)
        sys.exit(130)
