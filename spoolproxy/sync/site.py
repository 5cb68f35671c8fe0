"""A site node's link to its primary: the first snapshot, following the change feed
(which is also the heartbeat), offline detection, sending the journal, and the
online and offline paths of charges and password logins.

Online and offline. Every poll of the feed that gets an answer is a heartbeat. The
site goes offline when the primary has not answered for ``sync.offline_after``
seconds (a primary restart shorter than that does not flap it) and online at the
first answer after. While offline the ledger's credit check follows the offline
policy (spoolproxy.sync.policy) and every transaction is journaled ``offline``; the
journal is sent, in order, as soon as the primary answers again. The state and
when it changed are in :meth:`Site.status` (the admin API), the metrics and the log.

A charge made online is confirmed by the primary first (``require_funds``, against
its authoritative balance), so two sites cannot both spend the same credit; then
it is applied to the site's view and journaled as already sent. A refund, a card
association and a release are journaled and sent by the replay loop.
"""
from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any, Callable

import trio

from ..db import Database, WriteTxn
from ..ledger import InsufficientCredit, LedgerError, User
from ..ledger.records import MAX_CARDS
from ..ledger.store import Applied, Ledger, update_user_fn
from ..uuids import new_id
from . import journal as J
from .client import Client, PrimaryUnreachable, SyncRefused
from .policy import credit_rule

log = logging.getLogger("spoolproxy.sync")


class SiteKeyError(ValueError):
    """The site's key cannot be read (the message says where and why)."""


def read_key(settings: Any) -> str:
    if settings.key is not None:
        return settings.key
    path = Path(settings.key_file)
    try:
        key = path.read_text().strip()
    except OSError as e:
        raise SiteKeyError(f"sync.key_file: cannot read {path}: {e.strerror or e}") from None
    if not key:
        raise SiteKeyError(f"sync.key_file: {path} is empty")
    return key


