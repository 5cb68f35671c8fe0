"""spoolproxy.spool.store: durable jobs and spool files, recovery, purge, crash safety."""
from __future__ import annotations

import errno
import hashlib
import os
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

import uuid

import pytest
import trio
import trio.testing
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from spoolproxy.db import Database, job_key
from spoolproxy.ipp.model import JobState, Status
from spoolproxy.spool import (Delivery, Document, DocumentMissing, DocumentTooLarge, Job,
                              JobNotFound, JobStore, SpoolError, SpoolFull)
from spoolproxy.spool.store import INLINE, INLINE_MAX

REPO = Path(__file__).resolve().parents[2]


def open_store(state: Path, *, sync: bool = True) -> JobStore:
    return JobStore(Database(state / "db", map_size=1 << 30, sync=sync), state / "spool", fsync=sync)


@pytest.fixture
def state(tmp_path):
    return tmp_path / "state"


@pytest.fixture
def store(state):
    s = open_store(state)
    yield s
    s.db.close()


def reopen(store: JobStore, state: Path) -> JobStore:
    store.db.close()
    return open_store(state)


async def agen(parts):
    for p in parts:
        yield p
        await trio.sleep(0)


def spool_files(store: JobStore) -> set[str]:
    return {p.name for p in store.spool_dir.iterdir()}


# ---- jobs -------------------------------------------------------------------


@pytest.mark.trio
async def test_new_job_save_and_reopen(store, state):
    job = store.new_job(queue="q1", user="alice", name="report", host="ws1",
                        attributes=b"\x01\x02\x03")
    assert job.id == 1 and job.uuid.startswith("urn:uuid:") and len(job.uuid) == 45
    # time-ordered (version 7), so that the ledger's ids derived from it index side by side
    assert uuid.UUID(job.uuid.removeprefix("urn:uuid:")).version == 7
    assert store.get(1) is job
    assert store.jobs() == []  # not durable yet: not listed
    assert store.deliverable("q1") == []

    name, size = await store.spool_document(agen([b"%PDF-1.7\n", b"x" * 1000]))
    doc = store.add_document(job, name, size, "application/pdf", doc_name="r.pdf")
    assert doc == Document(1, name, "application/pdf", 1009, "r.pdf")
    job.closed = True
    job.delivery = Delivery(phase="sending", upstream_job_id=42, attempts=2)
    job.extra["k"] = [1, "two"]
    await store.save(job)
    assert store.jobs() == [job] and store.deliverable("q1") == [job]
    before = job.to_record()

    store = reopen(store, state)
    again = store.get(1)
    assert again is not job and again.to_record() == before
    assert isinstance(again.state, int) and again.attributes == b"\x01\x02\x03"
    with store.open_document(again.documents[0]) as f:
        assert f.read() == b"%PDF-1.7\n" + b"x" * 1000
    assert store.path(again.documents[0]) == store.spool_dir / name
    assert store.path(name).is_absolute()
    store.db.close()


@pytest.mark.trio
async def test_ids_never_reused(store, state):
    jobs = [store.new_job(queue="q", user="u") for _ in range(5)]
    assert [j.id for j in jobs] == [1, 2, 3, 4, 5]
    await store.save_many(jobs)
    await store.delete(jobs[4])  # the highest persisted id
    for j in jobs[:4]:
        j.state = JobState.COMPLETED
        j.completed = 0.0
    await store.save_many(jobs[:4])
    assert await store.purge(time.time(), 60) == 4
    assert store.jobs(which="all") == []
    store = reopen(store, state)
    assert len(store) == 0
    assert store.new_job(queue="q", user="u").id == 6
    store.db.close()


@pytest.mark.trio
async def test_next_id_continues_past_highest_record(store, state):
    # a record written without the meta key (older writer, other tool) still counts
    store.db.write_now([("jobs", job_key(41), Job(41, "q", "urn:uuid:x", "u").to_record())])
    store = reopen(store, state)
    assert store.new_job(queue="q", user="u").id == 42
    store.db.close()


@pytest.mark.trio
async def test_unsaved_ids_may_be_handed_out_again(store, state):
    # an id that never reached the disk was never given to a client
    store.new_job(queue="q", user="u")
    store = reopen(store, state)
    assert store.new_job(queue="q", user="u").id == 1
    store.db.close()


