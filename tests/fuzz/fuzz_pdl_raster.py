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
import random
import sys
import time
from pathlib import Path

if __name__ == "__main__":  # runnable from a checkout without installing
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

_RANDOM_MODE = __name__ != "__main__" or (len(sys.argv) > 1 and sys.argv[1].isdigit())
atheris = None
if not _RANDOM_MODE:
    try:
        import atheris  # type: ignore[no-redef]
    except ImportError:
        atheris = None

if atheris is not None:
    with atheris.instrument_imports(include=["spoolproxy"]):
        from spoolproxy.pdl import raster as pure
else:
    from spoolproxy.pdl import raster as pure
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


def mutate(rng: random.Random, data: bytes, corpus: list[bytes]) -> bytes:
    buf = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        i = rng.randrange(len(buf) + 1)
        op = rng.randrange(7)
        if op == 0 and i < len(buf):
            buf[i] ^= 1 << rng.randrange(8)
        elif op == 1 and i < len(buf):
            buf[i] = rng.choice(_INTERESTING)
        elif op == 2:
            buf[i:i] = rng.randbytes(rng.randint(1, 8))
        elif op == 3:
            del buf[i:i + rng.randint(1, 8)]
        elif op == 4:
            del buf[i:]
        elif op == 5:
            other = rng.choice(corpus)
            buf[i:] = other[rng.randrange(len(other) + 1):]
        elif op == 6 and buf:
            j = rng.randrange(len(buf))
            buf[i:i] = buf[j:j + rng.randint(1, 16)]
    return bytes(buf)


def run_random(iterations: int, seed: int | None = None) -> int:
    """Run the target on ``iterations`` generated inputs; return how many ran."""
    seed = int(time.time()) if seed is None else seed
    rng = random.Random(seed)
    corpus = seed_corpus()
    for n in range(iterations):
        if rng.random() < 0.1:
            data = rng.choice([b"RaS2", b"UNIRAST\x00", b""]) + rng.randbytes(rng.randint(0, 64))
        else:
            data = mutate(rng, rng.choice(corpus), corpus)
        try:
            ok = _check(data)
        except BaseException:
            print(f"failing input (seed {seed}, iteration {n}): {data.hex()}", file=sys.stderr)
            raise
        if ok and len(corpus) < 256:
            corpus.append(data)
    return iterations


def main(argv: list[str]) -> None:
    if atheris is not None:
        atheris.Setup(argv, TestOneInput)
        atheris.Fuzz()
        return
    iterations = int(argv[1]) if len(argv) > 1 else 10000
    seed = int(argv[2]) if len(argv) > 2 else None
    done = run_random(iterations, seed)
    print(f"fuzz_pdl_raster: {done} random/mutational inputs, no failure")


if __name__ == "__main__":
    main(sys.argv)
