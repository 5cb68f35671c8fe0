"""Real peers for the interop tests: ippeveprinter, cupsd, the CUPS clients, Ghostscript,
an AppSocket sink, snmpd as a printer's SNMP agent, and the spoolproxy node itself
started as a subprocess.

Everything here is plain synchronous code (subprocesses and threads) so that it can be
used from any test, trio or not.  The pytest fixtures that wrap it live in
``tests/conftest.py``.

Rules:

* ``require(tool)`` skips a test when a tool is missing, but fails it when
  ``SPOOLPROXY_REQUIRE_INTEROP=1`` (CI sets it: there a missing tool is a failure).
* Every peer writes its output to a log file; ``Peer.log_tail()`` returns the end of it
  and the conftest attaches the logs of every peer a failed test used to its report.
* Nothing here asserts on time; timeouts only bound the waiting.
"""
from __future__ import annotations

import atexit
import contextlib
import dataclasses
import fcntl
import hashlib
import json
import os
import plistlib
import re
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Mapping

import pytest

from spoolproxy.bench.cupsd import cups_files_conf, cupsd_conf  # the private-cupsd configuration, shared with the bench

REPO_ROOT = Path(__file__).resolve().parents[1]
IPPTOOL_DIR = Path("/usr/share/cups/ipptool")
SBIN_DIRS = ("/usr/sbin", "/sbin", "/usr/local/sbin")

# The formats ippeveprinter is told to accept (-f).  With this list it
# advertises PDF, PostScript, JPEG, PWG raster and Apple raster, which is what
# ipp-everywhere.test expects of a printer.
EVE_FORMATS = "application/pdf,application/postscript,image/pwg-raster,image/jpeg,image/urf"


class PeerError(RuntimeError):
    """A peer did not start or did not answer; the message carries its log."""


# --------------------------------------------------------------------------- tools


def interop_required() -> bool:
    return os.environ.get("SPOOLPROXY_REQUIRE_INTEROP", "") not in ("", "0")


def unavailable(reason: str) -> None:
    """Skip the test, or fail it when interop is required (CI)."""
    if interop_required():
        pytest.fail(f"{reason} (SPOOLPROXY_REQUIRE_INTEROP is set, so this is a failure)", pytrace=False)
    pytest.skip(reason)


def which(tool: str) -> str | None:
    if os.path.isabs(tool):
        return tool if os.access(tool, os.X_OK) else None
    found = shutil.which(tool)
    if found:
        return found
    return shutil.which(tool, path=os.pathsep.join(SBIN_DIRS))


