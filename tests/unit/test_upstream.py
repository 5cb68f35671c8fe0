"""Delivery to printers (spoolproxy.upstream) against in-test printers:

* FakeIpp: a stateful IPP printer on FakePrinter (test_ipp_client.py) with knobs for
  busy answers, lost answers, rejected formats, jobs that never finish, ...
* an AppSocket sink (trio listener) and the folder printer on tmp_path.

Exactly-once recovery after kill -9 is simulated by constructing jobs in each
delivery phase (as a crash would leave them) and starting a fresh Upstream.
No test asserts on time; waits are bounded only so that a bug cannot hang the run.
"""
from __future__ import annotations

import contextlib
import os
import socket
import stat
from pathlib import Path

import pytest
import trio

from spoolproxy.config import from_mapping
from spoolproxy.db import Database, job_key
from spoolproxy.ipp.codec import encode_attributes
from spoolproxy.ipp.model import JobState, Op, PrinterState, Status, Tag
from spoolproxy.ipp.types import Attribute, Collection, Group, Message, Range
from spoolproxy.spool import Job, JobStore
from spoolproxy.upstream import Backoff, PrinterStatus, Upstream
from spoolproxy.upstream.folder import file_name, safe_name
from spoolproxy.upstream.ipp import (Capabilities, choose_format, forward_attributes,
                                     upstream_job_name)

from test_ipp_client import FakePrinter, Reply, response

WAIT = 30  # bound on any wait: a hang is a failure, not a timing assertion


# --------------------------------------------------------------------------- fake IPP printer

