"""The sandboxed Ghostscript runner (spoolproxy.pdl.ghostscript), against real gs.

Without gs these tests skip, except under SPOOLPROXY_REQUIRE_INTEROP=1 (CI), where
that is a failure. Pure Python only: there is no compiled twin.
"""
from __future__ import annotations

import os
import subprocess
import zlib
from pathlib import Path

import pytest

import peers
from peers import build_pdf
from spoolproxy.pdl import ghostscript as gs
from spoolproxy.pdl.model import ConversionError, PdlError

GS_ICC_DIRS = sorted(Path("/usr/share/ghostscript").glob("*/iccprofiles"))


@pytest.fixture(scope="module")
def gs_path() -> str:
    return peers.require("gs")


def write(tmp_path: Path, name: str, data: bytes | str) -> Path:
    p = tmp_path / name
    p.write_bytes(data.encode() if isinstance(data, str) else data)
    return p


def make_pdf_from_ps(gs_path: str, tmp_path: Path, ps: str, name: str = "doc.pdf") -> Path:
    src = write(tmp_path, name + ".ps", ps)
    out = tmp_path / name
    subprocess.run([gs_path, "-q", "-dSAFER", "-dBATCH", "-dNOPAUSE", "-sDEVICE=pdfwrite",
                    f"-sOutputFile={out}", str(src)], check=True, capture_output=True, timeout=60)
    return out


def colors(pages):
    return [gs.is_color(p) for p in pages]


# -- inkcov ---------------------------------------------------------------------------------------

PAGES_PS = """%!PS
0.5 0.5 0.5 setrgbcolor 0 0 300 300 rectfill showpage
0.5 setgray 0 0 300 300 rectfill showpage
1 0 0 setrgbcolor 0 0 300 300 rectfill showpage
0 0 0 setrgbcolor /Helvetica findfont 40 scalefont setfont 20 20 moveto (Gray text) show showpage
0 0 0 0.5 setcmykcolor 0 0 300 300 rectfill showpage
gsave 100 100 scale 2 2 8 [2 0 0 2 0 0] <808080 404040 202020 C0C0C0> false 3 colorimage grestore showpage
gsave 100 100 scale 2 2 8 [2 0 0 2 0 0] <808080 404040 202020 C0C000> false 3 colorimage grestore showpage
showpage
"""
PAGES_COLOR = [False, False, True, False, False, False, True, False]


@pytest.mark.parametrize("kind", ["pdf", "ps"])
def test_inkcov_neutral_rgb_is_black_only(gs_path, tmp_path, kind):
    doc = (make_pdf_from_ps(gs_path, tmp_path, PAGES_PS) if kind == "pdf"
           else write(tmp_path, "doc.ps", PAGES_PS))
    pages = gs.inkcov(doc)
    assert colors(pages) == PAGES_COLOR
    c, m, y, k = pages[0]  # 0.5 0.5 0.5 setrgbcolor: K only, not rich black
    assert (c, m, y) == (0, 0, 0) and k > 0.1
    assert pages[-1] == (0, 0, 0, 0)  # blank page
    assert pages[2][1] > 0.1 and pages[2][2] > 0.1 and pages[2][3] == 0  # red: M + Y


def test_inkcov_without_the_flags_would_call_gray_colour(gs_path, tmp_path):
    # why INKCOV_FLAGS/INKCOV_SETUP exist: plain inkcov makes a neutral RGB gray rich black
    doc = write(tmp_path, "g.ps", "%!PS\n0.5 0.5 0.5 setrgbcolor 0 0 300 300 rectfill showpage\n")
    out = subprocess.run([gs_path, "-q", "-dSAFER", "-dBATCH", "-dNOPAUSE", "-sDEVICE=inkcov",
                          "-sOutputFile=-", str(doc)], capture_output=True, check=True, timeout=60).stdout
    assert colors(gs.parse_inkcov(out)) == [True]
    assert colors(gs.inkcov(doc)) == [False]


