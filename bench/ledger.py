#!/usr/bin/env python3
"""The ledger (issue 4): the credit check's latency and the rate of durable charges.

    python3 bench/ledger.py [--quick] [--json FILE] [--users 100000] [--accounts 100000]
                            [--checks 1000000] [--concurrency 256,1024] [--seconds 10]
                            [--single-seconds 5]                      (--help for the rest)

1. **Credit check.** A ledger of ``--users`` users and ``--accounts`` shared accounts
   (written in one commit of prepared records: no password hashing), one LMDB
   environment as the node opens it, the garbage collector set as a node sets it once
   it has loaded its state (spoolproxy.collector; ``--no-gc`` turns it off for the
   checks), the decision made by the compiled twin when it is built.
   ``Ledger.check(account, cost)`` on ``--checks`` accounts drawn at random (half
   personal, half shared), each call timed on its own
   with ``time.perf_counter_ns``; p50 / p99 / p99.9 in microseconds. The floor, timed
   the same way in the same run on the same keys: a plain Python ``dict.get``. Also
   shown for the breakdown: the table reader alone (one LMDB read transaction, one
   get, one msgpack unpack) and the timer alone. Checks per second on one core are an
   untimed loop over the same keys. Targets: p99 under 5 us; at least 200,000 checks/s.
2. **Durable charges.** The same environment opened with ``sync=True`` (each commit is
   fsynced), the writer task (``Database.run``) running, ``--concurrency`` trio tasks
   (one run per number in the list; the best run is the ledger's capacity) each applying
   job charges (``Ledger.apply(..., "print", require_funds=True)`` under the id the
   node charges a job with: ``ledger.charge.charge_id`` of a fresh job uuid) to random
   enabled accounts for ``--seconds`` (or
   ``--charges`` in all): charges per second, commits (``db.stats``) and the average
   group (charges per commit), and the latency of one charge. The peer: the same with
   one task (every charge its own commit, no grouping) for ``--single-seconds``; the
   ratio of the two. Target: 10,000 durable charges/s with grouped commits.

Output: a table per section with the targets and "met / NOT met"; ``--json FILE`` writes
every number. Benchmarks report, tests assert: exit 0 when it ran, whatever the numbers;
1 when the ledger gave a wrong answer (a check or a charge that disagrees with what was
written), so that the numbers would mean nothing.
"""
from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import random
import shutil
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Callable

import trio

REPO = Path(__file__).resolve().parents[1]
for _p in (str(REPO), str(REPO / "bench")):
    if _p not in sys.path:
        sys.path.insert(0, _p)

from _report import phase, say  # noqa: E402
from spoolproxy import _twins  # noqa: E402
from spoolproxy.collector import settled  # noqa: E402
from spoolproxy.uuids import uuid7  # noqa: E402
from spoolproxy.db import Database  # noqa: E402
from spoolproxy.ledger.charge import charge_id  # noqa: E402
from spoolproxy.ledger.store import _credit  # noqa: E402  (the decision's twin in use)
from spoolproxy.ledger import (Account, Balance, InsufficientCredit, Ledger, LedgerError, User,  # noqa: E402
                               personal, shared)

EXIT_OK, EXIT_WRONG = 0, 1
TARGET_P99_US = 5.0
TARGET_CHECKS_PER_S = 200_000
TARGET_CHARGES_PER_S = 10_000
COST = 150  # the job the credit check is asked about (minor units)





def gc_setting() -> str:
    if not gc.isenabled():
        return "off"
    return "as a node runs it: loaded state frozen, thresholds " + "/".join(map(str, gc.get_threshold()))


def percentiles(ns: list[int]) -> dict[str, float]:
    """p50 / p99 / p99.9 / max / mean of nanosecond samples, in microseconds."""
    s = sorted(ns)
    n = len(s)

    def at(q: float) -> float:
        return s[min(n - 1, int(q * n))] / 1000

    return {"p50_us": at(0.50), "p99_us": at(0.99), "p999_us": at(0.999), "max_us": s[-1] / 1000,
            "mean_us": sum(s) / n / 1000, "samples": n}


