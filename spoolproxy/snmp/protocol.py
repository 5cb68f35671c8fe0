"""Sans-IO SNMPv1/v2c messages: request bytes out, decoded varbinds in. No sockets.

Why message level: pysnmp's current releases run their engine and high-level API on
asyncio, and a spoolproxy node is one trio nursery (DESIGN.md, Decisions).  Running
pysnmp's own loop would mean a second event loop in a thread, with its own
cancellation and its own failure modes.  Instead this module uses only pysnmp's
protocol layer (``pysnmp.proto.api``: the RFC 1157 / RFC 3416 PDU and message types)
and pyasn1's BER encoder and decoder, which do no I/O at all.  The datagrams are sent
and received by ``spoolproxy.snmp.client`` on trio UDP sockets: no second loop, no
thread, trio cancellation works, and one slow agent never blocks the others.

Community-based SNMPv1 and SNMPv2c only.  SNMPv3 (USM authentication and privacy,
engine discovery, time windows, key localisation) is a security subsystem rather
than a message format; doing it at this level would mean re-implementing pysnmp's
USM by hand, so it is left for later.

    data = build_get("2c", "public", 4711, ["1.3.6.1.2.1.1.1.0"])
    ... send data, receive reply ...
    parse_response(reply, request_id=4711, version="2c")
    # -> [("1.3.6.1.2.1.1.1.0", b"HP LaserJet ...")]

Values come back as plain Python: ``int`` for INTEGER, Counter32, Counter64, Gauge32,
Unsigned32 and TimeTicks; ``bytes`` for OCTET STRING and Opaque; ``str`` for an OBJECT
IDENTIFIER (dotted) and an IpAddress (dotted quad); ``None`` for NULL, noSuchObject
and noSuchInstance; and the sentinel ``END_OF_MIB_VIEW`` for endOfMibView, so that a
walk knows where the agent's view ends.  Everything a remote can send that is not a
usable answer raises ``SnmpError`` with a one-line reason; nothing else escapes
``parse_response`` (tests/property/test_snmp_props.py).
"""
from __future__ import annotations

import re
from typing import Any, Iterable, Literal, Sequence, Union

from pyasn1.codec.ber import decoder, encoder
from pyasn1.error import PyAsn1Error
from pyasn1.type import base, univ
from pysnmp.proto import api, rfc1155, rfc1902, rfc1905

__all__ = [
    "END_OF_MIB_VIEW", "ERROR_STATUS", "NO_SUCH_NAME", "Oid", "SnmpError", "SnmpErrorStatus",
    "SnmpMismatch", "Version", "build_get", "build_getbulk", "build_getnext", "build_response",
    "format_oid", "parse_oid", "parse_response",
]

Version = Literal["1", "2c"]
Oid = Union[str, Sequence[int]]

_MODULES = {"1": api.v1, "2c": api.v2c}
_WIRE_VERSION = {"1": api.SNMP_VERSION_1, "2c": api.SNMP_VERSION_2C}
_VERSION_NAME = {api.SNMP_VERSION_1: "1", api.SNMP_VERSION_2C: "2c"}
MAX_INT32 = 2**31 - 1

# error-status values, RFC 3416 section 3 (1-5 are also RFC 1157's)
ERROR_STATUS = {
    0: "noError", 1: "tooBig", 2: "noSuchName", 3: "badValue", 4: "readOnly", 5: "genErr",
    6: "noAccess", 7: "wrongType", 8: "wrongLength", 9: "wrongEncoding", 10: "wrongValue",
    11: "noCreation", 12: "inconsistentValue", 13: "resourceUnavailable", 14: "commitFailed",
    15: "undoFailed", 16: "authorizationError", 17: "notWritable", 18: "inconsistentName",
}
NO_SUCH_NAME = 2  # SNMPv1's answer to a GET of a missing object and to a GETNEXT past the end


class SnmpError(Exception):
    """The agent's answer (or the lack of one) is not usable; str() is a one-line reason."""


class SnmpMismatch(SnmpError):
    """A well-formed response to another request (its request-id differs): skip it."""


class SnmpErrorStatus(SnmpError):
    """The agent answered with a non-zero error-status; ``index`` is the 1-based varbind
    it blames (0: the request as a whole)."""

    def __init__(self, status: int, index: int) -> None:
        self.status = status
        self.index = index
        self.name = ERROR_STATUS.get(status, f"error-status {status}")
        where = f"at varbind {index}" if index else "for the whole request"
        super().__init__(f"agent answered {self.name}({status}) {where}")


class _EndOfMibView:
    """endOfMibView (RFC 3416): nothing follows in the agent's view."""

    _instance: "_EndOfMibView | None" = None

    def __new__(cls) -> "_EndOfMibView":
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "END_OF_MIB_VIEW"

    def __reduce__(self) -> str:
        return "END_OF_MIB_VIEW"


END_OF_MIB_VIEW = _EndOfMibView()


# --------------------------------------------------------------------------- OIDs


