"""The site <-> primary acceptance scenarios with real processes.

One primary and two sites, each a ``spoolproxy serve`` process; one ippeveprinter
per site, which a direct queue and a hold (Secure Print) queue of that site print
to; users print with ``lp`` and release held jobs over the device API as an MFD
would, logging in by card, card and PIN, or password. The link to the primary is
cut by stopping it (SIGTERM, or SIGSTOP: a primary that hangs) and comes back;
afterwards the primary's books (balances, and the print transactions of every job:
account, amount, job uuid, site, offline flag) must equal a model computed from
what was printed, each job charged exactly once.

The deployment is shared by the tests of this module (starting five processes per
test would cost most of the time budget): a test that needs another offline policy
restarts the primary with it (the policy is published at start and followed by the
sites), each test uses users of its own, and the accounts tests share (the
policy's ``unknown`` user and offline account) are compared with what they held
before the test. From the kill -9 test on, s2 sends one journal entry per request
(``sync.batch = 1``).

Scenarios: (1) both sites through an outage of the primary, under the default
policies, the primary stopped (SIGTERM) or hung (SIGSTOP); (2) a site killed with
SIGKILL in the middle of its replay; (3) a site's journal exported and imported by
hand before its own replay; (4) both sites spending one user's credit at once,
online; then each offline policy option in an outage of its own.
"""
from __future__ import annotations

import contextlib
import dataclasses
import os
import signal
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Iterable

import httpx
import pytest

import peers

pytestmark = pytest.mark.interop

GRAY, COLOR = 10, 50  # minor units per page
COST = {"gray": GRAY, "color": COLOR}
TOKEN = "sync-scenario-admin-token-0123456789"
HEARTBEAT, OFFLINE_AFTER, TIMEOUT = 0.2, 1.0, 1.0
SITES = ("s1", "s2")

# documents whose page count and colours the engine reads from the content alone
DOCS = {
    "c1g2": ([True, False, False], COLOR + 2 * GRAY),  # 70
    "g1": ([False], GRAY),  # 10
    "c2": ([True, True], 2 * COLOR),  # 100
    "g3": ([False, False, False], 3 * GRAY),  # 30
}
DEFAULT_POLICY = {"account": "offline-account", "offline_account": "Offline Account", "account_change": False,
                  "credit": "last-known", "offline_overdraft": 0, "unknown": "assign", "unknown_user": "unknown",
                  "password": "cached"}


# --------------------------------------------------------------------------- HTTP clients


class Admin:
    """The admin API of one node."""

    def __init__(self, node: peers.Node):
        self.node = node
        self.http = httpx.Client(base_url=f"http://127.0.0.1:{node.web_port}/api/v1/admin", trust_env=False,
                                 timeout=30, headers={"Authorization": f"Bearer {TOKEN}"})

    def get(self, path: str, **params: Any) -> Any:
        r = self.http.get(path, params=params or None)
        assert r.status_code == 200, f"GET {path} on {self.node.name}: {r.status_code} {r.text}"
        return r.json()

    def sync(self) -> dict:
        return self.get("/sync")

    def user(self, name: str) -> dict | None:
        r = self.http.get(f"/users/{name}")
        if r.status_code == 404:
            return None
        assert r.status_code == 200, r.text
        return r.json()

    def balance(self, account: str) -> int:
        """user NAME, or shared:NAME."""
        if account.startswith("shared:"):
            return self.get(f"/balances/{account}")["balance"]
        rec = self.user(account.removeprefix("user:"))
        assert rec is not None, f"no user {account} on {self.node.name}"
        return rec["balance"]

    def txns(self, **params: Any) -> list[dict]:
        """Newest first."""
        params.setdefault("limit", 10000)
        return self.get("/transactions", **params)

    def last_seq(self) -> int:
        newest = self.txns(limit=1)
        return newest[0]["seq"] if newest else 0

    def prints(self) -> list[dict]:
        return self.txns(kind="print")

    def put_user(self, name: str, **fields: Any) -> dict:
        r = self.http.put(f"/users/{name}", json=fields)
        assert r.status_code in (200, 201), r.text
        return r.json()

    def put_account(self, name: str, **fields: Any) -> dict:
        r = self.http.put(f"/accounts/{name}", json=fields)
        assert r.status_code in (200, 201), r.text
        return r.json()

    def topup(self, account: str, amount: int) -> None:
        r = self.http.post(f"/balances/{account}/topup", json={"amount": f"{amount / 100:.2f}", "comment": "test"})
        assert r.status_code == 200, r.text

    def add_device(self, name: str, printer: str) -> str:
        r = self.http.post("/devices", json={"name": name, "printer": printer})
        assert r.status_code == 201, r.text
        return r.json()["key"]


