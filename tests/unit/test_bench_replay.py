"""bench/replay.py: its model and arguments, and its quick run end to end (its own
primary and site processes): the replay's books balance, every number is in the JSON
and the target line is printed. No timing is asserted: benchmarks report, tests assert
(bench/README.md)."""
from __future__ import annotations

import importlib.util
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
BENCH = REPO / "bench" / "replay.py"


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("bench_replay", BENCH)
    module = importlib.util.module_from_spec(spec)
    sys.modules["bench_replay"] = module
    try:
        spec.loader.exec_module(module)
        yield module
    finally:
        sys.modules.pop("bench_replay", None)


def test_the_model_covers_every_entry(bench) -> None:
    entries = bench.make_entries(500, 7, seed=1)
    assert len(entries) == 500 and len({e["id"] for e in entries}) == 500
    assert all(1 <= e["amount"] <= 200 and e["user"] in {f"u{i:05d}" for i in range(7)} for e in entries)
    spent = bench.spent_by_user(entries)
    assert sum(spent.values()) == sum(e["amount"] for e in entries)
    assert bench.credit_for(entries) >= 2 * max(spent.values())  # nobody goes below zero
    assert bench.make_entries(500, 7, seed=1)[0]["id"] == entries[0]["id"]  # the seed decides
    wired = bench.wire_entries("s1", entries[:3])
    assert [w["seq"] for w in wired] == [1, 2, 3]
    assert wired[0]["data"] == {"account": f"user:{entries[0]['user']}", "amount": -entries[0]["amount"],
                                "kind": "print", "job": 1, "job_uuid": "", "by": entries[0]["user"],
                                "comment": "bench/replay.py"}


def test_arguments(bench, capsys: pytest.CaptureFixture[str]) -> None:
    quick = bench.parse_args(["--quick"])
    assert (quick.entries, quick.users, quick.heartbeat, quick.offline_after, quick.timeout, quick.rounds) == \
        (2000, 100, 0.25, 1.0, 1.0, 1)
    full = bench.parse_args([])
    assert (full.entries, full.users, full.heartbeat, full.offline_after, full.timeout, full.rounds, full.batch) == \
        (20_000, 1000, 1.0, 5.0, 5.0, 3, 1000)
    assert bench.parse_args(["--quick", "--entries", "300"]).entries == 300
    for bad in (["--entries", "0"], ["--batch", "20000"], ["--skip", "nothing"], ["--heartbeat", "0"]):
        with pytest.raises(SystemExit):
            bench.parse_args(bad)
    capsys.readouterr()


def test_quick_run_balances_its_books(tmp_path: Path) -> None:
    results = tmp_path / "replay.json"
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH", "")) if p))
    proc = subprocess.run([sys.executable, str(BENCH), "--quick", "--entries", "1500", "--json", str(results)],
                          capture_output=True, text=True, timeout=240, env=env, cwd=tmp_path)
    out = proc.stdout
    assert proc.returncode == 0, f"{out}\n{proc.stderr}"
    for pattern in (r"^1\. Journal replay: 1,500 offline entries of 100 users from site s1 into the primary, twice",
                    r"^   a\. the site restarted with the entries in its journal:$",
                    r"^   b\. the link back to a running site \(primary: SIGSTOP, SIGCONT\):$",
                    r"^      online -> every entry applied at the primary +\d+\.\d\d +[\d,]+$",
                    r"^   ratio b\. replay into the primary / Primary\.apply in this process = \d+\.\d\d$",
                    r"^   books: .* -> balanced$",
                    r"^   target: >= 10,000 entries/s into the primary \(b\.\): [\d,]+ -> (met|NOT met) "
                    r"\(\d+\.\d\d of the target\)$",
                    r"^2\. Offline detection: heartbeat 0\.25 s, offline_after 1 s, timeout 1 s$",
                    r"^   hung \(SIGSTOP, then SIGCONT\) +1 +\d+\.\d\d s +\d+\.\d\d s$"):
        assert re.search(pattern, out, re.M), f"no line matching {pattern!r}\n{out}"

    data = json.loads(results.read_text())
    assert data["benchmark"] == "replay" and data["errors"] == []
    assert data["books_balanced"] is True
    assert data["settings"]["quick"] is True and data["settings"]["entries"] == 1500
    assert "site_key" not in data["settings"]

    r = data["replay"]
    assert r["entries"] == 1500 and r["users"] == 100 and r["batch"] == 1000
    assert r["entries_per_s"] == r["link"]["entries_per_s"] > 0
    # the site's counts are since its last start (run b.); its journal holds both runs
    assert r["site_status"]["replayed"] >= 1500 and r["site_status"]["refused"] == 0
    assert r["site_status"]["unsent"] == 0 and r["site_status"]["journal"] == 3000
    assert r["journal_write_s"] > 0
    for run, start in ((r["restart"], "restart"), (r["link"], "link")):
        for k in (f"{start}_to_online_s", "online_to_all_applied_s", "online_to_unsent0_s", f"{start}_to_unsent0_s",
                  "entries_per_s", "end_to_end_per_s"):
            assert run[k] > 0, (start, k)
        assert run["progress"][-1][1] == 1500
    books = r["books"]
    assert books["balanced"] is True and books["problems"] == []
    assert books["users_checked"] == 100 and books["users_wrong"] == 0
    assert books["primary_txns_logged"] == 3000 and books["unapplied"] == 0
    assert books["site_view_wrong"] == 0 and books["site_pending_nonzero"] == 0
    assert books["resend"] == {**books["resend"], "sent": 1000, "not_again": 0}
    assert r["ratio_to_primary_apply"] > 0 and r["ratio_to_apply_fn"] > 0
    assert set(data["targets_met"]) == {"10k_entries_per_s"}
    assert isinstance(data["targets_met"]["10k_entries_per_s"], bool)

    for p in data["peers"].values():
        assert p["books"] is True and p["entries_per_s"] > 0 and p["commits"] >= 2  # 1500 in batches of 1000

    d = data["detection"]
    assert (d["heartbeat"], d["offline_after"], d["timeout"]) == (0.25, 1.0, 1.0)
    assert len(d["rounds"]) == 1
    for mode in ("hung", "down"):
        times = d["rounds"][0][mode]
        assert times["offline_after_s"] > 0 and times["online_after_s"] > 0, times
    assert d["rounds"][0]["down"]["primary_start_s"] > 0
