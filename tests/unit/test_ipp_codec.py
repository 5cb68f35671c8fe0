"""Unit tests for the IPP codec (RFC 8010) with hand-built byte strings."""
from __future__ import annotations

import struct
import tracemalloc
from array import array
from datetime import datetime, timedelta, timezone

import pytest

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
from spoolproxy.ipp.model import Op, Status, Tag
from spoolproxy.ipp.types import Attribute, Collection, Group, Message, Range, Resolution, TextLang

# --- RFC 8010 Appendix A examples, byte for byte ----------------------------------

OPERATION_PREAMBLE = (
    b"\x01"  # operation-attributes-tag
    b"\x47\x00\x12attributes-charset\x00\x05utf-8"
    b"\x48\x00\x1battributes-natural-language\x00\x05en-us"
)
PRINTER_URI = b"\x45\x00\x0bprinter-uri\x00\x2cipp://printer.example.com/ipp/print/pinetree"

# §A.1 Print-Job Request
PRINT_JOB = (
    b"\x01\x01"  # version 1.1
    b"\x00\x02"  # Print-Job
    b"\x00\x00\x00\x01"  # request-id 1
    + OPERATION_PREAMBLE
    + PRINTER_URI
    + b"\x42\x00\x08job-name\x00\x06foobar"
    b"\x22\x00\x16ipp-attribute-fidelity\x00\x01\x01"
    b"\x02"  # job-attributes-tag
    b"\x21\x00\x06copies\x00\x04\x00\x00\x00\x14"
    b"\x44\x00\x05sides\x00\x13two-sided-long-edge"
    b"\x03"  # end-of-attributes-tag
)
DOCUMENT = b"%!PS-Adobe-3.0\n...\n"

# §A.2 Print-Job Request with a collection attribute (media-col)
PRINT_JOB_MEDIA_COL = (
    b"\x01\x01\x00\x02\x00\x00\x00\x01"
    + OPERATION_PREAMBLE
    + PRINTER_URI
    + b"\x42\x00\x08job-name\x00\x06foobar"
    b"\x02"
    b"\x21\x00\x06copies\x00\x04\x00\x00\x00\x14"
    b"\x34\x00\x09media-col\x00\x00"  # begCollection
    b"\x4a\x00\x00\x00\x0amedia-size"  # memberAttrName
    b"\x34\x00\x00\x00\x00"  # begCollection (member value)
    b"\x4a\x00\x00\x00\x0bx-dimension"
    b"\x21\x00\x00\x00\x04\x00\x00\x54\x56"
    b"\x4a\x00\x00\x00\x0by-dimension"
    b"\x21\x00\x00\x00\x04\x00\x00\x6d\x24"
    b"\x37\x00\x00\x00\x00"  # endCollection
    b"\x4a\x00\x00\x00\x0bmedia-color"
    b"\x44\x00\x00\x00\x04blue"
    b"\x4a\x00\x00\x00\x0amedia-type"
    b"\x44\x00\x00\x00\x05plain"
    b"\x37\x00\x00\x00\x00"
    b"\x03"
)

# §A.5 Print-Job Response, successful with attributes ignored (unsupported group)
PRINT_JOB_IGNORED = (
    b"\x01\x01\x00\x01\x00\x00\x00\x01"
    + OPERATION_PREAMBLE
    + b"\x41\x00\x0estatus-message\x00\x2fsuccessful-ok-ignored-or-substituted-attributes"
    b"\x05"  # unsupported-attributes-tag
    b"\x21\x00\x06copies\x00\x04\x00\x00\x00\x14"
    b"\x10\x00\x05sides\x00\x00"  # out-of-band 'unsupported'
    b"\x02"
    b"\x21\x00\x06job-id\x00\x04\x00\x00\x00\x93"
    b"\x45\x00\x07job-uri\x00\x30ipp://printer.example.com/ipp/print/pinetree/147"
    b"\x23\x00\x09job-state\x00\x04\x00\x00\x00\x03"
    b"\x03"
)

# §A.7 Get-Jobs Request: additional values (name-length 0)
GET_JOBS = (
    b"\x01\x01\x00\x0a\x00\x00\x01\x23"
    + OPERATION_PREAMBLE
    + PRINTER_URI
    + b"\x21\x00\x05limit\x00\x04\x00\x00\x00\x32"
    b"\x44\x00\x14requested-attributes\x00\x06job-id"
    b"\x44\x00\x00\x00\x08job-name"
    b"\x44\x00\x00\x00\x0fdocument-format"
    b"\x03"
)

# §A.8 Get-Jobs Response: several job groups (one empty), nameWithLanguage
GET_JOBS_RESPONSE = (
    b"\x01\x01\x00\x00\x00\x00\x01\x23"
    + OPERATION_PREAMBLE
    + b"\x41\x00\x0estatus-message\x00\x0dsuccessful-ok"
    b"\x02"
    b"\x21\x00\x06job-id\x00\x04\x00\x00\x00\x93"
    b"\x36\x00\x08job-name\x00\x0c\x00\x05de-CH\x00\x03fou"
    b"\x02"  # the second job: nothing to report
    b"\x02"
    b"\x21\x00\x06job-id\x00\x04\x00\x00\x00\x95"
    b"\x36\x00\x08job-name\x00\x12\x00\x05de-CH\x00\x09isch guet"
    b"\x03"
)