class FakeIpp:
    """Enough of an IPP printer to be delivered to, with failure knobs."""

    def __init__(self, *, create_job: bool = True, multi_doc: bool = False,
                 formats: tuple[str, ...] = ("application/octet-stream", "application/pdf",
                                             "application/postscript"),
                 busy: int = 0, print_polls: int = 1, never_finish: bool = False,
                 final_state: int = JobState.COMPLETED, identify: bool = True,
                 impressions: int = 3) -> None:
        self.create_job = create_job
        self.multi_doc = multi_doc
        self.formats = formats
        self.busy = busy  # answer server-error-busy to this many job creations
        self.print_polls = print_polls
        self.never_finish = never_finish
        self.final_state = final_state
        self.identify_supported = identify
        self.impressions = impressions
        self.drop_once: set[int] = set()  # process the op, then lose the answer (once each)
        self.only_v11 = False  # answer server-error-version-not-supported to IPP/2.0
        self.reject_format: str | None = None
        self.jobs: dict[int, dict] = {}
        self.next_id = 1
        self.ops: list[int] = []
        self.identified: list[Message] = []
        self.printer = FakePrinter(self.handle)

    @property
    def uri(self) -> str:
        return self.printer.uri

    async def start(self, nursery, port: int = 0) -> "FakeIpp":
        self.printer.port = port
        await self.printer.start(nursery)
        return self

    def count(self, op: int) -> int:
        return self.ops.count(op)

    def attrs(self) -> Group:
        g = Group(Tag.PRINTER)
        ops = [Op.PRINT_JOB, Op.VALIDATE_JOB, Op.CANCEL_JOB, Op.GET_JOB_ATTRIBUTES, Op.GET_JOBS,
               Op.GET_PRINTER_ATTRIBUTES]
        if self.create_job:
            ops += [Op.CREATE_JOB, Op.SEND_DOCUMENT]
        if self.identify_supported:
            ops.append(Op.IDENTIFY_PRINTER)
        g.add("operations-supported", Tag.ENUM, *ops)
        g.add("printer-state", Tag.ENUM, PrinterState.IDLE)
        g.add("printer-state-reasons", Tag.KEYWORD, "none")
        g.add("printer-name", Tag.NAME, "fake-ipp")
        g.add("ipp-versions-supported", Tag.KEYWORD, *(("1.1",) if self.only_v11 else ("1.1", "2.0")))
        g.add("document-format-supported", Tag.MIME_TYPE, *self.formats)
        g.add("multiple-document-jobs-supported", Tag.BOOLEAN, self.multi_doc)
        g.add("copies-supported", Tag.RANGE, Range(1, 99))
        g.add("sides-supported", Tag.KEYWORD, "one-sided", "two-sided-long-edge")
        g.add("media-supported", Tag.KEYWORD, "iso_a4_210x297mm", "na_letter_8.5x11in")
        g.add("media-col-supported", Tag.KEYWORD, "media-size", "media-source")
        g.add("print-color-mode-supported", Tag.KEYWORD, "monochrome", "color")
        g.add("page-ranges-supported", Tag.BOOLEAN, True)
        g.add("identify-actions-supported", Tag.KEYWORD, "display", "sound")
        return g

    def job_group(self, job: dict) -> Group:
        g = Group(Tag.JOB)
        g.add("job-id", Tag.INTEGER, job["id"])
        g.add("job-uri", Tag.URI, f"{self.uri}/{job['id']}")
        g.add("job-name", Tag.NAME, job["name"])
        g.add("job-originating-user-name", Tag.NAME, job["user"])
        g.add("job-state", Tag.ENUM, job["state"])
        g.add("job-state-reasons", Tag.KEYWORD, *job["reasons"])
        if job.get("message"):
            g.add("job-state-message", Tag.TEXT, job["message"])
        if job["state"] == JobState.COMPLETED:
            g.add("job-impressions-completed", Tag.INTEGER, self.impressions)
        return g

    def new_job(self, name: str, user: str, state=JobState.PENDING_HELD,
                reasons=("job-data-insufficient",)) -> dict:
        job = {"id": self.next_id, "name": name, "user": user, "state": state,
               "reasons": list(reasons), "docs": [], "polls": 0, "attrs": None}
        self.jobs[job["id"]] = job
        self.next_id += 1
        return job

    def _finish_data(self, job: dict) -> None:
        job["state"], job["reasons"] = JobState.PROCESSING, ["job-printing"]

    def handle(self, msg: Message, printer: FakePrinter) -> Reply:
        op = msg.code
        self.ops.append(op)
        rec = printer.received[-1]
        if self.only_v11 and msg.version != (1, 1):
            return Reply(response(Status.VERSION_NOT_SUPPORTED, msg), early=True)
        drop = op in self.drop_once
        self.drop_once.discard(op)
        g = msg.operation
        user = g.value("requesting-user-name") or ""

        def answer(resp: Message) -> Reply:
            return Reply(drop=True) if drop else Reply(resp)

        if op == Op.GET_PRINTER_ATTRIBUTES:
            return answer(response(Status.OK, msg, groups=[self.attrs()]))
        if op in (Op.CREATE_JOB, Op.PRINT_JOB):
            if op == Op.CREATE_JOB and not self.create_job:
                return answer(response(Status.OPERATION_NOT_SUPPORTED, msg))
            if self.busy:
                self.busy -= 1
                return Reply(response(Status.BUSY, msg, message="Currently printing another job."),
                             early=True)
            if op == Op.PRINT_JOB and self.reject_format == g.value("document-format"):
                return Reply(response(Status.DOCUMENT_FORMAT_NOT_SUPPORTED, msg,
                                      message=f"Unsupported format {self.reject_format!r}."), early=True)
            job = self.new_job(g.value("job-name") or "", user)
            job["attrs"] = msg.group(Tag.JOB)
            job["create"] = msg
            if op == Op.PRINT_JOB:
                job["docs"].append(rec)
                job["formats"] = [g.value("document-format")]
                self._finish_data(job)
            return answer(response(Status.OK, msg, groups=[self.job_group(job)]))
        if op == Op.SEND_DOCUMENT:
            job = self.jobs.get(g.value("job-id"))
            if job is None:
                return answer(response(Status.NOT_FOUND, msg))
            if self.reject_format == g.value("document-format"):
                return Reply(response(Status.DOCUMENT_FORMAT_NOT_SUPPORTED, msg,
                                      message=f"Unsupported format {self.reject_format!r}."), early=True)
            job["docs"].append(rec)
            job.setdefault("formats", []).append(g.value("document-format"))
            job.setdefault("last", []).append(g.value("last-document"))
            if g.value("last-document"):
                self._finish_data(job)
            else:
                job["reasons"] = ["job-incoming"]
            return answer(response(Status.OK, msg, groups=[self.job_group(job)]))
        if op == Op.GET_JOB_ATTRIBUTES:
            job = self.jobs.get(g.value("job-id"))
            if job is None:
                return answer(response(Status.NOT_FOUND, msg, message="no such job"))
            if job["state"] == JobState.PROCESSING and not self.never_finish:
                job["polls"] += 1
                if job["polls"] >= self.print_polls:
                    job["state"] = self.final_state
                    job["reasons"] = {JobState.COMPLETED: ["job-completed-successfully"],
                                      JobState.ABORTED: ["aborted-by-system"],
                                      JobState.CANCELED: ["job-canceled-at-device"]}[self.final_state]
                    if self.final_state == JobState.ABORTED:
                        job["message"] = "paper jam"
            return answer(response(Status.OK, msg, groups=[self.job_group(job)]))
        if op == Op.CANCEL_JOB:
            job = self.jobs.get(g.value("job-id"))
            if job is None:
                return answer(response(Status.NOT_FOUND, msg))
            if job["state"] >= JobState.CANCELED:
                return answer(response(Status.NOT_POSSIBLE, msg))
            job["state"], job["reasons"] = JobState.CANCELED, ["job-canceled-by-user"]
            return answer(response(Status.OK, msg))
        if op == Op.GET_JOBS:
            groups = [self.job_group(j) for j in self.jobs.values() if j["state"] < JobState.CANCELED]
            return answer(response(Status.OK, msg, groups=groups))
        if op == Op.IDENTIFY_PRINTER:
            self.identified.append(msg)
            return answer(response(Status.OK, msg))
        return answer(response(Status.OPERATION_NOT_SUPPORTED, msg))

    def job_data(self, job_id: int) -> list[bytes]:
        return [r.data for r in self.jobs[job_id]["docs"]]


# --------------------------------------------------------------------------- helpers

@pytest.fixture
def state(tmp_path):
    return tmp_path / "state"


@pytest.fixture
def store(state):
    s = JobStore(Database(state / "db", map_size=1 << 28, sync=False), state / "spool", fsync=False)
    yield s
    s.db.close()


def make_settings(state: Path, queues: dict[str, str], **qopts):
    opts = {"retry_initial": 0.05, "retry_max": 0.3, "timeout": 3, "poll_interval": 0.5, **qopts}
    return from_mapping({"node": {"state_dir": str(state), "fsync": False},
                         "queues": {name: {"printer": uri, **opts} for name, uri in queues.items()}})


async def _chunks(data: bytes):
    for i in range(0, len(data), 1 << 16):
        yield data[i:i + (1 << 16)]
        await trio.sleep(0)


async def add_job(store: JobStore, queue: str, docs: list[tuple[bytes, str]] | None = None, *,
                  user: str = "alice", name: str = "report", attrs: list[Attribute] | None = None,
                  state: int = JobState.PENDING, save: bool = True) -> Job:
    job = store.new_job(queue=queue, user=user, name=name)
    for i, (data, fmt) in enumerate(docs if docs is not None else [(os.urandom(5000), "application/pdf")]):
        fname, size = await store.spool_document(_chunks(data))
        store.add_document(job, fname, size, fmt, doc_name=f"doc{i + 1}")
    job.attributes = encode_attributes(attrs or [])
    job.closed = True
    job.state = state
    if save:
        await store.save(job)
    return job


