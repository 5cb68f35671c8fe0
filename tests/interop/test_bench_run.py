"""`spoolproxy bench run` end to end: a short load test of a real node (its own process)
with IPP and LPD clients, Secure Print and Find-Me releases through the device API, and
the sink printers; the report's books must balance and the JSON and PNG be written."""
from __future__ import annotations

import json
import subprocess
import sys

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


def test_a_short_run_prints_releases_and_balances_the_books(tmp_path, bench_cache):
    out = tmp_path / "results"
    proc = bench("run", "--jobs", "80", "--clients", "4", "--lpd-clients", "2", "--users", "20",
                 "--mix", "small.pdf=4,mixed.pdf=2,doc.ps=1,doc.pcl=1,doc.pxl=1,doc.pwg=1",
                 "--out", str(out), "--cache", str(bench_cache), "--no-live", "--label", "ci")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    [path] = out.glob("*.json")
    result = report.load(path)
    books = result["books"]
    assert books["ok"] and not books["problems"], books
    assert books["checked_jobs"] == 80 and books["charged_total"] == -books["balance_change"] > 0, books
    t = result["targets"]["spoolproxy"]
    totals = t["totals"]
    assert totals["accepted"] == 80 and totals["errors"] == {}, totals
    assert totals["released"] > 0 and totals["delivered"] == 80, totals  # every held job was released too
    assert t["latency_ms"]["accept"]["n"] == 80 and t["latency_ms"]["release"]["n"] == totals["released"]
    assert t["timeline"] and t["node"]["peak_rss_bytes"] > 0
    via = json.loads(path.read_text())
    assert via["label"] == "ci"
    png = path.with_suffix(".png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10_000
    assert "books balance" in proc.stdout


def test_compare_shows_two_runs_side_by_side(tmp_path, bench_cache):
    runs = []
    for label in ("a", "b"):
        out = tmp_path / label
        proc = bench("run", "--jobs", "20", "--clients", "2", "--lpd-clients", "1", "--users", "5",
                     "--mix", "small.pdf=1", "--out", str(out), "--cache", str(bench_cache), "--no-live",
                     "--label", label)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        runs.append(next(out.glob("*.json")))
    proc = bench("compare", str(runs[0]), str(runs[1]), "--json")
    assert proc.returncode == 0, proc.stderr
    numbers = json.loads(proc.stdout)
    assert numbers["a"]["label"] == "a" and numbers["b"]["label"] == "b", numbers
    bad = tmp_path / "bad.json"
    bad.write_text("{}")
    assert bench("compare", str(runs[0]), str(bad)).returncode == 2
