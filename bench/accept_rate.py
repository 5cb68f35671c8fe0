#!/usr/bin/env python3
"""Jobs accepted per second over IPP: spoolproxy against cupsd, same client, same run.

    python3 bench/accept_rate.py [--jobs 2000 | --seconds S] [--concurrency 8] [--rounds 3]
                                 [--quick] [--json FILE]    (--help for the rest)

It starts its own peers in a temporary directory and removes them afterwards:

* an AppSocket sink (bench/_sink.py, its own process) that reads and discards every job;
* a private cupsd (own configuration, spool, cache, state and logs; 127.0.0.1 only; no
  authentication; ``SyncOnClose Yes`` so it fsyncs the job files it writes, and
  ``DirtyCleanInterval 0`` so it writes them when it answers rather than up to 30 s
  later: durability on, as the target asks (``--cupsd-dirty-clean-interval 30`` is
  cupsd's lazier default, which answers before anything reaches the disk);
  ``PreserveJobHistory No`` and ``MaxJobs 0`` so it neither refuses a backlog nor slows
  down with history) with a raw queue ``rawq`` (no PPD, no filters) to the sink;
* for reference, a second cupsd as shipped (``DirtyCleanInterval 30``), reported with
  its own ratio and never used for the target;
* a spoolproxy node (``fsync = true``) with one direct queue to the same sink, and
  (unless ``--no-nofsync``) a second node with ``fsync = false``, reported on its own
  line and never used for the ratio.

One client drives every target the same way: ``--concurrency`` trio tasks, each with
its own persistent HTTP/1.1 keep-alive connection, sending one pre-encoded Print-Job
(IPP 2.0, application/pdf, a few-page PDF made once with Ghostscript, Content-Length)
after another and reading the status code of each response.  Each run is a warm-up and
then a measured phase of ``--jobs`` jobs (or ``--seconds``); the targets take turns
round by round (the order is reversed every other round), and between runs cupsd's
queue is cancelled and the proxy's is drained to the sink.

Output: a table (best and median run per target: jobs, seconds, jobs/s, p50/p99
latency, errors, backlog, server CPU per job), then ``ratio proxy/cupsd = X.XX`` (median
runs) and whether the target (>= 1.00) is met.  ``--json FILE`` writes everything.

Exit status: 0 when it ran (missing the target is reported, not a failure), 1 when jobs
failed (any non-successful status or a broken connection), 3 when a peer did not start.
"""
from __future__ import annotations

import argparse
import ctypes
import json
import os
import platform
import resource
import select
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import trio

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from spoolproxy.bench.cupsd import QUEUE as CUPS_QUEUE  # noqa: E402
from spoolproxy.bench.cupsd import Cupsd, tail  # noqa: E402  (the one private cupsd, shared with `bench run --compare`)
from spoolproxy.bench.errors import BenchError  # noqa: E402
from spoolproxy.ipp import codec  # noqa: E402
from spoolproxy.ipp.model import Op, Status, Tag  # noqa: E402
from spoolproxy.ipp.types import Message  # noqa: E402

SBIN = ("/usr/sbin", "/sbin", "/usr/local/sbin")
PROXY_QUEUE = "bench"
USER = "bench"
EXIT_OK, EXIT_JOB_ERRORS, EXIT_PEER = 0, 1, 3
TARGETS = ("cupsd", "cupsd-shipped", "proxy", "proxy-nofsync")
SHIPPED_DIRTY_CLEAN = 30  # cupsd's default DirtyCleanInterval


class PeerFailed(RuntimeError):
    """A peer did not start or stopped answering; the message carries its log."""


def which(tool: str) -> str | None:
    return shutil.which(tool) or shutil.which(tool, path=os.pathsep.join(SBIN))


def need(tool: str) -> str:
    path = which(tool)
    if path is None:
        raise PeerFailed(f"{tool} is not installed (Debian: cups, cups-client, ghostscript)")
    return path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]






