"""Sink printers for the load tests: they take jobs as fast as the network allows and
print nothing, so that what a benchmark measures is the proxy, not its printers.

Three kinds, each a trio server that reads and discards, counting jobs and bytes
(document bytes; protocol framing is not counted):

* ``socket`` - AppSocket/JetDirect: a connection is a job, counted when the sender
  shuts down its side, then closed (what the proxy's socket backend waits for). A
  connection that carried no byte is a printer probe, not a job.
* ``lpd`` - an RFC 1179 daemon on ``lpd.protocol.ServerConnection``: any queue is
  accepted, every file acknowledged; a job counts when its control file and every
  data file it names are in (in either order); queue listings say "no entries".
* ``ipp`` - an IPP printer over HTTP/1.1 (h11): Print-Job, Create-Job +
  Send-Document, Get-Job-Attributes (every job it ever gave an id is completed),
  Cancel-Job, Validate-Job, Get-Jobs (none), Get-Printer-Attributes. Documents are
  streamed and dropped; the only state is a job-id counter.

Counting happens before the answer that completes a job goes out (the close, the
control file's acknowledgement, the IPP response), so a sender that has its answer
finds its job counted.

In-process: ``await nursery.start(serve_sinks, ("socket", "ipp"), "127.0.0.1", stats)``
returns ``{"socket": port, "ipp": port}`` and fills ``stats`` with a ``SinkStats`` per
kind. As its own process (so that the benchmark's client loop and the sinks do not
share one GIL), ``SinkProcess`` runs::

    python -m spoolproxy.bench.sinks --kinds socket,lpd,ipp --host 127.0.0.1 --stats FILE

which prints ``{"ports": {...}}`` as its first line, rewrites FILE (JSON, atomically)
every 0.2 s and at exit, stops on SIGTERM/SIGINT, and exits by itself when its parent
goes away.
"""
from __future__ import annotations

import argparse
import json
import os
import selectors
import signal
import subprocess
import sys
import time
import weakref
from dataclasses import dataclass
from pathlib import Path
from typing import Awaitable, Callable, Iterable

import h11
import trio

from ..ipp.codec import CodecError, MessageReader, encode
from ..ipp.model import JobState, Op, PrinterState, Status, Tag
from ..ipp.types import Attribute, Collection, Group, Message, Range
from ..lpd import protocol as lpd
from .errors import BenchError

__all__ = ["KINDS", "SinkStats", "SinkProcess", "serve_sinks", "write_stats"]

KINDS = ("socket", "lpd", "ipp")
RECV = 1 << 18
STATS_INTERVAL = 0.2
PARENT_POLL = 0.5
IPP_PATH = "/ipp/print"
FORMATS = ("application/octet-stream", "application/pdf", "application/postscript",
           "application/vnd.hp-pcl", "application/vnd.hp-pclxl", "image/pwg-raster", "image/urf")
_GONE = (trio.BrokenResourceError, trio.ClosedResourceError, OSError)


@dataclass
class SinkStats:
    """What one sink received. Times are ``time.time()`` of the first and last job."""

    jobs: int = 0
    bytes: int = 0
    first_job_time: float | None = None
    last_job_time: float | None = None
    connections: int = 0
    errors: int = 0  # connections that ended in a protocol error or a reset

    def job(self, size: int) -> None:
        now = time.time()
        self.jobs += 1
        self.bytes += size
        if self.first_job_time is None:
            self.first_job_time = now
        self.last_job_time = now

    def as_dict(self) -> dict:
        return {"jobs": self.jobs, "bytes": self.bytes, "first": self.first_job_time,
                "last": self.last_job_time, "connections": self.connections, "errors": self.errors}


# -- socket ---------------------------------------------------------------------------------

async def _socket_conn(stream: trio.SocketStream, stats: SinkStats) -> None:
    size = 0
    while True:
        data = await stream.receive_some(RECV)
        if not data:
            break
        size += len(data)
    if size:
        stats.job(size)
    await stream.aclose()  # the sender's wait for our close ends: the job is "printed"


