"""The ledger against a plain Python model: random sequences of users, shared accounts,
job charges, top-ups, refunds, adjustments, enabling/disabling and replayed
transaction ids, with every balance, every credit check and the whole log compared
after every step.

Three ways in:

* ``TestLedgerMachine``: a hypothesis ``RuleBasedStateMachine``. Each awaited ledger
  call runs in its own ``trio.run`` against a Database without a writer task, so every
  write commits directly (in a worker thread) and the model is sequential. A ``reopen``
  rule closes and reopens the environment mid-run; teardown reopens it read-only and
  checks everything once more.
* ``test_grouped_commits_match_model``: the group-commit path. The writer task
  (``db.run``) runs in a nursery and hundreds of concurrent tasks call ``apply`` (many
  with the same transaction id, same or different content), plus a transact() that
  writes and then fails. Writes are applied in the order ``apply`` was called
  (db.py), so the model replays them in that order and must predict every caller's
  outcome, the final log and every balance.
* ``test_reopen_after_run``: a longer seeded run through the machine's own rules; then
  the environment is closed and opened again (read-write, then read-only) and must
  hold every account, balance and transaction.
"""
from __future__ import annotations

import dataclasses
import functools
import random
import shutil
import tempfile
import weakref
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Awaitable, Callable

import pytest
import trio
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from hypothesis.errors import InvalidArgument
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from spoolproxy.db import Database
from spoolproxy.ledger import (Account, Balance, InsufficientCredit, Ledger, LedgerError,
                               TransactionConflict, Txn, UnknownAccount, UnknownUser, User, personal,
                               shared)
from spoolproxy.ledger.store import MAX_AMOUNT

USERS = ("ann", "bob", "cy", "dee", "eve")
SHARED = ("dept", "lab", "club")
ALL_ACCOUNTS = tuple(personal(u) for u in USERS) + tuple(shared(s) for s in SHARED) + ("user:nobody",)
BY = "admin"

MAP_SIZE = 1 << 26  # 64 MiB: plenty for a run, sparse on disk


def note(text: str) -> None:
    """hypothesis.event() (shown with --hypothesis-show-statistics), also outside a test."""
    try:
        event(text)
    except InvalidArgument:
        pass


def run(fn: Callable[..., Awaitable[Any]], *args: Any, **kw: Any) -> Any:
    """The synchronous adapter: one awaited ledger call in its own trio run."""
    return trio.run(functools.partial(fn, *args, **kw))


# ------------------------------------------------------------------ the model


@dataclass
class MAccount:
    balance: int = 0
    overdraft: int = 0
    restricted: bool = True
    disabled: bool = False

    @property
    def available(self) -> int:
        return self.balance + self.overdraft


class Model:
    """What the ledger should hold: accounts and the log, nothing else."""

    def __init__(self) -> None:
        self.accounts: dict[str, MAccount] = {}
        self.log: list[Txn] = []
        self.by_id: dict[str, Txn] = {}

    def check(self, account: str, cost: int) -> tuple[bool, int, int]:
        """(ok, balance, available) of the credit check's rule."""
        a = self.accounts.get(account)
        if a is None:
            return False, 0, 0
        ok = not a.disabled and (not a.restricted or cost <= 0 or cost <= a.available)
        return ok, a.balance, a.available

    def outcome(self, txn_id: str, account: str, amount: int, kind: str,
                require_funds: bool) -> tuple[str, Txn | None]:
        """What apply() must do, without doing it: ("dup", txn), ("conflict", None),
        ("unknown", None), ("disabled", None), ("insufficient", None) or ("new", None)."""
        prev = self.by_id.get(txn_id)
        if prev is not None:
            if (prev.account, prev.amount, prev.kind) == (account, amount, kind):
                return "dup", prev
            return "conflict", None
        a = self.accounts.get(account)
        if a is None:
            return "unknown", None
        if require_funds and amount < 0:
            if a.disabled:
                return "disabled", None
            if a.restricted and a.available + amount < 0:
                return "insufficient", None
        return "new", None

    def apply(self, txn_id: str, account: str, amount: int, kind: str, *, when: float, job: int = 0,
              job_uuid: str = "", by: str = "", comment: str = "") -> Txn:
        a = self.accounts[account]
        a.balance += amount
        prev = next((x.seq for x in reversed(self.log) if x.account == account), 0)
        t = Txn(len(self.log) + 1, txn_id, when, account, amount, a.balance, kind, job, job_uuid, by,
                comment, prev)
        self.log.append(t)
        self.by_id[txn_id] = t
        return t


