"""PostScript scanning and conversions: the pure module and its compiled twin, side by side.

Every test runs on both implementations (the compiled one is skipped when it is not
built, except under SPOOLPROXY_REQUIRE_EXT=1). Documents made with Ghostscript skip
without gs, except under SPOOLPROXY_REQUIRE_INTEROP=1.
"""
from __future__ import annotations

import importlib
import io
import os
import re
import subprocess

import pytest

import peers
from spoolproxy.pdl import postscript as pure
from spoolproxy.pdl.model import ONE_SIDED, TWO_SIDED_LONG, TWO_SIDED_SHORT, PageRun, PdlError

A4 = (20990, 29704)      # 595 x 842 pt
LETTER = (21590, 27940)  # 612 x 792 pt
UEL = b"\x1b%-12345X"


def _compiled():
    try:
        return importlib.import_module("spoolproxy._ext.postscript")
    except ModuleNotFoundError as e:
        if os.environ.get("SPOOLPROXY_REQUIRE_EXT", "") not in ("", "0"):
            pytest.fail(f"SPOOLPROXY_REQUIRE_EXT=1 but the extension is not built: {e}")
        return None


@pytest.fixture(params=["python", "cython"])
def ps(request):
    if request.param == "python":
        return pure
    mod = _compiled()
    if mod is None:
        pytest.skip("spoolproxy._ext.postscript is not built")
    return mod


def scan(mod, data: bytes, start: int = 0, **kw):
    return mod.scan(io.BytesIO(data), start, **kw)


def pages(runs) -> int:
    return sum(r.count for r in runs)


def doc(*page_bodies: bytes, header: bytes = b"", trailer: bytes = b"", pages_line: bytes | None = None,
        eol: bytes = b"\n") -> bytes:
    n = len(page_bodies)
    lines = [b"%!PS-Adobe-3.0", pages_line if pages_line is not None else b"%%Pages: %d" % n]
    lines += [header] if header else []
    lines += [b"%%EndComments", b"%%BeginProlog", b"/x { } def", b"%%EndProlog"]
    for i, body in enumerate(page_bodies, 1):
        lines += [b"%%%%Page: %d %d" % (i, i), body, b"showpage"]
    lines += [b"%%Trailer"] + ([trailer] if trailer else []) + [b"%%EOF", b""]
    return eol.join(lines)


# -- pages ------------------------------------------------------------------------------------


@pytest.mark.parametrize("eol", [b"\n", b"\r\n", b"\r"])
def test_counts_page_comments_with_any_line_end(ps, eol):
    data = doc(b"1 0 0 setrgbcolor", b"", b"(x) show", eol=eol)
    runs, end = scan(ps, data)
    assert runs == (PageRun(3, None),)
    assert end == len(data)


def test_pages_atend(ps):
    data = doc(b"", b"", pages_line=b"%%Pages: (atend)", trailer=b"%%Pages: 2")
    assert pages(scan(ps, data)[0]) == 2
    with pytest.raises(pure.NeedsInterpreter):
        scan(ps, doc(b"", b"", pages_line=b"%%Pages: (atend)", trailer=b"%%Pages: 3"))


def test_disagreeing_counts_need_an_interpreter(ps):
    with pytest.raises(pure.NeedsInterpreter) as e:
        scan(ps, doc(b"", b"", pages_line=b"%%Pages: 5"))
    assert isinstance(e.value, PdlError)
    assert e.type is pure.NeedsInterpreter  # the very same class from both twins


@pytest.mark.parametrize("data", [
    b"%!PS\n/Helvetica findfont 12 scalefont setfont 72 72 moveto (hi) show showpage\n",
    b"%!PS-Adobe-3.0\n%%Pages: 0\n%%EndComments\nshowpage\n",
    b"",
    b"\x00\x01binary junk%%Page:",
])
def test_no_usable_dsc_needs_an_interpreter(ps, data):
    with pytest.raises(pure.NeedsInterpreter):
        scan(ps, data)


def test_pages_count_without_page_comments(ps):
    data = b"%!PS-Adobe-3.0\n%%Pages: 4\n%%EndComments\n1 1 4 { pop showpage } for\n"
    assert scan(ps, data)[0] == (PageRun(4, None),)


def test_embedded_documents_are_not_counted(ps):
    eps = (b"%%BeginDocument: inner.eps\n%!PS-Adobe-3.0 EPSF-3.0\n%%Pages: 2\n%%Page: 1 1\n"
           b"%%BeginDocument: deeper.eps\n%%Page: 1 1\n/NumCopies 9\n%%EndDocument\n"
           b"%%Page: 2 2\n<< /Duplex true >> setpagedevice\n%%Trailer\n%%EndDocument")
    data = doc(b"", eps, b"")
    assert scan(ps, data)[0] == (PageRun(3, None),)


