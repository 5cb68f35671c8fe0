"""The ``spoolproxy`` command.

    spoolproxy serve [--config FILE] [--state-dir DIR] [--listen ADDR] [--port N] [--log-level L]
    spoolproxy check-config [FILE]
    spoolproxy version
    spoolproxy jobs list [--config FILE] [--state-dir DIR] [--queue Q]
                         [--which not-completed|completed|all] [--user U] [--json]
    spoolproxy jobs show [--config FILE] [--state-dir DIR] [--json] ID
    spoolproxy jobs cancel [--config FILE] [--state-dir DIR] ID
    spoolproxy users import|list|show|set ...     (see cli_ledger.py)
    spoolproxy devices add|list|remove|new-key    (see cli_release.py)
    spoolproxy audit [--event E] [--user U]
    spoolproxy accounts list|show|set ...
    spoolproxy balance show|topup|adjust ACCOUNT [AMOUNT --comment TEXT]
    spoolproxy transactions [--account A] [--user U] [--kind K] [--job ID] [--since T] [--until T]

Without --config the file named by $SPOOLPROXY_CONFIG is used, else the embedded
defaults. Exit status: 0 success, 1 the command failed (unknown job, no node state,
printer refused), 2 bad configuration or usage.
"""
from __future__ import annotations

import argparse
import contextlib
import dataclasses
import datetime as dt
import json
import logging
import os
import signal
import socket
import sys
import time
from pathlib import Path
from typing import Any, Iterator, Sequence

from . import config
from .config import ConfigError, Settings

log = logging.getLogger("spoolproxy.cli")

EXIT_OK, EXIT_FAIL, EXIT_USAGE = 0, 1, 2
WHICH = ("not-completed", "completed", "all")


class CommandError(Exception):
    """The command cannot do what was asked; the message says why (exit 1)."""

    def __init__(self, message: str, code: int = EXIT_FAIL) -> None:
        super().__init__(message)
        self.code = code


# -- helpers ---------------------------------------------------------------------------


def version_string() -> str:
    try:
        from importlib.metadata import version
        return version("spoolproxy")
    except Exception:  # not installed (run from a checkout): PackageNotFoundError and friends
        from . import __version__
        return __version__


def engine_implementation() -> str | None:
    """``spoolproxy.pdl.IMPLEMENTATION`` (which document engine is active), if the
    package provides one; a broken engine import is reported, not raised."""
    try:
        import importlib
        pdl = importlib.import_module("spoolproxy.pdl")
    except ModuleNotFoundError as e:
        if e.name in ("spoolproxy.pdl", "spoolproxy"):
            return None
        return f"unavailable ({e})"
    except Exception as e:  # an engine that fails to import must not break `version`
        return f"unavailable ({type(e).__name__}: {e})"
    try:
        impl = getattr(pdl, "IMPLEMENTATION", None)
    except Exception as e:
        return f"unavailable ({type(e).__name__}: {e})"
    return None if impl is None else str(impl)


def _settings(path: str | None, **overrides: dict[str, Any]) -> Settings:
    chosen: Path | str | None = path if path else config.default_path()
    return config.load(chosen, overrides=overrides)


def _fmt_time(t: float | None) -> str:
    if not t:
        return "-"
    return dt.datetime.fromtimestamp(t).strftime("%Y-%m-%d %H:%M:%S")


def _fmt_size(n: int) -> str:
    size = float(n)
    for unit in ("B", "kB", "MB", "GB"):
        if size < 1000 or unit == "GB":
            return f"{int(size)} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1000
    return f"{n} B"  # not reached


def _state_name(state: int) -> str:
    from .ipp.model import JobState
    try:
        return JobState(state).keyword
    except ValueError:
        return str(state)


def _job_size(job: Any) -> int:
    size = sum(d.size for d in job.documents)
    return size if size or not job.k_octets else job.k_octets * 1024


