#!/usr/bin/env python3
"""Site and primary (issue 6): how fast a site's offline journal is replayed into the
primary, and how long a site takes to notice that the link is down and back.

    python3 bench/replay.py [--entries 20000] [--quick] [--json FILE]
                            [--heartbeat 1] [--offline-after 5]   (--help for the rest)

It starts its own deployment in a temporary directory and removes it afterwards: a
primary ``hq`` and a site ``s1``, each a ``python -m spoolproxy serve`` process of its
own (``fsync = true`` on both, as in production; a folder printer each, web on a free
port, the admin token in the configuration). Processes rather than two nodes in one trio
run: a site and its primary are different machines; as processes on the 2-core machine
each node has a core and a GIL of its own (the primary applying a batch does not stall
the site's loop, nor the site's settling commit the primary's), and the primary can be
stopped with a signal like a machine that hangs. One process would put both event loops,
both LMDB writers and both ends of the HTTP on one GIL and measure that instead. The
benchmark itself only reads: it polls the nodes' admin APIs and reads their LMDB
environments read-only (an LMDB reader costs the writer nothing).

1. **Journal replay.** ``--users`` users (unrestricted, with enough credit for every
   entry) and the site key are written into the primary's LMDB before it starts, with
   the ledger's own functions (``put_user_fn``, ``Sites.add_now``; the change log on, as
   the node opens it). The site starts, takes its snapshot and goes online. Then, twice,
   the site is stopped and ``--entries`` (N) offline job charges (random users, 1..200
   minor units each) are written into its LMDB exactly as a site offline writes them:
   ``sync.journal.apply_and_journal_fn(id, account, -amount, "print", site=NAME,
   offline=True, ...)`` through ``Database.transact_now``, 1000 per commit (the site's
   writer groups its commits too). The site replays them, ``sync.batch`` (default 1000)
   per ``POST /api/v1/sync/journal``, one request at a time; the primary applies each
   batch in one write transaction.

   a. **The site restarted** with N entries waiting, the primary running: timed from the
      restart to online (the site's own ``since`` in ``GET /api/v1/admin/sync``: its
      clock when it got its first answer), to every entry applied at the primary, and to
      ``unsent == 0`` in the site's admin API (end to end). The replay here runs while
      the site is still starting (its engine workers, web server).
   b. **The link comes back** to a running site: the primary gets SIGSTOP, the site is
      started (it stays offline) and runs until the machine is idle again (its engine
      workers started; at least a second), then the primary gets SIGCONT:
      timed from then to online, to every entry applied, to ``unsent == 0``.

   The end of the replay is seen in the primary's LMDB (the site's record there counts
   the entries the primary applied, in the same commit), polled every 5 ms; the
   **entries / second into the primary** are N over online -> every entry applied, of
   run b. (a site that kept running through the outage, the case the journal is for).
   Target: **10,000 entries/s**. Times are ``time.time`` of the processes of one machine.

   The peers, in this process after the nodes have stopped, the same N entries on a
   fresh ledger of the same users with fsync on: ``Primary.apply`` (the primary's own
   apply path, the writer task running, batches of ``sync.batch`` one after another:
   everything of the replay but HTTP and the site), and the bare ledger
   (``apply_fn`` per entry, one ``transact_now`` commit per batch). The ratios
   replay / each are printed.

   **Books.** Afterwards: every user's balance at the primary (``GET /api/v1/admin/users``)
   equals the model (initial credit minus the entries of that user); the primary's log
   grew by exactly 2N transactions and its ``unapplied`` list is empty; the site counts N
   replayed (since its last start) and none refused; the site's view of every balance (its admin API) comes to
   equal the primary's and its pending sums to zero once the change feed carried the
   entries back; and a batch sent again (``POST /api/v1/sync/journal`` with the site's
   key) is answered "again" for every entry and changes no balance. ``books_balanced``
   in the JSON is all of that.

2. **Offline detection.** The site following the primary (``sync.heartbeat``,
   ``sync.offline_after`` and ``sync.timeout`` from the arguments), ``--rounds`` times:

   * **hung**: the primary's process group gets SIGSTOP (a primary or a link that stops
     answering without refusing: the site's requests wait for ``sync.timeout``); the time
     to the site's ``online: false`` (its ``since``, polled every 20 ms); then SIGCONT,
     and the time to ``online: true``;
   * **down**: the primary's process group gets SIGKILL (a crash: connections are
     refused at once); the time to ``online: false``; then it is started again, and the
     time from the restart to ``online: true``, and from the moment its admin API answers.

   Each stop, resume and restart comes at a random moment (0..``heartbeat`` after the
   previous state change), not in step with the site's polls. The times are the site's
   own ``since`` (its clock at the change) minus the moment of the signal. Printed
   beside ``offline_after`` and ``heartbeat``: a site goes offline when the
   primary has not answered for ``offline_after`` seconds, noticed at the first failed
   poll after that (polls are ``heartbeat`` apart; a hung one takes up to ``timeout``).

``--quick`` (CI): 2,000 entries (twice) of 100 users, heartbeat 0.25 s, offline_after
1 s, timeout 1 s, one round; about 20 s. Output: the tables and the target line;
``--json FILE`` writes every number. Benchmarks report, tests assert: exit 0 when it
ran, whatever the numbers; 1 when the books do not balance (then the rate means
nothing); 3 when a node did not start or stopped answering.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import secrets
import shutil
import signal
import socket
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

import httpx

REPO = Path(__file__).resolve().parents[1]
BENCH = Path(__file__).resolve().parent
for _p in (str(REPO), str(BENCH)):
    if _p not in sys.path:
        sys.path.insert(0, _p)

from _report import new_result, phase, say, stop_on_sigterm  # noqa: E402
from accept_rate import LIVE, PeerFailed, Proc, cpu_seconds, machine_busy, tail  # noqa: E402
from spoolproxy.collector import settled  # noqa: E402  (the node's collector settings)
from spoolproxy.db import Database  # noqa: E402
from spoolproxy.ledger import User, personal  # noqa: E402
from spoolproxy.ledger.store import apply_fn, put_user_fn  # noqa: E402
from spoolproxy.sync import journal as J  # noqa: E402
from spoolproxy.sync.primary import SITES, Sites  # noqa: E402
from spoolproxy.sync.wire import MEDIA_TYPE, PREFIX  # noqa: E402

EXIT_OK, EXIT_WRONG, EXIT_PEER = 0, 1, 3
TARGET_PER_S = 10_000
SITE = "s1"
JOURNAL_COMMIT = 1000  # entries per commit when writing the site's journal
PRIMARY_POLL = 0.005  # s between reads of the primary's LMDB while it applies
STATE_POLL = 0.02  # s between polls of a site's admin API
START_TIMEOUT = 90.0
LINK_SETTLE = 1.0  # s the restarted site runs offline at least before the primary resumes
QUIET_CORES = 0.25  # ... and until the machine is this idle (cores busy)
API = "/api/v1/admin"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# --------------------------------------------------------------------------- the model


def make_entries(n: int, users: int, seed: int) -> list[dict[str, Any]]:
    """N offline job charges: (id, user, amount) with a unique id like a site's charge."""
    rnd = random.Random(seed)
    base = time.time() - n * 0.01
    return [{"id": f"print/{rnd.getrandbits(128):032x}/1", "user": f"u{rnd.randrange(users):05d}",
             "amount": rnd.randint(1, 200), "when": base + i * 0.01, "job": i + 1} for i in range(n)]