def cpu_seconds(pid: int, children: bool = False) -> float:
    """utime + stime of one process (with ``children``: plus those of its reaped children,
    which for cupsd are the backends it ran)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (FileNotFoundError, IndexError):
        return 0.0
    ticks = int(fields[11]) + int(fields[12]) + ((int(fields[13]) + int(fields[14])) if children else 0)
    return ticks / os.sysconf("SC_CLK_TCK")


def machine_busy() -> float:
    """CPU seconds the whole machine spent not idle (all cores), from /proc/stat."""
    v = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = v[3] + (v[4] if len(v) > 4 else 0)
    return (sum(v[:8]) - idle) / os.sysconf("SC_CLK_TCK")


# --------------------------------------------------------------------------- processes


LIVE: list["Proc"] = []  # every process started; main() stops them all, whatever happened


def _die_with_parent() -> None:  # pragma: no cover - runs in the child before exec
    """PR_SET_PDEATHSIG: the kernel sends the peer SIGTERM if the benchmark dies, even
    by SIGKILL, so a killed run leaves no cupsd or node behind."""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM, 0, 0, 0)  # PR_SET_PDEATHSIG = 1
    except (OSError, AttributeError):
        pass


class Proc:
    """A subprocess in its own session with its output in a log file.  Start them
    before any trio.run (preexec_fn is not safe while other threads run)."""

    def __init__(self, name: str, argv: list[str], log: Path, *, env: dict | None = None,
                 cwd: Path | None = None, stdout_pipe: bool = False):
        self.name, self.argv, self.log = name, argv, log
        self._logf = open(log, "ab")
        self.p = subprocess.Popen(argv, stdin=subprocess.DEVNULL,
                                  stdout=subprocess.PIPE if stdout_pipe else self._logf,
                                  stderr=self._logf, env=env, cwd=cwd, start_new_session=True,
                                  preexec_fn=_die_with_parent)
        LIVE.append(self)

    @property
    def pid(self) -> int:
        return self.p.pid

    def alive(self) -> bool:
        return self.p.poll() is None

    def stop(self, timeout: float = 10.0) -> None:
        if self.p.poll() is None:
            try:
                self.p.send_signal(signal.SIGTERM)
                self.p.wait(timeout)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait()
        self._logf.close()


def wait_until(pred, timeout: float, what: str, proc: Proc | None = None, log: Path | None = None):
    deadline = time.monotonic() + timeout
    while True:
        v = pred()
        if v:
            return v
        if proc is not None and not proc.alive():
            raise PeerFailed(f"{proc.name} exited with {proc.p.returncode} before {what}\n"
                             f"{tail(log or proc.log)}")
        if time.monotonic() > deadline:
            raise PeerFailed(f"{what}: not within {timeout:.0f} s\n{tail(log or proc.log) if proc else ''}")
        time.sleep(0.05)


class Sink:
    def __init__(self, work: Path):
        self.proc = Proc("sink", [sys.executable, str(Path(__file__).with_name("_sink.py"))],
                         work / "sink.log", stdout_pipe=True)
        ready, _, _ = select.select([self.proc.p.stdout], [], [], 30)
        line = self.proc.p.stdout.readline().decode().split() if ready else []  # type: ignore[union-attr]
        if len(line) != 2 or line[0] != "PORT":
            self.proc.stop()
            raise PeerFailed(f"AppSocket sink did not start\n{tail(self.proc.log)}")
        self.port = int(line[1])
        self.stats: dict = {}

    def stop(self) -> None:
        if self.proc.alive():
            self.proc.p.send_signal(signal.SIGTERM)
            try:
                out, _ = self.proc.p.communicate(timeout=10)
                self.stats = json.loads(out.decode().strip().splitlines()[-1])
            except (subprocess.TimeoutExpired, ValueError, IndexError):
                pass
        self.proc.stop()


class Node:
    """``python -m spoolproxy serve --config FILE`` with one queue to the sink."""

    def __init__(self, work: Path, name: str, sink_port: int, *, fsync: bool, cprofile: Path | None = None):
        self.dir = work / name
        self.dir.mkdir(parents=True, exist_ok=True)
        self.fsync = fsync
        cfg = self.dir / "node.toml"
        cfg.write_text(f"""\
[node]
name = "{name}"
state_dir = "{self.dir / 'state'}"
fsync = {'true' if fsync else 'false'}

[ipp]
listen = "127.0.0.1"
port = 0

[lpd]
enabled = false

[web]
enabled = false

