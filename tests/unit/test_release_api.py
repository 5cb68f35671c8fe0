"""Secure Print and Find-Me through the device API (spoolproxy.web.release_api), against
a whole node: jobs come in over IPP, users, top-ups and devices go in through the
admin API, folder printers show what was delivered where.

The documents are hand-made PDFs (peers.simple_pdf) whose colour the engine decides
without Ghostscript; the conversion to grayscale at a mono printer needs Ghostscript.
"""
from __future__ import annotations

from pathlib import Path

import httpx
import peers
import pytest
import trio

from spoolproxy import config
from spoolproxy.app import run_node
from spoolproxy.ipp.client import IppClient, check, new_request
from spoolproxy.ipp.model import Op, Status, Tag
from spoolproxy.web.auth import TOKEN_FILE

PROBLEM = "application/problem+json"
GRAY, COLOR = 10, 50
DOC = peers.simple_pdf([True, False, False])  # 1 colour + 2 gray pages: 70 at GRAY/COLOR
PIN = "4711"


def settings(tmp_path: Path, *, release=None, **queues) -> config.Settings:
    cost = {"gray": GRAY, "color": COLOR}
    qs = {
        "secure": {"printer": f"folder:{tmp_path / 'out-secure'}", "mode": "hold", "cost": cost,
                   "managers": ["@desk"], "delegates": {"ann": ["dan"]}},
        "p1": {"printer": f"folder:{tmp_path / 'out-p1'}", "cost": cost},
        "p2": {"printer": f"folder:{tmp_path / 'out-p2'}", "color": False, "cost": {"gray": 8, "color": COLOR}},
        "anywhere": {"mode": "findme", "printers": ["p1", "p2"], "cost": cost},
    }
    qs.update(queues)
    return config.from_mapping({
        "node": {"state_dir": str(tmp_path / "state"), "name": "rel", "fsync": False},
        "ipp": {"listen": "127.0.0.1", "port": 0},
        "lpd": {"listen": "127.0.0.1", "port": 0},
        "web": {"listen": "127.0.0.1", "port": 0},
        "ledger": {"new_user_restricted": True},
        "release": {"lockout_attempts": 3, "lockout_seconds": 1.5, **(release or {})},
        "queues": qs,
    })


class Site:
    """A running node with an admin client and helpers for devices, users and jobs."""

    def __init__(self, s: config.Settings, info, admin: httpx.AsyncClient, tmp_path: Path):
        self.s, self.info, self.admin, self.tmp = s, info, admin, tmp_path
        self.base = f"http://127.0.0.1:{info.web_port}/api/v1"

    async def user(self, name: str, *, credit: int = 1000, card: str | None = None, **fields) -> None:
        if card is not None:
            fields["cards"] = [card]
        r = await self.admin.put(f"/users/{name}", json={"restricted": True, **fields})
        assert r.status_code in (200, 201), r.text
        if credit:
            r = await self.admin.post(f"/balances/{name}/topup",
                                      json={"amount": f"{credit / 100:.2f}", "comment": "test"})
            assert r.status_code == 200, r.text

    async def device(self, name: str, printer: str) -> "Device":
        r = await self.admin.post("/devices", json={"name": name, "printer": printer})
        assert r.status_code == 201, r.text
        return Device(self, r.json()["key"])

    async def submit(self, queue: str, user: str, doc: bytes = DOC, name: str = "report.pdf", **ints) -> int:
        uri = f"ipp://127.0.0.1:{self.info.ipp_port}/ipp/print/{queue}"
        async with IppClient(uri) as c:
            req = new_request(Op.PRINT_JOB, uri, user=user)
            req.operation.add("job-name", Tag.NAME, name)
            req.operation.add("document-format", Tag.MIME_TYPE, "application/pdf")
            for k, v in ints.items():
                req.add_group(Tag.JOB).add(k, Tag.INTEGER, v)
            resp = check(await c.request(req, doc))
            return resp.group(Tag.JOB).value("job-id")

    def out(self, queue: str) -> list[Path]:
        d = self.tmp / f"out-{queue}"
        return sorted(d.iterdir()) if d.exists() else []

    async def wait_out(self, queue: str, n: int = 1, timeout: float = 30) -> list[Path]:
        with trio.fail_after(timeout):
            while len(self.out(queue)) < n:
                await trio.sleep(0.05)
        return self.out(queue)

    async def txns(self, **params) -> list[dict]:
        r = await self.admin.get("/transactions", params=params)
        assert r.status_code == 200, r.text
        return r.json()

    async def audit(self, **params) -> list[dict]:
        r = await self.admin.get("/audit", params=params)
        assert r.status_code == 200, r.text
        return r.json()


