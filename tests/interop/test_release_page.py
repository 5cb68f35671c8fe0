"""The release-station page in headless Chromium: a kiosk is linked to its device once,
a card number typed as a keyboard-emulating reader types it (digits, then Enter)
logs in, the page shows the held job and its cost, the release prints it at
ippeveprinter. Screenshots are kept as test artifacts (tests/browser.py)."""
from __future__ import annotations

import json
import re

import pytest

import browser
import peers
from test_ledger_e2e import COLOR, GRAY, cli, mixed_pdf, print_txns
from test_release_e2e import add_device

pytestmark = pytest.mark.interop


def test_release_station_page_logs_in_by_card_shows_the_cost_and_releases(node, ippeveprinter, tmp_path):
    browser.chromium_path()  # skip (or fail in CI) before starting anything
    eve = ippeveprinter("colour", extra_args=["-s", "10,5"])
    n = node({"secure": {"printer": eve.uri, "mode": "hold", "cost": {"gray": GRAY, "color": COLOR}}},
             settings={"release": {"session_timeout": 60}})
    users = tmp_path / "users.csv"
    users.write_text("username,full_name,restricted,card,initial_credit\nann,Ann Example,yes,04A1B2C3,5.00\n")
    cli(n, "users", "import", str(users))
    key = add_device(n, "kiosk-1", "secure")
    pdf = mixed_pdf(tmp_path)
    job = peers.lp(f"127.0.0.1:{n.port}", "secure", pdf, "-U", "ann", "-t", "thesis.pdf")
    peers.wait_port("127.0.0.1", n.web_port, proc=n)
    url = f"http://127.0.0.1:{n.web_port}/release"
    for shot in ("release_page-jobs", "release_page-released"):
        (browser.artifacts_dir() / f"{shot}.png").unlink(missing_ok=True)

    with browser.chromium_page(viewport=(1024, 768), failure_screenshot="release_page-failure") as page:
        page.goto(url)
        page.fill("#device_key", "spd_not-a-key")
        page.click("#setup-button")
        assert "not valid" in page.inner_text("#message")
        page.fill("#device_key", key)
        page.click("#setup-button")
        assert page.is_visible("#card") and page.evaluate("document.activeElement.id") == "card"

        page.keyboard.type("00000000")  # an unknown card: the page says what to do
        page.keyboard.press("Enter")
        assert "not registered" in page.inner_text("#message")
        page.fill("#card", "")
        page.keyboard.type("04A1B2C3")  # what a card reader does: digits, then Enter
        page.keyboard.press("Enter")
        page.wait_for_selector("#user")
        assert page.inner_text("#user") == "Ann Example"
        assert page.inner_text("#balance") == "5.00"
        # the engine counts the job in the background: reload until it is listed
        row = f'tr.job[data-job-id="{job}"]'
        for _ in range(100):
            if page.locator(row).count():
                break
            page.wait_for_timeout(200)
            page.reload()
        assert page.inner_text(f"{row} .cost") == "0.70"
        assert "thesis.pdf" in page.inner_text(row)
        assert eve.files() == []
        browser.save_screenshot(page, "release_page-jobs")

        page.click("#release-selected")
        message = page.inner_text("#message")
        assert re.search(r"Printing 1 job at secure for 0\.70", message), message
        (printed,) = eve.wait_files(1, timeout=60)
        assert printed.read_bytes() == pdf.read_bytes()
        assert page.locator("#no-jobs").is_visible()
        browser.save_screenshot(page, "release_page-released")

        page.click("#logout")
        assert page.is_visible("#card")

    txns = peers.wait_for(lambda: [t for t in print_txns(n, job) if t["kind"] == "print"] or None, timeout=30)
    assert [t["amount"] for t in txns] == [-(COLOR + 2 * GRAY)]
    events = [e["event"] for e in json.loads(cli(n, "audit", "--json"))]
    assert {"login", "login-failed", "release", "logout"} <= set(events)
    for shot in ("release_page-jobs", "release_page-released"):
        assert (browser.artifacts_dir() / f"{shot}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_release_page_returns_to_the_login_screen_after_the_timeout(node, tmp_path):
    browser.chromium_path()
    n = node({"secure": {"printer": f"folder:{tmp_path / 'out'}", "mode": "hold"}},
             settings={"release": {"session_timeout": 2}})
    users = tmp_path / "users.csv"
    users.write_text("username,card\nann,1234\n")
    cli(n, "users", "import", str(users))
    key = add_device(n, "kiosk-2", "secure")
    peers.wait_port("127.0.0.1", n.web_port, proc=n)
    with browser.chromium_page(failure_screenshot="release_page-timeout-failure") as page:
        page.goto(f"http://127.0.0.1:{n.web_port}/release")
        page.fill("#device_key", key)
        page.click("#setup-button")
        page.fill("#card", "1234")
        page.click("#login-button")
        page.wait_for_selector("#no-jobs")
        page.wait_for_selector("#card", timeout=10_000)  # the page went back by itself
        assert "logged out" in page.inner_text("#message")
