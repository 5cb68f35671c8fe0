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
        from spoolproxy.pdl import postscript as pure
else:
    from spoolproxy.pdl import postscript as pure
from spoolproxy.pdl.model import TWO_SIDED_SHORT, PdlError  # noqa: E402

try:
    from spoolproxy._ext import postscript as compiled
except ImportError:
    compiled = None


def _outcome(mod, data: bytes):
    try:
        return mod.scan(io.BytesIO(data))
    except PdlError as e:
        return type(e)


def _check(data: bytes) -> bool:
    """The checks of TestOneInput; True when ``data`` counted."""
    got = _outcome(pure, data)
    if compiled is not None:
        assert _outcome(compiled, data) == got, "the twins disagree"
    if not isinstance(got, tuple):
        return False
    assert got[1] <= len(data)
    for convert in (pure.to_grayscale, lambda f, o: pure.to_duplex(f, o, TWO_SIDED_SHORT)):
        out = io.BytesIO()
        convert(io.BytesIO(data), out)
        again = _outcome(pure, out.getvalue())
        assert isinstance(again, tuple) and sum(r.count for r in again[0]) == sum(r.count for r in got[0])
    return True


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


def mutate(rng: random.Random, data: bytes, corpus: list[bytes]) -> bytes:
    buf = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        i = rng.randrange(len(buf) + 1)
        op = rng.randrange(6)
        if op == 0 and i < len(buf):
            buf[i] ^= 1 << rng.randrange(8)
        elif op == 1:
            buf[i:i] = rng.choice(_TOKENS)
        elif op == 2:
            buf[i:i] = rng.randbytes(rng.randint(1, 8))
        elif op == 3:
            del buf[i:i + rng.randint(1, 16)]
        elif op == 4:
            other = rng.choice(corpus)
            buf[i:] = other[rng.randrange(len(other) + 1):]
        elif op == 5 and buf:
            j = rng.randrange(len(buf))
            buf[i:i] = buf[j:j + rng.randint(1, 32)]
    return bytes(buf)


def run_random(iterations: int, seed: int | None = None) -> int:
    seed = int(time.time()) if seed is None else seed
    rng = random.Random(seed)
    corpus = seed_corpus()
    for n in range(iterations):
        data = rng.randbytes(rng.randint(0, 64)) if rng.random() < 0.1 else mutate(rng, rng.choice(corpus), corpus)
        try:
            counted = _check(data)
        except BaseException:
            print(f"failing input (seed {seed}, iteration {n}): {data.hex()}", file=sys.stderr)
            raise
        if counted and len(corpus) < 256:
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
    print(f"fuzz_pdl_postscript: {done} random/mutational inputs, no failure")


if __name__ == "__main__":
    main(sys.argv)
