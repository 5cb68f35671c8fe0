"""A primary and a site node in one process (real HTTP between them): the snapshot and
the feed, online charges confirmed by the primary, offline detection, the offline
policies, the journal replayed exactly once, export and import by hand.

The link is cut by stopping the primary node (its nursery cancelled) and restored by
starting it again on the same state directory and port.
"""
from __future__ import annotations

import ssl
from pathlib import Path

import httpx
import peers
import pytest
import trio

from spoolproxy import config
from spoolproxy.app import run_node
from spoolproxy.db import Database
from spoolproxy.sync import Sites
from spoolproxy.sync.journal import REPLICATED
from spoolproxy.web.auth import TOKEN_FILE
from spoolproxy.ipp.client import IppClient, check, new_request
from spoolproxy.ipp.model import Op, Tag
from test_release_api import Device, Site as Node, problem, start
from test_web_server import make_cert

GRAY, COLOR = 10, 50
COST = COLOR + 2 * GRAY  # DOC: 1 colour page and 2 gray ones
HEARTBEAT, OFFLINE_AFTER = 0.1, 0.6


def primary_settings(tmp: Path, port: int, web: dict | None = None, **offline) -> config.Settings:
    return config.from_mapping({
        "node": {"state_dir": str(tmp / "primary"), "name": "hq", "role": "primary", "fsync": False},
        "ipp": {"listen": "127.0.0.1", "port": 0},
        "lpd": {"listen": "127.0.0.1", "port": 0},
        "web": {"listen": "127.0.0.1", "port": port, **(web or {})},
        "ledger": {"new_user_restricted": True},
        "offline": offline,
        "queues": {"hq": {"printer": f"folder:{tmp / 'out-hq'}", "cost": {"gray": GRAY, "color": COLOR}}},
    })


def site_settings(tmp: Path, name: str, port: int, key: str, scheme: str = "http", **sync) -> config.Settings:
    cost = {"gray": GRAY, "color": COLOR}
    return config.from_mapping({
        "node": {"state_dir": str(tmp / name), "name": name, "role": "site", "fsync": False},
        "ipp": {"listen": "127.0.0.1", "port": 0},
        "lpd": {"listen": "127.0.0.1", "port": 0},
        "web": {"listen": "127.0.0.1", "port": 0},
        "sync": {"primary": f"{scheme}://127.0.0.1:{port}", "key": key, "heartbeat": HEARTBEAT,
                 "offline_after": OFFLINE_AFTER, "timeout": 2, **sync},
        "queues": {
            f"{name}-p": {"printer": f"folder:{tmp / f'out-{name}-p'}", "cost": cost},
            f"{name}-secure": {"printer": f"folder:{tmp / f'out-{name}-secure'}", "mode": "hold", "cost": cost},
            f"{name}-findme": {"mode": "findme", "printers": [f"{name}-p"], "cost": cost},
        },
    })


def add_site(s: config.Settings, name: str) -> str:
    s.node.state_dir.mkdir(parents=True, exist_ok=True)
    with Database(s.node.state_dir / "db", sync=False, changelog=REPLICATED) as db:
        return Sites(db).add_now(name)


class Deployment:
    def __init__(self, tmp: Path, nursery: trio.Nursery, web: dict | None = None, **offline):
        self.tmp, self.nursery = tmp, nursery
        self.port = peers.free_port()
        self.ps = primary_settings(tmp, self.port, web, **offline)
        self.keys = {n: add_site(self.ps, n) for n in ("s1", "s2")}
        self.primary: Node | None = None
        self.scope: trio.CancelScope | None = None
        self.sites: dict[str, Node] = {}

    async def start_primary(self) -> Node:
        scope = trio.CancelScope()

        async def run(task_status=trio.TASK_STATUS_IGNORED):
            with scope:
                await run_node(self.ps, task_status=task_status)

        info = await self.nursery.start(run)
        self.scope = scope
        token = (self.ps.node.state_dir / TOKEN_FILE).read_text().strip()
        admin = httpx.AsyncClient(base_url=f"http://127.0.0.1:{info.web_port}/api/v1/admin", trust_env=False,
                                  timeout=30, headers={"Authorization": f"Bearer {token}"})
        self.primary = Node(self.ps, info, admin, self.tmp)
        return self.primary

    async def stop_primary(self) -> None:
        assert self.scope is not None
        self.scope.cancel()
        await trio.sleep(0.05)

    async def start_site(self, name: str, **sync) -> Node:
        node = await start(self.nursery, site_settings(self.tmp, name, self.port, self.keys[name], **sync), self.tmp)
        self.sites[name] = node
        return node


