"""Sans-IO codec for IPP messages (RFC 8010 §3): bytes in, ``Message`` out, and back.

Wire layout: version (2 bytes), operation-id/status-code (2), request-id (4), then
attribute groups, each a delimiter tag (0x01-0x0F) followed by attribute records,
and the end-of-attributes tag 0x03; document data follows. One record is::

    value-tag (1)  name-length (2)  name  value-length (2)  value

A record with name-length 0 is an additional value of the attribute before it.
A collection value is a begCollection record, then per member a memberAttrName
record (value = member name) followed by the member's value records (all with
empty names), then an endCollection record.

How values are represented (see also ``types.py``):

* every length is a SIGNED-SHORT (RFC 8010 §3.1.4), so a name or value holds at
  most 32767 bytes; a length with the high bit set is an error, as in CUPS.
* ``Attribute.tag``/``Group.tag`` are ``Tag`` members when the tag is known,
  plain ints otherwise; a 1setOf whose values have different tags gets
  ``value_tags`` (one per value), else ``value_tags`` is None.
* out-of-band tags (0x10-0x1F, assigned or not) decode to None; a non-zero
  value length is tolerated and the value skipped; they encode with length 0.
* octetString (0x30) and every unassigned value tag decode to ``bytes`` as
  received and re-encode unchanged under the same tag.
* extension tag 0x7F: the value starts with the 4-byte extended tag (big endian,
  high bit clear), RFC 8010 §3.5.2. It stays ``Attribute(tag=0x7F,
  values=[raw value bytes])`` -- the extended tag is ``int.from_bytes(v[:4],
  "big")`` and the payload ``v[4:]`` -- so it re-encodes byte for byte.
* dateTime (RFC 2579) has decisecond precision: decoding gives an aware
  datetime with ``microsecond = deciseconds * 100000``; encoding truncates the
  microseconds, writes the datetime's own wall-clock fields and UTC offset, and
  treats a naive datetime as UTC. A leap second (60) decodes as 59.
* all character-string syntaxes are decoded as strict UTF-8 (a superset of the
  US-ASCII that keyword, uri, ... require).

Decoding never trusts a length: each is checked against the bytes present
before anything is read or allocated, so memory stays proportional to the input.
``Incomplete`` means "the input stopped early", any other ``CodecError`` means
"this is not IPP"; no other exception escapes ``decode``, ``MessageReader`` or
``decode_attributes``. The decoder is iterative (no recursion, whatever the nesting).

Encoding validates as it goes and raises CodecError for anything the wire cannot
carry (a value of the wrong type for its tag, an int outside 32 bits, a name or
value over 32767 bytes, collections nested deeper than ``Limits().max_depth``, a
cycle, ...), so whatever ``encode`` returns, ``decode`` accepts with default limits.
``value_tags`` should be None unless the tags really differ (that is what decode
produces); ``value_tags[0]`` is the tag written for the first value.
"""
from __future__ import annotations

import struct
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any, Callable

from .model import Status, Tag
from .types import Attribute, Collection, Group, Message, Range, Resolution, TextLang

__all__ = [
    "CodecError",
    "Incomplete",
    "TooLarge",
    "Limits",
    "encode",
    "decode",
    "MessageReader",
    "encode_attributes",
    "decode_attributes",
]


class CodecError(Exception):
    """The bytes are not a valid IPP message; ``str(e)`` suits a status-message."""

    status: Status = Status.BAD_REQUEST

    def __init__(self, message: str, status: Status | None = None) -> None:
        super().__init__(message)
        if status is not None:
            self.status = status


class Incomplete(CodecError):
    """The input ended before the attribute section did."""


class TooLarge(CodecError):
    """The attribute section is longer than ``Limits.max_header_bytes``."""

    status = Status.REQUEST_ENTITY_TOO_LARGE


@dataclass(frozen=True)
class Limits:
    max_header_bytes: int = 1 << 20  # version .. end-of-attributes tag, inclusive
    max_depth: int = 16  # collection nesting; a collection attribute is depth 1


# plain ints for the hot loop (cheaper to compare than enum members)
_END, _BEG_COLL, _END_COLL, _MEMBER = 0x03, 0x34, 0x37, 0x4A
_MAX_LEN = 0x7FFF  # name-length and value-length are SIGNED-SHORT
_MINUTE = timedelta(minutes=1)