[queues.{PROXY_QUEUE}]
printer = "socket://127.0.0.1:{sink_port}"
default = true
""")
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH", "")) if p)
        self.log = self.dir / "node.log"
        prefix = [sys.executable] + (["-m", "cProfile", "-o", str(cprofile.resolve())] if cprofile else [])
        self.proc = Proc(name, [*prefix, "-m", "spoolproxy", "serve", "--config", str(cfg)],
                         self.log, env=env, cwd=self.dir)
        marker = f"IPP queue {PROXY_QUEUE} "

        def ready() -> str | None:
            for line in self.log.read_text(errors="replace").splitlines():
                if marker in line:
                    return line.split(marker, 1)[1].split()[0]
            return None

        self.uri = wait_until(ready, 60, "the node logging its IPP queue", self.proc)
        self.port = int(self.uri.split("://", 1)[1].split("/", 1)[0].rsplit(":", 1)[1])
        self.path = "/" + self.uri.split("://", 1)[1].split("/", 1)[1]

    def stop(self) -> None:
        self.proc.stop(15)


# --------------------------------------------------------------------------- IPP helpers


def ipp_request(op: int, uri: str, *extra: tuple[str, int, object], request_id: int = 1) -> Message:
    m = Message(version=(2, 0), code=op, request_id=request_id)
    g = m.add_group(Tag.OPERATION)
    g.add("attributes-charset", Tag.CHARSET, "utf-8")
    g.add("attributes-natural-language", Tag.LANGUAGE, "en")
    g.add("printer-uri", Tag.URI, uri)
    g.add("requesting-user-name", Tag.NAME, USER)
    for name, tag, value in extra:
        if isinstance(value, (list, tuple)):
            g.add(name, tag, *value)
        else:
            g.add(name, tag, value)
    return m


def http_post(port: int, path: str, ipp: bytes, document: bytes = b"") -> bytes:
    return (f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/ipp\r\n"
            f"Content-Length: {len(ipp) + len(document)}\r\nUser-Agent: spoolproxy-bench\r\n\r\n"
            ).encode() + ipp + document


def print_job_bytes(port: int, path: str, uri: str, document: bytes, fmt: str = "application/pdf") -> bytes:
    req = ipp_request(Op.PRINT_JOB, uri, ("job-name", Tag.NAME, "accept-rate"),
                      ("document-format", Tag.MIME_TYPE, fmt))
    return http_post(port, path, codec.encode(req), document)


class HttpConn:
    """One keep-alive connection; just enough HTTP/1.1 to read IPP responses fast."""

    def __init__(self, stream: trio.SocketStream):
        self.stream = stream
        self.buf = bytearray()
        self.close_after = False

    @classmethod
    async def open(cls, port: int) -> "HttpConn":
        return cls(await trio.open_tcp_stream("127.0.0.1", port))

    async def _fill(self) -> None:
        data = await self.stream.receive_some(65536)
        if not data:
            raise ConnectionError("server closed the connection")
        self.buf += data

    async def request(self, payload: bytes) -> tuple[int, bytes]:
        """Send a pre-encoded request; return (HTTP status, body)."""
        await self.stream.send_all(payload)
        return await self.response()

    async def response(self) -> tuple[int, bytes]:
        while True:
            end = self.buf.find(b"\r\n\r\n")
            while end < 0:
                await self._fill()
                end = self.buf.find(b"\r\n\r\n")
            head = bytes(self.buf[:end]).lower()
            del self.buf[:end + 4]
            code = int(head[9:12])
            if code != 100:
                break
        self.close_after = b"\nconnection: close" in head
        i = head.find(b"\ncontent-length:")
        if i >= 0:
            j = head.find(b"\r", i + 16)
            n = int(head[i + 16:j if j > 0 else len(head)])
            while len(self.buf) < n:
                await self._fill()
            body = bytes(self.buf[:n])
            del self.buf[:n]
            return code, body
        if b"\ntransfer-encoding: chunked" in head:
            body = bytearray()
            while True:
                j = self.buf.find(b"\r\n")
                while j < 0:
                    await self._fill()
                    j = self.buf.find(b"\r\n")
                size = int(bytes(self.buf[:j]).split(b";")[0], 16)
                need_ = j + 2 + size + 2
                while len(self.buf) < need_:
                    await self._fill()
                body += self.buf[j + 2:j + 2 + size]
                del self.buf[:need_]
                if size == 0:  # (no trailers from cupsd or spoolproxy)
                    return code, bytes(body)
        # neither: the body runs to the end of the connection
        self.close_after = True
        try:
            while True:
                await self._fill()
        except ConnectionError:
            pass
        body = bytes(self.buf)
        self.buf.clear()
        return code, body

    async def aclose(self) -> None:
        await self.stream.aclose()


async def ipp_call(port: int, path: str, msg: Message, document: bytes = b"") -> Message:
    conn = await HttpConn.open(port)
    try:
        code, body = await conn.request(http_post(port, path, codec.encode(msg), document))
    finally:
        await conn.aclose()
    if code != 200:
        raise PeerFailed(f"HTTP {code} from 127.0.0.1:{port}{path}: {body[:200]!r}")
    return codec.decode(body)[0]


def status_name(code: int) -> str:
    try:
        return f"{Status(code).name.lower().replace('_', '-')} (0x{code:04x})"
    except ValueError:
        return f"0x{code:04x}"


async def not_completed(target: "Target") -> int:
    """The target's unfinished jobs (queued-job-count: pending, held and processing).
    Cheaper for both servers than Get-Jobs, which builds every job's attributes."""
    resp = await ipp_call(target.port, target.path, ipp_request(
        Op.GET_PRINTER_ATTRIBUTES, target.uri, ("requested-attributes", Tag.KEYWORD, "queued-job-count")))
    if resp.code >= 0x0100:
        raise PeerFailed(f"Get-Printer-Attributes on {target.label}: {status_name(resp.code)}")
    for g in resp.groups:
        if g.tag == Tag.PRINTER:
            value = g.value("queued-job-count")
            if isinstance(value, int):
                return value
    raise PeerFailed(f"{target.label} reports no queued-job-count")


