"""``spoolproxy bench run --compare``: the same load against cupsd and against the sink
directly, in the same run, on the same machine, and the ratios.

After the main load (the node still up, its backlog drained), ``run_comparison``:

1. starts a private cupsd (``cupsd.Cupsd``: ``SyncOnClose Yes``, ``DirtyCleanInterval
   0``, a raw queue to the same AppSocket sink the node's ``direct`` queue prints to);
2. **accept**: ``accept_phase`` against the node's ``direct`` queue and against cupsd's
   raw queue, the same small PDF (``small.pdf``) as Print-Job again and again from
   ``clients`` keep-alive connections for ``compare_seconds`` after a warm-up;
   ``compare_rounds`` rounds, the order reversed every other round, the median round of
   each kept. Between phases cupsd's queue is purged and the node's drained to the sink,
   so neither works off the other's backlog;
3. **delivery**, measured apart from accepting (upload, fsync and page counting are the
   accept side, measured in 2.): ``compare_large_jobs`` large jobs (``large.pdf``, tens of
   MB) submitted to the node's hold queue ``secure`` (its printer is the same socket
   sink), a device registered there, its owner logged in by card until the device API
   lists them all (counted); then one release call for all of them, timed from the
   release answer to the sink's count of the last one (``delivery_phase_node``). The
   floor: the same file sent straight to the sink the way a printer takes jobs, one at a
   time, one connection each, read from disk as it is sent (``delivery_phase_direct``).
   Both sides read from the page cache and write to one socket; the bytes are the sink's
   count (jobs x size, checked).

The targets (issue: measured on the 2-core machine, printed as ratios):

* ``spoolproxy/cupsd accepted_per_s`` >= 1: jobs accepted per second at least cupsd's
  for the same small PDF with durability on;
* ``spoolproxy/sink delivered_bytes_per_s`` >= 0.8: delivery throughput of large jobs at
  least 80 % of sending to the sink directly;

and ``ratios()["targets_met"]`` says whether each is met (the report prints met / NOT
met). Missing a target is reported, never raised: benchmarks report, tests assert.

Each phase returns a target in the report's schema (``totals``, ``rates``,
``latency_ms``, ``timeline``, ``node``) plus a ``phase`` object saying what ran.
"""
from __future__ import annotations

import functools
import json
import math
import socket
import statistics
import sys
import time
from pathlib import Path
from typing import Any, Mapping, Sequence

import trio

from ..ipp.client import IppClient, IppClientError, new_request, status_name, status_of
from ..ipp.model import Op, Tag
from .cupsd import Cupsd, tail
from .errors import BenchError
from .load import proc_sample
from .report import new_summary

__all__ = ["accept_phase", "delivery_phase_node", "delivery_phase_direct", "ratios", "run_comparison",
           "ACCEPT_TARGET", "DELIVERY_TARGET"]

ACCEPT_TARGET = 1.0  # spoolproxy accepted/s >= cupsd's
DELIVERY_TARGET = 0.8  # spoolproxy delivered bytes/s >= 0.8 x straight to the sink
NODE_QUEUE = "direct"  # the node's queue whose printer is the socket sink
HOLD_QUEUE = "secure"  # the node's hold queue whose printer is the same socket sink
SAMPLE_INTERVAL = 0.5
IPP_TIMEOUT = 300.0  # a large job's upload on a busy machine
_CONN_ERRORS = (IppClientError, OSError, trio.BrokenResourceError, trio.ClosedResourceError)


# -- small helpers ---------------------------------------------------------------------------


def _users(user: str | Sequence[str]) -> list[str]:
    users = [user] if isinstance(user, str) else list(user)
    return users or ["bench"]


def _cpu(pid: int | None) -> tuple[float, int] | None:
    if pid is None:
        return None
    try:
        return proc_sample(pid)
    except (OSError, ValueError, IndexError):
        return None


