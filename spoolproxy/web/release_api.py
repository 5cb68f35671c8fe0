"""The device API, under ``/api/v1/device``: what MFDs, release stations and kiosks
use to log people in and release their held jobs (Secure Print, Find-Me).

Every request carries the device's key: ``X-Device-Key: KEY`` (``spoolproxy devices
add`` or ``POST /api/v1/admin/devices`` makes one). After a login, requests for the
person carry the session token too: ``Authorization: Bearer TOKEN``. A token works
only at the device it was made at and ends after ``release.session_timeout`` seconds
without a request, or at logout.

    GET  /device                      this device, its printer and whether it is ready
    POST /device/login                {"card"} | {"card","pin"} | {"identity","pin"} |
                                      {"username","password"} (+ "card": registers it)
    POST /device/logout
    GET  /device/me                   who is logged in, balance, the accounts they may charge
    GET  /device/jobs                 the held jobs they may release, cost at this printer
    POST /device/jobs/{id}/quote      the cost with cheaper settings: {"copies","grayscale","duplex"}
    POST /device/release              {"jobs": [ids] or null for all mine, "copies", "grayscale",
                                       "duplex", "account"} -> a result per job
    POST /device/cancel               {"jobs": [ids] or null for all mine}

Amounts in responses are integers in minor units with their text beside them
(``"cost": 70, "cost_text": "0.70"``). Errors are problem details; a job that is not
the person's own (or does not exist) is "not-found" either way.
"""
from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Path, Response
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, ConfigDict, Field

from ..ledger import personal
from ..ledger.records import User
from ..release import Changes, Device, DeviceMisconfigured, LoginError, Outcome, Release, SessionError
from ..release.service import Quote
from ..spool.job import Job
from .app import WebContext, get_context
from .problems import Problem

router = APIRouter(prefix="/device", tags=["device"])

_device_key = APIKeyHeader(name="X-Device-Key", auto_error=False, scheme_name="deviceKey",
                           description="the device's key (spoolproxy devices add)")
_session = HTTPBearer(auto_error=False, scheme_name="sessionToken",
                      description="the token of POST /api/v1/device/login")

LOGIN_STATUS = {"bad-request": 400, "method-disabled": 403, "failed": 401, "unknown-card": 401,
                "disabled-user": 403, "locked": 423}


def _release(ctx: WebContext = Depends(get_context)) -> Release:
    if ctx.release is None:
        raise Problem(503, "No release service", "this node does not release held jobs", slug="release-unavailable")
    return ctx.release


async def current_device(key: str | None = Depends(_device_key), ctx: WebContext = Depends(get_context)) -> Device:
    """The device of the X-Device-Key header, or 401/403."""
    if not key:
        raise Problem(401, "Device key required", "this needs the device's key: X-Device-Key: KEY",
                      slug="device-key-required")
    device = ctx.devices.by_key(key) if ctx.devices is not None else None
    if device is None:
        raise Problem(403, "Unknown device", "the device key is not valid", slug="unknown-device")
    return device


class Person:
    def __init__(self, user: User, device: Device, token: str):
        self.user, self.device, self.token = user, device, token


async def current_person(device: Device = Depends(current_device),
                         cred: HTTPAuthorizationCredentials | None = Depends(_session),
                         release: Release = Depends(_release), ctx: WebContext = Depends(get_context)) -> Person:
    """The person logged in at this device, or 401 (no, unknown or expired token)."""
    token = cred.credentials if cred is not None else None
    try:
        s = release.session(token, device)
    except SessionError as e:
        raise Problem(401, "Not logged in", str(e), slug="session-" + e.reason if e.reason != "missing"
                      else "login-required", headers={"WWW-Authenticate": 'Bearer realm="spoolproxy device"'}) \
            from None
    user = ctx.ledger.user(s.user)
    if user is None or user.disabled:
        release.sessions.end(token)
        raise Problem(401, "Not logged in", "the account is gone or disabled", slug="session-unknown")
    return Person(user, device, token or "")