def test_binary_and_data_sections_are_skipped(ps):
    payload = b"\n%%Page: 99 99\n/NumCopies 7 \x1b%-12345X\r"
    body = (b"%%BeginBinary: " + str(len(payload)).encode() + b"\r\n" + payload + b"\n%%EndBinary\n"
            b"%%BeginData: 3 Hex Lines\n%%Page: a\n%%Page: b\r\n%%Page: c\r%%EndData\n"
            b"%%BeginData: 16\n%%Page: x\n/Duplex true\n%%EndData")
    data = doc(b"", body)
    runs, end = scan(ps, data)
    assert runs == (PageRun(2, None),)
    assert end == len(data)


def test_uel_ends_the_section(ps):
    data = doc(b"", b"")
    job = b"\x1b%-12345X@PJL ENTER LANGUAGE=POSTSCRIPT\n"
    whole = job + data + UEL + b"@PJL EOJ\n" + UEL
    runs, end = scan(ps, whole, len(job))
    assert pages(runs) == 2
    assert end == len(job) + len(data) + len(UEL)


def test_very_long_lines_and_binary_data(ps):
    line = b"%" + b"x" * (3 << 20) + b"\n"
    data = doc(b"(" + b"\x00\xff\r" * 1000 + b") pop", line + b"%%Page is not a comment here")
    assert pages(scan(ps, data)[0]) == 2


def test_results_do_not_depend_on_chunking(monkeypatch):
    data = doc(b"<< /NumCopies 2 >> setpagedevice", b"<< /PageSize [612 792] /Duplex true >> setpagedevice",
               b"%%BeginBinary: 5\n\n%%Pa\n", header=b"%%DocumentMedia: Plain 595 842 75 white ()", eol=b"\r\n")
    expected = scan(pure, data)
    for chunk in (1, 7, 64, 600):
        monkeypatch.setattr(pure, "CHUNK", chunk)
        assert scan(pure, data) == expected


# -- copies, sides, media, colour ----------------------------------------------------------------


def test_copies(ps):
    data = doc(b"", b"<< /NumCopies 3 >> setpagedevice", b"/#copies 5 def",
               b"<< /NumCopies null >> setpagedevice", header=b"%%Requirements: numcopies(2) collate")
    assert scan(ps, data)[0] == (PageRun(1, None, copies=2), PageRun(2, None, copies=3),
                                 PageRun(1, None, copies=5))
    assert scan(ps, doc(b""), copies=4)[0] == (PageRun(1, None, copies=4),)


def test_duplex_and_tumble(ps):
    data = doc(b"<< /Duplex true >> setpagedevice", b"<< /Tumble true >> setpagedevice",
               b"<</Duplex false/Tumble false>>setpagedevice", b"currentpagedevice /Duplex get pop",
               b"%%IncludeFeature: *Duplex DuplexTumble")
    assert [r.sides for r in scan(ps, data)[0]] == [TWO_SIDED_LONG, TWO_SIDED_SHORT, ONE_SIDED, TWO_SIDED_SHORT]
    assert scan(ps, doc(b""), sides=TWO_SIDED_LONG)[0][0].sides == TWO_SIDED_LONG
    assert scan(ps, doc(b"/DuplexX true"))[0][0].sides == ONE_SIDED


def test_media(ps):
    header = b"%%DocumentMedia: Plain 595 842 75 white ( )\n%%+ Letter 612 792 75 white ( )"
    data = doc(b"", b"%%PageMedia: Letter", b"%%PageBoundingBox: 0 0 300 400",
               b"<< /PageSize [612.0 1008] >> setpagedevice", b"", header=header)
    assert [r.media for r in scan(ps, data)[0]] == [A4, LETTER, A4, (21590, 35560)]
    data = doc(b"%%PageBoundingBox: 0 0 595 842", b"%%PageBoundingBox: 10 10 595 842")
    assert [r.media for r in scan(ps, data, media=LETTER)[0]] == [A4, LETTER]


def test_continuation_lines_continue_only_the_line_before(ps):
    header = b"%%DocumentMedia: A 595 842 0 () ()\n%%+ L 612 792 0 () ()"
    data = doc(b"%%PageMedia: L", b"%%+ x", header=header)
    assert [r.media for r in scan(ps, data)[0]] == [LETTER, A4]  # a %%+ after %%Page: is no page
    header = b"%%DocumentMedia: A 595 842 0 () ()\n%%BeginDocument: x\n%%EndDocument\n%%+ L 612 792 0 () ()"
    assert [r.media for r in scan(ps, doc(b"%%PageMedia: L", header=header))[0]] == [A4]
    data = doc(b"", header=b"%%DocumentProcessColors: Black\n%%Creator: me\n%%+ Cyan")
    assert scan(ps, data)[0] == (PageRun(1, False),)


