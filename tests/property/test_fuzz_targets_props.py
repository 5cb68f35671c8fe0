"""Every fuzz target in tests/fuzz stays runnable: a short run of its plain
random/mutational loop (the same TestOneInput atheris drives) must pass. A target
that rots, or an input class that starts escaping as a non-engine error, fails here."""
from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

FUZZ_DIR = Path(__file__).resolve().parents[1] / "fuzz"
TARGETS = sorted(p for p in FUZZ_DIR.glob("fuzz_*.py"))


def _load(path: Path):
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_every_parser_has_a_fuzz_target():
    names = {p.stem for p in TARGETS}
    for parser in ("ipp_codec", "pdl_engine", "pdl_pdf", "pdl_pdfcolor", "pdl_postscript", "pdl_pcl",
                   "pdl_pclxl", "pdl_raster", "users_csv", "sync_journal", "lpd_protocol", "ledger_credit"):
        assert f"fuzz_{parser}" in names


@pytest.mark.parametrize("path", TARGETS, ids=lambda p: p.stem)
def test_fuzz_target_runs(path):
    module = _load(path)
    assert callable(module.TestOneInput)
    loop = getattr(module, "run_random", None)
    if loop is not None:
        loop(200, 7)
    else:  # a target without the plain loop: feed it a few fixed inputs
        for data in (b"", b"\x00" * 64, bytes(range(256))):
            module.TestOneInput(data)
