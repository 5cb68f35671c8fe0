"""IPP printers (``ipp://``, ``ipps://``, ``http://``, ``https://``): delivery,
following the printer's job, cancelling it, and printer attribute polls.

Exactly-once, phase by phase (``job.delivery.phase``; each change is saved before the
step it announces):

Create-Job path (the printer lists Create-Job in operations-supported)::

    none --save "creating"--> Create-Job --answer: save id, "sending"-->
         Send-Document x n (last-document on the last) --answer: save "sent"-->
         Get-Job-Attributes until final --save the proxy job's final state, "done"

* crash or lost printer in "creating": an upstream job may exist without our knowing
  its id. It has no document (Create-Job carries none), so it cannot have printed;
  but ippeveprinter (and others) stay busy behind it, so we look for it with Get-Jobs
  (same job-name and user, pending/held waiting for data) and cancel it, then start
  again from "none". When the connection was never made, nothing exists: straight
  back to "none".
* in "sending": we know the upstream job; ask it. Waiting for data, aborted,
  canceled or gone -> it never got the whole job: Cancel-Job it (errors ignored)
  and deliver again from scratch. Processing, completed, or pending without a
  waiting-for-data reason -> it has everything: don't resend, follow it.
* in "sent": follow it only. If the printer no longer knows the job, it had the
  whole job: counted as completed, with a warning.

Print-Job path (no Create-Job): "creating" before Print-Job, "sent" with the id from
the answer. A crash while the Print-Job is in flight leaves either a partial job
(waiting for data: found and canceled as above) or a complete one; the latter cannot
be told apart from another job of the same name and user, so the document is sent
again: that window (between the printer reading the last byte and our recording
its answer) is at-least-once.

Multi-document jobs: one upstream job with every document when the printer says
multiple-document-jobs-supported (Create-Job + Send-Document each), else one upstream
job per document, each followed to its end before the next is created; the count
of finished documents lives in ``job.extra["upstream"]["docs_done"]``.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, AsyncIterable

import trio

from ..config import QueueSettings
from ..ipp.client import (IppClient, IppClientError, PrinterUnreachable, status_message,
                          status_name)
from ..ipp.codec import decode_attributes
from ..ipp.model import JobState, Op, PrinterState, Status, Tag
from ..ipp.types import Attribute, Collection, Group, Message, Range
from ..spool.errors import SpoolError
from ..spool.job import Document, Job
from .base import (Backend, DeliveryContext, JobRejected, Outcome, PollResult, PrinterOffline,
                   progress)

log = logging.getLogger("spoolproxy.upstream")

REQUESTED_PRINTER = ("all", "media-col-database")
REQUESTED_JOB = ("job-id", "job-state", "job-state-reasons", "job-state-message",
                 "job-impressions-completed")

# Server errors that mean "not now": wait with back-off, as long as it takes.
WAIT_STATUSES = frozenset({Status.BUSY, Status.SERVICE_UNAVAILABLE, Status.TEMPORARY_ERROR,
                           Status.NOT_ACCEPTING_JOBS, Status.TOO_MANY_JOBS,
                           Status.PRINTER_IS_DEACTIVATED, Status.DEVICE_ERROR})
# Other server errors are retried a few times before the job is given up.
SERVER_ERROR_RETRIES = 3

# Job template attributes passed on to the printer when it supports them.
FORWARD = (
    "copies", "sides", "media", "media-col", "print-color-mode", "print-quality",
    "printer-resolution", "orientation-requested", "page-ranges", "finishings", "finishings-col",
    "output-bin", "number-up", "job-priority", "print-scaling", "print-content-optimize",
    "print-rendering-intent", "multiple-document-handling", "presentation-direction-number-up",
    "page-delivery", "job-account-id", "job-accounting-user-id", "print-darkness", "print-speed",
)

_ABORT_REASONS = {
    Status.DOCUMENT_FORMAT_NOT_SUPPORTED: "unsupported-document-format",
    Status.DOCUMENT_FORMAT_ERROR: "document-format-error",
    Status.DOCUMENT_UNPRINTABLE_ERROR: "document-unprintable-error",
    Status.DOCUMENT_PASSWORD_ERROR: "document-password-error",
    Status.DOCUMENT_PERMISSION_ERROR: "document-permission-error",
    Status.DOCUMENT_SECURITY_ERROR: "document-security-error",
    Status.DOCUMENT_ACCESS_ERROR: "document-access-error",
    Status.COMPRESSION_NOT_SUPPORTED: "compression-error",
    Status.COMPRESSION_ERROR: "compression-error",
    Status.ATTRIBUTES_OR_VALUES_NOT_SUPPORTED: "unsupported-attributes-or-values",
    Status.CONFLICTING_ATTRIBUTES: "conflicting-attributes",
    Status.ACCOUNT_INFO_NEEDED: "account-info-needed",
    Status.ACCOUNT_CLOSED: "account-closed",
    Status.ACCOUNT_LIMIT_REACHED: "account-limit-reached",
    Status.ACCOUNT_AUTHORIZATION_FAILED: "account-authorization-failed",
}
_WAITING_FOR_DATA = frozenset({"job-incoming", "job-data-insufficient"})


# -- pure helpers -----------------------------------------------------------------

def status_keyword(code: int) -> str:
    return status_name(code)


def abort_reasons(code: int) -> list[str]:
    return [_ABORT_REASONS.get(code, "aborted-by-system")]


@dataclass(frozen=True)
class Capabilities:
    """What the proxy needs to know of a printer's attributes to send it a job."""

    operations: frozenset[int]
    formats: tuple[str, ...]
    multiple_documents: bool
    known: bool  # False: no attributes (assume the minimum, forward nothing)

    @classmethod
    def of(cls, attrs: Group | None) -> "Capabilities":
        if attrs is None or not len(attrs):
            return cls(frozenset({Op.PRINT_JOB, Op.GET_JOB_ATTRIBUTES, Op.CANCEL_JOB}), (), False,
                       False)
        ops = attrs.get("operations-supported")
        formats = attrs.get("document-format-supported")
        return cls(
            frozenset(v for v in ops.values if isinstance(v, int)) if ops is not None
            else frozenset({Op.PRINT_JOB, Op.GET_JOB_ATTRIBUTES, Op.CANCEL_JOB}),
            tuple(str(v).lower() for v in formats.values if isinstance(v, str)) if formats else (),
            attrs.value("multiple-document-jobs-supported") is True,
            True,
        )

    @property
    def create_job(self) -> bool:
        return Op.CREATE_JOB in self.operations and Op.SEND_DOCUMENT in self.operations


