"""PDF page colour from the content scan: the pure module and its compiled twin.

Every test runs on both implementations (the compiled one is skipped when it is not
built, except under SPOOLPROXY_REQUIRE_EXT=1). Most tests hand the scanner content
streams and resources built here with small stand-ins for the PDF reader's objects
(Doc.resolve, Stream.dict/.filters/.decoded, Ref); the last ones read PDFs made by
Ghostscript with the real reader and compare with Ghostscript's inkcov.
"""
from __future__ import annotations

import importlib
import os
import struct
import subprocess
import zlib
from typing import NamedTuple

import pytest

import peers
from spoolproxy.pdl import pdfcolor as pure
from spoolproxy.pdl.model import PdlError, UnsupportedFormat


def _flag(name: str) -> bool:
    return os.environ.get(name, "") not in ("", "0")


def _compiled():
    try:
        return importlib.import_module("spoolproxy._ext.pdfcolor")
    except ModuleNotFoundError as e:
        if _flag("SPOOLPROXY_REQUIRE_EXT"):
            pytest.fail(f"SPOOLPROXY_REQUIRE_EXT=1 but the extension is not built: {e}")
        return None


@pytest.fixture(params=["python", "cython"])
def pc(request):
    if request.param == "python":
        return pure
    mod = _compiled()
    if mod is None:
        pytest.skip("spoolproxy._ext.pdfcolor is not built (pip install -e . builds it)")
    return mod


# -- stand-ins for spoolproxy.pdl.pdf ------------------------------------------------------------


class Ref(NamedTuple):
    num: int
    gen: int = 0


class Stream:
    """A stream: data stored as given, decoded by its filters (Flate, or an image
    filter the reader does not decode, which raises like the real one)."""

    def __init__(self, d: dict | None = None, data: bytes = b"", filters: list[str] | None = None):
        self.dict = dict(d or {})
        self.data = data
        self.filters = list(filters or [])

    def decoded(self, limit=None) -> bytes:
        data = self.data
        for f in self.filters:
            if f == "FlateDecode":
                data = zlib.decompress(data)
            else:
                raise UnsupportedFormat(f"/{f} is not decoded here")
        return data if limit is None else data[:limit]


class Doc:
    def __init__(self, objects: dict[int, object] | None = None):
        self.objects = dict(objects or {})

    def resolve(self, obj):
        hops = 0
        while isinstance(obj, Ref) and hops < 32:
            obj = self.objects.get(obj.num)
            hops += 1
        return obj


def page(content: bytes | list, resources: dict | None = None, **extra) -> dict:
    if isinstance(content, list):
        contents = [Stream(data=c) for c in content]
    else:
        contents = Stream(data=content)
    return {"Type": "Page", "Resources": resources if resources is not None else {}, "Contents": contents, **extra}


def color(pc, content, resources=None, doc=None, **extra):
    return pc.page_color(doc or Doc(), page(content, resources, **extra))


def image(data: bytes, w: int, h: int, cs, bpc: int = 8, filters=None, **extra) -> Stream:
    d = {"Type": "XObject", "Subtype": "Image", "Width": w, "Height": h, "BitsPerComponent": bpc, **extra}
    if cs is not None:
        d["ColorSpace"] = cs
    if filters:
        d["Filter"] = filters[0] if len(filters) == 1 else filters
    return Stream(d, data, filters)


def form(content: bytes, resources: dict | None = None, **extra) -> Stream:
    d = {"Type": "XObject", "Subtype": "Form", "BBox": [0, 0, 10, 10], **extra}
    if resources is not None:
        d["Resources"] = resources
    return Stream(d, content)


def exp_fn(c0, c1, n=1):
    return {"FunctionType": 2, "Domain": [0, 1], "C0": list(c0), "C1": list(c1), "N": n}


def sampled_fn(samples: list[list[int]], nout: int, size: int | None = None):
    """A 1-input type 0 function with 8-bit samples."""
    data = bytes(v for row in samples for v in row)
    return Stream({"FunctionType": 0, "Domain": [0, 1], "Range": [0, 1] * nout,
                   "Size": [size or len(samples)], "BitsPerSample": 8}, data)


PAINT = b" 0 0 10 10 re f"

# -- operators -----------------------------------------------------------------------------------


@pytest.mark.parametrize("content, expected", [
    (b"", False),
    (b"0 0 1 rg" + PAINT, True),
    (b"0.5 0.5 0.5 rg" + PAINT, False),
    (b"0.5 0.5 0.502 rg" + PAINT, False),           # within one 8-bit step
    (b"0.5 0.5 0.51 rg" + PAINT, True),
    (b"0.3 g" + PAINT, False),
    (b"0 0 0 0.7 k" + PAINT, False),
    (b"0.2 0 0 0 k" + PAINT, True),
    (b"0.3 0.3 0.3 0 k" + PAINT, True),              # rich gray uses C, M and Y ink
    (b"1 0 0 rg", False),                            # set, never painted
    (b"1 0 0 rg 0 0 10 10 re n", False),             # path ended without painting
    (b"1 0 0 RG" + PAINT, False),                     # stroke colour, fill painted
    (b"1 0 0 RG 0 0 10 10 re S", True),
    (b"1 0 0 RG 0 0 10 10 re s", True),
    (b"1 0 0 RG 0 0 10 10 re b*", True),
    (b"1 0 0 rg 0 0 10 10 re B", True),
    (b"1 0 0 rg 0 0 10 10 re f*", True),
    (b"1 0 0 rg 0 0 10 10 re F", True),
    (b"0 1 0 0 K 0 0 m 5 5 l S", True),
    (b"0 0 0 1 K 0 0 m 5 5 l S", False),
])
def test_operators(pc, content, expected):
    assert color(pc, content) is expected


@pytest.mark.parametrize("content, expected", [
    (b"1 0 0 rg BT /F1 12 Tf (x) Tj ET", True),
    (b"1 0 0 rg BT [(x) 5 (y)] TJ ET", True),
    (b"1 0 0 rg BT (x) ' ET", True),
    (b"1 0 0 rg BT 1 2 (x) \" ET", True),
    (b"1 0 0 rg BT 3 Tr (x) Tj ET", False),          # invisible
    (b"1 0 0 rg BT 7 Tr (x) Tj ET", False),          # clip only
    (b"1 0 0 rg BT 1 Tr (x) Tj ET", False),          # stroke only: stroke colour is black
    (b"1 0 0 RG BT 1 Tr (x) Tj ET", True),
    (b"1 0 0 RG BT 0 Tr (x) Tj ET", False),
    (b"1 0 0 RG BT 2 Tr (x) Tj ET", True),
    (b"1 0 0 rg BT 4 Tr (x) Tj ET", True),
    (b"1 0 0 rg BT 3 Tr (x) Tj 0 Tr (y) Tj ET", True),
    (b"1 0 0 rg BT ET", False),
])
def test_text(pc, content, expected):
    assert color(pc, content) is expected