@pytest.mark.skipif(not GS_ICC_DIRS, reason="Ghostscript's ICC profiles are not installed")
def test_inkcov_icc_cal_lab_grays(gs_path, tmp_path):
    icc_dir = GS_ICC_DIRS[-1]
    srgb, sgray = (icc_dir / "srgb.icc").read_bytes(), (icc_dir / "sgray.icc").read_bytes()
    n = 6
    res = (f"<< /ColorSpace << /C0 [/ICCBased {3 + 2 * n} 0 R] /C1 [/ICCBased {4 + 2 * n} 0 R] "
           "/L [/Lab << /WhitePoint [0.9505 1 1.089] >>] /CR [/CalRGB << /WhitePoint [0.9505 1 1.089] >>] "
           "/CG [/CalGray << /WhitePoint [0.9505 1 1.089] >>] >> >>")
    extra = [b"<< /N 3 /Length %d >>\nstream\n" % len(srgb) + srgb + b"\nendstream",
             b"<< /N 1 /Length %d >>\nstream\n" % len(sgray) + sgray + b"\nendstream"]
    contents = [b"/C0 cs 0.5 0.5 0.5 sc 0 0 100 100 re f", b"/C1 cs 0.5 sc 0 0 100 100 re f",
                b"/L cs 50 0 0 sc 0 0 100 100 re f", b"/CR cs 0.5 0.5 0.5 sc 0 0 100 100 re f",
                b"/CG cs 0.5 sc 0 0 100 100 re f", b"/C0 cs 1 0 0 sc 0 0 100 100 re f"]
    # (no chromatic Lab page: gs 10.00's PDF interpreter renders Lab colours oddly, and
    # inkcov with UseFastColor can even report a chromatic Lab colour as K only)
    assert len(contents) == n
    doc = write(tmp_path, "icc.pdf", build_pdf(contents, res, extra))
    assert colors(gs.inkcov(doc)) == [False, False, False, False, False, True]


def test_inkcov_page_range(gs_path, tmp_path):
    doc = make_pdf_from_ps(gs_path, tmp_path, PAGES_PS)
    assert colors(gs.inkcov(doc, first=3, last=3)) == [True]
    assert colors(gs.inkcov(doc, first=6)) == PAGES_COLOR[5:]
    assert colors(gs.inkcov(doc, last=2)) == PAGES_COLOR[:2]
    with pytest.raises(ValueError):
        gs.inkcov(doc, first=3, last=2)
    with pytest.raises(TypeError):
        gs.inkcov(doc, first=0)


def test_inkcov_copies_give_one_entry_each(gs_path, tmp_path):
    doc = write(tmp_path, "c.ps", "%!PS\n/#copies 3 def 1 0 0 setrgbcolor 0 0 9 9 rectfill showpage\n")
    assert len(gs.inkcov(doc)) == 3
    assert gs.page_count(doc) == 1


def test_inkcov_output_cannot_be_forged_by_print(gs_path, tmp_path):
    # a program printing inkcov-looking lines to stdout must not add pages
    doc = write(tmp_path, "f.ps", "%!PS\n( 0.00000  0.00000  0.00000  0.10000 CMYK OK\\n) print\n"
                                  "1 0 0 setrgbcolor 0 0 300 300 rectfill showpage\n")
    assert colors(gs.inkcov(doc)) == [True]


def test_is_color_threshold():
    assert not gs.is_color((0.001, 0.001, 0.001, 0.5))
    assert gs.is_color((0.0011, 0, 0, 0))
    assert gs.is_color((0, 0, 0.002, 0))
    assert not gs.is_color((0, 0, 0, 1.0))


def test_parse_inkcov_skips_other_lines():
    out = b"junk\n 0.1 0.2 0.3 0.4 CMYK OK\n 1 2 x 4 CMYK OK\n0.5 0.5 0.5 0.5 CMYK OK\n0 0 0 0 RGB\n"
    assert gs.parse_inkcov(out) == [(0.1, 0.2, 0.3, 0.4), (0.5, 0.5, 0.5, 0.5)]


# -- page counts -----------------------------------------------------------------------------------


def test_page_count_pdf_and_ps(gs_path, tmp_path):
    pdf = peers.make_pdf(tmp_path / "p17.pdf", pages=17)
    assert gs.page_count(pdf) == 17
    bare = write(tmp_path, "nodsc.ps", "%!\n1 1 5 { pop 0 0 10 10 rectfill showpage } for\n")
    assert gs.page_count(bare) == 5
    embedded = write(tmp_path, "prefixed.pdf", b"junk before\n" + pdf.read_bytes())
    assert gs.page_count(embedded) == 17


def test_page_count_counts_past_the_message_bound(gs_path, tmp_path, monkeypatch):
    monkeypatch.setattr(gs, "MAX_MESSAGES", 200)  # fewer bytes than the bbox lines of 40 pages
    doc = write(tmp_path, "many.ps", "%!\n1 1 40 { pop showpage } for\n")
    assert gs.page_count(doc) == 40


def test_page_count_of_an_odd_file_name(gs_path, tmp_path):
    pdf = peers.make_pdf(tmp_path / "x.pdf", pages=2)
    odd = tmp_path / "-a (b) \\c %d.pdf"
    odd.write_bytes(pdf.read_bytes())
    assert gs.page_count(odd) == 2
    assert len(gs.inkcov(odd)) == 2