class Device:
    def __init__(self, site: Site, key: str):
        self.site, self.key, self.token = site, key, ""
        self.http = httpx.AsyncClient(base_url=site.base, trust_env=False, timeout=30)

    def headers(self, token: str | None = None) -> dict[str, str]:
        h = {"X-Device-Key": self.key}
        token = self.token if token is None else token
        if token:
            h["Authorization"] = f"Bearer {token}"
        return h

    async def login(self, expect: int = 200, **body) -> httpx.Response:
        r = await self.http.post("/device/login", json=body, headers=self.headers(""))
        assert r.status_code == expect, r.text
        if expect == 200:
            self.token = r.json()["token"]
        return r

    async def get(self, path: str, **kw) -> httpx.Response:
        return await self.http.get("/device" + path, headers=self.headers(kw.pop("token", None)), **kw)

    async def post(self, path: str, body=None, **kw) -> httpx.Response:
        return await self.http.post("/device" + path, json=body or {}, headers=self.headers(kw.pop("token", None)),
                                    **kw)

    async def jobs(self) -> list[dict]:
        r = await self.get("/jobs")
        assert r.status_code == 200, r.text
        return r.json()["jobs"]

    async def wait_job(self, job_id: int, timeout: float = 30) -> dict:
        """The job as listed, once the node has counted it and holds it."""
        with trio.fail_after(timeout):
            while True:
                for j in await self.jobs():
                    if j["id"] == job_id:
                        return j
                await trio.sleep(0.05)


def problem(r: httpx.Response, status: int, slug: str) -> dict:
    assert r.status_code == status, r.text
    assert r.headers["content-type"] == PROBLEM
    body = r.json()
    assert body["type"].endswith("/" + slug), body
    return body


@pytest.fixture
async def site(tmp_path, nursery):
    yield await start(nursery, settings(tmp_path), tmp_path)


async def start(nursery, s: config.Settings, tmp_path: Path) -> Site:
    info = await nursery.start(run_node, s)
    token = (s.node.state_dir / TOKEN_FILE).read_text().strip()
    admin = httpx.AsyncClient(base_url=f"http://127.0.0.1:{info.web_port}/api/v1/admin", trust_env=False,
                              timeout=30, headers={"Authorization": f"Bearer {token}"})
    return Site(s, info, admin, tmp_path)


# -- Secure Print --------------------------------------------------------------------------------

