"""PCL 5 scanning and conversions: the pure module and its compiled twin, side by side.

Every test runs on both implementations (the compiled one is skipped when it is not
built, except under SPOOLPROXY_REQUIRE_EXT=1). Documents made with Ghostscript (ljet4)
skip without gs, except under SPOOLPROXY_REQUIRE_INTEROP=1. Ghostscript here has no
PCL interpreter, so the grayscale conversion is checked with the small PCL 5c raster
decoder below.
"""
from __future__ import annotations

import importlib
import io
import os
import subprocess

import pytest

import peers
from spoolproxy.pdl import pcl as pure
from spoolproxy.pdl.model import ONE_SIDED, TWO_SIDED_LONG, TWO_SIDED_SHORT, PageRun

A4 = (21000, 29700)
LETTER = (21590, 27940)
E = b"\x1b"
UEL = b"\x1b%-12345X"


def _compiled():
    try:
        return importlib.import_module("spoolproxy._ext.pcl")
    except ModuleNotFoundError as e:
        if os.environ.get("SPOOLPROXY_REQUIRE_EXT", "") not in ("", "0"):
            pytest.fail(f"SPOOLPROXY_REQUIRE_EXT=1 but the extension is not built: {e}")
        return None


@pytest.fixture(params=["python", "cython"])
def pcl(request):
    if request.param == "python":
        return pure
    mod = _compiled()
    if mod is None:
        pytest.skip("spoolproxy._ext.pcl is not built")
    return mod


def scan(mod, data: bytes, start: int = 0, **kw):
    return mod.scan(io.BytesIO(data), start, **kw)


def colors(runs) -> list:
    return [r.color for r in runs for _ in range(r.count)]


def pages(runs) -> int:
    return sum(r.count for r in runs)


# -- pages ------------------------------------------------------------------------------------


def test_form_feeds_and_resets(pcl):
    data = E + b"E" + b"page one\x0c" + b"\x0c" + b"three" + E + b"E" + E + b"E" + b"four"
    runs, end = scan(pcl, data)
    assert runs == (PageRun(4, False),)  # the blank page between two form feeds is printed too
    assert end == len(data)
    assert scan(pcl, E + b"E" + E + b"E   \r\n\t" + E + b"E")[0] == ()  # nothing marked, nothing ejected


def test_page_size_source_and_duplex_eject_marked_pages(pcl):
    data = (E + b"&l2A" + b"x" + E + b"&l26A" + E + b"&l1H" + b"y" + E + b"&l0H" + E + b"&l0H"
            + b"z" + E + b"&l1S" + b"w")
    runs = scan(pcl, data)[0]
    assert [(r.media, r.sides) for r in runs for _ in range(r.count)] == [
        (LETTER, ONE_SIDED), (A4, ONE_SIDED), (A4, ONE_SIDED), (A4, TWO_SIDED_LONG)]


def test_marks(pcl):
    # raster data with bytes, rules other than white fill, transparent data, HP-GL/2 drawing
    for mark in (E + b"*b2W\x00\x00", E + b"*c100a100b0P", E + b"*c2P", E + b"&p1X\x01",
                 E + b"%0BIN;SP1;PD10,10;" + E + b"%0A"):
        assert pages(scan(pcl, E + b"E" + mark + E + b"E")[0]) == 1, mark
    for not_a_mark in (E + b"*b0W", E + b"*c1P", E + b"&p0X", E + b"%0BIN;SP1;PU10,10;" + E + b"%0A",
                       E + b"*r1A" + E + b"*rB", b" \r\n\x00\x7f"):
        assert pages(scan(pcl, E + b"E" + not_a_mark + E + b"E")[0]) == 0, not_a_mark


def test_binary_payloads_are_skipped_by_count(pcl):
    payload = b"\x0c\x1bE\x1b%-12345X\x0cabc"
    for cmd in (b"*b%dW", b"(s%dW", b")s%dW", b"*c%dW", b"*v%dW", b"*o%dW", b"&n%dW", b"(f%dW", b"*b%dV", b"&p%dX"):
        data = E + cmd % len(payload) + payload + E + b"E"
        runs, end = scan(pcl, data)
        assert pages(runs) == (1 if cmd in (b"*b%dW", b"*b%dV", b"&p%dX") else 0), cmd
        assert end == len(data)


