"""Builds a node and runs every service in one trio nursery.

Structured concurrency: the database writer, upstream delivery, the IPP printer
service and the IPP listener are tasks of one nursery, so none outlives the node and
a crashed task takes the node down loudly. SIGINT/SIGTERM cancel it cleanly.
"""
from __future__ import annotations

import fcntl
import logging
import os
import signal
import socket
import time
from dataclasses import dataclass, field
from pathlib import Path

import trio

from . import collector
from .config import Settings

log = logging.getLogger("spoolproxy.node")


@dataclass
class NodeInfo:
    """What a started node reports (tests and the CLI use the real ports)."""

    ipp_port: int
    state_dir: Path
    queues: dict[str, str] = field(default_factory=dict)  # name -> client URI
    recovered: int = 0
    web_port: int | None = None  # None: web.enabled is false
    lpd_port: int | None = None  # None: lpd.enabled is false
    store: object = field(default=None, repr=False, compare=False)  # the JobStore, for in-process callers


def _url_host(listen: str, configured: str | None) -> str:
    if configured:
        return configured
    if listen in ("0.0.0.0", "::", ""):
        return socket.gethostname()
    return f"[{listen}]" if ":" in listen else listen


class NodeStartError(RuntimeError):
    """The node cannot start; the message says why in an administrator's words."""


class StateDirBusy(NodeStartError):
    """Another node already runs on this state directory."""


class ListenError(NodeStartError):
    """A listening port cannot be opened (in use, no permission)."""


class _node_lock:
    """Exclusive lock on STATE_DIR/node.lock for the node's lifetime: two nodes on one
    state directory would hand out the same job ids. The CLI reads it to know whether
    a node is running."""

    def __init__(self, state_dir: Path):
        self.path = state_dir / "node.lock"

    def __enter__(self):
        self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(self.fd)
            raise StateDirBusy(f"another spoolproxy node is running on {self.path.parent}") from None
        os.ftruncate(self.fd, 0)
        os.write(self.fd, f"{os.getpid()}\n".encode())
        return self

    def __exit__(self, *exc):
        os.close(self.fd)


async def run_node(settings: Settings, *, task_status=trio.TASK_STATUS_IGNORED) -> None:
    from . import pdl
    from .db import Database
    from .ipp.operations import PrinterService
    from .ipp.server import IppServer
    from .spool import JobStore
    from .ledger import Ledger
    from .ledger.charge import Charger
    from .policy.admission import Admission
    from .spool.analysis import Analyzer
    from .release import Audit, Release
    from .upstream import Upstream

    state_dir = settings.node.state_dir
    state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    started = time.time()
    from .sync import Primary, Site, SiteKeyError
    from .sync.journal import REPLICATED
    role = settings.node.role
    with _node_lock(state_dir), Database(state_dir / "db", sync=settings.node.fsync,
                                         changelog=REPLICATED if role == "primary" else frozenset()) as db:
        ledger = Ledger(db)
        money = settings.ledger.money
        primary = Primary(db, ledger, settings.offline, ledger_settings=settings.ledger) if role == "primary" else None
        try:
            site = Site(settings, db, ledger) if role == "site" else None
        except SiteKeyError as e:
            raise NodeStartError(str(e)) from None
        charger = Charger(ledger, money, site=site)
        store = JobStore(db, state_dir / "spool", fsync=settings.node.fsync, analysis=True,
                         on_save=charger.on_save)
        recovered = store.recover()
        if recovered:
            log.info("recovered %d unfinished job(s) from %s", len(recovered), state_dir)
        collector.settle()  # the loaded job records live as long as the node
        admission = Admission(ledger, settings.queues, settings.ledger, store, money=money, site=site)
        admission.load_recent()
        upstream = Upstream(settings, store, charger=charger)
        service = PrinterService(settings, store, upstream, started=started, detect=pdl.detect)
        server = IppServer(settings, service)
        async with trio.open_nursery() as nursery:
            await nursery.start(db.run)
            if primary is not None:
                await primary.publish_policy()
            if site is not None:
                await nursery.start(site.run)
            refunded = await charger.settle(store)
            if refunded:
                log.info("refunded %d job(s) that ended unprinted before the last stop", refunded)
            await nursery.start(service.run)
            await nursery.start(upstream.run)
            # one engine process per core but the one this process mostly uses
            analyzer = Analyzer(store, settings.queues, workers=max(1, (os.cpu_count() or 2) - 1),
                                on_ready=upstream.wake, admission=admission)
            await nursery.start(analyzer.run)
            nursery.start_soon(store.run_purger, settings.node.job_history)
            nursery.start_soon(store.run_settler)
            release = Release(settings, store, ledger, upstream, Audit(db), run=analyzer.convert, money=money,
                              site=site)
            await nursery.start(release.run_expiry)
            try:
                listeners = await nursery.start(server.serve)
            except OSError as e:
                raise ListenError(f"cannot listen for IPP on {settings.ipp.listen}:{settings.ipp.port}: "
                                  f"{e.strerror or e}") from None
            port = listeners[0].socket.getsockname()[1]
            host = _url_host(settings.ipp.listen, settings.ipp.hostname)
            info = NodeInfo(ipp_port=port, state_dir=state_dir, recovered=len(recovered), store=store)
            log.info("%s node %r, state in %s", settings.node.role, settings.node.name, state_dir.resolve())
            for name, q in settings.queues.items():
                uri = f"ipp://{host}:{port}/ipp/print/{name}"
                info.queues[name] = uri
                log.info("IPP queue %-12s %s -> %s (%s)%s", name, uri,
                         q.printer or f"any of {', '.join(q.printers)}", q.mode,
                         " [default]" if name == settings.default_queue else "")
            if settings.lpd.enabled:
                info.lpd_port = await _start_lpd(nursery, settings, service, host)
            if settings.web.enabled:
                info.web_port = await _start_web(nursery, settings, info, started=started, store=store,
                                                   ledger=ledger, release=release, primary=primary, site=site,
                                                   upstream=upstream)
            task_status.started(info)


