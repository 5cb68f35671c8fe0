"""spoolproxy.snmp.protocol (sans-IO messages) and spoolproxy.snmp.client against a fake
agent on a trio UDP socket: requests decode back as sent, every value type comes out as
plain Python, every bad answer is an SnmpError, and the client skips stale or broken
datagrams, retries, times out and can be cancelled."""
from __future__ import annotations

import pickle
from typing import Any, Callable

import pytest
import trio
from pyasn1.codec.ber import decoder, encoder
from pysnmp.proto import api, rfc1155, rfc1902, rfc1905

from spoolproxy.snmp.client import SnmpClient, SnmpTimeout
from spoolproxy.snmp.protocol import (
    END_OF_MIB_VIEW,
    SnmpError,
    SnmpErrorStatus,
    SnmpMismatch,
    build_get,
    build_getbulk,
    build_getnext,
    build_response,
    format_oid,
    parse_oid,
    parse_response,
)

SYS_DESCR = "1.3.6.1.2.1.1.1.0"
SYS_OBJECT_ID = "1.3.6.1.2.1.1.2.0"


def decode_request(data: bytes, version: str) -> tuple[Any, Any]:
    """(message, pdu) decoded with pysnmp, independently of the code under test."""
    p = api.PROTOCOL_MODULES[api.SNMP_VERSION_1 if version == "1" else api.SNMP_VERSION_2C]
    msg, rest = decoder.decode(data, asn1Spec=p.Message())
    assert rest == b""
    return msg, p.apiMessage.get_pdu(msg)


# --------------------------------------------------------------------------- OIDs


def test_parse_oid_accepts_dotted_text_a_leading_dot_and_tuples():
    assert parse_oid("1.3.6.1.2.1.1.1.0") == (1, 3, 6, 1, 2, 1, 1, 1, 0)
    assert parse_oid(".1.3.6.1") == (1, 3, 6, 1)
    assert parse_oid((1, 3, 6)) == (1, 3, 6)
    assert format_oid(".1.3.6.1.4.1.11") == "1.3.6.1.4.1.11"


@pytest.mark.parametrize("bad", ["", "1", "1..3", "1.3.x", "a.b", "3.1", "1.40", "1.3.-1", "1.3 .6", "١.٣"])
def test_parse_oid_rejects_what_ber_cannot_encode(bad):
    with pytest.raises(ValueError):
        parse_oid(bad)


# --------------------------------------------------------------------------- requests


@pytest.mark.parametrize("version", ["1", "2c"])
def test_get_request_decodes_back(version):
    data = build_get(version, "s3cret", 4711, [SYS_DESCR, "1.3.6.1.2.1.25.3.5.1.1.1"])
    msg, pdu = decode_request(data, version)
    p = api.v1 if version == "1" else api.v2c
    assert int(p.apiMessage.get_version(msg)) == (0 if version == "1" else 1)
    assert bytes(p.apiMessage.get_community(msg)) == b"s3cret"
    assert pdu.tagSet == p.GetRequestPDU.tagSet
    assert int(p.apiPDU.get_request_id(pdu)) == 4711
    assert int(p.apiPDU.get_error_status(pdu)) == 0
    varbinds = p.apiPDU.get_varbinds(pdu)
    assert [str(o) for o, _ in varbinds] == [SYS_DESCR, "1.3.6.1.2.1.25.3.5.1.1.1"]
    assert all(isinstance(v, rfc1902.univ.Null) for _, v in varbinds)


@pytest.mark.parametrize("version", ["1", "2c"])
def test_getnext_request_decodes_back(version):
    _, pdu = decode_request(build_getnext(version, b"public", 1, ["1.3.6.1.2.1.43"]), version)
    p = api.v1 if version == "1" else api.v2c
    assert pdu.tagSet == p.GetNextRequestPDU.tagSet
    assert [str(o) for o, _ in p.apiPDU.get_varbinds(pdu)] == ["1.3.6.1.2.1.43"]


