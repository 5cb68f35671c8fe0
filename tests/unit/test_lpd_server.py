"""The LPD front end (spoolproxy.lpd.server) in a whole node, spoken to in raw RFC 1179
bytes: jobs in either file order become spool jobs like IPP ones; bad input gets a
negative acknowledgement, leaves nothing behind and stops nobody else."""
from __future__ import annotations

from pathlib import Path

import pytest
import trio

from spoolproxy import config
from spoolproxy.app import run_node
from spoolproxy.ipp.model import JobState, PrinterState
from spoolproxy.lpd.server import listing, selected
from spoolproxy.policy.convert import attributes, int_attr
from spoolproxy.spool.job import Document, Job

PDF = b"%PDF-1.4\n" + b"0" * 5000 + b"\n%%EOF\n"
ACK, NAK = b"\0", b"\x01"


def settings(tmp_path: Path, **lpd) -> config.Settings:
    return config.from_mapping({
        "node": {"state_dir": str(tmp_path / "state"), "name": "lpdnode", "fsync": False},
        "ipp": {"listen": "127.0.0.1", "port": 0},
        "lpd": {"listen": "127.0.0.1", "port": 0, **lpd},
        "web": {"enabled": False},
        "queues": {"demo": {"printer": f"folder:{tmp_path / 'out'}", "default": True},
                   "held": {"printer": f"folder:{tmp_path / 'out-held'}", "mode": "hold"}},
    })


class Node:
    def __init__(self, info, s: config.Settings, tmp_path: Path):
        self.info, self.settings, self.tmp = info, s, tmp_path

    @property
    def out(self) -> Path:
        return self.tmp / "out"

    def spool_files(self) -> set[str]:
        return {p.name for p in (self.settings.node.state_dir / "spool").iterdir()}


@pytest.fixture
async def node(tmp_path, nursery):
    s = settings(tmp_path, operators=["root"])
    info = await nursery.start(run_node, s)
    return Node(info, s, tmp_path)


class Client:
    """A raw LPD connection."""

    def __init__(self, stream: trio.SocketStream):
        self.stream = stream

    async def send(self, data: bytes) -> None:
        await self.stream.send_all(data)

    async def ack(self) -> bytes:
        with trio.fail_after(10):
            return await self.stream.receive_some(1)

    async def rest(self) -> bytes:
        out = b""
        with trio.fail_after(10):
            while chunk := await self.stream.receive_some(4096):
                out += chunk
        return out

    async def file(self, code: bytes, name: str, data: bytes) -> bytes:
        """A control (2) or data (3) file; returns the acknowledgement of its data."""
        await self.send(code + str(len(data)).encode() + b" " + name.encode() + b"\n")
        assert await self.ack() == ACK
        await self.send(data + b"\0")
        return await self.ack()


async def connect(node: Node) -> Client:
    return Client(await trio.open_tcp_stream("127.0.0.1", node.info.lpd_port))


def control(*lines: str) -> bytes:
    return "".join(f"{line}\n" for line in lines).encode()


async def delivered(node: Node, n: int) -> list[Path]:
    with trio.fail_after(20):
        while True:
            files = sorted(p for p in node.out.glob("*") if not p.name.startswith("."))
            if len(files) >= n:
                return files
            await trio.sleep(0.05)


async def receive_job(node: Node, queue: str = "demo") -> Client:
    c = await connect(node)
    await c.send(b"\x02" + queue.encode() + b"\n")
    assert await c.ack() == ACK
    return c


@pytest.mark.parametrize("data_first", [False, True])
async def test_a_job_in_either_order_is_delivered_byte_identical(node, data_first):
    c = await receive_job(node)
    cf = control("Hclient", "Pann", "Jreport", "ldfA001client", "Nreport.pdf", "UdfA001client")
    if data_first:
        assert await c.file(b"\x03", "dfA001client", PDF) == ACK
        assert await c.file(b"\x02", "cfA001client", cf) == ACK
    else:
        assert await c.file(b"\x02", "cfA001client", cf) == ACK
        assert await c.file(b"\x03", "dfA001client", PDF) == ACK
    await c.stream.aclose()
    [f] = await delivered(node, 1)
    assert f.read_bytes() == PDF
    assert f.suffix == ".pdf"  # sniffed: the client said "l" (raw)


