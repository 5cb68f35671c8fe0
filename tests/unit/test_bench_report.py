"""spoolproxy.bench.report: exact nearest-rank percentiles, the result file (atomic write,
every load error), the PNG, the rich summary and comparison, and ``bench compare``."""
from __future__ import annotations

import argparse
import copy
import json
import math
import random
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from rich.console import Console

from spoolproxy.bench import report
from spoolproxy.bench.report import ReportError, new_summary

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
MIB = 1024 * 1024


def _target(rate: float, p99: float, *, cpu_base: float = 20.0, rss_mib: float = 60.0) -> dict[str, Any]:
    timeline = []
    for i in range(1, 31):
        timeline.append({"t": float(i), "accepted": int(rate) + (i % 3), "delivered": int(rate) - (i % 2),
                         "errors": 0, "accept_p50_ms": p99 / 4 + (i % 5) * 0.1, "accept_p99_ms": p99 + (i % 7),
                         "cpu_percent": cpu_base + (i % 4) * 5, "rss_bytes": int((rss_mib + i) * MIB)})
    timeline[4]["accept_p99_ms"] = None  # a gap: skipped, not drawn as 0
    timeline[7]["cpu_percent"] = None
    return {
        "totals": {"submitted": 3000, "accepted": 2990, "delivered": 2980, "released": 0,
                   "errors": {"timeout": 3, "refused": 7}},
        "rates": {"accepted_per_s": rate, "delivered_per_s": rate - 1, "delivered_bytes_per_s": rate * 50_000},
        "latency_ms": {"accept": {"n": 2990, "p50": p99 / 4, "p90": p99 / 2, "p99": p99, "max": p99 * 2},
                       "deliver": {"n": 2980, "p50": 4.5, "p90": 9.0, "p99": 12.25, "max": 30.0},
                       "release": {"n": 0, "p50": None, "p90": None, "p99": None, "max": None}},
        "timeline": timeline,
        "node": {"cpu_seconds": 17.5, "peak_rss_bytes": int(91 * MIB)},
    }


def _result(**overrides: Any) -> dict[str, Any]:
    result = {
        "version": 1, "kind": "spoolproxy-bench", "started": 1_700_000_000.0, "duration": 30.0,
        "label": "nightly [quick]", "config": {"duration": 30, "jobs": 3000, "concurrency": 16, "mix": {"pdf": 1}},
        "machine": {"cpus": 8, "python": "3.11.9", "spoolproxy": "0.9.0", "hostname": "bench1"},
        "targets": {"spoolproxy": _target(123.4, 8.5), "cupsd": _target(110.2, 21.0, cpu_base=50, rss_mib=20)},
        "ratios": {"spoolproxy/cupsd": {"accepted_per_s": 1.1198}},
        "books": {"ok": True, "checked_jobs": 1234, "problems": [], "charged_total": 56_780, "balance_change": -56_780},
    }
    result.update(overrides)
    return result


def _text(renderable: Any) -> str:
    console = Console(record=True, width=200)
    console.print(renderable)
    return console.export_text()


# -- percentiles ---------------------------------------------------------------------------


@pytest.mark.parametrize("samples, expected", [
    ([], {"n": 0, "p50": None, "p90": None, "p99": None, "max": None}),
    ([7.5], {"n": 1, "p50": 7.5, "p90": 7.5, "p99": 7.5, "max": 7.5}),
    ([3, 1, 2], {"n": 3, "p50": 2, "p90": 3, "p99": 3, "max": 3}),
    ([15, 20, 35, 40, 50], {"n": 5, "p50": 35, "p90": 50, "p99": 50, "max": 50}),  # ranks 3, 5, 5
    (list(range(1, 11)), {"n": 10, "p50": 5, "p90": 9, "p99": 10, "max": 10}),  # ranks 5, 9, 10
    (list(range(100, 0, -1)), {"n": 100, "p50": 50, "p90": 90, "p99": 99, "max": 100}),
    (list(range(1, 201)), {"n": 200, "p50": 100, "p90": 180, "p99": 198, "max": 200}),  # 0.99 * 200 exactly
    (list(range(1, 1001)), {"n": 1000, "p50": 500, "p90": 900, "p99": 990, "max": 1000}),
    ([1.0] * 98 + [500.0, 900.0], {"n": 100, "p50": 1.0, "p90": 1.0, "p99": 500.0, "max": 900.0}),
])
def test_summary_hand_computed(samples: list[float], expected: dict[str, Any]) -> None:
    random.Random(1).shuffle(samples)
    assert new_summary(samples) == expected