def test_getbulk_request_decodes_back():
    _, pdu = decode_request(build_getbulk("2c", "public", 99, ["1.3.6.1.2.1.43.11"], max_repetitions=17,
                                          non_repeaters=0), "2c")
    assert pdu.tagSet == api.v2c.GetBulkRequestPDU.tagSet
    assert int(api.v2c.apiBulkPDU.get_request_id(pdu)) == 99
    assert int(api.v2c.apiBulkPDU.get_max_repetitions(pdu)) == 17
    assert int(api.v2c.apiBulkPDU.get_non_repeaters(pdu)) == 0
    assert [str(o) for o, _ in api.v2c.apiBulkPDU.get_varbinds(pdu)] == ["1.3.6.1.2.1.43.11"]


def test_getbulk_is_v2c_only_and_arguments_are_checked():
    with pytest.raises(ValueError, match="SNMPv2c"):
        build_getbulk("1", "public", 1, [SYS_DESCR], max_repetitions=5)
    with pytest.raises(ValueError):
        build_get("3", "public", 1, [SYS_DESCR])  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        build_get("2c", "public", 2**31, [SYS_DESCR])
    with pytest.raises(ValueError):
        build_get("2c", "public", 1, ["not.an.oid"])


# --------------------------------------------------------------------------- responses


def test_every_v2c_value_type_comes_out_as_plain_python():
    varbinds = [
        ("1.3.6.1.2.1.1.1.0", rfc1902.OctetString(b"HP LaserJet\x00")),
        ("1.3.6.1.2.1.1.2.0", rfc1902.ObjectIdentifier("1.3.6.1.4.1.11.2.3.9.1")),
        ("1.3.6.1.2.1.1.3.0", rfc1902.TimeTicks(123456)),
        ("1.3.6.1.2.1.25.3.2.1.5.1", rfc1902.Integer32(-2)),
        ("1.3.6.1.2.1.43.10.2.1.4.1.1", rfc1902.Counter32(2**32 - 1)),
        ("1.3.6.1.2.1.31.1.1.1.6.1", rfc1902.Counter64(2**64 - 1)),
        ("1.3.6.1.2.1.2.2.1.5.1", rfc1902.Gauge32(1000)),
        ("1.3.6.1.2.1.2.2.1.5.2", rfc1902.Unsigned32(7)),
        ("1.3.6.1.2.1.4.20.1.1.10.0.0.1", rfc1902.IpAddress("10.0.0.1")),
        ("1.3.6.1.4.1.2021.10.1.6.1", rfc1902.Opaque(b"\x9f\x78\x04")),
        ("1.3.6.1.2.1.1.4.0", None),
        ("1.3.6.1.2.1.1.5.0", rfc1905.noSuchObject),
        ("1.3.6.1.2.1.1.6.0", rfc1905.noSuchInstance),
        ("1.3.6.1.2.1.1.7.0", END_OF_MIB_VIEW),
    ]
    got = parse_response(build_response("2c", "public", 5, varbinds), request_id=5, version="2c")
    assert got == [
        ("1.3.6.1.2.1.1.1.0", b"HP LaserJet\x00"),
        ("1.3.6.1.2.1.1.2.0", "1.3.6.1.4.1.11.2.3.9.1"),
        ("1.3.6.1.2.1.1.3.0", 123456),
        ("1.3.6.1.2.1.25.3.2.1.5.1", -2),
        ("1.3.6.1.2.1.43.10.2.1.4.1.1", 2**32 - 1),
        ("1.3.6.1.2.1.31.1.1.1.6.1", 2**64 - 1),
        ("1.3.6.1.2.1.2.2.1.5.1", 1000),
        ("1.3.6.1.2.1.2.2.1.5.2", 7),
        ("1.3.6.1.2.1.4.20.1.1.10.0.0.1", "10.0.0.1"),
        ("1.3.6.1.4.1.2021.10.1.6.1", b"\x9f\x78\x04"),
        ("1.3.6.1.2.1.1.4.0", None),
        ("1.3.6.1.2.1.1.5.0", None),
        ("1.3.6.1.2.1.1.6.0", None),
        ("1.3.6.1.2.1.1.7.0", END_OF_MIB_VIEW),
    ]
    assert all(type(v) in (int, bytes, str, type(None), type(END_OF_MIB_VIEW)) for _, v in got)