def _job_pages(job: Any) -> int | None:
    from .spool.job import job_totals
    totals = job_totals(job) if getattr(job, "analyzed", False) else None
    if totals is not None:
        return totals["impressions"]
    for key in ("pages", "impressions", "job_impressions", "job-impressions"):
        v = job.extra.get(key) if isinstance(job.extra, dict) else None
        if isinstance(v, int) and not isinstance(v, bool):
            return v
    return job.impressions_completed or None


def _reasons(job: Any) -> str:
    reasons = [r for r in job.state_reasons if r != "none"]
    text = ", ".join(reasons)
    if job.state_message:
        text = f"{text}: {job.state_message}" if text else job.state_message
    return text


def _print_rich(renderable: Any) -> None:
    """On a terminal: rich as usual. Piped: no colours, no wrapping at 80 columns and
    no trailing padding, so that grep, cut and awk work on the lines."""
    from rich.console import Console
    out = sys.stdout
    if out.isatty():
        Console(file=out, highlight=False).print(renderable)
        return
    import io
    buf = io.StringIO()
    Console(file=buf, width=250, no_color=True, highlight=False, color_system=None).print(renderable)
    out.write("".join(line.rstrip() + "\n" for line in buf.getvalue().splitlines()))


# -- IPP attribute values, readable and JSON ----------------------------------------------


def _tag_name(tag: int) -> str:
    from .ipp.model import Tag
    try:
        return Tag(tag).name.lower().replace("_", "-")
    except ValueError:
        return f"0x{tag:02x}"


def _syntax(tag: int) -> str:
    from .ipp.model import Tag
    return "collection" if tag == Tag.BEGIN_COLLECTION else _tag_name(tag)


def _flatten_attributes(decoded: Any) -> list[Any]:
    """decode_attributes may give attributes, a Group or groups: make it attributes."""
    if decoded is None:
        return []
    if hasattr(decoded, "attributes") and not hasattr(decoded, "values"):
        return list(decoded.attributes)
    out: list[Any] = []
    for item in decoded:
        if hasattr(item, "attributes") and not hasattr(item, "values"):
            out.extend(item.attributes)
        else:
            out.append(item)
    return out


def _value_text(value: Any, tag: int) -> str:
    from .ipp.types import Collection, Range, Resolution, TextLang
    if value is None:
        return f"({_tag_name(tag)})"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Resolution):
        return f"{value.x}x{value.y}{'dpi' if value.units == 3 else 'dpcm'}"
    if isinstance(value, Range):
        return f"{value.lower}-{value.upper}"
    if isinstance(value, TextLang):
        return f"{value.text} [{value.lang}]"
    if isinstance(value, Collection):
        return "{" + " ".join(f"{a.name}={_values_text(a)}" for a in value) + "}"
    if isinstance(value, dt.datetime):
        return value.isoformat()
    if isinstance(value, (bytes, bytearray)):
        try:
            return bytes(value).decode("utf-8")
        except UnicodeDecodeError:
            return "0x" + bytes(value).hex()
    return str(value)


def _values_text(attr: Any) -> str:
    return ",".join(_value_text(v, t) for v, t in zip(attr.values, attr.tags()))


def _value_json(value: Any, tag: int) -> Any:
    from .ipp.types import Collection, Range, Resolution, TextLang
    if value is None:
        return {"out-of-band": _tag_name(tag)}
    if isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, Resolution):
        return {"x": value.x, "y": value.y, "units": "dpi" if value.units == 3 else "dpcm"}
    if isinstance(value, Range):
        return {"lower": value.lower, "upper": value.upper}
    if isinstance(value, TextLang):
        return {"text": value.text, "lang": value.lang}
    if isinstance(value, Collection):
        return {a.name: _attr_json(a) for a in value}
    if isinstance(value, dt.datetime):
        return value.isoformat()
    if isinstance(value, (bytes, bytearray)):
        try:
            return bytes(value).decode("utf-8")
        except UnicodeDecodeError:
            return {"hex": bytes(value).hex()}
    return str(value)