def choose_format(fmt: str, caps: Capabilities) -> str:
    """The job's own document-format if the printer lists it (or lists nothing),
    else application/octet-stream (the printer auto-detects) if it lists that."""
    fmt = (fmt or "application/octet-stream").lower()
    if not caps.formats or fmt in caps.formats:
        return fmt
    if "application/octet-stream" in caps.formats:
        return "application/octet-stream"
    return fmt


def _supported_values(sup: Attribute) -> tuple[set, list[Range], bool | None]:
    """(discrete values, ranges, boolean) of a <name>-supported attribute."""
    discrete: set = set()
    ranges: list[Range] = []
    boolean: bool | None = None
    for v, tag in zip(sup.values, sup.tags()):
        if tag == Tag.RANGE and isinstance(v, Range):
            ranges.append(v)
        elif tag == Tag.BOOLEAN:
            boolean = bool(v) if boolean is None else boolean or bool(v)
        elif v is not None:
            discrete.add(getattr(v, "text", v))
    return discrete, ranges, boolean


def _value_ok(value: Any, tag: int, discrete: set, ranges: list[Range]) -> bool:
    if tag in (Tag.INTEGER,) and isinstance(value, int) and ranges:
        return any(r.lower <= value <= r.upper for r in ranges) or value in discrete
    if tag in (Tag.KEYWORD, Tag.ENUM, Tag.INTEGER, Tag.NAME, Tag.RESOLUTION, Tag.MIME_TYPE):
        return not discrete or getattr(value, "text", value) in discrete
    return True


