"""The node database: one LMDB environment, named tables, msgpack values.

Reads (:meth:`Database.get`, :meth:`Database.scan`, :meth:`Database.last`) run inline
on the caller's thread in their own read transaction; they cost microseconds and
never wait for a writer (LMDB is MVCC).

Writes go through :meth:`Database.write`. While the writer task (:meth:`Database.run`)
is running, every caller's operations are queued to it; it takes everything that
queued up while the previous commit was in flight and applies it in ONE write
transaction (group commit), commits it in a worker thread (with ``sync`` that is an
fsync), and only then wakes the callers. Callers' writes are applied in the order
``write`` was called, so two saves of the same record never land out of order.
Without the writer task (CLI tools, tests) ``write`` commits by itself, still in a
thread and still in call order.

Values are msgpack (bin type for ``bytes``, str for ``str``). Keys are bytes; ids
are 8-byte big-endian (:func:`u64_key`) so that a scan returns them in numeric order.

The environment may be opened by other processes at the same time (the
``spoolproxy jobs`` CLI while the node runs): pass ``readonly=True`` there. LMDB
forbids opening the same environment twice in ONE process; close it first.
"""
from __future__ import annotations

import math
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

import lmdb
import msgpack
import trio

# Named sub-databases ("tables"). Adding a table is one line here; existing
# environments get it created at the next (read-write) open.
TABLES: tuple[str, ...] = (
    "meta",
    "jobs",
    # small documents committed with their job, until their spool file is fsynced
    "spool_inline",
    # the ledger (spoolproxy.ledger)
    "users", "cards", "idents", "groups", "accounts", "account_codes", "balances",
    "txns", "txn_ids",
    # devices and the audit log of logins and releases (spoolproxy.release)
    "devices", "device_keys", "audit",
    # sync (spoolproxy.sync): the primary's change log, site keys and replayed entries;
    # a site's journal, its ids, its pending sums per account and the offline policy
    "changes", "sites", "site_keys", "replayed", "unapplied",
    "journal", "journal_ids", "pending", "policy",
)
MAX_DBS = 64  # room for later tables without touching existing environments

_SCAN_CHUNK = 512  # records read per read transaction while scanning


class DatabaseError(Exception):
    """The node database failed (the message says how); nothing of the failed
    write was applied."""


class DatabaseClosed(DatabaseError):
    """The database has been closed."""


class DatabaseFull(DatabaseError):
    """The LMDB map is full: raise map_size (the data file is sparse, so a large
    map costs nothing until used)."""


Op = tuple[str, bytes, Any]  # (table, key, value); value None deletes the key


def pack(value: Any) -> bytes:
    return msgpack.packb(value, use_bin_type=True)


def unpack(data: bytes | memoryview) -> Any:
    return msgpack.unpackb(data, raw=False, strict_map_key=False)


def u64_key(n: int) -> bytes:
    """8-byte big-endian key: keys sort like the numbers."""
    return n.to_bytes(8, "big")


def key_u64(key: bytes) -> int:
    return int.from_bytes(key, "big")


job_key = u64_key
key_job_id = key_u64


def _successor(prefix: bytes) -> bytes | None:
    """Smallest key greater than every key starting with prefix (None: no such key)."""
    p = bytearray(prefix)
    while p and p[-1] == 0xFF:
        p.pop()
    if not p:
        return None
    p[-1] += 1
    return bytes(p)


@dataclass
class DbStats:
    commits: int = 0  # write transactions committed
    requests: int = 0  # write() / write_now() calls committed
    ops: int = 0  # puts and deletes committed


