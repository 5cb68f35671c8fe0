"""What every delivery backend shares: the printer status record, the outcome of a
delivery, the errors a backend raises, the context the worker hands it, and
reading a spooled document in chunks.

A backend is one printer (one queue's ``printer = ...`` URI). The queue's worker
calls ``deliver(job, ctx)`` for one job at a time; the backend records its progress
in ``job.delivery`` / ``job.extra["upstream"]`` and saves the job (``ctx.save``)
at every point a crash must not forget, so that calling ``deliver`` again on the
same job - after a lost printer or a restart - resumes without sending twice what
the printer has already accepted.
"""
from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass, field
from typing import Any, AsyncIterator
from urllib.parse import urlsplit

import trio

from ..config import QueueSettings
from ..ipp.model import JobState, PrinterState
from ..ipp.types import Group
from ..spool.errors import SpoolError
from ..spool.job import Document, Job
from .backoff import Backoff

log = logging.getLogger("spoolproxy.upstream")

READ_CHUNK = 256 << 10


@dataclass
class PrinterStatus:
    """What the proxy knows about the printer behind a queue right now.

    ``attributes`` is the upstream printer's printer-attributes group as its last
    successful Get-Printer-Attributes returned it (IPP printers only; kept while the
    printer is unreachable so that clients still see its media and options). None for
    AppSocket and folder printers: the IPP server supplies a generic description.
    ``reachable`` is None until the first poll or delivery attempt said either way.
    ``updated`` is the unix time of the last change.
    """

    state: int = PrinterState.IDLE
    reasons: list[str] = field(default_factory=lambda: ["none"])
    message: str = ""
    attributes: Group | None = None
    reachable: bool | None = None
    updated: float = 0.0
    snmp: Any = None  # snmp.SnmpStatus of the last SNMP poll (None: no SNMP for this printer)


@dataclass
class PollResult:
    """A backend's answer to a status poll (state as the printer reports it)."""

    state: int = PrinterState.IDLE
    reasons: list[str] = field(default_factory=lambda: ["none"])
    message: str = ""
    attributes: Group | None = None


@dataclass
class Outcome:
    """How the printer finished a job: COMPLETED, ABORTED or CANCELED, with the
    job-state-reasons and job-state-message the proxy job should show."""

    state: int
    reasons: list[str]
    message: str = ""
    impressions: int | None = None


class DeliveryError(Exception):
    """Base of the errors a backend raises from deliver/poll/cancel."""


class PrinterOffline(DeliveryError):
    """The printer cannot be reached (or does not answer usably) right now: the job
    goes back to pending and the queue retries with back-off.

    ``maybe_received``: False when it is certain that no byte of the last request
    reached the printer (the connection was never made)."""

    def __init__(self, message: str, *, maybe_received: bool = True) -> None:
        super().__init__(message)
        self.maybe_received = maybe_received


class JobRejected(DeliveryError):
    """The printer refused this job for a reason that sending it again will not
    change (bad format, unsupported attributes, ...): the job is aborted."""

    def __init__(self, message: str, reasons: list[str] | None = None) -> None:
        super().__init__(message)
        self.reasons = reasons or ["aborted-by-system"]


class DeliveryContext:
    """What the worker lends a backend for one delivery."""

    def __init__(self, queue: str, settings: QueueSettings, store: Any, *,
                 follow_interval: float = 1.0) -> None:
        self.queue = queue
        self.settings = settings
        self.store = store
        self.follow_interval = follow_interval

    async def save(self, job: Job) -> None:
        """Make the job's bookkeeping durable before the next step."""
        await self.store.save(job)

    @staticmethod
    def canceled(job: Job) -> bool:
        """The server canceled the job (or it ended otherwise) while we worked on it."""
        return job.state == JobState.CANCELED or JobState(job.state).is_final

    def backoff(self) -> Backoff:
        return Backoff(self.settings.retry_initial, self.settings.retry_max)

    @contextlib.asynccontextmanager
    async def document(self, doc: Document) -> AsyncIterator[AsyncIterator[bytes]]:
        """``async with ctx.document(doc) as chunks``: the spooled bytes, read in a
        worker thread chunk by chunk (never the whole file in memory)."""
        async with read_document(self.store, doc) as chunks:
            yield chunks


def printer_address(uri: str, default_port: int) -> tuple[str, int, str]:
    """(host, port, path) of a socket:// or lpd:// printer URI; ValueError without a host."""
    parts = urlsplit(uri)
    if not parts.hostname:
        raise ValueError(f"{parts.scheme} printer URI has no host: {uri!r}")
    return parts.hostname, parts.port or default_port, parts.path


@contextlib.asynccontextmanager
async def read_document(store: Any, doc: Document,
                        chunk_size: int = READ_CHUNK) -> AsyncIterator[AsyncIterator[bytes]]:
    f = store.open_document(doc)  # raises DocumentMissing
    if hasattr(f, "__await__"):
        f = await f

    async def chunks() -> AsyncIterator[bytes]:
        while True:
            try:
                data = await trio.to_thread.run_sync(f.read, chunk_size)
            except OSError as e:
                raise SpoolError(f"cannot read spool file {doc.path}: {e.strerror or e}") from e
            if not data:
                return
            yield data

    gen = chunks()
    try:
        yield gen
    finally:
        await gen.aclose()
        f.close()


def progress(job: Job) -> dict[str, Any]:
    """The backend's per-job progress record, kept in ``job.extra["upstream"]`` (saved
    with the job): ``docs_done`` documents fully delivered, ``impressions`` counted by
    upstream jobs already finished, ``mode`` of an IPP delivery."""
    p = job.extra.get("upstream")
    if not isinstance(p, dict):
        p = job.extra["upstream"] = {}
    return p


class Backend:
    """One printer. Subclasses implement deliver; the rest have sensible defaults."""

    kind = "printer"
    #: the poller calls poll() every poll_interval
    polls = False
    #: poll() returns the printer's own state (else the queue shows idle/processing
    #: by the proxy's own activity)
    reports_state = False

    def __init__(self, uri: str, settings: QueueSettings) -> None:
        self.uri = uri
        self.settings = settings

    async def deliver(self, job: Job, ctx: DeliveryContext) -> Outcome:
        """Hand the job to the printer and see it through to a final state.

        Returns the Outcome; raises PrinterOffline (retry later, resumable) or
        JobRejected (abort). Returns early (any Outcome; the worker ignores it) if
        ``ctx.canceled(job)`` becomes true."""
        raise NotImplementedError

    async def poll(self) -> PollResult | None:
        """The printer's state now; None when this backend cannot tell without
        printing. Raises PrinterOffline if it cannot be reached."""
        await trio.lowlevel.checkpoint()
        return None

    async def probe(self) -> None:
        """Cheap reachability check used while the printer is marked offline and no
        delivery is running. Raises PrinterOffline."""
        await trio.lowlevel.checkpoint()

    async def cancel_upstream(self, job: Job) -> None:
        """Make sure the printer will not print (more of) this job, which the
        server has canceled. Raises PrinterOffline if that cannot be done now."""
        await trio.lowlevel.checkpoint()

    async def identify(self, actions: list[str], message: str | None) -> None:
        await trio.lowlevel.checkpoint()

    async def aclose(self) -> None:
        await trio.lowlevel.checkpoint()