def spent_by_user(entries: list[dict[str, Any]]) -> dict[str, int]:
    out: dict[str, int] = {}
    for e in entries:
        out[e["user"]] = out.get(e["user"], 0) + e["amount"]
    return out


def credit_for(entries: list[dict[str, Any]]) -> int:
    """Initial credit that covers every user's entries twice over (no entry goes below zero)."""
    return max(100_000, 2 * max(spent_by_user(entries).values(), default=0))


def populate(db: Database, users: int, credit: int) -> None:
    """The users (unrestricted, ``credit`` each), in one commit, as the ledger writes them."""
    now = time.time()
    fns = [put_user_fn(User(f"u{i:05d}", full_name=f"User {i}", restricted=False), initial_credit=credit,
                       by="bench", now=now) for i in range(users)]

    def fn(t: Any) -> None:
        for f in fns:
            f(t)
    db.transact_now(fn)


def write_journal(db: Database, site: str, entries: list[dict[str, Any]]) -> float:
    """The entries as a site offline journals them; returns the seconds it took."""
    t0 = time.perf_counter()
    for lo in range(0, len(entries), JOURNAL_COMMIT):
        fns = [J.apply_and_journal_fn(e["id"], personal(e["user"]), -e["amount"], "print", site=site, offline=True,
                                      when=e["when"], by=e["user"], job=e["job"], comment="bench/replay.py")
               for e in entries[lo:lo + JOURNAL_COMMIT]]

        def fn(t: Any, fns: list[Callable[[Any], Any]] = fns) -> None:
            for f in fns:
                if not f(t).new:
                    raise RuntimeError("a fresh entry id was already in the site's log")
        db.transact_now(fn)
    return time.perf_counter() - t0


