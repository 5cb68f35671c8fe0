"""``spoolproxy bench run``: a load test of a real node, end to end.

It sets up, in a temporary directory: the printers (the sink printers of ``sinks``
in their own process, or with ``--printers ippeveprinter`` an ippeveprinter per
printer queue, ``eve``), a node (``spoolproxy serve``, its own process, ``fsync`` on as in
production) with direct queues to each sink, a Secure Print queue and a Find-Me
group, a population of users with cards and credit, and a device at each releasing
printer. Then it runs the load (``load``) for ``--seconds`` or ``--jobs``, with a
live display, stopping cleanly on Ctrl-C; waits for the node to deliver what it
accepted; reads back every job and the ledger and checks the books; and writes the
result as JSON and a PNG plot (``report``).

The books: every job the node acknowledged is found again and is delivered, or
ended with a reason (aborted, canceled), or still held; the printers received as
many jobs as the node completed; every completed job is charged exactly once; and each
user's balance moved by exactly what their charges add up to.
"""
from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import trio

from .. import __version__
from . import DEFAULT_CACHE, DEFAULT_MIX
from .cupsd import die_with_parent
from .documents import corpus, mix
from .errors import BenchError
from .load import HELD, Load, Tally, ipp_client, lpd_client_task, monitor, releaser
from .sinks import SinkProcess

CREDIT = 1_000_000  # minor units per user: nobody runs out during a run
PRICES = {"gray": 10, "color": 40}
STOP_GRACE = 30.0  # seconds the clients get after a Ctrl-C to finish the jobs in hand
STATE_NAMES = {3: "pending", 4: "pending-held", 5: "processing", 6: "processing-stopped", 7: "canceled",
               8: "aborted", 9: "completed"}


@dataclass
class Options:
    seconds: float = 30.0
    jobs: int = 0
    clients: int = 8
    lpd_clients: int = 2
    releasers: int = 2
    users: int = 200
    mix: str = DEFAULT_MIX
    out: Path = Path("bench-results")
    label: str = ""
    cache: Path = DEFAULT_CACHE
    fsync: bool = True
    drain: float = 120.0
    interval: float = 0.5
    keep: bool = False
    live: bool = True
    seed: int = 1
    compare: bool = False  # also measure cupsd and the sink directly (comparison.run_comparison)
    compare_seconds: float = 10.0
    compare_large_jobs: int = 10
    compare_rounds: int = 1
    offline: float = 0.0  # seconds the primary is unreachable (0: a standalone node, no offline phase)
    offline_at: float | None = None  # seconds into the run it goes away (default: a third of --seconds)
    printers: str = "sinks"  # or "ippeveprinter" (eve.EvePrinters)


PRINTER_QUEUES = ("direct", "direct-lpd", "direct-ipp", "secure", "p1", "p2")


def sink_printers(sinks: SinkProcess) -> dict[str, str]:
    """The queues' printers on the sinks: each protocol once, the releasing printers shared."""
    return {"direct": sinks.uri("socket"), "direct-lpd": sinks.uri("lpd", "q"), "direct-ipp": sinks.uri("ipp"),
            "secure": sinks.uri("socket"), "p1": sinks.uri("socket"), "p2": sinks.uri("ipp")}


@contextlib.contextmanager
def printers_for(opts: Options, work: Path) -> Iterator[tuple[Any, dict[str, str]]]:
    """The printers of ``opts.printers``: (the object with ``stats()``, queue -> URI)."""
    if opts.printers == "ippeveprinter":
        from .eve import EvePrinters
        with EvePrinters(work / "printers", PRINTER_QUEUES) as eve:
            yield eve, {q: eve.uri(q) for q in PRINTER_QUEUES}
    else:
        with SinkProcess(work / "sinks", kinds=("socket", "lpd", "ipp")) as sinks:
            yield sinks, sink_printers(sinks)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _env() -> dict[str, str]:
    """The node and its CLI run the spoolproxy this bench is (as the sinks do), not
    whatever another install puts first on the path."""
    root = str(Path(__file__).resolve().parents[2])
    return dict(os.environ, PYTHONPATH=os.pathsep.join([root, *filter(None, [os.environ.get("PYTHONPATH")])]))


def _toml(value: Any) -> str:
    return json.dumps(value) if not isinstance(value, bool) else ("true" if value else "false")