_HEADER = struct.Struct(">BBHi")
_SHORT = struct.Struct(">H")
_TAG_SHORT = struct.Struct(">BH")
_INT = struct.Struct(">i")
_DATE = struct.Struct(">HBBBBBBcBB")  # RFC 2579 DateAndTime, 11 bytes
_RESOLUTION = struct.Struct(">iib")
_RANGE = struct.Struct(">ii")

# Decoded tags are Tag members when known (readable reprs), else the raw int.
_KNOWN = {int(t): t for t in Tag}
_TAGS: list[int] = [_KNOWN.get(t, t) for t in range(256)]
_GROUP_OK = [Tag.OPERATION <= t <= Tag.SYSTEM and t != Tag.END for t in range(16)]


def _tag_name(tag: int) -> str:
    if not isinstance(tag, int) or not 0 <= tag <= 0xFF:
        return repr(tag)
    t = _TAGS[tag]
    return t.name.lower().replace("_", "-") if isinstance(t, Tag) else f"tag 0x{t:02x}"


def _short_repr(v: Any) -> str:
    r = repr(v)
    return r if len(r) <= 60 else r[:57] + "..."


# --- value syntaxes ----------------------------------------------------------------
# A decoder takes (buffer, start, length) of a value that is wholly present and
# returns the Python value or raises ValueError; an encoder takes the value and
# returns its bytes or raises TypeError/ValueError/struct.error.


def _dec_none(b: Any, s: int, n: int) -> None:
    return None  # out-of-band: any stray value bytes are skipped


def _enc_none(v: Any) -> bytes:
    if v is not None:
        raise TypeError("an out-of-band value must be None")
    return b""


def _dec_int(b: Any, s: int, n: int) -> int:
    if n != 4:
        raise ValueError(f"length {n}, expected 4")
    return _INT.unpack_from(b, s)[0]


def _enc_int(v: Any) -> bytes:
    return _INT.pack(v)  # struct.error outside the signed 32-bit range


def _dec_bool(b: Any, s: int, n: int) -> bool:
    if n != 1:
        raise ValueError(f"length {n}, expected 1")
    if b[s] > 1:
        raise ValueError(f"{b[s]} is not 0 or 1")
    return b[s] == 1


def _enc_bool(v: Any) -> bytes:
    if v is True:
        return b"\x01"
    if v is False:
        return b"\x00"
    raise TypeError("expected a bool")


def _dec_bytes(b: Any, s: int, n: int) -> bytes:
    return bytes(b[s : s + n])


def _enc_bytes(v: Any) -> bytes:
    if not isinstance(v, (bytes, bytearray, memoryview)):
        raise TypeError("expected bytes")
    return bytes(v)


def _dec_str(b: Any, s: int, n: int) -> str:
    return str(b[s : s + n], "utf-8")  # UnicodeDecodeError is a ValueError


def _enc_str(v: Any) -> bytes:
    if not isinstance(v, str):
        raise TypeError("expected a str")
    return v.encode("utf-8")


_TZ: dict[int, timezone] = {0: timezone.utc}  # at most 2 * 24 * 60 entries


def _dec_date(b: Any, s: int, n: int) -> datetime:
    if n != 11:
        raise ValueError(f"length {n}, expected 11")
    year, month, day, hour, minute, sec, ds, sign, oh, om = _DATE.unpack_from(b, s)
    if ds > 9 or sign not in (b"+", b"-") or oh > 23 or om > 59:
        raise ValueError("deciseconds or UTC offset out of range")
    offset = (oh * 60 + om) * (-1 if sign == b"-" else 1)
    tz = _TZ.get(offset)
    if tz is None:
        tz = _TZ[offset] = timezone(timedelta(minutes=offset))
    if sec == 60:  # a leap second (RFC 2579 allows it); datetime cannot hold one
        sec = 59
    # datetime() rejects every other impossible field with ValueError
    return datetime(year, month, day, hour, minute, sec, ds * 100000, tz)


def _enc_date(v: Any) -> bytes:
    if not isinstance(v, datetime):
        raise TypeError("expected a datetime.datetime")
    offset = v.utcoffset() or timedelta(0)  # naive = UTC
    if offset % _MINUTE:
        raise ValueError("UTC offset is not a whole number of minutes")
    minutes = offset // _MINUTE
    h, m = divmod(abs(minutes), 60)
    return _DATE.pack(
        v.year, v.month, v.day, v.hour, v.minute, v.second, v.microsecond // 100000,
        b"-" if minutes < 0 else b"+", h, m,
    )