async def test_the_final_acknowledgement_means_the_job_is_stored(node):
    c = await receive_job(node, "held")
    await c.file(b"\x03", "dfA007ws", PDF)
    await c.file(b"\x02", "cfA007ws", control("Hws", "Pbob", "Jpaper", "fdfA007ws", "fdfA007ws"))
    # the ack is back: the job is in the store already, held, owned and numbered
    [job] = node.info.store.jobs("held")
    assert (job.user, job.name, job.state) == ("bob", "paper", JobState.PENDING_HELD)
    assert job.extra["lpd"] == {"host": "ws", "number": 7, "control": "cfA007ws"}
    assert int_attr(attributes(job), "copies", 1) == 2  # the f line twice
    assert job.documents[0].format == "application/pdf" and job.documents[0].size == len(PDF)


async def test_several_data_files_make_one_job_with_documents_in_control_order(node):
    c = await receive_job(node)
    await c.file(b"\x03", "dfA002h", b"%!PS-Adobe-3.0\nshowpage\n")
    await c.file(b"\x03", "dfB002h", PDF)
    assert await c.file(b"\x02", "cfA002h", control("Hh", "Pcat", "ldfB002h", "odfA002h")) == ACK
    await c.stream.aclose()
    files = await delivered(node, 2)
    assert [f.suffix for f in files] == [".pdf", ".ps"]


async def test_data_length_zero_reads_until_the_connection_closes(node):
    c = await receive_job(node)
    assert await c.file(b"\x02", "cfA003h", control("Hh", "Pdan", "ldfA003h")) == ACK
    await c.send(b"\x030 dfA003h\n")
    assert await c.ack() == ACK
    await c.send(PDF)
    await c.stream.send_eof()
    [f] = await delivered(node, 1)
    assert f.read_bytes() == PDF


async def test_an_extra_lf_after_an_acknowledgement_is_ignored(node):
    c = await receive_job(node)
    await c.send(b"\n")
    await c.file(b"\x03", "dfA004h", PDF)
    await c.send(b"\n")
    assert await c.file(b"\x02", "cfA004h", control("Hh", "Peve", "ldfA004h")) == ACK
    [f] = await delivered(node, 1)
    assert f.read_bytes() == PDF


async def test_abort_forgets_the_files_received(node):
    before = node.spool_files()
    c = await receive_job(node)
    await c.file(b"\x03", "dfA005h", PDF)
    await c.send(b"\x01\n")
    assert await c.ack() == ACK
    await c.file(b"\x02", "cfA005h", control("Hh", "Pfay", "ldfA005h"))  # names a file no longer there
    await c.stream.aclose()
    await trio.sleep(0.3)
    assert node.spool_files() == before
    assert list(node.out.glob("*")) == []


async def test_unknown_queue_and_garbage_get_a_negative_acknowledgement(node):
    c = await connect(node)
    await c.send(b"\x02nosuchqueue\n")
    assert await c.ack() == NAK
    c = await connect(node)
    await c.send(b"\x09demo\n")
    assert await c.ack() == NAK
    c = await receive_job(node)
    await c.send(b"\x02999999999999 cfA001h\n")  # a control file larger than lpd.max_control_bytes
    assert await c.ack() == NAK
    c = await receive_job(node)
    await c.send(b"\x03twelve dfA001h\n")
    assert await c.ack() == NAK


async def test_a_client_that_stops_mid_file_leaves_nothing_and_others_are_served(node):
    before = node.spool_files()
    stalled = await receive_job(node)
    await stalled.send(b"\x03" + str(len(PDF)).encode() + b" dfA010h\n")
    assert await stalled.ack() == ACK
    await stalled.send(PDF[:1000])
    # meanwhile another client prints
    c = await receive_job(node)
    await c.file(b"\x03", "dfA011h", PDF)
    assert await c.file(b"\x02", "cfA011h", control("Hh", "Pgus", "ldfA011h")) == ACK
    [f] = await delivered(node, 1)
    assert f.read_bytes() == PDF
    await stalled.stream.aclose()  # gone mid-file
    with trio.fail_after(10):
        while node.spool_files() - before - {p.name for p in _spooled_of_jobs(node)}:
            await trio.sleep(0.05)


