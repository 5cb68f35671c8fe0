"""Request checks and job-template validation (pure functions)."""
from __future__ import annotations

import pytest

from spoolproxy.ipp.model import Op, Status, Tag
from spoolproxy.ipp.printer import QueueView, build_attributes, select
from spoolproxy.ipp.types import Attribute, Collection, Group, Message, Range
from spoolproxy.ipp.validate import RequestError, check_job_template, check_request


def req(*attrs: Attribute, version=(2, 0), request_id=1, op=Op.GET_PRINTER_ATTRIBUTES) -> Message:
    m = Message(version=version, code=op, request_id=request_id)
    m.add_group(Tag.OPERATION, list(attrs))
    return m


CS = Attribute.of("attributes-charset", Tag.CHARSET, "utf-8")
NL = Attribute.of("attributes-natural-language", Tag.LANGUAGE, "en")
URI = Attribute.of("printer-uri", Tag.URI, "ipp://h/ipp/print/q")


def test_good_request_names_its_target():
    t = check_request(req(CS, NL, URI))
    assert t.uri == "ipp://h/ipp/print/q" and not t.is_job_uri
    t = check_request(req(CS, NL, Attribute.of("job-uri", Tag.URI, "ipp://h/ipp/print/q/4")))
    assert t.is_job_uri


@pytest.mark.parametrize("message, status", [
    (req(CS, NL, URI, version=(0, 0)), Status.VERSION_NOT_SUPPORTED),
    (req(CS, NL, URI, version=(3, 0)), Status.VERSION_NOT_SUPPORTED),
    (req(CS, NL, URI, request_id=0), Status.BAD_REQUEST),
    (req(), Status.BAD_REQUEST),
    (req(NL, CS, URI), Status.BAD_REQUEST),
    (req(CS, URI), Status.BAD_REQUEST),
    (req(CS, NL), Status.BAD_REQUEST),
    (req(Attribute.of("attributes-charset", Tag.CHARSET, "latin-9"), NL, URI), Status.CHARSET_NOT_SUPPORTED),
    (req(Attribute.of("attributes-charset", Tag.KEYWORD, "utf-8"), NL, URI), Status.BAD_REQUEST),
    (req(CS, NL, Attribute.of("printer-uri", Tag.TEXT, "ipp://h/")), Status.BAD_REQUEST),
])
def test_request_check_order_and_status(message, status):
    with pytest.raises(RequestError) as e:
        check_request(message)
    assert e.value.status == status and e.value.message


def test_version_is_checked_before_request_id():
    with pytest.raises(RequestError) as e:
        check_request(req(version=(9, 9), request_id=0))
    assert e.value.status == Status.VERSION_NOT_SUPPORTED


def test_group_order():
    m = req(CS, NL, URI)
    m.add_group(Tag.PRINTER)
    m.add_group(Tag.JOB)
    with pytest.raises(RequestError):
        check_request(m)
    m = req(CS, NL, URI)
    m.add_group(Tag.JOB)
    m.add_group(Tag.JOB)  # several job groups are fine
    check_request(m)


def test_cups_operations_need_no_printer_uri():
    assert check_request(req(CS, NL, op=Op.CUPS_GET_PRINTERS)).uri is None


PRINTER = {a.name: a for a in [
    Attribute.of("copies-supported", Tag.RANGE, Range(1, 99)),
    Attribute.of("sides-supported", Tag.KEYWORD, "one-sided", "two-sided-long-edge"),
    Attribute.of("media-supported", Tag.KEYWORD, "iso_a4_210x297mm"),
    Attribute.of("media-col-supported", Tag.KEYWORD, "media-size", "media-type"),
    Attribute.of("media-size-supported", Tag.BEGIN_COLLECTION, Collection([
        Attribute.of("x-dimension", Tag.INTEGER, 21000), Attribute.of("y-dimension", Tag.INTEGER, 29700)])),
    Attribute.of("finishings-supported", Tag.ENUM, 3, 4),
    Attribute.of("page-ranges-supported", Tag.BOOLEAN, True),
]}


