"""pdl.conversion_targets and pdl.convert_format against real Ghostscript: every
advertised source/target pair, in colour and in gray, checked with the engine's own
analyzer; unsupported pairs and failing Ghostscript runs as ConversionError.

Without gs these tests skip, except under SPOOLPROXY_REQUIRE_INTEROP=1 (CI), where
that is a failure. Pages are small (2 in square) so that the raster devices are quick.
"""
from __future__ import annotations

import io
import subprocess
from pathlib import Path

import pytest

import peers
from spoolproxy import pdl
from spoolproxy.pdl import ghostscript as gs

PDF, PS, PCL = "application/pdf", "application/postscript", "application/vnd.hp-pcl"
SIDE = 144  # points: 2 in, 5080 PWG units
# three pages, the second one in colour
PROGRAM = f"""%!PS
<< /PageSize [{SIDE} {SIDE}] >> setpagedevice
0 setgray /Helvetica findfont 24 scalefont setfont 10 60 moveto (One) show showpage
1 0 0 setrgbcolor 20 20 100 100 rectfill showpage
0.5 setgray 20 20 100 100 rectfill showpage
"""
COLORS = [False, True, False]


@pytest.fixture(scope="module")
def sources(tmp_path_factory) -> dict[str, Path]:
    """The three-page document as PDF and as PostScript, made by gs."""
    gs_path = peers.require("gs")
    d = tmp_path_factory.mktemp("sources")
    (d / "doc.src").write_text(PROGRAM)
    made = {}
    for fmt, device, name in ((PDF, "pdfwrite", "doc.pdf"), (PS, "ps2write", "doc.ps")):
        subprocess.run([gs_path, "-q", "-dSAFER", "-dBATCH", "-dNOPAUSE", f"-sDEVICE={device}",
                        f"-sOutputFile={d / name}", str(d / "doc.src")], check=True, capture_output=True,
                       timeout=60)
        a = pdl.analyze(d / name)
        assert (a.format, list(a.page_colors())) == (fmt, COLORS)
        made[fmt] = d / name
    return made


def write(tmp_path: Path, name: str, data: bytes | str) -> Path:
    p = tmp_path / name
    p.write_bytes(data.encode() if isinstance(data, str) else data)
    return p


def test_conversion_targets(sources):
    targets = ("application/pdf", "application/postscript", "application/vnd.hp-pclxl", "image/pwg-raster",
               "application/vnd.hp-pcl")
    assert pdl.conversion_targets(PDF) == pdl.conversion_targets(PS) == targets == tuple(gs.CONVERSIONS)
    # what gs cannot read converts to nothing
    for fmt in ("application/vnd.hp-pcl", "application/vnd.hp-pclxl", "image/pwg-raster", "image/urf",
                "image/jpeg", "text/plain", "application/octet-stream"):
        assert pdl.conversion_targets(fmt) == ()


@pytest.mark.parametrize("gray", [False, True], ids=["color", "gray"])
@pytest.mark.parametrize("target", list(gs.CONVERSIONS))
@pytest.mark.parametrize("source", gs.CONVERSION_SOURCES)
def test_every_pair(sources, tmp_path, source, target, gray):
    dst = tmp_path / "out"
    pdl.convert_format(sources[source], dst, target, gray=gray)
    a = pdl.analyze(dst)
    assert a.format == target and a.pages == 3 and a.undecided_pages == 0
    # ljet4 writes monochrome PCL whatever it is asked
    assert list(a.page_colors()) == (COLORS if not gray and target != PCL else [False] * 3)
    if target != PCL:  # PCL 5 has no custom page size: gs picks the nearest paper it knows
        assert {r.media for r in a.runs} == {(5080, 5080)}