def require(tool: str) -> str:
    """Full path of ``tool``; skip (or fail under SPOOLPROXY_REQUIRE_INTEROP=1) if missing."""
    path = which(tool)
    if path is None:
        unavailable(f"{tool} is not installed (Debian: cups-ipp-utils, cups-client, cups-bsd, cups, "
                    f"avahi-daemon, dbus, ghostscript, rlpr, snmpd, snmp)")
    return path  # type: ignore[return-value]


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def port_open(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def wait_port(host: str, port: int, timeout: float = 15.0, proc: "Peer | None" = None) -> None:
    """Wait until something accepts TCP connections on host:port.

    With ``proc``, give up at once (PeerError with its log) when that process exits."""
    deadline = time.monotonic() + timeout
    while True:
        if port_open(host, port):
            return
        if proc is not None and not proc.alive():
            raise PeerError(f"{proc.name} exited with {proc.returncode} before listening on "
                            f"{host}:{port}\n{proc.log_tail()}")
        if time.monotonic() > deadline:
            tail = f"\n{proc.log_tail()}" if proc is not None else ""
            raise PeerError(f"nothing listens on {host}:{port} after {timeout:.0f} s{tail}")
        time.sleep(0.05)


def wait_for(predicate: Callable[[], Any], timeout: float, interval: float = 0.2,
             what: str = "condition") -> Any:
    """Poll ``predicate`` until it returns something truthy; TimeoutError after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} not reached within {timeout:.0f} s")
        time.sleep(interval)


def run(argv: list[str], *, timeout: float = 60, check: bool = True, **kw: Any) -> subprocess.CompletedProcess:
    """subprocess.run with text output captured and a readable error."""
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, **kw)
    if check and proc.returncode != 0:
        raise PeerError(f"{' '.join(map(str, argv))} exited with {proc.returncode}\n"
                        f"stdout:\n{proc.stdout}\nstderr:\n{proc.stderr}")
    return proc


# --------------------------------------------------------------------------- DNS-SD


_DBUS_SOCKET = "/run/dbus/system_bus_socket"


def _unix_socket_answers(path: str) -> bool:
    with contextlib.closing(socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)) as s:
        s.settimeout(1)
        try:
            s.connect(path)
            return True
        except OSError:
            return False


def _pid_alive(pidfile: str) -> bool:
    try:
        pid = int(Path(pidfile).read_text().split()[0])
        os.kill(pid, 0)
        return True
    except (OSError, ValueError, IndexError):
        return False


def avahi_running() -> bool:
    avahi = which("avahi-daemon")
    return bool(avahi) and subprocess.run([avahi, "--check"], capture_output=True).returncode == 0


def ensure_dnssd(timeout: float = 15.0) -> None:
    """Start the system D-Bus and avahi-daemon unless they already run.

    ippeveprinter exits with "Unable to initialize DNS-SD" without them (even with
    ``-r off``).  Idempotent, safe when they already run, and serialised with a lock
    file so that parallel test processes do not race."""
    dbus = require("dbus-daemon")
    avahi = require("avahi-daemon")
    with open(os.path.join(tempfile.gettempdir(), "spoolproxy-dnssd.lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if avahi_running():
            return
        if not _unix_socket_answers(_DBUS_SOCKET):
            try:
                os.makedirs("/run/dbus", exist_ok=True)
            except PermissionError:
                unavailable("no system D-Bus and /run/dbus is not writable (need root to start one)")
            if os.path.exists("/run/dbus/pid") and not _pid_alive("/run/dbus/pid"):
                os.unlink("/run/dbus/pid")  # stale: dbus-daemon refuses to start over it
            if os.path.exists(_DBUS_SOCKET):
                os.unlink(_DBUS_SOCKET)
            r = subprocess.run([dbus, "--system", "--fork"], capture_output=True, text=True)
            if r.returncode != 0 and not _unix_socket_answers(_DBUS_SOCKET):
                unavailable(f"cannot start dbus-daemon: {r.stderr.strip()}")
            wait_for(lambda: _unix_socket_answers(_DBUS_SOCKET), timeout, 0.05, "system D-Bus socket")
        r = subprocess.run([avahi, "--no-drop-root", "--no-chroot", "-D"], capture_output=True, text=True)
        try:
            wait_for(avahi_running, timeout, 0.1, "avahi-daemon --check")
        except TimeoutError:
            unavailable(f"cannot start avahi-daemon (rc {r.returncode}): {r.stderr.strip()}")


# --------------------------------------------------------------------------- processes

_LIVE: "set[Peer]" = set()


class Peer:
    """A long-running subprocess with its output in a log file."""

    name = "peer"

    def __init__(self, workdir: Path, name: str | None = None) -> None:
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        if name:
            self.name = name
        self.log_path = self.workdir / f"{self.name}.log"
        self.proc: subprocess.Popen | None = None
        self.returncode: int | None = None
        self.starts = 0
        self.started_at = 0.0  # time.monotonic() of the last start

    # subclasses provide these
    def argv(self) -> list[str]:
        raise NotImplementedError

    def env(self) -> dict[str, str] | None:
        return None

    def cwd(self) -> Path | None:
        return self.workdir

    def wait_ready(self, timeout: float) -> None:
        pass

    # lifecycle
    def start(self, timeout: float = 30.0) -> "Peer":
        if self.alive():
            raise PeerError(f"{self.name} already runs (pid {self.pid})")
        self.starts += 1
        with open(self.log_path, "ab") as log:
            log.write(f"===== start #{self.starts}: {' '.join(self.argv())}\n".encode())
            log.flush()
            self.proc = subprocess.Popen(self.argv(), stdin=subprocess.DEVNULL, stdout=log,
                                         stderr=subprocess.STDOUT, env=self.env(), cwd=self.cwd(),
                                         start_new_session=True)
        self.returncode = None
        self.started_at = time.monotonic()
        _LIVE.add(self)
        try:
            self.wait_ready(timeout)
        except BaseException:
            self.kill9()
            raise
        return self

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    def alive(self) -> bool:
        if self.proc is None:
            return False
        rc = self.proc.poll()
        if rc is not None:
            self.returncode = rc
            _LIVE.discard(self)
            return False
        return True

    def _signal(self, sig: int) -> None:
        if self.alive():
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.proc.pid, sig)  # type: ignore[union-attr]

    def stop(self, timeout: float = 15.0) -> int | None:
        """SIGTERM, wait up to ``timeout``, then SIGKILL.  Returns the exit code."""
        if self.proc is None:
            return self.returncode
        self._signal(signal.SIGTERM)
        try:
            self.returncode = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self._signal(signal.SIGKILL)
            self.returncode = self.proc.wait()
            self._append_log(f"===== {self.name} ignored SIGTERM for {timeout:.0f} s: killed")
        _LIVE.discard(self)
        return self.returncode

    def kill9(self) -> None:
        """SIGKILL (a crash, no chance to clean up) and reap."""
        if self.proc is None:
            return
        self._signal(signal.SIGKILL)
        self.returncode = self.proc.wait()
        _LIVE.discard(self)
        self._append_log(f"===== {self.name} killed with SIGKILL")

    def restart(self, timeout: float = 30.0) -> "Peer":
        if self.alive():
            self.stop()
        return self.start(timeout)

    def _append_log(self, line: str) -> None:
        with open(self.log_path, "a") as log:
            log.write(line + "\n")

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def log_tail(self, lines: int = 80) -> str:
        text = self.log_text().splitlines()
        head = f"----- {self.name} log {self.log_path} (last {min(lines, len(text))} of {len(text)} lines)"
        return "\n".join([head, *text[-lines:]])

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name} pid={self.pid}>"


def _kill_leftovers() -> None:  # pragma: no cover - only when a test run is interrupted
    for peer in list(_LIVE):
        with contextlib.suppress(Exception):
            peer.kill9()


atexit.register(_kill_leftovers)


def register_peer(request: Any, peer: Peer) -> None:
    """Attach a peer to the running pytest item (``request.node``): when the test fails,
    tests/conftest.py adds the end of the peer's log to the report."""
    item = request.node
    if not hasattr(item, "_spoolproxy_peers"):
        item._spoolproxy_peers = []
    if peer not in item._spoolproxy_peers:
        item._spoolproxy_peers.append(peer)


# --------------------------------------------------------------------------- ipptool


@dataclasses.dataclass
class IppTest:
    name: str
    index: int            # position in the run (the same suite gives the same order)
    passed: bool
    skipped: bool
    status: str           # status-code name, "skip", or "" when there was no response
    errors: list[str]
    operation: str = ""

    @property
    def outcome(self) -> str:
        return "SKIP" if self.skipped else "PASS" if self.passed else "FAIL"


@dataclasses.dataclass
class IpptoolRun:
    argv: list[str]
    returncode: int
    tests: list[IppTest]
    report: str           # ipptool's text report (-t) and stderr
    elapsed: float

    @property
    def passed(self) -> list[IppTest]:
        return [t for t in self.tests if t.passed and not t.skipped]

    @property
    def failed(self) -> list[IppTest]:
        return [t for t in self.tests if not t.passed and not t.skipped]

    @property
    def skipped(self) -> list[IppTest]:
        return [t for t in self.tests if t.skipped]

    def keyed(self) -> dict[tuple[str, int], IppTest]:
        """Tests keyed by (name, occurrence): suites repeat names (ipp-everywhere.test
        includes ipp-2.0.test which includes ipp-1.1.test)."""
        seen: dict[str, int] = {}
        out = {}
        for t in self.tests:
            n = seen.get(t.name, 0)
            seen[t.name] = n + 1
            out[(t.name, n)] = t
        return out

    def summary(self) -> str:
        return (f"{len(self.passed)} passed, {len(self.failed)} failed, {len(self.skipped)} skipped "
                f"of {len(self.tests)} in {self.elapsed:.1f} s")


_PLIST_HEADER = re.compile(r"<\?xml[^>]*\?>\s*<!DOCTYPE[^>]*>\s*<plist[^>]*>\s*<dict>.*?<key>Tests</key>\s*<array>",
                           re.S)


def parse_ipptool_plist(text: str) -> list[dict[str, Any]]:
    """The test dicts of ``ipptool -X`` output.

    ipptool 2.4 writes a fresh plist header (and no footer) for every INCLUDEd file,
    so the output of ipp-2.0.test / ipp-everywhere.test is not one plist: keep the
    first header, drop the others, and parse the result."""
    first = _PLIST_HEADER.search(text)
    if first is None:
        return []
    body = text[:first.end()] + _PLIST_HEADER.sub("", text[first.end():])
    if "</plist>" in body:  # with -I ipptool appends "Summary: ..." after the plist
        body = body[:body.rindex("</plist>") + len("</plist>")]
    else:  # ipptool died half-way: close what is open
        cut = body.rfind("</dict>\n<dict>")
        body = (body[:cut] + "</dict>\n" if cut > 0 else body) + "</array>\n</dict>\n</plist>\n"
    return list(plistlib.loads(body.encode()).get("Tests", []))


def ipptool(uri: str, testfile: str | os.PathLike, *, document: str | os.PathLike | None = None,
            defines: Mapping[str, str] | None = None, cwd: str | os.PathLike | None = None,
            request_timeout: float = 30, timeout: float = 900, ignore_errors: bool = True,
            extra: Iterable[str] = ()) -> IpptoolRun:
    """Run one ipptool test file against ``uri`` and parse the per-test results.

    ``ipptool -X`` (XML plist on stdout) parsed with plistlib gives every test with its
    PASS/FAIL/SKIP, status code and the EXPECT lines that failed.  (``-P file`` is no
    use here: with INCLUDE, ipptool 2.4 overwrites the plist file with the text
    report of the included file.)  ``cwd`` should be the directory holding the test
    file and its documents (see make_ipptool_docs)."""
    tool = require("ipptool")
    argv = [tool, "-X", "-T", str(int(request_timeout))]
    if ignore_errors:
        argv.append("-I")
    if document is not None:
        argv += ["-f", str(document)]
    for k, v in (defines or {}).items():
        argv += ["-d", f"{k}={v}"]
    argv += [*extra, uri, str(testfile)]
    t0 = time.monotonic()
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, cwd=cwd)
    elapsed = time.monotonic() - t0
    notes = proc.stderr
    try:
        raw = parse_ipptool_plist(proc.stdout)
    except Exception as e:  # keep going with what we have, say why
        raw = []
        notes += f"\n(could not parse ipptool's plist output: {e})"
    tests: list[IppTest] = []
    for i, t in enumerate(raw):
        tests.append(IppTest(name=str(t.get("Name", f"#{i}")), index=i,
                             passed=bool(t.get("Successful", False)), skipped=bool(t.get("Skipped", False)),
                             status=str(t.get("StatusCode", "")), errors=[str(e) for e in t.get("Errors", [])],
                             operation=str(t.get("Operation", ""))))
    lines = [f"{' '.join(argv)}  (rc {proc.returncode}, {elapsed:.1f} s)"]
    for t in tests:
        lines.append(f"    {t.name:<70} [{t.outcome}]")
        if t.outcome == "FAIL":
            lines.append(f"        status-code = {t.status}")
            lines += [f"        {e}" for e in t.errors]
    if notes.strip():
        lines.append("stderr: " + notes.strip())
    return IpptoolRun(argv, proc.returncode, tests, "\n".join(lines), elapsed)


