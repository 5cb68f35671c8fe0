"""Property tests for PWG/URF raster: the twins agree (results, written bytes, exception
classes) on generated and mutated documents; nothing but PdlError escapes; the test
writer round-trips through the test decoder."""
from __future__ import annotations

import importlib
import io
import os

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from spoolproxy.pdl import raster as pure
from spoolproxy.pdl.model import ONE_SIDED, TWO_SIDED_LONG, TWO_SIDED_SHORT, PdlError
from tests.unit.test_pdl_raster import (
    decode, encode_lines, pwg_doc, pwg_header, reference_gray, urf_doc, urf_header,
)

SETTINGS = settings(deadline=None, max_examples=150,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


def _compiled():
    try:
        return importlib.import_module("spoolproxy._ext.raster")
    except ModuleNotFoundError as e:
        if os.environ.get("SPOOLPROXY_REQUIRE_EXT", "") not in ("", "0"):
            pytest.fail(f"SPOOLPROXY_REQUIRE_EXT=1 but the extension is not built: {e}")
        return None


compiled = _compiled()

# (PWG colour space, bits per colour, bits per pixel) / (URF bpp, colour space)
PWG_KINDS = [(19, 8, 24), (1, 16, 48), (20, 1, 4), (18, 8, 8), (3, 1, 1), (6, 8, 32), (6, 1, 4), (50, 8, 24)]
URF_KINDS = [(24, 1), (48, 5), (4, 3), (8, 0), (32, 6), (24, 2), (1, 4)]


@st.composite
def pages(draw, fmt: str):
    if fmt == "pwg":
        cspace, bpc, bpp = draw(st.sampled_from(PWG_KINDS))
    else:
        bpp, cspace = draw(st.sampled_from(URF_KINDS))
    width = draw(st.integers(1, 40))
    height = draw(st.integers(1, 12))
    bpl = (width * bpp + 7) // 8
    palette = draw(st.lists(st.binary(min_size=bpl, max_size=bpl), min_size=1, max_size=3))
    small = draw(st.lists(st.binary(min_size=max(1, bpp // 8), max_size=max(1, bpp // 8)), min_size=1, max_size=4))
    lines = []
    for _ in range(height):
        if draw(st.booleans()):
            lines.append(draw(st.sampled_from(palette)))
        else:  # runs of a few unit values: repeats and literals both appear
            units = [draw(st.sampled_from(small)) for _ in range(bpl // max(1, bpp // 8))]
            lines.append(b"".join(units))
    if fmt == "pwg":
        header = pwg_header(width, height, cspace, bpc, bpp, duplex=draw(st.integers(0, 1)),
                            tumble=draw(st.integers(0, 1)), copies=draw(st.integers(0, 3)))
    else:
        header = urf_header(width, height, bpp, cspace, duplex=draw(st.integers(0, 4)),
                            dpi=draw(st.sampled_from([0, 72, 300])))
    return header, lines


@st.composite
def documents(draw):
    fmt = draw(st.sampled_from(["pwg", "urf"]))
    ps = draw(st.lists(pages(fmt), max_size=3))
    return (pwg_doc if fmt == "pwg" else urf_doc)(*ps), ps


def _outcome(fn):
    try:
        return "ok", fn()
    except PdlError as e:
        return "error", type(e)


def _run_all(mod, data: bytes, start: int = 0):
    def gray():
        out = io.BytesIO()
        mod.to_grayscale(io.BytesIO(data), out, start)
        return out.getvalue()

    def duplex():
        out = io.BytesIO()
        mod.to_duplex(io.BytesIO(data), out, TWO_SIDED_SHORT, start)
        return out.getvalue()

    return (_outcome(lambda: mod.scan(io.BytesIO(data), start, copies=2, sides=TWO_SIDED_LONG)),
            _outcome(gray), _outcome(duplex))


def _agree(data: bytes, start: int = 0):
    got = _run_all(pure, data, start)
    if compiled is not None:
        assert _run_all(compiled, data, start) == got
    return got


@SETTINGS
@given(documents())
def test_round_trip_and_agreement(doc):
    data, ps = doc
    decoded = decode(data)
    assert [lines for _, lines in decoded] == [lines for _, lines in ps]
    (kind, result), gray, duplex = _agree(data)
    assert kind == "ok"
    runs, end = result
    assert end == len(data) and sum(r.count for r in runs) == len(ps)
    if gray[0] == "ok":
        after = decode(gray[1])
        for (si, sl), (di, dl) in zip(decoded, after):
            rgb_spaces = (1, 19, 20) if "numcolors" in si else (1, 3, 5)  # PWG / URF
            if si["cspace"] in rgb_spaces:
                assert dl == reference_gray(si, sl)
            else:
                assert dl == sl
        assert not any(r.color for r in pure.scan(io.BytesIO(gray[1]))[0])
    assert duplex[0] == "ok"
    assert {r.sides for r in pure.scan(io.BytesIO(duplex[1]))[0]} <= {TWO_SIDED_SHORT}


@SETTINGS
@given(documents(), st.data())
def test_mutated_documents(doc, data):
    raw = bytearray(doc[0])
    for _ in range(data.draw(st.integers(1, 4))):
        op = data.draw(st.integers(0, 3))
        i = data.draw(st.integers(0, max(0, len(raw) - 1)))
        if op == 0 and raw:
            raw[i] = data.draw(st.integers(0, 255))
        elif op == 1:
            del raw[i:i + data.draw(st.integers(1, 8))]
        elif op == 2:
            raw[i:i] = data.draw(st.binary(min_size=1, max_size=8))
        else:
            del raw[i:]
    _agree(bytes(raw))


@SETTINGS
@given(st.binary(max_size=64), st.sampled_from([b"RaS2", b"UNIRAST\x00", b""]))
def test_arbitrary_bytes(tail, magic):
    _agree(magic + tail)


@SETTINGS
@given(st.binary(max_size=40), st.integers(0, 40))
def test_arbitrary_headers(body, pad):
    """Header fields set to arbitrary values: only PdlError, twins agree."""
    header = bytearray(pwg_header(4, 2))
    for j in range(0, len(body) - 4, 5):
        off = 272 + (body[j] % 40) * 4
        header[off:off + 4] = body[j + 1:j + 5]
    _agree(b"RaS2" + bytes(header) + encode_lines([b"\x10" * 12] * 2, 3) + b"\x00" * pad)
    _agree(b"UNIRAST\x00\x00\x00\x00\x01" + body[:32].ljust(32, b"\x00") + b"\x00\x80" * pad)


@pytest.mark.parametrize("sides", [ONE_SIDED, TWO_SIDED_LONG, TWO_SIDED_SHORT])
def test_duplex_then_scan(sides):
    data = pwg_doc((pwg_header(5, 2), [b"\x00" * 15] * 2))
    out = io.BytesIO()
    pure.to_duplex(io.BytesIO(data), out, sides)
    assert {r.sides for r in pure.scan(io.BytesIO(out.getvalue()))[0]} == {sides}
