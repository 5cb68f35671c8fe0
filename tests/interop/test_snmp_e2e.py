"""SNMP printer monitoring end to end: a node (a `spoolproxy serve` process) polls a real
snmpd serving Printer-MIB values for its printer (an ippeveprinter). The agent's error
state shows as printer-state-reasons on the IPP queue and stops releases there; the
page counter is read around each delivered job and the difference is kept on the job;
an agent that does not answer leaves its printer "unknown" and the others unaffected."""
from __future__ import annotations

import json
import re
import socket

import httpx
import pytest

import peers
from test_ledger_e2e import cli, job_state, mixed_pdf
from test_release_e2e import Mfd, add_device

pytestmark = pytest.mark.interop

JAMMED_NO_TONER = bytes([0b00010100, 0])  # hrPrinterDetectedErrorState: noToner (bit 3), jammed (bit 5)


def snmp_of(agent: peers.Snmpd | None, port: int | None = None) -> dict:
    return {"host": "127.0.0.1", "port": port or agent.port, "interval": 0.3, "timeout": 0.5, "retries": 0,
            "settle": 60}


class Admin:
    def __init__(self, node: peers.Node):
        token = (node.state_dir / "admin-token").read_text().strip()
        self.http = httpx.Client(base_url=f"http://127.0.0.1:{node.web_port}/api/v1/admin", trust_env=False,
                                 timeout=30, headers={"Authorization": f"Bearer {token}"})

    def printer(self, queue: str) -> dict:
        r = self.http.get(f"/printers/{queue}")
        assert r.status_code == 200, r.text
        return r.json()


@pytest.fixture
def silent_udp_port():
    """A bound UDP socket that never answers: an agent that is down."""
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    yield s.getsockname()[1]
    s.close()


@pytest.fixture
def setup(node, ippeveprinter, snmp_agent, silent_udp_port, tmp_path):
    eve = ippeveprinter()
    agent = snmp_agent()
    other = ippeveprinter("other")
    n = node({"desk": {"printer": eve.uri, "snmp": snmp_of(agent), "default": True},
              "desk-secure": {"printer": eve.uri, "mode": "hold", "snmp": snmp_of(agent)},
              "dead": {"printer": other.uri, "snmp": snmp_of(None, silent_udp_port)}})
    users = tmp_path / "users.csv"
    users.write_text("username,restricted,card,pin,initial_credit\nann,no,04A1B2C3,,0\n")
    cli(n, "users", "import", str(users))
    return n, eve, agent, other


def reasons(node: peers.Node, queue: str) -> tuple[list[str], list[str]]:
    attrs = peers.get_attributes(node.uri(queue), "printer-state", "printer-state-reasons")
    return attrs.get("printer-state", []), attrs.get("printer-state-reasons", [])


def test_status_supplies_and_an_error_state_reach_the_queue_and_stop_release(setup, tmp_path):
    node, eve, agent, _ = setup
    admin = Admin(node)
    ok = peers.wait_for(lambda: (p := admin.printer("desk"))["snmp"] and p["snmp"]["state"] == "ok" and p,
                        timeout=30)
    snmp = ok["snmp"]
    assert snmp["description"] == "ACME LaserWriter 9000" and snmp["page_counter"] == 1000, snmp
    assert snmp["reasons"] == [] and ok["state"] == "idle"
    toner = next(s for s in snmp["supplies"] if s["description"] == "Black Toner Cartridge")
    assert (toner["level"], toner["max"], toner["percent"]) == (80, 100, 80)

    mfd = Mfd(node, add_device(node, "mfd-1", "desk-secure"))
    job = peers.lp(f"127.0.0.1:{node.port}", "desk-secure", mixed_pdf(tmp_path), "-U", "ann")
    agent.set(error_bits=JAMMED_NO_TONER)
    def jammed():
        r = reasons(node, "desk-secure")
        return r if "media-jam-error" in r[1] else None
    state, why = peers.wait_for(jammed, timeout=30)
    assert "toner-empty-error" in why and state == ["stopped"], (state, why)
    # the same printer behind the direct queue (each queue polls on its own)
    peers.wait_for(lambda: "media-jam-error" in reasons(node, "desk")[1], timeout=30)
    mfd.login(card="04A1B2C3")
    mfd.wait_job(job)
    (res,) = mfd.release(job)
    assert res["ok"] is False and res["reason"] == "printer-not-ready", res
    assert "media-jam-error" in res["message"], res
    assert eve.files() == []

    agent.set(error_bits="0000")  # cleared at the printer: the release goes through
    peers.wait_for(lambda: reasons(node, "desk-secure")[1] == ["none"], timeout=30)
    (res,) = mfd.release(job)
    assert res["ok"], res
    eve.wait_files(1, timeout=60)