def forward_attributes(job_attrs: list[Attribute], printer: Group | None) -> list[Attribute]:
    """The job template attributes (of those the proxy forwards) the printer supports:
    named in ``<name>-supported`` or job-creation-attributes-supported; values the
    printer lists as unsupported are dropped (the printer then applies its default
    rather than rejecting the job)."""
    if printer is None:
        return []
    creation = printer.get("job-creation-attributes-supported")
    creation_names = set(creation.values) if creation is not None else set()
    out: list[Attribute] = []
    for attr in job_attrs:
        if attr.name not in FORWARD or attr.is_out_of_band():
            continue
        sup = printer.get(f"{attr.name}-supported")
        if sup is None:
            if attr.name in creation_names:
                out.append(attr)
            continue
        discrete, ranges, boolean = _supported_values(sup)
        if boolean is False and not discrete and not ranges:
            continue
        if attr.tag == Tag.BEGIN_COLLECTION:
            # <name>-supported of a collection lists its member names (media-col, finishings-col)
            members = {str(v) for v in discrete}
            values = [Collection(m for m in c if not members or m.name in members)
                      for c in attr.values]
            values = [c for c in values if c]
            if values:
                out.append(Attribute(attr.name, attr.tag, values))
            continue
        if boolean is not None and not discrete and not ranges:
            out.append(attr)  # e.g. page-ranges-supported = true
            continue
        tags = attr.tags()
        keep = [(v, t) for v, t in zip(attr.values, tags) if _value_ok(v, t, discrete, ranges)]
        if not keep:
            continue
        if len(keep) == len(attr.values):
            out.append(attr)
        else:
            vals = [v for v, _ in keep]
            vtags = [t for _, t in keep]
            out.append(Attribute(attr.name, attr.tag, vals,
                                 vtags if attr.value_tags is not None else None))
    return out


def upstream_job_name(job: Job) -> str:
    if job.name:
        return job.name
    for d in job.documents:
        if d.name:
            return d.name
    return f"job-{job.id}"


@dataclass
class UpstreamJob:
    id: int
    state: int
    reasons: list[str]
    message: str
    impressions: int | None
    name: str = ""
    user: str = ""

    @classmethod
    def of(cls, g: Group) -> "UpstreamJob":
        reasons_attr = g.get("job-state-reasons")
        reasons = [str(v) for v in reasons_attr.values] if reasons_attr is not None else []
        msg = g.value("job-state-message") or ""
        imp = g.value("job-impressions-completed")
        name = g.value("job-name") or ""
        user = g.value("job-originating-user-name") or ""
        return cls(int(g.value("job-id", 0) or 0), int(g.value("job-state", 0) or 0), reasons,
                   str(getattr(msg, "text", msg)), imp if isinstance(imp, int) else None,
                   str(getattr(name, "text", name)), str(getattr(user, "text", user)))

    @property
    def final(self) -> bool:
        return self.state >= JobState.CANCELED

    @property
    def waiting_for_data(self) -> bool:
        """The printer has not got the whole job (it waits for (more) documents)."""
        return self.state in (JobState.PENDING, JobState.PENDING_HELD) and \
            bool(_WAITING_FOR_DATA & set(self.reasons))

    @property
    def has_everything(self) -> bool:
        """The printer got the whole job and it is printing, printed or queued."""
        return self.state in (JobState.PROCESSING, JobState.PROCESSING_STOPPED, JobState.COMPLETED) \
            or (self.state in (JobState.PENDING, JobState.PENDING_HELD) and not self.waiting_for_data)


