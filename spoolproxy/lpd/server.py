"""The LPD (RFC 1179) front end: the node's queues over LPD, on the same spool and
policy path as IPP.

One task per connection; ``protocol.ServerConnection`` parses, this module does the
I/O and decides the acknowledgements:

* receive job: every file is streamed to a spool file (fsynced) before its trailing
  byte is acknowledged. The file that completes a job - the control file and every
  data file it names, in either order - is acknowledged only once the job is
  committed (``PrinterService.accept_job``, the same call as IPP Print-Job), so an
  acknowledged job is never lost. Files of a job that never completes (the client
  stopped, sent garbage, aborted) are removed; nothing else is affected.
* print waiting jobs: wakes the queue's delivery.
* short/long queue state: a text listing in the style of BSD lpq.
* remove jobs: the agent's own jobs, by number or user name (``lpd.operators`` may
  remove anyone's), canceled like an IPP Cancel-Job.

Bad input gets the protocol's negative acknowledgement and the connection closes;
the server keeps serving every other connection.
"""
from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from typing import Any, AsyncIterator, Iterable

import trio

from ..config import Settings
from ..netutil import aclose_quietly
from ..ipp.model import JobState, PrinterState, Tag
from ..ipp.types import Attribute
from ..spool.errors import SpoolError
from ..spool.job import Document, Job
from . import protocol as p

log = logging.getLogger("spoolproxy.lpd")

RECEIVE_CHUNK = 1 << 16
MAX_CONNECTIONS = 256
HEAD_BYTES = 4096  # what format detection looks at
_CONTROL_NUMBER = re.compile(r"^cf[A-Za-z](\d{1,3})")


class _Closed(Exception):
    """The connection ended (EOF, reset or idle timeout) while we waited for bytes."""


@dataclass
class _Spooled:
    path: str
    size: int
    head: bytes


@dataclass
class _Job:
    """The files of the job being received on one connection."""

    control: p.ControlFile | None = None
    control_name: str = ""
    data: dict[str, _Spooled] = field(default_factory=dict)

    def missing(self) -> list[str]:
        if self.control is None:
            return ["the control file"]
        return [f.name for f in self.control.files if f.name not in self.data]


class LpdServer:
    def __init__(self, settings: Settings, service: Any) -> None:
        self.settings = settings
        self.service = service  # ipp.operations.PrinterService: store, upstream, accept_job, _cancel
        self.store = service.store
        self._slots = trio.Semaphore(MAX_CONNECTIONS)

    async def serve(self, *, task_status=trio.TASK_STATUS_IGNORED) -> None:
        listeners = await trio.open_tcp_listeners(self.settings.lpd.port, host=self.settings.lpd.listen)
        task_status.started(listeners)
        await trio.serve_listeners(self.handle_connection, listeners)

    async def handle_connection(self, stream: trio.abc.Stream) -> None:
        if self._slots.value == 0:
            await trio.aclose_forcefully(stream)
            return
        async with self._slots:
            try:
                peer = stream.socket.getpeername()[0]  # type: ignore[attr-defined]
            except (OSError, AttributeError):
                peer = ""
            session = _Session(self, stream, peer)
            try:
                await session.run()
            except Exception:
                log.exception("LPD: error serving %s", peer or "a client")
            finally:
                session.discard()
                await aclose_quietly(stream)


