"""The site's journal and balance view against the primary's ledger, driven by random
interleavings (hypothesis state machine, no HTTP): charges made online (confirmed by
the primary first) and offline (journaled), refunds, top-ups on the primary,
accounts disabled there, replays in batches of any size, resent batches (a lost
answer), feed pages of any size, the feed arriving before an online charge is
journaled, and exports imported by hand before the replay.

Invariants, at every step:
- the site's view of each account = the primary's balance as of the last change the
  site applied + the site's entries the feed has not carried back (and that the
  primary did not refuse);
- the primary has each entry at most once, and once every entry is answered and
  the feed applied, the primary's log is exactly the entries it did not refuse, and
  the site's view equals the primary's balance.
"""
from __future__ import annotations

import tempfile
from pathlib import Path

import hypothesis.strategies as st
from hypothesis import settings
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from spoolproxy.db import Database
from spoolproxy.ledger import Ledger
from spoolproxy.ledger.store import apply_fn, update_user_fn
from spoolproxy.sync import journal as J
from spoolproxy.sync.primary import Primary, Sites
from spoolproxy.sync.site import _wire
from spoolproxy.config import OfflinePolicy

USERS = ("ann", "bob")
SITE = "s1"


class SyncMachine(RuleBasedStateMachine):
    @initialize()
    def setup(self):
        self.tmp = tempfile.TemporaryDirectory()
        root = Path(self.tmp.name)
        self.pdb = Database(root / "p", sync=False, changelog=J.REPLICATED)
        self.sdb = Database(root / "s", sync=False)
        self.primary = Primary(self.pdb, Ledger(self.pdb), OfflinePolicy())
        Sites(self.pdb).add_now(SITE)
        for u in USERS:
            self.pdb.transact_now(update_user_fn(u, {"restricted": False}, create=True, now=1.0))
        self.sdb.transact_now(J.apply_snapshot_fn(SITE, self.primary.snapshot(SITE)))
        self.n = 0
        self.refused: set[str] = set()
        self.entries: dict[str, int] = {}  # every money entry the site made: id -> amount

    def teardown(self):
        self.pdb.close()
        self.sdb.close()
        self.tmp.cleanup()

    def _id(self) -> str:
        self.n += 1
        return f"print/{self.n}"

    def _feed(self, limit: int = 10**9) -> None:
        at = self.sdb.get(J.META, J.APPLIED) or 0
        page = self.primary.changes(at, max(1, min(limit, 5000)))
        if page["changes"]:
            self.sdb.transact_now(J.apply_changes_fn(SITE, page["changes"]))

    # -- what happens ------------------------------------------------------------------

    @rule(user=st.sampled_from(USERS), amount=st.integers(1, 500), early=st.booleans())
    def online_charge(self, user, amount, early):
        tid = self._id()
        e = J.entry("txn", tid, {"account": f"user:{user}", "amount": -amount, "kind": "print"},
                    site=SITE, offline=False, when=2.0)
        (answer,) = self.primary.apply_now(SITE, [_wire(e)], require_funds=True)
        if not answer["ok"]:
            self.refused.add(tid)
            return
        if early:  # the feed brings the primary's change before the site journals its charge
            self._feed()
        self.sdb.transact_now(J.apply_and_journal_fn(tid, f"user:{user}", -amount, "print", site=SITE,
                                                     offline=False, pushed=True, when=2.0))
        self.entries[tid] = -amount

    @rule(user=st.sampled_from(USERS), amount=st.integers(-300, 500).filter(bool))
    def offline_transaction(self, user, amount):
        tid = self._id()
        kind = "refund" if amount > 0 else "print"
        self.sdb.transact_now(J.apply_and_journal_fn(tid, f"user:{user}", amount, kind, site=SITE,
                                                     offline=True, when=3.0))
        self.entries[tid] = amount

    @rule(user=st.sampled_from(USERS), amount=st.integers(1, 1000))
    def topup_on_primary(self, user, amount):
        self.pdb.transact_now(apply_fn(f"topup/{self._id()}", f"user:{user}", amount, "top-up", when=4.0))

    @rule(user=st.sampled_from(USERS), disabled=st.booleans())
    def disable_on_primary(self, user, disabled):
        self.pdb.transact_now(update_user_fn(user, {"disabled": disabled}, now=5.0))

    @rule(batch=st.integers(1, 7), resend=st.booleans())
    def replay(self, batch, resend):
        entries = J.unpushed(self.sdb, batch)
        if not entries:
            return
        answers = self.primary.apply_now(SITE, [_wire(e) for e in entries])
        if resend:  # the answer was lost: the same batch again changes nothing
            again = self.primary.apply_now(SITE, [_wire(e) for e in entries])
            assert all(a.get("again") for a in again), again
        for e, a in zip(entries, answers):
            if not a["ok"]:
                self.refused.add(e["id"])
        by_id = {a["id"]: a for a in answers}
        self.sdb.transact_now(J.settle_fn([(e, by_id[e["id"]]) for e in entries]))

    @rule(n=st.integers(1, 6))
    def import_by_hand(self, n):
        """An export imported on the primary before the replay; the replay then answers 'again'."""
        entries = [_wire(e) for e in J.unpushed(self.sdb, n)]
        for e, a in zip(entries, self.primary.apply_now(SITE, entries)):
            if not a["ok"]:
                self.refused.add(e["id"])

    @rule(limit=st.integers(1, 9))
    def feed(self, limit):
        self._feed(limit)

    # -- what must hold ----------------------------------------------------------------

    def _primary_at_cursor(self) -> dict[str, int]:
        """The primary's balances as of the last change the site applied."""
        at = self.sdb.get(J.META, J.APPLIED) or 0
        bal: dict[bytes, int] = {}
        for seq, table, key, value, _o in self._all_changes():  # the primary's log up to the cursor
            if seq > at:
                break
            if table == "balances":
                bal[bytes(key)] = value[1]
        return bal

    def _all_changes(self):
        out, at = [], 0
        while True:
            page = self.primary.changes(at, 5000)["changes"]
            if not page:
                return out
            out += page
            at = page[-1][0]

    @invariant()
    def view_is_mirror_plus_pending(self):
        if not hasattr(self, "sdb"):
            return
        mirror = self._primary_at_cursor()
        unreflected: dict[bytes, int] = {}
        for e in J.entries(self.sdb):
            if e["kind"] == "txn" and not e.get("r"):
                k = e["data"]["account"].encode()
                unreflected[k] = unreflected.get(k, 0) + e["data"]["amount"]
        cursor = self.sdb.get(J.META, J.PUSHED) or 0
        waiting = sum(1 for e in J.entries(self.sdb, after=cursor) if not e.get("pushed"))
        assert J.counts(self.sdb)["unsent"] == waiting
        for u in USERS:
            k = f"user:{u}".encode()
            view = self.sdb.get("balances", k)[1]
            assert view == mirror.get(k, 0) + unreflected.get(k, 0), (u, view, mirror, unreflected)
            assert (self.sdb.get(J.PENDING, k) or 0) == unreflected.get(k, 0)

    @invariant()
    def primary_has_each_entry_at_most_once(self):
        if not hasattr(self, "pdb"):
            return
        ids = [t.id for t in Ledger(self.pdb).transactions(limit=None) if t.kind in ("print", "refund")]
        assert len(ids) == len(set(ids))
        assert not set(ids) & self.refused

    @precondition(lambda self: hasattr(self, "sdb"))
    @rule()
    def settle_everything(self):
        while J.unpushed(self.sdb, 1000):
            self.replay(1000, False)
        self._feed()
        ledger = Ledger(self.pdb)
        applied = {t.id: t.amount for t in ledger.transactions(limit=None) if t.kind in ("print", "refund")}
        want = {i: a for i, a in self.entries.items() if i not in self.refused}
        assert applied == want
        for u in USERS:
            k = f"user:{u}".encode()
            assert self.sdb.get("balances", k)[1] == self.pdb.get("balances", k)[1]
            assert (self.sdb.get(J.PENDING, k) or 0) == 0