def _attr_json(attr: Any) -> Any:
    values = [_value_json(v, t) for v, t in zip(attr.values, attr.tags())]
    return values[0] if len(values) == 1 else values


def _decoded_attributes(job: Any) -> tuple[list[Any], str | None]:
    """(attributes, error): the job's stored IPP attributes, decoded."""
    if not job.attributes:
        return [], None
    try:
        from .ipp.codec import decode_attributes
        return _flatten_attributes(decode_attributes(job.attributes)), None
    except Exception as e:
        return [], f"cannot decode {len(job.attributes)} bytes of attributes: {type(e).__name__}: {e}"


def _json_default(o: Any) -> Any:
    if isinstance(o, (bytes, bytearray)):
        return {"hex": bytes(o).hex()}
    if isinstance(o, Path):
        return str(o)
    if dataclasses.is_dataclass(o) and not isinstance(o, type):
        return dataclasses.asdict(o)
    return str(o)


def _job_json(job: Any, *, attributes: bool) -> dict[str, Any]:
    rec = job.to_record()
    rec.pop("v", None)
    rec.pop("attributes", None)
    rec["state_keyword"] = _state_name(job.state)
    rec["size"] = _job_size(job)
    rec["pages"] = _job_pages(job)
    if attributes:
        attrs, err = _decoded_attributes(job)
        rec["attributes"] = {a.name: _attr_json(a) for a in attrs}
        if err:
            rec["attributes_error"] = err
    return rec


# -- the node's job store ----------------------------------------------------------------


def _state_dir(settings: Settings) -> Path:
    return settings.node.state_dir


@contextlib.contextmanager
def open_store(settings: Settings, *, readonly: bool = True) -> Iterator[Any]:
    """The node's JobStore over its LMDB environment. Read-only works while the node
    runs (LMDB readers never block its writer); writing is for a stopped node."""
    state = _state_dir(settings)
    if not (state / "db" / "data.mdb").exists():
        raise CommandError(f"no node state in {state} (no database in {state / 'db'}): "
                           "give the node's --state-dir or --config")
    from .db import Database, DatabaseError
    from .spool.store import JobStore
    try:
        db = Database(state / "db", readonly=readonly)
    except DatabaseError as e:
        raise CommandError(str(e)) from None
    try:
        yield JobStore(db, state / "spool")
    finally:
        db.close()


def _get_job(store: Any, job_id: int, settings: Settings) -> Any:
    from .spool.errors import JobNotFound
    try:
        job = store.get(job_id)
    except (JobNotFound, KeyError):
        job = None
    if job is None:
        raise CommandError(f"no job {job_id} in {_state_dir(settings)}")
    return job


LOCK_FILE = "node.lock"  # a running node may hold an exclusive flock on state_dir/LOCK_FILE


def _lock_held(settings: Settings) -> bool | None:
    """True/False if the state directory has a node lock file (held or not), None if
    it has none (older nodes): then only the IPP port tells."""
    path = _state_dir(settings) / LOCK_FILE
    try:
        import fcntl
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except (ImportError, OSError):
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except OSError:
        return True
    finally:
        os.close(fd)  # releases the shared lock at once
    return False


def _port_answers(settings: Settings, timeout: float = 1.0) -> bool:
    try:
        with socket.create_connection((settings.local_host, settings.ipp.port), timeout=timeout):
            return True
    except OSError:
        return False


def _node_running(settings: Settings) -> bool:
    """Is a node running on this state directory? Its IPP port (from the config)
    answering a TCP connect says yes; so does a held node lock."""
    locked = _lock_held(settings)
    if settings.ipp.port == 0:
        if locked is None:
            raise CommandError("ipp.port is 0 (a random port), so whether the node runs cannot be "
                               "told from its port; give the config the node runs with")
        if locked:
            raise CommandError("the node is running on a random port (ipp.port = 0); "
                               "cancel the job through its IPP port instead")
        return False
    if _port_answers(settings):
        return True
    if locked:
        raise CommandError(f"the node is running (it holds {_state_dir(settings) / LOCK_FILE}) but "
                           f"does not answer on {settings.local_host}:{settings.ipp.port}; "
                           "is --config the one it runs with?")
    return False


