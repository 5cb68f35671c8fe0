"""Real CUPS clients print through the proxy to ippeveprinter, bytes unchanged.

* ``lp -h 127.0.0.1:PORT -d QUEUE file`` (cups-client), the way a Linux or macOS
  workstation prints.  lp first sends Get-Printer-Attributes to "/" with printer-uri
  ipp://localhost:PORT/printers/QUEUE, then follows printer-uri-supported and sends
  Create-Job + Send-Document there.
* a queue on a private cupsd pointed at the proxy (``lpadmin -p Q -E -v
  ipp://127.0.0.1:PORT/ipp/print/QUEUE``, a raw queue): what "point the print server's
  queues at the proxy" means.  cupsd's ipp backend is the client here.

Each document must arrive byte-identical in ippeveprinter's -k spool directory, and
the proxy must report the job completed.
"""
from __future__ import annotations

import pytest

import peers

pytestmark = pytest.mark.interop

WAIT = 90


def wait_completed_on_proxy(node: peers.Node, queue: str, count: int) -> list[dict]:
    def done():
        jobs = peers.get_jobs(node.uri(queue), "completed")
        return jobs if len(jobs) >= count else None
    try:
        return peers.wait_for(done, WAIT, 0.5, f"{count} completed job(s) on the proxy queue {queue}")
    except TimeoutError:
        jobs = peers.get_jobs(node.uri(queue), "all")
        pytest.fail(f"the proxy does not report {count} completed job(s) on {queue} after {WAIT} s; "
                    f"its jobs: {[(j.get('job-id'), peers.job_state_name(j.get('job-state'))) for j in jobs]}")


@pytest.fixture
def eve_and_node(ippeveprinter, node):
    eve = ippeveprinter("eve", fast=True)
    n = node({"office": {"printer": eve.uri, "mode": "direct", "default": True,
                         "retry_initial": 0.2, "retry_max": 1.0}})
    return eve, n


def test_lp_to_proxy(eve_and_node, tmp_path):
    peers.require("lp")
    eve, n = eve_and_node
    pdf = peers.make_pdf(tmp_path / "lp-doc.pdf", pages=3, color=True)

    peers.lp(f"127.0.0.1:{n.port}", "office", pdf, "-t", "lp to proxy")

    files = eve.wait_files(1, timeout=WAIT)
    assert len(files) == 1, [f.name for f in files]
    assert files[0].read_bytes() == pdf.read_bytes(), f"{files[0]} differs from what lp sent"
    jobs = wait_completed_on_proxy(n, "office", 1)
    assert [peers.job_state_name(j["job-state"]) for j in jobs] == ["completed"]


def test_cupsd_queue_to_proxy(eve_and_node, cupsd, tmp_path):
    eve, n = eve_and_node
    cups = cupsd()
    cups.lpadmin("viaproxy", n.uri("office"))
    pdf = peers.make_pdf(tmp_path / "cupsd-doc.pdf", pages=2, color=False, paper="letter")

    cups_job = cups.lp("viaproxy", pdf, "-t", "via cupsd")

    files = eve.wait_files(1, timeout=WAIT)
    assert len(files) == 1, [f.name for f in files]
    assert files[0].read_bytes() == pdf.read_bytes(), f"{files[0]} differs from what lp gave cupsd"
    wait_completed_on_proxy(n, "office", 1)

    def cups_done():
        jobs = {int(j["job-id"]): j for j in cups.jobs("viaproxy", "completed")}
        return jobs.get(cups_job)
    job = peers.wait_for(cups_done, WAIT, 0.5, f"cupsd job {cups_job} completed")
    assert peers.job_state_name(job["job-state"]) == "completed"


def test_lp_and_cupsd_then_lpstat(eve_and_node, cupsd, tmp_path):
    """Both clients in a row; ``lpstat -W completed -o QUEUE`` against the proxy lists both."""
    peers.require("lpstat")
    eve, n = eve_and_node
    cups = cupsd()
    cups.lpadmin("viaproxy", n.uri("office"))
    doc_lp = peers.make_pdf(tmp_path / "a.pdf", pages=1, color=True)
    doc_cups = peers.make_pdf(tmp_path / "b.pdf", pages=4, color=True)

    peers.lp(f"127.0.0.1:{n.port}", "office", doc_lp, "-t", "first")
    eve.wait_files(1, timeout=WAIT)
    cups.lp("viaproxy", doc_cups, "-t", "second")

    files = eve.wait_files(2, timeout=WAIT)
    assert sorted(f.read_bytes() for f in files) == sorted([doc_lp.read_bytes(), doc_cups.read_bytes()])
    wait_completed_on_proxy(n, "office", 2)

    out = peers.lpstat_completed(f"127.0.0.1:{n.port}", "office")
    print(out)
    lines = [line for line in out.splitlines() if line.startswith("office-")]
    assert len(lines) == 2, f"lpstat -W completed -o office lists {len(lines)} job(s), not 2:\n{out}"
