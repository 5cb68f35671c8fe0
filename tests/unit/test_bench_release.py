"""bench/release.py: its pure parts (percentiles, the tagged document and its tag, the
arguments), its timestamping printer, and a tiny run end to end (its own node, every
release and login answered, the ratio and target lines printed). No timing is asserted:
benchmarks report, tests assert (bench/README.md)."""
from __future__ import annotations

import importlib.util
import io
import json
import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from spoolproxy import pdl

REPO = Path(__file__).resolve().parents[2]
BENCH = REPO / "bench" / "release.py"


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("bench_release", BENCH)
    module = importlib.util.module_from_spec(spec)
    sys.modules["bench_release"] = module
    try:
        spec.loader.exec_module(module)
        yield module
    finally:
        sys.modules.pop("bench_release", None)


def test_percentiles_are_nearest_rank(bench) -> None:
    p = bench.percentiles([float(v) for v in range(100, 0, -1)])  # 1..100, unsorted
    assert (p["n"], p["p50_ms"], p["p90_ms"], p["p99_ms"], p["max_ms"], p["mean_ms"]) == (100, 50, 90, 99, 100, 50.5)
    p = bench.percentiles([float(v) for v in range(1, 301)])
    assert (p["p50_ms"], p["p90_ms"], p["p99_ms"]) == (150, 270, 297)  # 0.99 * 300 is not 298
    p = bench.percentiles([7.0])
    assert p["p50_ms"] == p["p99_ms"] == p["max_ms"] == 7.0
    assert bench.percentiles([]) == {"n": 0}


def test_tagged_pdf_carries_its_tag_and_counts_as_three_pages(bench) -> None:
    doc = bench.tagged_pdf("h000042")
    assert doc.startswith(b"%PDF-1.7\n%BENCH h000042\n")
    assert bench.parse_tag(doc) == "h000042"
    cut = doc.index(b"h000042") + 3
    assert bench.parse_tag(doc[:cut]) is None  # the line is not complete yet
    assert bench.parse_tag(b"%PDF-1.7\n%%EOF\n") is None
    assert bench.tagged_pdf("a") != bench.tagged_pdf("b")  # every job's document is its own
    with pytest.raises(ValueError):
        bench.tagged_pdf("two words")
    a = pdl.analyze(io.BytesIO(doc), claimed="application/pdf", ghostscript=False)
    assert [(r.count, r.color) for r in a.runs] == [(1, True), (2, False)]  # the price the bench expects


def test_users_csv(bench) -> None:
    lines = bench.users_csv(3, 1).splitlines()
    assert lines[0] == "username,restricted,card,pin,initial_credit"
    assert lines[1] == f"u00000,false,{bench.card_of(0)},{bench.PIN},100.00"
    assert lines[2] == f"u00001,false,{bench.card_of(1)},,100.00"
    assert len(lines) == 4


def test_sink_timestamps_the_first_byte_of_each_tagged_connection(bench) -> None:
    sink = bench.TimedSink().start()
    events: list[tuple[str, str]] = []
    sink.on_event = lambda kind, tag: events.append((kind, tag))
    try:
        with socket.create_connection(("127.0.0.1", sink.port), timeout=10):
            pass  # a probe: no byte
        doc = bench.tagged_pdf("t1")
        split = doc.index(b"t1")  # the tag arrives only with the second piece
        with socket.create_connection(("127.0.0.1", sink.port), timeout=10) as s:
            before = time.perf_counter()
            s.sendall(doc[:split])
            time.sleep(0.2)
            second = time.perf_counter()
            s.sendall(doc[split:])
            s.shutdown(socket.SHUT_WR)
            assert s.recv(100) == b""  # the sink closes when the sender is done
            after = time.perf_counter()
        deadline = time.monotonic() + 10
        while "t1" not in sink.done and time.monotonic() < deadline:
            time.sleep(0.01)
        # the time of the first byte, not of the piece that completed the tag
        assert before <= sink.first["t1"] < second
        assert second <= sink.done["t1"] <= after
        assert sink.sizes["t1"] == len(doc)
        assert events == [("first", "t1"), ("done", "t1")]
        deadline = time.monotonic() + 10
        while sink.stats["empty"] < 1 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert sink.stats == {"connections": 2, "jobs": 1, "bytes": len(doc), "empty": 1, "untagged": 0,
                              "duplicate_tags": 0}
    finally:
        sink.stop()