def test_combined_sequences(pcl):
    data = E + b"&l1o3x26a2S" + b"text" + E + b"&l2a1s2X" + b"more" + E + b"*b2w\x0c\x0c1Y"
    runs = scan(pcl, data)[0]
    assert runs == (PageRun(1, False, TWO_SIDED_SHORT, A4, 3), PageRun(1, False, TWO_SIDED_LONG, LETTER, 2))


def test_malformed_sequences(pcl):
    long_value = E + b"&l" + b"1" * 40 + b"X"  # too long: the sequence ends, the digits are text
    assert scan(pcl, long_value)[0] == (PageRun(1, False),)
    assert scan(pcl, E + b"&l3" + b"\x00")[0] == ()
    assert scan(pcl, b"\x1b")[0] == () and scan(pcl, b"\x1b\x01A")[0] == (PageRun(1, False),)
    assert scan(pcl, E + b"*b99999999999999999999W" + b"data")[0] == (PageRun(1, False),)
    assert scan(pcl, E + b"&l-5X" + E + b"&l9S" + E + b"&l999A" + b"x")[0] == (PageRun(1, False),)


def test_copies_apply_from_the_page_they_are_set_on(pcl):
    data = b"one\x0c" + E + b"&l3X" + b"two\x0c" + b"three\x0c" + E + b"E" + b"four\x0c"
    assert scan(pcl, data, copies=2)[0] == (PageRun(1, copies=2), PageRun(2, copies=3), PageRun(1, copies=2))


def test_pjl_defaults_and_reset(pcl):
    data = b"a\x0c" + E + b"&l0S" + E + b"&l2A" + b"b\x0c" + E + b"E" + b"c"
    runs = scan(pcl, data, sides=TWO_SIDED_LONG, media=A4, copies=2)[0]
    assert runs == (PageRun(1, False, TWO_SIDED_LONG, A4, 2), PageRun(1, False, ONE_SIDED, LETTER, 2),
                    PageRun(1, False, TWO_SIDED_LONG, A4, 2))


def test_hpgl2(pcl):
    data = (E + b"%1B" + b"IN;SP1;PA0,0;PD100,100;LB no PG here\x03;PG;DT#;LBPG#;PG;"
            + b"PE<=abc PG;PG;" + E + b"%0A" + E + b"E")
    # PG is ignored in HP-GL/2 entered from PCL: everything is on the one page ESC E ejects
    assert pages(scan(pcl, data)[0]) == 1
    # an escape inside HP-GL/2 is a PCL command; ESC E leaves HP-GL/2
    data = E + b"%0B" + E + b"&l3X" + b"PD;" + E + b"E" + b"PD;"
    assert scan(pcl, data)[0] == (PageRun(1, False, copies=3), PageRun(1, False))


def test_uel_ends_the_section(pcl):
    body = E + b"E" + b"hello" + E + b"E"
    head = UEL + b"@PJL ENTER LANGUAGE=PCL\r\n"
    data = head + body + UEL + b"@PJL EOJ\r\n" + UEL
    runs, end = scan(pcl, data, len(head))
    assert pages(runs) == 1 and end == len(head) + len(body) + len(UEL)


def test_results_do_not_depend_on_chunking(monkeypatch):
    data = colour_document() + E + b"%0BSP1PD1,1;LB abc\x03" + E + b"%0A" + E + b"*b40W" + bytes(range(40)) + b"\x0c"
    expected = scan(pure, data)
    for chunk in (1, 3, 17, 100):
        monkeypatch.setattr(pure, "CHUNK", chunk)
        assert scan(pure, data) == expected


def test_bad_sides_argument(pcl):
    with pytest.raises(ValueError):
        scan(pcl, b"x", sides="sideways")


# -- colour ------------------------------------------------------------------------------------------


def raster(planes: list[bytes], last: bool = True) -> bytes:
    out = b""
    for i, p in enumerate(planes):
        out += E + (b"*b%dW" if i == len(planes) - 1 else b"*b%dV") % len(p) + p
    return out