def shorten_busy_retries(test_text: str, interval: float = 0.5) -> str:
    """Add ``DELAY 0,<interval>`` to every test that repeats on server-error-busy.

    ippeveprinter accepts one job at a time and answers server-error-busy while its
    previous job is still being "printed" (even for a few ms): ipptool then waits its
    default 5 s before repeating, which makes the suites take minutes.  Only the
    pacing of those repeats changes; the requests and EXPECTs stay as they are."""
    out, block = [], []
    depth = 0
    for line in test_text.splitlines(keepends=True):
        stripped = line.strip()
        if depth == 0 and stripped.startswith("{"):
            depth = 1
            block = [line]
            continue
        if depth:
            block.append(line)
            depth += stripped.count("{") - stripped.count("}")
            if depth <= 0:
                depth = 0
                text = "".join(block)
                if "server-error-busy REPEAT-MATCH" in text and "DELAY" not in text:
                    text = block[0] + f"\tDELAY \"0,{interval}\"\n" + "".join(block[1:])
                out.append(text)
            continue
        out.append(line)
    return "".join(out)


def get_attributes(uri: str, *names: str, timeout: float = 30) -> dict[str, list[str]]:
    """Get-Printer-Attributes through ipptool; values as ipptool prints them."""
    tool = require("ipptool")
    argv = [tool, "-t", "-v", "-T", str(int(timeout)), uri, "get-printer-attributes.test"]
    proc = run(argv, timeout=timeout + 10, check=False)
    out: dict[str, list[str]] = {}
    for line in proc.stdout.splitlines():
        line = line.strip()
        if " = " in line and " (" in line.split(" = ", 1)[0]:
            key, value = line.split(" = ", 1)
            out[key.split(" (", 1)[0]] = value.split(",")
    if names:
        out = {k: v for k, v in out.items() if k in names}
    return out


def ipp_ready(uri: str, timeout: float = 5) -> bool:
    tool = which("ipptool")
    if tool is None:
        return False
    try:
        return subprocess.run([tool, "-q", "-T", str(max(1, int(timeout))), uri, "get-printer-attributes.test"],
                              capture_output=True, timeout=timeout + 5).returncode == 0
    except subprocess.TimeoutExpired:
        return False


_JOB_LINE_KEYS = ("job-id", "job-state", "job-name", "job-state-reasons", "job-originating-user-name")


def get_jobs(uri: str, which_jobs: str = "all", timeout: float = 30) -> list[dict[str, str]]:
    """Get-Jobs with ipptool; one dict per job (job-id, job-state, job-name ...)."""
    tool = require("ipptool")
    test = (
        "{\n NAME \"Get-Jobs\"\n OPERATION Get-Jobs\n GROUP operation-attributes-tag\n"
        " ATTR charset attributes-charset utf-8\n ATTR naturalLanguage attributes-natural-language en\n"
        " ATTR uri printer-uri $uri\n ATTR name requesting-user-name $user\n"
        f" ATTR keyword which-jobs {which_jobs}\n"
        " ATTR keyword requested-attributes job-id,job-state,job-name,job-state-reasons,"
        "job-originating-user-name,job-impressions-completed\n STATUS successful-ok\n}\n"
    )
    with tempfile.TemporaryDirectory(prefix="getjobs-") as d:
        path = Path(d) / "get-jobs.test"
        path.write_text(test)
        proc = run([tool, "-T", str(int(timeout)), "-X", uri, str(path)], timeout=timeout + 10, check=False)
    try:
        data = plistlib.loads(proc.stdout.encode())
    except Exception as e:
        raise PeerError(f"Get-Jobs on {uri} gave no plist ({e}):\n{proc.stdout}\n{proc.stderr}") from None
    tests = data.get("Tests", [])
    if not tests or not tests[0].get("Successful"):
        raise PeerError(f"Get-Jobs on {uri} failed: {tests[0].get('StatusCode') if tests else proc.stderr}")
    jobs = []
    for group in tests[0].get("ResponseAttributes", [])[1:]:
        if "job-id" in group:
            jobs.append({k: v for k, v in group.items()})
    return jobs


JOB_STATES = {3: "pending", 4: "pending-held", 5: "processing", 6: "processing-stopped",
              7: "canceled", 8: "aborted", 9: "completed"}


def job_state_name(value: Any) -> str:
    if isinstance(value, int):
        return JOB_STATES.get(value, str(value))
    return str(value)


# --------------------------------------------------------------------------- ippeveprinter


class IppEvePrinter(Peer):
    """``ippeveprinter`` keeping every job it receives (-k) in ``spool_dir``.

    It names the kept files ``<job-id>-<job-name>.<ext>``: job-name lower-cased with
    anything but letters and digits turned into '_' (``1-a4_test_document.pdf``), ext
    from the document format (pdf, ps, jpg, pwg, urf).  application/octet-stream is
    sniffed (a PDF sent as octet-stream is kept as .pdf); what it cannot recognise it
    rejects with client-error-document-format-not-supported.  It writes the file
    while the job is received, then "prints" it: for a random 5-15 s without a print
    command, in milliseconds with ``fast``.  It takes one job at a time and answers
    server-error-busy ("Currently printing another job.") until that one is done.
    Job ids restart at 1 when it restarts (and files of the same name are replaced)."""

    name = "ippeveprinter"

    def __init__(self, workdir: Path, *, printer_name: str = "spoolproxy-test", port: int | None = None,
                 formats: str = EVE_FORMATS, fast: bool = False, duplex: bool = False,
                 register_dnssd: bool = False, extra_args: Iterable[str] = (),
                 name: str | None = None) -> None:
        super().__init__(workdir, name)
        self.printer_name = printer_name
        self.port = port or free_port()
        self.formats = formats
        self.extra_args = list(extra_args)
        if not register_dnssd:
            # -r off: do not advertise it over mDNS (it still needs avahi running to
            # start at all).  Parallel test runs then do not see each other's printers
            # or rename them; the conformance results are the same either way.
            self.extra_args += ["-r", "off"]
        if duplex:
            # -2: two-sided support; also makes it report pwg-raster-document-sheet-back,
            # which ipp-everywhere.test requires, and enables the duplex print tests.
            self.extra_args.append("-2")
        if fast:
            # Without a print command ippeveprinter "prints" each job for a random 5-15 s
            # and answers server-error-busy meanwhile.  /bin/true "prints" in a few ms;
            # -D file:///dev/null sends the command's output there (otherwise it writes
            # an empty <job>.prn next to every kept job file).
            self.extra_args += ["-c", shutil.which("true") or "/bin/true", "-D", "file:///dev/null"]
        self.spool_dir = self.workdir / "spool"
        self.spool_dir.mkdir(parents=True, exist_ok=True)

    @property
    def uri(self) -> str:
        return f"ipp://127.0.0.1:{self.port}/ipp/print"

    def argv(self) -> list[str]:
        return [require("ippeveprinter"), "-p", str(self.port), "-n", "localhost", "-f", self.formats,
                "-k", "-d", str(self.spool_dir), *self.extra_args, self.printer_name]

    def start(self, timeout: float = 30.0) -> "IppEvePrinter":
        ensure_dnssd()
        super().start(timeout)
        return self

    def wait_ready(self, timeout: float) -> None:
        wait_port("127.0.0.1", self.port, timeout, proc=self)
        deadline = time.monotonic() + timeout
        while not ipp_ready(self.uri):
            if not self.alive():
                raise PeerError(f"{self.name} exited with {self.returncode}\n{self.log_tail()}")
            if time.monotonic() > deadline:
                raise PeerError(f"{self.name} does not answer Get-Printer-Attributes\n{self.log_tail()}")
            time.sleep(0.1)

    def files(self) -> list[Path]:
        """Job files it kept, in job-id order."""
        def job_id(p: Path) -> tuple[int, str]:
            head = p.name.split("-", 1)[0]
            return (int(head) if head.isdigit() else 1 << 30, p.name)
        return sorted((p for p in self.spool_dir.iterdir() if p.is_file()), key=job_id)

    def wait_files(self, count: int, timeout: float = 60.0, settle: float = 1.0) -> list[Path]:
        """Wait until at least ``count`` files are there and none grew for ``settle`` s."""
        deadline = time.monotonic() + timeout
        last: list[tuple[str, int]] | None = None
        stable_since = time.monotonic()
        while True:
            files = self.files()
            sig = [(p.name, p.stat().st_size) for p in files]
            if sig != last:
                last, stable_since = sig, time.monotonic()
            if len(files) >= count and time.monotonic() - stable_since >= settle:
                return files
            if time.monotonic() > deadline:
                raise TimeoutError(f"{self.name}: {len(files)} of {count} job files after {timeout:.0f} s: "
                                   f"{[p.name for p in files]}")
            time.sleep(0.1)