@pytest.mark.trio
async def test_listing_and_filters(store):
    S = JobState
    spec = [("a", "ann", S.PENDING, True), ("a", "bob", S.PROCESSING, True),
            ("b", "ann", S.PENDING, False), ("a", "ann", S.COMPLETED, True),
            ("b", "bob", S.CANCELED, True), ("a", "bob", S.PENDING_HELD, True),
            ("a", "ann", S.ABORTED, True), ("b", "ann", S.PENDING, True)]
    jobs = []
    for queue, user, state_, closed in spec:
        j = store.new_job(queue=queue, user=user)
        j.state, j.closed = state_, closed
        jobs.append(j)
    await store.save_many(jobs)
    ids = lambda js: [j.id for j in js]  # noqa: E731
    assert ids(store.jobs()) == [1, 2, 3, 6, 8]
    assert ids(store.jobs("a")) == [1, 2, 6]
    assert ids(store.jobs("a", which="completed")) == [4, 7]
    assert ids(store.jobs(which="completed")) == [4, 5, 7]
    assert ids(store.jobs(which="all")) == list(range(1, 9))
    assert ids(store.jobs(which="all", user="ann")) == [1, 3, 4, 7, 8]
    assert ids(store.jobs("b", user="ann")) == [3, 8]
    assert store.jobs("nope") == []
    assert ids(store.deliverable("a")) == [1]
    assert ids(store.deliverable("b")) == [8]
    with pytest.raises(ValueError):
        store.jobs(which="bogus")

    # state changes move jobs between lists (filters look at the live state)
    jobs[0].state = S.COMPLETED
    assert ids(store.deliverable("a")) == []
    await store.save(jobs[0])
    assert ids(store.jobs("a", which="completed")) == [1, 4, 7]
    jobs[3].state = S.PENDING  # restarted
    await store.save(jobs[3])
    assert ids(store.deliverable("a")) == [4]
    # moving a job to another queue
    jobs[3].queue = "b"
    await store.save(jobs[3])
    assert ids(store.deliverable("b")) == [4, 8]
    assert ids(store.jobs("a", which="all")) == [1, 2, 6, 7]


@pytest.mark.trio
async def test_save_after_delete_fails(store):
    job = store.new_job(queue="q", user="u")
    await store.save(job)
    await store.delete(job)
    assert store.get(job.id) is None
    with pytest.raises(JobNotFound):
        await store.save(job)
    with pytest.raises(JobNotFound):
        await store.delete(job)
    assert store.db.get("jobs", job_key(job.id)) is None


@pytest.mark.trio
async def test_discard_unsaved(store):
    job = store.new_job(queue="q", user="u")
    name, size = await store.spool_document(agen([b"abc"]))
    store.add_document(job, name, size, "text/plain")
    store.discard(job)
    assert store.get(job.id) is None and spool_files(store) == set()
    saved = store.new_job(queue="q", user="u")
    await store.save(saved)
    with pytest.raises(SpoolError):
        store.discard(saved)


@pytest.mark.trio
async def test_delete_removes_files(store):
    job = store.new_job(queue="q", user="u")
    for part in (b"one", b"two"):
        name, size = await store.spool_document(agen([part]))
        store.add_document(job, name, size, "text/plain")
    await store.save(job)
    assert len(spool_files(store)) == 2
    await store.delete(job)
    assert spool_files(store) == set()


@pytest.mark.trio
async def test_wait_changed(store):
    woke = []

    async def waiter(queue):
        await store.wait_changed(queue)
        woke.append(queue)

    async with trio.open_nursery() as n:
        n.start_soon(waiter, "a")
        n.start_soon(waiter, "b")
        n.start_soon(waiter, None)
        await trio.testing.wait_all_tasks_blocked()
        job = store.new_job(queue="a", user="u")
        await store.save(job)
        await trio.testing.wait_all_tasks_blocked()
        assert set(woke) == {"a", None}
        store.notify("b")
    assert set(woke) == {"a", "b", None} and len(woke) == 3


# ---- spool files ------------------------------------------------------------


