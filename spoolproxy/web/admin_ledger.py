"""The ledger's JSON admin API, under ``/api/v1/admin`` (admin token required): the same
operations as the ``spoolproxy users|accounts|balance|transactions|cost`` commands,
through the same functions (:mod:`spoolproxy.ledger.admin`).

    GET  /users[?q=PREFIX]            every user with balance (q: name prefix, any case)
    GET  /users/{name}                one user (no secrets: has_pin / has_password)
    PUT  /users/{name}[?create=false] create or change a user: only the fields given change
    POST /users/import                CSV (text/csv) -> created/updated/unchanged + bad rows
    GET  /accounts                    every shared account
    GET  /accounts/{name}             one shared account
    PUT  /accounts/{name}[?create=false]
    GET  /balances/{account}          NAME, user:NAME or shared:NAME
    POST /balances/{account}/topup    {"amount": "5.00", "comment": "...", "txn_id": "..."}
    POST /balances/{account}/adjust   {"amount": "-0.20", "comment": "..."}
    GET  /transactions                ?account&user&kind&job&since&until&limit
    POST /cost/preview                the document as the body; ?queue&copies&sides&gray

Money. In requests an amount is a JSON *string* holding a decimal number in major
units, as people write it: ``"1.50"``, ``"-0.20"``, ``"3"``; at most the node's
``ledger.decimals`` decimals, never rounded. JSON numbers are refused (422): a binary
float cannot hold 0.10 exactly. In responses every amount is an integer in minor units
with its text next to it, formatted as the node shows it (``"balance": 130,
"balance_text": "1.30"``; with ``ledger.currency`` set, e.g. ``"1.30 EUR"``).

PUT creates: a PUT on a name that does not exist creates it (201; 200 when it existed),
with ``?create=false`` it is a 404 instead. Fields left out (or null) stay as they are;
``pin``/``password`` are given in clear (over TLS), hashed before they are stored and
never returned; ``""`` removes them.

Idempotent top-ups: a client that may retry gives a ``txn_id`` of its own (a UUID);
the same id again returns the transaction of the first call with ``"new": false`` and
changes nothing; the same id with another amount, account or kind is a 409. In the
transaction log the id is ``api/TXN_ID``.

Every change is made as ``admin-api`` (the ``by`` of its transactions) and logged on
"spoolproxy.web.admin" (field names only, never a secret).
"""
from __future__ import annotations

import contextlib
import datetime as dt
import functools
import logging
import os
import re
import tempfile
from typing import Annotated, Any, Awaitable, Callable, Iterator, Literal, get_args

import trio
from fastapi import APIRouter, Depends, Path, Query, Request, Response
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

from ..ledger import (Conflict, Ledger, LedgerError, TransactionConflict, Txn, UnknownAccount,
                      UnknownUser, admin)
from ..ledger.records import KINDS
from ..ledger.store import MAX_AMOUNT
from .app import WebContext, get_context
from .problems import Problem

log = logging.getLogger("spoolproxy.web.admin")

BY = "admin-api"  # who the ledger says made the change
TXN_PREFIX = "api/"  # API clients' transaction ids, apart from the node's own (job/..., topup/...)
MAX_IMPORT_BYTES = admin.MAX_IMPORT_BYTES  # a CSV import body
MAX_DOCUMENT_BYTES = 512 << 20  # a cost-preview document
PREVIEW_WORKERS = 2  # documents analysed at once for previews (the rest wait)
AMOUNT_PATTERN = r"^[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)$"
TxnKind = Literal["print", "refund", "adjustment", "top-up", "offline"]
assert get_args(TxnKind) == KINDS, "TxnKind must list ledger.records.KINDS"
CSV_TYPES = ("text/csv", "text/plain", "application/csv", "application/vnd.ms-excel", "application/octet-stream")

router = APIRouter()


# -- money -----------------------------------------------------------------------------------

def _no_json_number(v: Any) -> Any:
    if isinstance(v, (int, float)) and not isinstance(v, bool):
        raise ValueError('give the amount as a decimal string such as "1.50", not a JSON number '
                         "(binary floating point cannot hold money exactly)")
    return v


MoneyText = Annotated[str, BeforeValidator(_no_json_number), Field(
    max_length=40, examples=["1.50"], json_schema_extra={"pattern": AMOUNT_PATTERN},
    description='a decimal string in major units: "1.50", "-0.20", "3" (at most ledger.decimals '
                "decimals; JSON numbers are refused)")]


