"""PCL XL scanner and conversions: the pure module and its compiled twin, side by side.

Streams are built by the small PCL XL writer below (both binary byte orders, the ASCII
binding); Ghostscript's pxlmono/pxlcolor files are checked when gs is installed.
"""
from __future__ import annotations

import importlib
import io
import os
import shutil
import struct
import subprocess

import pytest

from spoolproxy.pdl import pclxl as pure
from spoolproxy.pdl.model import (
    ONE_SIDED, TWO_SIDED_LONG, TWO_SIDED_SHORT, ConversionError, DamagedDocument, PageRun,
)

UEL = b"\x1b%-12345X"


def _flag(name: str) -> bool:
    return os.environ.get(name, "") not in ("", "0")


def _compiled():
    try:
        return importlib.import_module("spoolproxy._ext.pclxl")
    except ModuleNotFoundError as e:
        if _flag("SPOOLPROXY_REQUIRE_EXT"):
            pytest.fail(f"SPOOLPROXY_REQUIRE_EXT=1 but the extension is not built: {e}")
        return None


@pytest.fixture(params=["python", "cython"])
def px(request):
    if request.param == "python":
        return pure
    mod = _compiled()
    if mod is None:
        pytest.skip("spoolproxy._ext.pclxl is not built")
    return mod


# -- a small PCL XL writer -------------------------------------------------------------------


class W:
    """Writes PCL XL tokens in one binding (")" little-endian, "(" big-endian)."""

    def __init__(self, binding: bytes = b")", long_data: bool = False) -> None:
        self.big = binding == b"("
        self.e = ">" if self.big else "<"
        self.long_data = long_data
        self.b = bytearray(binding + b" HP-PCL XL;2;1;test\n")

    def ub(self, v):
        self.b += bytes((0xC0, v)); return self

    def u16(self, v):
        self.b += b"\xc1" + struct.pack(self.e + "H", v); return self

    def u32(self, v):
        self.b += b"\xc2" + struct.pack(self.e + "I", v); return self

    def r32(self, v):
        self.b += b"\xc5" + struct.pack(self.e + "f", v); return self

    def uba(self, data: bytes):
        n = len(data)
        cnt = bytes((0xC0, n)) if n < 256 else b"\xc1" + struct.pack(self.e + "H", n)
        self.b += b"\xc8" + cnt + data; return self

    def r32a(self, *vals):
        self.b += b"\xcd\xc0" + bytes((len(vals),)) + struct.pack(self.e + "f" * len(vals), *vals); return self

    def u16xy(self, x, y):
        self.b += b"\xd1" + struct.pack(self.e + "HH", x, y); return self

    def r32xy(self, x, y):
        self.b += b"\xd5" + struct.pack(self.e + "ff", x, y); return self

    def a(self, aid):
        self.b += bytes((0xF8, aid)); return self

    def op(self, code):
        self.b += bytes((code,)); return self

    def data(self, payload: bytes):
        if len(payload) < 256 and not self.long_data:
            self.b += bytes((0xFB, len(payload))) + payload
        else:
            self.b += b"\xfa" + struct.pack(self.e + "I", len(payload)) + payload
        return self

    # operators with their usual attributes
    def begin_session(self):
        return self.u16xy(600, 600).a(0x89).ub(0).a(0x86).op(0x41)

    def begin_page(self, media=2, copies=None, simplex=True, duplex=None, custom=None, name=None):
        if custom is not None:
            self.r32xy(*custom[:2]).a(47).ub(custom[2]).a(48)
        elif name is not None:
            self.uba(name).a(37)
        elif media is not None:
            self.ub(media).a(37)
        self.ub(0).a(40)
        if duplex is not None:
            self.ub(duplex).a(53)
        elif simplex:
            self.ub(0).a(52)
        if copies is not None:
            self.u16(copies).a(49)
        return self.op(0x43)

    def end_page(self, copies=None):
        if copies is not None:
            self.u16(copies).a(49)
        return self.op(0x44)

    def color_space(self, cs, palette: bytes | None = None):
        self.ub(cs).a(3)
        if palette is not None:
            self.ub(2).a(2).uba(palette).a(6)
        return self.op(0x6A)

    def brush_rgb(self, r, g, b):
        return self.uba(bytes((r, g, b))).a(11).op(0x63)

    def brush_gray(self, g):
        return self.ub(g).a(9).op(0x63)

    def pen_rgb(self, r, g, b):
        return self.uba(bytes((r, g, b))).a(11).op(0x79)

    def null_pen(self):
        return self.ub(0).a(5).op(0x79)

    def rect(self):
        return self.b_box().op(0xA0)

    def b_box(self):
        self.b += b"\xe1" + struct.pack(self.e + "HHHH", 10, 10, 100, 100)
        self.a(0x42)
        return self

    def image(self, width, rows, payload, mode=0, mapping=0, depth=2, pad=None):
        self.ub(mapping).a(100).ub(depth).a(98).u16(width).a(108).u16(len(rows) if rows else 1).a(107)
        self.u16xy(width, 1).a(103).op(0xB0)
        self.u16(0).a(109).u16(len(rows) if rows else 1).a(99).ub(mode).a(101)
        if pad is not None:
            self.ub(pad).a(110)
        self.op(0xB1).data(payload)
        return self.op(0xB2)

    def end(self, uel=True):
        self.op(0x42)
        if uel:
            self.b += UEL
        return bytes(self.b)


