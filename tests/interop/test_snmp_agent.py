"""spoolproxy.snmp against a real agent: Net-SNMP's snmpd (tests/peers.py: Snmpd) serving a
printer's Host Resources and Printer MIB values, which a test changes while it runs (jam,
empty toner, pages printed); and against agents that do not answer or answer garbage,
which must end in state "unknown" without holding up a working printer's poll."""
from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import trio

from spoolproxy.config import SnmpSettings
from spoolproxy.snmp import SnmpPrinter, SnmpStatus, Supply
from spoolproxy.snmp.client import SnmpClient

try:
    import peers
except ImportError:  # tests/ is on sys.path only once tests/conftest.py exists
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    import peers

pytestmark = pytest.mark.interop

# hrPrinterDetectedErrorState: bit 0 is the most significant bit of the first octet
NO_TONER, JAMMED = 3, 5


def error_bits(*numbers: int) -> str:
    value = 0
    for n in numbers:
        value |= 0x8000 >> n
    return f"{value:04x}"


def printer_for(agent: "peers.Snmpd", **settings) -> SnmpPrinter:
    settings.setdefault("port", agent.port)
    settings.setdefault("timeout", 2.0)
    return SnmpPrinter(SnmpSettings(**settings), "127.0.0.1")


@pytest.fixture
def agent(snmp_agent):
    return snmp_agent()


@pytest.mark.parametrize("version", ["2c", "1"])
async def test_poll_reads_the_printer(agent, version):
    printer = printer_for(agent, version=version)
    try:
        status = await printer.poll()
    finally:
        await printer.aclose()
    assert status.state == "ok", status.error
    assert status.error == ""
    assert status.description == "ACME LaserWriter 9000"
    assert (status.device_status, status.printer_status) == (2, 3)   # running, idle
    assert status.printer_state == 3                                   # IPP idle
    assert status.reasons == []
    assert (status.page_counter, status.counter_unit) == (1000, "impressions")
    assert status.supplies == [
        Supply(1, "Black Toner Cartridge", "toner-cartridge", 80, 100, 80, "percent", "supplyThatIsConsumed"),
        Supply(2, "Waste Toner Box", "waste-toner", -3, -2, None, "percent", "receptacleThatIsFilled"),
    ]
    assert status.updated > 0
    assert printer.device_index == 1


async def test_v1_and_v2c_see_the_same_printer(agent):
    polls = {}
    for version in ("1", "2c"):
        printer = printer_for(agent, version=version)
        polls[version] = await printer.poll()
        await printer.aclose()
    for status in polls.values():
        status.updated = 0.0
    assert polls["1"] == polls["2c"]


async def test_a_jam_and_no_toner_stop_the_printer(agent):
    printer = printer_for(agent)
    try:
        assert (await printer.poll()).printer_state == 3
        agent.set(error_bits=error_bits(JAMMED, NO_TONER), device_status=5, printer_status=1)
        jammed = await printer.poll()
        assert jammed.state == "ok"
        assert "media-jam-error" in jammed.reasons and "toner-empty-error" in jammed.reasons
        assert jammed.printer_state == 5
        assert (jammed.device_status, jammed.printer_status) == (5, 1)
        # cleared: low paper is only a warning, and the printer prints again
        agent.set(error_bits=error_bits(0), device_status=3, printer_status=4)
        cleared = await printer.poll()
        assert cleared.reasons == ["media-low-warning"]
        assert cleared.printer_state == 4
    finally:
        await printer.aclose()


@pytest.mark.parametrize("version", ["2c", "1"])
async def test_page_counter_follows_the_printer(agent, version):
    printer = printer_for(agent, version=version)
    try:
        before = await printer.page_counter()
        assert before == 1000
        agent.add_pages(3)
        assert await printer.page_counter() == before + 3
        assert (await printer.poll()).page_counter == before + 3
    finally:
        await printer.aclose()


async def test_the_printer_index_is_found_once(snmp_agent):
    agent = snmp_agent(device_index=3, description="Second Printer", page_counter=77,
                       supplies=[{"description": "Ink", "type": 6, "max": 40, "level": 10}])
    printer = printer_for(agent)
    try:
        status = await printer.poll()
        assert printer.device_index == 3
        assert (status.description, status.page_counter) == ("Second Printer", 77)
        assert [(s.index, s.kind, s.percent) for s in status.supplies] == [(1, "ink-cartridge", 25)]
        assert await printer.page_counter() == 77
    finally:
        await printer.aclose()


