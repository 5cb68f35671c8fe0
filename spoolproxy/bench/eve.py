"""ippeveprinter instances as the load test's printers (``bench run --printers ippeveprinter``).

The sinks (``sinks``) accept as fast as the network allows, so that the node is what
is measured. These are CUPS's IPP Everywhere reference printer instead: one process
per printer queue, each keeping what it receives (``-k -d DIR``) and "printing" with
``/bin/true`` (``-c``), so a job takes milliseconds rather than its default 5-15 s.
Like a real printer it takes one job at a time and answers ``server-error-busy``
meanwhile, which the node waits out: a run against them shows the node's delivery
path against a printer that pushes back.

``stats()`` has the sinks' shape (``{printer: {"jobs", "bytes", "last"}}``), counted
from the kept files, so the books check reads both the same way.
"""
from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path
from typing import Iterable

from .errors import BenchError

# what the bench's documents are sent as; ippeveprinter takes any type it is told to
FORMATS = ",".join(("application/pdf", "application/postscript", "application/vnd.hp-pcl",
                    "application/vnd.hp-pclxl", "image/pwg-raster", "image/urf", "image/jpeg",
                    "application/octet-stream"))
DNSSD_HINT = ("ippeveprinter needs the system D-Bus and avahi-daemon running, even with -r off "
              "(as root: dbus-daemon --system --fork; avahi-daemon -D)")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class EvePrinters:
    """One ippeveprinter per name, in ``workdir/NAME``; a context manager."""

    def __init__(self, workdir: Path, names: Iterable[str]) -> None:
        self.workdir = Path(workdir)
        self.names = tuple(names)
        self.ports: dict[str, int] = {}
        self.procs: dict[str, subprocess.Popen] = {}

    def _dir(self, name: str) -> Path:
        return self.workdir / name / "spool"

    def start(self, timeout: float = 30) -> "EvePrinters":
        tool = shutil.which("ippeveprinter")
        if tool is None:
            raise BenchError("--printers ippeveprinter: ippeveprinter is not installed (Debian: cups-ipp-utils)")
        true = shutil.which("true") or "/bin/true"
        try:
            for name in self.names:
                self._dir(name).mkdir(parents=True, exist_ok=True)
                port = self.ports[name] = _free_port()
                argv = [tool, "-p", str(port), "-n", "localhost", "-f", FORMATS, "-k", "-d", str(self._dir(name)),
                        "-r", "off", "-c", true, "-D", "file:///dev/null", f"bench-{name}"]
                with open(self.workdir / name / "ippeveprinter.log", "ab") as log:
                    self.procs[name] = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                                        start_new_session=True)
            deadline = time.monotonic() + timeout
            for name in self.names:
                self._wait(name, deadline, timeout)
        except BaseException:
            self.stop()
            raise
        return self

    def _wait(self, name: str, deadline: float, timeout: float) -> None:
        while True:
            proc = self.procs[name]
            if proc.poll() is not None:
                log = self.log_tail(name)
                hint = f"\n{DNSSD_HINT}" if "DNS-SD" in log else ""
                raise BenchError(f"ippeveprinter for {name} exited ({proc.returncode}):\n{log}{hint}")
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", self.ports[name])) == 0:
                    return
            if time.monotonic() > deadline:
                raise BenchError(f"ippeveprinter for {name} did not listen within {timeout:g} s:\n"
                                 f"{self.log_tail(name)}")
            time.sleep(0.05)

    def log_tail(self, name: str, lines: int = 15) -> str:
        try:
            text = (self.workdir / name / "ippeveprinter.log").read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def uri(self, name: str) -> str:
        return f"ipp://127.0.0.1:{self.ports[name]}/ipp/print"

    def stats(self) -> dict[str, dict]:
        """Per printer: jobs kept, their bytes, and when the last one was written."""
        out = {}
        for name in self.names:
            jobs = size = 0
            last = None
            try:
                entries = list(os.scandir(self._dir(name)))
            except OSError:
                entries = []
            for e in entries:
                try:
                    st = e.stat()
                except OSError:  # replaced meanwhile
                    continue
                jobs, size = jobs + 1, size + st.st_size
                last = st.st_mtime if last is None else max(last, st.st_mtime)
            out[name] = {"jobs": jobs, "bytes": size, "last": last}
        return out

    def stop(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.procs.values():
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

    def __enter__(self) -> "EvePrinters":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
