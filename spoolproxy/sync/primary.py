"""The primary's side of sync: site keys, the snapshot and change feed a site
follows, and applying the entries a site sends (online as they happen, or a
journal replay after an outage), each exactly once.

Idempotency. A transaction entry is applied through the ledger's apply function
under the entry's own id (the site's transaction id), so a second delivery of it,
whether an automatic replay after ``offline import`` or a resend after a lost
answer, finds the id in the log and changes nothing. Card and release entries are
remembered in ``replayed``. An entry the ledger refuses (the user was deleted, the
account disabled) is kept as it came in the ``unapplied`` table, for an
administrator to see, and answered the same way every time it comes again.

Offline entries are applied even when they drive a restricted balance below its
limit (the site's policy allowed them): each such one is reported in the answer
and the log.
"""
from __future__ import annotations

import hashlib
import logging
import secrets
import time
from typing import Any, Callable, Iterator

from ..db import Database, WriteTxn, key_u64, u64_key
from ..ledger import Ledger, LedgerError, User
from ..ledger.errors import InsufficientCredit as InsufficientCreditError
from ..ledger.records import MAX_CARDS, check_name
from ..ledger.store import MAX_TXN_ID, apply_in, check_apply, update_account_fn, update_user_fn
from .journal import ENTRY_KINDS, REPLICATED

log = logging.getLogger("spoolproxy.sync")

SITES = "sites"
SITE_KEYS = "site_keys"
REPLAYED = "replayed"
UNAPPLIED = "unapplied"
KEY_PREFIX = "sps_"
POLICY_KEY = b"offline"
SITE_KINDS = ("print", "refund")  # the transactions a site makes
MAX_PAGE = 5000
MAX_ENTRIES = 10000  # per request


class SyncError(ValueError):
    """A request of a site that cannot be served (the message says why)."""


def key_digest(key: str) -> bytes:
    return hashlib.sha256(key.encode("utf-8", "surrogateescape")).digest()


# ---- site keys -------------------------------------------------------------------------

class Sites:
    """The sites a primary serves. Like device keys: 192 random bits, only a SHA-256
    stored, shown once."""

    def __init__(self, db: Database, *, clock: Callable[[], float] = time.time):
        self.db = db
        self.clock = clock

    def get(self, name: str) -> dict[str, Any] | None:
        return self.db.get(SITES, name.encode())

    def all(self) -> Iterator[dict[str, Any]]:
        for _k, rec in self.db.scan(SITES):
            yield rec

    def by_key(self, key: str | None) -> str | None:
        if not key or len(key) > 200:
            return None
        return self.db.get(SITE_KEYS, key_digest(key))

    def _put_fn(self, name: str, *, exists: bool) -> tuple[Callable[[WriteTxn], dict[str, Any]], str]:
        check_name("site name", name)
        key = KEY_PREFIX + secrets.token_urlsafe(24)
        now = self.clock()

        def fn(t: WriteTxn) -> dict[str, Any]:
            old = t.get(SITES, name.encode())
            if (old is not None) != exists:
                raise SyncError(f"there is already a site {name!r}" if old is not None else f"no site {name!r}")
            if old is not None:
                t.delete(SITE_KEYS, old["key"])
            rec = {"name": name, "key": key_digest(key), "created": old["created"] if old else now,
                   "seen": old.get("seen", 0.0) if old else 0.0, "entries": old.get("entries", 0) if old else 0}
            t.put(SITES, name.encode(), rec)
            t.put(SITE_KEYS, rec["key"], name)
            return rec
        return fn, key

    def add_now(self, name: str) -> str:
        fn, key = self._put_fn(name, exists=False)
        self.db.transact_now(fn)
        return key

    def new_key_now(self, name: str) -> str:
        fn, key = self._put_fn(name, exists=True)
        self.db.transact_now(fn)
        return key

    def remove_now(self, name: str) -> bool:
        def fn(t: WriteTxn) -> bool:
            old = t.get(SITES, name.encode())
            if old is None:
                return False
            t.delete(SITE_KEYS, old["key"])
            t.delete(SITES, name.encode())
            return True
        return self.db.transact_now(fn)