# -- lpd ------------------------------------------------------------------------------------

async def _lpd_conn(stream: trio.SocketStream, stats: SinkStats) -> None:
    conn = lpd.ServerConnection()
    control: lpd.ControlFile | None = None
    data: dict[str, int] = {}  # data files of the job being received: name -> bytes
    current: lpd.FileStart | None = None
    text = bytearray()  # the control file being received
    size = 0
    try:
        while True:
            ev = conn.next_event()
            if ev is lpd.NEED_DATA:
                conn.receive_data(await stream.receive_some(RECV))
            elif isinstance(ev, lpd.FileData):
                if current is not None and current.kind == "control":
                    text += ev.data
                else:
                    size += len(ev.data)
            elif isinstance(ev, lpd.FileStart):
                current, size = ev, 0
                text.clear()
                await stream.send_all(lpd.ACK)
            elif isinstance(ev, lpd.FileEnd):
                assert current is not None
                if current.kind == "control":
                    control = lpd.parse_control(bytes(text))
                else:
                    data[current.name] = size
                current = None
                if control is not None and all(f.name in data for f in control.files):
                    stats.job(sum(data.values()))
                    control, data = None, {}
                if conn.state != "closed":  # a size-0 data file ends at EOF: nobody to tell
                    await stream.send_all(lpd.ACK)
            elif isinstance(ev, lpd.DaemonCommand):
                if ev.command == lpd.Command.RECEIVE_JOB:
                    await stream.send_all(lpd.ACK)
                    continue
                if ev.command in (lpd.Command.QUEUE_SHORT, lpd.Command.QUEUE_LONG):
                    await stream.send_all(b"no entries\n")
                return  # print-waiting and remove: nothing to do
            elif isinstance(ev, lpd.AbortJob):
                control, data = None, {}
            else:  # ConnectionClosed
                return
    except lpd.LpdProtocolError:
        stats.errors += 1
        try:
            await stream.send_all(lpd.NAK)
        except _GONE:
            pass
    finally:
        await trio.aclose_forcefully(stream)


# -- ipp ------------------------------------------------------------------------------------

