"""The report of a ``spoolproxy bench`` run: one JSON result, and what is made of it.

A load-test run produces one JSON-serialisable dict (``kind`` "spoolproxy-bench",
``version`` 1): what ran (label, config, machine), and per measured system ("target":
"spoolproxy" always, "cupsd" and "sink" in comparison mode) the totals, the rates, the
latency summaries per stage, a timeline of intervals and the node's CPU and memory; then
the ratios between targets and the check of the books (every job charged once).

This module writes and reads that result (``write_json``, ``load``), summarises latency
samples (``new_summary``), draws it (``plot_png``), renders it as rich tables
(``summary``, and ``compare`` for two runs side by side) and implements
``spoolproxy bench compare A.json B.json [--json]``.

Timeline entries count what happened in one interval; ``t`` is the end of the interval
in seconds since the load started (the first interval starts at 0).

Nothing here needs trio; matplotlib is imported only by ``plot_png``.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import secrets
import sys
import time
from pathlib import Path
from typing import Any, Callable, Sequence

KIND = "spoolproxy-bench"
VERSION = 1
STAGES = ("accept", "deliver", "release")  # the usual order; other stages follow, sorted
INSIDE_STAGES = ("analyse", "admit", "charge")  # timed by the node itself (job.extra["stages"])
PERCENTILES = (50, 90, 99)

EXIT_OK, EXIT_USAGE = 0, 2
MB, MIB = 1e6, 1024 * 1024


class ReportError(ValueError):
    """A file is not a result this version of spoolproxy reads; the message says why."""


# -- latency summaries -------------------------------------------------------------------


def new_summary(samples: Sequence[float]) -> dict[str, Any]:
    """``{"n", "p50", "p90", "p99", "max"}`` of ``samples`` with nearest-rank percentiles:
    pP is the smallest sample with at least P% of the samples at or below it (the sample
    of rank ceil(P/100 * n)), so every value is one of the samples. No samples: n is 0 and
    the others None. NaN is refused (it has no rank)."""
    values = sorted(float(s) for s in samples)
    if any(math.isnan(v) for v in values):
        raise ValueError("latency samples must not be NaN")
    n = len(values)
    if n == 0:
        return {"n": 0, **{f"p{p}": None for p in PERCENTILES}, "max": None}
    # integer ceil(p * n / 100): exact, no float rounding at the rank boundaries
    return {"n": n, **{f"p{p}": values[max(1, -(-p * n // 100)) - 1] for p in PERCENTILES},
            "max": values[-1]}


# -- file --------------------------------------------------------------------------------


def write_json(result: dict[str, Any], path: str | os.PathLike[str]) -> None:
    """Write ``result`` to ``path`` atomically: a reader sees the old file or the whole
    new one, never a part (temporary file in the same directory, then os.replace)."""
    path = Path(path)
    text = json.dumps(result, indent=2, ensure_ascii=False, allow_nan=False) + "\n"
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    try:
        with open(tmp, "x", encoding="utf-8") as f:  # "x": the umask applies, unlike mkstemp
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def load(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The result in ``path``; ReportError when it cannot be read, is not JSON, is not a
    spoolproxy bench result or has a version this spoolproxy does not know."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise ReportError(f"{path}: not a spoolproxy bench result (not UTF-8 text)") from None
    except OSError as e:
        raise ReportError(f"{path}: cannot read: {e.strerror or e}") from None
    try:
        result = json.loads(text)
    except json.JSONDecodeError as e:
        raise ReportError(f"{path}: not valid JSON ({e.msg} at line {e.lineno} column {e.colno})") from None
    if not isinstance(result, dict) or result.get("kind") != KIND:
        what = f"kind {result.get('kind')!r}" if isinstance(result, dict) else f"a JSON {type(result).__name__}"
        raise ReportError(f"{path}: not a spoolproxy bench result ({what}, expected kind {KIND!r})")
    version = result.get("version")
    if version != VERSION or isinstance(version, bool):
        raise ReportError(f"{path}: unknown spoolproxy bench result version {version!r} "
                          f"(this spoolproxy reads version {VERSION})")
    targets = result.get("targets")
    if not isinstance(targets, dict) or not all(isinstance(t, dict) for t in targets.values()):
        raise ReportError(f"{path}: malformed spoolproxy bench result ('targets' is not an object of objects)")
    return result


# -- reading a result tolerantly ---------------------------------------------------------


def _dig(obj: Any, *keys: str) -> Any:
    for key in keys:
        if not isinstance(obj, dict):
            return None
        obj = obj.get(key)
    return obj


def _num(x: Any) -> float | None:
    """A finite number as float, else None (missing, null, text, bool, NaN)."""
    if isinstance(x, bool) or not isinstance(x, (int, float)):
        return None
    x = float(x)
    return x if math.isfinite(x) else None


def _scaled(x: Any, divisor: float) -> float | None:
    x = _num(x)
    return None if x is None else x / divisor


def _targets(result: Any) -> dict[str, dict[str, Any]]:
    targets = _dig(result, "targets")
    if not isinstance(targets, dict):
        return {}
    return {str(name): t for name, t in targets.items() if isinstance(t, dict)}


def _stages(*targets: dict[str, Any]) -> list[str]:
    seen = {s for t in targets for s in (_dig(t, "latency_ms") or {}) if isinstance(s, str)}
    return [s for s in STAGES if s in seen] + sorted(seen - set(STAGES))


def _errors_total(target: dict[str, Any]) -> int | None:
    errors = _dig(target, "totals", "errors")
    if not isinstance(errors, dict):
        return None
    return int(sum(v for v in (_num(e) for e in errors.values()) if v is not None))


def _fmt(x: float | None) -> str:
    if x is None:
        return "-"
    if isinstance(x, int):  # a count
        return f"{x:,}"
    if abs(x) >= 1000:
        return f"{x:,.0f}"
    return f"{x:.1f}" if abs(x) >= 10 else f"{x:.2f}"


def _title(result: Any) -> str:
    label = _dig(result, "label")
    duration = _num(_dig(result, "duration"))
    title = f"spoolproxy bench: {label}" if label else "spoolproxy bench"
    return f"{title} ({duration:g} s)" if duration is not None else title


def _headline(name: str, target: dict[str, Any]) -> str:
    acc = _num(_dig(target, "rates", "accepted_per_s"))
    dlv = _num(_dig(target, "rates", "delivered_per_s"))
    p99 = _num(_dig(target, "latency_ms", "accept", "p99"))
    return f"{name}: {_fmt(acc)} accepted/s, {_fmt(dlv)} delivered/s, accept p99 {_fmt(p99)} ms"


# -- plot --------------------------------------------------------------------------------


def _interval_rates(timeline: list[Any], key: str) -> tuple[list[float], list[float]]:
    """(t, count per second) of each interval; an interval's length is the distance to the
    previous ``t`` (0 for the first; if the first ``t`` is 0, the second interval's length)."""
    xs, ys = [], []
    prev = 0.0
    for i, point in enumerate(timeline):
        t = _num(_dig(point, "t"))
        if t is None:
            continue
        length = t - prev
        if i == 0 and length <= 0 and len(timeline) > 1:
            nxt = _num(_dig(timeline[1], "t"))
            length = (nxt - t) if nxt is not None else 0.0
        prev = t
        count = _num(_dig(point, key))
        if count is not None and length > 0:
            xs.append(t)
            ys.append(count / length)
    return xs, ys


def _series(timeline: list[Any], key: str, divisor: float = 1.0) -> tuple[list[float], list[float]]:
    xs, ys = [], []
    for point in timeline:
        t, y = _num(_dig(point, "t")), _scaled(_dig(point, key), divisor)
        if t is not None and y is not None:
            xs.append(t)
            ys.append(y)
    return xs, ys


def plot_png(result: dict[str, Any], path: str | os.PathLike[str]) -> None:
    """Draw the run's timeline to a PNG at ``path``: three panels over time, one colour
    per target: jobs/s accepted (solid) and delivered (dashed); accept latency p50 (solid)
    and p99 (dashed); node CPU % (solid, left axis) and RSS MiB (dashed, right axis).
    Missing values are skipped; an empty result gives empty panels."""
    # The Agg canvas directly, not pyplot: no global figure state, and no
    # matplotlib.use(), which would close the figures of a process that already uses pyplot.
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(10, 8), dpi=100)
    FigureCanvasAgg(fig)
    ax_rate, ax_lat, ax_cpu = fig.subplots(3, 1, sharex=True)
    ax_rss = ax_cpu.twinx()
    drawn = 0
    for i, (name, target) in enumerate(_targets(result).items()):
        timeline = [p for p in (_dig(target, "timeline") or []) if isinstance(p, dict)]
        if not timeline:
            continue
        colour = f"C{i % 10}"
        for ax, (xs, ys), style, what in (
                (ax_rate, _interval_rates(timeline, "accepted"), "-", "accepted"),
                (ax_rate, _interval_rates(timeline, "delivered"), "--", "delivered"),
                (ax_lat, _series(timeline, "accept_p50_ms"), "-", "p50"),
                (ax_lat, _series(timeline, "accept_p99_ms"), "--", "p99"),
                (ax_cpu, _series(timeline, "cpu_percent"), "-", "CPU %"),
                (ax_rss, _series(timeline, "rss_bytes", MIB), "--", "RSS MiB")):
            if xs:
                ax.plot(xs, ys, style, color=colour, label=f"{name} {what}", marker="." if len(xs) == 1 else None)
                drawn += 1
    ax_rate.set_ylabel("jobs/s")
    ax_rate.set_title("accepted (solid), delivered (dashed)", fontsize="small")
    ax_lat.set_ylabel("accept ms")
    ax_lat.set_title("accept latency p50 (solid), p99 (dashed)", fontsize="small")
    ax_cpu.set_ylabel("CPU %")
    ax_rss.set_ylabel("RSS MiB")
    ax_cpu.set_title("node CPU % (solid, left), RSS MiB (dashed, right)", fontsize="small")
    ax_cpu.set_xlabel("seconds since start")
    for ax in (ax_rate, ax_lat):
        if ax.get_lines():
            ax.legend(fontsize="x-small", loc="best")
    handles = ax_cpu.get_lines() + ax_rss.get_lines()
    if handles:
        ax_cpu.legend(handles, [h.get_label() for h in handles], fontsize="x-small", loc="best")
    for ax in (ax_rate, ax_lat, ax_cpu):
        ax.grid(True, alpha=0.3)
    if not drawn:
        ax_rate.text(0.5, 0.5, "no timeline data", transform=ax_rate.transAxes, ha="center", va="center")
    lines = [_title(result)] + [_headline(n, t) for n, t in _targets(result).items()]
    fig.suptitle("\n".join(lines), fontsize="medium")
    fig.tight_layout()
    fig.savefig(path, format="png", dpi=100)