class NodeProcess:
    """``python -m spoolproxy serve`` with the bench's queues, in ``workdir``."""

    def __init__(self, workdir: Path, printers: dict[str, str], *, fsync: bool, name: str = "bench",
                 role: str = "standalone", sync: dict | None = None) -> None:
        """``printers``: the printer URI of each printer queue (PRINTER_QUEUES)."""
        self.workdir = workdir
        self.name = name
        self.ipp_port, self.lpd_port, self.web_port = _free_port(), _free_port(), _free_port()
        self.state = workdir / f"{name}-state"
        queues = {
            "direct": {"printer": printers["direct"], "default": True},
            "direct-lpd": {"printer": printers["direct-lpd"]},
            "direct-ipp": {"printer": printers["direct-ipp"]},
            "secure": {"printer": printers["secure"], "mode": "hold"},
            "p1": {"printer": printers["p1"]},
            "p2": {"printer": printers["p2"]},
            "anywhere": {"mode": "findme", "printers": ["p1", "p2"], "load_balance": True},
        }
        lines = [f'[node]\nname = "{name}"\nrole = "{role}"\nstate_dir = "{self.state}"\nfsync = {_toml(fsync)}\n'
                 'log_level = "warning"',
                 f'[ipp]\nlisten = "127.0.0.1"\nport = {self.ipp_port}',
                 f'[lpd]\nlisten = "127.0.0.1"\nport = {self.lpd_port}',
                 f'[web]\nlisten = "127.0.0.1"\nport = {self.web_port}',
                 '[ledger]\nunknown_users = "deny"']
        if sync:
            lines.append("[sync]\n" + "\n".join(f"{k} = {_toml(v)}" for k, v in sync.items()))
        for queue, q in queues.items():  # (not "name": that is the node's, for its files below)
            lines.append(f"[queues.{queue}]\n" + "\n".join(f"{k} = {_toml(v)}" for k, v in q.items())
                         + ("\nretry_initial = 0.2\nretry_max = 2" if "printer" in q else ""))
            lines.append(f"[queues.{queue}.cost]\ngray = {PRICES['gray']}\ncolor = {PRICES['color']}")
        self.config = workdir / f"{name}.toml"
        self.config.write_text("\n\n".join(lines) + "\n")
        self.log = workdir / f"{name}.log"
        self.proc: subprocess.Popen | None = None

    def start(self, timeout: float = 60) -> "NodeProcess":
        self.proc = subprocess.Popen([sys.executable, "-m", "spoolproxy", "serve", "--config", str(self.config)],
                                     stdout=self.log.open("wb"), stderr=subprocess.STDOUT, cwd=self.workdir,
                                     env=_env(), start_new_session=True, preexec_fn=die_with_parent)
        # its own session: a Ctrl-C at the terminal reaches the bench alone, which stops the
        # load and then the node in order; and the node goes when the bench is killed
        deadline = time.monotonic() + timeout
        for port in (self.ipp_port, self.lpd_port, self.web_port):
            while True:
                if self.proc.poll() is not None:
                    raise BenchError(f"the node exited ({self.proc.returncode}):\n{self.log_tail()}")
                with socket.socket() as s:
                    if s.connect_ex(("127.0.0.1", port)) == 0:
                        break
                if time.monotonic() > deadline:
                    raise BenchError(f"the node did not start within {timeout:g} s:\n{self.log_tail()}")
                time.sleep(0.05)
        return self

    def log_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def cli(self, *args: str, input: str | None = None) -> str:
        proc = subprocess.run([sys.executable, "-m", "spoolproxy", *args, "--config", str(self.config)],
                              capture_output=True, text=True, input=input, timeout=300, cwd=self.workdir,
                              env=_env())
        if proc.returncode != 0:
            raise BenchError(f"spoolproxy {' '.join(args)} failed: {proc.stderr.strip() or proc.stdout.strip()}")
        return proc.stdout

    def admin(self, path: str) -> Any:
        """GET /api/v1/admin/PATH with the node's admin token."""
        import httpx
        token = (self.state / "admin-token").read_text().strip()
        r = httpx.get(f"http://127.0.0.1:{self.web_port}/api/v1/admin/{path}", trust_env=False, timeout=30,
                      headers={"Authorization": f"Bearer {token}"})
        r.raise_for_status()
        return r.json()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGCONT)  # a primary stopped for the offline phase
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def _population(node: NodeProcess, n: int, workdir: Path) -> tuple[list[str], dict[str, str]]:
    users = [f"bench{i:05d}" for i in range(1, n + 1)]
    cards = {u: f"{0xB0000000 + i:08X}" for i, u in enumerate(users, 1)}
    csv = workdir / "users.csv"
    csv.write_text("username,restricted,card,initial_credit\n"
                   + "".join(f"{u},yes,{cards[u]},{CREDIT / 100:.2f}\n" for u in users))
    node.cli("users", "import", str(csv))
    return users, cards


