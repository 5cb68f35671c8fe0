"""Property tests for the PDF reader: the pure and compiled twins agree on arbitrary
and mutated-valid documents, and nothing but PdlError escapes either of them."""
from __future__ import annotations

import importlib
import importlib.util
import io
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from spoolproxy.pdl import pdf as pure
from spoolproxy.pdl.model import PdlError

SETTINGS = settings(max_examples=300, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


def _unit_module():
    """The PDF builder lives in the unit tests (tests/unit/test_pdl_pdf.py)."""
    path = Path(__file__).resolve().parents[1] / "unit" / "test_pdl_pdf.py"
    spec = importlib.util.spec_from_file_location("_pdl_pdf_unit", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


unit = _unit_module()


def _compiled():
    try:
        return importlib.import_module("spoolproxy._ext.pdf")
    except ModuleNotFoundError:
        if unit._flag("SPOOLPROXY_REQUIRE_EXT"):
            pytest.fail("SPOOLPROXY_REQUIRE_EXT=1 but spoolproxy._ext.pdf is not built")
        return None


def _seeds() -> list[bytes]:
    b = unit.PdfBuilder()
    unit.add_pages(b, 2)
    b.xref_table(b"/Root 1 0 R")
    b.finish()
    b.obj(2, b"<< /Type /Pages /Kids [3 0 R 5 0 R] /Count 2 /CropBox [0 0 300 300] /Rotate 90 >>")
    b.obj(5, b"<< /Type /Page /Parent 2 0 R /Contents 6 0 R >>")
    b.stream(6, b"/Filter /FlateDecode", unit.zlib.compress(b"0 0 1 rg 0 0 5 5 re f"))
    b.free(4)
    b.xref_table(b"/Root 1 0 R", prev=True)
    update = b.finish()
    return [unit.simple_pdf(3), unit.simple_pdf(2, xref="stream"), unit.objstm_pdf(3), update,
            unit.simple_pdf(2, junk=b"\x1b%-12345X@PJL ENTER LANGUAGE=PDF\n")]


SEEDS = _seeds()
ATOMS = [b" ", b"\n", b"obj", b"endobj", b"R", b"0", b"1", b"2", b"99999999999", b"-3", b"<<", b">>", b"[", b"]",
         b"/Type", b"/Pages", b"/Page", b"/Kids", b"/Count", b"/Root", b"/Prev", b"/Length", b"stream\n",
         b"endstream", b"xref\n", b"trailer", b"startxref\n", b"(", b")", b"\\", b"<", b">", b"%", b"#",
         b"/W [1 2 1]", b"/ObjStm", b"/XRef", b"/Filter /FlateDecode", b"/Encrypt"]


def _outcome(mod, data: bytes):
    """What a twin says about ``data``: its pages (media, count) or the error class."""
    try:
        d = mod.Document(io.BytesIO(data))
        n = d.page_count()
        pages = []
        for p in d.pages():
            pages.append((p.ref, mod.page_media(p), p.get("Rotate")))
            if len(pages) > 50:
                break
        contents = []
        for p in pages[:3]:
            c = d.resolve(d.resolve(p[0]).get("Contents")) if p[0] is not None else None
            if isinstance(c, pure.Stream):
                try:
                    contents.append(c.decoded(10000))
                except PdlError as e:
                    contents.append(type(e))
        return ("ok", n, pages, contents, d.repaired)
    except PdlError as e:
        return ("error", type(e))


def _check(data: bytes) -> None:
    expected = _outcome(pure, data)
    compiled = _compiled()
    if compiled is not None:
        assert _outcome(compiled, data) == expected


mutated = st.tuples(
    st.sampled_from(SEEDS),
    st.lists(st.tuples(st.floats(0, 1), st.integers(0, 8), st.sampled_from(ATOMS) | st.binary(max_size=6)),
             min_size=1, max_size=5),
).map(lambda t: _mutate(*t))


def _mutate(seed: bytes, edits) -> bytes:
    data = bytearray(seed)
    for where, cut, insert in edits:
        i = int(where * len(data))
        data[i:i + cut] = insert
    return bytes(data)


@SETTINGS
@given(mutated)
def test_mutated_documents(data):
    _check(data)


@SETTINGS
@given(st.one_of(st.binary(max_size=600),
                 st.lists(st.sampled_from(ATOMS), max_size=80).map(lambda xs: b"%PDF-1.4\n" + b" ".join(xs))))
def test_arbitrary_bytes(data):
    _check(data)


@SETTINGS
@given(st.binary(max_size=300), st.integers(0, 400), st.integers(0, 400))
def test_scan_chunk_agrees(data, lo, hi):
    compiled = _compiled()
    expected = pure._scan_chunk(data, lo, hi)
    if compiled is not None:
        assert compiled._scan_chunk(data, lo, hi) == expected


@SETTINGS
@given(st.lists(st.sampled_from([b" ", b"\n", b"\t", b"0", b"7", b"42", b"obj", b"trailer", b"<<", b"x", b"/"]),
                max_size=60).map(b"".join))
def test_scan_chunk_agrees_on_headers(data):
    compiled = _compiled()
    expected = pure._scan_chunk(data, 0, len(data))
    if compiled is not None:
        assert compiled._scan_chunk(data, 0, len(data)) == expected


@SETTINGS
@given(st.binary(max_size=400), st.integers(1, 4), st.sampled_from([1, 2, 4, 8, 16]), st.integers(1, 12))
def test_png_predictor_agrees(data, colors, bpc, columns):
    compiled = _compiled()
    expected = pure._png_unpredict(data, colors, bpc, columns)
    if compiled is not None:
        assert compiled._png_unpredict(data, colors, bpc, columns) == expected


@SETTINGS
@given(st.binary(min_size=1, max_size=16), st.binary(max_size=300))
def test_rc4_agrees_and_inverts(key, data):
    once = pure._rc4(key, data)
    assert pure._rc4(key, once) == data
    compiled = _compiled()
    if compiled is not None:
        assert compiled._rc4(key, data) == once


@SETTINGS
@given(st.binary(max_size=200), st.booleans())
def test_lzw_and_filters_never_crash(data, early):
    for mod in filter(None, (pure, _compiled())):
        out = mod._lzw(data, int(early), 10000)
        assert isinstance(out, bytes)
        for names in (["ASCIIHexDecode"], ["ASCII85Decode"], ["RunLengthDecode"], ["FlateDecode"], ["LZWDecode"]):
            try:
                mod._apply_filters(data, names, [None], 5000)
            except PdlError:
                pass
