"""`spoolproxy bench run --compare`'s comparison at a tiny scale: a real node and the
sink printers set up as `bench run` does, a private cupsd with a raw queue to the same
socket sink, the accept phases against both, and the large-job delivery: held in the
node's Secure Print queue, counted, released by one device call and timed to the sink's
last byte, against the same file sent straight to the sink one job at a time. The ratios must be there and printed; no timing is asserted
(benchmarks report, tests assert)."""
from __future__ import annotations

import io
import math
from types import SimpleNamespace

import pytest

import peers
from spoolproxy.bench import report
from spoolproxy.bench.comparison import ratios, run_comparison
from spoolproxy.bench.documents import corpus
from spoolproxy.bench.run import NodeProcess, _population, sink_printers
from spoolproxy.bench.sinks import SinkProcess

pytestmark = pytest.mark.interop

LARGE_JOBS = 4


def _text(renderable) -> str:
    from rich.console import Console
    console = Console(width=200, record=True, color_system=None, file=io.StringIO())
    console.print(renderable)
    return console.export_text()


def test_comparison_against_cupsd_and_the_sink(tmp_path):
    for tool in ("cupsd", "lpadmin", "gs"):
        peers.require(tool)  # skip, or fail under SPOOLPROXY_REQUIRE_INTEROP=1
    docs = corpus(tmp_path / "docs")
    large = next(d for d in docs if d.name == "large.pdf")
    opts = SimpleNamespace(compare_seconds=3.0, compare_large_jobs=LARGE_JOBS, compare_rounds=1, clients=4,
                           drain=120.0, live=False)
    with SinkProcess(tmp_path / "sinks", kinds=("socket", "lpd", "ipp")) as sinks:
        node = NodeProcess(tmp_path, sink_printers(sinks), fsync=True).start()
        try:
            _, cards = _population(node, 8, tmp_path)
            targets, rat = run_comparison(opts, node, sinks, docs, cards=cards)
        finally:
            node.stop()
    failure = f"node log:\n{node.log_tail()}\ntargets: {targets}"

    assert set(targets) == {"spoolproxy-accept", "cupsd", "spoolproxy-delivery", "sink"}, failure
    for name in ("spoolproxy-accept", "cupsd"):
        t = targets[name]
        assert t["totals"]["accepted"] > 0 and t["totals"]["errors"] == {}, (name, t["totals"])
        assert t["latency_ms"]["accept"]["n"] == t["totals"]["accepted"], (name, t["latency_ms"])
    for name in ("spoolproxy-delivery", "sink"):
        t = targets[name]
        assert t["totals"]["errors"] == {}, (name, t["totals"])
        assert t["totals"]["delivered"] == LARGE_JOBS, (name, t["totals"])
        assert t["totals"]["delivered_bytes"] == LARGE_JOBS * large.size, (name, t["totals"])
        assert t["rates"]["accepted_per_s"] is None, (name, t["rates"])  # delivery only
    node_phase = targets["spoolproxy-delivery"]["phase"]
    assert node_phase["via"].endswith("/ipp/print/secure"), node_phase
    assert targets["spoolproxy-delivery"]["totals"]["released"] == LARGE_JOBS, failure
    assert targets["sink"]["latency_ms"]["deliver"]["n"] == LARGE_JOBS, targets["sink"]

    accept = rat["spoolproxy/cupsd"]["accepted_per_s"]
    delivery = rat["spoolproxy/sink"]["delivered_bytes_per_s"]
    for x in (accept, delivery):
        assert isinstance(x, float) and math.isfinite(x) and x > 0, rat
    assert rat["targets_met"] == {"accept >= cupsd": accept >= 1.0, "delivery >= 0.8 x sink": delivery >= 0.8}
    assert ratios(targets) == rat

    result = {"version": 1, "kind": "spoolproxy-bench", "label": "compare", "targets": targets, "ratios": rat}
    report.write_json(result, tmp_path / "result.json")  # finite numbers only: JSON as run writes it
    text = _text(report.summary(report.load(tmp_path / "result.json")))
    assert f"spoolproxy/cupsd accepted_per_s {accept:.2f}" in text, text
    assert f"spoolproxy/sink delivered_bytes_per_s {delivery:.2f}" in text, text
    assert "target accept >= cupsd: " in text and "target delivery >= 0.8 x sink: " in text, text
    print(text)
