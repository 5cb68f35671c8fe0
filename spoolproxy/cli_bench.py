"""``spoolproxy bench run|compare``: the load-testing suite's commands (spoolproxy.bench).
The suite is imported only when a bench command runs."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from .bench import DEFAULT_CACHE, DEFAULT_MIX


def add_parsers(sub: Any) -> None:
    bench = sub.add_parser("bench", help="load-test a node: printing, releasing, the books checked")
    bsub = bench.add_subparsers(dest="bench_command", metavar="ACTION")
    bench.set_defaults(func=None, parser=bench)
    sp = bsub.add_parser("run", help="run a load test against a node it starts with sink printers")
    sp.add_argument("--seconds", type=float, default=30.0, help="how long to print (default 30)")
    sp.add_argument("--jobs", type=int, default=0, help="print this many jobs instead of --seconds")
    sp.add_argument("--clients", type=int, default=8, help="concurrent IPP clients (default 8)")
    sp.add_argument("--lpd-clients", type=int, default=2, help="concurrent LPD clients (default 2)")
    sp.add_argument("--users", type=int, default=200, help="people in the population (default 200)")
    sp.add_argument("--mix", default=DEFAULT_MIX, help=f"documents and weights (default {DEFAULT_MIX})")
    sp.add_argument("--out", type=Path, default=Path("bench-results"), help="where the JSON and PNG go")
    sp.add_argument("--label", default="", help="a name for this run in the report")
    sp.add_argument("--cache", type=Path, default=DEFAULT_CACHE, help="where the documents are cached")
    sp.add_argument("--no-fsync", dest="fsync", action="store_false", help="the node without fsync")
    sp.add_argument("--printers", choices=("sinks", "ippeveprinter"), default="sinks",
                    help="sinks: built-in printers that accept as fast as the network allows (default); "
                         "ippeveprinter: one CUPS ippeveprinter per printer queue, one job at a time")
    sp.add_argument("--keep", action="store_true", help="keep the work directory (node state, logs)")
    sp.add_argument("--no-live", dest="live", action="store_false", help="no live display")
    sp.add_argument("--offline", type=float, default=0.0, metavar="SECONDS",
                    help="run the node as a site of a primary that stops answering for SECONDS mid-run; "
                         "the detection and the journal replay are timed")
    sp.add_argument("--offline-at", type=float, default=None, metavar="SECONDS",
                    help="when the primary goes away (default: a third of --seconds)")
    sp.add_argument("--compare", action="store_true",
                    help="then the same small-PDF load against cupsd and large jobs straight to the sink: ratios")
    sp.add_argument("--compare-seconds", type=float, default=10.0, help="length of each accept phase (default 10)")
    sp.add_argument("--compare-large-jobs", type=int, default=10, help="large jobs per delivery phase (default 10)")
    sp.add_argument("--compare-rounds", type=int, default=1,
                    help="rounds of each comparison phase, taking turns; the median round counts (default 1)")
    sp.set_defaults(func=cmd_run)
    from .bench.report import add_compare_parser  # light: no matplotlib, no rich at import
    add_compare_parser(bsub)


def cmd_run(args: argparse.Namespace) -> int:
    from rich.console import Console

    from .bench.errors import BenchError
    from .bench.report import summary
    from .bench.run import Options, run
    opts = Options(seconds=args.seconds, jobs=args.jobs, clients=args.clients, lpd_clients=args.lpd_clients,
                   users=args.users, mix=args.mix, out=args.out, label=args.label, cache=args.cache,
                   fsync=args.fsync, keep=args.keep, live=args.live, compare=args.compare,
                   compare_seconds=args.compare_seconds, compare_large_jobs=args.compare_large_jobs,
                   compare_rounds=args.compare_rounds,
                   offline=args.offline, offline_at=args.offline_at, printers=args.printers)
    try:
        result = run(opts)
    except BenchError as e:
        print(f"spoolproxy bench: {e}", file=sys.stderr)
        return 2
    Console(width=None if sys.stdout.isatty() else 160).print(summary(result))
    print(f"results: {result['files']['json']}  plot: {result['files']['png']}")
    return 0 if result["books"]["ok"] else 1