# -- IPP Cancel-Job against the running node ----------------------------------------------


def _cancel_request(uri: str, job_id: int, user: str) -> Any:
    from .ipp.model import Op, Tag
    from .ipp.types import Message
    msg = Message(version=(2, 0), code=Op.CANCEL_JOB, request_id=1)
    op = msg.add_group(Tag.OPERATION)
    op.add("attributes-charset", Tag.CHARSET, "utf-8")
    op.add("attributes-natural-language", Tag.LANGUAGE, "en")
    op.add("printer-uri", Tag.URI, uri)
    op.add("job-id", Tag.INTEGER, job_id)
    op.add("requesting-user-name", Tag.NAME, user or "root")
    return msg


def _post_ipp(host: str, port: int, path: str, body: bytes, timeout: float = 30.0) -> bytes:
    """One HTTP/1.1 POST of an IPP message; returns the response body."""
    import http.client
    conn = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        conn.request("POST", path, body=body, headers={
            "Content-Type": "application/ipp", "User-Agent": f"spoolproxy/{version_string()}",
            "Connection": "close"})
        resp = conn.getresponse()
        data = resp.read()
        if resp.status != 200:
            raise CommandError(f"the node answered HTTP {resp.status} {resp.reason} to Cancel-Job")
        return data
    finally:
        conn.close()


def ipp_request(settings: Settings, queue: str, msg: Any) -> Any:
    """Send one IPP request to the local node's queue and return the response Message."""
    host = settings.local_host
    uri = settings.queue_uri(queue, host=host)
    try:
        from .ipp.client import IppClient, IppClientError
    except ImportError:  # no client module: a plain HTTP/1.1 POST does the same
        from .ipp import codec
        try:
            body = _post_ipp(host, settings.ipp.port, f"/ipp/print/{queue}", codec.encode(msg))
        except OSError as e:
            raise CommandError(f"{uri}: {e}") from None
        resp, _ = codec.decode(body)
        return resp
    import trio

    async def go() -> Any:
        async with IppClient(uri, timeout=30) as c:
            return await c.request(msg)
    try:
        return trio.run(go)
    except IppClientError as e:
        raise CommandError(str(e)) from None


def _status_message(resp: Any) -> str:
    g = resp.operation
    for name in ("status-message", "detailed-status-message"):
        v = g.value(name)
        if v:
            return str(getattr(v, "text", v))
    return ""


# -- commands ------------------------------------------------------------------------------


def cmd_version(args: argparse.Namespace) -> int:
    print(f"spoolproxy {version_string()}")
    impl = engine_implementation()
    if impl is not None:
        print(f"document engine: {impl}")
    return EXIT_OK


def cmd_check_config(args: argparse.Namespace) -> int:
    if args.file and args.config and args.file != args.config:
        raise CommandError("give the file once: either FILE or --config FILE", EXIT_USAGE)
    path = args.file or args.config or config.default_path()
    settings = config.load(path)
    source = str(path) if path is not None else "embedded defaults"
    n, ipp = settings.node, settings.ipp
    print(f"{source}: OK")
    where = "" if n.state_dir.is_absolute() else f" ({n.state_dir} from the current directory)"
    print(f"node     {n.name} ({n.role}), state dir {n.state_dir.resolve()}{where}, log level {n.log_level}")
    random = " (a random free port: the node logs the one it got)" if ipp.port == 0 else ""
    print(f"ipp      listens on {config._url_host(ipp.listen)}:{ipp.port}{random}")
    if n.role == "site":
        sy = settings.sync
        print(f"sync     follows {sy.primary} (a poll every {sy.heartbeat:g} s; offline after {sy.offline_after:g} s "
              "without an answer)")
    elif n.role == "primary":
        o = settings.offline
        print(f"offline  policy for the sites: account {o.account}, credit {o.credit}, unknown users {o.unknown}, "
              f"passwords {o.password}")
    if not settings.queues:
        print("queues   none (the node accepts no jobs)")
    rows = []
    default = settings.default_queue
    for name, q in settings.queues.items():
        printer = q.printer or f"any of {', '.join(q.printers)}"
        if printer.startswith("folder:"):
            printer = f"{printer} ({settings.folder_path(name).resolve()})"
        rows.append((name + (" (default)" if name == default else ""), q.mode, printer,
                     settings.queue_uri(name)))
    if rows:
        w = [max(len(r[i]) for r in rows) for i in range(3)]
        print("queues")
        for r in rows:
            print(f"  {r[0]:<{w[0]}}  {r[1]:<{w[1]}}  -> {r[2]:<{w[2]}}  clients print to {r[3]}")
    return EXIT_OK


