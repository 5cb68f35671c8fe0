"""Charging jobs: the debit when a job goes to its printer, the refund when it
ends without printing.

The admission stage (spoolproxy.policy.admission) leaves on each job what it
will cost and whom to charge, in ``job.extra["charge"]``::

    {"account": "user:alice", "cost": 240, "detail": "...", "n": 1,
     "txn": "print/<job uuid>/1" once debited, "refunded": True once refunded}

:meth:`Charger.charge` runs when delivery starts (for a held job: at release). It
debits with ``require_funds``, so the credit check is repeated against the balance
of that moment, inside the commit. The transaction id is derived from the job's
uuid: a delivery resumed after a crash charges the same id again, which changes
nothing - every delivered job is in the ledger exactly once.

The refund rides on the job store's save (``JobStore(on_save=charger.on_save)``):
when a charged job is saved in a final state other than completed, the refund is
applied in the same write transaction as the job record, so a crash can never keep
one without the other.
"""
from __future__ import annotations

import logging
from typing import Any, Callable

from ..db import WriteTxn
from ..ipp.model import JobState
from ..spool.job import Job
from .errors import InsufficientCredit, LedgerError
from .store import Ledger, apply_fn

log = logging.getLogger("spoolproxy.ledger")

Money = Callable[[int], str]


class ChargeRefused(Exception):
    """The job cannot be charged now; ``reason`` is the IPP job-state-reasons keyword."""

    def __init__(self, reason: str, message: str):
        super().__init__(message)
        self.reason = reason


def charge_id(job: Job, plan: dict[str, Any]) -> str:
    return f"print/{job.uuid.removeprefix('urn:uuid:')}/{plan.get('n', 1)}"


class Charger:
    def __init__(self, ledger: Ledger, money: Money, *, site: Any = None):
        self.ledger = ledger
        self.money = money
        self.site = site  # spoolproxy.sync.Site on a site node: charges go through it

    async def charge(self, job: Job) -> None:
        """Debit the job's cost (once); ChargeRefused when the account cannot pay now.
        The caller saves the job afterwards (the plan then records the debit)."""
        plan = job.extra.get("charge")
        if not plan or plan.get("txn") or not plan.get("cost"):
            return
        txn_id = charge_id(job, plan)
        cost = int(plan["cost"])
        try:
            applied = await (self.site or self.ledger).apply(
                txn_id, plan["account"], -cost, "print", job=job.id, job_uuid=job.uuid,
                by=job.user, comment=_comment(job, plan), require_funds=True)
        except InsufficientCredit as e:
            raise ChargeRefused("account-limit-reached", (
                f"Not enough credit: this job costs {self.money(cost)} ({plan.get('detail', '')}) "
                f"and {whose(plan['account'], job.user)} has {self.money(e.available)} available."
            )) from None
        except LedgerError as e:
            raise ChargeRefused("account-closed", f"The job cannot be charged: {e}.") from None
        plan["txn"] = txn_id
        plan["balance"] = applied.txn.balance
        log.info("job %d charged %s to %s (balance %s)%s", job.id, self.money(cost), plan["account"],
                 self.money(applied.txn.balance), "" if applied.new else " [already charged]")

    def on_save(self, job: Job) -> Callable[[WriteTxn], Any] | None:
        """The job store's save hook: the refund of a charged job ending unprinted."""
        plan = job.extra.get("charge")
        if (not plan or not plan.get("txn") or plan.get("refunded") or not job.is_final
                or job.state == JobState.COMPLETED):
            return None
        make = self.site.apply_fn if self.site is not None else apply_fn  # a site journals it
        fn = make(f"{plan['txn']}/refund", plan["account"], int(plan["cost"]), "refund",
                  job=job.id, job_uuid=job.uuid, by="system",
                  comment=f"job {job.id} {JobState(job.state).keyword}: "
                          f"{job.state_message or ', '.join(job.state_reasons)}"[:200],
                  when=self.ledger.clock())
        plan["refunded"] = True
        plan["n"] = int(plan.get("n", 1)) + 1  # a later reprint is a new charge
        plan.pop("txn", None)

        def refund(t: WriteTxn) -> None:
            try:
                fn(t)
            except LedgerError as e:  # validated before any write: nothing half-done
                log.error("job %d: refund failed: %s", job.id, e)
        log.info("job %d refunded %s to %s", job.id, self.money(int(plan["cost"])), plan["account"])
        return refund

    async def settle(self, store: Any) -> int:
        """Startup: refund charged jobs that ended unprinted while the node was going
        down (their refund is idempotent). Returns how many were saved."""
        pending = [j for j in store.jobs(which="completed")
                   if j.state != JobState.COMPLETED and (j.extra.get("charge") or {}).get("txn")
                   and not j.extra["charge"].get("refunded")]
        for job in pending:
            await store.save(job)
        return len(pending)


def whose(account: str, user: str) -> str:
    """The account as the user reads it in a message."""
    if account == f"user:{user}":
        return "your account"
    return f"the account {account.split(':', 1)[-1]!r}"


def _comment(job: Job, plan: dict[str, Any]) -> str:
    name = job.name or (job.documents[0].name if job.documents else "")
    text = f"{name}: {plan.get('detail', '')}" if name else str(plan.get("detail", ""))
    return text[:200]