def wire_entries(site: str, entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The entries as the site sends them (sync.site._wire)."""
    return [{"id": e["id"], "site": site, "seq": i + 1, "kind": "txn", "time": e["when"], "offline": True,
             "data": {"account": personal(e["user"]), "amount": -e["amount"], "kind": "print", "job": e["job"],
                      "job_uuid": "", "by": e["user"], "comment": "bench/replay.py"}}
            for i, e in enumerate(entries)]


# --------------------------------------------------------------------------- the nodes


class Node:
    """One ``python -m spoolproxy serve --config FILE`` on a fixed web port."""

    def __init__(self, work: Path, name: str, role: str, extra: str = ""):
        self.name = name
        self.dir = work / name
        self.dir.mkdir(parents=True, exist_ok=True)
        self.state = self.dir / "state"
        self.port = free_port()
        self.token = secrets.token_urlsafe(24)
        self.cfg = self.dir / "node.toml"
        self.cfg.write_text(f"""\
[node]
name = "{name}"
role = "{role}"
state_dir = "{self.state}"
fsync = true

[ipp]
listen = "127.0.0.1"
port = 0

[lpd]
enabled = false

[web]
listen = "127.0.0.1"
port = {self.port}
admin_token = "{self.token}"

[queues.{name}]
printer = "folder:{self.dir / 'printed'}"
{extra}""")
        self.log = self.dir / "node.log"
        self.proc: Proc | None = None
        self.http = httpx.Client(base_url=f"http://127.0.0.1:{self.port}", trust_env=False, timeout=30,
                                 headers={"Authorization": f"Bearer {self.token}"})

    @property
    def db_path(self) -> Path:
        return self.state / "db"

    def start(self) -> None:
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH", "")) if p)
        self.proc = Proc(self.name, [sys.executable, "-m", "spoolproxy", "serve", "--config", str(self.cfg)],
                         self.log, env=env, cwd=self.dir)

    def alive(self) -> bool:
        return self.proc is not None and self.proc.alive()

    def answers(self) -> bool:
        try:
            return self.http.get(f"{API}/sync", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    def wait_answers(self, timeout: float = START_TIMEOUT) -> float:
        """Until the admin API answers; returns when (time.time)."""
        deadline = time.monotonic() + timeout
        while not self.answers():
            self.check_alive("its admin API answered")
            if time.monotonic() > deadline:
                raise PeerFailed(f"{self.name}: the admin API did not answer within {timeout:.0f} s\n{tail(self.log)}")
            time.sleep(0.02)
        return time.time()

    def check_alive(self, before: str) -> None:
        if not self.alive():
            assert self.proc is not None
            raise PeerFailed(f"{self.name} exited with {self.proc.p.returncode} before {before}\n{tail(self.log)}")

    def get(self, path: str) -> Any:
        try:
            r = self.http.get(API + path)
        except httpx.HTTPError as e:
            self.check_alive(f"GET {path} was answered")
            raise PeerFailed(f"{self.name}: GET {path}: {e}") from None
        if r.status_code != 200:
            raise PeerFailed(f"{self.name}: GET {path}: {r.status_code} {r.text[:300]}")
        return r.json()

    def signal(self, sig: int) -> None:
        """To the node's process group (the node and its engine workers: Proc starts a session)."""
        assert self.proc is not None
        os.killpg(self.proc.pid, sig)

    def kill(self) -> None:
        assert self.proc is not None
        self.signal(signal.SIGKILL)
        self.proc.p.wait()
        self.proc.stop()  # (closes its log)

    def stop(self) -> None:
        if self.proc is not None:
            if self.alive():
                try:
                    self.signal(signal.SIGCONT)  # a stopped node cannot act on SIGTERM
                except ProcessLookupError:
                    pass
            self.proc.stop(30)

    def close(self) -> None:
        self.http.close()


def wait_site(site: Node, pred: Callable[[dict[str, Any]], bool], what: str, timeout: float,
              interval: float = STATE_POLL) -> tuple[dict[str, Any], float]:
    """Poll the site's admin sync state until ``pred``; (the state, time.time when seen)."""
    deadline = time.monotonic() + timeout
    while True:
        st = site.get("/sync")
        if pred(st):
            return st, time.time()
        site.check_alive(what)
        if time.monotonic() > deadline:
            raise PeerFailed(f"site: {what}: not within {timeout:.0f} s (last state {st})\n{tail(site.log)}")
        time.sleep(interval)


def balances(node: Node) -> dict[str, int]:
    return {r["name"]: r["balance"] for r in node.get("/users")}


# --------------------------------------------------------------------------- 1. replay


def bench_replay(args: argparse.Namespace, work: Path, primary: Node, site: Node,
                 entries: list[dict[str, Any]], credit: int) -> dict[str, Any]:
    """``entries`` is two runs of N: a. the site restarted with N waiting; b. the link
    coming back to a running site with N waiting."""
    n = len(entries) // 2
    with phase(f"starting the primary and the site; the site takes its snapshot of {args.users:,} users"):
        primary.start()
        primary.wait_answers()
        site.start()
        site.wait_answers()
        wait_site(site, lambda st: st["online"] and st["site"] == SITE, "online with its snapshot", START_TIMEOUT)
    snapshot_users = balances(site)
    if len(snapshot_users) < args.users:
        raise PeerFailed(f"the site's snapshot has {len(snapshot_users)} users, not {args.users}")
    with Database(primary.db_path, readonly=True) as pdb:
        txns_before = pdb.count("txns")

    # a. the site restarts with N entries in its journal, the primary running
    site.stop()
    write_s = write_entries(site, entries[:n])
    with phase(f"a. restarting the site: it replays {n:,} entries, {args.batch} per request"):
        t_restart = time.time()
        base = site_entries(primary)
        site.start()
        restart = follow_replay(primary, site, n, base, t_restart)
    restart["restart_to_online_s"] = restart.pop("start_to_online_s")
    restart["restart_to_unsent0_s"] = restart.pop("start_to_unsent0_s")

    # b. the link comes back to a running site with N entries in its journal
    site.stop()
    write_entries(site, entries[n:])
    with phase(f"b. the primary stopped (SIGSTOP), the site started (offline), then the primary resumed: "
               f"the site replays {n:,} entries"):
        base = site_entries(primary)
        primary.signal(signal.SIGSTOP)
        try:
            site.start()
            site.wait_answers()
            quiet = wait_quiet()  # the site's engine workers have started, its loops run
            st = site.get("/sync")
            if st["online"] or st["unsent"] != n:
                raise PeerFailed(f"the site before the link came back: {st} (offline, {n} unsent expected)")
        finally:
            t_link = time.time()
            primary.signal(signal.SIGCONT)
        link = follow_replay(primary, site, n, base, t_link)
    link["quiet_before"] = quiet
    link["link_to_online_s"] = link.pop("start_to_online_s")
    link["link_to_unsent0_s"] = link.pop("start_to_unsent0_s")

    # (the site counts an answered batch just after its settling commit: wait for the count)
    st, _ = wait_site(site, lambda st: st["replayed"] + st["refused"] >= n, "every entry counted", 10)
    books = check_books(args, primary, site, entries, credit, txns_before, st)
    return {"entries": n, "users": args.users, "batch": args.batch, "credit": credit, "journal_write_s": write_s,
            "entries_per_s": link["entries_per_s"], "restart": restart, "link": link,
            "site_status": {k: st.get(k) for k in ("replayed", "refused", "journal", "unsent", "pushed_through")},
            "books": books}


def write_entries(site: Node, entries: list[dict[str, Any]]) -> float:
    """The entries into the (stopped) site's journal; returns the seconds it took."""
    n = len(entries)
    with Database(site.db_path, sync=True) as db:
        name = db.get(J.META, J.SITE)
        if name != SITE:
            raise PeerFailed(f"the site's meta sync.site is {name!r}, not {SITE!r}")
        with phase(f"writing {n:,} offline entries into the site's journal"):
            seconds = write_journal(db, name, entries)
        unsent = J.counts(db)["unsent"]
    if unsent != n:
        raise PeerFailed(f"{n} entries written but the site's journal has {unsent} unsent")
    say(f"journal written: {n:,} entries in {seconds:.2f} s ({n / seconds:,.0f}/s, {JOURNAL_COMMIT} per commit)")
    return seconds


def group_cpu(pgid: int) -> float:
    """CPU seconds of every live process in a process group (a node and its engine workers)."""
    total = 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[2]) == pgid:
            total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


