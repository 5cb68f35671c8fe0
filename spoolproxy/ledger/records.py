"""Ledger records and their msgpack layout (schema-versioned).

Accounts are named by a key string: ``user:NAME`` is a user's personal account,
``shared:NAME`` a shared account. Balances live in their own table, one small
record per account key, so that the credit check is one read and one unpack.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

SCHEMA_VERSION = 1
KINDS = ("print", "refund", "adjustment", "top-up", "offline")
USER_PREFIX = "user:"
SHARED_PREFIX = "shared:"
MAX_CARDS = 2
MAX_NAME = 255


class RecordError(ValueError):
    """A stored record cannot be read (wrong schema or shape)."""


def personal(user: str) -> str:
    return USER_PREFIX + user


def shared(name: str) -> str:
    return SHARED_PREFIX + name


def key(account: str) -> bytes:
    return account.encode()


def check_name(what: str, name: str) -> str:
    """Names are keys: non-empty, printable, no ':' at the front, at most 255 bytes."""
    if not isinstance(name, str) or not name or name != name.strip():
        raise ValueError(f"{what} must be a non-empty name without surrounding spaces, not {name!r}")
    if len(name.encode()) > MAX_NAME or not name.isprintable():
        raise ValueError(f"{what} {name[:40]!r} is too long or has control characters")
    return name


_FIELDS: dict[type, tuple[str, ...]] = {}


class _Record:
    """to_record/from_record for the dataclasses below (lists stay lists)."""

    __slots__ = ()

    def to_record(self) -> dict[str, Any]:
        names = _FIELDS.get(type(self))
        if names is None:  # dataclasses.fields() costs microseconds: once per class
            names = _FIELDS[type(self)] = tuple(f.name for f in dataclasses.fields(self))  # type: ignore[arg-type]
        d = {n: getattr(self, n) for n in names}
        for k, v in d.items():
            if isinstance(v, tuple):
                d[k] = list(v)
        d["v"] = SCHEMA_VERSION
        return d

    @classmethod
    def from_record(cls, rec: dict[str, Any]):
        if not isinstance(rec, dict):
            raise RecordError(f"{cls.__name__} record is not a map")
        rec = dict(rec)
        v = rec.pop("v", None)
        if v != SCHEMA_VERSION:
            raise RecordError(f"{cls.__name__} record schema {v} is not {SCHEMA_VERSION}")
        names = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
        try:
            return cls(**{k: val for k, val in rec.items() if k in names})
        except TypeError as e:
            raise RecordError(f"{cls.__name__} record: {e}") from None


@dataclass(slots=True)
class User(_Record):
    name: str
    full_name: str = ""
    email: str = ""
    groups: list[str] = field(default_factory=list)
    restricted: bool = True
    overdraft: int = 0  # how far below zero a restricted user may go (minor units)
    cards: list[str] = field(default_factory=list)  # at most MAX_CARDS
    identity: str = ""  # identity number (student/staff number), for identity+PIN login
    pin_hash: str = ""
    password_hash: str = ""
    disabled: bool = False
    created: float = 0.0
    updated: float = 0.0

    @property
    def account(self) -> str:
        return personal(self.name)

    def public(self) -> dict[str, Any]:
        """The record without its hashes (for display and the admin API)."""
        d = self.to_record()
        d.pop("v")
        d["has_pin"] = bool(d.pop("pin_hash"))
        d["has_password"] = bool(d.pop("password_hash"))
        return d


@dataclass(slots=True)
class Group(_Record):
    name: str
    info: str = ""
    created: float = 0.0


@dataclass(slots=True)
class Account(_Record):
    """A shared account (department, project, class) that several users charge."""

    name: str
    code: str = ""  # what a job names it by (job-account-id, PJL), besides its name
    users: list[str] = field(default_factory=list)  # who may charge it
    groups: list[str] = field(default_factory=list)  # ... and members of these groups
    restricted: bool = True
    overdraft: int = 0
    disabled: bool = False
    info: str = ""
    created: float = 0.0
    updated: float = 0.0

    @property
    def account(self) -> str:
        return shared(self.name)

    def may_use(self, user: User) -> bool:
        return user.name in self.users or any(g in self.groups for g in user.groups)

    def public(self) -> dict[str, Any]:
        d = self.to_record()
        d.pop("v")
        return d


@dataclass(slots=True, frozen=True)
class Balance:
    """What the credit check needs of an account, stored as one msgpack array, plus
    ``last``: the seq of the account's newest transaction, the head of its history
    (each Txn links to the account's previous one). A chain instead of a per-account
    index table: a charge then dirties one page fewer in its commit."""

    balance: int
    overdraft: int = 0
    restricted: bool = True
    disabled: bool = False
    last: int = 0

    def to_record(self) -> list[Any]:
        return [SCHEMA_VERSION, self.balance, self.overdraft, self.restricted, self.disabled, self.last]

    @classmethod
    def from_record(cls, rec: list[Any]) -> "Balance":
        if not isinstance(rec, list) or len(rec) != 6 or rec[0] != SCHEMA_VERSION:
            raise RecordError(f"balance record {rec!r:.60} is not schema {SCHEMA_VERSION}")
        return cls(rec[1], rec[2], rec[3], rec[4], rec[5])

    @property
    def available(self) -> int:
        """What a restricted account may still spend."""
        return self.balance + self.overdraft


@dataclass(slots=True)
class Txn(_Record):
    """One entry of the transaction log. (Not frozen: a frozen dataclass's __init__
    costs microseconds, and one is made per charge inside the write transaction.)"""

    seq: int  # position in this node's log
    id: str  # idempotency key: applying the same id twice changes nothing
    time: float
    account: str  # user:NAME or shared:NAME
    amount: int  # signed: a charge is negative, a top-up positive
    balance: int  # the account's balance after it
    kind: str  # one of KINDS
    job: int = 0  # the job's id on the node that printed it (0: none)
    job_uuid: str = ""
    by: str = ""  # who did it: the user printing, the administrator, "system"
    comment: str = ""
    prev: int = 0  # seq of the same account's transaction before this one (0: none)
    site: str = ""  # the site node it was made on ("": this node)
    offline: bool = False  # made while that site could not reach the primary

    def to_record(self) -> dict[str, Any]:  # by hand: it runs once per charge
        return {"seq": self.seq, "id": self.id, "time": self.time, "account": self.account,
                "amount": self.amount, "balance": self.balance, "kind": self.kind, "job": self.job,
                "job_uuid": self.job_uuid, "by": self.by, "comment": self.comment, "prev": self.prev,
                "site": self.site, "offline": self.offline, "v": SCHEMA_VERSION}