class Site:
    def __init__(self, settings: Any, db: Database, ledger: Ledger, *, client: Client | None = None,
                 clock: Callable[[], float] = time.time, monotonic: Callable[[], float] = time.monotonic):
        self.settings = settings
        self.sync = settings.sync
        self.db = db
        self.ledger = ledger
        if client is None:
            try:
                client = Client(self.sync, read_key(self.sync))
            except (OSError, ValueError) as e:  # ssl: a missing or unreadable CA file
                if isinstance(e, SiteKeyError):
                    raise
                raise SiteKeyError(f"sync.ca_file: cannot use {self.sync.ca_file}: {e}") from None
        self.client = client
        self.clock = clock
        self.monotonic = monotonic
        self.name: str = db.get(J.META, J.SITE) or ""
        self.online = False
        self.since = clock()  # when the state last changed
        self.last_answer = 0.0  # monotonic time of the primary's last answer (0: never)
        self.started = monotonic()
        self.last_error = ""
        self.replayed = 0  # entries the primary accepted since the node started
        self.refused = 0
        self._wake = trio.Event()
        self._changed: list[Callable[[bool], None]] = []
        self.ledger.credit = credit_rule(self.policy)  # offline until the primary answers

    # -- state ----------------------------------------------------------------------

    @property
    def policy(self) -> Any:
        """The offline policy: the primary's, as synced; this node's [offline] before the first sync."""
        from ..config import OfflinePolicy
        rec = self.db.get("policy", b"offline")
        if rec is None:
            return self.settings.offline
        try:
            return OfflinePolicy.model_validate(rec)
        except ValueError:
            log.error("the primary's offline policy cannot be read here; using this node's [offline]")
            return self.settings.offline

    def on_change(self, fn: Callable[[bool], None]) -> None:
        self._changed.append(fn)

    def _answered(self) -> None:
        self.last_answer = self.monotonic()
        self.last_error = ""
        if not self.online:
            self._set(True)

    def _unanswered(self, why: str) -> None:
        self.last_error = why
        if self.online and self.monotonic() - self.last_answer >= self.sync.offline_after:
            self._set(False)

    def _set(self, online: bool) -> None:
        self.online = online
        self.since = self.clock()
        self.ledger.credit = None if online else credit_rule(self.policy)
        if online:
            log.info("site %s: the primary %s answers: online", self.name or "?", self.sync.primary)
            self._wake.set()
        else:
            log.warning("site %s: no answer from the primary %s for %.0f s: offline (%s)", self.name or "?",
                        self.sync.primary, self.sync.offline_after, self.last_error)
        for fn in self._changed:
            fn(online)

    def status(self) -> dict[str, Any]:
        return {"site": self.name, "primary": self.sync.primary, "online": self.online,
                "state": "online" if self.online else "offline", "since": self.since,
                "last_answer_age": (self.monotonic() - self.last_answer) if self.last_answer else None,
                "last_error": self.last_error, "replayed": self.replayed, "refused": self.refused,
                "policy": self.policy.record(), **J.counts(self.db)}

    # -- the loops --------------------------------------------------------------------

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._follow)
            nursery.start_soon(self._send)
            nursery.start_soon(self._watch)
            task_status.started()
            try:
                await trio.sleep_forever()
            finally:
                with trio.CancelScope(shield=True):
                    await self.client.aclose()

    async def _follow(self) -> None:
        """Poll the feed: the heartbeat, and the primary's changes applied here."""
        while True:
            try:
                await self.poll()
            except PrimaryUnreachable as e:
                self._unanswered(str(e))
            except SyncRefused as e:
                if str(e) != self.last_error:  # (once, not at every heartbeat)
                    log.error("site: %s", e)
                self._unanswered(str(e))
            await trio.sleep(self.sync.heartbeat)

    async def poll(self) -> None:
        """One round: the snapshot if none was taken yet, then the feed up to its head."""
        if not self.name:
            snap = await self.client.snapshot()
            await self.db.transact(J.apply_snapshot_fn(snap["site"], snap))
            self.name = snap["site"]  # (and online only now: what the site shows is the snapshot's)
            self._answered()
            log.info("site %s: snapshot of the primary taken at change %d", self.name, snap["seq"])
            self._policy_changed()
            return
        while True:
            at = self.db.get(J.META, J.APPLIED) or 0
            page = await self.client.changes(at, 1000)
            self._answered()
            if page["head"] < at:
                log.error("site %s: the primary's feed is at %d, behind this site's %d: was the primary "
                          "restored from an old backup? (not followed)", self.name, page["head"], at)
                return
            if not page["changes"]:
                return
            if any(c[1] == "policy" for c in page["changes"]):
                await self.db.transact(J.apply_changes_fn(self.name, page["changes"]))
                self._policy_changed()
            else:
                await self.db.transact(J.apply_changes_fn(self.name, page["changes"]))
            if page["changes"][-1][0] >= page["head"]:
                return

    async def _watch(self) -> None:
        """Offline exactly ``offline_after`` after the last answer, also while a request to
        a hung primary is still waiting out its timeout."""
        while True:
            left = self.sync.heartbeat
            if self.online:
                left = self.last_answer + self.sync.offline_after - self.monotonic()
                if left <= 0:
                    self._unanswered(self.last_error or "no answer (a request to the primary is still waiting)")
                    left = self.sync.heartbeat
            await trio.sleep(max(left, 0.01))

    def _policy_changed(self) -> None:
        if not self.online:
            self.ledger.credit = credit_rule(self.policy)

    async def _send(self) -> None:
        """Send the journal, in order, whenever the primary answers (replay after an
        outage included); resumes from the PUSHED cursor after any crash."""
        while True:
            if self.online and self.name:
                try:
                    sent = await self.replay_once()
                except PrimaryUnreachable as e:
                    self._unanswered(str(e))
                    sent = 0
                except SyncRefused as e:
                    log.error("site: %s", e)
                    sent = 0
                if sent:
                    continue
            self._wake = trio.Event()
            with trio.move_on_after(self.sync.heartbeat):
                await self._wake.wait()

    async def replay_once(self) -> int:
        """Send every unsent entry, a batch at a time and in journal order. While a batch
        is on its way, the next one is read (in a thread: the loop only waits then) and
        the one before is settled (a commit), so the site's work and the primary's
        overlap. Returns how many were sent."""
        size = self.sync.batch

        def read(after: int) -> list[dict[str, Any]]:
            return J.unpushed(self.db, size, after=after)

        batch = read(0)
        sent = 0
        failed: list[Exception] = []
        async with trio.open_nursery() as settling:
            while batch:
                answers: list[dict[str, Any]] = []

                async def send(entries=batch) -> None:
                    try:
                        answers.extend(await self.client.journal([_wire(e) for e in entries]))
                    except (PrimaryUnreachable, SyncRefused) as e:  # raised below, not as a group
                        failed.append(e)

                async with trio.open_nursery() as both:
                    both.start_soon(send)
                    nxt = await trio.to_thread.run_sync(read, batch[-1]["seq"])
                if failed:
                    break  # (raised once the settles in flight are done)
                self._answered()
                settling.start_soon(self._settle, batch, answers)
                sent += len(batch)
                batch = nxt
        if failed:
            raise failed[0]
        return sent

    async def _settle(self, batch: list[dict[str, Any]], answers: list[dict[str, Any]]) -> None:
        by_id = {a["id"]: a for a in answers}
        refused = await self.db.transact(J.settle_fn([(e, by_id.get(e["id"], {"ok": False, "reason": "no answer"}))
                                                      for e in batch]))
        self.replayed += sum(1 for a in answers if a["ok"] and not a.get("again"))
        self.refused += refused

    def wake(self) -> None:
        self._wake.set()

    # -- what the node does through the site --------------------------------------------

    async def apply(self, txn_id: str, account: str, amount: int, kind: str, *, require_funds: bool = False,
                    **kw: Any) -> Applied:
        """The ledger's apply on a site (Charger). Online, a debit is confirmed by the
        primary first: asked again (the same id: applied at most once) until it answers
        or the site goes offline, so that a slow primary never lets two sites spend
        the same credit. Offline it is checked here under the offline policy and
        journaled to be replayed."""
        when = kw.pop("when", None) or self.clock()
        asked = False  # the primary may have applied it without answering
        while self.online and self.name and amount < 0:
            if not asked:
                local = self.ledger.check(account, -amount)
                if require_funds and not local.ok and local.reason == "not enough credit":
                    raise InsufficientCredit(account, amount, local.available)
            e = J.entry("txn", txn_id, {"account": account, "amount": amount, "kind": kind, "job": kw.get("job", 0),
                                        "job_uuid": kw.get("job_uuid", ""), "by": kw.get("by", ""),
                                        "comment": kw.get("comment", "")}, site=self.name, offline=False, when=when)
            asked = True
            try:
                [answer] = await self.client.journal([_wire(e)], require_funds=require_funds)
            except PrimaryUnreachable as ex:
                self._unanswered(str(ex))
                if self.online:
                    await trio.sleep(min(self.sync.heartbeat, 1.0))
                continue
            except SyncRefused as ex:
                log.error("site: %s", ex)
                raise LedgerError(f"the primary refused the charge: {ex}") from None
            self._answered()
            if not answer["ok"]:
                if answer.get("reason") == "insufficient-credit":
                    raise InsufficientCredit(account, amount, answer.get("available", 0))
                raise LedgerError(answer.get("reason", "refused by the primary"))
            return await self.db.transact(J.apply_and_journal_fn(
                txn_id, account, amount, kind, site=self.name, offline=False, pushed=True, when=when, **kw),
                nested=False)
        if asked:  # it may be at the primary (the replay then finds it there): the check above stands
            require_funds = False
        applied = await self.db.transact(J.apply_and_journal_fn(
            txn_id, account, amount, kind, site=self.name, offline=True if asked else not self.online, when=when,
            require_funds=require_funds, credit=self.ledger.credit, **kw), nested=False)
        self._wake.set()
        return applied

    def apply_fn(self, txn_id: str, account: str, amount: int, kind: str, **kw: Any) -> Callable[[WriteTxn], Applied]:
        """A refund's write (the job store's save hook), journaled for the replay loop."""
        self._wake.set()  # (sent after the save commits: the loop waits for the writer)
        return J.apply_and_journal_fn(txn_id, account, amount, kind, site=self.name, offline=not self.online, **kw)

    async def first_print(self, name: str) -> User | None | str:
        """A job of a user this site has never seen, while online: the primary creates
        them as it would for its own job (``ledger.unknown_users``) and hands the records
        over. The User; "deny" when the primary refuses unknown users; None when it does
        not answer (the offline policy decides)."""
        if not (self.online and self.name):
            return None
        try:
            answer = await self.client.first_print(name)
        except PrimaryUnreachable as e:
            self._unanswered(str(e))
            return None
        except SyncRefused as e:
            log.error("site: %s", e)
            return None
        self._answered()
        if not answer.get("ok"):
            return "deny"
        user, balance = answer["user"], answer["balance"]

        def fn(t: WriteTxn) -> None:
            t.put("users", name.encode(), user)
            if balance is not None and t.get("balances", f"user:{name}".encode()) is None:
                J.put_replicated(t, "balances", f"user:{name}".encode(), balance)
        await self.db.transact(fn)
        return User.from_record(user)

    async def password_login(self, username: str, password: str) -> str | None:
        """Online: the primary checks it, and a right password refreshes the cached user
        (hashes included): "ok" or "wrong". Offline: None to check the cached hash,
        "refused" when the policy allows no password logins offline."""
        if self.online and self.name:
            try:
                answer = await self.client.login(username, password)
            except PrimaryUnreachable as e:
                self._unanswered(str(e))
            except SyncRefused as e:
                log.error("site: %s", e)
            else:
                self._answered()
                if answer.get("ok") and answer.get("user"):
                    rec = answer["user"]
                    await self.db.transact(lambda t: t.put("users", username.encode(), rec))
                    return "ok"
                return "wrong"
        return None if self.policy.password == "cached" else "refused"

    async def register_card(self, user: User, card: str, by: str) -> None:
        """A card self-association: applied here and journaled for the primary."""
        upd = update_user_fn(user.name, {"cards": [*user.cards, card][-MAX_CARDS:]}, by=by, now=self.clock())
        e = J.entry("card", new_id("card"), {"user": user.name, "card": card, "by": by}, site=self.name,
                    offline=not self.online)

        def fn(t: WriteTxn) -> None:
            upd(t)
            J.journal_fn(e, pushed=False)(t)
        await self.db.transact(fn)
        self._wake.set()

    def release_fn(self, data: dict[str, Any]) -> Callable[[WriteTxn], Any]:
        """A release's journal entry, written in the release's own commit."""
        self._wake.set()
        return J.journal_fn(J.entry("release", new_id("release"), data, site=self.name,
                                    offline=not self.online), pushed=False)


def _wire(e: dict[str, Any]) -> dict[str, Any]:
    return {k: e[k] for k in ("id", "site", "seq", "kind", "time", "offline", "data")}