SyncMachine.TestCase.settings = settings(max_examples=60, stateful_step_count=30, deadline=None)
TestSyncJournal = SyncMachine.TestCase


# -- what a site sends: parse_journal ---------------------------------------------------------

from hypothesis import given  # noqa: E402

from spoolproxy.sync.primary import SyncError, parse_journal  # noqa: E402
from spoolproxy.sync.wire import pack  # noqa: E402

_text = st.text(max_size=30)
_txn = st.fixed_dictionaries({
    "id": st.text(min_size=1, max_size=60), "kind": st.just("txn"), "time": st.floats(0, 2e9),
    "offline": st.booleans(),
    "data": st.fixed_dictionaries({"account": _text, "amount": st.integers(-10**9, 10**9),
                                   "kind": st.sampled_from(["print", "refund"]), "job": st.integers(0, 2**31),
                                   "job_uuid": _text, "by": _text, "comment": _text})})
_card = st.fixed_dictionaries({"id": st.text(min_size=1, max_size=60), "kind": st.just("card"),
                               "data": st.fixed_dictionaries({"user": _text, "card": _text})})
_scalar = st.none() | st.booleans() | st.integers(-2**63, 2**64 - 1) | st.floats() | _text | st.binary(max_size=20)
_any = st.recursive(_scalar,
                    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(_text, inner, max_size=4),
                    max_leaves=20)


