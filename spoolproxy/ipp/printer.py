"""The printer attributes a queue shows its clients.

A queue is the proxy's own IPP printer object in front of a real printer. Its
attributes are the upstream printer's (asked with Get-Printer-Attributes, so a client
sees the real media, sides, colour and formats) merged with what the proxy itself
owns: URIs, state, job bookkeeping, operations and the formats and compressions it
accepts. Printers that speak no IPP (AppSocket, folder) get a generic description.
Pure functions of their inputs: no I/O.
"""
from __future__ import annotations

import datetime as _dt
import uuid as _uuid
from dataclasses import dataclass
from typing import Iterable

from .model import DPI, Op, PrinterState, Tag
from .types import Attribute, Collection, Group, Range, Resolution

# Operations the proxy implements itself, whatever the printer behind it does.
OPERATIONS = (
    Op.PRINT_JOB, Op.VALIDATE_JOB, Op.CREATE_JOB, Op.SEND_DOCUMENT, Op.CANCEL_JOB,
    Op.GET_JOB_ATTRIBUTES, Op.GET_JOBS, Op.GET_PRINTER_ATTRIBUTES, Op.HOLD_JOB,
    Op.RELEASE_JOB, Op.CANCEL_MY_JOBS, Op.CLOSE_JOB, Op.IDENTIFY_PRINTER,
    Op.CUPS_GET_DEFAULT, Op.CUPS_GET_PRINTERS,
)
WHICH_JOBS = ("completed", "not-completed", "all", "aborted", "canceled", "pending",
              "pending-held", "processing", "processing-stopped")
COMPRESSIONS = ("deflate", "gzip", "none")
HOLD_UNTIL = ("no-hold", "indefinite")
MULTIPLE_OPERATION_TIME_OUT = 300  # seconds a Create-Job may wait for its documents
# Formats a non-IPP printer is assumed to take; the proxy passes the bytes through.
RAW_FORMATS = ("application/octet-stream", "application/pdf", "application/postscript",
               "application/vnd.hp-pcl", "application/vnd.hp-pclxl", "image/pwg-raster",
               "image/urf", "image/jpeg", "text/plain")

# Attributes the proxy answers for itself; an upstream's values for these are dropped.
OWNED = frozenset({
    "printer-uri-supported", "uri-security-supported", "uri-authentication-supported",
    "printer-name", "printer-state", "printer-state-reasons", "printer-state-message",
    "printer-is-accepting-jobs", "queued-job-count", "printer-up-time", "printer-current-time",
    "printer-uuid", "operations-supported", "compression-supported",
    "multiple-document-jobs-supported", "multiple-operation-time-out",
    "multiple-operation-time-out-action", "job-ids-supported", "which-jobs-supported",
    "ipp-versions-supported", "charset-configured", "charset-supported",
    "natural-language-configured", "generated-natural-language-supported",
    "printer-state-change-time", "printer-state-change-date-time",
    "printer-config-change-time", "printer-config-change-date-time",
    "document-format-default", "pdl-override-supported", "job-hold-until-supported",
    "job-hold-until-default", "reference-uri-schemes-supported", "printer-id",
    "printer-is-shared", "printer-type", "device-uri", "printer-more-info",
    "printer-get-attributes-supported",
})

# Names of the attribute groups a client may ask for in requested-attributes.
JOB_TEMPLATE_NAMES = frozenset({
    "copies", "finishings", "finishings-col", "job-hold-until", "job-priority", "job-sheets",
    "media", "media-col", "multiple-document-handling", "number-up", "orientation-requested",
    "page-ranges", "print-color-mode", "print-quality", "printer-resolution", "sides",
    "output-bin", "print-scaling", "print-content-optimize", "print-rendering-intent",
    "job-account-id", "job-accounting-user-id", "overrides", "presentation-direction-number-up",
})


@dataclass(frozen=True)
class QueueView:
    """What the attribute builder needs to know about a queue right now."""

    name: str
    printer_uri: str  # ipp://host:port/ipp/print/NAME as the client reached it
    info: str
    location: str
    make_and_model: str
    uuid: str
    state: int
    state_reasons: tuple[str, ...]
    state_message: str
    queued: int
    up_time: int  # printer-up-time: epoch seconds now (the time base of time-at-*)
    started: float  # unix time the node started
    state_changed: float
    upstream: Group | None  # the printer's own attributes, if it speaks IPP
    device_uri: str
    is_default: bool
    uri_schemes: tuple[str, ...] = ()  # document-uri schemes Print-URI/Send-URI fetch; () = no such ops


