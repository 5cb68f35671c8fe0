"""The delivery service: one worker and one poller per queue, in one nursery.

Worker (per queue): takes the queue's jobs one at a time - first any job a previous
run left in flight, then ``store.deliverable(queue)`` in id order - and hands each to
the queue's backend. One job at a time per printer (printers print serially, and
ippeveprinter answers server-error-busy to a second job anyway); each queue has its
own task, so one printer's trouble never delays another queue.

Job states the worker writes (RFC 8011 §5.3.7/5.3.8):

* start:        PROCESSING, ["job-printing"], ``processing`` time
* printer down: PENDING, ["printer-stopped"], "cannot reach printer: ..." - the queue
                goes STOPPED/["offline-report"], retries with back-off, and keeps
                accepting jobs (they stay pending). ``job.delivery`` keeps the phase,
                so the retry resumes rather than restarts.
* rejected:     ABORTED with the printer's status-message, e.g.
                ["unsupported-document-format"]
* done:         COMPLETED (or what the printer's own job ended as), ``completed`` time,
                impressions_completed, delivery phase "done"

A job the server cancels is never completed or redelivered by the worker: an
in-flight delivery is aborted (cancel scope) and the upstream job, if the printer
has one, is canceled; when the printer cannot be reached that cancel is retried
(also after a restart: a CANCELED job whose delivery phase is not "none"/"done"
still needs it).
"""
from __future__ import annotations

import logging
import math
import time
from dataclasses import replace
from typing import Any
from urllib.parse import urlsplit

import trio

from ..config import QueueSettings, Settings
from ..ipp.model import JobState, PrinterState
from ..spool.errors import SpoolError
from ..spool.job import Delivery, Job, record_stage
from .backoff import Backoff
from .base import (Backend, DeliveryContext, JobRejected, Outcome, PollResult, PrinterOffline,
                   PrinterStatus)

log = logging.getLogger("spoolproxy.upstream")

STARTUP_POLL_WAIT = 2.0  # run() reports started at most this long after the first polls began
IDLE_RECHECK = 5.0  # an idle worker looks at the store this often even without wake()
CANCEL_WAIT_EXTRA = 5.0
IN_FLIGHT = (JobState.PROCESSING, JobState.PROCESSING_STOPPED)
UPSTREAM_CANCEL_PHASES = ("creating", "sending", "sent")


def make_backend(settings: Settings, queue: str) -> Backend:
    qs = settings.queues[queue]
    scheme = qs.printer.split(":", 1)[0].lower()
    if scheme in ("ipp", "ipps", "http", "https"):
        from .ipp import IppBackend
        return IppBackend(qs.printer, qs)
    if scheme == "socket":
        from .socket import SocketBackend
        return SocketBackend(qs.printer, qs)
    if scheme == "lpd":
        from .lpd import LpdBackend
        return LpdBackend(qs.printer, qs)
    if scheme == "folder":
        from .folder import FolderBackend
        return FolderBackend(qs.printer, qs, settings.folder_path(queue), fsync=settings.node.fsync)
    raise ValueError(f"queue {queue!r}: no delivery backend for {qs.printer!r}")