def doc_bytes(store: JobStore, job: Job, n: int = 1) -> bytes:
    return store.path(job.documents[n - 1]).read_bytes()


async def wait_until(pred, what: str = "condition", timeout: float = WAIT):
    with trio.move_on_after(timeout):
        while not pred():
            await trio.sleep(0.01)
        return
    pytest.fail(f"{what} not reached within {timeout} s")


def final(job: Job) -> bool:
    return JobState(job.state).is_final


@contextlib.asynccontextmanager
async def running(upstream: Upstream):
    async with trio.open_nursery() as n:
        await n.start(upstream.run)
        yield n
        n.cancel_scope.cancel()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# --------------------------------------------------------------------------- pure parts

def test_backoff_grows_caps_and_resets():
    b = Backoff(1.0, 10.0, jitter=0.0)
    assert [b.next() for _ in range(6)] == [1, 2, 4, 8, 10, 10]
    b.reset()
    assert b.next() == 1
    j = Backoff(1.0, 8.0, jitter=0.5, rand=lambda: 0.999)
    values = [j.next() for _ in range(5)]
    assert all(0.5 * base <= v <= base for v, base in zip(values, [1, 2, 4, 8, 8]))
    with pytest.raises(ValueError):
        Backoff(0, 1)
    many = Backoff(0.1, 1e9)
    for _ in range(5000):  # no overflow however long a printer stays down
        many.next()
    assert many.peek() == 1e9


def test_forward_attributes_only_supported_ones():
    fake = FakeIpp()
    printer = fake.attrs()
    job_attrs = [
        Attribute.of("copies", Tag.INTEGER, 2),
        Attribute.of("sides", Tag.KEYWORD, "two-sided-long-edge"),
        Attribute.of("media", Tag.KEYWORD, "iso_a3_297x420mm"),  # not supported: dropped
        Attribute.of("print-color-mode", Tag.KEYWORD, "monochrome"),
        Attribute.of("finishings", Tag.ENUM, 4),  # printer has no finishings-supported
        Attribute.of("page-ranges", Tag.RANGE, Range(1, 2)),
        Attribute.of("media-col", Tag.BEGIN_COLLECTION, Collection([
            Attribute.of("media-size", Tag.BEGIN_COLLECTION, Collection([
                Attribute.of("x-dimension", Tag.INTEGER, 21000),
                Attribute.of("y-dimension", Tag.INTEGER, 29700)])),
            Attribute.of("media-color", Tag.KEYWORD, "blue"),  # member not supported: dropped
        ])),
        Attribute.of("job-hold-until", Tag.KEYWORD, "indefinite"),  # the proxy's business
        Attribute.of("copies-extra", Tag.INTEGER, 1),
    ]
    out = {a.name: a for a in forward_attributes(job_attrs, printer)}
    assert set(out) == {"copies", "sides", "print-color-mode", "page-ranges", "media-col"}
    assert [m.name for m in out["media-col"].value] == ["media-size"]
    too_many = forward_attributes([Attribute.of("copies", Tag.INTEGER, 500)], printer)
    assert too_many == []
    assert forward_attributes(job_attrs, None) == []
    creation = Group(Tag.PRINTER)
    creation.add("job-creation-attributes-supported", Tag.KEYWORD, "finishings")
    assert [a.name for a in forward_attributes(job_attrs, creation)] == ["finishings"]


def test_choose_format_and_capabilities():
    caps = Capabilities.of(FakeIpp(formats=("application/pdf", "application/octet-stream")).attrs())
    assert caps.create_job and not caps.multiple_documents
    assert choose_format("application/pdf", caps) == "application/pdf"
    assert choose_format("application/vnd.hp-pcl", caps) == "application/octet-stream"
    strict = Capabilities.of(FakeIpp(formats=("application/pdf",), create_job=False).attrs())
    assert not strict.create_job
    assert choose_format("image/urf", strict) == "image/urf"  # the printer will say no itself
    unknown = Capabilities.of(None)
    assert not unknown.create_job and choose_format("x/y", unknown) == "x/y"


def test_folder_file_names():
    job = Job(id=42, queue="q", uuid="u", user="bob", name="Quarterly Report (final).pdf")
    from spoolproxy.spool import Document
    doc = Document(number=2, path="d-x", format="application/pdf", size=1, name="a")
    assert file_name(job, doc) == "42-2-Quarterly_Report_final.pdf"
    assert safe_name("../../etc/passwd") == "etc_passwd"
    assert safe_name("Überweisung März") == "Uberweisung_Marz"
    assert safe_name("") == "job" and safe_name("....") == "job"
    assert len(safe_name("x" * 500)) == 64
    job.name = ""
    doc.format = "application/vnd.weird"
    assert file_name(job, doc) == "42-2-a.bin"
    assert upstream_job_name(job) == "job-42"
    job.documents.append(doc)
    assert upstream_job_name(job) == "a"


# --------------------------------------------------------------------------- IPP delivery

