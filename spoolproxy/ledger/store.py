"""The ledger over the node database: users, groups, shared accounts, balances and
the transaction log.

Reads are inline (an LMDB read transaction each, microseconds). Every write is a
function run inside the database writer's grouped write transaction
(:meth:`Database.transact`), so a read-modify-write such as a charge sees the
balance of that instant, a batch of charges costs one commit, and a crash keeps
either all of a transaction or none of it.

A transaction carries an idempotency id: applying an id that is already in the log
returns the logged transaction and changes nothing (the same id with different
content is a :class:`TransactionConflict`). Job charges use ids derived from the
job's uuid, so a redelivery after a crash, or a journal replay, never charges twice.
"""
from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Iterator

from .. import _twins
from ..db import Database, WriteTxn, key_u64, u64_key
from ..uuids import new_id
from .credit import NO_ACCOUNT, NO_CREDIT, NO_DISABLED, CreditRule  # noqa: F401  (re-exported)
from .errors import (Conflict, InsufficientCredit, LedgerError, TransactionConflict, UnknownAccount,
                     UnknownUser)
from .records import (KINDS, SCHEMA_VERSION, MAX_CARDS, SHARED_PREFIX, USER_PREFIX, Account, Balance, Group, Txn,
                      User, check_name, key, personal, shared)

_credit = _twins.load("spoolproxy.ledger.credit")  # compiled: the answer is built in C
Credit, _decide = _credit.Credit, _credit.decide

MAX_TXN_ID = 200  # bytes; LMDB keys are at most 511
MAX_AMOUNT = 10**15  # far beyond any real price, far inside msgpack's int64
MAX_BALANCE = 2**62  # ditto for a balance: every write of a charge then packs


USER_FIELDS = frozenset(f.name for f in dataclasses.fields(User)) - {"name", "created", "updated"}
ACCOUNT_FIELDS = frozenset(f.name for f in dataclasses.fields(Account)) - {"name", "created", "updated"}


@dataclass(frozen=True, slots=True)
class Applied:
    txn: Txn
    new: bool  # False: the id was applied before, nothing changed