def _misconfigured(e: DeviceMisconfigured) -> Problem:
    return Problem(409, "Device misconfigured", str(e), slug="device-misconfigured")


# -- models ----------------------------------------------------------------------------------

class PrinterOut(BaseModel):
    queue: str = Field(description="the queue whose printer this is")
    ready: bool
    message: str = Field(description="why it is not ready, for people ('' when ready)")
    color: bool


class DeviceInfo(BaseModel):
    name: str
    info: str
    printer: PrinterOut
    login_methods: list[str]
    session_timeout: float = Field(description="seconds without a request before a session ends")
    card_self_register: bool


class LoginIn(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)
    card: str = Field("", max_length=255, description="card number (as the reader types it)")
    pin: str = Field("", max_length=64)
    identity: str = Field("", max_length=255, description="identity number, with pin")
    username: str = Field("", max_length=255)
    password: str = Field("", max_length=1024)


class AccountOut(BaseModel):
    account: str = Field(description="user:NAME (personal) or shared:NAME")
    name: str
    balance: int
    balance_text: str
    available: int = Field(description="balance + overdraft: what a restricted account may spend")
    available_text: str
    restricted: bool


class MeOut(BaseModel):
    user: str
    full_name: str
    balance: int
    balance_text: str
    available: int
    available_text: str
    restricted: bool
    accounts: list[AccountOut] = Field(description="personal first, then the shared accounts they may charge")
    session_timeout: float


class LoginOut(MeOut):
    token: str = Field(description="send as Authorization: Bearer TOKEN, at this device only")
    card_registered: str = Field("", description="the card number registered to the user by this login")


class HeldJobOut(BaseModel):
    id: int
    name: str
    owner: str
    queue: str
    submitted: float = Field(description="Unix time")
    expires: float | None = Field(description="Unix time it is deleted unreleased (null: never)")
    pages: int | None = Field(description="page images with all copies; null if not counted")
    sheets: int | None
    color_pages: int | None
    copies: int
    printers: list[str] = Field(description="the queues whose printers can print it")
    here: bool = Field(description="it can print at this device's printer")
    cost: int | None = Field(description="the cost at this printer now (null: not counted, not charged)")
    cost_text: str
    cost_detail: str
    account: str
    conversions: list[str] = Field(description="what releasing it here does to it (e.g. grayscale)")
    problem: str = Field("", description="why it cannot print here now ('' when it can)")


class JobsOut(BaseModel):
    printer: str
    jobs: list[HeldJobOut]


class ChangesIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    copies: int | None = Field(None, ge=1, le=9999, description="fewer copies (never more)")
    grayscale: bool = Field(False, description="print in grayscale")
    duplex: bool = Field(False, description="print two-sided")


class ReleaseIn(ChangesIn):
    jobs: list[int] | None = Field(None, max_length=1000, description="job ids; null: all of mine that can print here")
    account: str = Field("", max_length=300, description="charge this account (the owner's own jobs only)")


class CancelIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    jobs: list[int] | None = Field(None, max_length=1000, description="job ids; null: all of mine")


class ResultOut(BaseModel):
    job: int
    ok: bool
    reason: str = Field(description="when not ok: not-found, not-held, busy, wrong-printer, expired, "
                                    "printer-not-ready, no-credit, account-closed, account-not-allowed, "
                                    "change-refused, format-unsupported, conversion-failed")
    message: str
    printer: str
    cost: int | None
    cost_text: str
    account: str


class ResultsOut(BaseModel):
    results: list[ResultOut]
    released: int = 0
    canceled: int = 0


class QuoteOut(BaseModel):
    job: int
    printer: str
    copies: int
    grayscale: bool
    sides: str | None
    cost: int | None
    cost_text: str
    cost_detail: str
    conversions: list[str]
    problem: str


# -- helpers ---------------------------------------------------------------------------------