async def test_ipp_delivery_create_job_send_document(nursery, store, state):
    fake = await FakeIpp().start(nursery)
    settings = make_settings(state, {"q": fake.uri})
    attrs = [Attribute.of("copies", Tag.INTEGER, 2), Attribute.of("sides", Tag.KEYWORD, "two-sided-long-edge"),
             Attribute.of("media", Tag.KEYWORD, "iso_a3_297x420mm")]
    job = await add_job(store, "q", [(os.urandom(200_000), "application/pdf")], attrs=attrs, user="carol")
    up = Upstream(settings, store, follow_interval=0.01)
    async with running(up):
        st = up.status("q")
        assert st.reachable is True and st.attributes is not None
        assert st.attributes.value("printer-name") == "fake-ipp" and st.state == PrinterState.IDLE
        up.wake("q")
        await wait_until(lambda: final(job), "job final")
        # what is on disk is what is in memory (the final save may still be in flight)
        await wait_until(lambda: store.db.get("jobs", job_key(job.id))["state"] == job.state,
                         "final state saved")
    assert job.state == JobState.COMPLETED, job.state_message
    assert job.state_reasons == ["job-completed-successfully"]
    assert job.completed and job.processing and job.impressions_completed == 3
    assert job.delivery.phase == "done" and job.delivery.upstream_job_id == 1
    assert fake.count(Op.CREATE_JOB) == 1 and fake.count(Op.SEND_DOCUMENT) == 1
    assert fake.count(Op.PRINT_JOB) == 0
    up_job = fake.jobs[1]
    assert fake.job_data(1) == [doc_bytes(store, job)]
    assert up_job["user"] == "carol" and up_job["name"] == "report"
    assert up_job["formats"] == ["application/pdf"] and up_job["last"] == [True]
    sent = {a.name: a.values for a in up_job["attrs"]}
    assert sent == {"copies": [2], "sides": ["two-sided-long-edge"]}
    record = Job.from_record(store.db.get("jobs", job_key(job.id)))
    assert record.delivery.phase == "done" and record.impressions_completed == 3


async def test_ipp_print_job_fallback_and_octet_stream(nursery, store, state):
    fake = await FakeIpp(create_job=False,
                         formats=("application/octet-stream", "application/pdf")).start(nursery)
    settings = make_settings(state, {"q": fake.uri})
    job = await add_job(store, "q", [(b"\x1bE PCL data", "application/vnd.hp-pcl")])
    up = Upstream(settings, store, follow_interval=0.01)
    async with running(up):
        await wait_until(lambda: final(job))
    assert job.state == JobState.COMPLETED
    assert fake.count(Op.CREATE_JOB) == 0 and fake.count(Op.PRINT_JOB) == 1
    assert fake.jobs[1]["formats"] == ["application/octet-stream"]
    assert fake.job_data(1) == [b"\x1bE PCL data"]


async def test_ipp_1_1_printer(nursery, store, state):
    fake = FakeIpp()
    fake.only_v11 = True
    await fake.start(nursery)
    job = await add_job(store, "q")
    up = Upstream(make_settings(state, {"q": fake.uri}), store, follow_interval=0.01)
    async with running(up):
        assert up.status("q").reachable is True
        await wait_until(lambda: final(job))
    assert job.state == JobState.COMPLETED
    assert {r.msg.version for r in fake.printer.received[1:]} == {(1, 1)}


async def test_http_error_counts_as_printer_down(nursery, store, state):
    printer = await FakePrinter(lambda m, p: Reply(http_status=401)).start(nursery)
    job = await add_job(store, "q")
    up = Upstream(make_settings(state, {"q": printer.uri}), store)
    async with running(up):
        st = up.status("q")
        await wait_until(lambda: job.delivery.attempts >= 1 and job.state == JobState.PENDING)
        assert st.state == PrinterState.STOPPED and st.reasons == ["offline-report"]
        assert "HTTP 401" in st.message and "HTTP 401" in job.state_message


async def test_busy_printer_is_waited_out(nursery, store, state):
    fake = await FakeIpp(busy=3).start(nursery)
    settings = make_settings(state, {"q": fake.uri})
    job = await add_job(store, "q")
    up = Upstream(settings, store, follow_interval=0.01)
    async with running(up):
        await wait_until(lambda: final(job))
    assert job.state == JobState.COMPLETED
    assert fake.count(Op.CREATE_JOB) == 4 and len(fake.jobs) == 1


async def test_format_rejected_aborts_with_the_printers_message(nursery, store, state):
    fake = await FakeIpp().start(nursery)
    fake.reject_format = "application/postscript"
    settings = make_settings(state, {"q": fake.uri})
    bad = await add_job(store, "q", [(b"%!PS\n", "application/postscript")])
    good = await add_job(store, "q")
    up = Upstream(settings, store, follow_interval=0.01)
    async with running(up):
        await wait_until(lambda: final(bad) and final(good))
    assert bad.state == JobState.ABORTED
    assert bad.state_reasons == ["unsupported-document-format"]
    assert "Unsupported format 'application/postscript'" in bad.state_message
    assert fake.jobs[1]["state"] == JobState.CANCELED  # the empty upstream job was cleaned up
    assert good.state == JobState.COMPLETED  # the queue goes on


async def test_upstream_aborted_and_canceled_jobs(nursery, store, state):
    fake = await FakeIpp(final_state=JobState.ABORTED).start(nursery)
    settings = make_settings(state, {"q": fake.uri})
    job = await add_job(store, "q")
    up = Upstream(settings, store, follow_interval=0.01)
    async with running(up):
        await wait_until(lambda: final(job))
        assert job.state == JobState.ABORTED and job.state_message == "paper jam"
        fake.final_state = JobState.CANCELED
        job2 = await add_job(store, "q")
        up.wake("q")
        await wait_until(lambda: final(job2))
    assert job2.state == JobState.CANCELED and job2.state_reasons == ["job-canceled-at-device"]


