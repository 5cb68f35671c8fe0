"""Administration of the ledger, shared by the ``spoolproxy`` command and the JSON
admin API: import users from CSV, show and change users and shared accounts,
top up and adjust balances, list transactions, preview what a document costs.

Amounts arrive here already as integers (the callers parse "1.50" with the node's
``ledger.decimals``); secrets arrive in clear and leave this module only hashed.
"""
from __future__ import annotations

import csv
import io
import os
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable

import trio

from .errors import LedgerError, UnknownAccount
from .passwords import hash_secret, verify_secret
from .records import SHARED_PREFIX, USER_PREFIX, User, personal, shared
from .store import Ledger, update_user_fn

# CSV columns (header names, case-insensitive); only username is required, and an
# empty cell leaves that field as it is, so a file can be imported again and again.
COLUMNS = ("username", "full_name", "email", "groups", "restricted", "overdraft", "card", "card2",
           "identity", "pin", "password", "disabled", "initial_credit")
_TRUE = {"1", "true", "yes", "y", "on"}
_FALSE = {"0", "false", "no", "n", "off"}
MAX_IMPORT_BYTES = 64 << 20
PIN_RULE = "must be 4 to 12 digits"


def pin_ok(pin: str) -> bool:
    return pin.isdigit() and pin.isascii() and 4 <= len(pin) <= 12


@dataclass
class ImportReport:
    created: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    errors: list[tuple[int, str]] = field(default_factory=list)  # (line number, why)

    def as_dict(self) -> dict[str, Any]:
        return {"created": len(self.created), "updated": len(self.updated),
                "unchanged": len(self.unchanged),
                "errors": [{"line": n, "error": e} for n, e in self.errors]}


def _bool(text: str, column: str) -> bool:
    t = text.strip().lower()
    if t in _TRUE:
        return True
    if t in _FALSE:
        return False
    raise ValueError(f"{column}: {text!r} is not yes/no (true/false, 1/0)")


def _row_changes(row: dict[str, str], parse_money: Callable[[str], int]) -> tuple[str, dict[str, Any], dict[str, str], int]:
    """(username, field changes, secrets in clear, initial credit) of one CSV row."""
    name = (row.get("username") or "").strip()
    if not name:
        raise ValueError("username is empty")
    ch: dict[str, Any] = {}
    for col in ("full_name", "email", "identity"):
        v = (row.get(col) or "").strip()
        if v:
            ch[col] = v
    groups = (row.get("groups") or "").strip()
    if groups:
        ch["groups"] = sorted({g.strip() for g in groups.replace(",", ";").split(";") if g.strip()})
    for col in ("restricted", "disabled"):
        v = (row.get(col) or "").strip()
        if v:
            ch[col] = _bool(v, col)
    v = (row.get("overdraft") or "").strip()
    if v:
        try:
            ch["overdraft"] = parse_money(v)
        except ValueError as e:
            raise ValueError(f"overdraft: {e}") from None
        if ch["overdraft"] < 0:
            raise ValueError("overdraft: must not be negative")
    cards = [c for c in ((row.get("card") or "").strip(), (row.get("card2") or "").strip()) if c]
    if cards:
        ch["cards"] = cards
    secrets = {k: row[k].strip() for k in ("pin", "password") if (row.get(k) or "").strip()}
    if "pin" in secrets and not pin_ok(secrets["pin"]):
        raise ValueError(f"pin: {PIN_RULE}")
    credit = 0
    v = (row.get("initial_credit") or "").strip()
    if v:
        try:
            credit = parse_money(v)
        except ValueError as e:
            raise ValueError(f"initial_credit: {e}") from None
        if credit < 0:
            raise ValueError("initial_credit: must not be negative")
    return name, ch, secrets, credit


async def _hash_secrets(ledger: Ledger, work: list[tuple[str, dict[str, Any], dict[str, str]]]) -> None:
    """Hash the rows' PINs and passwords in threads (scrypt releases the GIL), keeping
    a stored hash that already matches, so a re-import changes nothing."""
    limiter = trio.CapacityLimiter(max(1, os.cpu_count() or 1))

    async def one(name: str, ch: dict[str, Any], secrets: dict[str, str]) -> None:
        current = ledger.user(name)
        for kind, secret in secrets.items():
            stored = getattr(current, f"{kind}_hash", "") if current else ""
            if stored and await trio.to_thread.run_sync(verify_secret, secret, stored, limiter=limiter):
                continue
            ch[f"{kind}_hash"] = await trio.to_thread.run_sync(hash_secret, secret, limiter=limiter)

    async with trio.open_nursery() as nursery:
        for name, ch, secrets in work:
            if secrets:
                nursery.start_soon(one, name, ch, secrets)


