"""Fuzz target for the PCL 5 scanner and conversions (spoolproxy.pdl.pcl and, when
built, its compiled twin spoolproxy._ext.pcl).

    python tests/fuzz/fuzz_pdl_pcl.py [libFuzzer options] [corpus dir]
        runs atheris (coverage-guided) when it is installed;
    python tests/fuzz/fuzz_pdl_pcl.py N [SEED]
        runs N iterations of a plain random/mutational loop (no atheris needed),
        which is also what happens without atheris (N = 10000).

``TestOneInput`` asserts that only PdlError escapes the scanner, that the twins agree,
and that the conversions of a countable document count the same pages.
"""
from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # _harness, also when loaded by file path
import _harness  # noqa: E402

pure = _harness.instrumented_import("spoolproxy.pdl.pcl", __name__)
from spoolproxy.pdl.model import TWO_SIDED_SHORT  # noqa: E402

try:
    from spoolproxy._ext import pcl as compiled
except ImportError:
    compiled = None


def _check(data: bytes) -> bool:
    """The checks of TestOneInput; True when ``data`` counted."""
    return _harness.check_scanner_twins(pure, compiled, data, TWO_SIDED_SHORT)


def TestOneInput(data: bytes) -> None:
    _check(data)


def seed_corpus() -> list[bytes]:
    e = b"\x1b"
    return [
        e + b"E" + e + b"&l26a2x1S" + b"Hello\x0c" + e + b"*r3U" + e + b"*v2S" + b"red\x0c" + e + b"E",
        e + b"*v6W\x00\x01\x08\x08\x08\x08" + e + b"*v0a0b9c5I" + e + b"*v5S" + e + b"*c0P\x0c"
        + e + b"*r8S" + e + b"*r1A" + e + b"*b1V\x55" + e + b"*b1v\x33" + b"1W\x0f" + e + b"*rB\x0c",
        e + b"%0BIN;SP1;PD100,100;LB x PG\x03;DT#;BLab#PE<=a;PG;" + e + b"%0A" + e + b"&p2X\x0c\x1b"
        + e + b"(s3W\x1bE\x0c" + e + b"&l3A" + e + b"E" + b"\x1b%-12345X@PJL",
        e + b"*r3U" + e + b"*r12S" + e + b"*r1A" + e + b"*b2M" + e + b"*b3V\x01\xf0\x0f" + e + b"*b2V\xfe\x55"
        + e + b"*b3m2W\x00\x0f" + e + b"*b1M" + e + b"*b4V\x01\xff\x00\x0f" + e + b"*b0v2W\x00\x01" + e + b"*rB\x0c"
        + e + b"*v6W\x00\x03\x00\x08\x08\x08" + e + b"*b0M" + e + b"*b6W\x01\x01\x01\x02\x02\x03\x0c"
        + e + b"*v6W\x00\x01\x04\x08\x08\x08" + e + b"*b2W\x07\x70\x0c",
    ]


_TOKENS = [b"\x1b", b"\x0c", b"\x1bE", b"\x1b&l", b"\x1b*b", b"\x1b*v", b"\x1b*r", b"\x1b%0B", b"\x1b%0A",
           b"W", b"w", b"V", b"S", b"I", b"U", b"3", b"-3", b"12", b"PG;", b"PD;", b"SP2;", b"LB", b"\x03",
           b"\x1b%-12345X", b"\x1b*b3M", b"\x1b*b2M", b"\x1b*b1M", b"\x1b*r1A", b"\x1f\xff\x01", b"\x81\x80"]


mutate = _harness.mutator(
    _harness.flip_bit, _harness.insert_token(_TOKENS), _harness.insert_random(8), _harness.delete(16),
    _harness.splice_tail, _harness.copy_within(32),
)


def run_random(iterations: int, seed: int | None = None) -> int:
    return _harness.run_random(_check, seed_corpus(), mutate, iterations, seed)


def main(argv: list[str]) -> None:
    _harness.fuzz_main(argv, TestOneInput, run_random, "fuzz_pdl_pcl")


if __name__ == "__main__":
    main(sys.argv)