async def test_unreachable_printer_keeps_jobs_pending_then_delivers(nursery, store, state):
    port = free_port()
    fake = FakeIpp()
    settings = make_settings(state, {"q": f"ipp://127.0.0.1:{port}/ipp/print"})
    job1 = await add_job(store, "q")
    up = Upstream(settings, store, follow_interval=0.01)
    async with running(up) as n:
        st = up.status("q")
        await wait_until(lambda: job1.delivery.attempts >= 2 and job1.state == JobState.PENDING,
                         "two failed attempts")
        assert st.state == PrinterState.STOPPED and st.reasons == ["offline-report"]
        assert st.reachable is False and st.message.startswith("cannot reach printer")
        assert job1.state == JobState.PENDING and job1.state_reasons == ["printer-stopped"]
        assert "cannot reach printer" in job1.state_message
        job2 = await add_job(store, "q")  # the queue keeps accepting
        up.wake("q")
        await fake.start(n, port)
        await wait_until(lambda: final(job1) and final(job2), "both delivered")
        await wait_until(lambda: st.state == PrinterState.IDLE and st.reachable, "status idle")
    assert job1.state == job2.state == JobState.COMPLETED
    assert [j["id"] for j in fake.jobs.values()] == [1, 2]
    assert fake.job_data(1) == [doc_bytes(store, job1)]  # id order
    assert fake.job_data(2) == [doc_bytes(store, job2)]
    assert st.reasons == ["none"] and st.attributes is not None


async def test_printer_lost_mid_way_does_not_resend_what_it_has(nursery, store, state):
    # Send-Document reached the printer but its answer was lost: the retry asks the
    # printer, sees the job processing, and follows it instead of sending it again
    fake = await FakeIpp().start(nursery)
    fake.drop_once.add(Op.SEND_DOCUMENT)
    settings = make_settings(state, {"q": fake.uri})
    job = await add_job(store, "q")
    up = Upstream(settings, store, follow_interval=0.01)
    async with running(up):
        await wait_until(lambda: final(job))
    assert job.state == JobState.COMPLETED
    assert fake.count(Op.CREATE_JOB) == 1 and fake.count(Op.SEND_DOCUMENT) == 1
    assert job.delivery.attempts == 2


async def test_lost_create_job_answer_leaves_no_orphan(nursery, store, state):
    fake = await FakeIpp().start(nursery)
    fake.drop_once.add(Op.CREATE_JOB)
    settings = make_settings(state, {"q": fake.uri})
    job = await add_job(store, "q")
    up = Upstream(settings, store, follow_interval=0.01)
    async with running(up):
        await wait_until(lambda: final(job))
    assert job.state == JobState.COMPLETED
    assert fake.jobs[1]["state"] == JobState.CANCELED and not fake.jobs[1]["docs"]  # the orphan
    assert fake.jobs[2]["state"] == JobState.COMPLETED and fake.job_data(2) == [doc_bytes(store, job)]
    assert job.delivery.upstream_job_id == 2


async def test_multi_document_job_one_upstream_job(nursery, store, state):
    fake = await FakeIpp(multi_doc=True).start(nursery)
    settings = make_settings(state, {"q": fake.uri})
    job = await add_job(store, "q", [(b"one", "application/pdf"), (b"two", "application/pdf"),
                                     (b"three", "application/pdf")])
    up = Upstream(settings, store, follow_interval=0.01)
    async with running(up):
        await wait_until(lambda: final(job))
    assert job.state == JobState.COMPLETED
    assert len(fake.jobs) == 1 and fake.job_data(1) == [b"one", b"two", b"three"]
    assert fake.jobs[1]["last"] == [False, False, True]


async def test_multi_document_job_split_when_unsupported(nursery, store, state):
    fake = await FakeIpp(multi_doc=False).start(nursery)
    settings = make_settings(state, {"q": fake.uri})
    job = await add_job(store, "q", [(b"one", "application/pdf"), (b"two", "application/pdf")])
    up = Upstream(settings, store, follow_interval=0.01)
    async with running(up):
        await wait_until(lambda: final(job))
    assert job.state == JobState.COMPLETED
    assert [fake.job_data(i) for i in (1, 2)] == [[b"one"], [b"two"]]
    assert job.impressions_completed == 6  # 3 per upstream job
    assert job.extra["upstream"]["docs_done"] == 2


async def test_cancel_in_flight_cancels_upstream_and_never_completes(nursery, store, state):
    fake = await FakeIpp(never_finish=True).start(nursery)
    settings = make_settings(state, {"q": fake.uri})
    job = await add_job(store, "q")
    up = Upstream(settings, store, follow_interval=0.01)
    async with running(up):
        await wait_until(lambda: job.delivery.phase == "sent", "job at the printer")
        # what the IPP server does on Cancel-Job
        job.state, job.state_reasons, job.closed = JobState.CANCELED, ["job-canceled-by-user"], True
        await store.save(job)
        await up.cancel(job)
        assert fake.jobs[1]["state"] == JobState.CANCELED
        assert job.state == JobState.CANCELED and job.delivery.phase == "done"
        up.wake("q")
        later = await add_job(store, "q")
        fake.never_finish = False
        up.wake("q")
        await wait_until(lambda: final(later))
    assert job.state == JobState.CANCELED
    assert fake.count(Op.CREATE_JOB) == 2  # the canceled job was not sent again


async def test_cancel_while_printer_down_is_sent_when_it_is_back(nursery, store, state):
    fake = await FakeIpp(never_finish=True).start(nursery)
    port = fake.printer.port
    settings = make_settings(state, {"q": fake.uri})
    job = await add_job(store, "q")
    up = Upstream(settings, store, follow_interval=0.01)
    async with running(up) as n:
        await wait_until(lambda: job.delivery.phase == "sent")
        fake.printer.stop()
        await wait_until(lambda: job.state == JobState.PENDING, "job pending, printer down")
        job.state, job.closed = JobState.CANCELED, True
        await store.save(job)
        with trio.move_on_after(0.3):  # the printer is down: cancel() returns after its bound
            await up.cancel(job)
        assert fake.jobs[1]["state"] == JobState.PROCESSING
        await fake.printer.start(n)
        assert fake.printer.port == port
        await wait_until(lambda: fake.jobs[1]["state"] == JobState.CANCELED, "upstream canceled")
        await wait_until(lambda: job.delivery.phase == "done")
    assert job.state == JobState.CANCELED and fake.count(Op.CREATE_JOB) == 1