def public(rec: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in rec.items() if k != "key"}


# ---- entries ---------------------------------------------------------------------------

def check_entry(e: Any) -> dict[str, Any]:
    """An entry as a site sent it, checked for shape before anything is applied."""
    if not isinstance(e, dict):
        raise SyncError("an entry is a map")
    eid, kind, data = e.get("id"), e.get("kind"), e.get("data")
    if not isinstance(eid, str) or not 0 < len(eid.encode()) <= MAX_TXN_ID:
        raise SyncError(f"an entry id is 1..{MAX_TXN_ID} bytes of text")
    if kind not in ENTRY_KINDS or not isinstance(data, dict):
        raise SyncError(f"entry {eid!r}: kind must be one of {', '.join(ENTRY_KINDS)} with a data map")
    if not isinstance(e.get("offline", False), bool) or not isinstance(e.get("time", 0), (int, float)):
        raise SyncError(f"entry {eid!r}: offline is a boolean and time a number")
    if kind == "txn":
        if not isinstance(data.get("account"), str) or type(data.get("amount")) is not int \
                or data.get("kind") not in SITE_KINDS:
            raise SyncError(f"entry {eid!r}: a transaction needs account, an integer amount and a kind of "
                            f"{', '.join(SITE_KINDS)}")
        for f in ("job_uuid", "by", "comment"):
            if not isinstance(data.get(f, ""), str):
                raise SyncError(f"entry {eid!r}: {f} is text")
        if type(data.get("job", 0)) is not int:
            raise SyncError(f"entry {eid!r}: job is an integer")
    elif kind == "card":
        if not isinstance(data.get("user"), str) or not isinstance(data.get("card"), str):
            raise SyncError(f"entry {eid!r}: a card entry needs user and card")
    return e


def parse_journal(data: bytes) -> tuple[list[dict[str, Any]], bool]:
    """A POST /journal body (msgpack) -> (checked entries, require_funds); SyncError
    for anything else, whatever the bytes."""
    from .wire import unpack
    try:
        body = unpack(data)
    except Exception as e:  # noqa: BLE001 - msgpack raises several kinds for bad input
        raise SyncError(f"the body is not msgpack ({type(e).__name__})") from None
    if not isinstance(body, dict) or not isinstance(body.get("entries"), list):
        raise SyncError("the body is a map with a list of entries")
    if len(body["entries"]) > MAX_ENTRIES:
        raise SyncError(f"at most {MAX_ENTRIES} entries per request")
    return [check_entry(e) for e in body["entries"]], body.get("require_funds") is True


def _answer(eid: str, ok: bool, **kw: Any) -> dict[str, Any]:
    return {"id": eid, "ok": ok, **kw}