def expect_outcome(kind: str, call: Callable[[], Any], model_txn: Txn | None = None) -> Any:
    """Run ``call`` and check that it did what the model's outcome says; the Applied
    for "new"/"dup"."""
    errors = {"conflict": TransactionConflict, "unknown": UnknownAccount,
              "insufficient": InsufficientCredit, "disabled": LedgerError}
    if kind in errors:
        with pytest.raises(errors[kind]) as info:
            call()
        if kind == "disabled":  # refused as disabled, not as a lack of credit
            assert type(info.value) is LedgerError, info.value
            assert "disabled" in str(info.value)
        return None
    applied = call()
    if kind == "dup":
        assert applied.new is False
        assert applied.txn == model_txn
    else:
        assert applied.new is True
    return applied


def verify(ledger: Ledger, model: Model) -> None:
    """Every invariant: balances, the credit check, the log (whole, per account, by
    id, both directions), and that each account's amounts add up to its balance."""
    for account in ALL_ACCOUNTS:
        m = model.accounts.get(account)
        b = ledger.balance(account)
        if m is None:
            assert b is None, account
        else:
            last = next((t.seq for t in reversed(model.log) if t.account == account), 0)
            assert b == Balance(m.balance, m.overdraft, m.restricted, m.disabled, last), (account, b, m)
        avail = m.available if m else 0
        for cost in sorted({0, 1, 250, avail - 1, avail, avail + 1, 10**9}):
            c = ledger.check(account, cost)
            ok, bal, available = model.check(account, cost)
            assert (c.ok, c.account, c.cost) == (ok, account, cost), (account, cost, c, m)
            if m is not None:
                assert (c.balance, c.available, c.restricted) == (bal, available, m.restricted), c
            assert bool(c.reason) == (not c.ok), c

    log = ledger.transactions(limit=None, newest_first=False)
    assert log == model.log
    assert [t.seq for t in log] == list(range(1, len(log) + 1))
    assert ledger.transactions(limit=None) == model.log[::-1]
    assert ledger.transactions(limit=3) == model.log[::-1][:3]
    for account in ALL_ACCOUNTS:
        mine = [t for t in model.log if t.account == account]
        assert ledger.transactions(account=account, limit=None, newest_first=False) == mine, account
        assert ledger.transactions(account=account, limit=None) == mine[::-1], account
        if account in model.accounts:
            assert sum(t.amount for t in mine) == model.accounts[account].balance == \
                ledger.balance(account).balance
            if mine:
                assert mine[-1].balance == model.accounts[account].balance
        else:
            assert not mine
    for t in model.log[-3:]:
        assert ledger.txn(t.id) == t
    assert ledger.txn("no/such/id") is None


# ------------------------------------------------------------------ the state machine

names_users = st.sampled_from(USERS)
names_shared = st.sampled_from(SHARED)
accounts = st.sampled_from(ALL_ACCOUNTS)
overdrafts = st.sampled_from([0, 0, 50, 500])
costs = st.integers(0, 3000)


def nonzero(limit: int) -> st.SearchStrategy[int]:
    return st.builds(lambda sign, n: sign * n, st.sampled_from([-1, 1]), st.integers(1, limit))


picks = st.integers(0, 10**6)  # an index into a list of the model, modulo its length
# an account for a money rule: mostly one that exists (index into the model's), else any
# name, which may not exist yet ("user:nobody" never does)
targets = st.one_of(picks.map(lambda i: ("existing", i)), accounts.map(lambda a: ("any", a)))


class LedgerMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.dir = Path(tempfile.mkdtemp(prefix="ledger-sm-"))
        # removed at teardown, or when the machine is collected if a run never gets there
        self._remove_dir = weakref.finalize(self, shutil.rmtree, str(self.dir), True)
        self.path = self.dir / "db"
        self.now = 1_700_000_000.0
        self.db = Database(self.path, sync=False, map_size=MAP_SIZE)
        self.ledger = Ledger(self.db, clock=lambda: self.now)
        self.model = Model()
        self.serial = 0
        self.charges: list[str] = []  # ids of applied charges (refundable)
        self.refused: list[str] = []  # ids of refused charges: not in the log, reusable

    def _tick(self) -> float:
        self.now += 1.25
        return self.now

    def _account(self, acct: tuple[str, Any]) -> str:
        how, what = acct
        if how == "existing" and self.model.accounts:
            names = sorted(self.model.accounts)
            return names[what % len(names)]
        return what if how == "any" else "user:nobody"

    def _fresh(self, prefix: str) -> str:
        self.serial += 1
        return f"{prefix}/{self.serial}"

    # ---- accounts

    @initialize(users=st.lists(st.tuples(names_users, st.booleans(), overdrafts,
                                         st.sampled_from([0, 300, 2000])), max_size=3),
                accounts=st.lists(st.tuples(names_shared, st.booleans(), overdrafts), max_size=2))
    def some_accounts(self, users: list, accounts: list) -> None:
        for u in users:
            self.put_user(*u)
        for a in accounts:
            self.put_shared(*a)

    @rule(name=names_users, restricted=st.booleans(), overdraft=overdrafts,
          initial=st.sampled_from([0, 0, 100, 1000, 5000, -200]))
    def put_user(self, name: str, restricted: bool, overdraft: int, initial: int) -> None:
        now = self._tick()
        u = run(self.ledger.put_user, User(name, restricted=restricted, overdraft=overdraft),
                initial_credit=initial, by=BY)
        assert (u.name, u.restricted, u.overdraft, u.disabled, u.updated) == \
            (name, restricted, overdraft, False, now)
        acct = personal(name)
        m = self.model.accounts.get(acct)
        if m is None:  # a new user: its initial credit is an adjustment
            self.model.accounts[acct] = MAccount(0, overdraft, restricted, False)
            if initial:
                self.model.apply(f"initial/{name}/{now!r}", acct, initial, "adjustment", when=now,
                                 by=BY, comment="initial credit")
        else:  # replaced: the balance stays, the flags are the new record's
            m.overdraft, m.restricted, m.disabled = overdraft, restricted, False
            assert u.created < now
        assert self.ledger.user(name) == u

    @rule(name=names_shared, restricted=st.booleans(), overdraft=overdrafts)
    def put_shared(self, name: str, restricted: bool, overdraft: int) -> None:
        self._tick()
        a = run(self.ledger.put_account, Account(name, restricted=restricted, overdraft=overdraft,
                                                 users=list(USERS[:2])))
        assert self.ledger.account(name) == a
        acct = shared(name)
        m = self.model.accounts.setdefault(acct, MAccount())
        m.overdraft, m.restricted, m.disabled = overdraft, restricted, False

    @rule(acct=targets, disabled=st.booleans(), restricted=st.none() | st.booleans(),
          overdraft=st.none() | overdrafts)
    def set_flags(self, acct: tuple[str, Any], disabled: bool, restricted: bool | None,
                  overdraft: int | None) -> None:
        """Disable or enable an account, maybe changing restriction and overdraft too."""
        self._tick()
        account = self._account(acct)
        changes: dict[str, Any] = {"disabled": disabled}
        if restricted is not None:
            changes["restricted"] = restricted
        if overdraft is not None:
            changes["overdraft"] = overdraft
        kind, name = account.split(":", 1)
        m = self.model.accounts.get(account)
        if kind == "user":
            call = functools.partial(run, self.ledger.update_user, name, changes, by=BY)
            missing: type[Exception] = UnknownUser
        else:
            call = functools.partial(run, self.ledger.update_account, name, changes)
            missing = UnknownAccount
        if m is None:
            with pytest.raises(missing):
                call()
            return
        rec = call()
        assert rec.disabled is disabled
        note(f"set_flags: disabled={disabled}")
        m.disabled = disabled
        m.restricted = changes.get("restricted", m.restricted)
        m.overdraft = changes.get("overdraft", m.overdraft)

    # ---- money

    @rule(acct=targets, cost=costs, reuse=st.booleans(), pick=picks)
    def charge(self, acct: tuple[str, Any], cost: int, reuse: bool, pick: int) -> None:
        """A job charge: refused as the model says (no credit, disabled, unknown)."""
        now = self._tick()
        account = self._account(acct)
        if reuse and self.refused:  # a refused id left no trace: it may be used again
            txn_id = self.refused.pop(pick % len(self.refused))
        else:
            txn_id = self._fresh("job")
        job = self.serial
        outcome, prev = self.model.outcome(txn_id, account, -cost, "print", True)
        note(f"charge: {outcome}")
        applied = expect_outcome(outcome, lambda: run(
            self.ledger.apply, txn_id, account, -cost, "print", job=job, job_uuid=f"uuid-{job}",
            by="ann", comment="a job", require_funds=True), prev)
        if outcome == "new":
            t = self.model.apply(txn_id, account, -cost, "print", when=now, job=job,
                                 job_uuid=f"uuid-{job}", by="ann", comment="a job")
            assert applied.txn == t
            self.charges.append(txn_id)
        elif outcome in ("insufficient", "disabled", "unknown"):
            self.refused.append(txn_id)

    @rule(acct=targets, amount=st.integers(1, 5000))
    def topup(self, acct: tuple[str, Any], amount: int) -> None:
        now = self._tick()
        account = self._account(acct)
        txn_id = self._fresh("topup")
        outcome, prev = self.model.outcome(txn_id, account, amount, "top-up", False)
        applied = expect_outcome(outcome, lambda: run(self.ledger.topup, account, amount, by=BY,
                                                      comment="cash", txn_id=txn_id), prev)
        if outcome == "new":
            assert applied.txn == self.model.apply(txn_id, account, amount, "top-up", when=now, by=BY,
                                                   comment="cash")

    @rule(acct=targets, amount=nonzero(3000))
    def adjust(self, acct: tuple[str, Any], amount: int) -> None:
        """Adjustments go through whatever the balance (no require_funds)."""
        now = self._tick()
        account = self._account(acct)
        txn_id = self._fresh("adjust")
        outcome, prev = self.model.outcome(txn_id, account, amount, "adjustment", False)
        applied = expect_outcome(outcome, lambda: run(self.ledger.adjust, account, amount, by=BY,
                                                      txn_id=txn_id), prev)
        if outcome == "new":
            assert applied.txn == self.model.apply(txn_id, account, amount, "adjustment", when=now,
                                                   by=BY)

    @rule(acct=targets, sign=st.sampled_from([-1, 1]), over=st.sampled_from([1, 10**15]),
          kind=st.sampled_from(["print", "adjustment", "top-up"]))
    def out_of_range(self, acct: tuple[str, Any], sign: int, over: int, kind: str) -> None:
        """An amount beyond MAX_AMOUNT is refused before anything is read or written;
        its id stays unused."""
        self._tick()
        account = self._account(acct)
        txn_id = self._fresh("huge")
        with pytest.raises(LedgerError, match="beyond"):
            run(self.ledger.apply, txn_id, account, sign * (MAX_AMOUNT + over), kind, require_funds=True)
        assert self.ledger.txn(txn_id) is None

    @precondition(lambda self: self.charges)
    @rule(pick=picks)
    def refund(self, pick: int) -> None:
        """Refund an earlier charge; its id is derived from the charge's, so refunding
        the same charge again changes nothing."""
        now = self._tick()
        charge = self.model.by_id[self.charges[pick % len(self.charges)]]
        txn_id = f"refund/{charge.id}"
        outcome, prev = self.model.outcome(txn_id, charge.account, -charge.amount, "refund", True)
        assert outcome in ("new", "dup")  # a refund is a credit: never refused
        note(f"refund: {outcome}")
        applied = expect_outcome(outcome, lambda: run(
            self.ledger.apply, txn_id, charge.account, -charge.amount, "refund", job=charge.job,
            by=BY, comment="refund", require_funds=True), prev)
        if outcome == "new":
            assert applied.txn == self.model.apply(txn_id, charge.account, -charge.amount, "refund",
                                                   when=now, job=charge.job, by=BY, comment="refund")

    # ---- replays

    @precondition(lambda self: self.model.log)
    @rule(pick=picks, require_funds=st.booleans())
    def replay_same(self, pick: int, require_funds: bool) -> None:
        """The same id and content again (other job/comment/time do not count): the
        logged transaction comes back, new=False, nothing changes, even when the
        account could no longer pay it or is disabled now."""
        self._tick()
        t = self.model.log[pick % len(self.model.log)]
        note(f"replay same: {t.kind}")
        applied = run(self.ledger.apply, t.id, t.account, t.amount, t.kind, job=t.job + 1,
                      comment="replayed", require_funds=require_funds)
        assert applied.new is False
        assert applied.txn == t

    @precondition(lambda self: self.model.log)
    @rule(pick=picks, change=st.sampled_from(["amount", "account", "kind", "all"]),
          delta=nonzero(500), other=accounts,
          kind=st.sampled_from(["print", "refund", "adjustment", "top-up", "offline"]))
    def replay_different(self, pick: int, change: str, delta: int, other: str, kind: str) -> None:
        """The same id with other content: TransactionConflict, nothing changes."""
        self._tick()
        t = self.model.log[pick % len(self.model.log)]
        account, amount, k = t.account, t.amount, t.kind
        if change in ("amount", "all"):
            amount += delta
        if change in ("account", "all") and other != t.account:
            account = other
        if change in ("kind", "all") and kind != t.kind:
            k = kind
        if (account, amount, k) == (t.account, t.amount, t.kind):
            amount += 1
        with pytest.raises(TransactionConflict):
            run(self.ledger.apply, t.id, account, amount, k, require_funds=True)

    @rule()
    def reopen(self) -> None:
        """Close the environment and open it again: nothing may be lost (sync=False
        still writes everything to the file; a clean close keeps it)."""
        self.db.close()
        self.db = Database(self.path, sync=False, map_size=MAP_SIZE)
        self.ledger = Ledger(self.db, clock=lambda: self.now)

    # ---- invariants

    @invariant()
    def matches_model(self) -> None:
        verify(self.ledger, self.model)

    def teardown(self) -> None:
        try:
            if not self.db.closed:
                self.db.close()
            with Database(self.path, readonly=True) as ro:
                verify(Ledger(ro), self.model)
        finally:
            self._remove_dir()