def test_arguments(bench, capsys: pytest.CaptureFixture[str]) -> None:
    a = bench.parse_args(["--quick"])
    assert (a.jobs, a.users, a.printers, a.samples, a.concurrency, a.pin_samples) == (1000, 100, 4, 50, 4, 10)
    a = bench.parse_args([])
    assert (a.jobs, a.users, a.printers, a.samples, a.concurrency, a.concurrent_samples) == \
        (10_000, 500, 8, 300, 8, 200)
    a = bench.parse_args(["--users", "5", "--pin-users", "9", "--printers", "2", "--skip", "login,concurrent"])
    assert a.pin_users == 5 and a.skip == {"login", "concurrent"}
    for bad in (["--concurrency", "9"], ["--jobs", "10", "--samples", "20"], ["--skip", "everything"],
                ["--users", "2", "--printers", "3"], ["--samples", "0"]):
        with pytest.raises(SystemExit):
            bench.parse_args(bad)
    capsys.readouterr()


@pytest.mark.slow
def test_release_bench_tiny_run(tmp_path: Path) -> None:
    results = tmp_path / "release.json"
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH", "")) if p)
    proc = subprocess.run([sys.executable, str(BENCH), "--quick", "--jobs", "40", "--users", "8", "--printers", "2",
                           "--samples", "6", "--login-samples", "4", "--pin-samples", "2", "--concurrent-samples", "4",
                           "--gap", "0.01", "--json", str(results)],
                          capture_output=True, text=True, timeout=240, cwd=REPO, env=env)
    out = proc.stdout
    report = f"exit {proc.returncode}\nstdout:\n{out}\nstderr:\n{proc.stderr}"
    assert proc.returncode == 0, report
    for pattern in (r"^ratio release p99 / direct-queue p99 = \d+\.\d\d \(p50: \d+\.\d\d\)$",
                    r"^ratio release p99 / direct-socket p99 = \d+\.\d\d",
                    r"^target: release p99 < 50 ms with 40 held jobs: \d+\.\d\d ms -> (met|NOT met)$",
                    r"^note: a card \+ PIN login checks the PIN against its scrypt hash"):
        assert re.search(pattern, out, re.M), f"no line matching {pattern!r}\n{report}"

    data = json.loads(results.read_text())
    assert data["benchmark"] == "release" and data["errors"] == []
    assert data["fill"]["jobs"] == 40 and data["held"]["jobs"] == 40
    assert data["held_at_end"] == 40 - 6 - 4
    s = data["summary"]
    expected = {"release": 6, "release_concurrent": 4, "direct_queue": 6, "direct_socket": 6, "login_card": 4,
                "login_pin": 2, "list": 8}
    assert {k: s[k]["n"] for k in expected} == expected
    for key, row in s.items():
        assert 0 < row["p50_ms"] <= row["p90_ms"] <= row["p99_ms"] <= row["max_ms"], (key, row)
    assert s["release"]["answered"]["n"] == 6 and s["direct_queue"]["answered"]["n"] == 6
    assert isinstance(data["target_met"], bool)
    assert data["ratios"]["release/direct_queue p99"] > 0
    # every timed document reached the printer once, tagged; the probes carried no byte
    sink = data["sink"]
    assert sink["untagged"] == 0 and sink["duplicate_tags"] == 0
    assert sink["jobs"] == 6 + 4 + 6 + 6