# --------------------------------------------------------------------------- spoolproxy node


def _toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    if isinstance(v, (str, os.PathLike)):
        s = str(v).replace("\\", "\\\\").replace('"', '\\"')
        return f'"{s}"'
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    if isinstance(v, Mapping):  # an inline table: queues.q.cost = {gray = 10, ...}
        return "{" + ", ".join(f'"{k}" = {_toml_value(x)}' for k, x in v.items()) + "}"
    raise TypeError(f"cannot write {v!r} to TOML")


def to_toml(data: Mapping[str, Mapping[str, Any]]) -> str:
    """Two levels of tables, enough for the node's config ([ipp], [queues.NAME])."""
    lines: list[str] = []
    for section, values in data.items():
        scalars = {k: v for k, v in values.items() if not isinstance(v, Mapping)}
        tables = {k: v for k, v in values.items() if isinstance(v, Mapping)}
        if scalars or not tables:
            lines.append(f"[{section}]")
            lines += [f"{k} = {_toml_value(v)}" for k, v in scalars.items()]
            lines.append("")
        for name, sub in tables.items():
            lines.append(f'[{section}."{name}"]' if not name.replace("-", "").replace("_", "").isalnum()
                         else f"[{section}.{name}]")
            lines += [f"{k} = {_toml_value(v)}" for k, v in sub.items()]
            lines.append("")
    return "\n".join(lines)


def spoolproxy_importable() -> bool:
    return (REPO_ROOT / "spoolproxy" / "__main__.py").exists() or (REPO_ROOT / "spoolproxy" / "cli.py").exists()


class Node(Peer):
    """``python -m spoolproxy serve --config FILE --state-dir DIR`` as a subprocess.

    ``queues`` maps a queue name to its settings, e.g.
    ``{"q": {"printer": eve.uri, "mode": "direct", "default": True}}``;
    ``settings`` adds other sections/keys (``{"node": {"fsync": False}}``)."""

    name = "node"

    def __init__(self, workdir: Path, queues: Mapping[str, Mapping[str, Any]], *, port: int | None = None,
                 settings: Mapping[str, Mapping[str, Any]] | None = None, env: Mapping[str, str] | None = None,
                 name: str | None = None) -> None:
        super().__init__(workdir, name)
        self.port = port or free_port()
        self.web_port = free_port()
        self.lpd_port = free_port()
        self.queues = {q: dict(v) for q, v in queues.items()}
        self.settings = {k: dict(v) for k, v in (settings or {}).items()}
        self.extra_env = dict(env or {})
        self.config_path = self.workdir / f"{self.name}.toml"
        self.state_dir = self.workdir / "state"
        self.write_config()

    def write_config(self) -> None:
        data: dict[str, dict[str, Any]] = {}
        for section, values in self.settings.items():
            data[section] = dict(values)
        data.setdefault("ipp", {}).update({"listen": "127.0.0.1", "port": self.port})
        # the web API on a port of its own (8632 may be taken by another node on this machine)
        web = data.setdefault("web", {})
        web.setdefault("listen", "127.0.0.1")
        web.setdefault("port", self.web_port)
        lpd = data.setdefault("lpd", {})
        lpd.setdefault("listen", "127.0.0.1")
        lpd.setdefault("port", self.lpd_port)
        data["queues"] = {q: v for q, v in self.queues.items()}
        self.config_path.write_text(to_toml(data))

    def argv(self) -> list[str]:
        return [sys.executable, "-m", "spoolproxy", "serve", "--config", str(self.config_path),
                "--state-dir", str(self.state_dir)]

    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO_ROOT), env.get("PYTHONPATH", "")) if p)
        env["PYTHONUNBUFFERED"] = "1"
        env.update(self.extra_env)
        return env

    def cwd(self) -> Path:
        return self.workdir

    def wait_ready(self, timeout: float) -> None:
        wait_port("127.0.0.1", self.port, timeout, proc=self)
        if self.settings.get("lpd", {}).get("enabled", True):
            wait_port("127.0.0.1", self.lpd_port, timeout, proc=self)
        web = self.settings.get("web", {})
        if web.get("enabled", True) and web.get("port", self.web_port):
            wait_port("127.0.0.1", web.get("port", self.web_port), timeout, proc=self)

    def start(self, timeout: float = 30.0) -> "Node":
        if not spoolproxy_importable():
            unavailable(f"spoolproxy has no CLI yet in {REPO_ROOT} (spoolproxy/__main__.py missing)")
        self.write_config()
        super().start(timeout)
        return self

    @property
    def base_uri(self) -> str:
        return f"ipp://127.0.0.1:{self.port}/ipp/print"

    def uri(self, queue: str | None = None) -> str:
        if queue is None:
            queue = next((q for q, v in self.queues.items() if v.get("default")), next(iter(self.queues)))
        return f"{self.base_uri}/{queue}"

    @property
    def uris(self) -> dict[str, str]:
        return {q: self.uri(q) for q in self.queues}

    def peak_rss(self) -> int:
        """VmHWM of the running node, in bytes."""
        return _proc_status_kb(self.pid, "VmHWM") * 1024

    def rss(self) -> int:
        return _proc_status_kb(self.pid, "VmRSS") * 1024


def _proc_status_kb(pid: int | None, key: str) -> int:
    if pid is None:
        raise PeerError("process is not running")
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    raise PeerError(f"no {key} in /proc/{pid}/status")


# --------------------------------------------------------------------------- cupsd