RFC_EXAMPLES = [PRINT_JOB, PRINT_JOB_MEDIA_COL, PRINT_JOB_IGNORED, GET_JOBS, GET_JOBS_RESPONSE]

# --- helpers --------------------------------------------------------------------------

HEADER = b"\x02\x00\x00\x0b\x00\x00\x00\x07"  # 2.0 Get-Printer-Attributes, request-id 7


def rec(tag: int, name: bytes | str, value: bytes | str = b"") -> bytes:
    """One attribute record, built independently of the codec."""
    name = name.encode() if isinstance(name, str) else name
    value = value.encode() if isinstance(value, str) else value
    return bytes([tag]) + struct.pack(">H", len(name)) + name + struct.pack(">H", len(value)) + value


def message(*records: bytes, group: int = 0x01) -> bytes:
    return HEADER + bytes([group]) + b"".join(records) + b"\x03"


def decode_one(record: bytes) -> Attribute:
    msg, _ = decode(message(record))
    assert len(msg.groups[0].attributes) == 1
    return msg.groups[0].attributes[0]


def error_of(data: bytes, limits: Limits = Limits()) -> CodecError:
    with pytest.raises(CodecError) as info:
        decode(data, limits)
    return info.value


def begin(name: str = "") -> bytes:
    return rec(0x34, name)


def member(name: str) -> bytes:
    return rec(0x4A, "", name)


END_COLL = rec(0x37, "")

# --- RFC examples ---------------------------------------------------------------------


def test_print_job_request_a1():
    msg, offset = decode(PRINT_JOB + DOCUMENT)
    assert offset == len(PRINT_JOB)
    assert (PRINT_JOB + DOCUMENT)[offset:] == DOCUMENT
    assert msg.version == (1, 1) and msg.code == Op.PRINT_JOB and msg.request_id == 1
    assert [g.tag for g in msg.groups] == [Tag.OPERATION, Tag.JOB]
    op, job = msg.groups
    assert [(a.name, a.tag, a.values) for a in op] == [
        ("attributes-charset", Tag.CHARSET, ["utf-8"]),
        ("attributes-natural-language", Tag.LANGUAGE, ["en-us"]),
        ("printer-uri", Tag.URI, ["ipp://printer.example.com/ipp/print/pinetree"]),
        ("job-name", Tag.NAME, ["foobar"]),
        ("ipp-attribute-fidelity", Tag.BOOLEAN, [True]),
    ]
    assert op.value("ipp-attribute-fidelity") is True
    assert job.value("copies") == 20 and job.value("sides") == "two-sided-long-edge"
    assert all(a.value_tags is None for g in msg.groups for a in g)


def test_print_job_with_collection_a2():
    msg, _ = decode(PRINT_JOB_MEDIA_COL)
    media_col = msg.group(Tag.JOB).get("media-col")
    assert media_col.tag == Tag.BEGIN_COLLECTION and len(media_col.values) == 1
    col = media_col.value
    assert isinstance(col, Collection)
    assert [m.name for m in col] == ["media-size", "media-color", "media-type"]
    size = col.get("media-size")
    assert size.tag == Tag.BEGIN_COLLECTION
    assert [(m.name, m.tag, m.values) for m in size.value] == [
        ("x-dimension", Tag.INTEGER, [21590]),
        ("y-dimension", Tag.INTEGER, [27940]),
    ]
    assert col.get("media-color").values == ["blue"] and col.get("media-type").values == ["plain"]


def test_response_with_unsupported_group_and_out_of_band_a5():
    msg, _ = decode(PRINT_JOB_IGNORED)
    assert msg.code == Status.OK_IGNORED_OR_SUBSTITUTED
    unsupported = msg.group(Tag.UNSUPPORTED_GROUP)
    assert unsupported.get("copies").values == [20]
    sides = unsupported.get("sides")
    assert sides.tag == Tag.UNSUPPORTED_VALUE and sides.values == [None] and sides.is_out_of_band()
    assert msg.group(Tag.JOB).value("job-state") == 3


def test_additional_values_a7():
    msg, _ = decode(GET_JOBS)
    assert msg.request_id == 0x123
    req = msg.operation.get("requested-attributes")
    assert req.values == ["job-id", "job-name", "document-format"] and req.value_tags is None
    assert msg.operation.value("limit") == 50


def test_several_job_groups_a8():
    msg, _ = decode(GET_JOBS_RESPONSE)
    jobs = msg.groups_of(Tag.JOB)
    assert len(jobs) == 3 and len(jobs[1]) == 0
    assert jobs[0].value("job-id") == 147 and jobs[2].value("job-id") == 149
    assert jobs[0].value("job-name") == TextLang("fou", "de-CH")
    assert jobs[2].value("job-name") == TextLang("isch guet", "de-CH")


@pytest.mark.parametrize("data", RFC_EXAMPLES, ids=["A1", "A2", "A5", "A7", "A8"])
def test_rfc_examples_reencode_byte_for_byte(data):
    msg, offset = decode(data)
    assert offset == len(data)
    assert encode(msg) == data


@pytest.mark.parametrize("data", RFC_EXAMPLES, ids=["A1", "A2", "A5", "A7", "A8"])
def test_truncated_at_every_offset_is_incomplete(data):
    for cut in range(len(data)):
        with pytest.raises(Incomplete):
            decode(data[:cut])
        assert MessageReader().feed(data[:cut]) is None