def test_v1_value_types():
    varbinds = [
        (SYS_DESCR, b"printer"),
        ("1.3.6.1.2.1.43.10.2.1.4.1.1", rfc1155.Counter(42)),
        ("1.3.6.1.2.1.2.2.1.5.1", rfc1155.Gauge(10)),
        ("1.3.6.1.2.1.1.3.0", rfc1155.TimeTicks(99)),
        ("1.3.6.1.2.1.4.20.1.1.10.0.0.2", rfc1155.IpAddress("10.0.0.2")),
        (SYS_OBJECT_ID, "1.3.6.1.4.1.11"),
        ("1.3.6.1.2.1.25.3.2.1.5.1", 5),
    ]
    got = parse_response(build_response("1", "public", 6, varbinds), request_id=6, version="1")
    assert got == [(SYS_DESCR, b"printer"), ("1.3.6.1.2.1.43.10.2.1.4.1.1", 42), ("1.3.6.1.2.1.2.2.1.5.1", 10),
                   ("1.3.6.1.2.1.1.3.0", 99), ("1.3.6.1.2.1.4.20.1.1.10.0.0.2", "10.0.0.2"),
                   (SYS_OBJECT_ID, "1.3.6.1.4.1.11"), ("1.3.6.1.2.1.25.3.2.1.5.1", 5)]


def test_the_community_of_the_answer_is_not_checked():
    data = build_response("2c", "another-community", 7, [(SYS_DESCR, b"x")])
    assert parse_response(data, request_id=7, version="2c") == [(SYS_DESCR, b"x")]


@pytest.mark.parametrize("status,index,name", [(2, 1, "noSuchName"), (5, 0, "genErr"), (1, 0, "tooBig"),
                                              (16, 2, "authorizationError")])
def test_error_status_names_the_status_and_the_index(status, index, name):
    data = build_response("2c", "public", 8, [(SYS_DESCR, None), (SYS_OBJECT_ID, None)], status, index)
    with pytest.raises(SnmpErrorStatus) as e:
        parse_response(data, request_id=8, version="2c")
    assert (e.value.status, e.value.index, e.value.name) == (status, index, name)
    assert name in str(e.value) and f"({status})" in str(e.value)
    assert (f"varbind {index}" in str(e.value)) if index else ("whole request" in str(e.value))
    assert isinstance(e.value, SnmpError)


def test_a_mismatched_request_id_is_a_mismatch_even_with_an_error_status():
    for data in (build_response("2c", "public", 9, [(SYS_DESCR, b"x")]),
                 build_response("2c", "public", 9, [(SYS_DESCR, None)], error_status=5)):
        with pytest.raises(SnmpMismatch, match="9"):
            parse_response(data, request_id=10, version="2c")
    assert issubclass(SnmpMismatch, SnmpError)


@pytest.mark.parametrize("data,why", [
    (b"", "not an SNMP message"),
    (b"\x30", "not an SNMP message"),
    (b"GET / HTTP/1.1\r\n\r\n", "not an SNMP message"),
    (b"\x30\x03\x02\x01\x03", "version number 3"),
    (build_response("1", "public", 1, [(SYS_DESCR, b"x")]), "v1"),
    (build_get("2c", "public", 1, [SYS_DESCR]), "not a response PDU"),
    (build_getbulk("2c", "public", 1, [SYS_DESCR], 3), "not a response PDU"),
    (build_response("2c", "public", 1, [(SYS_DESCR, b"x")])[:-1], "SNMP"),
    (build_response("2c", "public", 1, [(SYS_DESCR, b"x")]) + b"\x00", "SNMP"),
])
def test_bad_answers_are_snmp_errors_with_a_reason(data, why):
    with pytest.raises(SnmpError, match=why) as e:
        parse_response(data, request_id=1, version="2c")
    assert not isinstance(e.value, (SnmpMismatch, SnmpErrorStatus))
    assert "\n" not in str(e.value)


def test_v2c_exceptions_in_a_v1_message_are_rejected():
    # an SNMPv1 varbind cannot carry endOfMibView; the decoder refuses the tag
    v2 = build_response("2c", "public", 3, [(SYS_DESCR, END_OF_MIB_VIEW)])
    v1ish = bytes([v2[0], v2[1], 0x02, 0x01, 0x00]) + v2[5:]  # same message, version field 0
    with pytest.raises(SnmpError):
        parse_response(v1ish, request_id=3, version="1")
    with pytest.raises(ValueError):
        build_response("1", "public", 3, [(SYS_DESCR, END_OF_MIB_VIEW)])