class Cupsd(Peer):
    """A private cupsd: its own ServerRoot, spool, cache, state and logs, listening
    on 127.0.0.1:PORT only, no authentication, FileDevice Yes.

    Its directory is made under /tmp with mode 0755 (not under pytest's 0700 tmp_path):
    cupsd runs backends such as ipp and socket as user lp, which must reach the spool."""

    name = "cupsd"

    def __init__(self, workdir: Path | None = None, *, port: int | None = None, name: str | None = None) -> None:
        self.owns_workdir = workdir is None
        if workdir is None:
            workdir = Path(tempfile.mkdtemp(prefix="spoolproxy-cupsd-"))
        super().__init__(workdir, name)
        os.chmod(self.workdir, 0o755)
        self.port = port or free_port()
        self.conf_dir = self.workdir / "etc"
        self.dirs = {k: self.workdir / k for k in ("spool", "cache", "state", "log", "tmp")}
        for d in (self.conf_dir, *self.dirs.values()):
            d.mkdir(parents=True, exist_ok=True)
            os.chmod(d, 0o755)
        os.chmod(self.dirs["tmp"], 0o1777)
        (self.conf_dir / "ppd").mkdir(exist_ok=True)
        (self.conf_dir / "cupsd.conf").write_text(self.cupsd_conf())
        (self.conf_dir / "cups-files.conf").write_text(self.cups_files_conf())

    @property
    def server(self) -> str:
        """What lp, lpstat and lpadmin take as -h."""
        return f"127.0.0.1:{self.port}"

    def cupsd_conf(self) -> str:
        # the bench's private cupsd and this one differ only in these (logs, retries, history)
        return cupsd_conf(self.port, {"LogLevel": "debug", "MaxLogSize": 0, "JobRetryInterval": 2,
                                      "MaxJobTime": 0, "PreserveJobHistory": "Yes", "PreserveJobFiles": "No"})

    def cups_files_conf(self) -> str:
        return cups_files_conf({"etc": self.conf_dir, **self.dirs}, sync=False)

    def argv(self) -> list[str]:
        return [require("cupsd"), "-f", "-c", str(self.conf_dir / "cupsd.conf"),
                "-s", str(self.conf_dir / "cups-files.conf")]

    def wait_ready(self, timeout: float) -> None:
        wait_port("127.0.0.1", self.port, timeout, proc=self)

    def log_text(self) -> str:
        own = super().log_text()
        try:
            err = (self.dirs["log"] / "error_log").read_text(errors="replace")
        except FileNotFoundError:
            err = ""
        return own + ("\n----- error_log\n" + err if err else "")

    def _client_env(self) -> dict[str, str]:
        env = dict(os.environ)
        env["CUPS_SERVER"] = self.server
        env.pop("PRINTER", None)
        env.pop("LPDEST", None)
        return env

    def lpadmin(self, queue: str, device_uri: str, *args: str) -> None:
        """A raw queue (no PPD, no filters): the job's bytes go to ``device_uri`` as they are.

        Leaving out -m/-P makes a queue without a PPD, which is a raw queue.  (CUPS 2.4.2
        still takes ``-m raw`` but warns "Raw queues are deprecated"; ``-m everywhere``
        would make cupsd query the printer and filter jobs, which is not wanted here.)
        ``-E`` after ``-p`` enables the queue and makes it accept jobs."""
        run([require("lpadmin"), "-h", self.server, "-p", queue, "-E", "-v", device_uri, *args],
            env=self._client_env(), timeout=30)

    def lp(self, queue: str, path: str | os.PathLike, *options: str) -> int:
        """Print with ``lp -h`` to this cupsd; returns the CUPS job id."""
        return lp(self.server, queue, path, *options)

    def jobs(self, queue: str, which_jobs: str = "all") -> list[dict[str, str]]:
        return get_jobs(f"ipp://{self.server}/printers/{queue}", which_jobs)

    def stop(self, timeout: float = 15.0) -> int | None:
        return super().stop(timeout)

    def cleanup(self) -> None:
        if self.alive():
            self.stop()
        if self.owns_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)


def lp(server: str, queue: str, path: str | os.PathLike, *options: str) -> int:
    """``lp -h SERVER -d QUEUE [options] FILE``; returns the job id lp reports."""
    env = dict(os.environ)
    env.pop("PRINTER", None)
    env.pop("LPDEST", None)
    proc = run([require("lp"), "-h", server, "-d", queue, *options, str(path)], env=env, timeout=120)
    # "request id is QUEUE-17 (1 file(s))"
    for word in proc.stdout.split():
        if word.startswith(queue + "-") and word[len(queue) + 1:].isdigit():
            return int(word[len(queue) + 1:])
    raise PeerError(f"lp printed no request id: {proc.stdout!r} {proc.stderr!r}")


def lpstat_completed(server: str, queue: str) -> str:
    env = dict(os.environ)
    return run([require("lpstat"), "-h", server, "-W", "completed", "-o", queue], env=env, timeout=60,
               check=False).stdout


# --------------------------------------------------------------------------- snmpd


def free_udp_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


# GetRequest for sysDescr.0, SNMPv2c, community "public", request-id 1 (hand-encoded, so
# that Snmpd.wait_ready does not depend on the code under test)
_SYSDESCR_GET = bytes.fromhex("302602010104067075626c6963a019020101020100020100300e300c06082b060102010101000500")
SNMP_AGENT_SCRIPT = Path(__file__).resolve().parent / "snmp_printer_agent.py"


class Snmpd(Peer):
    """Net-SNMP's ``snmpd`` (Debian package snmpd) as a printer's agent on 127.0.0.1:PORT.

    ``snmpd -f -Lo -C -c CONF -I -hr_device,... udp:127.0.0.1:PORT``: in the foreground, logging
    to stdout, reading only its own config (no /etc/snmp/snmpd.conf, no persistent state:
    SNMP_PERSISTENT_DIR and persistentDir are in the work directory).  Its config::

        rocommunity public 127.0.0.1          v1 and v2c, read-only, the whole view
        sysdescr ...                          SNMPv2-MIB sysDescr.0
        pass_persist .1.3.6.1.2.1.25.3 ...    Host Resources devices: hrDeviceTable, hrPrinterTable
        pass_persist .1.3.6.1.2.1.43 ...      the Printer MIB

    Both subtrees are served by tests/snmp_printer_agent.py from ``state.json``, which it
    re-reads on every request: ``set(jammed...)`` and ``add_pages(n)`` change the printer
    while a test runs.  snmpd's own Host Resources device modules would still answer
    the more specific hrDeviceTable/hrPrinterTable OIDs (this machine's CPUs and network
    interfaces, even with ``pass_persist -p 1``), so they are left out with ``-I``: the
    printer is then the only device.  Runs as the invoking user (as root it would keep
    root; it only listens on a high port, never 161, so it does not meet a system snmpd
    that the Debian package may have started)."""

    name = "snmpd"
    # snmpd's modules that make up hrDeviceTable and its sub-tables (hr_filesys is hrFSTable)
    HOST_DEVICE_MODULES = ("hr_device", "hr_other", "hr_proc", "hr_network", "hr_print", "hr_disk",
                           "hr_partition", "hr_filesys")

    def __init__(self, workdir: Path, *, port: int | None = None, community: str = "public",
                 sysdescr: str = "spoolproxy test printer agent", name: str | None = None,
                 **state: Any) -> None:
        super().__init__(workdir, name)
        self.port = port or free_udp_port()
        if self.port == 161:
            raise PeerError("the snmpd peer never uses port 161 (the system's agent may own it)")
        self.community = community
        self.sysdescr = sysdescr
        self.state_path = self.workdir / "state.json"
        self.conf_path = self.workdir / "snmpd.conf"
        self.persist_dir = self.workdir / "persist"
        self.persist_dir.mkdir(exist_ok=True)
        self.state: dict[str, Any] = {
            "description": "ACME LaserWriter 9000", "device_index": 1, "device_status": 2,
            "printer_status": 3, "error_bits": "0000", "page_counter": 1000, "counter_unit": 7,
            "supplies": [
                {"description": "Black Toner Cartridge", "type": 21, "class": 3, "unit": 19, "max": 100, "level": 80},
                {"description": "Waste Toner Box", "type": 4, "class": 4, "unit": 19, "max": -2, "level": -3},
            ],
        }
        self.set(**state)

    @property
    def address(self) -> tuple[str, int]:
        return ("127.0.0.1", self.port)

    def config_text(self) -> str:
        agent = f"{sys.executable} {SNMP_AGENT_SCRIPT} {self.state_path}"
        return "\n".join([
            f"[snmp] persistentDir {self.persist_dir}",
            "[snmp] noPersistentLoad yes",
            "[snmp] noPersistentSave yes",
            "dontLogTCPWrappersConnects yes",
            f"rocommunity {self.community} 127.0.0.1",
            f"sysdescr {self.sysdescr}",
            f"pass_persist .1.3.6.1.2.1.25.3 {agent}",
            f"pass_persist .1.3.6.1.2.1.43 {agent}",
            "",
        ])

    def argv(self) -> list[str]:
        self.conf_path.write_text(self.config_text())
        return [require("snmpd"), "-f", "-Lo", "-C", "-c", str(self.conf_path),
                "-I", "-" + ",".join(self.HOST_DEVICE_MODULES),
                "-p", str(self.workdir / "snmpd.pid"), f"udp:127.0.0.1:{self.port}"]

    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        env["SNMP_PERSISTENT_DIR"] = str(self.persist_dir)
        env["MIBS"] = ""  # no MIB files to load: everything here is numeric
        return env

    def answers(self, timeout: float = 0.5) -> bool:
        """snmpd answers an SNMPv2c GET of sysDescr.0."""
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.settimeout(timeout)
            try:
                s.sendto(_SYSDESCR_GET, self.address)
                data, _ = s.recvfrom(65535)
            except OSError:
                return False
        return data[:1] == b"\x30"

    def wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while not self.answers():
            if not self.alive():
                raise PeerError(f"{self.name} exited with {self.returncode}\n{self.log_tail()}")
            if time.monotonic() > deadline:
                raise PeerError(f"{self.name} does not answer on udp:127.0.0.1:{self.port}\n{self.log_tail()}")
            time.sleep(0.05)

    # -- the printer --------------------------------------------------------------------------

    def set(self, **state: Any) -> None:
        """Change the printer: description, device_index, device_status, printer_status,
        error_bits (hex, or bytes), page_counter, counter_unit, supplies.  Written
        atomically (the agent program reads it on every request)."""
        if isinstance(state.get("error_bits"), (bytes, bytearray)):
            state["error_bits"] = bytes(state["error_bits"]).hex()
        unknown = set(state) - set(self.state)
        if unknown:
            raise TypeError(f"unknown printer state {sorted(unknown)}")
        self.state.update(state)
        tmp = self.state_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.state))
        os.replace(tmp, self.state_path)

    def add_pages(self, n: int) -> int:
        """The printer printed ``n`` more impressions; returns the new counter."""
        self.set(page_counter=int(self.state["page_counter"]) + n)
        return int(self.state["page_counter"])