def test_encode_builds_rfc_example_from_model():
    msg = Message((1, 1), Op.PRINT_JOB, 1)
    op = msg.add_group(Tag.OPERATION)
    op.add("attributes-charset", Tag.CHARSET, "utf-8")
    op.add("attributes-natural-language", Tag.LANGUAGE, "en-us")
    op.add("printer-uri", Tag.URI, "ipp://printer.example.com/ipp/print/pinetree")
    op.add("job-name", Tag.NAME, "foobar")
    op.add("ipp-attribute-fidelity", Tag.BOOLEAN, True)
    job = msg.add_group(Tag.JOB)
    job.add("copies", Tag.INTEGER, 20)
    job.add("sides", Tag.KEYWORD, "two-sided-long-edge")
    assert encode(msg) == PRINT_JOB


# --- every value tag ------------------------------------------------------------------

UTC = timezone.utc
VALUE_CASES = [
    # (tag, python value, value bytes on the wire)
    (Tag.INTEGER, -2, b"\xff\xff\xff\xfe"),
    (Tag.INTEGER, 2**31 - 1, b"\x7f\xff\xff\xff"),
    (Tag.BOOLEAN, True, b"\x01"),
    (Tag.BOOLEAN, False, b"\x00"),
    (Tag.ENUM, 5, b"\x00\x00\x00\x05"),
    (Tag.STRING, b"\x00\xffraw", b"\x00\xffraw"),
    (
        Tag.DATE,
        datetime(2017, 1, 31, 13, 45, 7, 300000, timezone(timedelta(hours=-5, minutes=-30))),
        b"\x07\xe1\x01\x1f\x0d\x2d\x07\x03-\x05\x1e",
    ),
    (Tag.DATE, datetime(1999, 12, 31, 23, 59, 59, 900000, UTC), b"\x07\xcf\x0c\x1f\x17\x3b\x3b\x09+\x00\x00"),
    (Tag.RESOLUTION, Resolution(600, 1200, 3), b"\x00\x00\x02\x58\x00\x00\x04\xb0\x03"),
    (Tag.RESOLUTION, Resolution(-1, 0, -128), b"\xff\xff\xff\xff\x00\x00\x00\x00\x80"),
    (Tag.RANGE, Range(1, 2**31 - 1), b"\x00\x00\x00\x01\x7f\xff\xff\xff"),
    (Tag.TEXT_LANG, TextLang("Grüße", "de"), b"\x00\x02de\x00\x07Gr\xc3\xbc\xc3\x9fe"),
    (Tag.NAME_LANG, TextLang("", "en-us"), b"\x00\x05en-us\x00\x00"),
    (Tag.TEXT, "héllo wörld", "héllo wörld".encode()),
    (Tag.TEXT, "", b""),
    (Tag.NAME, "Jöb №1", "Jöb №1".encode()),
    (Tag.KEYWORD, "one-sided", b"one-sided"),
    (Tag.URI, "ipp://h/ipp/print", b"ipp://h/ipp/print"),
    (Tag.URI_SCHEME, "ipps", b"ipps"),
    (Tag.CHARSET, "utf-8", b"utf-8"),
    (Tag.LANGUAGE, "en-us", b"en-us"),
    (Tag.MIME_TYPE, "application/pdf", b"application/pdf"),
    *[(tag, None, b"") for tag in range(0x10, 0x20)],  # every out-of-band tag, assigned or not
    (0x20, b"\x01\x02", b"\x01\x02"),  # unassigned integer-type tag
    (0x38, b"xyz", b"xyz"),  # unassigned octetString-type tag
    (0x4B, b"", b""),  # unassigned character-string tag
    (0x60, b"\xde\xad", b"\xde\xad"),
    (0xFE, b"hi", b"hi"),
    (Tag.EXTENSION, b"\x40\x00\x00\x01payload", b"\x40\x00\x00\x01payload"),
    (Tag.EXTENSION, b"\x00\x00\x00\x00", b"\x00\x00\x00\x00"),
]


@pytest.mark.parametrize("tag,value,wire", VALUE_CASES, ids=lambda x: repr(x)[:30])
def test_every_value_tag(tag, value, wire):
    attr = Attribute.of("a-name", tag, value)
    data = message(rec(tag, "a-name", wire))
    m = Message((2, 0), 0x0B, 7, [Group(Tag.OPERATION, [attr])])
    assert encode(m) == data
    got = decode_one(rec(tag, "a-name", wire))
    assert got == attr
    assert got.tag == tag and type(got.value) is type(value)
    assert encode_attributes([attr]) == rec(tag, "a-name", wire)
    assert decode_attributes(rec(tag, "a-name", wire)) == [attr]


def test_decoded_tags_are_enum_members_when_known():
    assert decode_one(rec(0x44, "k", "v")).tag is Tag.KEYWORD
    assert decode_one(rec(0x99, "k", "v")).tag == 0x99
    msg, _ = decode(message(rec(0x44, "k", "v"), group=0x04))
    assert msg.groups[0].tag is Tag.PRINTER


def test_date_decisecond_precision_and_zones():
    got = decode_one(rec(0x31, "d", b"\x07\xe8\x02\x1d\x00\x00\x00\x05+\x0e\x00")).value
    assert got == datetime(2024, 2, 29, 0, 0, 0, 500000, timezone(timedelta(hours=14)))
    assert got.utcoffset() == timedelta(hours=14)
    # "-00:00" is UTC
    assert decode_one(rec(0x31, "d", b"\x07\xe8\x02\x1d\x00\x00\x00\x00-\x00\x00")).value.tzinfo == UTC


