"""Request checks, in the order RFC 8011 §4.1 and ippeveprinter apply them, and the
validation of job template attributes against a queue's -supported values.

Pure: takes Messages and attribute lists, returns statuses and unsupported attributes.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .model import Op, Status, Tag
from .types import Attribute, Collection, Message, Range

SUPPORTED_CHARSETS = ("utf-8", "us-ascii")
NAME_TAGS = (Tag.NAME, Tag.NAME_LANG)
TEXT_TAGS = (Tag.TEXT, Tag.TEXT_LANG)
# Printer-less operations (CUPS extensions) need no printer-uri.
NO_TARGET_OPS = frozenset({Op.CUPS_GET_PRINTERS, Op.CUPS_GET_DEFAULT})
# job template attributes that may carry several values (1setOf)
MULTI_VALUED = frozenset({"finishings", "finishings-col", "page-ranges", "overrides", "job-sheets",
                          "media-col", "print-accounting", "pages-per-subset", "insert-sheet"})


class RequestError(Exception):
    """A request the queue refuses: an IPP status, a status-message and the attributes
    to report in the unsupported-attributes group."""

    def __init__(self, status: Status, message: str, unsupported: list[Attribute] | None = None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.unsupported = unsupported or []


@dataclass(frozen=True)
class Target:
    """What a request addresses: a printer-uri or job-uri attribute, as given."""

    uri: str | None
    is_job_uri: bool


def check_request(req: Message) -> Target:
    """Checks every request gets before its operation runs. Raises RequestError."""
    major = req.version[0]
    if major not in (1, 2):
        raise RequestError(Status.VERSION_NOT_SUPPORTED,
                           f"Bad request version number {req.version[0]}.{req.version[1]}.")
    if req.request_id <= 0:
        raise RequestError(Status.BAD_REQUEST, f"Bad request-id {req.request_id}.")
    attrs = [(g.tag, a) for g in req.groups for a in g.attributes]
    if not attrs:
        raise RequestError(Status.BAD_REQUEST, "No attributes in request.")
    last = 0
    for g in req.groups:
        if g.tag < last:
            raise RequestError(Status.BAD_REQUEST,
                               f"Attribute groups are out of order ({g.tag:#x} < {last:#x}).")
        last = g.tag
    first_group = req.groups[0]
    op_attrs = first_group.attributes if first_group.tag == Tag.OPERATION else []
    charset = op_attrs[0] if op_attrs else None
    language = op_attrs[1] if len(op_attrs) > 1 else None
    if (charset is None or charset.name != "attributes-charset" or charset.tag != Tag.CHARSET
            or len(charset.values) != 1):
        raise RequestError(Status.BAD_REQUEST, "Missing required attributes-charset as first attribute.")
    if (language is None or language.name != "attributes-natural-language"
            or language.tag != Tag.LANGUAGE or len(language.values) != 1):
        raise RequestError(Status.BAD_REQUEST,
                           "Missing required attributes-natural-language as second attribute.")
    if str(charset.value).lower() not in SUPPORTED_CHARSETS:
        raise RequestError(Status.CHARSET_NOT_SUPPORTED, f'Unsupported character set "{charset.value}".',
                           [charset])
    op = req.operation
    for name in ("printer-uri", "job-uri"):
        attr = op.get(name)
        if attr is not None:
            if attr.tag != Tag.URI or len(attr.values) != 1:
                raise RequestError(Status.BAD_REQUEST, f"Bad {name} attribute.", [attr])
            return Target(attr.value, name == "job-uri")
    if req.code in NO_TARGET_OPS:
        return Target(None, False)
    raise RequestError(Status.BAD_REQUEST, "Missing required printer-uri or job-uri attribute.")


def single(group_attr: Attribute | None, tags: tuple[int, ...], name: str) -> Any:
    """The value of a single-valued attribute of one of ``tags``, or RequestError."""
    if group_attr is None:
        return None
    if group_attr.tag not in tags or len(group_attr.values) != 1:
        raise RequestError(Status.ATTRIBUTES_OR_VALUES_NOT_SUPPORTED,
                           f"Bad {name} value (wrong syntax or count).", [group_attr])
    v = group_attr.value
    return v.text if hasattr(v, "text") else v


def _value_ok(value: Any, tag: int, sup: Attribute) -> bool:
    for sv, stag in zip(sup.values, sup.tags()):
        if stag == Tag.RANGE and isinstance(sv, Range):
            if isinstance(value, int) and not isinstance(value, bool) and sv.lower <= value <= sv.upper:
                return True
        elif stag == Tag.BOOLEAN:
            return True  # "-supported" is a yes/no flag (e.g. page-ranges-supported)
        elif sv == value:
            return True
        elif hasattr(value, "text") and sv == value.text:
            return True
    return False


def _collection_ok(value: Any, name: str, printer: dict[str, Attribute]) -> bool:
    if not isinstance(value, Collection):
        return False
    members = printer.get(f"{name}-supported")
    known = set(members.values) if members is not None else None
    for m in value:
        if known is not None and m.name not in known:
            return False
    if name == "media-col":
        size = value.get("media-size")
        sizes = printer.get("media-size-supported")
        if size is not None and sizes is not None and isinstance(size.value, Collection):
            want = {a.name: a.value for a in size.value}
            x, y = want.get("x-dimension"), want.get("y-dimension")
            if not any(_size_matches(s, x, y) for s in sizes.values if isinstance(s, Collection)):
                return False
    return True


def _size_matches(s: Collection, x: Any, y: Any) -> bool:
    def dim(v: Any, want: Any) -> bool:
        if isinstance(v, Range):
            return isinstance(want, int) and v.lower <= want <= v.upper
        return v == want
    sx, sy = s.get("x-dimension"), s.get("y-dimension")
    return sx is not None and sy is not None and dim(sx.value, x) and dim(sy.value, y)


def check_job_template(attrs: list[Attribute], printer: dict[str, Attribute]) -> list[Attribute]:
    """The job template attributes (or values) the queue does not support.

    Attributes with no ``<name>-supported`` on the queue are not judged: they travel
    with the job and reach the printer only if it lists them (as ippeveprinter does).
    """
    bad: list[Attribute] = []
    for attr in attrs:
        if attr.is_out_of_band():
            continue
        name = attr.name
        if name == "job-priority":
            if attr.tag != Tag.INTEGER or len(attr.values) != 1 or not 1 <= attr.value <= 100:
                bad.append(attr)
            continue
        if name == "page-ranges":
            prev = 0
            for v in attr.values:
                if not isinstance(v, Range) or v.lower < 1 or v.upper < v.lower or v.lower <= prev:
                    bad.append(attr)
                    break
                prev = v.upper
            sup = printer.get("page-ranges-supported")
            if sup is not None and sup.value is False and attr not in bad:
                bad.append(attr)
            continue
        sup = printer.get(f"{name}-supported")
        if sup is None:
            continue
        if len(attr.values) != 1 and name not in MULTI_VALUED:
            bad.append(attr)
            continue
        for value, tag in zip(attr.values, attr.tags()):
            if tag == Tag.BEGIN_COLLECTION:
                ok = _collection_ok(value, name, printer)
            else:
                ok = _value_ok(value, tag, sup)
            if not ok:
                bad.append(attr)
                break
    return bad
