"""The primary's sync API, under ``/api/v1/sync``: what its sites follow and send.
Bodies are msgpack (``application/msgpack``); each site authenticates with its own
key (``Authorization: Bearer sps_...``, made by ``spoolproxy sites add NAME``).
Errors are problem details (JSON) like the rest of the API.

    GET  /snapshot              every mirrored record and the change seq it is at
    GET  /changes?after&limit   the change feed from a seq on
    POST /journal               {"entries": [...], "require_funds": bool} -> {"answers": [...]}
    POST /login                 {"user", "password"} -> {"ok", "user": record with hashes}

And under the admin API (``/api/v1/admin/sync``): this node's sync state: a site's
link to its primary (online or offline, since when, the journal), a primary's sites
and the entries it could not apply.
"""
from __future__ import annotations

from typing import Any

import trio
from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response

from ..ledger.passwords import verify_secret
from ..sync.primary import SyncError, parse_journal
from ..sync.wire import MAX_BODY, MEDIA_TYPE, pack, unpack
from .app import WebContext, get_context
from .problems import Problem

router = APIRouter(prefix="/sync", tags=["sync"])
admin_router = APIRouter(tags=["admin"])
_CHALLENGE = {"WWW-Authenticate": 'Bearer realm="spoolproxy sync"'}


def _primary(ctx: WebContext):
    if ctx.primary is None:
        raise Problem(404, "Not a primary", "this node is not a primary: sites follow the primary",
                      slug="not-a-primary")
    return ctx.primary


def site_of(request: Request, ctx: WebContext = Depends(get_context)) -> str:
    primary = _primary(ctx)
    auth = request.headers.get("authorization", "")
    scheme, _, key = auth.partition(" ")
    if scheme.lower() != "bearer" or not key:
        raise Problem(401, "No site key", "send the site's key as Authorization: Bearer KEY",
                      slug="site-key-missing", headers=_CHALLENGE)
    site = primary.sites.by_key(key.strip())
    if site is None:
        raise Problem(403, "Unknown site key", "this key belongs to no site of this primary",
                      slug="site-key-wrong")
    return site


def _reply(value: Any) -> Response:
    return Response(pack(value), media_type=MEDIA_TYPE)


async def _body(request: Request) -> bytes:
    if request.headers.get("content-type", "").split(";")[0].strip() != MEDIA_TYPE:
        raise Problem(415, "Unsupported media type", f"the body must be {MEDIA_TYPE}", slug="unsupported-media-type")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY:
            raise Problem(413, "Body too large", f"at most {MAX_BODY} bytes", slug="body-too-large")
        chunks.append(chunk)
    return b"".join(chunks)


async def _map(request: Request) -> dict[str, Any]:
    """A small msgpack map body ({} when it is not one: the caller names what is missing)."""
    try:
        body = unpack(await _body(request))
    except Exception:  # noqa: BLE001 - msgpack raises several kinds for bad input
        return {}
    return body if isinstance(body, dict) else {}


@router.get("/snapshot", summary="Every mirrored record, as of one change seq")
async def sync_snapshot(site: str = Depends(site_of), ctx: WebContext = Depends(get_context)) -> Response:
    primary = _primary(ctx)
    data = await trio.to_thread.run_sync(primary.snapshot, site)  # a large user base takes a while
    return _reply(data)


@router.get("/changes", summary="The change feed after a seq")
async def sync_changes(after: int = Query(0, ge=0), limit: int = Query(1000, ge=1, le=5000),
                  site: str = Depends(site_of), ctx: WebContext = Depends(get_context)) -> Response:
    return _reply(_primary(ctx).changes(after, limit))


@router.post("/journal", summary="Apply a site's journal entries, each once")
async def sync_journal(request: Request, site: str = Depends(site_of),
                       ctx: WebContext = Depends(get_context)) -> Response:
    try:
        entries, require_funds = parse_journal(await _body(request))
    except SyncError as e:
        raise Problem(422, "Bad entries", str(e), slug="bad-entry") from None
    return _reply({"answers": await _primary(ctx).apply(site, entries, require_funds=require_funds, checked=True)})


@router.post("/user", summary="A user a site meets for the first time: created as on the primary, or not")
async def sync_user(request: Request, site: str = Depends(site_of),
                    ctx: WebContext = Depends(get_context)) -> Response:
    name = (await _map(request)).get("user")
    if not isinstance(name, str) or not name or len(name) > 255:
        raise Problem(400, "Bad body", "user is a name", slug="bad-body")
    try:
        return _reply(await _primary(ctx).first_print(name))
    except ValueError as e:  # a name the ledger cannot hold
        raise Problem(422, "Bad user name", str(e), slug="bad-user") from None


@router.post("/login", summary="Check a password against the primary's ledger")
async def sync_login(request: Request, site: str = Depends(site_of),
                     ctx: WebContext = Depends(get_context)) -> Response:
    body = await _map(request)
    user, password = body.get("user"), body.get("password")
    if not isinstance(user, str) or not isinstance(password, str) or len(user) > 255 or len(password) > 1024:
        raise Problem(400, "Bad body", "user and password are text", slug="bad-body")
    rec = _primary(ctx).user_record(user) if user else None
    stored = (rec or {}).get("password_hash", "")
    ok = await trio.to_thread.run_sync(verify_secret, password, stored or _DUMMY)
    ok = ok and bool(stored)
    return _reply({"ok": ok, "user": rec if ok else None})


_DUMMY = "scrypt$16384$8$1$AAAAAAAAAAAAAAAAAAAAAA$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"


@admin_router.get("/sync", summary="This node's sync state")
async def sync_state(ctx: WebContext = Depends(get_context)) -> dict[str, Any]:
    if ctx.site is not None:
        return {"role": "site", **ctx.site.status()}
    if ctx.primary is not None:
        from ..sync.primary import public
        return {"role": "primary", "sites": [public(s) for s in ctx.primary.sites.all()],
                "unapplied": ctx.primary.unapplied()}
    return {"role": ctx.settings.node.role}
