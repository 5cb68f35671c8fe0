"""Fuzz target for what a site sends the primary (spoolproxy.sync.primary.parse_journal):
a POST /api/v1/sync/journal body, msgpack bytes from a machine the primary trusts
only as far as its key.

    python tests/fuzz/fuzz_sync_journal.py [libFuzzer options] [corpus dir]   (atheris)
    python tests/fuzz/fuzz_sync_journal.py N [SEED]                            (plain loop)

``TestOneInput`` asserts that only SyncError escapes, and that what is accepted is
well-typed enough for the ledger: ids of bounded length, integer amounts of a site's
own transaction kinds, text where text is stored.
"""
from __future__ import annotations

import sys
from pathlib import Path

import msgpack

sys.path.insert(0, str(Path(__file__).resolve().parent))  # _harness, also when loaded by file path
import _harness  # noqa: E402

_harness.instrumented_import("spoolproxy.sync.primary", __name__)
from spoolproxy.sync.primary import MAX_TXN_ID, SITE_KINDS, SyncError, parse_journal  # noqa: E402


def _check(data: bytes) -> bool:
    try:
        entries, require_funds = parse_journal(data)
    except SyncError:
        return False
    assert isinstance(require_funds, bool)
    for e in entries:
        assert isinstance(e["id"], str) and 0 < len(e["id"].encode()) <= MAX_TXN_ID
        d = e["data"]
        if e["kind"] == "txn":
            assert type(d["amount"]) is int and d["kind"] in SITE_KINDS and isinstance(d["account"], str)
            assert all(isinstance(d.get(f, ""), str) for f in ("job_uuid", "by", "comment"))
        elif e["kind"] == "card":
            assert isinstance(d["user"], str) and isinstance(d["card"], str)
    return bool(entries)


def TestOneInput(data: bytes) -> None:
    _check(data)


def seed_corpus() -> list[bytes]:
    txn = {"id": "print/0a1b/1", "site": "s1", "seq": 1, "kind": "txn", "time": 1.5, "offline": True,
           "data": {"account": "user:ann", "amount": -70, "kind": "print", "job": 3, "job_uuid": "urn:uuid:x",
                    "by": "ann", "comment": "report.pdf"}}
    card = {"id": "card/9f", "kind": "card", "offline": False, "data": {"user": "ann", "card": "04A1"}}
    rel = {"id": "release/77", "kind": "release", "data": {"event": "release", "user": "ann", "job": 3}}
    return [msgpack.packb(b, use_bin_type=True) for b in (
        {"entries": [txn, card, rel], "require_funds": False},
        {"entries": [txn], "require_funds": True},
        {"entries": []},
        {"entries": [{**txn, "data": {**txn["data"], "amount": 1.5}}]},
    )]


mutate = _harness.mutator(
    _harness.flip_bit, _harness.set_byte(b"\x00\x01\x7f\x80\xc0\xc2\xc3\xcc\xd0\xd9\xdc\xde\xff"),
    _harness.insert_token([b"\xa3txn", b"\xa4card", b"\xc3", b"\xc2", b"\xd3" + b"\xff" * 8, b"\x91", b"\x81"]),
    _harness.delete(8), _harness.truncate, _harness.splice_tail, _harness.copy_within(16),
)


def run_random(iterations: int, seed: int | None = None) -> int:
    return _harness.run_random(_check, seed_corpus(), mutate, iterations, seed,
                               random_input=_harness.random_bytes(b"\x81\xa7entries"))


def main(argv: list[str]) -> None:
    _harness.fuzz_main(argv, TestOneInput, run_random, "fuzz_sync_journal")


if __name__ == "__main__":
    main(sys.argv)