async def sync_state(node: Node) -> dict:
    r = await node.admin.get("/sync")
    assert r.status_code == 200, r.text
    return r.json()


async def wait_state(node: Node, online: bool, timeout: float = 15) -> dict:
    with trio.fail_after(timeout):
        while True:
            st = await sync_state(node)
            if st["online"] is online and st["site"]:
                return st
            await trio.sleep(0.05)


async def balance(node: Node, user: str) -> int:
    r = await node.admin.get(f"/users/{user}")
    assert r.status_code == 200, r.text
    return r.json()["balance"]


async def wait_balance(node: Node, user: str, want: int, timeout: float = 15) -> None:
    with trio.fail_after(timeout):
        while (await balance(node, user)) != want:
            await trio.sleep(0.05)


async def wait_synced(site: Node, timeout: float = 15) -> dict:
    """Until every journal entry has an answer and the feed carried them back."""
    with trio.fail_after(timeout):
        while True:
            st = await sync_state(site)
            if st["online"] and st["unsent"] == 0:
                return st
            await trio.sleep(0.05)


async def job_state(node: Node, job_id: int, queue: str = "s1-p") -> dict:
    uri = f"ipp://127.0.0.1:{node.info.ipp_port}/ipp/print/{queue}"
    async with IppClient(uri) as c:
        req = new_request(Op.GET_JOB_ATTRIBUTES, uri)
        req.operation.add("job-id", Tag.INTEGER, job_id)
        resp = check(await c.request(req))
        g = resp.group(Tag.JOB)
        return {"state": g.value("job-state"), "message": g.value("job-state-message") or "",
                "reasons": [v for v in g.get("job-state-reasons").values]}


async def wait_final(node: Node, job_id: int, queue: str = "s1-p", timeout: float = 20) -> dict:
    with trio.fail_after(timeout):
        while True:
            st = await job_state(node, job_id, queue)
            if st["state"] in (7, 8, 9):
                return st
            await trio.sleep(0.05)


@pytest.fixture
async def dep(tmp_path, nursery):
    d = Deployment(tmp_path, nursery)
    await d.start_primary()
    return d


async def offline_site(tmp_path, nursery, users: dict[str, dict], **policy) -> tuple[Deployment, Node]:
    """A deployment under ``policy`` whose users are set, with site s1 synced and then cut off."""
    d = Deployment(tmp_path, nursery, **policy)
    p = await d.start_primary()
    for name, fields in users.items():
        await p.user(name, **fields)
    s1 = await d.start_site("s1")
    await wait_state(s1, True)
    for name, fields in users.items():
        await wait_balance(s1, name, fields.get("credit", 1000))
    await d.stop_primary()
    await wait_state(s1, False)
    return d, s1


async def reconnect(d: Deployment, site: Node) -> Node:
    p = await d.start_primary()
    await wait_state(site, True)
    await wait_synced(site)
    return p


async def prints(node: Node, user: str) -> list[dict]:
    return [t for t in await node.txns(user=user, limit=1000) if t["kind"] == "print"]


async def test_site_follows_the_primary_and_charges_online_through_it(dep):
    p = dep.primary
    await p.user("ann", credit=1000, card="C-ANN", pin="4711")
    s1 = await dep.start_site("s1")
    st = await wait_state(s1, True)
    assert st["site"] == "s1" and st["policy"]["account"] == "offline-account"
    await wait_balance(s1, "ann", 1000)  # the snapshot carried the user and her balance

    job = await s1.submit("s1-p", "ann")
    await s1.wait_out("s1-p")
    await wait_balance(p, "ann", 1000 - COST)
    await wait_balance(s1, "ann", 1000 - COST)  # the view: the primary's balance, the debit counted once
    (t,) = [t for t in await p.txns(user="ann") if t["kind"] == "print"]
    assert (t["amount"], t["site"], t["offline"], t["job"]) == (-COST, "s1", False, job)

    await p.admin.post("/balances/ann/topup", json={"amount": "5.00", "comment": "cash"})
    await wait_balance(s1, "ann", 1500 - COST)  # the feed carried the top-up

    r = await p.admin.get("/sync")
    sites = {x["name"]: x for x in r.json()["sites"]}
    assert sites["s1"]["entries"] == 1 and sites["s2"]["entries"] == 0