# -- rich --------------------------------------------------------------------------------


def summary(result: dict[str, Any]) -> Any:
    """A rich renderable of one run: a table with a row per target, the ratios between
    targets (a boolean among them is a target's verdict: "met" or "NOT met") and the
    books line."""
    from rich.console import Group
    from rich.table import Table
    from rich.text import Text

    machine = _dig(result, "machine") or {}
    started = _num(_dig(result, "started"))
    caption = ", ".join(x for x in (
        f"{machine.get('cpus')} cpus" if machine.get("cpus") is not None else "",
        f"python {machine['python']}" if machine.get("python") else "",
        f"spoolproxy {machine['spoolproxy']}" if machine.get("spoolproxy") else "",
        f"on {machine['hostname']}" if machine.get("hostname") else "",
        f"started {time.strftime('%Y-%m-%d %H:%M:%S', time.localtime(started))}" if started is not None else "",
    ) if x)
    table = Table(title=Text(_title(result)), caption=Text(caption) if caption else None)
    table.add_column("target")
    for heading in ("accepted/s", "delivered/s", "delivered MB/s", "accept ms p50/p99", "deliver ms p50/p99",
                    "release ms p50/p99", "errors", "node CPU s", "peak RSS MiB"):
        table.add_column(heading, justify="right")
    error_lines, stage_lines = [], []
    for name, t in _targets(result).items():
        def pair(stage: str, t: dict[str, Any] = t) -> str:
            lat = _dig(t, "latency_ms", stage)
            return f"{_fmt(_num(_dig(lat, 'p50')))} / {_fmt(_num(_dig(lat, 'p99')))}"
        table.add_row(Text(name), _fmt(_num(_dig(t, "rates", "accepted_per_s"))),
                      _fmt(_num(_dig(t, "rates", "delivered_per_s"))),
                      _fmt(_scaled(_dig(t, "rates", "delivered_bytes_per_s"), MB)),
                      pair("accept"), pair("deliver"), pair("release"),
                      _fmt(_errors_total(t)), _fmt(_num(_dig(t, "node", "cpu_seconds"))),
                      _fmt(_scaled(_dig(t, "node", "peak_rss_bytes"), MIB)))
        inside = [f"{stage} {pair(stage)}" for stage in INSIDE_STAGES if _dig(t, "latency_ms", stage, "n")]
        if inside:  # the node's own stages, from its job records
            stage_lines.append(Text(f"stages {name} (ms p50 / p99): " + ", ".join(inside)))
        errors = _dig(t, "totals", "errors")
        if isinstance(errors, dict) and any(_num(v) for v in errors.values()):
            error_lines.append(Text(f"errors {name}: " + ", ".join(
                f"{kind} {v}" for kind, v in errors.items() if _num(v)), style="red"))
    parts: list[Any] = [table, *stage_lines, *error_lines]
    ratios = _dig(result, "ratios")
    for pair_name, metrics in (ratios.items() if isinstance(ratios, dict) else ()):
        for metric, value in (metrics.items() if isinstance(metrics, dict) else ()):
            if isinstance(value, bool):  # a target's verdict, e.g. ratios["targets_met"]["accept >= cupsd"]
                label = "target" if pair_name == "targets_met" else pair_name
                parts.append(Text(f"{label} {metric}: {'met' if value else 'NOT met'}",
                                  style="green" if value else "red"))
                continue
            value = _num(value)
            parts.append(Text(f"{pair_name} {metric} {'-' if value is None else f'{value:.2f}'}"))
    off = _dig(result, "offline")
    if isinstance(off, dict):  # a site whose primary went away mid-run
        parts.append(Text(f"offline phase: primary unreachable {_fmt(_num(off.get('seconds')))} s at "
                          f"{_fmt(_num(off.get('at')))} s; noticed after {_fmt(_num(off.get('detected_after')))} s; "
                          f"{off.get('entries')} journal entries replayed in {_fmt(_num(off.get('replay_seconds')))} s"))
    if _dig(result, "interrupted") is True:
        parts.append(Text("stopped by Ctrl-C: the clients finished the jobs in hand; what was held stays held",
                          style="yellow"))
    parts.append(_books_text(_dig(result, "books")))
    return Group(*parts)