def _interrupt_only(exc: BaseException) -> bool:
    if isinstance(exc, KeyboardInterrupt):
        return True
    if isinstance(exc, BaseExceptionGroup):
        return all(_interrupt_only(e) for e in exc.exceptions)
    return False


@contextlib.contextmanager
def _sigterm_as_interrupt() -> Iterator[None]:
    """Until the node installs its own handler, SIGTERM stops it the way Ctrl-C does
    (trio turns the SIGINT into a clean KeyboardInterrupt at a safe point)."""
    try:
        previous = signal.getsignal(signal.SIGTERM)
    except (ValueError, AttributeError):
        yield
        return
    if previous not in (signal.SIG_DFL, None):
        yield
        return

    def on_term(signum: int, frame: Any) -> None:
        signal.raise_signal(signal.SIGINT)

    try:
        signal.signal(signal.SIGTERM, on_term)
    except ValueError:  # not the main thread
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def cmd_serve(args: argparse.Namespace) -> int:
    from . import logs
    settings = _settings(args.config,
                         node={"state_dir": args.state_dir, "log_level": args.log_level},
                         ipp={"listen": args.listen, "port": args.port})
    logs.setup(settings.node.log_level)
    try:
        from . import app
        serve = app.serve
    except (ImportError, AttributeError) as e:
        raise CommandError(f"the node runtime is not available: {e}") from None
    try:
        with _sigterm_as_interrupt():
            serve(settings)
    except ConfigError:
        raise
    except app.NodeStartError as e:
        print(f"spoolproxy: {e}", file=sys.stderr)
        return EXIT_FAIL
    except BaseException as e:
        if _interrupt_only(e):
            logging.getLogger("spoolproxy.node").info("stopped")
            return EXIT_OK
        if isinstance(e, (SystemExit, GeneratorExit)):
            raise
        logging.getLogger("spoolproxy.node").critical("stopped by an error: %s", e, exc_info=e)
        return EXIT_FAIL
    return EXIT_OK


def _store_settings(args: argparse.Namespace) -> Settings:
    return _settings(args.config, node={"state_dir": args.state_dir})


def cmd_jobs_list(args: argparse.Namespace) -> int:
    settings = _store_settings(args)
    with open_store(settings) as store:
        jobs = store.jobs(queue=args.queue or None, which=args.which, user=args.user or None)
    jobs = sorted(jobs, key=lambda j: j.id)
    if args.json:
        json.dump([_job_json(j, attributes=False) for j in jobs], sys.stdout, indent=2,
                  default=_json_default)
        sys.stdout.write("\n")
        return EXIT_OK
    if not jobs:
        print(f"no {'' if args.which == 'all' else args.which + ' '}jobs"
              + (f" in queue {args.queue}" if args.queue else "")
              + (f" of {args.user}" if args.user else ""))
        return EXIT_OK
    from rich.table import Table
    table = Table(box=None, pad_edge=False, header_style="bold")
    for col, kw in (("ID", {"justify": "right"}), ("QUEUE", {}), ("STATE", {}), ("USER", {}),
                    ("NAME", {"overflow": "fold"}), ("PAGES", {"justify": "right"}),
                    ("SIZE", {"justify": "right"}), ("CREATED", {"no_wrap": True}),
                    ("REASONS", {"overflow": "fold"})):
        table.add_column(col, **kw)
    for j in jobs:
        pages = _job_pages(j)
        table.add_row(str(j.id), j.queue, _state_name(j.state), j.user, j.name or "-",
                      "-" if pages is None else str(pages), _fmt_size(_job_size(j)),
                      _fmt_time(j.created), _reasons(j) or "-")
    _print_rich(table)
    return EXIT_OK