def cpu_now(primary: Node, site: Node) -> dict[str, float]:
    assert primary.proc is not None and site.proc is not None
    return {"primary": cpu_seconds(primary.proc.pid), "primary_group": group_cpu(primary.proc.pid),
            "site": cpu_seconds(site.proc.pid), "site_group": group_cpu(site.proc.pid),
            "bench": time.process_time(), "machine": machine_busy(), "wall": time.time()}


def wait_quiet(limit: float = 20.0) -> dict[str, float]:
    """At least LINK_SETTLE seconds, then until the machine has been nearly idle for half
    a second (the started site's engine workers have done importing), at most ``limit``."""
    t0 = time.monotonic()
    time.sleep(LINK_SETTLE)
    while True:
        b0 = machine_busy()
        time.sleep(0.5)
        busy = (machine_busy() - b0) / 0.5
        if busy < QUIET_CORES or time.monotonic() - t0 > limit:
            return {"waited_s": time.monotonic() - t0, "busy_cores": busy}


def site_entries(primary: Node) -> int:
    """The entries of the site the primary applied (its site record counts them, in the same commit)."""
    with Database(primary.db_path, readonly=True) as pdb:
        return (pdb.get(SITES, SITE.encode()) or {}).get("entries", 0)


def follow_replay(primary: Node, site: Node, n: int, base: int, t_start: float) -> dict[str, Any]:
    """From ``t_start`` until the primary applied ``n`` more entries of the site (its LMDB
    polled every PRIMARY_POLL) and the site's admin API says unsent == 0."""
    first = last = None
    progress: list[tuple[float, int]] = []
    cpu0 = cpu_now(primary, site)
    with Database(primary.db_path, readonly=True) as pdb:
        deadline, seen = time.monotonic() + 60, 0
        while True:
            applied = (pdb.get(SITES, SITE.encode()) or {}).get("entries", 0) - base
            now = time.time()
            if applied != seen:
                seen = applied
                deadline = time.monotonic() + 60
                progress.append((now, applied))
                if first is None:
                    first = now
            if applied >= n:
                last = now
                cpu1 = cpu_now(primary, site)
                break
            site.check_alive("the replay ended")
            primary.check_alive("the replay ended")
            if time.monotonic() > deadline:
                raise PeerFailed(f"the replay stalled at {applied} of {n} entries for 60 s\n{tail(site.log)}\n"
                                 f"{tail(primary.log)}")
            time.sleep(PRIMARY_POLL)
    st, t_settled = wait_site(site, lambda st: st["online"] and st["unsent"] == 0, "unsent == 0", 60)
    t_online = st["since"]
    replay_s = last - t_online
    out = {"start_to_online_s": t_online - t_start, "start_to_first_applied_s": first - t_start,
           "online_to_all_applied_s": replay_s, "online_to_unsent0_s": t_settled - t_online,
           "start_to_unsent0_s": t_settled - t_start,
           "entries_per_s": n / replay_s if replay_s > 0 else 0.0, "end_to_end_per_s": n / (t_settled - t_start),
           "progress": [(round(t - t_online, 4), a) for t, a in progress]}
    # where the time went, from the start to every entry applied (cores busy, of 2 on the dev machine)
    used = {k: cpu1[k] - cpu0[k] for k in cpu0}
    out["cpu"] = {f"{k}_s": v for k, v in used.items()}
    out["cpu"]["other_s"] = used["machine"] - used["primary_group"] - used["site_group"] - used["bench"]
    if t_online > first:
        out["note"] = "the site went offline and online again during the replay: online_to_* are too short"
    return out


