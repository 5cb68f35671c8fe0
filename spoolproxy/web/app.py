"""The node's ASGI application (FastAPI).

URLs that MFD vendors and scripts rely on, stable across versions:

    /api/openapi.json        the OpenAPI document
    /api/docs                its Swagger UI
    /api/v1/health           liveness, no authentication
    /api/v1/admin/...        the admin API: Authorization: Bearer ADMIN_TOKEN
    /api/v1/device/...       the device API of MFDs and release stations: X-Device-Key
    /release                 the release-station page (HTML)

A router plugs in through the lists below (or ``create_app(ctx, routers=...,
admin_routers=...)``): a router in ADMIN_ROUTERS is mounted under /api/v1/admin behind
:func:`spoolproxy.web.auth.require_admin`; one in ROUTERS under /api/v1 as it is. Its
routes reach the node through ``ctx: WebContext = Depends(get_context)`` and report
errors by raising :class:`spoolproxy.web.problems.Problem`.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Literal, Sequence

from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.openapi.utils import get_openapi
from fastapi.responses import RedirectResponse
from pydantic import BaseModel, Field

from .. import __version__
from ..config import Settings
from . import problems
from .auth import require_admin

API_PREFIX = "/api/v1"
ADMIN_PREFIX = "/admin"
OPENAPI_URL = "/api/openapi.json"
DOCS_URL = "/api/docs"


class CloseUnreadBody:
    """ASGI middleware: a response that starts before the request body was read to its
    end (a 401, 413 or 422 to an upload) says ``Connection: close``. Otherwise the
    rest of that body stays in the connection, and hypercorn's h11 protocol could
    hang the next request on it (seen with chunked uploads)."""

    def __init__(self, app: Any):
        self.app = app

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or ())
        has_body = headers.get(b"transfer-encoding", b"").lower() == b"chunked" or \
            headers.get(b"content-length", b"0") not in (b"0", b"")
        done = not has_body

        async def tracked_receive() -> dict:
            nonlocal done
            message = await receive()
            if message["type"] == "http.request" and not message.get("more_body", False):
                done = True
            elif message["type"] == "http.disconnect":
                done = True
            return message

        async def guarded_send(message: dict) -> None:
            if message["type"] == "http.response.start" and not done:
                message = dict(message)
                message["headers"] = [*(h for h in message.get("headers", ()) if h[0].lower() != b"connection"),
                                      (b"connection", b"close")]
            await send(message)

        await self.app(scope, tracked_receive, guarded_send)


@dataclass
class WebContext:
    """What the web routes can reach of the node. ``ledger`` and ``store`` are filled in
    by the node for the routers that need them."""

    settings: Settings
    admin_token: str = field(repr=False)
    started: float = field(default_factory=time.time)  # wall-clock time the node started
    queue_uris: dict[str, str] = field(default_factory=dict)  # queue -> ipp:// URI clients print to
    ledger: Any = None
    store: Any = None
    release: Any = None  # spoolproxy.release.Release
    devices: Any = None  # spoolproxy.release.Devices
    audit: Any = None  # spoolproxy.release.Audit
    primary: Any = None  # spoolproxy.sync.Primary on a primary node
    site: Any = None  # spoolproxy.sync.Site on a site node
    upstream: Any = None  # spoolproxy.upstream.Upstream: the printers' status


def get_context(request: Request) -> WebContext:
    """FastAPI dependency: the node's WebContext."""
    return request.app.state.ctx


# -- /api/v1/health --------------------------------------------------------------------------

health_router = APIRouter(tags=["node"])


class Health(BaseModel):
    status: Literal["ok"] = "ok"
    node: str
    role: str
    version: str


@health_router.get("/health", response_model=Health, summary="Is the node up?")
async def health(ctx: WebContext = Depends(get_context)) -> Health:
    n = ctx.settings.node
    return Health(node=n.name, role=n.role, version=__version__)


# -- /api/v1/admin/node ----------------------------------------------------------------------

node_router = APIRouter(tags=["admin"])


