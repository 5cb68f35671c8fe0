"""Document format detection: the pure module and its compiled twin, side by side.

Every test runs on both implementations. The compiled one is skipped when it is
not built, except when SPOOLPROXY_REQUIRE_EXT=1 (CI), where that is a failure.
Documents come from Ghostscript; without gs those tests skip, except when
SPOOLPROXY_REQUIRE_INTEROP=1 (CI).
"""
from __future__ import annotations

import array
import importlib
import mmap
import os
import shutil
import subprocess

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from spoolproxy import _twins
from spoolproxy.pdl import sniff as pure

PDF = "application/pdf"
PS = "application/postscript"
PCL = "application/vnd.hp-pcl"
PCLXL = "application/vnd.hp-pclxl"
PWG = "image/pwg-raster"
URF = "image/urf"
JPEG = "image/jpeg"
PNG = "image/png"
TEXT = "text/plain"
OCTET = "application/octet-stream"

UEL = b"\x1b%-12345X"


def _flag(name: str) -> bool:
    return os.environ.get(name, "") not in ("", "0")


def _compiled():
    """spoolproxy._ext.sniff, or None when it is not built (a failure under SPOOLPROXY_REQUIRE_EXT=1)."""
    try:
        return importlib.import_module("spoolproxy._ext.sniff")
    except ModuleNotFoundError as e:
        if _flag("SPOOLPROXY_REQUIRE_EXT"):
            pytest.fail(f"SPOOLPROXY_REQUIRE_EXT=1 but the extension is not built: {e}")
        return None


@pytest.fixture(params=["python", "cython"])
def sniff(request):
    if request.param == "python":
        return pure
    mod = _compiled()
    if mod is None:
        pytest.skip("spoolproxy._ext.sniff is not built (pip install -e . builds it)")
    return mod


# -- documents made by Ghostscript ---------------------------------------------------------

PAGE = b"""%!PS
/Helvetica findfont 24 scalefont setfont
72 720 moveto (spoolproxy sniff test) show
1 0 0 setrgbcolor 72 600 144 72 rectfill
showpage
"""

GS_DEVICES = {  # device -> what detect must say
    "pdfwrite": PDF,
    "ps2write": PS,
    "pxlmono": PCLXL,    # PJL wrapper, ENTER LANGUAGE = PCLXL, then ") HP-PCL XL;..."
    "pxlcolor": PCLXL,
    "ljet4": PCL,        # bare PCL 5: ESC E ESC & ...
    "ljet4pjl": PCL,     # PJL wrapper, ENTER LANGUAGE = PCL
    "pwgraster": PWG,
    "urf": URF,
    "jpeg": JPEG,
    "png16m": PNG,
}


@pytest.fixture(scope="session")
def gs_docs(tmp_path_factory) -> dict[str, bytes]:
    gs = shutil.which("gs")
    if gs is None:
        if _flag("SPOOLPROXY_REQUIRE_INTEROP"):
            pytest.fail("Ghostscript (gs) is not installed (Debian package ghostscript)")
        pytest.skip("Ghostscript (gs) is not installed")
    d = tmp_path_factory.mktemp("gs")
    (d / "page.ps").write_bytes(PAGE)
    docs = {}
    for device in GS_DEVICES:
        out = d / f"out.{device}"
        subprocess.run([gs, "-q", "-dBATCH", "-dNOPAUSE", "-dSAFER", "-r72", f"-sDEVICE={device}",
                        f"-sOutputFile={out}", str(d / "page.ps")],
                       check=True, capture_output=True, timeout=60)
        docs[device] = out.read_bytes()
    return docs


@pytest.mark.parametrize("device", list(GS_DEVICES))
def test_ghostscript_documents(sniff, gs_docs, device):
    assert sniff.detect(gs_docs[device]) == GS_DEVICES[device]


def test_ghostscript_pclxl_without_pjl(sniff, gs_docs):
    doc = gs_docs["pxlmono"]
    assert doc.startswith(UEL)  # Ghostscript wraps PCL XL in PJL
    bare = doc[doc.index(b") HP-PCL XL;"):]
    assert sniff.detect(bare) == PCLXL
    for binding in b"'(":  # ASCII and big-endian binary stream headers
        assert sniff.detect(bytes([binding]) + bare[1:]) == PCLXL