def test_end_of_mib_view_is_one_sentinel():
    assert repr(END_OF_MIB_VIEW) == "END_OF_MIB_VIEW"
    assert type(END_OF_MIB_VIEW)() is END_OF_MIB_VIEW
    assert pickle.loads(pickle.dumps(END_OF_MIB_VIEW)) is END_OF_MIB_VIEW
    assert END_OF_MIB_VIEW is not None


# --------------------------------------------------------------------------- client, fake agent

Handler = Callable[[str, int, list[str]], list[bytes]]


class FakeAgent:
    """An SNMP agent on a trio UDP socket; ``handler(pdu_type, request_id, oids)`` returns
    the datagrams to answer with (possibly none, possibly several)."""

    def __init__(self, handler: Handler, version: str = "2c") -> None:
        self.handler = handler
        self.version = version
        self.requests: list[tuple[str, int, list[str]]] = []
        self.sock = trio.socket.socket(trio.socket.AF_INET, trio.socket.SOCK_DGRAM)

    async def bind(self) -> int:
        await self.sock.bind(("127.0.0.1", 0))
        return self.sock.getsockname()[1]

    async def serve(self) -> None:
        while True:
            data, peer = await self.sock.recvfrom(65535)
            _, pdu = decode_request(data, self.version)
            p = api.v1 if self.version == "1" else api.v2c
            kind = type(pdu).__name__
            rid = int(pdu.getComponentByPosition(0))
            oids = [str(o) for o, _ in p.apiPDU.get_varbinds(pdu)]
            self.requests.append((kind, rid, oids))
            for reply in self.handler(kind, rid, oids):
                await self.sock.sendto(reply, peer)


async def start_agent(nursery: trio.Nursery, handler: Handler, version: str = "2c") -> tuple[FakeAgent, int]:
    agent = FakeAgent(handler, version)
    port = await agent.bind()
    nursery.start_soon(agent.serve)
    return agent, port


TABLE = {f"1.3.6.1.2.1.43.11.1.1.9.1.{i}": 10 * i for i in range(1, 8)}
TABLE["1.3.6.1.2.1.43.12.1.1.4.1.1"] = b"black"


def table_agent(version: str = "2c", table: dict[str, Any] = TABLE) -> Handler:
    """GET/GETNEXT/GETBULK over ``table``, as an agent would answer them."""
    keys = sorted(table, key=parse_oid)

    def after(oid: str) -> str | None:
        return next((k for k in keys if parse_oid(k) > parse_oid(oid)), None)

    def handle(kind: str, rid: int, oids: list[str]) -> list[bytes]:
        if kind == "GetRequestPDU":
            if version == "1":
                for i, o in enumerate(oids, 1):
                    if o not in table:
                        return [build_response("1", "public", rid, [(x, None) for x in oids], 2, i)]
            return [build_response(version, "public", rid,
                                   [(o, table.get(o, rfc1905.noSuchInstance)) for o in oids])]
        if kind == "GetNextRequestPDU":
            nxt = after(oids[0])
            if nxt is None:
                return [build_response(version, "public", rid, [(oids[0], None)], 2, 1)] if version == "1" else \
                    [build_response(version, "public", rid, [(oids[0], END_OF_MIB_VIEW)])]
            return [build_response(version, "public", rid, [(nxt, table[nxt])])]
        out, cur = [], oids[0]
        for _ in range(3):  # GETBULK: at most 3 per answer, so a walk takes several
            nxt = after(cur)
            if nxt is None:
                out.append((cur, END_OF_MIB_VIEW))
                break
            out.append((nxt, table[nxt]))
            cur = nxt
        return [build_response("2c", "public", rid, out)]

    return handle