def _device(node: NodeProcess, name: str, printer: str) -> str:
    out = node.cli("devices", "add", name, "--printer", printer)
    for line in out.splitlines():
        if line.strip().startswith("spd_"):
            return line.strip()
    raise BenchError(f"no device key in: {out}")


@contextlib.contextmanager
def _workdir(opts: Options) -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="spoolproxy-bench-"))
    try:
        yield path
    finally:
        if opts.keep:
            print(f"kept {path}", file=sys.stderr)
        else:
            shutil.rmtree(path, ignore_errors=True)


def run(opts: Options) -> dict:
    """One load test; returns the result (also written to opts.out)."""
    from . import report

    docs = corpus(opts.cache)
    pick = mix(docs, _weights(opts.mix))
    if opts.compare and opts.printers != "sinks":
        raise BenchError("--compare measures against the sink printers: leave --printers at sinks")
    with _workdir(opts) as work, printers_for(opts, work) as (sinks, uris), contextlib.ExitStack() as nodes:
        primary = None
        if opts.offline:  # the measured node is a site of a primary that goes away for a while
            primary = NodeProcess(work, uris, fsync=opts.fsync, name="primary", role="primary").start()
            nodes.callback(primary.stop)
            key = primary.cli("sites", "add", "site1").strip().splitlines()[-1].strip()
            users, cards = _population(primary, opts.users, work)
            node = NodeProcess(work, uris, fsync=opts.fsync, name="site1", role="site",
                               sync={"primary": f"http://127.0.0.1:{primary.web_port}", "key": key,
                                     "heartbeat": 0.5, "offline_after": 2.0, "timeout": 1.0}).start()
            nodes.callback(node.stop)
            _wait_synced(node, len(users))
        else:
            node = NodeProcess(work, uris, fsync=opts.fsync).start()
            nodes.callback(node.stop)
            users, cards = _population(node, opts.users, work)
        ledger = primary or node  # where the books are kept
        devices = {_device(node, "bench-secure", "secure"): "secure", _device(node, "bench-p1", "p1"): "p1"}
        load = Load(ipp_base=f"ipp://127.0.0.1:{node.ipp_port}/ipp/print", lpd_port=node.lpd_port,
                    web_base=f"http://127.0.0.1:{node.web_port}", docs=docs, pick_doc=pick, users=users,
                    cards=cards, devices=devices, max_jobs=opts.jobs, seed=opts.seed)
        tally = trio.run(_drive, load, opts, node, sinks, primary)  # sinks: the printers, either kind
        _drain(node, tally, opts.drain)
        if primary is not None:
            _wait_replayed(node, opts.drain)
        jobs = json.loads(node.cli("jobs", "list", "--which", "all", "--json"))
        txns = json.loads(ledger.cli("transactions", "--limit", "0", "--json"))
        balances = {u["name"]: u["balance"] for u in json.loads(ledger.cli("users", "list", "--json"))}
        stats = sinks.stats()
        extra: tuple[dict, dict] = ({}, {})
        if opts.compare:
            from .comparison import run_comparison
            extra = run_comparison(opts, node, sinks, docs, cards=cards)
    result = build_result(opts, tally, jobs, txns, balances, stats)
    if tally.offline:
        result["offline"] = tally.offline
    result["targets"].update(extra[0])
    result["ratios"].update(extra[1])
    opts.out.mkdir(parents=True, exist_ok=True)
    stem = opts.out / f"bench-{time.strftime('%Y%m%d-%H%M%S', time.localtime(tally.started))}"
    report.write_json(result, stem.with_suffix(".json"))
    report.plot_png(result, stem.with_suffix(".png"))
    result["files"] = {"json": str(stem.with_suffix(".json")), "png": str(stem.with_suffix(".png"))}
    return result


def _site_status(site: NodeProcess) -> dict:
    return site.admin("sync")