async def test_secure_print_is_held_then_released_by_card_and_charged_once(site):
    await site.user("ann", card="04A1B2C3", pin=PIN)
    await site.user("bob", card="99887766")
    dev = await site.device("mfd-secure", "secure")
    job_id = await site.submit("secure", "ann")
    await dev.login(card="04A1B2C3")
    listed = await dev.wait_job(job_id)
    assert (listed["name"], listed["owner"], listed["pages"], listed["color_pages"], listed["copies"]) == \
        ("report.pdf", "ann", 3, 1, 1)
    assert (listed["cost"], listed["printers"], listed["here"], listed["problem"]) == \
        (COLOR + 2 * GRAY, ["secure"], True, "")
    assert site.out("secure") == []  # held: nothing printed

    bob = Device(site, dev.key)
    await bob.login(card="99887766")
    assert await bob.jobs() == []  # another user's login does not see it
    r = await bob.post("/release", {"jobs": [job_id]})
    assert r.json()["results"][0]["reason"] == "not-found"
    r = await bob.post("/cancel", {"jobs": [job_id]})
    assert r.json()["results"][0]["reason"] == "not-found"

    r = await dev.post("/release", {"jobs": [job_id]})
    assert r.status_code == 200, r.text
    (res,) = r.json()["results"]
    assert (res["ok"], res["printer"], res["cost"], res["account"]) == (True, "secure", 70, "user:ann"), res
    (printed,) = await site.wait_out("secure")
    assert printed.read_bytes() == DOC
    with trio.fail_after(10):
        while not [t for t in await site.txns(user="ann") if t["kind"] == "print"]:
            await trio.sleep(0.05)
    prints = [t for t in await site.txns(user="ann") if t["kind"] == "print"]
    assert [(t["amount"], t["job"]) for t in prints] == [(-70, job_id)]
    r = await dev.post("/release", {"jobs": [job_id]})  # again: it is not held any more
    assert r.json()["results"][0]["ok"] is False
    events = [(e["event"], e["user"], e["job"]) for e in await site.audit()]
    assert ("release", "ann", job_id) in events and ("login", "ann", 0) in events
    assert ("release-refused", "bob", job_id) in events


async def test_ipp_release_job_is_refused_on_a_hold_queue(site):
    job_id = await site.submit("secure", "ann")
    uri = f"ipp://127.0.0.1:{site.info.ipp_port}/ipp/print/secure"
    with trio.fail_after(20):
        while True:
            async with IppClient(uri) as c:
                req = new_request(Op.RELEASE_JOB, uri, user="ann")
                req.operation.add("job-id", Tag.INTEGER, job_id)
                resp = await c.request(req)
            if resp.code != Status.NOT_POSSIBLE or "released at the printer" in \
                    str(resp.operation.value("status-message")):
                break
            await trio.sleep(0.1)  # "not held" while the engine still counts it
    assert resp.code == Status.NOT_POSSIBLE
    assert "released at the printer" in resp.operation.value("status-message")
    await trio.sleep(0.3)
    assert site.out("secure") == []


async def test_device_key_and_session_are_required_and_bound(site):
    await site.user("ann", card="1111")
    dev = await site.device("d1", "secure")
    other = await site.device("d2", "secure")
    async with httpx.AsyncClient(base_url=site.base + "/device", trust_env=False) as anon:
        problem(await anon.post("/login", json={"card": "1111"}), 401, "device-key-required")
        problem(await anon.post("/login", json={"card": "1111"}, headers={"X-Device-Key": "spd_nope"}),
                403, "unknown-device")
    problem(await dev.get("/jobs", token=""), 401, "login-required")
    problem(await dev.get("/jobs", token="made-up"), 401, "session-unknown")
    await dev.login(card="1111")
    assert (await dev.get("/me")).json()["user"] == "ann"
    problem(await other.get("/jobs", token=dev.token), 401, "session-other-device")
    r = await dev.post("/logout")
    assert r.status_code == 204
    problem(await dev.get("/me"), 401, "session-unknown")
    r = await site.admin.delete("/devices/d1")
    assert r.status_code == 204
    problem(await dev.get("", token=""), 403, "unknown-device")
    assert (await other.get("", token="")).json()["printer"]["queue"] == "secure"


async def test_sessions_expire_after_inactivity(tmp_path, nursery):
    site = await start(nursery, settings(tmp_path, release={"session_timeout": 0.4}), tmp_path)
    await site.user("ann", card="1111")
    dev = await site.device("d1", "secure")
    await dev.login(card="1111")
    for _ in range(3):  # use keeps it alive
        await trio.sleep(0.2)
        assert (await dev.get("/me")).status_code == 200
    await trio.sleep(0.6)
    problem(await dev.get("/me"), 401, "session-expired")