def colour_document() -> bytes:
    """Five pages: simple-colour RGB raster (all 8 indices), mono text, a CID palette entry
    used for a rule, CMY raster, black text with an RGB palette."""
    row = [bytes([0b01010101]), bytes([0b00110011]), bytes([0b00001111])]  # pixel x has index x
    return (E + b"E" + E + b"*r3U" + E + b"*r8S" + E + b"*r1A" + E + b"*b0M" + raster(row) + E + b"*rB\x0c"
            + E + b"*r1U" + b"mono text\x0c"
            + E + b"*v6W\x00\x01\x08\x08\x08\x08" + E + b"*v255a0b0c5I" + E + b"*v5S" + E + b"*c100a100b0P\x0c"
            + E + b"*r-3U" + E + b"*r1A" + raster(row) + E + b"*rB\x0c"
            + E + b"*r3U" + E + b"*v0S" + b"black text\x0c" + E + b"E")


def test_colour_pages(pcl):
    assert colors(scan(pcl, colour_document())[0]) == [True, False, True, True, False]


@pytest.mark.parametrize("setup, expected", [
    (E + b"*r1U", False),
    (E + b"*r3U" + E + b"*v1S", True),                                            # red foreground
    (E + b"*r-3U" + E + b"*v7S", False),                                          # CMY black
    (E + b"*v6W\x00\x01\x01\x08\x08\x08" + E + b"*v1S", False),                   # 1 bit: white, black
    (E + b"*v6W\x00\x01\x08\x08\x08\x08" + E + b"*v9a9b9c3I" + E + b"*v3S", False),  # a gray entry
    (E + b"*v6W\x00\x01\x08\x08\x08\x08" + E + b"*v9a9b8c3i3S", True),
    (E + b"*v6W\x03\x01\x08\x08\x08\x08" + E + b"*v50a0b0c3I" + E + b"*v3S", False),  # L*a*b* neutral
    (E + b"*v6W\x03\x01\x08\x08\x08\x08" + E + b"*v50a1b0c3I" + E + b"*v3S", True),
])
def test_foreground_colour_of_text(pcl, setup, expected):
    assert colors(scan(pcl, setup + b"text\x0c")[0]) == [expected]


def test_mono_raster_takes_the_foreground(pcl):
    gray_palette = E + b"*v6W\x00\x01\x01\x08\x08\x08" + E + b"*b1W\xff\x0c"  # 1 bit: black and white only
    mono = E + b"*b1W\xff\x0c"
    red = E + b"*r3U" + E + b"*v1S" + E + b"*r1U" + E + b"*b1W\xff\x0c"   # 1U resets the foreground to black
    assert colors(scan(pcl, gray_palette + mono + red)[0]) == [False, False, False]


def _simple(planes: list[bytes], method: int = 0, extra: bytes = b"") -> bytes:
    """A page of one raster row in the simple RGB palette (index = R + 2G + 4B)."""
    return (E + b"E" + E + b"*r3U" + extra + E + b"*r1A" + E + b"*b%dM" % method + raster(planes)
            + E + b"*rB\x0c")


@pytest.mark.parametrize("page, expected", [
    (_simple([b"\xf0", b"\xf0", b"\xf0"]), False),                    # white and black pixels only
    (_simple([b"\xf0", b"\x00", b"\x00"]), True),                     # red
    (_simple([b"\x02", b"\x00", b"\x00"], extra=E + b"*r4S"), False),  # red, but past the source width
    (_simple([b"\x02", b"\x00", b"\x00"], extra=E + b"*r7S"), True),
    (_simple([b"\x03\xff", b"\x03\xff", b"\x03\xff"], method=1), False),   # run length: 4 white bytes
    (_simple([b"\x03\xff", b"\x03\x00", b"\x03\xff"], method=1), True),
    (_simple([b"\xfd\xff", b"\x01\x00\x00", b"\xfd\x00"], method=2), True),   # PackBits
    (_simple([b"\x81\x00", b"\x81\x00", b"\x81\x00"], method=2), False),
    (_simple([b"\x00\xff"], method=9), True),                          # a method not decoded: colour
])
def test_indexed_raster_pixels(pcl, page, expected):
    assert colors(scan(pcl, page)[0]) == [expected]