def _wait_synced(site: NodeProcess, users: int, timeout: float = 60) -> None:
    """Until the site is online with the primary's users."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if _site_status(site).get("online") and len(json.loads(site.cli("users", "list", "--json"))) >= users:
                return
        except Exception:  # not up yet
            pass
        time.sleep(0.2)
    raise BenchError(f"the site did not sync with its primary within {timeout:g} s:\n{site.log_tail()}")


def _wait_replayed(site: NodeProcess, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        st = _site_status(site)
        if st.get("online") and not st.get("unsent"):
            return
        time.sleep(0.2)


async def offline_phase(site: NodeProcess, primary: NodeProcess, tally: Tally, opts: Options) -> None:
    """At ``offline_at`` into the run, the primary stops answering (SIGSTOP: a hung or
    unreachable server, its sockets open) for ``offline`` seconds; then it answers again.
    Timed: how long the site took to notice, how many entries it journaled, how long the
    replay took once the primary was back."""
    import httpx
    token = (site.state / "admin-token").read_text().strip()
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{site.web_port}/api/v1/admin", trust_env=False,
                                 timeout=30, headers={"Authorization": f"Bearer {token}"}) as http:
        async def status() -> dict:
            return (await http.get("/sync")).json()

        await trio.sleep(opts.offline_at if opts.offline_at is not None else opts.seconds / 3)
        before = await status()
        os.kill(primary.proc.pid, signal.SIGSTOP)
        stopped = time.time()
        detected = None
        try:
            with trio.move_on_after(opts.offline):
                while (await status()).get("online"):
                    await trio.sleep(0.1)
                detected = time.time()
                await trio.sleep_forever()
        finally:  # also when the run is stopped meanwhile (Ctrl-C): the books are read from it
            os.kill(primary.proc.pid, signal.SIGCONT)
        restored = time.time()
        journaled = (await status()).get("unsent", 0)
        replayed = None
        with trio.move_on_after(opts.drain):
            while True:
                st = await status()
                if st.get("online") and not st.get("unsent"):
                    replayed = time.time()
                    break
                await trio.sleep(0.05)
        after = await status()
        tally.offline = {
            "at": round(stopped - tally.started, 3), "seconds": round(restored - stopped, 3),
            "detected_after": round(detected - stopped, 3) if detected else None,
            "entries": journaled, "journal_growth": after.get("journal", 0) - before.get("journal", 0),
            "replay_seconds": round(replayed - restored, 3) if replayed else None,
            "replay_per_s": round(journaled / (replayed - restored), 1) if replayed and replayed > restored else None,
            # what happened, apart from how long it took
            "went_offline": detected is not None, "replayed": replayed is not None,  # unsent reached 0
        }


def _weights(text: str) -> dict[str, float]:
    out = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        name, _, w = part.partition("=")
        try:
            out[name.strip()] = float(w or 1)
        except ValueError:
            raise BenchError(f"--mix: {part!r} is not NAME=WEIGHT") from None
    return out


async def _drive(load: Load, opts: Options, node: NodeProcess, sinks: Any,
                 primary: NodeProcess | None = None) -> Tally:
    tally = Tally()
    delivered = lambda: sum(s.get("jobs", 0) for s in sinks.stats().values())  # noqa: E731
    live = _Live(opts, tally) if opts.live else None
    interrupted = trio.Event()  # Ctrl-C
    workers_scope = trio.CancelScope()
    async with trio.open_nursery() as outer:
        async def stop_on_sigint() -> None:
            with trio.open_signal_receiver(signal.SIGINT) as signals:
                async for _ in signals:
                    if interrupted.is_set():  # a second Ctrl-C: stop the clients at once
                        workers_scope.cancel()
                        continue
                    interrupted.set()
                    tally.interrupted = True
                    tally.stop.set()  # each client finishes the job in hand, then stops: what the
                    # node acknowledged is then in the tally (and a Create-Job gets its document)
                    workers_scope.deadline = min(workers_scope.deadline, trio.current_time() + STOP_GRACE)

        outer.start_soon(stop_on_sigint)
        outer.start_soon(monitor, tally, node.proc.pid, delivered, opts.interval,
                         live.update if live else None)
        for i, key in enumerate(load.devices):  # they release until the end, also after the printing
            outer.start_soon(releaser, load, tally, key, i)
        if primary is not None:
            outer.start_soon(offline_phase, node, primary, tally, opts)
        async with trio.open_nursery() as nursery:
            async def timer() -> None:
                if not opts.jobs:
                    await trio.sleep(opts.seconds)
                    tally.stop.set()

            nursery.start_soon(timer)
            with workers_scope:
                async with trio.open_nursery() as workers:
                    for i in range(opts.clients):
                        workers.start_soon(ipp_client, load, tally, i)
                    for i in range(opts.lpd_clients):
                        workers.start_soon(lpd_client_task, load, tally, i)
            tally.stop.set()
            nursery.cancel_scope.cancel()
        tally.duration = time.time() - tally.started
        with trio.move_on_after(opts.drain):  # what is held gets released; an offline phase ends
            while not interrupted.is_set() and (any(tally.held.values()) or tally.releasing
                                                or (primary is not None and tally.offline is None)):
                await trio.sleep(0.1)
        outer.cancel_scope.cancel()  # (after a Ctrl-C what is held stays held: the books say so)
    if live is not None:
        live.close()
    return tally


class _Live:
    """The live display: elapsed, accepted, delivered, errors, rates."""

    def __init__(self, opts: Options, tally: Tally) -> None:
        from rich.live import Live
        self.tally, self.opts = tally, opts
        self.live = Live(self._render(None), refresh_per_second=4, transient=False)
        self.live.start()

    def _render(self, sample: dict | None) -> Any:
        from rich.table import Table
        t = Table.grid(padding=(0, 2))
        elapsed = time.time() - self.tally.started
        total = f" / {self.opts.jobs} jobs" if self.opts.jobs else f" / {self.opts.seconds:g} s"
        delivered = sum(s["delivered"] for s in self.tally.samples)
        t.add_row(f"[bold]spoolproxy bench[/] {elapsed:5.1f} s{total}",
                  f"accepted {len(self.tally.jobs)}", f"delivered {delivered}",
                  f"errors {sum(self.tally.errors.values())}")
        if sample is not None:
            span = self.opts.interval
            t.add_row("", f"{sample['accepted'] / span:7.1f} jobs/s in", f"{sample['delivered'] / span:7.1f} jobs/s out",
                      f"node CPU {sample['cpu_percent']:.0f}%  RSS {(sample['rss_bytes'] or 0) / 2**20:.0f} MiB")
        return t

    def update(self, sample: dict) -> None:
        self.live.update(self._render(sample))

    def close(self) -> None:
        self.live.stop()


def _drain(node: NodeProcess, tally: Tally, limit: float) -> None:
    """Wait until the node has finished every job it accepted (held ones excepted)."""
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        jobs = json.loads(node.cli("jobs", "list", "--which", "not-completed", "--json"))
        if all(j["state"] == 4 for j in jobs):  # only pending-held left
            return
        time.sleep(0.5)


def build_result(opts: Options, tally: Tally, jobs: list[dict], txns: list[dict], balances: dict[str, int],
                 sinks: dict[str, dict]) -> dict:
    from .report import new_summary

    by_id = {j["id"]: j for j in jobs}
    by_name = {j["name"]: j for j in jobs if j.get("name", "").startswith("bench-lpd-")}
    problems: list[str] = []
    deliver_ms, release_ms, analyse_ms, admit_ms, charge_ms = [], [], [], [], []
    completed = released = 0
    ended: dict[str, int] = {}  # final state (and reason) of the accepted jobs that were not delivered
    for s in tally.jobs:
        rec = by_id.get(s.job_id) if s.job_id else by_name.get(s.name)
        if rec is None:
            problems.append(f"{s.via} job {s.job_id or s.name} was acknowledged but the node has no record of it")
            continue
        s.job_id = rec["id"]
        extra = rec.get("extra") or {}
        stages = extra.get("stages") or {}
        if "analysed" in stages:
            analyse_ms.append((stages["analysed"] - rec["created"]) * 1000)
        if "admit_ms" in stages:
            admit_ms.append(stages["admit_ms"])
        if "charge_ms" in stages:
            charge_ms.append(stages["charge_ms"])
        # released: what the node recorded, not what the releaser saw answered (a release
        # whose answer was lost to an HTTP error still released the job)
        release_at = (extra.get("release") or {}).get("at")
        released += release_at is not None
        if rec["state"] == 9:
            completed += 1
            if rec.get("completed"):
                if release_at is not None:
                    release_ms.append((rec["completed"] - release_at) * 1000)
                elif s.queue not in HELD:
                    deliver_ms.append((rec["completed"] - rec["created"]) * 1000)
        else:
            why = f"{STATE_NAMES.get(rec['state'], rec['state'])}: {', '.join(rec.get('state_reasons') or [])}"
            ended[why] = ended.get(why, 0) + 1
        if rec["state"] in (7, 8):
            if not rec.get("state_reasons"):
                problems.append(f"job {rec['id']} ended {rec['state']} without a reason")
        elif rec["state"] not in (4, 9):
            problems.append(f"job {rec['id']} is still in state {rec['state']} after the drain")
    received = sum(v.get("jobs", 0) for v in sinks.values())
    if received != completed:
        problems.append(f"the printers received {received} jobs, the node completed {completed}")
    charges: dict[int, int] = {}
    per_user: dict[str, int] = {}
    for t in txns:
        if t["kind"] == "print":
            charges[t["job"]] = charges.get(t["job"], 0) + 1
        if t["kind"] in ("print", "refund"):
            user = t["account"].split(":", 1)[1] if ":" in t["account"] else t["account"]
            per_user[user] = per_user.get(user, 0) + t["amount"]
    for s in tally.jobs:
        rec = by_id.get(s.job_id)
        if rec is not None and rec["state"] == 9 and charges.get(rec["id"], 0) != 1:
            problems.append(f"completed job {rec['id']} has {charges.get(rec['id'], 0)} charges")
    moved = 0
    for user, balance in balances.items():
        if not user.startswith("bench"):
            continue
        change = balance - CREDIT
        moved += change
        if change != per_user.get(user, 0):
            problems.append(f"{user}: balance moved {change}, transactions add up to {per_user.get(user, 0)}")
    duration = tally.duration or (time.time() - tally.started)
    # delivery may go on after the printing stopped: its rate is over the time until the last job out
    last_out = max((v.get("last") or 0 for v in sinks.values()), default=0)
    delivering = max(duration, last_out - tally.started) if last_out else duration
    accepted_bytes = sum(s.size for s in tally.jobs)
    target = {
        "totals": {"submitted": len(tally.jobs) + sum(tally.errors.values()), "accepted": len(tally.jobs),
                   "delivered": completed, "released": released,
                   "errors": dict(tally.errors),
                   "by_protocol": {via: sum(1 for s in tally.jobs if s.via == via) for via in ("ipp", "lpd")},
                   "held": sum(1 for s in tally.jobs if s.queue in HELD), "not_delivered": ended},
        "rates": {"accepted_per_s": len(tally.jobs) / duration if duration else 0.0,
                  "delivered_per_s": completed / delivering if delivering else 0.0,
                  "delivered_bytes_per_s": sum(v.get("bytes", 0) for v in sinks.values()) / delivering
                  if delivering else 0.0,
                  "accepted_bytes": accepted_bytes},
        # accept and release_request as the clients saw them; the others from the node's records:
        # analyse (arrival to counted), admit (filters, cost, credit check), charge (the durable
        # debit), deliver (arrival to printed, direct queues), release (released to printed)
        "latency_ms": {"accept": new_summary([(s.accepted - s.sent) * 1000 for s in tally.jobs]),
                       "analyse": new_summary(analyse_ms), "admit": new_summary(admit_ms),
                       "charge": new_summary(charge_ms),
                       "deliver": new_summary(deliver_ms), "release": new_summary(release_ms),
                       "release_request": new_summary(tally.release_ms)},
        "timeline": tally.samples,
        "node": {"cpu_seconds": None, "peak_rss_bytes": max((s["rss_bytes"] or 0 for s in tally.samples),
                                                            default=None)},
    }
    cpu = [s["cpu_percent"] for s in tally.samples if s["cpu_percent"] is not None]
    if cpu:
        target["node"]["cpu_seconds"] = round(sum(cpu) / 100 * opts.interval, 2)
    return {
        "version": 1, "kind": "spoolproxy-bench", "started": tally.started, "duration": duration,
        "label": opts.label, "interrupted": tally.interrupted,
        "config": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(opts).items()},
        "machine": {"cpus": os.cpu_count(), "python": sys.version.split()[0], "spoolproxy": __version__,
                    "hostname": socket.gethostname()},
        "targets": {"spoolproxy": target},
        "ratios": {},
        "books": {"ok": not problems, "checked_jobs": len(tally.jobs), "problems": problems[:50],
                  "charged_total": -sum(per_user.values()), "balance_change": moved},
    }