def test_identical_pages_fold_like_the_pure_module(ps):
    page = b"%%PageBoundingBox: 0 0 612 792\n<< /NumCopies 2 >> setpagedevice"
    pages_ = [page] * 50 + [b"%%PageBoundingBox: 0 0 595 842"] + [page] * 3 + [b"%%PageMedia: x\n%%+ y"] * 2
    runs = scan(ps, doc(*pages_))[0]
    assert runs == (PageRun(50, None, media=LETTER, copies=2), PageRun(1, None, media=A4, copies=2),
                    PageRun(3, None, media=LETTER, copies=2), PageRun(2, None, media=None, copies=2))


def test_colour_only_from_reliable_hints(ps):
    assert scan(ps, doc(b"", b"", header=b"%%DocumentProcessColors: Black"))[0] == (PageRun(2, False),)
    assert scan(ps, doc(b"", header=b"%%DocumentProcessColors: Cyan Black"))[0] == (PageRun(1, None),)
    assert scan(ps, doc(b"", header=b"%%DocumentProcessColors: Black\n%%DocumentCustomColors: Gold"))[0] == \
        (PageRun(1, None),)
    data = doc(b"", b"", header=b"%%DocumentProcessColors: (atend)", trailer=b"%%DocumentProcessColors: Black")
    assert scan(ps, data)[0] == (PageRun(2, False),)
    data = doc(b"%%PageProcessColors: Black", b"%%PageProcessColors: Black Magenta", b"")
    assert [r.color for r in scan(ps, data)[0]] == [False, None]


def test_bad_sides_argument(ps):
    with pytest.raises(ValueError):
        scan(ps, doc(b""), sides="sideways")


# -- conversions -----------------------------------------------------------------------------------


def convert(func, data: bytes, *args, start: int = 0, end=None) -> bytes:
    out = io.BytesIO()
    func(io.BytesIO(data), out, *args, start=start, end=end)
    return out.getvalue()


def test_to_duplex_inserts_a_setup_and_rewrites_values(ps):
    data = doc(b"<< /Duplex false /Tumble true >> setpagedevice", b"%%IncludeFeature: *Duplex None")
    out = convert(ps.to_duplex, data, TWO_SIDED_LONG)
    assert scan(ps, out)[0] == (PageRun(2, None, sides=TWO_SIDED_LONG),)
    assert out.count(b"%%BeginSetup") == 1 and out.index(b"%%BeginSetup") < out.index(b"%%Page: 1 1")
    assert b"/Duplex true /Tumble false" in out and b"%%IncludeFeature: *Duplex DuplexNoTumble" in out
    # everything else is byte-identical
    assert re.sub(rb"%%BeginSetup.*?%%EndSetup\n", b"", out, flags=re.S).replace(b"/Duplex true", b"/Duplex false") \
        .replace(b"DuplexNoTumble", b"None").replace(b"/Tumble false", b"/Tumble true") == data


def test_to_duplex_uses_an_existing_setup_section(ps):
    data = doc(b"").replace(b"%%EndProlog\n", b"%%EndProlog\n%%BeginSetup\n/a 1 def\n%%EndSetup\n")
    out = convert(ps.to_duplex, data, TWO_SIDED_SHORT)
    assert out.count(b"%%BeginSetup") == 1
    assert out.index(b"/Tumble true") < out.index(b"%%EndSetup") < out.index(b"%%Page:")
    assert scan(ps, out)[0][0].sides == TWO_SIDED_SHORT


def test_to_grayscale_goes_before_the_prolog(ps):
    data = doc(b"1 0 0 setrgbcolor")
    out = convert(ps.to_grayscale, data)
    assert out == data.replace(b"%%EndComments\n", b"%%EndComments\n" + pure.GRAY_PROLOG)
    assert scan(ps, out) == (scan(ps, data)[0], len(out))


def test_conversions_keep_what_follows_the_section(ps):
    data = doc(b"")
    job = b"@PJL ENTER LANGUAGE=POSTSCRIPT\n" + data + UEL + b"@PJL EOJ\n"
    start, end = 31, 31 + len(data)
    out = convert(ps.to_duplex, job, TWO_SIDED_LONG, start=start, end=end)
    assert not out.startswith(b"@PJL") and scan(ps, out)[0][0].sides == TWO_SIDED_LONG


# -- Ghostscript -----------------------------------------------------------------------------------

SOURCE = b"""%%!PS
/Helvetica findfont 14 scalefont setfont
1 1 %d { /i exch def
  72 720 moveto (page ) show i 10 string cvs show
  i 3 mod 0 eq { 0 0.6 1 setrgbcolor 72 400 200 100 rectfill
                 72 200 translate 100 100 scale 2 1 8 [2 0 0 1 0 0] <ff0000 00ff00> false 3 colorimage } if
  showpage } for
"""


