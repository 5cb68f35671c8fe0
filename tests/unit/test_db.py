"""spoolproxy.db: tables, msgpack values, inline reads, group commit, multi-process reads."""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import trio

from spoolproxy.db import (TABLES, Database, DatabaseClosed, DatabaseError, DatabaseFull, job_key,
                           key_job_id, u64_key)

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def db(tmp_path):
    d = Database(tmp_path / "db", map_size=1 << 28)
    yield d
    d.close()


def test_tables_declared():
    assert "jobs" in TABLES and "meta" in TABLES


def test_roundtrip_types(db):
    value = {"s": "text", "b": b"\x00\xffbytes", "i": 2**40, "f": 1.5, "n": None,
             "l": [1, "two", b"3"], "m": {"k": [True, False]}, 7: "int key"}
    db.write_now([("meta", b"k", value)])
    assert db.get("meta", b"k") == value
    assert db.get("meta", b"missing") is None
    assert db.get("jobs", b"k") is None  # tables are separate


def test_u64_keys_sort_numerically(db):
    ids = [1, 2, 255, 256, 10_000, 2**31 - 1, 3]
    db.write_now([("jobs", job_key(i), {"id": i}) for i in ids])
    assert [key_job_id(k) for k, _ in db.scan("jobs")] == sorted(ids)
    assert key_job_id(db.last("jobs")[0]) == 2**31 - 1
    assert u64_key(5) == b"\0\0\0\0\0\0\0\x05"


def test_scan_prefix_and_chunks(db):
    ops = [("meta", b"a/%05d" % i, i) for i in range(1500)]
    ops += [("meta", b"b/%05d" % i, -i) for i in range(3)]
    ops += [("meta", b"a", "bare"), ("meta", b"\xff\xff", "high")]
    db.write_now(ops)
    got = list(db.scan("meta", b"a/"))
    assert [v for _, v in got] == list(range(1500))  # more than one scan chunk
    assert [v for _, v in db.scan("meta", b"b/")] == [0, -1, -2]
    assert list(db.scan("meta", b"zz")) == []
    assert len(list(db.scan("meta"))) == 1505
    assert db.last("meta", b"a/") == (b"a/01499", 1499)
    assert db.last("meta", b"b/") == (b"b/00002", -2)
    assert db.last("meta", b"\xff") == (b"\xff\xff", "high")
    assert db.last("meta", b"c") is None
    assert db.count("meta") == 1505


def test_delete_with_none(db):
    db.write_now([("meta", b"x", 1), ("meta", b"y", 2)])
    db.write_now([("meta", b"x", None), ("meta", b"never-there", None)])
    assert db.get("meta", b"x") is None and db.get("meta", b"y") == 2


def test_bad_ops_fail_in_caller(db):
    with pytest.raises(KeyError):
        db.write_now([("nope", b"k", 1)])
    with pytest.raises(ValueError):
        db.write_now([("meta", b"", 1)])
    with pytest.raises(ValueError):
        db.write_now([("meta", b"k" * 600, 1)])
    with pytest.raises(ValueError):
        db.write_now([("meta", "str key", 1)])  # type: ignore[list-item]
    with pytest.raises(TypeError):
        db.write_now([("meta", b"k", object())])
    assert db.stats.commits == 0


def test_closed(tmp_path):
    d = Database(tmp_path / "db")
    d.close()
    d.close()  # idempotent
    with pytest.raises(DatabaseClosed):
        d.get("meta", b"k")
    with pytest.raises(DatabaseClosed):
        d.write_now([("meta", b"k", 1)])


def test_files_private(tmp_path):
    with Database(tmp_path / "db") as d:
        d.write_now([("meta", b"k", 1)])
    assert (tmp_path / "db").stat().st_mode & 0o777 == 0o700
    for f in (tmp_path / "db").iterdir():
        assert f.stat().st_mode & 0o077 == 0, f


def test_reopen_sees_everything(tmp_path):
    with Database(tmp_path / "db") as d:
        d.write_now([("jobs", job_key(i), {"i": i}) for i in range(100)])
        d.write_now([("meta", b"next_id", 101)])
    with Database(tmp_path / "db") as d:
        assert [v["i"] for _, v in d.scan("jobs")] == list(range(100))
        assert d.get("meta", b"next_id") == 101