# --------------------------------------------------------------------------- client


@dataclass
class Run:
    target: str
    round: int
    jobs: int = 0
    seconds: float = 0.0
    rate: float = 0.0
    p50_ms: float = 0.0
    p99_ms: float = 0.0
    max_ms: float = 0.0
    errors: int = 0
    errors_by_status: dict = field(default_factory=dict)
    backlog: int = 0              # jobs the target had not finished when the phase ended
    server_cpu_ms_per_job: float = 0.0  # the server process (cupsd: with the backends it reaped)
    client_cpu_ms_per_job: float = 0.0
    sink_cpu_ms_per_job: float = 0.0
    other_load: float = 0.0       # cores busy with anything else on the machine during the run
    settle_seconds: float = 0.0   # afterwards: cancelling (cupsd) or draining (proxy) the backlog
    warmup_jobs: int = 0


@dataclass
class Target:
    key: str
    label: str
    port: int
    path: str
    uri: str
    pid: int
    sink_pid: int = 0
    payload: bytes = b""
    runs: list[Run] = field(default_factory=list)


async def phase(conns: list[HttpConn], target: Target, *, jobs: int = 0, seconds: float = 0.0,
                latencies: list[float] | None = None, errors: dict | None = None) -> tuple[int, float]:
    """Send jobs over every connection until ``jobs`` were sent (or ``seconds`` passed);
    returns (jobs answered, wall seconds)."""
    payload = target.payload
    remaining = [jobs]
    done = [0]
    now = time.perf_counter
    deadline = now() + seconds if seconds else None
    errs = errors if errors is not None else {}
    lat = latencies if latencies is not None else []

    async def worker(i: int) -> None:
        while True:
            if deadline is not None:
                if now() >= deadline:
                    return
            else:
                if remaining[0] <= 0:
                    return
                remaining[0] -= 1
            t0 = now()
            try:
                code, body = await conns[i].request(payload)
            except (OSError, ConnectionError, trio.BrokenResourceError, ValueError) as e:
                key = f"connection: {type(e).__name__}"
                errs[key] = errs.get(key, 0) + 1
                with trio.move_on_after(1):
                    await conns[i].aclose()
                conns[i] = await HttpConn.open(target.port)
                done[0] += 1
                continue
            lat.append(now() - t0)
            done[0] += 1
            if code != 200:
                key = f"http {code}"
                errs[key] = errs.get(key, 0) + 1
            elif len(body) < 8 or body[2] != 0:  # successful-ok*: status 0x0000-0x00FF
                key = status_name((body[2] << 8) | body[3]) if len(body) >= 4 else "short IPP response"
                errs[key] = errs.get(key, 0) + 1
            if conns[i].close_after:
                await conns[i].aclose()
                conns[i] = await HttpConn.open(target.port)

    t_start = now()
    async with trio.open_nursery() as n:
        for i in range(len(conns)):
            n.start_soon(worker, i)
    return done[0], now() - t_start


def pct(sorted_values: list[float], q: float) -> float:
    if not sorted_values:
        return 0.0
    k = min(len(sorted_values) - 1, max(0, int(round(q * (len(sorted_values) - 1)))))
    return sorted_values[k]


