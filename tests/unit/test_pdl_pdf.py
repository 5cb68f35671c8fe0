"""PDF structure reader and page counter: the pure module and its compiled twin, side by side.

Every test runs on both implementations. The compiled one is skipped when it is not
built, except when SPOOLPROXY_REQUIRE_EXT=1 (CI). Hand-built documents come from
``PdfBuilder`` below (the property tests and the fuzz target use it too); real ones
from Ghostscript and qpdf, skipped without them unless SPOOLPROXY_REQUIRE_INTEROP=1.
"""
from __future__ import annotations

import importlib
import io
import os
import random
import subprocess
import sys
import zlib
from pathlib import Path

import pytest

from spoolproxy.pdl import model
from spoolproxy.pdl import pdf as pure
from spoolproxy.pdl.model import ONE_SIDED, TWO_SIDED_LONG, TWO_SIDED_SHORT, PdlError

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import peers  # noqa: E402


def _flag(name: str) -> bool:
    return os.environ.get(name, "") not in ("", "0")


def compiled_module():
    """spoolproxy._ext.pdf, or None when it is not built (a failure under SPOOLPROXY_REQUIRE_EXT=1)."""
    try:
        return importlib.import_module("spoolproxy._ext.pdf")
    except ModuleNotFoundError as e:
        if _flag("SPOOLPROXY_REQUIRE_EXT"):
            pytest.fail(f"SPOOLPROXY_REQUIRE_EXT=1 but the extension is not built: {e}")
        return None


@pytest.fixture(params=["python", "cython"])
def pdf(request):
    if request.param == "python":
        return pure
    mod = compiled_module()
    if mod is None:
        pytest.skip("spoolproxy._ext.pdf is not built (pip install -e . builds it)")
    return mod


# -- a small PDF builder ------------------------------------------------------------------------


class PdfBuilder:
    """Writes a PDF object by object. ``xref_table``/``xref_stream`` write a
    cross-reference section for the objects written since the last one (and, with
    ``prev``, chain it to the last section: an incremental update); ``finish`` adds
    startxref and %%EOF. Offsets count from the %PDF- header (after ``junk``)."""

    def __init__(self, junk: bytes = b"", version: bytes = b"1.7") -> None:
        self.out = bytearray(junk + b"%PDF-" + version + b"\n%\xe2\xe3\xcf\xd3\n")
        self.base = len(junk)
        self.pending: dict[int, tuple] = {}   # num -> entry since the last section
        self.last_xref: int | None = None
        self.max_num = 0

    def pos(self) -> int:
        return len(self.out) - self.base

    def obj(self, num: int, body: bytes, gen: int = 0) -> None:
        self.pending[num] = (1, self.pos(), gen)
        self.max_num = max(self.max_num, num)
        self.out += b"%d %d obj\n" % (num, gen) + body + b"\nendobj\n"

    def stream(self, num: int, d: bytes, data: bytes, length: bytes | None = None) -> None:
        ln = b"%d" % len(data) if length is None else length
        self.obj(num, b"<<" + d + b" /Length " + ln + b">>\nstream\n" + data + b"\nendstream")

    def objstm(self, num: int, members: dict[int, bytes]) -> None:
        head, body = [], b""
        for m, text in members.items():
            head.append(b"%d %d" % (m, len(body)))
            body += text + b"\n"
        header = b" ".join(head) + b"\n"
        data = zlib.compress(header + body)
        self.stream(num, b"/Type /ObjStm /N %d /First %d /Filter /FlateDecode" % (len(members), len(header)), data)
        for i, m in enumerate(members):
            self.pending[m] = (2, num, i)
            self.max_num = max(self.max_num, m)

    def free(self, num: int) -> None:
        self.pending[num] = (0, 0, 1)

    def _runs(self, entries: dict[int, tuple]):
        nums = sorted(entries)
        runs, start = [], 0
        for i in range(1, len(nums) + 1):
            if i == len(nums) or nums[i] != nums[i - 1] + 1:
                runs.append(nums[start:i])
                start = i
        return runs

    def _take(self) -> dict[int, tuple]:
        entries = dict(self.pending)
        if self.last_xref is None:
            entries[0] = (0, 0, 65535)
        self.pending = {}
        return entries

    def xref_table(self, trailer: bytes, eol: bytes = b" \n", prev: bool = False) -> int:
        entries = self._take()
        start = self.pos()
        self.out += b"xref\n"
        for run in self._runs(entries):
            self.out += b"%d %d\n" % (run[0], len(run))
            for n in run:
                t, a, b = entries[n]
                if t == 2:
                    raise ValueError("a compressed object needs an xref stream")
                self.out += b"%010d %05d %s" % (a, b, b"n" if t == 1 else b"f") + eol
        extra = b" /Prev %d" % self.last_xref if prev and self.last_xref is not None else b""
        self.out += b"trailer\n<< /Size %d %s%s >>\n" % (self.max_num + 1, trailer, extra)
        self.last_xref = start
        return start

    def xref_stream(self, num: int, trailer: bytes, prev: bool = False, predictor: bool = True) -> int:
        self.pending[num] = (1, self.pos(), 0)
        self.max_num = max(self.max_num, num)
        entries = self._take()
        rows, index = [], []
        for run in self._runs(entries):
            index += [run[0], len(run)]
            for n in run:
                t, a, b = entries[n]
                rows.append(bytes([t]) + a.to_bytes(4, "big") + b.to_bytes(2, "big"))
        if predictor:  # PNG Up, as most writers do
            prior, enc = bytes(7), b""
            for r in rows:
                enc += b"\x02" + bytes((x - y) & 0xFF for x, y in zip(r, prior))
                prior = r
            parms = b" /DecodeParms << /Predictor 12 /Columns 7 >>"
        else:
            enc, parms = b"".join(rows), b""
        extra = b" /Prev %d" % self.last_xref if prev and self.last_xref is not None else b""
        start = self.pos()
        self.stream(num, b"/Type /XRef /Size %d /W [1 4 2] /Index [%s] /Filter /FlateDecode%s %s%s"
                    % (self.max_num + 1, b" ".join(b"%d" % i for i in index), parms, trailer, extra),
                    zlib.compress(enc))
        self.last_xref = start
        return start

    def finish(self, startxref: int | None = None) -> bytes:
        at = self.last_xref if startxref is None else startxref
        self.out += b"startxref\n%d\n%%%%EOF\n" % at
        return bytes(self.out)