def queue_uuid(node: str, queue: str) -> str:
    """Stable printer-uuid: the same node and queue name always give the same uuid."""
    return _uuid.uuid5(_uuid.NAMESPACE_URL, f"spoolproxy:{node}:{queue}").urn


def date_time(t: float) -> _dt.datetime:
    return _dt.datetime.fromtimestamp(int(t), _dt.timezone.utc)


def _generic_description(view: QueueView) -> list[Attribute]:
    """A plain office printer's description for printers that answer no IPP."""
    a = Attribute.of
    letter = Collection([a("x-dimension", Tag.INTEGER, 21590), a("y-dimension", Tag.INTEGER, 27940)])
    a4 = Collection([a("x-dimension", Tag.INTEGER, 21000), a("y-dimension", Tag.INTEGER, 29700)])

    def media_col(size: Collection, key: str) -> Collection:
        return Collection([
            a("media-key", Tag.KEYWORD, key),
            a("media-size", Tag.BEGIN_COLLECTION, size),
            a("media-bottom-margin", Tag.INTEGER, 423), a("media-left-margin", Tag.INTEGER, 423),
            a("media-right-margin", Tag.INTEGER, 423), a("media-top-margin", Tag.INTEGER, 423),
            a("media-source", Tag.KEYWORD, "main"), a("media-type", Tag.KEYWORD, "stationery"),
        ])

    return [
        a("color-supported", Tag.BOOLEAN, True),
        a("copies-default", Tag.INTEGER, 1),
        a("copies-supported", Tag.RANGE, Range(1, 999)),
        a("document-format-supported", Tag.MIME_TYPE, *RAW_FORMATS),
        a("finishings-default", Tag.ENUM, 3),
        a("finishings-supported", Tag.ENUM, 3),
        a("identify-actions-default", Tag.KEYWORD, "display"),
        a("identify-actions-supported", Tag.KEYWORD, "display"),
        a("ipp-features-supported", Tag.KEYWORD, "none"),
        a("job-creation-attributes-supported", Tag.KEYWORD, "copies", "finishings", "job-hold-until",
          "job-name", "job-priority", "media", "media-col", "multiple-document-handling",
          "orientation-requested", "page-ranges", "print-color-mode", "print-quality",
          "printer-resolution", "sides"),
        a("job-priority-default", Tag.INTEGER, 50),
        a("job-priority-supported", Tag.INTEGER, 100),
        a("job-sheets-default", Tag.KEYWORD, "none"),
        a("job-sheets-supported", Tag.KEYWORD, "none"),
        a("media-bottom-margin-supported", Tag.INTEGER, 423),
        a("media-col-default", Tag.BEGIN_COLLECTION, media_col(a4, "iso_a4_210x297mm")),
        a("media-col-ready", Tag.BEGIN_COLLECTION, media_col(a4, "iso_a4_210x297mm"),
          media_col(letter, "na_letter_8.5x11in")),
        a("media-col-supported", Tag.KEYWORD, "media-bottom-margin", "media-left-margin",
          "media-right-margin", "media-size", "media-source", "media-top-margin", "media-type"),
        a("media-default", Tag.KEYWORD, "iso_a4_210x297mm"),
        a("media-left-margin-supported", Tag.INTEGER, 423),
        a("media-ready", Tag.KEYWORD, "iso_a4_210x297mm", "na_letter_8.5x11in"),
        a("media-right-margin-supported", Tag.INTEGER, 423),
        a("media-size-supported", Tag.BEGIN_COLLECTION, a4, letter),
        a("media-source-supported", Tag.KEYWORD, "auto", "main"),
        a("media-supported", Tag.KEYWORD, "iso_a4_210x297mm", "na_letter_8.5x11in",
          "iso_a5_148x210mm", "na_legal_8.5x14in"),
        a("media-top-margin-supported", Tag.INTEGER, 423),
        a("media-type-supported", Tag.KEYWORD, "auto", "stationery"),
        a("multiple-document-handling-supported", Tag.KEYWORD, "separate-documents-uncollated-copies",
          "separate-documents-collated-copies"),
        a("number-up-default", Tag.INTEGER, 1),
        a("number-up-supported", Tag.INTEGER, 1),
        a("orientation-requested-default", Tag.ENUM, 3),
        a("orientation-requested-supported", Tag.ENUM, 3, 4, 5, 6),
        a("output-bin-default", Tag.KEYWORD, "face-down"),
        a("output-bin-supported", Tag.KEYWORD, "face-down"),
        a("overrides-supported", Tag.KEYWORD, "document-number", "pages"),
        a("page-ranges-supported", Tag.BOOLEAN, True),
        a("pages-per-minute", Tag.INTEGER, 20),
        a("pages-per-minute-color", Tag.INTEGER, 20),
        a("print-color-mode-default", Tag.KEYWORD, "auto"),
        a("print-color-mode-supported", Tag.KEYWORD, "auto", "color", "monochrome"),
        a("print-content-optimize-default", Tag.KEYWORD, "auto"),
        a("print-content-optimize-supported", Tag.KEYWORD, "auto"),
        a("print-quality-default", Tag.ENUM, 4),
        a("print-quality-supported", Tag.ENUM, 3, 4, 5),
        a("print-rendering-intent-default", Tag.KEYWORD, "auto"),
        a("print-rendering-intent-supported", Tag.KEYWORD, "auto"),
        a("printer-device-id", Tag.TEXT, f"MFG:spoolproxy;MDL:{view.make_and_model or 'queue'};CMD:PDF,PS;"),
        a("printer-geo-location", Tag.UNKNOWN),
        a("printer-organization", Tag.TEXT, ""),
        a("printer-organizational-unit", Tag.TEXT, ""),
        a("printer-resolution-default", Tag.RESOLUTION, Resolution(600, 600, DPI)),
        a("printer-resolution-supported", Tag.RESOLUTION, Resolution(600, 600, DPI)),
        a("sides-default", Tag.KEYWORD, "one-sided"),
        a("sides-supported", Tag.KEYWORD, "one-sided", "two-sided-long-edge", "two-sided-short-edge"),
        a("preferred-attributes-supported", Tag.BOOLEAN, False),
    ]