@pytest.mark.parametrize("version", ["2c", "1"])
async def test_walks_agree_with_snmpwalk(agent, version):
    """The client's walk of the printer subtrees gives what Net-SNMP's own snmpwalk
    gives, and the only Host Resources device is the printer (snmpd's own hrDeviceTable
    of CPUs and interfaces is left out)."""
    snmpwalk = peers.require("snmpwalk")
    for subtree in ("1.3.6.1.2.1.25.3.2", "1.3.6.1.2.1.25.3.5", "1.3.6.1.2.1.43"):
        out = subprocess.run([snmpwalk, f"-v{version}", "-c", "public", "-On", "-Oq", "-t", "2",
                              f"127.0.0.1:{agent.port}", subtree],
                             capture_output=True, text=True, timeout=30, env={**os.environ, "MIBS": ""})
        assert out.returncode == 0, out.stderr
        theirs = [line.split(" ", 1)[0].lstrip(".") for line in out.stdout.splitlines() if line.strip()]
        async with SnmpClient("127.0.0.1", agent.port, version=version) as client:
            ours = [oid for oid, _ in await client.walk(subtree)]
        assert ours == theirs
        assert ours, subtree
    async with SnmpClient("127.0.0.1", agent.port, version=version) as client:
        devices = await client.walk("1.3.6.1.2.1.25.3.2.1.1")
    assert devices == [("1.3.6.1.2.1.25.3.2.1.1.1", 1)]


# --------------------------------------------------------------------------- agents in trouble


@pytest.fixture
def silent_port():
    """A bound UDP socket that never reads: datagrams to it vanish, no ICMP error."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        yield s.getsockname()[1]


@pytest.fixture
def garbage_port():
    """A UDP "agent" on a thread that answers every datagram with random bytes."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.settimeout(0.2)
    stop = threading.Event()
    answered = []

    def serve() -> None:
        while not stop.is_set():
            try:
                data, peer = sock.recvfrom(65535)
            except socket.timeout:
                continue
            except OSError:
                return
            reply = b"\xff" + os.urandom(len(data))  # never an SNMP message: it must start 0x30
            sock.sendto(reply, peer)
            answered.append(peer)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield sock.getsockname()[1], answered
    stop.set()
    thread.join(5)
    sock.close()


async def test_a_silent_agent_is_unknown_and_does_not_hold_up_another(agent, silent_port):
    timeout, retries = 1.0, 1
    working = printer_for(agent, timeout=timeout, retries=retries)
    silent = SnmpPrinter(SnmpSettings(port=silent_port, timeout=timeout, retries=retries), "127.0.0.1")
    finished: list[str] = []
    results: dict[str, SnmpStatus] = {}

    async def poll(name: str, printer: SnmpPrinter) -> None:
        results[name] = await printer.poll()
        finished.append(name)

    try:
        # generous bound: the silent poll ends after timeout x (retries + 1)
        with trio.fail_after(timeout * (retries + 1) + 20):
            async with trio.open_nursery() as nursery:
                nursery.start_soon(poll, "silent", silent)
                await trio.sleep(0)  # the silent poll is waiting before the working one starts
                nursery.start_soon(poll, "working", working)
    finally:
        await working.aclose()
        await silent.aclose()
    assert finished == ["working", "silent"]
    assert results["working"].state == "ok" and results["working"].page_counter == 1000
    status = results["silent"]
    assert status.state == "unknown"
    assert "no answer" in status.error and f"127.0.0.1:{silent_port}" in status.error
    assert status.printer_state is None and status.reasons == [] and status.supplies == []
    assert status.updated > 0


async def test_a_garbage_agent_is_unknown(garbage_port):
    port, answered = garbage_port
    printer = SnmpPrinter(SnmpSettings(port=port, timeout=0.5, retries=1), "127.0.0.1")
    try:
        status = await printer.poll()
        counter = await printer.page_counter()
    finally:
        await printer.aclose()
    assert answered  # it did answer, with garbage
    assert status.state == "unknown"
    assert "ignored" in status.error and "not an SNMP message" in status.error
    assert counter is None


async def test_a_wrong_community_gets_no_answer(agent):
    printer = printer_for(agent, community="not-the-community", timeout=0.5, retries=0)
    try:
        status = await printer.poll()
        assert await printer.page_counter() is None
    finally:
        await printer.aclose()
    assert status.state == "unknown" and "no answer" in status.error


async def test_nothing_listening_is_unknown():
    port = peers.free_udp_port()  # closed again: the kernel answers with port unreachable
    printer = SnmpPrinter(SnmpSettings(port=port, timeout=0.5, retries=0), "127.0.0.1")
    try:
        status = await printer.poll()
    finally:
        await printer.aclose()
    assert status.state == "unknown"
    assert "refused" in status.error or "no answer" in status.error


async def test_an_agent_without_a_printer_is_unknown(snmp_agent):
    # the agent answers (sysDescr) but has no printer at the index the poller knows, as
    # when the device behind the address was replaced by something else
    agent = snmp_agent(device_index=2)
    printer = printer_for(agent)
    printer.device_index, printer.marker_index = 9, 1
    try:
        status = await printer.poll()
    finally:
        await printer.aclose()
    assert status.state == "unknown"
    assert "no printer status" in status.error
    assert status.description == "spoolproxy test printer agent"  # sysDescr still read


async def test_the_agent_restarting_mid_test(agent):
    printer = printer_for(agent, timeout=0.5, retries=0)
    try:
        assert (await printer.poll()).state == "ok"
        agent.stop()
        assert (await printer.poll()).state == "unknown"
        agent.add_pages(5)
        agent.start()
        again = await printer.poll()
        assert again.state == "ok" and again.page_counter == 1005
    finally:
        await printer.aclose()