@pytest.mark.parametrize("version", ["1", "2c"])
async def test_client_get_and_walk(version, nursery):
    agent, port = await start_agent(nursery, table_agent(version), version)
    async with SnmpClient("127.0.0.1", port, version=version, timeout=2) as client:
        got = await client.get(["1.3.6.1.2.1.43.11.1.1.9.1.2", ".1.3.6.1.2.1.43.11.1.1.9.1.99",
                                "1.3.6.1.2.1.43.12.1.1.4.1.1"])
        assert got == {"1.3.6.1.2.1.43.11.1.1.9.1.2": 20, "1.3.6.1.2.1.43.11.1.1.9.1.99": None,
                       "1.3.6.1.2.1.43.12.1.1.4.1.1": b"black"}
        rows = await client.walk("1.3.6.1.2.1.43.11.1.1.9")
        assert rows == [(f"1.3.6.1.2.1.43.11.1.1.9.1.{i}", 10 * i) for i in range(1, 8)]
        assert await client.walk("1.3.6.1.2.1.43.11.1.1.9", limit=4) == rows[:4]
        assert await client.walk("1.3.6.1.2.1.43.12") == [("1.3.6.1.2.1.43.12.1.1.4.1.1", b"black")]
        assert await client.walk("1.3.6.1.2.1.43.13") == []  # past the end: endOfMibView / noSuchName
    kinds = {k for k, _, _ in agent.requests}
    assert kinds == ({"GetRequestPDU", "GetNextRequestPDU"} if version == "1"
                     else {"GetRequestPDU", "GetBulkRequestPDU"})


async def test_client_skips_stale_answers_and_garbage(nursery):
    def handle(kind, rid, oids):
        return [b"\x00garbage", build_response("2c", "public", rid + 1, [(oids[0], b"stale")]),
                build_response("2c", "public", rid, [(oids[0], b"right")])]

    _, port = await start_agent(nursery, handle)
    async with SnmpClient("127.0.0.1", port, timeout=2, retries=0) as client:
        assert await client.get([SYS_DESCR]) == {SYS_DESCR: b"right"}


async def test_client_retries_with_the_same_request_id(nursery):
    def handle(kind, rid, oids):
        seen.append(rid)
        return [] if len(seen) == 1 else [build_response("2c", "public", rid, [(oids[0], 1)])]

    seen: list[int] = []
    _, port = await start_agent(nursery, handle)
    async with SnmpClient("127.0.0.1", port, timeout=0.3, retries=2) as client:
        assert await client.get([SYS_DESCR]) == {SYS_DESCR: 1}
    assert len(seen) == 2 and seen[0] == seen[1]


async def test_client_times_out_after_its_retries(nursery):
    agent, port = await start_agent(nursery, lambda kind, rid, oids: [])
    async with SnmpClient("127.0.0.1", port, timeout=0.2, retries=2) as client:
        with pytest.raises(SnmpTimeout, match="3 tries"):
            await client.get([SYS_DESCR])
    assert len(agent.requests) == 3


async def test_client_says_what_it_ignored(nursery):
    _, port = await start_agent(nursery, lambda kind, rid, oids: [b"\x30\x03\x02\x01\x07"])
    async with SnmpClient("127.0.0.1", port, timeout=0.2, retries=0) as client:
        with pytest.raises(SnmpTimeout, match="ignored 1 datagram.*version number 7"):
            await client.get([SYS_DESCR])


async def test_client_raises_an_error_status(nursery):
    _, port = await start_agent(nursery, lambda kind, rid, oids: [
        build_response("2c", "public", rid, [(oids[0], None)], error_status=5, error_index=1)])
    async with SnmpClient("127.0.0.1", port, timeout=1, retries=3) as client:
        with pytest.raises(SnmpErrorStatus, match="genErr"):
            await client.get([SYS_DESCR])


async def test_walk_stops_an_agent_that_goes_backwards(nursery):
    _, port = await start_agent(nursery, lambda kind, rid, oids: [
        build_response("2c", "public", rid, [("1.3.6.1.2.1.43.5", 1), ("1.3.6.1.2.1.43.4", 2)])])
    async with SnmpClient("127.0.0.1", port, timeout=1) as client:
        with pytest.raises(SnmpError, match="not increasing"):
            await client.walk("1.3.6.1.2.1.43")


