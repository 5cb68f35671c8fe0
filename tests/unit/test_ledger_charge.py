"""The admission stage and the charger on a real job store and ledger (one LMDB
environment): who pays, the credit check and its message, the debit at delivery
(once, whatever crashes), and the refund of a job that ends unprinted."""
from __future__ import annotations

from pathlib import Path

import pytest
import trio

from spoolproxy.config import LedgerSettings, from_mapping
from spoolproxy.db import Database
from spoolproxy.ipp import codec
from spoolproxy.ipp.model import JobState, Tag
from spoolproxy.ipp.types import Attribute
from spoolproxy.ledger import Account, Ledger, User
from spoolproxy.ledger.charge import Charger, ChargeRefused
from spoolproxy.policy.admission import Admission
from spoolproxy.spool import JobStore

GRAY, COLOR = 10, 50


def settings(**queue):
    q = {"printer": "folder:out", "cost": {"gray": GRAY, "color": COLOR}}
    q.update(queue)
    return from_mapping({"queues": {"q": q}})


class Node:
    """A store and a ledger over one database, as app.run_node builds them."""

    def __init__(self, state: Path, s=None, ledger_settings: LedgerSettings | None = None):
        self.settings = s or settings()
        self.db = Database(state / "db", map_size=1 << 28, sync=False)
        self.ledger = Ledger(self.db)
        ls = ledger_settings or LedgerSettings()
        self.charger = Charger(self.ledger, ls.money)
        self.store = JobStore(self.db, state / "spool", fsync=False, analysis=True,
                              on_save=self.charger.on_save)
        self.admission = Admission(self.ledger, self.settings.queues, ls, self.store, money=ls.money)

    async def job(self, *, user="ann", color=1, gray=2, attrs=(), name="report", pjl_account=None):
        job = self.store.new_job(queue="q", user=user, name=name)
        if attrs:
            job.attributes = codec.encode_attributes(list(attrs))
        self.store.add_document(job, "d-x", 100, "application/pdf")
        kinds = [k for k in ([color, True, "one-sided", [21000, 29700], 1],
                             [gray, False, "one-sided", [21000, 29700], 1]) if k[0]]
        job.documents[0].analysis = {"format": "application/pdf", "pages": color + gray,
                                     "impressions": color + gray, "color_impressions": color,
                                     "sheets": color + gray, "undecided": 0, "kinds": kinds,
                                     "sha256": f"{color}-{gray}-{name}", "account": pjl_account}
        job.closed = True
        job.analyzed = True
        await self.admission.admit(job, run)
        await self.store.save(job)
        return job

    def close(self):
        self.db.close()


async def run(fn, *args):
    return await trio.to_thread.run_sync(fn, *args)


@pytest.fixture
def node(tmp_path):
    n = Node(tmp_path / "state")
    yield n
    n.close()


def prints(ledger: Ledger, job_id: int) -> list:
    return ledger.transactions(job=job_id, limit=None)


async def test_restricted_user_without_credit_is_refused_with_the_price(node):
    await node.ledger.put_user(User("ann", restricted=True), initial_credit=30)
    job = await node.job()
    assert job.state == JobState.ABORTED and job.state_reasons == ["account-limit-reached"]
    assert job.state_message == ("Not enough credit: this job costs 0.70 (1 colour pages × 0.50 + "
                                 "2 gray pages × 0.10 = 0.70) and your account has 0.30 available.")
    assert "charge" not in job.extra and node.ledger.balance("user:ann").balance == 30


async def test_overdraft_counts_and_unrestricted_users_may_go_negative(node):
    await node.ledger.put_user(User("ann", restricted=True, overdraft=40), initial_credit=30)
    await node.ledger.put_user(User("bob", restricted=False))
    for user in ("ann", "bob"):
        job = await node.job(user=user)
        assert job.state == JobState.PENDING, job.state_message
        await node.charger.charge(job)
        await node.store.save(job)
    assert node.ledger.balance("user:ann").balance == 30 - 70
    assert node.ledger.balance("user:bob").balance == -70


async def test_unknown_users_are_created_or_refused(tmp_path):
    n = Node(tmp_path / "a", ledger_settings=LedgerSettings(new_user_restricted=True, new_user_credit=100))
    job = await n.job(user="newbie")
    assert job.state == JobState.PENDING
    user = n.ledger.user("newbie")
    assert user.restricted and n.ledger.balance("user:newbie").balance == 100
    n.close()
    n = Node(tmp_path / "b", ledger_settings=LedgerSettings(unknown_users="deny"))
    job = await n.job(user="stranger")
    assert job.state == JobState.ABORTED and "not known" in job.state_message
    assert n.ledger.user("stranger") is None
    n.close()


