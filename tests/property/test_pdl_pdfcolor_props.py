"""Property tests for PDF page colour: the twins agree, batches equal the whole, and
nothing but PdlError escapes the scan (run without page_color's last-resort guard)."""
from __future__ import annotations

import importlib
import importlib.util
import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from spoolproxy.pdl import pdfcolor as pure
from spoolproxy.pdl.model import PdlError

SETTINGS = settings(deadline=None, max_examples=300,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


def _fuzz_module():
    path = Path(__file__).resolve().parents[1] / "fuzz" / "fuzz_pdl_pdfcolor.py"
    spec = importlib.util.spec_from_file_location("fuzz_pdl_pdfcolor", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module


FUZZ = _fuzz_module()


def _compiled():
    try:
        return importlib.import_module("spoolproxy._ext.pdfcolor")
    except ModuleNotFoundError as e:
        if os.environ.get("SPOOLPROXY_REQUIRE_EXT", "") not in ("", "0"):
            pytest.fail(f"SPOOLPROXY_REQUIRE_EXT=1 but the extension is not built: {e}")
        return None


COMPILED = _compiled()
needs_compiled = pytest.mark.skipif(COMPILED is None and os.environ.get("SPOOLPROXY_REQUIRE_EXT", "") in ("", "0"),
                                    reason="spoolproxy._ext.pdfcolor is not built")

words = st.sampled_from(FUZZ.WORDS)
content_soup = st.lists(st.one_of(words, st.binary(max_size=6),
                                  st.floats(-1e6, 1e6, allow_nan=False).map(lambda f: repr(f).encode())),
                        max_size=40).map(b" ".join)
mutated = st.tuples(st.sampled_from(FUZZ.seed_corpus()), st.randoms(use_true_random=False)).map(
    lambda t: FUZZ.mutate(t[1], t[0], FUZZ.seed_corpus()))
contents = st.one_of(st.binary(max_size=200), content_soup, mutated)


def _answer(module, data):
    try:
        return module._page_color(FUZZ._DOC, FUZZ.page(data))
    except PdlError as e:
        return type(e).__name__


@SETTINGS
@given(contents)
def test_only_pdl_errors_escape(data):
    answer = _answer(pure, data)  # anything but a PdlError propagates and fails the test
    assert answer in (True, False, None) or isinstance(answer, str)


@SETTINGS
@given(contents, st.integers(1, 5))
def test_batches_equal_the_whole(data, batch):
    whole, end = pure.parse_ops(data)
    assert end == len(data)
    pos, parts = 0, []
    while pos < len(data):
        ops, new = pure.parse_ops(data, pos, batch)
        assert len(ops) <= batch and new > pos or (not ops and new == len(data))
        pos = new
        parts += ops
    assert repr(parts) == repr(whole)


@needs_compiled
@SETTINGS
@given(contents, st.integers(0, 50), st.sampled_from([1, 2, 7, 4096]))
def test_twins_tokenize_alike(data, start, batch):
    start = min(start, len(data))
    assert repr(pure.parse_ops(data, start, batch)) == repr(COMPILED.parse_ops(data, start, batch))


@needs_compiled
@SETTINGS
@given(contents)
def test_twins_agree_on_colour(data):
    assert _answer(pure, data) == _answer(COMPILED, data)


decodes = st.lists(st.sampled_from([0.0, 1.0, 0.5, -100.0, 100.0, 0.25]), min_size=8, max_size=8)


@needs_compiled
@SETTINGS
@given(st.binary(max_size=120), st.integers(1, 9), st.integers(1, 9), st.sampled_from([1, 2, 4, 8, 16]),
       st.sampled_from([(3, pure.TEST_RGB), (3, pure.TEST_LAB), (4, pure.TEST_CMYK), (4, pure.TEST_RGB)]),
       decodes, st.sampled_from([pure.TOLERANCE, pure.LAB_TOLERANCE, 0.0]))
def test_twins_check_pixels_alike(data, w, h, bpc, kind, decode, tol):
    ncomp, test = kind
    args = (data, w, h, ncomp, bpc, test, (decode, tol))
    assert pure.image_has_color(*args) == COMPILED.image_has_color(*args)


@needs_compiled
@SETTINGS
@given(st.binary(max_size=120), st.integers(1, 20), st.integers(1, 9), st.sampled_from([1, 2, 4, 8]), st.data())
def test_twins_check_tables_alike(data, w, h, bpc, draw):
    table = draw.draw(st.binary(min_size=1 << bpc, max_size=1 << bpc))
    args = (data, w, h, 1, bpc, pure.TEST_TABLE, table)
    assert pure.image_has_color(*args) == COMPILED.image_has_color(*args)


@SETTINGS
@given(st.binary(max_size=64), st.integers(1, 6), st.integers(1, 6), st.sampled_from([1, 2, 4, 8, 16]))
def test_neutral_rgb_images_are_never_colour(seed, w, h, bpc):
    # every pixel gray: its three samples equal
    maxval = (1 << bpc) - 1
    values = [(b * 7919) % (maxval + 1) for b in (seed or b"\x00")]
    samples = [values[i % len(values)] for i in range(w * h)]
    bits = ""
    for y in range(h):
        row = "".join(format(samples[y * w + x], f"0{bpc}b") * 3 for x in range(w))
        bits += row + "0" * (-len(row) % 8)
    data = int(bits, 2).to_bytes(len(bits) // 8, "big") if bits else b""
    for module in (pure,) + ((COMPILED,) if COMPILED is not None else ()):
        assert module.image_has_color(data, w, h, 3, bpc, pure.TEST_RGB, ([0.0, 1.0] * 3, pure.TOLERANCE)) is False