def test_ghostscript_pdf_in_pjl(sniff, gs_docs):
    pdf = gs_docs["pdfwrite"]
    assert sniff.detect(UEL + b"@PJL JOB NAME=\"x\"\r\n@PJL ENTER LANGUAGE=PDF\r\n" + pdf) == PDF
    # no ENTER: the bytes after the PJL lines decide
    assert sniff.detect(UEL + b"@PJL SET COPIES=2\r\n@PJL COMMENT hi\n" + pdf + UEL) == PDF
    assert sniff.detect(UEL + b"@PJL\r\n" + gs_docs["ljet4"]) == PCL


def test_only_the_window_is_read(sniff, gs_docs):
    pdf = gs_docs["pdfwrite"]
    assert sniff.detect(pdf + b"\x00" * (1 << 20)) == PDF
    assert sniff.detect(b"a" * sniff.WINDOW + pdf) == TEXT


# -- PJL ------------------------------------------------------------------------------------


@pytest.mark.parametrize("command, expected", [
    (b"@PJL ENTER LANGUAGE=PDF", PDF),
    (b"@PJL ENTER LANGUAGE = POSTSCRIPT", PS),
    (b"@PJL ENTER LANGUAGE=PCL", PCL),
    (b"@PJL ENTER LANGUAGE = PCLXL", PCLXL),
    (b"@pjl enter language=pclxl", PCLXL),
    (b"@PJL\tENTER \t LANGUAGE\t=\tPostScript", PS),
    (b"@PJL ENTER LANGUAGE=PCLXL trailing words", PCLXL),
])
def test_pjl_enter_names_the_language(sniff, command, expected):
    # the body says something else: ENTER wins
    for eol in (b"\n", b"\r\n"):
        assert sniff.detect(UEL + b"@PJL JOB\r\n" + command + eol + b"garbage\x00\x01") == expected
    assert sniff.detect(UEL + command) == expected  # the ENTER line may end the window


@pytest.mark.parametrize("data, expected", [
    (UEL + b"@PJL ENTER LANGUAGE=ZJS\n%PDF-1.4\n", PDF),         # unknown language: look at the body
    (UEL + b"@PJL ENTER LANGUAGE=ZJS\n\x00\x01\x02", OCTET),
    (UEL + b"@PJL ENTER LANGUAGE=\n%!PS\n", PS),
    (UEL + b"@PJL SET RESOLUTION=600\n@PJL SET PAGEPROTECT=AUTO\n\x1bE\x1b&l0O", PCL),
    (UEL + b"\x1bE\x1b&l0O", PCL),                                 # UEL alone before PCL
    (UEL + b"@PJL\r\n\r\n" + UEL + b"@PJL ENTER LANGUAGE=PDF\r\n", PDF),
    (b"@PJL ENTER LANGUAGE=PCLXL\n", PCLXL),                       # PJL without the UEL
    (UEL + b"@PJL INFO STATUS\r\n" + UEL, OCTET),                  # only PJL: nothing to print
    (UEL, OCTET),
    (UEL + b"@PJL ENTERLANGUAGE=PDF\n", OCTET),                    # not an ENTER command
    (UEL + b"@PJL COMMENT ENTER LANGUAGE=PDF\n", OCTET),
    (UEL + b"@PJL ENTER LANGUAGE=PDFX\n", OCTET),
    (UEL + b"@PJL SET COPIES=1\nhello world\n", TEXT),
])
def test_pjl_without_a_known_enter(sniff, data, expected):
    assert sniff.detect(data) == expected


# -- magic numbers ---------------------------------------------------------------------------