def check_books(args: argparse.Namespace, primary: Node, site: Node, entries: list[dict[str, Any]], credit: int,
                txns_before: int, st: dict[str, Any]) -> dict[str, Any]:
    n = len(entries)
    spent = spent_by_user(entries)
    want = {f"u{i:05d}": credit - spent.get(f"u{i:05d}", 0) for i in range(args.users)}
    problems: list[str] = []
    have = balances(primary)
    wrong = [u for u, b in want.items() if have.get(u) != b]
    problems += [f"primary: {u} has {have.get(u)}, the model {want[u]}" for u in wrong[:10]]
    with Database(primary.db_path, readonly=True) as pdb:
        logged = pdb.count("txns") - txns_before
    if logged != n:
        problems.append(f"the primary logged {logged} transactions for {n} entries")
    pstate = primary.get("/sync")
    if pstate.get("unapplied"):
        problems.append(f"the primary could not apply {len(pstate['unapplied'])} entries")
    last_run = n // 2  # (the site's counts are since it started: the last run's)
    if st.get("replayed", 0) < last_run or st.get("refused"):  # (a batch resent after a lost answer counts twice)
        problems.append(f"the site counts {st.get('replayed')} replayed and {st.get('refused')} refused of "
                        f"{last_run}")

    # the site's view comes to equal the primary's once the feed carried every entry back
    deadline, view, pending = time.monotonic() + 30, {}, {}
    while time.monotonic() < deadline:
        view = balances(site)
        with Database(site.db_path, readonly=True) as sdb:
            pending = {k.decode(): v for k, v in sdb.scan(J.PENDING) if v}
        if all(view.get(u) == b for u, b in want.items()) and not pending:
            break
        time.sleep(0.1)
    view_wrong = [u for u, b in want.items() if view.get(u) != b]
    problems += [f"site view: {u} has {view.get(u)}, the primary {want[u]}" for u in view_wrong[:10]]
    if pending:
        problems.append(f"site: {len(pending)} accounts still have pending sums, e.g. {next(iter(pending.items()))}")

    # exactly once: the first batch sent again is answered "again" and changes nothing
    again = resend(primary, args, entries[:args.batch])
    if again["not_again"]:
        problems.append(f"{again['not_again']} of {again['sent']} entries sent again were applied again")
    after = balances(primary)
    if after != have:
        problems.append("a batch sent again changed balances at the primary")
    return {"balanced": not problems, "users_checked": len(want), "users_wrong": len(wrong),
            "primary_txns_logged": logged, "unapplied": len(pstate.get("unapplied") or []),
            "site_view_wrong": len(view_wrong), "site_pending_nonzero": len(pending), "resend": again,
            "problems": problems}


def resend(primary: Node, args: argparse.Namespace, entries: list[dict[str, Any]]) -> dict[str, Any]:
    import msgpack
    body = msgpack.packb({"entries": wire_entries(SITE, entries), "require_funds": False}, use_bin_type=True)
    t0 = time.perf_counter()
    r = primary.http.post(PREFIX + "/journal", content=body,
                          headers={"Authorization": f"Bearer {args.site_key}", "Content-Type": MEDIA_TYPE})
    seconds = time.perf_counter() - t0
    if r.status_code != 200:
        raise PeerFailed(f"primary: POST {PREFIX}/journal: {r.status_code} {r.text[:300]}")
    answers = msgpack.unpackb(r.content, raw=False)["answers"]
    return {"sent": len(entries), "seconds": seconds,
            "not_again": sum(1 for a in answers if not (a.get("ok") and a.get("again")))}


# --------------------------------------------------------------------------- the peers


