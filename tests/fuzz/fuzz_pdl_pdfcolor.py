"""Fuzz target for PDF page colour (spoolproxy.pdl.pdfcolor and its compiled twin).

    python tests/fuzz/fuzz_pdl_pdfcolor.py [libFuzzer options] [corpus dir]
        runs atheris (coverage-guided) when it is installed;
    python tests/fuzz/fuzz_pdl_pdfcolor.py N [SEED]
        runs N iterations of a plain random/mutational loop (no atheris needed),
        which is also what happens without atheris (N = 10000).

The input is a page's content stream, scanned with a fixed set of resources that
reach every part of the scanner (colour spaces of every family, forms, patterns,
shadings, images, a Type 3 font). ``TestOneInput`` asserts that only PdlError
escapes (the scan is run without page_color's last-resort guard), that the answer is
True/False/None, and that the compiled twin, when built, gives the same answer and
the same tokens.
"""
from __future__ import annotations

import importlib
import random
import sys
import zlib
from pathlib import Path
from typing import NamedTuple

sys.path.insert(0, str(Path(__file__).resolve().parent))  # _harness, also when loaded by file path
import _harness  # noqa: E402

pure = _harness.instrumented_import("spoolproxy.pdl.pdfcolor", __name__)
from spoolproxy.pdl.model import PdlError, UnsupportedFormat  # noqa: E402

try:
    compiled = importlib.import_module("spoolproxy._ext.pdfcolor")
except ModuleNotFoundError:
    compiled = None


# --- a small document: stand-ins for spoolproxy.pdl.pdf's objects ------------------------------


class Ref(NamedTuple):
    num: int
    gen: int = 0


class Stream:
    def __init__(self, d: dict, data: bytes, filters: list[str] | None = None):
        self.dict = d
        self.data = data
        self.filters = list(filters or [])

    def decoded(self, limit=None) -> bytes:
        data = self.data
        for f in self.filters:
            if f != "FlateDecode":
                raise UnsupportedFormat(f"/{f}")
            try:
                data = zlib.decompress(data)
            except zlib.error:
                raise PdlError("corrupt Flate data") from None
        return data if limit is None else data[:limit]


class Doc:
    def __init__(self, objects: dict):
        self.objects = objects

    def resolve(self, obj):
        hops = 0
        while isinstance(obj, Ref) and hops < 32:
            obj = self.objects.get(obj.num)
            hops += 1
        return obj


def _exp(c0, c1):
    return {"FunctionType": 2, "Domain": [0, 1], "C0": c0, "C1": c1, "N": 1}


