"""`spoolproxy bench run` end to end: a short load test of a real node (its own process)
with IPP and LPD clients, Secure Print and Find-Me releases through the device API, and
the sink printers; the report's books must balance and the JSON and PNG be written."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

import peers
from spoolproxy.bench import report

pytestmark = pytest.mark.interop


@pytest.fixture(scope="session")
def bench_cache(tmp_path_factory):
    peers.require("gs")
    return tmp_path_factory.mktemp("bench-cache")


def bench(*args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "spoolproxy", "bench", *args], capture_output=True, text=True,
                          timeout=timeout, cwd=peers.REPO_ROOT)


def test_a_short_run_with_an_offline_phase_balances_the_books(tmp_path, bench_cache):
    """IPP and LPD clients print to a site for 6 s while devices release held jobs; 1.5 s in,
    its primary stops answering for 3 s; the books are read from the primary after the replay."""
    out = tmp_path / "results"
    proc = bench("run", "--seconds", "6", "--clients", "3", "--lpd-clients", "1", "--users", "20",
                 "--offline", "3", "--offline-at", "1.5",
                 "--mix", "small.pdf=4,mixed.pdf=2,doc.ps=1,doc.pcl=1,doc.pxl=1,doc.pwg=1,doc.urf=1",
                 "--out", str(out), "--cache", str(bench_cache), "--no-live", "--label", "ci")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    [path] = out.glob("*.json")
    result = report.load(path)
    t = result["targets"]["spoolproxy"]
    totals = t["totals"]
    books = result["books"]
    assert books["ok"] and not books["problems"], books
    assert books["checked_jobs"] == totals["accepted"] > 0, (books, totals)
    assert books["charged_total"] == -books["balance_change"] > 0, books
    assert totals["errors"] == {} and totals["delivered"] == totals["accepted"], totals  # held ones released too
    # every held job was released (as the node recorded it) and printed
    assert totals["held"] > 0 and totals["released"] == totals["held"], totals
    lat = t["latency_ms"]
    assert lat["release"]["n"] == totals["released"], lat
    # the node's stage records: every job counted and admitted, every printed one charged
    assert lat["analyse"]["n"] == lat["admit"]["n"] == totals["accepted"], lat
    assert lat["charge"]["n"] == totals["delivered"], lat
    assert lat["deliver"]["n"] == totals["delivered"] - totals["released"], lat
    assert 0 <= lat["admit"]["p50"] <= lat["admit"]["max"], lat
    assert totals["by_protocol"]["ipp"] > 0 and totals["by_protocol"]["lpd"] > 0, totals
    assert t["timeline"] and t["node"]["peak_rss_bytes"] > 0
    off = result["offline"]
    # the site noticed, journaled charges while cut off, and the primary took every one of them
    assert off["went_offline"] and off["replayed"], off
    assert result["interrupted"] is False
    assert off["entries"] > 0 and off["journal_growth"] >= off["entries"], off
    assert result["label"] == "ci"
    png = path.with_suffix(".png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10_000
    assert "books balance" in proc.stdout and "offline phase" in proc.stdout


def test_a_run_against_ippeveprinter_printers_balances_the_books(tmp_path, bench_cache):
    """--printers ippeveprinter: every printer queue in front of its own ippeveprinter,
    which takes one job at a time; each job the node completed is a file one of them kept."""
    peers.require("ippeveprinter")
    peers.ensure_dnssd()
    out = tmp_path / "results"
    proc = bench("run", "--seconds", "3", "--clients", "2", "--lpd-clients", "1", "--users", "5",
                 "--printers", "ippeveprinter", "--mix", "small.pdf=3,doc.ps=1,doc.pxl=1,doc.urf=1",
                 "--out", str(out), "--cache", str(bench_cache), "--no-live")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    [path] = out.glob("*.json")
    result = report.load(path)
    totals = result["targets"]["spoolproxy"]["totals"]
    failure = f"{totals}\n{proc.stdout}"
    assert result["books"]["ok"], result["books"]  # includes: the printers kept as many jobs as completed
    assert result["config"]["printers"] == "ippeveprinter"
    assert totals["errors"] == {} and totals["delivered"] == totals["accepted"] > 0, failure
    assert totals["released"] == totals["held"] > 0, failure


def test_compare_needs_the_sinks(tmp_path, bench_cache):
    proc = bench("run", "--seconds", "1", "--printers", "ippeveprinter", "--compare", "--no-live",
                 "--out", str(tmp_path), "--cache", str(bench_cache))
    assert proc.returncode == 2 and "--compare measures against the sink printers" in proc.stderr, proc.stderr


def _node_pid(bench_pid: int) -> int | None:
    """The node process of a running `bench run`."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            if ppid == bench_pid and b"serve" in (entry / "cmdline").read_bytes():
                return int(entry.name)
        except (OSError, ValueError, IndexError):
            continue
    return None


def _node_workdir(bench_pid: int) -> Path | None:
    """The work directory of a running `bench run`: its node's working directory."""
    pid = _node_pid(bench_pid)
    try:
        return Path(os.readlink(f"/proc/{pid}/cwd")) if pid else None
    except OSError:
        return None


def test_ctrl_c_stops_the_run_and_reports_what_was_done(tmp_path, bench_cache):
    """Ctrl-C once jobs are printing (SIGINT to the whole process group, as a terminal sends
    it): the clients finish the jobs in hand and stop, the node delivers what it accepted,
    the books are checked and the JSON and PNG written (exit 0: they balance)."""
    out = tmp_path / "results"
    proc = subprocess.Popen([sys.executable, "-m", "spoolproxy", "bench", "run", "--seconds", "600",
                             "--clients", "2", "--lpd-clients", "1", "--users", "5", "--mix", "small.pdf=1",
                             "--out", str(out), "--cache", str(bench_cache), "--no-live"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=peers.REPO_ROOT,
                            start_new_session=True)
    try:
        def printing() -> bool:
            work = _node_workdir(proc.pid)
            stats = work / "sinks" / "sinks-stats.json" if work else None
            try:
                return bool(stats and sum(s.get("jobs", 0) for s in json.loads(stats.read_text()).values()))
            except (OSError, ValueError):
                return False
        peers.wait_for(printing, timeout=120, what="the first job printed")
        node = _node_pid(proc.pid)
        os.killpg(proc.pid, signal.SIGINT)
        output, _ = proc.communicate(timeout=300)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, output
    [path] = out.glob("*.json")
    result = report.load(path)
    totals = result["targets"]["spoolproxy"]["totals"]
    assert result["books"]["ok"] and totals["accepted"] > 0, (result["books"], totals)
    # stopped by the signal, not because its time was up
    assert result["interrupted"] is True and "stopped by Ctrl-C" in output, output
    assert path.with_suffix(".png").is_file() and "books balance" in output, output
    assert node is not None and not Path(f"/proc/{node}").exists()  # the bench stopped its node