class _Session:
    def __init__(self, server: LpdServer, stream: trio.abc.Stream, peer: str) -> None:
        self.server = server
        self.settings = server.settings
        self.service = server.service
        self.store = server.store
        self.stream = stream
        self.peer = peer
        self.conn = p.ServerConnection(max_control=self.settings.lpd.max_control_bytes,
                                       max_data=self.settings.ipp.max_job_bytes)
        self.job = _Job()
        self.queue = ""

    # -- I/O -----------------------------------------------------------------------------

    async def _event(self) -> Any:
        while True:
            ev = self.conn.next_event()
            if ev is not p.NEED_DATA:
                return ev
            with trio.move_on_after(self.settings.lpd.idle_timeout) as idle:
                try:
                    data = await self.stream.receive_some(RECEIVE_CHUNK)
                except (trio.BrokenResourceError, trio.ClosedResourceError, OSError) as e:
                    raise _Closed(f"connection lost: {e}") from None
            if idle.cancelled_caught:
                raise _Closed(f"no data for {self.settings.lpd.idle_timeout:g} s")
            self.conn.receive_data(data)

    async def _send(self, data: bytes) -> bool:
        try:
            with trio.move_on_after(self.settings.lpd.idle_timeout):
                await self.stream.send_all(data)
                return True
        except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
            pass
        return False

    # -- the connection --------------------------------------------------------------------

    async def run(self) -> None:
        try:
            ev = await self._event()
            if not isinstance(ev, p.DaemonCommand):
                return  # connected and closed without a command
            self.queue = ev.queue
            if ev.command == p.Command.RECEIVE_JOB:
                await self._receive_job()
            elif ev.command == p.Command.PRINT_WAITING:
                if self._queue_ok():
                    self.service.upstream.wake(ev.queue)
            elif ev.command in (p.Command.QUEUE_SHORT, p.Command.QUEUE_LONG):
                await self._send(self._listing(ev).encode("utf-8", "replace"))
            elif ev.command == p.Command.REMOVE:
                await self._send(await self._remove(ev))
        except p.LpdProtocolError as e:
            log.info("LPD: refused %s: %s", self.peer or "a client", e)
            await self._send(p.NAK)
        except _Closed as e:
            if self.job.control is not None or self.job.data:
                log.info("LPD: %s: %s", self.peer or "a client", e)

    def _queue_ok(self) -> bool:
        return self.queue in self.settings.queues

    async def _receive_job(self) -> None:
        if not self._queue_ok():
            log.info("LPD: %s sent a job for unknown queue %r", self.peer or "a client", self.queue)
            await self._send(p.NAK)
            return
        if not await self._send(p.ACK):
            return
        while True:
            ev = await self._event()
            if isinstance(ev, p.ConnectionClosed):
                if self.job.control is not None or self.job.data:
                    log.info("LPD: %s closed the connection before the job was whole (missing %s); "
                             "it is discarded", self.peer or "a client", ", ".join(self.job.missing()))
                return
            if isinstance(ev, p.AbortJob):
                self.discard()
                if not await self._send(p.ACK):
                    return
            elif isinstance(ev, p.FileStart):
                if not await self._send(p.ACK):
                    return
                if not await self._receive_file(ev):
                    return

    async def _receive_file(self, start: p.FileStart) -> bool:
        """One file of the job, then its acknowledgement (after the job it completes is
        committed). False when the connection is done."""
        if start.kind == "control":
            body = bytearray()
            async for chunk in self._chunks():
                body += chunk
            control = p.parse_control(bytes(body))  # LpdProtocolError: NAK
            self.job.control, self.job.control_name = control, start.name
        else:
            head = bytearray()

            async def counted() -> AsyncIterator[bytes]:
                async for chunk in self._chunks():
                    if len(head) < HEAD_BYTES:
                        head.extend(chunk[: HEAD_BYTES - len(head)])
                    yield chunk

            try:
                path, size = await self.store.spool_document(counted(), max_bytes=self.settings.ipp.max_job_bytes)
            except SpoolError as e:
                log.warning("LPD: cannot store a file from %s: %s", self.peer or "a client", e)
                await self._send(p.NAK)
                return False
            old = self.job.data.pop(start.name, None)
            if old is not None:
                self.store.discard_file(old.path)
            self.job.data[start.name] = _Spooled(path, size, bytes(head))
        if self.job.control is not None and not self.job.missing():
            refused = await self._commit()
            if refused:
                log.info("LPD: job from %s refused: %s", self.peer or "a client", refused)
                await self._send(p.NAK)
                return False
        return await self._send(p.ACK) or start.size == 0

    async def _chunks(self) -> AsyncIterator[bytes]:
        while True:
            ev = await self._event()
            if isinstance(ev, p.FileData):
                yield ev.data
            elif isinstance(ev, p.FileEnd):
                return
            else:  # pragma: no cover - the protocol module guarantees data then end
                raise p.LpdProtocolError(f"unexpected {type(ev).__name__} inside a file")

    def discard(self) -> None:
        """Forget the job being received: its spool files are removed."""
        job, self.job = self.job, _Job()
        for spooled in job.data.values():
            self.store.discard_file(spooled.path)

    # -- committing a job ------------------------------------------------------------------

    async def _commit(self) -> str:
        """Turn the received files into a spool job (durable on return). Returns why the
        job was refused, or "" when it was accepted."""
        control = self.job.control
        assert control is not None
        if not control.files:
            self.discard()  # a control file that prints nothing: nothing to keep
            return ""
        copies = {f.copies for f in control.files}
        limit = _copies_limit(self.service.capabilities(self.queue))
        if limit and max(copies) > limit:
            self.discard()
            return f"{max(copies)} copies asked, this queue allows at most {limit}"
        # one copies attribute when every file asks the same; otherwise each file is
        # repeated as often as its lines say
        repeat = len(copies) > 1
        docs: list[Document] = []
        for f in control.files:
            spooled = self.job.data[f.name]
            fmt = _format(f.letter, spooled.head, self.service.detect)
            for _ in range(f.copies if repeat else 1):
                docs.append(Document(len(docs) + 1, spooled.path, fmt, spooled.size, f.title or f.name))
        attrs = [] if repeat or control.files[0].copies == 1 else \
            [Attribute.of("copies", Tag.INTEGER, control.files[0].copies)]
        used = {f.name for f in control.files}
        number = _CONTROL_NUMBER.match(self.job.control_name)
        extra = {"lpd": {"host": control.host, "number": int(number.group(1)) if number else None,
                         "control": self.job.control_name}}
        user = control.user or control.banner_user or "anonymous"
        name = control.job_name or control.title or docs[0].name
        try:
            await self.service.accept_job(self.queue, user=user, name=name, host=self.peer, attributes=attrs,
                                          documents=docs, extra=extra, via="LPD")
        except SpoolError as e:
            self.discard()
            return f"cannot store the job: {e}"
        job, self.job = self.job, _Job()
        for name, spooled in job.data.items():
            if name not in used:
                self.store.discard_file(spooled.path)  # sent but never named: not part of the job
        return ""

    # -- queue state and removal -------------------------------------------------------------

    def _listing(self, ev: p.DaemonCommand) -> str:
        if not self._queue_ok():
            return f"{ev.queue}: unknown printer\n"
        status = self.service.upstream.status(ev.queue)
        jobs = self.store.jobs(ev.queue, which="not-completed")
        return listing(ev.queue, status.state, status.message, jobs, ev.operands,
                       long=ev.command == p.Command.QUEUE_LONG)

    async def _remove(self, ev: p.DaemonCommand) -> bytes:
        if not self._queue_ok():
            return f"{ev.queue}: unknown printer\n".encode()
        if not ev.operands:
            return b"remove: no user named\n"
        agent, wanted = ev.operands[0], ev.operands[1:]
        operator = agent in self.settings.lpd.operators
        jobs = self.store.jobs(ev.queue, which="not-completed")
        out = []
        for job in selected(jobs, wanted, agent):
            if job.is_final:
                continue
            if job.user != agent and not operator:
                out.append(f"{ev.queue}: job {job.id}: permission denied (not {agent}'s job)")
                continue
            await self.service._cancel(job, "job-canceled-by-user", f"Removed by {agent} over LPD.")
            out.append(f"{ev.queue}: job {job.id} ({job.name or 'untitled'}) removed")
        if not out:
            out.append(f"{ev.queue}: no matching job")
        return ("\n".join(out) + "\n").encode("utf-8", "replace")