async def test_identify_forwarded_only_when_supported(nursery, store, state):
    fake = await FakeIpp().start(nursery)
    plain = await FakeIpp(identify=False).start(nursery)
    settings = make_settings(state, {"a": fake.uri, "b": plain.uri, "c": "folder:out"})
    up = Upstream(settings, store)
    async with running(up):
        await up.identify("a", ["sound", "flash"], "hello")
        await up.identify("b", ["display"], None)
        await up.identify("c", ["display"], None)
    (msg,) = fake.identified
    assert msg.operation.get("identify-actions").values == ["sound"]
    assert msg.operation.value("message") == "hello"
    assert plain.identified == [] and plain.count(Op.IDENTIFY_PRINTER) == 0


async def test_printer_state_mirrored_from_polls(nursery, store, state):
    fake = await FakeIpp().start(nursery)

    def attrs_stopped():
        g = FakeIpp.attrs(fake)
        g.get("printer-state").values = [PrinterState.STOPPED]
        g.get("printer-state-reasons").values = ["media-empty-error"]
        g.add("printer-state-message", Tag.TEXT, "Load paper")
        return g

    settings = make_settings(state, {"q": fake.uri}, poll_interval=0.05)
    up = Upstream(settings, store)
    async with running(up):
        fake.attrs = attrs_stopped
        st = up.status("q")
        await wait_until(lambda: st.reasons == ["media-empty-error"])
        assert st.state == PrinterState.STOPPED and st.message == "Load paper" and st.reachable
        assert st.attributes.value("printer-state") == PrinterState.STOPPED
    assert isinstance(up.status("nosuch"), PrinterStatus)


# --------------------------------------------------------------------------- exactly-once after a crash

async def _crashed_job(store, *, phase: str, upstream_id: int = 0, name: str = "report",
                       user: str = "alice", docs=None) -> Job:
    """A job as kill -9 leaves it: PROCESSING, with the delivery phase last saved."""
    job = await add_job(store, "q", docs, name=name, user=user, state=JobState.PROCESSING)
    job.delivery.phase = phase
    job.delivery.upstream_job_id = upstream_id
    job.delivery.attempts = 1
    if phase != "none":
        job.extra["upstream"] = {"mode": "single", "name": name}
    await store.save(job)
    return job


async def test_recovery_creating_cancels_the_orphan_and_sends_once(nursery, store, state):
    fake = await FakeIpp().start(nursery)
    orphan = fake.new_job("report", "alice")  # Create-Job got through, its answer did not
    other = fake.new_job("report", "bob")  # somebody else's: left alone
    job = await _crashed_job(store, phase="creating")
    settings = make_settings(state, {"q": fake.uri})
    up = Upstream(settings, store, follow_interval=0.01)
    async with running(up):
        await wait_until(lambda: final(job))
    assert job.state == JobState.COMPLETED
    assert orphan["state"] == JobState.CANCELED and other["state"] == JobState.PENDING_HELD
    assert fake.count(Op.CREATE_JOB) == 1 and fake.count(Op.SEND_DOCUMENT) == 1
    assert fake.job_data(3) == [doc_bytes(store, job)]


async def test_recovery_sending_waiting_for_data_is_sent_again(nursery, store, state):
    fake = await FakeIpp().start(nursery)
    stale = fake.new_job("report", "alice")
    job = await _crashed_job(store, phase="sending", upstream_id=stale["id"])
    settings = make_settings(state, {"q": fake.uri})
    up = Upstream(settings, store, follow_interval=0.01)
    async with running(up):
        await wait_until(lambda: final(job))
    assert job.state == JobState.COMPLETED
    assert stale["state"] == JobState.CANCELED
    assert job.delivery.upstream_job_id == 2 and fake.job_data(2) == [doc_bytes(store, job)]


@pytest.mark.parametrize("upstream_state", [JobState.PROCESSING, JobState.COMPLETED, JobState.PENDING])
async def test_recovery_sending_but_printer_has_it_is_followed_not_resent(nursery, store, state,
                                                                          upstream_state):
    fake = await FakeIpp().start(nursery)
    had = fake.new_job("report", "alice", state=upstream_state,
                       reasons=("job-printing",) if upstream_state != JobState.PENDING else ("none",))
    job = await _crashed_job(store, phase="sending", upstream_id=had["id"])
    if upstream_state == JobState.PENDING:
        had["state"] = JobState.PENDING  # queued with all its data: becomes processing later
    settings = make_settings(state, {"q": fake.uri})
    up = Upstream(settings, store, follow_interval=0.01)
    async with running(up):
        if upstream_state == JobState.PENDING:
            await wait_until(lambda: job.delivery.phase == "sent")
            had["state"] = JobState.PROCESSING
        await wait_until(lambda: final(job))
    assert job.state == JobState.COMPLETED
    assert fake.count(Op.CREATE_JOB) == 0 and fake.count(Op.SEND_DOCUMENT) == 0
    assert fake.count(Op.CANCEL_JOB) == 0


async def test_recovery_sending_upstream_aborted_is_sent_again(nursery, store, state):
    fake = await FakeIpp().start(nursery)
    broken = fake.new_job("report", "alice", state=JobState.ABORTED, reasons=("aborted-by-system",))
    job = await _crashed_job(store, phase="sending", upstream_id=broken["id"])
    up = Upstream(make_settings(state, {"q": fake.uri}), store, follow_interval=0.01)
    async with running(up):
        await wait_until(lambda: final(job))
    assert job.state == JobState.COMPLETED and fake.count(Op.SEND_DOCUMENT) == 1


