"""Property tests for the IPP codec: round trips, robustness, incremental == whole."""
from __future__ import annotations

import dataclasses
import importlib.util
from datetime import datetime, timedelta, timezone
from pathlib import Path

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from spoolproxy.ipp.codec import (
    CodecError,
    Incomplete,
    Limits,
    MessageReader,
    TooLarge,
    decode,
    decode_attributes,
    encode,
    encode_attributes,
)
from spoolproxy.ipp.model import Tag
from spoolproxy.ipp.types import Attribute, Collection, Group, Message, Range, Resolution, TextLang

SETTINGS = settings(deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

# --- a strategy for arbitrary valid Messages -----------------------------------------------

int32 = st.integers(-(2**31), 2**31 - 1)
text = st.text(max_size=12)
names = st.text(min_size=1, max_size=12)


@st.composite
def datetimes(draw) -> datetime:
    """Aware, decisecond precision, any whole-minute offset within a day."""
    dt = draw(st.datetimes(min_value=datetime(1, 1, 1), max_value=datetime(9999, 12, 31, 23, 59, 59)))
    offset = draw(st.integers(-(24 * 60 - 1), 24 * 60 - 1))
    return dt.replace(microsecond=draw(st.integers(0, 9)) * 100000, tzinfo=timezone(timedelta(minutes=offset)))


ASSIGNED = {int(t) for t in Tag}
UNASSIGNED_VALUE_TAGS = [t for t in range(0x20, 0x100) if t not in ASSIGNED]

SCALARS: dict[int, st.SearchStrategy] = {
    Tag.INTEGER: int32,
    Tag.ENUM: int32,
    Tag.BOOLEAN: st.booleans(),
    Tag.STRING: st.binary(max_size=12),
    Tag.DATE: datetimes(),
    Tag.RESOLUTION: st.builds(Resolution, int32, int32, st.integers(-128, 127)),
    Tag.RANGE: st.builds(Range, int32, int32),
    Tag.TEXT_LANG: st.builds(TextLang, text, text),
    Tag.NAME_LANG: st.builds(TextLang, text, text),
    **{t: text for t in (Tag.TEXT, Tag.NAME, Tag.KEYWORD, Tag.URI, Tag.URI_SCHEME)},
    **{t: text for t in (Tag.CHARSET, Tag.LANGUAGE, Tag.MIME_TYPE)},
    Tag.EXTENSION: st.builds(
        lambda tag, payload: tag.to_bytes(4, "big") + payload, st.integers(0, 2**31 - 1), st.binary(max_size=8)
    ),
}
# (tag, value) for every non-collection syntax, each tag family one branch
SCALAR_VALUES = st.one_of(
    *[st.tuples(st.just(int(t)), s) for t, s in SCALARS.items()],
    st.tuples(st.sampled_from(range(0x10, 0x20)), st.none()),  # out-of-band, assigned or not
    st.tuples(st.sampled_from(UNASSIGNED_VALUE_TAGS), st.binary(max_size=8)),
)


def same_syntax(tag: int) -> st.SearchStrategy:
    if tag in SCALARS:
        return SCALARS[tag]
    return st.none() if tag < 0x20 else st.binary(max_size=8)


def collections(depth: int) -> st.SearchStrategy:
    return st.lists(attributes(depth - 1), max_size=4 - depth).map(Collection)


def tagged_values(depth: int) -> st.SearchStrategy:
    """(tag, value) pairs; collections (a third of values) nest at most ``depth`` levels."""
    if depth == 0:
        return SCALAR_VALUES
    collection = st.tuples(st.just(int(Tag.BEGIN_COLLECTION)), collections(depth))
    # not st.one_of(SCALAR_VALUES, collection): that flattens to 1 branch in 20
    return st.integers(0, 2).flatmap(lambda i: collection if i == 0 else SCALAR_VALUES)


_ATTRIBUTES: dict[int, st.SearchStrategy] = {}


def attributes(depth: int = 3) -> st.SearchStrategy:
    if depth not in _ATTRIBUTES:
        _ATTRIBUTES[depth] = _attribute(depth)
    return _ATTRIBUTES[depth]


def _attribute(depth: int) -> st.SearchStrategy:
    @st.composite
    def attribute(draw) -> Attribute:
        first_tag, first = draw(tagged_values(depth))
        if draw(st.booleans()):  # a 1setOf of one syntax
            same = collections(depth) if first_tag == Tag.BEGIN_COLLECTION else same_syntax(first_tag)
            more = [(first_tag, v) for v in draw(st.lists(same, max_size=2))]
        else:  # additional values of any syntax
            more = draw(st.lists(tagged_values(depth), max_size=2))
        pairs = [(first_tag, first), *more]
        tags = [t for t, _ in pairs]
        mixed = any(t != first_tag for t in tags)
        return Attribute(draw(names), first_tag, [v for _, v in pairs], tags if mixed else None)

    return attribute()


GROUP_TAGS = [t for t in range(1, 0x0B) if t != Tag.END]
groups = st.builds(Group, st.sampled_from(GROUP_TAGS), st.lists(attributes(), max_size=4))
messages = st.builds(
    Message,
    st.tuples(st.integers(0, 255), st.integers(0, 255)),
    st.integers(0, 0xFFFF),
    int32,
    st.lists(groups, max_size=4),
)


def nesting(attrs) -> int:
    """How deep collections nest in ``attrs`` (a collection attribute is 1)."""
    depth = 0
    for a in attrs:
        for tag, value in zip(a.tags(), a.values):
            if tag == Tag.BEGIN_COLLECTION:
                depth = max(depth, 1 + nesting(value))
    return depth


# --- round trips ----------------------------------------------------------------------------


@SETTINGS
@given(messages)
def test_decode_encode_round_trip(msg):
    data = encode(msg)
    got, offset = decode(data)
    assert got == msg
    assert offset == len(data)
    assert encode(got) == data  # one encoding per message


@SETTINGS
@given(messages, st.binary(max_size=20))
def test_document_data_follows_the_message(msg, document):
    data = encode(msg)
    got, offset = decode(data + document)
    assert got == msg and (data + document)[offset:] == document


@SETTINGS
@given(st.lists(attributes(), max_size=6))
def test_attribute_list_round_trip(attrs):
    assert decode_attributes(encode_attributes(attrs)) == attrs


@SETTINGS
@given(messages, st.data())
def test_truncated_encoding_is_incomplete(msg, data):
    encoded = encode(msg)
    cut = data.draw(st.integers(0, len(encoded) - 1))
    try:
        decode(encoded[:cut])
    except Incomplete:
        pass
    else:
        raise AssertionError("a proper prefix decoded")
    assert MessageReader().feed(encoded[:cut]) is None


# --- robustness: only CodecError escapes, reader agrees with decode --------------------------


def outcome(fn):
    try:
        return "ok", fn()
    except TooLarge as e:
        return "TooLarge", str(e)
    except Incomplete as e:
        return "Incomplete", str(e)
    except CodecError as e:
        return "CodecError", str(e)


def read_in_pieces(data: bytes, cuts: list[int], limits: Limits):
    """Feed ``data`` split at ``cuts``; return the outcome in decode's terms."""
    reader = MessageReader(limits)
    message = None
    pieces = [data[a:b] for a, b in zip([0, *cuts], [*cuts, len(data)])]
    try:
        for piece in pieces:
            got = reader.feed(piece)
            assert message is None or got is message  # once complete, it stays so
            message = got
    except Incomplete:  # the reader must never raise it
        raise AssertionError("MessageReader raised Incomplete")
    except TooLarge as e:
        return ("TooLarge", str(e)), None
    except CodecError as e:
        return ("CodecError", str(e)), None
    if message is None:
        return ("Incomplete", None), None
    return ("ok", message), reader.rest


def check_reader_matches_decode(data: bytes, cuts: list[int], limits: Limits = Limits()) -> None:
    kind, result = outcome(lambda: decode(data, limits))
    (rkind, rresult), rest = read_in_pieces(data, sorted(set(cuts)), limits)
    assert rkind == kind
    if kind == "ok":
        msg, offset = result
        assert rresult == msg and rest == data[offset:]
        assert decode(encode(msg)) == (msg, len(encode(msg)))  # decoded => re-encodable
    elif kind != "Incomplete":
        assert rresult == result  # same error, same message


splits = st.lists(st.integers(0, 400), max_size=8)


@SETTINGS
@given(st.binary(max_size=300), splits)
@example(b"\x01\x01\x00\x02\x00\x00\x00\x01\x01\x03", [])
def test_arbitrary_bytes(data, cuts):
    check_reader_matches_decode(data, [c for c in cuts if c <= len(data)])


@SETTINGS
@given(st.binary(max_size=200), splits)
def test_arbitrary_bytes_after_a_valid_header(data, cuts):
    data = b"\x02\x00\x00\x0b\x00\x00\x00\x01\x01" + data
    check_reader_matches_decode(data, [c for c in cuts if c <= len(data)])


@st.composite
def mutated_encodings(draw) -> bytes:
    data = bytearray(encode(draw(messages)))
    for _ in range(draw(st.integers(1, 4))):
        op = draw(st.sampled_from(["flip", "set", "insert", "delete", "length"]))
        i = draw(st.integers(0, max(len(data) - 1, 0)))
        if op == "flip" and data:
            data[i] ^= 1 << draw(st.integers(0, 7))
        elif op == "set" and data:
            data[i] = draw(st.sampled_from([0x00, 0x03, 0x34, 0x37, 0x4A, 0x7F, 0x80, 0xFF, draw(st.integers(0, 255))]))
        elif op == "insert":
            data[i:i] = draw(st.binary(min_size=1, max_size=6))
        elif op == "delete" and data:
            del data[i : i + draw(st.integers(1, 6))]
        elif op == "length" and len(data) > i + 1:  # a plausible 2-byte length, off by a little or a lot
            length = draw(st.sampled_from([0, 1, 4, 0x7FFF, 0x8000, 0xFFFF, draw(st.integers(0, 0xFFFF))]))
            data[i : i + 2] = length.to_bytes(2, "big")
    return bytes(data)


@SETTINGS
@given(mutated_encodings(), splits)
def test_mutated_valid_encodings(data, cuts):
    check_reader_matches_decode(data, [c for c in cuts if c <= len(data)])


@SETTINGS
@given(mutated_encodings())
def test_decode_attributes_only_raises_codec_error(data):
    try:
        attrs = decode_attributes(data[9:])
    except CodecError:
        return
    assert decode_attributes(encode_attributes(attrs)) == attrs


@SETTINGS
@given(messages, splits, st.one_of(st.just(Limits().max_header_bytes), st.integers(8, 600)))
def test_reader_in_pieces_equals_decode(msg, cuts, limit):
    data = encode(msg) + b"document"
    check_reader_matches_decode(data, [c for c in cuts if c <= len(data)], Limits(max_header_bytes=limit))


@SETTINGS
@given(messages, st.integers(0, 5))
def test_depth_limit_matches_nesting(msg, limit):
    depth = max((nesting(g.attributes) for g in msg.groups), default=0)
    kind, _ = outcome(lambda: decode(encode(msg), Limits(max_depth=limit)))
    assert kind == ("ok" if depth <= limit else "CodecError")


@SETTINGS
@given(messages)
def test_reader_byte_at_a_time(msg):
    data = encode(msg)
    reader = MessageReader()
    got = [reader.feed(data[i : i + 1]) for i in range(len(data))]
    assert got[:-1] == [None] * (len(data) - 1)
    assert got[-1] == msg and reader.rest == b""


# --- the fuzz target, driven by hypothesis ---------------------------------------------------


def _load_fuzz_target():
    path = Path(__file__).resolve().parents[1] / "fuzz" / "fuzz_ipp_codec.py"
    spec = importlib.util.spec_from_file_location("fuzz_ipp_codec", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module


fuzz = _load_fuzz_target()


@settings(SETTINGS, max_examples=300)
@given(st.one_of(st.binary(max_size=300), mutated_encodings(), messages.map(encode)))
def test_fuzz_target(data):
    fuzz.TestOneInput(data)


def test_fuzz_target_random_loop_runs():
    assert fuzz.run_random(iterations=300, seed=1234) == 300


def test_fuzz_target_catches_a_bad_round_trip(monkeypatch):
    """The target must fail when the codec does not round-trip (else it checks nothing)."""
    import spoolproxy.ipp.codec as codec

    def lossy(msg):
        return codec.encode(dataclasses.replace(msg, request_id=msg.request_id ^ 1))

    monkeypatch.setattr(fuzz, "encode", lossy)
    data = encode(Message(groups=[Group(Tag.OPERATION, [Attribute.of("a", Tag.KEYWORD, "b")])]))
    try:
        fuzz.TestOneInput(data)
    except AssertionError:
        return
    raise AssertionError("the fuzz target accepted a lossy round trip")
