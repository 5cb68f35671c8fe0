"""PWG Raster and Apple raster (URF): the pure module and its compiled twin, side by side.

Every test runs on both implementations (the compiled one is skipped when it is not
built, a failure under SPOOLPROXY_REQUIRE_EXT=1). Documents are built here with a small
writer of our own, and by Ghostscript (skipped without gs unless
SPOOLPROXY_REQUIRE_INTEROP=1). Converted pixels are compared with a reference
conversion computed here from the source pixels, decoded by a decoder of our own.
"""
from __future__ import annotations

import importlib
import io
import os
import random
import re
import subprocess

import pytest

from spoolproxy.pdl import raster as pure
from spoolproxy.pdl.model import (
    ONE_SIDED, TWO_SIDED_LONG, TWO_SIDED_SHORT, ConversionError, DamagedDocument, PageRun, PdlError,
    UnsupportedFormat, points_to_pwg,
)
from tests import peers


def _flag(name: str) -> bool:
    return os.environ.get(name, "") not in ("", "0")


def _compiled():
    try:
        return importlib.import_module("spoolproxy._ext.raster")
    except ModuleNotFoundError as e:
        if _flag("SPOOLPROXY_REQUIRE_EXT"):
            pytest.fail(f"SPOOLPROXY_REQUIRE_EXT=1 but the extension is not built: {e}")
        return None


@pytest.fixture(params=["python", "cython"])
def raster(request):
    if request.param == "python":
        return pure
    mod = _compiled()
    if mod is None:
        pytest.skip("spoolproxy._ext.raster is not built (pip install -e . builds it)")
    return mod


# -- a writer and a decoder of our own ------------------------------------------------------------

SRGB, RGB, ADOBE, BLACK, SGRAY, CMYK, W = 19, 1, 20, 3, 18, 6, 0
A4 = (595, 842)


def encode_line(line: bytes, unit: int) -> bytes:
    """PackBits over whole units: repeats of 2..128 equal units, literals of up to 128,
    a lone unit as a repeat of one."""
    units = [line[i:i + unit] for i in range(0, len(line), unit)]
    out, i = bytearray(), 0
    while i < len(units):
        j = i + 1
        while j < len(units) and j - i < 128 and units[j] == units[i]:
            j += 1
        if j - i >= 2 or j == len(units):
            out += bytes([j - i - 1]) + units[i]
            i = j
            continue
        j = i + 1
        while j < len(units) and j - i < 128 and not (j + 1 < len(units) and units[j] == units[j + 1]):
            j += 1
        if j - i == 1:
            out += b"\x00" + units[i]
        else:
            out += bytes([257 - (j - i)]) + b"".join(units[i:j])
        i = j
    return bytes(out)


def encode_lines(lines: list[bytes], unit: int) -> bytes:
    out, i = bytearray(), 0
    while i < len(lines):
        j = i + 1
        while j < len(lines) and j - i < 256 and lines[j] == lines[i]:
            j += 1
        out += bytes([j - i - 1]) + encode_line(lines[i], unit)
        i = j
    return bytes(out)


def pwg_header(width, height, cspace=SRGB, bpc=8, bpp=None, *, duplex=0, tumble=0, copies=1,
               page_size=A4, order=0, bpl=None, res=100, numcolors=None) -> bytes:
    channels = {SRGB: 3, RGB: 3, ADOBE: 3, CMYK: 4}.get(cspace, 1)
    if bpp is None:
        bpp = bpc * channels if bpc >= 8 else (4 if channels > 1 else bpc)
    if bpl is None:
        bpl = (width * bpp + 7) // 8
    h = bytearray(1796)
    h[0:9] = b"PwgRaster"
    fields = {272: duplex, 276: res, 280: res, 340: copies, 352: page_size[0], 356: page_size[1],
              368: tumble, 372: width, 376: height, 384: bpc, 388: bpp, 392: bpl, 396: order,
              400: cspace, 420: numcolors or channels, 452: 0}
    for off, v in fields.items():
        h[off:off + 4] = v.to_bytes(4, "big")
    return bytes(h)


def urf_header(width, height, bpp=24, cspace=1, duplex=1, dpi=100, quality=4) -> bytes:
    return (bytes([bpp, cspace, duplex, quality]) + bytes(8)
            + b"".join(v.to_bytes(4, "big") for v in (width, height, dpi)) + bytes(8))


