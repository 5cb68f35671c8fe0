"""The credit check's answer from one balance record: the decision on every job's
path, after the one LMDB read (spoolproxy.ledger.store.Ledger.check).

This pure module is the specification; ext/credit.pyx is its compiled twin
(spoolproxy._ext.credit), which reads the record's msgpack array in C and builds the
answer without the interpreter. Both must answer and raise alike for any record.

A balance record is ``[schema, balance, overdraft, restricted, disabled, last]``
(spoolproxy.ledger.records.Balance). Restricted accounts need balance plus overdraft
(or what an offline policy's rule allows) to cover the cost, and a cost of 0 always
passes; unrestricted ones may go negative; disabled ones pay nothing.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

import msgpack

__all__ = ["Credit", "CreditRule", "decide", "NO_CREDIT", "NO_DISABLED", "NO_ACCOUNT"]

NO_CREDIT = "not enough credit"
NO_DISABLED = "the account is disabled"
NO_ACCOUNT = "there is no such account"

_unpackb = msgpack.unpackb  # a balance record is a flat list: the defaults read it


class CreditRule(Protocol):
    def available(self, balance: int, overdraft: int) -> int: ...


@dataclass(slots=True)
class Credit:
    """The answer of the credit check."""

    ok: bool
    account: str
    cost: int
    balance: int = 0
    available: int = 0  # balance + overdraft (what a restricted account may spend)
    restricted: bool = True
    reason: str = ""  # why not, in words for the user: one of the NO_* constants


def decide(raw: Any, account: str, cost: int, rule: CreditRule | None = None) -> Credit:
    """May ``account``, whose balance record is ``raw`` (packed; None: no record), pay
    ``cost``? ``rule`` replaces balance plus overdraft as what may be spent."""
    if raw is None:
        return Credit(False, account, cost, reason=NO_ACCOUNT)
    _v, bal, overdraft, restricted, disabled, _last = _unpackb(raw)
    available = bal + overdraft if rule is None else rule.available(bal, overdraft)
    if disabled:
        return Credit(False, account, cost, bal, available, restricted, NO_DISABLED)
    if restricted and 0 < cost and available < cost:
        return Credit(False, account, cost, bal, available, restricted, NO_CREDIT)
    return Credit(True, account, cost, bal, available, restricted)