def _invalid(where: str, field: str, message: str) -> Problem:
    """A 422 like the ones of request validation: the errors list names the field."""
    return Problem(422, "Invalid request", f"{where}.{field}: {message}", slug="validation-error",
                   errors=[{"in": where, "field": field, "message": message, "type": "value_error"}])


def _parse_money(ctx: WebContext, text: str, field: str, *, negative: bool = True) -> int:
    try:
        value = ctx.settings.ledger.parse(text)
    except ValueError as e:
        raise _invalid("body", field, str(e)) from None
    if abs(value) > MAX_AMOUNT:
        raise _invalid("body", field, f"{text.strip()!r} is beyond what the ledger accepts")
    if value < 0 and not negative:
        raise _invalid("body", field, "must not be negative")
    return value


# -- errors ----------------------------------------------------------------------------------

@contextlib.contextmanager
def _ledger_errors() -> Iterator[None]:
    """The ledger's refusals as problems: unknown -> 404, clashes -> 409, the rest -> 422."""
    try:
        yield
    except UnknownUser as e:
        raise Problem(404, "Unknown user", str(e), slug="unknown-user", user=e.name) from None
    except UnknownAccount as e:
        raise Problem(404, "Unknown account", str(e), slug="unknown-account", account=e.account) from None
    except TransactionConflict as e:
        raise Problem(409, "Transaction conflict", str(e), slug="transaction-conflict") from None
    except Conflict as e:
        raise Problem(409, "Conflict", str(e), slug="conflict") from None
    except (LedgerError, ValueError) as e:  # names and fields the ledger refused (check_name: ValueError)
        raise Problem(422, "Refused by the ledger", str(e), slug="ledger-refused") from None


def _ledger(ctx: WebContext = Depends(get_context)) -> Ledger:
    if not isinstance(ctx.ledger, Ledger):
        raise Problem(503, "No ledger", "this node serves no ledger", slug="ledger-unavailable")
    return ctx.ledger


def _ledger_to_change(ctx: WebContext = Depends(get_context), ledger: Ledger = Depends(_ledger)) -> Ledger:
    """The ledger, for a change: a site's copy follows its primary and is not changed here."""
    if ctx.settings.node.role == "site":
        raise Problem(409, "Change it on the primary", "this node is a site: users, accounts and balances are "
                      "changed on its primary, and the change reaches this site by itself", slug="site-read-only")
    return ledger


def _money(ctx: WebContext) -> Callable[[int], str]:
    return ctx.settings.ledger.money


_NOT_FOUND = {404: {"description": "No such user or account"}}
_CHANGE_ERRORS: dict[int | str, dict[str, Any]] = {
    404: {"description": "No such user or account"},
    409: {"description": "A card, identity number or account code belongs to another record"},
}


# -- request bodies read with a cap (hypercorn has no body limit of its own) ------------------

def _unread(p: Problem) -> Problem:
    """``p``, for a request whose body is not read (all of it): the connection closes after
    the response (hypercorn could otherwise leave the keep-alive connection hanging on
    the unread rest of a chunked body)."""
    p.headers["Connection"] = "close"
    return p


def _too_large(limit: int) -> Problem:
    return _unread(Problem(413, "Content Too Large", f"the body is larger than {limit} bytes",
                           slug="content-too-large", limit=limit))


async def _receive(request: Request, limit: int, sink: Callable[[bytes], Awaitable[Any]]) -> int:
    """Feed the request body to ``sink`` chunk by chunk; 413 beyond ``limit`` bytes
    (at once when Content-Length says so). Returns the size."""
    declared = request.headers.get("content-length")
    if declared is not None:
        if not declared.isdigit():
            raise _unread(Problem(400, "Bad Request", "Content-Length is not a number", slug="bad-request"))
        if int(declared) > limit:
            raise _too_large(limit)
    total = 0
    async for chunk in request.stream():
        if not chunk:
            continue
        total += len(chunk)
        if total > limit:
            raise _too_large(limit)
        await sink(chunk)
    return total


# -- users -----------------------------------------------------------------------------------

class UserRow(BaseModel):
    name: str
    full_name: str
    groups: list[str]
    restricted: bool
    disabled: bool
    balance: int = Field(description="minor units")
    balance_text: str


