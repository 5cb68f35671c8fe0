"""Delivery to a real printer: CUPS ``ippeveprinter`` (cups-ipp-utils) keeping every job
it receives (-k). Documents must arrive byte-identical and the proxy job must end
COMPLETED; the exactly-once recovery is checked against the real printer's
behaviour (it stays busy behind a Create-Job that never got its document).
"""
from __future__ import annotations

import contextlib
import sys
from pathlib import Path

import pytest
import trio

from spoolproxy.config import from_mapping
from spoolproxy.db import Database
from spoolproxy.ipp.client import IppClient, new_request
from spoolproxy.ipp.codec import encode_attributes
from spoolproxy.ipp.model import JobState, Op, PrinterState, Status, Tag
from spoolproxy.ipp.types import Attribute
from spoolproxy.spool import Job, JobStore
from spoolproxy.upstream import Upstream

try:
    import peers
except ImportError:  # tests/ is on sys.path only once tests/conftest.py exists
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    import peers

pytestmark = pytest.mark.interop

WAIT = 180  # ippeveprinter "prints" at a simulated 10 pages per minute


@pytest.fixture
def eve(tmp_path):
    printer = peers.IppEvePrinter(tmp_path / "eve")
    printer.start()
    yield printer
    printer.stop()


@pytest.fixture
def store(tmp_path):
    state = tmp_path / "state"
    s = JobStore(Database(state / "db", map_size=1 << 28, sync=False), state / "spool", fsync=False)
    yield s
    s.db.close()


@pytest.fixture
def pdf(tmp_path) -> bytes:
    peers.require("gs")
    return peers.make_pdf(tmp_path / "doc.pdf", pages=2).read_bytes()


def settings_for(tmp_path: Path, queues: dict[str, str]):
    return from_mapping({
        "node": {"state_dir": str(tmp_path / "state"), "fsync": False},
        "queues": {q: {"printer": uri, "retry_initial": 0.2, "retry_max": 2.0, "timeout": 20,
                       "poll_interval": 5} for q, uri in queues.items()},
    })


async def add_job(store: JobStore, queue: str, docs: list[tuple[bytes, str]], *, name: str,
                  user: str = "alice", attrs: list[Attribute] = ()) -> Job:
    job = store.new_job(queue=queue, user=user, name=name)
    for i, (data, fmt) in enumerate(docs):
        async def chunks(data=data):
            for k in range(0, len(data), 65536):
                yield data[k:k + 65536]
        fname, size = await store.spool_document(chunks())
        store.add_document(job, fname, size, fmt, doc_name=f"{name}-{i + 1}")
    job.attributes = encode_attributes(list(attrs))
    job.closed = True
    await store.save(job)
    return job


async def wait_final(*jobs: Job, timeout: float = WAIT) -> None:
    with trio.fail_after(timeout):
        while not all(JobState(j.state).is_final for j in jobs):
            await trio.sleep(0.1)


@contextlib.asynccontextmanager
async def running(up: Upstream):
    async with trio.open_nursery() as n:
        await n.start(up.run)
        yield n
        n.cancel_scope.cancel()


def kept(eve, job_name: str) -> list[Path]:
    key = "".join(c if c.isalnum() else "_" for c in job_name.lower())
    return [p for p in eve.files() if key in p.name]


async def test_pdf_arrives_byte_identical_and_completes(eve, store, pdf, tmp_path):
    up = Upstream(settings_for(tmp_path, {"eve": eve.uri}), store, follow_interval=0.5)
    attrs = [Attribute.of("copies", Tag.INTEGER, 1),
             Attribute.of("media", Tag.KEYWORD, "iso_a4_210x297mm"),
             Attribute.of("print-color-mode", Tag.KEYWORD, "monochrome")]
    job = await add_job(store, "eve", [(pdf, "application/pdf")], name="interop one", attrs=attrs)
    async with running(up):
        st = up.status("eve")
        assert st.reachable is True and st.attributes is not None
        assert st.attributes.get("document-format-supported") is not None
        up.wake("eve")
        await wait_final(job)
    assert job.state == JobState.COMPLETED, (job.state_reasons, job.state_message)
    assert job.delivery.phase == "done" and job.delivery.upstream_job_id > 0
    files = await trio.to_thread.run_sync(lambda: eve.wait_files(1, timeout=60))
    (path,) = [p for p in files if p.name.startswith(f"{job.delivery.upstream_job_id}-")]
    assert path.read_bytes() == pdf
    jobs = {int(j["job-id"]): j for j in peers.get_jobs(eve.uri)}
    assert peers.job_state_name(jobs[job.delivery.upstream_job_id]["job-state"]) == "completed"