async def test_wrong_pins_lock_the_login_for_a_while(site):
    await site.user("ann", card="1111", pin=PIN, identity="S100")
    dev = await site.device("d1", "secure")
    for _ in range(2):
        problem(await dev.login(401, card="1111", pin="0000"), 401, "login-failed")
    r = await dev.login(423, identity="S100", pin="0000")  # the third wrong one, by another way in
    assert int(r.headers["retry-after"]) >= 1
    r = await dev.login(423, card="1111", pin=PIN)  # the right PIN does not help while locked
    problem(r, 423, "login-locked")
    await trio.sleep(1.6)
    await dev.login(card="1111", pin=PIN)
    await dev.login(username="ann", password="x", expect=401)  # no password set: a failure, not a crash
    failed = await site.audit(event="login-failed", user="ann")
    assert len(failed) == 4 and any("locked" in e["detail"] for e in failed)
    assert all("1111" not in str(e) for e in failed)  # card numbers are masked in the log
    assert await site.audit(event="login-locked", user="ann")


async def test_unknown_card_is_registered_by_a_password_login(site):
    await site.user("ann", password="correct horse")
    dev = await site.device("d1", "secure")
    problem(await dev.login(401, card="CAFE01"), 401, "unknown-card")
    await dev.login(401, card="CAFE01", username="ann", password="wrong")
    r = await site.admin.get("/users/ann")
    assert r.json()["cards"] == []  # a wrong password registers nothing
    r = await dev.login(card="CAFE01", username="ann", password="correct horse")
    assert r.json()["card_registered"] == "CAFE01"
    r = await dev.login(card="CAFE01")
    assert r.json()["user"] == "ann"
    assert (await site.audit(event="card-registered"))[0]["user"] == "ann"


# -- Find-Me, changes at release, credit --------------------------------------------------------

async def test_find_me_releases_at_the_mono_printer_in_grayscale_at_its_price(site):
    peers.require("gs")
    await site.user("ann", card="1111")
    at_p2 = await site.device("mfd-p2", "p2")
    job_id = await site.submit("anywhere", "ann")
    await at_p2.login(card="1111")
    listed = await at_p2.wait_job(job_id)
    assert listed["printers"] == ["p1", "p2"] and listed["here"]
    assert listed["cost"] == 3 * 8 and any("grayscale" in c for c in listed["conversions"])
    r = await at_p2.post("/release", {"jobs": [job_id]})
    (res,) = r.json()["results"]
    assert (res["ok"], res["printer"], res["cost"]) == (True, "p2", 24), res
    (printed,) = await site.wait_out("p2")
    assert site.out("p1") == []
    from spoolproxy import pdl
    a = pdl.analyze(str(printed), ghostscript=True)
    assert (a.pages, a.color_impressions) == (3, 0)
    with trio.fail_after(10):
        while not [t for t in await site.txns(user="ann") if t["kind"] == "print"]:
            await trio.sleep(0.05)
    assert [t["amount"] for t in await site.txns(user="ann") if t["kind"] == "print"] == [-24]


async def test_cheaper_changes_only_and_the_cost_is_recomputed(site):
    await site.user("ann", card="1111")
    dev = await site.device("d", "secure")
    job_id = await site.submit("secure", "ann", copies=3)
    await dev.login(card="1111")
    listed = await dev.wait_job(job_id)
    assert (listed["copies"], listed["cost"]) == (3, 3 * 70)
    r = await dev.post(f"/jobs/{job_id}/quote", {"copies": 1, "duplex": True})
    assert r.json()["cost"] == 70 and r.json()["sides"] == "two-sided-long-edge"
    problem(await dev.post(f"/jobs/{job_id}/quote", {"copies": 4}), 422, "change-refused")
    r = await dev.post("/release", {"jobs": [job_id], "copies": 5})
    assert r.json()["results"][0]["reason"] == "change-refused"
    r = await dev.post("/release", {"jobs": [job_id], "copies": 2})
    assert r.json()["results"][0]["cost"] == 140
    await site.wait_out("secure")
    with trio.fail_after(10):
        while not [t for t in await site.txns(user="ann") if t["kind"] == "print"]:
            await trio.sleep(0.05)
    assert [t["amount"] for t in await site.txns(user="ann") if t["kind"] == "print"] == [-140]


