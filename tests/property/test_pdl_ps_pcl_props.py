"""Property tests for the PostScript and PCL 5 scanners: for any bytes, and for mutations
of valid documents, the pure module and its compiled twin give the same answer (or raise
the same PdlError), nothing but a PdlError escapes, the conversions copy what they do
not change and their output scans to the same number of pages."""
from __future__ import annotations

import importlib
import io
import os

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from spoolproxy.pdl import pcl as pure_pcl
from spoolproxy.pdl import postscript as pure_ps
from spoolproxy.pdl.model import TWO_SIDED_LONG, TWO_SIDED_SHORT, PdlError

SETTINGS = settings(max_examples=300, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


def _compiled(name):
    try:
        return importlib.import_module(f"spoolproxy._ext.{name}")
    except ModuleNotFoundError as e:
        if os.environ.get("SPOOLPROXY_REQUIRE_EXT", "") not in ("", "0"):
            pytest.fail(f"SPOOLPROXY_REQUIRE_EXT=1 but the extension is not built: {e}")
        return None


C_PS, C_PCL = _compiled("postscript"), _compiled("pcl")
E = b"\x1b"

PS_SEED = b"""%!PS-Adobe-3.0\r\n%%Pages: (atend)\n%%DocumentMedia: Plain 595 842 75 white ( )\n%%+ L 612 792 0 () ()
%%DocumentProcessColors: Black\n%%EndComments\n%%BeginProlog\n/x {} def\n%%EndProlog\n%%BeginSetup
<< /NumCopies 2 /Duplex true /Tumble false /PageSize [595 842] >> setpagedevice\n%%EndSetup
%%Page: 1 1\r%%PageMedia: L\r%%BeginBinary: 4\n%%Pa\n%%EndBinary\n/#copies 3 def showpage
%%Page: 2 2\n%%BeginDocument: a.eps\n%%Page: 1 1\n%%EndDocument\n%%BeginData: 2 Hex Lines\nab\ncd
%%EndData\n%%IncludeFeature: *Duplex DuplexTumble\n%%PageProcessColors: Black\nshowpage\n%%Trailer
%%Pages: 2\n%%EOF\n\x1b%-12345X@PJL EOJ\n"""

PCL_SEED = (E + b"E" + E + b"&l26a2x1S" + b"Hello\x0c" + E + b"*r3U" + E + b"*v2S" + b"red\x0c"
            + E + b"*v6W\x00\x01\x08\x08\x08\x08" + E + b"*v0a0b9c5I" + E + b"*v5S" + E + b"*c0P\x0c"
            + E + b"*r8S" + E + b"*r1A" + E + b"*b1V\x55" + E + b"*b1v\x33" + b"1W\x0f" + E + b"*rB\x0c"
            + E + b"%0BIN;SP1;PD100,100;LB x PG\x03;DT#;BLab#PE<=a;PG;" + E + b"%0A" + E + b"&p2X\x0c\x1b"
            + E + b"(s3W\x1bE\x0c" + E + b"&l3A" + E + b"E"
            + E + b"*r3U" + E + b"*r12S" + E + b"*r1A" + E + b"*b2M" + E + b"*b3V\x01\xf0\x0f" + E + b"*b2V\xfe\x55"
            + E + b"*b3m2W\x00\x0f" + E + b"*b1M" + E + b"*b4V\x01\xff\x00\x0f" + E + b"*b0v2W\x00\x01" + E + b"*rB\x0c"
            + E + b"*v6W\x00\x03\x00\x08\x08\x08" + E + b"*b0M" + E + b"*b6W\x01\x01\x01\x02\x02\x03\x0c"
            + E + b"*v6W\x00\x01\x04\x08\x08\x08" + E + b"*b2W\x07\x70\x0c"
            + E + b"*v6W\x00\x02\x01\x01\x01\x01" + E + b"*b1V\xf0" + E + b"*b1V\xf0" + E + b"*b1W\x70\x0c"
            + b"\x1b%-12345X@PJL")

PS_TOKENS = [b"%%", b"\n", b"\r", b"\r\n", b"%%Page: 1 1\n", b"%%Pages: 3\n", b"%%Pages: (atend)\n", b"%%Trailer\n",
             b"%%BeginDocument\n", b"%%EndDocument\n", b"%%BeginBinary: 3\n", b"%%BeginData: 2 Hex Lines\n",
             b"/NumCopies 2 ", b"/#copies 4 ", b"/Duplex true ", b"/Tumble true ", b"/PageSize [612 792]",
             b"%%+ Black\n", b"%%PageMedia: L\n", b"\x1b%-12345X", b"\x00", b" "]
PCL_TOKENS = [E, b"\x0c", E + b"E", E + b"&l", E + b"*b", E + b"*v", E + b"*r", E + b"%0B", E + b"%0A", b"W", b"w",
              b"V", b"S", b"I", b"3", b"-", b".", b"12", b"PG;", b"PD;", b"SP2;", b"LB", b"\x03", b"\x1b%-12345X",
              b"\x00\x01\x02\x03\x04\x05", E + b"*b1M", E + b"*b2M", E + b"*b3M", E + b"*b9M", E + b"*r1A",
              E + b"*b1Y", E + b"*r4S", b"\x1f\xff\xff\x01", b"\x81\x80\x7f"]


def _outcome(mod, data: bytes, **kw):
    try:
        return mod.scan(io.BytesIO(data), **kw)
    except PdlError as e:
        return type(e)


def _check(pure, compiled, data: bytes) -> None:
    a = _outcome(pure, data)
    if compiled is not None:
        assert _outcome(compiled, data) == a
    for start in (1, len(data) // 2):
        a = _outcome(pure, data, start=start, sides=TWO_SIDED_SHORT, copies=2, media=(100, 200))
        if compiled is not None:
            assert _outcome(compiled, data, start=start, sides=TWO_SIDED_SHORT, copies=2, media=(100, 200)) == a


def _mutants(seed: bytes, tokens: list[bytes]):
    edit = st.tuples(st.integers(0, len(seed)), st.integers(0, 12), st.sampled_from(tokens) | st.binary(max_size=8))
    return st.lists(edit, max_size=8).map(lambda edits: _apply(seed, edits))


def _documents(tokens: list[bytes]):
    pieces = st.lists(st.sampled_from(tokens) | st.binary(max_size=6), max_size=40)
    return st.binary(max_size=600) | pieces.map(b"".join)


def _apply(seed: bytes, edits) -> bytes:
    data = bytearray(seed)
    for at, cut, insert in edits:
        at = min(at, len(data))
        data[at:at + cut] = insert
    return bytes(data)


@SETTINGS
@given(_documents(PS_TOKENS))
def test_postscript_arbitrary(data):
    _check(pure_ps, C_PS, data)


@SETTINGS
@given(_mutants(PS_SEED, PS_TOKENS))
def test_postscript_mutated(data):
    _check(pure_ps, C_PS, data)


@SETTINGS
@given(_documents(PCL_TOKENS))
def test_pcl_arbitrary(data):
    _check(pure_pcl, C_PCL, data)


@SETTINGS
@given(_mutants(PCL_SEED, PCL_TOKENS))
def test_pcl_mutated(data):
    _check(pure_pcl, C_PCL, data)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_mutants(PCL_SEED, PCL_TOKENS))
def test_pcl_conversions(data):
    before = _outcome(pure_pcl, data)
    for convert in (pure_pcl.to_grayscale, lambda f, o: pure_pcl.to_duplex(f, o, TWO_SIDED_LONG)):
        out = io.BytesIO()
        convert(io.BytesIO(data), out)
        after = _outcome(pure_pcl, out.getvalue())
        if isinstance(before, tuple):
            # same pages (the commands a conversion adds mark nothing)
            assert sum(r.count for r in after[0]) == sum(r.count for r in before[0])


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_mutants(PS_SEED, PS_TOKENS))
def test_postscript_conversions(data):
    before = _outcome(pure_ps, data)
    for convert in (pure_ps.to_grayscale, lambda f, o: pure_ps.to_duplex(f, o, TWO_SIDED_LONG)):
        out = io.BytesIO()
        convert(io.BytesIO(data), out)
        after = _outcome(pure_ps, out.getvalue())
        if isinstance(before, tuple):
            assert isinstance(after, tuple)
            assert sum(r.count for r in after[0]) == sum(r.count for r in before[0])