class UserOut(BaseModel):
    """A user as the ledger has it (PIN and password only as has_pin / has_password)."""

    name: str
    full_name: str
    email: str
    groups: list[str]
    restricted: bool = Field(description="restricted users need credit (balance + overdraft) to print")
    overdraft: int = Field(description="how far below zero a restricted user may go, minor units")
    overdraft_text: str
    cards: list[str]
    identity: str = Field(description="identity number (student/staff number) for identity + PIN login")
    has_pin: bool
    has_password: bool
    disabled: bool
    created: float = Field(description="Unix time")
    updated: float = Field(description="Unix time")
    account: str = Field(description="the personal account: user:NAME")
    balance: int = Field(description="minor units")
    balance_text: str
    shared_accounts: list[str] = Field(description="the shared accounts the user may charge")


def _pin(v: Any) -> Any:
    if isinstance(v, str) and v and not admin.pin_ok(v):
        raise ValueError("a PIN is 4 to 12 digits (\"\" removes it)")
    return v


class UserChange(BaseModel):
    """The fields to change; a field left out or null stays as it is."""

    model_config = ConfigDict(extra="forbid", strict=True)

    full_name: str | None = Field(None, max_length=255)
    email: str | None = Field(None, max_length=320)
    groups: list[Annotated[str, Field(max_length=255)]] | None = Field(
        None, max_length=1000, description="replaces the user's groups (made when new)")
    restricted: bool | None = Field(None, description="restricted users need credit to print")
    overdraft: MoneyText | None = None
    cards: list[Annotated[str, Field(min_length=1, max_length=128)]] | None = Field(
        None, max_length=2, description="card numbers (at most 2; replaces the user's cards; [] removes them)")
    identity: str | None = Field(None, max_length=128, description="identity number; \"\" removes it")
    pin: Annotated[str | None, BeforeValidator(_pin)] = Field(
        None, max_length=12, json_schema_extra={"pattern": r"^([0-9]{4,12})?$", "writeOnly": True},
        description='4 to 12 digits, in clear; stored hashed, never returned; "" removes it')
    password: str | None = Field(None, max_length=1024, json_schema_extra={"writeOnly": True},
                                 description='in clear; stored hashed, never returned; "" removes it')
    disabled: bool | None = Field(None, description="a disabled user cannot print or log in")


def _user_out(ctx: WebContext, view: dict[str, Any]) -> UserOut:
    m = _money(ctx)
    return UserOut(**view, overdraft_text=m(view["overdraft"]), balance_text=m(view["balance"]))


@router.get("/users", response_model=list[UserRow], tags=["users"], summary="Every user with balance")
async def list_users(q: Annotated[str | None, Query(max_length=255, description="name prefix (any case)")] = None,
                     ctx: WebContext = Depends(get_context), ledger: Ledger = Depends(_ledger)) -> list[UserRow]:
    m = _money(ctx)
    prefix = q.casefold() if q else ""

    def rows() -> list[dict[str, Any]]:
        return [r for r in admin.users_table(ledger) if r["name"].casefold().startswith(prefix)]

    return [UserRow(**r, balance_text=m(r["balance"])) for r in await trio.to_thread.run_sync(rows)]


@router.get("/users/{name}", response_model=UserOut, tags=["users"], summary="One user",
            responses=_NOT_FOUND)
async def get_user(name: str, ctx: WebContext = Depends(get_context), ledger: Ledger = Depends(_ledger)) -> UserOut:
    view = admin.user_view(ledger, name)
    if view is None:
        raise Problem(404, "Unknown user", f"no user {name!r}", slug="unknown-user", user=name)
    return _user_out(ctx, view)


@router.put("/users/{name}", response_model=UserOut, tags=["users"], summary="Create or change a user",
            description="Creates the user when there is none (201) unless create=false (404); "
                        "otherwise changes the fields given (200). Fields left out or null stay.",
            responses={**_CHANGE_ERRORS, 201: {"model": UserOut, "description": "The user was created"}})
