"""The admission stage of the job path: after the document engine has counted a
job and before it may be delivered or held, decide who pays, apply the queue's
filters and conversions, price it, and check the credit.

A refused job ends aborted with a job-state-message that says exactly why and
what it would have cost (never a silent drop). An admitted job carries its plan
in ``job.extra["charge"]`` (see spoolproxy.ledger.charge); the debit itself is
made when the job goes to the printer, where the credit is checked again.
"""
from __future__ import annotations

import hashlib
import logging
import time
from typing import Any, Callable, Mapping

from ..config import LedgerSettings, QueueSettings
from ..ipp.model import JobState
from ..ipp.types import Attribute
from ..ledger import Ledger, LedgerError, personal, shared
from ..ledger.charge import whose
from ..ledger.cost import MONOCHROME_MODES, job_cost
from ..ledger.store import NO_CREDIT
from ..spool.job import Job, job_totals
from .convert import (attributes as _attributes, convert_documents, int_attr as _int, keyword as _keyword,
                      named_account as _named_account, set_attributes as _set_attributes, sides as _sides,
                      Runner)
from .filters import Decision, Facts, applies, duplicate_message, evaluate
from ..sync import policy as offline

log = logging.getLogger("spoolproxy.policy")



class Admission:
    def __init__(self, ledger: Ledger, queues: Mapping[str, QueueSettings], settings: LedgerSettings,
                 store: Any, *, money: Callable[[int], str], site: Any = None):
        self.site = site  # spoolproxy.sync.Site on a site node: its offline policies apply
        self.ledger = ledger
        self.queues = queues
        self.settings = settings
        self.store = store
        self.money = money
        self._recent: dict[str, tuple[int, float]] = {}  # fingerprint -> (job id, created)
        self._pruned_at = 1024

    def load_recent(self, now: float | None = None) -> None:
        """Startup: remember the admitted jobs still inside their queue's duplicate window."""
        now = time.time() if now is None else now
        for job in self.store.jobs(which="all"):
            fp = job.extra.get("fingerprint")
            q = self.queues.get(job.queue)
            if fp and q is not None and now - job.created <= q.filters.duplicate_window:
                self._remember(fp, job)

    def _remember(self, fp: str, job: Job) -> None:
        self._recent[fp] = (job.id, job.created)
        if len(self._recent) > 2 * self._pruned_at:  # amortised: forget what no window covers
            horizon = job.created - max(q.filters.duplicate_window for q in self.queues.values())
            self._recent = {k: v for k, v in self._recent.items() if v[1] >= horizon}
            self._pruned_at = max(1024, len(self._recent))

    async def admit(self, job: Job, run: Runner) -> None:
        """Decide on an analysed job (mutates it; the caller saves). ``run(fn, *args)``
        runs CPU-heavy work (conversions) off the event loop."""
        q = self.queues.get(job.queue)
        if q is None or job.is_final or "charge" in job.extra:
            return
        try:
            await self._admit(job, q, run)
        except (LedgerError, ValueError) as e:  # e.g. a user name the ledger cannot hold
            self._deny(job, "aborted-by-system", f"The print server could not check the account: {e}.")
        except Exception as e:  # noqa: BLE001 - one job's bug must not stop the node's job path
            log.exception("job %d: admission failed", job.id)
            self._deny(job, "aborted-by-system", f"Internal error while checking the job: {type(e).__name__}.")

    async def _admit(self, job: Job, q: QueueSettings, run: Runner) -> None:
        user = self.ledger.user(job.user)
        if user is None and self.site is not None:  # online, the primary decides as for its own jobs
            found = await self.site.first_print(job.user)
            if found == "deny":
                return self._deny(job, "account-authorization-failed",
                                  f"User {job.user!r} is not known to this print server.")
            user = found
        if user is None and self.site is not None:  # unreachable: the offline policy
            rule = offline.unknown_user(self.site.policy, job.user, findme=q.mode == "findme")
            if rule.action == "cancel":
                return self._deny(job, "account-authorization-failed", rule.message, JobState.CANCELED)
            if rule.action == "untracked":
                job.extra["charge"] = {"account": "", "cost": 0, "n": 1, "untracked": True,
                                       "detail": f"not charged: user {job.user!r} is unknown here (offline policy)"}
                log.info("job %d: user %r unknown here: printed untracked (offline policy)", job.id, job.user)
                return
            user = self.ledger.user(rule.user)
            if user is None:
                return self._deny(job, "account-authorization-failed",
                                  f"User {job.user!r} is not known here, and the user {rule.user!r} the offline "
                                  "policy charges such jobs to is not known either.")
            job.extra["charged_to"] = user.name
        if user is None:
            if self.settings.unknown_users == "deny":
                return self._deny(job, "account-authorization-failed",
                                  f"User {job.user!r} is not known to this print server.")
            user = await self.ledger.update_user(
                job.user, {"restricted": self.settings.new_user_restricted}, create=True,
                initial_credit=self.settings.new_user_credit)
            log.info("user %r created on first print (%s)", user.name,
                     "restricted" if user.restricted else "unrestricted")
        if user.disabled:
            return self._deny(job, "account-closed", f"The user {user.name!r} is disabled.")
        attrs = _attributes(job)
        account = personal(user.name)
        restricted = user.restricted
        named = _named_account(attrs) or next(
            (d.analysis["account"] for d in job.documents if (d.analysis or {}).get("account")), "")
        if self.site is not None and not self.site.online:
            known = bool(named) and (self.ledger.account(named) or self.ledger.account_by_code(named)) is not None
            if offline.needs_choice(named, known, len(self.ledger.accounts_for(user)) if not named else 0):
                account, why = offline.offline_account(self.site.policy, user.name)
                if not account:
                    return self._deny(job, "account-authorization-failed", why, JobState.CANCELED)
                job.extra["offline_account"] = True
                named = ""
        if named:
            acct = self.ledger.account(named) or self.ledger.account_by_code(named)
            if acct is None:
                return self._deny(job, "account-authorization-failed",
                                  f"There is no shared account {named!r}.")
            if not acct.may_use(user):
                return self._deny(job, "account-authorization-failed",
                                  f"{user.name!r} may not charge the shared account {acct.name!r}.")
            if acct.disabled:
                return self._deny(job, "account-closed", f"The shared account {acct.name!r} is disabled.")
            account = shared(acct.name)
        facts = self._facts(job, attrs, user.groups, restricted)
        decision = evaluate(facts, q.filters, job.queue)
        sides = "two-sided-long-edge" if decision.duplex and _sides(attrs) in (None, "one-sided") else None
        cost = job_cost(job, q.cost, gray=decision.gray, sides=sides)
        would = (f" This job would have cost {self.money(cost.total)} ({cost.describe(self.money)})."
                 if cost is not None else "")
        if decision.denied:
            return self._deny(job, decision.reason, decision.deny + would)
        if cost is not None and q.filters.max_cost and cost.total > q.filters.max_cost \
                and (q.filters.scope == "all" or restricted):
            return self._deny(job, "job-canceled-by-system",
                              f"Jobs on {job.queue} may cost at most {self.money(q.filters.max_cost)}.{would}")
        total = cost.total if cost is not None else 0
        credit = self.ledger.check(account, total)
        if not credit.ok:
            if credit.reason == NO_CREDIT:
                message = (f"Not enough credit: this job costs {self.money(total)}"
                           f"{f' ({cost.describe(self.money)})' if cost is not None else ''} and "
                           f"{whose(account, user.name)} "
                           f"has {self.money(credit.available)} available.")
                return self._deny(job, "account-limit-reached", message)
            return self._deny(job, "account-closed", f"The job cannot be charged to {account}: {credit.reason}.")
        fp = _fingerprint(job, attrs) if q.filters.duplicate_window and applies(q.filters, facts) else None
        if fp is not None:
            # checked and claimed with no await in between: of two copies admitted at
            # the same time, exactly one is the original
            seen = self._recent.get(fp)
            if (seen is not None and seen[0] != job.id and abs(job.created - seen[1]) <= q.filters.duplicate_window
                    and self.store.get(seen[0]) is not None):
                return self._deny(job, "job-canceled-by-system",
                                  duplicate_message(seen[0], abs(job.created - seen[1]), q.filters, job.queue))
            self._remember(fp, job)
            job.extra["fingerprint"] = fp
        if decision.gray or decision.duplex:
            failed = await self._convert(job, decision, run)
            if failed:
                if fp is not None and self._recent.get(fp, (0,))[0] == job.id:
                    del self._recent[fp]
                job.extra.pop("fingerprint", None)
                return self._deny(job, "document-unprintable-error", failed)
            job.attributes = _set_attributes(attrs, gray=decision.gray, sides=sides)
        job.extra["charge"] = {
            "account": account, "cost": total, "n": 1,
            "detail": cost.describe(self.money) if cost is not None else "not counted: not charged",
            "pages": cost.pages if cost is not None else None,
            "color_pages": cost.color_pages if cost is not None else None,
            "applied": decision.applied,
        }

    def _facts(self, job: Job, attrs: list[Attribute], groups, restricted: bool) -> Facts:
        copies = _int(attrs, "copies", 1)
        totals = job_totals(job)
        mono = _keyword(attrs, "print-color-mode") in MONOCHROME_MODES  # as the cost model prices it
        media = {tuple(k[3]) for d in job.documents for k in (d.analysis or {}).get("kinds", ())
                 if k[3]}
        names = tuple(n for n in [job.name, *(d.name for d in job.documents)] if n)
        return Facts(
            user=job.user, groups=tuple(groups), restricted=restricted, names=names,
            size=sum(d.size for d in job.documents), copies=copies, counted=totals is not None,
            pages=(totals["impressions"] * copies) if totals else 0,
            color_pages=0 if mono or not totals else totals["color_impressions"] * copies,
            media=tuple(sorted(media)))

    async def _convert(self, job: Job, d: Decision, run: Runner) -> str:
        return await convert_documents(job, self.store, run, gray=d.gray, duplex=d.duplex)

    def _deny(self, job: Job, reason: str, message: str, state: JobState = JobState.ABORTED) -> None:
        if job.is_final:  # canceled while it was being converted: that stands
            return
        job.state = state
        job.state_reasons = [reason]
        job.state_message = message
        job.completed = time.time()
        log.info("job %d (%s, user %s) refused: %s", job.id, job.queue, job.user, message)


def _fingerprint(job: Job, attrs: list[Attribute]) -> str | None:
    """Same user, queue, copies and document bytes: a duplicate."""
    hashes = [(d.analysis or {}).get("sha256") for d in job.documents]
    if not hashes or not all(hashes):
        return None
    h = hashlib.sha256()
    for part in (job.user, job.queue, str(_int(attrs, "copies", 1)), *hashes):
        h.update(part.encode() + b"\0")
    return h.hexdigest()