LedgerMachine.TestCase.settings = settings(
    max_examples=60, stateful_step_count=40, deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
TestLedgerMachine = LedgerMachine.TestCase


# ------------------------------------------------------------------ a longer run, reopened


def test_reopen_after_run() -> None:
    """A seeded run of 400 rule calls, then reopen (read-write, then read-only) and
    find every account, balance and transaction still there."""
    rnd = random.Random(20261121)
    m = LedgerMachine()
    try:
        for name in USERS:
            m.put_user(name, rnd.random() < 0.7, rnd.choice([0, 50, 500]), rnd.choice([0, 1000, 5000]))
        for name in SHARED:
            m.put_shared(name, rnd.random() < 0.5, rnd.choice([0, 500]))
        for _ in range(400):
            r = rnd.random()
            if r < 0.45:
                m.charge(("any", rnd.choice(ALL_ACCOUNTS)), rnd.randrange(0, 2500), rnd.random() < 0.3,
                         rnd.randrange(10**6))
            elif r < 0.55:
                m.topup(("any", rnd.choice(ALL_ACCOUNTS)), rnd.randrange(1, 5000))
            elif r < 0.65:
                m.adjust(("any", rnd.choice(ALL_ACCOUNTS)), rnd.choice([-1, 1]) * rnd.randrange(1, 3000))
            elif r < 0.75 and m.charges:
                m.refund(rnd.randrange(10**6))
            elif r < 0.82:
                m.set_flags(("any", rnd.choice(ALL_ACCOUNTS)), rnd.random() < 0.3, None, None)
            elif r < 0.9 and m.model.log:
                m.replay_same(rnd.randrange(10**6), rnd.random() < 0.5)
            elif m.model.log:
                m.replay_different(rnd.randrange(10**6), "amount", rnd.choice([-7, 7]), "user:ann",
                                   "print")
        m.matches_model()
        assert len(m.model.log) > 150
        m.db.close()
        with Database(m.path, sync=True, map_size=MAP_SIZE) as again:
            verify(Ledger(again), m.model)
            assert again.count("txns") == again.count("txn_ids") == len(m.model.log)
            assert again.count("balances") == len(m.model.accounts)
            assert {u.name for u in Ledger(again).users()} == \
                {a.split(":", 1)[1] for a in m.model.accounts if a.startswith("user:")}
        with Database(m.path, readonly=True) as ro:
            verify(Ledger(ro), m.model)
    finally:
        m.teardown()


# ------------------------------------------------------------------ the grouped path

GROUP_ACCOUNTS = {  # account: (restricted, overdraft, disabled, initial balance)
    personal("ann"): (True, 0, False, 3000),
    personal("bob"): (True, 500, False, 1000),
    personal("cy"): (False, 0, False, 0),
    personal("dee"): (True, 0, True, 5000),
    shared("dept"): (True, 0, False, 8000),
    shared("lab"): (False, 100, False, -50),
}
GROUP_TARGETS = tuple(GROUP_ACCOUNTS) + ("shared:nothere",)
KINDS_OF_CALL = ("print", "print", "print", "refund", "top-up", "adjustment")


@st.composite
def group_plans(draw) -> list[dict[str, Any]]:
    """Calls with ids from a small pool, so that many share an id; a call with a
    shared id takes the pool id's own content most of the time, other content
    sometimes."""
    pool = draw(st.integers(10, 60))
    content = {}
    for i in range(pool):
        kind = draw(st.sampled_from(KINDS_OF_CALL))
        amount = -draw(st.integers(1, 1500)) if kind == "print" else draw(st.integers(1, 1500))
        if kind == "adjustment" and draw(st.booleans()):
            amount = -amount
        content[i] = (draw(st.sampled_from(GROUP_TARGETS)), amount, kind)
    calls = []
    for _ in range(draw(st.integers(100, 300))):
        i = draw(st.integers(0, pool - 1))
        account, amount, kind = content[i]
        if draw(st.integers(0, 4)) == 0:  # same id, other content
            account, amount, kind = (draw(st.sampled_from(GROUP_TARGETS)), draw(st.integers(-1500, 1500)),
                                     draw(st.sampled_from(KINDS_OF_CALL)))
        calls.append({"id": f"g/{i}", "account": account, "amount": amount, "kind": kind,
                      "require_funds": kind == "print" or draw(st.integers(0, 3)) == 0,
                      "yields": draw(st.integers(0, 3))})
    return calls


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                 HealthCheck.data_too_large])
@given(plan=group_plans(), poison_at=st.integers(0, 50))
def test_grouped_commits_match_model(plan: list[dict[str, Any]], poison_at: int) -> None:
    """Concurrent apply() calls through the writer task: grouped into few commits, each
    call's outcome what the model predicts in call order, same-id calls in one group
    seeing each other, and a failing transact() in a group undone alone."""
    tmp = Path(tempfile.mkdtemp(prefix="ledger-group-"))
    when = 1_700_000_000.0
    try:
        db = Database(tmp / "db", sync=False, map_size=MAP_SIZE)
        ledger = Ledger(db, clock=lambda: when)
        model = Model()
        # the accounts, through the same ledger API (direct commits: no writer yet)
        for account, (restricted, overdraft, disabled, initial) in GROUP_ACCOUNTS.items():
            kind, name = account.split(":", 1)
            if kind == "user":
                run(ledger.put_user, User(name, restricted=restricted, overdraft=overdraft,
                                          disabled=disabled), initial_credit=initial, by=BY)
            else:
                run(ledger.put_account, Account(name, restricted=restricted, overdraft=overdraft,
                                                disabled=disabled))
                if initial:
                    run(ledger.adjust, account, initial, by=BY, txn_id=f"initial/{name}")
            model.accounts[account] = MAccount(0, overdraft, restricted, disabled)
            if initial:
                model.apply(f"initial/{name}/{when!r}" if kind == "user" else f"initial/{name}",
                            account, initial, "adjustment", when=when, by=BY,
                            comment="initial credit" if kind == "user" else "")
        verify(ledger, model)
        before = dataclasses.replace(db.stats)

        order: list[int] = []  # call order = commit order (db.py)
        results: dict[int, Any] = {}
        poisoned: list[BaseException] = []

        async def caller(i: int, c: dict[str, Any]) -> None:
            for _ in range(c["yields"]):
                await trio.sleep(0)
            order.append(i)  # no checkpoint between this and the request being queued
            try:
                results[i] = await ledger.apply(c["id"], c["account"], c["amount"], c["kind"],
                                                require_funds=c["require_funds"], by="grp")
            except LedgerError as e:
                results[i] = e

        def poison(t) -> None:
            # writes, then fails: its nested transaction must be undone, alone
            t.put("balances", personal("ann").encode(), Balance(10**9).to_record())
            t.put("txn_ids", b"g/poison", 999)
            raise RuntimeError("poison")

        async def poison_caller() -> None:
            for _ in range(poison_at % 4):
                await trio.sleep(0)
            try:
                await db.transact(poison)
            except RuntimeError as e:
                poisoned.append(e)

        async def main() -> None:
            async with trio.open_nursery() as outer:
                await outer.start(db.run)
                async with trio.open_nursery() as n:
                    for i, c in enumerate(plan):
                        n.start_soon(caller, i, c)
                        if i == poison_at:
                            n.start_soon(poison_caller)
                outer.cancel_scope.cancel()

        trio.run(main)
        assert sorted(order) == list(range(len(plan)))
        assert len(poisoned) == (1 if poison_at < len(plan) else 0)

        for i in order:
            c = plan[i]
            outcome, prev = model.outcome(c["id"], c["account"], c["amount"], c["kind"],
                                          c["require_funds"])
            got = results[i]
            if outcome in ("new", "dup"):
                assert not isinstance(got, Exception), (i, c, outcome, got)
                if outcome == "new":
                    assert got.new is True
                    assert got.txn == model.apply(c["id"], c["account"], c["amount"], c["kind"],
                                                  when=when, by="grp")
                else:
                    assert got.new is False and got.txn == prev, (i, c, got)
            else:
                want = {"conflict": TransactionConflict, "unknown": UnknownAccount,
                        "insufficient": InsufficientCredit, "disabled": LedgerError}[outcome]
                assert type(got) is want, (i, c, outcome, got)
        verify(ledger, model)
        assert ledger.txn("g/poison") is None

        calls = len(plan) + len(poisoned)
        assert db.stats.requests - before.requests == calls
        commits = db.stats.commits - before.commits
        assert 1 <= commits < calls, (commits, calls)  # grouped
        db.close()
        with Database(tmp / "db", readonly=True) as ro:
            verify(Ledger(ro), model)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
