"""The release-station page, ``/release``: plain server-rendered HTML forms (Jinja2,
autoescaped) with a few lines of JavaScript for the inactivity timeout, so that it
works in kiosks, MFD embedded browsers and phones with no build step.

The page is a device like any other: an administrator links a browser to a device
once by entering its key (kept in an HttpOnly cookie, never shown again). A login
makes a session of that device (HttpOnly cookie, SameSite=Strict); every form after
it carries the session's CSRF token. A keyboard-emulating card reader types the
number into the focused card field and presses Enter: that submits the login.
Everything goes through the same :class:`spoolproxy.release.Release` as the JSON API.
"""
from __future__ import annotations

import datetime as dt
import hmac
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates

from ..ledger import personal
from ..release import Changes, Device, DeviceMisconfigured, LoginError, Release, SessionError
from .app import WebContext, get_context

BASE = "/release"
DEVICE_COOKIE = "spoolproxy_device"
SESSION_COOKIE = "spoolproxy_session"
MAX_FORM = 64 << 10

router = APIRouter(prefix=BASE, include_in_schema=False)
templates = Jinja2Templates(directory=str(Path(__file__).parent / "templates"))


def _cookie(resp: Response, name: str, value: str, *, max_age: int | None) -> None:
    resp.set_cookie(name, value, max_age=max_age, path=BASE, httponly=True, samesite="strict")


class _Page:
    """What one request of the page needs: the device (from its cookie) and the person."""

    def __init__(self, request: Request, ctx: WebContext):
        self.request, self.ctx = request, ctx
        self.release: Release | None = ctx.release
        key = request.cookies.get(DEVICE_COOKIE)
        self.device: Device | None = ctx.devices.by_key(key) if ctx.devices is not None and key else None
        self.token = request.cookies.get(SESSION_COOKIE) or ""
        self.session = None
        if self.device is not None and self.release is not None and self.token:
            try:
                self.session = self.release.session(self.token, self.device)
            except SessionError:
                self.session = None

    def render(self, screen: str, *, message: str = "", ok: bool = False, status: int = 200,
               **extra: Any) -> HTMLResponse:
        ctx, rel, dev = self.ctx, self.release, self.device
        data: dict[str, Any] = dict(title="Print release", base=BASE, screen=screen, message=message,
                                    message_ok=ok, person=None, printer="", printer_ready=True,
                                    methods=list(ctx.settings.release.methods),
                                    self_register=ctx.settings.release.card_self_register,
                                    timeout=ctx.settings.release.session_timeout, unknown_card="")
        if dev is not None and rel is not None:
            try:
                printer = rel.device_printer(dev)
                state = rel.printer_state(printer)
                data.update(printer=printer, printer_ready=state.ready, printer_problem=state.why,
                            title=f"Print release · {dev.name}")
            except DeviceMisconfigured as e:
                data.update(printer_problem=str(e))
        data.update(extra)
        if screen == "jobs":
            data.update(self._jobs(data["printer"]))
        return templates.TemplateResponse(self.request, "release.html", data, status_code=status,
                                          headers={"Cache-Control": "no-store"})

    def _jobs(self, printer: str) -> dict[str, Any]:
        from .release_api import held_view  # one view of a held job for the API and the page
        rel, ctx = self.release, self.ctx
        user = ctx.ledger.user(self.session.user)
        money = ctx.settings.ledger.money
        jobs = []
        for job, here in rel.held_jobs(user, printer):
            v = held_view(ctx, rel, job, here, printer)
            jobs.append({**v.model_dump(), "when": _when(job.created)})
        bal = ctx.ledger.balance(personal(user.name))
        accounts = [{"account": a, "label": "my account" if a == personal(user.name) else a.split(":", 1)[1]}
                    for a in rel.accounts(user)]
        return dict(person=user, jobs=jobs, csrf=self.session.csrf, accounts=accounts,
                    balance_text=money(bal.balance if bal else 0), available_text=money(bal.available if bal else 0),
                    restricted=bal.restricted if bal else True)

    def to(self, *, clear_session: bool = False) -> RedirectResponse:
        resp = RedirectResponse(BASE, status_code=303)
        if clear_session:
            resp.delete_cookie(SESSION_COOKIE, path=BASE)
        return resp


async def _form(request: Request) -> dict[str, list[str]]:
    if int(request.headers.get("content-length") or 0) > MAX_FORM:
        return {}
    form = await request.form()
    out: dict[str, list[str]] = {}
    for k, v in form.multi_items():
        if isinstance(v, str):
            out.setdefault(k, []).append(v.strip())
    return out


def _one(form: dict[str, list[str]], name: str) -> str:
    return (form.get(name) or [""])[0]


def _when(t: float) -> str:
    d = dt.datetime.fromtimestamp(t)
    return d.strftime("%H:%M") if d.date() == dt.date.today() else d.strftime("%d %b %H:%M")


