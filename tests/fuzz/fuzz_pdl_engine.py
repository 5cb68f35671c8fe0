"""Fuzz target for the document engine as a whole: PJL headers, sections, the
dispatch to every scanner, and the conversions (spoolproxy.pdl.analyze,
convert_grayscale, convert_duplex), with Ghostscript off.

    python tests/fuzz/fuzz_pdl_engine.py [libFuzzer options] [corpus dir]
        runs atheris (coverage-guided) when it is installed;
    python tests/fuzz/fuzz_pdl_engine.py N [SEED]
        runs N iterations of a plain random/mutational loop (no atheris needed).

``TestOneInput`` asserts that only PdlError escapes, and that the page counts are
consistent (runs of at least one page, printed at least once).
SPOOLPROXY_NO_EXTENSIONS=1 fuzzes the pure twins.
"""
from __future__ import annotations

import os
import random
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # _harness, also when loaded by file path
import _harness  # noqa: E402

pdl = _harness.instrumented_import("spoolproxy.pdl", __name__)

_DIR = tempfile.mkdtemp(prefix="fuzz-pdl-engine-")
_SRC = os.path.join(_DIR, "in")
_OUT = os.path.join(_DIR, "out")

UEL = b"\x1b%-12345X"
SEEDS = [
    UEL + b"@PJL SET COPIES=2\r\n@PJL SET QTY=2\r\n@PJL ENTER LANGUAGE=PCL\r\n\x1bEhello\x0c\x1bE" + UEL,
    UEL + b"@PJL ENTER LANGUAGE=PCLXL\r\n) HP-PCL XL;2;0\r\n" + UEL + b"@PJL ENTER LANGUAGE=POSTSCRIPT\n"
    b"%!PS-Adobe-3.0\n%%Pages: 1\n%%Page: 1 1\nshowpage\n%%EOF\n" + UEL,
    b"%!PS-Adobe-3.0\n%%Pages: (atend)\n%%EndComments\n%%Page: 1 1\nshowpage\n%%Trailer\n%%Pages: 1\n",
    b"%PDF-1.4\n1 0 obj<</Type/Catalog/Pages 2 0 R>>endobj\n2 0 obj<</Type/Pages/Kids[]/Count 0>>endobj\n"
    b"trailer<</Root 1 0 R>>\n%%EOF\n",
    b"RaS2" + bytes(1796),
    b"UNIRAST\0" + bytes(4),
    b"plain text\fsecond page\n",
]


def TestOneInput(data: bytes) -> None:
    with open(_SRC, "wb") as f:
        f.write(data)
    try:
        a = pdl.analyze(_SRC, ghostscript=False)
    except pdl.PdlError:
        pass
    else:
        assert all(r.count > 0 and r.copies > 0 for r in a.runs), a
        assert a.impressions >= a.pages
    for convert in (pdl.convert_grayscale, lambda s, d: pdl.convert_duplex(s, d, pdl.TWO_SIDED_SHORT)):
        try:
            convert(_SRC, _OUT)
        except pdl.PdlError:
            assert not os.path.exists(_OUT + ".part")


def mutate(rng: random.Random, data: bytes, corpus: list[bytes]) -> bytes:
    b = bytearray(data)
    for _ in range(rng.randint(1, 8)):
        op = rng.random()
        if op < 0.4 and b:
            b[rng.randrange(len(b))] = rng.randrange(256)
        elif op < 0.6:
            b[rng.randint(0, len(b)):rng.randint(0, len(b))] = rng.choice(corpus)[: rng.randint(0, 64)]
        elif op < 0.8 and b:
            i = rng.randrange(len(b))
            del b[i:i + rng.randint(1, 16)]
        else:
            b += rng.randbytes(rng.randint(0, 32))
    return bytes(b)


def run_random(iterations: int, seed: int | None = None) -> int:
    return _harness.run_random(TestOneInput, SEEDS, mutate, iterations, seed, random_share=0.2,
                               random_input=_harness.random_bytes(max_len=256))


def main(argv: list[str]) -> None:
    _harness.fuzz_main(argv, TestOneInput, run_random, "fuzz_pdl_engine")


if __name__ == "__main__":
    main(sys.argv)
