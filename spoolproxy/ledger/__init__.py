"""The ledger: users, groups, shared accounts, balances in integer minor units, the
transaction log, the cost model and the credit check (DESIGN.md: ledger/)."""
from .errors import (Conflict, InsufficientCredit, LedgerError, TransactionConflict, UnknownAccount,
                     UnknownUser)
from .passwords import hash_secret, verify_secret
from .records import KINDS, Account, Balance, Group, Txn, User, personal, shared
from .store import Applied, Credit, Ledger

__all__ = [
    "Ledger", "Credit", "Applied", "User", "Group", "Account", "Balance", "Txn", "KINDS",
    "personal", "shared", "hash_secret", "verify_secret",
    "LedgerError", "UnknownUser", "UnknownAccount", "Conflict", "InsufficientCredit",
    "TransactionConflict",
]
