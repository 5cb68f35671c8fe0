"""A 1 GiB job streams through the proxy in bounded memory.

The client streams a Print-Job with HTTP chunked encoding (the document is generated
on the fly, never held in memory or written to disk on this side) to a direct queue
whose printer is an AppSocket sink that only counts and hashes what it receives.
The node's peak resident set (VmHWM) must stay under 150 MiB, and the sink must get
exactly the bytes that were sent.
"""
from __future__ import annotations

import shutil

import pytest

import peers

pytestmark = pytest.mark.interop

SIZE = 1 << 30          # 1 GiB
RSS_LIMIT = 150 << 20   # 150 MiB
WAIT = 180


def test_one_gib_job_streams_in_bounded_memory(appsocket_sink, node):
    sink = appsocket_sink(keep=False)
    n = node({"big": {"printer": sink.uri, "mode": "direct", "default": True,
                      "retry_initial": 0.2, "retry_max": 1.0}})
    try:
        rss_idle = n.rss()
        chunks, digest = peers.pattern_chunks(SIZE, chunk_size=1 << 20)
        status, attrs = peers.ipp_print_stream(n.uri("big"), chunks, document_format="application/octet-stream",
                                               job_name="one-gib", timeout=WAIT)
        sent_sha = digest.hexdigest()
        assert status < 0x0100, f"Print-Job: status 0x{status:04x} {attrs.get('status-message')}"

        jobs = sink.wait_jobs(1, timeout=WAIT, settle=1.0)
        peak = n.peak_rss()
        print(f"\nnode RSS idle {rss_idle / 2**20:.1f} MiB, peak (VmHWM) {peak / 2**20:.1f} MiB "
              f"after a {SIZE / 2**30:.0f} GiB job; sink got {jobs[0].size} bytes")
        assert len(jobs) == 1, [(c.size, c.sha256[:12]) for c in jobs]
        assert jobs[0].size == SIZE
        assert jobs[0].sha256 == sent_sha, "the printer got different bytes than the client sent"
        assert peak < RSS_LIMIT, f"node peak RSS {peak / 2**20:.1f} MiB >= {RSS_LIMIT / 2**20:.0f} MiB"
    finally:
        n.stop()
        shutil.rmtree(n.state_dir, ignore_errors=True)  # do not leave a 1 GiB spool file in /tmp