class Device:
    """An MFD using the device API of a site."""

    def __init__(self, node: peers.Node, key: str):
        self.http = httpx.Client(base_url=f"http://127.0.0.1:{node.web_port}/api/v1/device", trust_env=False,
                                 timeout=30, headers={"X-Device-Key": key})

    def login(self, expect: int = 200, **body: Any) -> httpx.Response:
        self.http.headers.pop("Authorization", None)
        r = self.http.post("/login", json=body)
        assert r.status_code == expect, f"login {body}: expected {expect}, got {r.status_code} {r.text}"
        if r.status_code == 200:
            self.http.headers["Authorization"] = f"Bearer {r.json()['token']}"
        return r

    def jobs(self) -> list[dict]:
        r = self.http.get("/jobs")
        assert r.status_code == 200, r.text
        return r.json()["jobs"]

    def release(self, *ids: int) -> list[dict]:
        r = self.http.post("/release", json={"jobs": list(ids)})
        assert r.status_code == 200, r.text
        return r.json()["results"]

    def release_when_listed(self, job: int, timeout: float = 60) -> dict:
        peers.wait_for(lambda: any(j["id"] == job for j in self.jobs()), timeout=timeout,
                       what=f"held job {job} listed at the device")
        (res,) = self.release(job)
        return res


# --------------------------------------------------------------------------- IPP


def ipp_job(node: peers.Node, queue: str, job: int) -> dict[str, list[Any]]:
    """Get-Job-Attributes (every attribute) with the minimal client of tests/peers.py."""
    uri = f"ipp://127.0.0.1:{node.port}/ipp/print/{queue}"
    body = peers.encode_request(0x0009, 1, [
        (0x47, "attributes-charset", "utf-8"), (0x48, "attributes-natural-language", "en"),
        (0x45, "printer-uri", uri), (0x21, "job-id", job), (0x42, "requesting-user-name", "admin")])
    r = httpx.post(f"http://127.0.0.1:{node.port}/ipp/print/{queue}", content=body, trust_env=False, timeout=30,
                   headers={"Content-Type": "application/ipp"})
    assert r.status_code == 200, r.text
    status, attrs = peers.decode_response(r.content)
    assert status < 0x100, f"Get-Job-Attributes {queue}/{job}: status {status:#x}"
    return attrs


def final_state(node: peers.Node, queue: str, job: int, timeout: float = 90) -> dict[str, Any]:
    def final():
        a = ipp_job(node, queue, job)
        return a if a["job-state"][0] in (7, 8, 9) else None
    a = peers.wait_for(final, timeout=timeout, interval=0.1, what=f"{node.name} {queue}-{job} final")
    return {"state": a["job-state"][0], "reasons": a.get("job-state-reasons", []),
            "message": (a.get("job-state-message") or [""])[0], "uuid": a["job-uuid"][0]}


# --------------------------------------------------------------------------- the deployment