def _books_text(books: Any) -> Any:
    from rich.text import Text
    if not isinstance(books, dict):
        return Text("books: not checked", style="dim")
    checked = books.get("checked_jobs")
    if books.get("ok") is True:
        text = f"books balance: {checked} jobs checked"
        extra = [f"{k.replace('_', ' ')} {books[k]}" for k in ("charged_total", "balance_change")
                 if books.get(k) is not None]
        return Text(", ".join([text, *extra]), style="green")
    problems = books.get("problems")
    problems = [str(p) for p in problems] if isinstance(problems, list) else []
    head = f"books do NOT balance ({checked} jobs checked, {len(problems)} problems)"
    return Text("\n".join([head, *(f"  {p}" for p in problems)]), style="red")


# -- comparing two runs --------------------------------------------------------------------


def _metrics(a: dict[str, Any], b: dict[str, Any]) -> list[tuple[str, str, Callable[[Any], float | None], float, bool]]:
    """(key, shown name, getter, display divisor, higher is better) of the headline metrics
    of two targets."""
    rates = [("accepted_per_s", "accepted/s", 1.0), ("delivered_per_s", "delivered/s", 1.0),
             ("delivered_bytes_per_s", "delivered MB/s", MB)]
    out: list[tuple[str, str, Callable[[Any], float | None], float, bool]] = [
        (key, shown, lambda t, key=key: _num(_dig(t, "rates", key)), div, True) for key, shown, div in rates]
    for stage in _stages(a, b):
        for p in ("p50", "p99"):
            out.append((f"latency_ms.{stage}.{p}", f"{stage} {p} ms",
                        lambda t, stage=stage, p=p: _num(_dig(t, "latency_ms", stage, p)), 1.0, False))
    out += [("errors", "errors", _errors_total, 1.0, False),
            ("node.cpu_seconds", "node CPU s", lambda t: _num(_dig(t, "node", "cpu_seconds")), 1.0, False),
            ("node.peak_rss_bytes", "peak RSS MiB", lambda t: _num(_dig(t, "node", "peak_rss_bytes")), MIB, False)]
    return out


