# Stub for the compiled twin of spoolproxy.ledger.credit (ext/credit.pyx).
from typing import Any

from spoolproxy.ledger.credit import CreditRule

NO_CREDIT: str
NO_DISABLED: str
NO_ACCOUNT: str

class Credit:
    ok: bool
    account: str
    cost: int
    balance: int
    available: int
    restricted: bool
    reason: str
    def __init__(self, ok: bool, account: str, cost: int, balance: int = ..., available: int = ...,
                 restricted: bool = ..., reason: str = ...) -> None: ...

def decide(raw: Any, account: str, cost: int, rule: CreditRule | None = ...) -> Credit: ...
