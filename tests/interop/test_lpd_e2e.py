"""LPD end to end with real clients: `rlpr` and CUPS's own `lpd` backend print to the
node's LPD port, the job is counted, charged to the user the control file names and
delivered byte-identical to an ippeveprinter; `rlpq` and `rlprm` read and change the
queue; a node delivers to an LPD printer (another node's LPD server)."""
from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

import peers
from test_ledger_e2e import balance, cli, job_state, mixed_pdf, print_txns

pytestmark = pytest.mark.interop

GRAY, COLOR = 10, 50
PRICE = 1 * COLOR + 2 * GRAY  # mixed_pdf: one colour page, two gray ones


def rlpr(node: peers.Node, queue: str, path: Path, *options: str) -> None:
    # -N: no privileged source port (RFC 1179 asks for one; the proxy does not check it)
    peers.run([peers.require("rlpr"), "-N", "-H", "127.0.0.1", f"--port={node.lpd_port}", "-P", queue,
               *options, str(path)], timeout=60)


def rlpq(node: peers.Node, queue: str, *options: str) -> str:
    return peers.run([peers.require("rlpq"), "-N", "-H", "127.0.0.1", f"--port={node.lpd_port}", "-P", queue,
                      *options], timeout=60).stdout


def rlprm(node: peers.Node, queue: str, *jobs: str, as_user: str = "") -> str:
    """rlprm names the user it runs as (no option says otherwise): ``as_user`` runs it
    as that system user (runuser), else as the test's own user (root in CI)."""
    argv = [peers.require("rlprm"), "-N", "-H", "127.0.0.1", f"--port={node.lpd_port}", "-P", queue, *jobs]
    if as_user:
        argv = [peers.require("runuser"), "-u", as_user, "--", *argv]
    proc = peers.run(argv, timeout=60, check=False)
    return proc.stdout + proc.stderr


