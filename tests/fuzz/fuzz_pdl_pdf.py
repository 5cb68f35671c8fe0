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
import zlib
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # _harness, also when loaded by file path
import _harness  # noqa: E402

pure = _harness.instrumented_import("spoolproxy.pdl.pdf", __name__)
from spoolproxy.pdl.model import PdlError  # noqa: E402

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


def _insert_from_corpus(rng: random.Random, buf: bytearray, i: int, corpus: list[bytes]) -> None:
    other = rng.choice(corpus)
    j = rng.randrange(len(other) + 1)
    buf[i:i] = other[j:j + rng.randint(1, 64)]


def _change_digit(rng: random.Random, buf: bytearray, i: int, corpus: list[bytes]) -> None:
    if i < len(buf) and 48 <= buf[i] <= 57:
        buf[i] = 48 + rng.randrange(10)


mutate = _harness.mutator(
    _harness.flip_bit, _harness.insert_token(_INTERESTING), _harness.delete(16), _harness.insert_random(8),
    _insert_from_corpus, _change_digit,
)


def run_random(iterations: int, seed: int | None = None) -> int:
    return _harness.run_random(_check, seed_corpus(), mutate, iterations, seed, random_share=0, corpus_limit=128)


def main(argv: list[str]) -> None:
    _harness.fuzz_main(argv, TestOneInput, run_random, "fuzz_pdl_pdf", default_iterations=2000,
                       note=f" ({'both twins' if compiled is not None else 'pure twin only'})")


if __name__ == "__main__":
    main(sys.argv)
