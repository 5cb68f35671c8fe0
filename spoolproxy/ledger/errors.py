"""The ledger's errors: each says what a person needs to act on."""
from __future__ import annotations


class LedgerError(Exception):
    """A ledger operation was refused; nothing of it was applied."""


class UnknownUser(LedgerError):
    def __init__(self, name: str):
        super().__init__(f"no user {name!r}")
        self.name = name


class UnknownAccount(LedgerError):
    def __init__(self, account: str):
        super().__init__(f"no account {account!r}")
        self.account = account


class Conflict(LedgerError):
    """The change clashes with another record (a card that belongs to someone else)."""


class InsufficientCredit(LedgerError):
    def __init__(self, account: str, amount: int, available: int):
        super().__init__(f"account {account!r} cannot cover {-amount} (available {available})")
        self.account = account
        self.amount = amount
        self.available = available


class TransactionConflict(LedgerError):
    """A transaction id was applied before with different content: a replay bug, never
    a second charge."""