def page(w: W, body=lambda w: w, **kw) -> W:
    w.begin_page(**{k: v for k, v in kw.items() if k != "end_copies"})
    body(w)
    return w.end_page(kw.get("end_copies"))


def scan(px, data: bytes, **kw):
    return px.scan(io.BytesIO(data), 0, **kw)


def colors(runs) -> list:
    return [r.color for r in runs for _ in range(r.count)]


def rle(data: bytes) -> bytes:
    return pure._packbits(data)


# -- headers, tokens, ends -------------------------------------------------------------------


@pytest.mark.parametrize("binding", [b")", b"("])
@pytest.mark.parametrize("long_data", [False, True])
def test_binary_bindings_and_both_data_forms(px, binding, long_data):
    w = W(binding, long_data).begin_session()
    for _ in range(3):
        page(w, lambda w: w.color_space(2).brush_rgb(200, 0, 0).rect().op(0x61).ub(1).a(0x4D).op(0x9B).data(b"\x01" * 40).op(0x60))
    data = w.end()
    runs, end = scan(px, data + b"@PJL EOJ\n")
    assert end == len(data)
    assert runs == (PageRun(3, True, ONE_SIDED, (21000, 29700), 1),)


def test_ascii_binding_counts_pages(px):
    text = (b"' HP-PCL XL;2;0\n// a comment BeginPage\nubyte_xy 600 600 UnitsPerMeasure BeginSession\n"
            b"ubyte eA4Paper MediaSize uint16 2 PageCopies ubyte eDuplexVerticalBinding DuplexPageMode BeginPage\n"
            b"EndPage ubyte eLetterPaper MediaSize BeginPage uint16 3 PageCopies EndPage EndSession\n")
    runs, end = scan(px, text + UEL + b"rest")
    assert end == len(text) + len(UEL)
    assert runs == (PageRun(1, None, TWO_SIDED_LONG, (21000, 29700), 2),
                    PageRun(1, None, ONE_SIDED, (21590, 27940), 3))


def test_section_at_offset_and_end_of_file(px):
    w = W().begin_session()
    page(w)
    data = w.end(uel=False)
    prefix = UEL + b"@PJL ENTER LANGUAGE=PCLXL\n"
    runs, end = px.scan(io.BytesIO(prefix + data), len(prefix))
    assert end == len(prefix) + len(data) and sum(r.count for r in runs) == 1


@pytest.mark.parametrize("bad", [b"", b"   ", b"%!PS\n", b") HP-PCL XL", b") PCL\n"])
def test_no_header(px, bad):
    with pytest.raises(DamagedDocument):
        scan(px, bad)


def test_illegal_tag_and_bad_esc(px):
    base = W().begin_session()
    with pytest.raises(DamagedDocument):
        scan(px, bytes(base.b) + b"\xff")
    with pytest.raises(DamagedDocument):
        scan(px, bytes(base.b) + b"\x1b%-12346X")
    with pytest.raises(DamagedDocument):
        scan(px, bytes(base.b) + b"\xc8\xc5\x01")