# --------------------------------------------------------------------------- the ledger


def populate(db: Database, users: int, accounts: int, seed: int) -> dict[str, Any]:
    """Users and shared accounts as the ledger writes them (records and balances), in one
    commit of prepared records; about 1 in 5 unrestricted, 1 in 100 disabled."""
    rnd = random.Random(seed)
    now = time.time()
    ops: list[tuple[str, bytes, Any]] = []
    for i in range(users):
        restricted, disabled = rnd.random() < 0.8, rnd.random() < 0.01
        overdraft = rnd.choice((0, 0, 0, 500))
        u = User(f"u{i:07d}", full_name=f"User {i}", email=f"u{i}@example.org", groups=[f"g{i % 50}"],
                 restricted=restricted, overdraft=overdraft, cards=[f"{1000000 + i}"],
                 identity=f"S{i:07d}", disabled=disabled, created=now, updated=now)
        ops.append(("users", u.name.encode(), u.to_record()))
        ops.append(("cards", u.cards[0].encode(), u.name))
        ops.append(("idents", u.identity.encode(), u.name))
        ops.append(("balances", personal(u.name).encode(),
                    Balance(rnd.randrange(-200, 20_000), overdraft, restricted, disabled).to_record()))
    for i in range(accounts):
        restricted, disabled = rnd.random() < 0.8, rnd.random() < 0.01
        overdraft = rnd.choice((0, 0, 1000))
        a = Account(f"a{i:07d}", code=f"C{i:07d}", users=[f"u{(i * 7) % max(users, 1):07d}"],
                    groups=[f"g{i % 50}"], restricted=restricted, overdraft=overdraft, disabled=disabled,
                    created=now, updated=now)
        ops.append(("accounts", a.name.encode(), a.to_record()))
        ops.append(("account_codes", a.code.encode(), a.name))
        ops.append(("balances", shared(a.name).encode(),
                    Balance(rnd.randrange(0, 200_000), overdraft, restricted, disabled).to_record()))
    t0 = time.perf_counter()
    db.write_now(ops)
    return {"users": users, "accounts": accounts, "records": len(ops), "seconds": time.perf_counter() - t0}


def account_names(users: int, accounts: int) -> list[str]:
    return [personal(f"u{i:07d}") for i in range(users)] + [shared(f"a{i:07d}") for i in range(accounts)]


# --------------------------------------------------------------------------- 1. credit check


def timed_each(fn: Callable[..., Any], keys: list[Any], cost: int | None = None) -> list[int]:
    """Every call, ``fn(key)`` or ``fn(key, cost)``, timed on its own (perf_counter_ns
    around the call only; no wrapper in between)."""
    clock = time.perf_counter_ns
    out = [0] * len(keys)
    if cost is None:
        for i, k in enumerate(keys):
            t0 = clock()
            fn(k)
            out[i] = clock() - t0
    else:
        for i, k in enumerate(keys):
            t0 = clock()
            fn(k, cost)
            out[i] = clock() - t0
    return out


def loop_rate(fn: Callable[..., Any], keys: list[Any], cost: int | None = None) -> float:
    """Calls per second of an untimed loop (one core)."""
    t0 = time.perf_counter()
    if cost is None:
        for k in keys:
            fn(k)
    else:
        for k in keys:
            fn(k, cost)
    return len(keys) / (time.perf_counter() - t0)