def world() -> tuple[Doc, dict]:
    """(document, page resources) that the fuzzed content stream paints with."""
    calc = Stream({"FunctionType": 4, "Domain": [0, 1], "Range": [0, 1] * 4}, b"{dup 0 exch 0 0}")
    sampled = Stream({"FunctionType": 0, "Domain": [0, 1], "Range": [0, 1] * 3, "Size": [2],
                      "BitsPerSample": 8}, bytes([255, 255, 255, 0, 0, 255]))
    objects: dict = {
        1: Stream({"N": 3}, b"icc"),
        2: ["Indexed", "DeviceRGB", 2, b"\x00\x00\x00\x80\x80\x80\xff\x00\x00"],
        3: Stream({"Subtype": "Form", "BBox": [0, 0, 1, 1]}, b"0 0 1 rg 0 0 1 1 re f /Fm1 Do"),
        4: {"XObject": {"Fm1": Ref(3), "Fm0": Ref(5)}},
        5: Stream({"Subtype": "Form", "BBox": [0, 0, 1, 1], "Resources": Ref(4)}, b"0 0 1 1 re f /Fm0 Do"),
    }
    objects[3].dict["Resources"] = Ref(4)
    resources = {
        "ColorSpace": {
            "CS0": ["ICCBased", Ref(1)], "CS1": Ref(2), "CS2": ["Lab", {"WhitePoint": [0.95, 1, 1.09]}],
            "CS3": ["Separation", "Spot", "DeviceCMYK", calc],
            "CS4": ["Separation", "Spot2", "DeviceRGB", sampled],
            "CS5": ["DeviceN", ["Cyan", "Black"], "DeviceCMYK", calc],
            "CS6": ["Pattern", "DeviceRGB"], "CS7": ["CalRGB", {"WhitePoint": [0.95, 1, 1.09]}],
            "CS8": ["Separation", "Black", "DeviceGray", calc],
        },
        "Pattern": {
            "P0": Stream({"PatternType": 1, "PaintType": 1, "BBox": [0, 0, 1, 1], "XStep": 1, "YStep": 1,
                          "Resources": {}}, b"1 0 0 rg 0 0 1 1 re f"),
            "P1": Stream({"PatternType": 1, "PaintType": 2, "BBox": [0, 0, 1, 1], "XStep": 1, "YStep": 1},
                         b"0 0 1 1 re f"),
            "P2": {"PatternType": 2, "Shading": {"ShadingType": 2, "ColorSpace": "DeviceRGB",
                                                  "Coords": [0, 0, 1, 0], "Function": _exp([0, 0, 0], [1, 1, 1])}},
        },
        "Shading": {
            "Sh0": {"ShadingType": 3, "ColorSpace": "DeviceCMYK", "Function": _exp([0, 0, 0, 0], [0, 0, 0, 1])},
            "Sh1": {"ShadingType": 2, "ColorSpace": "DeviceRGB", "Function": sampled},
            "Sh2": {"ShadingType": 4, "ColorSpace": "DeviceRGB"},
        },
        "XObject": {
            "Im0": Stream({"Subtype": "Image", "Width": 2, "Height": 2, "ColorSpace": "DeviceRGB",
                           "BitsPerComponent": 8}, bytes([9, 9, 9, 1, 2, 3, 7, 7, 7, 0, 0, 0])),
            "Im1": Stream({"Subtype": "Image", "Width": 3, "Height": 1, "ColorSpace": "CS1",
                           "BitsPerComponent": 2, "Decode": [2, 0]}, b"\x10"),
            "Im2": Stream({"Subtype": "Image", "Width": 2, "Height": 1, "ColorSpace": "DeviceRGB",
                           "BitsPerComponent": 8, "Filter": "FlateDecode"},
                          zlib.compress(bytes([5, 5, 5, 6, 6, 6])), ["FlateDecode"]),
            "Im3": Stream({"Subtype": "Image", "Width": 1, "Height": 1, "ImageMask": True,
                           "BitsPerComponent": 1}, b"\x80"),
            "Im4": Stream({"Subtype": "Image", "Width": 1, "Height": 1, "ColorSpace": "DeviceRGB",
                           "BitsPerComponent": 8, "Filter": "DCTDecode"}, b"\xff\xd8", ["DCTDecode"]),
            "Im5": Stream({"Subtype": "Image", "Width": 4, "Height": 1, "ColorSpace": "CS3",
                           "BitsPerComponent": 8}, b"\x00\x10\x00\x00"),
            "Fm0": Ref(5), "Fm1": Ref(3),
        },
        "Font": {
            "T3": {"Subtype": "Type3", "CharProcs": {"a": Stream({}, b"0 0 d0 0 1 0 rg 0 0 1 1 re f"),
                                                     "b": Stream({}, b"0 0 0 0 1 1 d1 0 0 1 1 re f")}},
            "F1": {"Subtype": "Type1", "BaseFont": "Helvetica"},
        },
    }
    return Doc(objects), resources


_DOC, _RESOURCES = world()


def page(content: bytes) -> dict:
    return {"Type": "Page", "Resources": _RESOURCES, "Contents": Stream({}, content)}


def _answer(module, content: bytes):
    try:
        result = module._page_color(_DOC, page(content))
    except PdlError as e:
        return ("error", type(e).__name__)
    assert result in (True, False, None), result
    return result


def _check(data: bytes):
    """The checks of TestOneInput; returns the pure module's answer."""
    ours = _answer(pure, data)
    if compiled is not None:
        theirs = _answer(compiled, data)
        assert ours == theirs, f"twins disagree: pure {ours!r}, compiled {theirs!r}"
        assert repr(pure.parse_ops(data, 0, 64)) == repr(compiled.parse_ops(data, 0, 64))
    return ours


