"""Fuzz target for the PCL XL scanner and conversions (spoolproxy.pdl.pclxl and its twin).

    python tests/fuzz/fuzz_pdl_pclxl.py [libFuzzer options] [corpus dir]   (atheris)
    python tests/fuzz/fuzz_pdl_pclxl.py N [SEED]                            (plain random loop)

``TestOneInput`` asserts that only PdlError escapes scan/to_grayscale/to_duplex, that
the compiled twin (when built) gives the same answer, and that a converted stream
scans to the same page count.
"""
from __future__ import annotations

import io
import random
import sys
import time
from pathlib import Path

if __name__ == "__main__":
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
        from spoolproxy.pdl import pclxl as pure
else:
    from spoolproxy.pdl import pclxl as pure
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


def mutate(rng: random.Random, data: bytes, corpus: list[bytes]) -> bytes:
    buf = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        i = rng.randrange(len(buf) + 1)
        op = rng.randrange(6)
        if op == 0 and i < len(buf):
            buf[i] ^= 1 << rng.randrange(8)
        elif op == 1 and i < len(buf):
            buf[i] = rng.choice([0x00, 0x1B, 0x43, 0x44, 0xB1, 0xC1, 0xC8, 0xF8, 0xFA, 0xFB, 0xFF])
        elif op == 2:
            buf[i:i] = rng.randbytes(rng.randint(1, 8))
        elif op == 3:
            del buf[i:i + rng.randint(1, 8)]
        elif op == 4:
            del buf[i:]
        else:
            other = rng.choice(corpus)
            buf[i:] = other[rng.randrange(len(other) + 1):]
    return bytes(buf)


def run_random(iterations: int, seed: int | None = None) -> int:
    seed = int(time.time()) if seed is None else seed
    rng = random.Random(seed)
    corpus = seed_corpus()
    for n in range(iterations):
        data = mutate(rng, rng.choice(corpus), corpus)
        try:
            TestOneInput(data)
        except BaseException:
            print(f"failing input (seed {seed}, iteration {n}): {data.hex()}", file=sys.stderr)
            raise
    return iterations


def main(argv: list[str]) -> None:
    if atheris is not None:
        atheris.Setup(argv, TestOneInput)
        atheris.Fuzz()
        return
    iterations = int(argv[1]) if len(argv) > 1 else 10000
    seed = int(argv[2]) if len(argv) > 2 else None
    print(f"fuzz_pdl_pclxl: {run_random(iterations, seed)} random/mutational inputs, no failure")


if __name__ == "__main__":
    main(sys.argv)