def add_pages(b: PdfBuilder, n: int, *, first: int = 3, pages_num: int = 2, count: bytes | None = None,
              media: bytes = b"[0 0 612 792]", page_extra: bytes = b"") -> list[int]:
    """Catalog 1, a flat /Pages ``pages_num`` and ``n`` pages numbered from ``first``."""
    nums = list(range(first, first + n))
    b.obj(1, b"<< /Type /Catalog /Pages %d 0 R >>" % pages_num)
    kids = b" ".join(b"%d 0 R" % k for k in nums)
    cnt = b"%d" % n if count is None else count
    b.obj(pages_num, b"<< /Type /Pages /Kids [" + kids + b"] /Count " + cnt + b" /MediaBox " + media + b" >>")
    for k in nums:
        b.obj(k, b"<< /Type /Page /Parent %d 0 R %s>>" % (pages_num, page_extra))
    return nums


def simple_pdf(n: int = 3, *, xref: str = "table", junk: bytes = b"", eol: bytes = b" \n", **kw) -> bytes:
    b = PdfBuilder(junk)
    add_pages(b, n, **kw)
    if xref == "table":
        b.xref_table(b"/Root 1 0 R", eol=eol)
    else:
        b.xref_stream(n + 3, b"/Root 1 0 R")
    return b.finish()


def objstm_pdf(n: int = 5) -> bytes:
    """Catalog, page tree and pages all in one object stream; an xref stream."""
    b = PdfBuilder()
    members = {1: b"<< /Type /Catalog /Pages 2 0 R >>",
               2: b"<< /Type /Pages /Kids [%s] /Count %d /MediaBox [0 0 595 842] >>"
               % (b" ".join(b"%d 0 R" % k for k in range(3, 3 + n)), n)}
    for k in range(3, 3 + n):
        members[k] = b"<< /Type /Page /Parent 2 0 R >>"
    b.objstm(100, members)
    b.xref_stream(101, b"/Root 1 0 R")
    return b.finish()


def count(mod, data: bytes, start: int = 0) -> int:
    return mod.page_count(io.BytesIO(data), start)


def doc(mod, data: bytes, start: int = 0):
    return mod.Document(io.BytesIO(data), start)


# -- cross-reference tables -----------------------------------------------------------------------


def test_classic_xref(pdf):
    data = simple_pdf(3)
    d = doc(pdf, data)
    assert not d.repaired
    assert d.page_count() == 3 == count(pdf, data)
    pages = list(d.pages())
    assert [p.index for p in pages] == [0, 1, 2]
    assert [p.ref for p in pages] == [pure.Ref(3, 0), pure.Ref(4, 0), pure.Ref(5, 0)]
    assert pages[0]["MediaBox"] == [0, 0, 612, 792]  # inherited from /Pages
    assert isinstance(pages[0], dict) and isinstance(pages[0], pure.Page)
    assert d.catalog["Type"] == "Catalog" and isinstance(d.catalog["Type"], pure.Name)
    assert d.trailer["Root"] == pure.Ref(1, 0)


@pytest.mark.parametrize("eol", [b" \n", b"\r\n", b" \r", b"\n", b" \r\n"])
def test_xref_entry_lengths(pdf, eol):
    """20-byte entries, and the 19- and 21-byte ones some writers produce."""
    d = doc(pdf, simple_pdf(4, eol=eol))
    assert d.page_count() == 4 and len(list(d.pages())) == 4
    assert not d.repaired


def test_irregular_xref_entries_are_read_one_by_one(pdf):
    data = simple_pdf(3)
    # the first entry written short: the subsection cannot be read by position
    broken = data.replace(b"0000000000 65535 f \n", b"0 65535 f\n")
    d = doc(pdf, broken)
    assert len(broken) < len(data) and not d.repaired
    assert d.page_count() == 3 and len(list(d.pages())) == 3


def test_xref_stream(pdf):
    for predictor in (True, False):
        b = PdfBuilder()
        add_pages(b, 6)
        b.xref_stream(20, b"/Root 1 0 R", predictor=predictor)
        d = doc(pdf, b.finish())
        assert not d.repaired and d.page_count() == 6 and len(list(d.pages())) == 6


def test_object_streams(pdf):
    d = doc(pdf, objstm_pdf(7))
    assert not d.repaired
    assert d.page_count() == 7
    assert [p.ref.num for p in d.pages()] == list(range(3, 10))
    assert d.resolve(pure.Ref(2, 0))["Count"] == 7