@router.get("", response_class=HTMLResponse)
async def page(request: Request, ctx: WebContext = Depends(get_context)) -> Response:
    p = _Page(request, ctx)
    if p.device is None or p.release is None:
        return p.render("setup")
    if request.query_params.get("timeout") and p.token:  # the page's own timer (the session may be gone)
        await p.release.logout(p.token, p.device)
        resp = p.render("login", message="You were logged out after a while without activity.", ok=True)
        resp.delete_cookie(SESSION_COOKIE, path=BASE)
        return resp
    if p.session is None:
        resp = p.render("login", message="Your session ended: log in again." if p.token else "")
        if p.token:
            resp.delete_cookie(SESSION_COOKIE, path=BASE)
        return resp
    return p.render("jobs", message=request.query_params.get("done", "")[:300], ok=True)


@router.post("/setup", response_class=HTMLResponse)
async def setup(request: Request, ctx: WebContext = Depends(get_context)) -> Response:
    form = await _form(request)
    key = _one(form, "device_key")
    device = ctx.devices.by_key(key) if ctx.devices is not None and key else None
    if device is None:
        return _Page(request, ctx).render("setup", message="That device key is not valid.", status=403)
    resp = RedirectResponse(BASE, status_code=303)
    _cookie(resp, DEVICE_COOKIE, key, max_age=10 * 365 * 86400)
    return resp


@router.post("/login", response_class=HTMLResponse)
async def login(request: Request, ctx: WebContext = Depends(get_context)) -> Response:
    p = _Page(request, ctx)
    if p.device is None or p.release is None:
        return p.render("setup", message="Link this page to a device first.", status=403)
    form = await _form(request)
    fields = {k: _one(form, k)[:1024] for k in ("card", "pin", "identity", "username", "password")}
    try:
        p.release.device_printer(p.device)
        done = await p.release.login(p.device, **fields)
    except DeviceMisconfigured as e:
        return p.render("login", message=str(e), status=409)
    except LoginError as e:
        extra = {"unknown_card": fields["card"]} if e.reason == "unknown-card" else {}
        return p.render("login", message=str(e), status=423 if e.reason == "locked" else 401, **extra)
    resp = p.to()
    _cookie(resp, SESSION_COOKIE, done.token, max_age=None)
    if done.card_registered:
        resp.headers["Location"] = f"{BASE}?done=" + "Your+card+is+registered."
    return resp


@router.post("/action", response_class=HTMLResponse)
async def action(request: Request, ctx: WebContext = Depends(get_context)) -> Response:
    p = _Page(request, ctx)
    if p.device is None or p.release is None:
        return p.render("setup", message="Link this page to a device first.", status=403)
    if p.session is None:
        return p.to(clear_session=True)
    form = await _form(request)
    if not hmac.compare_digest(_one(form, "csrf"), p.session.csrf):
        return p.render("jobs", message="The form was out of date: try again.", status=403)
    what = _one(form, "action")
    if what == "logout":
        await p.release.logout(p.token, p.device)
        return p.to(clear_session=True)
    user = ctx.ledger.user(p.session.user)
    ids = [int(v) for v in form.get("job", []) if v.isdigit()]
    if what in ("release", "cancel") and not ids:
        return p.render("jobs", message="Select a job first.", status=400)
    copies = _one(form, "copies")
    if copies and not copies.isdigit():
        return p.render("jobs", message="Copies must be a number.", status=400)
    try:
        if what in ("release", "release-all"):
            outcomes = await p.release.release(
                user, p.device, None if what == "release-all" else ids,
                Changes(int(copies) if copies else None, bool(_one(form, "grayscale")), bool(_one(form, "duplex"))),
                _one(form, "account") if _one(form, "account") != personal(user.name) else "")
        elif what == "cancel":
            outcomes = await p.release.cancel(user, p.device, ids)
        else:
            return p.render("jobs", message="Unknown action.", status=400)
    except DeviceMisconfigured as e:
        return p.render("jobs", message=str(e), status=409)
    if not outcomes:
        return p.render("jobs", message="There was nothing to print here.", ok=False)
    done = [o for o in outcomes if o.ok]
    failed = [o for o in outcomes if not o.ok]
    money = ctx.settings.ledger.money
    parts = []
    if done and what != "cancel":
        cost = sum(o.cost or 0 for o in done)
        parts.append(f"Printing {len(done)} job{'s' if len(done) != 1 else ''}"
                     f"{' at ' + done[0].printer if len({o.printer for o in done}) == 1 else ''}"
                     f" for {money(cost)}.")
    elif done:
        parts.append(f"Deleted {len(done)} job{'s' if len(done) != 1 else ''}.")
    parts += [f"Job {o.job}: {o.message}" for o in failed]
    return p.render("jobs", message=" ".join(parts), ok=not failed)