def test_date_leap_second_decodes_as_59():
    got = decode_one(rec(0x31, "d", b"\x07\xd8\x0c\x1f\x17\x3b\x3c\x00+\x00\x00")).value
    assert got == datetime(2008, 12, 31, 23, 59, 59, tzinfo=UTC)


def test_date_encode_naive_is_utc_and_microseconds_truncate():
    naive = Attribute.of("d", Tag.DATE, datetime(2020, 5, 6, 7, 8, 9, 123456))
    aware = Attribute.of("d", Tag.DATE, datetime(2020, 5, 6, 7, 8, 9, 100000, UTC))
    assert encode_attributes([naive]) == encode_attributes([aware])
    assert decode_attributes(encode_attributes([naive])) == [aware]
    assert encode_attributes([naive]).endswith(b"\x07\xe4\x05\x06\x07\x08\x09\x01+\x00\x00")


@pytest.mark.parametrize(
    "wire",
    [
        b"\x07\xe4\x0d\x01\x00\x00\x00\x00+\x00\x00",  # month 13
        b"\x07\xe4\x02\x1e\x00\x00\x00\x00+\x00\x00",  # 30 February
        b"\x00\x00\x01\x01\x00\x00\x00\x00+\x00\x00",  # year 0
        b"\x07\xe4\x01\x01\x18\x00\x00\x00+\x00\x00",  # hour 24
        b"\x07\xe4\x01\x01\x00\x00\x3d\x00+\x00\x00",  # second 61
        b"\x07\xe4\x01\x01\x00\x00\x00\x0a+\x00\x00",  # 10 deciseconds
        b"\x07\xe4\x01\x01\x00\x00\x00\x00x\x00\x00",  # direction not + or -
        b"\x07\xe4\x01\x01\x00\x00\x00\x00+\x18\x00",  # offset 24 h
        b"\x07\xe4\x01\x01\x00\x00\x00\x00+\x00\x3c",  # offset 60 min
        b"\x07\xe4\x01\x01\x00\x00\x00\x00+\x00",  # 10 bytes
        b"\x07\xe4\x01\x01\x00\x00\x00\x00+\x00\x00\x00",  # 12 bytes
    ],
)
def test_bad_date_is_codec_error(wire):
    err = error_of(message(rec(0x31, "date-time-at-creation", wire)))
    assert not isinstance(err, Incomplete)
    assert "date-time-at-creation" in str(err)


# --- collections ----------------------------------------------------------------------


def test_one_set_of_collection_nested_with_additional_member_values():
    data = message(
        begin("media-col-database"),
        member("media-size"),
        begin(),
        member("x-dimension"),
        rec(0x21, "", b"\x00\x00\x52\x08"),
        member("y-dimension"),
        rec(0x21, "", b"\x00\x00\x74\x04"),
        END_COLL,
        member("media-source"),
        rec(0x44, "", "tray-1"),
        rec(0x44, "", "tray-2"),  # additional value of a member
        rec(0x42, "", "manual"),  # ... with another tag
        END_COLL,
        begin(),  # second collection value of the attribute
        END_COLL,
        begin(),  # third: a member that is a 1setOf collection
        member("m"),
        begin(),
        END_COLL,
        begin(),
        member("z"),
        rec(0x13, ""),
        END_COLL,
        END_COLL,
        rec(0x44, "after", "x"),
    )
    msg, _ = decode(data)
    db, after = msg.groups[0].attributes
    assert after.values == ["x"]
    assert db.name == "media-col-database" and db.tag == Tag.BEGIN_COLLECTION
    assert len(db.values) == 3 and all(isinstance(v, Collection) for v in db.values)
    first, empty, third = db.values
    assert empty == []
    assert first.get("media-size").value.get("y-dimension").value == 29700
    source = first.get("media-source")
    assert source.values == ["tray-1", "tray-2", "manual"]
    assert source.value_tags == [Tag.KEYWORD, Tag.KEYWORD, Tag.NAME]
    m = third.get("m")
    assert m.values == [Collection(), Collection([Attribute("z", Tag.NO_VALUE, [None])])]
    assert encode(msg) == data


def test_nesting_up_to_max_depth_and_beyond():
    def nested(depth: int) -> bytes:
        return message(begin("c"), *[member("m"), begin()] * (depth - 1), *[END_COLL] * depth)

    msg, _ = decode(nested(16))
    assert encode(msg) == nested(16)
    err = error_of(nested(17))
    assert "deeper than 16" in str(err) and not isinstance(err, Incomplete)
    assert decode(nested(3), Limits(max_depth=3))[0] is not None
    with pytest.raises(CodecError, match="deeper than 2"):
        decode(nested(3), Limits(max_depth=2))


def test_very_deep_nesting_never_recurses():
    depth = 50_000
    data = message(begin("c"), *[member("m"), begin()] * (depth - 1), *[END_COLL] * depth)
    msg, offset = decode(data, Limits(max_depth=depth))
    assert offset == len(data)
    with pytest.raises(CodecError):
        decode(data)  # default depth