async def test_offline_printing_is_journaled_and_replayed_exactly_once(dep):
    p = dep.primary
    await p.user("ann", credit=1000)
    s1 = await dep.start_site("s1")
    await wait_state(s1, True)
    await wait_balance(s1, "ann", 1000)

    await dep.stop_primary()
    st = await wait_state(s1, False)
    assert st["since"] > 0
    jobs = [await s1.submit("s1-p", "ann") for _ in range(3)]
    await s1.wait_out("s1-p", 3)
    await wait_balance(s1, "ann", 1000 - 3 * COST)  # last known balance minus what it printed
    st = await sync_state(s1)
    assert st["unsent"] == 3

    p = await dep.start_primary()
    await wait_state(s1, True)
    await wait_synced(s1)
    await wait_balance(p, "ann", 1000 - 3 * COST)
    prints = [t for t in await p.txns(user="ann") if t["kind"] == "print"]
    assert sorted(t["job"] for t in prints) == sorted(jobs)
    assert all(t["offline"] and t["site"] == "s1" for t in prints)
    await wait_balance(s1, "ann", 1000 - 3 * COST)  # not counted twice once the feed carries them back


# -- the offline policies, option by option ---------------------------------------------------

@pytest.mark.parametrize("credit, extra, printed", [
    ("last-known", 0, 1),  # 100 of credit: one job of 70, not a second
    ("overdraft", 40, 2),  # 100 + 40: two jobs (140), not a third
    ("allow", 0, 3),  # regardless of the balance
    ("none", 0, 0),  # restricted users print nothing offline
])
async def test_credit_policy_offline(tmp_path, nursery, credit, extra, printed):
    d, s1 = await offline_site(tmp_path, nursery, {"ann": {"credit": 100}, "boss": {"credit": 0}},
                               credit=credit, offline_overdraft=extra)
    ids = []
    for _ in range(3):  # one after the other: each sees the balance the one before left
        ids.append(await s1.submit("s1-p", "ann"))
        await wait_final(s1, ids[-1])
    states = [(await job_state(s1, i))["state"] for i in ids]
    assert states == [9] * printed + [8] * (3 - printed)
    for i in ids[printed:]:
        st = await job_state(s1, i)
        assert "account-limit-reached" in st["reasons"] and "Not enough credit" in st["message"], st
    p = await reconnect(d, s1)
    assert len(await prints(p, "ann")) == printed
    await wait_balance(p, "ann", 100 - printed * COST)  # allow and overdraft may go below the limit


async def test_credit_none_still_prints_for_unrestricted_users(tmp_path, nursery):
    d, s1 = await offline_site(tmp_path, nursery, {"ann": {"credit": 1000}}, credit="none")
    job = await s1.submit("s1-p", "unknown")  # the default 'unknown' user is unrestricted
    assert (await wait_final(s1, job))["state"] == 9
    job = await s1.submit("s1-p", "ann")
    assert (await wait_final(s1, job))["state"] == 8


@pytest.mark.parametrize("action", ["assign", "untracked", "cancel"])
async def test_unknown_user_policy(tmp_path, nursery, action):
    d, s1 = await offline_site(tmp_path, nursery, {"ann": {"credit": 1000}}, unknown=action)
    job = await s1.submit("s1-p", "stranger")
    found = await s1.submit("s1-findme", "stranger")
    st, st_found = await wait_final(s1, job), None
    if action == "cancel":
        assert st["state"] == 7 and "not known" in st["message"]
    else:
        assert st["state"] == 9
    if action != "assign":  # untracked: a Find-Me job never prints; cancel: nothing does
        st_found = await wait_final(s1, found, "s1-findme")
        assert st_found["state"] == 7 and "not known" in st_found["message"], st_found
    p = await reconnect(d, s1)
    charged = await prints(p, "unknown")
    assert len(charged) == (1 if action == "assign" else 0)
    if action == "assign":
        assert charged[0]["offline"] and charged[0]["job"] == job and charged[0]["amount"] == -COST
    assert [t["account"] for t in await prints(p, "stranger")] == ["user:unknown"] * len(charged)  # (by stranger)
    r = await p.admin.get("/users/stranger")
    assert r.status_code == 404  # a site creates no users: the primary owns them


@pytest.mark.parametrize("action, charged", [("offline-account", "shared:Offline Account"),
                                             ("personal", "user:ann"), ("cancel", None)])