def test_summary_refuses_nan_and_accepts_any_sequence() -> None:
    with pytest.raises(ValueError):
        new_summary([1.0, math.nan])
    assert new_summary((2.0, 1.0))["p50"] == 1.0
    assert json.loads(json.dumps(new_summary([]))) == new_summary([])


@settings(max_examples=150, deadline=None)
@given(st.lists(st.floats(allow_nan=False, allow_infinity=False, width=32), min_size=1, max_size=300))
def test_summary_properties(samples: list[float]) -> None:
    s = new_summary(samples)
    assert s["n"] == len(samples)
    assert s["p50"] <= s["p90"] <= s["p99"] <= s["max"] == max(samples)
    n = len(samples)
    for p in (50, 90, 99):
        v = s[f"p{p}"]
        assert v in samples
        # nearest rank: the smallest sample with at least p% of the samples at or below it
        assert sum(x <= v for x in samples) * 100 >= p * n
        assert sum(x < v for x in samples) * 100 < p * n


# -- the file ------------------------------------------------------------------------------


def test_json_round_trip_is_atomic(tmp_path: Path) -> None:
    path = tmp_path / "run.json"
    path.write_text("old")
    result = _result()
    report.write_json(result, path)
    assert report.load(path) == result
    assert '\n  "version": 1' in path.read_text()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run.json"]  # no temporary file left

    with pytest.raises(ValueError):  # not JSON: refused before the old file is touched
        report.write_json(_result(ratios={"x": {"y": math.nan}}), path)
    assert report.load(path) == result
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run.json"]


@pytest.mark.parametrize("content, message", [
    (None, "cannot read"),
    (b"{not json", "not valid JSON"),
    (b"\xff\xfe\x00garbage", "not UTF-8"),
    (b"", "not valid JSON"),
    (b"[1, 2]", "not a spoolproxy bench result (a JSON list"),
    (b'{"version": 1, "benchmark": "accept_rate"}', "not a spoolproxy bench result (kind None"),
    (b'{"version": 1, "kind": "spoolproxy-journal", "targets": {}}', "kind 'spoolproxy-journal'"),
    (b'{"version": 2, "kind": "spoolproxy-bench", "targets": {}}', "unknown spoolproxy bench result version 2"),
    (b'{"version": "1", "kind": "spoolproxy-bench", "targets": {}}', "version '1'"),
    (b'{"version": true, "kind": "spoolproxy-bench", "targets": {}}', "version True"),
    (b'{"kind": "spoolproxy-bench", "targets": {}}', "version None"),
    (b'{"version": 1, "kind": "spoolproxy-bench"}', "'targets' is not an object"),
    (b'{"version": 1, "kind": "spoolproxy-bench", "targets": {"x": 3}}', "'targets' is not an object"),
])
def test_load_errors(tmp_path: Path, content: bytes | None, message: str) -> None:
    path = tmp_path / "bad.json"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(ReportError) as e:
        report.load(path)
    assert isinstance(e.value, ValueError)
    assert str(e.value).startswith(f"{path}: ")
    assert message in str(e.value)


# -- the plot ------------------------------------------------------------------------------


def _pixels_near(image: Any, rgb: tuple[int, int, int]) -> int:
    import numpy as np
    target = np.array(rgb) / 255
    return int((np.abs(image[:, :, :3] - target).max(axis=2) < 0.03).sum())


def test_plot_png_draws_both_targets(tmp_path: Path) -> None:
    import matplotlib.image
    path = tmp_path / "run.png"
    report.plot_png(_result(), path)
    data = path.read_bytes()
    assert data[:8] == PNG_SIGNATURE
    assert len(data) > 20_000
    image = matplotlib.image.imread(path)
    assert image.shape[:2] == (800, 1000)  # 10 x 8 inches at 100 dpi
    assert len({tuple(px) for px in image[::7, ::7, :3].reshape(-1, 3).round(2).tolist()}) > 20
    assert _pixels_near(image, (0x1F, 0x77, 0xB4)) > 1000  # C0: spoolproxy's lines
    assert _pixels_near(image, (0xFF, 0x7F, 0x0E)) > 1000  # C1: cupsd's lines


