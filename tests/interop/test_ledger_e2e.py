"""Charging end to end with real clients: `lp` prints to the node, the node counts
the pages, prices them with the queue's cost model, checks the credit and charges
the ledger, and ippeveprinter receives what was paid for. Users and balances are
set up with the `spoolproxy` command against the running node, as an
administrator would."""
from __future__ import annotations

import json
import plistlib
import subprocess
import sys
from pathlib import Path

import pytest

import peers
import pdlcorpus

pytestmark = pytest.mark.interop

GRAY, COLOR = 10, 50  # minor units per page

# one colour page, then two gray ones
MIXED_PS = """%!PS
<< /PageSize [595 842] >> setpagedevice
1 0 0 setrgbcolor 100 100 300 300 rectfill showpage
0 setgray 100 100 300 300 rectfill showpage
0.5 setgray 100 100 300 300 rectfill showpage
"""

JOB_STATE = """{
 NAME "Get-Job-Attributes"
 OPERATION Get-Job-Attributes
 GROUP operation-attributes-tag
 ATTR charset attributes-charset utf-8
 ATTR naturalLanguage attributes-natural-language en
 ATTR uri printer-uri $uri
 ATTR integer job-id %(job)d
 ATTR name requesting-user-name admin
 ATTR keyword requested-attributes job-state,job-state-reasons,job-state-message
 STATUS successful-ok
}
"""


def mixed_pdf(tmp_path: Path) -> Path:
    gs = peers.require("gs")
    src = tmp_path / "mixed.ps"
    src.write_text(MIXED_PS)
    out = tmp_path / "mixed.pdf"
    peers.run([gs, "-q", "-dSAFER", "-dBATCH", "-dNOPAUSE", "-sDEVICE=pdfwrite", f"-sOutputFile={out}",
               str(src)])
    assert pdlcorpus.inkcov(out) == [True, False, False]  # what the test relies on
    return out


def cli(node: peers.Node, *args: str, input: str | None = None, check: bool = True) -> str:
    proc = subprocess.run([sys.executable, "-m", "spoolproxy", *args, "--config", str(node.config_path),
                           "--state-dir", str(node.state_dir)], capture_output=True, text=True,
                          input=input, env=node.env(), timeout=60)
    if check:
        assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout


def job_state(node: peers.Node, queue: str, job: int) -> dict:
    """The job's state, reasons and message once it is final (Get-Job-Attributes)."""
    test = _test_file(node, job)

    def final():
        proc = peers.run([peers.require("ipptool"), "-X", "-T", "10", node.uri(queue), str(test)],
                         timeout=30, check=False)
        tests = plistlib.loads(proc.stdout.encode()).get("Tests", [])
        attrs = tests[0]["ResponseAttributes"][1] if tests and tests[0].get("Successful") else {}
        return attrs if attrs.get("job-state") in (7, 8, 9) else None
    return peers.wait_for(final, timeout=90, interval=0.5)


def _test_file(node: peers.Node, job: int) -> Path:
    path = node.workdir / f"state-{job}.test"
    path.write_text(JOB_STATE % {"job": job})
    return path


def balance(node: peers.Node, account: str) -> int:
    return json.loads(cli(node, "balance", "show", account, "--json"))["balance"]


def print_txns(node: peers.Node, job: int) -> list[dict]:
    return json.loads(cli(node, "transactions", "--job", str(job), "--limit", "0", "--json"))


@pytest.fixture
def setup(node, ippeveprinter, tmp_path):
    eve = ippeveprinter()
    cost = {"gray": GRAY, "color": COLOR}
    n = node({
        "color": {"printer": eve.uri, "cost": cost},
        "grayonly": {"printer": eve.uri, "cost": cost, "filters": {"force_grayscale": True}},
        "dedup": {"printer": eve.uri, "cost": cost, "filters": {"duplicate_window": 120.0}},
    }, settings={"ledger": {"unknown_users": "deny"}})
    users = tmp_path / "users.csv"
    users.write_text("username,full_name,restricted,initial_credit\n"
                     "stud,A Student,yes,0.30\n")
    assert "1 created" in cli(n, "users", "import", str(users))
    return n, eve


def test_no_credit_then_topup_prints_and_charges_exactly(setup, tmp_path):
    node, eve = setup
    pdf = mixed_pdf(tmp_path)
    server = f"127.0.0.1:{node.port}"

    job = peers.lp(server, "color", pdf, "-U", "stud")
    state = job_state(node, "color", job)
    assert state["job-state"] == 8, state  # aborted
    assert "account-limit-reached" in str(state["job-state-reasons"])
    message = state["job-state-message"]
    assert "Not enough credit" in message and "0.70" in message and "0.30 available" in message, message
    assert eve.files() == []
    assert balance(node, "stud") == 30

    cli(node, "balance", "topup", "stud", "1.00", "--comment", "cash at the desk")
    job = peers.lp(server, "color", pdf, "-U", "stud")
    state = job_state(node, "color", job)
    assert state["job-state"] == 9, state  # completed
    price = 1 * COLOR + 2 * GRAY
    assert balance(node, "stud") == 130 - price
    txns = print_txns(node, job)
    assert [(t["kind"], t["amount"], t["account"]) for t in txns] == [("print", -price, "user:stud")]
    delivered = peers.wait_for(eve.files, timeout=30)
    assert [p.read_bytes() for p in delivered] == [pdf.read_bytes()]


def test_force_grayscale_delivers_no_colour_and_charges_gray(setup, tmp_path):
    node, eve = setup
    pdf = mixed_pdf(tmp_path)
    cli(node, "balance", "topup", "stud", "5.00", "--comment", "term credit")
    job = peers.lp(f"127.0.0.1:{node.port}", "grayonly", pdf, "-U", "stud")
    state = job_state(node, "grayonly", job)
    assert state["job-state"] == 9, state
    delivered = peers.wait_for(eve.files, timeout=30)
    assert len(delivered) == 1
    assert pdlcorpus.inkcov(delivered[0]) == [False, False, False]
    assert balance(node, "stud") == 530 - 3 * GRAY
    assert [t["amount"] for t in print_txns(node, job)] == [-3 * GRAY]


def test_duplicate_within_window_is_deleted_once(setup, tmp_path):
    node, eve = setup
    pdf = mixed_pdf(tmp_path)
    cli(node, "balance", "topup", "stud", "5.00", "--comment", "term credit")
    server = f"127.0.0.1:{node.port}"
    first = peers.lp(server, "dedup", pdf, "-U", "stud")
    second = peers.lp(server, "dedup", pdf, "-U", "stud")
    states = {j: job_state(node, "dedup", j) for j in (first, second)}
    assert sorted(s["job-state"] for s in states.values()) == [8, 9], states
    deleted = next(s for s in states.values() if s["job-state"] == 8)
    assert "duplicate" in deleted["job-state-message"]
    assert len(peers.wait_for(eve.files, timeout=30)) == 1
    price = 1 * COLOR + 2 * GRAY
    assert balance(node, "stud") == 530 - price  # charged once