async def put_user(name: str, change: UserChange, response: Response,
                   create: Annotated[bool, Query(description="false: only change an existing user")] = True,
                   ctx: WebContext = Depends(get_context), ledger: Ledger = Depends(_ledger_to_change)) -> UserOut:
    changes = change.model_dump(exclude_unset=True, exclude_none=True)
    if "overdraft" in changes:
        changes["overdraft"] = _parse_money(ctx, changes["overdraft"], "overdraft", negative=False)
    if "groups" in changes:
        changes["groups"] = sorted(set(changes["groups"]))
    existed = ledger.user(name) is not None
    with _ledger_errors():
        await admin.set_user(ledger, name, changes, create=create, by=BY)
    log.info("%s: user %r %s (%s)", BY, name, "changed" if existed else "created",
             ", ".join(sorted(changes)) or "no fields")
    response.status_code = 200 if existed else 201
    view = admin.user_view(ledger, name)
    assert view is not None
    return _user_out(ctx, view)


class ImportRowError(BaseModel):
    line: int = Field(description="line number in the CSV (the header is line 1)")
    error: str


class ImportReport(BaseModel):
    created: int
    updated: int
    unchanged: int
    errors: list[ImportRowError] = Field(description="every row that was not imported, and why")


@router.post("/users/import", response_model=ImportReport, tags=["users"],
             summary="Create or update users from CSV (idempotent)",
             description="The body is CSV text (UTF-8) with a header row. Columns, in any order: "
                         f"{', '.join(admin.COLUMNS)}; only username is required and an empty cell "
                         "leaves the field as it is. Bad rows are reported with their line number and "
                         "the others are imported; importing the same file again changes nothing. "
                         f"At most {MAX_IMPORT_BYTES} bytes (413).",
             responses={413: {"description": "The body is too large"},
                        415: {"description": "The body is not CSV"}},
             openapi_extra={"requestBody": {"required": True, "content": {"text/csv": {"schema": {
                 "type": "string", "example": "username,full_name,groups,card,initial_credit\n"
                                              "alice,Alice Liddell,staff;color,04A1B2C3,5.00\n"}}}}})
async def import_users(request: Request, ctx: WebContext = Depends(get_context),
                       ledger: Ledger = Depends(_ledger_to_change)) -> ImportReport:
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype and ctype not in CSV_TYPES:
        raise _unread(Problem(415, "Unsupported Media Type", f"send the CSV as text/csv, not {ctype}",
                              slug="unsupported-media-type"))
    data = bytearray()

    async def keep(chunk: bytes) -> None:
        data.extend(chunk)

    await _receive(request, MAX_IMPORT_BYTES, keep)
    with _ledger_errors():
        report = await admin.import_users(ledger, bytes(data), parse_money=ctx.settings.ledger.parse, by=BY)
    log.info("%s: import: %d created, %d updated, %d unchanged, %d bad row(s)", BY, len(report.created),
             len(report.updated), len(report.unchanged), len(report.errors))
    return ImportReport(**report.as_dict())


# -- shared accounts -------------------------------------------------------------------------

class AccountOut(BaseModel):
    """A shared account (department, project, class) that several users charge."""

    name: str
    code: str = Field(description="what a job may name it by (job-account-id, PJL), besides its name")
    users: list[str] = Field(description="users who may charge it")
    groups: list[str] = Field(description="... and members of these groups")
    restricted: bool
    overdraft: int = Field(description="minor units")
    overdraft_text: str
    disabled: bool
    info: str
    created: float
    updated: float
    account: str = Field(description="shared:NAME")
    balance: int = Field(description="minor units")
    balance_text: str


class AccountChange(BaseModel):
    """The fields to change; a field left out or null stays as it is."""

    model_config = ConfigDict(extra="forbid", strict=True)

    code: str | None = Field(None, max_length=128, description='what jobs may name it by; "" removes it')
    users: list[Annotated[str, Field(max_length=255)]] | None = Field(None, max_length=100000,
                                                                      description="replaces the list")
    groups: list[Annotated[str, Field(max_length=255)]] | None = Field(None, max_length=1000,
                                                                       description="replaces the list")
    restricted: bool | None = None
    overdraft: MoneyText | None = None
    disabled: bool | None = None
    info: str | None = Field(None, max_length=1000)


def _account_out(ctx: WebContext, view: dict[str, Any]) -> AccountOut:
    m = _money(ctx)
    return AccountOut(**view, overdraft_text=m(view["overdraft"]), balance_text=m(view["balance"]))