async def _start_lpd(nursery: trio.Nursery, settings: Settings, service, host: str) -> int:
    """The LPD listener; returns its port."""
    from .lpd import LpdServer

    try:
        listeners = await nursery.start(LpdServer(settings, service).serve)
    except OSError as e:
        raise ListenError(f"cannot listen for LPD on {settings.lpd.listen}:{settings.lpd.port}: "
                          f"{e.strerror or e}") from None
    port = listeners[0].socket.getsockname()[1]
    for name in settings.queues:
        log.info("LPD queue %-12s lpd://%s:%d/%s", name, host, port, name)
    return port


async def _start_web(nursery: trio.Nursery, settings: Settings, info: NodeInfo, *, started: float, store,
                     ledger=None, release=None, primary=None, site=None, upstream=None) -> int:
    """The web server (admin API, ...) as a task of the node's nursery; returns its port."""
    from .web import AdminTokenError, WebContext, admin_token, create_app, serve_web

    try:
        token = admin_token(settings)  # logs where it is, never the token
    except (OSError, AdminTokenError) as e:
        raise NodeStartError(f"cannot set up the admin API token: {e}") from None
    from .release import Devices
    app = create_app(WebContext(settings, token, started=started, queue_uris=dict(info.queues), store=store,
                                ledger=ledger, release=release, devices=Devices(store.db),
                                audit=release.audit if release is not None else None,
                                primary=primary, site=site, upstream=upstream))
    try:
        bound = await nursery.start(serve_web, settings, app)
    except OSError as e:
        raise ListenError(f"cannot listen for web on {settings.web.listen}:{settings.web.port}: "
                          f"{e.strerror or e}") from None
    log.info("web  %s://%s:%d/", bound.scheme, _url_host(settings.web.listen, settings.ipp.hostname), bound.port)
    return bound.port


def serve(settings: Settings) -> None:
    """Run a node until SIGINT or SIGTERM (blocking)."""

    async def main() -> None:
        async with trio.open_nursery() as nursery:
            async def stop_on_signal() -> None:
                with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
                    async for signum in signals:
                        log.info("stopping on %s", signal.Signals(signum).name)
                        nursery.cancel_scope.cancel()
                        return

            nursery.start_soon(stop_on_signal)
            await nursery.start(run_node, settings)

    try:
        trio.run(main)
    except BaseExceptionGroup as group:
        raise _single(group) from None
    log.info("stopped (pid %d)", os.getpid())


def _single(group: BaseExceptionGroup) -> BaseException:
    """The one error inside nested nursery groups, so that callers see a StateDirBusy
    rather than a group of one; a group of several stays a group."""
    while isinstance(group, BaseExceptionGroup) and len(group.exceptions) == 1:
        group = group.exceptions[0]
    return group