def _ratio(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None or a == 0 else b / a


def _shown(x: float | None, divisor: float) -> float | None:
    return x if x is None or divisor == 1 else x / divisor


def compare_numbers(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    """The numbers ``compare`` shows, in the results' own units: for each target in both
    runs ``{metric: {"a", "b", "ratio" (b/a, None when undefined), "better": "higher"|"lower"}}``,
    and the targets only one run has."""
    ta, tb = _targets(a), _targets(b)
    out: dict[str, Any] = {"targets": {}, "only_a": [n for n in ta if n not in tb],
                           "only_b": [n for n in tb if n not in ta]}
    for name in (n for n in ta if n in tb):
        out["targets"][name] = {
            key: {"a": get(ta[name]), "b": get(tb[name]), "ratio": _ratio(get(ta[name]), get(tb[name])),
                  "better": "higher" if higher else "lower"}
            for key, _shown, get, _div, higher in _metrics(ta[name], tb[name])}
    return out


def compare(a: dict[str, Any], b: dict[str, Any]) -> Any:
    """A rich table of two runs side by side: per target in both and headline metric the
    values A and B and the ratio B/A, B and B/A green when B is better, red when worse
    (higher is better for rates; lower for latency, errors, CPU and memory)."""
    from rich.console import Group
    from rich.table import Table
    from rich.text import Text

    ta, tb = _targets(a), _targets(b)
    table = Table(title=Text(f"A = {_title(a)}\nB = {_title(b)}"))
    table.add_column("target")
    table.add_column("metric")
    for heading in ("A", "B", "B/A"):
        table.add_column(heading, justify="right")
    numbers = compare_numbers(a, b)
    for name in numbers["targets"]:
        for key, shown, get, div, higher in _metrics(ta[name], tb[name]):
            va, vb = get(ta[name]), get(tb[name])
            ratio = _ratio(va, vb)
            style = ""
            if va is not None and vb is not None and va != vb:
                style = "green" if (vb > va) == higher else "red"
            table.add_row(Text(name), shown, _fmt(_shown(va, div)), Text(_fmt(_shown(vb, div)), style=style),
                          Text("-" if ratio is None else f"{ratio:.2f}", style=style))
    parts: list[Any] = [table]
    for key, run in (("only_a", "A"), ("only_b", "B")):
        if numbers[key]:
            parts.append(Text(f"only in {run}: {', '.join(numbers[key])}", style="dim"))
    return Group(*parts)


# -- command -----------------------------------------------------------------------------


def cmd_compare(args: argparse.Namespace) -> int:
    """``spoolproxy bench compare A.json B.json [--json]``."""
    try:
        a, b = load(args.a), load(args.b)
    except ReportError as e:
        print(f"spoolproxy bench compare: {e}", file=sys.stderr)
        return EXIT_USAGE
    if getattr(args, "json", False):
        head = {k: {"path": str(p), "label": r.get("label"), "started": r.get("started")}
                for k, p, r in (("a", args.a, a), ("b", args.b, b))}
        print(json.dumps({**head, **compare_numbers(a, b)}, indent=2, ensure_ascii=False))
        return EXIT_OK
    from ..cli import _print_rich  # colours on a terminal, plain wide lines when piped
    _print_rich(compare(a, b))
    return EXIT_OK


def add_compare_parser(sub: Any) -> argparse.ArgumentParser:
    """Add ``compare`` to the ``bench`` command's subparsers."""
    sp = sub.add_parser("compare", help="two bench results side by side (B relative to A)")
    sp.add_argument("a", metavar="A.json", help="the reference run")
    sp.add_argument("b", metavar="B.json", help="the run compared with it")
    sp.add_argument("--json", action="store_true", help="machine-readable output")
    sp.set_defaults(func=cmd_compare)
    return sp
