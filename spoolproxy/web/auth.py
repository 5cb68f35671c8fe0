"""The admin API's bearer token.

Every route under ``/api/v1/admin`` needs ``Authorization: Bearer TOKEN``: no token is
a 401 with ``WWW-Authenticate: Bearer``, a wrong one a 403. The token is
``web.admin_token`` from the configuration or, when that is not set, a random one the
node writes to ``STATE_DIR/admin-token`` (mode 0600) at its first start and reuses
after. The token itself is never logged.

A router of its own guards itself with the dependency::

    from spoolproxy.web.auth import require_admin
    router = APIRouter(dependencies=[Depends(require_admin)])

(routers in ``spoolproxy.web.app.ADMIN_ROUTERS`` are guarded already).
"""
from __future__ import annotations

import hmac
import logging
import os
import secrets
from pathlib import Path
from typing import TYPE_CHECKING

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from .problems import Problem

if TYPE_CHECKING:
    from ..config import Settings

log = logging.getLogger("spoolproxy.web")

TOKEN_FILE = "admin-token"
_CHALLENGE = {"WWW-Authenticate": 'Bearer realm="spoolproxy admin"'}


class AdminTokenError(ValueError):
    """STATE_DIR/admin-token exists but cannot be used; the message says why."""


def token_path(state_dir: Path) -> Path:
    return state_dir / TOKEN_FILE


def admin_token(settings: Settings) -> str:
    """The admin token: ``web.admin_token``, or the one in STATE_DIR/admin-token (made
    on first use). Raises AdminTokenError or OSError when the file is unusable."""
    if settings.web.admin_token is not None:
        log.info("admin API token from the configuration (web.admin_token)")
        return settings.web.admin_token
    path = token_path(settings.node.state_dir)
    existed = path.exists()
    token = read_or_create_token(path)
    log.info("admin API token in %s%s", path.resolve(), "" if existed else " (new)")
    return token


def read_or_create_token(path: Path) -> str:
    try:
        st = path.stat()
    except FileNotFoundError:
        return _create(path)
    if st.st_mode & 0o077:
        os.chmod(path, 0o600)
        log.warning("%s was readable by other users; it is 0600 now (consider replacing the token)", path)
    token = path.read_text(encoding="ascii", errors="replace").strip()
    if not token:
        log.warning("%s was empty; made a new admin token", path)
        return _create(path)
    if len(token) < 16 or any(c.isspace() or not c.isprintable() or not c.isascii() for c in token):
        raise AdminTokenError(f"{path}: not a usable token (one line of at least 16 ASCII characters "
                              "without spaces); remove the file and the node makes a new one")
    return token


def _create(path: Path) -> str:
    token = secrets.token_urlsafe(32)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        try:
            os.fchmod(fd, 0o600)  # whatever the umask
            os.write(fd, (token + "\n").encode("ascii"))
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    dfd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dfd)
    finally:
        os.close(dfd)
    return token


# -- the dependency ------------------------------------------------------------------------

_bearer = HTTPBearer(auto_error=False, scheme_name="adminToken",
                     description="the admin token: web.admin_token or the contents of STATE_DIR/admin-token")


def tokens_match(given: str, expected: str) -> bool:
    """Constant-time comparison (no timing hint about how much of the token was right)."""
    return hmac.compare_digest(given.encode("utf-8", "surrogateescape"),
                               expected.encode("utf-8", "surrogateescape"))


async def require_admin(request: Request,
                        credentials: HTTPAuthorizationCredentials | None = Depends(_bearer)) -> None:
    """FastAPI dependency: the request carries the admin token, or a 401/403 problem."""
    if credentials is None or not credentials.credentials:
        raise Problem(401, "Authentication required",
                      "this needs the admin token: Authorization: Bearer TOKEN", slug="unauthorized",
                      headers=_CHALLENGE)
    if not tokens_match(credentials.credentials, request.app.state.ctx.admin_token):
        raise Problem(403, "Forbidden", "the admin token is not valid", slug="forbidden")