@pytest.mark.parametrize(
    "records,problem",
    [
        ((begin("c"), rec(0x44, "named", "v"), END_COLL), "named attribute inside a collection"),
        ((begin("c"), rec(0x44, "", "v"), END_COLL), "without a memberAttrName"),
        ((begin("c"), member("m"), END_COLL), "has no value"),
        ((begin("c"), member("m"), member("n"), rec(0x44, "", "v"), END_COLL), "has no value"),
        ((begin("c"), rec(0x4A, "", ""), rec(0x44, "", "v"), END_COLL), "empty memberAttrName"),
        ((begin("c"), rec(0x4A, "x", "m"), rec(0x44, "", "v"), END_COLL), "named attribute"),
        ((rec(0x34, "c", b"\x00"), END_COLL), "begCollection with a value"),
        ((begin("c"), rec(0x37, "", b"x")), "endCollection with a value"),
        ((rec(0x37, "", b""),), "outside a collection"),
        ((rec(0x44, "a", "v"), rec(0x37, "", b"")), "outside a collection"),
        ((rec(0x4A, "", "m"),), "outside a collection"),
    ],
)
def test_malformed_collections(records, problem):
    err = error_of(message(*records))
    assert not isinstance(err, Incomplete)
    assert problem in str(err)


def test_member_name_must_be_utf8():
    err = error_of(message(begin("c"), rec(0x4A, "", b"\xff\xfe"), rec(0x44, "", "v"), END_COLL))
    assert "member name" in str(err)


@pytest.mark.parametrize("delimiter", [0x01, 0x02, 0x03, 0x04])
def test_delimiter_inside_collection(delimiter):
    data = HEADER + b"\x01" + begin("c") + member("m") + rec(0x44, "", "v") + bytes([delimiter]) + b"\x03"
    err = error_of(data)
    assert "inside a collection" in str(err)


# --- groups, additional values, structure errors -------------------------------------------


def test_additional_values_with_mixed_tags():
    attr = decode_one(
        rec(0x44, "job-sheets", "none") + rec(0x42, "", "my banner") + rec(0x44, "", "standard") + rec(0x13, "")
    )
    assert attr.values == ["none", "my banner", "standard", None]
    assert attr.tag == Tag.KEYWORD
    assert attr.value_tags == [Tag.KEYWORD, Tag.NAME, Tag.KEYWORD, Tag.NO_VALUE]
    assert attr.tags() == attr.value_tags


def test_same_group_tag_repeated_and_empty_groups_are_preserved():
    data = (
        HEADER
        + b"\x01" + rec(0x47, "attributes-charset", "utf-8")
        + b"\x02" + rec(0x21, "job-id", b"\x00\x00\x00\x01")
        + b"\x02"
        + b"\x02" + rec(0x21, "job-id", b"\x00\x00\x00\x02") + rec(0x21, "job-id", b"\x00\x00\x00\x03")
        + b"\x04\x05\x06\x07\x08\x09\x0a"
        + b"\x03"
    )
    msg, _ = decode(data)
    assert [g.tag for g in msg.groups] == [1, 2, 2, 2, 4, 5, 6, 7, 8, 9, 10]
    assert [len(g) for g in msg.groups_of(Tag.JOB)] == [1, 0, 2]
    # two attributes with the same name stay two attributes
    assert [a.values for a in msg.groups_of(Tag.JOB)[2]] == [[2], [3]]
    assert encode(msg) == data


def test_message_without_groups():
    msg, offset = decode(HEADER + b"\x03data")
    assert msg.groups == [] and offset == 9


def test_version_code_and_request_id_are_returned_as_is():
    msg, _ = decode(b"\x09\x07\xff\xfe\xff\xff\xff\xff\x03")
    assert msg.version == (9, 7) and msg.code == 0xFFFE and msg.request_id == -1
    assert encode(msg) == b"\x09\x07\xff\xfe\xff\xff\xff\xff\x03"


@pytest.mark.parametrize("tag", [0x00, 0x0B, 0x0C, 0x0D, 0x0E, 0x0F])
def test_undefined_delimiter_tags(tag):
    err = error_of(HEADER + bytes([tag]) + b"\x03")
    assert f"0x{tag:02x}" in str(err) and not isinstance(err, Incomplete)


def test_additional_value_without_attribute():
    assert "no preceding attribute" in str(error_of(message(rec(0x44, "", "v"))))
    # a new group resets the attribute that additional values attach to
    data = HEADER + b"\x01" + rec(0x44, "a", "v") + b"\x02" + rec(0x44, "", "w") + b"\x03"
    assert "no preceding attribute" in str(error_of(data))


def test_value_before_any_group():
    assert "before any group" in str(error_of(HEADER + rec(0x44, "a", "v") + b"\x03"))
    assert "before any group" in str(error_of(HEADER + rec(0x44, "", "v") + b"\x03"))


# --- value errors ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "tag,wire",
    [
        (0x21, b"\x00\x00\x01"),
        (0x21, b"\x00\x00\x00\x00\x01"),
        (0x23, b""),
        (0x22, b"\x02"),
        (0x22, b"\xff"),
        (0x22, b"\x00\x01"),
        (0x22, b""),
        (0x32, b"\x00" * 8),
        (0x32, b"\x00" * 10),
        (0x33, b"\x00" * 7),
        (0x33, b"\x00" * 9),
        (0x35, b"\x00\x02en\x00\x03ab"),  # text shorter than its length
        (0x35, b"\x00\x02en\x00\x01abc"),  # bytes left over
        (0x36, b"\x00\x09en\x00\x00"),  # language overruns
        (0x36, b"\x00\x02en"),  # no text length
        (0x35, b"\x00"),
        (0x35, b"\x00\x02\xff\xfe\x00\x00"),  # language not UTF-8
        (0x36, b"\x00\x00\x00\x02\xc3\x28"),  # text not UTF-8
        (0x41, b"\xff"),
        (0x42, b"abc\xc3"),
        (0x44, b"\x80"),
        (0x45, b"\xed\xa0\x80"),  # encoded surrogate
        (0x7F, b"\x00\x00\x01"),  # extension value shorter than its tag
        (0x7F, b"\x80\x00\x00\x00"),  # extension tag with the high bit set
    ],
)
def test_bad_values_are_codec_errors(tag, wire):
    err = error_of(message(rec(tag, "the-attribute", wire)))
    assert not isinstance(err, Incomplete)
    assert err.status == Status.BAD_REQUEST
    assert "the-attribute" in str(err) and "offset" in str(err)


