"""Fuzz target for the PCL XL scanner and conversions (spoolproxy.pdl.pclxl and its twin).

    python tests/fuzz/fuzz_pdl_pclxl.py [libFuzzer options] [corpus dir]   (atheris)
    python tests/fuzz/fuzz_pdl_pclxl.py N [SEED]                            (plain random loop)

``TestOneInput`` asserts that only PdlError escapes scan/to_grayscale/to_duplex, that
the compiled twin (when built) gives the same answer, and that a converted stream
scans to the same page count.
"""
from __future__ import annotations

import io
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # _harness, also when loaded by file path
import _harness  # noqa: E402

pure = _harness.instrumented_import("spoolproxy.pdl.pclxl", __name__)
from spoolproxy.pdl.model import PdlError  # noqa: E402

try:
    from spoolproxy._ext import pclxl as compiled
except ImportError:
    compiled = None


def _scan(mod, data):
    try:
        return mod.scan(io.BytesIO(data), 0)
    except PdlError as e:
        return type(e)


def TestOneInput(data: bytes) -> None:
    got = _scan(pure, data)
    if compiled is not None:
        assert _scan(compiled, data) == got, "twins disagree"
    for convert in (pure.to_grayscale, lambda f, o: pure.to_duplex(f, o, "two-sided-short-edge")):
        out = io.BytesIO()
        try:
            convert(io.BytesIO(data), out)
        except PdlError:
            continue
        if isinstance(got, tuple):
            again = _scan(pure, out.getvalue())
            if isinstance(again, tuple):
                assert sum(r.count for r in again[0]) == sum(r.count for r in got[0])


def seed_corpus() -> list[bytes]:
    from tests.unit.test_pdl_pclxl import W, _mixed, page
    w = W("(".encode(), long_data=True).begin_session()
    page(w, lambda w: w.color_space(2).brush_rgb(1, 2, 250).rect(), copies=3, duplex=1)
    return [_mixed(), w.end(), b"' HP-PCL XL;2;0\nBeginPage EndPage\n"]


mutate = _harness.mutator(
    _harness.flip_bit, _harness.set_byte([0x00, 0x1B, 0x43, 0x44, 0xB1, 0xC1, 0xC8, 0xF8, 0xFA, 0xFB, 0xFF]),
    _harness.insert_random(8), _harness.delete(8), _harness.truncate, _harness.splice_tail,
)


def run_random(iterations: int, seed: int | None = None) -> int:
    return _harness.run_random(TestOneInput, seed_corpus(), mutate, iterations, seed, random_share=0)


def main(argv: list[str]) -> None:
    _harness.fuzz_main(argv, TestOneInput, run_random, "fuzz_pdl_pclxl")


if __name__ == "__main__":
    main(sys.argv)