class Ledger:
    def __init__(self, db: Database, *, clock: Callable[[], float] = time.time):
        self.db = db
        self.clock = clock
        self._begin, self._balances = db.read_handle("balances")
        # what a restricted account may spend: None is balance plus overdraft; a site
        # that cannot reach its primary sets its offline policy's rule here
        self.credit: CreditRule | None = None

    # ---- reads -------------------------------------------------------------------

    def user(self, name: str) -> User | None:
        rec = self.db.get("users", name.encode())
        return None if rec is None else User.from_record(rec)

    def users(self) -> Iterator[User]:
        for _k, rec in self.db.scan("users"):
            yield User.from_record(rec)

    def user_by_card(self, card: str) -> User | None:
        owner = self.db.get("cards", card.encode()) if card else None
        return None if owner is None else self.user(owner)

    def user_by_identity(self, identity: str) -> User | None:
        owner = self.db.get("idents", identity.encode()) if identity else None
        return None if owner is None else self.user(owner)

    def group(self, name: str) -> Group | None:
        rec = self.db.get("groups", name.encode())
        return None if rec is None else Group.from_record(rec)

    def groups(self) -> Iterator[Group]:
        for _k, rec in self.db.scan("groups"):
            yield Group.from_record(rec)

    def account(self, name: str) -> Account | None:
        """A shared account by name."""
        rec = self.db.get("accounts", name.encode())
        return None if rec is None else Account.from_record(rec)

    def account_by_code(self, code: str) -> Account | None:
        name = self.db.get("account_codes", code.encode()) if code else None
        return None if name is None else self.account(name)

    def accounts(self) -> Iterator[Account]:
        for _k, rec in self.db.scan("accounts"):
            yield Account.from_record(rec)

    def accounts_for(self, user: User) -> list[Account]:
        """The shared accounts the user may charge (enabled ones)."""
        return [a for a in self.accounts() if not a.disabled and a.may_use(user)]

    def balance(self, account: str) -> Balance | None:
        rec = self.db.get("balances", key(account))
        return None if rec is None else Balance.from_record(rec)

    def check(self, account: str, cost: int) -> Credit:
        """May ``account`` pay ``cost`` now? Restricted accounts need balance plus
        overdraft to cover it (a cost of 0 always is); unrestricted ones may go
        negative; disabled ones pay nothing. One read: this is the microsecond path
        on every job. ``reason`` is one of the NO_* constants."""
        if self._balances is None:  # a read-only view of an environment without the table
            return _decide(None, account, cost)
        txn = self._begin(self._balances)  # inlined Database.reader: a call less per check
        raw = txn.get(account.encode())
        txn.commit()
        return _decide(raw, account, cost, self.credit)

    def txn(self, txn_id: str) -> Txn | None:
        seq = self.db.get("txn_ids", txn_id.encode())
        if seq is None:
            return None
        rec = self.db.get("txns", u64_key(seq))
        return None if rec is None else Txn.from_record(rec)

    def transactions(self, *, account: str | None = None, user: str | None = None,
                     kind: str | None = None, job: int | None = None, since: float | None = None,
                     until: float | None = None, limit: int | None = 100,
                     newest_first: bool = True) -> list[Txn]:
        """The log, filtered. ``user`` matches the user's personal account and any
        transaction the user made (a shared-account charge by them)."""
        if kind is not None and kind not in KINDS:
            raise ValueError(f"kind must be one of {', '.join(KINDS)}, not {kind!r}")
        if account is not None:
            chain = self._history(account)  # newest first
            source: Iterable[Txn] = chain if newest_first else reversed(list(chain))
        else:
            scan = self.db.scan_reverse if newest_first else self.db.scan
            source = (Txn.from_record(rec) for _k, rec in scan("txns"))
        mine = personal(user) if user is not None else None
        out: list[Txn] = []
        for t in source:  # (log order is not time order: a journal replays older offline charges)
            if ((kind is not None and t.kind != kind) or (job is not None and t.job != job)
                    or (since is not None and t.time < since) or (until is not None and t.time > until)
                    or (user is not None and t.account != mine and t.by != user)):
                continue
            out.append(t)
            if limit is not None and len(out) >= limit:
                break
        return out

    def _history(self, account: str) -> Iterator[Txn]:
        """The account's transactions, newest first, along their prev links."""
        bal = self.balance(account)
        seq = bal.last if bal is not None else 0
        while seq:
            rec = self.db.get("txns", u64_key(seq))
            if rec is None:
                return
            t = Txn.from_record(rec)
            yield t
            seq = t.prev

    # ---- writes ------------------------------------------------------------------

    async def _write(self, fn: Callable[[WriteTxn], Any]) -> Any:
        return await self.db.transact(fn)

    async def apply(self, txn_id: str, account: str, amount: int, kind: str, *, job: int = 0,
                    job_uuid: str = "", by: str = "", comment: str = "",
                    require_funds: bool = False, when: float | None = None) -> Applied:
        """Add ``amount`` (signed, minor units) to ``account``'s balance and log it,
        once per ``txn_id``. ``require_funds``: refuse (InsufficientCredit) a debit a
        restricted account cannot cover, or any debit of a disabled account, checked
        against the balance at commit time."""
        fn = apply_fn(txn_id, account, amount, kind, job=job, job_uuid=job_uuid, by=by,
                      comment=comment, require_funds=require_funds,
                      when=self.clock() if when is None else when, credit=self.credit)
        return await self.db.transact(fn, nested=False)  # apply_fn refuses before it writes

    async def topup(self, account: str, amount: int, *, by: str, comment: str = "",
                    txn_id: str | None = None) -> Applied:
        if amount <= 0:
            raise LedgerError("a top-up must be a positive amount")
        return await self.apply(txn_id or new_id("topup"), account, amount, "top-up", by=by,
                                comment=comment)

    async def adjust(self, account: str, amount: int, *, by: str, comment: str = "",
                     txn_id: str | None = None) -> Applied:
        if amount == 0:
            raise LedgerError("an adjustment of 0 changes nothing")
        return await self.apply(txn_id or new_id("adjust"), account, amount, "adjustment", by=by,
                                comment=comment)

    async def put_user(self, user: User, *, initial_credit: int = 0, by: str = "system") -> User:
        """Create or replace a user (cards, identity and groups kept consistent)."""
        return await self._write(put_user_fn(user, initial_credit=initial_credit, by=by,
                                             now=self.clock()))

    async def update_user(self, name: str, changes: dict[str, Any], *, create: bool = False,
                          initial_credit: int = 0, by: str = "system") -> User:
        """Change some fields of a user (UnknownUser unless ``create``; a created user
        starts with ``initial_credit``). Secrets must already be hashed
        (``pin_hash``/``password_hash``)."""
        return await self._write(update_user_fn(name, changes, create=create, by=by, now=self.clock(),
                                                initial_credit=initial_credit))

    async def put_account(self, account: Account) -> Account:
        return await self._write(put_account_fn(account, now=self.clock()))

    async def update_account(self, name: str, changes: dict[str, Any], *,
                             create: bool = False) -> Account:
        return await self._write(update_account_fn(name, changes, create=create, now=self.clock()))