async def test_shared_account_named_by_the_job(node):
    await node.ledger.put_user(User("ann", groups=["physics"]), initial_credit=0)
    await node.ledger.put_account(Account("Physics", code="P42", groups=["physics"], restricted=False))
    await node.ledger.put_account(Account("Chemistry", users=["someone"]))
    await node.ledger.put_account(Account("Old", users=["ann"], disabled=True))
    acct = lambda v: [Attribute("job-account-id", Tag.NAME, [v])]  # noqa: E731
    job = await node.job(attrs=acct("P42"))
    assert job.state == JobState.PENDING and job.extra["charge"]["account"] == "shared:Physics"
    for value, reason, words in (("Chemistry", "account-authorization-failed", "may not charge"),
                                 ("Nowhere", "account-authorization-failed", "no shared account"),
                                 ("Old", "account-closed", "disabled")):
        job = await node.job(attrs=acct(value), name=value)
        assert job.state == JobState.ABORTED and job.state_reasons == [reason], value
        assert words in job.state_message


async def test_shared_account_named_in_the_pjl_header(node):
    await node.ledger.put_user(User("ann", groups=["physics"]), initial_credit=0)
    await node.ledger.put_account(Account("Physics", groups=["physics"], restricted=False))
    job = await node.job(pjl_account="Physics")
    assert job.state == JobState.PENDING and job.extra["charge"]["account"] == "shared:Physics"
    job = await node.job(pjl_account="Elsewhere", name="x")
    assert job.state == JobState.ABORTED and "Elsewhere" in job.state_message


async def test_ipp_copies_and_monochrome_change_the_price(node):
    await node.ledger.put_user(User("ann", restricted=False))
    job = await node.job(attrs=[Attribute("copies", Tag.INTEGER, [3]),
                                Attribute("print-color-mode", Tag.KEYWORD, ["monochrome"])])
    assert job.extra["charge"]["cost"] == 3 * 3 * GRAY


async def test_max_cost_names_the_limit_and_the_price(tmp_path):
    n = Node(tmp_path / "s", settings(filters={"max_cost": 60}))
    await n.ledger.put_user(User("ann"), initial_credit=1000)
    job = await n.job()
    assert job.state == JobState.ABORTED and "at most 0.60" in job.state_message
    assert "would have cost 0.70" in job.state_message
    n.close()


async def test_charge_is_once_even_if_the_node_dies_before_saving_it(tmp_path):
    state = tmp_path / "state"
    n = Node(state)
    await n.ledger.put_user(User("ann"), initial_credit=500)
    job = await n.job()
    await n.charger.charge(job)  # debited; the crash comes before the job is saved
    job_id = job.id
    n.close()
    n = Node(state)  # restart: the job record does not know it was charged
    job = n.store.get(job_id)
    assert "txn" not in job.extra["charge"]
    await n.charger.charge(job)
    await n.store.save(job)
    assert [t.amount for t in prints(n.ledger, job_id)] == [-70]
    assert n.ledger.balance("user:ann").balance == 430
    n.close()


async def test_balance_spent_since_admission_refuses_the_delivery(node):
    await node.ledger.put_user(User("ann"), initial_credit=100)
    first, second = await node.job(name="a"), await node.job(name="b")
    assert first.state == second.state == JobState.PENDING  # each alone is affordable
    await node.charger.charge(first)
    with pytest.raises(ChargeRefused) as e:
        await node.charger.charge(second)
    assert e.value.reason == "account-limit-reached" and "0.30 available" in str(e.value)
    assert node.ledger.balance("user:ann").balance == 30


async def test_a_job_that_ends_unprinted_is_refunded_once(node):
    await node.ledger.put_user(User("ann"), initial_credit=100)
    job = await node.job()
    await node.charger.charge(job)
    job.state = JobState.PROCESSING
    await node.store.save(job)
    job.state = JobState.ABORTED
    job.state_message = "printer on fire"
    await node.store.save(job)
    await node.store.save(job)
    kinds = [(t.kind, t.amount) for t in reversed(prints(node.ledger, job.id))]
    assert kinds == [("print", -70), ("refund", 70)]
    assert node.ledger.balance("user:ann").balance == 100
    # printed again later (an operator restarts it): a new charge, not the old id
    job.state = JobState.PENDING
    await node.charger.charge(job)
    job.state = JobState.COMPLETED
    await node.store.save(job)
    assert node.ledger.balance("user:ann").balance == 30


async def test_completed_jobs_keep_their_charge(node):
    await node.ledger.put_user(User("ann"), initial_credit=100)
    job = await node.job()
    await node.charger.charge(job)
    job.state = JobState.COMPLETED
    await node.store.save(job)
    assert [t.kind for t in prints(node.ledger, job.id)] == ["print"]