class Lane:
    """One queue: its backend, status, worker and poller."""

    def __init__(self, name: str, qs: QueueSettings, store: Any, backend: Backend, *,
                 follow_interval: float = 1.0, charger: Any = None, snmp: Any = None) -> None:
        self.name = name
        self.snmp = snmp  # snmp.SnmpPrinter, or None when the queue has no [snmp]
        self.snmp_status: Any = None  # its last SnmpStatus
        self.charger = charger  # ledger.charge.Charger: debits each job as it goes out
        self.qs = qs
        self.store = store
        self.backend = backend
        self.ctx = DeliveryContext(name, qs, store, follow_interval=follow_interval)
        self.status = PrinterStatus(updated=time.time())
        self.backoff = Backoff(qs.retry_initial, qs.retry_max)
        self.retry_at = -math.inf  # trio clock; no delivery attempt before it
        self.offline = False
        self.last_poll: PollResult | None = None
        self.wake_event = trio.Event()
        self.poll_event = trio.Event()
        self.first_poll = trio.Event()
        self.current: Job | None = None
        self.current_scope: trio.CancelScope | None = None
        self.cancels: dict[int, Job] = {}  # canceled jobs whose upstream side is still to cancel
        self.cancel_done: dict[int, trio.Event] = {}
        self.resume: list[Job] = []  # jobs a previous run left in flight
        # jobs put back to pending part-way through a delivery (printer went down): they
        # go before anything new; kept here so picking a job never scans the queue
        self.interrupted: dict[int, Job] = {}

    # -- status --

    def _set_status(self, state: int, reasons: list[str], message: str, *,
                    reachable: bool | None, attributes: Any = ...) -> None:
        st = self.status
        st.state, st.reasons, st.message, st.reachable = int(state), list(reasons), message, reachable
        if attributes is not ...:
            st.attributes = attributes
        st.updated = time.time()

    def view(self) -> PrinterStatus:
        """The printer's status as clients and the release side see it: what delivery and
        the printer's own protocol say, with what its SNMP agent reports on top (a jam or
        an empty toner stops it even when the queue itself is idle). An agent that does not
        answer changes nothing here: its state shows as unknown in ``snmp``."""
        st, snmp = self.status, self.snmp_status
        if snmp is None:
            return st
        view = replace(st, snmp=snmp)
        if snmp.state != "ok" or st.reachable is False:
            return view
        reasons = [r for r in st.reasons if r != "none"]
        reasons += [r for r in snmp.reasons if r not in reasons]
        view.reasons = reasons or ["none"]
        if any(r.endswith("-error") for r in snmp.reasons) or snmp.printer_state == PrinterState.STOPPED:
            view.state = PrinterState.STOPPED
            view.message = "printer reports " + ", ".join(snmp.reasons or ["that it is down"])
        elif st.state == PrinterState.IDLE and snmp.printer_state == PrinterState.PROCESSING:
            view.state = PrinterState.PROCESSING
        view.updated = max(st.updated, snmp.updated)
        return view

    def _idle_state(self) -> int:
        return PrinterState.PROCESSING if self.current is not None else PrinterState.IDLE

    def _apply_poll(self, result: PollResult | None) -> None:
        """A successful poll (or probe): the printer's own state for IPP printers,
        idle/processing by our own activity for the others."""
        if result is not None and self.backend.reports_state:
            self.last_poll = result
            self._set_status(result.state, result.reasons, result.message, reachable=True,
                             attributes=result.attributes)
        else:
            self._set_status(self._idle_state(), ["none"], "", reachable=True)

    def went_offline(self, error: BaseException) -> float:
        """A delivery step failed to reach the printer: mark the queue stopped and
        schedule the next attempt with back-off; returns the delay."""
        delay = self.backoff.next()
        self.retry_at = trio.current_time() + delay
        if not self.offline:
            log.warning("queue %s: printer %s not answering (%s); retrying in %.0f s",
                        self.name, self.qs.printer, error, delay)
        else:
            log.debug("queue %s: printer still not answering (%s); retrying in %.1f s",
                      self.name, error, delay)
        self.offline = True
        self._set_status(PrinterState.STOPPED, ["offline-report"], _offline_text(error),
                         reachable=False)
        return delay

    def came_online(self, *, delivered: bool) -> None:
        """The printer answered. ``delivered``: a delivery step succeeded (resets the
        back-off); otherwise only a poll answered, which makes the worker try again
        now but keeps the back-off growing should that attempt fail again."""
        if delivered:
            self.backoff.reset()
        if self.offline:
            log.info("queue %s: printer %s answers again", self.name, self.qs.printer)
            self.offline = False
            self.retry_at = -math.inf
            self._apply_poll(self.last_poll)
            self.poll_event.set()  # refresh the real state soon
            self.wake_event.set()
        elif self.status.reachable is not True:
            self.status.reachable = True
            self.status.updated = time.time()

    # -- worker --

    def _mine(self, jobs: list[Job]) -> list[Job]:
        """The jobs this lane's printer delivers: its queue's, and Find-Me jobs released here."""
        return [j for j in jobs if (getattr(j, "target", "") or j.queue) == self.name]

    def _load_startup_work(self) -> None:
        try:
            active = self._mine(self.store.jobs(which="not-completed"))
        except TypeError:  # a store without keyword support
            active = self.store.jobs(self.name)
        self.resume = [j for j in active if j.state in IN_FLIGHT and j.closed]
        self.interrupted = {j.id: j for j in active if j.state == JobState.PENDING
                            and j.delivery.phase in UPSTREAM_CANCEL_PHASES}
        try:
            finished = self._mine(self.store.jobs(which="completed"))
        except (TypeError, ValueError):
            finished = []
        for j in finished:
            if j.state == JobState.CANCELED and j.delivery.phase in UPSTREAM_CANCEL_PHASES:
                self.cancels[j.id] = j
        if self.resume:
            log.info("queue %s: resuming %d job(s) that were being delivered: %s", self.name,
                     len(self.resume), ", ".join(str(j.id) for j in self.resume))

    def _next_job(self) -> Job | None:
        while self.resume:
            job = self.resume[0]
            if job.state in IN_FLIGHT and job.id not in self.cancels:
                return job
            self.resume.pop(0)
        for job_id, job in sorted(self.interrupted.items()):
            if job.state == JobState.PENDING and job.closed and job.id not in self.cancels:
                return job  # a delivery in progress before anything new
            del self.interrupted[job_id]
        for job in self.store.iter_deliverable(self.name):
            if job.id not in self.cancels:
                return job
        return None

    async def worker(self) -> None:
        self._load_startup_work()
        while True:
            if self.wake_event.is_set():
                self.wake_event = trio.Event()
            waiting = self.retry_at > trio.current_time()
            if self.cancels and not waiting:
                await self._run_cancels()
                continue
            if waiting:
                with trio.move_on_at(self.retry_at):
                    await self.wake_event.wait()
                continue
            job = self._next_job()
            if job is None:
                with trio.move_on_after(IDLE_RECHECK):
                    await self.wake_event.wait()
                continue
            if self.resume and self.resume[0] is job:
                self.resume.pop(0)
            await self._deliver(job)

    async def _deliver(self, job: Job) -> None:
        if job.state not in (JobState.PENDING, *IN_FLIGHT):
            return
        if job.delivery.phase == "done":
            # delivered before and pending again (restarted): a new delivery from scratch
            job.delivery = Delivery(attempts=job.delivery.attempts)
            job.extra.pop("upstream", None)
        if self.charger is not None:
            from ..ledger.charge import ChargeRefused
            t0 = time.perf_counter()
            try:
                await self.charger.charge(job)  # the credit is checked again, now
            except ChargeRefused as e:
                await self._finish(job, Outcome(JobState.ABORTED, [e.reason], str(e)))
                return
            if (job.extra.get("charge") or {}).get("txn"):  # the debit, durable (or journaled)
                record_stage(job, "charge_ms", (time.perf_counter() - t0) * 1000)
            if job.state not in (JobState.PENDING, *IN_FLIGHT):
                await self.store.save(job)  # canceled during the charge: the save refunds it
                return
        # the printer's page counter before it gets the job (None: no SNMP, or no answer)
        before = await self.snmp.page_counter() if self.snmp is not None else None
        self.current = job
        if not self.backend.reports_state and not self.offline:
            self._set_status(PrinterState.PROCESSING, ["none"], "", reachable=self.status.reachable)
        outcome: Outcome | None = None
        offline: PrinterOffline | None = None
        local = False  # the failure was ours (spool file, bug), not the printer's answer
        try:
            with trio.CancelScope() as scope:
                self.current_scope = scope
                job.state = JobState.PROCESSING
                job.state_reasons = ["job-printing"]
                job.state_message = ""
                job.processing = job.processing or time.time()
                job.delivery.attempts += 1
                await self.store.save(job)
                try:
                    outcome = await self.backend.deliver(job, self.ctx)
                except PrinterOffline as e:
                    offline = e
                except JobRejected as e:
                    outcome = Outcome(JobState.ABORTED, e.reasons, str(e))
                except SpoolError as e:
                    local = True
                    outcome = Outcome(JobState.ABORTED, ["document-access-error"], str(e))
                except Exception as e:
                    local = True
                    log.exception("job %d: delivery to %s failed unexpectedly", job.id, self.qs.printer)
                    outcome = Outcome(JobState.ABORTED, ["aborted-by-system"],
                                      f"internal error delivering the job: {type(e).__name__}: {e}")
        finally:
            self.current = None
            self.current_scope = None
            if not self.backend.reports_state and not self.offline:
                self._set_status(PrinterState.IDLE, ["none"], "", reachable=self.status.reachable)
        if self.ctx.canceled(job):
            # the server canceled it meanwhile: never complete it, never send it again
            if job.state == JobState.CANCELED:
                if offline is not None:
                    self.went_offline(offline)
                await self._cancel_upstream(job)
            return
        if offline is not None:
            await self._offline(job, offline)
            return
        if outcome is None:  # pragma: no cover - only a foreign cancel of our scope
            return
        if not local:
            self.came_online(delivered=True)
        await self._finish(job, outcome)
        if before is not None and outcome.state == JobState.COMPLETED:
            await self._record_printer_pages(job, before)

    async def _finish(self, job: Job, outcome: Outcome) -> None:
        now = time.time()
        job.state = int(outcome.state)
        job.state_reasons = list(outcome.reasons) or ["none"]
        job.state_message = outcome.message
        job.completed = now
        if outcome.impressions is not None:
            job.impressions_completed = outcome.impressions
        job.delivery.phase = "done"
        job.delivery.last_error = "" if outcome.state == JobState.COMPLETED else outcome.message
        await self.store.save(job)
        took = now - (job.processing or now)
        if outcome.state == JobState.COMPLETED:
            log.info("job %d (%s, user %s) delivered to %s in %.1f s%s", job.id, self.name, job.user,
                     self.qs.printer, took,
                     f", {job.impressions_completed} impression(s)" if job.impressions_completed else "")
        else:
            log.info("job %d (%s, user %s) %s at %s: %s", job.id, self.name, job.user,
                     JobState(outcome.state).keyword, self.qs.printer, outcome.message or
                     ", ".join(outcome.reasons))

    async def _offline(self, job: Job, error: PrinterOffline) -> None:
        delay = self.went_offline(error)
        job.state = JobState.PENDING
        job.state_reasons = ["printer-stopped"]
        job.state_message = f"{self.status.message}; trying again in {delay:.0f} s"
        job.delivery.last_error = str(error)
        job.delivery.next_attempt = time.time() + delay
        if job.delivery.phase in UPSTREAM_CANCEL_PHASES:
            self.interrupted[job.id] = job
        await self.store.save(job)
        # one INFO line when a job first meets a dead printer; the retries are debug noise
        level = logging.INFO if job.delivery.attempts <= 1 else logging.DEBUG
        log.log(level, "job %d (%s) not delivered: %s; retry in %.0f s (attempt %d)", job.id,
                self.name, error, delay, job.delivery.attempts)

    # -- SNMP --

    async def snmp_poller(self) -> None:
        assert self.snmp is not None and self.qs.snmp is not None
        while True:
            status = await self.snmp.poll()  # never raises for the agent's trouble
            self._snmp_changed(self.snmp_status, status)
            self.snmp_status = status
            await trio.sleep(self.qs.snmp.interval)

    def _snmp_changed(self, old: Any, new: Any) -> None:
        if new.state != "ok":
            if old is None or old.state == "ok":
                log.warning("queue %s: the printer's SNMP agent does not answer usably (%s); its state is "
                            "unknown", self.name, new.error)
        elif old is None or old.state != "ok" or old.reasons != new.reasons:
            log.info("queue %s: printer reports %s over SNMP", self.name, ", ".join(new.reasons) or "no problem")

    async def _record_printer_pages(self, job: Job, before: int) -> None:
        """Wait until the printer has finished (idle, page counter still) - at most
        ``snmp.settle`` seconds - and record on the job how many pages it counted, beside
        what was charged. The next job waits for this, or its pages would count here."""
        assert self.snmp is not None and self.qs.snmp is not None
        after, settled, unit = await _settled_counter(self.snmp, self.qs.snmp.settle)
        if after is None:
            return
        counted = after - before
        job.extra["printer_pages"] = {"before": before, "after": after, "counted": counted, "unit": unit,
                                      "settled": settled}
        await self.store.save(job)
        log.info("job %d: the printer's counter moved by %d%s%s", job.id, counted, f" {unit}" if unit else "",
                 "" if settled else " (still moving when snmp.settle ran out)")

    # -- cancellation --

    def request_cancel(self, job: Job) -> trio.Event:
        done = self.cancel_done.setdefault(job.id, trio.Event())
        if self.current is job and self.current_scope is not None:
            self.current_scope.cancel()  # the worker cancels upstream once the delivery stopped
        elif job.delivery.phase in UPSTREAM_CANCEL_PHASES:
            self.cancels[job.id] = job
            self.wake_event.set()
        else:
            self._cancel_finished(job)
        return done

    def _cancel_finished(self, job: Job) -> None:
        self.cancels.pop(job.id, None)
        ev = self.cancel_done.pop(job.id, None)
        if ev is not None:
            ev.set()

    async def _cancel_upstream(self, job: Job) -> bool:
        """Cancel the job's upstream side; True when done (or nothing to do)."""
        if job.delivery.phase in UPSTREAM_CANCEL_PHASES:
            try:
                await self.backend.cancel_upstream(job)
            except PrinterOffline as e:
                self.cancels[job.id] = job
                self.went_offline(e)
                log.info("job %d canceled; the printer could not be told yet (%s)", job.id, e)
                return False
            self.came_online(delivered=True)
            job.delivery.phase = "done"
            await self.store.save(job)
            log.info("job %d (%s, user %s) canceled; upstream job %s canceled", job.id, self.name,
                     job.user, job.delivery.upstream_job_id or "(none known)")
        else:
            log.info("job %d (%s, user %s) canceled before it reached %s", job.id, self.name,
                     job.user, self.qs.printer)
        self._cancel_finished(job)
        return True

    async def _run_cancels(self) -> None:
        for job in list(self.cancels.values()):
            if not await self._cancel_upstream(job):
                return

    # -- poller --

    async def poller(self) -> None:
        """IPP and folder printers: poll every poll_interval (more often while the
        printer is down, following the back-off). AppSocket printers have nothing to
        poll; while one is marked down and idle, a connect-and-close probe finds out
        when it is back."""
        while True:
            if self.poll_event.is_set():
                self.poll_event = trio.Event()
            try:
                if self.backend.polls:
                    result = await self.backend.poll()
                    self.came_online(delivered=False)
                    self._apply_poll(result)
                elif self.offline and self.current is None:
                    await self.backend.probe()
                    self.came_online(delivered=False)
            except PrinterOffline as e:
                if not self.offline:
                    log.warning("queue %s: printer %s not answering (%s)", self.name,
                                self.qs.printer, e)
                # the worker's own next attempt is not delayed by a failed poll
                self.offline = True
                self._set_status(PrinterState.STOPPED, ["offline-report"], _offline_text(e),
                                 reachable=False)
            except Exception:
                log.exception("queue %s: polling %s failed", self.name, self.qs.printer)
            finally:
                self.first_poll.set()
            interval = self.qs.poll_interval
            if self.offline:
                interval = min(interval, max(self.backoff.peek(), 0.05))
            with trio.move_on_after(interval):
                await self.poll_event.wait()

    async def aclose(self) -> None:
        with trio.CancelScope(shield=True):
            await self.backend.aclose()
            if self.snmp is not None:
                await self.snmp.aclose()


