"""PJL headers (spoolproxy.pdl.pjl) and the dispatcher's handling of formats
without a scanner module (plain text, JPEG, PNG)."""
from __future__ import annotations

import io
import struct
import zlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from spoolproxy import pdl
from spoolproxy.pdl import engine as dispatcher
from spoolproxy.pdl import pjl

UEL = b"\x1b%-12345X"


def header(data: bytes, pos: int = 0) -> tuple[pjl.Header, pjl.Env]:
    env = pjl.Env()
    return pjl.read_header(io.BytesIO(data), pos, env), env


def test_settings_up_to_enter():
    data = (UEL + b"@PJL JOB NAME=\"report\"\r\n@PJL SET COPIES = 2\r\n@PJL SET QTY=3\r\n"
            b"@PJL SET DUPLEX=ON\r\n@PJL SET BINDING=SHORTEDGE\r\n@PJL SET PAPER=A4\r\n"
            b"@pjl enter language = pclxl\r\n) HP-PCL XL;2;0\r\n")
    h, env = header(data)
    assert h.language == "PCLXL"
    assert data[h.body:].startswith(b") HP-PCL XL")
    assert (env.copies, env.qty, env.sides, env.media) == (2, 3, pdl.TWO_SIDED_SHORT, (21000, 29700))


def test_duplex_binding_default_long_edge_and_off():
    _, env = header(UEL + b"@PJL SET DUPLEX=ON\n@PJL ENTER LANGUAGE=PCL\n")
    assert env.sides == pdl.TWO_SIDED_LONG
    _, env = header(UEL + b"@PJL SET DUPLEX=OFF\n@PJL ENTER LANGUAGE=PCL\n")
    assert env.sides == pdl.ONE_SIDED


def test_reset_conditions():
    # a UEL outside JOB/EOJ resets SET values; inside a JOB it does not
    _, env = header(UEL + b"@PJL SET COPIES=4\n" + UEL + b"@PJL ENTER LANGUAGE=PCL\n")
    assert env.copies == 1
    _, env = header(UEL + b"@PJL JOB\n@PJL SET COPIES=4\n" + UEL + b"@PJL ENTER LANGUAGE=PCL\n")
    assert env.copies == 4
    _, env = header(UEL + b"@PJL SET COPIES=4\n@PJL RESET\n@PJL ENTER LANGUAGE=PCL\n")
    assert env.copies == 1


def test_nonsense_values_are_ignored():
    _, env = header(UEL + b"@PJL SET COPIES=-3\n@PJL SET QTY=lots\n@PJL ENTER LANGUAGE=PCL\n")
    assert (env.copies, env.qty) == (1, 1)


def test_no_enter_body_starts_at_first_non_pjl_byte():
    data = UEL + b"@PJL SET COPIES=2\r\n\x1bE\x1b&l1X"
    h, env = header(data)
    assert h.language is None and data[h.body:] == b"\x1bE\x1b&l1X" and env.copies == 2


def test_document_without_pjl_has_an_empty_header():
    h, _ = header(b"  %!PS-Adobe-3.0\n")
    assert h.body == 0


def test_long_line_is_not_pjl():
    data = UEL + b"@PJL COMMENT " + b"x" * (pjl.MAX_LINE + 10) + b"\n"
    h, _ = header(data)
    assert h.body == len(UEL) and h.language is None


def test_header_across_read_chunks():
    # many comment lines push the ENTER past the first read
    lines = b"".join(b"@PJL COMMENT line %d\r\n" % i for i in range(5000))
    data = UEL + lines + b"@PJL SET COPIES=7\r\n@PJL ENTER LANGUAGE=POSTSCRIPT\r\n%!PS\n"
    h, env = header(data)
    assert h.language == "POSTSCRIPT" and env.copies == 7 and data[h.body:] == b"%!PS\n"


def test_rewrite_replaces_and_inserts_before_enter():
    raw = UEL + b"@PJL SET RENDERMODE=COLOR\r\n@PJL SET RESOLUTION=600\r\n@PJL ENTER LANGUAGE=PCLXL\r\n"
    out = pjl.rewrite_header(raw, {"RENDERMODE": "GRAYSCALE", "DUPLEX": "ON"})
    assert out == (UEL + b"@PJL SET RENDERMODE=GRAYSCALE\r\n@PJL SET RESOLUTION=600\r\n"
                   b"@PJL SET DUPLEX=ON\r\n@PJL ENTER LANGUAGE=PCLXL\r\n")
    _, env = header(out)
    assert env.rendermode == "GRAYSCALE" and env.duplex is True


def test_rewrite_without_enter_appends():
    out = pjl.rewrite_header(UEL + b"@PJL JOB\n", {"DUPLEX": "OFF"})
    assert out == UEL + b"@PJL JOB\n@PJL SET DUPLEX=OFF\n"


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=600), st.integers(0, 50))
def test_read_header_never_fails_and_moves_forward(data, pos):
    data = UEL + b"@PJL " + data
    pos = min(pos, len(data))
    h, _ = header(data, pos)
    assert pos <= h.body <= len(data)


