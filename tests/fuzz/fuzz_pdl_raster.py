"""Fuzz target for PWG Raster / Apple raster (spoolproxy.pdl.raster and its compiled twin).

    python tests/fuzz/fuzz_pdl_raster.py [libFuzzer options] [corpus dir]
        runs atheris (coverage-guided) when it is installed;
    python tests/fuzz/fuzz_pdl_raster.py N [SEED]
        runs N iterations of a plain random/mutational loop (no atheris needed),
        which is also what happens without atheris (N = 10000).

``TestOneInput`` asserts that only PdlError escapes scan, to_grayscale and to_duplex,
that the compiled twin (when built) gives the same results, bytes and exception
classes, and that whatever converts to grayscale scans again with the same page
count and no colour page.
"""
from __future__ import annotations

import importlib
import io
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # _harness, also when loaded by file path
import _harness  # noqa: E402

pure = _harness.instrumented_import("spoolproxy.pdl.raster", __name__)
from spoolproxy.pdl.model import TWO_SIDED_LONG, PdlError  # noqa: E402

try:
    compiled = importlib.import_module("spoolproxy._ext.raster")
except ModuleNotFoundError:
    compiled = None


def _outcome(fn):
    try:
        return "ok", fn()
    except PdlError as e:
        return "error", type(e)


def _run(mod, data: bytes):
    def gray():
        out = io.BytesIO()
        mod.to_grayscale(io.BytesIO(data), out)
        return out.getvalue()

    def duplex():
        out = io.BytesIO()
        mod.to_duplex(io.BytesIO(data), out, TWO_SIDED_LONG)
        return out.getvalue()

    return _outcome(lambda: mod.scan(io.BytesIO(data))), _outcome(gray), _outcome(duplex)


def _check(data: bytes) -> bool:
    """The checks of TestOneInput; True when ``data`` scanned."""
    scanned, gray, duplex = _run(pure, data)
    if compiled is not None:
        assert _run(compiled, data) == (scanned, gray, duplex), "the twins disagree"
    if scanned[0] == "ok" and gray[0] == "ok":
        runs, _ = pure.scan(io.BytesIO(gray[1]))
        assert sum(r.count for r in runs) == sum(r.count for r in scanned[1][0])
        assert not any(r.color for r in runs)
    if scanned[0] == "ok":
        assert duplex[0] == "ok" and len(duplex[1]) == len(data)
    return scanned[0] == "ok"


def TestOneInput(data: bytes) -> None:
    _check(data)


# --- the random / mutational loop -----------------------------------------------------------


def _pwg_header(width, height, cspace, bpc, bpp, duplex=0, copies=1) -> bytes:
    h = bytearray(1796)
    h[0:9] = b"PwgRaster"
    for off, v in {272: duplex, 276: 100, 280: 100, 340: copies, 352: 595, 356: 842, 372: width,
                   376: height, 384: bpc, 388: bpp, 392: (width * bpp + 7) // 8, 400: cspace}.items():
        h[off:off + 4] = v.to_bytes(4, "big")
    return bytes(h)


def _urf_header(width, height, bpp, cspace, duplex=1) -> bytes:
    return bytes([bpp, cspace, duplex, 4]) + bytes(8) + b"".join(
        v.to_bytes(4, "big") for v in (width, height, 300)) + bytes(8)


def seed_corpus() -> list[bytes]:
    rgb_line = b"\x00" + b"\x02\xff\xff\xff" + b"\xfe\x10\x20\x30\x00\x00\x00\x40\x40\x40" + b"\x80"
    return [
        b"RaS2" + _pwg_header(8, 3, 19, 8, 24, duplex=1, copies=2) + rgb_line * 3,
        b"RaS2" + _pwg_header(8, 3, 19, 1, 4) + b"\x01\x03\x74" + b"\x00\xfd\x47\x77\x01\x77",
        b"RaS2" + _pwg_header(3, 1, 6, 8, 32) + b"\x00\x02\x00\x00\x00\xff"
        + _pwg_header(2, 1, 18, 8, 8) + b"\x00\xff\x10\x20",
        b"UNIRAST\x00\x00\x00\x00\x02" + _urf_header(8, 3, 24, 1) + rgb_line * 3
        + _urf_header(4, 2, 8, 0, 3) + b"\x01\x03\x55",
        b"UNIRAST\x00\x00\x00\x00\x01" + _urf_header(6, 1, 48, 5) + b"\x00\x05" + b"\x12\x34" * 3,
    ]


_INTERESTING = [0x00, 0x01, 0x02, 0x03, 0x04, 0x06, 0x12, 0x13, 0x14, 0x7F, 0x80, 0x81, 0xFE, 0xFF]


mutate = _harness.mutator(
    _harness.flip_bit, _harness.set_byte(_INTERESTING), _harness.insert_random(8), _harness.delete(8),
    _harness.truncate, _harness.splice_tail, _harness.copy_within(16),
)


def run_random(iterations: int, seed: int | None = None) -> int:
    """Run the target on ``iterations`` generated inputs; return how many ran."""
    return _harness.run_random(_check, seed_corpus(), mutate, iterations, seed,
                               random_input=_harness.random_bytes(b"RaS2", b"UNIRAST\x00", b""))


def main(argv: list[str]) -> None:
    _harness.fuzz_main(argv, TestOneInput, run_random, "fuzz_pdl_raster")


if __name__ == "__main__":
    main(sys.argv)