def _show(account: str) -> str:
    if account.startswith(USER_PREFIX):
        return f"of user {account[len(USER_PREFIX):]!r}"
    if account.startswith(SHARED_PREFIX):
        return repr(account[len(SHARED_PREFIX):])
    return repr(account)


# ---- write functions (run inside the write transaction) ----------------------------
# Each validates everything before its first put, so that even outside a nested
# transaction a refused change leaves nothing behind.

def check_apply(txn_id: str, amount: int, kind: str) -> bytes:
    """What apply_in refuses before it reads anything; the id as a key."""
    if not isinstance(amount, int) or isinstance(amount, bool):
        raise TypeError("amounts are integers (minor units)")
    if abs(amount) > MAX_AMOUNT:
        raise LedgerError(f"the amount {amount} is beyond what the ledger accepts ({MAX_AMOUNT})")
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {', '.join(KINDS)}, not {kind!r}")
    idk = txn_id.encode()
    if not 0 < len(idk) <= MAX_TXN_ID:
        raise ValueError(f"a transaction id must be 1..{MAX_TXN_ID} bytes")
    return idk


def apply_fn(txn_id: str, account: str, amount: int, kind: str, *, job: int = 0, job_uuid: str = "",
             by: str = "", comment: str = "", require_funds: bool = False,
             when: float, site: str = "", offline: bool = False,
             credit: "CreditRule | None" = None) -> Callable[[WriteTxn], Applied]:
    idk = check_apply(txn_id, amount, kind)

    def fn(t: WriteTxn) -> Applied:
        return apply_in(t, idk, txn_id, account, amount, kind, job, job_uuid, by, comment, require_funds, when,
                        site, offline, credit)

    return fn


def apply_in(t: WriteTxn, idk: bytes, txn_id: str, account: str, amount: int, kind: str, job: int, job_uuid: str,
             by: str, comment: str, require_funds: bool, when: float, site: str, offline: bool,
             credit: "CreditRule | None") -> Applied:
    """The apply itself, inside a write transaction (after check_apply): the logged
    transaction, or the one logged before under this id."""
    seq = t.get("txn_ids", idk)
    if seq is not None:
        prev = Txn.from_record(t.get("txns", u64_key(seq)))
        if (prev.account, prev.amount, prev.kind) != (account, amount, kind):
            raise TransactionConflict(
                f"transaction {txn_id!r} was applied before as {prev.kind} {prev.amount} on "
                f"{prev.account}, not {kind} {amount} on {account}")
        return Applied(prev, False)
    rec = t.get("balances", key(account))
    if rec is None:
        raise UnknownAccount(account)
    bal = Balance.from_record(rec)
    if require_funds and amount < 0:
        if bal.disabled:
            raise LedgerError(f"the account {_show(account)} is disabled")
        available = bal.available if credit is None else credit.available(bal.balance, bal.overdraft)
        if bal.restricted and available + amount < 0:
            raise InsufficientCredit(account, amount, available)
    if abs(bal.balance + amount) > MAX_BALANCE:  # refused here: nothing is written yet
        raise LedgerError(f"the balance of {account} would pass {MAX_BALANCE}")
    last = t.last_key("txns")
    seq = key_u64(last) + 1 if last else 1
    txn = Txn(seq, txn_id, when, account, amount, bal.balance + amount, kind, job, job_uuid, by,
              comment, bal.last, site, offline)
    t.put("txns", u64_key(seq), txn.to_record())
    t.put("txn_ids", idk, seq)
    t.put("balances", key(account),
          [SCHEMA_VERSION, txn.balance, bal.overdraft, bal.restricted, bal.disabled, seq])
    return Applied(txn, True)


def _validate_user(user: User) -> None:
    check_name("user name", user.name)
    if len(user.cards) > MAX_CARDS:
        raise LedgerError(f"user {user.name!r}: at most {MAX_CARDS} card numbers")
    for card in user.cards:
        if not isinstance(card, str) or not card or len(card) > 128 or not card.isprintable():
            raise LedgerError(f"user {user.name!r}: bad card number {card!r:.40}")
    if len(set(user.cards)) != len(user.cards):
        raise LedgerError(f"user {user.name!r}: the same card number twice")
    if user.identity and (len(user.identity) > 128 or not user.identity.isprintable()):
        raise LedgerError(f"user {user.name!r}: bad identity number")
    for g in user.groups:
        check_name("group name", g)
    if not isinstance(user.overdraft, int) or user.overdraft < 0:
        raise LedgerError(f"user {user.name!r}: overdraft must be a non-negative integer")


