"""The durable job spool: job records in LMDB, document bytes in spool files.

Every job record lives in memory (one :class:`Job` object per job, shared by every
task) and in the "jobs" table; the store is the only writer of that table. Mutate a
Job, then ``await store.save(job)``: when save returns, that state is on disk.

Durability before acknowledgement: a protocol server acknowledges a job only after
:meth:`JobStore.save` has committed its record, and by then its documents are durable
too, in one of two ways:

* a document larger than ``INLINE_MAX``: :meth:`JobStore.spool_document` fsyncs the
  file and its directory entry before it returns;
* a small one (most jobs) is kept in memory by spool_document; the save's commit
  writes its file (not fsynced) and puts its bytes in the same LMDB transaction as
  the record (table ``spool_inline``). A file's fsync and its directory's each cost
  a journal commit of their own before the answer, per job, and the write a thread
  hop; this way the job's one grouped commit covers the document as well.
  :meth:`JobStore.settle` (every ``SETTLE_INTERVAL`` s, off the request path) fsyncs
  those files in a batch and then drops their copies; at start,
  :meth:`JobStore.recover` rewrites from the copies any file that a crash lost.

Spool files are named ``d-<uuid hex>``, created 0600 (with O_EXCL, or by the commit
of a small document's job), and are immutable once a record refers to them (recovery
checks their size). Files that no record refers to are removed by
:meth:`JobStore.recover` at the next start.

Job ids are allocated from a counter that is persisted (meta "next_id") in the same
transaction as every save and delete, so an id that was ever persisted is never
handed out again, even after the job was deleted or purged.
"""
from __future__ import annotations

import errno
import functools
import itertools
import logging
import os
import time
import uuid
from pathlib import Path
from typing import Any, AsyncIterable, BinaryIO, Callable, Iterable, Iterator

import trio
from sortedcontainers import SortedDict

from ..fsutil import fsync_dir
from ..db import Database, DatabaseError, WriteTxn, job_key, key_job_id
from ..ipp.model import JobState
from ..uuids import uuid7
from .errors import (CorruptRecord, DocumentMissing, DocumentTooLarge, JobNotFound, SpoolError,
                     SpoolFull)
from .job import Document, Job

log = logging.getLogger("spoolproxy.spool")

JOBS = "jobs"
META = "meta"
INLINE = "spool_inline"  # spool file name -> its bytes, until the file is fsynced
NEXT_ID_KEY = b"next_id"
MAX_JOB_ID = 2**31 - 1  # IPP integer (job-id is 1:MAX)
FILE_PREFIX = "d-"
FLUSH_BYTES = 1 << 20  # spool_document hands the disk this much per thread hop
INLINE_MAX = 256 << 10  # documents up to this size are committed with their job
STAGED_MAX = 64 << 20  # small documents spooled and not yet saved: beyond this, fsync them
SETTLE_INTERVAL = 1.0  # seconds between settle() runs
SETTLE_BATCH = 4096  # files fsynced per settle() transaction
PURGE_BATCH = 1000
WHICH = ("not-completed", "completed", "all")


def _raise_spool_os_error(e: OSError, what: str) -> None:
    if e.errno in (errno.ENOSPC, errno.EDQUOT):
        raise SpoolFull(f"spool directory is full: {what}: {e.strerror}") from e
    raise SpoolError(f"{what}: {e}") from e


def _write_all(fd: int, bufs: list[bytes]) -> None:
    if 1 < len(bufs) <= 512:  # well under IOV_MAX; no copy
        total = sum(map(len, bufs))
        done = os.writev(fd, bufs)
        if done == total:
            return
        view = memoryview(b"".join(bufs))[done:]  # a short write: finish the slow way
    else:
        view = memoryview(bufs[0] if len(bufs) == 1 else b"".join(bufs))
    while view:
        view = view[os.write(fd, view):]




def _write_chunk(path: Path, fd: int, buf: list[bytes]) -> int:
    """Write buffered chunks (creating the file if fd < 0); returns the fd. On an error
    the fd is closed here, and the caller removes the file."""
    if fd < 0:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    try:
        if buf:
            _write_all(fd, buf)
    except BaseException:
        os.close(fd)
        raise
    return fd


