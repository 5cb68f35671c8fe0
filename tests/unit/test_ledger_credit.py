"""The credit check's decision (spoolproxy.ledger.credit) and its compiled twin.

Every test runs on both implementations. The compiled one is skipped when it is not
built, except when SPOOLPROXY_REQUIRE_EXT=1 (CI), where that is a failure.
"""
from __future__ import annotations

import importlib
import os

import msgpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from spoolproxy.ledger import credit as pure
from spoolproxy.ledger import store
from spoolproxy.ledger.records import Balance

ACCOUNT = "user:ann"
INT64 = st.integers(-(2**63), 2**63 - 1)


def _compiled():
    try:
        return importlib.import_module("spoolproxy._ext.credit")
    except ModuleNotFoundError as e:
        if os.environ.get("SPOOLPROXY_REQUIRE_EXT", "") not in ("", "0"):
            pytest.fail(f"SPOOLPROXY_REQUIRE_EXT=1 but the extension is not built: {e}")
        return None


@pytest.fixture(params=["python", "cython"])
def credit(request):
    if request.param == "python":
        return pure
    mod = _compiled()
    if mod is None:
        pytest.skip("spoolproxy._ext.credit is not built (pip install -e . builds it)")
    return mod


def record(balance, overdraft=0, restricted=True, disabled=False, last=1) -> bytes:
    return msgpack.packb(Balance(balance, overdraft, restricted, disabled, last).to_record())


def fields(c) -> tuple:
    return (c.ok, c.account, c.cost, c.balance, c.available, c.restricted, c.reason)


class Floor:
    """An offline policy's rule: what may be spent is the balance down to -limit."""

    def __init__(self, limit: int):
        self.limit = limit

    def available(self, balance: int, overdraft: int) -> int:
        return balance + self.limit


def test_no_record_is_no_account(credit):
    assert fields(credit.decide(None, ACCOUNT, 150)) == (False, ACCOUNT, 150, 0, 0, True, credit.NO_ACCOUNT)


@pytest.mark.parametrize("balance, overdraft, cost, ok", [
    (500, 0, 150, True), (150, 0, 150, True), (149, 0, 150, False),
    (-200, 500, 300, True), (-200, 500, 301, False), (-10, 0, 0, True), (-10, 0, -5, True)])
def test_restricted_accounts_need_balance_plus_overdraft(credit, balance, overdraft, cost, ok):
    c = credit.decide(record(balance, overdraft), ACCOUNT, cost)
    reason = "" if ok else credit.NO_CREDIT
    assert fields(c) == (ok, ACCOUNT, cost, balance, balance + overdraft, True, reason)


def test_unrestricted_accounts_may_go_negative(credit):
    c = credit.decide(record(-1000, restricted=False), ACCOUNT, 10**9)
    assert fields(c) == (True, ACCOUNT, 10**9, -1000, -1000, False, "")


def test_a_disabled_account_pays_nothing(credit):
    for cost in (0, 150):
        c = credit.decide(record(10**6, restricted=False, disabled=True), ACCOUNT, cost)
        assert (c.ok, c.reason) == (False, credit.NO_DISABLED)


def test_an_offline_rule_replaces_the_overdraft(credit):
    rec = record(100, overdraft=10**6)
    assert fields(credit.decide(rec, ACCOUNT, 400, Floor(200))) == (False, ACCOUNT, 400, 100, 300, True,
                                                                    credit.NO_CREDIT)
    assert credit.decide(rec, ACCOUNT, 300, Floor(200)).ok


def test_a_record_of_another_shape_fails_alike(credit):
    with pytest.raises(ValueError):
        credit.decide(msgpack.packb([1, 100, 0, True, False]), ACCOUNT, 1)  # five fields
    with pytest.raises(msgpack.ExtraData):
        credit.decide(record(100) + b"\x00", ACCOUNT, 1)


def test_the_answer_is_a_plain_record(credit):
    c = credit.Credit(False, ACCOUNT, 5, reason=credit.NO_ACCOUNT)
    assert c == credit.decide(None, ACCOUNT, 5) and c != credit.decide(record(9), ACCOUNT, 5)
    assert repr(c) == ("Credit(ok=False, account='user:ann', cost=5, balance=0, available=0, "
                       "restricted=True, reason='there is no such account')")
    c.reason = "changed"
    assert c.reason == "changed"


@settings(max_examples=600, deadline=None)
@given(balance=INT64, overdraft=INT64, restricted=st.booleans(), disabled=st.booleans(),
       last=st.integers(0, 2**64 - 1), cost=st.one_of(INT64, st.integers(-(2**80), 2**80)))
def test_every_encoding_of_a_record_decides_as_the_model(balance, overdraft, restricted, disabled, last, cost):
    # msgpack picks the integer's encoding by its size and sign: fixints, uint8..64, int8..64
    raw = msgpack.packb([1, balance, overdraft, restricted, disabled, last])
    available = balance + overdraft
    ok = not disabled and not (restricted and 0 < cost and available < cost)
    reason = "" if ok else (pure.NO_DISABLED if disabled else pure.NO_CREDIT)
    want = (ok, ACCOUNT, cost, balance, available, restricted, reason)
    for module in filter(None, (pure, _compiled())):
        assert fields(module.decide(raw, ACCOUNT, cost)) == want


def test_the_ledger_uses_the_twin_the_environment_selects():
    no_ext = os.environ.get("SPOOLPROXY_NO_EXTENSIONS", "") not in ("", "0")
    want = pure if no_ext or _compiled() is None else _compiled()
    assert store.Credit is want.Credit