async def test_credit_is_checked_again_at_release_for_the_jobs_together(site):
    await site.user("ann", card="1111", credit=100)
    dev = await site.device("d", "secure")
    first = await site.submit("secure", "ann")
    second = await site.submit("secure", "ann")
    await dev.login(card="1111")
    await dev.wait_job(first)
    await dev.wait_job(second)
    r = await dev.post("/release", {"jobs": None})  # all mine: 70 + 70 > 100
    res = {x["job"]: x for x in r.json()["results"]}
    assert res[first]["ok"] and not res[second]["ok"]
    assert res[second]["reason"] == "no-credit" and "0.30 available" in res[second]["message"]
    assert [j["id"] for j in await dev.jobs()] == [second]  # refused: still held
    r = await dev.post("/release", {"jobs": [second], "grayscale": True})  # 3 gray pages: 30, what is left
    assert r.json()["results"][0]["cost"] == 30 and r.json()["results"][0]["ok"], r.text

async def test_a_printer_in_error_refuses_the_release_and_the_job_stays_held(tmp_path, nursery):
    s = settings(tmp_path, down={"printer": "ipp://127.0.0.1:9/ipp/print", "mode": "hold",
                                 "poll_interval": 0.2, "timeout": 1, "retry_initial": 0.1, "retry_max": 0.5})
    site = await start(nursery, s, tmp_path)
    await site.user("ann", card="1111")
    dev = await site.device("d", "down")
    job_id = await site.submit("down", "ann")
    await dev.login(card="1111")
    listed = await dev.wait_job(job_id)
    assert "not answering" in listed["problem"]
    r = await dev.post("/release", {"jobs": [job_id]})
    (res,) = r.json()["results"]
    assert res["reason"] == "printer-not-ready" and "not answering" in res["message"]
    assert [j["id"] for j in await dev.jobs()] == [job_id]
    info = (await dev.get("")).json()
    assert info["printer"]["ready"] is False


async def test_managers_and_delegates(tmp_path, nursery):
    s = settings(tmp_path, boss={"printer": f"folder:{tmp_path / 'out-boss'}", "mode": "hold",
                                 "release": "manager", "managers": ["mo"]})
    site = await start(nursery, s, tmp_path)
    for name, groups in (("ann", []), ("dan", []), ("eve", ["desk"]), ("mo", []), ("zed", [])):
        await site.user(name, card=f"c-{name}", groups=groups)
    dev = await site.device("d", "secure")
    boss_dev = await site.device("b", "boss")
    a = await site.submit("secure", "ann")
    z = await site.submit("secure", "zed")
    b = await site.submit("boss", "ann")
    await dev.login(card="c-eve")  # a manager of secure (group desk): everyone's
    await dev.wait_job(a)
    await dev.wait_job(z)
    await dev.login(card="c-dan")  # ann's delegate: ann's only
    assert [j["id"] for j in await dev.jobs()] == [a]
    r = await dev.post("/release", {"jobs": None})  # "all" is one's own: none
    assert r.json()["results"] == []
    r = await dev.post("/release", {"jobs": [a, z]})
    res = {x["job"]: x for x in r.json()["results"]}
    assert res[a]["ok"] and res[z]["reason"] == "not-found"
    await site.wait_out("secure")
    with trio.fail_after(10):
        while not [t for t in await site.txns(user="ann") if t["kind"] == "print"]:
            await trio.sleep(0.05)  # charged to the owner, not to the delegate
    assert not [t for t in await site.txns(user="dan") if t["kind"] == "print"]
    await boss_dev.login(card="c-ann")  # release = manager: the owner cannot
    assert await boss_dev.jobs() == []
    await boss_dev.login(card="c-mo")
    assert [j["id"] for j in await boss_dev.jobs()] == [b]


