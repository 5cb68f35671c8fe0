"""The web listener: hypercorn's trio worker serving the node's ASGI app.

``await nursery.start(serve_web, settings, app)`` binds the socket(s) of
``settings.web`` itself (like the IPP listener, with ``trio.open_tcp_listeners``, so a
busy port is a plain OSError before anything else starts and port 0 works), hands
them to ``hypercorn.trio.serve`` and returns once hypercorn accepts connections, with a
:class:`WebBinding` that has the real port. Cancelling the nursery stops it at once
(open requests are cut off); a ``shutdown_trigger`` that returns stops it gracefully
(hypercorn stops accepting and gives open requests ``graceful_timeout`` seconds).

hypercorn's own log goes to the "spoolproxy.web" logger: its errors as errors, its
"Running on ..." chatter at debug level, one access line per request at debug level on
"spoolproxy.web.access".
"""
from __future__ import annotations

import logging
import socket
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import trio
from hypercorn.config import Config, Sockets
from hypercorn.logging import Logger
from hypercorn.trio import serve as hypercorn_serve

from ..config import Settings

log = logging.getLogger("spoolproxy.web")
access_log = logging.getLogger("spoolproxy.web.access")


@dataclass(frozen=True)
class WebBinding:
    """Where the web server listens (the first address when there are several)."""

    scheme: str  # "http" or "https"
    host: str  # the bound address, e.g. 0.0.0.0, 127.0.0.1, ::
    port: int

    @property
    def local_url(self) -> str:
        """A URL a process on this machine can use (wildcard -> loopback)."""
        host = {"0.0.0.0": "127.0.0.1", "::": "::1"}.get(self.host, self.host)
        host = f"[{host}]" if ":" in host else host
        return f"{self.scheme}://{host}:{self.port}/"


class _Log(Logger):
    """hypercorn's logger, writing to ours."""

    def __init__(self, config: Config) -> None:
        config.accesslog = access_log  # a Logger instance is used as it is (no handlers added)
        config.errorlog = log
        super().__init__(config)

    async def access(self, request: Any, response: Any, request_time: float) -> None:
        if access_log.isEnabledFor(logging.DEBUG):
            client = request.get("client") or ("-",)
            status = response.get("status", "-") if response else "-"
            access_log.debug("%s %s %s %s %.1f ms", client[0], request.get("method", "GET"),
                             request.get("path", ""), status, request_time * 1000)

    async def info(self, message: str, *args: Any, **kwargs: Any) -> None:
        log.debug(message, *args, **kwargs)  # "Running on http://... (CTRL + C to quit)": we say it ourselves


class _Config(Config):
    """A hypercorn Config that serves on sockets bound beforehand.

    hypercorn binds in ``create_sockets`` only after the ASGI lifespan startup, inside its
    nurseries, and reports the binds as strings; binding first keeps a busy port a plain
    OSError and gives the real port of port 0. hypercorn owns the sockets once it took
    them (its trio listeners close them)."""

    logger_class = _Log

    def __init__(self, sockets: list[socket.socket], tls: bool) -> None:
        self._ours = sockets
        self._tls = tls

    def create_sockets(self) -> Sockets:
        sockets, self._ours = self._ours, []
        return Sockets(sockets, [], []) if self._tls else Sockets([], sockets, [])

    def close_unclaimed(self) -> None:
        for sock in self._ours:
            sock.close()
        self._ours = []


def _config(settings: Settings, sockets: list[socket.socket]) -> _Config:
    web = settings.web
    config = _Config(sockets, tls=web.certfile is not None)
    config.include_server_header = False
    if web.certfile is not None and web.keyfile is not None:
        config.certfile = str(web.certfile)
        config.keyfile = str(web.keyfile)
    return config


async def serve_web(settings: Settings, app: Any, *,
                    shutdown_trigger: Callable[[], Awaitable[None]] | None = None,
                    task_status: trio.TaskStatus[WebBinding] = trio.TASK_STATUS_IGNORED) -> None:
    """Serve ``app`` on ``settings.web.listen``:``settings.web.port`` until cancelled (or
    until ``shutdown_trigger`` returns). Reports a WebBinding to ``nursery.start`` once
    connections are accepted. A port that cannot be bound and a TLS certificate or key
    that cannot be loaded raise OSError before that."""
    web = settings.web
    tls = _config(settings, [])
    if tls.ssl_enabled:
        try:
            tls.create_ssl_context()  # hypercorn would load it only after the lifespan startup
        except OSError as e:
            why = getattr(e, "reason", None) or e.strerror or str(e)
            raise OSError(f"cannot load the TLS certificate {web.certfile} with key {web.keyfile}: {why}") from None
    listeners = await trio.open_tcp_listeners(web.port, host=web.listen)
    config = _config(settings, [socket.socket(fileno=lst.socket.detach()) for lst in listeners])
    try:
        host, port = config._ours[0].getsockname()[:2]
        binding = WebBinding("https" if config.ssl_enabled else "http", host, port)

        class _Started:
            # hypercorn calls task_status.started(binds) once it accepts; pass on our WebBinding
            def started(self, value: Any = None) -> None:
                task_status.started(binding)

        await hypercorn_serve(app, config, shutdown_trigger=shutdown_trigger,
                              task_status=_Started(), mode="asgi")  # type: ignore[arg-type]
    finally:
        config.close_unclaimed()