_OID_TEXT = re.compile(r"[0-9]+(?:\.[0-9]+)+", re.ASCII)


def parse_oid(oid: Oid) -> tuple[int, ...]:
    """``"1.3.6.1.2.1.1.1.0"`` (a leading dot is allowed) or a sequence of ints -> tuple.
    ValueError if it is not an OID BER can encode (two arcs at least, 0-2 first)."""
    if isinstance(oid, str):
        text = oid.strip().removeprefix(".")
        if not _OID_TEXT.fullmatch(text):
            raise ValueError(f"not an OID: {oid!r}")
        arcs = tuple(int(p) for p in text.split("."))
    else:
        arcs = tuple(int(p) for p in oid)
    if len(arcs) < 2 or arcs[0] > 2 or (arcs[0] < 2 and arcs[1] > 39) or any(a < 0 for a in arcs):
        raise ValueError(f"not an OID: {oid!r}")
    return arcs


def format_oid(oid: Oid) -> str:
    return ".".join(map(str, parse_oid(oid)))


# --------------------------------------------------------------------------- requests


def _module(version: str):
    try:
        return _MODULES[version]
    except KeyError:
        raise ValueError(f"SNMP version must be '1' or '2c', not {version!r}") from None


def _check_id(request_id: int) -> None:
    if not 0 <= request_id <= MAX_INT32:
        raise ValueError(f"request-id must be 0..{MAX_INT32}, not {request_id}")


def _message(version: str, community: str | bytes, pdu: Any) -> bytes:
    p = _module(version)
    msg = p.Message()
    p.apiMessage.set_defaults(msg)
    p.apiMessage.set_community(msg, community.encode() if isinstance(community, str) else bytes(community))
    p.apiMessage.set_pdu(msg, pdu)
    return encoder.encode(msg)


def _request(version: str, community: str | bytes, request_id: int, oids: Iterable[Oid], pdu_type: str) -> bytes:
    p = _module(version)
    _check_id(request_id)
    pdu = getattr(p, pdu_type)()
    p.apiPDU.set_defaults(pdu)
    p.apiPDU.set_request_id(pdu, request_id)
    p.apiPDU.set_varbinds(pdu, [(p.ObjectIdentifier(parse_oid(o)), p.null) for o in oids])
    return _message(version, community, pdu)


def build_get(version: Version, community: str | bytes, request_id: int, oids: Iterable[Oid]) -> bytes:
    """A GetRequest for ``oids`` (values NULL)."""
    return _request(version, community, request_id, oids, "GetRequestPDU")


def build_getnext(version: Version, community: str | bytes, request_id: int, oids: Iterable[Oid]) -> bytes:
    """A GetNextRequest: the agent answers with the first object after each OID."""
    return _request(version, community, request_id, oids, "GetNextRequestPDU")


def build_getbulk(version: Version, community: str | bytes, request_id: int, oids: Iterable[Oid],
                  max_repetitions: int, non_repeaters: int = 0) -> bytes:
    """A GetBulkRequest (SNMPv2c only; SNMPv1 has none, walk it with GETNEXT)."""
    if version != "2c":
        raise ValueError("GETBULK needs SNMPv2c (SNMPv1 walks with GETNEXT)")
    _check_id(request_id)
    if not 0 <= max_repetitions <= MAX_INT32 or not 0 <= non_repeaters <= MAX_INT32:
        raise ValueError("max-repetitions and non-repeaters must be 0..2**31-1")
    p = api.v2c
    pdu = p.GetBulkRequestPDU()
    p.apiBulkPDU.set_defaults(pdu)
    p.apiBulkPDU.set_request_id(pdu, request_id)
    p.apiBulkPDU.set_non_repeaters(pdu, non_repeaters)
    p.apiBulkPDU.set_max_repetitions(pdu, max_repetitions)
    p.apiBulkPDU.set_varbinds(pdu, [(p.ObjectIdentifier(parse_oid(o)), p.null) for o in oids])
    return _message(version, community, pdu)


def _to_asn1(version: str, value: Any) -> Any:
    """Plain value -> the SNMP type an agent would send (for build_response)."""
    p = _module(version)
    if value is None:
        return p.null
    if value is END_OF_MIB_VIEW:
        if version == "1":
            raise ValueError("SNMPv1 has no endOfMibView")
        return rfc1905.endOfMibView
    if isinstance(value, base.Asn1Item):  # already typed (Counter32(5), Gauge32(1), ...)
        return value
    if isinstance(value, bool):
        raise ValueError("no SNMP type for bool")
    if isinstance(value, int):
        return p.Integer(value)
    if isinstance(value, (bytes, bytearray)):
        return p.OctetString(bytes(value))
    if isinstance(value, str):
        return p.ObjectIdentifier(parse_oid(value))
    raise ValueError(f"no SNMP type for {type(value).__name__}")