def test_hybrid_file(pdf):
    """A table for the old readers, an /XRefStm with the compressed objects for the new."""
    b = PdfBuilder()
    b.obj(1, b"<< /Type /Catalog /Pages 2 0 R >>")
    b.objstm(10, {2: b"<< /Type /Pages /Kids [3 0 R 4 0 R] /Count 2 >>"})
    b.obj(3, b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 100 200] >>")
    b.obj(4, b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 100 200] >>")
    compressed = {2: b.pending.pop(2)}
    table_entries = b.pending
    b.pending = compressed
    b.last_xref = 0  # no free list head in the stream
    stm = b.xref_stream(11, b"")
    b.pending = table_entries
    b.last_xref = None
    b.xref_table(b"/Root 1 0 R /XRefStm %d" % stm)
    d = doc(pdf, b.finish())
    assert not d.repaired and d.page_count() == 2
    assert [pdf.page_media(p) for p in d.pages()] == [(3528, 7056)] * 2


def test_incremental_update_adds_pages(pdf):
    b = PdfBuilder()
    add_pages(b, 2)
    b.xref_table(b"/Root 1 0 R")
    b.finish()
    b.obj(2, b"<< /Type /Pages /Kids [3 0 R 4 0 R 5 0 R] /Count 3 /MediaBox [0 0 612 792] >>")
    b.obj(5, b"<< /Type /Page /Parent 2 0 R >>")
    b.xref_table(b"/Root 1 0 R", prev=True)
    d = doc(pdf, b.finish())
    assert d.page_count() == 3 and len(list(d.pages())) == 3 and not d.repaired


def test_incremental_update_deletes_pages(pdf):
    b = PdfBuilder()
    add_pages(b, 4)
    b.xref_table(b"/Root 1 0 R")
    b.finish()
    b.obj(2, b"<< /Type /Pages /Kids [3 0 R 6 0 R] /Count 2 /MediaBox [0 0 612 792] >>")
    b.free(4)
    b.free(5)
    b.xref_table(b"/Root 1 0 R", prev=True)
    data = b.finish()
    d = doc(pdf, data)
    assert d.page_count() == 2 and [p.ref.num for p in d.pages()] == [3, 6]
    assert d.resolve(pure.Ref(4, 0)) is None  # freed: the newest section wins
    # the same with the update's pages tree lying: no /Count, so the walk decides
    data2 = data.replace(b"/Kids [3 0 R 6 0 R] /Count 2", b"/Kids [3 0 R 6 0 R] /Count 9")
    assert count(pdf, data2) == 2  # 9 > /Size: not believed


