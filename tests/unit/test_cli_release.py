"""The release side's commands (spoolproxy devices/audit) on a state directory."""
from __future__ import annotations

import json
import re
from pathlib import Path

from spoolproxy import cli
from spoolproxy.db import Database
from spoolproxy.release import Audit, Devices


def run(capsys, state: Path, *args: str) -> tuple[int, str, str]:
    code = cli.main([*args, "--state-dir", str(state)])
    out, err = capsys.readouterr()
    return code, out, err


def test_devices_add_list_new_key_remove(tmp_path, capsys):
    state = tmp_path / "state"
    code, out, err = run(capsys, state, "devices", "add", "kiosk", "--printer", "demo", "--info", "library")
    assert code == 0, err
    key = re.search(r"^(spd_\S+)$", out, re.M).group(1)
    code, out, err = run(capsys, state, "devices", "add", "kiosk", "--printer", "demo")
    assert code == 1 and "already a device 'kiosk'" in err
    code, out, err = run(capsys, state, "devices", "add", "k2", "--printer", "nope")
    assert code == 1 and "'nope' is not a queue with a printer" in err and "demo" in err
    code, out, _ = run(capsys, state, "devices", "list", "--json")
    assert [(d["name"], d["printer"], d["info"]) for d in json.loads(out)] == [("kiosk", "demo", "library")]
    with Database(state / "db", readonly=True) as db:
        assert Devices(db).by_key(key).name == "kiosk"
    code, out, _ = run(capsys, state, "devices", "new-key", "kiosk")
    new = re.search(r"^(spd_\S+)$", out, re.M).group(1)
    with Database(state / "db", readonly=True) as db:
        assert Devices(db).by_key(key) is None and Devices(db).by_key(new).name == "kiosk"
        assert key not in str(list(db.scan("devices")))  # only a hash of the key is kept
    assert run(capsys, state, "devices", "remove", "kiosk")[0] == 0
    code, _, err = run(capsys, state, "devices", "remove", "kiosk")
    assert code == 1 and "no device" in err
    with Database(state / "db", readonly=True) as db:
        assert Devices(db).by_key(new) is None


def test_audit_lists_entries_oldest_first_and_filters(tmp_path, capsys):
    state = tmp_path / "state"
    run(capsys, state, "devices", "list")  # makes the state
    with Database(state / "db") as db:
        audit = Audit(db)
        for event, user in (("login", "ann"), ("release", "ann"), ("login-failed", "bob")):
            db.transact_now(audit.entry(event, user=user, device="d1", job=7 if event == "release" else 0))
    code, out, _ = run(capsys, state, "audit")
    assert code == 0
    assert [line.split()[2] for line in out.splitlines()] == ["login", "release", "login-failed"]
    code, out, _ = run(capsys, state, "audit", "--user", "ann", "--json")
    assert [e["event"] for e in json.loads(out)] == ["release", "login"]  # newest first
    assert run(capsys, state, "audit", "--event", "cancel", "--fail-empty")[0] == 1