def test_bad_boolean_message_is_readable():
    err = error_of(message(rec(0x22, "ipp-attribute-fidelity", b"\x02")))
    assert str(err) == "bad boolean value of 'ipp-attribute-fidelity' at offset 9: 2 is not 0 or 1"


def test_attribute_name_must_be_utf8():
    assert "not UTF-8" in str(error_of(message(rec(0x44, b"\xff", "v"))))


def test_out_of_band_with_value_bytes_is_tolerated():
    data = message(rec(0x12, "printer-info", b"junk"), rec(0x44, "next", "v"))
    msg, _ = decode(data)
    assert [(a.name, a.tag, a.values) for a in msg.groups[0]] == [
        ("printer-info", Tag.UNKNOWN, [None]),
        ("next", Tag.KEYWORD, ["v"]),
    ]
    assert encode(msg) == message(rec(0x12, "printer-info"), rec(0x44, "next", "v"))


# --- lengths and limits -----------------------------------------------------------------


def test_negative_signed_short_lengths():
    err = error_of(HEADER + b"\x01\x44\x80\x00")
    assert "name-length" in str(err) and not isinstance(err, Incomplete)
    err = error_of(HEADER + b"\x01\x44\x00\x01a\xff\xff")
    assert "value-length" in str(err) and not isinstance(err, Incomplete)


def test_length_beyond_buffer_is_incomplete_without_allocating():
    data = HEADER + b"\x01\x41\x00\x01a\x7f\xff" + b"x" * 100
    tracemalloc.start()
    try:
        with pytest.raises(Incomplete):
            decode(data)
        assert MessageReader().feed(data) is None
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 16384  # nothing sized by the claimed 32767


def test_ten_megabytes_without_end_tag_is_too_large_early():
    chunk = rec(0x30, "", b"\x00" * 32000)  # additional octetString values, 32 KB each
    stream = message(rec(0x30, "blob", b"")) [:-1] + chunk * 330  # ~10 MB, no end tag
    reader = MessageReader()
    fed = 0
    with pytest.raises(TooLarge) as info:
        for i in range(0, len(stream), 65536):
            reader.feed(stream[i : i + 65536])
            fed = i + 65536
    assert info.value.status == Status.REQUEST_ENTITY_TOO_LARGE
    assert fed <= (1 << 20) + 65536  # raised within a chunk of crossing 1 MiB
    assert len(stream) > 10_000_000
    with pytest.raises(TooLarge):
        decode(stream)
    with pytest.raises(TooLarge):  # sticky
        reader.feed(b"\x03")


def test_max_header_bytes_boundary():
    data = PRINT_JOB + DOCUMENT
    assert decode(data, Limits(max_header_bytes=len(PRINT_JOB)))[1] == len(PRINT_JOB)
    with pytest.raises(TooLarge):
        decode(data, Limits(max_header_bytes=len(PRINT_JOB) - 1))
    # shorter than the limit but truncated: still only Incomplete
    with pytest.raises(Incomplete):
        decode(PRINT_JOB[:-1], Limits(max_header_bytes=len(PRINT_JOB) - 1))
    assert MessageReader(Limits(max_header_bytes=len(PRINT_JOB))).feed(data) is not None
    reader = MessageReader(Limits(max_header_bytes=len(PRINT_JOB) - 1))
    for b in PRINT_JOB[:-1]:
        assert reader.feed(bytes([b])) is None
    with pytest.raises(TooLarge):
        reader.feed(b"\x03")


def test_error_classes_and_status():
    assert issubclass(Incomplete, CodecError) and issubclass(TooLarge, CodecError)
    assert CodecError("x").status == Status.BAD_REQUEST
    assert CodecError("x", Status.VERSION_NOT_SUPPORTED).status == Status.VERSION_NOT_SUPPORTED
    assert Incomplete("x").status == Status.BAD_REQUEST
    assert TooLarge("x").status == Status.REQUEST_ENTITY_TOO_LARGE
    assert str(TooLarge("too big")) == "too big"
    assert Limits() == Limits(max_header_bytes=1 << 20, max_depth=16)


def test_decode_accepts_bytearray_and_memoryviews():
    expected = decode(PRINT_JOB_MEDIA_COL)
    assert decode(bytearray(PRINT_JOB_MEDIA_COL)) == expected
    assert decode(memoryview(PRINT_JOB_MEDIA_COL)) == expected
    padded = b"\x00" + PRINT_JOB_MEDIA_COL
    assert decode(memoryview(padded)[1:]) == expected
    assert decode(memoryview(bytes(x for b in PRINT_JOB_MEDIA_COL for x in (b, 0)))[::2]) == expected
    shorts = array("H")
    shorts.frombytes(PRINT_JOB_MEDIA_COL + b"x" * (len(PRINT_JOB_MEDIA_COL) % 2))
    assert decode(memoryview(shorts)) == expected  # any format: read as bytes
    assert decode(memoryview(bytearray(PRINT_JOB_MEDIA_COL)).cast("B", (1, len(PRINT_JOB_MEDIA_COL)))) == expected
    octets = decode(message(rec(0x30, "o", b"ab")))[0].groups[0].value("o")
    assert type(octets) is bytes
    assert type(decode(bytearray(message(rec(0x30, "o", b"ab"))))[0].groups[0].value("o")) is bytes


