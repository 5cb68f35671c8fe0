"""The analysis stage of the job path: every closed job's documents go through the
document engine (spoolproxy.pdl) before the job can be delivered or released.

It runs the engine in worker processes (trio-parallel): the scanners are partly
compiled Python that holds the GIL, and in the node's own process they would take
the CPU that answers clients; in another process they use the other core, at a
lower priority (niced) so that a burst of clients still wins the CPU, and a
scanner that crashes on a hostile document takes down only its worker. It stores a compact summary on each document record:
totals plus the pages grouped by kind (colour, sides, media, copies), which is
what the cost model needs and stays small however the pages alternate. A
document the engine cannot count is handled as its queue's ``uncountable``
setting says: printed and flagged, held for an administrator, or cancelled; it is
never silently free or silently lost (DESIGN.md, Conventions).
"""
from __future__ import annotations

import contextlib
import hashlib
import functools
import logging
import os
import time
from typing import Any, Callable, Mapping

import trio
import trio_parallel

from .. import pdl
from ..ipp.model import JobState
from .job import Job, job_totals, record_stage
from .store import JobStore

log = logging.getLogger("spoolproxy.analysis")

__all__ = ["Analyzer", "summary", "job_totals", "MAX_KINDS"]

MAX_KINDS = 64  # distinct page kinds kept per document; the rest are merged without media
HELD_REASON = "job-held-for-review"
WORKER_NICE = 10  # added to the workers' niceness


def summary(a: pdl.Analysis) -> dict[str, Any]:
    """A msgpack-able digest of an Analysis for the job record."""
    kinds: dict[tuple, int] = {}
    for r in a.runs:
        key = (r.color, r.sides, r.media, r.copies)
        kinds[key] = kinds.get(key, 0) + r.count
    if len(kinds) > MAX_KINDS:
        merged: dict[tuple, int] = {}
        for (color, sides, _media, copies), n in kinds.items():
            merged[(color, sides, None, copies)] = merged.get((color, sides, None, copies), 0) + n
        kinds = merged
    return {
        "format": a.format,
        "claimed": a.claimed,
        "mismatch": a.format_mismatch,
        "pages": a.pages,
        "impressions": a.impressions,
        "color_impressions": a.color_impressions,
        "sheets": a.sheets,
        "undecided": a.undecided_pages,
        "kinds": [[n, color, sides, list(media) if media else None, copies]
                  for (color, sides, media, copies), n in kinds.items()],
        "warnings": list(a.warnings[:10]),
        "account": a.account,
    }


def _background() -> bool:
    """A worker's init: below the node's priority, so that answering clients wins
    the CPU over counting pages of jobs already safe on disk (Ghostscript inherits it)."""
    try:
        os.nice(WORKER_NICE)
    except OSError:
        pass
    return True


def _failure(e: BaseException) -> dict[str, Any]:
    return {"error": str(e) or type(e).__name__, "kind": type(e).__name__}