def test_update_by_xref_stream_over_a_table(pdf):
    b = PdfBuilder()
    add_pages(b, 2)
    b.xref_table(b"/Root 1 0 R")
    b.finish()
    b.objstm(20, {2: b"<< /Type /Pages /Kids [3 0 R 4 0 R 21 0 R] /Count 3 >>",
                  21: b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 10 10] >>"})
    b.xref_stream(22, b"/Root 1 0 R", prev=True)
    d = doc(pdf, b.finish())
    assert d.page_count() == 3 and len(list(d.pages())) == 3 and not d.repaired


def test_prev_cycle_is_harmless(pdf):
    b = PdfBuilder()
    add_pages(b, 2)
    at = b.xref_table(b"/Root 1 0 R")
    data = b.finish()
    data = data.replace(b"/Root 1 0 R >>", b"/Root 1 0 R /Prev %d >>" % at)
    assert count(pdf, data) == 2


# -- repair ----------------------------------------------------------------------------------------


def test_wrong_object_offsets_are_repaired(pdf):
    data = simple_pdf(5)
    i = data.index(b"xref\n")
    bad = data[:i] + data[i:].replace(b"0000000", b"0000001")  # every offset off
    d = doc(pdf, bad)
    assert d.repaired and d.warnings
    assert d.page_count() == 5 and len(list(d.pages())) == 5


def test_wrong_startxref_is_repaired(pdf):
    data = simple_pdf(4)
    i = data.rindex(b"startxref\n")
    for tail in (b"startxref\n12\n%%EOF\n", b"startxref\nabc\n%%EOF\n", b"%%EOF\n", b""):
        d = doc(pdf, data[:i] + tail)
        assert d.repaired and d.page_count() == 4


def test_missing_xref_and_trailer(pdf):
    data = simple_pdf(4)
    i = data.index(b"xref\n")
    d = doc(pdf, data[:i] + data[data.index(b"trailer"):])  # a trailer, no table
    assert d.repaired and d.page_count() == 4 and d.trailer["Root"] == pure.Ref(1, 0)
    # no trailer either: the catalog is found by its /Type
    assert count(pdf, data[:i]) == 4


def test_repair_finds_objects_in_object_streams(pdf):
    data = objstm_pdf(4)
    data = data[:data.rindex(b"startxref")]
    d = doc(pdf, data)
    assert d.repaired and d.page_count() == 4


def test_repair_prefers_the_last_definition(pdf):
    b = PdfBuilder()
    add_pages(b, 2)
    b.obj(2, b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>")  # a later copy of object 2 wins
    data = bytes(b.out) + b"trailer << /Root 1 0 R >>\n"
    assert count(pdf, data) == 1


def test_repair_chunk_boundaries(pdf, monkeypatch):
    """Object headers across the scan's chunk boundaries are found exactly once."""
    data = simple_pdf(30)
    data = data[:data.index(b"xref")]
    monkeypatch.setattr(pdf, "CHUNK", 97)
    d = doc(pdf, data)
    assert d.repaired and d.page_count() == 30 and len(list(d.pages())) == 30


def test_junk_before_the_header(pdf):
    junk = b"\x1b%-12345X@PJL JOB\r\n@PJL ENTER LANGUAGE=PDF\r\n"
    data = simple_pdf(3, junk=junk)  # offsets count from %PDF-
    for start in (0, 5, len(junk)):
        d = doc(pdf, data, start)
        assert not d.repaired and d.page_count() == 3
    # offsets counted from the start of the file instead: also understood
    plain = simple_pdf(3)
    shifted = junk + plain
    i = shifted.index(b"xref\n")
    table = shifted[i:]
    import re as _re
    table = _re.sub(rb"(\d{10}) 00000 n", lambda m: b"%010d 00000 n" % (int(m[1]) + len(junk)), table)
    sx = int(table[table.rindex(b"startxref") + 10:].split()[0])
    table = table[:table.rindex(b"startxref")] + b"startxref\n%d\n%%%%EOF\n" % (sx + len(junk))
    assert count(pdf, shifted[:i] + table) == 3
    # a PJL trailer after the PDF
    assert count(pdf, data + b"\x1b%-12345X@PJL EOJ\r\n\x1b%-12345X", len(junk)) == 3


def test_start_points_into_the_file(pdf):
    """``start`` is where the section begins: a PDF after another document."""
    first = simple_pdf(2)
    second = simple_pdf(5)
    assert count(pdf, first + second, len(first)) == 5


# -- page tree -------------------------------------------------------------------------------------


def tree_pdf(pages_body: bytes, extra: dict[int, bytes]) -> bytes:
    b = PdfBuilder()
    b.obj(1, b"<< /Type /Catalog /Pages 2 0 R >>")
    b.obj(2, pages_body)
    for n, body in extra.items():
        b.obj(n, body)
    b.xref_table(b"/Root 1 0 R")
    return b.finish()


def test_nested_tree_and_inheritance(pdf):
    data = tree_pdf(b"<< /Type /Pages /Kids [3 0 R 4 0 R] /Count 3 /MediaBox [0 0 612 792] /Rotate 90 "
                    b"/Resources << /Font << >> >> >>", {
                        3: b"<< /Type /Pages /Parent 2 0 R /Kids [5 0 R 6 0 R] /Count 2 /CropBox [0 0 300 400] >>",
                        4: b"<< /Type /Page /Parent 2 0 R /Rotate 0 /MediaBox 7 0 R >>",
                        5: b"<< /Type /Page /Parent 3 0 R >>",
                        6: b"<< /Type /Page /Parent 3 0 R /Rotate 180 /Resources << /XObject << >> >> >>",
                        7: b"[0 0 595 842]",
                    })
    d = doc(pdf, data)
    p5, p6, p4 = d.pages()
    assert p5["Rotate"] == 90 and p5["CropBox"] == [0, 0, 300, 400] and p5["Resources"] == {"Font": {}}
    assert p6["Rotate"] == 180 and p6["Resources"] == {"XObject": {}}
    assert p4["MediaBox"] == [0, 0, 595, 842] and "CropBox" not in p4  # resolved
    assert pdf.page_media(p5) == (14111, 10583)  # CropBox 300x400 pt, rotated 90
    assert pdf.page_media(p6) == (10583, 14111)
    assert pdf.page_media(p4) == (20990, 29704)


@pytest.mark.parametrize("bad_count", [b"", b"/Count -1", b"/Count 2.5", b"/Count 99999999", b"/Count (3)",
                                       b"/Count 0"])
def test_count_not_believed_when_insane(pdf, bad_count):
    data = tree_pdf(b"<< /Type /Pages /Kids [3 0 R 4 0 R 5 0 R] " + bad_count + b" >>",
                    {n: b"<< /Type /Page >>" for n in (3, 4, 5)})
    assert count(pdf, data) == 3


def test_count_by_reference(pdf):
    data = tree_pdf(b"<< /Type /Pages /Kids [3 0 R] /Count 4 0 R >>", {3: b"<< /Type /Page >>", 4: b"1"})
    assert count(pdf, data) == 1


def test_cycles_and_shared_nodes(pdf):
    data = tree_pdf(b"<< /Type /Pages /Kids [3 0 R 2 0 R 4 0 R 4 0 R 6 0 R] >>", {
        3: b"<< /Type /Pages /Kids [2 0 R 3 0 R 5 0 R] >>",
        4: b"<< /Type /Page >>",
        5: b"<< /Type /Page >>",
        6: b"<< /Kids [7 0 R 99 0 R null 8 0 R] >>",  # no /Type: a /Kids makes it a node
        7: b"<< /Type /Page >>",
        8: b"42",
    })
    d = doc(pdf, data)
    assert [p.ref.num for p in d.pages()] == [5, 4, 7]
    assert d.page_count() == 3


def test_tree_too_deep(pdf):
    extra = {n: b"<< /Type /Pages /Kids [%d 0 R] >>" % (n + 1) for n in range(3, 600)}
    extra[600] = b"<< /Type /Page >>"
    data = tree_pdf(b"<< /Type /Pages /Kids [3 0 R] >>", extra)
    with pytest.raises(model.DamagedDocument):
        count(pdf, data)


def test_no_pages(pdf):
    assert count(pdf, tree_pdf(b"<< /Type /Pages /Kids [] /Count 0 >>", {})) == 0
    assert count(pdf, tree_pdf(b"null", {})) == 0


# -- objects -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("text, value", [
    (b"42", 42), (b"-7", -7), (b"+3", 3), (b"3.5", 3.5), (b"-.5", -0.5), (b"5.", 5.0), (b"--5", -5.0), (b"+-.5", -0.5), (b"-", 0), (b".", 0),
    (b"1.2.3", 1.2), (b"123456789012345678901234", 1.2345678901234568e23),
    (b"true", True), (b"false", False), (b"null", None),
    (b"/Name", "Name"), (b"/A#42C", "ABC"), (b"/#", "#"), (b"/a#zz", "a#zz"), (b"/", ""),
    (b"(a(b)c)", b"a(b)c"), (b"(\\n\\r\\t\\b\\f\\(\\)\\\\)", b"\n\r\t\b\f()\\"), (b"(\\101\\0607\\8)", b"A078"),
    (b"(line\\\ncont)", b"linecont"), (b"(cr\r\nlf\rx)", b"cr\nlf\nx"), (b"(\\q)", b"q"), (b"(open", b"open"),
    (b"<48 65 6C6C 6f>", b"Hello"), (b"<414>", b"A@"), (b"<>", b""),
    (b"[1 2 R 3 /x (s) [4] << /k 5 >>]", [pure.Ref(1, 2), 3, "x", b"s", [4], {"k": 5}]),
    (b"[1 0 R 2 0 R\n3 0 R]", [pure.Ref(1, 0), pure.Ref(2, 0), pure.Ref(3, 0)]),
    (b"[1 -2 R]", [1, -2, None]),
    (b"<< /A 1 /B /C /D [ ] /E << >> /F >>", {"A": 1, "B": "C", "D": [], "E": {}, "F": None}),
    (b"<< /A 1 % comment >>\n /B 2 >>", {"A": 1, "B": 2}),
    (b"<< 5 /A 1 >>", {"A": 1}),
    (b"<< /A 1 endobj", {"A": 1}),
    (b"[1 2 endobj", [1, 2]),
    (b"<< /Key foo >>", {"Key": None}),
])
def test_lexer(text, value):
    got = pure._parse_bytes(text)
    assert got == value
    assert type(got) is type(value) or type(got) is pure.Name
    compiled = compiled_module()
    if compiled is not None:
        assert compiled._parse_bytes(text) == value


