"""The users CSV parser: any text gives rows and line-numbered errors or a
LedgerError for the whole file, never anything else; what a spreadsheet writes
(csv.writer, any quoting) reads back as the same users."""
from __future__ import annotations

import csv
import io

from hypothesis import assume, given, settings
from hypothesis import strategies as st

from spoolproxy.ledger import LedgerError
from spoolproxy.ledger.admin import parse_users_csv
from spoolproxy.ledger.cost import parse_money

name = st.text(st.characters(blacklist_categories=("Cc", "Cs", "Zs", "Zl", "Zp")), min_size=1, max_size=20)
text = st.text(st.characters(blacklist_categories=("Cs",)), max_size=30)
user = st.fixed_dictionaries({
    "username": name,
    "full_name": text.map(str.strip),
    "groups": st.lists(st.text("abcdefgh-", min_size=1, max_size=6), max_size=3),
    "restricted": st.sampled_from(["yes", "no", "true", "false", "1", "0", ""]),
    "overdraft": st.integers(0, 10**6),
    "card": st.text("0123456789ABCDEF", max_size=12),
})


@settings(max_examples=200)
@given(st.one_of(st.binary(max_size=300), text.map(str.encode)))
def test_any_input_is_rows_errors_or_a_file_error(data):
    try:
        rows, errors = parse_users_csv(data, parse_money)
    except LedgerError as e:
        assert str(e)
        return
    assert len({r.name for r in rows}) == len(rows)
    assert all(line > 1 and why for line, why in errors)


@settings(max_examples=150)
@given(st.lists(user, max_size=8, unique_by=lambda u: u["username"].strip()),
       st.sampled_from([csv.QUOTE_MINIMAL, csv.QUOTE_ALL]), st.sampled_from(["\n", "\r\n"]))
def test_what_a_spreadsheet_writes_reads_back(users, quoting, newline):
    # csv.writer leaves a lone CR unquoted when the line ends are LF only (it quotes the
    # lineterminator's characters): no reader can read that back, and no spreadsheet writes it
    assume(quoting != csv.QUOTE_MINIMAL or newline != "\n" or not any("\r" in u["full_name"] for u in users))
    out = io.StringIO()
    w = csv.writer(out, quoting=quoting, lineterminator=newline)
    w.writerow(["username", "full_name", "groups", "restricted", "overdraft", "card"])
    for u in users:
        w.writerow([u["username"], u["full_name"], ";".join(u["groups"]), u["restricted"],
                    f"{u['overdraft'] // 100}.{u['overdraft'] % 100:02d}", u["card"]])
    rows, errors = parse_users_csv(out.getvalue().encode(), parse_money)
    assert errors == []
    assert [r.name for r in rows] == [u["username"].strip() for u in users]
    for r, u in zip(rows, users):
        assert r.changes.get("full_name", "") == u["full_name"]
        assert r.changes.get("groups", []) == sorted(set(u["groups"]))
        assert r.changes["overdraft"] == u["overdraft"]
        assert r.changes.get("cards", []) == ([u["card"]] if u["card"] else [])
        if u["restricted"]:
            assert r.changes["restricted"] == (u["restricted"] in ("yes", "true", "1"))