def outcome_of(uj: UpstreamJob, impressions: int | None) -> Outcome:
    """The proxy job's final state from the printer's final job state."""
    if uj.state == JobState.COMPLETED:
        reasons = [r for r in uj.reasons if r.startswith("job-completed-")] or \
            ["job-completed-successfully"]
        return Outcome(JobState.COMPLETED, reasons[:1], "", impressions)
    if uj.state == JobState.CANCELED:
        return Outcome(JobState.CANCELED, ["job-canceled-at-device"],
                       uj.message or "canceled at the printer", impressions)
    reasons = [r for r in uj.reasons if r not in ("none", "job-printing")] or ["aborted-by-system"]
    return Outcome(JobState.ABORTED, reasons,
                   uj.message or f"the printer aborted the job ({', '.join(reasons)})", impressions)


def printer_state(attrs: Group) -> PollResult:
    state = attrs.value("printer-state", PrinterState.IDLE)
    reasons_attr = attrs.get("printer-state-reasons")
    reasons = [str(v) for v in reasons_attr.values if v] if reasons_attr is not None else []
    msg = attrs.value("printer-state-message") or ""
    try:
        state = PrinterState(int(state))
    except (TypeError, ValueError):
        state = PrinterState.IDLE
    return PollResult(state, reasons or ["none"], str(getattr(msg, "text", msg)), attrs)


class _Stop(Exception):
    """Internal: the proxy job was canceled; stop at once."""


# -- the backend ------------------------------------------------------------------

