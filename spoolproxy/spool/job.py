"""The spool job record: what the node knows about one job, durable in LMDB.

Records are msgpack maps with a schema version ("v"); ``to_record``/``from_record``
are the only place that knows the layout.
"""
from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field
from typing import Any

from ..ipp.model import JobState

SCHEMA_VERSION = 1
_FINAL = int(JobState.CANCELED)  # canceled, aborted and completed are final


@dataclass(slots=True)
class Document:
    number: int  # 1-based document-number
    path: str  # spool file name, relative to the spool directory
    format: str  # document-format as claimed (or detected) - MIME type
    size: int  # bytes stored (after decompression)
    name: str = ""  # document-name
    # what the document engine found (spool.analysis.summary), None until analysed
    analysis: dict[str, Any] | None = None


@dataclass(slots=True)
class Delivery:
    """Progress of handing the job to the upstream printer (exactly-once bookkeeping).

    phase: "none" (not started), "creating" (upstream Create-Job/Print-Job sent, no
    answer recorded yet), "sending" (upstream job known, data being sent),
    "sent" (printer has the whole job; follow it to a final state), "done".
    """

    phase: str = "none"
    upstream_job_id: int = 0
    upstream_job_uri: str = ""
    attempts: int = 0
    last_error: str = ""
    next_attempt: float = 0.0  # unix time before which no retry is made


@dataclass(slots=True)
class Job:
    id: int
    queue: str
    uuid: str
    user: str  # job-originating-user-name
    name: str = ""  # job-name
    host: str = ""  # job-originating-host-name
    state: int = JobState.PENDING
    state_reasons: list[str] = field(default_factory=lambda: ["none"])
    state_message: str = ""
    created: float = field(default_factory=time.time)
    processing: float | None = None
    completed: float | None = None
    # job template and description attributes from the request, IPP-encoded
    # (codec.encode_attributes) so that any value type round-trips exactly.
    attributes: bytes = b""
    documents: list[Document] = field(default_factory=list)
    closed: bool = False  # no more documents will come (Print-Job, last-document, Close-Job)
    analyzed: bool = False  # every document has been through the document engine
    delivery: Delivery = field(default_factory=Delivery)
    impressions_completed: int = 0
    k_octets: int = 0
    extra: dict[str, Any] = field(default_factory=dict)  # room for later capabilities
    # the queue whose printer delivers the job: "" is the job's own queue; a Find-Me job
    # gets the printer it was released at
    target: str = ""

    @property
    def printer_queue(self) -> str:
        return self.target or self.queue

    @property
    def is_final(self) -> bool:
        return self.state >= _FINAL  # a plain int compare: this runs for every job in every scan

    def to_record(self) -> dict[str, Any]:
        # by hand: dataclasses.asdict deep-copies and costs half of every save
        d = {f: getattr(self, f) for f in _JOB_FIELDS}
        d["state_reasons"] = list(self.state_reasons)
        d["documents"] = [{f: getattr(doc, f) for f in _DOC_FIELDS} for doc in self.documents]
        d["delivery"] = {f: getattr(self.delivery, f) for f in _DELIVERY_FIELDS}
        d["extra"] = dict(self.extra)
        d["v"] = SCHEMA_VERSION
        return d

    @classmethod
    def from_record(cls, rec: dict[str, Any]) -> "Job":
        rec = dict(rec)
        v = rec.pop("v", SCHEMA_VERSION)
        if v != SCHEMA_VERSION:
            raise ValueError(f"job record schema {v} is not {SCHEMA_VERSION}")
        rec["documents"] = [Document(**d) for d in rec.get("documents", [])]
        rec["delivery"] = Delivery(**rec.get("delivery", {}))
        return cls(**rec)


_JOB_FIELDS = tuple(f.name for f in dataclasses.fields(Job))
_DOC_FIELDS = tuple(f.name for f in dataclasses.fields(Document))
_DELIVERY_FIELDS = tuple(f.name for f in dataclasses.fields(Delivery))


def record_stage(job: Job, name: str, value: float) -> None:
    """Note when a stage of the job path ended (unix time) or how long it took (ms), in
    ``job.extra["stages"]``: saved with the job, shown by ``jobs show``, read by the
    load test for its per-stage latencies. Recorded only the first time (a job
    re-admitted or re-delivered after a restart keeps its first figures)."""
    job.extra.setdefault("stages", {}).setdefault(name, round(value, 6))


def job_totals(job: Job) -> dict[str, int] | None:
    """pages, impressions, color_impressions and sheets of the whole job (document
    copies included, IPP copies not), or None while any document is not counted."""
    totals = {"pages": 0, "impressions": 0, "color_impressions": 0, "sheets": 0}
    for doc in job.documents:
        a = doc.analysis
        if not a or "error" in a:
            return None
        for k in totals:
            totals[k] += int(a.get(k, 0))
    return totals