def _node(before: tuple[float, int] | None, after: tuple[float, int] | None, jobs: int,
          peak_rss: int | None = None) -> dict:
    if before is None or after is None:
        return {"cpu_seconds": None, "peak_rss_bytes": peak_rss, "cpu_ms_per_job": None}
    cpu = max(0.0, after[0] - before[0])
    return {"cpu_seconds": round(cpu, 3), "peak_rss_bytes": max(before[1], after[1], peak_rss or 0),
            "cpu_ms_per_job": round(cpu * 1000 / jobs, 3) if jobs else None}


def _error(errors: dict[str, int], kind: str) -> None:
    errors[kind] = errors.get(kind, 0) + 1


async def _print_job(c: IppClient, uri: str, user: str, data: bytes, fmt: str, name: str) -> int:
    """One Print-Job; the IPP status code (an exception when there was no IPP answer)."""
    req = new_request(Op.PRINT_JOB, uri, user=user)
    req.operation.add("job-name", Tag.NAME, name)
    req.operation.add("document-format", Tag.MIME_TYPE, fmt)
    return status_of(await c.request(req, data))


def _socket_stats(sinks: Any) -> dict:
    return (sinks.stats() or {}).get("socket", {}) or {}


# -- accept ----------------------------------------------------------------------------------