class Primary:
    def __init__(self, db: Database, ledger: Ledger, policy: Any, *, clock: Callable[[], float] = time.time,
                 ledger_settings: Any = None):
        self.db = db
        self.ledger = ledger
        self.policy = policy  # config.OfflinePolicy
        self.ledger_settings = ledger_settings  # config.LedgerSettings: users created on first print
        self.clock = clock
        self.sites = Sites(db, clock=clock)

    async def publish_policy(self) -> None:
        """Put the configured offline policy where the sites follow it (only when it
        changed), and make the account and user it names exist."""
        rec = self.policy.record()
        if self.db.get("policy", POLICY_KEY) != rec:
            await self.db.transact(lambda t: t.put("policy", POLICY_KEY, rec))
            log.info("offline policy published to the sites: %s", rec)
        if self.ledger.account(self.policy.offline_account) is None:
            await self.db.transact(update_account_fn(self.policy.offline_account, {
                "restricted": False, "info": "charged for jobs a site printed offline (offline.account)"},
                create=True, now=self.clock()))
        if self.ledger.user(self.policy.unknown_user) is None:
            await self.db.transact(update_user_fn(self.policy.unknown_user, {
                "restricted": False, "full_name": "jobs of users a site did not know (offline.unknown)"},
                create=True, now=self.clock()))

    # -- what a site follows ----------------------------------------------------------

    def snapshot(self, site: str) -> dict[str, Any]:
        tables, last = self.db.dump(sorted(REPLICATED), last_of="changes")
        return {"site": site, "seq": key_u64(last) if last else 0, "tables": tables, "now": self.clock()}

    def changes(self, after: int, limit: int = 1000) -> dict[str, Any]:
        limit = max(1, min(limit, MAX_PAGE))
        out = []
        for k, (table, key, value, origin) in self.db.scan("changes", start=u64_key(after + 1)):
            out.append([key_u64(k), table, key, value, origin or None])
            if len(out) >= limit:
                break
        last = self.db.last("changes")
        return {"changes": out, "head": key_u64(last[0]) if last else 0, "now": self.clock()}

    # -- what a site sends ------------------------------------------------------------

    async def apply(self, site: str, entries: list[Any], *, require_funds: bool = False, checked: bool = False
                    ) -> list[dict[str, Any]]:
        """Apply a site's entries in order, each once; the answers in the same order.
        ``require_funds``: an online charge, refused (not applied, not remembered) when
        the account cannot cover it, like a charge on this node. ``checked``: the
        entries came through parse_journal already."""
        answers = await self.db.transact(self.apply_fn(site, entries, require_funds=require_funds, checked=checked))
        self._report(site, answers)
        return answers

    def apply_now(self, site: str, entries: list[Any], *, require_funds: bool = False) -> list[dict[str, Any]]:
        """apply(), committed on this thread (the CLI's import, tests)."""
        answers = self.db.transact_now(self.apply_fn(site, entries, require_funds=require_funds))
        self._report(site, answers)
        return answers

    def apply_fn(self, site: str, entries: list[Any], *, require_funds: bool = False, checked: bool = False
                 ) -> Callable[[WriteTxn], list[dict[str, Any]]]:
        if not checked:
            entries = [check_entry(e) for e in entries]  # SyncError before anything is applied
        now = self.clock()

        def fn(t: WriteTxn) -> list[dict[str, Any]]:
            answers = [self._apply_entry(t, site, e, require_funds, now) for e in entries]
            rec = t.get(SITES, site.encode())
            if rec is not None:
                rec["seen"] = now
                rec["entries"] = rec.get("entries", 0) + sum(1 for a in answers if a["ok"] and not a.get("again"))
                t.put(SITES, site.encode(), rec)
            return answers
        return fn

    @staticmethod
    def _report(site: str, answers: list[dict[str, Any]]) -> None:
        for a in answers:
            if a.get("negative"):
                log.warning("site %s: offline entry %s took %s to %s (below its limit)", site, a["id"],
                            a.get("account"), a.get("balance"))
            elif not a["ok"] and not a.get("again") and a.get("reason") != "insufficient-credit":
                log.warning("site %s: entry %s could not be applied: %s (kept in unapplied)", site, a["id"],
                            a.get("reason"))

    def _apply_entry(self, t: WriteTxn, site: str, e: dict[str, Any], require_funds: bool,
                     now: float) -> dict[str, Any]:
        """One entry, inside the batch's write transaction (no closure per entry: a
        batch of thousands would feed the garbage collector)."""
        eid, kind, data = e["id"], e["kind"], e["data"]
        idk = eid.encode()
        refused = t.get(UNAPPLIED, idk)
        if refused is not None:
            return _answer(eid, False, reason=refused["reason"], again=True)
        t.origin = [site, eid]  # the feed tells the site which of its entries a change carries
        try:
            if kind == "txn":
                account, amount, offline = data["account"], data["amount"], bool(e.get("offline"))
                check_apply(eid, amount, data["kind"])
                bal = t.get("balances", account.encode())
                if bal is not None and bal[4] and amount < 0 and t.get("txn_ids", idk) is None:
                    raise LedgerError(f"the account {account} is disabled")
                try:
                    applied = apply_in(t, idk, eid, account, amount, data["kind"], data.get("job", 0),
                                       data.get("job_uuid", ""), data.get("by", ""), data.get("comment", ""),
                                       require_funds and not offline, float(e.get("time") or now), site, offline,
                                       None)
                except InsufficientCreditError as ex:
                    return _answer(eid, False, reason="insufficient-credit", available=ex.available)
                txn = applied.txn  # (bal: restricted and overdraft, which the apply leaves as they are)
                if not applied.new:
                    return _answer(eid, True, again=True)
                if bal and bal[3] and txn.amount < 0 and txn.balance + bal[2] < 0:
                    return _answer(eid, True, negative=True, balance=txn.balance, account=txn.account)
                return _answer(eid, True)
            if t.get(REPLAYED, idk) is not None:
                return _answer(eid, True, again=True)
            when = float(e.get("time") or now)
            if kind == "card":
                _add_card(t, data["user"], data["card"], by=f"{data.get('by') or data['user']}@{site}", now=when)
            else:
                _audit(t, site, data, when)
            t.put(REPLAYED, idk, 1)
            return _answer(eid, True)
        except (LedgerError, ValueError, TypeError) as ex:
            reason = str(ex)
            t.origin = ""
            t.put(UNAPPLIED, idk, {"entry": e, "site": site, "reason": reason, "time": self.clock()})
            return _answer(eid, False, reason=reason)
        finally:
            t.origin = ""

    def unapplied(self) -> list[dict[str, Any]]:
        return [rec for _k, rec in self.db.scan(UNAPPLIED)]

    # -- users ------------------------------------------------------------------------

    async def first_print(self, name: str) -> dict[str, Any]:
        """A site online meets a user it has never seen: what this node would do with
        their job (``ledger.unknown_users``): create them, with the new-user defaults, and
        hand the records over at once (the feed carries them too), or say no."""
        s = self.ledger_settings
        if s is None or s.unknown_users == "deny":
            return {"ok": False, "reason": "unknown-user"}
        check_name("user name", name)
        if self.ledger.user(name) is None:
            await self.ledger.update_user(name, {"restricted": s.new_user_restricted}, create=True,
                                          initial_credit=s.new_user_credit)
            log.info("user %r created on first print at a site (%s)", name,
                     "restricted" if s.new_user_restricted else "unrestricted")
        return {"ok": True, "user": self.db.get("users", name.encode()),
                "balance": self.db.get("balances", f"user:{name}".encode())}

    # -- logins -----------------------------------------------------------------------

    def user_record(self, name: str) -> dict[str, Any] | None:
        return self.db.get("users", name.encode())


def _add_card(t: WriteTxn, user: str, card: str, *, by: str, now: float) -> None:
    rec = t.get("users", user.encode())
    if rec is None:
        raise LedgerError(f"no user {user!r}")
    u = User.from_record(rec)
    if card in u.cards:
        return
    update_user_fn(user, {"cards": [*u.cards, card][-MAX_CARDS:]}, by=by, now=now)(t)


def _audit(t: WriteTxn, site: str, data: dict[str, Any], when: float) -> None:
    from ..release.audit import AUDIT, SCHEMA_VERSION
    k = int(when * 1e9)
    while t.get(AUDIT, u64_key(k)) is not None:
        k += 1
    extra = {f: v for f, v in data.items() if isinstance(f, str) and isinstance(v, (str, int, float, type(None)))}
    rec = {**extra, "v": SCHEMA_VERSION, "t": k / 1e9, "site": site}
    for f, default in (("event", "release"), ("user", ""), ("device", ""), ("job", 0), ("detail", "")):
        rec.setdefault(f, default)
    rec["detail"] = f"{rec['detail']} (at site {site})".strip()[:500]
    t.put(AUDIT, u64_key(k), rec)