def unit_of(bpp: int) -> int:
    return max(1, bpp // 8)


def pwg_doc(*pages: tuple[bytes, list[bytes]]) -> bytes:
    out = bytearray(b"RaS2")
    for header, lines in pages:
        out += header + encode_lines(lines, unit_of(int.from_bytes(header[388:392], "big")))
    return bytes(out)


def urf_doc(*pages: tuple[bytes, list[bytes]], count=None) -> bytes:
    out = bytearray(b"UNIRAST\x00" + (len(pages) if count is None else count).to_bytes(4, "big"))
    for header, lines in pages:
        out += header + encode_lines(lines, unit_of(header[0]))
    return bytes(out)


def decode(data: bytes) -> list[tuple[dict, list[bytes]]]:
    """Reference decoder: every page's header fields and its pixel lines."""
    pages = []
    if data.startswith(b"RaS2"):
        pos, fmt = 4, "pwg"
    else:
        assert data.startswith(b"UNIRAST\x00")
        pos, fmt = 12, "urf"
    while pos < len(data):
        if fmt == "pwg":
            h = data[pos:pos + 1796]
            pos += 1796
            u = lambda o: int.from_bytes(h[o:o + 4], "big")  # noqa: E731
            info = dict(width=u(372), height=u(376), bpc=u(384), bpp=u(388), bpl=u(392), cspace=u(400),
                        numcolors=u(420), duplex=u(272), tumble=u(368), raw=h)
            white = 0xFF if info["cspace"] in (0, 1, 18, 19, 20) else 0
        else:
            h = data[pos:pos + 32]
            pos += 32
            info = dict(bpp=h[0], cspace=h[1], duplex=h[2], width=int.from_bytes(h[12:16], "big"),
                        height=int.from_bytes(h[16:20], "big"), raw=h)
            info["bpl"] = (info["width"] * info["bpp"] + 7) // 8
            white = 0 if info["cspace"] in (2, 6) else 0xFF
        unit, bpl = unit_of(info["bpp"]), info["bpl"]
        lines: list[bytes] = []
        while len(lines) < info["height"]:
            rep = data[pos] + 1
            pos += 1
            line = bytearray()
            while len(line) < bpl:
                code = data[pos]
                pos += 1
                if code == 128:
                    line += bytes([white]) * (bpl - len(line))
                elif code > 128:
                    n = (257 - code) * unit
                    line += data[pos:pos + n]
                    pos += n
                else:
                    line += data[pos:pos + unit] * (code + 1)
                    pos += unit
            assert len(line) == bpl
            lines.extend([bytes(line)] * rep)
        pages.append((info, lines[:info["height"]]))
    return pages


def luma(r, g, b):
    return (299 * r + 587 * g + 114 * b + 500) // 1000


def reference_gray(info: dict, lines: list[bytes]) -> list[bytes]:
    """The expected sGray lines for an RGB page (8, 16 or packed 1-bit)."""
    bpp, width = info["bpp"], info["width"]
    out = []
    for line in lines:
        if bpp == 24:
            out.append(bytes(luma(*line[i:i + 3]) for i in range(0, len(line), 3)))
        elif bpp == 48:
            v = [int.from_bytes(line[i:i + 2], "big") for i in range(0, len(line), 2)]
            out.append(b"".join(luma(*v[i:i + 3]).to_bytes(2, "big") for i in range(0, len(v), 3)))
        else:
            assert bpp == 4
            px = []
            for x in range(width):
                nib = (line[x // 2] >> (4 if x % 2 == 0 else 0)) & 15
                px.append(luma(255 * (nib >> 2 & 1), 255 * (nib >> 1 & 1), 255 * (nib & 1)))
            out.append(bytes(px))
    return out


def scan(raster, data: bytes, start=0, **kw):
    return raster.scan(io.BytesIO(data), start, **kw)


def colors(runs) -> list:
    return [r.color for r in runs for _ in range(r.count)]


def gray_lines(width, height, value=0xFF):
    return [bytes([value]) * width] * height


def rgb_lines(width, height, pixel=(255, 255, 255)):
    return [bytes(pixel) * width for _ in range(height)]


def with_pixel(lines, x, y, pixel):
    lines = list(lines)
    line = bytearray(lines[y])
    line[x * len(pixel):(x + 1) * len(pixel)] = bytes(pixel)
    lines[y] = bytes(line)
    return lines


def text_like(width, height, seed=1, colour=None, bpp=24):
    """Lines of mixed runs and literals (neutral unless ``colour`` is given)."""
    rng = random.Random(seed)
    unit = bpp // 8
    lines = []
    for y in range(height):
        line = bytearray()
        while len(line) < width * unit:
            v = rng.choice([0, 255, rng.randrange(256)])
            n = rng.choice([1, 1, 2, 5, 40])
            line += bytes([v] * unit) * n
        line = line[:width * unit]
        lines.append(bytes(line))
        if y % 3 == 0 and y + 1 < height:
            lines.append(bytes(line))
    lines = lines[:height]
    if colour is not None:
        lines = with_pixel(lines, width // 2, height // 2, colour)
    return lines


# -- writer round trip ---------------------------------------------------------------------------


def test_writer_round_trip():
    lines = text_like(300, 50, colour=(1, 2, 200))
    doc = pwg_doc((pwg_header(300, 50), lines))
    [(info, got)] = decode(doc)
    assert got == lines and info["width"] == 300


# -- colour --------------------------------------------------------------------------------------


def test_one_coloured_pixel(raster):
    lines = rgb_lines(200, 100)
    for x, y in ((0, 0), (199, 99), (57, 31)):
        doc = pwg_doc((pwg_header(200, 100), with_pixel(lines, x, y, (250, 255, 255))))
        runs, end = scan(raster, doc)
        assert colors(runs) == [True] and end == len(doc)
    doc = pwg_doc((pwg_header(200, 100), lines))
    assert colors(scan(raster, doc)[0]) == [False]


@pytest.mark.parametrize("pixel, expected", [
    ((0, 0, 0), False), ((128, 128, 128), False), ((100, 101, 102), False),  # within tolerance 2
    ((100, 103, 100), True), ((0, 0, 3), True), ((255, 252, 255), True),
])
def test_neutral_tolerance(raster, pixel, expected):
    assert pure.COLOR_TOLERANCE == 2
    lines = with_pixel(text_like(64, 20), 10, 10, pixel)
    for cspace in (SRGB, RGB, ADOBE):
        doc = pwg_doc((pwg_header(64, 20, cspace), lines))
        assert colors(scan(raster, doc)[0]) == [expected]
    urf = urf_doc((urf_header(64, 20, 24, 1), lines))
    assert colors(scan(raster, urf)[0]) == [expected]


def test_neutral_pages_text_like(raster):
    pages = [(pwg_header(500, 40), text_like(500, 40, seed=s)) for s in range(3)]
    assert colors(scan(raster, pwg_doc(*pages))[0]) == [False] * 3


def test_sixteen_bit_rgb(raster):
    white = [b"\xff" * 6 * 30] * 10
    doc = pwg_doc((pwg_header(30, 10, SRGB, 16), with_pixel(white, 3, 3, (0x12, 0x00, 0x14, 0x02, 0x12, 0x00))))
    assert colors(scan(raster, doc)[0]) == [False]  # spread 514 <= 2 * 257
    doc = pwg_doc((pwg_header(30, 10, SRGB, 16), with_pixel(white, 3, 3, (0x12, 0x00, 0x14, 0x03, 0x12, 0x00))))
    assert colors(scan(raster, doc)[0]) == [True]


def test_gray_spaces_are_never_colour(raster):
    noise = [bytes(random.Random(y).randrange(256) for _ in range(40)) for y in range(10)]
    for cspace in (BLACK, SGRAY, W):
        doc = pwg_doc((pwg_header(40, 10, cspace, 8), noise))
        assert colors(scan(raster, doc)[0]) == [False]
    doc = pwg_doc((pwg_header(320, 10, BLACK, 1), noise))  # 1-bit black, 40 bytes a line
    assert colors(scan(raster, doc)[0]) == [False]
    for cspace in (0, 4):
        assert colors(scan(raster, urf_doc((urf_header(40, 10, 8, cspace), noise)))[0]) == [False]


def test_cmyk(raster):
    k_only = [bytes([0, 0, 0, 200]) * 20] * 5
    doc = pwg_doc((pwg_header(20, 5, CMYK, 8), k_only))
    assert colors(scan(raster, doc)[0]) == [False]
    for pixel, expected in (((2, 2, 2, 0), False), ((3, 0, 0, 0), True), ((0, 0, 9, 255), True)):
        doc = pwg_doc((pwg_header(20, 5, CMYK, 8), with_pixel(k_only, 19, 4, pixel)))
        assert colors(scan(raster, doc)[0]) == [expected]
    doc = urf_doc((urf_header(20, 5, 32, 6), with_pixel(k_only, 0, 0, (0, 50, 0, 0))))
    assert colors(scan(raster, doc)[0]) == [True]


def test_packed_one_bit(raster):
    # 1-bit RGB: a nibble 0RGB per pixel; 0x7 white, 0x0 black, 0x4 red
    white = [b"\x77" * 5] * 4
    doc = pwg_doc((pwg_header(10, 4, SRGB, 1), white))
    assert colors(scan(raster, doc)[0]) == [False]
    doc = pwg_doc((pwg_header(10, 4, SRGB, 1), with_pixel(white, 2, 1, b"\x74")))
    assert colors(scan(raster, doc)[0]) == [True]
    # odd width: the last byte's low nibble is padding and is not looked at
    doc = pwg_doc((pwg_header(9, 4, SRGB, 1), with_pixel(white, 4, 1, b"\x74")))
    assert colors(scan(raster, doc)[0]) == [False]
    doc = pwg_doc((pwg_header(9, 4, SRGB, 1), [b"\x74" * 5] * 4))  # repeat run: the other low nibbles count
    assert colors(scan(raster, doc)[0]) == [True]
    doc = pwg_doc((pwg_header(9, 4, SRGB, 1), with_pixel(white, 4, 1, b"\x47")))
    assert colors(scan(raster, doc)[0]) == [True]
    # 1-bit CMYK: a nibble CMYK; 0x1 black, 0x6 red
    assert colors(scan(raster, pwg_doc((pwg_header(10, 4, CMYK, 1), [b"\x11" * 5] * 4)))[0]) == [False]
    assert colors(scan(raster, pwg_doc((pwg_header(10, 4, CMYK, 1), [b"\x16" * 5] * 4)))[0]) == [True]


def test_undecidable_spaces(raster):
    doc = pwg_doc((pwg_header(10, 2, 50, 8, 24), [b"\x01" * 30] * 2))  # Device3
    assert colors(scan(raster, doc)[0]) == [None]
    doc = urf_doc((urf_header(10, 2, 24, 2), [b"\x80" * 30] * 2))     # CIELab
    assert colors(scan(raster, doc)[0]) == [None]


def test_fill_code_128(raster):
    # a line made of one coloured pixel and "white to the end"
    body = b"\x00" + b"\x00" + bytes((200, 0, 0)) + b"\x80"
    doc = b"RaS2" + pwg_header(50, 1) + body
    assert colors(scan(raster, doc)[0]) == [True]
    body = b"\x00" + b"\x80"
    doc = b"RaS2" + pwg_header(50, 1) + body
    assert colors(scan(raster, doc)[0]) == [False]
    [(info, lines)] = decode(doc)
    assert lines == [b"\xff" * 150]


# -- sides, media, copies ------------------------------------------------------------------------


def test_multi_page_attributes(raster):
    lines = rgb_lines(20, 4)
    doc = pwg_doc(
        (pwg_header(20, 4, copies=3), lines),
        (pwg_header(20, 4, copies=3), lines),
        (pwg_header(20, 4, duplex=1, copies=3), with_pixel(lines, 0, 0, (255, 0, 0))),
        (pwg_header(20, 4, duplex=1, tumble=1, copies=0, page_size=(612, 792)), lines),
        (pwg_header(20, 4, copies=1, page_size=(0, 0)), lines),
    )
    a4 = (points_to_pwg(595), points_to_pwg(842))
    runs, end = scan(raster, doc, copies=2, media=(1, 2), sides=TWO_SIDED_LONG)
    assert runs == (
        PageRun(2, False, ONE_SIDED, a4, 3),
        PageRun(1, True, TWO_SIDED_LONG, a4, 3),
        PageRun(1, False, TWO_SIDED_SHORT, (21590, 27940), 2),   # NumCopies 0: the default
        PageRun(1, False, ONE_SIDED, (1, 2), 1),                 # PageSize 0: the default
    )
    assert end == len(doc)


def test_urf_attributes(raster):
    lines = rgb_lines(850, 2)
    doc = urf_doc((urf_header(850, 1100, 24, 1, duplex=1, dpi=100), lines * 550),
                  (urf_header(850, 1100, 24, 1, duplex=3, dpi=100), lines * 550),
                  (urf_header(850, 1100, 24, 1, duplex=2, dpi=100), lines * 550),
                  (urf_header(850, 1100, 24, 1, duplex=0, dpi=0), lines * 550), count=0)
    runs, end = scan(raster, doc, copies=4, media=(7, 8), sides=TWO_SIDED_SHORT)
    letter = (21590, 27940)
    assert runs == (PageRun(1, False, ONE_SIDED, letter, 4), PageRun(1, False, TWO_SIDED_LONG, letter, 4),
                    PageRun(2, False, TWO_SIDED_SHORT, (7, 8), 4)) or runs == (
        PageRun(1, False, ONE_SIDED, letter, 4), PageRun(1, False, TWO_SIDED_LONG, letter, 4),
        PageRun(1, False, TWO_SIDED_SHORT, letter, 4), PageRun(1, False, TWO_SIDED_SHORT, (7, 8), 4))
    assert end == len(doc)


def test_start_offset_and_empty(raster):
    doc = pwg_doc((pwg_header(8, 2), rgb_lines(8, 2)))
    prefix = b"\x1b%-12345X@PJL ENTER LANGUAGE=PWG\r\n"
    runs, end = scan(raster, prefix + doc, len(prefix))
    assert colors(runs) == [False] and end == len(prefix) + len(doc)
    assert scan(raster, b"RaS2") == ((), 4)
    assert scan(raster, b"UNIRAST\x00\x00\x00\x00\x00") == ((), 12)


def test_line_repeat_past_the_page_is_tolerated(raster):
    doc = b"RaS2" + pwg_header(4, 3) + b"\xff\x03\xff\xff\xff"  # one line said 256 times
    assert colors(scan(raster, doc)[0]) == [False]


def test_pages_across_chunks(raster):
    """Pages much larger than the read chunk, with literal lines (refills mid-page)."""
    rng = random.Random(5)
    width, height = 1500, 300
    noise = [bytes(rng.randrange(256) for _ in range(width)) for _ in range(4)]
    gray = [bytes(b for b in line for _ in range(3)) for line in noise]  # neutral RGB
    lines = [gray[y % 4] if y % 5 else gray[(y + 1) % 4] for y in range(height)]
    doc = pwg_doc((pwg_header(width, height), lines),
                  (pwg_header(width, height), with_pixel(lines, 1499, 299, (9, 0, 0))),
                  (pwg_header(width, height), lines))
    assert len(doc) > 2 * pure.CHUNK
    assert colors(scan(raster, doc)[0]) == [False, True, False]
    out = io.BytesIO()
    raster.to_grayscale(io.BytesIO(doc), out)
    got = decode(out.getvalue())
    assert [p[1] for p in got] == [reference_gray(i, l) for i, l in decode(doc)]


# -- damaged and unsupported ---------------------------------------------------------------------


def test_truncated_everywhere(raster):
    doc = pwg_doc((pwg_header(30, 6), text_like(30, 6, colour=(0, 9, 0))),
                  (pwg_header(30, 6, CMYK), [bytes(120)] * 6))
    [(i1, _), _] = decode(doc)
    first_end = 4 + 1796 + len(encode_lines(text_like(30, 6, colour=(0, 9, 0)), 3))
    for cut in range(len(doc)):
        data = doc[:cut]
        if cut in (4, first_end):
            assert len(colors(scan(raster, data)[0])) == (0 if cut == 4 else 1)
            continue
        with pytest.raises(PdlError) as e:
            scan(raster, data)
        assert e.type in (DamagedDocument, UnsupportedFormat)
        if cut >= 4:
            assert e.type is DamagedDocument


def test_truncated_urf(raster):
    doc = urf_doc((urf_header(30, 6), text_like(30, 6)))
    for cut in range(13, len(doc)):
        with pytest.raises(DamagedDocument):
            scan(raster, doc[:cut])
    with pytest.raises(DamagedDocument):
        scan(raster, doc[:10])


def test_run_overrunning_its_line(raster):
    doc = b"RaS2" + pwg_header(4, 1) + b"\x00\x04\xff\xff\xff"     # 5 pixels in a 4-pixel line
    with pytest.raises(DamagedDocument):
        scan(raster, doc)
    doc = b"RaS2" + pwg_header(2, 1) + b"\x00\xfd" + b"\x00" * 9     # literal of 3 in 2
    with pytest.raises(DamagedDocument):
        scan(raster, doc)


@pytest.mark.parametrize("header, error", [
    (pwg_header(10, 1, cspace=2), UnsupportedFormat),           # RGBA: not PWG
    (pwg_header(10, 1, cspace=17), UnsupportedFormat),
    (pwg_header(10, 1, SRGB, 8, 32), UnsupportedFormat),          # 32 bits for 3 colours
    (pwg_header(10, 1, SRGB, 2), UnsupportedFormat),
    (pwg_header(10, 1, order=1), UnsupportedFormat),              # banded
    (pwg_header(10, 0), DamagedDocument),
    (pwg_header(0, 10), DamagedDocument),
    (pwg_header(10, 1_000_001), DamagedDocument),
    (pwg_header(0xFFFFFFFF, 1, bpl=0xFFFFFFFF), DamagedDocument),               # bytes per line beyond the limit
    (pwg_header(10, 1, bpl=31), DamagedDocument),
])
def test_bad_headers(raster, header, error):
    with pytest.raises(error):
        scan(raster, b"RaS2" + header + b"\x00\x80")


@pytest.mark.parametrize("data", [b"", b"RaS", b"RaS3" + bytes(1796), b"2SaR", b"%PDF-1.4", b"UNIRAST"])
def test_not_raster(raster, data):
    with pytest.raises(UnsupportedFormat):
        scan(raster, data)


def test_bad_urf_headers(raster):
    for h in (urf_header(10, 1, 24, 7), urf_header(10, 1, 16, 1), urf_header(10, 1, 12, 0)):
        with pytest.raises(UnsupportedFormat):
            scan(raster, urf_doc((h, [])))


# -- conversions ---------------------------------------------------------------------------------


def convert(raster, data: bytes, **kw) -> bytes:
    out = io.BytesIO()
    raster.to_grayscale(io.BytesIO(data), out, **kw)
    return out.getvalue()


def check_gray_conversion(raster, doc: bytes) -> bytes:
    converted = convert(raster, doc)
    before, after = decode(doc), decode(converted)
    assert len(after) == len(before)
    for (src_info, src), (dst_info, dst) in zip(before, after):
        if src_info["bpp"] in (24, 48) or (src_info["bpp"] == 4 and src_info["cspace"] in (1, 5, 19, 20)):
            assert dst == reference_gray(src_info, src)
            if "numcolors" in dst_info:  # PWG
                assert (dst_info["cspace"], dst_info["numcolors"]) == (18, 1)
                assert dst_info["bpl"] == dst_info["width"] * dst_info["bpc"] // 8
                assert dst_info["bpp"] == dst_info["bpc"] == (16 if src_info["bpp"] == 48 else 8)
                raw_src, raw_dst = src_info["raw"], dst_info["raw"]
                same = [o for o in range(0, 1796, 4) if o not in (384, 388, 392, 400, 420)]
                assert all(raw_src[o:o + 4] == raw_dst[o:o + 4] for o in same)
            else:
                assert dst_info["cspace"] == 0
        else:
            assert dst == src and dst_info["raw"] == src_info["raw"]
    runs, end = scan(raster, converted)
    assert sum(r.count for r in runs) == len(before) and not any(colors(runs))
    assert end == len(converted)
    return converted


def test_grayscale_pixel_exact(raster):
    lines = text_like(123, 40, colour=(10, 200, 30))
    lines = with_pixel(lines, 0, 0, (255, 0, 0))
    doc = pwg_doc((pwg_header(123, 40), lines), (pwg_header(123, 40, SGRAY, 8), gray_lines(123, 40, 7)),
                  (pwg_header(123, 40, ADOBE), rgb_lines(123, 40, (1, 2, 3))),
                  (pwg_header(123, 40, CMYK), [bytes([0, 0, 0, 9]) * 123] * 40))
    converted = check_gray_conversion(raster, doc)
    # the gray and CMYK-without-colour pages are byte-identical in the output
    assert pwg_doc((pwg_header(123, 40, SGRAY, 8), gray_lines(123, 40, 7)))[4:] in converted


def test_grayscale_keeps_neutral_values_and_structure(raster):
    lines = text_like(200, 30, seed=9)            # neutral: R=G=B
    doc = pwg_doc((pwg_header(200, 30), lines))
    converted = check_gray_conversion(raster, doc)
    [(_, gray)] = decode(converted)
    assert gray == [line[0::3] for line in lines]
    # same run structure: the compressed lines shrink by exactly 2 bytes a unit
    assert len(converted) < len(doc)


def test_grayscale_16_bit_and_1_bit(raster):
    rng = random.Random(3)
    px16 = [bytes(rng.randrange(256) for _ in range(6 * 17)) for _ in range(5)]
    check_gray_conversion(raster, pwg_doc((pwg_header(17, 5, SRGB, 16), px16)))
    for width in (9, 10, 301):
        packed = [bytes(rng.choice([0x77, 0x74, 0x47, 0x00, 0x12, 0x56]) for _ in range((width + 1) // 2))
                  for _ in range(6)]
        packed += [b"\x74" * ((width + 1) // 2), b"\x77" * ((width + 1) // 2)] * 2
        for cspace in (SRGB, RGB):
            check_gray_conversion(raster, pwg_doc((pwg_header(width, 10, cspace, 1), packed)))
        check_gray_conversion(raster, urf_doc((urf_header(width, 10, 4, 1), packed)))


def test_grayscale_urf(raster):
    lines = text_like(64, 12, colour=(0, 0, 255))
    doc = urf_doc((urf_header(64, 12, 24, 1), lines), (urf_header(64, 12, 8, 0), gray_lines(64, 12, 3)),
                  (urf_header(64, 12, 48, 5), [b"\x80\x00" * 3 * 64] * 12))
    converted = check_gray_conversion(raster, doc)
    assert converted[:12] == doc[:12]


def test_grayscale_refuses_what_has_no_exact_gray(raster):
    cmyk = pwg_doc((pwg_header(8, 2, CMYK), [bytes([0, 90, 0, 0]) * 8] * 2))
    with pytest.raises(ConversionError):
        convert(raster, cmyk)
    device = pwg_doc((pwg_header(8, 2, 50, 8, 24), [b"\x00" * 24] * 2))
    with pytest.raises(ConversionError):
        convert(raster, device)
    lab = urf_doc((urf_header(8, 2, 24, 2), [b"\x80" * 24] * 2))
    with pytest.raises(ConversionError):
        convert(raster, lab)


def test_grayscale_section(raster):
    doc = pwg_doc((pwg_header(8, 2), rgb_lines(8, 2, (9, 0, 0))))
    data = b"junk" + doc + b"\x1b%-12345X"
    converted = convert(raster, data, start=4, end=4 + len(doc))
    assert converted == convert(raster, doc)
    with pytest.raises(DamagedDocument):
        convert(raster, data, start=4, end=4 + len(doc) + 1)
    with pytest.raises(DamagedDocument):
        convert(raster, data, start=4, end=3 + len(doc))


def test_duplex(raster):
    lines = text_like(40, 8, colour=(0, 200, 0))
    doc = pwg_doc((pwg_header(40, 8), lines), (pwg_header(40, 8, duplex=1, tumble=1, copies=2), lines))
    urf = urf_doc((urf_header(40, 8), lines), (urf_header(40, 8, duplex=2), lines))
    for sides, pwg_fields, urf_byte in ((TWO_SIDED_LONG, (1, 0), 3), (TWO_SIDED_SHORT, (1, 1), 2),
                                        (ONE_SIDED, (0, 0), 1)):
        out = io.BytesIO()
        raster.to_duplex(io.BytesIO(doc), out, sides)
        got = out.getvalue()
        assert len(got) == len(doc)
        for (si, sl), (di, dl) in zip(decode(doc), decode(got)):
            assert (di["duplex"], di["tumble"]) == pwg_fields and dl == sl
            diff = [i for i in range(1796) if si["raw"][i] != di["raw"][i]]
            assert all(272 <= i < 276 or 368 <= i < 372 for i in diff)
        assert {r.sides for r in scan(raster, got)[0]} == {sides}
        out = io.BytesIO()
        raster.to_duplex(io.BytesIO(urf), out, sides)
        got = out.getvalue()
        assert [i for i in range(len(urf)) if got[i] != urf[i]] == [
            i for i in (12 + 2, 12 + 32 + len(encode_lines(lines, 3)) + 2) if urf[i] != urf_byte]
        assert {r.sides for r in scan(raster, got)[0]} == {sides}
    with pytest.raises(ValueError):
        raster.to_duplex(io.BytesIO(doc), io.BytesIO(), "both")


def test_twins_write_the_same_bytes():
    compiled = _compiled()
    if compiled is None:
        pytest.skip("not built")
    rng = random.Random(11)
    doc = pwg_doc((pwg_header(77, 9), text_like(77, 9, colour=(5, 80, 5))),
                  (pwg_header(77, 9, SRGB, 1), [bytes(rng.randrange(256) for _ in range(39)) for _ in range(9)]),
                  (pwg_header(77, 9, SGRAY, 8), gray_lines(77, 9, 40)))
    assert convert(pure, doc) == convert(compiled, doc)


# -- Ghostscript-made documents ------------------------------------------------------------------

SOURCE = b"""%!PS
/Helvetica findfont 18 scalefont setfont
72 720 moveto (page one: gray text) show 0.5 setgray 72 600 200 50 rectfill showpage
72 720 moveto (page two: a red box) show 1 0 0 setrgbcolor 72 600 144 72 rectfill showpage
72 720 moveto (page three: gray again) show showpage
0 0 1 setrgbcolor 72 720 moveto (page four: blue text) show showpage
"""
GS_VARIANTS = {
    "pwg-srgb8": ("pwgraster", ["-dcupsColorSpace=19", "-dcupsBitsPerColor=8"]),
    "pwg-rgb16": ("pwgraster", ["-dcupsColorSpace=1", "-dcupsBitsPerColor=16"]),
    "pwg-srgb1": ("pwgraster", ["-dcupsColorSpace=19"]),
    "pwg-cmyk8": ("pwgraster", ["-dcupsColorSpace=6", "-dcupsBitsPerColor=8"]),
    "pwg-black1": ("pwgraster", []),
    "urf-srgb8": ("urf", ["-dcupsColorSpace=19", "-dcupsBitsPerColor=8"]),
    "urf-default": ("urf", []),
    "appleraster-srgb8": ("appleraster", ["-dcupsColorSpace=19", "-dcupsBitsPerColor=8"]),
}


@pytest.fixture(scope="session")
def gs_files(tmp_path_factory):
    gs = peers.require("gs")
    d = tmp_path_factory.mktemp("raster")
    src = d / "src.ps"
    src.write_bytes(SOURCE)
    ink = subprocess.run([gs, "-q", "-dSAFER", "-dNOPAUSE", "-dBATCH", "-sDEVICE=inkcov", "-o", "-", str(src)],
                         check=True, capture_output=True, timeout=120).stdout.decode()
    inkcov = [any(float(v) > 0.001 for v in m.groups()) for m in
              re.finditer(r"^\s*([\d.]+)\s+([\d.]+)\s+([\d.]+)\s+[\d.]+\s+CMYK OK", ink, re.M)]
    files = {}
    for name, (device, flags) in GS_VARIANTS.items():
        out = d / f"{name}.ras"
        subprocess.run([gs, "-q", "-dSAFER", "-dNOPAUSE", "-dBATCH", f"-sDEVICE={device}", "-r50", *flags,
                        "-o", str(out), str(src)], check=True, capture_output=True, timeout=120)
        files[name] = out.read_bytes()
    return inkcov, files


@pytest.mark.parametrize("name", list(GS_VARIANTS))
def test_ghostscript_files(raster, gs_files, name):
    inkcov, files = gs_files
    assert inkcov == [False, True, False, True]
    data = files[name]
    runs, end = scan(raster, data)
    assert end == len(data) and sum(r.count for r in runs) == 4
    if name in ("pwg-black1", "urf-default"):   # 1-bit black: the colour is gone
        assert colors(runs) == [False] * 4
    else:
        assert colors(runs) == inkcov
    assert {r.sides for r in runs} == {ONE_SIDED} and {r.copies for r in runs} == {1}
    if name != "pwg-cmyk8":
        check_gray_conversion(raster, data)
    else:
        with pytest.raises(ConversionError):
            convert(raster, data)


def test_ghostscript_urf_and_appleraster_agree(gs_files):
    _, files = gs_files
    assert files["urf-srgb8"] == files["appleraster-srgb8"]
    assert files["urf-srgb8"].startswith(b"UNIRAST\x00")
