"""Fuzz target for the PostScript scanner and conversions (spoolproxy.pdl.postscript and,
when built, its compiled twin spoolproxy._ext.postscript).

    python tests/fuzz/fuzz_pdl_postscript.py [libFuzzer options] [corpus dir]
        runs atheris (coverage-guided) when it is installed;
    python tests/fuzz/fuzz_pdl_postscript.py N [SEED]
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

pure = _harness.instrumented_import("spoolproxy.pdl.postscript", __name__)
from spoolproxy.pdl.model import TWO_SIDED_SHORT  # noqa: E402

try:
    from spoolproxy._ext import postscript as compiled
except ImportError:
    compiled = None


def _check(data: bytes) -> bool:
    """The checks of TestOneInput; True when ``data`` counted."""
    return _harness.check_scanner_twins(pure, compiled, data, TWO_SIDED_SHORT)


def TestOneInput(data: bytes) -> None:
    _check(data)


def seed_corpus() -> list[bytes]:
    return [
        b"%!PS-Adobe-3.0\n%%Pages: (atend)\n%%EndComments\n%%Page: 1 1\n<< /NumCopies 2 /Duplex true >> "
        b"setpagedevice\nshowpage\n%%Page: 2 2\n%%BeginBinary: 3\n%%P\n%%EndBinary\n%%Trailer\n%%Pages: 2\n%%EOF\n",
        b"%!PS-Adobe-3.0\r\n%%Pages: 1\r\n%%DocumentMedia: A 595 842 0 () ()\r\n%%+ B 612 792 0 () ()\r\n"
        b"%%DocumentProcessColors: Black\r\n%%BeginSetup\r\n/#copies 3 def\r\n%%EndSetup\r\n%%Page: x 1\r\n"
        b"%%PageMedia: B\r\n%%BeginDocument: e.eps\r\n%%Page: 1 1\r\n%%EndDocument\r\n\x1b%-12345X",
        b"%!PS\r%%Pages: 2\r%%Page: 1 1\r%%BeginData: 2 Hex Lines\rab\rcd\r%%EndData\r/PageSize [612 792]\r"
        b"%%Page: 2 2\r%%IncludeFeature: *Duplex DuplexTumble\r",
    ]


_TOKENS = [b"%%", b"\n", b"\r", b"\r\n", b"%%Page: 1 1\n", b"%%Pages: 2\n", b"%%Trailer\n", b"%%BeginDocument\n",
           b"%%EndDocument\n", b"%%BeginBinary: 9\n", b"%%BeginData: 1 Binary Lines\n", b"/Duplex false ",
           b"/Tumble true", b"/NumCopies 5", b"/PageSize [1 2]", b"\x1b%-12345X", b"(atend)"]


mutate = _harness.mutator(
    _harness.flip_bit, _harness.insert_token(_TOKENS), _harness.insert_random(8), _harness.delete(16),
    _harness.splice_tail, _harness.copy_within(32),
)


def run_random(iterations: int, seed: int | None = None) -> int:
    return _harness.run_random(_check, seed_corpus(), mutate, iterations, seed)


def main(argv: list[str]) -> None:
    _harness.fuzz_main(argv, TestOneInput, run_random, "fuzz_pdl_postscript")


if __name__ == "__main__":
    main(sys.argv)