@pytest.mark.parametrize("result", [
    {},
    {"version": 1, "kind": "spoolproxy-bench", "targets": {}},
    _result(targets={"spoolproxy": {"timeline": []}, "cupsd": {}}, label="", duration=None, ratios={}, books=None),
    _result(targets={"spoolproxy": {"timeline": [{"t": 0.0}, {"t": 1.0, "accepted": None, "cpu_percent": None}]}}),
    _result(targets={"spoolproxy": {"timeline": [{"t": 2.0, "accepted": 10, "accept_p50_ms": 1.0}]}}),
])
def test_plot_png_survives_empty_results(tmp_path: Path, result: dict[str, Any]) -> None:
    path = tmp_path / "empty.png"
    report.plot_png(result, path)
    assert path.read_bytes()[:8] == PNG_SIGNATURE


def test_interval_rates() -> None:
    # t is the end of each interval; the first one starts at 0
    timeline = [{"t": 0.5, "accepted": 5}, {"t": 1.0, "accepted": 10}, {"t": 3.0, "accepted": 10},
                {"t": 4.0, "accepted": None}, {"t": 5.0, "accepted": 7}]
    assert report._interval_rates(timeline, "accepted") == ([0.5, 1.0, 3.0, 5.0], [10.0, 20.0, 5.0, 7.0])
    # a first point at t=0 (stamped at the start of its interval): the next interval's length
    assert report._interval_rates([{"t": 0.0, "accepted": 4}, {"t": 2.0, "accepted": 6}], "accepted") \
        == ([0.0, 2.0], [2.0, 3.0])


def test_matplotlib_is_not_imported_at_startup() -> None:
    code = "import sys, spoolproxy.bench.report; assert 'matplotlib' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).resolve().parents[2])


# -- rich ----------------------------------------------------------------------------------


def test_summary_shows_numbers_ratios_and_books() -> None:
    text = _text(report.summary(_result()))
    assert "spoolproxy bench: nightly [quick] (30 s)" in text  # the label is not markup
    for needle in ("spoolproxy", "cupsd", "123.4", "122.4", "6.17", "110.2", "2.12 / 8.50", "5.25 / 21.0",
                   "4.50 / 12.2", "- / -", "17.5", "91.0", "errors spoolproxy: timeout 3, refused 7",
                   "spoolproxy/cupsd accepted_per_s 1.12", "books balance: 1234 jobs checked",
                   "8 cpus", "python 3.11.9", "on bench1"):
        assert needle in text, needle
    row = next(line for line in text.splitlines() if line.startswith("│ spoolproxy "))
    assert "│     10 │" in row  # errors total
    assert "stages" not in text  # no target has the node's stage records
    assert "Ctrl-C" not in text
    assert "stopped by Ctrl-C" in _text(report.summary(_result(interrupted=True)))


def test_summary_shows_the_node_stages_it_has() -> None:
    result = _result()
    lat = result["targets"]["spoolproxy"]["latency_ms"]
    lat["analyse"] = {"n": 10, "p50": 3.5, "p90": 5.0, "p99": 9.25, "max": 12.0}
    lat["admit"] = {"n": 10, "p50": 0.0125, "p90": 0.02, "p99": 0.05, "max": 0.1}
    lat["charge"] = {"n": 0, "p50": None, "p90": None, "p99": None, "max": None}
    text = _text(report.summary(result))
    line = next(line for line in text.splitlines() if line.startswith("stages"))
    assert line.startswith("stages spoolproxy (ms p50 / p99): analyse 3.50 / 9.25, admit "), line
    assert "charge" not in line and "stages cupsd" not in text, text


def test_summary_books_problems_and_empty_result() -> None:
    books = {"ok": False, "checked_jobs": 12, "problems": ["job 7 charged twice [red]", "job 9 not charged"],
             "charged_total": 10, "balance_change": -20}
    text = _text(report.summary(_result(books=books, ratios={})))
    assert "books do NOT balance (12 jobs checked, 2 problems)" in text
    assert "job 7 charged twice [red]" in text and "job 9 not charged" in text
    assert "accepted_per_s" not in text
    assert "books: not checked" in _text(report.summary({}))
    assert "spoolproxy bench" in _text(report.summary({"targets": {"x": {}}, "books": "?"}))


def _two_runs() -> tuple[dict[str, Any], dict[str, Any]]:
    a = _result()
    b = copy.deepcopy(a)
    b["label"] = "patched"
    t = b["targets"]["spoolproxy"]
    t["rates"]["accepted_per_s"] = 246.8  # better: x2.00
    t["latency_ms"]["accept"]["p99"] = 17.0  # worse: x2.00
    t["latency_ms"]["release"] = {"n": 5, "p50": 1.0, "p90": 1.0, "p99": 2.0, "max": 2.0}  # A has none: "-"
    t["totals"]["errors"] = {}  # better: 0 errors
    t["node"]["peak_rss_bytes"] = int(45.5 * MIB)  # better: x0.50
    del b["targets"]["cupsd"]
    b["targets"]["sink"] = _target(1000, 1)
    return a, b


