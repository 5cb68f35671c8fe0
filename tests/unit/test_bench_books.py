"""The books check of `spoolproxy bench run` (spoolproxy.bench.run.build_result): what it
finds wrong when a node loses a job, charges twice, or a balance does not add up."""
from __future__ import annotations

import pytest

from spoolproxy.bench.load import Submitted, Tally
from spoolproxy.bench.run import CREDIT, Options, build_result


def tally(*jobs: Submitted) -> Tally:
    t = Tally(started=1000.0)
    t.jobs.extend(jobs)
    t.duration = 10.0
    return t


def job(id: int | None, user: str = "bench00001", queue: str = "direct", name: str = "", released=None):
    return Submitted("lpd" if id is None else "ipp", queue, user, "small.pdf", 100, 1001.0, 1001.05, id, name,
                     released)


def record(id: int, state: int = 9, name: str = "small.pdf", reasons=("job-completed-successfully",),
           released: float | None = None):
    extra = {"stages": {"analysed": 1001.2, "admit_ms": 0.02, "charge_ms": 1.5}}
    if released is not None:
        extra["release"] = {"by": "bench00001", "device": "d", "printer": "secure", "at": released}
    return {"id": id, "state": state, "name": name, "created": 1001.1, "completed": 1002.1,
            "state_reasons": list(reasons), "extra": extra}


def charge(id: int, user: str = "bench00001", amount: int = -10):
    return {"kind": "print", "job": id, "account": f"user:{user}", "amount": amount}


def books(t: Tally, jobs, txns, balances, sinks):
    return build_result(Options(), t, jobs, txns, balances, sinks)["books"]


def test_balanced_books():
    t = tally(job(1), job(None, name="bench-lpd-0-2"), job(3, queue="secure", released=1002.0))
    jobs = [record(1), record(2, name="bench-lpd-0-2"), record(3)]
    txns = [charge(1), charge(2), charge(3)]
    b = books(t, jobs, txns, {"bench00001": CREDIT - 30}, {"socket": {"jobs": 3, "bytes": 300, "last": 1003.0}})
    assert b == {"ok": True, "checked_jobs": 3, "problems": [], "charged_total": 30, "balance_change": -30}


@pytest.mark.parametrize("change, problem", [
    (lambda j, x, b, s: j.pop(0), "no record"),
    (lambda j, x, b, s: x.append(charge(1)), "has 2 charges"),
    (lambda j, x, b, s: b.update(bench00001=CREDIT - 25), "balance moved -25"),
    (lambda j, x, b, s: s["socket"].update(jobs=3), "received 3 jobs"),
    (lambda j, x, b, s: j.__setitem__(0, record(1, state=5)), "still in state 5"),
    (lambda j, x, b, s: j.__setitem__(0, record(1, state=8, reasons=())), "without a reason"),
])
def test_each_kind_of_wrong_book_is_reported(change, problem):
    t = tally(job(1), job(2))
    jobs, txns = [record(1), record(2)], [charge(1), charge(2)]
    balances, sinks = {"bench00001": CREDIT - 20}, {"socket": {"jobs": 2, "bytes": 200, "last": 1003.0}}
    change(jobs, txns, balances, sinks)
    b = books(t, jobs, txns, balances, sinks)
    assert not b["ok"] and any(problem in p for p in b["problems"]), b


def test_a_job_aborted_with_a_reason_or_still_held_is_accounted_for():
    t = tally(job(1), job(2, queue="secure"))
    jobs = [record(1, state=8, reasons=("account-limit-reached",)),
            record(2, state=4, reasons=("job-hold-until-specified",))]
    b = books(t, jobs, [], {"bench00001": CREDIT}, {"socket": {"jobs": 0, "bytes": 0}})
    assert b["ok"], b


def test_stage_latencies_and_releases_come_from_the_node_records():
    """The releaser saw no answer for job 3's release (an HTTP error); the node released it
    all the same: it is counted released, and timed from the node's release to printed."""
    t = tally(job(1), job(2, queue="secure"), job(3, queue="secure"))
    jobs = [record(1), record(2, released=1001.6), record(3, released=1001.9)]
    del jobs[0]["extra"]["stages"]["charge_ms"]  # a free job: no debit
    result = build_result(Options(), t, jobs, [charge(1), charge(2), charge(3)], {"bench00001": CREDIT - 30},
                          {"socket": {"jobs": 3, "bytes": 300, "last": 1003.0}})
    target = result["targets"]["spoolproxy"]
    assert target["totals"]["released"] == 2 and target["totals"]["held"] == 2
    lat = target["latency_ms"]
    assert lat["release"]["n"] == 2 and lat["release"]["max"] == pytest.approx(500.0)  # 1002.1 - 1001.6
    assert lat["deliver"]["n"] == 1 and lat["deliver"]["p50"] == pytest.approx(1000.0)
    assert lat["analyse"]["n"] == 3 and lat["analyse"]["p50"] == pytest.approx(100.0)
    assert lat["admit"]["n"] == 3 and lat["charge"]["n"] == 2
