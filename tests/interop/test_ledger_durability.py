"""Charges survive ``kill -9``: the node is killed in the middle of a burst of
charged jobs, then restarted; every job reported delivered is charged exactly once,
none twice, and what was charged for a job that did not print is refunded.

Jobs arrive over IPP from several client threads at once, each priced by the
queue's cost model and charged when delivered to a folder printer; the kill
comes once some of them have been reported completed.
"""
from __future__ import annotations

import collections
import http.client
import json
import subprocess
import sys
import threading
import time

import pytest

import peers

pytestmark = pytest.mark.interop

JOBS = 120
THREADS = 6
PRICE = 7  # one gray page


def print_job(port: int, uri: str, user: str, document: bytes) -> int | None:
    """Print-Job; the job id, or None if the node did not acknowledge it."""
    body = peers.encode_request(0x0002, 1, [
        (peers._TAG_CHARSET, "attributes-charset", "utf-8"),
        (peers._TAG_LANGUAGE, "attributes-natural-language", "en"),
        (peers._TAG_URI, "printer-uri", uri),
        (peers._TAG_NAME, "requesting-user-name", user),
        (peers._TAG_MIME, "document-format", "application/pdf"),
    ]) + document
    try:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=20)
        conn.request("POST", "/ipp/print/q", body, {"Content-Type": "application/ipp"})
        resp = conn.getresponse()
        data = resp.read()
        conn.close()
    except OSError:
        return None
    status, attrs = peers.decode_response(data)
    return attrs["job-id"][0] if status < 0x100 and "job-id" in attrs else None


def completed(node: peers.Node) -> set[int]:
    try:
        return {int(j["job-id"]) for j in peers.get_jobs(node.uri("q"), "completed", timeout=10)
                if peers.job_state_name(j["job-state"]) == "completed"}
    except (peers.PeerError, subprocess.TimeoutExpired):
        return set()


def transactions(node: peers.Node) -> list[dict]:
    proc = subprocess.run([sys.executable, "-m", "spoolproxy", "transactions", "--limit", "0", "--json",
                           "--config", str(node.config_path), "--state-dir", str(node.state_dir)],
                          capture_output=True, text=True, env=node.env(), timeout=60)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def test_kill9_mid_burst_charges_each_delivered_job_once(node, tmp_path):
    peers.require("gs")
    pdf = peers.make_pdf(tmp_path / "one.pdf", pages=1, color=False).read_bytes()
    n = node({"q": {"printer": f"folder:{tmp_path / 'out'}", "cost": {"gray": PRICE},
                    "retry_initial": 0.2, "retry_max": 1.0}})
    uri = n.uri("q")
    acknowledged: list[int] = []
    lock = threading.Lock()
    stop = threading.Event()

    def client(i: int) -> None:
        for k in range(i, JOBS, THREADS):
            if stop.is_set():
                return
            job = print_job(n.port, uri, f"user{k % 3}", pdf)
            if job is not None:
                with lock:
                    acknowledged.append(job)

    threads = [threading.Thread(target=client, args=(i,)) for i in range(THREADS)]
    for t in threads:
        t.start()
    seen_done: set[int] = set()
    deadline = time.monotonic() + 120
    while len(seen_done) < 15 and time.monotonic() < deadline:
        seen_done = completed(n)
    assert len(seen_done) >= 15, "the burst did not get going"
    n.kill9()  # mid-burst: clients are still sending, jobs are being charged
    stop.set()
    for t in threads:
        t.join()
    with lock:
        acked = set(acknowledged)
    assert seen_done <= acked

    n.start()
    peers.wait_for(lambda: acked <= {int(j["job-id"]) for j in peers.get_jobs(uri, "completed", timeout=10)},
                   timeout=120, interval=1.0)
    done = completed(n)
    assert seen_done <= done  # reported delivered before the crash: still delivered

    txns = transactions(n)
    net = collections.Counter()
    prints = collections.Counter()
    for t in txns:
        if t["kind"] == "print":
            prints[t["job"]] += 1
        net[t["job"]] += t["amount"]
    assert max(prints.values()) == 1, "a job was charged twice"
    for job in done:
        assert prints[job] == 1 and net[job] == -PRICE, (job, [t for t in txns if t["job"] == job])
    for job in acked - done:  # ended otherwise: nothing charged, or charged and refunded
        assert net[job] == 0, (job, [t for t in txns if t["job"] == job])
    print(f"{len(acked)} acknowledged, {len(seen_done)} completed before the kill, {len(done)} after "
          f"the restart, {sum(prints.values())} charges, {sum(1 for t in txns if t['kind'] == 'refund')} refunds")
    # the balances agree with the log
    total = sum(t["amount"] for t in txns)
    assert total == -PRICE * len(done)