class WriteTxn:
    """What a :meth:`Database.transact` function sees: reads and writes inside one
    write transaction, values packed and unpacked as everywhere else."""

    __slots__ = ("_txn", "_db", "_logged", "_next", "origin")

    def __init__(self, txn: lmdb.Transaction, dbs: dict[str, Any], logged: frozenset[str] = frozenset()):
        self._txn = txn
        self._db = dbs
        self._logged = logged  # tables whose every change is also appended to "changes"
        self._next = 0  # the next change seq (0: not read yet)
        self.origin = ""  # what caused the changes being made (a site's transaction id)

    def get(self, table: str, key: bytes) -> Any | None:
        raw = self._txn.get(key, db=self._db[table])
        return None if raw is None else unpack(raw)

    def put(self, table: str, key: bytes, value: Any) -> None:
        self._txn.put(key, pack(value), db=self._db[table])
        if table in self._logged:
            self._log(table, key, value)

    def delete(self, table: str, key: bytes) -> bool:
        gone = self._txn.delete(key, db=self._db[table])
        if gone and table in self._logged:
            self._log(table, key, None)
        return gone

    def _log(self, table: str, key: bytes, value: Any) -> None:
        """Append a change to the change log a site follows (spoolproxy.sync). The
        seq is read once per request: an aborted request's seqs are reused, so a
        reader never sees a gap close behind it."""
        if not self._next:
            last = self.last_key("changes")
            self._next = key_u64(last) + 1 if last else 1
        self._txn.put(u64_key(self._next), pack([table, key, value, self.origin]), db=self._db["changes"])
        self._next += 1

    def clear(self, table: str) -> None:
        """Delete every record of the table (never logged: a site's snapshot)."""
        self._txn.drop(self._db[table], delete=False)

    def last_key(self, table: str) -> bytes | None:
        cur = self._txn.cursor(db=self._db[table])
        return bytes(cur.key()) if cur.last() else None


@dataclass(eq=False, slots=True)
class _Request:
    ops: list[tuple[Any, bytes, bytes | None]]
    # a function run inside the write transaction (Database.transact) instead of ops
    fn: Callable[[WriteTxn], Any] | None = None
    nested: bool = True  # run fn in a nested transaction (False: fn writes nothing before it may fail)
    result: Any = None
    error: BaseException | None = None
    # the caller parked until the commit (None: nobody waits, or it was cancelled). A
    # parked task rather than a trio.Event: a charge burst makes a thousand of these per
    # commit, and the event's parking lot cost more than the rest of the hand-over.
    waiter: trio.lowlevel.Task | None = None

    def wake(self) -> None:
        task, self.waiter = self.waiter, None
        if task is not None:
            trio.lowlevel.reschedule(task)

    def _abort(self, _raise_cancel: Any) -> trio.lowlevel.Abort:
        self.waiter = None  # cancelled while queued: the write may still be applied
        return trio.lowlevel.Abort.SUCCEEDED