@router.get("/accounts", response_model=list[AccountOut], tags=["accounts"], summary="Every shared account")
async def list_accounts(ctx: WebContext = Depends(get_context),
                        ledger: Ledger = Depends(_ledger)) -> list[AccountOut]:
    def rows() -> list[dict[str, Any]]:
        return [v for v in (admin.account_view(ledger, a.name) for a in ledger.accounts()) if v is not None]

    return [_account_out(ctx, v) for v in await trio.to_thread.run_sync(rows)]


@router.get("/accounts/{name}", response_model=AccountOut, tags=["accounts"], summary="One shared account",
            responses=_NOT_FOUND)
async def get_account(name: str, ctx: WebContext = Depends(get_context),
                      ledger: Ledger = Depends(_ledger)) -> AccountOut:
    view = admin.account_view(ledger, name)
    if view is None:
        raise Problem(404, "Unknown account", f"no shared account {name!r}", slug="unknown-account",
                      account=f"shared:{name}")
    return _account_out(ctx, view)


@router.put("/accounts/{name}", response_model=AccountOut, tags=["accounts"],
            summary="Create or change a shared account",
            description="Creates the account when there is none (201) unless create=false (404); "
                        "otherwise changes the fields given (200).",
            responses={**_CHANGE_ERRORS, 201: {"model": AccountOut, "description": "The account was created"}})
async def put_account(name: str, change: AccountChange, response: Response,
                      create: Annotated[bool, Query(description="false: only change an existing account")] = True,
                      ctx: WebContext = Depends(get_context),
                      ledger: Ledger = Depends(_ledger_to_change)) -> AccountOut:
    changes = change.model_dump(exclude_unset=True, exclude_none=True)
    if "overdraft" in changes:
        changes["overdraft"] = _parse_money(ctx, changes["overdraft"], "overdraft", negative=False)
    for k in ("users", "groups"):
        if k in changes:
            changes[k] = sorted(set(changes[k]))
    existed = ledger.account(name) is not None
    with _ledger_errors():
        await ledger.update_account(name, changes, create=create)
    log.info("%s: shared account %r %s (%s)", BY, name, "changed" if existed else "created",
             ", ".join(sorted(changes)) or "no fields")
    response.status_code = 200 if existed else 201
    view = admin.account_view(ledger, name)
    assert view is not None
    return _account_out(ctx, view)


# -- balances --------------------------------------------------------------------------------

AccountRef = Annotated[str, Path(description="a user name, user:NAME or shared:NAME (a bare name is the "
                                             "user's personal account, else the shared account of that name)")]


class BalanceOut(BaseModel):
    account: str = Field(description="user:NAME or shared:NAME")
    balance: int = Field(description="minor units")
    balance_text: str
    overdraft: int
    overdraft_text: str
    available: int = Field(description="balance + overdraft: what a restricted account may still spend")
    available_text: str
    restricted: bool
    disabled: bool


