"""A private cupsd with a raw queue to an AppSocket sink: the peer the benchmarks
compare the proxy with (``bench/accept_rate.py`` and ``spoolproxy bench run --compare``).

    with Cupsd(sink_port) as c:            # or Cupsd(sink_port, workdir).start() ... c.stop()
        await c.verify_raw(pdf)            # the queue takes application/pdf as it is
        ... Print-Job to c.uri ...         # ipp://127.0.0.1:PORT/printers/rawq
        await c.purge()                    # cancel what it has not sent yet
        cpu = proc_sample(c.pid)

Its settings (all in its own directory; the system's cupsd, if any, is not touched):

* own configuration, spool, cache, state, temp and log directories (``cupsd -f -c FILE
  -s FILE``), listening on 127.0.0.1 on a free port only, no authentication, no
  browsing, no web interface;
* ``SyncOnClose Yes``: it fsyncs the job files it writes, and ``DirtyCleanInterval 0``
  (``dirty_clean``) so that it writes them when it answers rather than up to 30 s later:
  durability on, the closest cupsd gets to the proxy's ``fsync = true`` (30 is cupsd's
  lazier default, which answers before anything reaches the disk);
* ``PreserveJobHistory No`` and ``MaxJobs 0``, so it neither refuses a backlog nor slows
  down with its history;
* a raw queue ``rawq`` (made with ``lpadmin``, no PPD, so no filters) to
  ``socket://127.0.0.1:SINKPORT/?snmp=false`` (no SNMP supply queries per job), with
  ``printer-error-policy=abort-job``; it accepts application/pdf and
  application/octet-stream as they are.

The process dies with the thread that started it (``PR_SET_PDEATHSIG``): a benchmark
killed even by SIGKILL leaves no cupsd behind. Start it from the main thread (a worker
thread's exit would stop it). Its backends run as user ``lp`` and read the spool, so
every directory above ``workdir`` must be searchable by others; without a ``workdir`` it
makes (and at ``stop`` removes) its own temporary directory, which is.

cupsd must run as root here (it does in CI and in the development container). A missing
``cupsd`` or ``lpadmin`` raises :class:`~spoolproxy.bench.errors.BenchError` saying
which Debian packages to install; so does a cupsd that does not start.
"""
from __future__ import annotations

import ctypes
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

from .errors import BenchError

__all__ = ["Cupsd", "QUEUE", "INSTALL_HINT", "find_tool"]

QUEUE = "rawq"
SBIN = ("/usr/sbin", "/sbin", "/usr/local/sbin")
INSTALL_HINT = "Debian: apt-get install cups cups-client"
START_TIMEOUT = 30.0

try:  # loaded here, not in the child between fork and exec
    _LIBC: Any = ctypes.CDLL(None, use_errno=True)
    _PRCTL = _LIBC.prctl
except (OSError, AttributeError):  # pragma: no cover - not Linux
    _PRCTL = None


def die_with_parent() -> None:  # pragma: no cover - runs in the child before exec
    """PR_SET_PDEATHSIG (1): the kernel sends SIGTERM when the starting thread ends."""
    if _PRCTL is not None:
        _PRCTL(1, signal.SIGTERM, 0, 0, 0)


def find_tool(tool: str) -> str | None:
    """``tool``'s path, also in the sbin directories a non-root PATH lacks."""
    return shutil.which(tool) or shutil.which(tool, path=os.pathsep.join(SBIN))


def _need(tool: str) -> str:
    path = find_tool(tool)
    if path is None:
        raise BenchError(f"{tool} is not installed; the comparison with cupsd needs cupsd and lpadmin "
                         f"({INSTALL_HINT})")
    return path


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _answers_as_cups(port: int) -> bool:
    """Something on the port answers HTTP as CUPS (not merely: something listens)."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=2) as s:
            s.sendall(b"HEAD / HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
            head = b""
            while b"\r\n\r\n" not in head and len(head) < 8192:
                data = s.recv(4096)
                if not data:
                    break
                head += data
    except OSError:
        return False
    return b"\nserver: cups" in head.lower()


# who may do what on a private cupsd: everyone everything, no authentication
_OPEN_POLICY = """\
<Location />
  Order allow,deny
  Allow all
