"""The node's web side: an ASGI app (FastAPI) served by hypercorn's trio worker.

    app = create_app(WebContext(settings, admin_token(settings)))
    binding = await nursery.start(serve_web, settings, app)   # binding.port: the real port

Routers plug in through ``spoolproxy.web.app.ROUTERS`` / ``ADMIN_ROUTERS`` (or the
``routers=`` / ``admin_routers=`` arguments of create_app); errors are
:class:`Problem` (RFC 9457 application/problem+json).
"""
from .app import ADMIN_ROUTERS, ROUTERS, WebContext, create_app, get_context
from .auth import AdminTokenError, admin_token, require_admin
from .problems import Problem
from .server import WebBinding, serve_web

__all__ = ["ADMIN_ROUTERS", "ROUTERS", "AdminTokenError", "Problem", "WebBinding", "WebContext", "admin_token",
           "create_app", "get_context", "require_admin", "serve_web"]
