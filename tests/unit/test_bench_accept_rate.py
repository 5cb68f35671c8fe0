"""bench/accept_rate.py runs end to end: its own sink, cupsd and proxy nodes, every job
accepted, and the ratio line printed.  No timing is asserted: benchmarks report, tests
assert (README, Benchmarks)."""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

import peers

REPO = Path(__file__).resolve().parents[2]
BENCH = REPO / "bench" / "accept_rate.py"
JOBS = 30


@pytest.mark.interop
def test_accept_rate_quick_runs_without_errors(tmp_path: Path) -> None:
    for tool in ("cupsd", "lpadmin", "gs"):
        peers.require(tool)  # skip, or fail under SPOOLPROXY_REQUIRE_INTEROP=1
    results = tmp_path / "accept_rate.json"
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH", "")) if p)
    proc = subprocess.run([sys.executable, str(BENCH), "--quick", "--jobs", str(JOBS), "--json", str(results)],
                          capture_output=True, text=True, timeout=300, cwd=REPO, env=env)
    report = f"exit {proc.returncode}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
    assert proc.returncode == 0, report
    assert re.search(r"^ratio proxy/cupsd = \d+\.\d\d", proc.stdout, re.M), report
    assert re.search(r"^target \(proxy >= cupsd with fsync on\): (met|NOT met)$", proc.stdout, re.M), report
    # cupsd as shipped is measured in the same run, for reference, with its own ratio
    assert re.search(r"^reference, not the target: proxy / cupsd as shipped = \d+\.\d\d", proc.stdout, re.M), report

    data = json.loads(results.read_text())
    assert data["errors"] == 0
    measured = {r["target"] for r in data["runs"]}
    assert {"cupsd", "cupsd-shipped", "proxy"} <= measured
    assert data["ratio_cupsd_as_shipped"] > 0
    for run in data["runs"]:
        assert run["jobs"] == JOBS and run["errors"] == 0, run
    assert data["settings"]["cupsd"]["SyncOnClose"] is True
    assert data["settings"]["proxy"]["fsync"] is True
    # the raw queue took the PDF (and an octet-stream) as they are
    assert set(data["settings"]["cupsd"]["raw_check"]["print-job"]) == {"application/pdf",
                                                                         "application/octet-stream"}