async def test_account_choice_policy(tmp_path, nursery, action, charged):
    d = Deployment(tmp_path, nursery, account=action)
    p = await d.start_primary()
    await p.user("ann", credit=1000)
    await p.user("bob", credit=1000)
    r = await p.admin.put("/accounts/physics", json={"users": ["ann"], "restricted": False})
    assert r.status_code in (200, 201), r.text
    s1 = await d.start_site("s1")
    await wait_state(s1, True)
    await wait_balance(s1, "bob", 1000)
    await d.stop_primary()
    await wait_state(s1, False)
    ann = await s1.submit("s1-p", "ann")  # may charge physics: a choice she cannot make offline
    bob = await s1.submit("s1-p", "bob")  # only his own account: no choice, charged as ever
    assert (await wait_final(s1, bob))["state"] == 9
    st = await wait_final(s1, ann)
    assert st["state"] == (7 if charged is None else 9), st
    p = await reconnect(d, s1)
    ann_txns = [t for t in await p.txns(limit=1000) if t["kind"] == "print" and t["job"] == ann]
    assert [t["account"] for t in ann_txns] == ([charged] if charged else [])
    assert [t["account"] for t in await prints(p, "bob")] == ["user:bob"]


async def test_account_change_at_the_device_follows_the_policy(tmp_path, nursery):
    for allowed in (False, True):
        d = Deployment(tmp_path / str(allowed), nursery, account_change=allowed)
        p = await d.start_primary()
        await p.user("ann", credit=1000, card="C-ANN")
        s1 = await d.start_site("s1")
        await wait_state(s1, True)
        await wait_balance(s1, "ann", 1000)
        r = await s1.admin.post("/devices", json={"name": "mfd", "printer": "s1-secure"})
        dev = Device(s1, r.json()["key"])
        await d.stop_primary()
        await wait_state(s1, False)
        job = await s1.submit("s1-secure", "ann")
        await dev.login(card="C-ANN")
        await dev.wait_job(job)
        r = await dev.post("/release", {"jobs": [job], "account": "user:ann"})
        (res,) = r.json()["results"]
        assert res["ok"] is allowed, res
        if not allowed:
            assert res["reason"] == "account-not-allowed" and "offline policy" in res["message"]
            r = await dev.post("/release", {"jobs": [job]})  # the applied account: released
            assert r.json()["results"][0]["ok"] is True
        await s1.wait_out("s1-secure")
        await d.start_primary()
        await wait_synced(s1)
        p = d.primary
        await wait_balance(p, "ann", 1000 - COST)
        audit = [a for a in await p.audit(event="release") if a.get("site") == "s1"]
        assert [a["job"] for a in audit] == [job]  # the release reached the primary's audit log
        await d.stop_primary()


async def test_password_policy_offline_and_the_hash_refreshed_online(tmp_path, nursery):
    d = Deployment(tmp_path, nursery)
    p = await d.start_primary()
    await p.user("ann", credit=1000, card="C-ANN", pin="4711", password="old-secret")
    s1 = await d.start_site("s1")
    await wait_state(s1, True)
    await wait_balance(s1, "ann", 1000)
    r = await s1.admin.post("/devices", json={"name": "mfd", "printer": "s1-p"})
    dev = Device(s1, r.json()["key"])
    # the password changes on the primary; the site's copy follows and an online login checks the primary
    r = await p.admin.put("/users/ann", json={"password": "new-secret"})
    assert r.status_code == 200, r.text
    await dev.login(username="ann", password="new-secret")
    await dev.login(expect=401, username="ann", password="old-secret")
    await d.stop_primary()
    await wait_state(s1, False)
    await dev.login(username="ann", password="new-secret")  # cached: the hash of the last sync or login
    await dev.login(expect=401, username="ann", password="old-secret")
    await dev.login(card="C-ANN", pin="4711")  # PIN hashes are synced
    await dev.login(expect=401, card="C-ANN", pin="0000")


async def test_card_pin_policy_refuses_password_logins_offline(tmp_path, nursery):
    d, s1 = await offline_site(tmp_path, nursery, {"ann": {"credit": 1000, "card": "C-ANN", "pin": "4711",
                                                           "password": "secret-1"}}, password="card-pin")
    r = await s1.admin.post("/devices", json={"name": "mfd", "printer": "s1-p"})
    dev = Device(s1, r.json()["key"])
    r = await dev.login(expect=403, username="ann", password="secret-1")
    assert "card or PIN" in r.json()["detail"]
    await dev.login(card="C-ANN", pin="4711")
    await dev.login(card="C-ANN")
    await d.start_primary()
    await wait_state(s1, True)
    await dev.login(username="ann", password="secret-1")  # online again: the primary checks it