def local_peers(args: argparse.Namespace, work: Path, entries: list[dict[str, Any]], credit: int) -> dict[str, Any]:
    """The same entries into a fresh primary ledger in this process: Primary.apply (no
    HTTP, no site), and apply_fn alone, one commit per batch."""
    import trio

    from spoolproxy.config import OfflinePolicy
    from spoolproxy.ledger import Ledger
    from spoolproxy.sync import Primary

    out: dict[str, Any] = {}
    spent = spent_by_user(entries)
    wired = wire_entries(SITE, entries)
    batches = [wired[lo:lo + args.batch] for lo in range(0, len(wired), args.batch)]

    def fresh(tag: str) -> Database:
        db = Database(work / "local" / tag, sync=True, changelog=J.REPLICATED)
        populate(db, args.users, credit)
        return db

    def books(db: Database) -> bool:
        return all(Ledger(db).balance(personal(f"u{i:05d}")).balance == credit - spent.get(f"u{i:05d}", 0)
                   for i in range(args.users))

    with fresh("primary") as db:
        primary = Primary(db, Ledger(db), OfflinePolicy())
        bad, commits0 = 0, db.stats.commits

        async def run() -> float:
            nonlocal bad
            async with trio.open_nursery() as nursery:
                await nursery.start(db.run)
                t0 = time.perf_counter()
                for b in batches:
                    bad += sum(1 for a in await primary.apply(SITE, b) if not a["ok"] or a.get("again"))
                seconds = time.perf_counter() - t0
                nursery.cancel_scope.cancel()
            return seconds

        with phase(f"peer: Primary.apply in this process, {len(entries):,} entries"), settled():
            seconds = trio.run(run)
        out["primary_apply"] = {"what": f"Primary.apply, {args.batch} a call, in this process",
                                "seconds": seconds, "entries_per_s": len(entries) / seconds,
                                "commits": db.stats.commits - commits0, "books": books(db) and not bad}

    with fresh("ledger") as db:
        commits0 = db.stats.commits
        with phase(f"peer: apply_fn, one commit per {args.batch}"), settled():
            t0 = time.perf_counter()
            for b in batches:
                fns = [apply_fn(e["id"], e["data"]["account"], e["data"]["amount"], "print", job=e["data"]["job"],
                                by=e["data"]["by"], comment=e["data"]["comment"], when=e["time"], site=SITE,
                                offline=True) for e in b]

                def fn(t: Any, fns: list[Callable[[Any], Any]] = fns) -> None:
                    for f in fns:
                        f(t)
                db.transact_now(fn)
            seconds = time.perf_counter() - t0
        out["apply_fn"] = {"what": f"apply_fn alone, one commit per {args.batch}",
                           "seconds": seconds, "entries_per_s": len(entries) / seconds,
                           "commits": db.stats.commits - commits0, "books": books(db)}
    return out


# --------------------------------------------------------------------------- 2. detection


def bench_detection(args: argparse.Namespace, primary: Node, site: Node) -> dict[str, Any]:
    rounds = []
    limit = args.offline_after + args.timeout + args.heartbeat + 30
    rnd = random.Random(args.seed)
    for k in range(1, args.rounds + 1):
        wait_site(site, lambda st: st["online"], "online", limit)
        # the link fails at a random moment between two polls, not right after an answer
        time.sleep(rnd.uniform(0, args.heartbeat))
        with phase(f"detection round {k}: SIGSTOP the primary"):
            t0 = time.time()
            primary.signal(signal.SIGSTOP)
            try:
                st, seen = wait_site(site, lambda st: not st["online"], "offline (primary stopped)", limit)
                hung = {"offline_after_s": st["since"] - t0, "offline_seen_s": seen - t0}
            finally:
                time.sleep(rnd.uniform(0, args.heartbeat))
                t1 = time.time()
                primary.signal(signal.SIGCONT)
            st, seen = wait_site(site, lambda st: st["online"], "online (primary resumed)", limit)
            hung.update(online_after_s=st["since"] - t1, online_seen_s=seen - t1)
        with phase(f"detection round {k}: SIGKILL the primary, then start it again"):
            time.sleep(rnd.uniform(0, args.heartbeat))
            t0 = time.time()
            primary.kill()
            st, seen = wait_site(site, lambda st: not st["online"], "offline (primary killed)", limit)
            down = {"offline_after_s": st["since"] - t0, "offline_seen_s": seen - t0}
            time.sleep(rnd.uniform(0, args.heartbeat))
            t1 = time.time()
            primary.start()
            t_up = primary.wait_answers()
            st, seen = wait_site(site, lambda st: st["online"], "online (primary restarted)", limit)
            down.update(online_after_s=st["since"] - t1, primary_start_s=t_up - t1,
                        online_after_primary_answers_s=st["since"] - t_up, online_seen_s=seen - t1)
        rounds.append({"round": k, "hung": hung, "down": down})
    summary = {f"{mode}_{what}": spread([rd[mode][f"{what}_s"] for rd in rounds])
               for mode in ("hung", "down") for what in ("offline_after", "online_after")}
    return {"heartbeat": args.heartbeat, "offline_after": args.offline_after, "timeout": args.timeout,
            "rounds": rounds, "summary": summary}


def spread(values: list[float]) -> dict[str, float]:
    return {"min_s": min(values), "mean_s": sum(values) / len(values), "max_s": max(values), "n": len(values)}


# --------------------------------------------------------------------------- report