def test_truncated_page_not_counted(px):
    w = W().begin_session()
    page(w)
    w.begin_page().color_space(2).brush_rgb(255, 0, 0).rect()
    data = bytes(w.b) + b"\xfa\xff\xff\x00\x00abc"
    runs, end = scan(px, data)
    assert end == len(data) and sum(r.count for r in runs) == 1


# -- page attributes -------------------------------------------------------------------------


def test_page_copies_endpage_beginpage_default(px):
    w = W().begin_session()
    page(w, end_copies=3)
    page(w, copies=2)
    page(w, copies=2, end_copies=5)
    page(w)
    runs, _ = scan(px, w.end(), copies=4)
    assert [r.copies for r in runs for _ in range(r.count)] == [3, 2, 5, 4]


def test_duplex_and_media(px):
    w = W().begin_session()
    page(w, duplex=1)
    page(w, duplex=0, media=0)
    page(w, simplex=False, media=96)
    page(w, custom=(8.5, 11.0, 0))
    page(w, custom=(100.0, 150.0, 1), media=None)
    page(w, name=b"a5\x00")
    runs, _ = scan(px, w.end(), sides=TWO_SIDED_SHORT, media=(1, 2))
    pages = [(r.sides, r.media) for r in runs for _ in range(r.count)]
    assert pages == [(TWO_SIDED_LONG, (21000, 29700)), (TWO_SIDED_SHORT, (21590, 27940)),
                     (TWO_SIDED_SHORT, (1, 2)), (ONE_SIDED, (21590, 27940)),
                     (ONE_SIDED, (10000, 15000)), (ONE_SIDED, (14800, 21000))]


# -- colour ----------------------------------------------------------------------------------


def test_vector_colour(px):
    w = W().begin_session()
    page(w, lambda w: w.color_space(2).brush_rgb(90, 90, 91).rect())           # neutral
    page(w, lambda w: w.color_space(2).brush_rgb(255, 0, 0))                   # set, not painted
    page(w, lambda w: w.color_space(2).brush_rgb(255, 0, 0).rect())            # colour
    page(w, lambda w: w.color_space(1).brush_gray(128).rect())                 # gray
    page(w, lambda w: w.color_space(2).op(0x61).brush_rgb(0, 0, 255).op(0x60).rect())  # PopGS restores
    page(w, lambda w: w.color_space(2).pen_rgb(0, 200, 0).rect())              # pen
    page(w, lambda w: w.color_space(2).pen_rgb(0, 200, 0).null_pen().rect())
    page(w, lambda w: w.color_space(2).r32a(0.2, 0.2, 0.2).a(11).op(0x63).rect())
    page(w, lambda w: w.color_space(2).r32a(0.9, 0.1, 0.2).a(11).op(0x63).rect())
    page(w, lambda w: w.color_space(2, bytes((0, 0, 0, 255, 0, 0))).ub(0).a(9).op(0x63).rect())  # index 0
    page(w, lambda w: w.color_space(2, bytes((0, 0, 0, 255, 0, 0))).ub(1).a(9).op(0x63).rect())  # index 1
    runs, _ = scan(px, w.end())
    assert colors(runs) == [False, False, True, False, False, True, False, False, True, False, True]


def _rows(width, pixels):
    return [bytes(p for px_ in row for p in px_) for row in pixels]


@pytest.mark.parametrize("mode", [0, 1, 3])
def test_rgb_image_pixels(px, mode):
    gray_rows = [bytes((10, 10, 10, 200, 200, 201)), bytes((0, 0, 0, 255, 255, 255))]
    color_rows = [bytes((10, 10, 10, 200, 200, 201)), bytes((0, 0, 0, 255, 0, 0))]

    def encode(rows):
        if mode == 0:
            return b"".join(r + b"\x00\x00" for r in rows)  # 6 bytes padded to 8
        if mode == 1:
            return rle(b"".join(r + b"\x00\x00" for r in rows))
        out, seed = b"", bytes(6)
        for r in rows:
            out += pure._delta_row(r, seed)
            seed = r
        return out

    w = W().begin_session()
    page(w, lambda w: w.color_space(2).image(2, gray_rows, encode(gray_rows), mode))
    page(w, lambda w: w.color_space(2).image(2, color_rows, encode(color_rows), mode))
    page(w, lambda w: w.color_space(1).image(2, color_rows, encode(color_rows), mode))  # gray space
    runs, _ = scan(px, w.end())
    assert colors(runs) == [False, True, False]