@pytest.mark.trio
async def test_write_without_writer_task(db):
    await db.write([("meta", b"a", 1)])
    assert db.get("meta", b"a") == 1
    assert not db.writer_running

    # concurrent direct writers commit in call order (whatever order trio runs them)
    calls = []

    async def writer():
        calls.append(len(calls))
        await db.write([("meta", b"same", calls[-1])])

    async with trio.open_nursery() as n:
        for _ in range(20):
            n.start_soon(writer)
    assert db.get("meta", b"same") == calls[-1] == 19


@pytest.mark.trio
async def test_group_commit(tmp_path):
    with Database(tmp_path / "db", sync=True) as d:
        callers = 200
        async with trio.open_nursery() as outer:
            await outer.start(d.run)
            assert d.writer_running

            async def writer(i):
                await d.write([("jobs", job_key(i), {"i": i}), ("meta", b"last/%d" % (i % 7), i)])

            async with trio.open_nursery() as n:
                for i in range(callers):
                    n.start_soon(writer, i)
            outer.cancel_scope.cancel()
        assert not d.writer_running
        print(f"\n{callers} callers -> {d.stats.commits} commits")
        assert d.stats.requests == callers
        assert d.stats.commits < callers
        assert d.stats.ops == 2 * callers
    with Database(tmp_path / "db") as d:
        assert [v["i"] for _, v in d.scan("jobs")] == list(range(callers))


@pytest.mark.trio
async def test_writer_keeps_call_order(db):
    calls = []

    async def writer():
        calls.append(len(calls))  # the value is taken when write() is called
        await db.write([("meta", b"same", calls[-1])])

    async with trio.open_nursery() as outer:
        await outer.start(db.run)
        async with trio.open_nursery() as n:
            for i in range(100):
                n.start_soon(writer)
                if i % 10 == 0:
                    await trio.sleep(0)
        outer.cancel_scope.cancel()
    assert db.get("meta", b"same") == calls[-1] == 99


@pytest.mark.trio
async def test_failure_isolated_to_its_caller(tmp_path):
    # a tiny map: one request whose value cannot fit fails, the rest of its batch commits
    with Database(tmp_path / "db", map_size=1 << 20, sync=False) as d:
        results: dict[int, object] = {}

        async def writer(i, size):
            try:
                await d.write([("meta", b"k%d" % i, b"x" * size)])
                results[i] = "ok"
            except DatabaseError as e:
                results[i] = e

        async with trio.open_nursery() as outer:
            await outer.start(d.run)
            async with trio.open_nursery() as n:
                for i in range(10):
                    n.start_soon(writer, i, 4 << 20 if i == 5 else 100)
            outer.cancel_scope.cancel()
        assert isinstance(results.pop(5), DatabaseFull)
        assert set(results.values()) == {"ok"}
        assert d.get("meta", b"k5") is None
        assert all(d.get("meta", b"k%d" % i) == b"x" * 100 for i in results)
        # the writer survived the failure and the database is still usable
        await d.write([("meta", b"after", 1)])
        assert d.get("meta", b"after") == 1


@pytest.mark.trio
async def test_writer_cancel_finishes_queued_and_falls_back(db):
    done = []

    async def writer(i):
        await db.write([("meta", b"w%d" % i, i)])
        done.append(i)

    async with trio.open_nursery() as callers:
        async with trio.open_nursery() as wn:
            await wn.start(db.run)
            for i in range(50):
                callers.start_soon(writer, i)
            await trio.sleep(0)  # let the callers queue their writes
            wn.cancel_scope.cancel()  # writer stops; the queued writes still commit
        assert not db.writer_running
        for i in range(50, 60):  # later writes commit without the writer
            callers.start_soon(writer, i)
    assert sorted(done) == list(range(60))
    assert all(db.get("meta", b"w%d" % i) == i for i in range(60))
    # the writer can be started again
    async with trio.open_nursery() as n:
        await n.start(db.run)
        await db.write([("meta", b"again", 1)])
        n.cancel_scope.cancel()
    assert db.get("meta", b"again") == 1