async def test_several_queues_share_a_busy_printer(eve, store, pdf, tmp_path):
    # two queues in front of the same printer: while it prints one job it answers the
    # other server-error-busy, which is waited out
    up = Upstream(settings_for(tmp_path, {"a": eve.uri, "b": eve.uri}), store, follow_interval=0.5)
    ps = b"%!PS-Adobe-3.0\n%%Pages: 1\nshowpage\n%%EOF\n"
    ja = await add_job(store, "a", [(pdf, "application/pdf")], name="busy a")
    jb = await add_job(store, "b", [(ps, "application/postscript")], name="busy b", user="bob")
    jc = await add_job(store, "a", [(b"two docs, " * 1000, "application/postscript"),
                                    (pdf, "application/pdf")], name="busy c")
    async with running(up):
        await wait_final(ja, jb, jc)
    for j in (ja, jb, jc):
        assert j.state == JobState.COMPLETED, (j.id, j.state_reasons, j.state_message)
    files = await trio.to_thread.run_sync(lambda: eve.wait_files(4, timeout=60))
    contents = sorted(p.read_bytes() for p in files)
    assert contents == sorted([pdf, ps, b"two docs, " * 1000, pdf])
    # ippeveprinter has no multiple-document jobs: the two-document job became two jobs
    assert jc.extra["upstream"]["mode"] == "split" and jc.extra["upstream"]["docs_done"] == 2


async def test_recovery_after_crash_during_create_job(eve, store, pdf, tmp_path):
    # kill -9 after the Create-Job reached the printer, before its answer was saved:
    # ippeveprinter now holds an empty job and answers busy to everything else.
    async with IppClient(eve.uri) as client:
        req = new_request(Op.CREATE_JOB, eve.uri, user="alice")
        req.operation.add("job-name", Tag.NAME, "crashed")
        resp = await client.request(req)
        assert resp.code == Status.OK
        orphan_id = resp.group(Tag.JOB).value("job-id")
        blocked = new_request(Op.CREATE_JOB, eve.uri, user="alice")
        assert (await client.request(blocked)).code == Status.BUSY
    job = await add_job(store, "eve", [(pdf, "application/pdf")], name="crashed")
    job.state = JobState.PROCESSING
    job.delivery.phase = "creating"
    job.extra["upstream"] = {"mode": "single", "name": "crashed"}
    await store.save(job)

    up = Upstream(settings_for(tmp_path, {"eve": eve.uri}), store, follow_interval=0.5)
    async with running(up):
        await wait_final(job)
    assert job.state == JobState.COMPLETED, (job.state_reasons, job.state_message)
    assert job.delivery.upstream_job_id != orphan_id
    jobs = {int(j["job-id"]): j for j in peers.get_jobs(eve.uri)}
    assert peers.job_state_name(jobs[orphan_id]["job-state"]) == "canceled"
    files = await trio.to_thread.run_sync(lambda: eve.wait_files(1, timeout=60))
    assert [p.read_bytes() for p in files] == [pdf]  # exactly once


async def test_recovery_after_crash_while_following(eve, store, pdf, tmp_path):
    # the document went through completely; the node died while following the job:
    # the restarted node follows the same upstream job and sends nothing again
    up = Upstream(settings_for(tmp_path, {"eve": eve.uri}), store, follow_interval=0.5)
    job = await add_job(store, "eve", [(pdf, "application/pdf")], name="followed")
    async with running(up):
        with trio.fail_after(WAIT):
            while job.delivery.phase != "sent":
                await trio.sleep(0.01)
        # "kill -9": the nursery is cancelled where it stands
    assert not JobState(job.state).is_final and job.delivery.phase == "sent"
    up2 = Upstream(settings_for(tmp_path, {"eve": eve.uri}), store, follow_interval=0.5)
    async with running(up2):
        await wait_final(job)
    assert job.state == JobState.COMPLETED
    files = await trio.to_thread.run_sync(lambda: eve.wait_files(1, timeout=60))
    assert [p.read_bytes() for p in files] == [pdf]


async def test_printer_down_then_back(tmp_path, store, pdf):
    eve = peers.IppEvePrinter(tmp_path / "eve-late")
    up = Upstream(settings_for(tmp_path, {"eve": eve.uri}), store, follow_interval=0.5)
    job = await add_job(store, "eve", [(pdf, "application/pdf")], name="late")
    try:
        async with running(up):
            st = up.status("eve")
            with trio.fail_after(WAIT):
                while job.state != JobState.PENDING or st.reachable is not False:
                    await trio.sleep(0.05)
            assert st.state == PrinterState.STOPPED and "offline-report" in st.reasons
            assert job.state == JobState.PENDING
            await trio.to_thread.run_sync(eve.start)
            await wait_final(job)
            with trio.fail_after(WAIT):
                while not st.reachable:
                    await trio.sleep(0.05)
        assert job.state == JobState.COMPLETED
        files = await trio.to_thread.run_sync(lambda: eve.wait_files(1, timeout=60))
        assert [p.read_bytes() for p in files] == [pdf]
    finally:
        eve.stop()


async def test_ipps_delivery(eve, store, pdf, tmp_path):
    # ippeveprinter speaks TLS on the same port (self-signed certificate)
    uri = eve.uri.replace("ipp://", "ipps://")
    up = Upstream(settings_for(tmp_path, {"tls": uri}), store, follow_interval=0.5)
    job = await add_job(store, "tls", [(pdf, "application/pdf")], name="over tls")
    async with running(up):
        assert up.status("tls").reachable is True
        await wait_final(job)
    assert job.state == JobState.COMPLETED, (job.state_reasons, job.state_message)
    files = await trio.to_thread.run_sync(lambda: eve.wait_files(1, timeout=60))
    assert [p.read_bytes() for p in files] == [pdf]