def _gs(tmp_path, n: int, device: str, src: bytes = b"") -> bytes:
    gs = peers.require("gs")
    (tmp_path / "in.ps").write_bytes(src or SOURCE % n)
    out = tmp_path / f"out.{device}"
    subprocess.run([gs, "-q", "-dSAFER", "-dNOPAUSE", "-dBATCH", f"-sDEVICE={device}", "-r72", "-o", str(out),
                    str(tmp_path / "in.ps")], check=True, capture_output=True, timeout=120)
    return out.read_bytes()


def _inkcov(tmp_path, data: bytes) -> list[bool]:
    """Colour per page as Ghostscript's inkcov device sees it (any C, M or Y above 0.1%)."""
    gs = peers.require("gs")
    f = tmp_path / "inkcov.ps"
    f.write_bytes(data)
    res = subprocess.run([gs, "-q", "-dSAFER", "-dNOPAUSE", "-dBATCH", "-sDEVICE=inkcov", "-r36", "-o", "-", str(f)],
                         check=True, capture_output=True, timeout=120)
    rows = [line.split() for line in res.stdout.decode().splitlines() if line.strip().endswith("OK")]
    return [any(float(v) > 0.001 for v in row[:3]) for row in rows]


@pytest.mark.parametrize("n", [1, 2, 17])
def test_ps2write_documents(ps, tmp_path, n):
    data = _gs(tmp_path, n, "ps2write")
    runs, end = scan(ps, data)
    assert pages(runs) == n and end == len(data)
    assert all(r.color is None and r.media in (A4, LETTER) and r.sides == ONE_SIDED for r in runs)  # gs default page
    assert scan(pure, data) == (runs, end)


def test_ps2write_grayscale_conversion(ps, tmp_path):
    data = _gs(tmp_path, 6, "ps2write")
    assert _inkcov(tmp_path, data) == [False, False, True, False, False, True]
    gray = convert(ps.to_grayscale, data)
    assert _inkcov(tmp_path, gray) == [False] * 6  # still renders all six pages, none in colour
    assert pages(scan(ps, gray)[0]) == 6


def test_grayscale_covers_every_colour_operator(ps, tmp_path):
    peers.require("gs")
    src = b"""%!PS-Adobe-3.0
%%Pages: 6
%%EndComments
%%Page: 1 1
1 0 0 setrgbcolor 72 72 100 100 rectfill showpage
%%Page: 2 2
0 1 0 0 setcmykcolor 72 72 100 100 rectfill 0.3 1 1 sethsbcolor 200 200 50 50 rectfill showpage
%%Page: 3 3
72 72 translate 100 100 scale 2 2 8 [2 0 0 2 0 0] <ff0000 00ff00 0000ff ffff00> false 3 colorimage showpage
%%Page: 4 4
/DeviceRGB setcolorspace 0 0 1 setcolor 10 10 50 50 rectfill
[/Indexed /DeviceRGB 1 <ff0000 00ff00>] setcolorspace 1 setcolor 100 100 50 50 rectfill showpage
%%Page: 5 5
[/Separation /Spot /DeviceCMYK {dup 0 0 4 1 roll}] setcolorspace 1 setcolor 100 100 50 50 rectfill
<< /ShadingType 2 /ColorSpace /DeviceRGB /Coords [0 0 300 0]
   /Function << /FunctionType 2 /Domain [0 1] /C0 [1 0 0] /C1 [0 0 1] /N 1 >> >> shfill showpage
%%Page: 6 6
gsave 72 72 translate 100 100 scale /DeviceRGB setcolorspace
<< /ImageType 1 /Width 2 /Height 1 /BitsPerComponent 8 /ImageMatrix [2 0 0 1 0 0]
   /DataSource <ff0000 00ff00> /Decode [0 1 0 1 0 1] >> image grestore
[/DeviceN [/Cyan /Magenta] /DeviceCMYK {0 0}] setcolorspace 1 1 setcolor 300 300 50 50 rectfill showpage
%%EOF
"""
    assert _inkcov(tmp_path, src) == [True] * 6
    assert _inkcov(tmp_path, convert(ps.to_grayscale, src)) == [False] * 6


def test_ps2write_duplex_conversion_renders(ps, tmp_path):
    data = _gs(tmp_path, 3, "ps2write")
    out = convert(ps.to_duplex, data, TWO_SIDED_SHORT)
    assert scan(ps, out)[0] == tuple(PageRun(r.count, r.color, TWO_SIDED_SHORT, r.media, r.copies)
                                     for r in scan(ps, data)[0])
    assert len(_inkcov(tmp_path, out)) == 3
