"""The proxy's IPP printer objects: one per configured queue.

``PrinterService.handle`` takes a decoded request and the document bytes that follow
it and returns the response Message. It spools documents through the JobStore (the
client's job-id is returned only after the bytes are fsynced and the record is
committed), wakes the upstream delivery, and answers job and printer queries from the
store and the upstream printer's status. HTTP lives in server.py.
"""
from __future__ import annotations

import logging
import time
import zlib
from dataclasses import dataclass
from typing import AsyncIterator, Awaitable, Callable
from urllib.parse import unquote, urlsplit

import trio

from ..config import Settings
from ..spool.errors import SpoolError
from ..spool.job import Document, Job, job_totals
from . import codec, printer as printer_mod
from .model import JobState, Op, PrinterState, Status, Tag
from .printer import QueueView, build_attributes, date_time, queue_uuid, select
from .types import Attribute, Message
from .validate import NAME_TAGS, RequestError, check_job_template, check_request, single

log = logging.getLogger("spoolproxy.ipp")

# Operation attributes that describe the job and travel with it (stored on the job).
JOB_OPERATION_ATTRS = ("job-name", "job-impressions", "job-k-octets", "job-media-sheets",
                       "job-password", "job-password-encryption")
JOB_DESCRIPTION_READONLY = frozenset({
    "job-id", "job-uri", "job-state", "job-state-reasons", "job-state-message", "job-uuid",
    "job-printer-uri", "time-at-creation", "time-at-processing", "time-at-completed",
    "date-time-at-creation", "date-time-at-processing", "date-time-at-completed",
    "number-of-documents", "job-originating-user-name", "job-k-octets-processed",
    "job-impressions-completed", "job-media-sheets-completed", "job-printer-up-time",
})
DEFAULT_JOB_ATTRS = ("job-id", "job-uri")
# requested-attributes that ask for the counts (the template must be decoded for copies)
_COUNTED_WANTED = frozenset({"job-impressions", "job-media-sheets", "job-description", "all"})
JOB_ATTRS_AFTER_CREATE = ("job-id", "job-uri", "job-state", "job-state-reasons", "job-state-message")
STATE_KEYWORDS = {"pending": (JobState.PENDING,), "pending-held": (JobState.PENDING_HELD,),
                  "processing": (JobState.PROCESSING,), "processing-stopped": (JobState.PROCESSING_STOPPED,),
                  "canceled": (JobState.CANCELED,), "aborted": (JobState.ABORTED,),
                  "completed": (JobState.CANCELED, JobState.ABORTED, JobState.COMPLETED),
                  "not-completed": (JobState.PENDING, JobState.PENDING_HELD, JobState.PROCESSING,
                                    JobState.PROCESSING_STOPPED),
                  "all": tuple(JobState)}
CHUNK = 1 << 16


@dataclass(frozen=True)
class RequestContext:
    host: str  # Host header as the client sent it ("name:port"), used in the URIs we hand out
    peer: str = ""  # client address
    path: str = "/"  # HTTP request path


class DocumentDataError(Exception):
    """Document data could not be read (bad compression, limit exceeded)."""

    def __init__(self, status: Status, message: str):
        super().__init__(message)
        self.status = status


def _decompressor(kind: str) -> Callable[[bytes], bytes] | None:
    """Streaming inflater for the IPP compression attribute. CUPS sends raw deflate
    for "deflate", HTTP libraries the zlib wrapper: the first chunk tells."""
    if kind == "gzip":
        d = zlib.decompressobj(31)
        return d.decompress
    if kind == "deflate":
        state: dict[str, object] = {}

        def inflate(data: bytes) -> bytes:
            d = state.get("d")
            if d is None:
                zlib_header = len(data) >= 2 and data[0] & 0x0F == 8 and (data[0] << 8 | data[1]) % 31 == 0
                d = state["d"] = zlib.decompressobj(15 if zlib_header else -15)
            return d.decompress(data)  # type: ignore[union-attr]
        return inflate
    return None