async def test_recovery_sent_is_only_followed(nursery, store, state):
    fake = await FakeIpp().start(nursery)
    printing = fake.new_job("report", "alice", state=JobState.PROCESSING, reasons=("job-printing",))
    job = await _crashed_job(store, phase="sent", upstream_id=printing["id"])
    gone = await _crashed_job(store, phase="sent", upstream_id=99)  # the printer forgot it
    up = Upstream(make_settings(state, {"q": fake.uri}), store, follow_interval=0.01)
    async with running(up):
        await wait_until(lambda: final(job) and final(gone))
    assert job.state == JobState.COMPLETED and job.impressions_completed == 3
    assert gone.state == JobState.COMPLETED and gone.state_reasons == ["job-completed-with-warnings"]
    assert fake.count(Op.CREATE_JOB) == 0 and fake.count(Op.SEND_DOCUMENT) == 0
    assert fake.count(Op.PRINT_JOB) == 0


async def test_recovery_split_job_resumes_after_finished_documents(nursery, store, state):
    fake = await FakeIpp(multi_doc=False).start(nursery)
    job = await _crashed_job(store, phase="none", docs=[(b"one", "application/pdf"),
                                                          (b"two", "application/pdf")])
    job.extra["upstream"] = {"mode": "split", "name": "report", "docs_done": 1, "impressions": 3}
    await store.save(job)
    up = Upstream(make_settings(state, {"q": fake.uri}), store, follow_interval=0.01)
    async with running(up):
        await wait_until(lambda: final(job))
    assert job.state == JobState.COMPLETED and job.impressions_completed == 6
    assert len(fake.jobs) == 1 and fake.job_data(1) == [b"two"]


async def test_recovery_canceled_job_is_canceled_upstream(nursery, store, state):
    fake = await FakeIpp(never_finish=True).start(nursery)
    printing = fake.new_job("report", "alice", state=JobState.PROCESSING, reasons=("job-printing",))
    job = await _crashed_job(store, phase="sent", upstream_id=printing["id"])
    job.state = JobState.CANCELED  # the server canceled it, then the node died
    await store.save(job)
    up = Upstream(make_settings(state, {"q": fake.uri}), store, follow_interval=0.01)
    async with running(up):
        await wait_until(lambda: job.delivery.phase == "done")
    assert printing["state"] == JobState.CANCELED and job.state == JobState.CANCELED


# --------------------------------------------------------------------------- AppSocket

class Sink:
    """A raw-port printer: every connection is one document, kept when it ends."""

    def __init__(self) -> None:
        self.docs: list[bytes] = []
        self.partial: list[bytes] = []
        self.break_after: int | None = None  # reset the next connection after this many bytes
        self.port = 0
        self.scope: trio.CancelScope | None = None

    @property
    def uri(self) -> str:
        return f"socket://127.0.0.1:{self.port}"

    async def start(self, nursery, port: int = 0) -> "Sink":
        listeners = await trio.open_tcp_listeners(port or self.port, host="127.0.0.1")
        self.port = listeners[0].socket.getsockname()[1]
        self.scope = trio.CancelScope()

        async def serve():
            with self.scope:
                await trio.serve_listeners(self._conn, listeners)

        nursery.start_soon(serve)
        return self

    async def _conn(self, stream: trio.SocketStream) -> None:
        data = bytearray()
        limit, self.break_after = self.break_after, None
        try:
            while True:
                chunk = await stream.receive_some(65536)
                if not chunk:
                    break
                data += chunk
                if limit is not None and len(data) >= limit:
                    self.partial.append(bytes(data))
                    stream.socket.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                             b"\x01\x00\x00\x00\x00\x00\x00\x00")
                    await trio.aclose_forcefully(stream)  # RST: the job is lost
                    return
            if data:
                self.docs.append(bytes(data))
            await stream.send_all(b"@PJL INFO STATUS\r\n")  # back channel chatter
        finally:
            await trio.aclose_forcefully(stream)


async def test_socket_delivery_byte_identical(nursery, store, state):
    sink = await Sink().start(nursery)
    data = os.urandom(1_500_000)
    job = await add_job(store, "q", [(data, "application/pdf"), (b"second", "application/pdf")])
    up = Upstream(make_settings(state, {"q": sink.uri}), store)
    assert up.status("q").attributes is None
    async with running(up):
        await wait_until(lambda: final(job))
    assert job.state == JobState.COMPLETED, job.state_message
    assert digests(sink.docs) == digests([data, b"second"])  # digests: a mismatch prints 2 lines, not 1 MB
    assert up.status("q").attributes is None and up.status("q").reachable is True


async def test_socket_delivery_without_a_plain_file_reads_chunks(nursery, store, state, monkeypatch):
    """sendfile needs a file descriptor; a store that hands out something else (here an
    in-memory file) is read in chunks instead, with the same bytes at the printer."""
    import io
    sink = await Sink().start(nursery)
    data = os.urandom(700_000)
    job = await add_job(store, "q", [(data, "application/pdf")])
    real = store.open_document
    monkeypatch.setattr(store, "open_document", lambda doc: io.BytesIO(real(doc).read()))
    up = Upstream(make_settings(state, {"q": sink.uri}), store)
    async with running(up):
        await wait_until(lambda: final(job))
    assert job.state == JobState.COMPLETED, job.state_message
    assert digests(sink.docs) == digests([data])


async def test_socket_connection_lost_resends_the_whole_document(nursery, store, state):
    sink = await Sink().start(nursery)
    sink.break_after = 100_000
    data = os.urandom(1_000_000)
    job = await add_job(store, "q", [(data, "application/octet-stream")])
    up = Upstream(make_settings(state, {"q": sink.uri}), store)
    async with running(up):
        await wait_until(lambda: final(job))
    assert job.state == JobState.COMPLETED
    assert digests(sink.docs) == digests([data]) and len(sink.partial) == 1


