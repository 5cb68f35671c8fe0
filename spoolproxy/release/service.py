"""Secure Print and Find-Me release: device login, the held-job list, release,
cancel and expiry. The web layer (spoolproxy.web.release_api and release_page)
is a thin skin over :class:`Release`.

A held job is a spool job in ``pending-held`` with ``job-hold-until-specified``
(``rules.waits_for_release``). Releasing it at a device's printer:

1. the rules: the person may release it, it may print at that printer (its own for
   Secure Print, one of the group for Find-Me; with ``load_balance`` the least busy
   ready one), that printer is ready (its IPP state from the upstream poller);
2. what it will be: grayscale at a mono printer or when asked, two-sided when asked,
   fewer copies when asked, another format when the printer cannot take its own;
   priced with the printer's cost model, and the credit checked against the balance
   of this moment (jobs released together are checked together);
3. conversions (off the event loop), then one commit: the jobs become ``pending``
   for that printer's lane, with their audit entries. The lane debits the job as it
   starts sending (spoolproxy.ledger.charge, ``require_funds``: the credit is checked
   once more inside that commit) and refunds it if the printer fails it.

Nothing here is charged while it waits; an expired job is deleted uncharged.
"""
from __future__ import annotations

import logging
import secrets
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

import trio

from .. import pdl
from ..config import QueueSettings, ReleaseSettings
from ..ipp.model import JobState, PrinterState
from ..ledger import Ledger, personal, shared
from ..ledger.charge import whose
from ..ledger.cost import MONOCHROME_MODES, Cost, compute
from ..ledger.errors import LedgerError
from ..ledger.passwords import hash_secret, verify_secret
from ..ledger.records import MAX_CARDS, User
from ..ledger.store import NO_CREDIT
from ..policy.convert import (TWO_SIDED, Runner, attributes, convert_documents, int_attr, keyword,
                              set_attributes, sides as sides_of)
from ..spool.job import Job, job_totals
from . import rules
from .audit import Audit
from .devices import Device
from .rules import Changes, ChangeRefused
from .sessions import Locked, Lockout, Session, Sessions

log = logging.getLogger("spoolproxy.release")

EXPIRY_CHECK = 30.0  # seconds between looks for expired held jobs (less for short expiries)


class LoginError(Exception):
    """A login that did not succeed; ``reason``: bad-request, method-disabled, failed,
    unknown-card, disabled-user, locked (then ``retry_after`` seconds)."""

    def __init__(self, reason: str, message: str, *, retry_after: float = 0.0):
        super().__init__(message)
        self.reason = reason
        self.retry_after = retry_after


class DeviceMisconfigured(Exception):
    """The device's printer is not a printer queue of this node."""


@dataclass
class Login:
    token: str
    session: Session
    user: User
    card_registered: str = ""


@dataclass
class Outcome:
    """One job's result of a release or cancel."""

    job: int
    ok: bool
    reason: str = ""  # a short keyword when not ok: not-found, not-held, wrong-printer, printer-not-ready, ...
    message: str = ""  # for the person at the device
    printer: str = ""  # released: the queue whose printer prints it
    cost: int | None = None
    account: str = ""


@dataclass
class Quote:
    printer: str
    cost: Cost | None  # None: the job could not be counted (it is not charged)
    copies: int
    gray: bool
    sides: str | None
    account: str
    conversions: list[str] = field(default_factory=list)  # what will be done to it
    refused: str = ""  # why it cannot be printed there (then cost is only informative)