</Location>
<Location /admin>
  Order allow,deny
  Allow all
</Location>
<Policy default>
  JobPrivateAccess all
  JobPrivateValues none
  SubscriptionPrivateAccess all
  SubscriptionPrivateValues none
  <Limit All>
    Order deny,allow
  </Limit>
</Policy>
DefaultPolicy default
"""


def cupsd_conf(port: int, directives: dict[str, object]) -> str:
    """cupsd.conf of a private cupsd: 127.0.0.1:PORT only, no browsing, no web interface,
    no authentication or encryption, anyone may do anything; ``directives`` (LogLevel,
    job limits, history, ...) go in between, in their order."""
    lines = [f"Listen 127.0.0.1:{port}", "Browsing Off", "BrowseLocalProtocols none", "WebInterface No",
             "DefaultAuthType None", "DefaultEncryption Never", "ServerAlias *"]
    lines += [f"{k} {v}" for k, v in directives.items()]
    return "\n".join(lines) + "\n" + _OPEN_POLICY


def cups_files_conf(dirs: dict[str, Path], *, sync: bool) -> str:
    """cups-files.conf over ``dirs`` ("etc", "spool", "cache", "state", "log", "tmp"):
    file: devices allowed, run as root, ``SyncOnClose`` as ``sync`` says."""
    return f"""\