class _Ipp:
    """The IPP printer's answers; ``last_id`` is the only state that grows (an int)."""

    def __init__(self, uri: str, stats: SinkStats) -> None:
        self.uri = uri
        self.stats = stats
        self.last_id = 0
        self.started = time.monotonic()
        self.printer = g = Group(Tag.PRINTER)
        g.add("operations-supported", Tag.ENUM, Op.PRINT_JOB, Op.VALIDATE_JOB, Op.CREATE_JOB,
              Op.SEND_DOCUMENT, Op.CANCEL_JOB, Op.GET_JOB_ATTRIBUTES, Op.GET_JOBS,
              Op.GET_PRINTER_ATTRIBUTES)
        g.add("printer-uri-supported", Tag.URI, uri)
        g.add("uri-security-supported", Tag.KEYWORD, "none")
        g.add("uri-authentication-supported", Tag.KEYWORD, "none")
        g.add("printer-name", Tag.NAME, "sink")
        g.add("printer-info", Tag.TEXT, "spoolproxy bench sink: prints nothing")
        g.add("printer-location", Tag.TEXT, "bench")
        g.add("printer-more-info", Tag.URI, "http" + uri[3:].rsplit("/ipp/", 1)[0] + "/")
        g.add("printer-make-and-model", Tag.TEXT, "spoolproxy bench sink")
        g.add("printer-state", Tag.ENUM, PrinterState.IDLE)
        g.add("printer-state-reasons", Tag.KEYWORD, "none")
        g.add("printer-is-accepting-jobs", Tag.BOOLEAN, True)
        g.add("ipp-versions-supported", Tag.KEYWORD, "1.1", "2.0")
        g.add("charset-configured", Tag.CHARSET, "utf-8")
        g.add("charset-supported", Tag.CHARSET, "utf-8")
        g.add("natural-language-configured", Tag.LANGUAGE, "en")
        g.add("generated-natural-language-supported", Tag.LANGUAGE, "en")
        g.add("document-format-default", Tag.MIME_TYPE, "application/octet-stream")
        g.add("document-format-supported", Tag.MIME_TYPE, *FORMATS)
        g.add("compression-supported", Tag.KEYWORD, "none")
        g.add("pdl-override-supported", Tag.KEYWORD, "attempted")
        g.add("multiple-document-jobs-supported", Tag.BOOLEAN, False)
        g.add("copies-default", Tag.INTEGER, 1)
        g.add("copies-supported", Tag.RANGE, Range(1, 999))
        g.add("sides-default", Tag.KEYWORD, "one-sided")
        g.add("sides-supported", Tag.KEYWORD, "one-sided", "two-sided-long-edge", "two-sided-short-edge")
        g.add("print-color-mode-default", Tag.KEYWORD, "auto")
        g.add("print-color-mode-supported", Tag.KEYWORD, "auto", "monochrome", "color")
        g.add("media-default", Tag.KEYWORD, "iso_a4_210x297mm")
        g.add("media-supported", Tag.KEYWORD, "iso_a4_210x297mm", "na_letter_8.5x11in")
        g.add("media-ready", Tag.KEYWORD, "iso_a4_210x297mm")
        g.add("media-col-supported", Tag.KEYWORD, "media-size")
        g.add("media-col-default", Tag.BEGIN_COLLECTION, Collection([Attribute.of(
            "media-size", Tag.BEGIN_COLLECTION, Collection([
                Attribute.of("x-dimension", Tag.INTEGER, 21000),
                Attribute.of("y-dimension", Tag.INTEGER, 29700)]))]))
        self.up_time = g.add("printer-up-time", Tag.INTEGER, 1)

    def _job(self, job_id: int, state: int, reason: str, *, impressions: bool = False) -> Group:
        g = Group(Tag.JOB)
        g.add("job-id", Tag.INTEGER, job_id)
        g.add("job-uri", Tag.URI, f"{self.uri}/{job_id}")
        g.add("job-state", Tag.ENUM, state)
        g.add("job-state-reasons", Tag.KEYWORD, reason)
        if impressions:
            g.add("job-impressions-completed", Tag.INTEGER, 0)
        return g

    def answer(self, req: Message, size: int) -> bytes:
        """The encoded response to ``req``, whose document had ``size`` bytes."""
        op, g = req.code, req.operation
        if req.version[0] not in (1, 2):
            return _encode(req, Status.VERSION_NOT_SUPPORTED)
        if op == Op.GET_PRINTER_ATTRIBUTES:  # always all of them, whatever was asked for
            self.up_time.values[0] = 1 + int(time.monotonic() - self.started)
            return _encode(req, Status.OK, self.printer)
        if op in (Op.PRINT_JOB, Op.CREATE_JOB):
            self.last_id += 1
            if op == Op.PRINT_JOB:
                self.stats.job(size)
                return _encode(req, Status.OK, self._job(self.last_id, JobState.COMPLETED,
                                                         "job-completed-successfully"))
            return _encode(req, Status.OK, self._job(self.last_id, JobState.PENDING_HELD, "job-incoming"))
        job_id = g.value("job-id")
        known = isinstance(job_id, int) and 1 <= job_id <= self.last_id
        if op == Op.SEND_DOCUMENT:
            if not known:
                return _encode(req, Status.NOT_FOUND)
            if g.value("last-document") is True:
                self.stats.job(size)  # multiple-document-jobs-supported is false: one document
                return _encode(req, Status.OK, self._job(job_id, JobState.COMPLETED,
                                                         "job-completed-successfully"))
            return _encode(req, Status.OK, self._job(job_id, JobState.PENDING_HELD, "job-incoming"))
        if op == Op.GET_JOB_ATTRIBUTES:
            if not known:
                return _encode(req, Status.NOT_FOUND)
            return _encode(req, Status.OK, self._job(job_id, JobState.COMPLETED,
                                                     "job-completed-successfully", impressions=True))
        if op in (Op.CANCEL_JOB, Op.VALIDATE_JOB, Op.GET_JOBS):
            return _encode(req, Status.OK)
        return _encode(req, Status.OPERATION_NOT_SUPPORTED)


