"""Child process for the crash test (tests/unit/test_spool_store.py): runs the
database writer and several tasks that spool documents, save jobs and write
multi-key groups as fast as they can, printing one line per acknowledged write,
until the parent SIGKILLs it.

Lines:  job ID NAME SIZE W I | grp L W I | many TAG ID,ID,ID | deleted ID
(L: the "life" given on the command line, so that two runs never share keys)
"""
from __future__ import annotations

import random
import sys
from pathlib import Path

import trio

from spoolproxy.db import Database
from spoolproxy.ipp.model import JobState
from spoolproxy.spool import JobStore

GROUP = 10  # keys per atomic group


async def chunks(size: int, seed: int):
    block = bytes([seed % 251]) * 65536
    left = size
    while left:
        n = min(left, len(block))
        yield block[:n]
        left -= n
        await trio.sleep(0)


async def worker(life: int, w: int, db: Database, store: JobStore) -> None:
    rng = random.Random(w)
    i = 0
    while True:
        i += 1
        size = rng.randrange(1, 600_000)
        name, got = await store.spool_document(chunks(size, w + i))
        job = store.new_job(queue=f"q{w % 2}", user=f"u{w}", name=f"w{w}-{i}")
        store.add_document(job, name, got, "application/octet-stream")
        job.closed = True
        await store.save(job)
        print(f"job {job.id} {name} {got} {w} {i}", flush=True)

        ops = [("meta", b"grp/%d/%d/%d/%d" % (life, w, i, k), {"l": life, "w": w, "i": i, "k": k})
               for k in range(GROUP)]
        await db.write(ops)
        print(f"grp {life} {w} {i}", flush=True)

        tag = f"{life}-{w}-{i}"
        many = [store.new_job(queue="qm", user=f"u{w}", extra={"tag": tag}) for _ in range(3)]
        await store.save_many(many)
        print(f"many {tag} {','.join(str(j.id) for j in many)}", flush=True)

        if i % 3 == 0:  # finish and delete an older job now and then
            job.state = JobState.COMPLETED
            await store.save(job)
            await store.delete(job)
            print(f"deleted {job.id}", flush=True)


async def grouper(life: int, w: int, db: Database) -> None:
    """Multi-key writes back to back, so that a kill most likely lands in one."""
    i = 0
    while True:
        i += 1
        await db.write([("meta", b"grp/%d/%d/%d/%d" % (life, w, i, k), {"l": life, "w": w, "i": i, "k": k})
                        for k in range(GROUP)])
        print(f"grp {life} {w} {i}", flush=True)


async def main(state: Path, life: int) -> None:
    db = Database(state / "db", map_size=1 << 30)
    store = JobStore(db, state / "spool")
    store.recover()
    async with trio.open_nursery() as nursery:
        await nursery.start(db.run)
        print("ready", flush=True)
        for w in range(8):
            nursery.start_soon(worker, life, w, db, store)
        for w in range(100, 104):
            nursery.start_soon(grouper, life, w, db)


if __name__ == "__main__":
    trio.run(main, Path(sys.argv[1]), int(sys.argv[2]))