# --------------------------------------------------------------------------- documents


def _gs(argv: list[str], cwd: Path) -> None:
    gs = require("gs")
    env = dict(os.environ, SOURCE_DATE_EPOCH="1600000000")  # fixed dates in the output
    run([gs, "-q", "-dNOPAUSE", "-dBATCH", "-dSAFER", *argv], cwd=cwd, env=env, timeout=300)


def _page_program(pages: int, color: bool, width: float, height: float, label: str = "Page") -> str:
    """PostScript that draws ``pages`` numbered pages (big number, frame, colour bars)."""
    fill = ("[1 0 0] [0 0.6 0] [0 0 1] [1 0.8 0] [0 0.8 0.8] [0.8 0 0.8]" if color else
            "[0.1] [0.3] [0.5] [0.7] [0.2] [0.6]")
    setc = "aload pop setrgbcolor" if color else "aload pop setgray"
    return f"""%!PS-Adobe-3.0
%%Pages: {pages}
%%BoundingBox: 0 0 {int(width)} {int(height)}
%%EndComments
<< /PageSize [{width} {height}] >> setpagedevice
/colours [{fill}] def
1 1 {pages} {{
  /n exch def
  0 setgray 2 setlinewidth 36 36 {width - 72} {height - 72} rectstroke
  0 1 5 {{ /i exch def colours i get {setc} 54 i 40 mul add 54 30 {height / 3:.1f} rectfill }} for
  0 setgray /Helvetica-Bold findfont 48 scalefont setfont
  {width / 2 - 90:.1f} {height / 2:.1f} moveto ({label} ) show n 10 string cvs show
  /Helvetica findfont 12 scalefont setfont
  {width / 2 - 90:.1f} {height / 2 - 30:.1f} moveto (spoolproxy interop test document) show
  showpage
}} for
%%EOF
"""


PAPER = {"a4": (595.0, 842.0), "letter": (612.0, 792.0), "4x6": (288.0, 432.0)}


def _render(path: Path, device: str, pages: int, color: bool, paper: str, extra: list[str]) -> Path:
    path = Path(path).resolve()
    path.parent.mkdir(parents=True, exist_ok=True)
    w, h = PAPER[paper]
    src = path.parent / f".{path.name}.src.ps"
    src.write_text(_page_program(pages, color, w, h))
    # pdfwrite derives the document /ID from the output file name: render to a fixed
    # relative name in the target directory, then rename, so the bytes only depend on
    # (pages, color, paper).
    tmp_name = f".render-{device}.tmp"
    try:
        _gs([f"-sDEVICE={device}", f"-dDEVICEWIDTHPOINTS={w}", f"-dDEVICEHEIGHTPOINTS={h}",
             "-dFIXEDMEDIA", *extra, f"-sOutputFile={tmp_name}", src.name], cwd=path.parent)
        os.replace(path.parent / tmp_name, path)
    finally:
        src.unlink(missing_ok=True)
    return path


def make_pdf(path: str | os.PathLike, pages: int = 1, color: bool = True, paper: str = "a4") -> Path:
    """A deterministic PDF of ``pages`` numbered pages (colour bars, or grey when not color)."""
    return _render(Path(path), "pdfwrite", pages, color, paper, [])


def make_ps(path: str | os.PathLike, pages: int = 1, color: bool = True, paper: str = "a4") -> Path:
    return _render(Path(path), "ps2write", pages, color, paper, [])


def make_jpeg(path: str | os.PathLike, color: bool = True, paper: str = "4x6", dpi: int = 100) -> Path:
    return _render(Path(path), "jpeg" if color else "jpeggray", 1, color, paper, [f"-r{dpi}"])


# pwg-raster-document-type-supported keyword -> (cupsColorSpace, cupsBitsPerColor, sample dir)
PWG_TYPES = {
    "black_1": (3, 1, "black-1"),
    "sgray_8": (18, 8, "sgray-8"),
    "srgb_8": (19, 8, "srgb-8"),
    "srgb_16": (19, 16, "srgb-16"),
    "cmyk_8": (6, 8, "cmyk-8"),
}


def make_pwg(path: str | os.PathLike, pages: int = 1, color: bool = True, paper: str = "a4",
             dpi: int = 300, pwg_type: str = "sgray_8") -> Path:
    cspace, bits, _ = PWG_TYPES[pwg_type]
    return _render(Path(path), "pwgraster", pages, color, paper,
                   [f"-r{dpi}", f"-dcupsColorSpace={cspace}", f"-dcupsBitsPerColor={bits}"])


IPPTOOL_SUITES = ("ipp-1.1.test", "ipp-2.0.test", "ipp-everywhere.test")
ALL_RESOLUTIONS = (150, 180, 300, 360, 600, 720)      # what ipp-everywhere.test knows
_SAMPLES = (("color.jpg-4x6", 1, True, "4x6"), ("gray.jpg-4x6", 1, False, "4x6"),
            ("document-a4", 3, True, "a4"), ("document-letter", 3, True, "letter"),
            ("onepage-a4", 1, True, "a4"), ("onepage-letter", 1, True, "letter"))