def spoolproxy_cli(node: peers.Node, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run([sys.executable, "-m", "spoolproxy", *args, "--config", str(node.config_path),
                           "--state-dir", str(node.state_dir)], capture_output=True, text=True, env=node.env(),
                          timeout=120)
    if check:
        assert proc.returncode == 0, f"spoolproxy {' '.join(args)}: {proc.returncode}\n{proc.stdout}{proc.stderr}"
    return proc


def start_node(node: peers.Node) -> None:
    node.start()
    peers.wait_port("127.0.0.1", node.web_port, proc=node)


class Deployment:
    def __init__(self, tmp: Path):
        self.tmp = tmp
        self.docs = {}
        for name, (colors, _cost) in DOCS.items():
            path = tmp / f"{name}.pdf"
            path.write_bytes(peers.simple_pdf(colors, comment=b"%" + name.encode()))
            self.docs[name] = path
        self.offline: dict[str, Any] = {}
        self.primary = peers.Node(tmp / "primary", {
            "hq": {"printer": f"folder:{tmp / 'hq-out'}", "cost": COST}}, name="primary",
            settings={"node": {"role": "primary", "name": "hq", "fsync": False},
                      "web": {"admin_token": TOKEN}, "offline": {}})
        self.primary.state_dir.mkdir(parents=True, exist_ok=True)
        self.keys = {}
        for s in SITES:
            out = spoolproxy_cli(self.primary, "sites", "add", s).stdout
            self.keys[s] = out.strip().splitlines()[-1].strip()
            assert self.keys[s].startswith("sps_"), out
        self.printers: dict[str, peers.IppEvePrinter] = {}
        self.sites: dict[str, peers.Node] = {}
        for s in SITES:
            self.printers[s] = peers.IppEvePrinter(tmp / f"eve-{s}", name=f"eve-{s}", fast=True,
                                                   extra_args=["-s", "10,5"])  # colour: nothing converted
            self.sites[s] = peers.Node(tmp / s, {
                f"{s}-direct": {"printer": self.printers[s].uri, "cost": COST, "default": True},
                f"{s}-hold": {"printer": self.printers[s].uri, "mode": "hold", "cost": COST},
            }, name=s, settings={
                "node": {"role": "site", "name": s, "fsync": False},
                "web": {"admin_token": TOKEN},
                "sync": {"primary": f"http://127.0.0.1:{self.primary.web_port}", "key": self.keys[s],
                         "heartbeat": HEARTBEAT, "offline_after": OFFLINE_AFTER, "timeout": TIMEOUT}})
        self.admin = Admin(self.primary)
        self.site_admin = {s: Admin(self.sites[s]) for s in SITES}
        self.device_keys: dict[str, str] = {}
        self.paused = False

    @property
    def peers(self) -> list[peers.Peer]:
        return [self.primary, *self.sites.values(), *self.printers.values()]

    def start(self) -> None:
        for p in self.printers.values():
            p.start()
        start_node(self.primary)
        for s in self.sites.values():
            start_node(s)
        for s in SITES:
            self.wait_online(s)
            self.device_keys[s] = self.site_admin[s].add_device(f"mfd-{s}", f"{s}-hold")

    def heal(self) -> None:
        self.resume_primary()
        for p in self.printers.values():
            if not p.alive():
                p.start()
        for n in (self.primary, *self.sites.values()):
            if not n.alive():
                start_node(n)
        for s in SITES:
            self.wait_online(s)

    def stop(self) -> None:
        self.resume_primary()
        for p in self.peers:
            p.stop()

    # -- the link ---------------------------------------------------------------------

    def status(self, site: str) -> dict:
        return self.site_admin[site].sync()

    def wait_online(self, site: str, timeout: float = 30) -> dict:
        return peers.wait_for(lambda: (st := self.status(site))["online"] and st["site"] == site and st,
                              timeout=timeout, interval=0.05, what=f"{site} online")

    def wait_offline(self, site: str, timeout: float = 30) -> dict:
        return peers.wait_for(lambda: (st := self.status(site))["online"] is False and st,
                              timeout=timeout, interval=0.05, what=f"{site} offline")

    def wait_synced(self, sites: Iterable[str] = SITES, timeout: float = 60) -> None:
        """Every entry of the sites' journals answered by the primary."""
        for s in sites:
            peers.wait_for(lambda: (st := self.status(s))["online"] and st["unsent"] == 0, timeout=timeout,
                           interval=0.1, what=f"{s} online with nothing unsent")

    def pause_primary(self) -> None:
        """SIGSTOP: the primary hangs (its port still accepts connections, nothing answers)."""
        os.kill(self.primary.pid, signal.SIGSTOP)
        self.paused = True

    def resume_primary(self) -> None:
        if self.paused and self.primary.alive():
            os.kill(self.primary.pid, signal.SIGCONT)
        self.paused = False

    def restart_primary(self, **offline: Any) -> None:
        """With a new [offline] policy: published at start and followed by the sites
        (nothing to do when it is the policy in force)."""
        if self.primary.alive() and {**DEFAULT_POLICY, **offline} == {**DEFAULT_POLICY, **self.offline}:
            return
        self.primary.stop()
        self.offline = dict(offline)
        self.primary.settings["offline"] = dict(offline)
        start_node(self.primary)
        want = {**DEFAULT_POLICY, **offline}
        for s in SITES:
            if self.sites[s].alive():
                peers.wait_for(lambda: (st := self.status(s))["online"] and st["policy"] == want,
                               timeout=30, interval=0.05, what=f"{s} follows the policy {offline}")

    # -- users ------------------------------------------------------------------------

    def user(self, name: str, credit: int, *, restricted: bool = True, **fields: Any) -> None:
        self.admin.put_user(name, restricted=restricted, **fields)
        if credit:
            self.admin.topup(name, credit)

    def wait_sites_know(self, accounts: dict[str, int], sites: Iterable[str] = SITES) -> None:
        """Until every site's view has these balances (the feed carried them)."""
        for s in sites:
            a = self.site_admin[s]
            for acct, want in accounts.items():
                peers.wait_for(lambda: a.user(acct.removeprefix("user:")) is not None and a.balance(acct) == want,
                               timeout=30, interval=0.05, what=f"{s} sees {acct} at {want}")

    def device(self, site: str) -> Device:
        return Device(self.sites[site], self.device_keys[site])

    def lp(self, site: str, queue: str, user: str, doc: str) -> int:
        return peers.lp(f"127.0.0.1:{self.sites[site].port}", queue, self.docs[doc], "-U", user)


@pytest.fixture(scope="module")
def dep(tmp_path_factory, dnssd):
    for tool in ("lp", "ippeveprinter", "ipptool", "avahi-daemon", "dbus-daemon"):
        peers.require(tool)
    d = Deployment(tmp_path_factory.mktemp("sync"))
    try:
        d.start()
        yield d
    finally:
        d.stop()


@pytest.fixture(autouse=True)
def _each(request, dep):
    """Every process runs and every site is online when a test begins (whatever a
    failed test before left), and a failed test's report gets the end of every
    process's log."""
    for p in dep.peers:
        peers.register_peer(request, p)
    dep.heal()
    yield
    dep.resume_primary()


# --------------------------------------------------------------------------- the model


@dataclasses.dataclass
class Printed:
    """One job as the model sees it."""

    site: str
    queue: str
    job: int
    user: str
    doc: str
    account: str  # charged account ('' : not charged)
    offline: bool | None  # the flag its transaction must carry (None: either, made while the link went)
    state: int = 9  # the final state it must reach
    uuid: str = ""

    @property
    def cost(self) -> int:
        return DOCS[self.doc][1]


def wait_all_final(dep: Deployment, jobs: list[Printed]) -> None:
    """Each job reaches the final state the model says (and we learn its uuid)."""
    for j in jobs:
        st = final_state(dep.sites[j.site], j.queue, j.job)
        assert st["state"] == j.state, (j, st)
        j.uuid = st["uuid"]


def books(dep: Deployment, jobs: list[Printed], accounts: dict[str, int], after: int) -> None:
    """The primary's books equal the model: each charged job exactly one print
    transaction of its cost on its account, from its site, with its offline flag;
    no print transaction on these accounts since the transaction ``after`` (the last
    one before the test) the model does not know; every balance its start minus
    what was charged to it (``accounts``: account -> start); each released job one
    release entry in the primary's audit log."""
    wait_all_final(dep, [j for j in jobs if not j.uuid])
    prints = dep.admin.prints()
    charged = [j for j in jobs if j.account and j.state == 9]
    by_uuid: dict[str, list[dict]] = {}
    for t in prints:
        by_uuid.setdefault(t["job_uuid"], []).append(t)
    for j in jobs:
        got = by_uuid.get(j.uuid, [])
        if j not in charged:
            assert got == [], f"{j} must not be charged: {got}"
            continue
        assert len(got) == 1, f"{j}: {len(got)} print transactions on the primary: {got}"
        t = got[0]
        assert (t["account"], t["amount"], t["site"], t["job"]) == (j.account, -j.cost, j.site, j.job), (j, t)
        if j.offline is not None:
            assert t["offline"] is j.offline, (j, t)
    uuids = {j.uuid for j in jobs}
    strays = [t for t in prints if t["account"] in accounts and t["job_uuid"] not in uuids and t["seq"] > after]
    assert strays == [], f"print transactions the model does not know: {strays}"
    for acct, start in accounts.items():
        want = start - sum(j.cost for j in charged if j.account == acct)
        assert dep.admin.balance(acct) == want, f"{acct} on the primary"
    refunds = [t for t in dep.admin.txns(kind="refund") if t["job_uuid"] in uuids]
    assert refunds == []
    # every release at a site reached the primary's audit log, once
    audit = dep.admin.get("/audit", event="release", limit=10000)
    for j in jobs:
        if j.queue.endswith("-hold") and j.state == 9:
            got = [a for a in audit if a.get("job_uuid") == j.uuid]
            assert [(a.get("site"), a["job"], a["user"]) for a in got] == [(j.site, j.job, j.user)], (j, got)


def views_agree(dep: Deployment, accounts: Iterable[str], sites: Iterable[str] = SITES) -> None:
    """Every site's view of these balances comes to the primary's (each debit counted once)."""
    for acct in accounts:
        want = dep.admin.balance(acct)
        for s in sites:
            a = dep.site_admin[s]
            peers.wait_for(lambda: a.balance(acct) == want, timeout=30, interval=0.1,
                           what=f"{s}'s view of {acct} at the primary's {want} (it has {a.balance(acct)})")


def printed_files(dep: Deployment) -> dict[str, int]:
    return {s: len(dep.printers[s].files()) for s in SITES}


def wait_printed(dep: Deployment, before: dict[str, int], jobs: list[Printed]) -> None:
    """Each printer got exactly the jobs of its site that completed, once."""
    for s in SITES:
        n = sum(1 for j in jobs if j.site == s and j.state == 9)
        files = dep.printers[s].wait_files(before[s] + n, timeout=60, settle=0.5)
        assert len(files) == before[s] + n, f"{s}: {len(files) - before[s]} files for {n} printed jobs"


# --------------------------------------------------------------------------- 1. the scenario


@pytest.mark.parametrize("cut", ["sigterm", "sigstop"])
def test_both_sites_print_and_release_through_an_outage_and_the_books_equal_the_model(dep, cut):
    """Default policies. Both sites print (direct and held jobs, released by card,
    card and PIN, and password) while the primary runs; in the middle of the load
    the primary is stopped (SIGTERM: it goes away; SIGSTOP: it hangs, and requests
    in flight are answered, or applied unanswered, only when it goes on) and
    printing goes on at both sites; it comes back, more jobs print while the
    journals are replayed; then every job is in the primary's books exactly once,
    offline ones flagged, and every balance is what the model says."""
    mark = dep.admin.last_seq()  # the books before this test
    dep.restart_primary()  # the defaults (nothing to do when they are in force)
    ann, bob, cat, dan = (f"{n}-{cut}" for n in ("ann", "bob", "cat", "dan"))
    people = {ann: (f"A-{cut}", "1111"), bob: (f"B-{cut}", "2222"), cat: (f"C-{cut}", "3333")}
    for name, (card, pin) in people.items():
        dep.user(name, 5000, cards=[card], pin=pin, password=f"{name}-password")
    dep.user(dan, 5000)
    dep.admin.put_account(f"lab-{cut}", users=[dan], restricted=False)  # dan may charge a shared account
    shared = f"shared:{DEFAULT_POLICY['offline_account']}"
    start = {f"user:{n}": 5000 for n in [*people, dan]}
    dep.wait_sites_know(start)
    start["user:unknown"] = dep.admin.balance("user:unknown")
    start[shared] = dep.admin.balance(shared)
    before = printed_files(dep)
    stranger = f"stranger-{cut}"  # the primary has never heard of them
    link_cut = threading.Event()  # the primary is stopped
    done = threading.Event()  # the offline phase is over

    def online_phase(s: str) -> tuple[list[Printed], Printed]:
        dev = dep.device(s)
        direct, hold = f"{s}-direct", f"{s}-hold"
        out = [Printed(s, direct, dep.lp(s, direct, ann, "c1g2"), ann, "c1g2", f"user:{ann}", False),
               Printed(s, direct, dep.lp(s, direct, dan, "g1"), dan, "g1", f"user:{dan}", False)]
        j = dep.lp(s, hold, bob, "g3")
        dev.login(card=people[bob][0], pin="2222")
        assert dev.release_when_listed(j)["ok"]
        out.append(Printed(s, hold, j, bob, "g3", f"user:{bob}", False))
        wait_all_final(dep, out)  # charged (online, through the primary) before the cut
        held = Printed(s, hold, dep.lp(s, hold, cat, "c2"), cat, "c2", f"user:{cat}", True)  # released offline
        return out, held

    def churn(s: str) -> list[Printed]:
        """Printing that goes on across the cut: a job submitted once the site saw the
        primary gone is charged offline; one submitted before may be either."""
        out = []
        while not done.is_set() and len(out) < 30:
            offline = True if link_cut.is_set() and not dep.status(s)["online"] else None
            out.append(Printed(s, f"{s}-direct", dep.lp(s, f"{s}-direct", ann, "g1"), ann, "g1", f"user:{ann}",
                               offline))
            done.wait(0.3)
        return out

    def offline_phase(s: str, held: Printed) -> list[Printed]:
        dev = dep.device(s)
        direct, hold = f"{s}-direct", f"{s}-hold"
        dev.login(card=people[cat][0])  # a card alone
        assert dev.release_when_listed(held.job)["ok"]
        out = [held]
        j = dep.lp(s, hold, ann, "c1g2")
        dev.login(expect=401, card=people[ann][0], pin="9999")  # the PIN hash synced: a wrong PIN is wrong here too
        dev.login(card=people[ann][0], pin="1111")
        assert dev.release_when_listed(j)["ok"]
        out.append(Printed(s, hold, j, ann, "c1g2", f"user:{ann}", True))
        j = dep.lp(s, hold, bob, "g3")
        dev.login(username=bob, password=f"{bob}-password")  # checked against the cached hash
        assert dev.release_when_listed(j)["ok"]
        out.append(Printed(s, hold, j, bob, "g3", f"user:{bob}", True))
        out += [Printed(s, direct, dep.lp(s, direct, bob, "c2"), bob, "c2", f"user:{bob}", True),
                Printed(s, direct, dep.lp(s, direct, dan, "g1"), dan, "g1", shared, True),  # offline-account
                Printed(s, direct, dep.lp(s, direct, stranger, "g1"), stranger, "g1", "user:unknown", True)]
        wait_all_final(dep, out)
        return out

    jobs: list[Printed] = []
    with ThreadPoolExecutor(6) as pool:
        firsts = {s: pool.submit(online_phase, s) for s in SITES}
        held = {}
        for s, f in firsts.items():
            out, held[s] = f.result()
            jobs += out
        churning = [pool.submit(churn, s) for s in SITES]
        peers.wait_for(lambda: all(dep.sites[s].alive() for s in SITES), timeout=5)
        time.sleep(1.0)  # a few jobs into the load
        if cut == "sigterm":  # the link is cut
            dep.primary.stop()
        else:
            dep.pause_primary()
        link_cut.set()
        for s in SITES:
            dep.wait_offline(s)
        offline = [pool.submit(offline_phase, s, held[s]) for s in SITES]
        for f in offline:
            jobs += f.result()
        done.set()
        for f in churning:
            jobs += f.result()
    wait_all_final(dep, jobs)
    for s in SITES:
        st = dep.status(s)
        assert not st["online"] and st["unsent"] > 0, st
    assert sum(1 for j in jobs if j.offline is True) >= 2 * 7

    # the link is back: the journals are replayed while printing goes on
    if cut == "sigterm":
        start_node(dep.primary)
    else:
        dep.resume_primary()
    after: list[Printed] = []
    for s in SITES:
        dep.wait_online(s)
        after.append(Printed(s, f"{s}-direct", dep.lp(s, f"{s}-direct", cat, "g3"), cat, "g3", f"user:{cat}", False))
    jobs += after
    dep.wait_synced()
    wait_all_final(dep, jobs)
    books(dep, jobs, start, mark)
    views_agree(dep, start)
    wait_printed(dep, before, jobs)
    assert dep.admin.sync()["unapplied"] == []
    for s in SITES:
        st = dep.status(s)
        assert st["refused"] == 0 and st["unsent"] == 0, st


# --------------------------------------------------------------------------- 2. a site killed mid-replay


def test_a_site_killed_in_the_middle_of_its_replay_resumes_it_and_the_books_equal_the_model(dep):
    """s2 prints many jobs offline; it replays them one entry per request (sync.batch
    = 1) and is killed with SIGKILL half-way; restarted, it goes on from where the
    primary's answers got to; every job is in the books once."""
    mark = dep.admin.last_seq()  # the books before this test
    dep.restart_primary()
    s2 = dep.sites["s2"]
    kay = "kay"
    dep.user(kay, 10000, cards=["K-KAY"], pin="6666")
    start = {f"user:{kay}": 10000}
    dep.wait_sites_know(start, ["s2"])
    before = printed_files(dep)

    def applied() -> int:
        """The entries of s2 the primary applied (not counting ones sent again)."""
        return next(x["entries"] for x in dep.admin.sync()["sites"] if x["name"] == "s2")

    base = applied()
    dep.primary.stop()
    s2.stop()  # restarted while the primary is away: it starts offline, one entry per request
    s2.settings["sync"]["batch"] = 1
    start_node(s2)
    assert dep.status("s2")["online"] is False
    docs = list(DOCS)
    with ThreadPoolExecutor(4) as pool:
        ids = list(pool.map(lambda n: dep.lp("s2", "s2-direct", kay, docs[n % len(docs)]), range(30)))
    jobs = [Printed("s2", "s2-direct", j, kay, docs[n % len(docs)], f"user:{kay}", True) for n, j in enumerate(ids)]
    dev = dep.device("s2")
    dev.login(card="K-KAY", pin="6666")
    for doc in ("c1g2", "g1"):
        j = dep.lp("s2", "s2-hold", kay, doc)
        assert dev.release_when_listed(j)["ok"]
        jobs.append(Printed("s2", "s2-hold", j, kay, doc, f"user:{kay}", True))
    wait_all_final(dep, jobs)
    unsent = dep.status("s2")["unsent"]
    assert unsent >= len(jobs)  # (and the two releases, for the primary's audit log)

    start_node(dep.primary)
    at_kill = peers.wait_for(lambda: (n := applied() - base) >= 5 and n, timeout=30, interval=0.01,
                             what="s2's replay under way")
    s2.kill9()
    assert at_kill < unsent, f"the replay was over ({at_kill} of {unsent}) before the kill"
    start_node(s2)
    dep.wait_synced(["s2"])
    assert applied() - base == unsent  # each entry applied once: the ones sent again were answered "again"
    books(dep, jobs, start, mark)
    views_agree(dep, start, ["s2"])
    wait_printed(dep, before, jobs)
    assert dep.admin.sync()["unapplied"] == []


# --------------------------------------------------------------------------- 3. export and import by hand


def test_a_journal_exported_and_imported_by_hand_is_applied_once_and_the_replay_changes_nothing(dep, tmp_path):
    mark = dep.admin.last_seq()  # the books before this test
    dep.restart_primary()
    s1 = dep.sites["s1"]
    lee = "lee"
    dep.user(lee, 2000, cards=["L-LEE"], pin="5555")
    start = {f"user:{lee}": 2000}
    dep.wait_sites_know(start, ["s1"])
    before = printed_files(dep)
    jobs = [Printed("s1", "s1-direct", dep.lp("s1", "s1-direct", lee, "c1g2"), lee, "c1g2", f"user:{lee}", False)]
    wait_all_final(dep, jobs)  # charged online
    dep.primary.stop()  # the link is down
    dep.wait_offline("s1")
    offline = [Printed("s1", "s1-direct", dep.lp("s1", "s1-direct", lee, d), lee, d, f"user:{lee}", True)
               for d in ("c1g2", "g1", "c2")]
    j = dep.lp("s1", "s1-hold", lee, "g3")
    dev = dep.device("s1")
    dev.login(card="L-LEE", pin="5555")
    assert dev.release_when_listed(j)["ok"]
    offline.append(Printed("s1", "s1-hold", j, lee, "g3", f"user:{lee}", True))
    wait_all_final(dep, offline)
    jobs += offline
    unsent = dep.status("s1")["unsent"]
    assert unsent >= len(offline)
    s1.stop()
    export = tmp_path / "s1-journal.msgpack"
    out = spoolproxy_cli(s1, "offline", "export", str(export)).stdout
    assert f"exported {unsent} journal entries of site s1" in out, out

    start_node(dep.primary)  # s1 is down: nothing is replayed
    entries = next(x["entries"] for x in dep.admin.sync()["sites"] if x["name"] == "s1")
    out = spoolproxy_cli(dep.primary, "offline", "import", str(export)).stdout  # into the running primary
    assert f"site s1: {unsent} entries: {unsent} applied, 0 applied before, 0 not applicable" in out, out
    books(dep, jobs, start, mark)
    txns = dep.admin.txns()
    assert next(x["entries"] for x in dep.admin.sync()["sites"] if x["name"] == "s1") == entries + unsent
    out = spoolproxy_cli(dep.primary, "offline", "import", str(export)).stdout  # a second import: no change
    assert f"site s1: {unsent} entries: 0 applied, {unsent} applied before" in out, out

    start_node(s1)  # the automatic replay: each entry answered "applied before"
    dep.wait_online("s1")
    dep.wait_synced(["s1"])
    st = dep.status("s1")
    assert st["refused"] == 0 and st["unsent"] == 0, st
    assert dep.admin.txns() == txns  # nothing new
    assert next(x["entries"] for x in dep.admin.sync()["sites"] if x["name"] == "s1") == entries + unsent
    books(dep, jobs, start, mark)
    views_agree(dep, start, ["s1"])
    wait_printed(dep, before, jobs)


# --------------------------------------------------------------------------- 4. two sites, one credit


def test_two_sites_printing_at_once_for_one_user_cannot_spend_more_than_the_credit(dep):
    """Online, both sites take jobs of one restricted user with credit (balance plus
    overdraft) for exactly three: each charge is confirmed by the primary first, so
    three print, the rest end aborted with account-limit-reached, and the balance
    never goes below minus the overdraft."""
    mark = dep.admin.last_seq()  # the books before this test
    dep.restart_primary()
    kim, K, OVERDRAFT = "kim", 3, 30  # jobs of 0.70: 2.10 + 0.30 pays three, not four
    dep.user(kim, K * 70 - OVERDRAFT, overdraft=f"{OVERDRAFT / 100:.2f}")
    start = {f"user:{kim}": K * 70 - OVERDRAFT}
    dep.wait_sites_know(start)
    for s in SITES:
        assert dep.status(s)["online"]
    before = printed_files(dep)
    lowest = [start[f"user:{kim}"]]
    stop = threading.Event()

    def watch() -> None:
        while not stop.is_set():
            lowest[0] = min(lowest[0], dep.admin.balance(f"user:{kim}"))
            time.sleep(0.02)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    try:
        with ThreadPoolExecutor(10) as pool:
            subs = [(s, pool.submit(dep.lp, s, f"{s}-direct", kim, "c1g2")) for s in SITES for _ in range(5)]
            ids = [(s, f.result()) for s, f in subs]
        states = {(s, j): final_state(dep.sites[s], f"{s}-direct", j) for s, j in ids}
    finally:
        stop.set()
        watcher.join()
    done = [k for k, st in states.items() if st["state"] == 9]
    assert len(done) == K, states
    for st in states.values():
        if st["state"] != 9:
            assert st["state"] == 8 and "account-limit-reached" in st["reasons"], st
    jobs = [Printed(s, f"{s}-direct", j, kim, "c1g2", f"user:{kim}", False, states[s, j]["state"],
                    states[s, j]["uuid"]) for s, j in ids]
    books(dep, jobs, start, mark)
    assert dep.admin.balance(f"user:{kim}") == -OVERDRAFT
    assert lowest[0] >= -OVERDRAFT, f"the balance went to {lowest[0]}"
    views_agree(dep, start)
    wait_printed(dep, before, jobs)


# --------------------------------------------------------------------------- each offline policy option


@contextlib.contextmanager
def offline_period(dep: Deployment, site: str = "s1"):
    """The primary hangs (SIGSTOP) until the block ends, then answers again (SIGCONT);
    afterwards the site has replayed its journal."""
    dep.pause_primary()
    try:
        dep.wait_offline(site)
        yield
    finally:
        dep.resume_primary()
    dep.wait_online(site)
    dep.wait_synced([site])


def balances(dep: Deployment, accounts: Iterable[str]) -> dict[str, int]:
    return {a: dep.admin.balance(a) for a in accounts}


@pytest.mark.parametrize("credit, overdraft, printed", [
    ("last-known", 0, 1),  # 1.00 of credit and jobs of 0.70: one prints, not a second
    ("overdraft", 40, 2),  # the second takes it to exactly -0.40: it prints; a third would be -1.10
    ("allow", 0, 3),  # regardless of the balance
    ("none", 0, 0),  # restricted users print nothing offline
], ids=["last-known", "overdraft", "allow", "none"])
def test_offline_credit_policy(dep, credit, overdraft, printed):
    mark = dep.admin.last_seq()  # the books before this test
    dep.restart_primary(credit=credit, **({"offline_overdraft": overdraft} if overdraft else {}))
    ann, boss = f"credit-{credit}", f"credit-{credit}-boss"
    dep.user(ann, 100)
    dep.user(boss, 0, restricted=False)
    start = {f"user:{ann}": 100, f"user:{boss}": 0}
    dep.wait_sites_know(start, ["s1"])
    before = printed_files(dep)
    jobs = []
    with offline_period(dep):
        for n in range(3):  # one after the other: each sees what the one before left
            j = Printed("s1", "s1-direct", dep.lp("s1", "s1-direct", ann, "c1g2"), ann, "c1g2", f"user:{ann}",
                        True, 9 if n < printed else 8)
            st = final_state(dep.sites["s1"], j.queue, j.job)
            assert st["state"] == j.state, (credit, n, st)
            if j.state == 8:
                assert "account-limit-reached" in st["reasons"] and "Not enough credit" in st["message"], st
            jobs.append(j)
        # an unrestricted user prints whatever the policy (here with no credit at all)
        j = Printed("s1", "s1-direct", dep.lp("s1", "s1-direct", boss, "c1g2"), boss, "c1g2", f"user:{boss}", True)
        assert final_state(dep.sites["s1"], j.queue, j.job)["state"] == 9
        jobs.append(j)
    books(dep, jobs, start, mark)
    assert dep.admin.balance(f"user:{ann}") == 100 - printed * 70  # allow and overdraft go below zero
    views_agree(dep, start, ["s1"])
    wait_printed(dep, before, jobs)


@pytest.mark.parametrize("policy, charged", [
    ({"account": "offline-account", "offline_account": "Offline Jobs"}, "shared:Offline Jobs"),
    ({"account": "personal"}, "personal"),
    ({"account": "cancel"}, None),
], ids=["offline-account", "personal", "cancel"])
def test_offline_account_choice_policy(dep, policy, charged):
    """A user who may charge a shared account would have to choose one: offline the
    policy decides. A user with only their own account prints as ever."""
    mark = dep.admin.last_seq()  # the books before this test
    dep.restart_primary(**policy)
    tag = policy["account"]
    dan, bob = f"acct-{tag}-dan", f"acct-{tag}-bob"
    dep.user(dan, 1000)
    dep.user(bob, 1000)
    dep.admin.put_account(f"lab-{tag}", users=[dan], restricted=False)
    start = {f"user:{dan}": 1000, f"user:{bob}": 1000}
    dep.wait_sites_know(start, ["s1"])
    if charged and charged.startswith("shared:"):
        start[charged] = dep.admin.balance(charged)  # made by the primary for the policy
    before = printed_files(dep)
    with offline_period(dep):
        jd = Printed("s1", "s1-direct", dep.lp("s1", "s1-direct", dan, "c1g2"), dan, "c1g2",
                     "" if charged is None else f"user:{dan}" if charged == "personal" else charged, True,
                     7 if charged is None else 9)
        jb = Printed("s1", "s1-direct", dep.lp("s1", "s1-direct", bob, "g1"), bob, "g1", f"user:{bob}", True)
        st = final_state(dep.sites["s1"], jd.queue, jd.job)
        assert st["state"] == jd.state, st
        if charged is None:
            assert "offline policy" in st["message"], st
        assert final_state(dep.sites["s1"], jb.queue, jb.job)["state"] == 9
    books(dep, [jd, jb], start, mark)
    wait_printed(dep, before, [jd, jb])


@pytest.mark.parametrize("policy, state", [
    ({"unknown": "assign", "unknown_user": "guest"}, 9),
    ({"unknown": "untracked"}, 9),
    ({"unknown": "cancel"}, 7),
], ids=["assign", "untracked", "cancel"])
def test_offline_unknown_user_policy(dep, policy, state):
    mark = dep.admin.last_seq()  # the books before this test
    dep.restart_primary(**policy)
    action = policy["unknown"]
    start = {"user:unknown": dep.admin.balance("user:unknown")}
    if action == "assign":
        dep.wait_sites_know({"user:guest": 0}, ["s1"])  # made by the primary for the policy
        start["user:guest"] = dep.admin.balance("user:guest")
    before = printed_files(dep)
    stranger = f"stranger-{action}"
    with offline_period(dep):
        j = Printed("s1", "s1-direct", dep.lp("s1", "s1-direct", stranger, "c1g2"), stranger, "c1g2",
                    "user:guest" if action == "assign" else "", True, state)
        st = final_state(dep.sites["s1"], j.queue, j.job)
        assert st["state"] == state, st
        if state == 7:
            assert "not known" in st["message"], st
    books(dep, [j], start, mark)  # untracked: printed, and no transaction anywhere
    wait_printed(dep, before, [j])
    assert dep.admin.user(stranger) is None  # a site makes no users: the primary owns them


@pytest.mark.parametrize("password", ["cached", "card-pin"])
def test_offline_password_policy(dep, password):
    mark = dep.admin.last_seq()  # the books before this test
    dep.restart_primary(password=password)
    pat = f"pw-{password}"
    card = f"P-{password}"
    dep.user(pat, 1000, cards=[card], pin="4711", password="pat-secret")
    start = {f"user:{pat}": 1000}
    dep.wait_sites_know(start, ["s1"])
    dev = dep.device("s1")
    dev.login(username=pat, password="pat-secret")  # online: the primary checks it
    with offline_period(dep):
        j = Printed("s1", "s1-hold", dep.lp("s1", "s1-hold", pat, "g3"), pat, "g3", f"user:{pat}", True)
        if password == "cached":
            dev.login(expect=401, username=pat, password="not-the-secret")
            dev.login(username=pat, password="pat-secret")  # the hash cached at the last sync
        else:
            r = dev.login(expect=403, username=pat, password="pat-secret")
            assert "card or PIN" in r.json()["detail"], r.json()
            dev.login(card=card, pin="4711")  # PIN hashes are synced
        assert dev.release_when_listed(j.job)["ok"]
        assert final_state(dep.sites["s1"], j.queue, j.job)["state"] == 9
    dev.login(username=pat, password="pat-secret")  # online again
    books(dep, [j], start, mark)