def test_indexed_and_jpeg_images(px):
    pal = bytes((0, 0, 0, 255, 255, 255, 255, 0, 0, 9, 9, 9))
    w = W().begin_session()
    page(w, lambda w: w.color_space(2, pal).image(4, [b"\x00\x01\x03\x00"], b"\x00\x01\x03\x00", 0, 1))
    page(w, lambda w: w.color_space(2, pal).image(4, [b"\x00\x02\x03\x00"], b"\x00\x02\x03\x00", 0, 1))
    page(w, lambda w: w.color_space(2).image(4, [b""], b"\xff\xd8 not decoded", 2))
    page(w, lambda w: w.color_space(1).image(4, [b""], b"\xff\xd8 not decoded", 2))
    runs, _ = scan(px, w.end())
    assert colors(runs) == [False, True, True, False]


def test_rast_pattern_colour(px):
    def pattern(w, rgb, pid):
        w.color_space(2).ub(0).a(100).ub(2).a(98).u16(1).a(108).u16(1).a(107).u16xy(1, 1).a(103)
        w.u16(pid).a(105).ub(0).a(104).op(0xB3)
        w.u16(0).a(109).u16(1).a(99).ub(0).a(101).op(0xB4).data(bytes(rgb) + b"\x00")
        w.op(0xB5)

    w = W().begin_session()
    page(w, lambda w: (pattern(w, (1, 2, 200), 7), pattern(w, (5, 5, 5), 8), w.u16(8).a(8).op(0x63).rect()))
    page(w, lambda w: (w.u16(7).a(8).op(0x63).rect()))
    runs, _ = scan(px, w.end())
    assert colors(runs) == [False, True]


# -- conversions -----------------------------------------------------------------------------


def _mixed() -> bytes:
    w = W().begin_session()
    gray_rows = [bytes((10, 20, 30, 200, 200, 201))]
    page(w, lambda w: w.color_space(2).brush_rgb(255, 0, 0).rect().image(2, gray_rows, rle(gray_rows[0] + b"\0\0"), 1))
    page(w, lambda w: w.color_space(2, bytes((0, 0, 0, 255, 0, 0))).ub(1).a(9).op(0x63).rect(), duplex=0)
    page(w, lambda w: w.color_space(2).r32a(0.9, 0.1, 0.2).a(11).op(0x63).rect()
         .image(2, gray_rows, pure._delta_row(gray_rows[0], bytes(6)), 3)
         .image(2, gray_rows, gray_rows[0] + b"\0\0", 0), copies=2)
    return w.end() + b"trailing"


@pytest.mark.parametrize("sides", [ONE_SIDED, TWO_SIDED_LONG, TWO_SIDED_SHORT])
def test_to_duplex(px, sides):
    src = _mixed()
    out = io.BytesIO()
    px.to_duplex(io.BytesIO(src), out, sides)
    runs, end = scan(px, out.getvalue())
    before, _ = scan(px, src)
    assert [r.sides for r in runs for _ in range(r.count)] == [sides] * 3
    assert colors(runs) == colors(before) and out.getvalue().endswith(b"trailing")


def test_to_duplex_is_identity_when_already_so(px):
    w = W().begin_session()
    page(w, duplex=1)
    src = w.end()
    out = io.BytesIO()
    px.to_duplex(io.BytesIO(src), out, TWO_SIDED_LONG)
    assert out.getvalue() == src


def test_to_grayscale(px):
    src = _mixed()
    assert colors(scan(px, src)[0]) == [True, True, True]
    out = io.BytesIO()
    px.to_grayscale(io.BytesIO(src), out)
    runs, _ = scan(px, out.getvalue())
    assert colors(runs) == [False, False, False]
    assert [r.copies for r in runs for _ in range(r.count)] == [1, 1, 2]
    assert out.getvalue().endswith(UEL + b"trailing")