@pytest.mark.trio
async def test_spool_file_mode_and_name(store):
    old = os.umask(0)
    try:
        name, size = await store.spool_document(agen([b"x" * (INLINE_MAX + 1)]))
        job = await _small_job(store, b"data")  # its file is written by the save
        await store.save(job)
    finally:
        os.umask(old)
    for name, size_ in ((name, size), (job.documents[0].path, job.documents[0].size)):
        st_ = store.path(name).stat()
        assert stat.S_IMODE(st_.st_mode) == 0o600 and st_.st_size == size_
        assert name.startswith("d-") and len(name) == 34
    assert size == INLINE_MAX + 1 and job.documents[0].size == 4
    assert stat.S_IMODE(store.spool_dir.stat().st_mode) == 0o700


@pytest.mark.trio
async def test_spool_reused_buffer_is_copied(store):
    buf = bytearray(b"aaaa")

    async def reusing():
        for c in b"abc":
            buf[:] = bytes([c]) * 4
            yield buf
            await trio.sleep(0)

    job = store.new_job(queue="q", user="u")
    name, size = await store.spool_document(reusing())
    store.add_document(job, name, size, "text/plain")
    await store.save(job)
    assert store.path(name).read_bytes() == b"aaaabbbbcccc"


@pytest.mark.trio
async def test_spool_streams_50mib_in_flat_memory(store):
    total, chunk = 50 << 20, 64 << 10
    h = hashlib.sha256()

    async def source():
        for i in range(total // chunk):
            block = bytes([i % 256]) * chunk  # a fresh object each time, like a socket read
            h.update(block)
            yield block

    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        name, size = await store.spool_document(source())
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    print(f"\nspool_document 50 MiB: tracemalloc peak {peak / 2**20:.2f} MiB")
    assert size == total
    assert peak < 8 << 20
    with store.open_document(name) as f:
        d = hashlib.sha256()
        while block := f.read(1 << 20):
            d.update(block)
    assert d.digest() == h.digest()


class Boom(Exception):
    pass


@pytest.mark.trio
async def test_partial_file_removed_when_source_fails(store):
    async def failing():
        yield b"x" * (3 << 20)  # some of it reaches the disk first
        yield b"y"
        raise Boom

    with pytest.raises(Boom):
        await store.spool_document(failing())
    assert spool_files(store) == set()


@pytest.mark.trio
async def test_partial_file_removed_when_too_large(store):
    with pytest.raises(DocumentTooLarge) as e:
        await store.spool_document(agen([b"x" * (1 << 20)] * 3), max_bytes=2 << 20)
    assert e.value.limit == 2 << 20
    assert spool_files(store) == set()
    name, size = await store.spool_document(agen([b"x" * 10]), max_bytes=10)  # exactly the limit
    assert size == 10


@pytest.mark.trio
async def test_disk_full(store, monkeypatch):
    import errno

    import spoolproxy.spool.store as store_mod

    def full(fd, bufs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(store_mod, "_write_all", full)
    with pytest.raises(SpoolFull) as e:
        await store.spool_document(agen([b"x" * (2 << 20)]))
    assert not isinstance(e.value, DocumentTooLarge)
    assert e.value.ipp_status == Status.TEMPORARY_ERROR
    assert spool_files(store) == set()
    # the limit is a SpoolFull too, with its own status
    with pytest.raises(SpoolFull) as e:
        await store.spool_document(agen([b"xy"]), max_bytes=1)
    assert e.value.ipp_status == Status.REQUEST_ENTITY_TOO_LARGE


@pytest.mark.trio
async def test_partial_file_removed_on_cancel(store):
    async def slow():
        yield b"x" * (2 << 20)
        await trio.sleep_forever()
        yield b"never"

    with trio.move_on_after(0.2):
        await store.spool_document(slow())
    assert spool_files(store) == set()


@pytest.mark.trio
async def test_empty_document(store):
    name, size = await store.spool_document(agen([]))
    assert size == 0 and store.path(name).read_bytes() == b""


def test_bad_names_refused(store):
    for bad in ("", "../x", "a/b", ".", "..", "x\0y"):
        with pytest.raises(SpoolError):
            store.path(bad)
    with pytest.raises(DocumentMissing):
        store.open_document("d-nothere")


# ---- recovery and purge -----------------------------------------------------


@pytest.mark.trio
async def test_recover(store, state):
    S = JobState

    async def job_with_doc(state_, data=b"doc"):
        job = store.new_job(queue="q", user="u", state=state_, closed=True)
        name, size = await store.spool_document(agen([data]))
        store.add_document(job, name, size, "text/plain")
        return job

    ok = await job_with_doc(S.PENDING)
    printing = await job_with_doc(S.PROCESSING)
    printing.delivery.phase = "sending"
    gone = await job_with_doc(S.PENDING)
    truncated = await job_with_doc(S.PENDING_HELD, b"0123456789")
    old_gone = await job_with_doc(S.COMPLETED)
    await store.save_many([ok, printing, gone, truncated, old_gone])
    assert await store.settle() == 5  # the files are the only copies now
    orphan, _ = await store.spool_document(agen([b"never acknowledged"]))
    (store.spool_dir / "unrelated.txt").write_bytes(b"not ours")
    store.path(gone.documents[0]).unlink()
    store.path(old_gone.documents[0]).unlink()
    store.path(truncated.documents[0]).write_bytes(b"01234")

    store = reopen(store, state)
    live = store.recover()
    assert [j.id for j in live] == [ok.id, printing.id]
    assert store.get(printing.id).state == S.PROCESSING
    assert store.get(printing.id).delivery.phase == "sending"
    for j in (gone, truncated):
        j2 = store.get(j.id)
        assert j2.state == S.ABORTED and j2.state_reasons == ["document-unprintable-error"]
        assert j2.completed is not None and j2.documents[0].path in j2.state_message
    assert store.get(old_gone.id).state == S.COMPLETED  # history is left alone
    assert not store.path(orphan).exists()
    assert (store.spool_dir / "unrelated.txt").exists()

    store = reopen(store, state)  # the aborts were committed
    assert store.get(gone.id).state == S.ABORTED
    assert [j.id for j in store.recover()] == [ok.id, printing.id]
    store.db.close()


@pytest.mark.trio
async def test_purge(store):
    now = 1_000_000.0
    S = JobState
    made = {}
    for key, state_, completed in [("old-done", S.COMPLETED, now - 7200), ("old-cancel", S.CANCELED, now - 3601),
                                   ("recent", S.ABORTED, now - 100), ("pending", S.PENDING, None),
                                   ("no-time", S.COMPLETED, None)]:
        job = store.new_job(queue="q", user="u", state=state_, completed=completed, created=now - 9999)
        name, size = await store.spool_document(agen([key.encode()]))
        store.add_document(job, name, size, "text/plain")
        made[key] = job
    await store.save_many(made.values())
    assert await store.purge(now, 3600) == 3  # old-done, old-cancel, no-time (created long ago)
    assert {j.id for j in store.jobs(which="all")} == {made["recent"].id, made["pending"].id}
    assert spool_files(store) == {made["recent"].documents[0].path, made["pending"].documents[0].path}
    assert await store.purge(now, 3600) == 0
    assert store.db.count("jobs") == 2


@pytest.mark.trio
async def test_run_purger(store):
    job = store.new_job(queue="q", user="u", state=JobState.COMPLETED, completed=time.time() - 10)
    await store.save(job)
    async with trio.open_nursery() as n:
        await n.start(store.run_purger, 5.0, 0.01)
        while store.get(job.id) is not None:
            await trio.sleep(0.01)
        n.cancel_scope.cancel()


@pytest.mark.trio
async def test_save_through_writer_task(store, state):
    async with trio.open_nursery() as n:
        await n.start(store.db.run)
        jobs = [store.new_job(queue="q", user=f"u{i}") for i in range(100)]
        async with trio.open_nursery() as inner:
            for j in jobs:
                inner.start_soon(store.save, j)
        n.cancel_scope.cancel()
    assert store.db.stats.commits < 100
    store = reopen(store, state)
    assert [j.id for j in store.jobs()] == list(range(1, 101))
    store.db.close()


# ---- a real crash -----------------------------------------------------------


def _run_and_kill(state: Path, acks: int, life: int) -> list[list[str]]:
    env = dict(os.environ, PYTHONPATH=str(REPO))
    proc = subprocess.Popen([sys.executable, str(Path(__file__).with_name("_crash_child.py")), str(state),
                             str(life)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, text=True)
    lines = []
    try:
        for line in proc.stdout:
            lines.append(line.split())
            if len(lines) >= acks:
                break
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.kill()
        _, err = proc.communicate(timeout=30)
    assert proc.returncode == -signal.SIGKILL, err
    return lines


@pytest.mark.parametrize("acks", [150, 400, 900])
def test_sigkill_mid_way(tmp_path, acks):
    state = tmp_path / "state"
    # three lives of a node, each killed mid-way on top of the previous one's state
    lives = []
    for life in (1, 2, 3):
        lines = _run_and_kill(state, acks // life, life)
        assert lines[0] == ["ready"]
        lives.append(lines)

    store = open_store(state)
    db = store.db
    try:
        files_before = spool_files(store)
        live = store.recover()

        # every acknowledged job is there with its complete document, unless we
        # deleted it, or its delete may have been in flight when the process died
        # (every third job of a worker, the last one it acknowledged)
        for life in lives:
            deleted = {int(a[1]) for a in life if a[0] == "deleted"}
            last_of = {}
            for a in life:
                if a[0] == "job":
                    last_of[a[4]] = int(a[5])
            for a in life:
                if a[0] != "job":
                    continue
                job_id, name, size, w, i = int(a[1]), a[2], int(a[3]), a[4], int(a[5])
                job = store.get(job_id)
                if job is None:
                    assert job_id in deleted or (i % 3 == 0 and i == last_of[w]), a
                    continue
                assert job.documents[0].path == name and job.documents[0].size == size
                assert store.path(name).stat().st_size == size
        acked = [a for life in lives for a in life]
        jobs = {int(a[1]) for a in acked if a[0] == "job"}
        # nothing aborted: every recorded document made it to disk before its record
        assert all(j.state != JobState.ABORTED for j in store.jobs(which="all"))
        assert set(j.id for j in live) == {j.id for j in store.jobs()}

        # no orphan files are left and every record's files exist
        referenced = {d.path for j in store.jobs(which="all") for d in j.documents}
        assert spool_files(store) == referenced
        assert files_before >= referenced

        # groups: all ten keys or none (no half-applied transaction), acked ones complete
        groups: dict[tuple[int, int, int], int] = {}
        for key, value in db.scan("meta", b"grp/"):
            g = (value["l"], value["w"], value["i"])
            groups[g] = groups.get(g, 0) + 1
        assert groups and set(groups.values()) == {10}
        for a in acked:
            if a[0] == "grp":
                assert groups.get((int(a[1]), int(a[2]), int(a[3]))) == 10
        # save_many: all three jobs of a tag or none
        tags: dict[str, set[int]] = {}
        for j in store.jobs("qm", which="all"):
            tags.setdefault(j.extra["tag"], set()).add(j.id)
        assert all(len(v) == 3 for v in tags.values())
        for a in acked:
            if a[0] == "many":
                assert tags[a[1]] == {int(x) for x in a[2].split(",")}

        # ids: never behind anything persisted
        highest = max((j.id for j in store.jobs(which="all")), default=0)
        acked_ids = set(jobs) | {int(x) for a in acked if a[0] == "many" for x in a[2].split(",")}
        assert store.next_id > max(highest, max(acked_ids))
        assert store.new_job(queue="q", user="u").id not in acked_ids
    finally:
        db.close()


# ---- model-based ------------------------------------------------------------


class StoreMachine(RuleBasedStateMachine):
    """JobStore against a dict of what must be on disk, across reopen."""

    def __init__(self):
        super().__init__()
        self.dir = Path(tempfile.mkdtemp(prefix="spool-sm-"))
        self.store = open_store(self.dir, sync=False)
        self.model: dict[int, dict] = {}  # id -> record committed
        self.ever: set[int] = set()  # every id ever committed
        self.unsaved: set[int] = set()
        self.now = 1_000_000.0

    def teardown(self):
        self.store.db.close()
        shutil.rmtree(self.dir, ignore_errors=True)

    def _commit(self, jobs):
        trio.run(self.store.save_many, jobs)
        for j in jobs:
            self.model[j.id] = j.to_record()
            self.ever.add(j.id)
            self.unsaved.discard(j.id)

    @rule(queue=st.sampled_from(["a", "b"]), save=st.booleans(), doc=st.none() | st.binary(max_size=64))
    def new(self, queue, save, doc):
        job = self.store.new_job(queue=queue, user="u", created=self.now)
        assert job.id > max(self.ever | set(self.model) | self.unsaved, default=0)
        if doc is not None:
            name, size = trio.run(self.store.spool_document, agen([doc]))
            self.store.add_document(job, name, size, "application/octet-stream")
        if save:
            self._commit([job])
        else:
            self.unsaved.add(job.id)

    @precondition(lambda self: self.model)
    @rule(data=st.data(), state=st.sampled_from(list(JobState)), age=st.floats(0, 7200))
    def change(self, data, state, age):
        job = self.store.get(data.draw(st.sampled_from(sorted(self.model))))
        job.state = state
        job.completed = self.now - age if JobState(state).is_final else None
        job.impressions_completed += 1
        self._commit([job])

    @precondition(lambda self: len(self.model) >= 2)
    @rule(data=st.data())
    def save_several(self, data):
        ids = data.draw(st.lists(st.sampled_from(sorted(self.model)), min_size=2, max_size=4, unique=True))
        jobs = [self.store.get(i) for i in ids]
        for j in jobs:
            j.k_octets += 1
        self._commit(jobs)

    @precondition(lambda self: self.model)
    @rule(data=st.data())
    def delete(self, data):
        job_id = data.draw(st.sampled_from(sorted(self.model)))
        trio.run(self.store.delete, self.store.get(job_id))
        del self.model[job_id]

    @precondition(lambda self: self.unsaved)
    @rule(data=st.data())
    def discard(self, data):
        job_id = data.draw(st.sampled_from(sorted(self.unsaved)))
        self.store.discard(self.store.get(job_id))
        self.unsaved.discard(job_id)

    @rule(history=st.sampled_from([0.0, 1800.0, 3600.0]))
    def purge(self, history):
        n = trio.run(self.store.purge, self.now, history)
        cutoff = self.now - history
        gone = [i for i, r in self.model.items()
                if r["state"] >= JobState.CANCELED
                and (r["completed"] if r["completed"] is not None else r["created"]) < cutoff]
        assert n == len(gone)
        for i in gone:
            del self.model[i]

    @rule()
    def reopen(self):
        self.store.db.close()
        self.store = open_store(self.dir, sync=False)
        self.unsaved.clear()
        assert self.store.recover() == self.store.jobs()
        assert self.store.next_id > max(self.ever, default=0)

    @invariant()
    def matches_model(self):
        all_jobs = self.store.jobs(which="all")
        assert [j.id for j in all_jobs] == sorted(self.model)
        for j in all_jobs:
            assert j.to_record() == self.model[j.id]
        for i in self.unsaved:
            assert self.store.get(i) is not None
        assert len(self.store) == len(self.model) + len(self.unsaved)
        on_disk = {k: v for k, v in self.store.db.scan("jobs")}
        assert {job_key(i) for i in self.model} == set(on_disk)
        referenced = {d.path for i in list(self.model) + list(self.unsaved)
                      for d in self.store.get(i).documents}
        assert spool_files(self.store) == referenced


TestStoreMachine = StoreMachine.TestCase
TestStoreMachine.settings = settings(max_examples=40, stateful_step_count=30, deadline=None,
                                     suppress_health_check=[HealthCheck.too_slow])


@pytest.fixture
def fsyncs(monkeypatch):
    """Every fsync the store makes, in order: ("file", path) and ("dir", its names)."""
    from spoolproxy.spool import store as store_mod

    events: list[tuple[str, object]] = []
    real_fsync = os.fsync

    def logged_fsync(fd):
        events.append(("file", os.readlink(f"/proc/self/fd/{fd}")))
        real_fsync(fd)

    def logged_fsync_dir(path):
        events.append(("dir", set(os.listdir(path))))

    monkeypatch.setattr(store_mod.os, "fsync", logged_fsync)
    monkeypatch.setattr(store_mod, "fsync_dir", logged_fsync_dir)
    return events


def _fsynced(events, name: str) -> bool:
    return any(kind == "file" and what.endswith("/" + name) for kind, what in events)


async def test_each_large_document_and_its_directory_entry_are_fsynced_before_return(tmp_path, fsyncs):
    """spool_document returns a document too large to be committed with its job only
    after the file's fsync and a directory fsync that came after the file was
    created, for every one of concurrent documents."""
    events = fsyncs
    returned: dict[str, int] = {}
    with Database(tmp_path / "db", sync=False) as db:
        store = JobStore(db, tmp_path / "spool", fsync=True)

        async def one(i):
            async def body():
                yield b"x" * (INLINE_MAX + i + 1)
                await trio.sleep(0)
            name, _ = await store.spool_document(body())
            returned[name] = len(events)

        async with trio.open_nursery() as n:
            for i in range(20):
                n.start_soon(one, i)
    assert len(returned) == 20
    for name, seen in returned.items():
        before = events[:seen]
        synced = [k for k, (kind, what) in enumerate(before) if kind == "file" and what.endswith("/" + name)]
        assert synced, f"{name} returned before its fsync"
        assert any(kind == "dir" and name in what for kind, what in before[synced[0]:]), \
            f"{name} returned before a directory fsync that saw it"


async def test_a_users_unfinished_jobs_of_a_queue_follow_saves_and_deletes(store, state):
    jobs = []
    for queue, user in (("q", "ann"), ("q", "bob"), ("q", "ann"), ("r", "ann")):
        j = store.new_job(queue=queue, user=user)
        await store.save(j)
        jobs.append(j)
    assert [j.id for j in store.jobs("q", user="ann")] == [jobs[0].id, jobs[2].id]
    jobs[0].state = JobState.COMPLETED
    await store.save(jobs[0])
    assert [j.id for j in store.jobs("q", user="ann")] == [jobs[2].id]
    assert [j.id for j in store.jobs("q", which="all", user="ann")] == [jobs[0].id, jobs[2].id]
    await store.delete(jobs[2])
    assert store.jobs("q", user="ann") == [] and [j.id for j in store.jobs("q", user="bob")] == [jobs[1].id]
    store.db.close()
    again = open_store(state)  # the index is rebuilt from the records
    assert [j.id for j in again.jobs("r", user="ann")] == [jobs[3].id]
    again.db.close()
    store.db = again.db  # the fixture closes it


# ---- small documents: committed with their job, their file fsynced later ----------


async def _small_job(store: JobStore, data: bytes) -> Job:
    job = store.new_job(queue="q", user="u", closed=True)
    name, size = await store.spool_document(agen([data[:3], data[3:]]))
    store.add_document(job, name, size, "application/pdf")
    return job


async def test_a_small_document_is_committed_with_its_job_and_its_file_settled_later(store, fsyncs):
    data = os.urandom(INLINE_MAX)
    job = await _small_job(store, data)
    name = job.documents[0].path
    assert not store.path(name).exists()  # kept in memory until the save
    assert store.db.get(INLINE, name.encode()) is None

    await store.save(job)
    assert store.path(name).read_bytes() == data  # written by the job's own commit
    assert store.db.get(INLINE, name.encode()) == data  # and carried by it
    assert not fsyncs, "a small document's file is not fsynced before its job's commit"

    assert await store.settle() == 1
    assert _fsynced(fsyncs, name)
    assert any(kind == "dir" and name in what for kind, what in fsyncs)
    assert store.db.get(INLINE, name.encode()) is None
    assert await store.settle() == 0


async def test_a_document_past_the_staging_budget_is_fsynced_at_once(store, fsyncs, monkeypatch):
    from spoolproxy.spool import store as store_mod
    monkeypatch.setattr(store_mod, "STAGED_MAX", 100)
    first = await _small_job(store, b"a" * 80)
    second = await _small_job(store, b"b" * 80)  # 160 bytes would be staged: over the budget
    assert not _fsynced(fsyncs, first.documents[0].path)
    assert _fsynced(fsyncs, second.documents[0].path)
    await store.save_many([first, second])
    assert store.db.get(INLINE, first.documents[0].path.encode()) == b"a" * 80
    assert store.db.get(INLINE, second.documents[0].path.encode()) is None
    third = await _small_job(store, b"c" * 80)  # the save freed the budget
    assert not _fsynced(fsyncs, third.documents[0].path)
    store.discard(third)
    fourth = await _small_job(store, b"d" * 80)  # so did the discard
    assert not _fsynced(fsyncs, fourth.documents[0].path)


async def test_recover_restores_the_small_documents_a_crash_lost(store, state, caplog):
    S = JobState
    datas = [os.urandom(1000 + i) for i in range(5)]
    jobs = [await _small_job(store, d) for d in datas]
    await store.save_many(jobs)
    kept, lost, truncated, garbled, deleted = jobs
    store.path(lost.documents[0]).unlink()
    store.path(truncated.documents[0]).write_bytes(datas[2][:10])
    store.path(garbled.documents[0]).write_bytes(bytes(len(datas[3])))
    await store.delete(deleted)  # its copy is left over: no job refers to it

    store = reopen(store, state)
    live = store.recover()
    assert [j.id for j in live] == [kept.id, lost.id, truncated.id, garbled.id]
    for job, data in zip(jobs[:4], datas):
        assert store.get(job.id).state == S.PENDING
        assert store.path(job.documents[0]).read_bytes() == data
    assert store.db.count(INLINE) == 0
    assert "restored 3 spool file(s)" in caplog.text
    assert spool_files(store) == {j.documents[0].path for j in jobs[:4]}
    store.db.close()


async def test_run_settler_settles_saved_documents(store):
    job = await _small_job(store, b"%PDF-1.4 small")
    await store.save(job)
    async with trio.open_nursery() as n:
        await n.start(store.run_settler, 0.01)
        while store.db.count(INLINE):
            await trio.sleep(0.01)
        n.cancel_scope.cancel()
    assert store.path(job.documents[0]).read_bytes() == b"%PDF-1.4 small"


async def test_a_small_document_that_cannot_be_written_fails_its_save_only(store, monkeypatch):
    from spoolproxy.spool import store as store_mod
    ok = await _small_job(store, b"fine")
    full = await _small_job(store, b"no room")
    real_open = os.open

    def no_space(path, flags, mode=0o777, **kw):
        if str(path).endswith(full.documents[0].path) and flags & os.O_CREAT:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_open(path, flags, mode, **kw)

    monkeypatch.setattr(store_mod.os, "open", no_space)
    async with trio.open_nursery() as n:
        await n.start(store.db.run)
        results = {}

        async def save(job):
            try:
                await store.save(job)
                results[job.id] = "saved"
            except SpoolFull as e:
                results[job.id] = e.ipp_status

        async with trio.open_nursery() as inner:
            inner.start_soon(save, ok)
            inner.start_soon(save, full)
        n.cancel_scope.cancel()
    assert results == {ok.id: "saved", full.id: Status.TEMPORARY_ERROR}
    assert store.db.get("jobs", job_key(full.id)) is None
    assert store.db.get(INLINE, full.documents[0].path.encode()) is None
    assert store.path(ok.documents[0]).read_bytes() == b"fine"


async def test_a_saved_job_whose_new_document_is_being_committed_is_not_handed_on(tmp_path, monkeypatch):
    """Create-Job then Send-Document: the job is saved (and indexed) already, and its
    document's file exists only once the second save commits. Neither the document
    engine nor a printer may see the job before that."""
    for analysis in (True, False):
        with Database(tmp_path / f"db{analysis}", sync=False) as db:
            store = JobStore(db, tmp_path / f"spool{analysis}", fsync=True, analysis=analysis)
            job = store.new_job(queue="q", user="u", state=JobState.PENDING)
            await store.save(job)
            name, size = await store.spool_document(agen([b"%PDF-1.4 late"]))
            store.add_document(job, name, size, "application/pdf")
            job.closed = True
            if not analysis:
                job.analyzed = True

            gate = trio.Event()
            real = db.transact

            async def held(fn, **kw):
                await gate.wait()
                return await real(fn, **kw)

            monkeypatch.setattr(db, "transact", held)

            def visible():
                return ([j.id for j in store.iter_unanalyzed()] if analysis
                        else [j.id for j in store.iter_deliverable("q")])

            async with trio.open_nursery() as n:
                n.start_soon(store.save, job)
                await trio.testing.wait_all_tasks_blocked()
                assert visible() == []  # indexed, its file not written yet
                gate.set()
            assert visible() == [job.id]
            assert store.path(name).read_bytes() == b"%PDF-1.4 late"