SETTLE_STEP = 1.0  # seconds between reads of the page counter after a job


async def _settled_counter(snmp: Any, limit: float) -> tuple[int | None, bool, str]:
    """The page counter once the printer is no longer printing and two reads a step
    apart agree: (counter, settled, unit). Gives the last value read after ``limit``
    seconds, and None when the agent never answered."""
    last: int | None = None
    unit = ""
    with trio.move_on_after(limit):
        while True:
            st = await snmp.poll()
            if st.state == "ok" and st.page_counter is not None:
                unit = st.counter_unit
                busy = st.printer_status in (4, 5)  # hrPrinterStatus printing, warmup
                if not busy and st.page_counter == last:
                    return last, True, unit
                last = st.page_counter
            await trio.sleep(SETTLE_STEP)
    return last, False, unit


def _snmp_for(qs: QueueSettings) -> Any:
    if qs.snmp is None:
        return None
    from ..snmp import SnmpPrinter
    return SnmpPrinter(qs.snmp, qs.snmp.host or urlsplit(qs.printer).hostname or "")


def _offline_text(e: BaseException) -> str:
    """printer-state-message for a printer that is down: "cannot reach printer: ..."
    (messages that already say what the printer did are kept as they are)."""
    text = str(e)
    return text if text.startswith(("cannot reach printer", "printer ")) else \
        f"cannot reach printer: {text}"