class IppBackend(Backend):
    kind = "ipp"
    polls = True
    reports_state = True

    def __init__(self, uri: str, settings: QueueSettings, *, verify_tls: bool = False) -> None:
        super().__init__(uri, settings)
        # separate connections: a poll never waits behind a document upload
        self.client = IppClient(uri, timeout=settings.timeout, verify_tls=verify_tls)
        self.poll_client = IppClient(uri, timeout=settings.timeout, verify_tls=verify_tls)
        self.attributes: Group | None = None

    async def aclose(self) -> None:
        await self.client.aclose()
        await self.poll_client.aclose()

    # -- requests --

    def _set_version(self, version: tuple[int, int]) -> None:
        self.client.version = self.poll_client.version = version

    async def _request(self, client: IppClient, msg: Message,
                       data: bytes | AsyncIterable[bytes] | None = None) -> Message:
        try:
            return await client.request(msg, data)
        except PrinterUnreachable as e:
            raise PrinterOffline(f"cannot reach printer: {_strip_uri(e, self.uri)}",
                                 maybe_received=e.maybe_sent) from None
        except IppClientError as e:
            raise PrinterOffline(f"printer answers with an error: {_strip_uri(e, self.uri)}") from None

    async def fetch_attributes(self, client: IppClient | None = None) -> Group:
        client = client or self.poll_client
        for _ in range(2):
            req = client.new_request(Op.GET_PRINTER_ATTRIBUTES)
            req.operation.add("requested-attributes", Tag.KEYWORD, *REQUESTED_PRINTER)
            resp = await self._request(client, req)
            if resp.code == Status.VERSION_NOT_SUPPORTED and client.version != (1, 1):
                self._set_version((1, 1))
                continue
            break
        if resp.code >= 0x0100:
            raise PrinterOffline(f"printer answers Get-Printer-Attributes with "
                                 f"{status_keyword(resp.code)}: {status_message(resp)}".rstrip(": "))
        attrs = resp.group(Tag.PRINTER) or Group(Tag.PRINTER)
        versions = attrs.get("ipp-versions-supported")
        if versions is not None and "2.0" not in versions.values and "1.1" in versions.values:
            self._set_version((1, 1))
        self.attributes = attrs
        return attrs

    async def poll(self) -> PollResult:
        return printer_state(await self.fetch_attributes(self.poll_client))

    async def probe(self) -> None:
        await self.fetch_attributes(self.poll_client)

    def _op(self, op: int, job: Job) -> Message:
        msg = self.client.new_request(op, user=job.user or "anonymous")
        return msg

    async def _get_job(self, job: Job, upstream_id: int) -> UpstreamJob | None:
        """The printer's view of one of its jobs; None if it does not know it."""
        req = self._op(Op.GET_JOB_ATTRIBUTES, job)
        req.operation.add("job-id", Tag.INTEGER, upstream_id)
        req.operation.add("requested-attributes", Tag.KEYWORD, *REQUESTED_JOB)
        backoff = None
        tries = 0
        while True:
            resp = await self._request(self.client, req)
            if resp.code < 0x0100:
                g = resp.group(Tag.JOB) or Group(Tag.JOB)
                uj = UpstreamJob.of(g)
                uj.id = uj.id or upstream_id
                return uj
            if resp.code in (Status.NOT_FOUND, Status.GONE):
                return None
            tries += 1
            if resp.code in WAIT_STATUSES or (resp.code >= 0x0500 and tries <= SERVER_ERROR_RETRIES):
                backoff = backoff or _backoff(self.settings)
                await trio.sleep(backoff.next())
                continue
            raise PrinterOffline(f"printer answers Get-Job-Attributes for job {upstream_id} with "
                                 f"{status_keyword(resp.code)}: {status_message(resp)}")

    async def _cancel_quietly(self, job: Job, upstream_id: int) -> None:
        req = self._op(Op.CANCEL_JOB, job)
        req.operation.add("job-id", Tag.INTEGER, upstream_id)
        resp = await self._request(self.client, req)
        if resp.code >= 0x0100 and resp.code not in (Status.NOT_FOUND, Status.NOT_POSSIBLE, Status.GONE):
            log.debug("%s: Cancel-Job %d answered %s", self.uri, upstream_id, status_keyword(resp.code))

    async def _cancel_orphans(self, job: Job) -> int:
        """Cancel upstream jobs a Create-/Print-Job of ours may have left without our
        knowing their id: same job-name and user, still waiting for data."""
        name = progress(job).get("name") or upstream_job_name(job)
        req = self._op(Op.GET_JOBS, job)
        req.operation.add("which-jobs", Tag.KEYWORD, "not-completed")
        req.operation.add("requested-attributes", Tag.KEYWORD, "job-id", "job-name",
                          "job-originating-user-name", "job-state", "job-state-reasons")
        resp = await self._request(self.client, req)
        if resp.code >= 0x0100:
            log.debug("%s: Get-Jobs answered %s; cannot look for an orphan of job %d", self.uri,
                      status_keyword(resp.code), job.id)
            return 0
        found = 0
        for g in resp.groups_of(Tag.JOB):
            uj = UpstreamJob.of(g)
            if uj.id and uj.name == name and uj.user in (job.user, "") and uj.waiting_for_data:
                log.info("job %d: canceling upstream job %d left by an interrupted delivery",
                         job.id, uj.id)
                await self._cancel_quietly(job, uj.id)
                found += 1
        return found

    async def cancel_upstream(self, job: Job) -> None:
        d = job.delivery
        if d.phase == "creating":
            await self._cancel_orphans(job)
        elif d.phase in ("sending", "sent") and d.upstream_job_id:
            await self._cancel_quietly(job, d.upstream_job_id)

    async def identify(self, actions: list[str], message: str | None) -> None:
        attrs = self.attributes or await self.fetch_attributes(self.poll_client)
        if Op.IDENTIFY_PRINTER not in Capabilities.of(attrs).operations:
            return
        sup = attrs.get("identify-actions-supported")
        if sup is not None:
            actions = [a for a in actions if a in sup.values] or list(sup.values[:1])
        req = self.poll_client.new_request(Op.IDENTIFY_PRINTER)
        if actions:
            req.operation.add("identify-actions", Tag.KEYWORD, *actions)
        if message:
            req.operation.add("message", Tag.TEXT, message[:127])
        resp = await self._request(self.poll_client, req)
        if resp.code >= 0x0100:
            log.info("%s: Identify-Printer answered %s", self.uri, status_keyword(resp.code))

    # -- delivery --

    async def deliver(self, job: Job, ctx: DeliveryContext) -> Outcome:
        try:
            return await self._deliver(job, ctx)
        except _Stop:
            return Outcome(JobState.CANCELED, ["job-canceled-by-user"])

    async def _deliver(self, job: Job, ctx: DeliveryContext) -> Outcome:
        if not job.documents:
            raise JobRejected("the job has no documents", ["aborted-by-system"])
        attrs = self.attributes if self.attributes is not None else await self.fetch_attributes(self.client)
        caps = Capabilities.of(attrs)
        prog = progress(job)
        d = job.delivery
        if "mode" not in prog:
            single = len(job.documents) == 1 or (caps.multiple_documents and caps.create_job)
            prog["mode"] = "single" if single else "split"
            prog["name"] = upstream_job_name(job)
        while True:
            self._check(job, ctx)
            if d.phase == "creating":
                await self._resume_creating(job, ctx)
            if d.phase == "sending":
                await self._resume_sending(job, ctx)
            if d.phase == "none":
                docs = self._documents_to_send(job)
                if not docs:  # every document already printed (split mode)
                    return Outcome(JobState.COMPLETED, ["job-completed-successfully"], "",
                                   int(prog.get("impressions", 0)) or None)
                await self._submit(job, ctx, caps, docs)
                continue
            if d.phase == "sent":
                outcome = await self._follow(job, ctx)
                if prog["mode"] == "split" and outcome.state == JobState.COMPLETED:
                    prog["docs_done"] = int(prog.get("docs_done", 0)) + 1
                    prog["impressions"] = int(prog.get("impressions", 0)) + (outcome.impressions or 0)
                    if prog["docs_done"] < len(job.documents):
                        d.phase, d.upstream_job_id, d.upstream_job_uri = "none", 0, ""
                        await ctx.save(job)
                        continue
                    outcome.impressions = prog["impressions"]
                else:
                    prog["docs_done"] = len(job.documents) if outcome.state == JobState.COMPLETED \
                        else prog.get("docs_done", 0)
                return outcome
            if d.phase == "done":  # pragma: no cover - the worker finishes such jobs itself
                return Outcome(JobState.COMPLETED, ["job-completed-successfully"])

    @staticmethod
    def _check(job: Job, ctx: DeliveryContext) -> None:
        if ctx.canceled(job):
            raise _Stop()

    def _documents_to_send(self, job: Job) -> list[Document]:
        prog = progress(job)
        if prog.get("mode") == "split":
            i = int(prog.get("docs_done", 0))
            return job.documents[i:i + 1]
        return list(job.documents)

    async def _resume_creating(self, job: Job, ctx: DeliveryContext) -> None:
        """A Create-/Print-Job whose answer we never recorded."""
        d = job.delivery
        if progress(job).get("unsent"):
            pass  # the connection was never made: nothing can exist upstream
        else:
            await self._cancel_orphans(job)
        progress(job).pop("unsent", None)
        d.phase, d.upstream_job_id, d.upstream_job_uri = "none", 0, ""
        await ctx.save(job)

    async def _resume_sending(self, job: Job, ctx: DeliveryContext) -> None:
        """An upstream job we created whose data may not all have arrived."""
        d = job.delivery
        uj = await self._get_job(job, d.upstream_job_id)
        if uj is not None and uj.has_everything:
            log.info("job %d: upstream job %d already has the whole job (%s); following it",
                     job.id, d.upstream_job_id, _state_kw(uj.state))
            d.phase = "sent"
        else:
            if uj is not None and not uj.final:
                await self._cancel_quietly(job, d.upstream_job_id)
            log.info("job %d: upstream job %d did not get the whole job (%s); sending again",
                     job.id, d.upstream_job_id, "gone" if uj is None else _state_kw(uj.state))
            d.phase, d.upstream_job_id, d.upstream_job_uri = "none", 0, ""
            progress(job)["sent_docs"] = 0
        await ctx.save(job)

    def _job_request(self, op: int, job: Job, caps: Capabilities,
                     doc: Document | None) -> Message:
        msg = self._op(op, job)
        g = msg.operation
        g.add("job-name", Tag.NAME, progress(job).get("name") or upstream_job_name(job))
        if doc is not None:
            self._add_document_attrs(g, doc, caps)
        try:
            job_attrs = decode_attributes(job.attributes) if job.attributes else []
        except Exception as e:  # a record we cannot read: print with the printer's defaults
            log.warning("job %d: cannot decode its attributes (%s); printing with defaults", job.id, e)
            job_attrs = []
        fwd = forward_attributes(job_attrs, self.attributes if caps.known else None)
        if fwd:
            msg.add_group(Tag.JOB, fwd)
        return msg

    @staticmethod
    def _add_document_attrs(g: Group, doc: Document, caps: Capabilities) -> None:
        g.add("document-format", Tag.MIME_TYPE, choose_format(doc.format, caps))
        if doc.name:
            g.add("document-name", Tag.NAME, doc.name)

    async def _send(self, job: Job, ctx: DeliveryContext, make: Any,
                    doc: Document | None) -> Message:
        """Send a request (with the document, if any), waiting out busy printers.
        Returns the first answer that is not a wait status."""
        backoff = ctx.backoff()
        server_errors = 0
        while True:
            self._check(job, ctx)
            msg = make()
            if doc is None:
                resp = await self._request(self.client, msg)
            else:
                try:
                    async with ctx.document(doc) as chunks:
                        resp = await self._request(self.client, msg, chunks)
                except SpoolError as e:
                    raise JobRejected(f"document {doc.number}: {e}", ["document-access-error"]) from None
            code = resp.code
            if code == Status.VERSION_NOT_SUPPORTED and self.client.version != (1, 1):
                self._set_version((1, 1))
                continue
            if code in WAIT_STATUSES or (code >= 0x0500 and code not in (
                    Status.OPERATION_NOT_SUPPORTED, Status.MULTIPLE_DOCUMENT_JOBS_NOT_SUPPORTED,
                    Status.JOB_CANCELED) and (server_errors := server_errors + 1) <= SERVER_ERROR_RETRIES):
                delay = backoff.next()
                job.state_message = (f"printer {status_keyword(code)}"
                                     f"{': ' + status_message(resp) if status_message(resp) else ''}"
                                     f"; trying again in {delay:.0f} s")
                log.debug("job %d: %s", job.id, job.state_message)
                await trio.sleep(delay)
                continue
            if job.state_message.startswith("printer "):
                job.state_message = ""
            return resp

    async def _submit(self, job: Job, ctx: DeliveryContext, caps: Capabilities,
                      docs: list[Document]) -> None:
        """phase none -> sent: create the upstream job and give it its documents."""
        d = job.delivery
        prog = progress(job)
        use_create = caps.create_job and not prog.get("no_create")
        if not use_create and len(docs) > 1:
            # the printer lost Create-Job since the job started: one upstream job per document
            prog["mode"], prog["docs_done"] = "split", 0
            await ctx.save(job)
            return
        d.phase = "creating"
        await ctx.save(job)
        if not use_create:
            resp = await self._send_creating(job, ctx, lambda: self._job_request(
                Op.PRINT_JOB, job, caps, docs[0]), docs[0])
            self._reject_if_error(resp, job, "Print-Job")
            self._record_job(job, resp)
            d.phase = "sent"
            await ctx.save(job)
            return

        resp = await self._send_creating(job, ctx, lambda: self._job_request(
            Op.CREATE_JOB, job, caps, None), None)
        if resp.code == Status.OPERATION_NOT_SUPPORTED:
            # operations-supported said otherwise: fall back to Print-Job
            prog["no_create"] = True
            if len(docs) > 1 or prog.get("mode") == "single" and len(job.documents) > 1:
                prog["mode"] = "split"
            d.phase = "none"
            await ctx.save(job)
            return
        self._reject_if_error(resp, job, "Create-Job")
        self._record_job(job, resp)
        d.phase = "sending"
        prog["sent_docs"] = 0
        await ctx.save(job)

        for i, doc in enumerate(docs):
            last = i == len(docs) - 1

            def make(doc: Document = doc, last: bool = last) -> Message:
                msg = self._op(Op.SEND_DOCUMENT, job)
                msg.operation.add("job-id", Tag.INTEGER, d.upstream_job_id)
                self._add_document_attrs(msg.operation, doc, caps)
                msg.operation.add("last-document", Tag.BOOLEAN, last)
                return msg

            resp = await self._send(job, ctx, make, doc)
            if resp.code == Status.MULTIPLE_DOCUMENT_JOBS_NOT_SUPPORTED and len(docs) > 1:
                await self._cancel_quietly(job, d.upstream_job_id)
                prog["mode"], prog["docs_done"], prog["sent_docs"] = "split", 0, 0
                d.phase, d.upstream_job_id, d.upstream_job_uri = "none", 0, ""
                await ctx.save(job)
                return
            if resp.code >= 0x0100:
                await self._cancel_quietly(job, d.upstream_job_id)
                self._reject_if_error(resp, job, "Send-Document")
            prog["sent_docs"] = i + 1
            if not last:
                await ctx.save(job)
        d.phase = "sent"
        await ctx.save(job)

    async def _send_creating(self, job: Job, ctx: DeliveryContext, make: Any,
                             doc: Document | None) -> Message:
        """Create-Job / Print-Job in phase "creating": remember whether a failure
        happened before the connection existed (then no orphan can exist)."""
        try:
            return await self._send(job, ctx, make, doc)
        except PrinterOffline as e:
            if not e.maybe_received:
                progress(job)["unsent"] = True
            raise

    def _reject_if_error(self, resp: Message, job: Job, what: str) -> None:
        if resp.code < 0x0100:
            return
        if resp.code == Status.JOB_CANCELED:
            raise JobRejected(f"the printer canceled the job: {status_message(resp)}",
                              ["job-canceled-at-device"])
        text = status_message(resp) or status_keyword(resp.code)
        raise JobRejected(f"printer rejected the job ({what}: {status_keyword(resp.code)}): {text}",
                          abort_reasons(resp.code))

    @staticmethod
    def _record_job(job: Job, resp: Message) -> None:
        g = resp.group(Tag.JOB) or Group(Tag.JOB)
        upstream_id = g.value("job-id")
        if not isinstance(upstream_id, int) or upstream_id <= 0:
            raise PrinterOffline("printer accepted the job but sent no job-id")
        job.delivery.upstream_job_id = upstream_id
        job.delivery.upstream_job_uri = str(g.value("job-uri") or "")

    async def _follow(self, job: Job, ctx: DeliveryContext) -> Outcome:
        """Poll the upstream job until it is final; mirror it meanwhile."""
        d = job.delivery
        base = int(progress(job).get("impressions", 0))
        while True:
            self._check(job, ctx)
            uj = await self._get_job(job, d.upstream_job_id)
            if uj is None:
                return Outcome(JobState.COMPLETED, ["job-completed-with-warnings"],
                               f"the printer no longer knows its job {d.upstream_job_id}, which had "
                               "the whole job; assumed printed", None)
            impressions = uj.impressions
            if impressions is not None:
                job.impressions_completed = base + impressions
            if uj.final:
                return outcome_of(uj, impressions)
            self._check(job, ctx)
            if uj.state == JobState.PROCESSING_STOPPED:
                job.state = JobState.PROCESSING_STOPPED
                job.state_reasons = ["printer-stopped"]
                job.state_message = uj.message or "the printer stopped"
            elif job.state == JobState.PROCESSING_STOPPED:
                job.state = JobState.PROCESSING
                job.state_reasons = ["job-printing"]
                job.state_message = ""
            await trio.sleep(ctx.follow_interval)


def _backoff(settings: QueueSettings):
    from .backoff import Backoff
    return Backoff(settings.retry_initial, settings.retry_max)


def _state_kw(state: int) -> str:
    try:
        return JobState(state).keyword
    except ValueError:
        return str(state)


def _strip_uri(e: Exception, uri: str) -> str:
    text = str(e)
    prefix = f"{uri}: "
    return text[len(prefix):] if text.startswith(prefix) else text
