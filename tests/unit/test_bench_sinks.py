"""The benchmark's sink printers (spoolproxy.bench.sinks): each kind counts the jobs and
bytes of a real client (a raw stream, the LPD client, the IPP client), the proxy's own
delivery backends print to them, and the sinks run as a child process that stops
when told and when its parent dies. No test asserts on time."""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import trio

from spoolproxy.bench.errors import BenchError
from spoolproxy.bench.sinks import SinkProcess, SinkStats, serve_sinks
from spoolproxy.ipp.client import IppClient
from spoolproxy.ipp.model import JobState, Op, Status, Tag
from spoolproxy.lpd import client as lpd_client
from spoolproxy.lpd import protocol as lpd
from spoolproxy.upstream import Upstream

from test_upstream import add_job, final, make_settings, running, state, store, wait_until  # noqa: F401

HOST = "127.0.0.1"


async def start(nursery, *kinds: str) -> tuple[dict[str, int], dict[str, SinkStats]]:
    stats: dict[str, SinkStats] = {}
    ports = await nursery.start(serve_sinks, kinds, HOST, stats)
    assert set(ports) == set(kinds) == set(stats)
    return ports, stats


def opener(data: bytes):
    async def chunks():
        for i in range(0, len(data), 50_000):
            yield data[i:i + 50_000]
    return chunks


# --------------------------------------------------------------------------- each kind

async def test_socket_sink_counts_a_job_per_connection(nursery):
    ports, stats = await start(nursery, "socket")
    sizes = [1, 70_000, 1_300_000]
    before = time.time()
    for size in sizes:
        stream = await trio.open_tcp_stream(HOST, ports["socket"])
        await stream.send_all(os.urandom(size))
        await stream.send_eof()
        assert await stream.receive_some(10) == b""  # the sink closes: the job is "printed"
        await stream.aclose()
    probe = await trio.open_tcp_stream(HOST, ports["socket"])  # a printer probe: no bytes
    await probe.aclose()
    await wait_until(lambda: stats["socket"].connections == 4, "probe seen")
    st = stats["socket"]
    assert (st.jobs, st.bytes) == (3, sum(sizes))
    assert before <= st.first_job_time <= st.last_job_time <= time.time()


async def test_lpd_sink_counts_jobs_of_the_lpd_client(nursery):
    ports, stats = await start(nursery, "lpd")
    a, b = os.urandom(120_000), os.urandom(3_000)
    names = lpd.file_names(7, "bench", 2)
    control = lpd.build_control(host="bench", user="u", job_name="j",
                                files=[("l", names[1], 1, ""), ("l", names[2], 2, "")])
    await lpd_client.send_job(HOST, ports["lpd"], "anyqueue", control=control, control_name=names[0],
                              data=[(names[1], len(a), opener(a)), (names[2], len(b), opener(b))], timeout=10)
    st = stats["lpd"]
    assert (st.jobs, st.bytes) == (1, len(a) + len(b))
    assert "no entries" in await lpd_client.queue_state(HOST, ports["lpd"], "q", timeout=10)
    assert "no entries" in await lpd_client.queue_state(HOST, ports["lpd"], "q", long=True, timeout=10)

    # control file first (as BSD lpr sends it): counted when the last data file is in
    stream = await trio.open_tcp_stream(HOST, ports["lpd"])
    control = lpd.build_control(host="h", user="u", files=[("l", "dfA001h", 1, "")])
    for chunk in (lpd.command(lpd.Command.RECEIVE_JOB, "q"), lpd.subcommand_control(len(control), "cfA001h"),
                  control + b"\0", lpd.subcommand_data(5, "dfA001h")):
        await stream.send_all(chunk)
        assert await stream.receive_some(1) == lpd.ACK
    assert st.jobs == 1
    await stream.send_all(b"hello\0")
    assert await stream.receive_some(1) == lpd.ACK
    await stream.aclose()
    assert (st.jobs, st.bytes) == (2, len(a) + len(b) + 5)

    bad = await trio.open_tcp_stream(HOST, ports["lpd"])  # not LPD: refused, the sink goes on
    await bad.send_all(b"GET / HTTP/1.1\r\n\r\n")
    assert await bad.receive_some(1) == lpd.NAK
    await bad.aclose()
    await wait_until(lambda: st.errors == 1, "error counted")