def put_user_fn(user: User, *, initial_credit: int = 0, by: str = "system",
                now: float) -> Callable[[WriteTxn], User]:
    _validate_user(user)

    def fn(t: WriteTxn) -> User:
        uk = user.name.encode()
        rec = t.get("users", uk)
        old = User.from_record(rec) if rec is not None else None
        for card in user.cards:
            owner = t.get("cards", card.encode())
            if owner is not None and owner != user.name:
                raise Conflict(f"card {card} already belongs to user {owner!r}")
        if user.identity:
            owner = t.get("idents", user.identity.encode())
            if owner is not None and owner != user.name:
                raise Conflict(f"identity number {user.identity} already belongs to user {owner!r}")
        new = dataclasses.replace(user, created=old.created if old else now, updated=now)
        if old is not None:
            for card in old.cards:
                if card not in new.cards:
                    t.delete("cards", card.encode())
            if old.identity and old.identity != new.identity:
                t.delete("idents", old.identity.encode())
        for card in new.cards:
            t.put("cards", card.encode(), new.name)
        if new.identity:
            t.put("idents", new.identity.encode(), new.name)
        for g in new.groups:
            if t.get("groups", g.encode()) is None:
                t.put("groups", g.encode(), Group(g, created=now).to_record())
        t.put("users", uk, new.to_record())
        acct = personal(new.name)
        brec = t.get("balances", key(acct))
        bal = Balance.from_record(brec) if brec is not None else Balance(0)
        t.put("balances", key(acct), Balance(bal.balance, new.overdraft, new.restricted,
                                              new.disabled, bal.last).to_record())
        if old is None and initial_credit:
            apply_fn(f"initial/{new.name}/{now!r}", acct, initial_credit, "adjustment", by=by,
                     comment="initial credit", when=now)(t)
        return new

    return fn


def update_user_fn(name: str, changes: dict[str, Any], *, create: bool = False, by: str = "system",
                   now: float, initial_credit: int = 0) -> Callable[[WriteTxn], User]:
    unknown = set(changes) - USER_FIELDS
    if unknown:
        raise LedgerError(f"unknown user field(s): {', '.join(sorted(unknown))}")
    check_name("user name", name)

    def fn(t: WriteTxn) -> User:
        rec = t.get("users", name.encode())
        if rec is None and not create:
            raise UnknownUser(name)
        base = User.from_record(rec) if rec is not None else User(name)
        user = dataclasses.replace(base, **changes)
        _validate_user(user)
        return put_user_fn(user, initial_credit=initial_credit if rec is None else 0, by=by, now=now)(t)

    return fn


def _validate_account(a: Account) -> None:
    check_name("account name", a.name)
    if a.code and (len(a.code) > 128 or not a.code.isprintable()):
        raise LedgerError(f"account {a.name!r}: bad code {a.code!r:.40}")
    if not isinstance(a.overdraft, int) or a.overdraft < 0:
        raise LedgerError(f"account {a.name!r}: overdraft must be a non-negative integer")
    for u in a.users:
        check_name("user name", u)
    for g in a.groups:
        check_name("group name", g)


def put_account_fn(account: Account, *, now: float) -> Callable[[WriteTxn], Account]:
    _validate_account(account)

    def fn(t: WriteTxn) -> Account:
        ak = account.name.encode()
        rec = t.get("accounts", ak)
        old = Account.from_record(rec) if rec is not None else None
        if account.code:
            owner = t.get("account_codes", account.code.encode())
            if owner is not None and owner != account.name:
                raise Conflict(f"code {account.code} already names account {owner!r}")
        new = dataclasses.replace(account, created=old.created if old else now, updated=now)
        if old is not None and old.code and old.code != new.code:
            t.delete("account_codes", old.code.encode())
        if new.code:
            t.put("account_codes", new.code.encode(), new.name)
        for g in new.groups:
            if t.get("groups", g.encode()) is None:
                t.put("groups", g.encode(), Group(g, created=now).to_record())
        t.put("accounts", ak, new.to_record())
        acct = shared(new.name)
        brec = t.get("balances", key(acct))
        bal = Balance.from_record(brec) if brec is not None else Balance(0)
        t.put("balances", key(acct), Balance(bal.balance, new.overdraft, new.restricted,
                                              new.disabled, bal.last).to_record())
        return new

    return fn


def update_account_fn(name: str, changes: dict[str, Any], *, create: bool = False,
                      now: float) -> Callable[[WriteTxn], Account]:
    unknown = set(changes) - ACCOUNT_FIELDS
    if unknown:
        raise LedgerError(f"unknown account field(s): {', '.join(sorted(unknown))}")
    check_name("account name", name)

    def fn(t: WriteTxn) -> Account:
        rec = t.get("accounts", name.encode())
        if rec is None and not create:
            raise UnknownAccount(shared(name))
        base = Account.from_record(rec) if rec is not None else Account(name)
        return put_account_fn(dataclasses.replace(base, **changes), now=now)(t)

    return fn