def build_response(version: Version, community: str | bytes, request_id: int,
                   varbinds: Iterable[tuple[Oid, Any]], error_status: int = 0, error_index: int = 0) -> bytes:
    """A Response PDU, as an agent sends it (for tests and fake agents).

    Values: int -> INTEGER, bytes -> OCTET STRING, str -> OBJECT IDENTIFIER, None -> NULL,
    END_OF_MIB_VIEW -> endOfMibView, or any pysnmp type instance (``rfc1902.Counter32(7)``)."""
    p = _module(version)
    _check_id(request_id)
    pdu = p.GetResponsePDU()
    p.apiPDU.set_defaults(pdu)
    p.apiPDU.set_request_id(pdu, request_id)
    p.apiPDU.set_error_status(pdu, error_status)
    p.apiPDU.set_error_index(pdu, error_index)
    p.apiPDU.set_varbinds(pdu, [(p.ObjectIdentifier(parse_oid(o)), _to_asn1(version, v)) for o, v in varbinds])
    return _message(version, community, pdu)


# --------------------------------------------------------------------------- responses

# Everything pyasn1's BER decoder raises for bad input is a PyAsn1Error (pysnmp's
# ProtocolError is one too); these plain ones come out of it for some malformed
# lengths and tags (OverflowError: a length field too long for a Python index).  They
# are caught only around the decoding calls.
_DECODE_ERRORS = (PyAsn1Error, ValueError, TypeError, IndexError, OverflowError)


def _decode(data: bytes, version: str) -> Any:
    try:
        wire = int(api.decodeMessageVersion(data))
    except _DECODE_ERRORS as e:
        raise SnmpError(f"not an SNMP message: {_short(e)}") from None
    got = _VERSION_NAME.get(wire)
    if got != version:
        raise SnmpError(f"answer is SNMP {'v' + got if got else f'version number {wire}'}, "
                        f"the request was v{version}")
    try:
        msg, rest = decoder.decode(data, asn1Spec=_module(version).Message())
    except _DECODE_ERRORS as e:
        raise SnmpError(f"undecodable SNMPv{version} message: {_short(e)}") from None
    if rest:
        raise SnmpError(f"{len(rest)} bytes after the SNMP message")
    return msg


def _short(e: BaseException) -> str:
    text = " ".join(str(e).split()) or type(e).__name__
    return text if len(text) <= 160 else text[:157] + "..."


def _value(v: Any) -> Any:
    if isinstance(v, rfc1905.EndOfMibView):
        return END_OF_MIB_VIEW
    if isinstance(v, univ.Null):  # NULL, noSuchObject, noSuchInstance
        return None
    if isinstance(v, (rfc1902.IpAddress, rfc1155.IpAddress)):
        raw = bytes(v)
        return ".".join(str(b) for b in raw) if len(raw) == 4 else raw
    if isinstance(v, univ.Integer):  # INTEGER, Counter32/64, Gauge32, Unsigned32, TimeTicks
        return int(v)
    if isinstance(v, univ.OctetString):  # OCTET STRING, Opaque
        return bytes(v)
    if isinstance(v, univ.ObjectIdentifier):
        return ".".join(map(str, v.asTuple()))
    raise SnmpError(f"unexpected value type {type(v).__name__}")


def _inner(value: Any) -> Any:
    """The concrete value inside (possibly nested) CHOICEs: v1 ObjectSyntax and v2c _BindValue."""
    while isinstance(value, univ.Choice):
        value = value.getComponent()
    return value


def parse_response(data: bytes, *, request_id: int, version: Version) -> list[tuple[str, Any]]:
    """The varbinds of the Response to request ``request_id``, values as plain Python.

    Raises SnmpMismatch for a response to another request (skip it and keep waiting),
    SnmpErrorStatus for a non-zero error-status, SnmpError for anything else that is
    not a usable answer: undecodable BER, another SNMP version, not a Response PDU.
    The community is not checked: an agent answers only a community it accepts."""
    _module(version)
    msg = _decode(bytes(data), version)
    p = _MODULES[version]
    try:
        pdu = p.apiMessage.get_pdu(msg)
        if pdu.tagSet != p.GetResponsePDU.tagSet:
            raise SnmpError(f"not a response PDU ({type(pdu).__name__})")
        rid = int(p.apiPDU.get_request_id(pdu))
        if rid != request_id:
            raise SnmpMismatch(f"response to request {rid}, not {request_id}")
        status = int(p.apiPDU.get_error_status(pdu))
        index = int(pdu.getComponentByPosition(2))
        if status:
            raise SnmpErrorStatus(status, index)
        out = []
        for vb in p.apiPDU.get_varbind_list(pdu):
            name = vb.getComponentByPosition(0).asTuple()
            if len(name) < 2:
                raise SnmpError(f"malformed OID {'.'.join(map(str, name)) or '(empty)'} in the response")
            value = _inner(vb.getComponentByPosition(1))
            out.append((".".join(map(str, name)), _value(value)))
        return out
    except SnmpError:
        raise
    except _DECODE_ERRORS as e:  # a component pyasn1 decoded but cannot give a value for
        raise SnmpError(f"malformed SNMP response: {_short(e)}") from None