def _operation_group() -> Group:
    g = Group(Tag.OPERATION)
    g.add("attributes-charset", Tag.CHARSET, "utf-8")
    g.add("attributes-natural-language", Tag.LANGUAGE, "en")
    return g


def _encode(req: Message, status: int, *groups: Group) -> bytes:
    version = req.version if req.version[0] in (1, 2) else (2, 0)
    return encode(Message(version=version, code=int(status), request_id=req.request_id,
                          groups=[_operation_group(), *groups]))


async def _http_event(stream: trio.SocketStream, conn: h11.Connection):
    while True:
        ev = conn.next_event()
        if ev is not h11.NEED_DATA:
            return ev
        if conn.they_are_waiting_for_100_continue:
            await stream.send_all(conn.send(h11.InformationalResponse(status_code=100, headers=[])))
        conn.receive_data(await stream.receive_some(RECV))


async def _respond(stream: trio.SocketStream, conn: h11.Connection, status: int, body: bytes,
                   content_type: str = "application/ipp") -> None:
    head = conn.send(h11.Response(status_code=status, headers=[
        ("Content-Type", content_type), ("Content-Length", str(len(body)))]))
    await stream.send_all(head + conn.send(h11.Data(data=body)) + conn.send(h11.EndOfMessage()))


async def _ipp_conn(stream: trio.SocketStream, printer: _Ipp) -> None:
    conn = h11.Connection(h11.SERVER)
    try:
        while True:
            ev = await _http_event(stream, conn)
            if isinstance(ev, h11.ConnectionClosed):
                return
            assert isinstance(ev, h11.Request)
            reader: MessageReader | None = MessageReader() if ev.method == b"POST" else None
            msg: Message | None = None
            size = 0
            while True:  # the body: the IPP header, then the document, counted and dropped
                ev = await _http_event(stream, conn)
                if isinstance(ev, h11.EndOfMessage):
                    break
                if not isinstance(ev, h11.Data):
                    return
                if msg is not None:
                    size += len(ev.data)
                elif reader is not None:
                    msg = reader.feed(ev.data)
                    if msg is not None:
                        size, reader.rest = len(reader.rest), b""
            if reader is None:
                await _respond(stream, conn, 200, b"spoolproxy bench sink: POST IPP requests to "
                               + IPP_PATH.encode() + b"\n", "text/plain")
            elif msg is None:
                await _respond(stream, conn, 400, b"no IPP request in the body\n", "text/plain")
            else:
                await _respond(stream, conn, 200, printer.answer(msg, size))
            if conn.our_state is not h11.DONE or conn.their_state is not h11.DONE:
                return
            conn.start_next_cycle()
    except (h11.ProtocolError, CodecError):
        printer.stats.errors += 1
    finally:
        await trio.aclose_forcefully(stream)


# -- serving --------------------------------------------------------------------------------

def _guard(handler: Callable[[trio.SocketStream], Awaitable[None]],
           stats: SinkStats) -> Callable[[trio.SocketStream], Awaitable[None]]:
    """A broken connection ends only itself, never the sink."""
    async def run(stream: trio.SocketStream) -> None:
        stats.connections += 1
        try:
            await handler(stream)
        except _GONE:
            stats.errors += 1
            await trio.aclose_forcefully(stream)
    return run