async def test_ipp_sink_print_job_and_create_job_send_document(nursery):
    ports, stats = await start(nursery, "ipp")
    uri = f"ipp://{HOST}:{ports['ipp']}/ipp/print"
    st = stats["ipp"]
    async with IppClient(uri, timeout=10) as c:
        attrs = await c.get_printer_attributes()
        ops = set(attrs.get("operations-supported").values)
        assert {Op.PRINT_JOB, Op.CREATE_JOB, Op.SEND_DOCUMENT, Op.GET_JOB_ATTRIBUTES, Op.CANCEL_JOB,
                Op.VALIDATE_JOB, Op.GET_JOBS, Op.GET_PRINTER_ATTRIBUTES} <= ops
        assert {"application/pdf", "image/pwg-raster", "application/vnd.hp-pclxl"} <= \
            set(attrs.get("document-format-supported").values)
        assert attrs.value("multiple-document-jobs-supported") is False
        assert attrs.value("printer-state") == 3

        docs = [os.urandom(1_000_000), os.urandom(10)]
        req = c.new_request(Op.PRINT_JOB)
        req.operation.add("document-format", Tag.MIME_TYPE, "application/pdf")
        resp = await c.request(req, docs[0])  # Content-Length
        assert resp.code == Status.OK and resp.group(Tag.JOB).value("job-id") == 1
        resp = await c.request(c.new_request(Op.PRINT_JOB), opener(docs[1])())  # chunked
        assert resp.code == Status.OK and st.jobs == 2

        resp = await c.request(c.new_request(Op.CREATE_JOB))
        job_id = resp.group(Tag.JOB).value("job-id")
        assert resp.code == Status.OK and job_id == 3 and st.jobs == 2
        send = c.new_request(Op.SEND_DOCUMENT)
        send.operation.add("job-id", Tag.INTEGER, job_id)
        send.operation.add("last-document", Tag.BOOLEAN, True)
        big = os.urandom(2_500_000)
        assert (await c.request(send, opener(big)())).code == Status.OK
        assert (st.jobs, st.bytes) == (3, sum(map(len, docs)) + len(big))

        get = c.new_request(Op.GET_JOB_ATTRIBUTES)
        get.operation.add("job-id", Tag.INTEGER, job_id)
        job = (await c.request(get)).group(Tag.JOB)
        assert job.value("job-state") == JobState.COMPLETED and job.value("job-impressions-completed") == 0
        get = c.new_request(Op.GET_JOB_ATTRIBUTES)
        get.operation.add("job-id", Tag.INTEGER, 99)
        assert (await c.request(get)).code == Status.NOT_FOUND
        for op in (Op.CANCEL_JOB, Op.VALIDATE_JOB, Op.GET_JOBS):
            resp = await c.request(c.new_request(op))
            assert resp.code == Status.OK and not resp.groups_of(Tag.JOB)
        assert (await c.request(c.new_request(Op.PAUSE_PRINTER))).code == Status.OPERATION_NOT_SUPPORTED
    assert st.connections == 1  # every request on one kept-alive connection


# --------------------------------------------------------------------------- the proxy's backends

async def test_the_proxys_delivery_backends_print_to_the_sinks(nursery, store, state):
    ports, stats = await start(nursery, "socket", "lpd", "ipp")
    queues = {"s": f"socket://{HOST}:{ports['socket']}", "l": f"lpd://{HOST}:{ports['lpd']}/q",
              "i": f"ipp://{HOST}:{ports['ipp']}/ipp/print"}
    docs = {q: [(os.urandom(n), "application/pdf") for n in sizes]
            for q, sizes in {"s": [300_000], "l": [200_000, 7], "i": [400_000]}.items()}
    jobs = {q: await add_job(store, q, d) for q, d in docs.items()}
    up = Upstream(make_settings(state, queues), store, follow_interval=0.01)
    async with running(up):
        await wait_until(lambda: all(final(j) for j in jobs.values()), "jobs final")
    for q, job in jobs.items():
        assert job.state == JobState.COMPLETED, (q, job.state_message)
    for kind, q in (("socket", "s"), ("lpd", "l"), ("ipp", "i")):
        st = stats[kind]
        assert (st.jobs, st.bytes) == (1, sum(len(d) for d, _ in docs[q])), kind  # lpd: one job, two files


# --------------------------------------------------------------------------- as a process

def send_raw(port: int, data: bytes) -> None:
    with socket.create_connection((HOST, port), timeout=10) as s:
        s.sendall(data)
        s.shutdown(socket.SHUT_WR)
        assert s.recv(10) == b""


def gone(pid: int) -> bool:
    """Exited (a zombie waiting for a reaper counts as exited)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True


def test_sink_process_start_stats_stop(tmp_path):
    sinks = SinkProcess(tmp_path / "sinks", kinds=("socket", "ipp"))
    with sinks:
        assert set(sinks.ports) == {"socket", "ipp"}
        assert sinks.uri("socket") == f"socket://127.0.0.1:{sinks.ports['socket']}"
        assert sinks.uri("ipp") == f"ipp://127.0.0.1:{sinks.ports['ipp']}/ipp/print"
        assert sinks.stats()["socket"]["jobs"] == 0
        send_raw(sinks.ports["socket"], b"x" * 100_000)
        st = sinks.wait_jobs("socket", 1, timeout=30)
        assert st["bytes"] == 100_000 and st["first"] is not None
        pid = sinks.proc.pid
    assert sinks.proc.poll() is not None and gone(pid)
    assert json.loads(sinks.stats_path.read_text())["socket"]["jobs"] == 1  # written at exit
    named = SinkProcess(tmp_path, kinds=("lpd",))
    named.ports = {"lpd": 8515}
    assert named.uri("lpd", "office") == "lpd://127.0.0.1:8515/office"
    with pytest.raises(BenchError, match="did not start"):
        SinkProcess(tmp_path / "bad", kinds=("nonsense",)).start(timeout=15)


def test_sink_process_dies_with_its_parent(tmp_path):
    script = ("import os, sys\n"
              "from spoolproxy.bench.sinks import SinkProcess\n"
              f"s = SinkProcess({str(tmp_path)!r}, kinds=('lpd',)).start()\n"
              "print(s.proc.pid, s.ports['lpd'], flush=True)\n"
              "os._exit(0)  # no stop(), no finalizers: as if killed\n")
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60,
                         cwd=Path(__file__).resolve().parents[2])
    pid, port = map(int, out.stdout.split())
    assert out.returncode == 0, out.stderr
    try:
        deadline = time.monotonic() + 20
        while not gone(pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert gone(pid), "the sink process outlived its parent"
    finally:
        if not gone(pid):
            os.kill(pid, signal.SIGKILL)