async def test_cancel_deletes_nothing_but_the_own_jobs_and_charges_nothing(site):
    await site.user("ann", card="1111")
    dev = await site.device("d", "secure")
    job_id = await site.submit("secure", "ann")
    await dev.login(card="1111")
    await dev.wait_job(job_id)
    r = await dev.post("/cancel", {"jobs": [job_id]})
    assert r.json()["canceled"] == 1
    assert await dev.jobs() == []
    assert not [t for t in await site.txns(user="ann") if t["kind"] == "print"]
    assert (await site.audit(event="cancel"))[0]["job"] == job_id


async def test_expired_held_jobs_are_deleted_uncharged(tmp_path, nursery):
    s = settings(tmp_path, brief={"printer": f"folder:{tmp_path / 'out-brief'}", "mode": "hold",
                                  "hold_expiry": 1.0})
    site = await start(nursery, s, tmp_path)
    await site.user("ann", card="1111")
    dev = await site.device("d", "brief")
    job_id = await site.submit("brief", "ann")
    await dev.login(card="1111")
    await dev.wait_job(job_id)
    with trio.fail_after(10):
        while await dev.jobs():
            await trio.sleep(0.1)
    (e,) = await site.audit(event="expire")
    assert e["job"] == job_id and "uncharged" in e["detail"]
    assert site.out("brief") == [] and not await site.txns(user="ann", kind="print")


async def test_openapi_documents_the_device_api(site):
    r = await site.admin.get(site.base.replace("/api/v1", "/api/openapi.json"))
    paths = r.json()["paths"]
    for p in ("/api/v1/device", "/api/v1/device/login", "/api/v1/device/jobs", "/api/v1/device/release",
              "/api/v1/device/cancel", "/api/v1/device/me", "/api/v1/device/logout",
              "/api/v1/device/jobs/{job_id}/quote", "/api/v1/admin/devices", "/api/v1/admin/audit"):
        assert p in paths, p
    assert {"deviceKey": []} in paths["/api/v1/device/jobs"]["get"]["security"] or \
        any("deviceKey" in s for s in paths["/api/v1/device/jobs"]["get"]["security"])


async def test_no_endpoint_leaks_another_users_job(site):
    await site.user("ann", card="1111")
    await site.user("bob", card="2222")
    dev = await site.device("d", "secure")
    job_id = await site.submit("secure", "ann", name="ann-private-letter.pdf")
    await dev.login(card="1111")
    await dev.wait_job(job_id)
    await dev.login(card="2222")
    missing = job_id + 1000
    bodies = []
    for path, body in (("/jobs", None), ("/me", None)):
        r = await dev.get(path)
        assert r.status_code == 200
        bodies.append(r.text)
    for jid in (job_id, missing):  # someone else's job and no job look the same
        r = await dev.post(f"/jobs/{jid}/quote", {})
        problem(r, 404, "not-found")
        bodies.append(r.text.replace(str(jid), "N"))
        for path in ("/release", "/cancel"):
            r = await dev.post(path, {"jobs": [jid]})
            (res,) = r.json()["results"]
            assert (res["ok"], res["reason"]) == (False, "not-found")
            bodies.append(r.text.replace(str(jid), "N"))
    assert not any("ann" in b for b in bodies)
    assert bodies[2:5] == bodies[5:8]  # the answers for ann's job equal those for a job that does not exist
    r = await dev.post("/release", {"jobs": None})
    assert r.json()["results"] == []
    await dev.login(card="1111")
    assert [j["id"] for j in await dev.jobs()] == [job_id]  # still held for ann


async def test_a_disabled_user_cannot_log_in_and_a_wrong_password_does_not_tell(site):
    await site.user("ann", card="1111", password="secret pass", disabled=True)
    dev = await site.device("d", "secure")
    problem(await dev.login(403, card="1111"), 403, "disabled-user")
    problem(await dev.login(401, username="ann", password="guess"), 401, "login-failed")
    problem(await dev.login(403, username="ann", password="secret pass"), 403, "disabled-user")