def test_to_grayscale_refuses_jpeg_and_ascii(px):
    w = W().begin_session()
    page(w, lambda w: w.color_space(2).image(4, [b""], b"\xff\xd8", 2))
    with pytest.raises(ConversionError):
        px.to_grayscale(io.BytesIO(w.end()), io.BytesIO())
    with pytest.raises(ConversionError):
        px.to_grayscale(io.BytesIO(b"' HP-PCL XL;2;0\nBeginPage EndPage\n"), io.BytesIO())


# -- Ghostscript-made documents --------------------------------------------------------------

PS = b"""%!PS
/Helvetica findfont 20 scalefont setfont
/p { 72 720 moveto show showpage } def
1 0 0 setrgbcolor 72 600 144 72 rectfill (colour) p
0.5 setgray 72 600 144 72 rectfill (gray) p
gsave 72 300 translate 100 100 scale 2 2 8 [2 0 0 -2 0 2] {<ff0000 00ff00 0000ff ffff00>} false 3 colorimage grestore (image) p
gsave 72 300 translate 100 100 scale 2 2 8 [2 0 0 -2 0 2] {<00 40 80 c0>} image grestore (gray image) p
"""


@pytest.fixture(scope="module")
def gs_files(tmp_path_factory):
    from tests.peers import require
    gs = require("gs")
    d = tmp_path_factory.mktemp("pclxl")
    (d / "in.ps").write_bytes(PS)
    files = {}
    for dev in ("pxlmono", "pxlcolor"):
        subprocess.run([gs, "-q", "-dSAFER", "-dNOPAUSE", "-dBATCH", f"-sDEVICE={dev}", "-r150",
                        "-o", str(d / f"{dev}.pxl"), str(d / "in.ps")], check=True, timeout=120)
        files[dev] = (d / f"{dev}.pxl").read_bytes()
    return files


def _section(data: bytes) -> int:
    return data.index(b"HP-PCL XL") - 2


@pytest.mark.parametrize("dev,expect", [("pxlmono", [False] * 4), ("pxlcolor", [True, False, True, False])])
def test_ghostscript_files(px, gs_files, dev, expect):
    data = gs_files[dev]
    runs, end = px.scan(io.BytesIO(data), _section(data))
    assert colors(runs) == expect and end == len(data)
    out = io.BytesIO()
    px.to_grayscale(io.BytesIO(data), out, _section(data))
    runs, _ = px.scan(io.BytesIO(out.getvalue()), 0)
    assert colors(runs) == [False] * 4


def test_twins_agree_on_ghostscript_files(gs_files):
    comp = _compiled()
    if comp is None:
        pytest.skip("not built")
    for data in gs_files.values():
        f = io.BytesIO(data)
        assert pure.scan(f, _section(data)) == comp.scan(f, _section(data))


# fuzz find: ReadImage, then EndImage before the image's data block (the held
# ReadImage must not be used after its image is gone)
READIMAGE_WITHOUT_DATA = bytes.fromhex(
    "292048502d50434c20584c3b323b313b746573740ad158025802f889c000f88641c002f825c000f828c000f83443c002f8036ac8c003ff0000f80b63e10a000a0064006400f842a0c000f864c002f862c10200f86cc10100f86bd102000100f867b0c10000f86dc10100f863c001f865b1fb0a020a141effc800c9ff00b244c002f825c000f828c000f83543c002f803c002f802c8c006200000ff0000f8066ac001f8ff63e10a000a0064006400f842a044c002f825c000f828c000f834c10200f83143c002f8036acdc0036666663fcdcccc3dcdcc4c3ef80b63e10a000a0064006400f842a0c000f864c002f862c10200f86cc10100f86bd102000100f867b0c10000f86dc10100f83db60d63c003f865b162b279fb090700a00a141ec8c8c9b2c000f864c002f862c10200f86cc10100f86bd102000100f867b0c10000f86dc10100f863c000f865b1fb080a141ec8c8c90000b244421b252d313233343558747261696c696e67")


def test_to_grayscale_readimage_without_data_is_an_engine_error(px):
    with pytest.raises(ConversionError):
        px.to_grayscale(io.BytesIO(READIMAGE_WITHOUT_DATA), io.BytesIO())