def make_ipptool_docs(dest: str | os.PathLike, resolutions: Iterable[int] = (300, 600),
                      pwg_types: Iterable[str] = ("black_1", "sgray_8")) -> Path:
    """A directory with copies of the PWG test files and every document they print.

    The Debian package ships the .test files but not the documents they name:
    ipp-1.1.test prints document-a4.pdf, document-letter.pdf, document-a4.ps,
    document-letter.ps, color.jpg and gray.jpg (no SKIP-IF-MISSING: a missing file is
    a FAIL); ipp-everywhere.test prints pwg-raster-samples-<dpi>dpi/<type>/
    {color.jpg-4x6,gray.jpg-4x6,document-a4,document-letter,onepage-a4,onepage-letter}
    -<type>-<dpi>dpi.pwg for every resolution and raster type the printer advertises.
    ipptool 2.4 checks that every FILE is readable when it *parses* the test file, so
    SKIP-IF-MISSING does not help and a single missing sample aborts the whole suite:
    the samples for ``resolutions`` x ``pwg_types`` are rendered with Ghostscript, all
    the others are empty placeholders (their tests are skipped by SKIP-IF-NOT-DEFINED
    HAVE_<dpi>DPI / HAVE_<type> unless the printer claims them).

    ipptool looks FILEs up next to the .test file, so the .test files are copied here;
    run ipptool on the copies.  testfile.pdf (2 pages) is the document for -f."""
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    for src in IPPTOOL_DIR.glob("*.test"):
        if not (dest / src.name).exists():
            shutil.copy(src, dest / src.name)
    todo: list[tuple[Callable[..., Path], Path, dict]] = [
        (make_pdf, dest / "document-a4.pdf", dict(pages=3, paper="a4")),
        (make_pdf, dest / "document-letter.pdf", dict(pages=3, paper="letter")),
        (make_ps, dest / "document-a4.ps", dict(pages=3, paper="a4")),
        (make_ps, dest / "document-letter.ps", dict(pages=3, paper="letter")),
        (make_jpeg, dest / "color.jpg", dict(color=True)),
        (make_jpeg, dest / "gray.jpg", dict(color=False)),
        (make_pdf, dest / "testfile.pdf", dict(pages=2, paper="a4")),
    ]
    wanted = {(int(r), t) for r in resolutions for t in pwg_types if t in PWG_TYPES}
    for dpi in ALL_RESOLUTIONS:
        for t, (_cs, _bits, sub_name) in PWG_TYPES.items():
            sub = dest / f"pwg-raster-samples-{dpi}dpi" / sub_name
            for doc, pages, color, paper in _SAMPLES:
                if t == "srgb_16" and not doc.startswith("color"):
                    continue  # the suite only has color.jpg-4x6 in srgb-16
                path = sub / f"{doc}-{sub_name}-{dpi}dpi.pwg"
                if (dpi, t) in wanted:
                    if not path.exists() or path.stat().st_size == 0:
                        todo.append((make_pwg, path, dict(pages=pages, color=color, paper=paper,
                                                          dpi=dpi, pwg_type=t)))
                elif not path.exists():
                    sub.mkdir(parents=True, exist_ok=True)
                    path.touch()
    for fn, path, kw in todo:
        if not path.exists():
            fn(path, **kw)
    return dest


def suite_dir_with_short_busy_retries(docs: str | os.PathLike, dest: str | os.PathLike,
                                      interval: float = 0.5) -> Path:
    """``dest`` = the documents of ``docs`` (symlinked) + its .test files passed
    through shorten_busy_retries (for the ippeveprinter baseline)."""
    docs, dest = Path(docs), Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    for entry in docs.iterdir():
        target = dest / entry.name
        if target.exists() or target.is_symlink():
            continue
        if entry.suffix == ".test":
            target.write_text(shorten_busy_retries(entry.read_text(), interval))
        else:
            target.symlink_to(entry.resolve())
    return dest


def raster_capabilities(uri: str) -> tuple[set[int], set[str]]:
    """The PWG raster resolutions and types a printer advertises."""
    attrs = get_attributes(uri, "pwg-raster-document-resolution-supported", "pwg-raster-document-type-supported")
    res = {int(v.strip().removesuffix("dpi").split("x")[0]) for v in attrs.get("pwg-raster-document-resolution-supported", [])
           if v.strip().removesuffix("dpi").split("x")[0].isdigit()}
    types = {v.strip() for v in attrs.get("pwg-raster-document-type-supported", [])}
    return res, types


# --------------------------------------------------------------------------- AppSocket sink


@dataclasses.dataclass
class SinkConnection:
    peer: tuple[str, int]
    size: int = 0
    sha256: str = ""
    data: bytes | None = None   # only when the sink keeps bytes
    done: bool = False          # the client closed (or shut down its sending side)


class AppSocketSink:
    """A tiny AppSocket (port 9100 style) printer: accepts TCP connections and records
    each connection's bytes (or only their count and SHA-256 with ``keep=False``).

    ``down()`` closes the listening socket so that connections are refused; ``up()``
    listens again on the same port."""

    def __init__(self, port: int | None = None, keep: bool = True, host: str = "127.0.0.1") -> None:
        self.host = host
        self.port = port or free_port(host)
        self.keep = keep
        self.connections: list[SinkConnection] = []
        self._lock = threading.Lock()
        self._listener: socket.socket | None = None
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()

    @property
    def uri(self) -> str:
        return f"socket://{self.host}:{self.port}"

    def up(self) -> "AppSocketSink":
        if self._listener is not None:
            return self
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind((self.host, self.port))
        s.listen(16)
        s.settimeout(0.2)
        self._listener = s
        self._stopping.clear()
        self._thread = threading.Thread(target=self._accept_loop, args=(s,), daemon=True, name="appsocket-sink")
        self._thread.start()
        return self

    start = up

    def down(self) -> None:
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(5)
        if self._listener is not None:
            self._listener.close()
        self._listener = None
        self._thread = None

    stop = down

    def _accept_loop(self, listener: socket.socket) -> None:
        while not self._stopping.is_set():
            try:
                conn, addr = listener.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn, addr), daemon=True).start()

    def _serve(self, conn: socket.socket, addr: tuple[str, int]) -> None:
        rec = SinkConnection(peer=addr)
        with self._lock:
            self.connections.append(rec)
        h = hashlib.sha256()
        chunks: list[bytes] = []
        conn.settimeout(None)
        with conn:
            while True:
                try:
                    data = conn.recv(1 << 20)
                except OSError:
                    break
                if not data:
                    break
                h.update(data)
                rec.size += len(data)
                if self.keep:
                    chunks.append(data)
        rec.sha256 = h.hexdigest()
        if self.keep:
            rec.data = b"".join(chunks)
        rec.done = True

    def finished(self) -> list[SinkConnection]:
        """Connections that ended and carried at least one byte (a status probe that
        connects and closes without data is not a job)."""
        with self._lock:
            return [c for c in self.connections if c.done and c.size > 0]

    def wait_jobs(self, count: int, timeout: float = 60.0, settle: float = 1.0) -> list[SinkConnection]:
        """Wait until ``count`` non-empty connections have ended and nothing changed for ``settle`` s."""
        deadline = time.monotonic() + timeout
        last = None
        since = time.monotonic()
        while True:
            with self._lock:
                sig = [(c.size, c.done) for c in self.connections]
            if sig != last:
                last, since = sig, time.monotonic()
            jobs = self.finished()
            if len(jobs) >= count and time.monotonic() - since >= settle:
                return jobs
            if time.monotonic() > deadline:
                raise TimeoutError(f"AppSocket sink got {len(jobs)} of {count} jobs within {timeout:.0f} s "
                                   f"(connections: {sig})")
            time.sleep(0.05)


# --------------------------------------------------------------------------- a minimal IPP client
# Just enough RFC 8010 to send a Print-Job whose document is streamed with HTTP chunked
# encoding, without depending on the code under test.

_TAG_OPERATION, _TAG_JOB, _TAG_END = 0x01, 0x02, 0x03
_TAG_INTEGER, _TAG_BOOLEAN, _TAG_ENUM = 0x21, 0x22, 0x23
_TAG_NAME, _TAG_KEYWORD, _TAG_URI, _TAG_CHARSET, _TAG_LANGUAGE, _TAG_MIME = 0x42, 0x44, 0x45, 0x47, 0x48, 0x49


def _attr(tag: int, name: str, value: bytes | str) -> bytes:
    v = value.encode() if isinstance(value, str) else value
    n = name.encode()
    return struct.pack(">BH", tag, len(n)) + n + struct.pack(">H", len(v)) + v


