"""Secure Print and Find-Me end to end with real parts: `lp` prints to a hold queue of a
node (a `spoolproxy serve` process), ippeveprinter instances are the printers, users
and devices are set up with the `spoolproxy` command, and the device logs in and
releases over the HTTP device API as an MFD would."""
from __future__ import annotations

import json
import re
import time

import httpx
import pytest

import peers
import pdlcorpus
from test_ledger_e2e import GRAY, COLOR, cli, mixed_pdf, print_txns

pytestmark = pytest.mark.interop


class Mfd:
    """A device talking to the node's device API."""

    def __init__(self, node: peers.Node, key: str):
        self.http = httpx.Client(base_url=f"http://127.0.0.1:{node.web_port}/api/v1/device", trust_env=False,
                                 timeout=30, headers={"X-Device-Key": key})

    def login(self, **body) -> dict:
        r = self.http.post("/login", json=body)
        assert r.status_code == 200, r.text
        self.http.headers["Authorization"] = f"Bearer {r.json()['token']}"
        return r.json()

    def jobs(self) -> list[dict]:
        r = self.http.get("/jobs")
        assert r.status_code == 200, r.text
        return r.json()["jobs"]

    def wait_job(self, job_id: int, timeout: float = 60) -> dict:
        return peers.wait_for(lambda: next((j for j in self.jobs() if j["id"] == job_id), None), timeout=timeout)

    def release(self, *ids: int) -> list[dict]:
        r = self.http.post("/release", json={"jobs": list(ids)})
        assert r.status_code == 200, r.text
        return r.json()["results"]


def add_device(node: peers.Node, name: str, printer: str) -> str:
    out = cli(node, "devices", "add", name, "--printer", printer)
    return re.search(r"^(spd_\S+)$", out, re.M).group(1)


def wait_charged(node: peers.Node, job: int) -> list[dict]:
    return peers.wait_for(lambda: [t for t in print_txns(node, job) if t["kind"] == "print"] or None, timeout=30)


@pytest.fixture
def users(tmp_path):
    path = tmp_path / "users.csv"
    path.write_text("username,restricted,card,pin,initial_credit\n"
                    "ann,yes,04A1B2C3,4711,5.00\n"
                    "bob,yes,99887766,,5.00\n")
    return path


def test_secure_print_is_held_until_the_owner_releases_it_by_card(node, ippeveprinter, users, tmp_path):
    eve = ippeveprinter("colour", extra_args=["-s", "10,5"])  # a colour printer: nothing to convert
    n = node({"secure": {"printer": eve.uri, "mode": "hold", "cost": {"gray": GRAY, "color": COLOR}}})
    assert "2 created" in cli(n, "users", "import", str(users))
    mfd = Mfd(n, add_device(n, "mfd-1", "secure"))
    pdf = mixed_pdf(tmp_path)
    job = peers.lp(f"127.0.0.1:{n.port}", "secure", pdf, "-U", "ann")

    mfd.login(card="99887766")  # bob first: he sees nothing of ann's
    time.sleep(1.0)
    assert mfd.jobs() == []
    assert mfd.release(job)[0]["reason"] == "not-found"
    mfd.login(card="04A1B2C3")
    listed = mfd.wait_job(job)
    assert (listed["pages"], listed["color_pages"], listed["cost"]) == (3, 1, COLOR + 2 * GRAY)
    assert eve.files() == []  # held: nothing reached the printer
    (res,) = mfd.release(job)
    assert res["ok"] and res["printer"] == "secure", res
    (printed,) = eve.wait_files(1, timeout=60)
    assert printed.read_bytes() == pdf.read_bytes()
    txns = wait_charged(n, job)
    assert [(t["amount"], t["account"]) for t in txns] == [(-(COLOR + 2 * GRAY), "user:ann")]
    assert mfd.release(job)[0]["ok"] is False  # once only
    time.sleep(0.5)
    assert len(print_txns(n, job)) == 1
    audit = json.loads(cli(n, "audit", "--json"))
    assert {("release", "ann", job), ("release-refused", "bob", job)} <= {(e["event"], e["user"], e["job"])
                                                                         for e in audit}