# -- pure helpers (no I/O) ------------------------------------------------------------------

def _format(letter: str, head: bytes, detect: Any) -> str:
    """The document's format: what its bytes are when they say (clients send PDF under
    f or l as often as not), else what the print letter implies."""
    claimed = p.format_for(letter)
    found = "application/octet-stream"
    if detect is not None and head:
        try:
            found = detect(head)
        except Exception:  # detection is a hint; the printer still gets the bytes
            log.exception("format detection failed")
    if found not in ("application/octet-stream", "text/plain"):
        return found
    return claimed if claimed != "application/octet-stream" else found


def _copies_limit(caps: dict[str, Attribute]) -> int:
    attr = caps.get("copies-supported")
    if attr is None or not attr.values:
        return 0
    v = attr.value
    upper = getattr(v, "upper", None)
    return upper if isinstance(upper, int) else 0


def selected(jobs: Iterable[Job], wanted: Iterable[str], agent: str) -> list[Job]:
    """The jobs a remove command's list names: job numbers (the node's job id, or the
    number in the client's control file name) and user names; "-" is every job of the
    agent; an empty list is the agent's first job in the queue."""
    jobs = list(jobs)
    wanted = list(wanted)
    if not wanted:
        mine = [j for j in jobs if j.user == agent]
        return mine[:1]
    out = []
    for job in jobs:
        number = (job.extra.get("lpd") or {}).get("number")
        for w in wanted:
            if w == "-" and job.user == agent or w.isdigit() and int(w) in (job.id, number) or w == job.user:
                out.append(job)
                break
    return out


def listing(queue: str, state: int, message: str, jobs: list[Job], wanted: Iterable[str], *,
            long: bool) -> str:
    """Queue state in the layout of BSD lpq (short: one line per job; long: a block per job)."""
    wanted = list(wanted)
    if wanted:
        jobs = [j for j in jobs if any(w == j.user or w.isdigit() and int(w) == j.id for w in wanted)]
    active = any(j.state == JobState.PROCESSING for j in jobs)
    if state == PrinterState.STOPPED:
        head = f"{queue} is down: {message or 'printer stopped'}"
    else:
        head = f"{queue} is ready{' and printing' if active else ''}"
    lines = [head]
    if not jobs:
        lines.append("no entries")
        return "\n".join(lines) + "\n"
    if not long:
        lines.append(f"{'Rank':<7}{'Owner':<11}{'Job':<8}{'Files':<38}Total Size")
    rank = 0
    for job in jobs:
        if job.state == JobState.PROCESSING:
            where = "active"
        elif job.state == JobState.PENDING_HELD:
            where = "held"
        else:
            rank += 1
            where = _ordinal(rank)
        files = ", ".join(d.name or f"document {d.number}" for d in job.documents) or job.name or "(receiving)"
        size = sum(d.size for d in job.documents)
        if long:
            lines.append("")
            lines.append(f"{job.user}: {where:<32}[job {job.id} {job.host}]")
            for d in job.documents:
                lines.append(f"        {(d.name or f'document {d.number}'):<40}{d.size} bytes")
        else:
            lines.append(f"{where:<7}{job.user[:10]:<11}{job.id:<8}{files[:37]:<38}{size} bytes")
    return "\n".join(lines) + "\n"


def _ordinal(n: int) -> str:
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"