class BalanceChange(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    amount: MoneyText = Field(description='a decimal string in major units, e.g. "5.00" (a top-up: '
                                          'positive; an adjustment: either sign, not 0). JSON numbers '
                                          "are refused")
    comment: str = Field(min_length=1, max_length=1000, description="why (kept in the transaction log)")
    txn_id: str | None = Field(None, min_length=1, max_length=150, pattern=r"^[!-~]+$",
                               description="the client's own id for safe retries (e.g. a UUID): the same "
                                           "id again returns the first transaction and changes nothing")


class TxnOut(BaseModel):
    """One entry of the transaction log."""

    seq: int = Field(description="position in this node's log")
    id: str = Field(description="idempotency id (api/TXN_ID for an API client's own id)")
    time: float = Field(description="Unix time")
    account: str
    amount: int = Field(description="signed, minor units: a charge is negative")
    amount_text: str
    balance: int = Field(description="the account's balance after it, minor units")
    balance_text: str
    kind: TxnKind
    job: int = Field(description="the job's id on the node that printed it (0: none)")
    job_uuid: str
    by: str = Field(description="who: the user printing, admin-api, admin:LOGIN, system")
    comment: str
    site: str = Field("", description="the site node it was made on (empty: this node)")
    offline: bool = Field(False, description="made while that site could not reach the primary")


class BalanceChangeResult(BaseModel):
    new: bool = Field(description="false: the txn_id was applied before and nothing changed now")
    transaction: TxnOut
    balance: BalanceOut = Field(description="the account now")


def _balance_out(ctx: WebContext, ledger: Ledger, account: str) -> BalanceOut:
    bal = ledger.balance(account)
    if bal is None:
        raise Problem(404, "Unknown account", f"no account {account!r}", slug="unknown-account", account=account)
    m = _money(ctx)
    return BalanceOut(account=account, balance=bal.balance, balance_text=m(bal.balance), overdraft=bal.overdraft,
                      overdraft_text=m(bal.overdraft), available=bal.available, available_text=m(bal.available),
                      restricted=bal.restricted, disabled=bal.disabled)


def _txn_out(m: Callable[[int], str], t: Txn) -> TxnOut:
    return TxnOut(**admin.txn_view(t), amount_text=m(t.amount), balance_text=m(t.balance))


@router.get("/balances/{account}", response_model=BalanceOut, tags=["balances"], summary="An account's balance",
            responses=_NOT_FOUND)
async def get_balance(account: AccountRef, ctx: WebContext = Depends(get_context),
                      ledger: Ledger = Depends(_ledger)) -> BalanceOut:
    with _ledger_errors():
        resolved = admin.resolve_account(ledger, account)
    return _balance_out(ctx, ledger, resolved)


async def _change_balance(ctx: WebContext, ledger: Ledger, account: str, change: BalanceChange,
                          kind: Literal["top-up", "adjustment"]) -> BalanceChangeResult:
    amount = _parse_money(ctx, change.amount, "amount")
    if kind == "top-up" and amount <= 0:
        raise _invalid("body", "amount", "a top-up must be a positive amount")
    if amount == 0:
        raise _invalid("body", "amount", "an adjustment of 0 changes nothing")
    txn_id = TXN_PREFIX + change.txn_id if change.txn_id else None
    with _ledger_errors():
        resolved = admin.resolve_account(ledger, account)
        op = ledger.topup if kind == "top-up" else ledger.adjust
        applied = await op(resolved, amount, by=BY, comment=change.comment, txn_id=txn_id)
    m = _money(ctx)
    t = applied.txn
    if applied.new:
        log.info("%s: %s %s on %s (transaction %d)", BY, kind, m(t.amount), t.account, t.seq)
    return BalanceChangeResult(new=applied.new, transaction=_txn_out(m, t),
                               balance=_balance_out(ctx, ledger, resolved))


@router.post("/balances/{account}/topup", response_model=BalanceChangeResult, tags=["balances"],
             summary="Add credit", responses={**_NOT_FOUND, 409: {"description": "txn_id used before for "
                                                                                "another change"}})
async def topup_balance(account: AccountRef, change: BalanceChange, ctx: WebContext = Depends(get_context),
                        ledger: Ledger = Depends(_ledger_to_change)) -> BalanceChangeResult:
    return await _change_balance(ctx, ledger, account, change, "top-up")


@router.post("/balances/{account}/adjust", response_model=BalanceChangeResult, tags=["balances"],
             summary="Add or remove credit (a correction)",
             responses={**_NOT_FOUND, 409: {"description": "txn_id used before for another change"}})
async def adjust_balance(account: AccountRef, change: BalanceChange, ctx: WebContext = Depends(get_context),
                         ledger: Ledger = Depends(_ledger_to_change)) -> BalanceChangeResult:
    return await _change_balance(ctx, ledger, account, change, "adjustment")


# -- transactions ----------------------------------------------------------------------------

_UNIX = re.compile(r"[0-9]+(\.[0-9]+)?", re.ASCII)


def _when(text: str | None, field: str) -> float | None:
    """ISO 8601 (a date, or a time; without an offset: the node's local time) or Unix seconds."""
    if text is None:
        return None
    t = text.strip()
    if _UNIX.fullmatch(t):
        return float(t)
    try:
        d = dt.datetime.fromisoformat(t)
    except ValueError:
        raise _invalid("query", field, f"{text!r} is not an ISO 8601 date or time (2026-11-21, "
                                       "2026-11-21T14:00:00Z) nor Unix seconds") from None
    if d.tzinfo is None:
        d = d.astimezone()
    return d.timestamp()


_TIME_HELP = "ISO 8601 date or time (no offset: the node's local time) or Unix seconds"


@router.get("/transactions", response_model=list[TxnOut], tags=["transactions"],
            summary="The transaction log, newest first", responses=_NOT_FOUND)
async def list_transactions(
        account: Annotated[str | None, Query(description="a user name, user:NAME or shared:NAME")] = None,
        user: Annotated[str | None, Query(description="the user's own account and what they charged elsewhere")] = None,
        kind: Annotated[TxnKind | None, Query()] = None,
        job: Annotated[int | None, Query(ge=1, description="the job id on this node")] = None,
        since: Annotated[str | None, Query(description=_TIME_HELP)] = None,
        until: Annotated[str | None, Query(description=_TIME_HELP)] = None,
        limit: Annotated[int, Query(ge=1, le=10000)] = 100,
        ctx: WebContext = Depends(get_context), ledger: Ledger = Depends(_ledger)) -> list[TxnOut]:
    t0, t1 = _when(since, "since"), _when(until, "until")
    with _ledger_errors():
        resolved = admin.resolve_account(ledger, account) if account is not None else None
    rows = await trio.to_thread.run_sync(functools.partial(
        ledger.transactions, account=resolved, user=user, kind=kind, job=job, since=t0, until=t1, limit=limit))
    m = _money(ctx)
    return [_txn_out(m, t) for t in rows]


# -- cost preview ----------------------------------------------------------------------------

class CostPreview(BaseModel):
    queue: str
    format: str = Field(description="the document format the engine found (MIME type)")
    pages: int
    copies: int
    gray: bool = Field(description="priced as gray (asked for, or the queue forces grayscale)")
    sides: str | None = Field(description="the sides priced (the queue may force duplex); null: the document's own")
    cost: int = Field(description="minor units")
    cost_text: str
    detail: str = Field(description="the sum on one line")
    breakdown: list[str] = Field(description="one line per term and one for the total")
    warnings: list[str]


def _cost_limiter(request: Request) -> trio.CapacityLimiter:
    state = request.app.state
    limiter = getattr(state, "cost_preview_limiter", None)
    if limiter is None:
        limiter = state.cost_preview_limiter = trio.CapacityLimiter(PREVIEW_WORKERS)
    return limiter


@router.post("/cost/preview", response_model=CostPreview, tags=["cost"],
             summary="What a document would cost on a queue (nothing is charged)",
             description="The body is the document (PDF, PostScript, PCL, PCL XL, PWG/URF raster, "
                         "JPEG, PNG, text); its format is detected, Content-Type is not needed. Priced "
                         "with the queue's cost table and its forced conversions (as for restricted "
                         f"users). At most {MAX_DOCUMENT_BYTES} bytes (413).",
             responses={413: {"description": "The document is too large"},
                        422: {"description": "Unknown queue, or a document whose pages cannot be counted"}},
             openapi_extra={"requestBody": {"required": True, "content": {
                 t: {"schema": {"type": "string", "format": "binary"}} for t in (
                     "application/pdf", "application/postscript", "application/vnd.hp-pcl",
                     "application/octet-stream")}}})
async def preview_cost(
        request: Request,
        queue: Annotated[str | None, Query(description="default: the node's default queue")] = None,
        copies: Annotated[int, Query(ge=1, le=9999)] = 1,
        sides: Annotated[Literal["one-sided", "two-sided-long-edge", "two-sided-short-edge"] | None,
                         Query(description="default: as the document says")] = None,
        gray: Annotated[bool, Query(description="printed without colour")] = False,
        ctx: WebContext = Depends(get_context)) -> CostPreview:
    settings = ctx.settings
    q = queue if queue is not None else settings.default_queue
    if q not in settings.queues:
        raise _unread(_invalid("query", "queue", f"no queue {q!r} (queues: {', '.join(settings.queues)})"))
    state_dir = settings.node.state_dir
    fd, path = tempfile.mkstemp(prefix=".cost-preview-", dir=state_dir)  # 0600, beside the node's data
    os.close(fd)
    try:
        async with await trio.open_file(path, "wb") as f:
            await _receive(request, MAX_DOCUMENT_BYTES, f.write)
        run = functools.partial(admin.preview_cost, settings, q, path, copies=copies, sides=sides, gray=gray)
        try:
            result = await trio.to_thread.run_sync(run, limiter=_cost_limiter(request))
        except admin.UncountableDocument as e:
            raise Problem(422, "Uncountable document", str(e), slug="uncountable-document") from None
        except (LedgerError, ValueError) as e:
            raise Problem(422, "Refused", str(e), slug="ledger-refused") from None
    finally:
        with contextlib.suppress(OSError):
            os.unlink(path)
    return CostPreview(**result)