def test_names_are_name_objects(pdf):
    d = pdf._parse_bytes(b"<< /Type /Page /A [/X] >>")
    assert all(type(k) is str for k in d)
    assert type(d["Type"]) is pure.Name and type(d["A"][0]) is pure.Name
    assert repr(d["Type"]) == "/Page"


def test_nesting_limit(pdf):
    with pytest.raises(model.DamagedDocument):
        pdf._parse_bytes(b"[" * 1000)
    assert pdf._parse_bytes(b"[" * 50 + b"]" * 50) is not None


def test_stream_length_indirect_and_wrong(pdf):
    inside = b"BT /F1 12 Tf (endstream\nendobj) Tj ET"  # a right /Length is believed
    b = PdfBuilder()
    add_pages(b, 1, page_extra=b"/Contents 8 0 R")
    b.stream(8, b"", inside, length=b"9 0 R")
    b.obj(9, b"%d" % len(inside))
    b.xref_table(b"/Root 1 0 R")
    d = doc(pdf, b.finish())
    assert d.resolve(next(d.pages())["Contents"]).decoded() == inside
    payload = b"BT /F1 12 Tf (text) Tj ET"
    for length in (b"%d" % (len(payload) + 5), b"9 0 R", b"3", b"100000", b"-4", b"/x", b"10 0 R"):
        b = PdfBuilder()
        add_pages(b, 1, page_extra=b"/Contents 8 0 R")
        b.stream(8, b"", payload + b"\nmore", length=length)
        b.obj(9, b"%d" % (len(payload) + 5))
        b.xref_table(b"/Root 1 0 R")
        d = doc(pdf, b.finish())
        page = next(d.pages())
        stream = d.resolve(page["Contents"])
        assert stream.decoded() == payload + b"\nmore", length


# -- filters -----------------------------------------------------------------------------------------


def stream_doc(d: bytes, data: bytes) -> bytes:
    b = PdfBuilder()
    add_pages(b, 1, page_extra=b"/Contents 8 0 R")
    b.stream(8, d, data)
    b.xref_table(b"/Root 1 0 R")
    return b.finish()


def decoded(mod, d: bytes, data: bytes, limit=None) -> bytes:
    x = doc(mod, stream_doc(d, data))
    return x.resolve(next(x.pages())["Contents"]).decoded(limit)