async def serve_sinks(kinds: Iterable[str], host: str, stats: dict[str, SinkStats], *,
                      task_status=trio.TASK_STATUS_IGNORED) -> None:
    """Serve a sink of each kind on a free port of ``host``; reports ``{kind: port}``.
    ``stats`` gets (or keeps) a SinkStats per kind."""
    kinds = tuple(kinds)
    unknown = [k for k in kinds if k not in KINDS]
    if unknown or not kinds:
        raise BenchError(f"unknown sink kind(s) {', '.join(unknown) or '(none given)'}: "
                         f"choose from {', '.join(KINDS)}")
    ports: dict[str, int] = {}
    async with trio.open_nursery() as nursery:
        for kind in kinds:
            st = stats.setdefault(kind, SinkStats())
            listeners = await trio.open_tcp_listeners(0, host=host)
            ports[kind] = port = listeners[0].socket.getsockname()[1]
            if kind == "socket":
                handler = lambda s, st=st: _socket_conn(s, st)  # noqa: E731
            elif kind == "lpd":
                handler = lambda s, st=st: _lpd_conn(s, st)  # noqa: E731
            else:
                printer = _Ipp(f"ipp://{_uri_host(host)}:{port}{IPP_PATH}", st)
                handler = lambda s, p=printer: _ipp_conn(s, p)  # noqa: E731
            nursery.start_soon(trio.serve_listeners, _guard(handler, st), listeners)
        task_status.started(dict(ports))


def _uri_host(host: str) -> str:
    if host in ("", "0.0.0.0", "::"):
        return "127.0.0.1"
    return f"[{host}]" if ":" in host else host