def bench_check(db: Database, names: list[str], args: argparse.Namespace) -> dict[str, Any]:
    ledger = Ledger(db)
    rnd = random.Random(args.seed + 1)
    users, accounts = args.users, args.accounts
    keys = [personal(f"u{rnd.randrange(users):07d}") if rnd.random() < 0.5 or not accounts
            else shared(f"a{rnd.randrange(accounts):07d}") for _ in range(args.checks)]
    keys_b = [k.encode() for k in keys]
    floor = {name: (name, COST) for name in names}  # the same keys, a plain dict
    reader = db.reader("balances")
    check = ledger.check

    def noop(k: Any) -> None:
        return None

    wrong: list[str] = []
    with phase(f"credit check: warming up on {len(keys):,} keys"):
        for k in keys:  # fault every page in once, as a running node would have
            check(k, COST)
        sample = rnd.sample(names, min(2000, len(names)))
        for name in sample:  # and check the answers against the records
            b = ledger.balance(name)
            c = check(name, COST)
            want = b is not None and not b.disabled and (not b.restricted or COST <= b.available)
            if c.ok != want or (b is not None and c.balance != b.balance):
                wrong.append(f"check({name!r}, {COST}) = {c} but the balance is {b}")
    rows: dict[str, dict[str, Any]] = {}
    with phase(f"credit check: {len(keys):,} checks, each timed"):
        # interleaved in slices, so that a burst of other load hits every row alike
        parts: dict[str, list[int]] = {"dict": [], "reader": [], "check": [], "timer": []}
        step = max(1, len(keys) // 10)
        for lo in range(0, len(keys), step):
            sl, slb = keys[lo:lo + step], keys_b[lo:lo + step]
            parts["dict"] += timed_each(floor.get, sl)
            parts["reader"] += timed_each(reader, slb)
            parts["check"] += timed_each(check, sl, COST)
            parts["timer"] += timed_each(noop, sl)
        rates = {"dict": loop_rate(floor.get, keys), "reader": loop_rate(reader, keys_b),
                 "check": loop_rate(check, keys, COST), "timer": loop_rate(noop, keys)}
    labels = {"dict": "dict.get, same keys (the floor)",
              "reader": "balances reader (LMDB read txn + get + unpack)",
              "check": f"Ledger.check(account, cost) [{_twins.implementation(_credit)}]",
              "timer": "timer + an empty Python call"}
    for name in ("dict", "reader", "check", "timer"):
        rows[name] = {"what": labels[name], **percentiles(parts[name]), "per_s": rates[name]}
    c = rows["check"]
    met = {"p99_under_5us": c["p99_us"] < TARGET_P99_US, "200k_checks_per_s": c["per_s"] >= TARGET_CHECKS_PER_S}
    say(f"\n1. Credit check: {args.users:,} users + {args.accounts:,} shared accounts, {len(keys):,} random "
        f"accounts, each call timed with perf_counter_ns (gc {gc_setting()})")
    say(f"   {'what':48s} {'p50 us':>8s} {'p99 us':>8s} {'p99.9 us':>9s} {'mean us':>8s} {'max us':>9s} "
        f"{'per s, untimed':>15s}")
    for r in rows.values():
        say(f"   {r['what']:48s} {r['p50_us']:8.2f} {r['p99_us']:8.2f} {r['p999_us']:9.2f} {r['mean_us']:8.2f} "
            f"{r['max_us']:9.1f} {r['per_s']:15,.0f}")
    over = c["p99_us"] / rows["dict"]["p99_us"] if rows["dict"]["p99_us"] else float("nan")
    say(f"   check / dict floor at p99 = {over:.1f}x")
    say(f"   target: p99 < {TARGET_P99_US:.0f} us: {c['p99_us']:.2f} us -> "
        f"{'met' if met['p99_under_5us'] else 'NOT met'}; >= {TARGET_CHECKS_PER_S:,} checks/s on one core: "
        f"{c['per_s']:,.0f} -> {'met' if met['200k_checks_per_s'] else 'NOT met'}")
    return {"checks": len(keys), "cost": COST, "gc_enabled": gc.isenabled(), "gc": gc_setting(), "rows": rows,
            "check_over_dict_p99": over, "targets_met": met, "wrong": wrong}


# --------------------------------------------------------------------------- 2. durable charges


async def charge_run(db: Database, ledger: Ledger, targets: list[str], *, tasks: int, seconds: float,
                     charges: int, seed: int) -> dict[str, Any]:
    """``tasks`` concurrent chargers through the writer task until ``seconds`` pass or
    ``charges`` were made (0: no count limit)."""
    before = (db.stats.commits, db.stats.requests)
    latencies: list[int] = []
    counts = {"applied": 0, "refused": 0, "replayed": 0}
    errors: list[str] = []
    clock = time.perf_counter_ns
    limit = charges or 1 << 62
    issued = 0

    async def charger(n: int) -> None:
        nonlocal issued
        rnd = random.Random(seed * 1000 + n)
        i = 0
        while trio.current_time() < deadline and issued < limit:
            issued += 1
            i += 1
            account = targets[rnd.randrange(len(targets))]
            t0 = clock()
            try:
                # the id the node charges a job under: derived from the job's (time-ordered) uuid
                txn_id = charge_id(SimpleNamespace(uuid=f"urn:uuid:{uuid7()}"), {})
                applied = await ledger.apply(txn_id, account, -rnd.randrange(1, 60), "print",
                                             job=i, by="bench", require_funds=True)
            except InsufficientCredit:
                counts["refused"] += 1
            except LedgerError as e:
                errors.append(f"{account}: {e}")
            else:
                counts["applied" if applied.new else "replayed"] += 1
            latencies.append(clock() - t0)

    async with trio.open_nursery() as outer:
        await outer.start(db.run)
        deadline = trio.current_time() + seconds
        t0 = time.perf_counter()
        async with trio.open_nursery() as n:
            for k in range(tasks):
                n.start_soon(charger, k)
        elapsed = time.perf_counter() - t0
        outer.cancel_scope.cancel()
    commits = db.stats.commits - before[0]
    requests = db.stats.requests - before[1]
    done = counts["applied"] + counts["refused"]
    lat = percentiles(latencies) if latencies else {}
    return {"tasks": tasks, "seconds": elapsed, **counts, "errors": errors[:20], "error_count": len(errors),
            "charges_per_s": counts["applied"] / elapsed if elapsed else 0.0,
            "decisions_per_s": done / elapsed if elapsed else 0.0,
            "commits": commits, "requests": requests, "avg_group": requests / commits if commits else 0.0,
            "commits_per_s": commits / elapsed if elapsed else 0.0,
            "latency_ms": {k.replace("_us", "_ms"): (v / 1000 if k != "samples" else v) for k, v in lat.items()}}


def bench_charges(db: Database, args: argparse.Namespace) -> dict[str, Any]:
    ledger = Ledger(db)
    rnd = random.Random(args.seed + 2)
    # enabled accounts only (a disabled one would refuse every charge); restricted ones may
    # run dry, which is counted as refused: a decision committed nowhere
    pool = rnd.sample(account_names(args.users, args.accounts), min(20_000, args.users + args.accounts))
    targets = [a for a in pool if (b := ledger.balance(a)) is not None and not b.disabled]
    txns_before = db.count("txns")
    results = {}
    runs = []
    for tasks in args.concurrency:
        with phase(f"durable charges: {tasks} tasks for {args.seconds:g} s"):
            runs.append(trio.run(lambda: charge_run(db, ledger, targets, tasks=tasks, seconds=args.seconds,
                                                    charges=args.charges,
                                                    seed=args.seed)))
    # the ledger's capacity is its rate at the concurrency that fills its commits best
    results["grouped"] = max(runs, key=lambda r: r["charges_per_s"])
    with phase(f"durable charges: one task for {args.single_seconds:g} s"):
        results["single"] = trio.run(lambda: charge_run(db, ledger, targets, tasks=1,
                                                        seconds=args.single_seconds,
                                                        charges=args.single_charges,
                                                        seed=args.seed))
    g, s = results["grouped"], results["single"]
    ratio = g["charges_per_s"] / s["charges_per_s"] if s["charges_per_s"] else float("nan")
    logged = db.count("txns") - txns_before
    wrong = []
    applied = sum(r["applied"] for r in runs) + s["applied"]
    if logged != applied:
        wrong.append(f"{applied} charges applied but {logged} transactions logged")
    if any(r["replayed"] for r in runs) or s["replayed"]:
        wrong.append("a fresh transaction id was reported as already applied")
    wrong += [f"charge failed: {e}" for r in (*runs, s) for e in r["errors"]]
    met = {"10k_charges_per_s": g["charges_per_s"] >= TARGET_CHARGES_PER_S}
    say(f"\n2. Durable charges: Ledger.apply(..., 'print', require_funds=True), ids as the node makes them, random accounts "
        f"of {len(targets):,}; sync=True (each commit fsynced)")
    say(f"   {'mode':28s} {'tasks':>5s} {'seconds':>7s} {'charges':>8s} {'refused':>7s} {'charges/s':>10s} "
        f"{'commits':>8s} {'avg group':>9s} {'p50 ms':>7s} {'p99 ms':>7s}")
    for label, r in [*(("grouped (writer task)", r) for r in runs), ("one task (no grouping)", s)]:
        lat = r["latency_ms"]
        say(f"   {label:28s} {r['tasks']:5d} {r['seconds']:7.2f} {r['applied']:8d} {r['refused']:7d} "
            f"{r['charges_per_s']:10,.0f} {r['commits']:8d} {r['avg_group']:9.1f} "
            f"{lat.get('p50_ms', 0):7.2f} {lat.get('p99_ms', 0):7.2f}")
    say(f"   ratio best grouped ({g['tasks']} tasks) / one task = {ratio:.1f}x")
    say(f"   target: >= {TARGET_CHARGES_PER_S:,} durable charges/s: {g['charges_per_s']:,.0f} -> "
        f"{'met' if met['10k_charges_per_s'] else 'NOT met'}")
    return {"accounts_charged": len(targets), "grouped": g, "grouped_runs": runs, "single": s, "ratio": ratio,
            "logged": logged,
            "targets_met": met, "wrong": wrong}


# --------------------------------------------------------------------------- main


def _counts(text: str) -> list[int]:
    try:
        counts = [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a comma list of numbers") from None
    if not counts:
        raise argparse.ArgumentTypeError("give at least one number")
    return counts


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description="Ledger benchmark: credit check latency and durable charges per "
                                            "second with grouped commits.")
    p.add_argument("--quick", action="store_true",
                   help="CI: 10,000 users and accounts, 100,000 checks, 2 s + 1 s of charges")
    p.add_argument("--users", type=int, default=None, help="users in the ledger (default 100000)")
    p.add_argument("--accounts", type=int, default=None, help="shared accounts (default 100000)")
    p.add_argument("--checks", type=int, default=None, help="credit checks timed (default 1000000)")
    p.add_argument("--concurrency", "-c", type=_counts, default=[256, 1024],
                   help="concurrent charging tasks through the writer, one grouped run each "
                        "(comma list; default 256,1024): the best is the ledger's capacity")
    p.add_argument("--seconds", type=float, default=None, help="grouped charging time (default 10)")
    p.add_argument("--single-seconds", type=float, default=None, help="one-task charging time (default 5)")
    p.add_argument("--charges", type=int, default=0, help="stop the grouped run after this many charges")
    p.add_argument("--single-charges", type=int, default=0, help="stop the one-task run after this many")
    p.add_argument("--skip", default="", help="comma list of sections to leave out: check,charges")
    p.add_argument("--no-gc", action="store_true", help="time the checks with the garbage collector off")
    p.add_argument("--seed", type=int, default=4)
    p.add_argument("--workdir", type=Path, help="put the database here (default: a temporary directory)")
    p.add_argument("--keep", action="store_true", help="keep the database")
    p.add_argument("--json", type=Path, help="write the results here")
    a = p.parse_args(argv)
    defaults = {"users": (100_000, 10_000), "accounts": (100_000, 10_000), "checks": (1_000_000, 100_000),
                "seconds": (10.0, 2.0), "single_seconds": (5.0, 1.0)}
    for k, (full, small) in defaults.items():
        if getattr(a, k) is None:
            setattr(a, k, small if a.quick else full)
    if a.users < 1 or a.accounts < 0 or a.checks < 1 or min(a.concurrency) < 1 or a.seconds <= 0 \
            or a.single_seconds <= 0:
        p.error("--users, --checks, --concurrency and the times must be positive")
    a.skip = {s.strip() for s in a.skip.split(",") if s.strip()}
    if a.skip - {"check", "charges"}:
        p.error("--skip: a comma list of check,charges")
    return a


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    work = args.workdir or Path(tempfile.mkdtemp(prefix="spoolproxy-bench-ledger-"))
    started = time.time()
    result: dict[str, Any] = {
        "benchmark": "ledger", "started": started,
        "machine": {"cpus": os.cpu_count(), "loadavg_start": os.getloadavg(), "python": platform.python_version(),
                    "platform": platform.platform()},
        "settings": {k: (sorted(v) if isinstance(v, set) else str(v) if isinstance(v, Path) else v)
                     for k, v in vars(args).items()},
        "targets": {"check_p99_us": TARGET_P99_US, "checks_per_s": TARGET_CHECKS_PER_S,
                    "charges_per_s": TARGET_CHARGES_PER_S},
    }
    wrong: list[str] = []
    gc_was = gc.isenabled()
    try:
        import lmdb
        import msgpack
        result["versions"] = {"lmdb": lmdb.__version__, "liblmdb": ".".join(map(str, lmdb.version())),
                              "msgpack": ".".join(map(str, msgpack.version)), "trio": trio.__version__}
        say(f"bench/ledger.py: {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.2f}; database in {work}")
        with Database(work / "db", sync=True) as db:
            with phase(f"populating {args.users:,} users and {args.accounts:,} shared accounts"):
                result["populate"] = populate(db, args.users, args.accounts, args.seed)
            say(f"populated: {result['populate']['records']:,} records in one commit, "
                f"{result['populate']['seconds']:.1f} s")
            names = account_names(args.users, args.accounts)
            with settled():  # the collector as a node runs it once it has loaded its state
                if "check" not in args.skip:
                    if args.no_gc:
                        gc.disable()
                    try:
                        result["credit_check"] = bench_check(db, names, args)
                    finally:
                        if gc_was:
                            gc.enable()
                    wrong += result["credit_check"]["wrong"]
                if "charges" not in args.skip:
                    result["charges"] = bench_charges(db, args)
                    wrong += result["charges"]["wrong"]
            result["db_stats"] = vars(db.stats)
            result["db_bytes"] = (work / "db" / "data.mdb").stat().st_size
    finally:
        if not args.keep and args.workdir is None:
            shutil.rmtree(work, ignore_errors=True)
        elif args.keep:
            say(f"kept {work}")
    result["elapsed"] = time.time() - started
    result["loadavg_end"] = os.getloadavg()
    result["errors"] = wrong
    if max(result["machine"]["loadavg_start"][0], result["loadavg_end"][0]) > 0.5 * (os.cpu_count() or 1):
        say(f"\nnote: the machine was busy (load {result['machine']['loadavg_start'][0]:.1f} -> "
            f"{result['loadavg_end'][0]:.1f} on {os.cpu_count()} CPUs): rates are noisy, rerun on an idle one")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2, default=str) + "\n")
        say(f"results: {args.json}")
    if wrong:
        print("bench/ledger.py: the ledger gave wrong answers:\n  " + "\n  ".join(wrong[:20]), file=sys.stderr)
        return EXIT_WRONG
    return EXIT_OK


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        print("bench/ledger.py: interrupted", file=sys.stderr)
        sys.exit(130)