def test_filters(pdf):
    text = b"q 1 0 0 RG 0 0 10 10 re f Q " * 20
    assert decoded(pdf, b"/Filter /FlateDecode", zlib.compress(text)) == text
    assert decoded(pdf, b"/Filter /Fl", zlib.compress(text)) == text
    assert decoded(pdf, b"/Filter /ASCIIHexDecode", text.hex().encode() + b">") == text
    assert decoded(pdf, b"/Filter /AHx", b"48 6\n5 6>ignored") == b"He`"
    import base64
    assert decoded(pdf, b"/Filter /ASCII85Decode", base64.a85encode(text) + b"~>") == text
    assert decoded(pdf, b"/Filter /A85", b"<~" + base64.a85encode(b"\0\0\0\0xyz") + b"~>") == b"\0\0\0\0xyz"
    assert decoded(pdf, b"/Filter /RunLengthDecode", b"\x02abc\xfdz\x80junk") == b"abczzzz"
    # the example of the PDF reference: "-----A---B"
    assert decoded(pdf, b"/Filter /LZWDecode", bytes.fromhex("800B6050220C0C8501")) == b"-----A---B"
    assert decoded(pdf, b"/Filter [/ASCIIHexDecode /FlateDecode]", zlib.compress(text).hex().encode()) == text
    assert decoded(pdf, b"/Filter /FlateDecode", zlib.compress(text), limit=10) == text[:10]
    assert decoded(pdf, b"", text, limit=5) == text[:5]