def write_stats(path: str | os.PathLike, stats: dict[str, SinkStats]) -> None:
    """``{kind: {"jobs", "bytes", "first", "last", ...}}`` to ``path``, atomically."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps({k: s.as_dict() for k, s in stats.items()}))
    os.replace(tmp, path)


# -- as a process ---------------------------------------------------------------------------

async def _main(kinds: list[str], host: str, stats_path: str | None) -> None:
    stats: dict[str, SinkStats] = {}
    parent = os.getppid()
    with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
        async with trio.open_nursery() as nursery:
            ports = await nursery.start(serve_sinks, kinds, host, stats)
            if stats_path:
                write_stats(stats_path, stats)
            print(json.dumps({"ports": ports}), flush=True)

            async def keep_writing() -> None:
                while True:
                    await trio.sleep(STATS_INTERVAL)
                    write_stats(stats_path, stats)

            async def orphaned() -> None:  # no prctl: notice the parent's death by polling
                while os.getppid() == parent:
                    await trio.sleep(PARENT_POLL)
                nursery.cancel_scope.cancel()

            if stats_path:
                nursery.start_soon(keep_writing)
            nursery.start_soon(orphaned)
            async for _ in signals:
                break
            nursery.cancel_scope.cancel()
    if stats_path:
        write_stats(stats_path, stats)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m spoolproxy.bench.sinks",
                                description="Sink printers that discard every job (benchmarks).")
    p.add_argument("--kinds", default=",".join(KINDS), help="comma-separated: socket,lpd,ipp")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--stats", help="JSON file rewritten every 0.2 s with each sink's counts")
    a = p.parse_args(argv)
    kinds = [k.strip() for k in a.kinds.split(",") if k.strip()]
    unknown = [k for k in kinds if k not in KINDS]
    if unknown or not kinds:
        p.error(f"unknown sink kind(s) {', '.join(unknown) or '(none given)'}: choose from {', '.join(KINDS)}")
    trio.run(_main, kinds, a.host, a.stats)
    return 0


def _terminate(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


class SinkProcess:
    """The sinks in a child process, for a (synchronous) benchmark runner.

        with SinkProcess(workdir) as sinks:
            queue_uri = sinks.uri("lpd")
            ...
            print(sinks.stats()["lpd"]["jobs"])

    The child's stderr goes to ``workdir/sinks.log``, its counts to
    ``workdir/sinks-stats.json``. It stops on ``stop()``, when this object is
    collected, at interpreter exit, and by itself when this process dies.
    """

    def __init__(self, workdir: str | os.PathLike, kinds: Iterable[str] = KINDS, *,
                 host: str = "127.0.0.1") -> None:
        self.workdir = Path(workdir)
        self.kinds = tuple(kinds)
        self.host = host
        self.stats_path = self.workdir / "sinks-stats.json"
        self.log_path = self.workdir / "sinks.log"
        self.ports: dict[str, int] = {}
        self.proc: subprocess.Popen | None = None
        self._finalizer: weakref.finalize | None = None

    def start(self, timeout: float = 15) -> "SinkProcess":
        if self.proc is not None:
            raise BenchError("the sinks are started already")
        self.workdir.mkdir(parents=True, exist_ok=True)
        root = str(Path(__file__).resolve().parents[2])  # import spoolproxy from this checkout
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(
            [root, *filter(None, [os.environ.get("PYTHONPATH")])]))
        argv = [sys.executable, "-m", "spoolproxy.bench.sinks", "--kinds", ",".join(self.kinds),
                "--host", self.host, "--stats", str(self.stats_path)]
        with open(self.log_path, "ab") as log:
            # its own session: a Ctrl-C at the terminal is the benchmark's to handle (it
            # stops the load, then the sinks); the sinks notice their parent's death anyway
            self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                         stderr=log, env=env, cwd=self.workdir, start_new_session=True)
        self._finalizer = weakref.finalize(self, _terminate, self.proc)
        try:
            line = self._first_line(timeout)
            self.ports = {k: int(v) for k, v in json.loads(line)["ports"].items()}
        except (BenchError, ValueError, KeyError, TypeError) as e:
            self.stop()
            raise BenchError(f"the sinks did not start: {e}\n{self.log_tail()}") from None
        return self

    def _first_line(self, timeout: float) -> str:
        assert self.proc is not None and self.proc.stdout is not None
        out = self.proc.stdout
        buf = b""
        deadline = time.monotonic() + timeout
        with selectors.DefaultSelector() as sel:
            sel.register(out, selectors.EVENT_READ)
            while b"\n" not in buf:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise BenchError(f"no ports line within {timeout:g} s")
                if sel.select(min(left, 0.5)):
                    chunk = os.read(out.fileno(), 4096)
                    if not chunk:
                        raise BenchError(f"the process exited (status {self.proc.wait()})")
                    buf += chunk
        out.close()  # the child writes nothing else to stdout
        return buf.split(b"\n", 1)[0].decode()

    def uri(self, kind: str, queue: str = "q") -> str:
        """The printer URI of a sink, for a proxy queue's ``printer``."""
        host, port = _uri_host(self.host), self.ports[kind]
        if kind == "socket":
            return f"socket://{host}:{port}"
        if kind == "lpd":
            return f"lpd://{host}:{port}/{queue}"
        return f"ipp://{host}:{port}{IPP_PATH}"

    def stats(self) -> dict:
        """The last counts the child wrote: ``{kind: {"jobs", "bytes", "first", "last", ...}}``."""
        try:
            return json.loads(self.stats_path.read_text())
        except (OSError, ValueError):
            return {}

    def wait_jobs(self, kind: str, jobs: int, timeout: float = 60) -> dict:
        """Wait until the sink of ``kind`` counted ``jobs`` jobs; its counts, or BenchError."""
        deadline = time.monotonic() + timeout
        while True:
            st = self.stats().get(kind, {})
            if st.get("jobs", 0) >= jobs:
                return st
            if time.monotonic() > deadline or (self.proc is not None and self.proc.poll() is not None):
                raise BenchError(f"the {kind} sink counted {st.get('jobs', 0)} of {jobs} jobs")
            time.sleep(STATS_INTERVAL / 2)

    def stop(self) -> None:
        if self._finalizer is not None:
            self._finalizer()  # SIGTERM, wait, SIGKILL if it must; once
        if self.proc is not None and self.proc.stdout is not None:
            self.proc.stdout.close()

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def __enter__(self) -> "SinkProcess":
        if self.proc is None:
            self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


if __name__ == "__main__":
    sys.exit(main())