async def accept_phase(uri: str, data: bytes, *, seconds: float, jobs: int, clients: int,
                       fmt: str = "application/pdf", user: str | Sequence[str] = "bench",
                       pid: int | None = None, name: str = "bench-accept") -> dict:
    """Accepted jobs per second at ``uri``: ``clients`` trio tasks, each with its own
    keep-alive ``IppClient``, send ``data`` as Print-Job one after another.

    A warm-up (at least ``2 * clients`` jobs, and 10 % of ``jobs`` or of ``seconds``) is
    not counted; then the measured phase runs ``jobs`` jobs (``jobs > 0``) or for
    ``seconds``. ``user`` is a name or a list (client i uses ``user[i % len]``).
    With ``pid`` (the server process), its CPU seconds (with its children) over the
    measured phase go to ``node``. Returns a target of the report's schema."""
    if clients < 1 or (jobs <= 0 and seconds <= 0):
        raise BenchError("accept_phase needs clients >= 1 and jobs or seconds > 0")
    users = _users(user)
    cs = [IppClient(uri, timeout=IPP_TIMEOUT) for _ in range(clients)]
    now = time.perf_counter
    lat: list[float] = []  # seconds, measured phase only
    errors: dict[str, int] = {}
    counts = {"submitted": 0, "accepted": 0}

    async def run(*, n_jobs: int, secs: float, measured: bool, warm_errors: dict[str, int]) -> None:
        remaining = [n_jobs]
        deadline = now() + secs if secs else None

        async def worker(i: int) -> None:
            who = users[i % len(users)]
            while True:
                if n_jobs:
                    if remaining[0] <= 0 and (deadline is None or now() >= deadline):
                        return
                    remaining[0] -= 1
                elif deadline is not None and now() >= deadline:
                    return
                errs = errors if measured else warm_errors
                if measured:
                    counts["submitted"] += 1
                t0 = now()
                try:
                    status = await _print_job(cs[i], uri, who, data, fmt, name)
                except _CONN_ERRORS as e:
                    _error(errs, f"ipp {type(e).__name__}")
                    await cs[i].aclose()
                    cs[i] = IppClient(uri, timeout=IPP_TIMEOUT)
                    continue
                if not measured:
                    if status >= 0x0100:
                        _error(errs, f"ipp {status_name(status)}")
                    continue
                if status >= 0x0100:
                    _error(errs, f"ipp {status_name(status)}")
                    continue
                lat.append(now() - t0)
                counts["accepted"] += 1

        async with trio.open_nursery() as nursery:
            for i in range(clients):
                nursery.start_soon(worker, i)

    timeline: list[dict] = []
    try:
        warm_errors: dict[str, int] = {}
        warm_jobs = max(2 * clients, jobs // 10 if jobs > 0 else 0)
        # a count-limited warm-up that also lasts 10 % of a timed phase
        await run(n_jobs=warm_jobs, secs=0.1 * seconds if jobs <= 0 else 0.0, measured=False,
                  warm_errors=warm_errors)
        if warm_errors:
            raise BenchError(f"{uri}: warm-up jobs failed: "
                             + ", ".join(f"{k} {v}" for k, v in sorted(warm_errors.items())))
        before = _cpu(pid)
        peak = [before[1] if before else 0]
        started_wall, started = time.time(), now()

        async def sampler() -> None:
            last_t, last_n, last_e = started, 0, 0
            last_cpu = before[0] if before else None
            while True:
                await trio.sleep(SAMPLE_INTERVAL)
                t = now()
                n, e = counts["accepted"], sum(errors.values())
                window = sorted(x * 1000 for x in lat[last_n:n])
                s = _cpu(pid)
                if s is not None:
                    peak[0] = max(peak[0], s[1])
                timeline.append({
                    "t": round(t - started, 3), "accepted": n - last_n, "delivered": None, "errors": e - last_e,
                    "accept_p50_ms": window[len(window) // 2] if window else None,
                    "accept_p99_ms": window[min(len(window) - 1, int(len(window) * 0.99))] if window else None,
                    "cpu_percent": round((s[0] - last_cpu) / (t - last_t) * 100, 1)
                    if s is not None and last_cpu is not None and t > last_t else None,
                    "rss_bytes": s[1] if s is not None else None})
                last_t, last_n, last_e = t, n, e
                last_cpu = s[0] if s is not None else last_cpu

        async with trio.open_nursery() as outer:
            outer.start_soon(sampler)
            await run(n_jobs=max(jobs, 0), secs=0.0 if jobs > 0 else seconds, measured=True,
                      warm_errors=warm_errors)
            outer.cancel_scope.cancel()
        elapsed = now() - started
        after = _cpu(pid)
    finally:
        for c in cs:
            await c.aclose()
    accepted = counts["accepted"]
    return {
        "totals": {"submitted": counts["submitted"], "accepted": accepted, "errors": dict(errors), "warmup_jobs": warm_jobs},
        "rates": {"accepted_per_s": accepted / elapsed if elapsed > 0 else 0.0,
                  "accepted_bytes": accepted * len(data)},
        "latency_ms": {"accept": new_summary([x * 1000 for x in lat])},
        "timeline": timeline,
        "node": _node(before, after, accepted, peak[0] or None),
        "phase": {"kind": "accept", "uri": uri, "format": fmt, "document_bytes": len(data), "clients": clients,
                  "seconds": round(elapsed, 3), "jobs": jobs if jobs > 0 else None, "started": started_wall},
    }


# -- delivery --------------------------------------------------------------------------------


async def _wait_sink(sinks: Any, want_jobs: int, timeout: float) -> dict:
    """The socket sink's counts once it counted ``want_jobs`` jobs (or at the timeout)."""
    with trio.move_on_after(timeout):
        while True:
            st = _socket_stats(sinks)
            if st.get("jobs", 0) >= want_jobs:
                return st
            await trio.sleep(0.05)
    return _socket_stats(sinks)


async def _submit(uri: str, data: bytes, *, jobs: int, clients: int, user: str, fmt: str,
                  errors: dict[str, int]) -> list[int]:
    """``jobs`` Print-Jobs of ``data`` to ``uri`` as ``user``, ``clients`` at a time; the job ids."""
    ids: list[int] = []
    remaining = [jobs]

    async def worker() -> None:
        c = IppClient(uri, timeout=IPP_TIMEOUT)
        try:
            while remaining[0] > 0:
                remaining[0] -= 1
                req = new_request(Op.PRINT_JOB, uri, user=user)
                req.operation.add("job-name", Tag.NAME, "bench-large")
                req.operation.add("document-format", Tag.MIME_TYPE, fmt)
                try:
                    resp = await c.request(req, data)
                except _CONN_ERRORS as e:
                    _error(errors, f"ipp {type(e).__name__}")
                    await c.aclose()
                    c = IppClient(uri, timeout=IPP_TIMEOUT)
                    continue
                if status_of(resp) >= 0x0100:
                    _error(errors, f"ipp {status_name(status_of(resp))}")
                    continue
                ids.append(resp.group(Tag.JOB).value("job-id"))
        finally:
            await c.aclose()

    async with trio.open_nursery() as nursery:
        for _ in range(max(1, min(clients, jobs))):
            nursery.start_soon(worker)
    return sorted(ids)


async def delivery_phase_node(hold_uri: str, web_base: str, device_key: str, sinks: Any, data: bytes, *,
                              jobs: int, owner: str, card: str, clients: int = 1, pid: int | None = None,
                              fmt: str = "application/pdf", timeout: float = 600.0) -> dict:
    """Delivered bytes per second by the node, apart from accepting: ``jobs`` Print-Jobs of
    ``data`` (a large PDF) as ``owner`` to ``hold_uri``, the node's hold queue whose
    printer is ``sinks``' socket sink (accepting: upload, fsync, page counting, not timed
    here); then, at the device ``device_key`` (a device for that queue), a login by
    ``card`` until the device API lists all of them as counted; then ONE release call for
    all of them. Timed from the release answer to the moment the sink counted the last of
    them (``SinkProcess.stats()["socket"]["last"]``: the same clock); the bytes are the
    sink's count, which must be ``jobs * len(data)``. Nothing else may print to that sink
    meanwhile. ``pid``: the node, for its CPU over the delivery."""
    import httpx

    if jobs < 1 or clients < 1:
        raise BenchError("delivery_phase_node needs jobs >= 1 and clients >= 1")
    errors: dict[str, int] = {}
    t_submit = time.time()
    ids = await _submit(hold_uri, data, jobs=jobs, clients=clients, user=owner, fmt=fmt, errors=errors)
    t_held = time.time()
    released: list[int] = []
    release_s = counted_s = None
    st = base = _socket_stats(sinks)
    t_rel = time.time()
    before = after = None
    async with httpx.AsyncClient(base_url=f"{web_base}/api/v1/device", timeout=IPP_TIMEOUT, trust_env=False,
                                 headers={"X-Device-Key": device_key}) as http:
        r = await http.post("/login", json={"card": card})
        if r.status_code != 200:
            raise BenchError(f"device login of {owner} by card {card} refused: {r.status_code} {r.text}")
        auth = {"Authorization": f"Bearer {r.json()['token']}"}
        listed: dict[int, dict] = {}
        with trio.move_on_after(timeout):  # until the device lists them all, counted and releasable here
            while True:
                r = await http.get("/jobs", headers=auth)
                if r.status_code == 200:
                    listed = {j["id"]: j for j in r.json().get("jobs", [])
                              if j.get("pages") is not None and j.get("here") and not j.get("problem")}
                if all(i in listed for i in ids):
                    break
                await trio.sleep(0.1)
        ready = [i for i in ids if i in listed]
        if len(ready) < len(ids):
            errors[f"not listed as counted within {timeout:g} s"] = len(ids) - len(ready)
        counted_s = time.time() - t_held
        if ready:
            base = _socket_stats(sinks)
            before = _cpu(pid)
            t_req = time.time()
            r = await http.post("/release", json={"jobs": ready}, headers=auth)
            t_rel = time.time()
            release_s = t_rel - t_req
            if r.status_code != 200:
                _error(errors, f"release {r.status_code}")
            else:
                for i, res in zip(ready, r.json().get("results", [])):
                    if res.get("ok"):
                        released.append(i)
                    else:
                        _error(errors, f"release refused: {res.get('reason')}")
            st = await _wait_sink(sinks, base.get("jobs", 0) + len(released), timeout) if released else base
            after = _cpu(pid)
        await http.post("/logout", headers=auth)
    delivered = st.get("jobs", 0) - base.get("jobs", 0)
    nbytes = st.get("bytes", 0) - base.get("bytes", 0)
    if delivered < len(released):
        errors[f"not delivered within {timeout:g} s"] = len(released) - delivered
    elif nbytes != len(released) * len(data):
        errors[f"sink counted {nbytes} bytes, not {len(released)} x {len(data)}"] = 1
    last = st.get("last") if delivered else None
    span = (last - t_rel) if last is not None else 0.0
    return {
        "totals": {"submitted": jobs, "accepted": len(ids), "released": len(released), "delivered": delivered,
                   "delivered_bytes": nbytes, "errors": dict(errors)},
        "rates": {"accepted_per_s": None,  # accepting is measured apart (spoolproxy-accept)
                  "delivered_per_s": delivered / span if span > 0 else 0.0,
                  "delivered_bytes_per_s": nbytes / span if span > 0 else 0.0},
        "latency_ms": {"release": new_summary([release_s * 1000] if release_s is not None else [])},
        "timeline": [],
        "node": _node(before, after, delivered),
        "phase": {"kind": "delivery", "via": hold_uri, "how": "held, counted, then one device release call; "
                  "timed from the release answer to the sink's last byte counted",
                  "owner": owner, "document_bytes": len(data), "jobs": jobs, "submit_clients": clients,
                  "submit_seconds": round(t_held - t_submit, 3), "counted_seconds": round(counted_s or 0.0, 3),
                  "release_ms": round(release_s * 1000, 1) if release_s is not None else None,
                  "started": t_rel, "seconds": round(span, 3)},
    }


DIRECT_CHUNK = 256 << 10  # what the node's delivery reads at a time (upstream.base.READ_CHUNK)


def _send_file(host: str, port: int, path: str, timeout: float, chunk: int) -> None:
    """One job the way a raw printer takes it: connect, the file's bytes read from disk a
    chunk at a time and sent, shut down the write side, read until the printer closes."""
    with socket.create_connection((host, port), timeout=timeout) as s, open(path, "rb") as f:
        while True:
            block = f.read(chunk)
            if not block:
                break
            s.sendall(block)
        s.shutdown(socket.SHUT_WR)
        while s.recv(65536):
            pass


async def delivery_phase_direct(sink_port: int, path: str | Path, *, jobs: int, sinks: Any = None,
                                host: str = "127.0.0.1", timeout: float = 600.0) -> dict:
    """The baseline: the file ``path`` sent straight to the AppSocket sink on ``sink_port``
    ``jobs`` times the way a printer takes jobs, one at a time, one connection each (a
    printer prints serially; the node's queue delivers one job at a time too), each read
    from disk (the page cache) as it is sent, ``DIRECT_CHUNK`` bytes at a time, in a
    worker thread with blocking calls. Timed from the first connect to the sink's count
    of the last job (``sinks``: its SinkProcess; without, to the last close seen here);
    the bytes are the sink's count (without: those sent), which must be ``jobs * size``."""
    if jobs < 1:
        raise BenchError("delivery_phase_direct needs jobs >= 1")
    path = str(path)
    size = Path(path).stat().st_size
    base = _socket_stats(sinks) if sinks is not None else {}
    base_jobs, base_bytes = base.get("jobs", 0), base.get("bytes", 0)
    errors: dict[str, int] = {}
    lat: list[float] = []
    done, last_close = 0, None
    t0 = time.time()
    for _ in range(jobs):
        s = time.perf_counter()
        try:
            await trio.to_thread.run_sync(_send_file, host, sink_port, path, timeout, DIRECT_CHUNK)
        except OSError as e:
            _error(errors, f"socket {type(e).__name__}")
            continue
        lat.append(time.perf_counter() - s)
        done += 1
        last_close = time.time()
    if sinks is not None:
        st = await _wait_sink(sinks, base_jobs + done, 30.0)
        delivered, nbytes, last = st.get("jobs", 0) - base_jobs, st.get("bytes", 0) - base_bytes, st.get("last")
    else:
        delivered, nbytes, last = done, done * size, last_close
    if delivered < done:
        errors["not counted by the sink within 30 s"] = done - delivered
    elif nbytes != done * size:
        errors[f"sink counted {nbytes} bytes, not {done} x {size}"] = 1
    span = (last - t0) if last is not None and delivered else 0.0
    return {
        "totals": {"submitted": jobs, "accepted": done, "delivered": delivered, "delivered_bytes": nbytes,
                   "errors": dict(errors)},
        "rates": {"accepted_per_s": None,  # nothing accepts here: it is the printer
                  "delivered_per_s": delivered / span if span > 0 else 0.0,
                  "delivered_bytes_per_s": nbytes / span if span > 0 else 0.0},
        "latency_ms": {"deliver": new_summary([x * 1000 for x in lat])},  # connect to close, per job
        "timeline": [],
        "node": {"cpu_seconds": None, "peak_rss_bytes": None},
        "phase": {"kind": "delivery", "via": f"socket://{host}:{sink_port}",
                  "how": f"one job at a time, one connection each, read from {path} {DIRECT_CHUNK >> 10} KiB "
                         "at a time; timed from the first connect to the sink's last byte counted",
                  "document_bytes": size, "jobs": jobs, "started": t0, "seconds": round(span, 3)},
    }


# -- ratios ----------------------------------------------------------------------------------


def _rate(targets: dict[str, dict], name: str, key: str) -> float | None:
    v = ((targets.get(name) or {}).get("rates") or {}).get(key)
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
        return None
    return float(v)


def ratios(targets: dict[str, dict]) -> dict:
    """``{"spoolproxy/cupsd": {"accepted_per_s": x}, "spoolproxy/sink":
    {"delivered_bytes_per_s": y}, "targets_met": {"accept >= cupsd": bool,
    "delivery >= 0.8 x sink": bool}}``, each part only when both its targets are there
    (and the reference is not 0)."""
    out: dict[str, dict] = {}
    met: dict[str, bool] = {}
    a, c = _rate(targets, "spoolproxy-accept", "accepted_per_s"), _rate(targets, "cupsd", "accepted_per_s")
    if a is not None and c:
        out["spoolproxy/cupsd"] = {"accepted_per_s": a / c}
        met["accept >= cupsd"] = a / c >= ACCEPT_TARGET
    d, s = (_rate(targets, "spoolproxy-delivery", "delivered_bytes_per_s"),
            _rate(targets, "sink", "delivered_bytes_per_s"))
    if d is not None and s:
        out["spoolproxy/sink"] = {"delivered_bytes_per_s": d / s}
        met[f"delivery >= {DELIVERY_TARGET:g} x sink"] = d / s >= DELIVERY_TARGET
    if met:
        out["targets_met"] = met
    return out


# -- the whole comparison --------------------------------------------------------------------


def _doc(docs: Sequence[Any], name: str) -> Any:
    for d in docs:
        if d.name == name:
            return d
    raise BenchError(f"the comparison needs the document {name} (documents.corpus makes it)")


def _population(node: Any, want: int, known: int) -> list[str]:
    """Users the node knows (the ledger denies unknown ones): up to ``want`` of the bench's
    (``run._population`` names them bench00001 ...; ``known`` of them exist)."""
    try:
        users = [u["name"] for u in json.loads(node.cli("users", "list", "--json"))
                 if str(u.get("name", "")).startswith("bench")]
    except (BenchError, ValueError, KeyError, TypeError):
        users = []
    return sorted(users)[:max(1, want)] or [f"bench{i:05d}" for i in range(1, max(1, min(want, known)) + 1)]


def _node_busy(node: Any) -> int:
    """The node's jobs in its direct queue that are not finished (held ones are not waited for)."""
    jobs = json.loads(node.cli("jobs", "list", "--which", "not-completed", "--queue", NODE_QUEUE, "--json"))
    return sum(1 for j in jobs if j.get("state") != 4)


def _settle_sink(sinks: Any, quiet: float = 0.6, limit: float = 30.0) -> None:
    """Wait until the socket sink's job count stopped growing for ``quiet`` seconds."""
    deadline = time.monotonic() + limit
    last, since = _socket_stats(sinks).get("jobs", 0), time.monotonic()
    while time.monotonic() < deadline:
        time.sleep(0.2)
        n = _socket_stats(sinks).get("jobs", 0)
        if n != last:
            last, since = n, time.monotonic()
        elif time.monotonic() - since >= quiet:
            return


def drain_node(node: Any, sinks: Any, limit: float) -> float:
    """Wait until the node delivered its direct queue's backlog (not-completed jobs 0) and
    the sink is quiet; seconds waited. BenchError after ``limit`` seconds."""
    t0 = time.monotonic()
    while True:
        left = _node_busy(node)
        if left == 0:
            break
        if time.monotonic() - t0 > limit:
            raise BenchError(f"the node still has {left} unfinished job(s) in {NODE_QUEUE} after {limit:g} s")
        time.sleep(0.5)
    _settle_sink(sinks)
    return time.monotonic() - t0


def _median(runs: list[dict], key: str) -> dict:
    """The median run by ``rates[key]`` (the lower middle one: a run that happened), with
    every round's rate beside it."""
    ordered = sorted(runs, key=lambda t: t["rates"].get(key) or 0.0)
    best = dict(ordered[(len(ordered) - 1) // 2])
    best["rounds"] = [round(t["rates"].get(key) or 0.0, 2) for t in runs]
    if len(runs) > 1:
        best["rounds_median"] = statistics.median(t["rates"].get(key) or 0.0 for t in runs)
    return best


def _card(user: str) -> str:
    """``run._population``'s card of ``bench{i:05d}``."""
    try:
        return f"{0xB0000000 + int(user[len('bench'):]):08X}"
    except ValueError:
        raise BenchError(f"no card known for {user!r}: pass cards") from None


def _device(node: Any, queue: str, name: str = "bench-compare") -> str:
    """A new device standing at ``queue``'s printer; its key."""
    for n in range(1, 100):
        try:
            out = node.cli("devices", "add", name if n == 1 else f"{name}-{n}", "--printer", queue)
        except BenchError as e:
            if "exist" in str(e).lower():
                continue
            raise
        for line in out.splitlines():
            if line.strip().startswith("spd_"):
                return line.strip()
        raise BenchError(f"no device key in: {out}")
    raise BenchError(f"cannot add a device {name}")


def run_comparison(opts: Any, node: Any, sinks: Any, docs: Sequence[Any],
                   cards: Mapping[str, str] | None = None) -> tuple[dict[str, dict], dict]:
    """The comparison, synchronous, run by ``run.run`` after the main load while the node
    is up: returns (targets ``{"spoolproxy-accept", "cupsd", "spoolproxy-delivery",
    "sink"}``, ratios). ``node`` is a ``run.NodeProcess``, ``sinks`` a ``SinkProcess``
    with a socket sink, ``docs`` the corpus (``small.pdf`` and ``large.pdf``). Sizes from
    ``opts``: ``compare_seconds`` (10), ``compare_large_jobs`` (10), ``compare_rounds``
    (1), ``clients`` (8) and ``drain`` (120 s, the longest wait for the node's backlog).
    ``cards``: user -> card of the population (``run._population``'s); without, the card
    of ``bench{i:05d}`` is ``f"{0xB0000000 + i:08X}"``. The large jobs' owner is the
    first bench user the node knows."""
    seconds = float(getattr(opts, "compare_seconds", 10.0) or 10.0)
    large_jobs = int(getattr(opts, "compare_large_jobs", 10) or 10)
    rounds = max(1, int(getattr(opts, "compare_rounds", 1) or 1))
    clients = max(1, int(getattr(opts, "clients", 8) or 8))
    drain = float(getattr(opts, "drain", 120.0) or 120.0)
    live = bool(getattr(opts, "live", False))
    small, large = _doc(docs, "small.pdf"), _doc(docs, "large.pdf")
    small_data, large_data = Path(small.path).read_bytes(), Path(large.path).read_bytes()
    node_uri = f"ipp://127.0.0.1:{node.ipp_port}/ipp/print/{NODE_QUEUE}"
    node_pid = node.proc.pid if getattr(node, "proc", None) is not None else None
    users = _population(node, clients, int(getattr(opts, "users", 1) or 1))
    say = (lambda msg: print(f"compare: {msg}", file=sys.stderr, flush=True)) if live else (lambda msg: None)

    if "socket" not in getattr(sinks, "ports", {}):
        raise BenchError("the comparison needs the socket sink (SinkProcess kinds with \"socket\")")
    drain_node(node, sinks, drain)  # the main load's backlog, if the caller did not wait for it
    cupsd = Cupsd(sinks.ports["socket"])
    targets: dict[str, dict] = {}
    try:
        cupsd.start()  # (from this thread: cupsd dies with the thread that started it)
        raw_check = trio.run(cupsd.verify_raw, small_data)
        trio.run(cupsd.purge)
        runs: dict[str, list[dict]] = {"spoolproxy-accept": [], "cupsd": []}
        phases = [("spoolproxy-accept", node_uri, node_pid, users), ("cupsd", cupsd.uri, cupsd.pid, ["bench"])]
        for rnd in range(rounds):
            for key, uri, pid, who in (phases if rnd % 2 == 0 else phases[::-1]):
                t = trio.run(functools.partial(accept_phase, uri, small_data, seconds=seconds, jobs=0,
                                               clients=clients, user=who, pid=pid, name=f"bench-compare-{key}"))
                t["phase"]["round"] = rnd + 1
                runs[key].append(t)
                t0 = time.monotonic()
                if key == "cupsd":
                    t["phase"]["backlog"] = trio.run(cupsd.queued)
                    if not cupsd.alive():
                        raise BenchError(f"cupsd died during its accept phase:\n{tail(cupsd.error_log)}")
                    trio.run(cupsd.purge)  # it keeps no history: its backlog is cancelled, not sent
                    _settle_sink(sinks)
                else:
                    t["phase"]["backlog"] = _node_busy(node)
                    drain_node(node, sinks, drain)
                t["phase"]["settle_seconds"] = round(time.monotonic() - t0, 2)
                say(f"round {rnd + 1} {key}: {t['rates']['accepted_per_s']:.1f} jobs/s accepted")
        targets["spoolproxy-accept"] = _median(runs["spoolproxy-accept"], "accepted_per_s")
        targets["cupsd"] = _median(runs["cupsd"], "accepted_per_s")
        targets["cupsd"]["phase"].update(raw_check=raw_check, lpadmin_warning=cupsd.lpadmin_warning,
                                         settings={"SyncOnClose": True, "DirtyCleanInterval": cupsd.dirty_clean,
                                                   "PreserveJobHistory": False, "queue": "raw (no PPD)"})
    finally:
        cupsd.stop()
    _settle_sink(sinks)
    owner = users[0]
    card = (cards or {}).get(owner) or _card(owner)
    key = _device(node, HOLD_QUEUE)
    # delivery: node and direct take turns, round after round; the median round of each
    deliveries: dict[str, list[dict]] = {"spoolproxy-delivery": [], "sink": []}
    for rnd in range(rounds):
        for which in (("node", "direct") if rnd % 2 == 0 else ("direct", "node")):
            drain_node(node, sinks, drain)
            if which == "node":
                t = trio.run(functools.partial(
                    delivery_phase_node, f"ipp://127.0.0.1:{node.ipp_port}/ipp/print/{HOLD_QUEUE}",
                    f"http://127.0.0.1:{node.web_port}", key, sinks, large_data, jobs=large_jobs,
                    owner=owner, card=card, clients=min(clients, large_jobs), pid=node_pid,
                    timeout=max(drain, 60.0) + 60.0 * large_jobs))
                deliveries["spoolproxy-delivery"].append(t)
                say(f"round {rnd + 1} node delivery: {t['rates']['delivered_bytes_per_s'] / 1e6:.1f} MB/s")
            else:
                t = trio.run(functools.partial(
                    delivery_phase_direct, sinks.ports["socket"], large.path, jobs=large_jobs, sinks=sinks))
                deliveries["sink"].append(t)
                say(f"round {rnd + 1} straight to the sink: {t['rates']['delivered_bytes_per_s'] / 1e6:.1f} MB/s")
    for name, runs in deliveries.items():
        targets[name] = _median(runs, "delivered_bytes_per_s")
    return targets, ratios(targets)
