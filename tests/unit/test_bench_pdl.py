"""bench/pdl.py runs end to end on tiny inputs (its --quick path, smaller still), so it
cannot rot: every section runs, our counts are right, the ratio and target lines are
printed and the JSON has every number. No timing is asserted: benchmarks report, tests
assert (bench/README.md)."""
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
BENCH = REPO / "bench" / "pdl.py"
PAGES = 20


@pytest.mark.interop
def test_pdl_bench_quick_runs(tmp_path: Path) -> None:
    peers.require("gs")  # it makes every input; pikepdf, pdfinfo and qpdf are optional rows
    results = tmp_path / "pdl.json"
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH", "")) if p)
    proc = subprocess.run([sys.executable, str(BENCH), "--quick", "--pages", str(PAGES), "--size-mib", "2",
                           "--small-mib", "1", "--dpi", "40", "--gs-pages", "2", "--min-runs", "2",
                           "--json", str(results)],
                          capture_output=True, text=True, timeout=300, cwd=REPO, env=env)
    report = f"exit {proc.returncode}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
    assert proc.returncode == 0, report
    for pattern in (r"^1\. PDF page count", r"^2\. Scan throughput", r"^3\. PWG Raster -> grayscale",
                    r"^4\. Peak memory", r"^   ratio ours/gs = \d+(\.\d)?x$",
                    r"^   target: 1000 MB/s per core: PCL XL (met|NOT met), PostScript (met|NOT met), "
                    r"PWG Raster (met|NOT met)$"):
        assert re.search(pattern, proc.stdout, re.M), f"no line matching {pattern!r}\n{report}"

    data = json.loads(results.read_text())
    assert data["errors"] == []
    ours = [r for r in data["pdf_count"]["rows"] if r["method"].startswith("ours")]
    assert ours and all(r["pages"] == PAGES for r in ours if "pages" in r), ours
    assert any("median_s" in r for r in ours)
    assert {r["format"] for r in data["scan"]["rows"]} == {"PCL XL", "PostScript", "PWG Raster"}
    for r in data["scan"]["rows"]:
        assert r["pages"] == r["pages_expected"] > 0 and r["MBps"] > 0, r
    gray = data["grayscale"]
    assert gray["ours"]["after"] == {"pages": gray["ours"]["pages"], "color_pages": 0}
    assert gray["ghostscript"]["pages"] == 2 and gray["ratio"] > 0
    mem = data["memory"]["rows"]
    assert {(r["format"], r["mode"]) for r in mem} == {("PCL XL", "analyze"), ("PostScript", "analyze"),
                                                      ("PWG Raster", "analyze"), ("PWG Raster", "gray")}
    for r in mem:
        assert "error" not in r, r
        assert r["small"]["vmhwm_kib"] > 0 and r["big"]["vmhwm_kib"] > 0
