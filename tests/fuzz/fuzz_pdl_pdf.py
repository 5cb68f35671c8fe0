"""Fuzz target for the PDF reader (spoolproxy.pdl.pdf and its compiled twin).

    python tests/fuzz/fuzz_pdl_pdf.py [libFuzzer options] [corpus dir]
        runs atheris (coverage-guided) when it is installed;
    python tests/fuzz/fuzz_pdl_pdf.py N [SEED]
        runs N iterations of a plain random/mutational loop (no atheris needed),
        which is also what happens without atheris (N = 2000).

``TestOneInput`` reads the input as a PDF with both twins (the compiled one when it
is built): page count, every page and its media, the first content streams decoded.
Only PdlError may escape, and the twins must give the same answers.
"""
from __future__ import annotations

import importlib
import io
import random
import sys
import time
import zlib
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
        from spoolproxy.pdl import pdf as pure
        from spoolproxy.pdl.model import PdlError
else:
    from spoolproxy.pdl import pdf as pure
    from spoolproxy.pdl.model import PdlError

try:
    compiled = importlib.import_module("spoolproxy._ext.pdf")
except ModuleNotFoundError:
    compiled = None


def _outcome(mod, data: bytes):
    try:
        d = mod.Document(io.BytesIO(data))
        n = d.page_count()
        pages = []
        for p in d.pages():
            pages.append((p.ref, mod.page_media(p)))
            if len(pages) >= 100:
                break
            if len(pages) <= 2:
                c = d.resolve(p.get("Contents"))
                if isinstance(c, pure.Stream):
                    try:
                        pages.append(len(c.decoded(1 << 16)))
                    except PdlError as e:
                        pages.append(type(e).__name__)
        return ("ok", n, pages)
    except PdlError as e:
        return ("error", type(e).__name__)


def _check(data: bytes) -> bool:
    got = _outcome(pure, data)
    if compiled is not None:
        other = _outcome(compiled, data)
        assert other == got, f"twins disagree:\n{got}\n{other}"
    return got[0] == "ok"


def TestOneInput(data: bytes) -> None:
    _check(data)


# --- the random / mutational loop -----------------------------------------------------------


def _pdf(objects: dict[int, bytes], xref: bool = True, junk: bytes = b"") -> bytes:
    out = bytearray(junk + b"%PDF-1.5\n")
    offsets = {}
    for num, body in objects.items():
        offsets[num] = len(out) - len(junk)
        out += b"%d 0 obj\n" % num + body + b"\nendobj\n"
    if not xref:
        return bytes(out) + b"trailer << /Root 1 0 R >>\n%%EOF\n"
    at = len(out) - len(junk)
    size = max(offsets) + 1
    out += b"xref\n0 %d\n0000000000 65535 f \n" % size
    for n in range(1, size):
        out += b"%010d 00000 n \n" % offsets[n] if n in offsets else b"0000000000 00001 f \n"
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (size, at)
    return bytes(out)


def seed_corpus() -> list[bytes]:
    content = zlib.compress(b"1 0 0 rg 0 0 10 10 re f")
    objstm_head = b"2 0 3 60 "
    objstm_body = (b"<< /Type /Pages /Kids [3 0 R] /Count 1 /MediaBox [0 0 595 842] >>".ljust(60)
                   + b"<< /Type /Page /Parent 2 0 R >>")
    objstm = zlib.compress(objstm_head + objstm_body)
    return [
        _pdf({1: b"<< /Type /Catalog /Pages 2 0 R >>",
              2: b"<< /Type /Pages /Kids [3 0 R 4 0 R] /Count 2 /MediaBox [0 0 612 792] >>",
              3: b"<< /Type /Page /Parent 2 0 R /Contents 5 0 R /Rotate 90 >>",
              4: b"<< /Type /Page /Parent 2 0 R /CropBox [0 0 100 100] >>",
              5: b"<< /Length %d /Filter /FlateDecode >>\nstream\n" % len(content) + content + b"\nendstream"}),
        _pdf({1: b"<< /Type /Catalog /Pages 2 0 R /ViewerPreferences << /Duplex /DuplexFlipLongEdge >> >>",
              2: b"<< /Type /Pages /Kids [3 0 R] >>",
              3: b"<< /Type /Page /Contents [(x) 4 0 R] >>",
              4: b"<< /Length 4 0 R >>\nstream\nabc\nendstream"}, xref=False),
        _pdf({1: b"<< /Type /Catalog /Pages 2 0 R >>",
              5: b"<< /Type /ObjStm /N 2 /First %d /Length %d /Filter /FlateDecode >>\nstream\n"
                 % (len(objstm_head), len(objstm)) + objstm + b"\nendstream"}, junk=b"@PJL\n"),
    ]


_INTERESTING = [b"obj", b"endobj", b"R", b"<<", b">>", b"[", b"]", b"(", b")", b"/", b"#", b"\\", b"xref",
                b"trailer", b"startxref", b"stream\n", b"endstream", b"/Prev 0", b"/Count 999999999",
                b"/Kids [1 0 R]", b"99999999999 0 R", b"-1", b"1e308", b"%"]


def mutate(rng: random.Random, data: bytes, corpus: list[bytes]) -> bytes:
    buf = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        i = rng.randrange(len(buf) + 1)
        op = rng.randrange(6)
        if op == 0 and i < len(buf):
            buf[i] ^= 1 << rng.randrange(8)
        elif op == 1:
            buf[i:i] = rng.choice(_INTERESTING)
        elif op == 2:
            del buf[i:i + rng.randint(1, 16)]
        elif op == 3:
            buf[i:i] = rng.randbytes(rng.randint(1, 8))
        elif op == 4:
            other = rng.choice(corpus)
            j = rng.randrange(len(other) + 1)
            buf[i:i] = other[j:j + rng.randint(1, 64)]
        elif op == 5 and i < len(buf):
            c = buf[i]
            if 48 <= c <= 57:
                buf[i] = 48 + rng.randrange(10)
    return bytes(buf)


def run_random(iterations: int, seed: int | None = None) -> int:
    seed = int(time.time()) if seed is None else seed
    rng = random.Random(seed)
    corpus = seed_corpus()
    for n in range(iterations):
        data = mutate(rng, rng.choice(corpus), corpus)
        try:
            ok = _check(data)
        except BaseException:
            print(f"failing input (seed {seed}, iteration {n}): {data.hex()}", file=sys.stderr)
            raise
        if ok and len(corpus) < 128:
            corpus.append(data)
    return iterations


def main(argv: list[str]) -> None:
    if atheris is not None:
        atheris.Setup(argv, TestOneInput)
        atheris.Fuzz()
        return
    iterations = int(argv[1]) if len(argv) > 1 else 2000
    seed = int(argv[2]) if len(argv) > 2 else None
    done = run_random(iterations, seed)
    print(f"fuzz_pdl_pdf: {done} random/mutational inputs, no failure"
          f" ({'both twins' if compiled is not None else 'pure twin only'})")


if __name__ == "__main__":
    main(sys.argv)