@pytest.mark.parametrize("content, expected", [
    (b"q 1 0 0 rg Q" + PAINT, False),
    (b"1 0 0 rg q 0 g Q" + PAINT, True),
    (b"q q 1 0 0 rg Q" + PAINT + b" Q", False),
    (b"q 1 0 0 rg q Q" + PAINT + b" Q", True),
    (b"Q Q 1 0 0 rg" + PAINT, True),                 # unbalanced Q is ignored
    (b"q BT 3 Tr ET Q 1 0 0 rg BT (x) Tj ET", True),  # render mode restored by Q
    (b"BT 3 Tr ET q Q 1 0 0 rg BT (x) Tj ET", False),  # ... but not by ET
])
def test_graphics_state_stack(pc, content, expected):
    assert color(pc, content) is expected


def test_contents_array_is_one_stream(pc):
    assert color(pc, [b"1 0", b"0 rg 0 0 10 10 re", b"f"]) is True
    assert color(pc, [b"1 0 0 rg", b"0 g" + PAINT]) is False


def test_garbage_content_is_not_colour(pc):
    assert color(pc, b"\x00\xff)]>> 1 0 0 re rg ] [ {{ } %c\n 5 f") is False
    assert color(pc, b"1 0 0 [ rg" + PAINT) is False  # operands swallowed by the array


# -- colour spaces ---------------------------------------------------------------------------------

WP = {"WhitePoint": [0.9505, 1, 1.089]}
ICC = {n: Stream({"N": n}, b"icc") for n in (1, 3, 4)}


def cs_res(**spaces):
    return {"ColorSpace": spaces}


@pytest.mark.parametrize("space, value, expected", [
    ("/DeviceRGB", b"0 0 1", True),
    ("/DeviceRGB", b"0.2 0.2 0.2", False),
    ("/DeviceGray", b"0.4", False),
    ("/DeviceCMYK", b"0 0 0 0.5", False),
    ("/DeviceCMYK", b"0 0.5 0 0", True),
    ("/CS0", b"0.5 0.5 0.5", False),      # CalRGB
    ("/CS0", b"0.5 0.2 0.5", True),
    ("/CS1", b"0.7", False),               # CalGray
    ("/CS2", b"50 0 0", False),            # Lab
    ("/CS2", b"50 20 0", True),
    ("/CS2", b"50 0.5 -0.5", False),
    ("/CS3", b"0.3", False),               # ICC N=1
    ("/CS4", b"0.3 0.3 0.3", False),       # ICC N=3
    ("/CS4", b"0.3 0.3 0.9", True),
    ("/CS5", b"0 0 0 1", False),           # ICC N=4
    ("/CS5", b"1 0 0 0", True),
    ("/CS6", b"0.5 0.5 0.5", False),       # ICC without N: its Alternate
    ("/CS6", b"0.5 0 0.5", True),
])
def test_color_spaces(pc, space, value, expected):
    res = cs_res(CS0=["CalRGB", WP], CS1=["CalGray", WP], CS2=["Lab", WP], CS3=["ICCBased", ICC[1]],
                 CS4=["ICCBased", ICC[3]], CS5=["ICCBased", ICC[4]],
                 CS6=["ICCBased", Stream({"Alternate": "DeviceRGB"}, b"")])
    for op in (b"sc", b"scn"):
        assert color(pc, space.encode() + b" cs " + value + b" " + op + PAINT, res) is expected
    assert color(pc, space.encode() + b" CS " + value + b" SCN 0 0 m 1 1 l S", res) is expected


def test_cs_sets_the_initial_colour(pc):
    res = cs_res(L=["Lab", {**WP, "Range": [10, 20, -5, 5]}])  # a* clamps to 10: colour
    assert color(pc, b"/DeviceRGB cs" + PAINT) is False
    assert color(pc, b"/DeviceCMYK cs" + PAINT) is False
    assert color(pc, b"/L cs" + PAINT, res) is True
    assert color(pc, b"1 0 0 rg /DeviceGray cs" + PAINT) is False


def test_unknown_space_is_undecided(pc):
    assert color(pc, b"/Nope cs 1 0 0 sc" + PAINT) is None
    assert color(pc, b"/Nope cs 1 0 0 sc") is False   # never painted
    assert color(pc, b"/Nope cs 1 sc" + PAINT + b" 1 0 0 rg" + PAINT) is True  # colour wins


