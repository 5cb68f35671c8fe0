"""The sync commands on state directories: sites and their keys on a primary, a site's
journal exported by hand and imported on the primary (each entry once), and the
ledger commands a site refuses."""
from __future__ import annotations

import json
import re
from pathlib import Path

from spoolproxy import cli
from spoolproxy.db import Database
from spoolproxy.ledger import Ledger
from spoolproxy.ledger.store import update_user_fn
from spoolproxy.sync import Sites
from spoolproxy.sync import journal as J
from spoolproxy.sync.primary import Primary
from spoolproxy.config import OfflinePolicy


def write_config(tmp: Path, name: str, role: str, **sync) -> Path:
    path = tmp / f"{name}.toml"
    lines = [f'[node]\nname = "{name}"\nrole = "{role}"\nstate_dir = "{tmp / name}"\nfsync = false\n']
    if sync:
        lines.append("[sync]\n" + "".join(f'{k} = "{v}"\n' for k, v in sync.items()))
    path.write_text("\n".join(lines))
    return path


def run(capsys, config: Path, *args: str) -> tuple[int, str, str]:
    code = cli.main([*args, "--config", str(config)])
    out, err = capsys.readouterr()
    return code, out, err


def test_sites_add_list_new_key_remove_on_a_primary_only(tmp_path, capsys):
    primary = write_config(tmp_path, "hq", "primary")
    code, out, err = run(capsys, primary, "sites", "add", "library")
    assert code == 0, err
    key = re.search(r"^(sps_\S+)$", out, re.M).group(1)
    assert run(capsys, primary, "sites", "add", "library")[0] == 1
    code, out, _ = run(capsys, primary, "sites", "list", "--json")
    assert [s["name"] for s in json.loads(out)] == ["library"] and "key" not in json.loads(out)[0]
    code, out, _ = run(capsys, primary, "sites", "new-key", "library")
    new = re.search(r"^(sps_\S+)$", out, re.M).group(1)
    with Database(tmp_path / "hq" / "db", readonly=True) as db:
        assert Sites(db).by_key(key) is None and Sites(db).by_key(new) == "library"
    assert run(capsys, primary, "sites", "remove", "library")[0] == 0
    assert run(capsys, primary, "sites", "remove", "library")[0] == 1
    standalone = write_config(tmp_path, "solo", "standalone")
    code, _, err = run(capsys, standalone, "sites", "add", "x")
    assert code == 1 and "primary" in err


def test_a_site_refuses_ledger_changes(tmp_path, capsys):
    site = write_config(tmp_path, "lib", "site", primary="http://hq:8632", key="sps_x")
    run(capsys, site, "offline", "status")  # (no state yet: an error, and no state made)
    code, _, err = run(capsys, site, "balance", "topup", "ann", "1.00", "-m", "cash")
    assert code == 1 and "primary" in err
    code, _, err = run(capsys, site, "offline", "export", str(tmp_path / "j.bin"))
    assert code == 1


def test_export_on_the_site_import_on_the_primary_each_entry_once(tmp_path, capsys):
    primary = write_config(tmp_path, "hq", "primary")
    run(capsys, primary, "sites", "add", "lib")
    with Database(tmp_path / "hq" / "db", sync=False, changelog=J.REPLICATED) as pdb:
        pdb.transact_now(update_user_fn("ann", {"restricted": True}, create=True, now=1.0))
        snap = Primary(pdb, Ledger(pdb), OfflinePolicy()).snapshot("lib")
    site = write_config(tmp_path, "lib", "site", primary="http://hq:8632", key="sps_x")
    (tmp_path / "lib").mkdir()
    with Database(tmp_path / "lib" / "db", sync=False) as sdb:
        sdb.transact_now(J.apply_snapshot_fn("lib", snap))
        for n in range(3):
            sdb.transact_now(J.apply_and_journal_fn(f"print/job{n}/1", "user:ann", -70, "print", site="lib",
                                                    offline=True, when=2.0 + n, by="ann"))
    export = tmp_path / "journal.spj"
    code, out, err = run(capsys, site, "offline", "export", str(export))
    assert code == 0 and "exported 3 journal entries of site lib" in out, err
    code, out, err = run(capsys, primary, "offline", "import", str(export))
    assert code == 0 and "3 entries: 3 applied, 0 applied before" in out, out + err
    assert "3 took a balance below its limit" in out  # ann is restricted and had no credit
    code, out, err = run(capsys, primary, "offline", "import", str(export))  # again: nothing changes
    assert code == 0 and "3 entries: 0 applied, 3 applied before" in out, out
    with Database(tmp_path / "hq" / "db", readonly=True) as pdb:
        txns = Ledger(pdb).transactions(user="ann", limit=None)
        assert sorted(t.id for t in txns) == [f"print/job{n}/1" for n in range(3)]
        assert all(t.offline and t.site == "lib" for t in txns)
        assert Ledger(pdb).balance("user:ann").balance == -210
    bad = tmp_path / "bad.spj"
    bad.write_bytes(b"\x93\x01\x02")
    code, _, err = run(capsys, primary, "offline", "import", str(bad))
    assert code == 1 and "bad.spj: not a journal export" in err
    code, out, _ = run(capsys, primary, "offline", "unapplied", "--fail-empty")
    assert code == 1 and "every entry" in out


def test_check_config_tells_a_site_its_primary_and_a_primary_its_policy(tmp_path, capsys):
    site = write_config(tmp_path, "lib", "site", primary="https://hq.example.com:8632", key="sps_x")
    assert cli.main(["check-config", str(site)]) == 0
    assert "follows https://hq.example.com:8632" in capsys.readouterr().out
    primary = write_config(tmp_path, "hq", "primary")
    primary.write_text(primary.read_text() + '\n[offline]\ncredit = "none"\n')
    assert cli.main(["check-config", str(primary)]) == 0
    assert "credit none" in capsys.readouterr().out