def test_failed_decode_of_a_view_does_not_pin_the_bytearray():
    buf = bytearray(PRINT_JOB[:20])
    with pytest.raises(Incomplete) as info:
        decode(memoryview(buf))
    buf += PRINT_JOB[20:]  # would raise BufferError if the traceback held an export
    with pytest.raises(CodecError):
        decode_attributes(memoryview(buf))
    buf += b"x"
    assert info.value is not None and decode(memoryview(buf))[1] == len(PRINT_JOB)
    buf += b"y"


# --- MessageReader ------------------------------------------------------------------------


def test_reader_byte_by_byte_equals_decode_and_keeps_rest():
    data = GET_JOBS + b"document bytes"
    reader = MessageReader()
    results = [reader.feed(data[i : i + 1]) for i in range(len(data))]
    assert results[: len(GET_JOBS) - 1] == [None] * (len(GET_JOBS) - 1)
    assert results[len(GET_JOBS) - 1] == decode(data)[0]
    assert reader.rest == b"document bytes"
    assert all(r is results[-1] for r in results[len(GET_JOBS) - 1 :])


def test_reader_rest_in_one_feed_and_after():
    reader = MessageReader()
    assert reader.feed(b"") is None
    msg = reader.feed(PRINT_JOB + DOCUMENT[:5])
    assert msg == decode(PRINT_JOB)[0] and reader.rest == DOCUMENT[:5]
    assert reader.feed(DOCUMENT[5:]) is msg
    assert reader.rest == DOCUMENT
    assert reader.feed(b"") is msg and reader.rest == DOCUMENT


def test_reader_accepts_memoryview_chunks():
    reader = MessageReader()
    mv = memoryview(PRINT_JOB_MEDIA_COL)
    assert reader.feed(mv[:50]) is None
    assert reader.feed(mv[50:]) == decode(PRINT_JOB_MEDIA_COL)[0]


def test_reader_errors_are_codec_errors_and_sticky():
    reader = MessageReader()
    bad = message(rec(0x22, "b", b"\x07"))
    assert reader.feed(bad[:12]) is None
    with pytest.raises(CodecError) as first:
        reader.feed(bad[12:])
    assert not isinstance(first.value, Incomplete)
    with pytest.raises(CodecError) as again:
        reader.feed(b"more")
    assert str(again.value) == str(first.value)


def test_reader_never_raises_incomplete_on_short_input():
    reader = MessageReader()
    for b in HEADER + b"\x01" + rec(0x41, "t", "x" * 300)[:-1]:
        assert reader.feed(bytes([b])) is None


def test_reader_many_small_pieces_of_a_large_section():
    attrs = [Attribute.of(f"attr-{i}", Tag.KEYWORD, *[f"value-{j}" for j in range(5)]) for i in range(2000)]
    msg = Message((2, 0), 0x0B, 1, [Group(Tag.OPERATION, attrs)])
    data = encode(msg) + b"tail"
    reader = MessageReader()
    out = None
    for i in range(0, len(data), 7):
        out = reader.feed(data[i : i + 7]) or out
    assert out == msg and reader.rest == b"tail"


# --- encode errors ----------------------------------------------------------------------


def _encode_attr(attr: Attribute) -> bytes:
    return encode(Message(groups=[Group(Tag.OPERATION, [attr])]))


def _cyclic() -> Attribute:
    col = Collection()
    attr = Attribute.of("loop", Tag.BEGIN_COLLECTION, col)
    col.append(attr)
    return attr


def _nested(depth: int) -> Attribute:
    attr = Attribute.of("m", Tag.INTEGER, 1)
    for _ in range(depth):
        attr = Attribute.of("m", Tag.BEGIN_COLLECTION, Collection([attr]))
    return attr