def _stage_rows(job: Any, stages: dict[str, Any]) -> list[tuple[str, str]]:
    rows = []
    if isinstance(stages.get("analysed"), (int, float)):
        rows.append(("analysed", f"{(stages['analysed'] - job.created) * 1000:.1f} ms after it arrived"))
    if isinstance(stages.get("admit_ms"), (int, float)):
        rows.append(("admission", f"{stages['admit_ms']:.3f} ms (filters, cost, credit check)"))
    if isinstance(stages.get("charge_ms"), (int, float)):
        rows.append(("charge", f"{stages['charge_ms']:.3f} ms (the debit, durable)"))
    if job.completed:
        rows.append(("completed", f"{(job.completed - job.created) * 1000:.1f} ms after it arrived"))
    return rows


def cmd_jobs_show(args: argparse.Namespace) -> int:
    settings = _store_settings(args)
    with open_store(settings) as store:
        job = _get_job(store, args.id, settings)
    if args.json:
        json.dump(_job_json(job, attributes=True), sys.stdout, indent=2, default=_json_default)
        sys.stdout.write("\n")
        return EXIT_OK
    pages = _job_pages(job)
    rows: list[tuple[str, Any]] = [
        ("queue", job.queue), ("uuid", job.uuid),
        ("state", f"{_state_name(job.state)} ({job.state})"),
        ("state reasons", ", ".join(job.state_reasons) or "-"),
        ("state message", job.state_message or "-"),
        ("user", job.user), ("name", job.name or "-"), ("host", job.host or "-"),
        ("created", _fmt_time(job.created)), ("processing", _fmt_time(job.processing)),
        ("completed", _fmt_time(job.completed)),
        ("closed", "yes" if job.closed else "no (more documents may come)"),
        ("pages", "-" if pages is None else pages), ("size", _fmt_size(_job_size(job))),
        ("impressions done", job.impressions_completed), ("k-octets", job.k_octets),
    ]
    d = job.delivery
    delivery = [("phase", d.phase), ("upstream job", d.upstream_job_id or "-"),
                ("upstream uri", d.upstream_job_uri or "-"), ("attempts", d.attempts),
                ("last error", d.last_error or "-"), ("next attempt", _fmt_time(d.next_attempt))]
    print(f"job {job.id}")
    for k, v in rows:
        print(f"  {k:<17} {v}")
    print("documents" + ("" if job.documents else "  none"))
    for doc in job.documents:
        print(f"  {doc.number:>3}  {doc.name or '-'}  {doc.format}  {_fmt_size(doc.size)}"
              f"  spool file {doc.path}")
        a = doc.analysis
        if a and "error" in a:
            print(f"       not counted: {a['kind']}: {a['error']}")
        elif a:
            print(f"       {a['format']}{' (claimed ' + a['claimed'] + ')' if a.get('mismatch') else ''}:"
                  f" {a['pages']} page(s), {a['impressions']} impression(s), {a['color_impressions']} in colour,"
                  f" {a['sheets']} sheet(s)" + (f", {a['undecided']} undecided" if a.get("undecided") else ""))
    if isinstance(job.extra, dict) and job.extra.get("uncounted"):
        print(f"  printed uncounted: {job.extra['uncounted']}")
    charge = job.extra.get("charge") if isinstance(job.extra, dict) else None
    if charge:
        money = settings.ledger.money
        status = ("refunded" if charge.get("refunded") else f"charged ({charge['txn']})" if charge.get("txn")
                  else "not charged yet")
        print("charge")
        for k, v in (("account", charge.get("account")), ("cost", money(int(charge.get("cost", 0)))),
                     ("how", charge.get("detail", "")), ("status", status),
                     ("filters", ", ".join(charge.get("applied") or ()) or "-")):
            print(f"  {k:<17} {v}")
    stages = job.extra.get("stages") if isinstance(job.extra, dict) else None
    if stages:  # how long the job path took (spool.job.record_stage)
        print("timing")
        for k, v in _stage_rows(job, stages):
            print(f"  {k:<17} {v}")
    counted = job.extra.get("printer_pages") if isinstance(job.extra, dict) else None
    if counted:  # the printer's page counter over SNMP, before and after this job
        delivery.append(("printer counted", f"{counted['counted']} {counted.get('unit') or 'page(s)'} "
                                            f"(counter {counted['before']} -> {counted['after']}"
                                            f"{'' if counted.get('settled') else ', still moving'})"))
    print("delivery")
    for k, v in delivery:
        print(f"  {k:<17} {v}")
    attrs, err = _decoded_attributes(job)
    print("attributes" + ("" if attrs or err else "  none"))
    if err:
        print(f"  ({err})")
    width = max((len(a.name) for a in attrs), default=0)
    for a in attrs:
        syntax = "" if a.is_out_of_band() else f"  ({_syntax(a.tag)})"
        print(f"  {a.name:<{width}}  {_values_text(a)}{syntax}")
    if job.extra:
        print("extra")
        for k, v in job.extra.items():
            print(f"  {k:<17} {json.dumps(v, default=_json_default)}")
    return EXIT_OK