def _own_attributes(view: QueueView, upstream_formats: Iterable[str]) -> list[Attribute]:
    a = Attribute.of
    formats = ["application/octet-stream"] + [f for f in upstream_formats if f != "application/octet-stream"]
    info = view.info or view.name
    more = view.printer_uri.replace("ipps://", "https://", 1).replace("ipp://", "http://", 1)
    printer_type = 0x2 | 0x40 | (0x20000 if view.is_default else 0)  # remote, copies, default
    operations = OPERATIONS + ((Op.PRINT_URI, Op.SEND_URI) if view.uri_schemes else ())
    by_reference = [a("reference-uri-schemes-supported", Tag.URI_SCHEME, *view.uri_schemes)] if view.uri_schemes else []
    return by_reference + [
        a("printer-uri-supported", Tag.URI, view.printer_uri),
        a("uri-security-supported", Tag.KEYWORD, "none"),
        a("uri-authentication-supported", Tag.KEYWORD, "requesting-user-name"),
        a("printer-name", Tag.NAME, view.name),
        a("printer-info", Tag.TEXT, info[:127]),
        a("printer-location", Tag.TEXT, view.location[:127]),
        a("printer-make-and-model", Tag.TEXT, (view.make_and_model or "spoolproxy queue")[:127]),
        a("printer-more-info", Tag.URI, more),
        a("printer-state", Tag.ENUM, view.state),
        a("printer-state-reasons", Tag.KEYWORD, *(view.state_reasons or ("none",))),
        a("printer-state-message", Tag.TEXT, view.state_message),
        a("printer-is-accepting-jobs", Tag.BOOLEAN, True),
        a("queued-job-count", Tag.INTEGER, view.queued),
        a("printer-up-time", Tag.INTEGER, max(1, view.up_time)),
        a("printer-current-time", Tag.DATE, date_time(view.up_time)),
        a("printer-state-change-time", Tag.INTEGER, int(view.state_changed)),
        a("printer-state-change-date-time", Tag.DATE, date_time(view.state_changed)),
        a("printer-config-change-time", Tag.INTEGER, int(view.started)),
        a("printer-config-change-date-time", Tag.DATE, date_time(view.started)),
        a("printer-uuid", Tag.URI, view.uuid),
        a("operations-supported", Tag.ENUM, *sorted(int(o) for o in operations)),
        a("compression-supported", Tag.KEYWORD, *COMPRESSIONS),
        a("document-format-default", Tag.MIME_TYPE, "application/octet-stream"),
        a("document-format-supported", Tag.MIME_TYPE, *formats),
        a("pdl-override-supported", Tag.KEYWORD, "attempted"),
        a("multiple-document-jobs-supported", Tag.BOOLEAN, True),
        a("multiple-operation-time-out", Tag.INTEGER, MULTIPLE_OPERATION_TIME_OUT),
        a("multiple-operation-time-out-action", Tag.KEYWORD, "abort-job"),
        a("job-ids-supported", Tag.BOOLEAN, True),
        a("which-jobs-supported", Tag.KEYWORD, *WHICH_JOBS),
        a("job-hold-until-default", Tag.KEYWORD, "no-hold"),
        a("job-hold-until-supported", Tag.KEYWORD, *HOLD_UNTIL),
        a("ipp-versions-supported", Tag.KEYWORD, "1.0", "1.1", "2.0"),
        a("charset-configured", Tag.CHARSET, "utf-8"),
        a("charset-supported", Tag.CHARSET, "us-ascii", "utf-8"),
        a("natural-language-configured", Tag.LANGUAGE, "en"),
        a("generated-natural-language-supported", Tag.LANGUAGE, "en"),
        a("printer-get-attributes-supported", Tag.KEYWORD, "document-format"),
        a("printer-is-shared", Tag.BOOLEAN, True),
        a("printer-type", Tag.ENUM, printer_type),
        a("device-uri", Tag.URI, view.device_uri),
    ]