async def measure(target: Target, rnd: int, args: argparse.Namespace) -> Run:
    conns = [await HttpConn.open(target.port) for _ in range(args.concurrency)]
    try:
        warm = args.warmup if args.warmup is not None else max(args.concurrency * 4, min(200, args.jobs // 10))
        werr: dict = {}
        await phase(conns, target, jobs=warm, errors=werr)
        if werr:
            raise PeerFailed(f"{target.label}: warm-up jobs failed: {werr}")
        lat: list[float] = []
        errs: dict = {}
        def snapshot() -> tuple[float, float, float, float]:
            ru = resource.getrusage(resource.RUSAGE_SELF)
            return (cpu_seconds(target.pid, children=True), ru.ru_utime + ru.ru_stime,
                    cpu_seconds(target.sink_pid), machine_busy())

        before = snapshot()
        n, secs = await phase(conns, target, jobs=0 if args.seconds else args.jobs,
                              seconds=args.seconds or 0.0, latencies=lat, errors=errs)
        after = snapshot()
    finally:
        for c in conns:
            with trio.move_on_after(1):
                await c.aclose()
    lat.sort()
    server_cpu, client_cpu, sink_cpu, busy = (a - b for a, b in zip(after, before))
    run = Run(target=target.key, round=rnd, jobs=n, seconds=secs, rate=n / secs if secs else 0.0,
              p50_ms=pct(lat, 0.50) * 1e3, p99_ms=pct(lat, 0.99) * 1e3, max_ms=(lat[-1] * 1e3 if lat else 0.0),
              errors=sum(errs.values()), errors_by_status=errs,
              server_cpu_ms_per_job=server_cpu * 1e3 / n if n else 0.0,
              client_cpu_ms_per_job=client_cpu * 1e3 / n if n else 0.0,
              sink_cpu_ms_per_job=sink_cpu * 1e3 / n if n else 0.0,
              other_load=max(0.0, busy - server_cpu - client_cpu - sink_cpu) / secs if secs else 0.0,
              warmup_jobs=warm)
    run.backlog = await not_completed(target)
    return run


async def settle(target: Target, timeout: float) -> None:
    """Leave the target with no unfinished job: cupsd's queue is cancelled (it keeps no
    history), the proxy's drains to the sink."""
    if target.key.startswith("cupsd"):
        resp = await ipp_call(target.port, target.path, ipp_request(Op.PURGE_JOBS, target.uri))
        if resp.code >= 0x0100:
            raise PeerFailed(f"Purge-Jobs on cupsd: {status_name(resp.code)}")
    deadline = time.monotonic() + timeout
    while True:
        left = await not_completed(target)
        if left == 0:
            return
        if time.monotonic() > deadline:
            raise PeerFailed(f"{target.label} still has {left} unfinished job(s) after {timeout:.0f} s")
        await trio.sleep(0.5)


async def verify_cupsd_raw(c: Cupsd, pdf: bytes) -> dict:
    """The raw queue accepts application/pdf and application/octet-stream as they are."""
    try:
        return await c.verify_raw(pdf)
    except BenchError as e:
        raise PeerFailed(str(e)) from None


# --------------------------------------------------------------------------- document


def make_pdf(work: Path, pages: int = 4) -> bytes:
    """A small PDF (~10-20 KB): a few pages of text and shapes, rendered once by gs."""
    src = work / "doc.ps"
    lines = ["%!PS-Adobe-3.0", f"%%Pages: {pages}", "%%EndComments",
             "<< /PageSize [595 842] >> setpagedevice"]
    for p in range(1, pages + 1):
        lines += [f"%%Page: {p} {p}", "0 setgray 2 setlinewidth 36 36 523 770 rectstroke",
                  "/Helvetica-Bold findfont 36 scalefont setfont 72 740 moveto "
                  f"(Accept-rate page {p}) show",
                  "/Times-Roman findfont 10 scalefont setfont"]
        for row in range(60):
            text = " ".join(f"w{(p * 7919 + row * 104729 + k * 31) % 99991:05d}" for k in range(14))
            lines.append(f"72 {700 - row * 11} moveto ({text}) show")
        for k in range(6):
            lines.append(f"{0.15 * k:.2f} {1 - 0.15 * k:.2f} 0.5 setrgbcolor "
                         f"{72 + k * 70} 40 60 20 rectfill")
        lines.append("showpage")
    lines.append("%%EOF")
    src.write_text("\n".join(lines) + "\n")
    out = work / "doc.pdf"
    env = dict(os.environ, SOURCE_DATE_EPOCH="1600000000")
    r = subprocess.run([need("gs"), "-q", "-dNOPAUSE", "-dBATCH", "-dSAFER", "-sDEVICE=pdfwrite",
                        f"-sOutputFile={out}", str(src)], capture_output=True, text=True, env=env,
                       timeout=120)
    if r.returncode != 0 or not out.exists():
        raise PeerFailed(f"Ghostscript could not make the PDF: {r.stderr}")
    return out.read_bytes()


# --------------------------------------------------------------------------- report


def summarise(t: Target) -> dict:
    runs = t.runs
    best = max(runs, key=lambda r: r.rate)
    med_rate = statistics.median(r.rate for r in runs)
    median = min(runs, key=lambda r: abs(r.rate - med_rate))  # a real run (the lower middle one)
    return {"label": t.label, "best": asdict(best), "median": asdict(median), "median_rate": med_rate,
            "rates": [round(r.rate, 1) for r in runs]}


def table(targets: list[Target], summary: dict, rounds: int) -> str:
    rows = [("target", "run", "jobs", "seconds", "jobs/s", "p50 ms", "p99 ms", "errors", "backlog",
             "srv cpu ms/job", "other load")]
    for t in targets:
        s = summary[t.key]
        kinds = (("median", s["median"]), ("best", s["best"])) if rounds > 1 else (("only", s["median"]),)
        for kind, r in kinds:
            rows.append((t.label, kind, str(r["jobs"]), f"{r['seconds']:.2f}", f"{r['rate']:.1f}",
                         f"{r['p50_ms']:.1f}", f"{r['p99_ms']:.1f}", str(r["errors"]), str(r["backlog"]),
                         f"{r['server_cpu_ms_per_job']:.2f}", f"{r['other_load']:.2f}"))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    out = []
    for k, r in enumerate(rows):
        out.append("  ".join(c.ljust(w) if i < 2 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths))))
        if k == 0:
            out.append("  ".join("-" * w for w in widths))
    return "\n".join(out)