class Analyzer:
    """Runs the document engine over jobs as they close (and, at start, over the
    ones a previous run did not finish)."""

    def __init__(self, store: JobStore, queues: Mapping[str, Any], *, workers: int = 1,
                 processes: bool = True, on_ready: Callable[[str], None] | None = None,
                 admission: Any = None):
        """``processes=False`` runs the engine in threads of this process (tests).
        ``on_ready(queue)`` is called when an analysed job of ``queue`` may be
        delivered (the upstream service's wake). ``admission`` (policy.admission)
        decides on each counted job - who pays, filters, conversions, credit -
        before it is saved as analysed."""
        self.store = store
        self.admission = admission
        self.on_ready = on_ready
        self.queues = queues
        self.workers = workers
        self.processes = processes
        self._context: trio_parallel.WorkerContext | None = None
        self._in_flight: set[int] = set()

    async def run(self, *, task_status=trio.TASK_STATUS_IGNORED) -> None:
        limiter = trio.CapacityLimiter(self.workers)
        async with contextlib.AsyncExitStack() as stack:
            if self.processes:
                self._context = await stack.enter_async_context(
                    trio_parallel.open_worker_context(idle_timeout=300.0, grace_period=5.0,
                                                      init=_background))
            nursery = await stack.enter_async_context(trio.open_nursery())
            task_status.started()
            while True:
                # as many jobs in flight as there are workers, oldest first; a backlog of
                # thousands is walked only as far as the first free ones
                if len(self._in_flight) < self.workers:
                    for job in self.store.iter_unanalyzed():
                        if job.id not in self._in_flight:
                            self._in_flight.add(job.id)
                            nursery.start_soon(self._job, job, limiter)
                            if len(self._in_flight) >= self.workers:
                                break
                await self.store.wait_changed()

    async def _job(self, job: Job, limiter: trio.CapacityLimiter) -> None:
        try:
            await self.analyze_job(job, limiter)
        finally:
            self._in_flight.discard(job.id)
            self.store.notify()  # a worker is free: the run loop picks the next job

    async def analyze_job(self, job: Job, limiter: trio.CapacityLimiter | None = None) -> None:
        q = self.queues.get(job.queue)
        ghostscript = getattr(q, "ghostscript", True)
        timeout = getattr(q, "analysis_timeout", pdl.engine.GS_TIMEOUT)
        for doc in job.documents:
            if doc.analysis is not None:
                continue
            path = self.store.path(doc)
            run = functools.partial(_analyze, path, doc.format, ghostscript, timeout)
            t0 = time.perf_counter()
            doc.analysis = await self._run(run, limiter)
            a = doc.analysis
            if "error" in a:
                log.warning("job %d document %d: cannot count it (%s: %s)", job.id, doc.number,
                            a["kind"], a["error"])
            else:
                log.info("job %d document %d: %s, %d page(s), %d colour impression(s)%s in %.1f ms",
                         job.id, doc.number, a["format"], a["pages"], a["color_impressions"],
                         f" (claimed {a['claimed']})" if a["mismatch"] else "",
                         (time.perf_counter() - t0) * 1000)
        if self.store.get(job.id) is not job:  # deleted (purged) meanwhile
            return
        job.analyzed = True
        record_stage(job, "analysed", time.time())
        failed = [d for d in job.documents if "error" in (d.analysis or {})]
        if failed and not job.is_final:
            self._uncountable(job, failed, getattr(q, "uncountable", "print"))
        if self.admission is not None and not job.is_final:
            t0 = time.perf_counter()
            await self.admission.admit(job, functools.partial(self._call, limiter=limiter))
            record_stage(job, "admit_ms", (time.perf_counter() - t0) * 1000)
        replaced = job.extra.pop("replaced_files", [])
        await self.store.save(job)
        for name in replaced:  # the originals of converted documents (recover() would too)
            self.store.discard_file(name)
        if self.on_ready is not None and job.state == JobState.PENDING:
            self.on_ready(job.queue)

    async def _run(self, run, limiter: trio.CapacityLimiter | None) -> dict[str, Any]:
        if self._context is None:
            return await trio.to_thread.run_sync(run, limiter=limiter)
        try:
            return await self._context.run_sync(run, kill_on_cancel=True, limiter=limiter)
        except trio_parallel.BrokenWorkerError as e:
            log.error("the document engine's worker died on %s: %s", run.args[0], e)
            return {"error": "the document engine crashed on this document", "kind": "EngineCrash"}

    async def convert(self, fn, *args) -> Any:
        """fn(*args) in a document-engine worker (a release's conversions)."""
        return await self._call(fn, *args)

    async def _call(self, fn, *args, limiter: trio.CapacityLimiter | None = None) -> Any:
        """fn(*args) in a worker (conversions); a worker that dies is a ConversionError."""
        if self._context is None:
            return await trio.to_thread.run_sync(fn, *args, limiter=limiter)
        try:
            return await self._context.run_sync(fn, *args, kill_on_cancel=True, limiter=limiter)
        except trio_parallel.BrokenWorkerError as e:
            raise pdl.ConversionError(f"the document engine crashed ({e})") from None

    @staticmethod
    def _uncountable(job: Job, failed, mode: str) -> None:
        why = "; ".join(f"document {d.number}: {d.analysis['error']}" for d in failed)
        if mode == "cancel":
            job.state = JobState.ABORTED
            job.state_reasons = ["document-unprintable-error"]
            job.state_message = f"The pages could not be counted ({why}); the job was cancelled."
            job.completed = time.time()
        elif mode == "hold":
            job.state = JobState.PENDING_HELD
            job.state_reasons = [HELD_REASON]
            job.state_message = f"The pages could not be counted ({why}); held for an administrator."
        else:
            job.extra["uncounted"] = why  # printed, and flagged for the administrator


def _analyze(path, claimed: str, ghostscript: bool, timeout: float) -> dict[str, Any]:
    """In a worker thread: the summary, or a failure record. A bug in a scanner
    must not take the node down on a hostile document: it is recorded and logged."""
    try:
        result = summary(pdl.analyze(path, claimed=claimed, ghostscript=ghostscript, gs_timeout=timeout))
        result["sha256"] = _sha256(path)  # what duplicate detection compares
        return result
    except (pdl.PdlError, OSError) as e:
        return _failure(e)
    except Exception as e:  # noqa: BLE001 - see the docstring
        log.exception("the document engine failed on %s", path)
        return _failure(e)


def _sha256(path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()
