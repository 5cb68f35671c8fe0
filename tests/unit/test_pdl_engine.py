"""The engine's dispatcher with the real scanners: PJL sections in several
languages, the Ghostscript fallback for PostScript without DSC, and conversions
that rewrite PJL and the language together. Runs on whichever twins the process
loads (CI runs this directory again with SPOOLPROXY_NO_EXTENSIONS=1)."""
from __future__ import annotations

import pytest

import peers
from spoolproxy import pdl

UEL = b"\x1b%-12345X"
E = b"\x1b"


def write(tmp_path, name, data):
    p = tmp_path / name
    p.write_bytes(data)
    return p


def pcl_pages(n: int) -> bytes:
    return E + b"E" + b"".join(b"page %d\x0c" % i for i in range(n)) + E + b"E"


DSC_PS = (b"%!PS-Adobe-3.0\n%%Pages: 2\n%%EndComments\n"
          b"%%Page: 1 1\n0 0 1 setrgbcolor 0 0 300 300 rectfill showpage\n"
          b"%%Page: 2 2\n0 setgray 0 0 300 300 rectfill showpage\n%%EOF\n")


def test_two_languages_with_their_own_pjl(tmp_path):
    job = (UEL + b"@PJL JOB\r\n@PJL SET QTY=2\r\n@PJL ENTER LANGUAGE=PCL\r\n" + pcl_pages(3) + UEL
           + b"@PJL ENTER LANGUAGE=POSTSCRIPT\r\n" + DSC_PS + UEL + b"@PJL EOJ\r\n" + UEL)
    a = pdl.analyze(write(tmp_path, "job.prn", job), ghostscript=False)
    assert a.pages == 5 and a.impressions == 10  # QTY stays set inside JOB ... EOJ
    assert list(a.page_colors())[:3] == [False, False, False]
    assert "several languages" in a.warnings[0]


def test_postscript_without_dsc_is_counted_by_ghostscript(tmp_path):
    peers.require("gs")
    ps = write(tmp_path, "nodsc.ps", b"%!\n1 0 0 setrgbcolor 0 0 400 400 rectfill showpage\n"
               b"0 setgray 0 0 400 400 rectfill showpage\n0.5 setgray 0 0 400 400 rectfill showpage\n")
    a = pdl.analyze(ps)
    assert a.pages == 3 and list(a.page_colors()) == [True, False, False]
    with pytest.raises(pdl.UnsupportedFormat):
        pdl.analyze(ps, ghostscript=False)


def test_postscript_colour_is_decided_by_ghostscript(tmp_path):
    peers.require("gs")
    a = pdl.analyze(write(tmp_path, "dsc.ps", DSC_PS))
    assert list(a.page_colors()) == [True, False]
    assert list(pdl.analyze(write(tmp_path, "dsc2.ps", DSC_PS), ghostscript=False).page_colors()) == [None, None]


def test_duplex_conversion_rewrites_pjl_and_the_language(tmp_path):
    src = write(tmp_path, "in.prn", UEL + b"@PJL SET DUPLEX=OFF\r\n@PJL ENTER LANGUAGE=PCL\r\n"
                + pcl_pages(2) + UEL)
    dst = tmp_path / "out.prn"
    pdl.convert_duplex(src, dst, pdl.TWO_SIDED_SHORT)
    out = dst.read_bytes()
    assert b"@PJL SET DUPLEX=ON" in out and b"@PJL SET BINDING=SHORTEDGE" in out and b"DUPLEX=OFF" not in out
    a = pdl.analyze(dst, ghostscript=False)
    assert a.pages == 2 and {r.sides for r in a.runs} == {pdl.TWO_SIDED_SHORT} and a.sheets == 1


def test_grayscale_conversion_sets_rendermode(tmp_path):
    src = write(tmp_path, "in.prn", UEL + b"@PJL SET RENDERMODE=COLOR\r\n@PJL ENTER LANGUAGE=PCL\r\n"
                + E + b"E" + E + b"*r3U" + E + b"*v2S" + b"red\x0c" + UEL)
    assert list(pdl.analyze(src, ghostscript=False).page_colors()) == [True]
    dst = tmp_path / "out.prn"
    pdl.convert_grayscale(src, dst)
    assert b"@PJL SET RENDERMODE=GRAYSCALE" in dst.read_bytes()
    assert list(pdl.analyze(dst, ghostscript=False).page_colors()) == [False]


def test_without_ghostscript_the_count_stands_and_colour_stays_undecided(tmp_path, monkeypatch):
    monkeypatch.setenv("SPOOLPROXY_GS", str(tmp_path / "no-such-gs"))
    a = pdl.analyze(write(tmp_path, "dsc.ps", DSC_PS))
    assert a.pages == 2 and list(a.page_colors()) == [None, None]
    assert "left undecided" in a.warnings[-1]


def test_colour_of_an_rgb_jpeg_is_decided_by_ghostscript(tmp_path):
    gs = peers.require("gs")
    import subprocess
    for name, color in (("c", True), ("g", False)):
        # an RGB JPEG either way (jpeg device): only the pixels tell a gray photo from a colour one
        src = tmp_path / f"{name}.ps"
        setc = "1 0 0 setrgbcolor" if color else "0.4 0.4 0.4 setrgbcolor"
        src.write_text(f"%!\n<< /PageSize [200 100] >> setpagedevice {setc} 20 20 120 60 rectfill showpage\n")
        jpg = tmp_path / f"{name}.jpg"
        subprocess.run([gs, "-q", "-dSAFER", "-dBATCH", "-dNOPAUSE", "-sDEVICE=jpeg", "-r72",
                        f"-sOutputFile={jpg}", str(src)], check=True, timeout=60)
        assert list(pdl.analyze(jpg, ghostscript=False).page_colors()) == [None]
        assert list(pdl.analyze(jpg).page_colors()) == [color]
