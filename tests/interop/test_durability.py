"""A job the proxy acknowledged survives ``kill -9`` and is printed exactly once.

The printer is down when the job arrives, the node is killed with SIGKILL as soon as
the client has its acknowledgement, then the printer comes up and the node restarts:
the printer must get the document once (counted after a settle period), byte for
byte, and the proxy must report the job completed.
"""
from __future__ import annotations

import time

import pytest

import peers

pytestmark = pytest.mark.interop

WAIT = 90
SETTLE = 4.0  # seconds with no further delivery before counting


def queue_settings(printer: str) -> dict:
    return {"q": {"printer": printer, "mode": "direct", "default": True,
                  "retry_initial": 0.2, "retry_max": 1.0, "timeout": 5}}


def proxy_job_state(node: peers.Node, job_id: int) -> str | None:
    for j in peers.get_jobs(node.uri("q"), "all"):
        if int(j["job-id"]) == job_id:
            return peers.job_state_name(j["job-state"])
    return None


def wait_proxy_completed(node: peers.Node, job_id: int) -> None:
    try:
        peers.wait_for(lambda: proxy_job_state(node, job_id) == "completed", WAIT, 0.5,
                       f"job {job_id} completed on the proxy")
    except TimeoutError:
        pytest.fail(f"the proxy reports job {job_id} as {proxy_job_state(node, job_id)!r}, "
                    f"not completed, {WAIT} s after the restart")


def test_kill9_before_ipp_printer_is_up(ippeveprinter, node, tmp_path):
    peers.require("lp")
    eve = ippeveprinter("eve", start=False, fast=True)  # its port is chosen, nothing listens yet
    n = node(queue_settings(eve.uri))
    pdf = peers.make_pdf(tmp_path / "precious.pdf", pages=2)

    job_id = peers.lp(f"127.0.0.1:{n.port}", "q", pdf, "-t", "precious")  # returns once acknowledged
    n.kill9()
    assert not peers.port_open("127.0.0.1", n.port)

    eve.start()
    n.start()

    files = eve.wait_files(1, timeout=WAIT, settle=SETTLE)
    assert len(files) == 1, f"printed {len(files)} times: {[f.name for f in files]}"
    assert files[0].read_bytes() == pdf.read_bytes()
    wait_proxy_completed(n, job_id)
    time.sleep(SETTLE)  # nothing more may arrive once the proxy calls it completed
    assert len(eve.files()) == 1, [f.name for f in eve.files()]


def test_kill9_before_appsocket_printer_is_up(appsocket_sink, node, tmp_path):
    sink = appsocket_sink(keep=True, start=False)  # AppSocket printer, down (connection refused)
    n = node(queue_settings(sink.uri))
    doc = peers.make_pdf(tmp_path / "socket-doc.pdf", pages=3)
    data = doc.read_bytes()

    status, attrs = peers.ipp_print_stream(n.uri("q"), [data[i:i + 1000] for i in range(0, len(data), 1000)],
                                           document_format="application/pdf", job_name="to appsocket")
    assert status < 0x0100, f"Print-Job: status 0x{status:04x} {attrs.get('status-message')}"
    job_id = int(attrs["job-id"][0])
    n.kill9()

    sink.up()
    n.start()

    jobs = sink.wait_jobs(1, timeout=WAIT, settle=SETTLE)
    assert len(jobs) == 1, f"printed {len(jobs)} times: {[(c.size, c.sha256[:12]) for c in jobs]}"
    assert jobs[0].data == data
    wait_proxy_completed(n, job_id)
    time.sleep(SETTLE)
    assert len(sink.finished()) == 1, [(c.size, c.sha256[:12]) for c in sink.finished()]