async def test_settle_refunds_what_a_crash_left_unrefunded(tmp_path):
    state = tmp_path / "state"
    n = Node(state)
    await n.ledger.put_user(User("ann"), initial_credit=100)
    job = await n.job()
    await n.charger.charge(job)
    job.state = JobState.CANCELED
    n.store.on_save = None  # as if the node died with the state saved by an older version
    await n.store.save(job)
    n.close()
    n = Node(state)
    assert await n.charger.settle(n.store) == 1
    assert n.ledger.balance("user:ann").balance == 100
    assert await n.charger.settle(n.store) == 0
    n.close()


async def test_duplicates_are_found_once_and_refused_jobs_do_not_count(tmp_path):
    n = Node(tmp_path / "s", settings(filters={"duplicate_window": 60}))
    await n.ledger.put_user(User("ann"), initial_credit=50)
    poor = await n.job()
    assert poor.state == JobState.ABORTED  # no credit: not an original
    await n.ledger.topup("user:ann", 500, by="test")
    first, second = await n.job(), await n.job()
    assert first.state == JobState.PENDING
    assert second.state == JobState.ABORTED and f"duplicate of job {first.id}" in second.state_message
    other = await n.job(name="other")
    assert other.state == JobState.PENDING
    n.close()


async def test_a_user_name_the_ledger_cannot_hold_is_refused_not_fatal(node):
    job = await node.job(user=" padded ")
    assert job.state == JobState.ABORTED and "could not check the account" in job.state_message


# ---- the charge on the delivery path (upstream.service with a folder printer) ----

async def deliver_one(node: Node, tmp_path, job, *, during_charge=None):
    """Run the queue's delivery worker until ``job`` is final; ``during_charge(job)``
    runs while the debit is being committed (a user's Cancel-Job arriving then)."""
    from spoolproxy.upstream import Upstream
    s = from_mapping({"node": {"state_dir": str(tmp_path / "state"), "fsync": False},
                      "queues": {"q": {"printer": f"folder:{tmp_path / 'out'}", "poll_interval": 0.2}}})
    if during_charge is not None:
        real = node.charger.charge

        async def charge(j):
            await real(j)
            await during_charge(j)
        node.charger.charge = charge
    up = Upstream(s, node.store, charger=node.charger)
    async with trio.open_nursery() as n:
        await n.start(up.run)
        up.wake("q")
        with trio.fail_after(10):
            while not job.is_final:
                await trio.sleep(0.01)
        n.cancel_scope.cancel()
    return sorted((tmp_path / "out").glob("*")) if (tmp_path / "out").exists() else []


async def spooled(node: Node, **kw):
    job = await node.job(**kw)
    path = node.store.path(job.documents[0])
    path.write_bytes(b"%PDF-1.4 not really\n")
    job.documents[0].size = path.stat().st_size
    await node.store.save(job)
    return job


async def test_delivery_charges_once_and_completes(node, tmp_path):
    await node.ledger.put_user(User("ann"), initial_credit=100)
    job = await spooled(node)
    printed = await deliver_one(node, tmp_path, job)
    assert job.state == JobState.COMPLETED and len(printed) == 1
    assert [(t.kind, t.amount) for t in prints(node.ledger, job.id)] == [("print", -70)]
    # the debit's duration is kept with the job (the load test's "charge" stage)
    assert node.store.get(job.id).extra["stages"]["charge_ms"] >= 0


async def test_delivery_refused_when_the_credit_is_gone(node, tmp_path):
    await node.ledger.put_user(User("ann"), initial_credit=100)
    job = await spooled(node)
    await node.ledger.adjust("user:ann", -50, by="test")  # spent elsewhere since admission
    printed = await deliver_one(node, tmp_path, job)
    assert job.state == JobState.ABORTED and job.state_reasons == ["account-limit-reached"]
    assert "0.50 available" in job.state_message and printed == []
    assert prints(node.ledger, job.id) == []
    assert "charge_ms" not in job.extra.get("stages", {})  # no debit, no charge stage


async def test_a_job_canceled_while_it_is_charged_is_refunded_and_not_printed(node, tmp_path):
    await node.ledger.put_user(User("ann"), initial_credit=100)
    job = await spooled(node)

    async def cancel(j):  # what Cancel-Job does: final state, saved
        j.state = JobState.CANCELED
        j.state_reasons = ["job-canceled-by-user"]

    printed = await deliver_one(node, tmp_path, job, during_charge=cancel)
    assert job.state == JobState.CANCELED and printed == []
    assert [(t.kind, t.amount) for t in reversed(prints(node.ledger, job.id))] == [("print", -70), ("refund", 70)]
    assert node.ledger.balance("user:ann").balance == 100