@pytest.mark.parametrize("n", [0, 5, 64, 200])
def test_line_counter_any_chunking(n):
    marker = b"%%BoundingBox:"
    text = b"".join([b"%%BoundingBox: 0 0 1 1\n", b"x%%BoundingBox: no\n", b"%%Bounding\n",
                     b"%%HiResBoundingBox: 1\n"] * 3) + b"%%BoundingBox:"
    expected = 4
    pieces = [text] if n == 0 else [text[i:i + n] for i in range(0, len(text), n)]
    for size in ([1] if n == 0 else []):
        pieces = [text[i:i + size] for i in range(len(text))]
    c = gs._LineCounter(marker)
    for p in pieces:
        c.feed(p)
    assert c.count == expected


# -- errors and the sandbox ----------------------------------------------------------------------


def test_errors_are_pdl_errors_with_gs_message(gs_path, tmp_path):
    bad = write(tmp_path, "bad.ps", "%!PS\nthisisnotanoperator\n")
    with pytest.raises(gs.GhostscriptError, match="undefined") as e:
        gs.inkcov(bad)
    assert isinstance(e.value, PdlError)
    with pytest.raises(gs.GhostscriptError):
        gs.page_count(tmp_path / "missing.pdf")
    with pytest.raises(gs.GhostscriptError):
        gs.page_count(write(tmp_path, "broken.pdf", b"%PDF-1.4\nnothing here\n"))


def test_safer_forbids_reading_files(gs_path, tmp_path):
    secret = write(tmp_path, "secret.txt", "secret")
    doc = write(tmp_path, "read.ps", f"%!PS\n({secret}) (r) file 100 string readstring pop print showpage\n")
    with pytest.raises(gs.GhostscriptError, match="invalidfileaccess"):
        gs.inkcov(doc)


def test_timeout_kills_the_process_group(gs_path, tmp_path, monkeypatch):
    started = []
    spawn = gs._spawn

    def recording(argv, workdir):
        proc = spawn(argv, workdir)
        started.append((proc, workdir))
        return proc

    monkeypatch.setattr(gs, "_spawn", recording)
    loop = write(tmp_path, "loop.ps", "%!PS\n{ (spin spin spin spin\\n) print } loop\n")
    with pytest.raises(gs.GhostscriptTimeout, match="longer than"):
        gs.inkcov(loop, timeout=1)
    (proc, workdir), = started
    assert proc.returncode is not None  # reaped
    with pytest.raises(ProcessLookupError):
        os.killpg(proc.pid, 0)  # nothing of its group is left
    assert not os.path.exists(workdir)  # the private directory is gone


def test_conversion_timeout_is_both_kinds(gs_path, tmp_path):
    loop = write(tmp_path, "loop.pdf", "%!PS\n{} loop\n")  # PostScript named .pdf: gs runs it
    with pytest.raises(gs.GhostscriptTimeout) as e:
        gs.pdf_to_gray(loop, tmp_path / "out.pdf", timeout=1)
    assert isinstance(e.value, ConversionError) and isinstance(e.value, gs.GhostscriptConversionError)
    assert not (tmp_path / "out.pdf").exists()


def test_gs_missing(tmp_path, monkeypatch):
    monkeypatch.setenv("SPOOLPROXY_GS", str(tmp_path / "no-such-gs"))
    doc = write(tmp_path, "d.ps", "%!\nshowpage\n")
    with pytest.raises(gs.GhostscriptUnavailable):
        gs.inkcov(doc)
    with pytest.raises(TypeError):
        gs.inkcov(doc, timeout=0)


def test_stdin_is_not_the_callers(gs_path, tmp_path):
    # a program reading %stdin gets end of file at once instead of waiting
    doc = write(tmp_path, "stdin.ps", "%!PS\n(%stdin) (r) file 10 string readstring pop length 0 eq "
                                      "{ 0 0 9 9 rectfill } { 1 0 0 setrgbcolor 0 0 9 9 rectfill } ifelse showpage\n")
    assert colors(gs.inkcov(doc, timeout=30)) == [False]


# -- conversion -------------------------------------------------------------------------------------


def test_pdf_to_gray(gs_path, tmp_path):
    src = peers.make_pdf(tmp_path / "c.pdf", pages=3, color=True)
    assert colors(gs.inkcov(src)) == [True] * 3
    dst = tmp_path / "g.pdf"
    gs.pdf_to_gray(src, dst)
    assert dst.read_bytes().startswith(b"%PDF-")
    assert colors(gs.inkcov(dst)) == [False] * 3
    assert gs.page_count(dst) == 3


def test_pdf_to_gray_failure_leaves_nothing(gs_path, tmp_path):
    src = write(tmp_path, "bad.pdf", b"%PDF-1.4\n" + zlib.compress(b"x" * 100))
    dst = tmp_path / "out.pdf"
    with pytest.raises(gs.GhostscriptConversionError) as e:
        gs.pdf_to_gray(src, dst)
    assert isinstance(e.value, ConversionError) and isinstance(e.value, gs.GhostscriptError)
    assert not dst.exists()