# --------------------------------------------------------------------------- main


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description="Jobs accepted per second: spoolproxy (fsync on) vs a cupsd raw queue.")
    p.add_argument("--jobs", type=int, default=None, help="jobs per measured run (default 2000; 200 with --quick)")
    p.add_argument("--seconds", type=float, default=None, help="measure for this long instead of --jobs")
    p.add_argument("--concurrency", "-c", type=int, default=8, help="client connections (default 8)")
    p.add_argument("--rounds", type=int, default=None, help="runs per target, alternating (default 3; 1 with --quick)")
    p.add_argument("--warmup", type=int, default=None, help="warm-up jobs before each run "
                   "(default max(4 x concurrency, min(200, jobs/10)))")
    p.add_argument("--quick", action="store_true", help="CI: 200 jobs, 1 round")
    p.add_argument("--no-nofsync", dest="nofsync", action="store_false",
                   help="skip the extra proxy run with fsync = false")
    p.add_argument("--targets", default=",".join(TARGETS),
                   help=f"comma-separated subset of {','.join(TARGETS)} to measure (default: all; the ratio "
                        "needs cupsd and proxy; cupsd-shipped is cupsd's lazy default, for reference)")
    p.add_argument("--cupsd-dirty-clean-interval", type=int, default=0, metavar="S",
                   help="cupsd's DirtyCleanInterval: how long after answering it writes (and, with "
                        "SyncOnClose, fsyncs) a job's control file; default 0 = at once (durability on, "
                        "the closest cupsd gets to the proxy's); 30 is cupsd's own, lazier default")
    p.add_argument("--document", type=Path, help="print this PDF instead of the generated one")
    p.add_argument("--proxy-cprofile", type=Path, metavar="FILE",
                   help="run the fsync=true node under cProfile and write its stats here (python -m pstats "
                        "FILE); its rates are then not comparable")
    p.add_argument("--json", type=Path, help="write the results here")
    p.add_argument("--keep", action="store_true", help="keep the temporary directory (logs, spools)")
    p.add_argument("--settle-timeout", type=float, default=300.0, help="longest wait for a queue to empty")
    a = p.parse_args(argv)
    if a.jobs is None:
        a.jobs = 200 if a.quick else 2000
    if a.rounds is None:
        a.rounds = 1 if a.quick else 3
    a.targets = [t.strip() for t in a.targets.split(",") if t.strip()]
    if not a.targets or set(a.targets) - set(TARGETS):
        p.error(f"--targets: a comma-separated subset of {','.join(TARGETS)}")
    if not a.nofsync and "proxy-nofsync" in a.targets:
        a.targets.remove("proxy-nofsync")
    if a.jobs < 1 or a.concurrency < 1 or a.rounds < 1 or (a.seconds is not None and a.seconds <= 0):
        p.error("--jobs, --concurrency, --rounds and --seconds must be positive")
    return a


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    # SIGTERM (e.g. a CI timeout) becomes a Ctrl-C, which trio turns into a clean
    # KeyboardInterrupt, so the finally below stops the peers (a shell's "cmd &" starts
    # us with SIGINT ignored: take it back)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, lambda *_: os.kill(os.getpid(), signal.SIGINT))
    work = Path(tempfile.mkdtemp(prefix="spoolproxy-bench-"))
    os.chmod(work, 0o755)  # cupsd's backends (user lp) must reach its spool below it
    started = time.time()
    load0 = os.getloadavg()
    want = args.targets
    cupsd: Cupsd | None = None
    shipped: Cupsd | None = None
    try:
        targets: list[Target] = []
        sink = None
        raw_check: dict = {}
        try:
            pdf = args.document.read_bytes() if args.document else make_pdf(work)
            sink = Sink(work)
            if "cupsd" in want:
                cupsd = Cupsd(sink.port, work, dirty_clean=args.cupsd_dirty_clean_interval).start()
                targets.append(Target("cupsd", f"cupsd {CUPS_QUEUE} (SyncOnClose)", cupsd.port, cupsd.path,
                                      cupsd.uri, cupsd.proc.pid))
            if "cupsd-shipped" in want:  # the reference: cupsd's own lazy default
                (work / "shipped").mkdir()
                shipped = Cupsd(sink.port, work / "shipped", dirty_clean=SHIPPED_DIRTY_CLEAN).start()
                targets.append(Target("cupsd-shipped", f"cupsd {CUPS_QUEUE} (as shipped) [ref]", shipped.port,
                                      shipped.path, shipped.uri, shipped.proc.pid))
            for key, label, fsync in (("proxy", "proxy (fsync=true)", True),
                                      ("proxy-nofsync", "proxy (fsync=false) [extra]", False)):
                if key in want:
                    node = Node(work, key, sink.port, fsync=fsync,
                                cprofile=args.proxy_cprofile if key == "proxy" else None)
                    targets.append(Target(key, label, node.port, node.path, node.uri, node.proc.pid))
            if cupsd:  # (every process is started: trio.run may leave threads behind)
                raw_check = trio.run(verify_cupsd_raw, cupsd, pdf)
        except (PeerFailed, BenchError, subprocess.TimeoutExpired) as e:
            print(f"accept_rate: a peer did not start: {e}", file=sys.stderr)
            return EXIT_PEER
        for t in targets:
            t.payload = print_job_bytes(t.port, t.path, t.uri, pdf)
            t.sink_pid = sink.proc.pid

        what = f"{args.seconds:g} s" if args.seconds else f"{args.jobs} jobs"
        print(f"accept_rate: {what} per run, {args.concurrency} connections, {args.rounds} round(s); "
              f"document {len(pdf)} bytes PDF; {os.cpu_count()} CPUs, load {load0[0]:.2f} at start")
        if cupsd:
            dci = args.cupsd_dirty_clean_interval
            print(f"  cupsd: SyncOnClose Yes, DirtyCleanInterval {dci}{' (its default)' if dci == 30 else ''}, "
                  f"PreserveJobHistory No, MaxJobs 0: it answers first and writes+fsyncs the job's control "
                  f"file and job.cache {'up to %d s later' % dci if dci else 'right after'}; it never fsyncs "
                  f"the document file")
            print(f"  cupsd raw queue check: {raw_check['print-job']}")
        if "proxy" in want:
            print("  proxy: fsync = true (document and job record on disk before answering: a small document"
                  " in the record's LMDB commit, a larger one's file and directory fsynced first)")
        if args.proxy_cprofile:
            print(f"  proxy runs under cProfile ({args.proxy_cprofile}): its rates are not comparable")

        async def bench() -> None:
            for t in targets:
                await settle(t, args.settle_timeout)
            for rnd in range(args.rounds):
                for t in (targets if rnd % 2 == 0 else targets[::-1]):
                    run = await measure(t, rnd, args)
                    t.runs.append(run)
                    print(f"  round {rnd + 1} {t.label:28s} {run.jobs:6d} jobs {run.seconds:7.2f} s "
                          f"{run.rate:8.1f} jobs/s  p50 {run.p50_ms:6.1f} ms  p99 {run.p99_ms:6.1f} ms  "
                          f"errors {run.errors}  backlog {run.backlog}  other load {run.other_load:.2f}",
                          flush=True)
                    for proc in LIVE:
                        if not proc.alive():
                            raise PeerFailed(f"{proc.name} died\n{tail(proc.log)}")
                    for c in (cupsd, shipped):
                        if c is not None and not c.alive():
                            raise PeerFailed(f"cupsd died\n{tail(c.log)}")
                    t0 = time.monotonic()
                    await settle(t, args.settle_timeout)
                    run.settle_seconds = time.monotonic() - t0
                    if not t.key.startswith("cupsd") and run.backlog:
                        print(f"    drained {run.backlog} jobs to the sink in {run.settle_seconds:.1f} s "
                              f"({run.backlog / max(run.settle_seconds, 1e-9):.0f} jobs/s)", flush=True)

        try:
            trio.run(bench)
        except PeerFailed as e:
            print(f"accept_rate: a peer failed: {e}", file=sys.stderr)
            return EXIT_PEER

        summary = {t.key: summarise(t) for t in targets}
        print()
        print(table(targets, summary, args.rounds))
        print("(backlog: jobs the target had not finished when the run ended; srv cpu: the server process,"
              " cupsd with its backends; other load: cores busy with anything but server, client and sink)")
        busiest = max((r.other_load for t in targets for r in t.runs), default=0.0)
        if busiest > 0.25:
            print(f"note: other work used up to {busiest:.2f} of {os.cpu_count()} cores during the runs; "
                  f"the rates are noisy: rerun on an idle machine or compare several rounds")
        print()
        ratio = best_ratio = met = None
        c_rate = summary["cupsd"]["median_rate"] if "cupsd" in summary else 0.0
        if "cupsd" in summary and "proxy" in summary and c_rate:
            c, p = summary["cupsd"], summary["proxy"]
            ratio = p["median_rate"] / c_rate
            best_ratio = p["best"]["rate"] / c["best"]["rate"]
            met = ratio >= 1.0
            more = f" (best runs: {best_ratio:.2f})" if args.rounds > 1 else ""
            print(f"ratio proxy/cupsd = {ratio:.2f}{more}")
            print(f"target (proxy >= cupsd with fsync on): {'met' if met else 'NOT met'}")
        shipped_ratio = None
        if "cupsd-shipped" in summary and "proxy" in summary and summary["cupsd-shipped"]["median_rate"]:
            shipped_ratio = summary["proxy"]["median_rate"] / summary["cupsd-shipped"]["median_rate"]
            print(f"reference, not the target: proxy / cupsd as shipped = {shipped_ratio:.2f} (DirtyCleanInterval "
                  f"{SHIPPED_DIRTY_CLEAN}: it answers before anything of the job reaches the disk)")
        if "proxy-nofsync" in summary and c_rate:
            nf = summary["proxy-nofsync"]["median_rate"]
            print(f"extra, not the target: proxy with fsync = false {nf:.1f} jobs/s = {nf / c_rate:.2f} x cupsd")
        errors = sum(r.errors for t in targets for r in t.runs)
        sink.stop()
        result = {
            "benchmark": "accept_rate",
            "started": started,
            "elapsed": time.time() - started,
            "machine": {"cpus": os.cpu_count(), "loadavg_start": load0, "loadavg_end": os.getloadavg(),
                        "python": platform.python_version(), "platform": platform.platform()},
            "settings": {"jobs": None if args.seconds else args.jobs, "seconds": args.seconds,
                         "concurrency": args.concurrency, "rounds": args.rounds, "quick": args.quick,
                         "targets": want, "document_bytes": len(pdf), "document_format": "application/pdf",
                         "cupsd": {"SyncOnClose": True, "DirtyCleanInterval": args.cupsd_dirty_clean_interval,
                                   "PreserveJobHistory": False, "MaxJobs": 0, "queue": "raw (no PPD)",
                                   "raw_check": raw_check,
                                   "lpadmin_warning": cupsd.lpadmin_warning if cupsd else ""},
                         "proxy": {"fsync": True}},
            "targets": summary,
            "runs": [asdict(r) for t in targets for r in t.runs],
            "ratio": ratio,
            "ratio_best": best_ratio,
            "ratio_cupsd_as_shipped": shipped_ratio,
            "target_met": met,
            "errors": errors,
            "sink": sink.stats,
        }
        if args.json:
            args.json.parent.mkdir(parents=True, exist_ok=True)
            args.json.write_text(json.dumps(result, indent=2) + "\n")
            print(f"results: {args.json}")
        if errors:
            print(f"accept_rate: {errors} job(s) failed; see errors_by_status in the runs", file=sys.stderr)
            return EXIT_JOB_ERRORS
        return EXIT_OK
    finally:
        for c in (cupsd, shipped):
            if c is not None:
                try:
                    c.stop()
                except Exception as e:  # keep cleaning up
                    print(f"accept_rate: stopping cupsd: {e}", file=sys.stderr)
        for proc in reversed(LIVE):
            try:
                proc.stop()
            except Exception as e:  # keep cleaning up
                print(f"accept_rate: stopping {proc.name}: {e}", file=sys.stderr)
        if args.keep:
            print(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        print("accept_rate: interrupted", file=sys.stderr)
        sys.exit(130)