@pytest.mark.parametrize("data, expected", [
    (b"%PDF-1.7\n", PDF),
    (b"%PDF-", PDF),
    (b"%!PS-Adobe-3.0\n", PS),
    (b"%!", PS),
    (b") HP-PCL XL;2;0;Comment\n\xd1", PCLXL),
    (b"( HP-PCL XL;2;0\n", PCLXL),
    (b"' HP-PCL XL;2;0\n", PCLXL),
    (b") HP-PCL XL", TEXT),                 # no ";": not a stream header, just words
    (b"\x1bE\x1b&l1O", PCL),
    (b"\x1b&l0O", PCL),
    (b"\x1b*r1A", PCL),
    (b"\x1b", OCTET),
    (b"RaS2PwgRaster\x00", PWG),
    (b"UNIRAST\x00\x00\x00\x00\x01", URF),
    (b"UNIRAST", TEXT),                     # without the NUL it is just a word
    (b"\xff\xd8\xff\xe0\x00\x10JFIF", JPEG),
    (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", PNG),
])
def test_magic_numbers(sniff, data, expected):
    assert sniff.detect(data) == expected


def test_pdf_header_after_junk(sniff):
    limit = sniff.PDF_HEADER_WINDOW
    assert sniff.detect(b"\x00" * (limit - 1) + b"%PDF-1.4\n") == PDF   # starts at 1023
    assert sniff.detect(b"\x00" * limit + b"%PDF-1.4\n") == OCTET       # starts at 1024
    assert sniff.detect(b"From: mailer\r\n\r\n%PDF-1.4\n") == PDF
    assert sniff.detect(b"\x00" * 10 + b"%PDF") == OCTET


# -- text ------------------------------------------------------------------------------------


@pytest.mark.parametrize("data, expected", [
    (b"Hello, world\n", TEXT),
    (b"col1\tcol2\r\npage 1\fpage 2\n", TEXT),
    ("Grüße, 日本語, emoji \U0001F5A8\n".encode(), TEXT),
    (b"\xef\xbb\xbfwith a byte order mark\n", TEXT),
    (b"", OCTET),
    (b"nul\x00inside", OCTET),
    (b"vertical\x0btab", OCTET),
    (b"delete\x7f", OCTET),
    (b"escape \x1b[1m", OCTET),
    ("latin-1 caf\u00e9".encode("latin-1"), OCTET),
    (b"overlong \xc0\xaf", OCTET),
    (b"surrogate \xed\xa0\x80", OCTET),
    (b"past U+10FFFF \xf4\x90\x80\x80", OCTET),
    (b"cut \xe2\x82", OCTET),               # the whole document: an incomplete character is not text
    ("utf-16".encode("utf-16"), OCTET),
])
def test_text(sniff, data, expected):
    assert sniff.detect(data) == expected


def test_character_cut_by_the_window_is_text(sniff):
    w = sniff.WINDOW
    euro = "€".encode()  # 3 bytes
    for keep in (1, 2):
        doc = b"a" * (w - keep) + euro + b" more text\n"
        assert sniff.detect(doc) == TEXT
        assert sniff.detect(doc[:w]) == OCTET  # the same bytes as the whole document: incomplete
    assert sniff.detect(b"a" * (w - 1) + b"\xc0" + b"x") == TEXT  # a cut lead byte is not checked
    assert sniff.detect(b"a" * (w - 2) + b"\xe0\x80" + b"x") == TEXT
    assert sniff.detect(b"a" * (w - 2) + b"\x80\x80" + b"x") == OCTET  # stray continuation bytes


# -- inputs ------------------------------------------------------------------------------------


def test_bytes_like_inputs(sniff, tmp_path):
    doc = b"%PDF-1.7\n" + b"\x00" * 5000
    assert sniff.detect(bytearray(doc)) == PDF
    assert sniff.detect(memoryview(doc)) == PDF
    assert sniff.detect(memoryview(doc)[1:]) == OCTET
    assert sniff.detect(array.array("B", b"%!PS")) == PS
    assert sniff.detect(memoryview(b"%!PS").cast("H")) == PS  # items of 2 bytes: still read as bytes
    f = tmp_path / "doc.pdf"
    f.write_bytes(doc)
    with open(f, "rb") as fh, mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as m:
        assert sniff.detect(m) == PDF


def test_bad_inputs_raise_the_same_errors(sniff):
    with pytest.raises(TypeError):
        sniff.detect("%PDF-1.7")
    with pytest.raises(TypeError):
        sniff.detect(None)
    with pytest.raises(BufferError):
        sniff.detect(memoryview(b"%PDF-1.7")[::2])


# -- the two implementations agree ----------------------------------------------------------------

ATOMS = [UEL, b"@PJL", b"@pjl", b" ENTER", b" LANGUAGE", b"=", b" ", b"\t", b"\r\n", b"\n", b"PDF",
         b"PCLXL", b"pcl", b"POSTSCRIPT", b"%PDF-", b"%!", b"\x1bE", b") HP-PCL XL;", b"RaS2",
         b"UNIRAST\x00", b"\xff\xd8\xff", b"\x89PNG\r\n\x1a\n", b"text", "é€\U0001F5A8".encode(),
         b"\xed\xa0\x80", b"\xf4\x90", b"\xc0", b"\x00", b"\x7f", b"\x0c", b"\xe2\x82"]

documents = st.one_of(
    st.binary(max_size=5000),
    st.lists(st.sampled_from(ATOMS), max_size=30).map(b"".join),
    # around the window's end, where a character may be cut
    st.tuples(st.integers(pure.WINDOW - 8, pure.WINDOW + 2),
              st.lists(st.sampled_from(ATOMS), max_size=4).map(b"".join))
      .map(lambda t: b"a" * t[0] + t[1]),
    # around the end of the PDF header window
    st.tuples(st.integers(pure.PDF_HEADER_WINDOW - 6, pure.PDF_HEADER_WINDOW + 2), st.binary(max_size=8))
      .map(lambda t: b"\x01" * t[0] + b"%PDF-" + t[1]),
)


@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(documents)
def test_implementations_agree(data):
    expected = pure.detect(data)
    assert isinstance(expected, str) and "/" in expected
    compiled = _compiled()
    if compiled is not None:
        assert compiled.detect(data) == expected
        assert compiled.detect(bytearray(data)) == expected


# -- which implementation is used -----------------------------------------------------------------


def test_twins_load_honours_no_extensions(monkeypatch):
    monkeypatch.setenv("SPOOLPROXY_NO_EXTENSIONS", "1")
    mod = _twins.load("spoolproxy.pdl.sniff")
    assert mod is pure and _twins.implementation(mod) == "python"
    monkeypatch.setenv("SPOOLPROXY_NO_EXTENSIONS", "0")
    mod = _twins.load("spoolproxy.pdl.sniff")
    compiled = _compiled()
    assert mod is (compiled or pure)
    assert _twins.implementation(mod) == ("cython" if compiled else "python")


@pytest.mark.parametrize("error", [ModuleNotFoundError("No module named 'libfoo'", name="libfoo"),
                                   ImportError("undefined symbol: foo", name="spoolproxy._ext.sniff")])
def test_twins_load_does_not_hide_a_broken_extension(monkeypatch, error):
    """A compiled module that is there but does not import is an error, not a fallback."""
    real = importlib.import_module

    def fake(name):
        if name == "spoolproxy._ext.sniff":
            raise error
        return real(name)

    monkeypatch.delenv("SPOOLPROXY_NO_EXTENSIONS", raising=False)
    monkeypatch.setattr(_twins.importlib, "import_module", fake)
    with pytest.raises(ImportError) as info:
        _twins.load("spoolproxy.pdl.sniff")
    assert info.value is error


@pytest.mark.parametrize("missing", ["spoolproxy._ext.sniff", "spoolproxy._ext"])
def test_twins_load_falls_back_when_not_built(monkeypatch, missing):
    real = importlib.import_module

    def fake(name):
        if name == "spoolproxy._ext.sniff":
            raise ModuleNotFoundError(f"No module named {missing!r}", name=missing)
        return real(name)

    monkeypatch.delenv("SPOOLPROXY_NO_EXTENSIONS", raising=False)
    monkeypatch.setattr(_twins.importlib, "import_module", fake)
    assert _twins.load("spoolproxy.pdl.sniff") is pure


def test_pdl_exports_the_selected_implementation():
    import spoolproxy.pdl as pdl

    expected = "python" if _flag("SPOOLPROXY_NO_EXTENSIONS") or _compiled() is None else "cython"
    assert pdl.IMPLEMENTATION == expected
    assert pdl.detect is (pure.detect if expected == "python" else _compiled().detect)