def _money(ctx: WebContext, amount: int | None) -> str:
    return ctx.settings.ledger.money(amount) if amount is not None else ""


def _account_out(ctx: WebContext, account: str) -> AccountOut:
    bal = ctx.ledger.balance(account)
    balance, available, restricted = (bal.balance, bal.available, bal.restricted) if bal else (0, 0, True)
    return AccountOut(account=account, name=account.split(":", 1)[1], balance=balance,
                      balance_text=_money(ctx, balance), available=available, available_text=_money(ctx, available),
                      restricted=restricted)


def _me(ctx: WebContext, release: Release, user: User) -> dict[str, Any]:
    own = _account_out(ctx, personal(user.name))
    return dict(user=user.name, full_name=user.full_name, balance=own.balance, balance_text=own.balance_text,
                available=own.available, available_text=own.available_text, restricted=own.restricted,
                accounts=[_account_out(ctx, a) for a in release.accounts(user)],
                session_timeout=release.sessions.timeout)


def held_view(ctx: WebContext, release: Release, job: Job, here: bool, printer: str) -> HeldJobOut:
    q = ctx.settings.queues[job.queue]
    printers = list(release.printers_of(job))
    qt: Quote = release.quote(job, printer if here else printers[0])
    problem = qt.refused
    if not here:
        problem = f"It prints at {', '.join(printers)}, not here."
    elif not problem:
        state = release.printer_state(printer)
        problem = "" if state.ready else state.why
    c = qt.cost
    return HeldJobOut(
        id=job.id, name=job.name or (job.documents[0].name if job.documents else "") or "untitled",
        owner=job.user, queue=job.queue, submitted=job.created,
        expires=job.created + q.hold_expiry if q.hold_expiry else None,
        pages=c.pages if c else None, sheets=c.sheets if c else None, color_pages=c.color_pages if c else None,
        copies=qt.copies, printers=printers, here=here,
        cost=c.total if c else None, cost_text=_money(ctx, c.total) if c else "not counted",
        cost_detail=c.describe(ctx.settings.ledger.money) if c else "the document could not be counted",
        account=qt.account, conversions=qt.conversions, problem=problem)


def _results(ctx: WebContext, outcomes: list[Outcome]) -> ResultsOut:
    rs = [ResultOut(job=o.job, ok=o.ok, reason=o.reason, message=o.message, printer=o.printer, cost=o.cost,
                    cost_text=_money(ctx, o.cost), account=o.account) for o in outcomes]
    return ResultsOut(results=rs)


# -- routes ----------------------------------------------------------------------------------

@router.get("", response_model=DeviceInfo, summary="This device and its printer")
async def device_info(device: Device = Depends(current_device), release: Release = Depends(_release),
                      ctx: WebContext = Depends(get_context)) -> DeviceInfo:
    try:
        printer = release.device_printer(device)
    except DeviceMisconfigured as e:
        raise _misconfigured(e) from None
    state = release.printer_state(printer)
    rs = ctx.settings.release
    return DeviceInfo(name=device.name, info=device.info,
                     printer=PrinterOut(queue=printer, ready=state.ready, message=state.why,
                                        color=release.prints_color(printer)),
                     login_methods=list(rs.methods), session_timeout=rs.session_timeout,
                     card_self_register=rs.card_self_register)


@router.post("/login", response_model=LoginOut, summary="Log a person in at this device",
             responses={401: {"description": "Wrong card, PIN or password (slug login-failed), or an unknown "
                                             "card that a username and password login can register (unknown-card)"},
                        423: {"description": "Locked after too many wrong attempts (Retry-After says how long)"}})