def size(x, y):
    return Collection([Attribute.of("media-size", Tag.BEGIN_COLLECTION, Collection([
        Attribute.of("x-dimension", Tag.INTEGER, x), Attribute.of("y-dimension", Tag.INTEGER, y)]))])


@pytest.mark.parametrize("attr, ok", [
    (Attribute.of("copies", Tag.INTEGER, 5), True),
    (Attribute.of("copies", Tag.INTEGER, 500), False),
    (Attribute.of("copies", Tag.INTEGER, 1, 2), False),  # single-valued
    (Attribute.of("sides", Tag.KEYWORD, "two-sided-long-edge"), True),
    (Attribute.of("sides", Tag.KEYWORD, "two-sided-short-edge"), False),
    (Attribute.of("finishings", Tag.ENUM, 3, 4), True),
    (Attribute.of("finishings", Tag.ENUM, 3, 9), False),
    (Attribute.of("media-col", Tag.BEGIN_COLLECTION, size(21000, 29700)), True),
    (Attribute.of("media-col", Tag.BEGIN_COLLECTION, size(1, 2)), False),
    (Attribute.of("page-ranges", Tag.RANGE, Range(1, 3), Range(5, 9)), True),
    (Attribute.of("page-ranges", Tag.RANGE, Range(5, 9), Range(1, 3)), False),
    (Attribute.of("job-priority", Tag.INTEGER, 101), False),
    (Attribute.of("x-vendor-thing", Tag.KEYWORD, "whatever"), True),  # not judged: no -supported
])
def test_job_template_validation(attr, ok):
    assert (check_job_template([attr], PRINTER) == []) is ok


def view(upstream=None) -> QueueView:
    return QueueView(name="q", printer_uri="ipp://h:1/ipp/print/q", info="", location="", make_and_model="",
                     uuid="urn:uuid:00000000-0000-0000-0000-000000000000", state=3, state_reasons=("none",),
                     state_message="", queued=0, up_time=5, started=1.7e9, state_changed=1.7e9,
                     upstream=upstream, device_uri="socket://x", is_default=True)


def test_upstream_attributes_pass_through_but_the_proxy_owns_its_own():
    up = Group(Tag.PRINTER, [
        Attribute.of("printer-uri-supported", Tag.URI, "ipp://printer:631/ipp/print"),
        Attribute.of("media-supported", Tag.KEYWORD, "na_letter_8.5x11in"),
        Attribute.of("printer-make-and-model", Tag.TEXT, "Acme LaserBlaster"),
        Attribute.of("document-format-supported", Tag.MIME_TYPE, "application/pdf", "image/urf"),
        Attribute.of("compression-supported", Tag.KEYWORD, "none"),
    ])
    attrs = {a.name: a for a in build_attributes(view(up))}
    assert attrs["printer-uri-supported"].values == ["ipp://h:1/ipp/print/q"]
    assert attrs["media-supported"].values == ["na_letter_8.5x11in"]
    assert attrs["printer-make-and-model"].value == "Acme LaserBlaster"
    assert attrs["document-format-supported"].values == ["application/octet-stream", "application/pdf", "image/urf"]
    assert attrs["compression-supported"].values == ["deflate", "gzip", "none"]


def test_requested_attribute_groups():
    attrs = build_attributes(view())
    names = {a.name for a in select(attrs, ["printer-name", "copies-supported"])}
    assert names == {"printer-name", "copies-supported"}
    tmpl = {a.name for a in select(attrs, ["job-template"])}
    assert "copies-supported" in tmpl and "printer-name" not in tmpl
    desc = {a.name for a in select(attrs, ["printer-description"])}
    assert "printer-name" in desc and "copies-default" not in desc
    assert len(select(attrs, ["all"])) == len(select(attrs, None))