@pytest.mark.trio
async def test_a_caller_cancelled_while_queued_leaves_the_others_and_its_write(db, monkeypatch):
    real = db._commit
    release = trio.Event()
    token = trio.lowlevel.current_trio_token()

    def held_commit(groups):
        trio.from_thread.run(release.wait, trio_token=token)  # hold the batch until told
        real(groups)

    monkeypatch.setattr(db, "_commit", held_commit)
    done = []

    async def writer(i):
        await db.write([("meta", b"q%d" % i, i)])
        done.append(i)

    async with trio.open_nursery() as wn:
        await wn.start(db.run)
        async with trio.open_nursery() as callers:
            for i in range(5):
                callers.start_soon(writer, i)
            with trio.move_on_after(0.05) as gave_up:  # one caller stops waiting
                await db.write([("meta", b"gone", 1)])
            assert gave_up.cancelled_caught
            release.set()
        wn.cancel_scope.cancel()
    assert sorted(done) == list(range(5))  # the others are woken as usual
    assert db.get("meta", b"gone") == 1  # and the cancelled caller's write was still applied


@pytest.mark.trio
async def test_writer_cancelled_mid_commit_finishes_the_batch(db, monkeypatch):
    real = db._commit
    in_commit = trio.Event()
    token = trio.lowlevel.current_trio_token()

    def slow_commit(groups):
        token.run_sync_soon(in_commit.set)
        time.sleep(0.2)  # the fsync of a slow disk
        real(groups)

    monkeypatch.setattr(db, "_commit", slow_commit)
    ok = []

    async def writer(i):
        await db.write([("meta", b"m%d" % i, i)])
        ok.append(i)

    async with trio.open_nursery() as callers:
        async with trio.open_nursery() as wn:
            await wn.start(db.run)
            for i in range(5):
                callers.start_soon(writer, i)
            await in_commit.wait()
            wn.cancel_scope.cancel()
        # the writer returned only after its batch was committed
        assert all(db.get("meta", b"m%d" % i) == i for i in range(5))
    assert sorted(ok) == list(range(5))


@pytest.mark.trio
async def test_writer_twice_is_an_error(db):
    async with trio.open_nursery() as n:
        await n.start(db.run)
        with pytest.raises(RuntimeError):
            await db.run()
        n.cancel_scope.cancel()


@pytest.mark.trio
async def test_reads_stay_inline_while_writer_commits(db):
    db.write_now([("meta", b"r", "before")])
    async with trio.open_nursery() as n:
        await n.start(db.run)
        n.start_soon(db.write, [("meta", b"r", "after")] + [("jobs", job_key(i), i) for i in range(5000)])
        seen = {db.get("meta", b"r")}
        while db.get("meta", b"r") != "after":
            seen.add(db.get("meta", b"r"))
            await trio.sleep(0)
        n.cancel_scope.cancel()
    assert seen <= {"before", "after"}
    assert db.count("jobs") == 5000


def _child(code: str, *args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(REPO))
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code), *args], env=env,
                          capture_output=True, text=True, timeout=60)


def test_second_process_reads_while_open(tmp_path):
    path = tmp_path / "db"
    with Database(path) as d:
        d.write_now([("jobs", job_key(i), {"i": i}) for i in range(1, 4)])
        reader = """
            import sys
            from spoolproxy.db import Database, key_job_id
            with Database(sys.argv[1], readonly=True) as r:
                print([key_job_id(k) for k, _ in r.scan("jobs")], r.get("meta", b"x"))
                try:
                    r.write_now([("meta", b"x", 1)])
                except Exception as e:
                    print(type(e).__name__)
        """
        out = _child(reader, str(path))
        assert out.returncode == 0, out.stderr
        assert out.stdout.split("\n")[:2] == ["[1, 2, 3] None", "DatabaseError"]
        d.write_now([("jobs", job_key(4), {"i": 4}), ("meta", b"x", "y")])
        out = _child(reader, str(path))
        assert out.stdout.startswith("[1, 2, 3, 4] y"), out.stderr
        # and it may also write while we have it open (LMDB's lock serialises)
        out = _child("""
            import sys
            from spoolproxy.db import Database
            with Database(sys.argv[1]) as w:
                w.write_now([("meta", b"from-child", 1)])
        """, str(path))
        assert out.returncode == 0, out.stderr
        assert d.get("meta", b"from-child") == 1