class Database:
    def __init__(self, path: Path | str, *, map_size: int = 1 << 34, sync: bool = True,
                 readonly: bool = False, tables: tuple[str, ...] = TABLES,
                 changelog: frozenset[str] = frozenset()):
        self.path = Path(path)
        self.changelog = changelog  # tables whose changes a primary logs for its sites
        self.readonly = readonly
        self.stats = DbStats()
        if not readonly:
            self.path.mkdir(mode=0o700, parents=True, exist_ok=True)
        elif not (self.path / "data.mdb").exists():
            raise DatabaseError(f"{self.path}: no database here")
        try:
            self._env: lmdb.Environment | None = lmdb.open(
                str(self.path), map_size=map_size, subdir=True, readonly=readonly,
                sync=sync, metasync=sync, mode=0o600, max_dbs=MAX_DBS, lock=True,
                create=not readonly, max_spare_txns=4)
        except lmdb.Error as e:
            raise DatabaseError(f"{self.path}: cannot open database: {e}") from e
        self._dbs: dict[str, Any] = {}
        try:
            if not readonly:
                self._env.reader_check()  # free reader slots of processes that died
            if readonly:
                for name in tables:
                    try:
                        self._dbs[name] = self._env.open_db(name.encode(), create=False)
                    except lmdb.NotFoundError:
                        self._dbs[name] = None  # table not created yet: reads as empty
            else:
                with self._env.begin(write=True) as txn:
                    for name in tables:
                        self._dbs[name] = self._env.open_db(name.encode(), txn=txn, create=True)
        except lmdb.Error as e:
            self._env.close()
            raise DatabaseError(f"{self.path}: cannot open tables: {e}") from e
        self._max_key = self._env.max_key_size()
        # _wlock: one write transaction at a time from this process (LMDB's own lock
        # would block too, but write transactions must begin and end on one thread).
        self._wlock = threading.Lock()
        # _order: FIFO lock that keeps commits in call order; the writer task holds
        # it for its whole life, direct writers take it per write.
        self._order = trio.Lock()
        self._limiter = trio.CapacityLimiter(1)
        self._queue: trio.MemorySendChannel[_Request] | None = None

    # ---- life cycle ------------------------------------------------------------

    def close(self) -> None:
        with self._wlock:
            if self._env is not None:
                self._env.close()
                self._env = None

    @property
    def closed(self) -> bool:
        return self._env is None

    def __enter__(self) -> "Database":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def sync(self) -> None:
        """Flush to disk (only useful when opened with sync=False)."""
        self._live().sync(True)

    @property
    def writer_running(self) -> bool:
        return self._queue is not None

    def _live(self) -> lmdb.Environment:
        if self._env is None:
            raise DatabaseClosed(f"{self.path}: database is closed")
        return self._env

    def _table(self, table: str) -> Any:
        try:
            return self._dbs[table]
        except KeyError:
            raise KeyError(f"no table {table!r} (tables: {', '.join(self._dbs)})") from None

    # ---- reads (inline) --------------------------------------------------------

    def get(self, table: str, key: bytes) -> Any | None:
        db = self._table(table)
        env = self._live()
        if db is None:
            return None
        with env.begin(db=db, buffers=True) as txn:
            raw = txn.get(key)
            return None if raw is None else unpack(raw)

    def reader(self, table: str) -> Callable[[bytes], Any | None]:
        """A get() for one table with the lookups done once: the hot read path (the
        credit check). Valid while the database is open."""
        begin, db = self.read_handle(table)
        if db is None:
            return lambda key: None

        def get(key: bytes, _begin=begin, _db=db, _unpack=unpack) -> Any | None:
            txn = _begin(_db)  # positional and without buffers: the fastest way in py-lmdb
            raw = txn.get(key)
            txn.commit()  # (if get raised, the dropped transaction aborts by itself)
            return None if raw is None else _unpack(raw)

        return get

    def read_handle(self, table: str) -> tuple[Callable[..., Any], Any]:
        """(begin, table handle) for a caller that inlines its read: ``txn =
        begin(handle); raw = txn.get(key); txn.commit()``. The handle is None when the
        table does not exist (read-only environments)."""
        return self._live().begin, self._table(table)

    def scan(self, table: str, prefix: bytes = b"", *, start: bytes | None = None) -> Iterator[tuple[bytes, Any]]:
        """(key, value) for every key starting with prefix, in key order (from ``start`` on).

        Reads in chunks, each in its own short read transaction, so a slow consumer
        never pins old pages; a record written during the scan may or may not be seen.
        """
        return self._scan(table, prefix, reverse=False, start=start)

    def scan_reverse(self, table: str, prefix: bytes = b"") -> Iterator[tuple[bytes, Any]]:
        """scan() from the greatest key down (newest first for u64 keys)."""
        return self._scan(table, prefix, reverse=True)

    def _scan(self, table: str, prefix: bytes, *, reverse: bool,
              start: bytes | None = None) -> Iterator[tuple[bytes, Any]]:
        db = self._table(table)
        if db is None:
            self._live()
            return
        succ = _successor(prefix)
        # where the next chunk starts (forward) or ends, exclusive (reverse)
        pos: bytes | None = max(start, prefix) if start is not None else None
        while True:
            chunk: list[tuple[bytes, Any]] = []
            done = False
            with self._live().begin(db=db, buffers=True) as txn:
                cur = txn.cursor()
                if not reverse:
                    ok = cur.set_range(prefix if pos is None else pos)
                else:
                    bound = pos if pos is not None else succ
                    if bound is not None and cur.set_range(bound):
                        ok = cur.prev()
                    else:
                        ok = cur.last()
                step = cur.prev if reverse else cur.next
                while ok:
                    k = bytes(cur.key())
                    if not k.startswith(prefix):
                        done = True
                        break
                    chunk.append((k, unpack(cur.value())))
                    if len(chunk) >= _SCAN_CHUNK:
                        break
                    ok = step()
                else:
                    done = True
            yield from chunk
            if done or not chunk:
                return
            pos = chunk[-1][0] if reverse else chunk[-1][0] + b"\x00"

    def last(self, table: str, prefix: bytes = b"") -> tuple[bytes, Any] | None:
        """The record with the greatest key starting with prefix, or None."""
        db = self._table(table)
        env = self._live()
        if db is None:
            return None
        with env.begin(db=db, buffers=True) as txn:
            cur = txn.cursor()
            succ = _successor(prefix)
            if succ is None:
                ok = cur.last()
            elif cur.set_range(succ):
                ok = cur.prev()
            else:
                ok = cur.last()
            if not ok:
                return None
            k = bytes(cur.key())
            if not k.startswith(prefix):
                return None
            return k, unpack(cur.value())

    def dump(self, tables: Iterable[str], *, last_of: str) -> tuple[dict[str, list[tuple[bytes, Any]]], bytes | None]:
        """Every record of ``tables`` and the last key of ``last_of``, all as of one
        moment (one read transaction): a consistent snapshot."""
        env = self._live()
        out: dict[str, list[tuple[bytes, Any]]] = {}
        with env.begin(buffers=True) as txn:
            for table in tables:
                db = self._table(table)
                out[table] = [] if db is None else [(bytes(k), unpack(v)) for k, v in txn.cursor(db=db)]
            db = self._table(last_of)
            cur = txn.cursor(db=db) if db is not None else None
            last = bytes(cur.key()) if cur is not None and cur.last() else None
        return out, last

    def count(self, table: str) -> int:
        db = self._table(table)
        env = self._live()
        if db is None:
            return 0
        with env.begin() as txn:
            return txn.stat(db)["entries"]

    # ---- writes ----------------------------------------------------------------

    def _prepare(self, ops: list[Op]) -> list[tuple[Any, bytes, bytes | None]]:
        """Validate and pack now, in the caller, so that (a) a bad value fails only
        its caller and (b) the value is snapshotted at the moment write() is called."""
        if self.readonly:
            raise DatabaseError(f"{self.path}: opened read-only")
        self._live()
        out = []
        for table, key, value in ops:
            db = self._table(table)
            if not isinstance(key, bytes) or not 0 < len(key) <= self._max_key:
                raise ValueError(f"key must be 1..{self._max_key} bytes, not {key!r:.80}")
            out.append((db, key, None if value is None else pack(value)))
        return out

    def _commit(self, reqs: list[_Request]) -> None:
        """Apply requests in one write transaction (runs in a worker thread).

        A transact() function runs in a nested transaction of its own: if it raises,
        only its own writes are undone and only its caller sees the error; the
        others' commit goes on."""
        with self._wlock:
            env = self._live()
            n = 0
            try:
                with env.begin(write=True) as txn:
                    for r in reqs:
                        r.error = None
                        if r.fn is not None:
                            try:
                                if r.nested:
                                    with env.begin(write=True, parent=txn) as child:
                                        r.result = r.fn(WriteTxn(child, self._dbs, self.changelog))
                                else:
                                    r.result = r.fn(WriteTxn(txn, self._dbs, self.changelog))
                            except (lmdb.Error, DatabaseError):
                                raise  # the whole group fails, and is retried request by request
                            except Exception as e:
                                r.error = e
                            n += 1
                            continue
                        for db, key, value in r.ops:
                            if value is None:
                                txn.delete(key, db=db)
                            else:
                                txn.put(key, value, db=db)
                            n += 1
            except lmdb.MapFullError as e:
                raise DatabaseFull(f"{self.path}: database map is full ({env.info()['map_size']} bytes)") from e
            except lmdb.Error as e:
                raise DatabaseError(f"{self.path}: write failed: {e}") from e
            self.stats.commits += 1
            self.stats.requests += len(reqs)
            self.stats.ops += n

    def write_now(self, ops: list[Op]) -> None:
        """Commit synchronously on this thread (CLI tools, startup). Bypasses the
        writer's queue: do not mix with concurrent write() calls on the same keys."""
        prepared = self._prepare(ops)
        if prepared:
            self._commit([_Request(prepared)])

    def transact_now(self, fn: Callable[[WriteTxn], Any]) -> Any:
        """transact(), synchronously on this thread (CLI tools, startup)."""
        self._check_writable()
        req = _Request([], fn)
        self._commit([req])
        if req.error is not None:
            raise req.error
        return req.result

    def _check_writable(self) -> None:
        if self.readonly:
            raise DatabaseError(f"{self.path}: opened read-only")
        self._live()

    async def transact(self, fn: Callable[[WriteTxn], Any], *, nested: bool = True) -> Any:
        """Run ``fn(txn)`` inside the writer's next grouped write transaction and
        return its result once committed. ``fn`` runs in a worker thread, may run
        more than once (a failed group is retried request by request), and must
        only touch the database through ``txn``. If it raises, none of its writes
        are applied and the error is raised here: it runs in a nested transaction,
        unless ``nested=False`` promises that it raises only before its first write
        (which saves the nested transaction's cost on the hot path)."""
        self._check_writable()
        return await self._submit(_Request([], fn, nested=nested))

    async def write(self, ops: list[Op]) -> None:
        """Apply ops atomically and durably; returns once committed.

        If the caller is cancelled while waiting, the write may still be applied.
        """
        prepared = self._prepare(ops)  # no checkpoint before this: snapshot semantics
        if not prepared:
            await trio.lowlevel.checkpoint()
            return
        await self._submit(_Request(prepared))

    async def _submit(self, req: _Request) -> Any:
        queue = self._queue
        if queue is not None:
            req.waiter = trio.lowlevel.current_task()
            queue.send_nowait(req)
            await trio.lowlevel.wait_task_rescheduled(req._abort)
        else:
            async with self._order:
                await trio.to_thread.run_sync(self._commit, [req], limiter=self._limiter)
        if req.error is not None:
            raise req.error
        return req.result

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """The writer task: ``await nursery.start(db.run)``. On cancellation it
        finishes the batch in flight, commits whatever was already queued, and exits."""
        if self._queue is not None:
            raise RuntimeError("the database writer is already running")
        self._live()
        send, recv = trio.open_memory_channel[_Request](math.inf)
        self._queue = send  # from now on write() queues (before any checkpoint)
        held = False
        try:
            await self._order.acquire()  # let direct writes called earlier finish first
            held = True
            task_status.started()
            while True:
                try:
                    # what was queued during the last commit goes to the disk at once, before
                    # that commit's callers run: their next writes then queue during this one
                    await trio.lowlevel.checkpoint_if_cancelled()  # (no yield unless cancelled)
                    batch = [recv.receive_nowait()]
                except trio.WouldBlock:
                    batch = [await recv.receive()]
                while True:
                    try:
                        batch.append(recv.receive_nowait())
                    except trio.WouldBlock:
                        break
                with trio.CancelScope(shield=True):
                    await self._commit_requests(batch)
        finally:
            self._queue = None  # later write() calls commit directly
            leftovers: list[_Request] = []
            while True:
                try:
                    leftovers.append(recv.receive_nowait())
                except trio.WouldBlock:
                    break
            with trio.CancelScope(shield=True):
                if leftovers:
                    if not held:
                        await self._order.acquire()
                        held = True
                    await self._commit_requests(leftovers)
            if held:
                self._order.release()

    async def _commit_requests(self, batch: list[_Request]) -> None:
        try:
            await trio.to_thread.run_sync(self._commit, batch, limiter=self._limiter)
        except Exception as e:
            if len(batch) == 1:
                batch[0].error = e
            else:
                # Isolate: retry each request alone so that only the culprit fails.
                for r in batch:
                    try:
                        await trio.to_thread.run_sync(self._commit, [r], limiter=self._limiter)
                    except Exception as e1:
                        r.error = e1
        for r in batch:
            r.wake()