# --- the dispatcher on formats without a scanner module ------------------------------

def write(tmp_path, name, data):
    p = tmp_path / name
    p.write_bytes(data)
    return p


def test_text_pages(tmp_path):
    one = write(tmp_path, "a.txt", b"hello\nworld\n")
    assert pdl.analyze(one).pages == 1
    lines = write(tmp_path, "b.txt", b"x\n" * (dispatcher.TEXT_LINES_PER_PAGE * 2 + 1))
    assert pdl.analyze(lines).pages == 3
    ff = write(tmp_path, "c.txt", b"page one\fpage two\fpage three\f")
    a = pdl.analyze(ff, claimed="application/pdf")
    assert (a.format, a.pages, a.format_mismatch) == ("text/plain", 3, True)
    assert list(a.page_colors()) == [False, False, False]


def test_text_long_lines_wrap(tmp_path):
    p = write(tmp_path, "w.txt", (b"y" * (dispatcher.TEXT_COLUMNS * 3) + b"\n") * dispatcher.TEXT_LINES_PER_PAGE)
    assert pdl.analyze(p).pages == 3


def test_pjl_qty_multiplies_and_copies(tmp_path):
    p = write(tmp_path, "t.prn", UEL + b"@PJL SET QTY=3\r\nplain text body\n")
    a = pdl.analyze(p)
    assert (a.format, a.pages, a.impressions) == ("text/plain", 1, 3)


def _png(color_type: int) -> bytes:
    ihdr = struct.pack(">IIBBBBB", 4, 4, 8, color_type, 0, 0, 0)
    chunk = struct.pack(">I", len(ihdr)) + b"IHDR" + ihdr + struct.pack(">I", zlib.crc32(b"IHDR" + ihdr))
    return b"\x89PNG\r\n\x1a\n" + chunk


def test_png_gray_and_undecided(tmp_path):
    assert list(pdl.analyze(write(tmp_path, "g.png", _png(0))).page_colors()) == [False]
    assert list(pdl.analyze(write(tmp_path, "c.png", _png(2))).page_colors()) == [None]


def _jpeg(components: int) -> bytes:
    app0 = b"\xff\xe0" + struct.pack(">H", 16) + b"JFIF\0\x01\x01\0\0\x01\0\x01\0\0"
    sof = b"\xff\xc0" + struct.pack(">HBHHB", 8 + 3 * components, 8, 16, 16, components)
    sof += b"".join(bytes([i + 1, 0x11, 0]) for i in range(components))
    return b"\xff\xd8" + app0 + sof + b"\xff\xd9"


def test_jpeg_gray_and_undecided(tmp_path):
    assert list(pdl.analyze(write(tmp_path, "g.jpg", _jpeg(1))).page_colors()) == [False]
    assert list(pdl.analyze(write(tmp_path, "c.jpg", _jpeg(3))).page_colors()) == [None]


def test_empty_and_unknown_are_typed_errors(tmp_path):
    with pytest.raises(pdl.UnsupportedFormat):
        pdl.analyze(write(tmp_path, "e", b""))
    with pytest.raises(pdl.UnsupportedFormat):
        pdl.analyze(write(tmp_path, "bin", b"\x00\x01\x02\x03garbage"))


def test_conversion_of_unconvertible_format_is_a_typed_error(tmp_path):
    src = write(tmp_path, "a.txt", b"text\n")
    with pytest.raises(pdl.ConversionError):
        pdl.convert_grayscale(src, tmp_path / "out")
    assert not (tmp_path / "out").exists() and not (tmp_path / "out.part").exists()


@pytest.mark.parametrize("line,account", [
    (b'@PJL SET JOBATTR="@ACCT=Physics Lab"', "Physics Lab"),
    (b'@PJL SET JOBATTR="ACCOUNT=p-42"', "p-42"),
    (b"@PJL SET ACCOUNTCODE=0815", "0815"),
    (b'@PJL SET JOBATTR="JobAcct1=alice"', None),  # other job attributes are not accounts
])
def test_the_account_a_driver_names_keeps_its_case(line, account):
    _, env = header(UEL + b"@PJL JOB\r\n" + line + b"\r\n@PJL ENTER LANGUAGE=PCL\r\n")
    assert env.account == account
    assert env.copies == 1  # and nothing else changed


def test_the_engine_reports_the_pjl_account(tmp_path):
    doc = (UEL + b'@PJL JOB\r\n@PJL SET JOBATTR="@ACCT=Chemistry"\r\n@PJL ENTER LANGUAGE=PCL\r\n'
           b"\x1bEpage one\x0c\x1bE" + UEL + b"@PJL EOJ\r\n" + UEL)
    a = pdl.analyze(io.BytesIO(doc), ghostscript=False)
    assert a.account == "Chemistry" and a.pages == 1
    assert pdl.analyze(io.BytesIO(b"\x1bEplain\x0c\x1bE"), ghostscript=False).account is None
