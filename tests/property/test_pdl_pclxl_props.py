"""PCL XL twins agree, and nothing but PdlError escapes, on arbitrary and mutated-valid input."""
from __future__ import annotations

import importlib
import io
import os

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from spoolproxy.pdl import pclxl as pure
from spoolproxy.pdl.model import PdlError

from tests.unit.test_pdl_pclxl import _mixed  # a valid stream with every feature the writer has


def _compiled():
    try:
        return importlib.import_module("spoolproxy._ext.pclxl")
    except ModuleNotFoundError:
        if os.environ.get("SPOOLPROXY_REQUIRE_EXT", "") not in ("", "0"):
            raise
        return None


COMP = _compiled()
SEED = _mixed()
HEADERS = [b") HP-PCL XL;2;0\n", b"( HP-PCL XL;2;0\n", b"' HP-PCL XL;2;0\n"]


def _outcome(mod, data: bytes):
    try:
        return mod.scan(io.BytesIO(data), 0, copies=2)
    except PdlError as e:
        return type(e)


def _convert(mod, data: bytes):
    for fn in (mod.to_grayscale, lambda f, o: mod.to_duplex(f, o, "two-sided-long-edge")):
        try:
            fn(io.BytesIO(data), io.BytesIO())
        except PdlError:
            pass


def _check(data: bytes) -> None:
    p = _outcome(pure, data)
    if COMP is not None:
        assert _outcome(COMP, data) == p
    _convert(pure, data)


@st.composite
def mutated(draw):
    buf = bytearray(SEED)
    for _ in range(draw(st.integers(1, 6))):
        i = draw(st.integers(0, len(buf)))
        op = draw(st.integers(0, 3))
        if op == 0 and i < len(buf):
            buf[i] = draw(st.integers(0, 255))
        elif op == 1:
            buf[i:i] = draw(st.binary(max_size=8))
        elif op == 2:
            del buf[i:i + draw(st.integers(1, 16))]
        else:
            del buf[i:]
    return bytes(buf)


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(st.sampled_from(HEADERS), st.binary(max_size=300))
def test_arbitrary_tokens(header, body):
    _check(header + body)


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(mutated())
def test_mutated_valid(data):
    _check(data)


@settings(max_examples=100, deadline=None)
@given(st.lists(st.sampled_from([
    b"\xc0\x02\xf8\x03j", b"\xc8\xc0\x03\xff\x00\x00\xf8\x0bc", b"\xc0\x01\xf8\tc", b"\xa0", b"C", b"D",
    b"a", b"`", b"\xc1\x02\x00\xf81", b"\xc0\x00\xf85", b"\xfb\x02ab", b"\xb0", b"\xb1", b"\xb2",
    b"\xc0\x03\xf8e", b"\xc0\x02\xf8c", b"\xc1\x01\x00\xf8l", b"\xc1\x01\x00\xf8c",
]), max_size=60))
def test_token_soup(tokens):
    _check(b") HP-PCL XL;2;0\n" + b"".join(tokens))