@given(st.lists(_txn | _card, max_size=8), st.booleans())
def test_well_formed_entries_are_accepted_as_sent(entries, funds):
    got, require = parse_journal(pack({"entries": entries, "require_funds": funds}))
    assert got == entries and require is funds


@given(st.one_of(st.binary(max_size=200), _any.map(pack),
                 st.lists(_any, max_size=4).map(lambda es: pack({"entries": es}))))
def test_anything_else_is_a_sync_error(data):
    try:
        entries, _ = parse_journal(data)
    except SyncError:
        return
    for e in entries:  # what got through is well-formed
        assert e["kind"] in ("txn", "card", "release") and isinstance(e["data"], dict)


def test_an_entry_the_ledger_refuses_is_kept_and_answered_the_same_way_again(tmp_path):
    with Database(tmp_path / "p", sync=False, changelog=J.REPLICATED) as db:
        primary = Primary(db, Ledger(db), OfflinePolicy())
        db.transact_now(update_user_fn("ann", {"restricted": False}, create=True, now=1.0))
        huge = {"id": "print/huge/1", "kind": "txn", "offline": True, "time": 2.0,
                "data": {"account": "user:ann", "amount": -10**16, "kind": "print"}}
        ghost = {"id": "print/ghost/1", "kind": "txn", "offline": True, "time": 2.0,
                 "data": {"account": "user:nobody", "amount": -5, "kind": "print"}}
        ok = {"id": "print/fine/1", "kind": "txn", "offline": True, "time": 2.0,
              "data": {"account": "user:ann", "amount": -5, "kind": "print"}}
        first = primary.apply_now("s1", [huge, ghost, ok])
        assert [(a["ok"], "beyond" in a.get("reason", ""), "nobody" in a.get("reason", "")) for a in first] == \
            [(False, True, False), (False, False, True), (True, False, False)]
        again = primary.apply_now("s1", [huge, ghost, ok])
        assert [(a["ok"], a.get("again")) for a in again] == [(False, True), (False, True), (True, True)]
        assert sorted(r["entry"]["id"] for r in primary.unapplied()) == ["print/ghost/1", "print/huge/1"]
        assert Ledger(db).balance("user:ann").balance == -5