async def test_a_request_can_be_cancelled_and_the_client_goes_on(nursery):
    answer = trio.Event()

    def handle(kind, rid, oids):
        return [build_response("2c", "public", rid, [(oids[0], 3)])] if answer.is_set() else []

    _, port = await start_agent(nursery, handle)
    async with SnmpClient("127.0.0.1", port, timeout=30, retries=5) as client:
        with trio.move_on_after(0.2) as scope:
            await client.get([SYS_DESCR])
        assert scope.cancelled_caught
        answer.set()
        assert await client.get([SYS_DESCR]) == {SYS_DESCR: 3}


async def test_unresolvable_host_is_an_snmp_error():
    async with SnmpClient("no-such-host.invalid", 161, timeout=0.5, retries=0) as client:
        with pytest.raises(SnmpError, match="resolve"):
            await client.get([SYS_DESCR])


def test_encoder_agrees_with_pysnmp_for_a_plain_get():
    # the request bytes are exactly what pysnmp's own message API makes
    p = api.v2c
    pdu = p.GetRequestPDU()
    p.apiPDU.set_defaults(pdu)
    p.apiPDU.set_request_id(pdu, 77)
    p.apiPDU.set_varbinds(pdu, [(p.ObjectIdentifier(SYS_DESCR), p.null)])
    msg = p.Message()
    p.apiMessage.set_defaults(msg)
    p.apiMessage.set_community(msg, "public")
    p.apiMessage.set_pdu(msg, pdu)
    assert build_get("2c", "public", 77, [SYS_DESCR]) == encoder.encode(msg)


async def test_closing_the_client_under_a_waiting_request_is_an_snmp_error(nursery):
    _, port = await start_agent(nursery, lambda kind, rid, oids: [])
    client = SnmpClient("127.0.0.1", port, timeout=30, retries=0)
    errors: list[BaseException] = []

    async def ask() -> None:
        try:
            await client.get([SYS_DESCR])
        except SnmpError as e:
            errors.append(e)

    async with trio.open_nursery() as inner:
        inner.start_soon(ask)
        await trio.sleep(0.1)
        await client.aclose()
    assert len(errors) == 1 and "closed" in str(errors[0])


async def test_the_monitor_over_a_fake_agent(nursery):
    """SnmpPrinter end to end without snmpd (tests/interop/test_snmp_agent.py has the real one)."""
    from spoolproxy.config import SnmpSettings
    from spoolproxy.snmp import SnmpPrinter, Supply
    from spoolproxy.snmp import mib

    table = {
        mib.SYS_DESCR: b"agent v1.0",
        f"{mib.HR_DEVICE_DESCR}.2": b"Lobby Printer",
        f"{mib.HR_DEVICE_STATUS}.2": 5,
        f"{mib.HR_PRINTER_STATUS}.2": 1,
        f"{mib.HR_PRINTER_DETECTED_ERROR_STATE}.2": b"\x08\x00",  # doorOpen
        f"{mib.PRT_MARKER_COUNTER_UNIT}.2.1": 8,
        f"{mib.PRT_MARKER_LIFE_COUNT}.2.1": rfc1902.Counter32(4242),
        f"{mib.PRT_MARKER_SUPPLIES_DESCRIPTION}.2.1": b"Toner",
        f"{mib.PRT_MARKER_SUPPLIES_TYPE}.2.1": 3,
        f"{mib.PRT_MARKER_SUPPLIES_MAX_CAPACITY}.2.1": 200,
        f"{mib.PRT_MARKER_SUPPLIES_LEVEL}.2.1": 50,
    }
    for version in ("2c", "1"):
        if version == "1":
            table[f"{mib.PRT_MARKER_LIFE_COUNT}.2.1"] = rfc1155.Counter(4242)
        _, port = await start_agent(nursery, table_agent(version, table), version)
        printer = SnmpPrinter(SnmpSettings(host="127.0.0.1", port=port, version=version, timeout=2), "ignored")
        status = await printer.poll()
        assert printer.device_index == 2
        assert status.state == "ok", status.error
        assert (status.description, status.device_status, status.printer_status) == ("Lobby Printer", 5, 1)
        assert (status.reasons, status.printer_state) == (["door-open-error"], 5)
        assert (status.page_counter, status.counter_unit) == (4242, "sheets")
        assert status.supplies == [Supply(1, "Toner", "toner", 50, 200, 25, "unknown", "other")]
        assert await printer.page_counter() == 4242
        await printer.aclose()