async def login(body: LoginIn, device: Device = Depends(current_device), release: Release = Depends(_release),
                ctx: WebContext = Depends(get_context)) -> LoginOut:
    try:
        release.device_printer(device)
        done = await release.login(device, card=body.card, pin=body.pin, identity=body.identity,
                                   username=body.username, password=body.password)
    except DeviceMisconfigured as e:
        raise _misconfigured(e) from None
    except LoginError as e:
        headers = {"Retry-After": str(max(1, round(e.retry_after)))} if e.reason == "locked" else None
        slug = {"failed": "login-failed", "locked": "login-locked", "bad-request": "bad-login"}.get(e.reason, e.reason)
        raise Problem(LOGIN_STATUS[e.reason], "Login refused", str(e), slug=slug, headers=headers) from None
    return LoginOut(token=done.token, card_registered=done.card_registered, **_me(ctx, release, done.user))


@router.post("/logout", status_code=204, summary="End the session")
async def logout(device: Device = Depends(current_device),
                 cred: HTTPAuthorizationCredentials | None = Depends(_session),
                 release: Release = Depends(_release)) -> Response:
    await release.logout(cred.credentials if cred else None, device)
    return Response(status_code=204)


@router.get("/me", response_model=MeOut, summary="Who is logged in: balance and accounts")
async def me(person: Person = Depends(current_person), release: Release = Depends(_release),
             ctx: WebContext = Depends(get_context)) -> MeOut:
    return MeOut(**_me(ctx, release, person.user))


@router.get("/jobs", response_model=JobsOut, summary="The held jobs this person may release")
async def jobs(person: Person = Depends(current_person), release: Release = Depends(_release),
               ctx: WebContext = Depends(get_context)) -> JobsOut:
    try:
        printer = release.device_printer(person.device)
    except DeviceMisconfigured as e:
        raise _misconfigured(e) from None
    return JobsOut(printer=printer, jobs=[held_view(ctx, release, j, here, printer)
                                          for j, here in release.held_jobs(person.user, printer)])


@router.post("/jobs/{job_id}/quote", response_model=QuoteOut, summary="What a job costs here with cheaper settings")
async def quote(body: ChangesIn, job_id: int = Path(ge=1), person: Person = Depends(current_person),
                release: Release = Depends(_release), ctx: WebContext = Depends(get_context)) -> QuoteOut:
    job = release.visible_job(person.user, job_id)
    if job is None:
        raise Problem(404, "No such held job", f"there is no held job {job_id} of yours", slug="not-found")
    printer = release.device_printer(person.device)
    try:
        qt = release.quote(job, printer, Changes(body.copies, body.grayscale, body.duplex))
    except ValueError as e:
        raise Problem(422, "Change refused", str(e), slug="change-refused") from None
    c = qt.cost
    return QuoteOut(job=job.id, printer=printer, copies=qt.copies, grayscale=qt.gray, sides=qt.sides,
                    cost=c.total if c else None, cost_text=_money(ctx, c.total) if c else "not counted",
                    cost_detail=c.describe(ctx.settings.ledger.money) if c else "", conversions=qt.conversions,
                    problem=qt.refused)


@router.post("/release", response_model=ResultsOut, summary="Release jobs to this device's printer")
async def release_jobs(body: ReleaseIn, person: Person = Depends(current_person),
                       release: Release = Depends(_release), ctx: WebContext = Depends(get_context)) -> ResultsOut:
    try:
        outcomes = await release.release(person.user, person.device, body.jobs,
                                         Changes(body.copies, body.grayscale, body.duplex), body.account)
    except DeviceMisconfigured as e:
        raise _misconfigured(e) from None
    out = _results(ctx, outcomes)
    out.released = sum(o.ok for o in outcomes)
    return out


@router.post("/cancel", response_model=ResultsOut, summary="Cancel held jobs")
async def cancel_jobs(body: CancelIn, person: Person = Depends(current_person),
                      release: Release = Depends(_release), ctx: WebContext = Depends(get_context)) -> ResultsOut:
    try:
        outcomes = await release.cancel(person.user, person.device, body.jobs)
    except DeviceMisconfigured as e:
        raise _misconfigured(e) from None
    out = _results(ctx, outcomes)
    out.canceled = sum(o.ok for o in outcomes)
    return out
