"""Property tests for spoolproxy.snmp: whatever a remote sends, parse_response gives
varbinds or an SnmpError and nothing else; responses pysnmp builds parse back to the
values put in; error_reasons of any octets is a list of known keywords."""
from __future__ import annotations

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from pyasn1.codec.ber import decoder, encoder
from pysnmp.proto import api, rfc1155, rfc1902, rfc1905

from spoolproxy.snmp.mib import ERROR_STATE_BITS, REASON_KEYWORDS, error_reasons
from spoolproxy.snmp.protocol import (
    END_OF_MIB_VIEW,
    SnmpError,
    build_get,
    build_getbulk,
    build_getnext,
    parse_response,
)

SETTINGS = settings(deadline=None, max_examples=400,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

versions = st.sampled_from(["1", "2c"])
request_ids = st.integers(0, 2**31 - 1)

# OIDs BER can carry: first arc 0-2, second < 40 below 2
oids = st.builds(
    lambda first, second, rest: (first, second % 40 if first < 2 else second, *rest),
    st.integers(0, 2), st.integers(0, 200), st.lists(st.integers(0, 2**32 - 1), max_size=12),
)


def oid_text(arcs: tuple[int, ...]) -> str:
    return ".".join(map(str, arcs))


# (pysnmp value, what parse_response must give) for SNMPv2c and SNMPv1
v2c_values = st.one_of(
    st.integers(-(2**31), 2**31 - 1).map(lambda i: (rfc1902.Integer32(i), i)),
    st.binary(max_size=64).map(lambda b: (rfc1902.OctetString(b), b)),
    oids.map(lambda o: (rfc1902.ObjectIdentifier(o), oid_text(o))),
    st.integers(0, 2**32 - 1).map(lambda i: (rfc1902.Counter32(i), i)),
    st.integers(0, 2**32 - 1).map(lambda i: (rfc1902.Gauge32(i), i)),
    st.integers(0, 2**32 - 1).map(lambda i: (rfc1902.TimeTicks(i), i)),
    st.integers(0, 2**64 - 1).map(lambda i: (rfc1902.Counter64(i), i)),
    st.binary(min_size=4, max_size=4).map(lambda b: (rfc1902.IpAddress(b), ".".join(map(str, b)))),
    st.binary(max_size=16).map(lambda b: (rfc1902.Opaque(b), b)),
    st.just((api.v2c.null, None)),
    st.just((rfc1905.noSuchObject, None)),
    st.just((rfc1905.noSuchInstance, None)),
    st.just((rfc1905.endOfMibView, END_OF_MIB_VIEW)),
)
v1_values = st.one_of(
    st.integers(-(2**31), 2**31 - 1).map(lambda i: (api.v1.Integer(i), i)),
    st.binary(max_size=64).map(lambda b: (api.v1.OctetString(b), b)),
    oids.map(lambda o: (api.v1.ObjectIdentifier(o), oid_text(o))),
    st.integers(0, 2**32 - 1).map(lambda i: (rfc1155.Counter(i), i)),
    st.integers(0, 2**32 - 1).map(lambda i: (rfc1155.Gauge(i), i)),
    st.integers(0, 2**32 - 1).map(lambda i: (rfc1155.TimeTicks(i), i)),
    st.binary(min_size=4, max_size=4).map(lambda b: (rfc1155.IpAddress(b), ".".join(map(str, b)))),
    st.just((api.v1.null, None)),
)


def pysnmp_response(version: str, request_id: int, varbinds: list, error_status: int = 0,
                    error_index: int = 0, community: bytes = b"public") -> bytes:
    """A Response built with pysnmp's message API only (not the code under test)."""
    p = api.v1 if version == "1" else api.v2c
    pdu = p.GetResponsePDU()
    p.apiPDU.set_defaults(pdu)
    p.apiPDU.set_request_id(pdu, request_id)
    p.apiPDU.set_error_status(pdu, error_status)
    p.apiPDU.set_error_index(pdu, error_index)
    p.apiPDU.set_varbinds(pdu, varbinds)
    msg = p.Message()
    p.apiMessage.set_defaults(msg)
    p.apiMessage.set_community(msg, community)
    p.apiMessage.set_pdu(msg, pdu)
    return encoder.encode(msg)


@st.composite
def responses(draw) -> tuple[str, int, bytes, list]:
    version = draw(versions)
    values = v1_values if version == "1" else v2c_values
    pairs = draw(st.lists(st.tuples(oids, values), max_size=8))
    rid = draw(request_ids)
    data = pysnmp_response(version, rid, [(api.v2c.ObjectIdentifier(o), v) for o, (v, _) in pairs],
                           community=draw(st.binary(max_size=12)))
    return version, rid, data, [(oid_text(o), expected) for o, (_, expected) in pairs]


def parses_or_snmp_error(data: bytes, request_id: int, version: str) -> None:
    try:
        result = parse_response(data, request_id=request_id, version=version)
    except SnmpError as e:
        assert str(e) and "\n" not in str(e)
        return
    assert isinstance(result, list)
    for oid, value in result:
        assert isinstance(oid, str)
        assert value is None or value is END_OF_MIB_VIEW or type(value) in (int, bytes, str)


@SETTINGS
@given(st.binary(max_size=300), request_ids, versions)
@example(bytes.fromhex("305c0201010488987075626c6963"), 7, "2c")  # a length too long for an index
@example(b"\x30\x80\x02\x01\x01\x00\x00", 1, "2c")  # indefinite length
@example(b"\x30\x06\x02\x01\x01\x04\x01", 1, "2c")
def test_random_bytes_give_varbinds_or_an_snmp_error(data, request_id, version):
    parses_or_snmp_error(data, request_id, version)


@st.composite
def mutated(draw) -> tuple[bytes, int, str]:
    version, rid, data, _ = draw(responses())
    buf = bytearray(data)
    for _ in range(draw(st.integers(1, 6))):
        op = draw(st.sampled_from(["flip", "set", "delete", "insert", "truncate", "append"]))
        if op in ("flip", "set", "delete") and not buf:
            continue
        if op == "flip":
            i = draw(st.integers(0, len(buf) - 1))
            buf[i] ^= 1 << draw(st.integers(0, 7))
        elif op == "set":
            buf[draw(st.integers(0, len(buf) - 1))] = draw(st.integers(0, 255))
        elif op == "delete":
            del buf[draw(st.integers(0, len(buf) - 1))]
        elif op == "insert":
            buf.insert(draw(st.integers(0, len(buf))), draw(st.integers(0, 255)))
        elif op == "truncate":
            buf = buf[:draw(st.integers(0, len(buf)))]
        else:
            buf += draw(st.binary(min_size=1, max_size=8))
    return bytes(buf), rid, draw(st.sampled_from([version, "1", "2c"]))


@SETTINGS
@given(mutated())
def test_mutated_responses_give_varbinds_or_an_snmp_error(case):
    data, rid, version = case
    parses_or_snmp_error(data, rid, version)


@SETTINGS
@given(responses())
def test_a_pysnmp_response_parses_back_to_its_values(case):
    version, rid, data, expected = case
    assert parse_response(data, request_id=rid, version=version) == expected


@SETTINGS
@given(responses(), request_ids)
def test_only_the_matching_request_id_is_accepted(case, other):
    version, rid, data, expected = case
    if other == rid:
        assert parse_response(data, request_id=other, version=version) == expected
    else:
        try:
            parse_response(data, request_id=other, version=version)
        except SnmpError as e:
            assert type(e).__name__ == "SnmpMismatch"
        else:
            raise AssertionError("a response to another request was accepted")


@SETTINGS
@given(versions, request_ids, st.lists(oids, min_size=1, max_size=10), st.binary(max_size=20),
       st.sampled_from(["get", "getnext", "getbulk"]), st.integers(0, 2**31 - 1))
def test_requests_decode_back_with_pysnmp(version, rid, arcs, community, kind, repetitions):
    if kind == "getbulk":
        version = "2c"
        data = build_getbulk(version, community, rid, arcs, max_repetitions=repetitions)
    else:
        data = (build_get if kind == "get" else build_getnext)(version, community, rid, arcs)
    p = api.v1 if version == "1" else api.v2c
    msg, rest = decoder.decode(data, asn1Spec=p.Message())
    assert rest == b""
    assert bytes(p.apiMessage.get_community(msg)) == community
    pdu = p.apiMessage.get_pdu(msg)
    assert int(pdu.getComponentByPosition(0)) == rid
    assert [tuple(o) for o, _ in p.apiPDU.get_varbinds(pdu)] == [tuple(a) for a in arcs]
    if kind == "getbulk":
        assert int(p.apiBulkPDU.get_max_repetitions(pdu)) == repetitions


def reference_reasons(octets: bytes) -> set[str]:
    value = int.from_bytes(octets[:2].ljust(2, b"\0"), "big")
    return {k for bit, _, k in ERROR_STATE_BITS if value & (0x8000 >> bit)}


@SETTINGS
@given(st.binary(max_size=12))
def test_error_reasons_are_known_keywords_without_duplicates(octets):
    reasons = error_reasons(octets)
    assert isinstance(reasons, list)
    assert set(reasons) <= REASON_KEYWORDS
    assert len(reasons) == len(set(reasons))
    assert set(reasons) == reference_reasons(octets)
    padded = octets[:2].ljust(2, b"\0")
    assert error_reasons(padded + b"\xff" * 3) == reasons  # octets after the second mean nothing