@pytest.mark.parametrize(
    "attr,problem",
    [
        (Attribute.of("n" * 32768, Tag.KEYWORD, "v"), "name must be 1 to 32767 bytes"),
        (Attribute.of("t", Tag.TEXT, "x" * 32768), "longer than 32767"),
        (Attribute.of("t", Tag.TEXT, "é" * 16384), "longer than 32767"),
        (Attribute.of("t", Tag.NAME_LANG, TextLang("x" * 32760, "en-us")), "longer than 32767"),
        (Attribute.of("t", Tag.STRING, b"x" * 40000), "longer than 32767"),
        (Attribute.of("i", Tag.INTEGER, 2**31), "cannot encode"),
        (Attribute.of("i", Tag.INTEGER, -(2**31) - 1), "cannot encode"),
        (Attribute.of("i", Tag.ENUM, "3"), "cannot encode"),
        (Attribute.of("i", Tag.INTEGER, 1.5), "cannot encode"),
        (Attribute.of("b", Tag.BOOLEAN, 1), "expected a bool"),
        (Attribute.of("k", Tag.KEYWORD, b"bytes"), "expected a str"),
        (Attribute.of("k", Tag.KEYWORD, None), "expected a str"),
        (Attribute.of("k", Tag.TEXT, "\ud800"), "cannot encode"),
        (Attribute.of("\ud800", Tag.TEXT, "x"), "name must be 1 to 32767 bytes of UTF-8"),
        (Attribute.of("o", Tag.STRING, "text"), "expected bytes"),
        (Attribute.of("o", 0x99, 5), "expected bytes"),
        (Attribute.of("r", Tag.RESOLUTION, (600, 600, 3)), "expected a Resolution"),
        (Attribute.of("r", Tag.RESOLUTION, Resolution(600, 600, 200)), "cannot encode"),
        (Attribute.of("r", Tag.RANGE, Range(0, 2**32)), "cannot encode"),
        (Attribute.of("r", Tag.RANGE, (1, 2)), "expected a Range"),
        (Attribute.of("l", Tag.TEXT_LANG, "text"), "expected a TextLang"),
        (Attribute.of("d", Tag.DATE, "2020-01-01"), "expected a datetime"),
        (Attribute.of("d", Tag.DATE, datetime(2020, 1, 1, tzinfo=timezone(timedelta(seconds=30)))), "whole number"),
        (Attribute.of("x", Tag.EXTENSION, b"\x00\x00\x01"), "4-byte extended tag"),
        (Attribute.of("x", Tag.EXTENSION, b"\xff\x00\x00\x01"), "4-byte extended tag"),
        (Attribute.of("n", Tag.NO_VALUE, "value"), "must be None"),
        (Attribute.of("", Tag.KEYWORD, "v"), "name must be"),
        (Attribute(None, Tag.KEYWORD, ["v"]), "name must be"),  # type: ignore[arg-type]
        (Attribute("a", Tag.KEYWORD, []), "has 0 values"),
        (Attribute("a", Tag.KEYWORD, ["x", "y"], [Tag.KEYWORD]), "2 values and 1 value tags"),
        (Attribute.of("a", 0x03, "v"), "not a value tag"),
        (Attribute.of("a", 0x37, b""), "not a value tag"),
        (Attribute.of("a", Tag.MEMBER_NAME, "m"), "not a value tag"),
        (Attribute.of("a", 0x100, b""), "not a value tag"),
        (Attribute.of("a", -1, b""), "not a value tag"),
        (Attribute.of("a", "keyword", "v"), "not a value tag"),  # type: ignore[arg-type]
        (Attribute.of("c", Tag.BEGIN_COLLECTION, {"a": 1}), "must be a Collection"),
        (Attribute.of("c", Tag.BEGIN_COLLECTION, Collection(["not an attribute"])), "expected an Attribute"),
        (_nested(17), "deeper than 16"),
        (_cyclic(), "deeper than 16"),
    ],
    ids=lambda x: repr(x)[:40] if isinstance(x, str) else None,
)
def test_unencodable_values(attr, problem):
    with pytest.raises(CodecError, match=problem):
        _encode_attr(attr)
    with pytest.raises(CodecError, match=problem):
        encode_attributes([attr])


def test_encode_limits_are_inclusive():
    assert decode(_encode_attr(Attribute.of("n" * 32767, Tag.TEXT, "x" * 32767)))[0].groups[0].value("n" * 32767)
    assert decode(_encode_attr(_nested(16)))[0] is not None


@pytest.mark.parametrize(
    "msg",
    [
        Message((256, 0)),
        Message((1,)),  # type: ignore[arg-type]
        Message(code=0x10000),
        Message(code=-1),
        Message(request_id=2**31),
        Message(groups=[Group(0x00)]),
        Message(groups=[Group(Tag.END)]),
        Message(groups=[Group(0x0B)]),
        Message(groups=[Group(0x10)]),
        Message(groups=[Group(Tag.OPERATION, ["not an attribute"])]),  # type: ignore[list-item]
    ],
)
def test_unencodable_messages(msg):
    with pytest.raises(CodecError):
        encode(msg)


def test_value_tags_drive_encoding():
    attr = Attribute("job-sheets", Tag.KEYWORD, ["none", "banner", None], [Tag.KEYWORD, Tag.NAME, Tag.NO_VALUE])
    assert encode_attributes([attr]) == (
        rec(0x44, "job-sheets", "none") + rec(0x42, "", "banner") + rec(0x13, "")
    )


# --- stored attribute lists ------------------------------------------------------------------


def test_attribute_list_round_trip_and_errors():
    attrs = decode(PRINT_JOB_MEDIA_COL)[0].group(Tag.JOB).attributes
    data = encode_attributes(attrs)
    assert decode_attributes(data) == attrs
    assert decode_attributes(b"") == []
    assert encode_attributes([]) == b""
    with pytest.raises(CodecError, match="delimiter"):
        decode_attributes(data + b"\x03")
    with pytest.raises(CodecError, match="delimiter"):
        decode_attributes(b"\x02" + data)
    for cut in range(1, len(data)):
        if cut in _record_boundaries(attrs):
            continue
        with pytest.raises(CodecError):
            decode_attributes(data[:cut])
    with pytest.raises(CodecError, match="no preceding attribute"):
        decode_attributes(rec(0x44, "", "v"))


def _record_boundaries(attrs: list[Attribute]) -> set[int]:
    """Offsets where a prefix of encode_attributes(attrs) is itself a whole list."""
    out, pos = set(), 0
    for a in attrs:
        pos += len(encode_attributes([a]))
        out.add(pos)
    return out
