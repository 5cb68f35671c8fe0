"""LPD (RFC 1179) printers and print servers: ``lpd://host[:port]/queue`` (port 515).

One connection per job: the receive-job command for the queue, each document as one
data file with print letter ``l`` (raw: the proxy sends the bytes the printer should
print, already converted), then the control file - user (P), host (H), job name (J),
each document's name (N) and print line, repeated once per copy when the job's IPP
``copies`` attribute asks for more than one (the receiver prints a file as often as
the control file names it). The file names are ``cfA``/``dfA``... + the job number
(job id mod 1000) + this node's host name. A job of more than 52 documents (the
letters A-Z, a-z) goes as several LPD jobs of at most 52. Empty documents are not
sent: a data file of 0 bytes means "until the connection closes" to LPRng.

Exactly-once: the receiver commits a job when it acknowledges the control file, which
is sent last, so a delivery broken before that leaves nothing on the receiver and is
resent whole. ``job.extra["upstream"]["docs_done"]`` records the documents of LPD jobs
already acknowledged (saved after each), so only a job of more than 52 documents has
anything to skip on a retry. The remaining window - the receiver committed the job
but its acknowledgement of the control file never reached us - is at-least-once, as
with AppSocket; the protocol has no way to ask about a job by an identity of ours.

Refusals: a negative acknowledgement of the receive-job command (the daemon has no
such queue, or refuses us) aborts the job - sending again will not change it; a
refused file (the daemon is out of space, or busy) is a printer that cannot take the
job now: retried with back-off.
"""
from __future__ import annotations

import re
import socket
from urllib.parse import unquote

import trio

from ..ipp.codec import CodecError, decode_attributes
from ..ipp.model import JobState
from ..lpd import client, protocol
from ..spool.errors import SpoolError
from ..spool.job import Document, Job
from .base import Backend, DeliveryContext, JobRejected, Outcome, PrinterOffline, printer_address, progress

DEFAULT_PORT = client.DEFAULT_PORT
LETTER = "l"  # raw: print the bytes as they are
MAX_HOST = 31  # RFC 1179 §7.2: the H line holds at most 31 octets


def local_host_name(name: str | None = None) -> str:
    """This node's host name as the control file and the file names carry it: letters,
    digits, '.', '-' only, at most 31 characters ("spoolproxy" if nothing is left)."""
    text = re.sub(r"[^A-Za-z0-9.-]", "", name if name is not None else socket.gethostname())
    return text[:MAX_HOST].strip(".-") or "spoolproxy"


def job_copies(job: Job) -> int:
    """The job's IPP "copies" (1 when it has none, or an unusable one)."""
    if not job.attributes:
        return 1
    try:
        attrs = decode_attributes(job.attributes)
    except CodecError:
        return 1
    for a in attrs:
        if a.name == "copies" and a.values:
            v = a.values[0]
            if isinstance(v, int) and not isinstance(v, bool) and v > 0:
                return v
            break
    return 1


def batches(docs: list[Document]) -> list[list[Document]]:
    """The documents in LPD jobs of at most 52 non-empty ones (empty ones ride along
    unsent, so that ``docs_done`` passes them too)."""
    out: list[list[Document]] = [[]]
    for doc in docs:
        if doc.size and sum(1 for d in out[-1] if d.size) == protocol.MAX_DATA_FILES:
            out.append([])
        out[-1].append(doc)
    return out if out[0] else []


class LpdBackend(Backend):
    kind = "lpd"

    def __init__(self, uri: str, settings, *, local_host: str | None = None) -> None:
        super().__init__(uri, settings)
        self.host, self.port, path = printer_address(uri, DEFAULT_PORT)
        self.queue = unquote(path).strip("/")
        protocol.command(protocol.Command.RECEIVE_JOB, self.queue)  # ValueError: no queue, or spaces in it
        self.timeout = settings.timeout
        self.local_host = local_host_name(local_host)

    async def deliver(self, job: Job, ctx: DeliveryContext) -> Outcome:
        prog = progress(job)
        done = int(prog.get("docs_done", 0))
        todo = batches(job.documents[done:])
        for batch in todo:
            if ctx.canceled(job):
                break
            if job.delivery.phase != "sending":
                job.delivery.phase = "sending"
                await ctx.save(job)
            await self._send_job(job, batch, ctx)
            prog["docs_done"] = batch[-1].number
            if batch is not todo[-1]:  # after the last one the worker saves the outcome
                await ctx.save(job)
        return Outcome(JobState.COMPLETED, ["job-completed-successfully"])

    async def _send_job(self, job: Job, docs: list[Document], ctx: DeliveryContext) -> None:
        """One LPD job on one connection; returns when the receiver has it."""
        # the first batch carries the job's own number; later ones (jobs over 52
        # documents) differ, so that a receiver never sees two jobs of one name
        number = (job.id + docs[0].number - 1) % 1000
        docs = [d for d in docs if d.size]
        if not docs:
            return
        copies = job_copies(job)
        names = protocol.file_names(number, self.local_host, len(docs))
        control = protocol.build_control(
            host=self.local_host, user=job.user or "anonymous", job_name=job.name or "",
            files=[(LETTER, name, copies, doc.name or job.name or "") for name, doc in zip(names[1:], docs)])

        def opener(doc: Document):
            return lambda: ctx.document(doc)

        data = [(name, doc.size, opener(doc)) for name, doc in zip(names[1:], docs)]
        try:
            await client.send_job(self.host, self.port, self.queue, control=control, control_name=names[0],
                                  data=data, timeout=self.timeout)
        except client.LpdRefused as e:
            if e.step == "job":
                raise JobRejected(f"the LPD daemon refused queue {self.queue!r}"
                                  + (f": {e.detail}" if e.detail else f" (code {e.code})")) from None
            # nothing is committed before the control file: the whole job goes again later
            raise PrinterOffline(f"printer refused the job for now: {e}") from None
        except client.LpdUnreachable as e:
            raise PrinterOffline(f"cannot reach printer: {e}" if not e.connected else str(e),
                                 maybe_received=e.connected) from None
        except SpoolError as e:
            raise JobRejected(f"document: {e}", ["document-access-error"]) from None
        except client.LpdError as e:  # a spool file that is not the size recorded
            raise JobRejected(str(e), ["document-access-error"]) from None

    async def probe(self) -> None:
        """Connect and close without a command (nothing for the daemon to do)."""
        try:
            stream = await client.open_connection(self.host, self.port, self.timeout)
        except client.LpdUnreachable as e:
            raise PrinterOffline(f"cannot reach printer: {e}", maybe_received=False) from None
        await trio.aclose_forcefully(stream)