def cups_lpd_backend(node: peers.Node, queue: str, user: str, title: str, path: Path) -> None:
    backend = Path("/usr/lib/cups/backend/lpd")
    if not backend.exists():
        peers.unavailable("CUPS's lpd backend (/usr/lib/cups/backend/lpd, package cups-daemon)")
    env = dict(os.environ, DEVICE_URI=f"lpd://127.0.0.1:{node.lpd_port}/{queue}?reserve=none",
               CONTENT_TYPE="application/pdf")
    proc = subprocess.run([str(backend), "42", user, title, "1", "", str(path)], env=env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr


def the_job(node: peers.Node, queue: str, user: str) -> int:
    """The id of ``user``'s one job on ``queue``, seen through IPP Get-Jobs."""
    def find():
        jobs = [j for j in peers.get_jobs(node.uri(queue), "all") if j.get("job-originating-user-name") == user]
        return jobs[0]["job-id"] if len(jobs) == 1 else None
    return peers.wait_for(find, timeout=30)


@pytest.fixture
def setup(node, ippeveprinter, tmp_path):
    eve = ippeveprinter()
    cost = {"gray": GRAY, "color": COLOR}
    n = node({"color": {"printer": eve.uri, "cost": cost, "default": True},
              "secure": {"printer": eve.uri, "cost": cost, "mode": "hold"}},
             settings={"ledger": {"unknown_users": "deny"}, "lpd": {"operators": ["root"]}})
    users = tmp_path / "users.csv"
    users.write_text("username,full_name,restricted,initial_credit\n"
                     "stud,A Student,yes,5.00\nprof,A Professor,yes,5.00\nnobody,A Guest,yes,5.00\n")
    assert "3 created" in cli(n, "users", "import", str(users))
    return n, eve


@pytest.mark.parametrize("order", ["control-first", "data-first"])
def test_rlpr_prints_byte_identical_and_charges_the_control_file_user(setup, tmp_path, order):
    node, eve = setup
    pdf = mixed_pdf(tmp_path)
    rlpr(node, "color", pdf, "-U", "stud", "-J", "thesis", *(["--send-data-first"] if order == "data-first" else []))
    job = the_job(node, "color", "stud")
    state = job_state(node, "color", job)
    assert state["job-state"] == 9, state
    delivered = peers.wait_for(eve.files, timeout=30)
    assert [p.read_bytes() for p in delivered] == [pdf.read_bytes()]
    assert [(t["kind"], t["amount"], t["account"]) for t in print_txns(node, job)] == \
        [("print", -PRICE, "user:stud")]
    assert balance(node, "stud") == 500 - PRICE
    assert balance(node, "prof") == 500


def test_cups_lpd_backend_prints_byte_identical_and_charges_its_user(setup, tmp_path):
    node, eve = setup
    pdf = mixed_pdf(tmp_path)
    cups_lpd_backend(node, "color", "prof", "lecture notes", pdf)
    job = the_job(node, "color", "prof")
    assert job_state(node, "color", job)["job-state"] == 9
    delivered = peers.wait_for(eve.files, timeout=30)
    assert [p.read_bytes() for p in delivered] == [pdf.read_bytes()]
    assert [t["amount"] for t in print_txns(node, job)] == [-PRICE]
    assert balance(node, "prof") == 500 - PRICE


def test_rlpq_shows_the_queue_and_rlprm_removes_only_what_its_user_may(setup, tmp_path):
    node, eve = setup
    pdf = mixed_pdf(tmp_path)
    rlpr(node, "secure", pdf, "-U", "stud", "-J", "held-one")
    rlpr(node, "secure", pdf, "-U", "nobody", "-J", "held-two")
    stud, guest = the_job(node, "secure", "stud"), the_job(node, "secure", "nobody")
    listed = rlpq(node, "secure")
    assert "stud" in listed and "nobody" in listed and str(stud) in listed, listed
    long = rlpq(node, "secure", "-l")
    assert "stud:" in long and f"job {stud}" in long, long

    def states() -> dict[int, str]:
        return {int(j["job-id"]): peers.job_state_name(j["job-state"]) for j in peers.get_jobs(node.uri("secure"))}

    assert "permission denied" in rlprm(node, "secure", str(stud), as_user="nobody")  # not nobody's job
    assert states() == {stud: "pending-held", guest: "pending-held"}
    rlprm(node, "secure", str(guest), as_user="nobody")  # its own
    assert states() == {stud: "pending-held", guest: "canceled"}
    rlprm(node, "secure", "stud")  # root is one of lpd.operators: removes by user name
    assert states() == {stud: "canceled", guest: "canceled"}
    assert "no entries" in rlpq(node, "secure")
    assert eve.files() == []  # held jobs never reached the printer
    assert balance(node, "stud") == 500


def test_a_node_delivers_to_an_lpd_printer(node, tmp_path):
    """Node A's queue prints to lpd://B/in; B (the proxy's own LPD server) keeps what it
    gets in a folder: byte-identical, owned by the same user."""
    out = tmp_path / "b-out"
    b = node({"in": {"printer": f"folder:{out}", "default": True}}, name="b")
    a = node({"fwd": {"printer": f"lpd://127.0.0.1:{b.lpd_port}/in", "default": True}}, name="a")
    pdf = peers.make_pdf(tmp_path / "doc.pdf", pages=2)
    job = peers.lp(f"127.0.0.1:{a.port}", "fwd", pdf, "-U", "lpduser", "-t", "forwarded")
    assert job_state(a, "fwd", job)["job-state"] == 9
    files = peers.wait_for(lambda: [p for p in out.glob("*") if not p.name.startswith(".")], timeout=30)
    assert [p.read_bytes() for p in files] == [pdf.read_bytes()]
    [received] = [j for j in peers.get_jobs(b.uri("in"), "all")]
    assert received["job-originating-user-name"] == "lpduser"