def build_attributes(view: QueueView) -> list[Attribute]:
    """Every printer attribute of the queue, sorted by name (stable answers)."""
    upstream = list(view.upstream) if view.upstream is not None else _generic_description(view)
    by_name: dict[str, Attribute] = {}
    formats: list[str] = []
    for attr in upstream:
        if attr.name == "document-format-supported":
            formats = [v for v in attr.values if isinstance(v, str)]
        if attr.name not in OWNED:
            by_name[attr.name] = attr
    for attr in _own_attributes(view, formats or RAW_FORMATS):
        if attr.name in ("printer-info", "printer-location", "printer-make-and-model"):
            # the administrator's words win; otherwise the printer's own
            configured = {"printer-info": view.info, "printer-location": view.location,
                          "printer-make-and-model": view.make_and_model}[attr.name]
            if not configured and attr.name in by_name:
                continue
        by_name[attr.name] = attr
    if "job-creation-attributes-supported" in by_name:
        jca = by_name["job-creation-attributes-supported"]
        if "job-hold-until" not in jca.values:
            by_name["job-creation-attributes-supported"] = Attribute(jca.name, jca.tag, list(jca.values) + ["job-hold-until"])
    return [by_name[k] for k in sorted(by_name)]


PRINTER_DESCRIPTION_EXCLUDED_FROM_ALL = frozenset({"media-col-database"})


def select(attrs: list[Attribute], requested: list[str] | None) -> list[Attribute]:
    """Filter by requested-attributes (RFC 8011 §4.2.5.1 group keywords)."""
    if not requested:
        requested = ["all"]
    req = set(requested)
    out = []
    for attr in attrs:
        name = attr.name
        if name in req:
            out.append(attr)
        elif name in PRINTER_DESCRIPTION_EXCLUDED_FROM_ALL:
            continue
        elif "all" in req:
            out.append(attr)
        elif "job-template" in req and (
            name.endswith(("-default", "-supported", "-ready")) and
            name.rsplit("-", 1)[0] in JOB_TEMPLATE_NAMES or name.startswith("media-col")
        ):
            out.append(attr)
        elif "printer-description" in req and not (
            name.endswith(("-default", "-ready")) and name.rsplit("-", 1)[0] in JOB_TEMPLATE_NAMES
        ):
            out.append(attr)
    return out


def supported(attrs: Iterable[Attribute], name: str) -> Attribute | None:
    for attr in attrs:
        if attr.name == name:
            return attr
    return None


def printer_state_from(state: int | None) -> int:
    return int(state) if state in (3, 4, 5) else int(PrinterState.IDLE)