def cmd_jobs_cancel(args: argparse.Namespace) -> int:
    from .ipp.model import JobState, Status
    settings = _store_settings(args)
    with open_store(settings) as store:
        job = _get_job(store, args.id, settings)
    if job.is_final:
        raise CommandError(f"job {job.id} is already {_state_name(job.state)}; nothing to cancel")
    if _node_running(settings):
        # the node owns its jobs while it runs: ask it, as the job's owner would
        msg = _cancel_request(settings.queue_uri(job.queue, host=settings.local_host), job.id, job.user)
        resp = ipp_request(settings, job.queue, msg)
        if resp.code >= 0x0100:
            try:
                name = Status(resp.code).keyword
            except ValueError:
                name = f"0x{resp.code:04x}"
            text = _status_message(resp)
            raise CommandError(f"the node refused to cancel job {job.id}: {name}" + (f": {text}" if text else ""))
        print(f"job {job.id} canceled (queue {job.queue}, by the running node)")
        return EXIT_OK
    # the node is stopped: change the record; the node finds the job canceled when it starts
    with open_store(settings, readonly=False) as store:
        job = _get_job(store, args.id, settings)
        if job.is_final:
            raise CommandError(f"job {job.id} is already {_state_name(job.state)}; nothing to cancel")
        job.state = JobState.CANCELED
        job.state_reasons = ["job-canceled-by-operator"]
        job.state_message = "canceled with `spoolproxy jobs cancel` while the node was stopped"
        job.completed = time.time()
        import trio
        trio.run(store.save, job)
    print(f"job {job.id} canceled (queue {job.queue}; node not running, marked in {_state_dir(settings)})")
    if job.delivery.phase in ("sending", "sent"):
        where = job.delivery.upstream_job_uri or "the printer"
        print(f"note: the printer already has (part of) this job ({where}); it is not canceled there",
              file=sys.stderr)
    return EXIT_OK


# -- argument parsing ----------------------------------------------------------------------


def _positive_int(text: str) -> int:
    try:
        n = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if n < 1:
        raise argparse.ArgumentTypeError(f"must be 1 or more: {n}")
    return n