class QueueInfo(BaseModel):
    printer: str = Field(description="the printer the queue sends to (ipp://, socket://, folder:); "
                                     "empty for a findme queue")
    mode: Literal["direct", "hold", "findme"]
    printers: list[str] = Field(default_factory=list, description="findme: the queues it releases at")
    default: bool
    uri: str | None = Field(None, description="the ipp:// URI clients print to")


class NodeStatus(BaseModel):
    name: str
    role: str
    version: str
    state_dir: str
    started: float = Field(description="Unix time the node started")
    uptime: float = Field(description="seconds since the node started")
    queues: dict[str, QueueInfo]


@node_router.get("/node", response_model=NodeStatus, summary="The node: name, role, state, queues")
async def node_status(ctx: WebContext = Depends(get_context)) -> NodeStatus:
    s = ctx.settings
    default = s.default_queue
    queues = {name: QueueInfo(printer=q.printer, mode=q.mode, printers=q.printers, default=name == default,
                              uri=ctx.queue_uris.get(name))
              for name, q in s.queues.items()}
    return NodeStatus(name=s.node.name, role=s.node.role, version=__version__,
                      state_dir=str(s.node.state_dir.resolve()), started=ctx.started,
                      uptime=max(0.0, time.time() - ctx.started), queues=queues)


# -- the application -------------------------------------------------------------------------

from .admin_ledger import router as ledger_router  # noqa: E402 (it imports WebContext, get_context from here)
from .admin_printers import router as admin_printers_router  # noqa: E402
from .admin_release import router as admin_release_router  # noqa: E402
from .release_api import router as device_router  # noqa: E402
from .sync_api import admin_router as admin_sync_router, router as sync_router  # noqa: E402

# under /api/v1, no admin token (the device API and the sync API have their own keys)
ROUTERS: list[APIRouter] = [health_router, device_router, sync_router]
# under /api/v1/admin, admin token required
ADMIN_ROUTERS: list[APIRouter] = [node_router, ledger_router, admin_release_router, admin_sync_router,
                                  admin_printers_router]

_AUTH_RESPONSES: dict[int | str, dict[str, Any]] = {
    401: {"description": "No admin token (the response has WWW-Authenticate: Bearer)"},
    403: {"description": "The admin token is wrong"},
}


def create_app(ctx: WebContext, *, routers: Sequence[APIRouter] = (),
               admin_routers: Sequence[APIRouter] = ()) -> FastAPI:
    """The ASGI app of a node: ROUTERS + ``routers`` under /api/v1, ADMIN_ROUTERS +
    ``admin_routers`` under /api/v1/admin behind the admin token."""
    app = FastAPI(title="spoolproxy", version=__version__, openapi_url=OPENAPI_URL, docs_url=DOCS_URL,
                  redoc_url=None, swagger_ui_oauth2_redirect_url=None,
                  # operationId = the function's name (stable for client generators): keep them unique
                  generate_unique_id_function=lambda route: route.name,
                  description="spoolproxy node API. Errors are RFC 9457 problem details "
                              "(application/problem+json).")
    app.state.ctx = ctx
    problems.install(app)
    app.add_middleware(CloseUnreadBody)

    admin = APIRouter(prefix=ADMIN_PREFIX, dependencies=[Depends(require_admin)], responses=_AUTH_RESPONSES)
    for r in (*ADMIN_ROUTERS, *admin_routers):
        admin.include_router(r)
    api = APIRouter(prefix=API_PREFIX)
    for r in (*ROUTERS, *routers):
        api.include_router(r)
    api.include_router(admin)
    app.include_router(api)
    from .release_page import BASE as RELEASE_PAGE, router as release_page_router
    app.include_router(release_page_router)
    from .metrics import router as metrics_router
    app.include_router(metrics_router)

    @app.get("/", include_in_schema=False)
    async def _root() -> RedirectResponse:
        return RedirectResponse(RELEASE_PAGE, status_code=307)

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(title=app.title, version=app.version, description=app.description,
                                 routes=app.routes)
            app.openapi_schema = problems.document_problems(schema)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    return app