def test_the_printers_page_count_is_recorded_on_the_delivered_job(setup, tmp_path):
    node, eve, agent, _ = setup
    admin = Admin(node)
    peers.wait_for(lambda: (p := admin.printer("desk"))["snmp"] and p["snmp"]["state"] == "ok", timeout=30)
    agent.set(printer_status=4)  # printing (someone else's job, or warming up): the node waits for idle
    job = peers.lp(f"127.0.0.1:{node.port}", "desk", mixed_pdf(tmp_path), "-U", "ann")
    eve.wait_files(1, timeout=60)
    agent.add_pages(3)  # the printer printed our three pages
    agent.set(printer_status=3)  # idle again

    def recorded():
        out = json.loads(cli(node, "jobs", "show", str(job), "--json"))
        return out["extra"].get("printer_pages")
    counted = peers.wait_for(recorded, timeout=60)
    assert (counted["before"], counted["after"], counted["counted"]) == (1000, 1003, 3), counted
    assert counted["settled"] is True and counted["unit"] == "impressions", counted
    assert job_state(node, "desk", job)["job-state"] == 9
    shown = cli(node, "jobs", "show", str(job))
    assert re.search(r"printer counted +3 impressions \(counter 1000 -> 1003\)", shown), shown


def test_an_agent_that_does_not_answer_leaves_its_printer_unknown_and_others_polled(setup, tmp_path):
    node, eve, agent, other = setup
    admin = Admin(node)
    dead = peers.wait_for(lambda: (p := admin.printer("dead"))["snmp"] and p, timeout=30)
    assert dead["snmp"]["state"] == "unknown" and dead["snmp"]["error"], dead
    assert dead["state"] == "idle" and dead["reasons"] == ["none"]  # SNMP alone does not stop it
    # the working agent keeps being polled meanwhile: its counter change shows up
    agent.add_pages(5)
    peers.wait_for(lambda: admin.printer("desk")["snmp"]["page_counter"] == 1005, timeout=30)
    assert admin.printer("dead")["snmp"]["state"] == "unknown"
    # and a job to the printer whose agent is silent still prints (no counter to record)
    job = peers.lp(f"127.0.0.1:{node.port}", "dead", mixed_pdf(tmp_path), "-U", "ann")
    assert job_state(node, "dead", job)["job-state"] == 9
    assert other.wait_files(1, timeout=60)
    assert "printer_pages" not in json.loads(cli(node, "jobs", "show", str(job), "--json"))["extra"]
    metrics = httpx.get(f"http://127.0.0.1:{node.web_port}/metrics", trust_env=False).text
    assert 'spoolproxy_printer_snmp_up{queue="dead"} 0.0' in metrics
    assert 'spoolproxy_printer_snmp_up{queue="desk"} 1.0' in metrics


def test_find_me_load_balancing_passes_over_a_printer_in_error(node, ippeveprinter, snmp_agent, tmp_path):
    a, b = ippeveprinter("a"), ippeveprinter("b")
    agent_a, agent_b = snmp_agent("snmp-a"), snmp_agent("snmp-b")
    n = node({"floor-a": {"printer": a.uri, "snmp": snmp_of(agent_a)},
              "floor-b": {"printer": b.uri, "snmp": snmp_of(agent_b)},
              "anywhere": {"mode": "findme", "printers": ["floor-a", "floor-b"], "load_balance": True}})
    users = tmp_path / "users.csv"
    users.write_text("username,restricted,card,pin,initial_credit\nann,no,04A1B2C3,,0\n")
    cli(n, "users", "import", str(users))
    at_a = Mfd(n, add_device(n, "mfd-a", "floor-a"))
    agent_a.set(error_bits=bytes([0b01000000, 0]))  # noPaper
    peers.wait_for(lambda: "media-empty-error" in reasons(n, "floor-a")[1], timeout=30)

    job = peers.lp(f"127.0.0.1:{n.port}", "anywhere", mixed_pdf(tmp_path), "-U", "ann")
    at_a.login(card="04A1B2C3")
    at_a.wait_job(job)
    (res,) = at_a.release(job)
    assert res["ok"] and res["printer"] == "floor-b", res  # A has no paper: the group's ready printer
    b.wait_files(1, timeout=60)

    agent_a.set(error_bits="0000")  # paper loaded: A is ready again and prints what is released at it
    peers.wait_for(lambda: reasons(n, "floor-a")[1] == ["none"], timeout=30)
    job = peers.lp(f"127.0.0.1:{n.port}", "anywhere", mixed_pdf(tmp_path), "-U", "ann")
    at_a.wait_job(job)
    (res,) = at_a.release(job)
    assert res["ok"] and res["printer"] == "floor-a", res
    a.wait_files(1, timeout=60)
    assert len(b.files()) == 1