def test_compare_renders_ratios_and_colours() -> None:
    a, b = _two_runs()
    group = report.compare(a, b)
    text = _text(group)
    assert "A = spoolproxy bench: nightly [quick] (30 s)" in text and "B = spoolproxy bench: patched (30 s)" in text
    lines = {" ".join(line.replace("│", " ").split()) for line in text.splitlines()}
    for row in ("spoolproxy accepted/s 123.4 246.8 2.00", "spoolproxy accept p99 ms 8.50 17.0 2.00",
                "spoolproxy release p50 ms - 1.00 -", "spoolproxy errors 10 0 0.00",
                "spoolproxy peak RSS MiB 91.0 45.5 0.50", "spoolproxy delivered/s 122.4 122.4 1.00",
                "spoolproxy delivered MB/s 6.17 6.17 1.00", "spoolproxy node CPU s 17.5 17.5 1.00"):
        assert row in lines, row
    assert "only in A: cupsd" in text and "only in B: sink" in text
    assert not any(line.startswith("cupsd") or line.startswith("sink") for line in lines)

    table = group.renderables[0]
    metrics = [str(c) for c in table.columns[1].cells]
    styles = {m: str(c.style) for m, c in zip(metrics, table.columns[4].cells)}
    assert styles["accepted/s"] == "green"  # higher rate: better
    assert styles["accept p99 ms"] == "red"  # higher latency: worse
    assert styles["errors"] == "green" and styles["peak RSS MiB"] == "green"  # fewer: better
    assert styles["delivered/s"] == "" and styles["release p50 ms"] == ""  # same, undefined: plain


def test_compare_numbers_in_the_results_units() -> None:
    a, b = _two_runs()
    numbers = report.compare_numbers(a, b)
    assert numbers["only_a"] == ["cupsd"] and numbers["only_b"] == ["sink"]
    sp = numbers["targets"]["spoolproxy"]
    assert sp["accepted_per_s"] == {"a": 123.4, "b": 246.8, "ratio": 2.0, "better": "higher"}
    assert sp["latency_ms.accept.p99"] == {"a": 8.5, "b": 17.0, "ratio": 2.0, "better": "lower"}
    assert sp["latency_ms.release.p50"]["ratio"] is None
    assert sp["errors"] == {"a": 10, "b": 0, "ratio": 0.0, "better": "lower"}
    assert sp["node.peak_rss_bytes"]["ratio"] == pytest.approx(0.5, abs=1e-6)
    assert report.compare_numbers({}, {}) == {"targets": {}, "only_a": [], "only_b": []}
    _text(report.compare({}, {"targets": {"x": {}}}))  # renders


# -- the command ---------------------------------------------------------------------------


def _parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="spoolproxy bench")
    report.add_compare_parser(parser.add_subparsers(dest="bench_command"))
    return parser.parse_args(argv)


def test_cmd_compare(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    a, b = _two_runs()
    pa, pb = tmp_path / "a.json", tmp_path / "b.json"
    report.write_json(a, pa)
    report.write_json(b, pb)

    args = _parse(["compare", str(pa), str(pb)])
    assert args.func is report.cmd_compare and args.json is False
    assert args.func(args) == 0
    out = capsys.readouterr().out
    assert "246.8" in out and "2.00" in out and "only in A: cupsd" in out

    assert report.cmd_compare(_parse(["compare", str(pa), str(pb), "--json"])) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["a"] == {"path": str(pa), "label": "nightly [quick]", "started": 1_700_000_000.0}
    assert data["b"]["label"] == "patched"
    assert data["targets"]["spoolproxy"]["accepted_per_s"]["ratio"] == 2.0
    assert data["only_b"] == ["sink"]

    bad = tmp_path / "bad.json"
    bad.write_text('{"version": 7, "kind": "spoolproxy-bench", "targets": {}}')
    for argv in (["compare", str(pa), str(bad)], ["compare", str(tmp_path / "missing.json"), str(pb), "--json"]):
        assert report.cmd_compare(_parse(argv)) == 2
        captured = capsys.readouterr()
        assert captured.out == ""
        assert captured.err.startswith("spoolproxy bench compare: ")