def test_delta_rows_follow_their_seed(pcl):
    white = [b"\xff", b"\xff", b"\xff"]
    head = E + b"E" + E + b"*r3U" + E + b"*r1A" + raster(white) + E + b"*b3M"
    to_red = E + b"*b0V" + E + b"*b2V\x00\x00" + E + b"*b2W\x00\x00"    # planes 2 and 3 cleared: red
    same = E + b"*b0V" + E + b"*b0V" + E + b"*b2W\x00\xff"                # replaces a byte by itself
    far = E + b"*b3V\x1f\x01\xff" + E + b"*b0V" + E + b"*b0W"        # offset 31 + 1: past the seed row
    assert colors(scan(pcl, head + to_red + b"\x0c")[0]) == [True]
    assert colors(scan(pcl, head + same + b"\x0c")[0]) == [False]
    assert colors(scan(pcl, head + far + b"\x0c")[0]) == [True]  # byte 32: red only
    # the seed is zeroed by a y offset (and at the start of raster graphics)
    assert colors(scan(pcl, head + E + b"*b1Y" + same + b"\x0c")[0]) == [True]


@pytest.mark.parametrize("cid, row, expected", [
    (b"\x00\x03\x00\x08\x08\x08", b"\x10\x10\x10\x80\x80\x80", False),   # direct by pixel, RGB
    (b"\x00\x03\x00\x08\x08\x08", b"\x10\x10\x10\x80\x81\x80", True),
    (b"\x01\x03\x00\x08\x08\x08", b"\x00\x00\x00\xff\xff\xff", False),   # CMY
    (b"\x00\x03\x00\x05\x06\x05", b"\x00\x00\x00", True),                 # not 8 bits per primary
    (b"\x03\x03\x00\x08\x08\x08", b"\x80\x80\x80", True),                 # L*a*b*: not decoded
    (b"\x00\x01\x08\x08\x08\x08", b"\x00\x07\x07", False),                # indexed by pixel: black, white
    (b"\x00\x01\x08\x08\x08\x08", b"\x00\x07\x03", True),                 # yellow
    (b"\x00\x01\x04\x08\x08\x08", b"\x07\x70", False),                     # 4 bits per index
    (b"\x00\x01\x04\x08\x08\x08", b"\x07\x71", True),
])
def test_configured_raster_pixels(pcl, cid, row, expected):
    page = E + b"E" + E + b"*v6W" + cid + E + b"*r1A" + E + b"*b%dW" % len(row) + row + E + b"*rB\x0c"
    assert colors(scan(pcl, page)[0]) == [expected]


def test_direct_by_plane(pcl):
    cid = E + b"*v6W\x00\x02\x01\x01\x01\x01"
    assert colors(scan(pcl, cid + raster([b"\xf0", b"\xf0", b"\xf0"]) + b"\x0c")[0]) == [False]
    assert colors(scan(pcl, cid + raster([b"\xf0", b"\xf0", b"\x70"]) + b"\x0c")[0]) == [True]


# -- a PCL 5c raster decoder for checking the grayscale conversion --------------------------------

RGB8 = [((i & 1) * 255, (i >> 1 & 1) * 255, (i >> 2 & 1) * 255) for i in range(8)]
CMY8 = [(255 - r, 255 - g, 255 - b) for r, g, b in RGB8]