def _dec_resolution(b: Any, s: int, n: int) -> Resolution:
    if n != 9:
        raise ValueError(f"length {n}, expected 9")
    return Resolution(*_RESOLUTION.unpack_from(b, s))


def _enc_resolution(v: Any) -> bytes:
    if not isinstance(v, Resolution):
        raise TypeError("expected a Resolution")
    return _RESOLUTION.pack(v.x, v.y, v.units)


def _dec_range(b: Any, s: int, n: int) -> Range:
    if n != 8:
        raise ValueError(f"length {n}, expected 8")
    return Range(*_RANGE.unpack_from(b, s))


def _enc_range(v: Any) -> bytes:
    if not isinstance(v, Range):
        raise TypeError("expected a Range")
    return _RANGE.pack(v.lower, v.upper)


def _dec_text_lang(b: Any, s: int, n: int) -> TextLang:
    # language-length, language, text-length, text: must fill the value exactly
    if n < 4:
        raise ValueError(f"length {n} is too short")
    ll = _SHORT.unpack_from(b, s)[0]
    if 4 + ll > n:
        raise ValueError(f"language length {ll} overruns the value")
    tl = _SHORT.unpack_from(b, s + 2 + ll)[0]
    if 4 + ll + tl != n:
        raise ValueError(f"inner lengths {ll} + {tl} do not match value length {n}")
    return TextLang(str(b[s + 4 + ll : s + n], "utf-8"), str(b[s + 2 : s + 2 + ll], "utf-8"))


def _enc_text_lang(v: Any) -> bytes:
    if not isinstance(v, TextLang):
        raise TypeError("expected a TextLang")
    lang, text = _enc_str(v.lang), _enc_str(v.text)
    return _SHORT.pack(len(lang)) + lang + _SHORT.pack(len(text)) + text


def _dec_extension(b: Any, s: int, n: int) -> bytes:
    if n < 4 or b[s] & 0x80:
        raise ValueError("the value must start with a 4-byte extended tag below 0x80000000")
    return bytes(b[s : s + n])


def _enc_extension(v: Any) -> bytes:
    data = _enc_bytes(v)
    if len(data) < 4 or data[0] & 0x80:
        raise ValueError("the value must start with a 4-byte extended tag below 0x80000000")
    return data


_Decoder = Callable[[Any, int, int], Any]
_Encoder = Callable[[Any], bytes]

_SYNTAXES: dict[int, tuple[_Decoder, _Encoder]] = {
    Tag.INTEGER: (_dec_int, _enc_int),
    Tag.BOOLEAN: (_dec_bool, _enc_bool),
    Tag.ENUM: (_dec_int, _enc_int),
    Tag.STRING: (_dec_bytes, _enc_bytes),
    Tag.DATE: (_dec_date, _enc_date),
    Tag.RESOLUTION: (_dec_resolution, _enc_resolution),
    Tag.RANGE: (_dec_range, _enc_range),
    Tag.TEXT_LANG: (_dec_text_lang, _enc_text_lang),
    Tag.NAME_LANG: (_dec_text_lang, _enc_text_lang),
    Tag.TEXT: (_dec_str, _enc_str),
    Tag.NAME: (_dec_str, _enc_str),
    Tag.KEYWORD: (_dec_str, _enc_str),
    Tag.URI: (_dec_str, _enc_str),
    Tag.URI_SCHEME: (_dec_str, _enc_str),
    Tag.CHARSET: (_dec_str, _enc_str),
    Tag.LANGUAGE: (_dec_str, _enc_str),
    Tag.MIME_TYPE: (_dec_str, _enc_str),
    Tag.EXTENSION: (_dec_extension, _enc_extension),
    **{t: (_dec_none, _enc_none) for t in range(0x10, 0x20)},
}
# Flat 256-entry tables for the hot loop. Unassigned value tags are opaque bytes;
# the collection tags (0x34, 0x37, 0x4A) are structure, handled by the parser and
# by _encode_attribute, and have no entry.
_STRUCTURE = (Tag.BEGIN_COLLECTION, Tag.END_COLLECTION, Tag.MEMBER_NAME)
_DECODERS: list[_Decoder | None] = [
    None if t < 0x10 or t in _STRUCTURE else _SYNTAXES.get(t, (_dec_bytes,))[0] for t in range(256)
]
_ENCODERS: list[_Encoder | None] = [
    None if t < 0x10 or t in _STRUCTURE else _SYNTAXES.get(t, (None, _enc_bytes))[1] for t in range(256)
]


# --- decoding ----------------------------------------------------------------------


