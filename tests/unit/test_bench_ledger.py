"""bench/ledger.py runs end to end in a tiny configuration (its main() in this process):
both sections run, the ledger answers right, the JSON has every number and the target
lines are printed. No timing is asserted: benchmarks report, tests assert
(bench/README.md)."""
from __future__ import annotations

import importlib.util
import json
import re
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
BENCH = REPO / "bench" / "ledger.py"


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("bench_ledger", BENCH)
    module = importlib.util.module_from_spec(spec)
    sys.modules["bench_ledger"] = module
    try:
        spec.loader.exec_module(module)
        yield module
    finally:
        sys.modules.pop("bench_ledger", None)


def test_ledger_bench_tiny_run(bench, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    results = tmp_path / "ledger.json"
    code = bench.main(["--quick", "--users", "300", "--accounts", "200", "--checks", "3000",
                       "--concurrency", "16", "--seconds", "0.3", "--single-seconds", "0.2",
                       "--workdir", str(tmp_path / "work"), "--json", str(results)])
    out = capsys.readouterr().out
    assert code == 0, out
    for pattern in (r"^1\. Credit check: 300 users \+ 200 shared accounts, 3,000 random accounts",
                    r"^   target: p99 < 5 us: \d+\.\d\d us -> (met|NOT met); >= 200,000 checks/s on one core: "
                    r"[\d,]+ -> (met|NOT met)$",
                    r"^2\. Durable charges:", r"^   ratio best grouped \(\d+ tasks\) / one task = \d+\.\dx$",
                    r"^   target: >= 10,000 durable charges/s: [\d,]+ -> (met|NOT met)$"):
        assert re.search(pattern, out, re.M), f"no line matching {pattern!r}\n{out}"

    data = json.loads(results.read_text())
    assert data["benchmark"] == "ledger" and data["errors"] == []
    assert data["settings"]["users"] == 300 and data["settings"]["quick"] is True
    assert data["populate"]["users"] == 300 and data["populate"]["accounts"] == 200
    assert data["populate"]["records"] == 300 * 4 + 200 * 3

    check = data["credit_check"]
    assert check["checks"] == 3000 and check["wrong"] == []
    assert set(check["rows"]) == {"dict", "reader", "check", "timer"}
    for row in check["rows"].values():
        assert row["samples"] == 3000
        assert 0 < row["p50_us"] <= row["p99_us"] <= row["p999_us"] <= row["max_us"], row
        assert row["mean_us"] > 0 and row["per_s"] > 0
    assert set(check["targets_met"]) == {"p99_under_5us", "200k_checks_per_s"}
    assert all(isinstance(v, bool) for v in check["targets_met"].values())

    charges = data["charges"]
    assert charges["wrong"] == []
    g, s = charges["grouped"], charges["single"]
    assert g["tasks"] == 16 and s["tasks"] == 1
    for run in (g, s):
        assert run["applied"] > 0 and run["error_count"] == 0 and run["replayed"] == 0, run
        assert run["commits"] >= 1 and run["requests"] == run["applied"] + run["refused"]
        assert run["charges_per_s"] > 0 and run["avg_group"] >= 1
        assert 0 < run["latency_ms"]["p50_ms"] <= run["latency_ms"]["p99_ms"]
    assert s["commits"] == s["requests"]  # one task: one charge per commit
    assert g["avg_group"] > 1  # 16 tasks: grouped
    assert charges["logged"] == g["applied"] + s["applied"]
    assert charges["ratio"] > 0
    assert set(charges["targets_met"]) == {"10k_charges_per_s"}
    assert data["db_stats"]["commits"] >= g["commits"] + s["commits"]


def test_ledger_bench_skip_and_bad_arguments(bench, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    results = tmp_path / "only-check.json"
    assert bench.main(["--quick", "--users", "50", "--accounts", "0", "--checks", "200", "--skip", "charges",
                       "--json", str(results)]) == 0
    data = json.loads(results.read_text())
    assert "credit_check" in data and "charges" not in data
    assert data["credit_check"]["rows"]["check"]["samples"] == 200
    with pytest.raises(SystemExit):
        bench.main(["--skip", "nothing"])
    capsys.readouterr()