class Release:
    def __init__(self, settings: Any, store: Any, ledger: Ledger, upstream: Any, audit: Audit, *,
                 run: Runner | None = None, money: Callable[[int], str] = str,
                 monotonic: Callable[[], float] = time.monotonic, clock: Callable[[], float] = time.time,
                 site: Any = None):
        self.site = site  # spoolproxy.sync.Site on a site node: offline policies, the journal
        self.settings = settings
        self.queues: Mapping[str, QueueSettings] = settings.queues
        self.rs: ReleaseSettings = settings.release
        self.store = store
        self.ledger = ledger
        self.upstream = upstream
        self.audit = audit
        self.run = run or (lambda fn, *args: trio.to_thread.run_sync(fn, *args))
        self.money = money
        self.clock = clock
        self.sessions = Sessions(self.rs.session_timeout, clock=monotonic)
        self.lockout = Lockout(self.rs.lockout_attempts, self.rs.lockout_seconds, clock=monotonic)
        self._busy: set[int] = set()  # jobs being released or cancelled right now

    # -- login -------------------------------------------------------------------

    def device_printer(self, device: Device) -> str:
        q = self.queues.get(device.printer)
        if q is None or not q.printer:
            raise DeviceMisconfigured(f"device {device.name!r} stands at {device.printer!r}, which is not a "
                                      "printer queue of this node (check the configuration)")
        return device.printer

    async def login(self, device: Device, *, card: str = "", pin: str = "", identity: str = "",
                    username: str = "", password: str = "") -> Login:
        """Log a person in at ``device``; LoginError says why not (and is audited)."""
        if username or password:
            if not (username and password):
                raise LoginError("bad-request", "Give both the username and the password.")
            method, kind, ident = "password", "username", username
        elif card:
            method, kind, ident = ("card+pin" if pin else "card"), "card", card
        elif identity:
            if not pin:
                raise LoginError("bad-request", "Give the PIN with the identity number.")
            method, kind, ident = "identity+pin", "identity", identity
        else:
            raise LoginError("bad-request", "Give a card number, an identity number and PIN, or a username "
                                            "and password.")
        if method not in self.rs.methods:
            raise LoginError("method-disabled", f"Logging in by {method} is not enabled here.")
        if len(ident) > 255 or len(pin) > 64 or len(password) > 1024:
            raise LoginError("bad-request", "That is too long to be a login.")
        try:
            if kind == "username":
                user = self.ledger.user(username)
            elif kind == "card":
                user = self.ledger.user_by_card(card)
            else:
                user = self.ledger.user_by_identity(identity)
        except (LedgerError, ValueError):
            user = None
        key = f"user:{user.name}" if user is not None else f"{kind}:{ident}"
        try:
            self.lockout.check(key)
        except Locked as e:
            await self.audit.record("login-locked", user=user.name if user else "", device=device.name,
                                    detail=f"{method} while locked", login=_shown(kind, ident))
            raise LoginError("locked", f"Too many wrong attempts: this login is locked. Try again in "
                                       f"{_duration(e.retry_after)}.", retry_after=e.retry_after) from None
        if user is None and kind == "card" and not pin:
            await self.audit.record("login-failed", device=device.name, detail="unknown card",
                                    login=_shown(kind, ident))
            if self.rs.card_self_register and "password" in self.rs.methods:
                raise LoginError("unknown-card", "This card is not registered yet: log in once with your "
                                                 "username and password to register it to yourself.")
            raise LoginError("failed", "This card is not known here.")
        online = None  # a site asks its primary for passwords (None: checked here)
        if kind == "username" and self.site is not None:
            online = await self.site.password_login(username, password)
            if online == "refused":
                await self.audit.record("login-failed", user=user.name if user else "", device=device.name,
                                        detail="password login while offline (offline policy)",
                                        login=_shown(kind, ident))
                raise LoginError("method-disabled", "Password logins are off while this print server cannot "
                                                    "reach its primary: log in with your card or PIN.")
            if online == "ok":
                user = self.ledger.user(username)
        if method == "card":
            await self._refuse_disabled(user, device)
        elif online == "ok" and user is not None:
            await self._refuse_disabled(user, device)
        else:
            secret, stored = (password, user.password_hash if user else "") if kind == "username" else \
                (pin, user.pin_hash if user else "")
            # scrypt takes tens of ms: off the event loop, and run even for an unknown login
            # so that the time taken does not tell which logins exist
            ok = online != "wrong" and await trio.to_thread.run_sync(verify_secret, secret, stored or _dummy())
            if not ok or user is None or not stored:
                locked = self.lockout.failed(key)
                what = "password" if kind == "username" else "PIN"
                await self.audit.record("login-failed", user=user.name if user else "", device=device.name,
                                        detail=f"wrong {what}" + (" (login locked)" if locked else "")
                                        + ("" if stored or user is None else f" (no {what} set)"),
                                        login=_shown(kind, ident))
                if locked:
                    raise LoginError("locked", f"Too many wrong attempts: this login is locked for "
                                               f"{_duration(self.rs.lockout_seconds)}.",
                                     retry_after=self.rs.lockout_seconds)
                if user is not None and not stored:
                    raise LoginError("failed", f"No {what} is set for this login: ask the administrator.")
                names = {"username": "username or password", "card": "card or PIN",
                         "identity": "identity number or PIN"}[kind]
                raise LoginError("failed", f"The {names} is not right.")
            await self._refuse_disabled(user, device)  # only once the secret was right: no probing
        assert user is not None
        self.lockout.succeeded(key)
        registered = ""
        if card and kind == "username" and self.rs.card_self_register:
            registered = await self._register_card(user, card, device)
            user = self.ledger.user(user.name) or user
        token, session = self.sessions.create(user.name, device.name, method)
        await self.audit.record("login", user=user.name, device=device.name, detail=method)
        return Login(token, session, user, registered)

    async def _refuse_disabled(self, user: User | None, device: Device) -> None:
        if user is not None and user.disabled:
            await self.audit.record("login-failed", user=user.name, device=device.name, detail="user disabled")
            raise LoginError("disabled-user", "This account is disabled: ask the administrator.")

    async def _register_card(self, user: User, card: str, device: Device) -> str:
        """Card self-association: the card (unknown so far) becomes the user's; the oldest
        of their cards makes room if they have MAX_CARDS already."""
        if card in user.cards:
            return ""
        owner = self.ledger.user_by_card(card)
        if owner is not None:
            raise LoginError("failed", "This card is registered to someone else: ask the administrator.")
        try:
            if self.site is not None:  # journaled for the primary, which owns the cards
                await self.site.register_card(user, card, f"{user.name}@{device.name}")
            else:
                await self.ledger.update_user(user.name, {"cards": [*user.cards, card][-MAX_CARDS:]},
                                              by=f"{user.name}@{device.name}")
        except LedgerError as e:
            raise LoginError("bad-request", f"The card cannot be registered: {e}.") from None
        await self.audit.record("card-registered", user=user.name, device=device.name, detail=_shown("card", card))
        return card

    def session(self, token: str | None, device: Device) -> Session:
        return self.sessions.get(token, device.name)

    async def logout(self, token: str | None, device: Device) -> bool:
        s = self.sessions.end(token)
        if s is not None:
            await self.audit.record("logout", user=s.user, device=device.name)
        return s is not None

    # -- what the person sees ----------------------------------------------------

    def _visible(self, job: Job, who: User) -> bool:
        q = self.queues.get(job.queue)
        return q is not None and rules.waits_for_release(job, self.queues) and \
            rules.may_release(who.name, who.groups, job.user, q)

    def held_jobs(self, who: User, printer: str) -> list[tuple[Job, bool]]:
        """The held jobs ``who`` may release, each with whether it can print at ``printer``,
        oldest first."""
        out = []
        for name, q in self.queues.items():
            if not q.holds:
                continue
            here = printer in rules.release_printers(name, self.queues)
            if rules.may_release(who.name, who.groups, "", q):  # a manager: everyone's
                owners: list[str | None] = [None]
            else:  # their own, and those of whoever made them a delegate (the store filters by user)
                owners = [o for o in dict.fromkeys([who.name, *q.delegates])
                          if rules.may_release(who.name, who.groups, o, q)]
            for owner in owners:
                for job in self.store.jobs(name, which="not-completed", user=owner):
                    if rules.waits_for_release(job, self.queues):
                        out.append((job, here))
        out.sort(key=lambda p: (p[0].created, p[0].id))
        return out

    def visible_job(self, who: User, job_id: int) -> Job | None:
        job = self.store.get(job_id)
        return job if job is not None and self._visible(job, who) else None

    def printers_of(self, job: Job) -> tuple[str, ...]:
        return rules.release_printers(job.queue, self.queues)

    def prints_color(self, printer: str) -> bool:
        return rules.prints_color(self.queues[printer], self.upstream.status(printer).attributes)

    def accounts(self, user: User) -> list[str]:
        """The accounts ``user`` may charge: their own, then the shared ones."""
        return [personal(user.name), *(a.account for a in self.ledger.accounts_for(user) if not a.disabled)]

    def printer_state(self, printer: str) -> rules.Readiness:
        st = self.upstream.status(printer)
        return rules.readiness(printer, st.state, st.reasons, st.message, st.reachable)

    def quote(self, job: Job, printer: str, ch: Changes = Changes(), account: str = "") -> Quote:
        """What releasing ``job`` at ``printer`` with ``ch`` would print and cost."""
        attrs = attributes(job)
        copies_now = int_attr(attrs, "copies", 1)
        rules.check_changes(ch, copies_now)
        q = self.queues[printer]
        st = self.upstream.status(printer)
        mono = not rules.prints_color(q, st.attributes)
        totals = job_totals(job)
        has_color = totals is None or bool(totals["color_impressions"]) or \
            any((d.analysis or {}).get("undecided") for d in job.documents)
        gray_now = keyword(attrs, "print-color-mode") in MONOCHROME_MODES
        gray = gray_now or ch.grayscale or mono
        side = sides_of(attrs)
        if ch.duplex and side in (None, "one-sided"):
            side = TWO_SIDED
        conversions, refused = [], ""
        if gray and not gray_now and has_color:
            conversions.append("grayscale" + (" (mono printer)" if mono and not ch.grayscale else ""))
        if side != sides_of(attrs):
            conversions.append("two-sided")
        formats = self._formats(job, printer)
        for doc in job.documents:
            target = formats[doc.number]
            if target is None:
                refused = f"The printer {printer} cannot print {doc.format} documents."
            elif target:
                conversions.append(f"{doc.format} to {target}")
                gray = gray or target in rules.MONO_TARGETS  # e.g. PCL 5 via ljet4: black and white
        kinds = [d.analysis["kinds"] for d in job.documents
                 if d.analysis and "error" not in d.analysis and "kinds" in d.analysis]
        cost = compute(kinds, q.cost, copies=ch.copies or copies_now, sides=side, gray=gray) \
            if len(kinds) == len(job.documents) else None
        plan = job.extra.get("charge") or {}
        return Quote(printer, cost, ch.copies or copies_now, gray, side, account or plan.get("account")
                     or personal(job.user), conversions, refused)

    def _formats(self, job: Job, printer: str) -> dict[int, str | None]:
        """Per document: '' (the printer takes it), the format to convert it to, or None."""
        supported = rules.formats_supported(self.upstream.status(printer).attributes)
        out: dict[int, str | None] = {}
        for doc in job.documents:
            target = rules.format_for(doc.format, supported, ())  # the common case: no conversion
            if target is None:
                target = rules.format_for(doc.format, supported, pdl.conversion_targets(doc.format))
            out[doc.number] = target
        return out

    # -- release and cancel ------------------------------------------------------

    async def release(self, who: User, device: Device, job_ids: list[int] | None, ch: Changes = Changes(),
                      account: str = "") -> list[Outcome]:
        """Release these jobs (None: all of ``who``'s own that can print here) at the
        device's printer. Every job gets an Outcome; the ones refused stay held."""
        here = self.device_printer(device)
        if job_ids is None:
            picked = [j for j, ok in self.held_jobs(who, here) if ok and j.user == who.name]
        else:
            picked = [self.store.get(i) for i in dict.fromkeys(job_ids)]
        outcomes: list[Outcome] = []
        prepared: list[tuple[Job, Quote, list[str], Callable[[], None]]] = []
        spending: dict[str, int] = {}
        try:
            for i, job in zip(job_ids or [j.id for j in picked], picked):
                out = await self._prepare(job, i, who, device, here, ch, account, spending)
                if isinstance(out, Outcome):
                    outcomes.append(out)
                else:
                    prepared.append(out)
        except BaseException:
            for job, *_ in prepared:
                self._busy.discard(job.id)
            raise
        ready = []
        for job, qt, replaced, commit in prepared:
            if rules.waits_for_release(job, self.queues):
                commit()
                ready.append((job, qt, replaced))
            else:  # canceled (IPP, another device) while a conversion ran
                self._busy.discard(job.id)
                outcomes.append(Outcome(job.id, False, "not-held", "The job was canceled meanwhile."))
        if ready:
            audit = [self.audit.entry("release", user=who.name, device=device.name, job=job.id,
                                      detail=f"to {qt.printer}" + (f" as {job.user}" if job.user != who.name else "")
                                      + (f"; {', '.join(qt.conversions)}" if qt.conversions else ""),
                                      cost=qt.cost.total if qt.cost else None)
                     for job, qt, _ in ready]
            refused = [self.audit.entry("release-refused", user=who.name, device=device.name, job=o.job,
                                        detail=o.message) for o in outcomes]
            if self.site is not None:  # the primary's audit log hears of it (journaled, replayed)
                audit += [self.site.release_fn({
                    "event": "release", "user": who.name, "device": device.name, "job": job.id, "job_uuid": job.uuid,
                    "owner": job.user,
                    "detail": f"to {qt.printer}" + (f" as {job.user}" if job.user != who.name else ""),
                    "printer": qt.printer, "cost": qt.cost.total if qt.cost else None, "account": qt.account})
                    for job, qt, _ in ready]
            try:
                await self.store.save_many([j for j, _, _ in ready], also=[*audit, *refused])
            finally:
                for job, _, _ in ready:
                    self._busy.discard(job.id)
            for job, qt, replaced in ready:
                for name in replaced:
                    self.store.discard_file(name)
                self.upstream.wake(qt.printer)
                log.info("job %d (%s, user %s) released by %s at %s to %s", job.id, job.queue, job.user, who.name,
                         device.name, qt.printer)
                outcomes.append(Outcome(job.id, True, printer=qt.printer,
                                        cost=qt.cost.total if qt.cost else None, account=qt.account,
                                        message=f"Printing at {qt.printer}."))
        elif outcomes:
            await self.audit.record_all([self.audit.entry("release-refused", user=who.name, device=device.name,
                                                          job=o.job, detail=o.message) for o in outcomes])
        outcomes.sort(key=lambda o: o.job)
        return outcomes

    async def _prepare(self, job: Job | None, job_id: int, who: User, device: Device, here: str, ch: Changes,
                       account: str, spending: dict[str, int]
                       ) -> Outcome | tuple[Job, Quote, list[str], Callable[[], None]]:
        """Check and convert one job for release; an Outcome when it is refused."""
        if job is None or not self._visible(job, who):
            # never say whether someone else's job exists
            return Outcome(job_id, False, "not-found", f"There is no held job {job_id} of yours.")
        if job.id in self._busy:
            return Outcome(job.id, False, "busy", "This job is being released or cancelled already.")
        group = rules.release_printers(job.queue, self.queues)
        if here not in group:
            return Outcome(job.id, False, "wrong-printer",
                           f"This job cannot print at {here}; it can print at {', '.join(group)}.")
        q = self.queues[job.queue]
        if q.hold_expiry and self.clock() - job.created >= q.hold_expiry:
            return Outcome(job.id, False, "expired", "This job has expired and is being deleted.")
        printer = here
        if q.load_balance and len(group) > 1:
            ready = {p: self.printer_state(p).ready for p in group}
            # jobs waiting, plus one for a printer printing now (its own state or SNMP's)
            load = {p: self.store.pending_count(p) + (self.upstream.status(p).state == PrinterState.PROCESSING)
                    for p in group}
            printer = rules.choose_printer(here, group, load, ready, True)
        state = self.printer_state(printer)
        if not state.ready:
            return Outcome(job.id, False, "printer-not-ready", state.why + " The job stays held.")
        if account and job.user != who.name:
            return Outcome(job.id, False, "account-not-allowed", "Only the owner chooses the account of a job.")
        if account and self.site is not None and not self.site.online and not self.site.policy.account_change:
            return Outcome(job.id, False, "account-not-allowed", "The account cannot be changed while this print "
                                                                 "server cannot reach its primary (offline policy).")
        if account:
            acct = self._account_for(job, account)
            if isinstance(acct, Outcome):
                return acct
        else:
            acct = (job.extra.get("charge") or {}).get("account") or personal(job.user)
        try:
            qt = self.quote(job, printer, ch, acct)
        except ChangeRefused as e:
            return Outcome(job.id, False, "change-refused", f"{e}.")
        if qt.refused:
            return Outcome(job.id, False, "format-unsupported", qt.refused + " The job stays held.")
        total = qt.cost.total if qt.cost is not None else 0
        credit = self.ledger.check(acct, total + spending.get(acct, 0))
        if not credit.ok:
            if credit.reason == NO_CREDIT:
                before = spending.get(acct, 0)
                return Outcome(job.id, False, "no-credit",
                               f"Not enough credit: this job costs {self.money(total)}"
                               f"{f' ({qt.cost.describe(self.money)})' if qt.cost else ''} and "
                               f"{whose(acct, job.user)} has {self.money(credit.available - before)} available"
                               f"{' after the jobs released with it' if before else ''}.",
                               cost=total, account=acct)
            return Outcome(job.id, False, "account-closed", f"The job cannot be charged to {acct}: {credit.reason}.")
        spending[acct] = spending.get(acct, 0) + total
        self._busy.add(job.id)
        try:
            replaced = await self._apply(job, qt, ch, printer)
        except BaseException:
            self._busy.discard(job.id)
            raise
        if isinstance(replaced, str):
            self._busy.discard(job.id)
            spending[acct] -= total
            return Outcome(job.id, False, "conversion-failed", replaced + " The job stays held.")

        def commit() -> None:  # right before the save: nothing else sees a half-released job
            plan = job.extra.setdefault("charge", {"n": 1})
            plan.update(account=acct, cost=total,
                        detail=qt.cost.describe(self.money) if qt.cost else "not counted: not charged",
                        pages=qt.cost.pages if qt.cost else None,
                        color_pages=qt.cost.color_pages if qt.cost else None)
            job.extra["release"] = {"by": who.name, "device": device.name, "printer": printer, "at": self.clock()}
            job.target = "" if printer == job.queue else printer
            job.state, job.state_reasons = int(JobState.PENDING), ["none"]
            job.state_message = f"Released at {device.name}" + (f", printing at {printer}" if printer != here else "")
        return job, qt, replaced, commit

    def _account_for(self, job: Job, account: str) -> str | Outcome:
        owner = self.ledger.user(job.user)
        ref = account.removeprefix("shared:")
        if account in (personal(job.user), job.user):
            return personal(job.user)
        acct = self.ledger.account(ref) or self.ledger.account_by_code(ref)
        if owner is None or acct is None or not acct.may_use(owner) or acct.disabled:
            return Outcome(job.id, False, "account-not-allowed", f"You may not charge the account {ref!r}.")
        return shared(acct.name)

    async def _apply(self, job: Job, qt: Quote, ch: Changes, printer: str) -> list[str] | str:
        """Convert and re-attribute the job as quoted; the replaced spool files, or why not."""
        attrs = attributes(job)
        fmt_targets = {n: t for n, t in self._formats(job, printer).items() if t}
        gray_now = keyword(attrs, "print-color-mode") in MONOCHROME_MODES
        duplex = qt.sides != sides_of(attrs)
        to_gray = qt.gray and not gray_now
        if to_gray or duplex or fmt_targets:
            why = "You chose grayscale" if ch.grayscale else f"The printer {printer} prints in grayscale only"
            failed = await convert_documents(job, self.store, self.run, gray=to_gray, duplex=duplex,
                                             formats=fmt_targets, why=why)
            if failed:
                return failed
        copies = ch.copies if ch.copies is not None and ch.copies != int_attr(attrs, "copies", 1) else None
        if to_gray or duplex or copies is not None:
            job.attributes = set_attributes(attrs, gray=to_gray, sides=qt.sides if duplex else None, copies=copies)
        return job.extra.pop("replaced_files", [])

    async def cancel(self, who: User, device: Device, job_ids: list[int] | None) -> list[Outcome]:
        """Cancel held jobs (None: all of ``who``'s own). Nothing was charged for them."""
        if job_ids is None:
            picked = [j for j, _ in self.held_jobs(who, self.device_printer(device)) if j.user == who.name]
            job_ids = [j.id for j in picked]
        else:
            picked = [self.store.get(i) for i in dict.fromkeys(job_ids)]
        outcomes, done, entries = [], [], []
        for i, job in zip(job_ids, picked):
            if job is None or not self._visible(job, who):
                outcomes.append(Outcome(i, False, "not-found", f"There is no held job {i} of yours."))
                continue
            if job.id in self._busy:
                outcomes.append(Outcome(i, False, "busy", "This job is being released already."))
                continue
            job.state, job.state_reasons = int(JobState.CANCELED), ["job-canceled-by-user"]
            job.state_message = f"Canceled by {who.name} at {device.name}."
            job.completed = self.clock()
            done.append(job)
            entries.append(self.audit.entry("cancel", user=who.name, device=device.name, job=job.id,
                                            detail=f"{job.queue}, owner {job.user}"))
            outcomes.append(Outcome(job.id, True, message="Canceled."))
        if done:
            await self.store.save_many(done, also=entries)
        else:
            await trio.lowlevel.checkpoint()
        return outcomes

    # -- expiry ------------------------------------------------------------------

    async def expire(self) -> int:
        """Delete held jobs older than their queue's hold_expiry (uncharged). Returns how many."""
        now = self.clock()
        count = 0
        for name, q in self.queues.items():
            if not q.holds or not q.hold_expiry:
                continue
            old = []
            for i, j in enumerate(self.store.jobs(name, which="not-completed")):
                if i % 2048 == 2047:
                    await trio.lowlevel.checkpoint()  # thousands held: let requests in between
                if rules.waits_for_release(j, self.queues) and now - j.created >= q.hold_expiry \
                        and j.id not in self._busy and self.store.get(j.id) is j:
                    old.append(j)
            for job in old:
                await self.audit.record("expire", user=job.user, job=job.id,
                                        detail=f"{job.queue}: not released within {_duration(q.hold_expiry)}; "
                                               f"deleted uncharged ({job.name or 'untitled'})")
                await self.store.delete(job)
                count += 1
        if count:
            log.info("deleted %d held job(s) that were not released in time", count)
        return count

    async def run_expiry(self, *, task_status=trio.TASK_STATUS_IGNORED) -> None:
        expiries = [q.hold_expiry for q in self.queues.values() if q.holds and q.hold_expiry]
        interval = min([EXPIRY_CHECK, *(e / 4 for e in expiries)])
        task_status.started()
        if not expiries:
            return
        while True:
            try:
                await self.expire()
            except Exception:
                log.exception("expiring held jobs failed")
            await trio.sleep(max(interval, 0.25))


_dummy_hash = ""


def _dummy() -> str:
    """A hash of nothing anyone types: an unknown login costs the same scrypt as a known one."""
    global _dummy_hash
    if not _dummy_hash:
        _dummy_hash = hash_secret(secrets.token_hex(16))
    return _dummy_hash


def _shown(kind: str, ident: str) -> str:
    """A login as the audit log keeps it: usernames whole, card and identity numbers
    with all but the last four digits masked."""
    if kind == "username":
        return ident[:64]
    return f"{kind} …{ident[-4:]}" if len(ident) > 4 else f"{kind} …"


def _duration(seconds: float) -> str:
    s = max(1, round(seconds))
    if s < 120:
        return f"{s} s"
    if s < 7200:
        return f"{round(s / 60)} min"
    return f"{s / 3600:g} h"
