"""The ledger's commands (spoolproxy users/accounts/balance/transactions/cost) on a
state directory, as an administrator runs them."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from spoolproxy import cli
from spoolproxy.db import Database
from spoolproxy.ledger import Ledger, verify_secret


@pytest.fixture
def state(tmp_path):
    return tmp_path / "state"


def run(capsys, state: Path, *args: str) -> tuple[int, str, str]:
    code = cli.main([*args, "--state-dir", str(state)])
    out, err = capsys.readouterr()
    return code, out, err


def ledger_of(state: Path) -> Ledger:
    return Ledger(Database(state / "db", readonly=True))


CSV = """username,full_name,groups,restricted,overdraft,card,pin,initial_credit
ann,Ann Example,staff;lab,yes,0.50,1001,1234,2.00
bob,,lab,no,,1001,,
,,,,,,,
carol,,x,maybe,,,,
dan,,,,1.234,,,
eve,,,,,,12,
"""


def test_import_reports_each_bad_row_and_imports_the_rest(tmp_path, state, capsys):
    f = tmp_path / "users.csv"
    f.write_text(CSV)
    code, out, err = run(capsys, state, "users", "import", str(f))
    assert code == 1  # some rows were bad
    assert "1 created, 0 updated, 0 unchanged, 4 row(s) with errors" in out
    assert f"{f}:3: card 1001 already belongs to user 'ann'" in err
    assert f"{f}:5: restricted: 'maybe' is not yes/no" in err
    assert f"{f}:6: overdraft: '1.234' has 3 decimals" in err
    assert f"{f}:7: pin: must be 4 to 12 digits" in err
    led = ledger_of(state)
    ann = led.user("ann")
    assert (ann.full_name, ann.groups, ann.restricted, ann.overdraft, ann.cards) == \
        ("Ann Example", ["lab", "staff"], True, 50, ["1001"])
    assert verify_secret("1234", ann.pin_hash) and "1234" not in ann.pin_hash
    assert led.balance("user:ann").balance == 200
    assert led.user("carol") is None
    led.db.close()
    # the same file again: nothing changes, no second initial credit
    code, out, _ = run(capsys, state, "users", "import", str(f))
    assert "0 created, 0 updated, 1 unchanged" in out
    led = ledger_of(state)
    assert led.balance("user:ann").balance == 200 and len(led.transactions(limit=None)) == 1
    led.db.close()


def test_import_refuses_a_file_without_a_usable_header(tmp_path, state, capsys):
    f = tmp_path / "users.csv"
    f.write_text("name,colour\nann,red\n")
    code, _, err = run(capsys, state, "users", "import", str(f))
    assert code == 1 and "line 1" in err and "username" in err


def test_users_set_show_and_balances(state, capsys, monkeypatch):
    assert run(capsys, state, "users", "set", "zed", "--create", "--full-name", "Zed", "--groups", "b,a",
               "--card", "77", "--card", "78", "--restricted", "--overdraft", "1.00", "--pin", "9876")[0] == 0
    code, out, _ = run(capsys, state, "users", "show", "zed")
    assert code == 0 and "Zed" in out and "77, 78" in out and "pin          set" in out
    assert "overdraft 1.00" in out
    view = json.loads(run(capsys, state, "users", "show", "zed", "--json")[1])
    assert view["groups"] == ["a", "b"] and view["has_pin"] and "pin_hash" not in view
    assert run(capsys, state, "users", "set", "nobody", "--email", "x@y")[0] == 1

    code, out, _ = run(capsys, state, "balance", "topup", "zed", "2.50", "-m", "cash")
    assert code == 0 and "balance now 2.50" in out
    code, out, _ = run(capsys, state, "balance", "adjust", "zed", "-0.75", "-m", "wrong copy")
    assert code == 0 and "balance now 1.75" in out
    assert run(capsys, state, "balance", "topup", "zed", "-1", "-m", "x")[0] == 1  # top-ups are positive
    assert run(capsys, state, "balance", "topup", "zed", "1.001", "-m", "x")[0] == 1  # 3 decimals
    assert json.loads(run(capsys, state, "balance", "show", "zed", "--json")[1])["balance"] == 175

    txns = json.loads(run(capsys, state, "transactions", "--account", "zed", "--json")[1])
    assert [(t["kind"], t["amount"], t["comment"]) for t in txns] == \
        [("adjustment", -75, "wrong copy"), ("top-up", 250, "cash")]
    assert json.loads(run(capsys, state, "transactions", "--kind", "top-up", "--json")[1])[0]["amount"] == 250
    assert json.loads(run(capsys, state, "transactions", "--since", "2999-01-01", "--json")[1]) == []
    assert run(capsys, state, "transactions", "--since", "yesterday")[0] == 1


def test_shared_accounts(state, capsys):
    run(capsys, state, "users", "set", "ann", "--create", "--groups", "physics")
    assert run(capsys, state, "accounts", "set", "Physics", "--create", "--code", "P42", "--groups", "physics",
               "--unrestricted")[0] == 0
    rows = json.loads(run(capsys, state, "accounts", "list", "--json")[1])
    assert [(r["name"], r["code"], r["restricted"]) for r in rows] == [("Physics", "P42", False)]
    assert "Physics" in run(capsys, state, "users", "show", "ann")[1]  # may charge it
    code, out, _ = run(capsys, state, "balance", "topup", "shared:Physics", "10", "-m", "budget")
    assert code == 0 and "shared:Physics" in out and "10.00" in out
    assert run(capsys, state, "accounts", "set", "Chem", "--create", "--code", "P42")[0] == 1  # code taken
    assert run(capsys, state, "accounts", "show", "Nope")[0] == 1


def test_cost_preview_charges_nothing(tmp_path, state, capsys):
    conf = tmp_path / "c.toml"
    conf.write_text('[queues.q]\nprinter = "folder:out"\ncost = {gray = 10, color = 50}\n'
                    'filters = {force_duplex = true}\n')
    doc = tmp_path / "three.txt"
    doc.write_text("page one\fpage two\fpage three\n")
    code = cli.main(["cost", str(doc), "--config", str(conf), "--state-dir", str(state), "--copies", "2",
                     "--json"])
    out = json.loads(capsys.readouterr().out)
    assert code == 0
    assert (out["pages"], out["cost"], out["sides"]) == (3, 60, "two-sided-long-edge")
    assert not (state / "db").exists() or ledger_of(state).transactions(limit=None) == []