class _Frame:
    """An open collection: its members so far and the member being filled."""

    __slots__ = ("members", "member", "pending")

    def __init__(self, members: Collection) -> None:
        self.members = members
        self.member: Attribute | None = None  # target of further values
        self.pending: str | None = None  # memberAttrName seen, value not yet


def _add_value(attr: Attribute, tag: int, value: Any) -> None:
    if attr.value_tags is not None:
        attr.value_tags.append(tag)
    elif tag != attr.tag:
        attr.value_tags = [attr.tag] * len(attr.values) + [tag]
    attr.values.append(value)


class _Parser:
    """Resumable decoder. ``run`` consumes whole records only, so after Incomplete
    everything before ``pos`` is parsed and the state is exactly as it was at the
    start of the incomplete record: feeding more bytes resumes there, keeping
    incremental parsing linear in the input."""

    __slots__ = ("max_depth", "attrs_only", "pos", "message", "group", "attr", "stack")

    def __init__(self, max_depth: int, attrs_only: bool = False) -> None:
        self.max_depth = max_depth
        self.attrs_only = attrs_only  # decode_attributes: no header, no delimiters
        self.pos = 0
        self.message: Message | None = None
        self.group: Group | None = None
        self.attr: Attribute | None = None  # top-level target of additional values
        self.stack: list[_Frame] = []
        if attrs_only:
            self.message = Message()
            self.group = Group(0)

    def run(self, buf: Any, n: int) -> int:
        """Parse ``buf[:n]``; return the offset after end-of-attributes."""
        if self.message is None:
            if n < 8:
                raise Incomplete("IPP message ends inside its 8-byte header")
            major, minor, code, request_id = _HEADER.unpack_from(buf, 0)
            self.message = Message((major, minor), code, request_id, [])
            self.pos = 8
        pos, group, attr, stack = self.pos, self.group, self.attr, self.stack
        groups = self.message.groups
        try:
            while True:
                if pos >= n:
                    raise Incomplete(f"IPP message ends at offset {pos}, before end-of-attributes-tag")
                tag = buf[pos]
                if tag < 0x10:  # delimiter: a new group or the end
                    if stack:
                        raise CodecError(f"delimiter tag 0x{tag:02x} inside a collection at offset {pos}")
                    if self.attrs_only:
                        raise CodecError(f"delimiter tag 0x{tag:02x} in an attribute list at offset {pos}")
                    if tag == _END:
                        return pos + 1
                    if not _GROUP_OK[tag]:
                        raise CodecError(f"undefined delimiter tag 0x{tag:02x} at offset {pos}")
                    group = Group(_TAGS[tag])
                    groups.append(group)
                    attr = None
                    pos += 1
                    continue

                # Check every length against the buffer before reading what it covers.
                if pos + 3 > n:
                    raise Incomplete(f"IPP message ends inside an attribute at offset {pos}")
                nlen = buf[pos + 1] << 8 | buf[pos + 2]
                if nlen > _MAX_LEN:
                    raise CodecError(f"name-length {nlen} is negative (SIGNED-SHORT) at offset {pos}")
                vat = pos + 3 + nlen
                if vat + 2 > n:
                    raise Incomplete(f"IPP message ends inside an attribute at offset {pos}")
                vlen = buf[vat] << 8 | buf[vat + 1]
                if vlen > _MAX_LEN:
                    raise CodecError(f"value-length {vlen} is negative (SIGNED-SHORT) at offset {pos}")
                start = vat + 2
                end = start + vlen
                if end > n:
                    raise Incomplete(f"IPP message ends inside an attribute at offset {pos}")

                # The whole record is present; from here on state may change.
                name = None
                if stack:
                    if nlen:
                        raise CodecError(f"named attribute inside a collection at offset {pos}")
                elif tag == _MEMBER or tag == _END_COLL:
                    raise CodecError(f"{_tag_name(tag)} outside a collection at offset {pos}")
                elif group is None:
                    raise CodecError(f"attribute before any group tag at offset {pos}")
                elif nlen:
                    try:
                        name = str(buf[pos + 3 : vat], "utf-8")
                    except UnicodeDecodeError:
                        raise CodecError(f"attribute name is not UTF-8 at offset {pos}") from None

                if tag == _MEMBER or tag == _END_COLL:
                    frame = stack[-1]
                    if frame.pending is not None:
                        raise CodecError(f"member {frame.pending!r} has no value at offset {pos}")
                    if tag == _END_COLL:
                        if vlen:
                            raise CodecError(f"endCollection with a value at offset {pos}")
                        stack.pop()
                    else:
                        try:
                            frame.pending = str(buf[start:end], "utf-8")
                        except UnicodeDecodeError:
                            raise CodecError(f"member name is not UTF-8 at offset {pos}") from None
                        if not frame.pending:
                            raise CodecError(f"empty memberAttrName at offset {pos}")
                    pos = end
                    continue

                if tag == _BEG_COLL:
                    if vlen:
                        raise CodecError(f"begCollection with a value at offset {pos}")
                    value: Any = Collection()
                else:
                    try:
                        value = _DECODERS[tag](buf, start, vlen)  # type: ignore[misc]
                    except (ValueError, struct.error) as e:
                        what = f" of {name!r}" if name else ""
                        raise CodecError(f"bad {_tag_name(tag)} value{what} at offset {pos}: {e}") from None

                tobj = _TAGS[tag]
                if stack:
                    frame = stack[-1]
                    if frame.pending is not None:
                        frame.member = Attribute(frame.pending, tobj, [value])
                        frame.members.append(frame.member)
                        frame.pending = None
                    elif frame.member is None:
                        raise CodecError(f"collection value without a memberAttrName at offset {pos}")
                    else:
                        _add_value(frame.member, tobj, value)
                elif name is not None:
                    attr = Attribute(name, tobj, [value])
                    group.attributes.append(attr)  # type: ignore[union-attr]
                elif attr is None:
                    raise CodecError(f"additional value with no preceding attribute at offset {pos}")
                else:
                    _add_value(attr, tobj, value)

                if tag == _BEG_COLL:
                    if len(stack) >= self.max_depth:
                        raise CodecError(f"collections nested deeper than {self.max_depth} at offset {pos}")
                    stack.append(_Frame(value))
                pos = end
        except Incomplete:
            self.pos, self.group, self.attr = pos, group, attr
            raise