def TestOneInput(data: bytes) -> None:
    _check(data)


# --- the random / mutational loop -----------------------------------------------------------

WORDS = [b"q", b"Q", b"g", b"G", b"rg", b"RG", b"k", b"K", b"cs", b"CS", b"sc", b"scn", b"SC", b"SCN", b"f", b"S",
         b"B", b"b*", b"n", b"re", b"BT", b"ET", b"Tj", b"TJ", b"Tr", b"Tf", b"sh", b"Do", b"BI", b"ID", b"EI",
         b"/CS0", b"/CS1", b"/CS2", b"/CS3", b"/CS4", b"/CS5", b"/CS6", b"/CS7", b"/CS8", b"/Pattern",
         b"/DeviceRGB", b"/P0", b"/P1", b"/P2", b"/Sh0", b"/Sh1", b"/Sh2", b"/Im0", b"/Im1", b"/Im2", b"/Im3",
         b"/Im4", b"/Im5", b"/Fm0", b"/Fm1", b"/T3", b"/F1", b"(a)", b"(b)", b"[(a) 3 (b)]", b"0", b"1", b"0.5",
         b"3", b"7", b"-1", b"2", b"/W", b"/H", b"/BPC", b"/CS", b"/RGB", b"/G", b"/IM", b"true", b"/F", b"/AHx",
         b"<<", b">>", b"[", b"]", b"%", b"\n", b"(", b")", b"<0a>"]


def seed_corpus() -> list[bytes]:
    return [
        b"0.5 g 0 0 1 1 re f 1 0 0 RG 0 0 m 1 1 l S",
        b"q 1 0 0 rg Q 0 0 1 1 re f /CS1 cs 1 sc 0 0 1 1 re f",
        b"/CS3 cs 0.5 scn 0 0 1 1 re f /CS5 cs 0 1 scn f /CS4 cs 1 scn f",
        b"/Pattern cs /P0 scn 0 0 1 1 re f /CS6 cs 1 0 0 /P1 scn f /Pattern cs /P2 scn f",
        b"/Sh0 sh /Sh1 sh /Sh2 sh",
        b"/Im0 Do /Im1 Do /Im2 Do 1 0 0 rg /Im3 Do /Im4 Do /Im5 Do /Fm0 Do /Fm1 Do",
        b"BT /T3 12 Tf (ab) Tj 3 Tr (a) Tj /F1 9 Tf 0 0 1 rg 0 Tr [(x) 5 (y)] TJ ET",
        b"BI /W 2 /H 1 /BPC 8 /CS /RGB ID \x01\x01\x01\x02\x02\x02 EI BI /W 1 /H 1 /IM true ID \x80 EI",
        b"BI /W 2 /H 1 /BPC 8 /CS /RGB /F /AHx ID 010101ff0000> EI /CS2 cs 50 0 0 sc f /CS7 cs .2 .2 .2 sc f",
    ]


def _insert_word(rng: random.Random, buf: bytearray, i: int, corpus: list[bytes]) -> None:
    buf[i:i] = b" " + rng.choice(WORDS) + b" "


mutate = _harness.mutator(
    _harness.flip_bit, _insert_word, _harness.insert_random(8), _harness.delete(8), _harness.truncate,
    _harness.splice_tail, _harness.copy_within(16),
)


def _words(rng: random.Random) -> bytes:
    return b" ".join(rng.choice(WORDS) for _ in range(rng.randint(0, 30)))


def run_random(iterations: int, seed: int | None = None) -> int:
    # inputs that reach colour or doubt (or an error) breed more
    return _harness.run_random(_check, seed_corpus(), mutate, iterations, seed, random_input=_words,
                               breeds=lambda answer: answer is not False, show=repr)


def main(argv: list[str]) -> None:
    _harness.fuzz_main(argv, TestOneInput, run_random, "fuzz_pdl_pdfcolor")


if __name__ == "__main__":
    main(sys.argv)