def _port(text: str) -> int:
    try:
        n = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a port number: {text!r}") from None
    if not 0 <= n <= 65535:
        raise argparse.ArgumentTypeError(f"port must be 0..65535: {n}")
    return n


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="spoolproxy", description="Job-spooling IPP/LPD print proxy.",
        epilog=f"Without --config, ${config.ENV_CONFIG} names the config file; "
               "without either, the embedded defaults are used.")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")

    def state_options(sp: argparse.ArgumentParser) -> None:
        sp.add_argument("--config", "-c", metavar="FILE", help="TOML config file")
        sp.add_argument("--state-dir", metavar="DIR", help="node state directory (overrides node.state_dir)")

    sp = sub.add_parser("serve", help="run the node")
    state_options(sp)
    sp.add_argument("--listen", metavar="ADDR", help="IPP listen address (overrides ipp.listen)")
    sp.add_argument("--port", type=_port, metavar="N", help="IPP port (overrides ipp.port)")
    sp.add_argument("--log-level", type=str.lower, choices=("debug", "info", "warning", "error"),
                    help="overrides node.log_level")
    sp.set_defaults(func=cmd_serve)

    sp = sub.add_parser("check-config", help="validate a config file and summarise it")
    sp.add_argument("file", nargs="?", metavar="FILE")
    sp.add_argument("--config", "-c", metavar="FILE", help=argparse.SUPPRESS)
    sp.set_defaults(func=cmd_check_config)

    sp = sub.add_parser("version", help="print the version")
    sp.set_defaults(func=cmd_version)

    jobs = sub.add_parser("jobs", help="list, show and cancel spooled jobs")
    jsub = jobs.add_subparsers(dest="jobs_command", metavar="ACTION")
    jobs.set_defaults(func=None, parser=jobs)

    sp = jsub.add_parser("list", help="list jobs")
    state_options(sp)
    sp.add_argument("--queue", "-q", metavar="Q")
    sp.add_argument("--which", choices=WHICH, default="not-completed")
    sp.add_argument("--user", "-u", metavar="U")
    sp.add_argument("--json", action="store_true", help="machine-readable output")
    sp.set_defaults(func=cmd_jobs_list)

    sp = jsub.add_parser("show", help="show every field of one job")
    state_options(sp)
    sp.add_argument("--json", action="store_true", help="machine-readable output")
    sp.add_argument("id", type=_positive_int, metavar="ID")
    sp.set_defaults(func=cmd_jobs_show)

    sp = jsub.add_parser("cancel", help="cancel a job (through the node if it runs)")
    state_options(sp)
    sp.add_argument("id", type=_positive_int, metavar="ID")
    sp.set_defaults(func=cmd_jobs_cancel)

    from .cli_ledger import add_parsers
    add_parsers(sub, state_options)
    from .cli_release import add_parsers as add_release_parsers
    add_release_parsers(sub, state_options)
    from .cli_sync import add_parsers as add_sync_parsers
    add_sync_parsers(sub, state_options)
    from .cli_bench import add_parsers as add_bench_parsers
    add_bench_parsers(sub)

    p.set_defaults(func=None, parser=p)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:  # --help (0) or a usage error (2, already printed)
        return e.code if isinstance(e.code, int) else EXIT_USAGE
    if args.func is None:
        args.parser.print_help(sys.stderr)
        return EXIT_USAGE
    try:
        return args.func(args)
    except ConfigError as e:
        print(str(e), file=sys.stderr)
        return EXIT_USAGE
    except CommandError as e:
        print(f"spoolproxy: {e}", file=sys.stderr)
        return e.code
    except KeyboardInterrupt:
        return 130 if args.func is not cmd_serve else EXIT_OK
    except BrokenPipeError:  # `spoolproxy jobs list | head`: the reader is gone, not an error
        with contextlib.suppress(OSError, ValueError, AttributeError):
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_OK