def _as_buffer(buf: bytes | bytearray | memoryview) -> Any:
    """Something indexable by byte offset (ints) and sliceable, without copying."""
    if isinstance(buf, (bytes, bytearray)):
        return buf
    mv = memoryview(buf)
    return mv.cast("B") if mv.c_contiguous else memoryview(mv.tobytes())


def _release(buf: Any) -> None:
    # A view kept alive by an exception's traceback would pin the caller's
    # bytearray (BufferError on resize), so let go of it explicitly.
    if isinstance(buf, memoryview):
        buf.release()


def _too_large(limit: int) -> TooLarge:
    return TooLarge(f"IPP attribute section is larger than {limit} bytes")


def decode(buf: bytes | bytearray | memoryview, limits: Limits = Limits()) -> tuple[Message, int]:
    """Decode one message; return it and the offset of its first document byte.

    Raises Incomplete if ``buf`` ends before the end-of-attributes tag, TooLarge
    if that tag is not within ``limits.max_header_bytes``, CodecError otherwise.
    """
    buf = _as_buffer(buf)  # (rebinding drops the caller's view from this frame)
    limit = limits.max_header_bytes
    parser = _Parser(limits.max_depth)
    try:
        end = parser.run(buf, min(len(buf), limit))  # never look past the limit
    except Incomplete:
        if len(buf) > limit:
            raise _too_large(limit) from None
        raise
    finally:
        _release(buf)
    return parser.message, end  # type: ignore[return-value]


class MessageReader:
    """Incremental decoder for a message arriving in pieces (e.g. HTTP chunks).

    ``feed`` returns None until the end-of-attributes tag has arrived, then the
    Message; ``rest`` then holds the bytes after it (start of the document data).
    Feeding after that appends to ``rest`` and returns the same Message. Errors
    are sticky: after a CodecError every ``feed`` raises it again.
    """

    def __init__(self, limits: Limits = Limits()) -> None:
        self.limits = limits
        self.rest = b""
        self._buf: bytearray | None = bytearray()
        self._parser = _Parser(limits.max_depth)
        self._message: Message | None = None
        self._error: CodecError | None = None

    def feed(self, data: bytes) -> Message | None:
        if self._message is not None:
            if data:
                self.rest += bytes(data)
            return self._message
        if self._error is not None:
            raise self._error
        if not data:
            return None  # nothing new to parse
        buf = self._buf
        assert buf is not None
        buf += data
        limit = self.limits.max_header_bytes
        try:
            end = self._parser.run(buf, min(len(buf), limit))
        except Incomplete:
            if len(buf) > limit:
                self._error = _too_large(limit)
                raise self._error from None
            return None
        except CodecError as e:
            self._error = e
            raise
        self._message = self._parser.message
        self.rest = bytes(buf[end:])
        self._buf = None  # the attribute bytes are no longer needed
        return self._message


