"""Headless Chromium against a real node: the plumbing of tests/browser.py.

A plain sync test on purpose: Playwright's sync API must not run inside trio's loop.
The pages are ones that need no network: the Swagger UI at /api/docs loads its
JavaScript from a CDN, so the browser reads the health JSON on the web port and the
HTML status page on the IPP port instead."""
from __future__ import annotations

import json

import pytest

import browser
import peers

pytestmark = pytest.mark.interop

NAME = "browser-peer-node"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def test_chromium_reads_the_node_and_saves_a_screenshot(node, tmp_path):
    shot_name = "browser_peer-status_page"
    (browser.artifacts_dir() / f"{shot_name}.png").unlink(missing_ok=True)  # no stale pass

    with browser.chromium_page(failure_screenshot="browser_peer-failure") as page:
        n = node({"printq": {"printer": f"folder:{tmp_path / 'out'}"}}, settings={"node": {"name": NAME}})
        peers.wait_port("127.0.0.1", n.web_port, proc=n)  # Node.start waits for IPP only

        resp = page.goto(f"http://127.0.0.1:{n.web_port}/api/v1/health")
        assert resp is not None and resp.status == 200
        health = json.loads(page.inner_text("body"))  # Chromium shows JSON as text in a <pre>
        assert health["status"] == "ok" and health["node"] == NAME, health

        resp = page.goto(f"http://127.0.0.1:{n.port}/")
        assert resp is not None and resp.status == 200
        assert page.title() == "spoolproxy"
        assert page.locator("li").all_inner_texts() == ["printq"]
        shot = browser.save_screenshot(page, shot_name)

    assert shot.read_bytes()[:8] == PNG_SIGNATURE