async def test_card_registered_offline_reaches_the_primary(tmp_path, nursery):
    d, s1 = await offline_site(tmp_path, nursery, {"ann": {"credit": 1000, "password": "secret-1"}})
    r = await s1.admin.post("/devices", json={"name": "mfd", "printer": "s1-p"})
    dev = Device(s1, r.json()["key"])
    r = await dev.login(username="ann", password="secret-1", card="NEW-CARD")
    assert r.json().get("card_registered") == "NEW-CARD", r.json()
    await dev.login(card="NEW-CARD")  # at once, here
    p = await reconnect(d, s1)
    r = await p.admin.get("/users/ann")
    assert r.json()["cards"] == ["NEW-CARD"]


async def test_an_entry_the_primary_cannot_apply_is_kept_and_reported(tmp_path, nursery):
    d = Deployment(tmp_path, nursery, account="offline-account")
    p = await d.start_primary()
    await p.user("ann", credit=1000)
    s1 = await d.start_site("s1")
    await wait_state(s1, True)
    await wait_balance(s1, "ann", 1000)
    await d.stop_primary()
    await wait_state(s1, False)
    job = await s1.submit("s1-p", "ann")
    assert (await wait_final(s1, job))["state"] == 9
    # meanwhile the administrator disables ann's account on the primary
    p = await d.start_primary()
    await d.stop_primary()  # (changed below, before the site replays: the primary stays unreachable to it)
    with Database(d.ps.node.state_dir / "db", sync=False, changelog=REPLICATED) as db:
        from spoolproxy.ledger import Ledger
        import trio as _t
        await _t.to_thread.run_sync(lambda: None)
        Ledger(db)  # (the write below runs without the writer task: it commits by itself)
        from spoolproxy.ledger.store import update_user_fn
        db.transact_now(update_user_fn("ann", {"disabled": True}, now=0.0))
    p = await reconnect(d, s1)
    st = await sync_state(s1)
    assert st["refused"] == 1 and st["unsent"] == 0
    r = await p.admin.get("/sync")
    (kept,) = r.json()["unapplied"]
    assert kept["entry"]["data"]["account"] == "user:ann" and "disabled" in kept["reason"]
    assert await prints(p, "ann") == []
    await wait_balance(s1, "ann", 1000)  # the view drops what the primary refused


async def test_two_sites_online_cannot_spend_the_same_credit(dep):
    p = dep.primary
    await p.user("ann", credit=3 * COST)
    s1, s2 = await dep.start_site("s1"), await dep.start_site("s2")
    for s in (s1, s2):
        await wait_state(s, True)
        await wait_balance(s, "ann", 3 * COST)
    ids: list[tuple[Node, int]] = []

    async def burst(s: Node, q: str) -> None:
        for _ in range(3):
            ids.append((s, await s.submit(q, "ann")))

    async with trio.open_nursery() as n:
        n.start_soon(burst, s1, "s1-p")
        n.start_soon(burst, s2, "s2-p")
    states = [(await wait_final(s, i, "s1-p" if s is s1 else "s2-p"))["state"] for s, i in ids]
    assert states.count(9) == 3 and states.count(8) == 3, states
    await wait_balance(p, "ann", 0)
    assert len(await prints(p, "ann")) == 3


async def test_site_refuses_ledger_changes_and_the_sync_api_wants_a_site_key(dep):
    s1 = await dep.start_site("s1")
    await wait_state(s1, True)
    r = await s1.admin.put("/users/zed", json={"restricted": True})
    problem(r, 409, "site-read-only")
    base = f"http://127.0.0.1:{dep.port}/api/v1/sync"
    async with httpx.AsyncClient(trust_env=False) as c:
        problem(await c.get(base + "/changes"), 401, "site-key-missing")
        problem(await c.get(base + "/changes", headers={"Authorization": "Bearer sps_nope"}), 403, "site-key-wrong")
        r = await c.post(base + "/journal", content=b"\xc1", headers={
            "Authorization": f"Bearer {dep.keys['s1']}", "Content-Type": "application/msgpack"})
        problem(r, 422, "bad-entry")
        from spoolproxy.sync.wire import pack
        r = await c.post(base + "/journal", content=pack({"entries": [{"id": "x", "kind": "txn", "data": {}}]}),
                         headers={"Authorization": f"Bearer {dep.keys['s1']}", "Content-Type": "application/msgpack"})
        problem(r, 422, "bad-entry")