def test_find_me_prints_only_at_the_printer_of_the_release_in_grayscale_there(node, ippeveprinter, users,
                                                                                tmp_path):
    a = ippeveprinter("a", extra_args=["-s", "10,5"])  # colour
    b = ippeveprinter("b")  # ippeveprinter's default: monochrome (color-supported false)
    cost = {"gray": GRAY, "color": COLOR}
    n = node({"floor-a": {"printer": a.uri, "cost": cost},
              "floor-b": {"printer": b.uri, "cost": {"gray": 7, "color": COLOR}},
              "anywhere": {"mode": "findme", "printers": ["floor-a", "floor-b"], "cost": cost}})
    cli(n, "users", "import", str(users))
    at_b = Mfd(n, add_device(n, "mfd-b", "floor-b"))
    pdf = mixed_pdf(tmp_path)
    job = peers.lp(f"127.0.0.1:{n.port}", "anywhere", pdf, "-U", "ann")
    at_b.login(card="04A1B2C3", pin="4711")
    listed = at_b.wait_job(job)
    assert listed["printers"] == ["floor-a", "floor-b"] and listed["cost"] == 3 * 7, listed
    (res,) = at_b.release(job)
    assert res["ok"] and res["printer"] == "floor-b" and res["cost"] == 21, res
    (printed,) = b.wait_files(1, timeout=60)
    assert pdlcorpus.inkcov(printed) == [False, False, False]  # the grayscale version
    time.sleep(1.0)
    assert a.files() == []  # only at B
    assert [t["amount"] for t in wait_charged(n, job)] == [-21]


def test_a_held_job_survives_kill_9_and_is_released_after_the_restart(node, ippeveprinter, users, tmp_path):
    eve = ippeveprinter("colour", extra_args=["-s", "10,5"])
    n = node({"secure": {"printer": eve.uri, "mode": "hold", "cost": {"gray": GRAY, "color": COLOR}}})
    cli(n, "users", "import", str(users))
    key = add_device(n, "mfd-1", "secure")
    pdf = mixed_pdf(tmp_path)
    job = peers.lp(f"127.0.0.1:{n.port}", "secure", pdf, "-U", "ann")
    mfd = Mfd(n, key)
    mfd.login(card="04A1B2C3")
    mfd.wait_job(job)
    n.kill9()
    n.start()
    peers.wait_port("127.0.0.1", n.web_port, proc=n)
    mfd = Mfd(n, key)  # the device key is durable; sessions end with the node
    mfd.login(card="04A1B2C3")
    assert mfd.wait_job(job)["cost"] == COLOR + 2 * GRAY
    assert mfd.release(job)[0]["ok"]
    (printed,) = eve.wait_files(1, timeout=60)
    assert printed.read_bytes() == pdf.read_bytes()
    assert [t["amount"] for t in wait_charged(n, job)] == [-(COLOR + 2 * GRAY)]


def test_a_printer_that_cannot_take_pdf_gets_it_converted_at_release(node, ippeveprinter, users, tmp_path):
    eve = ippeveprinter("raster", formats="image/pwg-raster", extra_args=["-s", "10,5"])
    n = node({"secure": {"printer": eve.uri, "mode": "hold", "cost": {"gray": GRAY, "color": COLOR}}})
    cli(n, "users", "import", str(users))
    mfd = Mfd(n, add_device(n, "mfd-r", "secure"))
    pdf = mixed_pdf(tmp_path)
    job = peers.lp(f"127.0.0.1:{n.port}", "secure", pdf, "-U", "ann")
    mfd.login(card="04A1B2C3")
    listed = mfd.wait_job(job)
    assert "application/pdf to image/pwg-raster" in listed["conversions"], listed
    (res,) = mfd.release(job)
    assert res["ok"] and res["cost"] == COLOR + 2 * GRAY, res
    (printed,) = eve.wait_files(1, timeout=90)
    assert printed.suffix == ".pwg" and printed.read_bytes()[:4] == b"RaS2"
    from spoolproxy import pdl
    a = pdl.analyze(str(printed), ghostscript=False)
    assert (a.format, a.pages, a.color_impressions) == ("image/pwg-raster", 3, 1)
    assert [t["amount"] for t in wait_charged(n, job)] == [-(COLOR + 2 * GRAY)]