def report(result: dict[str, Any], args: argparse.Namespace) -> None:
    r = result["replay"]
    n = r["entries"]
    say(f"\n1. Journal replay: {n:,} offline entries of {r['users']:,} users from site {SITE} into the primary, "
        f"twice, sync.batch {r['batch']}, fsync on both nodes (each its own process)")
    a, k = r["restart"], r["link"]
    rows: list[tuple[str, float, float | None]] = [
        ("a. the site restarted with the entries in its journal:", float("nan"), None),
        ("   restart -> online (process start, first answer)", a["restart_to_online_s"], None),
        ("   online -> every entry applied at the primary", a["online_to_all_applied_s"], a["entries_per_s"]),
        ("   restart -> site's unsent == 0 (end to end)", a["restart_to_unsent0_s"], a["end_to_end_per_s"]),
        ("b. the link back to a running site (primary: SIGSTOP, SIGCONT):", float("nan"), None),
        ("   link back -> online", k["link_to_online_s"], None),
        ("   online -> every entry applied at the primary", k["online_to_all_applied_s"], k["entries_per_s"]),
        ("   online -> site's unsent == 0", k["online_to_unsent0_s"], n / k["online_to_unsent0_s"]),
        ("   link back -> site's unsent == 0", k["link_to_unsent0_s"], k["end_to_end_per_s"])]
    if result.get("peers"):
        rows.append(("the peers, the same entries into a fresh ledger in this process:", float("nan"), None))
    for p in result.get("peers", {}).values():
        rows.append((f"   {p['what']}", p["seconds"], p["entries_per_s"]))
    width = max(len(w) for w, _, _ in rows)
    say(f"   {'what':{width}s} {'seconds':>8s} {'entries/s':>10s}")
    for what, s, rate in rows:
        secs = "" if s != s else f"{s:8.2f}"
        say(f"   {what:{width}s} {secs:>8s} {'' if rate is None else f'{rate:10,.0f}'}".rstrip())
    c = k["cpu"]
    say(f"   b. CPU from link back to every entry applied ({c['wall_s']:.2f} s): primary {c['primary_s']:.2f} s "
        f"(+ its engine workers {c['primary_group_s'] - c['primary_s']:.2f} s), site {c['site_s']:.2f} s "
        f"(+ {c['site_group_s'] - c['site_s']:.2f} s), this benchmark {c['bench_s']:.2f} s, anything else "
        f"{max(0.0, c['other_s']):.2f} s")
    for key, label in (("primary_apply", "Primary.apply in this process"), ("apply_fn", "apply_fn alone")):
        if key in result.get("peers", {}):
            ratio = r["entries_per_s"] / result["peers"][key]["entries_per_s"]
            result["replay"][f"ratio_to_{key}"] = ratio
            say(f"   ratio b. replay into the primary / {label} = {ratio:.2f}")
    b = r["books"]
    say(f"   books: {b['users_checked']:,} balances at the primary = the model ({b['users_wrong']} wrong), "
        f"{b['primary_txns_logged']:,} transactions logged for {2 * n:,} entries, {b['unapplied']} unapplied, "
        f"site view {'=' if not b['site_view_wrong'] else '!='} primary, a batch sent again: "
        f"{b['resend']['sent'] - b['resend']['not_again']}/{b['resend']['sent']} answered again -> "
        f"{'balanced' if b['balanced'] else 'NOT balanced'}")
    met = r["entries_per_s"] >= TARGET_PER_S
    say(f"   target: >= {TARGET_PER_S:,} entries/s into the primary (b.): {r['entries_per_s']:,.0f} -> "
        f"{'met' if met else 'NOT met'} ({r['entries_per_s'] / TARGET_PER_S:.2f} of the target)")
    result["targets_met"] = {"10k_entries_per_s": met}

    d = result.get("detection")
    if d:
        say(f"\n2. Offline detection: heartbeat {d['heartbeat']:g} s, offline_after {d['offline_after']:g} s, "
            f"timeout {d['timeout']:g} s")
        say(f"   {'the primary':38s} {'round':>5s} {'offline after':>14s} {'online again after':>19s}")
        for rd in d["rounds"]:
            h, w = rd["hung"], rd["down"]
            say(f"   {'hung (SIGSTOP, then SIGCONT)':38s} {rd['round']:5d} {h['offline_after_s']:12.2f} s "
                f"{h['online_after_s']:17.2f} s")
            say(f"   {'down (SIGKILL, then started again)':38s} {rd['round']:5d} {w['offline_after_s']:12.2f} s "
                f"{w['online_after_s']:17.2f} s  ({w['online_after_primary_answers_s']:.2f} s after it answered, "
                f"{w['primary_start_s']:.2f} s to start)")
        if len(d["rounds"]) > 1:
            sm = d["summary"]
            for mode in ("hung", "down"):
                a, b = sm[f"{mode}_offline_after"], sm[f"{mode}_online_after"]
                say(f"   {mode + ', mean (min..max)':38s} {'':5s} {a['mean_s']:5.2f} "
                    f"({a['min_s']:.2f}..{a['max_s']:.2f}) {b['mean_s']:5.2f} ({b['min_s']:.2f}..{b['max_s']:.2f})")
        say(f"   configured offline_after = {d['offline_after']:g} s: offline at the first failed poll after "
            f"{d['offline_after']:g} s without an answer (polls every {d['heartbeat']:g} s; a hung one waits "
            f"up to {d['timeout']:g} s); online at the first answer")