async def test_socket_printer_down_then_up(nursery, store, state):
    sink = Sink()
    port = free_port()
    job = await add_job(store, "q", [(b"raw", "application/octet-stream")])
    up = Upstream(make_settings(state, {"q": f"socket://127.0.0.1:{port}"}), store)
    async with running(up) as n:
        st = up.status("q")
        await wait_until(lambda: st.reachable is False)
        assert st.state == PrinterState.STOPPED and st.reasons == ["offline-report"]
        assert job.state == JobState.PENDING
        await sink.start(n, port)
        await wait_until(lambda: final(job))
        await wait_until(lambda: st.state == PrinterState.IDLE)
    assert sink.docs == [b"raw"] and job.state == JobState.COMPLETED


async def test_socket_recovery_resends_only_the_document_in_flight(nursery, store, state):
    sink = await Sink().start(nursery)
    job = await add_job(store, "q", [(b"one", "application/pdf"), (b"two", "application/pdf")],
                        state=JobState.PROCESSING)
    job.delivery.phase = "sending"
    job.extra["upstream"] = {"docs_done": 1}
    await store.save(job)
    up = Upstream(make_settings(state, {"q": sink.uri}), store)
    async with running(up):
        await wait_until(lambda: final(job))
    assert sink.docs == [b"two"]


# --------------------------------------------------------------------------- folder

async def test_folder_delivery_and_idempotent_redelivery(nursery, store, state):
    settings = make_settings(state, {"q": "folder:out"})
    out = settings.folder_path("q")
    data = os.urandom(300_000)
    job = await add_job(store, "q", [(data, "application/pdf"), (b"%!PS", "application/postscript")],
                        name="Budget 2026")
    up = Upstream(settings, store)
    async with running(up):
        await wait_until(lambda: final(job))
    assert job.state == JobState.COMPLETED
    names = sorted(p.name for p in out.iterdir())
    assert names == [f"{job.id}-1-Budget_2026.pdf", f"{job.id}-2-Budget_2026.ps"]
    assert (out / names[0]).read_bytes() == data
    assert stat.S_IMODE((out / names[0]).stat().st_mode) == 0o600

    # a crash after the files were written but before COMPLETED was saved
    job.state, job.delivery.phase, job.completed = JobState.PROCESSING, "sending", None
    job.extra["upstream"] = {"docs_done": 0}
    await store.save(job)
    up = Upstream(settings, store)
    async with running(up):
        await wait_until(lambda: final(job))
    assert sorted(p.name for p in out.iterdir()) == names  # overwritten, not duplicated
    assert (out / names[0]).read_bytes() == data


async def test_folder_missing_spool_file_aborts(nursery, store, state):
    settings = make_settings(state, {"q": "folder:out"})
    job = await add_job(store, "q")
    store.path(job.documents[0]).unlink()
    up = Upstream(settings, store)
    async with running(up):
        await wait_until(lambda: final(job))
    assert job.state == JobState.ABORTED and job.state_reasons == ["document-access-error"]
    assert not any(p.name.startswith(".tmp-") for p in settings.folder_path("q").iterdir())


async def test_folder_cancel_in_flight_is_not_completed(nursery, store, state):
    settings = make_settings(state, {"q": "folder:out"})
    job = await add_job(store, "q", [(os.urandom(50_000_000), "application/pdf")])
    up = Upstream(settings, store)
    async with running(up):
        await wait_until(lambda: job.state == JobState.PROCESSING)
        job.state, job.closed = JobState.CANCELED, True
        await store.save(job)
        await up.cancel(job)
        assert job.state == JobState.CANCELED
    assert job.state == JobState.CANCELED


# --------------------------------------------------------------------------- isolation

async def test_one_queue_down_does_not_block_another(nursery, store, state):
    # a printer that accepts connections but never answers (worst case: long timeouts)
    listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
    mute_port = listeners[0].socket.getsockname()[1]

    async def mute(stream):
        await trio.sleep_forever()

    nursery.start_soon(trio.serve_listeners, mute, listeners)
    fake = await FakeIpp().start(nursery)
    settings = make_settings(state, {"dead": f"ipp://127.0.0.1:{mute_port}/ipp/print",
                                     "live": fake.uri, "files": "folder:out"}, timeout=60)
    dead = await add_job(store, "dead")
    live = await add_job(store, "live")
    files = await add_job(store, "files")
    up = Upstream(settings, store, follow_interval=0.01)
    async with running(up):  # started() within the short startup bound despite the mute printer
        await wait_until(lambda: final(live) and final(files))
        assert not final(dead)
    assert live.state == files.state == JobState.COMPLETED


def digests(docs):
    import hashlib
    return [(len(d), hashlib.sha256(d).hexdigest()[:16]) for d in docs]


async def test_an_interrupted_delivery_goes_before_older_ready_jobs(store, state):
    """A job put back to pending part-way through (printer went down) is taken before
    anything else, even an older job released meanwhile, after a restart too."""
    from spoolproxy.upstream.service import Lane, make_backend

    settings = make_settings(state, {"q": "socket://127.0.0.1:9"})

    async def job(phase: str, state_: JobState) -> Job:
        j = store.new_job(queue="q", user="u")
        j.closed, j.state, j.delivery.phase = True, int(state_), phase
        await store.save(j)
        return j

    held_then_released = await job("none", JobState.PENDING_HELD)
    interrupted = await job("sending", JobState.PENDING)
    newer = await job("none", JobState.PENDING)
    held_then_released.state = int(JobState.PENDING)
    await store.save(held_then_released)

    lane = Lane("q", settings.queues["q"], store, make_backend(settings, "q"))
    lane._load_startup_work()  # as after a restart: found by its phase
    assert lane._next_job() is interrupted
    interrupted.state, interrupted.delivery.phase = int(JobState.COMPLETED), "done"
    await store.save(interrupted)
    assert lane._next_job() is held_then_released  # then plain id order
    held_then_released.state = int(JobState.COMPLETED)
    await store.save(held_then_released)
    assert lane._next_job() is newer