class PrinterService:
    def __init__(self, settings: Settings, store, upstream, *, started: float | None = None,
                 detect: Callable[[bytes], str] | None = None):
        self.settings = settings
        self.store = store
        self.upstream = upstream
        self.started = started or time.time()
        self.detect = detect
        self._nursery: trio.Nursery | None = None
        self._uuids = {q: queue_uuid(settings.node.name, q) for q in settings.queues}
        self._state_changed = {q: self.started for q in settings.queues}
        self._last_state: dict[str, tuple] = {}
        self._receiving: set[int] = set()  # jobs whose Send-Document data is arriving now
        self._caps: dict[str, tuple[object, dict[str, Attribute]]] = {}

    # ---- lifetime -------------------------------------------------------------
    async def run(self, *, task_status=trio.TASK_STATUS_IGNORED) -> None:
        """Background work: cancellations sent upstream, open jobs that time out."""
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            task_status.started()
            while True:
                await trio.sleep(10)
                await self._expire_open_jobs(time.time())

    async def _expire_open_jobs(self, now: float) -> None:
        limit = printer_mod.MULTIPLE_OPERATION_TIME_OUT
        for job in self.store.jobs(which="not-completed"):
            if (not job.closed and job.id not in self._receiving
                    and now - job.extra.get("activity", job.created) > limit):
                self._finish(job, JobState.ABORTED, "aborted-by-system",
                             "No document arrived within multiple-operation-time-out.")
                job.closed = True
                await self.store.save(job)

    def _background(self, fn: Callable[..., Awaitable], *args) -> None:
        if self._nursery is not None:
            self._nursery.start_soon(fn, *args)

    # ---- entry point ----------------------------------------------------------
    async def handle(self, req: Message, body: AsyncIterator[bytes], ctx: RequestContext) -> Message:
        resp = Message(version=(req.version if req.version[0] in (1, 2) else (1, 1)),
                       code=Status.OK, request_id=req.request_id)
        op_group = resp.add_group(Tag.OPERATION)
        op_group.add("attributes-charset", Tag.CHARSET, "utf-8")
        op_group.add("attributes-natural-language", Tag.LANGUAGE, "en")
        try:
            target = check_request(req)
            handler = HANDLERS.get(req.code)
            if req.code in URI_OPS and not self.settings.ipp.document_uri_schemes:
                handler = None
            if handler is None:
                raise RequestError(Status.OPERATION_NOT_SUPPORTED,
                                   f"Operation {req.code:#06x} is not supported.")
            queue, job_id = self._resolve(target, req.code)
            await handler(self, req, body, ctx, resp, queue, job_id)
        except RequestError as e:
            resp.code = e.status
            resp.groups = resp.groups[:1]
            op_group.add("status-message", Tag.TEXT, e.message)
            if e.unsupported:
                resp.add_group(Tag.UNSUPPORTED_GROUP, _unsupported_copies(e.unsupported))
        except DocumentDataError as e:
            resp.code = e.status
            resp.groups = resp.groups[:1]
            op_group.add("status-message", Tag.TEXT, str(e))
        except SpoolError as e:  # a save that could not write (disk full): nothing was committed
            if e.ipp_status == Status.INTERNAL_ERROR:
                log.exception("operation %#06x: %s", req.code, e)
            resp.code = e.ipp_status
            resp.groups = resp.groups[:1]
            op_group.add("status-message", Tag.TEXT, f"Cannot store the job: {e}.")
        return resp

    # ---- addressing -----------------------------------------------------------
    def _resolve(self, target, op: int) -> tuple[str | None, int | None]:
        """(queue name, job id from a job-uri) for the request's target URI."""
        if target.uri is None:
            return None, None
        parts = urlsplit(target.uri)
        if parts.scheme not in ("ipp", "ipps", "http", "https"):
            raise RequestError(Status.NOT_FOUND, f'"{target.uri}" is not a URI this server serves.')
        segs = [unquote(s) for s in parts.path.split("/") if s]
        queue, job_id = None, None
        if len(segs) >= 2 and segs[0] == "ipp" and segs[1] == "print":
            rest = segs[2:]
            if not rest:
                queue = self.settings.default_queue
            else:
                queue = rest[0]
                if len(rest) == 2 and target.is_job_uri:
                    job_id = _int(rest[1])
                elif len(rest) != 1:
                    queue = None
        elif len(segs) == 2 and segs[0] in ("printers", "classes"):
            queue = segs[1]
        elif len(segs) == 2 and segs[0] == "jobs" and target.is_job_uri:
            job_id = _int(segs[1])
            job = self.store.get(job_id) if job_id else None
            queue = job.queue if job is not None else self.settings.default_queue
        elif not segs:
            queue = self.settings.default_queue
        if target.is_job_uri and job_id is None:
            raise RequestError(Status.NOT_FOUND, f'Job URI "{target.uri}" names no job.')
        if queue is None or queue not in self.settings.queues:
            raise RequestError(Status.NOT_FOUND, f'Printer "{target.uri}" not found.')
        return queue, job_id

    def _printer_uri(self, queue: str, ctx: RequestContext) -> str:
        host = self.settings.ipp.hostname
        if host:
            host = f"{host}:{self.settings.ipp.port}" if ":" not in host else host
        else:
            host = ctx.host or f"localhost:{self.settings.ipp.port}"
        return f"ipp://{host}/ipp/print/{queue}"

    # ---- views ----------------------------------------------------------------
    def queue_view(self, queue: str, ctx: RequestContext) -> QueueView:
        cfg = self.settings.queues[queue]
        st = self.upstream.status(queue)
        jobs = self.store.jobs(queue, which="not-completed")
        state = printer_mod.printer_state_from(st.state)
        if state == PrinterState.IDLE and any(j.state == JobState.PROCESSING for j in jobs):
            state = PrinterState.PROCESSING
        reasons = tuple(st.reasons or ("none",))
        key = (state, reasons)
        if self._last_state.get(queue) != key:
            self._last_state[queue] = key
            self._state_changed[queue] = time.time()
        return QueueView(
            name=queue, printer_uri=self._printer_uri(queue, ctx), info=cfg.info,
            location=cfg.location, make_and_model=cfg.make_and_model, uuid=self._uuids[queue],
            state=int(state), state_reasons=reasons, state_message=st.message or "",
            queued=len(jobs), up_time=self.up_time(), started=self.started,
            state_changed=self._state_changed[queue], upstream=st.attributes,
            device_uri=cfg.printer, is_default=queue == self.settings.default_queue,
            uri_schemes=tuple(self.settings.ipp.document_uri_schemes))

    @staticmethod
    def up_time() -> int:
        """printer-up-time, and the base of every time-at-* attribute: like cupsd we
        count from the epoch, so CUPS clients (lpstat) show real dates and times
        survive restarts."""
        return int(time.time())

    def capabilities(self, queue: str) -> dict[str, Attribute]:
        """The queue's attributes by name, for validating requests: rebuilt only when
        the printer's polled attributes change (each poll brings a new Group), so the
        job path neither rebuilds them nor counts the queue's jobs."""
        upstream = self.upstream.status(queue).attributes
        cached = self._caps.get(queue)
        if cached is None or cached[0] is not upstream:
            view = self.queue_view(queue, RequestContext(host="localhost"))
            cached = self._caps[queue] = (upstream, {a.name: a for a in build_attributes(view)})
        return cached[1]

    def job_attributes(self, job: Job, ctx: RequestContext, wanted: list[str] | None = None) -> list[Attribute]:
        """The job's attributes; ``wanted`` (requested-attributes) lets a query skip
        decoding the stored job template when it asks for none of it."""
        a = Attribute.of
        puri = self._printer_uri(job.queue, ctx)

        def rel(t: float | None) -> Attribute:
            return a("", Tag.INTEGER, int(t)) if t is not None else a("", Tag.NO_VALUE)

        def dt(t: float | None) -> Attribute:
            return a("", Tag.DATE, date_time(t)) if t is not None else a("", Tag.NO_VALUE)

        out = [
            a("job-id", Tag.INTEGER, job.id),
            a("job-uri", Tag.URI, f"{puri}/{job.id}"),
            a("job-printer-uri", Tag.URI, puri),
            a("job-uuid", Tag.URI, job.uuid),
            a("job-name", Tag.NAME, job.name or "Untitled"),
            a("job-originating-user-name", Tag.NAME, job.user or "anonymous"),
            a("job-state", Tag.ENUM, int(job.state)),
            a("job-state-reasons", Tag.KEYWORD, *(job.state_reasons or ["none"])),
            a("job-state-message", Tag.TEXT, job.state_message),
            a("number-of-documents", Tag.INTEGER, len(job.documents)),
            a("job-k-octets", Tag.INTEGER, (sum(d.size for d in job.documents) + 1023) // 1024),
            a("job-impressions-completed", Tag.INTEGER, job.impressions_completed),
            a("job-printer-up-time", Tag.INTEGER, self.up_time()),
        ]
        if job.host:
            out.append(a("job-originating-host-name", Tag.NAME, job.host))
        for name, t in (("creation", job.created), ("processing", job.processing), ("completed", job.completed)):
            r, d = rel(t), dt(t)
            r.name, d.name = f"time-at-{name}", f"date-time-at-{name}"
            out += [r, d]
        if job.documents:
            out.append(a("document-format-supplied", Tag.MIME_TYPE, job.documents[-1].format))
            if job.documents[-1].name:
                out.append(a("document-name-supplied", Tag.NAME, job.documents[-1].name))
        out += self._counted(job, wanted)
        have = {x.name for x in out}
        if wanted is not None and not (set(wanted) - have - JOB_DESCRIPTION_READONLY - {"job-description"}):
            return out
        for attr in _job_template(job):
            if attr.name not in have and attr.name not in JOB_DESCRIPTION_READONLY:
                out.append(attr)
                have.add(attr.name)
        if "job-hold-until" not in have and job.state == JobState.PENDING_HELD:
            out.append(a("job-hold-until", Tag.KEYWORD, "indefinite"))
        return out

    def _counted(self, job: Job, wanted: list[str] | None) -> list[Attribute]:
        """What the document engine found, once it has: the detected format, and the
        job's impressions and sheets (the document's own copies and IPP copies included),
        which override any estimate the client sent."""
        a = Attribute.of
        out = []
        analyses = [d.analysis for d in job.documents if d.analysis and "error" not in d.analysis]
        if analyses:
            out.append(a("document-format-detected", Tag.MIME_TYPE, analyses[-1]["format"]))
        totals = job_totals(job) if job.analyzed else None
        if totals is None or (wanted is not None and not _COUNTED_WANTED & set(wanted)):
            return out
        copies = 1
        for attr in _job_template(job):
            if attr.name == "copies" and attr.values and isinstance(attr.values[0], int):
                copies = max(1, attr.values[0])
        out.append(a("job-impressions", Tag.INTEGER, min(totals["impressions"] * copies, 2**31 - 1)))
        out.append(a("job-media-sheets", Tag.INTEGER, min(totals["sheets"] * copies, 2**31 - 1)))
        return out

    def _job(self, queue: str, job_id: int | None, req: Message) -> Job:
        if job_id is None:
            attr = req.operation.get("job-id")
            if attr is None:
                raise RequestError(Status.BAD_REQUEST, "Missing required job-id attribute.")
            job_id = single(attr, (Tag.INTEGER,), "job-id")
        job = self.store.get(job_id)
        if job is None or job.queue != queue:
            raise RequestError(Status.NOT_FOUND, f"Job #{job_id} does not exist.")
        return job

    def _check_owner(self, job: Job, req: Message) -> None:
        user = _user(req)
        if user and job.user and user != job.user:
            raise RequestError(Status.NOT_AUTHORIZED, f'Job #{job.id} belongs to "{job.user}", not "{user}".')

    def _finish(self, job: Job, state: JobState, reason: str, message: str = "") -> None:
        job.state = int(state)
        job.state_reasons = [reason]
        job.state_message = message
        job.completed = time.time()

    # ---- job creation ---------------------------------------------------------
    def _validate_create(self, req: Message, queue: str, ctx: RequestContext, resp: Message,
                         has_document: bool, by_reference: bool = False) -> tuple[list[Attribute], dict]:
        """Check operation and job template attributes of Print-Job/Validate-Job/
        Create-Job. Returns the job's attributes and the document facts."""
        op = req.operation
        printer = self.capabilities(queue)
        info: dict = {"user": _user(req) or "anonymous", "host": ctx.peer}
        info["name"] = single(op.get("job-name"), NAME_TAGS, "job-name") or ""
        fidelity = single(op.get("ipp-attribute-fidelity"), (Tag.BOOLEAN,), "ipp-attribute-fidelity") or False
        single(op.get("requesting-user-name"), NAME_TAGS, "requesting-user-name")
        if has_document:
            info.update(self._document_info(req, printer, by_reference))
        job_attrs: list[Attribute] = []
        for g in req.groups_of(Tag.JOB):
            job_attrs.extend(g.attributes)
        for name in JOB_OPERATION_ATTRS:
            attr = op.get(name)
            if attr is not None and name != "job-name":
                job_attrs.append(attr)
        unsupported = check_job_template(job_attrs, printer)
        hold = next((x for x in job_attrs if x.name == "job-hold-until"), None)
        if hold is not None and hold not in unsupported and hold.tag not in (Tag.KEYWORD, *NAME_TAGS):
            unsupported.append(hold)
        if unsupported:
            if fidelity:
                raise RequestError(Status.ATTRIBUTES_OR_VALUES_NOT_SUPPORTED,
                                   "Unsupported job attributes or values: "
                                   + ", ".join(x.name for x in unsupported) + ".", unsupported)
            resp.code = Status.OK_IGNORED_OR_SUBSTITUTED
            resp.add_group(Tag.UNSUPPORTED_GROUP, _unsupported_copies(unsupported))
            bad = {id(x) for x in unsupported}
            job_attrs = [x for x in job_attrs if id(x) not in bad]
        hold_value = next((x.value for x in job_attrs if x.name == "job-hold-until"), "no-hold")
        info["held"] = getattr(hold_value, "text", hold_value) not in ("no-hold", None)
        return job_attrs, info

    def _document_info(self, req: Message, printer: dict[str, Attribute], by_reference: bool = False) -> dict:
        op = req.operation
        info: dict = {}
        if by_reference:
            info["document_uri"] = self._document_uri(req)
        fmt = single(op.get("document-format"), (Tag.MIME_TYPE,), "document-format") or "application/octet-stream"
        sup = printer.get("document-format-supported")
        if sup is not None and fmt not in sup.values:
            raise RequestError(Status.DOCUMENT_FORMAT_NOT_SUPPORTED,
                               f'Document format "{fmt}" is not supported.', [op.get("document-format")])
        comp = single(op.get("compression"), (Tag.KEYWORD,), "compression") or "none"
        if comp not in printer_mod.COMPRESSIONS:
            raise RequestError(Status.COMPRESSION_NOT_SUPPORTED, f'Compression "{comp}" is not supported.',
                               [op.get("compression")])
        doc_name = single(op.get("document-name"), NAME_TAGS, "document-name") or ""
        info.update(format=fmt, compression=comp, document_name=doc_name)
        return info

    def _document_uri(self, req: Message) -> str:
        attr = req.operation.get("document-uri")
        if attr is None:
            raise RequestError(Status.BAD_REQUEST, "Missing required document-uri attribute.")
        uri = single(attr, (Tag.URI,), "document-uri")
        from . import fetch
        try:
            fetch.check_uri(uri, self.settings.ipp.document_uri_schemes)
        except fetch.FetchError as e:
            raise RequestError(e.status, str(e), [attr]) from None
        return uri

    async def _spool(self, body: AsyncIterator[bytes], compression: str) -> tuple[str, int, bytes]:
        """Stream the document to a spool file; returns (file, size, first bytes)."""
        inflate = _decompressor(compression)
        head = bytearray()

        async def chunks() -> AsyncIterator[bytes]:
            async for data in body:
                if inflate is not None:
                    try:
                        data = inflate(data)
                    except zlib.error as e:
                        raise DocumentDataError(Status.COMPRESSION_ERROR, f"Bad {compression} data: {e}.") from None
                if len(head) < 4096:
                    head.extend(data[: 4096 - len(head)])
                if data:
                    yield data

        try:
            name, size = await self.store.spool_document(chunks(), max_bytes=self.settings.ipp.max_job_bytes)
        except SpoolError as e:  # too large, disk full: the store says which status
            raise DocumentDataError(e.ipp_status, f"Cannot store the document: {e}.") from None
        return name, size, bytes(head)

    def _detected(self, claimed: str, head: bytes) -> str:
        if claimed == "application/octet-stream" and self.detect is not None and head:
            try:
                return self.detect(head)
            except Exception:  # detection is a hint; the printer will still get the bytes
                log.exception("format detection failed")
        return claimed

    async def _discard_body(self, body: AsyncIterator[bytes]) -> None:
        async for _ in body:
            pass

    def _job_response(self, resp: Message, job: Job, ctx: RequestContext, names=JOB_ATTRS_AFTER_CREATE) -> None:
        attrs = {x.name: x for x in self.job_attributes(job, ctx, list(names))}
        resp.add_group(Tag.JOB, [attrs[n] for n in names if n in attrs])

    async def op_print_job(self, req, body, ctx, resp, queue, _job_id, by_reference=False):
        job_attrs, info = self._validate_create(req, queue, ctx, resp, has_document=True,
                                                by_reference=by_reference)
        name, size, head = await self._receive(body, info)
        if size == 0:
            self.store.discard_file(name)
            raise RequestError(Status.BAD_REQUEST, "No document data in request.")
        fmt = self._detected(info["format"], head)
        job = await self.accept_job(queue, user=info["user"], name=info["name"] or info["document_name"],
                                    host=info["host"], attributes=job_attrs,
                                    documents=[Document(1, name, fmt, size, info["document_name"])],
                                    held=info["held"])
        self._job_response(resp, job, ctx)

    async def accept_job(self, queue: str, *, user: str, name: str, host: str, attributes: list[Attribute],
                         documents: list[Document], held: bool = False, extra: dict | None = None,
                         via: str = "IPP") -> Job:
        """A whole job whose documents are spooled: made durable, then handed on (analysis,
        delivery or hold). Every front end (IPP Print-Job, LPD) ends here, so a job is the
        same job whichever protocol brought it."""
        job = self.store.new_job(queue=queue, user=user, name=name, host=host,
                                 attributes=codec.encode_attributes(attributes))
        job.documents.extend(documents)
        job.extra.update(extra or {})
        job.closed = True
        self._set_initial_state(job, held or self._holds(queue))
        await self.store.save(job)
        log.info("job %d received on %s from %s over %s: %s", job.id, queue, job.user, via,
                 ", ".join(f"{d.size} bytes {d.format}" for d in documents))
        self.upstream.wake(queue)
        return job

    async def op_print_uri(self, req, body, ctx, resp, queue, job_id):
        await self.op_print_job(req, body, ctx, resp, queue, job_id, by_reference=True)

    async def op_send_uri(self, req, body, ctx, resp, queue, job_id):
        await self.op_send_document(req, body, ctx, resp, queue, job_id, by_reference=True)

    async def _receive(self, body: AsyncIterator[bytes], info: dict) -> tuple[str, int, bytes]:
        """Spool the request's document data, or fetch the document-uri and spool that."""
        uri = info.get("document_uri")
        if uri is None:
            return await self._spool(body, info["compression"])
        from . import fetch
        try:
            async with fetch.open_uri(uri, schemes=self.settings.ipp.document_uri_schemes,
                                      timeout=self.settings.ipp.idle_timeout) as doc:
                return await self._spool(doc.body, info["compression"])
        except fetch.FetchError as e:
            raise DocumentDataError(e.status, str(e)) from None

    def _holds(self, queue: str) -> bool:
        """A hold queue keeps every job until it is released (Secure Print)."""
        return self.settings.queues[queue].holds

    def _set_initial_state(self, job: Job, held: bool) -> None:
        if held:
            job.state, job.state_reasons = int(JobState.PENDING_HELD), ["job-hold-until-specified"]
        else:
            job.state, job.state_reasons = int(JobState.PENDING), ["none"]

    async def op_validate_job(self, req, body, ctx, resp, queue, _job_id):
        self._validate_create(req, queue, ctx, resp, has_document=True)

    async def op_create_job(self, req, body, ctx, resp, queue, _job_id):
        job_attrs, info = self._validate_create(req, queue, ctx, resp, has_document=False)
        job = self.store.new_job(queue=queue, user=info["user"], name=info["name"], host=info["host"],
                                 attributes=codec.encode_attributes(job_attrs))
        self._set_initial_state(job, info["held"] or self._holds(queue))
        if job.state == JobState.PENDING:
            job.state_reasons = ["job-incoming"]
        job.extra["activity"] = time.time()
        await self.store.save(job)
        self._job_response(resp, job, ctx)

    async def op_send_document(self, req, body, ctx, resp, queue, job_id, by_reference=False):
        job = self._job(queue, job_id, req)
        self._check_owner(job, req)
        op = req.operation
        last_attr = op.get("last-document")
        if last_attr is None:
            raise RequestError(Status.BAD_REQUEST, "Missing required last-document attribute.")
        last = single(last_attr, (Tag.BOOLEAN,), "last-document")
        if job.is_final:
            raise RequestError(Status.NOT_POSSIBLE, f"Job #{job.id} is {JobState(job.state).keyword}.")
        if job.closed:
            raise RequestError(Status.NOT_POSSIBLE, f"Job #{job.id} already has its last document.")
        info = self._document_info(req, self.capabilities(queue), by_reference)
        self._receiving.add(job.id)
        try:
            name, size, head = await self._receive(body, info)
        finally:
            self._receiving.discard(job.id)
            job.extra["activity"] = time.time()
        if job.is_final:  # canceled while the data arrived
            self.store.discard_file(name)
            raise RequestError(Status.JOB_CANCELED, f"Job #{job.id} was canceled.")
        if size:
            job.documents.append(Document(len(job.documents) + 1, name, self._detected(info["format"], head),
                                          size, info["document_name"]))
            if not job.name and info["document_name"]:
                job.name = info["document_name"]
        else:
            self.store.discard_file(name)
            if not last:
                raise RequestError(Status.BAD_REQUEST, "No document data in request.")
        if last:
            self._close(job)
        await self.store.save(job)
        if last:
            log.info("job %d closed on %s: %d document(s)", job.id, queue, len(job.documents))
            self.upstream.wake(queue)
        self._job_response(resp, job, ctx)

    def _close(self, job: Job) -> None:
        job.closed = True
        if not job.documents:
            self._finish(job, JobState.ABORTED, "aborted-by-system", "The job has no documents.")
        elif job.state_reasons == ["job-incoming"]:
            job.state_reasons = ["none"]

    async def op_close_job(self, req, body, ctx, resp, queue, job_id):
        job = self._job(queue, job_id, req)
        self._check_owner(job, req)
        if job.closed or job.is_final:
            raise RequestError(Status.NOT_POSSIBLE, f"Job #{job.id} is already closed.")
        self._close(job)
        await self.store.save(job)
        self.upstream.wake(queue)
        self._job_response(resp, job, ctx)

    # ---- job control ----------------------------------------------------------
    async def op_cancel_job(self, req, body, ctx, resp, queue, job_id):
        job = self._job(queue, job_id, req)
        if job.is_final:
            raise RequestError(Status.NOT_POSSIBLE,
                               f"Job #{job.id} is already {JobState(job.state).keyword} - can't cancel.")
        self._check_owner(job, req)
        await self._cancel(job, "job-canceled-by-user", f"Canceled by {_user(req) or 'the owner'}.")

    async def _cancel(self, job: Job, reason: str, message: str) -> None:
        was_processing = job.state == JobState.PROCESSING
        self._finish(job, JobState.CANCELED, reason, message)
        job.closed = True
        await self.store.save(job)
        log.info("job %d canceled (%s)", job.id, reason)
        if was_processing or job.delivery.phase != "none":
            self._background(self.upstream.cancel, job)

    async def op_cancel_my_jobs(self, req, body, ctx, resp, queue, _job_id):
        user = _user(req)
        if not user:
            raise RequestError(Status.BAD_REQUEST, "Cancel-My-Jobs needs requesting-user-name.")
        ids_attr = req.operation.get("job-ids")
        ids = set(ids_attr.values) if ids_attr is not None else None
        jobs = [j for j in self.store.jobs(queue, which="not-completed", user=user)
                if ids is None or j.id in ids]
        if ids is not None and len(jobs) != len(ids):
            raise RequestError(Status.NOT_POSSIBLE, "Some job-ids are not your pending jobs.", [ids_attr])
        for job in jobs:
            await self._cancel(job, "job-canceled-by-user", f"Canceled by {user}.")

    async def op_hold_job(self, req, body, ctx, resp, queue, job_id):
        job = self._job(queue, job_id, req)
        self._check_owner(job, req)
        if job.state not in (JobState.PENDING, JobState.PENDING_HELD):
            raise RequestError(Status.NOT_POSSIBLE, f"Job #{job.id} is not pending.")
        job.state, job.state_reasons = int(JobState.PENDING_HELD), ["job-hold-until-specified"]
        await self.store.save(job)

    async def op_release_job(self, req, body, ctx, resp, queue, job_id):
        job = self._job(queue, job_id, req)
        self._check_owner(job, req)
        if job.state != JobState.PENDING_HELD:
            raise RequestError(Status.NOT_POSSIBLE, f"Job #{job.id} is not held.")
        if self._holds(queue):  # Secure Print: the owner proves who they are at the printer
            raise RequestError(Status.NOT_POSSIBLE, f"Jobs on {queue} are released at the printer: log in there "
                                                    "with your card, PIN or password.")
        job.state, job.state_reasons = int(JobState.PENDING), ["none"] if job.closed else ["job-incoming"]
        await self.store.save(job)
        self.upstream.wake(queue)

    # ---- queries --------------------------------------------------------------
    async def op_get_job_attributes(self, req, body, ctx, resp, queue, job_id):
        job = self._job(queue, job_id, req)
        requested = _requested(req)
        requested = requested or ["all"]
        resp.add_group(Tag.JOB, _filter_job(self.job_attributes(job, ctx, requested), requested))

    async def op_get_jobs(self, req, body, ctx, resp, queue, _job_id):
        op = req.operation
        which_attr = op.get("which-jobs")
        which = single(which_attr, (Tag.KEYWORD,), "which-jobs") or "not-completed"
        if which not in STATE_KEYWORDS:
            raise RequestError(Status.ATTRIBUTES_OR_VALUES_NOT_SUPPORTED,
                               f'which-jobs "{which}" is not supported.', [which_attr])
        my_jobs = single(op.get("my-jobs"), (Tag.BOOLEAN,), "my-jobs") or False
        limit = single(op.get("limit"), (Tag.INTEGER,), "limit")
        first = single(op.get("first-index"), (Tag.INTEGER,), "first-index") or 1
        user = _user(req)
        if my_jobs and not user:
            raise RequestError(Status.BAD_REQUEST, "my-jobs needs requesting-user-name.")
        states = STATE_KEYWORDS[which]
        jobs = [j for j in self.store.jobs(queue, which="all") if j.state in states]
        if my_jobs:
            jobs = [j for j in jobs if j.user == user]
        ids_attr = op.get("job-ids")
        if ids_attr is not None:
            wanted = set(ids_attr.values)
            jobs = [j for j in jobs if j.id in wanted]
        if which in ("completed", "canceled", "aborted"):
            jobs.sort(key=lambda j: (j.completed or 0, j.id), reverse=True)
        jobs = jobs[max(0, first - 1):]
        if limit is not None and limit > 0:
            jobs = jobs[:limit]
        requested = _requested(req) or list(DEFAULT_JOB_ATTRS)
        for job in jobs:
            resp.add_group(Tag.JOB, _filter_job(self.job_attributes(job, ctx, requested), requested))

    async def op_get_printer_attributes(self, req, body, ctx, resp, queue, _job_id):
        attrs = build_attributes(self.queue_view(queue, ctx))
        resp.add_group(Tag.PRINTER, select(attrs, _requested(req)))

    async def op_identify_printer(self, req, body, ctx, resp, queue, _job_id):
        actions_attr = req.operation.get("identify-actions")
        actions = list(actions_attr.values) if actions_attr is not None else ["display"]
        message = single(req.operation.get("message"), (Tag.TEXT, Tag.TEXT_LANG), "message")
        self._background(self.upstream.identify, queue, actions, message)

    async def op_cups_get_default(self, req, body, ctx, resp, queue, _job_id):
        default = self.settings.default_queue
        if default is None:
            raise RequestError(Status.NOT_FOUND, "No default queue.")
        attrs = build_attributes(self.queue_view(default, ctx))
        resp.add_group(Tag.PRINTER, select(attrs, _requested(req)))

    async def op_cups_get_printers(self, req, body, ctx, resp, queue, _job_id):
        limit = single(req.operation.get("limit"), (Tag.INTEGER,), "limit")
        requested = _requested(req)
        for i, name in enumerate(sorted(self.settings.queues)):
            if limit and i >= limit:
                break
            resp.add_group(Tag.PRINTER, select(build_attributes(self.queue_view(name, ctx)), requested))


HANDLERS: dict[int, Callable] = {
    Op.PRINT_JOB: PrinterService.op_print_job,
    Op.VALIDATE_JOB: PrinterService.op_validate_job,
    Op.PRINT_URI: PrinterService.op_print_uri,
    Op.CREATE_JOB: PrinterService.op_create_job,
    Op.SEND_URI: PrinterService.op_send_uri,
    Op.SEND_DOCUMENT: PrinterService.op_send_document,
    Op.CLOSE_JOB: PrinterService.op_close_job,
    Op.CANCEL_JOB: PrinterService.op_cancel_job,
    Op.CANCEL_MY_JOBS: PrinterService.op_cancel_my_jobs,
    Op.HOLD_JOB: PrinterService.op_hold_job,
    Op.RELEASE_JOB: PrinterService.op_release_job,
    Op.GET_JOB_ATTRIBUTES: PrinterService.op_get_job_attributes,
    Op.GET_JOBS: PrinterService.op_get_jobs,
    Op.GET_PRINTER_ATTRIBUTES: PrinterService.op_get_printer_attributes,
    Op.IDENTIFY_PRINTER: PrinterService.op_identify_printer,
    Op.CUPS_GET_DEFAULT: PrinterService.op_cups_get_default,
    Op.CUPS_GET_PRINTERS: PrinterService.op_cups_get_printers,
}
URI_OPS = frozenset({Op.PRINT_URI, Op.SEND_URI})
# Operations whose request may carry document data; the others' bodies are discarded.
DOCUMENT_OPS = frozenset({Op.PRINT_JOB, Op.SEND_DOCUMENT})


def _int(s: str) -> int | None:
    return int(s) if s.isdigit() else None


def _user(req: Message) -> str:
    attr = req.operation.get("requesting-user-name")
    if attr is None or attr.is_out_of_band() or not attr.values:
        return ""
    v = attr.value
    return str(getattr(v, "text", v))


def _requested(req: Message) -> list[str] | None:
    attr = req.operation.get("requested-attributes")
    if attr is None:
        return None
    return [v for v in attr.values if isinstance(v, str)]


def _filter_job(attrs: list[Attribute], requested: list[str]) -> list[Attribute]:
    req = set(requested)
    if "all" in req:
        return attrs
    keep = []
    for attr in attrs:
        if attr.name in req:
            keep.append(attr)
        elif "job-template" in req and attr.name in printer_mod.JOB_TEMPLATE_NAMES:
            keep.append(attr)
        elif "job-description" in req and attr.name not in printer_mod.JOB_TEMPLATE_NAMES:
            keep.append(attr)
    return keep


def _job_template(job: Job) -> list[Attribute]:
    if not job.attributes:
        return []
    try:
        return codec.decode_attributes(job.attributes)
    except codec.CodecError:
        log.warning("job %d has unreadable stored attributes", job.id)
        return []


def _unsupported_copies(attrs: list[Attribute]) -> list[Attribute]:
    out = []
    for attr in attrs:
        if attr is None:
            continue
        out.append(Attribute(attr.name, attr.tag, list(attr.values), attr.value_tags))
    return out
