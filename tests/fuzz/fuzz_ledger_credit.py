"""Fuzz target for the credit check's decision (spoolproxy.ledger.credit and, when
built, its compiled twin spoolproxy._ext.credit, which reads the msgpack record in C).

    python tests/fuzz/fuzz_ledger_credit.py [libFuzzer options] [corpus dir]
        runs atheris (coverage-guided) when it is installed;
    python tests/fuzz/fuzz_ledger_credit.py N [SEED]
        runs N iterations of a plain random/mutational loop (no atheris needed).

``TestOneInput`` asserts that the twins give the same answer, or fail with the same
kind of error, for any record bytes and a few costs, and that an answer is consistent
(``ok`` exactly when no reason is given).
"""
from __future__ import annotations

import sys
from pathlib import Path

import msgpack

sys.path.insert(0, str(Path(__file__).resolve().parent))  # _harness, also when loaded by file path
import _harness  # noqa: E402

pure = _harness.instrumented_import("spoolproxy.ledger.credit", __name__)

try:
    from spoolproxy._ext import credit as compiled
except ImportError:
    compiled = None

COSTS = (0, 1, 150, -5, 2**62, 2**62 + 1, 2**70)


def _outcome(module, data: bytes, cost: int):
    try:
        c = module.decide(data, "user:ann", cost)
    except Exception as e:  # the unpacking's own errors: the twins must raise the same kind
        return type(e)
    assert c.ok == (c.reason == ""), c
    return (c.ok, c.account, c.cost, c.balance, c.available, c.restricted, c.reason)


def _check(data: bytes) -> bool:
    decided = False
    for cost in COSTS:
        want = _outcome(pure, data, cost)
        if compiled is not None:
            got = _outcome(compiled, data, cost)
            assert repr(got) == repr(want), (data, cost, got, want)  # (repr: a NaN balance is equal)
        decided = decided or isinstance(want, tuple)
    return decided


def TestOneInput(data: bytes) -> None:
    _check(data)


def seed_corpus() -> list[bytes]:
    recs = [[1, 500, 0, True, False, 7], [1, -200, 500, True, False, 0], [1, 2**40, 2**20, False, False, 2**33],
            [1, 0, 0, True, True, 1], [1, 2**63 - 1, 0, True, False, 1], [1, -(2**63), 0, False, False, 1],
            [1, 100, 0, 1, 0, 1], [1, 100, 0, True, False, None], [1, 100, 0, True, False]]
    return [msgpack.packb(r) for r in recs] + [b"\xdc\x00\x06\x01\x00\x00\xc3\xc2\x00"]


mutate = _harness.mutator(
    _harness.flip_bit, _harness.set_byte(b"\x00\x7f\x80\x95\x96\x97\xc0\xc2\xc3\xcc\xcd\xce\xcf\xd0\xd3\xe0\xff"),
    _harness.insert_token([b"\xc3", b"\xc2", b"\xcf" + b"\xff" * 8, b"\xd3\x80" + b"\x00" * 7, b"\x01"]),
    _harness.delete(4), _harness.truncate, _harness.splice_tail, _harness.copy_within(8),
)


def run_random(iterations: int, seed: int | None = None) -> int:
    return _harness.run_random(_check, seed_corpus(), mutate, iterations, seed,
                               random_input=_harness.random_bytes(b"\x96\x01", max_len=24))


def main(argv: list[str]) -> None:
    _harness.fuzz_main(argv, TestOneInput, run_random, "fuzz_ledger_credit")


if __name__ == "__main__":
    main(sys.argv)