def decode(data: bytes) -> list[tuple]:
    """Every mark as the RGB colour it prints: raster pixels (indexed by plane, compression 0)
    and the foreground of text and rules. Follows palettes as a printer does."""
    marks = []
    palette, space, fg, comps, planes = [(255, 255, 255), (0, 0, 0)], 0, (0, 0, 0), [0, 0, 0], []
    i = 0
    while i < len(data):
        if data[i] != 0x1B:
            if 0x21 <= data[i] <= 0x7E:
                marks.append(("text", fg))
            i += 1
            continue
        if data[i + 1] == ord("E"):
            palette, space, fg = [(255, 255, 255), (0, 0, 0)], 0, (0, 0, 0)
            i += 2
            continue
        p, g = data[i + 1], data[i + 2]
        j = i + 3
        while True:
            k = j
            while data[k] in b"+-0123456789":
                k += 1
            value, param = int(data[j:k] or b"0"), data[k] | 0x20
            last = data[k] < 0x60
            j = k + 1
            group = bytes([p, g, param])
            if group == b"*ru":
                palette, space = ([(255, 255, 255), (0, 0, 0)], 0) if value == 1 else (
                    (RGB8, 0) if value == 3 else (CMY8, 1))
                palette, fg = list(palette), (0, 0, 0)
            elif group == b"*vw":
                cid = data[j:j + value]
                space, bits = cid[0], cid[2]
                base = CMY8 if space == 1 else RGB8
                palette = [base[n] if n < 8 else (0, 0, 0) for n in range(1 << bits)] if bits > 1 else \
                    [(255, 255, 255), (0, 0, 0)]
                fg = (0, 0, 0)
            elif group in (b"*va", b"*vb", b"*vc"):
                comps[param - ord("a")] = value
            elif group == b"*vi":
                palette[value] = tuple(255 - c for c in comps) if space == 1 else tuple(comps)
                comps = [0, 0, 0]
            elif group == b"*vs":
                fg = palette[value]
            elif group == b"*cp" and value != 1:
                marks.append(("rule", fg))
            elif group in (b"*bv", b"*bw"):
                planes.append(data[j:j + value])
                if param == ord("w"):
                    for x in range(8 * len(planes[0])):
                        index = sum(((pl[x // 8] >> (7 - x % 8)) & 1) << n for n, pl in enumerate(planes))
                        marks.append(("pixel", palette[index]))
                    planes = []
            if param == ord("w"):
                j += value
            if last:
                break
        i = j
    return marks


def _luma(c):
    return (299 * c[0] + 587 * c[1] + 114 * c[2] + 500) // 1000


def convert(func, data: bytes, *args, start: int = 0, end=None) -> bytes:
    out = io.BytesIO()
    func(io.BytesIO(data), out, *args, start=start, end=end)
    return out.getvalue()


def test_grayscale_conversion_is_exact_for_palettes(pcl):
    data = colour_document()
    gray = convert(pcl.to_grayscale, data)
    before, after = decode(data), decode(gray)
    assert len(before) == len(after) and any(c[0] != c[1] or c[1] != c[2] for _, c in before)
    for (kind, c), (kind2, c2) in zip(before, after):
        assert kind == kind2 and c2 == (c2[0],) * 3 and abs(c2[0] - _luma(c)) <= 1, (kind, c, c2)
    runs = scan(pcl, gray)[0]
    assert colors(runs) == [False] * 5 and pages(runs) == 5


def test_grayscale_conversion_within_combined_sequences(pcl):
    data = E + b"*r3u8S" + E + b"*v255a0b0c2i2S" + b"x\x0c"
    gray = convert(pcl.to_grayscale, data)
    assert colors(scan(pcl, data)[0]) == [True] and colors(scan(pcl, gray)[0]) == [False]
    assert gray.startswith(E + b"*r3u" + E + b"*v6W") and E + b"*r8S" in gray


def test_grayscale_converts_uncompressed_direct_pixels(pcl):
    rgb = E + b"*v6W\x00\x03\x00\x08\x08\x08" + E + b"*r1A" + E + b"*b6W\xff\x00\x00\x10\x20\x30\x0c"
    cmy = E + b"*v6W\x01\x03\x00\x08\x08\x08" + E + b"*r1A" + E + b"*b3W\xff\x00\x00\x0c"
    packed = E + b"*v6W\x00\x03\x00\x08\x08\x08" + E + b"*b2M" + E + b"*b4W\x02\xff\x00\x00\x0c"
    gray = convert(pcl.to_grayscale, rgb + cmy + packed)
    assert E + b"*b6W" + bytes([76] * 3 + [_luma((16, 32, 48))] * 3) in gray
    assert E + b"*b3W" + bytes([255 - 179] * 3) in gray   # cyan: luma of (0, 255, 255) is 179
    assert colors(scan(pcl, gray)[0]) == [False, False, True]  # compressed direct rows are not converted


def test_grayscale_leaves_gray_documents_alone(pcl):
    data = E + b"E" + E + b"&l2X" + b"text\x0c" + E + b"*b2W\xff\x00\x0c"
    assert convert(pcl.to_grayscale, data) == data


def test_to_duplex_rewrites_every_value(pcl):
    data = E + b"E" + E + b"&l0s2X" + b"a\x0c" + E + b"&l0S" + b"b" + E + b"*b3W\x1b&l0S"
    out = convert(pcl.to_duplex, data, TWO_SIDED_LONG)
    assert out == data.replace(b"&l0s", b"&l1s").replace(E + b"&l0Sb", E + b"&l1Sb")
    assert {r.sides for r in scan(pcl, out)[0]} == {TWO_SIDED_LONG}


def test_to_duplex_inserts_after_the_first_reset(pcl):
    data = b"\x0c" + E + b"E" + b"a\x0c" + E + b"E" + b"b"
    out = convert(pcl.to_duplex, data, TWO_SIDED_SHORT)
    assert out == b"\x0c" + E + b"E" + E + b"&l2S" + b"a\x0c" + E + b"E" + b"b"
    assert convert(pcl.to_duplex, b"abc", TWO_SIDED_LONG) == E + b"&l1Sabc"
    # a reset restores the PJL default, which the dispatcher sets with PJL DUPLEX


def test_conversions_stop_at_end(pcl):
    data = b"ab" + E + b"E" + b"x\x0c" + UEL + b"@PJL EOJ"
    out = convert(pcl.to_duplex, data, ONE_SIDED, start=2, end=len(data) - 8)
    assert out == E + b"E" + E + b"&l0S" + b"x\x0c" + UEL


# -- Ghostscript ljet4 -----------------------------------------------------------------------------

SOURCE = b"""%%!PS
/Helvetica findfont 14 scalefont setfont
1 1 %d { /i exch def
  i 4 mod 3 ne { 72 720 moveto (page ) show i 10 string cvs show
                 1 0 0 setrgbcolor 72 400 200 100 rectfill } if
  showpage } for
"""


def _ljet4(tmp_path, n: int, res: int = 150) -> bytes:
    gs = peers.require("gs")
    (tmp_path / "in.ps").write_bytes(SOURCE % n)
    out = tmp_path / "out.pcl"
    subprocess.run([gs, "-q", "-dSAFER", "-dNOPAUSE", "-dBATCH", "-sDEVICE=ljet4", f"-r{res}", "-o", str(out),
                    str(tmp_path / "in.ps")], check=True, capture_output=True, timeout=120)
    return out.read_bytes()


@pytest.mark.parametrize("n", [1, 2, 17])
def test_ljet4_documents(pcl, tmp_path, n):
    data = _ljet4(tmp_path, n)
    runs, end = scan(pcl, data)
    assert pages(runs) == n and end == len(data)  # every 4th page is blank and still counts
    assert {r.color for r in runs} == {False}     # ljet4 is monochrome PCL 5e
    assert {r.media for r in runs} <= {A4, LETTER} and {r.copies for r in runs} == {1}
    assert scan(pure, data) == (runs, end)


def test_ljet4_2000_pages(tmp_path):
    mod = _compiled() or pure
    data = _ljet4(tmp_path, 2000, res=36)
    assert pages(scan(mod, data)[0]) == 2000


def test_ljet4_with_copies_and_duplex(pcl, tmp_path):
    data = _ljet4(tmp_path, 3)
    assert data.startswith(E + b"E")
    copied = data.replace(E + b"&l1X", E + b"&l3X")
    assert scan(pcl, copied)[0][0].copies == 3
    out = convert(pcl.to_duplex, data, TWO_SIDED_LONG)
    assert out[:2] == E + b"E" and out[2:7] == E + b"&l1S" and out[7:] == data[2:]
    assert {r.sides for r in scan(pcl, out)[0]} == {TWO_SIDED_LONG}
    assert pages(scan(pcl, out)[0]) == 3