def test_a_pjl_job_and_a_file_object(sources, tmp_path):
    uel = b"\x1b%-12345X"
    job = (uel + b"@PJL JOB\r\n@PJL SET DUPLEX=ON\r\n@PJL ENTER LANGUAGE=POSTSCRIPT\r\n"
           + sources[PS].read_bytes() + uel + b"@PJL EOJ\r\n" + uel)
    pdl.convert_format(write(tmp_path, "job.prn", job), tmp_path / "job.pdf", PDF)
    a = pdl.analyze(tmp_path / "job.pdf")
    assert (a.format, list(a.page_colors())) == (PDF, COLORS)
    pdl.convert_format(io.BytesIO(sources[PDF].read_bytes()), tmp_path / "out.pwg", "image/pwg-raster")
    assert pdl.analyze(tmp_path / "out.pwg").pages == 3


def test_unsupported_pairs(sources, tmp_path):
    dst = tmp_path / "out"
    pcl = write(tmp_path, "doc.pcl", b"\x1bEpage\x0c\x1bE")
    with pytest.raises(pdl.ConversionError, match=f"cannot convert {PCL} to {PDF}"):
        pdl.convert_format(pcl, dst, PDF)
    with pytest.raises(pdl.ConversionError, match=f"cannot convert {PDF} to image/urf"):
        pdl.convert_format(sources[PDF], dst, "image/urf")
    with pytest.raises(pdl.ConversionError, match="text/plain"):
        pdl.convert_format(write(tmp_path, "t.txt", "hello\n"), dst, PDF)
    with pytest.raises(pdl.ConversionError, match="empty"):
        pdl.convert_format(write(tmp_path, "empty", b""), dst, PDF)
    mixed = b"\x1b%-12345X@PJL ENTER LANGUAGE=PCL\r\n\x1bEx\x0c\x1bE\x1b%-12345X@PJL ENTER LANGUAGE=POSTSCRIPT\r\n"
    with pytest.raises(pdl.ConversionError, match="2 sections"):
        pdl.convert_format(write(tmp_path, "mixed.prn", mixed + PROGRAM.encode()), dst, PDF)
    assert not dst.exists()


@pytest.mark.parametrize("name, data, message", [
    ("bad.pdf", b"%PDF-1.4\nnothing here\n", "Couldn't initialise file"),
    ("bad.ps", "%!PS\nthisisnotanoperator\n", "undefined"),
    ("nopages.ps", "%!PS\n", "no output"),  # gs exits 0 but the raster device writes nothing
])
def test_ghostscript_failures(sources, tmp_path, name, data, message):
    src, dst = write(tmp_path, name, data), tmp_path / "out.pwg"
    with pytest.raises(gs.GhostscriptConversionError, match=message) as e:
        pdl.convert_format(src, dst, "image/pwg-raster")
    assert isinstance(e.value, pdl.ConversionError) and "to image/pwg-raster" in str(e.value)
    assert not dst.exists()


def test_timeout(sources, tmp_path):
    loop = write(tmp_path, "loop.ps", "%!PS\n{} loop\n")
    with pytest.raises(gs.GhostscriptTimeout, match=f"cannot convert {PS} to {PDF}: .*longer than") as e:
        pdl.convert_format(loop, tmp_path / "out.pdf", PDF, timeout=1)
    assert isinstance(e.value, pdl.ConversionError)
    assert not (tmp_path / "out.pdf").exists()


def test_without_ghostscript(sources, tmp_path, monkeypatch):
    monkeypatch.setenv("SPOOLPROXY_GS", str(tmp_path / "no-such-gs"))
    assert pdl.conversion_targets(PDF) == ()
    with pytest.raises(gs.GhostscriptUnavailable) as e:
        pdl.convert_format(sources[PDF], tmp_path / "out.pdf", PDF)
    assert isinstance(e.value, pdl.ConversionError) and PDF in str(e.value)
    monkeypatch.delenv("SPOOLPROXY_GS")
    monkeypatch.setenv("PATH", str(tmp_path))  # executable() finds no gs at all
    assert pdl.conversion_targets(PS) == ()
    with pytest.raises(pdl.ConversionError, match="not installed"):
        pdl.convert_format(sources[PS], tmp_path / "out.pdf", PDF)
