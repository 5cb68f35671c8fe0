"""Ledger behaviours the state machine does not spell out: log queries by time when
the log is not in time order, free jobs, and the checks' reasons."""
from __future__ import annotations

import pytest

from spoolproxy.db import Database
from spoolproxy.ledger import Ledger, LedgerError, TransactionConflict, User
from spoolproxy.ledger.store import NO_ACCOUNT, NO_CREDIT, NO_DISABLED


@pytest.fixture
def ledger(tmp_path):
    db = Database(tmp_path / "db", map_size=1 << 26, sync=False)
    yield Ledger(db)
    db.close()


async def test_since_finds_entries_logged_out_of_time_order(ledger):
    await ledger.put_user(User("ann", restricted=False))
    await ledger.apply("job/1", "user:ann", -10, "print", when=2000.0)
    await ledger.apply("offline/site1/7", "user:ann", -5, "offline", when=1000.0)  # a replayed journal
    await ledger.apply("job/2", "user:ann", -1, "print", when=3000.0)
    for newest_first in (True, False):
        got = ledger.transactions(since=1500.0, newest_first=newest_first)
        assert sorted(t.id for t in got) == ["job/1", "job/2"]
        got = ledger.transactions(since=500.0, until=1500.0, account="user:ann", newest_first=newest_first)
        assert [t.id for t in got] == ["offline/site1/7"]


async def test_a_free_job_passes_even_below_zero_but_not_when_disabled(ledger):
    await ledger.put_user(User("bob", restricted=True))
    await ledger.adjust("user:bob", -5, by="test")
    assert ledger.check("user:bob", 0).ok
    c = ledger.check("user:bob", 1)
    assert not c.ok and c.reason == NO_CREDIT and c.available == -5
    await ledger.update_user("bob", {"disabled": True})
    assert ledger.check("user:bob", 0).reason == NO_DISABLED
    assert ledger.check("user:nobody", 0).reason == NO_ACCOUNT
    with pytest.raises(LedgerError):
        await ledger.apply("job/3", "user:bob", -1, "print", require_funds=True)


async def test_a_replayed_id_with_other_content_changes_nothing(ledger):
    await ledger.put_user(User("cy", restricted=False))
    first = await ledger.apply("job/9", "user:cy", -10, "print")
    again = await ledger.apply("job/9", "user:cy", -10, "print", comment="another comment")
    assert first.new and not again.new and again.txn == first.txn
    with pytest.raises(TransactionConflict):
        await ledger.apply("job/9", "user:cy", -11, "print")
    assert ledger.balance("user:cy").balance == -10 and len(ledger.transactions(limit=None)) == 1