FileDevice Yes
SyncOnClose {"Yes" if sync else "No"}
ServerRoot {dirs['etc']}
RequestRoot {dirs['spool']}
CacheDir {dirs['cache']}
StateDir {dirs['state']}
TempDir {dirs['tmp']}
ErrorLog {dirs['log']}/error_log
AccessLog {dirs['log']}/access_log
PageLog {dirs['log']}/page_log
LogFileGroup root
SystemGroup root
Sandboxing Relaxed
"""


def tail(path: Path, lines: int = 40) -> str:
    try:
        text = path.read_text(errors="replace").splitlines()
    except OSError:
        return f"(no {path})"
    return f"--- {path} (last {min(lines, len(text))} lines)\n" + "\n".join(text[-lines:])


class Cupsd:
    """A private cupsd with the raw queue ``rawq`` to the AppSocket sink on ``sink_port``.

    ``start()`` writes the configuration, starts ``cupsd -f`` and adds the queue;
    ``stop()`` stops it (SIGTERM, then SIGKILL) and removes its own temporary directory.
    After ``start()``: ``port``, ``server`` ("127.0.0.1:PORT"), ``uri`` of the queue,
    ``path`` ("/printers/rawq"), ``pid``, ``proc`` (the Popen), ``error_log``,
    ``lpadmin_warning`` (lpadmin's stderr: CUPS 2.4 warns that raw queues are deprecated).
    """

    def __init__(self, sink_port: int, workdir: str | os.PathLike | None = None, *, dirty_clean: int = 0) -> None:
        self.sink_port = sink_port
        self.dirty_clean = dirty_clean
        self._own_dir = workdir is None
        self._workdir = Path(workdir) if workdir is not None else None
        self.dir: Path | None = None
        self.port = 0
        self.server = ""
        self.uri = ""
        self.path = f"/printers/{QUEUE}"
        self.queue = QUEUE
        self.proc: subprocess.Popen | None = None
        self.lpadmin_warning = ""
        self.conf = self.files_conf = self.error_log = Path()
        self._out: Any = None

    # -- lifecycle ---------------------------------------------------------------------

    @property
    def pid(self) -> int:
        if self.proc is None:
            raise BenchError("cupsd is not started")
        return self.proc.pid

    @property
    def log(self) -> Path:
        return self.error_log

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def start(self) -> "Cupsd":
        if self.proc is not None:
            raise BenchError("cupsd is started already")
        cupsd, lpadmin = _need("cupsd"), _need("lpadmin")
        if self._own_dir:
            self.dir = Path(tempfile.mkdtemp(prefix="spoolproxy-cupsd-"))
            os.chmod(self.dir, 0o755)  # backends (user lp) read the spool below it
        else:
            assert self._workdir is not None
            self.dir = self._workdir / "cupsd"
        try:
            self._start(cupsd, lpadmin)
        except BaseException:
            self.stop()
            raise
        return self

    def _start(self, cupsd: str, lpadmin: str) -> None:
        assert self.dir is not None
        d = {k: self.dir / k for k in ("etc", "spool", "cache", "state", "log", "tmp")}
        for p in d.values():
            p.mkdir(parents=True, exist_ok=True)
            os.chmod(p, 0o755)
        os.chmod(d["tmp"], 0o1777)
        (d["etc"] / "ppd").mkdir(exist_ok=True)
        self.conf = d["etc"] / "cupsd.conf"
        self.files_conf = d["etc"] / "cups-files.conf"
        self.error_log = d["log"] / "error_log"
        self.files_conf.write_text(cups_files_conf(d, sync=True))
        self.port = _free_port()
        self._write_conf()
        check = subprocess.run([cupsd, "-t", "-c", str(self.conf), "-s", str(self.files_conf)],
                               capture_output=True, text=True, timeout=30)
        if check.returncode != 0:
            raise BenchError(f"cupsd -t rejects the configuration:\n{check.stdout}{check.stderr}")
        for attempt in range(3):  # another program may take the free port first
            if attempt:
                self.port = _free_port()
                self._write_conf()
            self._spawn(cupsd)
            try:
                self._wait_answering()
                break
            except BenchError:
                self._kill()
                if attempt == 2:
                    raise
        self.server = f"127.0.0.1:{self.port}"
        env = dict(os.environ, CUPS_SERVER=self.server)
        env.pop("PRINTER", None)
        env.pop("LPDEST", None)
        # CUPS 2.4 has no "-m raw": a queue without -m/-P has no PPD and runs no filters,
        # which is a raw queue (lpadmin warns that raw queues are deprecated).
        device = f"socket://127.0.0.1:{self.sink_port}/?snmp=false"
        r = subprocess.run([lpadmin, "-h", self.server, "-p", QUEUE, "-E", "-v", device,
                            "-o", "printer-error-policy=abort-job"],
                           capture_output=True, text=True, env=env, timeout=60)
        if r.returncode != 0:
            raise BenchError(f"lpadmin failed ({r.returncode}): {r.stdout}{r.stderr}\n{tail(self.error_log)}")
        self.lpadmin_warning = r.stderr.strip()
        self.uri = f"ipp://127.0.0.1:{self.port}{self.path}"

    def _spawn(self, cupsd: str) -> None:
        assert self.dir is not None
        self._out = open(self.dir / "cupsd.out", "ab")
        self.proc = subprocess.Popen([cupsd, "-f", "-c", str(self.conf), "-s", str(self.files_conf)],
                                     stdin=subprocess.DEVNULL, stdout=self._out, stderr=self._out,
                                     start_new_session=True, preexec_fn=die_with_parent)

    def _wait_answering(self) -> None:
        assert self.proc is not None
        deadline = time.monotonic() + START_TIMEOUT
        while not _answers_as_cups(self.port):
            if self.proc.poll() is not None:
                raise BenchError(f"cupsd exited with {self.proc.returncode} before answering on port "
                                 f"{self.port} (it must run as root; {INSTALL_HINT})\n{tail(self.error_log)}")
            if time.monotonic() > deadline:
                raise BenchError(f"cupsd did not answer on port {self.port} within {START_TIMEOUT:g} s\n"
                                 f"{tail(self.error_log)}")
            time.sleep(0.05)

    def _write_conf(self) -> None:
        self.conf.write_text(cupsd_conf(self.port, {
            "LogLevel": "warn", "MaxClients": 1000, "MaxJobs": 0, "MaxJobsPerPrinter": 0, "MaxJobTime": 0,
            "PreserveJobHistory": "No", "PreserveJobFiles": "No", "DirtyCleanInterval": self.dirty_clean}))

    def _kill(self, timeout: float = 15.0) -> None:
        if self.proc is not None and self.proc.poll() is None:
            try:
                self.proc.send_signal(signal.SIGTERM)
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self._out is not None:
            self._out.close()
            self._out = None

    def stop(self, timeout: float = 15.0) -> None:
        """Stop cupsd (its backends are its children: it stops them) and remove its own
        temporary directory; safe to call more than once."""
        self._kill(timeout)
        if self._own_dir and self.dir is not None:
            shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> "Cupsd":
        if self.proc is None:
            self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- IPP (trio) --------------------------------------------------------------------

    async def _call(self, op: int, *attrs: tuple[str, int, Any], data: bytes | None = None,
                    user: str = "bench"):
        from ..ipp.client import IppClient, new_request
        async with IppClient(self.uri, timeout=60) as c:
            req = new_request(op, self.uri, user=user)
            for name, tag, value in attrs:
                if isinstance(value, (list, tuple)):
                    req.operation.add(name, tag, *value)
                else:
                    req.operation.add(name, tag, value)
            return await c.request(req, data)

    async def verify_raw(self, document: bytes) -> dict:
        """Check that the queue accepts jobs and takes application/pdf and
        application/octet-stream as they are (it prints ``document`` once in each, to
        the sink); BenchError otherwise. Returns what it saw:
        ``{"document-format-supported", "make-and-model", "print-job": {format: status}}``."""
        from ..ipp.client import status_name, status_of
        from ..ipp.model import Op, Tag
        resp = await self._call(Op.GET_PRINTER_ATTRIBUTES, (
            "requested-attributes", Tag.KEYWORD, ["printer-is-accepting-jobs", "printer-state",
                                                  "document-format-supported", "printer-make-and-model"]))
        attrs = {a.name: a.values for g in resp.groups if g.tag == Tag.PRINTER for a in g}
        if attrs.get("printer-is-accepting-jobs") != [True]:
            raise BenchError(f"cupsd queue {QUEUE} is not accepting jobs: {attrs}")
        checked = {}
        for fmt in ("application/pdf", "application/octet-stream"):
            r = await self._call(Op.PRINT_JOB, ("job-name", Tag.NAME, "raw-check"),
                                 ("document-format", Tag.MIME_TYPE, fmt), data=document)
            status = status_of(r)
            if status >= 0x0100:
                raise BenchError(f"cupsd raw queue refuses {fmt}: {status_name(status)}")
            checked[fmt] = status_name(status)
        return {"document-format-supported": attrs.get("document-format-supported", []),
                "make-and-model": attrs.get("printer-make-and-model"), "print-job": checked}

    async def queued(self) -> int:
        """The queue's unfinished jobs (queued-job-count: pending, held and processing)."""
        from ..ipp.client import status_name, status_of
        from ..ipp.model import Op, Tag
        resp = await self._call(Op.GET_PRINTER_ATTRIBUTES, ("requested-attributes", Tag.KEYWORD, "queued-job-count"))
        if status_of(resp) >= 0x0100:
            raise BenchError(f"Get-Printer-Attributes on cupsd: {status_name(status_of(resp))}")
        for g in resp.groups:
            if g.tag == Tag.PRINTER:
                value = g.value("queued-job-count")
                if isinstance(value, int):
                    return value
        raise BenchError("cupsd reports no queued-job-count")

    async def purge(self, timeout: float = 60.0) -> None:
        """Cancel every job of the queue (Purge-Jobs; it keeps no history) and wait
        until none is left."""
        import trio

        from ..ipp.client import status_name, status_of
        from ..ipp.model import Op
        resp = await self._call(Op.PURGE_JOBS)
        if status_of(resp) >= 0x0100:
            raise BenchError(f"Purge-Jobs on cupsd: {status_name(status_of(resp))}")
        with trio.move_on_after(timeout):
            while await self.queued():
                await trio.sleep(0.2)
            return
        raise BenchError(f"cupsd still has {await self.queued()} job(s) {timeout:g} s after Purge-Jobs")