def test_readonly_missing_database(tmp_path):
    with pytest.raises(DatabaseError):
        Database(tmp_path / "nothing", readonly=True)


def test_readonly_missing_table(tmp_path):
    with Database(tmp_path / "db", tables=("meta",)) as d:
        d.write_now([("meta", b"k", 1)])
    with Database(tmp_path / "db", readonly=True) as r:  # "jobs" was never created
        assert r.get("jobs", b"k") is None
        assert list(r.scan("jobs")) == []
        assert r.last("jobs") is None and r.count("jobs") == 0
        assert r.get("meta", b"k") == 1


def test_measure_commit_rates(tmp_path):
    """Prints saves/s with fsync: one commit per save vs grouped (not asserted)."""
    n = 300
    record = {"pad": b"x" * 600}
    with Database(tmp_path / "db", sync=True) as d:
        t = time.perf_counter()
        for i in range(n):
            d.write_now([("jobs", job_key(i), record)])
        serial = n / (time.perf_counter() - t)

        clients, each = 50, 40  # closed loop: every client waits for its commit

        async def grouped():
            async def client(c):
                for i in range(each):
                    await d.write([("jobs", job_key(10_000 + c * each + i), record)])

            async with trio.open_nursery() as outer:
                await outer.start(d.run)
                async with trio.open_nursery() as nn:
                    for c in range(clients):
                        nn.start_soon(client, c)
                outer.cancel_scope.cancel()

        before = d.stats.commits
        t = time.perf_counter()
        trio.run(grouped)
        rate = clients * each / (time.perf_counter() - t)
        print(f"\nfsync'd saves/s: one commit each {serial:.0f}/s; {clients} concurrent clients "
              f"through the writer {rate:.0f}/s ({clients * each} saves in "
              f"{d.stats.commits - before} commits)")


async def test_writer_stops_promptly_under_a_flood_of_writes(db):
    """The writer goes from one commit straight to the next while writes keep coming;
    it must still notice that the node is stopping."""
    written = 0

    async def flood(n: int) -> None:
        nonlocal written
        for i in range(10**9):
            await db.write([("meta", f"flood-{n}-{i}".encode(), i)])
            written += 1

    with trio.fail_after(20):
        async with trio.open_nursery() as nursery:
            await nursery.start(db.run)
            for n in range(8):
                nursery.start_soon(flood, n)
            while written < 200:
                await trio.sleep(0.01)
            nursery.cancel_scope.cancel()
    assert written >= 200


async def test_transact_runs_a_function_in_the_group_and_isolates_its_failure(db):
    async def ok(n):
        return await db.transact(lambda t: (t.put("meta", b"k%d" % n, n), n)[1])

    def half_then_fail(t):
        t.put("meta", b"half", 1)
        raise ValueError("no")

    async with trio.open_nursery() as nursery:
        await nursery.start(db.run)
        results = []

        async def one(n):
            results.append(await ok(n))

        async with trio.open_nursery() as callers:
            for n in range(20):
                callers.start_soon(one, n)
            with pytest.raises(ValueError):
                await db.transact(half_then_fail)
        nursery.cancel_scope.cancel()
    assert sorted(results) == list(range(20))
    assert db.get("meta", b"half") is None and db.get("meta", b"k7") == 7


def test_scan_both_ways_across_chunks(db):
    db.write_now([("meta", b"a" + u64_key(i), i) for i in range(1500)]
                 + [("meta", b"b" + u64_key(i), i) for i in range(10)] + [("meta", b"\xff\xff", -1)])
    forward = [v for _, v in db.scan("meta", b"a")]
    assert forward == list(range(1500))
    assert [v for _, v in db.scan_reverse("meta", b"a")] == forward[::-1]
    assert [v for _, v in db.scan_reverse("meta", b"b")] == list(range(9, -1, -1))
    assert len(list(db.scan_reverse("meta"))) == len(list(db.scan("meta"))) == 1511