async def test_the_state_and_its_change_are_in_the_metrics(dep):
    s1 = await dep.start_site("s1")
    await wait_state(s1, True)
    url = f"http://127.0.0.1:{s1.info.web_port}/metrics"
    async with httpx.AsyncClient(trust_env=False) as c:
        assert "spoolproxy_sync_online 1.0" in (await c.get(url)).text
        await dep.stop_primary()
        st = await wait_state(s1, False)
        text = (await c.get(url)).text
        assert "spoolproxy_sync_online 0.0" in text
        (since,) = [float(line.split()[1]) for line in text.splitlines()
                    if line.startswith("spoolproxy_sync_state_since_seconds ")]
        assert since == pytest.approx(st["since"], abs=1e-3)



async def test_sync_over_tls_checks_the_primary_certificate(tmp_path, nursery):
    certfile, keyfile = make_cert(tmp_path)
    d = Deployment(tmp_path, nursery, web={"certfile": str(certfile), "keyfile": str(keyfile)})
    scope = trio.CancelScope()  # (started by hand: the admin client speaks https)

    async def run(task_status=trio.TASK_STATUS_IGNORED):
        with scope:
            await run_node(d.ps, task_status=task_status)

    await nursery.start(run)
    token = (d.ps.node.state_dir / TOKEN_FILE).read_text().strip()
    async with httpx.AsyncClient(base_url=f"https://127.0.0.1:{d.port}/api/v1/admin",
                                 verify=ssl.create_default_context(cafile=str(certfile)),
                                 headers={"Authorization": f"Bearer {token}"}, trust_env=False) as admin:
        r = await admin.put("/users/ann", json={"restricted": True})
        assert r.status_code in (200, 201), r.text
    trusted = await d.start_site("s1", scheme="https", ca_file=str(certfile))
    untrusted = await d.start_site("s2", scheme="https")  # the system's CAs do not know it
    await wait_state(trusted, True)
    r = await trusted.admin.get("/users/ann")
    assert r.status_code == 200
    with trio.fail_after(10):
        while "certificate" not in (st := await sync_state(untrusted))["last_error"].lower():
            await trio.sleep(0.05)
    assert st["online"] is False and st["site"] == ""


async def test_online_a_new_user_is_made_by_the_primary_as_for_its_own_jobs(dep):
    s1 = await dep.start_site("s1")
    await wait_state(s1, True)
    job = await s1.submit("s1-p", "newbie")  # the primary: new users restricted, no credit
    st = await wait_final(s1, job)
    assert st["state"] == 8 and "account-limit-reached" in st["reasons"], st
    r = await dep.primary.admin.get("/users/newbie")
    assert r.status_code == 200 and r.json()["restricted"] is True
    await dep.primary.admin.post("/balances/newbie/topup", json={"amount": "1.00", "comment": "welcome"})
    await wait_balance(s1, "newbie", 100)
    job = await s1.submit("s1-p", "newbie")
    assert (await wait_final(s1, job))["state"] == 9
    await wait_balance(dep.primary, "newbie", 100 - COST)


async def test_an_online_charge_waits_out_a_slow_primary_instead_of_guessing(tmp_path, nursery):
    """The primary answers nothing for a while (stopped), but for less than offline_after:
    the charge is asked again until it answers, and is made online, once."""
    d = Deployment(tmp_path, nursery)
    p = await d.start_primary()
    await p.user("ann", credit=1000)
    s1 = await d.start_site("s1", offline_after=30, timeout=0.5)
    await wait_state(s1, True)
    await wait_balance(s1, "ann", 1000)
    await d.stop_primary()
    job = await s1.submit("s1-p", "ann")
    await trio.sleep(2)
    assert (await job_state(s1, job))["state"] != 9  # not printed on a guess
    p = await d.start_primary()
    assert (await wait_final(s1, job))["state"] == 9
    (t,) = await prints(p, "ann")
    assert (t["job"], t["offline"]) == (job, False)
    await wait_balance(s1, "ann", 1000 - COST)