class Upstream:
    """Delivery of spooled jobs to the printers of every queue (see module doc)."""

    def __init__(self, settings: Settings, store: Any, *, follow_interval: float = 1.0,
                 backends: dict[str, Backend] | None = None, charger: Any = None) -> None:
        self.settings = settings
        self.store = store
        self.lanes: dict[str, Lane] = {}
        for name, qs in settings.queues.items():
            if not qs.printer:
                continue  # a Find-Me queue: its jobs go out through the lanes of its printers
            backend = (backends or {}).get(name) or make_backend(settings, name)
            self.lanes[name] = Lane(name, qs, store, backend, follow_interval=follow_interval,
                                    charger=charger, snmp=_snmp_for(qs))

    async def run(self, *, task_status=trio.TASK_STATUS_IGNORED) -> None:
        """Run every queue's worker and poller until cancelled. Reports started once
        each queue's first printer poll has finished or STARTUP_POLL_WAIT passed."""
        try:
            async with trio.open_nursery() as nursery:
                for lane in self.lanes.values():
                    nursery.start_soon(lane.poller, name=f"upstream-poll-{lane.name}")
                    if lane.snmp is not None:
                        nursery.start_soon(lane.snmp_poller, name=f"snmp-poll-{lane.name}")
                with trio.move_on_after(STARTUP_POLL_WAIT):
                    for lane in self.lanes.values():
                        await lane.first_poll.wait()
                for lane in self.lanes.values():
                    nursery.start_soon(lane.worker, name=f"upstream-worker-{lane.name}")
                task_status.started()
        finally:
            for lane in self.lanes.values():
                await lane.aclose()

    def wake(self, queue: str) -> None:
        """A job of ``queue`` became deliverable (sync, never blocks)."""
        lane = self.lanes.get(queue)
        if lane is not None:
            lane.wake_event.set()

    def status(self, queue: str) -> PrinterStatus:
        lane = self.lanes.get(queue)
        qs = self.settings.queues.get(queue)
        if lane is None and qs is not None and qs.mode == "findme":
            return PrinterStatus(PrinterState.IDLE, ["none"], f"Find-Me: released at {', '.join(qs.printers)}",
                                 None, True, time.time())
        return lane.view() if lane is not None else PrinterStatus(
            PrinterState.STOPPED, ["offline-report"], f"no queue {queue!r}", None, False, 0.0)

    async def cancel(self, job: Job) -> None:
        """The server has set ``job`` CANCELED and saved it: stop any delivery of it and
        cancel it at the printer if it got there. Returns once that is done, or after
        about the queue's timeout (the worker keeps trying). Never raises."""
        lane = self.lanes.get(job.target or job.queue)
        if lane is None:
            await trio.lowlevel.checkpoint()
            return
        done = lane.request_cancel(job)
        with trio.move_on_after(lane.qs.timeout + CANCEL_WAIT_EXTRA):
            await done.wait()

    async def identify(self, queue: str, actions: list[str], message: str | None) -> None:
        """Forward Identify-Printer to an IPP printer that supports it; nothing for
        other printers. Never raises (logs instead)."""
        lane = self.lanes.get(queue)
        if lane is None:
            await trio.lowlevel.checkpoint()
            return
        try:
            with trio.move_on_after(lane.qs.timeout):
                await lane.backend.identify(list(actions), message)
        except PrinterOffline as e:
            log.info("queue %s: cannot forward Identify-Printer: %s", queue, e)
        except Exception:
            log.exception("queue %s: Identify-Printer failed", queue)
