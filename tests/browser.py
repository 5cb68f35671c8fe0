"""Headless Chromium as a real test peer: Debian's ``chromium`` driven by Playwright's
sync API with ``executable_path`` (Playwright's own browser download is never used).

* ``chromium_path()`` finds the binary ($SPOOLPROXY_CHROMIUM, else ``chromium`` in PATH)
  and checks that the playwright package imports; if either is missing the test is
  skipped, or fails under SPOOLPROXY_REQUIRE_INTEROP=1, like every peer in peers.py.
* ``chromium_page()`` yields a Playwright Page and closes the browser however the block ends.
* ``save_screenshot(page, name)`` writes ``name.png`` under ``artifacts_dir()``
  ($SPOOLPROXY_TEST_ARTIFACTS, else <repo>/test-artifacts/), which CI keeps.

Use it from plain sync tests only: Playwright's sync API runs its own event loop and
refuses to run inside another one, so never from a trio test.  Start the node as a
subprocess (the ``node`` fixture / peers.Node) and point the page at its web port.
"""
from __future__ import annotations

import contextlib
import os
import re
from pathlib import Path
from typing import TYPE_CHECKING, Iterator

import peers

if TYPE_CHECKING:
    from playwright.sync_api import Page

CHROMIUM_ENV = "SPOOLPROXY_CHROMIUM"  # another binary, or a missing one to test the skip
ARTIFACTS_ENV = "SPOOLPROXY_TEST_ARTIFACTS"

# Playwright already passes both by default; they are spelled out because the tests rely
# on them: the setuid/namespace sandbox cannot start as root in a container ("Chromium
# sandboxing failed!"), and Docker's 64 MB /dev/shm crashes renderers (shared memory
# goes to /tmp instead).
_SANDBOX = False
_ARGS = ["--disable-dev-shm-usage"]


def chromium_path() -> str:
    """Path of the chromium binary; skip (fail under SPOOLPROXY_REQUIRE_INTEROP=1) when it
    or the playwright package is missing."""
    exe = os.environ.get(CHROMIUM_ENV) or "chromium"
    path = peers.which(exe)
    if path is None:
        peers.unavailable(f"{exe} is not installed (Debian: chromium; or set {CHROMIUM_ENV})")
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        peers.unavailable("the playwright package is not installed (pip install -e '.[test]')")
    return path  # type: ignore[return-value]


@contextlib.contextmanager
def chromium_page(*, viewport: tuple[int, int] = (1280, 800), timeout: float = 15.0,
                  failure_screenshot: str | None = None) -> Iterator["Page"]:
    """A fresh headless Chromium (own temporary profile) and one page in it.

    ``timeout`` (seconds) bounds every page action, so a node that does not answer fails
    the test instead of hanging it.  With ``failure_screenshot``, a block that raises
    leaves ``<failure_screenshot>.png`` in the artifacts directory."""
    exe = chromium_path()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=exe, headless=True, chromium_sandbox=_SANDBOX,
                                     args=_ARGS, timeout=60_000)
        try:
            context = browser.new_context(viewport={"width": viewport[0], "height": viewport[1]})
            page = context.new_page()
            page.set_default_timeout(timeout * 1000)
            try:
                yield page
            except BaseException:
                if failure_screenshot:
                    with contextlib.suppress(Exception):  # the original error matters more
                        save_screenshot(page, failure_screenshot)
                raise
        finally:
            browser.close()


def artifacts_dir() -> Path:
    d = Path(os.environ.get(ARTIFACTS_ENV) or peers.REPO_ROOT / "test-artifacts")
    d.mkdir(parents=True, exist_ok=True)
    return d


def save_screenshot(page: "Page", name: str) -> Path:
    """Screenshot of the whole page as ``<artifacts_dir>/<name>.png``; returns the path."""
    safe = re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._") or "screenshot"
    path = artifacts_dir() / f"{safe}.png"
    page.screenshot(path=str(path), full_page=True)
    return path
