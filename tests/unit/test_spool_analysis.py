"""spoolproxy.spool.analysis: the analysis stage between spooling and delivery."""
from __future__ import annotations

import functools
import os
import types
from pathlib import Path

import pytest
import trio

from spoolproxy import pdl
from spoolproxy.db import Database
from spoolproxy.ipp.model import JobState
from spoolproxy.spool import JobStore
from spoolproxy.spool.analysis import MAX_KINDS, WORKER_NICE, Analyzer, job_totals, summary


def open_store(state: Path) -> JobStore:
    return JobStore(Database(state / "db", map_size=1 << 28, sync=False), state / "spool",
                    fsync=False, analysis=True)


@pytest.fixture
def state(tmp_path):
    return tmp_path / "state"


@pytest.fixture
def store(state):
    s = open_store(state)
    yield s
    s.db.close()


def queues(**kw):
    q = types.SimpleNamespace(uncountable="print", ghostscript=False, analysis_timeout=10.0)
    for k, v in kw.items():
        setattr(q, k, v)
    return {"q": q}


async def agen(data: bytes):
    yield data


async def closed_job(store: JobStore, *docs: tuple[bytes, str]):
    job = store.new_job(queue="q", user="alice")
    for data, fmt in docs:
        name, size = await store.spool_document(agen(data))
        store.add_document(job, name, size, fmt)
    job.closed = True
    await store.save(job)
    return job


TEXT_3_PAGES = b"one\fthree\fpages\n"


async def test_a_job_is_deliverable_only_after_analysis(store):
    job = await closed_job(store, (TEXT_3_PAGES, "text/plain"))
    assert store.deliverable("q") == [] and list(store.iter_unanalyzed()) == [job]
    await Analyzer(store, queues(), processes=False).analyze_job(job)
    assert job.analyzed and store.deliverable("q") == [job] and list(store.iter_unanalyzed()) == []
    assert job.created <= job.extra["stages"]["analysed"] and "admit_ms" not in job.extra["stages"]  # no admission
    a = job.documents[0].analysis
    assert (a["format"], a["pages"], a["impressions"], a["color_impressions"], a["mismatch"]) == \
        ("text/plain", 3, 3, 0, False)
    assert job_totals(job) == {"pages": 3, "impressions": 3, "color_impressions": 0, "sheets": 3}


async def test_summary_survives_a_restart(store, state):
    job = await closed_job(store, (TEXT_3_PAGES, "application/pdf"))
    await Analyzer(store, queues(), processes=False).analyze_job(job)
    store.db.close()
    again = open_store(state)
    try:
        j = again.get(job.id)
        assert j.analyzed and j.documents[0].analysis["mismatch"] is True
        assert j.documents[0].analysis["claimed"] == "application/pdf"
        assert again.deliverable("q") == [j]
    finally:
        again.db.close()


async def test_unanalysed_jobs_are_picked_up_by_the_running_stage(store):
    first = await closed_job(store, (TEXT_3_PAGES, "text/plain"))
    async with trio.open_nursery() as nursery:
        await nursery.start(Analyzer(store, queues()).run)
        second = await closed_job(store, (b"x\n", "text/plain"))
        with trio.fail_after(10):
            while not (first.analyzed and second.analyzed):
                await store.wait_changed()
        nursery.cancel_scope.cancel()
    assert [j.id for j in store.deliverable("q")] == [first.id, second.id]


@pytest.mark.parametrize("mode, state_, reason", [
    ("print", JobState.PENDING, "none"),
    ("hold", JobState.PENDING_HELD, "job-held-for-review"),
    ("cancel", JobState.ABORTED, "document-unprintable-error"),
])
async def test_uncountable_document_follows_the_queue_setting(store, mode, state_, reason):
    job = await closed_job(store, (b"\x00\x01\x02binary junk", "application/octet-stream"))
    await Analyzer(store, queues(uncountable=mode), processes=False).analyze_job(job)
    assert job.documents[0].analysis["kind"] == "UnsupportedFormat"
    assert job.state == state_ and job.state_reasons == [reason]
    if mode == "print":
        assert "document 1" in job.extra["uncounted"] and store.deliverable("q") == [job]
    else:
        assert "could not be counted" in job.state_message and store.deliverable("q") == []
    assert job_totals(job) is None


async def test_a_scanner_bug_is_recorded_not_raised(store, monkeypatch):
    job = await closed_job(store, (TEXT_3_PAGES, "text/plain"))

    def broken(*a, **k):
        raise ZeroDivisionError("bug")

    monkeypatch.setattr(pdl, "analyze", broken)
    await Analyzer(store, queues(), processes=False).analyze_job(job)
    assert job.documents[0].analysis == {"error": "bug", "kind": "ZeroDivisionError"}


async def test_a_job_cancelled_during_analysis_stays_cancelled(store, monkeypatch):
    job = await closed_job(store, (b"\x00junk", "application/octet-stream"))
    real = pdl.analyze

    def cancel_then_analyze(*a, **k):
        job.state = JobState.CANCELED  # the Cancel-Job that arrives meanwhile
        return real(*a, **k)

    monkeypatch.setattr(pdl, "analyze", cancel_then_analyze)
    await Analyzer(store, queues(uncountable="hold"), processes=False).analyze_job(job)
    assert job.state == JobState.CANCELED and job.analyzed


def test_summary_bounds_the_page_kinds():
    runs = tuple(pdl.PageRun(1, color=bool(i % 2), media=(1000 + i, 2000)) for i in range(500))
    s = summary(pdl.Analysis("application/pdf", runs))
    assert len(s["kinds"]) <= MAX_KINDS and sum(k[0] for k in s["kinds"]) == 500
    assert s["color_impressions"] == 250


async def test_a_crashing_engine_worker_is_recorded_and_the_stage_goes_on(store):
    analyzer = Analyzer(store, queues())
    async with trio.open_nursery() as nursery:
        await nursery.start(analyzer.run)
        # what a segfault in a compiled scanner looks like from here: the worker dies
        crashed = await analyzer._run(functools.partial(os._exit, 3), None)
        assert crashed == {"error": "the document engine crashed on this document", "kind": "EngineCrash"}
        job = await closed_job(store, (TEXT_3_PAGES, "text/plain"))
        with trio.fail_after(30):
            while not job.analyzed:
                await store.wait_changed()
        assert job.documents[0].analysis["pages"] == 3
        nursery.cancel_scope.cancel()


async def test_engine_workers_run_below_the_nodes_priority(store):
    # a burst of jobs must not wait for the CPU behind counting the pages of jobs
    # already on disk: the workers (and the Ghostscript they start) are niced
    analyzer = Analyzer(store, queues())
    async with trio.open_nursery() as nursery:
        await nursery.start(analyzer.run)
        worker = await analyzer.convert(os.nice, 0)
        assert worker == min(19, os.nice(0) + WORKER_NICE)
        nursery.cancel_scope.cancel()


async def test_the_upstream_is_woken_when_a_job_becomes_deliverable(store):
    woken: list[str] = []
    job = await closed_job(store, (TEXT_3_PAGES, "text/plain"))
    await Analyzer(store, queues(), processes=False, on_ready=woken.append).analyze_job(job)
    assert woken == ["q"]
    held = await closed_job(store, (b"\x00junk", "application/octet-stream"))
    await Analyzer(store, queues(uncountable="hold"), processes=False, on_ready=woken.append).analyze_job(held)
    assert woken == ["q"]  # a held job is not deliverable: nobody is woken
