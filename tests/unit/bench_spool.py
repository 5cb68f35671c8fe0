"""Numbers for the node database and the spool on this machine (printed, never asserted).

    PYTHONPATH=. python tests/unit/bench_spool.py [--gib 1]
"""
from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

import trio

import spoolproxy.spool.store as store_mod
from spoolproxy.db import Database
from spoolproxy.ipp.model import JobState
from spoolproxy.spool import JobStore


def fresh(root: Path, name: str, *, sync: bool = True) -> JobStore:
    state = root / name
    return JobStore(Database(state / "db", map_size=1 << 32, sync=sync), state / "spool", fsync=sync)


async def source(total: int, chunk: int = 64 << 10):
    blocks = [bytes([i]) * chunk for i in range(16)]  # distinct objects, like socket reads
    sent = 0
    i = 0
    while sent < total:
        yield blocks[i % 16]
        sent += chunk
        i += 1


async def bench_spool(root: Path, gib: float) -> None:
    total = int(gib * (1 << 30))
    # the first large write on a VM is often slow (page cache warm-up): run a round first
    for flush in (1 << 20, 256 << 10, 1 << 20, 4 << 20, 1 << 20):
        store_mod.FLUSH_BYTES = flush
        for fsync in (True, False):
            store = fresh(root, f"spool-{flush}-{fsync}", sync=fsync)
            t = time.perf_counter()
            name, size = await store.spool_document(source(total))
            dt = time.perf_counter() - t
            print(f"spool_document {size / 2**20:.0f} MiB, flush {flush >> 10} KiB, fsync={fsync}: "
                  f"{size / 2**20 / dt:.0f} MiB/s")
            store.discard_file(name)
            store.db.close()
    store_mod.FLUSH_BYTES = 1 << 20
    store = fresh(root, "small")
    n = 200
    t = time.perf_counter()
    for _ in range(n):
        await store.spool_document(source(20_000, 20_000))
    dt = time.perf_counter() - t
    print(f"spool_document of 20 kB documents, fsync: {n / dt:.0f} documents/s ({dt / n * 1e3:.2f} ms each)")
    store.db.close()


async def bench_saves(root: Path) -> None:
    for sync in (True, False):
        store = fresh(root, f"saves-{sync}", sync=sync)
        n = 500
        jobs = [store.new_job(queue="q", user="u", attributes=b"x" * 400) for _ in range(n)]
        t = time.perf_counter()
        for j in jobs:
            await store.save(j)
        serial = n / (time.perf_counter() - t)

        clients, each = 64, 50
        async with trio.open_nursery() as outer:
            await outer.start(store.db.run)
            before = store.db.stats.commits

            async def client():
                for _ in range(each):
                    j = store.new_job(queue="q", user="u", attributes=b"x" * 400)
                    await store.save(j)
                    j.state = JobState.COMPLETED
                    await store.save(j)

            t = time.perf_counter()
            async with trio.open_nursery() as n_:
                for _ in range(clients):
                    n_.start_soon(client)
            dt = time.perf_counter() - t
            commits = store.db.stats.commits - before
            outer.cancel_scope.cancel()
        saves = clients * each * 2
        print(f"JobStore.save, fsync={sync}: one at a time {serial:.0f}/s; {clients} concurrent clients "
              f"through the writer {saves / dt:.0f}/s ({saves} saves in {commits} commits)")
        store.db.close()


async def bench_reads(root: Path) -> None:
    store = fresh(root, "reads", sync=False)
    n = 10_000
    jobs = []
    for i in range(n):
        j = store.new_job(queue=f"q{i % 4}", user=f"u{i % 50}", attributes=b"x" * 400)
        j.closed = True
        if i % 3:
            j.state = JobState.COMPLETED
            j.completed = time.time()
        jobs.append(j)
    for k in range(0, n, 1000):
        await store.save_many(jobs[k:k + 1000])
    db = store.db
    db.close()
    t = time.perf_counter()
    store = fresh(root, "reads", sync=False)
    print(f"JobStore load of {n} jobs: {(time.perf_counter() - t) * 1e3:.0f} ms")
    from spoolproxy.db import job_key
    reps = 20_000
    t = time.perf_counter()
    for i in range(reps):
        store.db.get("jobs", job_key(i % n + 1))
    print(f"Database.get of a job record: {(time.perf_counter() - t) / reps * 1e6:.1f} us")
    for label, fn in [("jobs(q) not-completed", lambda: store.jobs("q1")),
                      ("jobs(q, completed)", lambda: store.jobs("q1", which="completed")),
                      ("jobs(all, user=)", lambda: store.jobs(which="all", user="u7")),
                      ("deliverable(q)", lambda: store.deliverable("q1"))]:
        reps = 50
        t = time.perf_counter()
        for _ in range(reps):
            got = fn()
        print(f"{label} over {n} jobs: {(time.perf_counter() - t) / reps * 1e3:.2f} ms ({len(got)} jobs)")
    t = time.perf_counter()
    count = await store.purge(time.time() + 10, 0)
    print(f"purge of {count} jobs: {(time.perf_counter() - t) * 1e3:.0f} ms")
    store.db.close()


async def main(gib: float) -> None:
    root = Path(tempfile.mkdtemp(prefix="spool-bench-"))
    try:
        await bench_saves(root)
        await bench_reads(root)
        await bench_spool(root, gib)
    finally:
        shutil.rmtree(root)


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--gib", type=float, default=1.0)
    trio.run(main, ap.parse_args().gib)