@dataclass
class Row:
    line: int
    name: str
    changes: dict[str, Any]
    secrets: dict[str, str]
    credit: int


def parse_users_csv(data: str | bytes, parse_money: Callable[[str], int]) -> tuple[list[Row], list[tuple[int, str]]]:
    """The rows of a users CSV file and the (line, why) of every bad one; no I/O.
    Raises LedgerError only when the file as a whole is unusable (not text, no
    usable header row)."""
    errors: list[tuple[int, str]] = []
    if isinstance(data, bytes):
        if len(data) > MAX_IMPORT_BYTES:
            raise LedgerError(f"the file is larger than {MAX_IMPORT_BYTES >> 20} MiB")
        try:
            data = data.decode("utf-8-sig")
        except UnicodeDecodeError as e:
            raise LedgerError(f"the file is not UTF-8 text (byte {e.start})") from None
    reader = csv.DictReader(io.StringIO(data.lstrip("\ufeff"), newline=""))
    try:
        header = [(h or "").strip().lower() for h in (reader.fieldnames or [])]
    except csv.Error as e:
        raise LedgerError(f"line 1: {e}") from None
    if "username" not in header:
        raise LedgerError("line 1: the header row must name a username column "
                          f"(columns: {', '.join(COLUMNS)})")
    unknown = [h for h in header if h not in COLUMNS]
    if unknown:
        raise LedgerError(f"line 1: unknown column(s) {', '.join(unknown)} "
                          f"(columns: {', '.join(COLUMNS)})")
    if len(set(header)) != len(header):
        raise LedgerError("line 1: a column is named twice")
    reader.fieldnames = header
    rows: list[Row] = []
    seen: dict[str, int] = {}
    while True:
        try:
            raw = next(reader)
        except StopIteration:
            break
        except csv.Error as e:  # e.g. a NUL byte or an unterminated quote: the rest is unreadable
            errors.append((reader.line_num, f"{e}; this line and the rest of the file were not imported"))
            break
        line = reader.line_num
        if None in raw:
            errors.append((line, f"{len(raw[None])} more field(s) than the header has"))
            continue
        if not any((v or "").strip() for v in raw.values()):
            continue  # a blank line
        try:
            name, ch, secrets, credit = _row_changes(raw, parse_money)
        except ValueError as e:
            errors.append((line, str(e)))
            continue
        if name in seen:
            errors.append((line, f"user {name!r} is already on line {seen[name]}"))
            continue
        seen[name] = line
        rows.append(Row(line, name, ch, secrets, credit))
    return rows, errors


async def import_users(ledger: Ledger, data: str | bytes, *, parse_money: Callable[[str], int],
                       by: str) -> ImportReport:
    """Create or update users from CSV text with a header row. Every bad row is
    reported with its line number and the others are imported; importing the same
    file twice changes nothing the second time."""
    report = ImportReport()
    # a large file takes a while to parse: not on the event loop that serves everyone else
    parsed, report.errors = await trio.to_thread.run_sync(parse_users_csv, data, parse_money)
    rows = [(r.line, r.name, r.changes, r.secrets, r.credit) for r in parsed]
    await _hash_secrets(ledger, [(name, ch, secrets) for _l, name, ch, secrets, _c in rows])
    now = ledger.clock()

    def fn(t) -> list[tuple[int, str, str]]:
        out = []
        for line, name, ch, _secrets, credit in rows:
            rec = t.get("users", name.encode())
            try:
                before = User.from_record(rec) if rec is not None else None
                if before is not None and all(getattr(before, k) == v for k, v in ch.items()):
                    out.append((line, name, "unchanged"))
                    continue
                update_user_fn(name, ch, create=True, by=by, now=now, initial_credit=credit)(t)
                out.append((line, name, "created" if before is None else "updated"))
            except (LedgerError, ValueError) as e:  # refused before any write of the row
                out.append((line, name, f"error: {e}"))
        return out

    for line, name, outcome in await ledger.db.transact(fn):
        if outcome.startswith("error: "):
            report.errors.append((line, outcome[len("error: "):]))
        else:
            getattr(report, outcome).append(name)
    report.errors.sort()
    return report