@pytest.mark.parametrize("palette, index, expected", [
    (b"\x00\x00\x00\x80\x80\x80\xff\xff\xff", 1, False),
    (b"\x00\x00\x00\xff\x00\x00", 1, True),
    (b"\x00\x00\x00\xff\x00\x00", 0, False),
    (b"\x00\x00\x00\xff\x00\x00", 7, True),       # clamped to hival
])
def test_indexed(pc, palette, index, expected):
    res = cs_res(I=["Indexed", "DeviceRGB", len(palette) // 3 - 1, palette],
                 J=["Indexed", "DeviceRGB", len(palette) // 3 - 1, Stream({}, palette)])
    for name in (b"/I", b"/J"):
        assert color(pc, name + b" cs %d sc" % index + PAINT, res) is expected


def test_indexed_over_named_and_cmyk_bases(pc):
    res = cs_res(B=["ICCBased", ICC[4]], I=["Indexed", "B", 1, b"\x00\x00\x00\xff\x00\x80\x00\x00"])
    assert color(pc, b"/I cs 0 sc" + PAINT, res) is False
    assert color(pc, b"/I cs 1 sc" + PAINT, res) is True


@pytest.mark.parametrize("space, tint, expected", [
    (["Separation", "Black", "DeviceCMYK", exp_fn([0, 0, 0, 0], [0, 0.5, 0, 0])], b"1", False),
    (["Separation", "None", "DeviceRGB", exp_fn([1, 1, 1], [1, 0, 0])], b"1", False),
    (["Separation", "Cyan", "DeviceCMYK", exp_fn([0, 0, 0, 0], [1, 0, 0, 0])], b"0.5", True),
    (["Separation", "Cyan", "DeviceCMYK", exp_fn([0, 0, 0, 0], [1, 0, 0, 0])], b"0", False),
    (["Separation", "Spot", "DeviceCMYK", exp_fn([0, 0, 0, 0], [0, 0, 0, 1])], b"1", False),
    (["Separation", "Spot", "DeviceCMYK", exp_fn([0, 0, 0, 0], [0, 0.8, 0.3, 0])], b"1", True),
    (["Separation", "Spot", "DeviceCMYK", exp_fn([0, 0, 0, 0], [0, 0.8, 0.3, 0])], b"0", False),
    (["Separation", "Spot", "DeviceGray", {"FunctionType": 4}], b"1", False),   # gray alternate
    (["Separation", "Spot", "DeviceRGB", {"FunctionType": 4}], b"1", None),     # calculator: not evaluated
    (["Separation", "Spot", "DeviceRGB", sampled_fn([[255, 255, 255], [0, 0, 255]], 3)], b"1", True),
    (["Separation", "Spot", "DeviceRGB", sampled_fn([[255, 255, 255], [0, 0, 255]], 3)], b"0", False),
    (["Separation", "Spot", "DeviceRGB", sampled_fn([[255, 255, 255], [9, 9, 9]], 3)], b"0.5", False),
    (["Separation", "All", "DeviceCMYK", exp_fn([0, 0, 0, 0], [1, 1, 1, 1])], b"1", True),
    (["DeviceN", ["Black", "None"], "DeviceCMYK", {"FunctionType": 4}], b"1 1", False),
    (["DeviceN", ["Cyan", "Black"], "DeviceCMYK", {"FunctionType": 4}], b"0 1", False),
    (["DeviceN", ["Cyan", "Black"], "DeviceCMYK", {"FunctionType": 4}], b"0.5 1", True),
    (["DeviceN", ["Spot", "Black"], "DeviceCMYK", {"FunctionType": 4}], b"0.5 1", None),
])
def test_separation_and_devicen(pc, space, tint, expected):
    assert color(pc, b"/S cs " + tint + b" scn" + PAINT, cs_res(S=space)) is expected


def calc_fn(program: bytes, nout: int) -> Stream:
    return Stream({"FunctionType": 4, "Domain": [0, 1], "Range": [0, 1] * nout}, program)


@pytest.mark.parametrize("program, alt, tint, expected", [
    (b"{dup 0 exch 0 0}", "DeviceCMYK", b"1", True),       # (0 t 0 0): magenta
    (b"{dup 0 exch 0 0}", "DeviceCMYK", b"0", False),
    (b"{0 0 0 4 -1 roll}", "DeviceCMYK", b"1", False),     # (0 0 0 t): black
    (b"{dup dup}", "DeviceRGB", b"0.3", False),            # (t t t): gray
    (b"{dup 0.5 gt {1 0 0} {0 0 0} ifelse}", "DeviceRGB", b"0.4", False),
    (b"{dup 0.5 gt {1 0 0} {0 0 0} ifelse}", "DeviceRGB", b"0.6", True),
    (b"{1 exch sub dup 2 exp exch sqrt 0.5}", "DeviceRGB", b"0.5", True),
    (b"{pop 1 1 1 add}", "DeviceRGB", b"1", None),         # left 2 values for 3: undecided
    (b"{0 0 div}", "DeviceRGB", b"1", None),
    (b"{{} loop}", "DeviceRGB", b"1", None),                # not a calculator operator
    (b"dup dup", "DeviceRGB", b"1", None),                  # not a block
])
def test_calculator_tint_transforms(pc, program, alt, tint, expected):
    res = cs_res(S=["Separation", "Spot", alt, calc_fn(program, 3 if alt == "DeviceRGB" else 4)])
    assert color(pc, b"/S cs " + tint + b" scn" + PAINT, res) is expected


def test_calculator_shadings_and_images(pc):
    magenta = ["Separation", "Spot", "DeviceCMYK", calc_fn(b"{dup 0 exch 0 0}", 4)]
    black = ["Separation", "Spot", "DeviceCMYK", calc_fn(b"{0 0 0 4 -1 roll}", 4)]
    assert do(pc, image(bytes([0, 0, 200]), 3, 1, magenta)) is True
    assert do(pc, image(bytes([0, 0, 0]), 3, 1, magenta)) is False
    assert do(pc, image(bytes([0, 90, 200]), 3, 1, black)) is False
    gray_ramp = axial("DeviceRGB", calc_fn(b"{dup dup}", 3))
    red_ramp = axial("DeviceRGB", calc_fn(b"{0 0}", 3))
    assert color(pc, b"/Sh sh", {"Shading": {"Sh": red_ramp}}) is True
    assert color(pc, b"/Sh sh", {"Shading": {"Sh": gray_ramp}}) is None  # samples never prove gray
    assert color(pc, b"/Sh sh", {"Shading": {"Sh": axial(magenta, exp_fn([0], [1]))}}) is True


def test_stitching_function(pc):
    fn = {"FunctionType": 3, "Domain": [0, 1], "Bounds": [0.5], "Encode": [0, 1, 0, 1],
          "Functions": [exp_fn([1, 1, 1], [0.5, 0.5, 0.5]), exp_fn([0.5, 0.5, 0.5], [0, 0, 1])]}
    res = cs_res(S=["Separation", "Spot", "DeviceRGB", fn])
    assert color(pc, b"/S cs 0.25 scn" + PAINT, res) is False
    assert color(pc, b"/S cs 0.9 scn" + PAINT, res) is True


# -- patterns and shadings ----------------------------------------------------------------------


def axial(space, fn, **extra):
    return {"ShadingType": 2, "ColorSpace": space, "Coords": [0, 0, 10, 0], "Function": fn, **extra}


@pytest.mark.parametrize("shading, expected", [
    (axial("DeviceRGB", exp_fn([0, 0, 0], [1, 1, 1])), False),
    (axial("DeviceRGB", exp_fn([0, 0, 0], [1, 0, 0])), True),
    (axial("DeviceRGB", exp_fn([0.2, 0.2, 0.2], [0.9, 0.9, 0.9], 2.2)), False),
    (axial("DeviceGray", {"FunctionType": 4}), False),
    (axial("DeviceRGB", {"FunctionType": 4}), None),
    (axial("DeviceCMYK", exp_fn([0, 0, 0, 0], [0, 0, 0, 1])), False),
    (axial("DeviceCMYK", exp_fn([0, 0, 0, 0], [0, 0, 1, 0])), True),
    (axial("DeviceRGB", sampled_fn([[0, 0, 0], [128, 128, 128], [255, 255, 255]], 3)), False),
    (axial("DeviceRGB", sampled_fn([[0, 0, 0], [128, 0, 128], [255, 255, 255]], 3)), True),
    (axial("DeviceRGB", [exp_fn([0], [1]), exp_fn([0], [1]), exp_fn([0], [1])]), None),  # corners may not occur
    (axial("DeviceRGB", [exp_fn([0.5], [0.5]), exp_fn([0.5], [0.5]), exp_fn([0.5], [0.5])]), False),
    ({"ShadingType": 4, "ColorSpace": "DeviceRGB"}, None),   # mesh without function
    ({"ShadingType": 4, "ColorSpace": "DeviceGray"}, False),
    (axial(["Separation", "Black", "DeviceCMYK", {"FunctionType": 4}], exp_fn([0], [1])), False),
])
def test_shadings(pc, shading, expected):
    assert color(pc, b"/Sh0 sh", {"Shading": {"Sh0": shading}}) is expected
    res = {"Pattern": {"P0": {"PatternType": 2, "Shading": shading}}}
    assert color(pc, b"/Pattern cs /P0 scn" + PAINT, res) is expected
    assert color(pc, b"/Pattern cs /P0 scn", res) is False  # never painted


def tiling(content: bytes, paint_type: int = 1, resources: dict | None = None) -> Stream:
    d = {"PatternType": 1, "PaintType": paint_type, "TilingType": 1, "BBox": [0, 0, 5, 5],
         "XStep": 5, "YStep": 5, "Resources": resources or {}}
    return Stream(d, content)


def test_tiling_patterns(pc):
    res = {"Pattern": {"Red": tiling(b"1 0 0 rg 0 0 2 2 re f"), "Gray": tiling(b"0.5 g 0 0 2 2 re f"),
                       "Unc": tiling(b"0 0 2 2 re f", paint_type=2)},
           "ColorSpace": {"PRGB": ["Pattern", "DeviceRGB"]}}
    assert color(pc, b"/Pattern cs /Red scn" + PAINT, res) is True
    assert color(pc, b"/Pattern cs /Gray scn" + PAINT, res) is False
    assert color(pc, b"/Pattern CS /Red SCN 0 0 m 1 1 l S", res) is True
    assert color(pc, b"/PRGB cs 1 0 0 /Unc scn" + PAINT, res) is True
    assert color(pc, b"/PRGB cs 0.4 0.4 0.4 /Unc scn" + PAINT, res) is False
    assert color(pc, b"/Pattern cs /Missing scn" + PAINT, res) is False
    assert color(pc, b"/Pattern cs /Red scn BT (x) Tj ET", res) is True


def test_pattern_that_paints_itself_terminates(pc):
    res: dict = {"Pattern": {}}
    p = tiling(b"/Pattern cs /Self scn 0 0 2 2 re f", resources=res)
    res["Pattern"]["Self"] = p
    assert color(pc, b"/Pattern cs /Self scn" + PAINT, res) is False


# -- images -----------------------------------------------------------------------------------------

GRAY_RGB = bytes([10, 10, 10, 200, 200, 200, 0, 0, 0, 255, 255, 255])
ONE_RED = bytes([10, 10, 10, 200, 200, 200, 0, 0, 0, 255, 0, 0])


def do(pc, img, content=b"q 10 0 0 10 0 0 cm /Im0 Do Q", extra_res=None):
    res = {"XObject": {"Im0": img}, **(extra_res or {})}
    return color(pc, content, res)


@pytest.mark.parametrize("img, expected", [
    (image(GRAY_RGB, 2, 2, "DeviceRGB"), False),
    (image(ONE_RED, 2, 2, "DeviceRGB"), True),
    (image(ONE_RED, 2, 1, "DeviceRGB"), False),            # the red pixel is past the height
    (image(ONE_RED[:9], 2, 2, "DeviceRGB"), False),          # data short of the red pixel
    (image(zlib.compress(ONE_RED), 2, 2, "DeviceRGB", filters=["FlateDecode"]), True),
    (image(zlib.compress(GRAY_RGB), 2, 2, "DeviceRGB", filters=["FlateDecode"]), False),
    (image(bytes([0, 0, 0, 200, 0, 0, 0, 0]), 2, 1, "DeviceCMYK"), False),
    (image(bytes([0, 0, 0, 200, 0, 1, 0, 0]), 2, 1, "DeviceCMYK"), False),  # 1/255 of M: tolerance
    (image(bytes([0, 0, 0, 200, 0, 9, 0, 0]), 2, 1, "DeviceCMYK"), True),
    (image(bytes([255, 255, 255, 0, 255, 255, 255, 255]), 2, 1, "DeviceCMYK", Decode=[1, 0] * 4), False),
    (image(bytes([255, 0, 255, 0, 255, 0, 255, 255]), 2, 1, "DeviceCMYK", Decode=[1, 0] * 4), True),
    (image(b"\x12\x34\x56", 8, 3, "DeviceGray", bpc=1), False),
    (image(b"\xff\xd8junk", 2, 2, "DeviceRGB", filters=["DCTDecode"]), None),
    (image(b"\xff\xd8junk", 2, 2, "DeviceGray", filters=["DCTDecode"]), False),
    (image(b"jbig2", 2, 2, "DeviceGray", bpc=1, filters=["JBIG2Decode"]), False),
    (image(b"jpx", 2, 2, None, filters=["JPXDecode"]), None),
    (image(bytes(12), 0, 2, "DeviceRGB"), False),            # empty image
    (image(bytes(12), 2, 2, "DeviceRGB", bpc=3), None),       # invalid depth
    (image(bytes(12), 2, 2, "NoSuchSpace"), None),
])
def test_image_xobjects(pc, img, expected):
    assert do(pc, img) is expected


def rgb16(pixels):
    return b"".join(struct.pack(">HHH", *p) for p in pixels)


@pytest.mark.parametrize("bpc, data, w, expected", [
    (16, rgb16([(1000, 1000, 1000), (65535, 65535, 65535)]), 2, False),
    (16, rgb16([(1000, 1000, 1000), (65535, 65535, 65000)]), 2, True),
    (16, rgb16([(1000, 1000, 1000), (65535, 65535, 65400)]), 2, False),  # within 1/255
    (4, bytes([0x55, 0x5F, 0xFF]), 2, False),                              # rows: 3 bytes a row
    (4, bytes([0x55, 0x5F, 0xF0]), 2, True),
    (2, bytes([0b00000011, 0b11110000]), 2, False),                        # (0,0,0) (3,3,3), pad bits
    (2, bytes([0b00000011, 0b11100000]), 2, True),
    (1, bytes([0b11100000]), 1, False),
    (1, bytes([0b10100000]), 1, True),
])
def test_image_depths(pc, bpc, data, w, expected):
    assert do(pc, image(data, w, 1, "DeviceRGB", bpc=bpc)) is expected


def test_image_row_padding(pc):
    # 3 px of 1-bit RGB = 9 bits: two bytes a row; the padding bits must not be pixels
    row_gray = bytes([0b00011100, 0b01111111])   # (000)(111)(000) + pad (1s)
    assert do(pc, image(row_gray * 2, 3, 2, "DeviceRGB", bpc=1)) is False
    row_color = bytes([0b00011100, 0b10000000])  # last pixel (001)
    assert do(pc, image(row_gray + row_color, 3, 2, "DeviceRGB", bpc=1)) is True


def test_indexed_images(pc):
    neutral = ["Indexed", "DeviceRGB", 3, bytes([0, 0, 0, 85, 85, 85, 170, 170, 170, 255, 255, 255])]
    mixed = ["Indexed", "DeviceRGB", 3, bytes([0, 0, 0, 85, 85, 85, 255, 0, 0, 255, 255, 255])]
    idx = bytes([0b00011011])              # 2-bit samples 0 1 2 3
    no_two = bytes([0b00010011])           # 0 1 0 3
    assert do(pc, image(idx, 4, 1, neutral, bpc=2)) is False
    assert do(pc, image(idx, 4, 1, mixed, bpc=2)) is True
    assert do(pc, image(no_two, 4, 1, mixed, bpc=2)) is False   # the red entry is never used
    # a Decode array reverses the indices: 0 1 0 3 -> 3 2 3 0
    assert do(pc, image(no_two, 4, 1, mixed, bpc=2, Decode=[3, 0])) is True
    # palette shorter than hival: missing entries are black
    short = ["Indexed", "DeviceRGB", 3, bytes([0, 0, 0, 9, 9, 9])]
    assert do(pc, image(idx, 4, 1, short, bpc=2)) is False


def test_separation_images(pc):
    spot = ["Separation", "Spot", "DeviceCMYK", exp_fn([0, 0, 0, 0], [0, 1, 0, 0])]
    black = ["Separation", "Black", "DeviceCMYK", {"FunctionType": 4}]
    assert do(pc, image(bytes([0, 0, 0]), 3, 1, spot)) is False
    assert do(pc, image(bytes([0, 80, 0]), 3, 1, spot)) is True
    assert do(pc, image(bytes([0, 80, 0]), 3, 1, black)) is False
    assert do(pc, image(bytes([0, 80, 0]), 3, 1, ["Separation", "X", "DeviceRGB", {"FunctionType": 4}])) is None


def test_lab_images(pc):
    lab = ["Lab", {**WP, "Range": [-128, 127, -128, 127]}]
    assert do(pc, image(bytes([50, 128, 128, 90, 128, 128]), 2, 1, lab)) is False
    assert do(pc, image(bytes([50, 128, 128, 90, 200, 128]), 2, 1, lab)) is True


def test_image_masks_paint_the_fill_colour(pc):
    mask = image(b"\x80", 1, 1, None, bpc=1, ImageMask=True)
    assert do(pc, mask) is False
    assert do(pc, mask, b"1 0 0 rg /Im0 Do") is True
    assert do(pc, mask, b"1 0 0 RG /Im0 Do") is False
    dct_mask = image(b"x", 1, 1, None, bpc=1, ImageMask=True, filters=["CCITTFaxDecode"])
    assert do(pc, dct_mask, b"0 0 1 rg /Im0 Do") is True


def test_image_soft_mask_does_not_count(pc):
    smask = image(bytes([0, 255]), 2, 1, "DeviceGray")
    img = image(GRAY_RGB[:6], 2, 1, "DeviceRGB", SMask=smask)
    assert do(pc, img) is False


def test_named_colour_space_for_image(pc):
    res = {"ColorSpace": {"CS0": ["ICCBased", ICC[3]]}}
    assert do(pc, image(ONE_RED, 2, 2, "CS0"), extra_res=res) is True
    assert do(pc, image(GRAY_RGB, 2, 2, "CS0"), extra_res=res) is False


# -- inline images ----------------------------------------------------------------------------------


@pytest.mark.parametrize("content, expected", [
    (b"BI /W 2 /H 2 /BPC 8 /CS /RGB ID " + GRAY_RGB + b" EI", False),
    (b"BI /W 2 /H 2 /BPC 8 /CS /RGB ID " + ONE_RED + b" EI", True),
    (b"BI /W 2 /H 2 /BPC 8 /CS /DeviceRGB ID " + ONE_RED + b"\nEI Q", True),
    (b"BI /W 2 /H 2 /BPC 8 /CS /G ID " + ONE_RED + b" EI", False),
    (b"BI /W 4 /H 1 /BPC 8 /CS /CMYK ID " + bytes([0, 0, 0, 9] * 4) + b" EI", False),
    (b"BI /W 1 /H 1 /BPC 8 /CS /CMYK ID " + bytes([0, 0, 99, 9]) + b" EI", True),
    (b"BI /W 2 /H 2 /BPC 8 /CS /RGB /F /AHx ID " + ONE_RED.hex().encode() + b"> EI", True),
    (b"BI /W 2 /H 2 /BPC 8 /CS /RGB /F /AHx ID " + GRAY_RGB.hex().encode() + b"> EI", False),
    (b"BI /W 2 /H 2 /BPC 8 /CS /RGB /F /Fl ID " + zlib.compress(ONE_RED) + b" EI", True),
    (b"BI /W 2 /H 2 /BPC 8 /CS /RGB /F [/Fl] ID " + zlib.compress(GRAY_RGB) + b" EI", False),
    (b"BI /W 2 /H 2 /BPC 8 /CS /RGB /F /DCT ID \xff\xd8xx EI", None),
    (b"BI /W 2 /H 2 /BPC 8 /CS /G /F /DCT ID \xff\xd8xx EI", False),
    (b"BI /W 4 /H 1 /BPC 2 /CS [/I /RGB 3 <000000 555555 ff0000 ffffff>] ID \x1b EI", True),
    (b"BI /W 4 /H 1 /BPC 2 /CS [/I /RGB 3 <000000 555555 ff0000 ffffff>] ID \x13 EI", False),
    (b"BI /W 1 /H 1 /BPC 1 /IM true ID \x80 EI", False),
    (b"1 0 0 rg BI /W 1 /H 1 /IM true ID \x80 EI", True),
    (b"1 0 0 rg BI /W 1 /H 1 /BPC 1 /ImageMask true ID \x80 EI", True),
])
def test_inline_images(pc, content, expected):
    assert color(pc, content) is expected


def test_inline_image_data_holding_ei_is_skipped(pc):
    # unfiltered samples of known size: " EI " inside the data does not end it
    data = b" EI " + bytes([7, 7, 7, 7, 7, 7, 7, 7])
    assert len(data) == 12
    content = b"BI /W 12 /H 1 /BPC 8 /CS /G ID " + data + b" EI 1 0 0 rg" + PAINT
    assert color(pc, content) is True
    content = b"BI /W 12 /H 1 /BPC 8 /CS /G ID " + data + b" EI" + PAINT
    assert color(pc, content) is False
    # RGB samples after such data are checked as samples, not as operators
    content = b"BI /W 4 /H 1 /BPC 8 /CS /RGB ID " + data + b" EI" + PAINT
    assert color(pc, content) is True
    # PDF 2.0 /L gives the length: " EI " inside filtered data does not end it either
    content = b"BI /W 1 /H 1 /BPC 8 /CS /G /F /AHx /L 8 ID  EI  EI> EI 1 0 0 rg" + PAINT
    assert color(pc, content) is True
    content = b"BI /W 1 /H 1 /BPC 8 /CS /RGB /F /AHx /L 7 ID ff0000> EI" + PAINT
    assert color(pc, content) is True  # the samples are red


def test_inline_image_named_colour_space(pc):
    res = cs_res(CS0=["Indexed", "DeviceRGB", 1, b"\x00\x00\x00\x00\x00\xff"])
    assert color(pc, b"BI /W 8 /H 1 /BPC 1 /CS /CS0 ID \x00 EI", res) is False
    assert color(pc, b"BI /W 8 /H 1 /BPC 1 /CS /CS0 ID \x01 EI", res) is True


# -- forms, type 3 fonts, annotations --------------------------------------------------------------


def test_forms(pc):
    red = form(b"1 0 0 rg 0 0 5 5 re f")
    plain = form(b"0 0 5 5 re f")                      # paints with the inherited fill colour
    assert do(pc, red, b"/Im0 Do") is True
    assert do(pc, plain, b"/Im0 Do") is False
    assert do(pc, plain, b"0 0 1 rg /Im0 Do") is True
    assert do(pc, red, b"1 0 0 rg") is False            # not drawn
    colour_then_gray = form(b"1 0 0 rg")                # the form's colour does not leak out
    assert do(pc, colour_then_gray, b"/Im0 Do" + PAINT) is False


def test_form_resources_and_inheritance(pc):
    inner = form(b"/CS0 cs 1 0 0 sc 0 0 5 5 re f", {"ColorSpace": {"CS0": "DeviceRGB"}})
    outer_res = {"ColorSpace": {"CS0": "DeviceGray"}}
    assert do(pc, inner, b"/Im0 Do", extra_res=outer_res) is True
    no_res = form(b"/CS0 cs 1 0 0 sc 0 0 5 5 re f")      # uses the page's resources
    assert do(pc, no_res, b"/Im0 Do", extra_res=outer_res) is False


def test_nested_forms_and_cycles(pc):
    res: dict = {"XObject": {}}
    a = form(b"/B Do", res)
    b = form(b"/A Do 0 g 0 0 1 1 re f", res)
    res["XObject"].update(A=a, B=b)
    assert color(pc, b"/A Do", res) is False
    c = form(b"/C Do 1 0 0 rg 0 0 1 1 re f", res)     # colour after its own (ignored) reuse
    res["XObject"]["C"] = c
    assert color(pc, b"/C Do", res) is True


def test_forms_too_deep_are_undecided(pc):
    res: dict = {"XObject": {}}
    for i in range(pure.MAX_DEPTH + 5):
        res["XObject"][f"F{i}"] = form(b"/F%d Do 0.5 g 0 0 1 1 re f" % (i + 1), {"XObject": res["XObject"]})
    assert color(pc, b"/F0 Do", res) is None


def test_forms_by_reference(pc):
    doc = Doc({10: form(b"0 0 1 rg 0 0 5 5 re f"), 11: {"Im0": Ref(10)}})
    assert pc.page_color(doc, page(b"/Im0 Do", {"XObject": Ref(11)})) is True


def test_transparency_group_content_decides(pc):
    gray = form(b"0.5 g 0 0 5 5 re f", Group={"S": "Transparency", "CS": "DeviceRGB"})
    red = form(b"1 0 0 rg 0 0 5 5 re f", Group={"S": "Transparency", "CS": "DeviceGray"})
    assert do(pc, gray, b"/Im0 Do") is False
    assert do(pc, red, b"/Im0 Do") is True


def test_type3_fonts(pc):
    font = {"Type": "Font", "Subtype": "Type3", "FontMatrix": [0.001, 0, 0, 0.001, 0, 0],
            "CharProcs": {"a": Stream({}, b"500 0 d0 1 0 0 rg 0 0 500 500 re f")},
            "Encoding": {"Differences": [97, "a"]}}
    uncoloured = {**font, "CharProcs": {"a": Stream({}, b"500 0 0 0 500 500 d1 0 0 500 500 re f")}}
    res = {"Font": {"T3": font, "U3": uncoloured}}
    assert color(pc, b"BT /T3 12 Tf (a) Tj ET", res) is True
    assert color(pc, b"BT /T3 12 Tf 3 Tr (a) Tj ET", res) is False
    assert color(pc, b"BT /U3 12 Tf (a) Tj ET", res) is False
    assert color(pc, b"0 0 1 rg BT /U3 12 Tf (a) Tj ET", res) is True
    # colour operators in a d1 glyph are ignored: the text's colour paints it
    sneaky = {**font, "CharProcs": {"a": Stream({}, b"500 0 0 0 500 500 d1 1 0 0 rg 0 0 500 500 re f")}}
    res["Font"]["S3"] = sneaky
    assert color(pc, b"BT /S3 12 Tf (a) Tj ET", res) is False
    assert color(pc, b"0 1 0 rg BT /S3 12 Tf (a) Tj ET", res) is True


def annot(content: bytes, flags: int | None = 4, **extra) -> dict:
    d = {"Type": "Annot", "Subtype": "Stamp", "Rect": [0, 0, 10, 10],
         "AP": {"N": form(content)}, **extra}
    if flags is not None:
        d["F"] = flags
    return d


def test_annotations(pc):
    red = b"1 0 0 rg 0 0 5 5 re f"
    assert color(pc, b"", Annots=[annot(red)]) is True
    assert color(pc, b"", Annots=[annot(red, flags=0)]) is False        # not printed
    assert color(pc, b"", Annots=[annot(red, flags=None)]) is False     # no flags: not printed
    assert color(pc, b"", Annots=[annot(red, flags=4 | 2)]) is False    # hidden
    assert color(pc, b"", Annots=[annot(b"0 g 0 0 5 5 re f")]) is False
    states = {"Type": "Annot", "Subtype": "Widget", "F": 4, "AS": "On",
              "AP": {"N": {"On": form(red), "Off": form(b"")}}}
    assert color(pc, b"", Annots=[states]) is True
    assert color(pc, b"", Annots=[{**states, "AS": "Off"}]) is False
    assert color(pc, b"", Annots=[{"Subtype": "Link", "F": 4}, 5, None]) is False


# -- the edges ------------------------------------------------------------------------------------------


def test_page_without_contents(pc):
    assert pc.page_color(Doc(), {"Type": "Page"}) is False
    assert pc.page_color(Doc(), {"Type": "Page", "Contents": None, "Resources": None}) is False


def test_wrong_types_in_the_document(pc):
    odd = {"XObject": {"Im0": 5, "Im1": {"Subtype": "Image"}}, "ColorSpace": 7, "Pattern": [1],
           "Font": {"F": 3}}
    for content in (b"/Im0 Do /Im1 Do", b"/CS0 cs 1 sc" + PAINT, b"/Pattern cs /P scn" + PAINT,
                    b"BT /F 1 Tf (x) Tj ET"):
        assert color(pc, content, odd) in (False, None)
    img = image(ONE_RED, "2", 2, "DeviceRGB")
    assert do(pc, img) is False


def test_page_with_a_dict_attribute(pc):
    class P:
        def __init__(self, d):
            self.dict = d
    assert pc.page_color(Doc(), P(page(b"1 0 0 rg" + PAINT))) is True
    with pytest.raises(TypeError):
        pc.page_color(Doc(), 5)


def test_reader_errors_are_undecided_for_images(pc):
    class Broken(Stream):
        def decoded(self, limit=None):
            raise PdlError("broken")
    img = Broken({"Subtype": "Image", "Width": 1, "Height": 1, "ColorSpace": "DeviceRGB",
                  "BitsPerComponent": 8}, b"")
    assert do(pc, img) is None


# -- the kernels ---------------------------------------------------------------------------------------


def test_parse_ops_values(pc):
    ops, end = pc.parse_ops(b"/N#41me (a\\(b\\)\\101\\\nc) <41 4> [1 -2.5 .5 +3. true null] "
                            b"<< /K /V /L [1] >> op % comment\nBI /W 1 ID x EI Q")
    assert end == len(b"/N#41me (a\\(b\\)\\101\\\nc) <41 4> [1 -2.5 .5 +3. true null] "
                      b"<< /K /V /L [1] >> op % comment\nBI /W 1 ID x EI Q")
    assert ops == [("op", ["NAme", b"a(b)Ac", b"A@", [1, -2.5, 0.5, 3.0, True, None], {"K": "V", "L": [1]}]),
                   ("BI", [{"W": 1}, b"x"]), ("Q", [])]
    assert [type(x) for x in ops[0][1][3]] == [int, float, float, float, bool, type(None)]


def test_parse_ops_in_batches(pc):
    data = b"1 0 0 rg 0 0 1 1 re f BI /W 1 /H 1 /CS /G /BPC 8 ID \x00 EI q Q"
    whole, _ = pc.parse_ops(data)
    pos, parts = 0, []
    while pos < len(data):
        ops, pos = pc.parse_ops(data, pos, 1)
        assert len(ops) <= 1
        parts += ops
    assert parts == whole


def test_image_has_color_kernel(pc):
    assert pc.image_has_color(ONE_RED, 2, 2, 3, 8, pc.TEST_RGB, ([0, 1] * 3, pc.TOLERANCE)) is True
    assert pc.image_has_color(GRAY_RGB, 2, 2, 3, 8, pc.TEST_RGB, ([0, 1] * 3, pc.TOLERANCE)) is False
    assert pc.image_has_color(bytes([0, 1, 2, 3]), 4, 1, 1, 8, pc.TEST_TABLE, bytes(256)) is False
    table = bytearray(256)
    table[3] = 1
    assert pc.image_has_color(bytes([0, 1, 2, 3]), 4, 1, 1, 8, pc.TEST_TABLE, bytes(table)) is True
    assert pc.image_has_color(bytes([0, 1, 2, 3]), 3, 1, 1, 8, pc.TEST_TABLE, bytes(table)) is False
    with pytest.raises(ValueError):
        pc.image_has_color(b"\x00", 1, 1, 1, 8, pc.TEST_TABLE, b"\x00")
    with pytest.raises(TypeError):
        pc.image_has_color("text", 1, 1, 3, 8, pc.TEST_RGB, ([0, 1] * 3, 0.0))


# -- against Ghostscript ------------------------------------------------------------------------------

GS_PAGES = [  # (PostScript for one page, colour?)
    ("1 0 0 setrgbcolor 0 0 300 300 rectfill", True),
    ("0.5 0.5 0.5 setrgbcolor 0 0 300 300 rectfill", False),
    ("0.5 setgray 0 0 300 300 rectfill", False),
    ("0 0 0 0.6 setcmykcolor 0 0 300 300 rectfill", False),
    ("0 0.6 0 0 setcmykcolor 0 0 300 300 rectfill", True),
    ("/Helvetica findfont 90 scalefont setfont 0 0 1 setrgbcolor 20 20 moveto (BLUE) show", True),
    ("/Helvetica findfont 30 scalefont setfont 0.2 0.2 0.2 setrgbcolor 20 20 moveto (Gray) show", False),
    ("gsave 100 100 scale 2 2 8 [2 0 0 2 0 0] <808080 404040 202020 C0C0C0> false 3 colorimage grestore", False),
    ("gsave 100 100 scale 2 2 8 [2 0 0 2 0 0] <808080 404040 202020 C0C000> false 3 colorimage grestore", True),
    ("gsave 100 100 scale 16 16 8 [16 0 0 16 0 0] {<" + "7f" * 256 + ">} image grestore", False),
    ("<< /ShadingType 2 /ColorSpace /DeviceRGB /Coords [0 0 300 0] /Function << /FunctionType 2 "
     "/Domain [0 1] /C0 [0 0 0] /C1 [1 1 1] /N 1 >> >> shfill", False),
    ("<< /ShadingType 2 /ColorSpace /DeviceRGB /Coords [0 0 300 0] /Function << /FunctionType 2 "
     "/Domain [0 1] /C0 [1 1 0] /C1 [1 1 1] /N 1 >> >> shfill", True),
    ("[/Indexed /DeviceRGB 1 <000000 FF0000>] setcolorspace 1 setcolor 0 0 50 50 rectfill", True),
    ("[/Separation /Spot /DeviceCMYK {dup 0 exch 0 0}] setcolorspace 1 setcolor 0 0 50 50 rectfill", True),
    ("", False),
]


@pytest.fixture(scope="module")
def gs_pdf(tmp_path_factory):
    gs = peers.require("gs")
    d = tmp_path_factory.mktemp("pdfcolor")
    ps = "%!PS\n" + "".join(f"{body}\nshowpage\n" for body, _ in GS_PAGES)
    (d / "doc.ps").write_text(ps)
    out = d / "doc.pdf"
    subprocess.run([gs, "-q", "-dSAFER", "-dBATCH", "-dNOPAUSE", "-sDEVICE=pdfwrite",
                    f"-sOutputFile={out}", str(d / "doc.ps")], check=True, capture_output=True, timeout=120)
    return out


def _reader():
    try:
        from spoolproxy.pdl import pdf
    except ImportError as e:  # the reader is written alongside this module
        pytest.skip(f"spoolproxy.pdl.pdf is not importable: {e}")
    return pdf


def test_ghostscript_documents_agree_with_inkcov(pc, gs_pdf):
    from spoolproxy.pdl import ghostscript
    pdf = _reader()
    with open(gs_pdf, "rb") as f:
        doc = pdf.Document(f)
        ours = [pc.page_color(doc, p) for p in doc.pages()]
    theirs = [ghostscript.is_color(c) for c in ghostscript.inkcov(gs_pdf)]
    assert theirs == [c for _, c in GS_PAGES]
    assert ours == theirs


@pytest.mark.parametrize("colour", [True, False])
def test_peers_test_documents(pc, tmp_path, colour):
    from spoolproxy.pdl import ghostscript
    pdf = _reader()
    path = peers.make_pdf(tmp_path / "d.pdf", pages=3, color=colour)
    with open(path, "rb") as f:
        doc = pdf.Document(f)
        ours = [pc.page_color(doc, p) for p in doc.pages()]
    theirs = [ghostscript.is_color(c) for c in ghostscript.inkcov(path)]
    assert ours == theirs == [colour] * 3


def test_ghostscript_gray_conversion_scans_gray(pc, gs_pdf, tmp_path):
    from spoolproxy.pdl import ghostscript
    pdf = _reader()
    gray = tmp_path / "gray.pdf"
    ghostscript.pdf_to_gray(gs_pdf, gray)
    with open(gray, "rb") as f:
        doc = pdf.Document(f)
        ours = [pc.page_color(doc, p) for p in doc.pages()]
    assert ours == [False] * len(GS_PAGES)


def test_ghostscript_photo_images(pc, tmp_path):
    """pdfwrite stores a large continuous-tone image as DCT: a colour one is left to
    Ghostscript (None), a gray one is decided; where we decide, inkcov agrees."""
    from spoolproxy.pdl import ghostscript
    gs = peers.require("gs")
    pdf = _reader()
    ramp = "".join(f"{x:02x}{(x * 3) % 256:02x}{255 - x:02x}" for x in range(256))
    gray_ramp = "".join(f"{x:02x}" for x in range(256))
    ps = ("%!PS\n"
          f"gsave 200 200 scale 256 64 8 [256 0 0 64 0 0] {{<{ramp}>}} false 3 colorimage grestore showpage\n"
          f"gsave 200 200 scale 256 64 8 [256 0 0 64 0 0] {{<{gray_ramp}>}} image grestore showpage\n")
    (tmp_path / "photo.ps").write_text(ps)
    out = tmp_path / "photo.pdf"
    subprocess.run([gs, "-q", "-dSAFER", "-dBATCH", "-dNOPAUSE", "-sDEVICE=pdfwrite", f"-sOutputFile={out}",
                    str(tmp_path / "photo.ps")], check=True, capture_output=True, timeout=120)
    with open(out, "rb") as f:
        doc = pdf.Document(f)
        ours = [pc.page_color(doc, p) for p in doc.pages()]
    theirs = [ghostscript.is_color(c) for c in ghostscript.inkcov(out)]
    assert theirs == [True, False]
    assert ours[1] is False
    assert ours[0] in (True, None)


# hand-written PDFs, read by the real reader: every page judged like inkcov judges it

_SHARED = {  # object number -> body; pages' resources refer to these
    50: b"<< /Type /XObject /Subtype /Form /BBox [0 0 300 300] /Length 24 >>\nstream\n1 0 0 rg 0 0 200 200 re f\nendstream",
    51: b"<< /Type /XObject /Subtype /Form /BBox [0 0 300 300] /Length 15 >>\nstream\n0 0 200 200 re f\nendstream",
    52: (b"<< /Type /XObject /Subtype /Image /Width 2 /Height 2 /ColorSpace /DeviceRGB /BitsPerComponent 8 "
         b"/Length 12 >>\nstream\n" + bytes([40, 40, 40, 90, 90, 90, 0, 0, 0, 250, 250, 250]) + b"\nendstream"),
    53: (b"<< /Type /XObject /Subtype /Image /Width 2 /Height 2 /ColorSpace /DeviceRGB /BitsPerComponent 8 "
         b"/Length 12 >>\nstream\n" + bytes([40, 40, 40, 90, 90, 90, 0, 0, 0, 250, 20, 20]) + b"\nendstream"),
    54: (b"<< /Type /XObject /Subtype /Image /Width 4 /Height 1 /BitsPerComponent 2 "
         b"/ColorSpace [/Indexed /DeviceRGB 3 <000000 555555 FF0000 FFFFFF>] /Length 1 >>\nstream\n\x13\nendstream"),
    55: (b"<< /Type /XObject /Subtype /Image /Width 4 /Height 1 /BitsPerComponent 2 "
         b"/ColorSpace [/Indexed /DeviceRGB 3 <000000 555555 FF0000 FFFFFF>] /Length 1 >>\nstream\n\x1b\nendstream"),
    56: b"<< /FunctionType 2 /Domain [0 1] /C0 [0 0 0 0] /C1 [0 0 0 1] /N 1 >>",
    57: b"<< /FunctionType 2 /Domain [0 1] /C0 [0 0 0 0] /C1 [0 0.9 0.4 0] /N 1 >>",
    58: (b"<< /FunctionType 4 /Domain [0 1] /Range [0 1 0 1 0 1 0 1] /Length 16 >>\nstream\n"
         b"{0 exch 0 exch 0}\nendstream"),
}

_RES = ("<< /XObject << /Red 50 0 R /Plain 51 0 R /GrayImg 52 0 R /RedImg 53 0 R /IdxGray 54 0 R /IdxRed 55 0 R >> "
        "/ColorSpace << /SepK [/Separation /Spot /DeviceCMYK 56 0 R] /SepM [/Separation /Spot /DeviceCMYK 57 0 R] "
        "/SepC [/Separation /Spot /DeviceCMYK 58 0 R] /CalR [/CalRGB << /WhitePoint [0.9505 1 1.089] >>] "
        "/Idx [/Indexed /DeviceRGB 1 <808080 00FF00>] >> "
        "/Shading << /Ax << /ShadingType 2 /ColorSpace /DeviceRGB /Coords [0 0 300 0] /Function 59 0 R >> "
        "/AxC << /ShadingType 2 /ColorSpace /DeviceRGB /Coords [0 0 300 0] /Function 60 0 R >> >> "
        "/Font << /F1 << /Type /Font /Subtype /Type1 /BaseFont /Helvetica >> >> >>")
_SHARED[59] = b"<< /FunctionType 2 /Domain [0 1] /C0 [0 0 0] /C1 [1 1 1] /N 1 >>"
_SHARED[60] = b"<< /FunctionType 2 /Domain [0 1] /C0 [0 0 0] /C1 [0 1 1] /N 1 >>"

HAND_PAGES = [
    b"/Red Do",
    b"/Plain Do",
    b"0 0 1 rg /Plain Do",
    b"q 20 0 0 20 0 0 cm /GrayImg Do Q",
    b"q 100 0 0 100 0 0 cm /RedImg Do Q",
    b"q 100 0 0 100 0 0 cm /IdxGray Do Q",
    b"q 100 0 0 100 0 0 cm /IdxRed Do Q",
    b"/SepK cs 1 scn 0 0 200 200 re f",
    b"/SepM cs 1 scn 0 0 200 200 re f",
    b"/SepC cs 1 scn 0 0 200 200 re f",
    b"/SepC cs 0 scn 0 0 200 200 re f",
    b"/CalR cs 0.4 0.4 0.4 sc 0 0 200 200 re f",
    b"/Idx cs 0 sc 0 0 200 200 re f",
    b"/Idx cs 1 sc 0 0 200 200 re f",
    b"/Ax sh",
    b"/AxC sh",
    b"1 0 0 rg BT /F1 60 Tf 3 Tr 10 10 Td (INVISIBLE) Tj ET",
    b"1 0 0 rg BT /F1 60 Tf 0 Tr 10 10 Td (VISIBLE) Tj ET",
    b"q 100 0 0 100 0 0 cm BI /W 2 /H 1 /BPC 8 /CS /RGB ID \x50\x50\x50\x10\x10\x10 EI Q",
    b"q 100 0 0 100 0 0 cm BI /W 2 /H 1 /BPC 8 /CS /RGB ID \x50\x50\x50\x10\xf0\x10 EI Q",
    b"q 1 0 0 rg Q 0 0 200 200 re f",
    b"1 0 0 RG 20 w 10 10 m 200 200 l S",
]
HAND_COLOR = [True, False, True, False, True, False, True, False, True, True, False, False, False, True,
              False, True, False, True, False, True, False, True]


def _hand_pdf() -> bytes:
    objs = dict(_SHARED)
    kids = []
    for i, content in enumerate(HAND_PAGES):
        pn, cn = 100 + 2 * i, 101 + 2 * i
        kids.append(f"{pn} 0 R")
        objs[pn] = (f"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 300 300] /Resources {_RES} "
                    f"/Contents {cn} 0 R >>").encode()
        objs[cn] = b"<< /Length %d >>\nstream\n" % len(content) + content + b"\nendstream"
    objs[1] = b"<< /Type /Catalog /Pages 2 0 R >>"
    objs[2] = f"<< /Type /Pages /Kids [{' '.join(kids)}] /Count {len(kids)} >>".encode()
    out = bytearray(b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n")
    offsets = {}
    for k in sorted(objs):
        offsets[k] = len(out)
        out += b"%d 0 obj\n" % k + objs[k] + b"\nendobj\n"
    xref, size = len(out), max(objs) + 1
    out += b"xref\n0 %d\n" % size
    for k in range(size):
        out += b"%010d 00000 n \n" % offsets[k] if k in offsets else b"0000000000 65535 f \n"
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (size, xref)
    return bytes(out)


def test_hand_written_pdf_agrees_with_inkcov(pc, tmp_path):
    from spoolproxy.pdl import ghostscript
    peers.require("gs")
    pdf = _reader()
    path = tmp_path / "hand.pdf"
    path.write_bytes(_hand_pdf())
    with open(path, "rb") as f:
        doc = pdf.Document(f)
        ours = [pc.page_color(doc, p) for p in doc.pages()]
    theirs = [ghostscript.is_color(c) for c in ghostscript.inkcov(path)]
    assert theirs == HAND_COLOR
    assert ours == HAND_COLOR