def test_flate_damage(pdf):
    text = bytes(range(256)) * 40
    z = zlib.compress(text)
    assert decoded(pdf, b"/Filter /FlateDecode", z[:len(z) // 2]).startswith(text[:100])  # cut short: what there is
    assert decoded(pdf, b"/Filter /FlateDecode", zlib.compress(text)[2:]) == text  # raw deflate
    with pytest.raises(model.DamagedDocument):
        decoded(pdf, b"/Filter /FlateDecode", b"\xff\xff\xff\xff garbage")


def test_predictors(pdf):
    rng = random.Random(5)
    rows = [bytes(rng.randrange(256) for _ in range(12)) for _ in range(9)]
    raw = b"".join(rows)
    enc, prior = b"", bytes(12)
    for i, r in enumerate(rows):
        t = i % 5
        out = bytearray()
        for j in range(12):
            a = r[j - 3] if j >= 3 else 0
            b = prior[j]
            c = prior[j - 3] if j >= 3 else 0
            if t == 0:
                p = 0
            elif t == 1:
                p = a
            elif t == 2:
                p = b
            elif t == 3:
                p = (a + b) // 2
            else:
                pa, pb, pc = abs(b - c), abs(a - c), abs(a + b - 2 * c)
                p = a if pa <= pb and pa <= pc else (b if pb <= pc else c)
            out.append((r[j] - p) & 0xFF)
        enc += bytes([t]) + out
        prior = r
    d = b"/Filter /FlateDecode /DecodeParms << /Predictor 15 /Colors 3 /Columns 4 >>"
    assert decoded(pdf, d, zlib.compress(enc + b"\x02\x01")) == raw  # a partial last row is dropped
    tiff = bytearray(raw)
    for k in range(len(tiff) - 1, -1, -1):
        if k % 12 >= 3:
            tiff[k] = (raw[k] - raw[k - 3]) & 0xFF
    d = b"/Filter /FlateDecode /DecodeParms << /Predictor 2 /Colors 3 /Columns 4 >>"
    assert decoded(pdf, d, zlib.compress(bytes(tiff))) == raw


def test_unknown_filters_are_reported(pdf):
    x = doc(pdf, stream_doc(b"/Filter [/FlateDecode /DCTDecode]", zlib.compress(b"\xff\xd8")))
    s = x.resolve(next(x.pages())["Contents"])
    assert isinstance(s, pure.Stream)
    assert s.filters == ["FlateDecode", "DCTDecode"]
    with pytest.raises(model.UnsupportedFormat):
        s.decoded()
    assert s.raw() == zlib.compress(b"\xff\xd8")


def test_stream_too_big(pdf, monkeypatch):
    monkeypatch.setattr(pdf, "MAX_DECODED", 1000)
    with pytest.raises(model.DamagedDocument):
        decoded(pdf, b"/Filter /FlateDecode", zlib.compress(b"\0" * 5000))
    assert decoded(pdf, b"/Filter /FlateDecode", zlib.compress(b"\0" * 5000), limit=2000) == b"\0" * 2000


# -- C kernels agree with the pure ones ---------------------------------------------------------


def test_kernels_agree():
    compiled = compiled_module()
    if compiled is None:
        pytest.skip("spoolproxy._ext.pdf is not built")
    rng = random.Random(1)
    atoms = [b"obj", b" ", b"\n", b"\r\n", b"0", b"12", b"65535", b"1234567890", b"12345678901", b"endobj",
             b"trailer", b"<<", b"\x00", b"x", b"/", b"(", b"objx", b"  " * 20]
    for _ in range(400):
        data = b"".join(rng.choice(atoms) for _ in range(rng.randrange(60)))
        lo = rng.randrange(len(data) + 1)
        hi = rng.randrange(lo, len(data) + 2)
        assert compiled._scan_chunk(data, lo, hi) == pure._scan_chunk(data, lo, hi), data
    for _ in range(200):
        data = rng.randbytes(rng.randrange(200))
        args = (rng.randint(1, 4), rng.choice([1, 2, 4, 8, 16]), rng.randint(1, 9))
        assert compiled._png_unpredict(data, *args) == pure._png_unpredict(data, *args)
        up = b"".join(b"\x02" + rng.randbytes(5) for _ in range(rng.randrange(20)))
        assert compiled._png_unpredict(up, 1, 8, 5) == pure._png_unpredict(up, 1, 8, 5)
        key = rng.randbytes(rng.randint(1, 16))
        assert compiled._rc4(key, data) == pure._rc4(key, data)


def test_rc4_vector(pdf):
    assert pdf._rc4(b"Key", b"Plaintext").hex() == "bbf316e8d940af0ad3"


def test_scan_chunk_finds_headers():
    data = b"x 1 0 obj<<>>endobj 12  3\r\nobj 4 0 objx 5 0 obj\ntrailer\n<< >> 1234567890123 0 obj"
    objs, trailers = pure._scan_chunk(data, 0, len(data))
    assert [(n, g) for n, g, _ in objs] == [(1, 0), (12, 3), (5, 0)]
    assert [data[i:i + 7] for i in trailers] == [b"trailer"]


# -- encryption (documents made by qpdf) ------------------------------------------------------------


@pytest.fixture(scope="module")
def gs_pdfs(tmp_path_factory) -> dict[str, Path]:
    gs = peers.require("gs")
    d = tmp_path_factory.mktemp("pdfs")
    docs = {}
    for n in (1, 2, 17):
        ps = d / f"p{n}.ps"
        body = "%!PS\n/Helvetica findfont 20 scalefont setfont\n"
        for i in range(n):
            if i % 3 == 1:
                body += "<< /PageSize [842 595] >> setpagedevice\n"
            elif i % 3 == 2:
                body += "<< /PageSize [595 842] >> setpagedevice\n"
            body += f"72 400 moveto (page {i + 1}) show showpage\n"
        ps.write_text(body)
        out = d / f"p{n}.pdf"
        subprocess.run([gs, "-q", "-dNOPAUSE", "-dBATCH", "-dSAFER", "-sDEVICE=pdfwrite", "-o", str(out), str(ps)],
                       check=True, capture_output=True, timeout=60)
        docs[f"p{n}"] = out
    return docs


def gs_page_count(path: Path) -> int:
    gs = peers.require("gs")
    r = subprocess.run([gs, "-q", "-dNODISPLAY", "-dNOSAFER", "-c",
                        f"({path}) (r) file runpdfbegin pdfpagecount = quit"],
                       capture_output=True, text=True, timeout=60, check=True)
    return int(r.stdout.split()[-1])


def qpdf(src: Path, dst: Path, *args: str) -> Path:
    tool = peers.require("qpdf")
    r = subprocess.run([tool, *args, str(src), str(dst)], capture_output=True, text=True, timeout=60)
    assert r.returncode in (0, 3), r.stderr  # 3: warnings
    return dst


QPDF_VARIANTS = {
    "plain": [],
    "objstm": ["--object-streams=generate"],
    "linearized": ["--linearize"],
    "linearized-objstm": ["--linearize", "--object-streams=generate"],
    "rc4-40": ["--allow-weak-crypto", "--encrypt", "", "owner", "40", "--"],
    "rc4-128": ["--allow-weak-crypto", "--encrypt", "", "owner", "128", "--use-aes=n", "--"],
    "aes-128": ["--encrypt", "", "owner", "128", "--use-aes=y", "--"],
    "aes-128-objstm": ["--object-streams=generate", "--encrypt", "", "owner", "128", "--use-aes=y", "--"],
    "aes-256": ["--encrypt", "", "owner", "256", "--"],
    "aes-256-r5": ["--encrypt", "", "owner", "256", "--force-R5", "--"],
    "aes-256-objstm": ["--object-streams=generate", "--encrypt", "", "owner", "256", "--"],
    "rc4-128-cleartext-metadata": ["--allow-weak-crypto", "--encrypt", "", "owner", "128", "--use-aes=n",
                                   "--cleartext-metadata", "--"],
}


@pytest.mark.parametrize("variant", list(QPDF_VARIANTS))
def test_ghostscript_and_qpdf_documents(pdf, gs_pdfs, tmp_path, variant):
    for name, src in gs_pdfs.items():
        path = qpdf(src, tmp_path / f"{name}-{variant}.pdf", *QPDF_VARIANTS[variant])
        with open(path, "rb") as f:
            d = pdf.Document(f)
            assert not d.repaired
            n = d.page_count()
            assert n == int(name[1:])
            if variant != "aes-256-r5":  # Ghostscript does not read the deprecated R5
                assert n == gs_page_count(path)
            pages = list(d.pages())
            assert len(pages) == n
            # strings and streams decrypted: the page's text is readable
            content = d.resolve(pages[0]["Contents"]).decoded()
            assert b"(page 1) Tj" in content or b"page 1" in content or b"Tf" in content
            info = d.resolve(d.trailer.get("Info"))
            assert info is None or b"Ghostscript" in info.get("Producer", b"Ghostscript")
            if n > 1:
                assert pdf.page_media(pages[1]) == (29704, 20990)
            f.seek(0)
            runs, end = pdf.scan(f)
            assert sum(r.count for r in runs) == n and end == path.stat().st_size


def test_user_password_is_refused(pdf, gs_pdfs, tmp_path):
    for bits in ("256", "128"):
        path = qpdf(gs_pdfs["p2"], tmp_path / f"pw{bits}.pdf", "--allow-weak-crypto", "--encrypt", "secret", "owner",
                    bits, "--")
        with pytest.raises(model.EncryptedDocument), open(path, "rb") as f:
            pdf.page_count(f)


def test_ghostscript_2000_pages(pdf, tmp_path):
    gs = peers.require("gs")
    ps = tmp_path / "p2000.ps"
    ps.write_text("%!PS\n" + "newpath 72 72 moveto 100 100 lineto stroke showpage\n" * 2000)
    out = tmp_path / "p2000.pdf"
    subprocess.run([gs, "-q", "-dNOPAUSE", "-dBATCH", "-dSAFER", "-sDEVICE=pdfwrite", "-o", str(out), str(ps)],
                   check=True, capture_output=True, timeout=120)
    reads = []

    class Counting(io.FileIO):
        def read(self, n=-1):
            assert n is not None and n >= 0, "read the whole file"
            data = super().read(n)
            reads.append(len(data))
            return data

    with Counting(str(out), "rb") as f:
        assert pdf.page_count(f) == 2000 == gs_page_count(out)
    assert sum(reads) < out.stat().st_size // 2  # random access, not a read of everything
    with open(out, "rb") as f:
        assert sum(r.count for r in pdf.scan(f)[0]) == 2000


# -- the scanner API ---------------------------------------------------------------------------------


@pytest.fixture
def no_color(pdf, monkeypatch):
    monkeypatch.setattr(pdf, "_COLOR_MODULE", [None])


def test_scan_viewer_preferences(pdf, no_color):
    for duplex, sides in ((b"/DuplexFlipLongEdge", TWO_SIDED_LONG), (b"/DuplexFlipShortEdge", TWO_SIDED_SHORT),
                          (b"/Simplex", ONE_SIDED), (b"/Bogus", TWO_SIDED_LONG), (b"7", TWO_SIDED_LONG)):
        b = PdfBuilder()
        add_pages(b, 3)
        b.obj(1, b"<< /Type /Catalog /Pages 2 0 R /ViewerPreferences << /Duplex %s /NumCopies 3 >> >>" % duplex)
        b.xref_table(b"/Root 1 0 R")
        runs, end = pdf.scan(io.BytesIO(b.finish()), sides=TWO_SIDED_LONG, copies=2)
        assert runs == (model.PageRun(3, None, sides, (21590, 27940), 3),)


def test_scan_defaults(pdf, no_color):
    data = simple_pdf(2, media=b"[0 0 0 0]")
    runs, end = pdf.scan(io.BytesIO(data), sides=TWO_SIDED_SHORT, media=(100, 200), copies=4)
    assert runs == (model.PageRun(2, None, TWO_SIDED_SHORT, (100, 200), 4),) and end == len(data)


def test_scan_media(pdf, no_color):
    data = tree_pdf(b"<< /Type /Pages /Kids [3 0 R 4 0 R 5 0 R 6 0 R] /MediaBox [0 0 612 792] >>", {
        3: b"<< /Type /Page /UserUnit 2 >>",
        4: b"<< /Type /Page /MediaBox [612 792 0 0] /Rotate -90 >>",
        5: b"<< /Type /Page /MediaBox [0 0 99999999 5] >>",
        6: b"<< /Type /Page /CropBox [1000 1000 2000 2000] /Rotate 45 >>",  # no overlap: MediaBox
    })
    runs, _ = pdf.scan(io.BytesIO(data))
    assert [r.media for r in runs] == [(43180, 55880), (27940, 21590), None, (21590, 27940)]


def test_scan_asks_pdfcolor(pdf, monkeypatch):
    seen = []

    def page_color(d, page):
        seen.append(page.index)
        if page.index == 1:
            raise model.DamagedDocument("cannot tell")
        return page.index == 2

    monkeypatch.setattr(pdf, "_COLOR_MODULE", [page_color])
    runs, _ = pdf.scan(io.BytesIO(simple_pdf(3)))
    assert [r.color for r in runs] == [False, None, True] and seen == [0, 1, 2]


def test_pdfcolor_module_is_optional(pdf, monkeypatch):
    real = importlib.import_module

    def fake(name, *a):
        if name.endswith(".pdfcolor"):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return real(name, *a)

    monkeypatch.setattr(pdf, "_COLOR_MODULE", [])
    monkeypatch.setattr(importlib, "import_module", fake)
    runs, _ = pdf.scan(io.BytesIO(simple_pdf(2)))
    assert runs[0].color is None and pdf._COLOR_MODULE == [None]


# -- errors --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("data", [b"", b"%PDF-1.4\n", b"%PDF-1.4\n1 0 obj << >> endobj\n", b"\x00" * 5000,
                                  b"%PDF-1.4\ntrailer << /Root 1 0 R >>\n", b"hello world"])
def test_not_countable(pdf, data):
    with pytest.raises(model.DamagedDocument):
        count(pdf, data)


def test_wrong_argument_types(pdf):
    with pytest.raises(TypeError):
        pdf.Document(io.BytesIO(simple_pdf(1)), "0")


def test_mutations_raise_only_pdl_errors(pdf):
    rng = random.Random(7)
    seeds = [simple_pdf(3), objstm_pdf(3), simple_pdf(2, xref="stream")]
    for _ in range(150):
        data = bytearray(rng.choice(seeds))
        for _ in range(rng.randint(1, 5)):
            i = rng.randrange(len(data))
            data[i:i + rng.randint(0, 4)] = rng.randbytes(rng.randint(0, 4))
        try:
            d = doc(pdf, bytes(data))
            d.page_count()
            for p in d.pages():
                pdf.page_media(p)
        except PdlError:
            pass