def _spooled_of_jobs(node: Node) -> list[Path]:
    return [Path(d.path) for j in node.info.store.jobs(which="all") for d in j.documents]


async def test_a_bad_control_file_is_refused_and_its_data_removed(node):
    before = node.spool_files()
    c = await receive_job(node)
    await c.file(b"\x03", "dfA012h", PDF)
    assert await c.file(b"\x02", "cfA012h", b"l\n") == NAK  # a print line without a file name
    await trio.sleep(0.3)
    assert node.spool_files() == before


async def test_queue_state_and_remove(node):
    for user, n in (("ann", 20), ("bob", 21)):
        c = await receive_job(node, "held")
        await c.file(b"\x03", f"dfA0{n}h", PDF)
        assert await c.file(b"\x02", f"cfA0{n}h", control("Hh", f"P{user}", f"J{user}-doc",
                                                           f"ldfA0{n}h", f"N{user}.pdf")) == ACK
        await c.stream.aclose()
    c = await connect(node)
    await c.send(b"\x03held\n")
    short = (await c.rest()).decode()
    assert short.startswith("held is ready\n"), short
    assert "ann" in short and "bob" in short and "held" in short.splitlines()[2]
    c = await connect(node)
    await c.send(b"\x04held ann\n")
    long = (await c.rest()).decode()
    assert "ann: held" in long and "ann.pdf" in long and "bob" not in long, long
    # bob may not remove ann's job (by her control-file number); ann may
    c = await connect(node)
    await c.send(b"\x05held bob 20\n")
    assert "permission denied" in (await c.rest()).decode()
    c = await connect(node)
    await c.send(b"\x05held ann 20\n")
    assert "removed" in (await c.rest()).decode()
    c = await connect(node)
    await c.send(b"\x03held\n")
    after = (await c.rest()).decode()
    assert "ann" not in after and "bob" in after
    # an operator removes anyone's, by user name
    c = await connect(node)
    await c.send(b"\x05held root bob\n")
    assert "removed" in (await c.rest()).decode()
    c = await connect(node)
    await c.send(b"\x03held\n")
    assert "no entries" in (await c.rest()).decode()


async def test_print_waiting_jobs_is_answered_with_a_close(node):
    c = await connect(node)
    await c.send(b"\x01demo\n")
    assert await c.rest() == b""


def _job(id: int, user: str, state: int, number: int | None = None) -> Job:
    j = Job(id=id, uuid=f"urn:uuid:{id}", queue="q", user=user, name=f"j{id}", state=state)
    j.documents.append(Document(1, f"f{id}", "application/pdf", 100 * id, f"doc{id}.pdf"))
    if number is not None:
        j.extra["lpd"] = {"number": number}
    return j


def test_listing_ranks_jobs_and_reports_a_stopped_printer():
    jobs = [_job(1, "ann", JobState.PROCESSING), _job(2, "bob", JobState.PENDING), _job(3, "ann", JobState.PENDING)]
    text = listing("q", PrinterState.PROCESSING, "", jobs, [], long=False)
    lines = text.splitlines()
    assert lines[0] == "q is ready and printing"
    assert [ln.split()[0] for ln in lines[2:]] == ["active", "1st", "2nd"]
    assert "doc2.pdf" in lines[3] and "200 bytes" in lines[3]
    down = listing("q", PrinterState.STOPPED, "media-jam-error", jobs, ["ann"], long=True)
    assert down.startswith("q is down: media-jam-error")
    assert "bob" not in down and down.count("ann:") == 2
    assert listing("q", PrinterState.IDLE, "", [], [], long=False) == "q is ready\nno entries\n"


def test_remove_selection():
    jobs = [_job(1, "ann", JobState.PENDING, number=7), _job(2, "bob", JobState.PENDING),
            _job(3, "ann", JobState.PENDING)]
    assert [j.id for j in selected(jobs, [], "ann")] == [1]
    assert [j.id for j in selected(jobs, ["-"], "ann")] == [1, 3]
    assert [j.id for j in selected(jobs, ["7"], "x")] == [1]  # the client's own job number
    assert [j.id for j in selected(jobs, ["2", "ann"], "x")] == [1, 2, 3]
    assert selected(jobs, ["99"], "ann") == []
