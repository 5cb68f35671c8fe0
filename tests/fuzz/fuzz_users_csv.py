"""Fuzz target for the users CSV import parser (spoolproxy.ledger.admin.parse_users_csv).

    python tests/fuzz/fuzz_users_csv.py [libFuzzer options] [corpus dir]   (atheris)
    python tests/fuzz/fuzz_users_csv.py N [SEED]                            (plain loop)

``TestOneInput`` asserts that only LedgerError escapes (a file that is unusable
as a whole), that every row and every error names a line that exists, that no
user name is accepted twice, and that the row's changes are well-typed.
"""
from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # _harness, also when loaded by file path
import _harness  # noqa: E402

_harness.instrumented_import("spoolproxy.ledger.admin", __name__)
from spoolproxy.ledger import LedgerError  # noqa: E402
from spoolproxy.ledger.admin import parse_users_csv  # noqa: E402
from spoolproxy.ledger.cost import parse_money  # noqa: E402


def _check(data: bytes) -> bool:
    try:
        rows, errors = parse_users_csv(data, parse_money)
    except LedgerError:
        return False
    lines = data.count(b"\n") + data.count(b"\r") + 1
    names = [r.name for r in rows]
    assert len(names) == len(set(names)), "a user was accepted twice"
    for r in rows:
        assert 1 < r.line <= lines, (r.line, lines)
        assert r.name and r.name == r.name.strip()
        assert isinstance(r.credit, int) and r.credit >= 0
        assert len(r.changes.get("cards", [])) <= 2
        assert all(k in ("pin", "password") for k in r.secrets)
    for line, why in errors:
        assert 1 < line <= lines and why
    return bool(rows)


def TestOneInput(data: bytes) -> None:
    _check(data)


def seed_corpus() -> list[bytes]:
    return [
        b"username,full_name,email,groups,restricted,overdraft,card,card2,identity,pin,password,disabled,initial_credit\n"
        b"ann,Ann A,ann@example.com,staff;lab,yes,0.50,1001,1002,S1,1234,secret,no,2.00\n"
        b'bob,"Bob, B",,lab,no,,2001,,,,,,\n',
        b"\xef\xbb\xbfUsername;pin\r\nann;1234\r\n",
        b'username,overdraft\nann,1.5\nbob,-1\ncarol,abc\n"dan\n',
    ]


mutate = _harness.mutator(
    _harness.flip_bit, _harness.set_byte(b',;"\n\r\x00 -.'), _harness.insert_token(
        [b",", b'"', b"\n", b"\r\n", b"yes", b"1.505", b"username", b"\x00", b"\xff"]),
    _harness.delete(8), _harness.truncate, _harness.splice_tail, _harness.copy_within(16),
)


def run_random(iterations: int, seed: int | None = None) -> int:
    return _harness.run_random(_check, seed_corpus(), mutate, iterations, seed,
                               random_input=_harness.random_bytes(b"username\n", b"username,card\n"))


def main(argv: list[str]) -> None:
    _harness.fuzz_main(argv, TestOneInput, run_random, "fuzz_users_csv")


if __name__ == "__main__":
    main(sys.argv)