# --------------------------------------------------------------------------- main


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description="Journal replay into the primary (entries/s) and offline detection "
                                            "of a site.")
    p.add_argument("--quick", action="store_true",
                   help="CI: 2,000 entries of 100 users, heartbeat 0.25 s, offline_after 1 s, timeout 1 s, one round")
    p.add_argument("--entries", "-n", type=int, default=None, help="offline journal entries (default 20000)")
    p.add_argument("--users", type=int, default=None, help="users the entries charge (default 1000)")
    p.add_argument("--batch", type=int, default=1000, help="the site's sync.batch (default 1000)")
    p.add_argument("--heartbeat", type=float, default=None, help="the site's sync.heartbeat (default 1)")
    p.add_argument("--offline-after", type=float, default=None, help="the site's sync.offline_after (default 5)")
    p.add_argument("--timeout", type=float, default=None, help="the site's sync.timeout (default 5)")
    p.add_argument("--rounds", type=int, default=None, help="offline detection rounds (default 3)")
    p.add_argument("--skip", default="", help="comma list of sections to leave out: peers,detection")
    p.add_argument("--seed", type=int, default=6)
    p.add_argument("--keep", action="store_true", help="keep the working directory (nodes' state and logs)")
    p.add_argument("--json", type=Path, help="write the results here")
    a = p.parse_args(argv)
    defaults = {"entries": (20_000, 2_000), "users": (1000, 100), "heartbeat": (1.0, 0.25),
                "offline_after": (5.0, 1.0), "timeout": (5.0, 1.0), "rounds": (3, 1)}
    for k, (full, small) in defaults.items():
        if getattr(a, k) is None:
            setattr(a, k, small if a.quick else full)
    if a.entries < 1 or a.users < 1 or a.rounds < 0 or not 1 <= a.batch <= 10_000:
        p.error("--entries and --users must be positive, --rounds at least 0, --batch 1..10000")
    if min(a.heartbeat, a.offline_after, a.timeout) <= 0:
        p.error("--heartbeat, --offline-after and --timeout must be positive")
    a.skip = {s.strip() for s in a.skip.split(",") if s.strip()}
    if a.skip - {"peers", "detection"}:
        p.error("--skip: a comma list of peers,detection")
    return a


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    stop_on_sigterm()  # the finally below stops the nodes
    work = Path(tempfile.mkdtemp(prefix="spoolproxy-bench-replay-"))
    started = time.time()
    load0 = os.getloadavg()
    result = new_result("replay", args, started, load0, target={"entries_per_s": TARGET_PER_S})
    errors: list[str] = []
    code = EXIT_OK
    entries = make_entries(2 * args.entries, args.users, args.seed)  # a. and b.
    credit = credit_for(entries)
    primary = Node(work, "hq", "primary")
    site: Node | None = None
    try:
        say(f"bench/replay.py: {os.cpu_count()} CPUs, load {load0[0]:.2f}; {args.entries:,} entries of "
            f"{args.users:,} users; deployment in {work}")
        primary.state.mkdir(parents=True, exist_ok=True)
        with Database(primary.db_path, sync=True, changelog=J.REPLICATED) as db:
            with phase(f"populating the primary: {args.users:,} users"):
                populate(db, args.users, credit)
            args.site_key = Sites(db).add_now(SITE)
        site = Node(work, SITE, "site", f"""
[sync]
primary = "http://127.0.0.1:{primary.port}"
key = "{args.site_key}"
heartbeat = {args.heartbeat}
offline_after = {args.offline_after}
timeout = {args.timeout}
batch = {args.batch}
""")
        try:
            result["replay"] = bench_replay(args, work, primary, site, entries, credit)
            if "detection" not in args.skip and args.rounds:
                result["detection"] = bench_detection(args, primary, site)
        except PeerFailed as e:
            print(f"bench/replay.py: {e}", file=sys.stderr)
            return EXIT_PEER
        finally:
            for node in (site, primary):
                try:
                    node.stop()
                except Exception as e:  # keep cleaning up
                    print(f"bench/replay.py: stopping {node.name}: {e}", file=sys.stderr)
        if "peers" not in args.skip:
            result["peers"] = local_peers(args, work, entries[:args.entries], credit)
            errors += [f"peer {k}: its books do not balance" for k, p in result["peers"].items() if not p["books"]]
        report(result, args)
        errors += result["replay"]["books"]["problems"]
        if errors:
            code = EXIT_WRONG
    finally:
        for proc in reversed(LIVE):
            try:
                proc.stop()
            except Exception as e:  # keep cleaning up
                print(f"bench/replay.py: stopping {proc.name}: {e}", file=sys.stderr)
        primary.close()
        if site is not None:
            site.close()
        if args.keep:
            say(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    result["settings"].pop("site_key", None)
    result["books_balanced"] = result["replay"]["books"]["balanced"] and not errors
    result["elapsed"] = time.time() - started
    result["loadavg_end"] = os.getloadavg()
    result["errors"] = errors
    cpu = result["replay"]["link"]["cpu"]
    other = max(0.0, cpu["other_s"]) / cpu["wall_s"] if cpu["wall_s"] > 0 else 0.0
    result["replay"]["link"]["other_load_cores"] = other
    if other > 0.25:
        say(f"\nnote: other work kept {other:.2f} cores busy during the replay (b.): the rates are noisy, "
            f"rerun on an idle machine")
    elif load0[0] > 0.5 * (os.cpu_count() or 1):  # (at the start: the nodes load the machine themselves)
        say(f"\nnote: the machine was busy (load {load0[0]:.1f} at the start on {os.cpu_count()} CPUs): "
            f"rates are noisy, rerun on an idle one")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2, default=str) + "\n")
        say(f"results: {args.json}")
    if errors:
        print("bench/replay.py: the books do not balance:\n  " + "\n  ".join(errors[:20]), file=sys.stderr)
    return code


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        print("bench/replay.py: interrupted", file=sys.stderr)
        sys.exit(130)