def resolve_account(ledger: Ledger, ref: str) -> str:
    """``user:NAME``, ``shared:NAME``, or a bare name: the user's personal account if
    there is such a user, else the shared account of that name."""
    if ref.startswith((USER_PREFIX, SHARED_PREFIX)):
        if ledger.balance(ref) is None:
            raise UnknownAccount(ref)
        return ref
    if ledger.user(ref) is not None:
        return personal(ref)
    if ledger.account(ref) is not None:
        return shared(ref)
    raise UnknownAccount(ref)


async def set_user(ledger: Ledger, name: str, changes: dict[str, Any], *, create: bool = False,
                   by: str) -> User:
    """Change a user; ``pin``/``password`` in ``changes`` are hashed here (an empty
    string removes them)."""
    changes = dict(changes)
    for kind in ("pin", "password"):
        if kind in changes:
            secret = changes.pop(kind)
            if kind == "pin" and secret and not pin_ok(secret):
                raise LedgerError(f"a PIN {PIN_RULE}")
            changes[f"{kind}_hash"] = (await trio.to_thread.run_sync(hash_secret, secret)) if secret else ""
    return await ledger.update_user(name, changes, create=create, by=by)


def user_view(ledger: Ledger, name: str) -> dict[str, Any] | None:
    user = ledger.user(name)
    if user is None:
        return None
    bal = ledger.balance(user.account)
    view = user.public()
    view["account"] = user.account
    view["balance"] = bal.balance if bal else 0
    view["shared_accounts"] = [a.name for a in ledger.accounts_for(user)]
    return view


def account_view(ledger: Ledger, name: str) -> dict[str, Any] | None:
    acct = ledger.account(name)
    if acct is None:
        return None
    bal = ledger.balance(acct.account)
    view = acct.public()
    view["account"] = acct.account
    view["balance"] = bal.balance if bal else 0
    return view


def txn_view(t: Any) -> dict[str, Any]:
    d = t.to_record()
    d.pop("v", None)
    return d


class UnknownQueue(LedgerError):
    def __init__(self, queue: str, queues: Iterable[str]):
        super().__init__(f"no queue {queue!r} (queues: {', '.join(queues)})")
        self.queue = queue


class UncountableDocument(LedgerError):
    """The document engine cannot count the document's pages (the message says why)."""


def preview_cost(settings: Any, queue: str, path: str, *, copies: int = 1, sides: str | None = None,
                 gray: bool = False) -> dict[str, Any]:
    """What a document would cost on a queue, without charging anyone: the document
    engine's count priced by the queue's cost model, with the queue's forced
    conversions (as they apply to restricted users). CPU-bound (and it may run
    Ghostscript): call it in a worker thread from async code. Raises UnknownQueue,
    UncountableDocument, or ValueError for bad copies/sides."""
    from .. import pdl
    from ..spool.analysis import summary
    from .cost import compute
    q = settings.queues.get(queue)
    if q is None:
        raise UnknownQueue(queue, settings.queues)
    try:
        a = summary(pdl.analyze(path, ghostscript=q.ghostscript, gs_timeout=q.analysis_timeout))
    except (pdl.PdlError, OSError) as e:
        raise UncountableDocument(f"cannot count the pages: {e}") from None
    gray = gray or q.filters.force_grayscale
    if q.filters.force_duplex and sides in (None, "one-sided"):
        sides = "two-sided-long-edge"
    cost = compute([a["kinds"]], q.cost, copies=copies, sides=sides, gray=gray)
    m = settings.ledger.money
    return {"queue": queue, "format": a["format"], "pages": a["pages"], "copies": copies,
            "gray": gray, "sides": sides, "cost": cost.total, "cost_text": m(cost.total),
            "detail": cost.describe(m), "breakdown": list(cost.breakdown(m)),
            "warnings": list(a["warnings"])}


def users_table(ledger: Ledger, names: Iterable[str] | None = None) -> list[dict[str, Any]]:
    users = ledger.users() if names is None else filter(None, (ledger.user(n) for n in names))
    out = []
    for u in users:
        bal = ledger.balance(u.account)
        out.append({"name": u.name, "full_name": u.full_name, "restricted": u.restricted,
                    "disabled": u.disabled, "balance": bal.balance if bal else 0,
                    "groups": list(u.groups)})
    return out