def encode_request(op: int, request_id: int, operation_attrs: list[tuple[int, str, Any]],
                   job_attrs: list[tuple[int, str, Any]] = ()) -> bytes:
    out = bytearray(struct.pack(">BBHI", 2, 0, op, request_id))
    out.append(_TAG_OPERATION)
    for tag, name, value in operation_attrs:
        if tag in (_TAG_INTEGER, _TAG_ENUM):
            value = struct.pack(">i", value)
        elif tag == _TAG_BOOLEAN:
            value = b"\x01" if value else b"\x00"
        out += _attr(tag, name, value)
    if job_attrs:
        out.append(_TAG_JOB)
        for tag, name, value in job_attrs:
            if tag in (_TAG_INTEGER, _TAG_ENUM):
                value = struct.pack(">i", value)
            out += _attr(tag, name, value)
    out.append(_TAG_END)
    return bytes(out)


def decode_response(body: bytes) -> tuple[int, dict[str, list[Any]]]:
    """Status code and a flat name -> values map (integers decoded, the rest as str/bytes)."""
    status = struct.unpack(">H", body[2:4])[0]
    pos, attrs, last = 8, {}, None
    while pos < len(body):
        tag = body[pos]
        pos += 1
        if tag <= 0x0F:
            if tag == _TAG_END:
                break
            continue
        nlen = struct.unpack(">H", body[pos:pos + 2])[0]
        name = body[pos + 2:pos + 2 + nlen].decode()
        pos += 2 + nlen
        vlen = struct.unpack(">H", body[pos:pos + 2])[0]
        raw = body[pos + 2:pos + 2 + vlen]
        pos += 2 + vlen
        if tag in (_TAG_INTEGER, _TAG_ENUM) and vlen == 4:
            value: Any = struct.unpack(">i", raw)[0]
        elif 0x40 <= tag <= 0x4F:
            value = raw.decode(errors="replace")
        else:
            value = raw
        if name:
            last = name
            attrs.setdefault(name, []).append(value)
        elif last is not None:
            attrs[last].append(value)
    return status, attrs


def _read_http_response(sock: socket.socket) -> tuple[int, dict[str, str], bytes]:
    f = sock.makefile("rb")
    while True:
        status_line = f.readline()
        if not status_line:
            raise PeerError("connection closed before the HTTP response")
        code = int(status_line.split()[1])
        headers: dict[str, str] = {}
        while True:
            line = f.readline()
            if line in (b"\r\n", b"\n", b""):
                break
            k, _, v = line.decode("latin-1").partition(":")
            headers[k.strip().lower()] = v.strip()
        if code != 100:
            break
    if headers.get("transfer-encoding", "").lower() == "chunked":
        body = bytearray()
        while True:
            size = int(f.readline().split(b";")[0], 16)
            if size == 0:
                while f.readline() not in (b"\r\n", b"\n", b""):
                    pass
                break
            body += f.read(size)
            f.readline()
        return code, headers, bytes(body)
    n = int(headers.get("content-length", "0"))
    return code, headers, f.read(n)


def ipp_print_stream(uri: str, chunks: Iterable[bytes], *, document_format: str = "application/octet-stream",
                     job_name: str = "stream", user: str = "tester", timeout: float = 120.0,
                     operation_attrs: list[tuple[int, str, Any]] = ()) -> tuple[int, dict[str, list[Any]]]:
    """Print-Job to ``uri`` (ipp://host:port/path) with the document streamed chunked.

    Returns (IPP status code, response attributes)."""
    from urllib.parse import urlsplit
    u = urlsplit(uri)
    host, port, path = u.hostname or "127.0.0.1", u.port or 631, u.path or "/"
    req = encode_request(0x0002, 1, [
        (_TAG_CHARSET, "attributes-charset", "utf-8"),
        (_TAG_LANGUAGE, "attributes-natural-language", "en"),
        (_TAG_URI, "printer-uri", uri),
        (_TAG_NAME, "requesting-user-name", user),
        (_TAG_NAME, "job-name", job_name),
        (_TAG_MIME, "document-format", document_format),
        *operation_attrs,
    ])
    with socket.create_connection((host, port), timeout=timeout) as sock:
        head = (f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: application/ipp\r\n"
                f"Transfer-Encoding: chunked\r\nUser-Agent: spoolproxy-tests\r\n\r\n").encode()
        sock.sendall(head + b"%x\r\n" % len(req) + req + b"\r\n")
        for chunk in chunks:
            if chunk:
                sock.sendall(b"%x\r\n" % len(chunk))
                sock.sendall(chunk)
                sock.sendall(b"\r\n")
        sock.sendall(b"0\r\n\r\n")
        code, _headers, body = _read_http_response(sock)
    if code != 200:
        raise PeerError(f"HTTP {code} from {uri}: {body[:200]!r}")
    return decode_response(body)


def pattern_chunks(total: int, chunk_size: int = 1 << 20, seed: bytes = b"spoolproxy") -> tuple[Iterator[bytes], "hashlib._Hash"]:
    """Deterministic pseudo-random bytes, generated on the fly; the returned hash object
    is updated as the chunks are produced (read ``hexdigest()`` after the iterator ends).

    Every chunk starts with its index, so a lost, duplicated or reordered chunk changes
    the digest."""
    base = hashlib.shake_256(seed).digest(chunk_size)
    h = hashlib.sha256()

    def gen() -> Iterator[bytes]:
        sent = 0
        i = 0
        while sent < total:
            n = min(chunk_size, total - sent)
            block = (struct.pack(">Q", i) + base[8:])[:n]
            h.update(block)
            sent += n
            i += 1
            yield block

    return gen(), h


# --------------------------------------------------------------------------- small documents


def build_pdf(contents: list[bytes], resources: str = "<< >>", extra: list[bytes] = (), *,
              media: tuple[int, int] = (300, 300), comment: bytes = b"") -> bytes:
    """A small hand-made PDF, one page per content stream; ``extra`` objects are numbered
    from 3 + 2 * pages on (the resources may refer to them); ``comment``: a line after
    the header (e.g. a benchmark's tag)."""
    objs: dict[int, bytes] = {}
    kids = []
    for i, content in enumerate(contents):
        pn, cn = 3 + 2 * i, 4 + 2 * i
        kids.append(f"{pn} 0 R")
        objs[pn] = (f"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 {media[0]} {media[1]}] /Resources {resources} "
                    f"/Contents {cn} 0 R >>").encode()
        objs[cn] = b"<< /Length %d >>\nstream\n" % len(content) + content + b"\nendstream"
    for j, body in enumerate(extra):
        objs[3 + 2 * len(contents) + j] = body
    objs[1] = b"<< /Type /Catalog /Pages 2 0 R >>"
    objs[2] = f"<< /Type /Pages /Kids [{' '.join(kids)}] /Count {len(contents)} >>".encode()
    out = bytearray(b"%PDF-1.7\n" + (comment + b"\n" if comment else b"") + b"%\xe2\xe3\xcf\xd3\n")
    offsets = {}
    for k in sorted(objs):
        offsets[k] = len(out)
        out += b"%d 0 obj\n" % k + objs[k] + b"\nendobj\n"
    xref, size = len(out), max(objs) + 1
    out += b"xref\n0 %d\n0000000000 65535 f \n" % size
    for k in range(1, size):
        out += b"%010d 00000 n \n" % offsets[k]
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (size, xref)
    return bytes(out)


def simple_pdf(colors: Iterable[bool], *, media: tuple[int, int] = (595, 842), comment: bytes = b"") -> bytes:
    """One A4 page per entry: a red square where True, a grey one where False. The engine
    decides these colours from the content stream alone (no Ghostscript), so a test
    knows the price before the node counts it."""
    return build_pdf([(b"1 0 0 rg" if c else b"0.5 g") + b" 100 100 200 200 re f" for c in colors], media=media,
                     comment=comment)