def _write_inline(files: list[tuple[Path, bytes]], t: WriteTxn) -> None:
    """In the writer's thread, inside a job's commit: its small documents' files are
    written (not fsynced) and their bytes go into the same commit. May run twice (a
    failed group is retried request by request), hence O_TRUNC rather than O_EXCL:
    the names are fresh uuids all the same."""
    for path, data in files:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
        try:
            _write_all(fd, [data])
        finally:
            os.close(fd)
        t.put(INLINE, path.name.encode(), data)


def _with_ops(ops: list[tuple[str, bytes, Any]], fns: list[Callable[[WriteTxn], Any]]):
    def fn(t: WriteTxn) -> None:
        for f in fns:
            f(t)
        for table, key, value in ops:
            t.put(table, key, value)
    return fn


def _queue_dict(index: dict[str, SortedDict], queue: str) -> SortedDict:
    d = index.get(queue)
    if d is None:
        d = index[queue] = SortedDict()
    return d


def _unlink_quiet(path: Path) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


class JobStore:
    def __init__(self, db: Database, spool_dir: Path | str, *, fsync: bool = True,
                 analysis: bool = False,
                 on_save: Callable[[Job], Callable[[WriteTxn], Any] | None] | None = None):
        self.db = db
        # on_save(job) is called on every job being saved, before its record is taken;
        # a function it returns runs in the same write transaction as the record (the
        # ledger's refund of a charged job that ends without printing: both or neither)
        self.on_save = on_save
        # analysis=True: a job is deliverable only once the document engine has seen it
        # (spool.analysis.Analyzer sets job.analyzed); the node runs that way
        self.analysis = analysis
        self.spool_dir = Path(spool_dir).absolute()
        self.fsync = fsync
        self.spool_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        self._jobs: SortedDict = SortedDict()  # id -> Job, every registered job
        self._active: SortedDict = SortedDict()  # id -> Job, non-final when last indexed
        self._by_queue: dict[str, SortedDict] = {}
        self._active_by_queue: dict[str, SortedDict] = {}
        # (queue, user) -> active jobs: a person's held jobs without walking everyone's
        self._active_by_owner: dict[tuple[str, str], SortedDict] = {}
        # pending and closed when last saved: what a queue's worker picks from, so that
        # picking the next job costs the same with 10 or 10,000 jobs waiting
        self._ready_by_queue: dict[str, SortedDict] = {}
        self._unanalyzed: SortedDict = SortedDict()  # id -> Job, closed, not final, not analysed
        # id -> (queue, active, ready, unanalyzed, printer queue, user)
        self._indexed: dict[int, tuple[str, bool, bool, bool, str, str]] = {}
        self._persisted: set[int] = set()  # ids with a committed record
        self._claimed: set[int] = set()  # ids save() was called for (committed or in flight)
        self._spooling: set[str] = set()  # spool files being written right now
        # small documents spooled but not yet saved with a job: name -> bytes (the save
        # puts them in its commit); then those committed whose file is not fsynced yet
        self._staged: dict[str, bytes] = {}
        self._staged_bytes = 0
        self._unsettled: set[str] = set()
        self._waiters: dict[str | None, trio.Event] = {}
        self._next_id = 1
        self._load()

    # ---- loading and indexing --------------------------------------------------

    def _load(self) -> None:
        highest = 0
        for key, rec in self.db.scan(JOBS):
            job_id = key_job_id(key)
            try:
                job = Job.from_record(rec)
            except (TypeError, ValueError, KeyError) as e:
                raise CorruptRecord(f"job record {job_id} in {self.db.path}: {e}") from e
            if job.id != job_id:
                raise CorruptRecord(f"job record under key {job_id} says id {job.id}")
            self._register(job)
            self._persisted.add(job_id)
            self._claimed.add(job_id)
            highest = job_id
        stored = self.db.get(META, NEXT_ID_KEY) or 1
        self._next_id = max(int(stored), highest + 1, 1)

    def _register(self, job: Job) -> None:
        self._jobs[job.id] = job
        self._index(job)

    def _unregister(self, job: Job) -> None:
        self._jobs.pop(job.id, None)
        self._unindex(job.id)
        self._persisted.discard(job.id)
        self._claimed.discard(job.id)

    def _index(self, job: Job) -> None:
        analyzed = job.analyzed or not self.analysis
        want = (job.queue, not job.is_final, job.state == JobState.PENDING and job.closed and analyzed,
                job.closed and not analyzed and not job.is_final, job.target or job.queue, job.user)
        have = self._indexed.get(job.id)
        if have == want:
            return
        if have is not None:
            self._unindex(job.id)
        queue, active, ready, unanalyzed, printer, user = want
        _queue_dict(self._by_queue, queue)[job.id] = job
        if active:
            self._active[job.id] = job
            _queue_dict(self._active_by_queue, queue)[job.id] = job
            _queue_dict(self._active_by_owner, (queue, user))[job.id] = job
        if ready:  # by the queue whose printer delivers it
            _queue_dict(self._ready_by_queue, printer)[job.id] = job
        if unanalyzed:
            self._unanalyzed[job.id] = job
        self._indexed[job.id] = want

    def _unindex(self, job_id: int) -> None:
        have = self._indexed.pop(job_id, None)
        if have is None:
            return
        queue, active, ready, unanalyzed, printer, user = have
        self._by_queue[queue].pop(job_id, None)
        if unanalyzed:
            self._unanalyzed.pop(job_id, None)
        if active:
            self._active.pop(job_id, None)
            self._active_by_queue[queue].pop(job_id, None)
            owned = self._active_by_owner[(queue, user)]
            owned.pop(job_id, None)
            if not owned:
                del self._active_by_owner[(queue, user)]
        if ready:
            self._ready_by_queue[printer].pop(job_id, None)

    # ---- reads (inline) --------------------------------------------------------

    def __len__(self) -> int:
        return len(self._jobs)

    @property
    def next_id(self) -> int:
        return self._next_id

    def get(self, job_id: int) -> Job | None:
        """The job with this id (also one created by new_job and not saved yet)."""
        return self._jobs.get(job_id)

    def jobs(self, queue: str | None = None, *, which: str = "not-completed",
             user: str | None = None) -> list[Job]:
        """Saved jobs, id order. which: "not-completed" (pending, held, processing,
        stopped), "completed" (canceled, aborted, completed) or "all"."""
        if which == "not-completed":
            if queue is not None and user is not None:
                src = self._active_by_owner.get((queue, user), {})
            else:
                src = self._active if queue is None else self._active_by_queue.get(queue, {})
        elif which in ("completed", "all"):
            src = self._jobs if queue is None else self._by_queue.get(queue, {})
        else:
            raise ValueError(f"which must be one of {', '.join(WHICH)}, not {which!r}")
        persisted = self._persisted
        out = []
        for job in src.values():
            if job.id not in persisted or (user is not None and job.user != user):
                continue
            if which == "all" or job.is_final == (which == "completed"):
                out.append(job)
        return out

    def deliverable(self, queue: str) -> list[Job]:
        """Saved jobs that queue's printer delivers (their own, and Find-Me jobs released
        there) that are pending and closed, id order."""
        return list(self.iter_deliverable(queue))

    def iter_deliverable(self, queue: str) -> Iterator[Job]:
        """deliverable(), lazily: a worker that wants the first one reads one. The
        index is as of each job's last save; the state is checked again here. Do not
        save jobs while iterating (it changes the index)."""
        persisted = self._persisted
        for j in self._ready_by_queue.get(queue, {}).values():
            if (j.state == JobState.PENDING and j.closed and j.id in persisted
                    and (j.analyzed or not self.analysis) and self._written(j)):
                yield j

    def pending_count(self, queue: str) -> int:
        """How many jobs wait for queue's printer (as of their last save)."""
        return len(self._ready_by_queue.get(queue, ()))

    def iter_unanalyzed(self) -> Iterator[Job]:
        """Saved, closed, non-final jobs the document engine has not seen, id order
        (as of each job's last save; checked again here)."""
        persisted = self._persisted
        for j in self._unanalyzed.values():
            if j.closed and not j.analyzed and not j.is_final and j.id in persisted and self._written(j):
                yield j

    def _written(self, job: Job) -> bool:
        """No document of the job waits for the commit that writes its file (a job
        saved before, whose new document's save is in flight, is indexed already)."""
        return not self._staged or not any(d.path in self._staged for d in job.documents)

    # ---- change notification ---------------------------------------------------

    def notify(self, queue: str | None = None) -> None:
        """Wake wait_changed(queue) and wait_changed(None). save/delete call it."""
        for key in {queue, None}:
            ev = self._waiters.pop(key, None)
            if ev is not None:
                ev.set()

    async def wait_changed(self, queue: str | None = None) -> None:
        """Sleep until a job of queue (None: any) has been saved, deleted or
        notify()'d. Check deliverable() first, then wait: nothing is missed."""
        ev = self._waiters.get(queue)
        if ev is None:
            ev = self._waiters[queue] = trio.Event()
        await ev.wait()

    # ---- creating and saving jobs ----------------------------------------------

    def new_job(self, **fields) -> Job:
        """A new job with the next id and a fresh urn:uuid, registered in memory
        only: save() makes it durable (and visible in jobs()/deliverable()).
        queue and user are required."""
        if "id" in fields:
            raise TypeError("new_job allocates the id itself")
        job_id = self._next_id
        if job_id > MAX_JOB_ID:
            raise SpoolError("job ids are exhausted (2**31-1)")
        fields.setdefault("uuid", f"urn:uuid:{uuid7()}")  # time-ordered: see spoolproxy.uuids
        job = Job(id=job_id, **fields)
        self._next_id = job_id + 1
        self._register(job)
        return job

    @staticmethod
    def add_document(job: Job, name: str, size: int, format: str, *, doc_name: str = "") -> Document:
        """Append a spooled file to job.documents (numbered 1, 2, ...); save() after."""
        doc = Document(number=len(job.documents) + 1, path=name, format=format, size=size,
                       name=doc_name)
        job.documents.append(doc)
        return doc

    async def save(self, job: Job) -> None:
        """Commit the job's current state durably (snapshot taken at the call)."""
        await self.save_many([job])

    async def save_many(self, jobs: Iterable[Job], *, also: Iterable[Callable[[WriteTxn], Any]] = ()) -> None:
        """Commit several jobs in one transaction (all or nothing), with ``also``: writes
        that belong to the same change (e.g. its audit entries)."""
        jobs = list(jobs)
        ops = []
        inline: list[tuple[Path, bytes]] = []
        fns = list(also)
        for job in jobs:
            if self._jobs.get(job.id) is not job:
                raise JobNotFound(job.id)
            if self.on_save is not None:
                fn = self.on_save(job)
                if fn is not None:
                    fns.append(fn)
            ops.append((JOBS, job_key(job.id), job.to_record()))
            if self._staged:
                for d in job.documents:
                    data = self._staged.get(d.path)
                    if data is not None:
                        inline.append((self.path(d), data))
            self._index(job)
            self._claimed.add(job.id)
        if not jobs:
            await trio.lowlevel.checkpoint()
            return
        ops.append((META, NEXT_ID_KEY, self._next_id))
        if inline:
            fns.append(functools.partial(_write_inline, inline))
        try:
            if fns:
                await self.db.transact(_with_ops(ops, fns))
            else:
                await self.db.write(ops)
        except DatabaseError as e:
            raise SpoolError(f"cannot save job {', '.join(str(j.id) for j in jobs)}: {e}") from e
        except OSError as e:  # writing a small document's file
            _raise_spool_os_error(e, f"cannot save job {', '.join(str(j.id) for j in jobs)}")
        for path, _ in inline:
            data = self._staged.pop(path.name, None)
            if data is not None:
                self._staged_bytes -= len(data)
                self._unsettled.add(path.name)
        for job in jobs:
            if self._jobs.get(job.id) is job:
                self._persisted.add(job.id)
        for queue in {q for j in jobs for q in (j.queue, j.target) if q}:
            self.notify(queue)

    async def delete(self, job: Job) -> None:
        """Remove the job's record, then its spool files."""
        if self._jobs.get(job.id) is not job:
            raise JobNotFound(job.id)
        was_persisted, was_claimed = job.id in self._persisted, job.id in self._claimed
        self._unregister(job)  # a save() racing with us now fails instead of resurrecting it
        try:
            await self.db.write([(JOBS, job_key(job.id), None), (META, NEXT_ID_KEY, self._next_id)])
        except Exception as e:
            # not committed (a failed write applies nothing): put it back
            self._register(job)
            if was_persisted:
                self._persisted.add(job.id)
            if was_claimed:
                self._claimed.add(job.id)
            if isinstance(e, DatabaseError):
                raise SpoolError(f"cannot delete job {job.id}: {e}") from e
            raise
        self.notify(job.queue)
        await self._remove_files([d.path for d in job.documents])

    def discard(self, job: Job) -> None:
        """Forget a job that was never saved (e.g. its upload failed) and remove its
        files; synchronous so it can run in a cancelled error path."""
        if self._jobs.get(job.id) is not job:
            raise JobNotFound(job.id)
        if job.id in self._claimed:
            raise SpoolError(f"job {job.id} has been saved: delete() it instead")
        self._unregister(job)
        for d in job.documents:
            self.discard_file(d.path)

    def new_file_name(self) -> str:
        """A fresh spool file name (for a converted document); the file is the caller's
        to create, and recover() removes it if no saved job refers to it."""
        return f"{FILE_PREFIX}{uuid.uuid4().hex}"

    def discard_file(self, name: str) -> None:
        """Remove a spool file no saved job refers to (synchronous)."""
        data = self._staged.pop(name, None)
        if data is not None:
            self._staged_bytes -= len(data)
        _unlink_quiet(self.path(name))

    # ---- documents -------------------------------------------------------------

    def path(self, doc_or_name: Document | str) -> Path:
        name = doc_or_name.path if isinstance(doc_or_name, Document) else doc_or_name
        if not name or "/" in name or "\0" in name or name in (".", ".."):
            raise SpoolError(f"bad spool file name {name!r}")
        return self.spool_dir / name

    def open_document(self, doc: Document | str) -> BinaryIO:
        """The spool file, opened for reading (blocking file: read it in a thread,
        or wrap it with trio.wrap_file)."""
        p = self.path(doc)
        try:
            return open(p, "rb")
        except FileNotFoundError:
            raise DocumentMissing(p.name) from None

    async def spool_document(self, chunks: AsyncIterable[bytes], *, max_bytes: int = 0) -> tuple[str, int]:
        """Stream chunks into a new spool file; returns (file name, size) once the
        file and its directory entry are on disk. A small document (module docstring)
        is only staged: the save of the job that refers to it writes the file and
        makes it durable. Memory use is flat (~1 MiB).

        On any error (the iterator's own, DocumentTooLarge, SpoolFull, SpoolError)
        or cancellation the partial file is removed and the error propagates.
        """
        name = f"{FILE_PREFIX}{uuid.uuid4().hex}"
        path = self.spool_dir / name
        self._spooling.add(name)
        fd = -1  # the file is created by the first thread hop: a small job needs only one
        try:
            size = 0
            buf: list[bytes] = []
            buffered = 0
            async for chunk in chunks:
                n = len(chunk)
                if not n:
                    continue
                size += n
                if max_bytes and size > max_bytes:
                    raise DocumentTooLarge(max_bytes)
                # copy buffers the producer might reuse; bytes are immutable
                buf.append(chunk if type(chunk) is bytes else bytes(chunk))
                buffered += n
                if buffered >= FLUSH_BYTES:
                    try:
                        fd = await trio.to_thread.run_sync(_write_chunk, path, fd, buf)
                    except OSError as e:
                        _raise_spool_os_error(e, f"cannot write {path}")
                    buf = []
                    buffered = 0
            if (self.fsync and fd < 0 and 0 < size <= INLINE_MAX
                    and self._staged_bytes + size <= STAGED_MAX):
                # small and whole in memory: the commit of the job's save writes the file
                # and carries the bytes (module docstring); no thread hop here
                self._staged[name] = buf[0] if len(buf) == 1 else b"".join(buf)
                self._staged_bytes += size
                return name, size
            last_fd, fd = fd, -1  # _finish_file closes it, whatever happens
            try:
                await trio.to_thread.run_sync(self._finish_file, path, last_fd, buf)
            except OSError as e:
                _raise_spool_os_error(e, f"cannot write {path}")
            return name, size
        except BaseException:
            if fd >= 0:
                try:
                    os.close(fd)
                except OSError:
                    pass
            _unlink_quiet(path)
            raise
        finally:
            self._spooling.discard(name)

    def _finish_file(self, path: Path, fd: int, buf: list[bytes]) -> None:
        """In a worker thread: the last bytes, then the file and its directory entry
        made durable, all in one hop. (A directory fsync shared by concurrent jobs
        saved disk flushes but cost each job a second hop and the loop's time to
        coordinate it; measured, one hop per job accepts more jobs per second.)"""
        fd = _write_chunk(path, fd, buf)
        try:
            if self.fsync:
                os.fsync(fd)
        finally:
            os.close(fd)
        if self.fsync:
            fsync_dir(self.spool_dir)

    async def settle(self) -> int:
        """Fsync the files of documents committed inline, then drop their committed
        copies (one directory fsync and one commit per batch). Returns how many."""
        # A name is here once the save that staged it has committed. Another save that
        # carried the same copy was called before that, so it commits before this
        # delete: writes commit in call order.
        batch = list(itertools.islice(self._unsettled, SETTLE_BATCH))
        if not batch:
            return 0
        await trio.to_thread.run_sync(self._sync_files, batch)
        await self.db.write([(INLINE, name.encode(), None) for name in batch])
        self._unsettled.difference_update(batch)
        return len(batch)

    def _sync_files(self, names: list[str]) -> None:
        for name in names:
            try:
                fd = os.open(self.path(name), os.O_RDONLY | os.O_CLOEXEC)
            except FileNotFoundError:
                continue  # its job is gone (deleted, purged, converted): only the copy is left
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        fsync_dir(self.spool_dir)

    async def run_settler(self, interval: float = SETTLE_INTERVAL, *,
                          task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """settle() every interval seconds while there is something to settle
        (``nursery.start``). A failure is logged and retried: the copies stay
        committed, so nothing is at risk meanwhile."""
        task_status.started()
        while True:
            await trio.sleep(interval)
            if self._unsettled:
                try:
                    while await self.settle() == SETTLE_BATCH:
                        pass
                except Exception as e:
                    log.exception("settling spool files failed: %s", e)

    def _restore_inline(self) -> None:
        """Startup: the documents committed inline whose files were not fsynced yet
        when the node stopped. Each file a job refers to is rewritten from its copy if
        it differs (a crash lost it), and fsynced; then the copies are dropped."""
        keys = []
        referenced = None
        restored = 0
        for key, data in self.db.scan(INLINE):
            keys.append(key)
            if referenced is None:
                referenced = {d.path for job in self._jobs.values() for d in job.documents}
            name = key.decode("utf-8", "replace")
            if name not in referenced or not isinstance(data, bytes):
                continue
            path = self.path(name)
            try:
                with open(path, "rb") as f:
                    same = f.read(len(data) + 1) == data
            except FileNotFoundError:
                same = False
            flags = os.O_WRONLY | os.O_CLOEXEC | (0 if same else os.O_CREAT | os.O_TRUNC)
            fd = os.open(path, flags, 0o600)
            try:
                if not same:
                    _write_all(fd, [data])
                    restored += 1
                os.fsync(fd)
            finally:
                os.close(fd)
        if not keys:
            return
        fsync_dir(self.spool_dir)
        self.db.write_now([(INLINE, k, None) for k in keys])
        if restored:
            log.warning("restored %d spool file(s) that the last stop lost, from their committed copies",
                        restored)

    async def _remove_files(self, names: list[str]) -> None:
        if names:
            paths = [self.path(n) for n in names]
            await trio.to_thread.run_sync(lambda: [_unlink_quiet(p) for p in paths])

    # ---- recovery and purging --------------------------------------------------

    def recover(self) -> list[Job]:
        """Startup: remove spool files no job refers to (streamed, never
        acknowledged), abort non-final jobs whose files are missing or truncated,
        and return the remaining non-final jobs in id order. Call it before any
        server accepts jobs. Jobs in PROCESSING stay as they are: the upstream layer
        decides from job.delivery.phase."""
        self._restore_inline()
        referenced = {d.path for job in self._jobs.values() for d in job.documents}
        orphans = 0
        with os.scandir(self.spool_dir) as it:
            for entry in it:
                if (entry.name.startswith(FILE_PREFIX) and entry.name not in referenced
                        and entry.name not in self._spooling and entry.is_file(follow_symlinks=False)):
                    _unlink_quiet(Path(entry.path))
                    orphans += 1
        if orphans:
            log.info("removed %d spool file(s) of jobs never acknowledged", orphans)
        broken: list[Job] = []
        now = time.time()
        for job in self._active.values():
            if job.is_final or job.id not in self._persisted:
                continue
            problems = []
            for d in job.documents:
                try:
                    st = os.stat(self.path(d))
                except FileNotFoundError:
                    problems.append(f"{d.path} is missing")
                    continue
                if st.st_size != d.size:
                    problems.append(f"{d.path} has {st.st_size} bytes, not {d.size}")
            if problems:
                job.state = JobState.ABORTED
                job.state_reasons = ["document-unprintable-error"]
                job.state_message = "spool file " + "; ".join(problems)
                job.completed = now
                broken.append(job)
                log.error("job %d aborted at recovery: %s", job.id, job.state_message)
        if broken:
            self.db.write_now([(JOBS, job_key(j.id), j.to_record()) for j in broken]
                              + [(META, NEXT_ID_KEY, self._next_id)])
            for job in broken:
                self._index(job)
        return [j for j in self._active.values() if not j.is_final and j.id in self._persisted]

    async def purge(self, now: float, history: float) -> int:
        """Delete final jobs that completed more than history seconds before now,
        with their files. Returns how many."""
        cutoff = now - history
        victims = []
        for i, job in enumerate(list(self._jobs.values())):
            if i % 4096 == 4095:
                await trio.lowlevel.checkpoint()
            if (job.is_final and job.id in self._persisted and self._jobs.get(job.id) is job
                    and (job.completed if job.completed is not None else job.created) < cutoff):
                victims.append(job)
        count = 0
        for start in range(0, len(victims), PURGE_BATCH):
            batch = [j for j in victims[start:start + PURGE_BATCH] if self._jobs.get(j.id) is j]
            if not batch:
                continue
            for job in batch:
                self._unregister(job)
            try:
                await self.db.write([(JOBS, job_key(j.id), None) for j in batch]
                                    + [(META, NEXT_ID_KEY, self._next_id)])
            except Exception:
                for job in batch:
                    self._register(job)
                    self._persisted.add(job.id)
                    self._claimed.add(job.id)
                raise
            count += len(batch)
            for queue in {j.queue for j in batch}:
                self.notify(queue)
            await self._remove_files([d.path for j in batch for d in j.documents])
        if count:
            log.info("purged %d finished job(s) older than %gs", count, history)
        return count

    async def run_purger(self, history: float, interval: float = 60.0, *,
                         task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Purge finished jobs every interval seconds (``nursery.start``)."""
        task_status.started()
        while True:
            try:
                await self.purge(time.time(), history)
            except Exception as e:  # keep purging later; say why now
                log.exception("purging finished jobs failed: %s", e)
            await trio.sleep(interval)