def decode_attributes(data: bytes) -> list[Attribute]:
    """Inverse of ``encode_attributes``; raises CodecError if ``data`` is not one."""
    buf = _as_buffer(data)
    parser = _Parser(Limits().max_depth, attrs_only=True)
    try:
        parser.run(buf, len(buf))
    except Incomplete:
        if parser.pos == len(buf) and not parser.stack:  # ended between attributes
            return parser.group.attributes  # type: ignore[union-attr]
        raise
    finally:
        _release(buf)
    raise AssertionError("unreachable: attrs_only never returns")  # pragma: no cover


# --- encoding ----------------------------------------------------------------------

_ENCODE_MAX_DEPTH = Limits().max_depth  # so that whatever we encode, decode accepts


def _encode_attribute(out: list[bytes], attr: Attribute, depth: int) -> None:
    """Append the records of ``attr``; depth > 0 means it is a collection member."""
    if not isinstance(attr, Attribute):
        raise CodecError(f"expected an Attribute, got {_short_repr(attr)}")
    try:
        name = attr.name.encode("utf-8")
    except (AttributeError, UnicodeEncodeError):
        name = b""
    if not name or len(name) > _MAX_LEN:
        raise CodecError(f"attribute name must be 1 to {_MAX_LEN} bytes of UTF-8: {_short_repr(attr.name)}")
    values = attr.values
    tags = attr.value_tags or [attr.tag] * len(values)
    if not values or len(tags) != len(values):
        raise CodecError(f"attribute {attr.name!r} has {len(values)} values and {len(tags)} value tags")
    if depth:  # a member is named by a memberAttrName record; its values are unnamed
        out += (b"\x4a\x00\x00", _SHORT.pack(len(name)), name)
        name = b""
    for tag, value in zip(tags, values):
        if tag == _BEG_COLL:
            if not isinstance(value, list):
                raise CodecError(f"attribute {attr.name!r}: collection value must be a Collection")
            if depth >= _ENCODE_MAX_DEPTH:
                raise CodecError(f"attribute {attr.name!r}: collections nested deeper than {_ENCODE_MAX_DEPTH}")
            out += (_TAG_SHORT.pack(tag, len(name)), name, b"\x00\x00")
            for member in value:
                _encode_attribute(out, member, depth + 1)
            out.append(b"\x37\x00\x00\x00\x00")
        else:
            encoder = _ENCODERS[tag] if isinstance(tag, int) and 0 <= tag <= 0xFF else None
            if encoder is None:
                raise CodecError(f"attribute {attr.name!r}: {_tag_name(tag)} is not a value tag")
            try:
                data = encoder(value)
            except (TypeError, ValueError, AttributeError, OverflowError, struct.error) as e:
                raise CodecError(
                    f"attribute {attr.name!r}: cannot encode {_short_repr(value)} as {_tag_name(tag)}: {e}"
                ) from None
            if len(data) > _MAX_LEN:
                raise CodecError(f"attribute {attr.name!r}: value is longer than {_MAX_LEN} bytes")
            out += (_TAG_SHORT.pack(tag, len(name)), name, _SHORT.pack(len(data)), data)
        name = b""  # every value after the first is an additional value


def encode(msg: Message) -> bytes:
    """Encode a request or response (without document data)."""
    try:
        out = [_HEADER.pack(msg.version[0], msg.version[1], msg.code, msg.request_id)]
    except (TypeError, IndexError, struct.error) as e:
        raise CodecError(f"bad version, code or request-id: {e}") from None
    for group in msg.groups:
        if not isinstance(group.tag, int) or not 0 <= group.tag < 16 or not _GROUP_OK[group.tag]:
            raise CodecError(f"{group.tag!r} is not a group tag")
        out.append(bytes((group.tag,)))
        for attr in group.attributes:
            _encode_attribute(out, attr, 0)
    out.append(b"\x03")
    return b"".join(out)


def encode_attributes(attrs: list[Attribute]) -> bytes:
    """One group's attributes as IPP attribute records (no header, no delimiters):
    compact, and every value the wire can carry round-trips exactly through
    ``decode_attributes``. Used for job attributes stored in LMDB."""
    out: list[bytes] = []
    for attr in attrs:
        _encode_attribute(out, attr, 0)
    return b"".join(out)
