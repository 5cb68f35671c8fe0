"""The offline policies as decisions (pure: no I/O). The settings are
config.OfflinePolicy; a site reads the primary's copy from its synced ``policy``
table (spoolproxy.sync.site.Site.policy)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

NO_LIMIT = 2**62


@dataclass(frozen=True, slots=True)
class CreditRule:
    """What a restricted account may spend while offline (the Ledger's ``credit``)."""

    mode: str  # last-known | overdraft | allow | none
    extra: int = 0  # mode overdraft: on top of the account's own overdraft

    def available(self, balance: int, overdraft: int) -> int:
        if self.mode == "allow":
            return NO_LIMIT
        if self.mode == "none":
            return 0
        return balance + overdraft + (self.extra if self.mode == "overdraft" else 0)


def credit_rule(policy: Any) -> CreditRule | None:
    """None: the ordinary check against the (last known) balance."""
    if policy.credit == "last-known":
        return None
    return CreditRule(policy.credit, policy.offline_overdraft)


@dataclass(frozen=True, slots=True)
class UnknownUser:
    """What to do with a job of a user the site does not know."""

    action: str  # assign | untracked | cancel
    user: str = ""  # assign: the user charged
    message: str = ""  # cancel: why, for the job-state-message


def unknown_user(policy: Any, name: str, *, findme: bool) -> UnknownUser:
    if policy.unknown == "assign":
        return UnknownUser("assign", policy.unknown_user)
    if policy.unknown == "untracked" and not findme:
        return UnknownUser("untracked")
    if policy.unknown == "untracked":
        return UnknownUser("cancel", message=(
            f"User {name!r} is not known to this print server, which cannot reach its primary: "
            "jobs of unknown users print uncharged only from a printer's own queue, not from a Find-Me queue."))
    return UnknownUser("cancel", message=(
        f"User {name!r} is not known to this print server, which cannot reach its primary now."))


def needs_choice(named: str, named_known: bool, shared_accounts: int) -> bool:
    """Would the job's account need a choice the user cannot make offline: it names a
    shared account the site does not know, or it names none and the user may charge
    shared accounts besides their own."""
    return (bool(named) and not named_known) or (not named and shared_accounts > 0)


def offline_account(policy: Any, user: str) -> tuple[str, str]:
    """(account key, '') for the policy's choice, or ('', why) when the job is cancelled."""
    if policy.account == "offline-account":
        return "shared:" + policy.offline_account, ""
    if policy.account == "personal":
        return "user:" + user, ""
    return "", ("This job would need a choice of account, which this print server cannot check while it "
                "cannot reach its primary; it was cancelled (offline policy).")


def password_allowed(policy: Any) -> bool:
    return policy.password == "cached"
