"""Shared fixtures for the tests that use real peers (see tests/peers.py).

Factories, so a test can start as many peers as it needs, each torn down afterwards:

* ``ippeveprinter(name="eve", start=True, fast=True, duplex=False, **kw)`` -> peers.IppEvePrinter
* ``node(queues, name="node", start=True, **kw)`` -> peers.Node (``python -m spoolproxy serve``)
* ``cupsd(name="cupsd", start=True)`` -> peers.Cupsd (private cupsd on its own port)
* ``appsocket_sink(keep=True, start=True)`` -> peers.AppSocketSink
* ``snmp_agent(name="snmpd", start=True, **printer_state)`` -> peers.Snmpd (a printer's SNMP agent)

When a test fails, the end of the log of every peer it started is added to its report.
"""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, Iterator

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

import peers  # noqa: E402


def pytest_configure(config: pytest.Config) -> None:
    # pyproject.toml registers it too; this keeps the marker known when the tests are
    # run from a checkout without it (pytest does not mind the duplicate).
    config.addinivalue_line("markers", "interop: talks to real peers (CUPS, ippeveprinter, Ghostscript, ...)")


register_peer = peers.register_peer


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> Iterator[None]:
    outcome = yield
    report = outcome.get_result()
    if report.failed and report.when in ("setup", "call"):
        for peer in getattr(item, "_spoolproxy_peers", []):
            if isinstance(peer, peers.Peer):
                report.sections.append((f"{peer.name} log", peer.log_tail(150)))


@pytest.fixture(scope="session")
def dnssd() -> None:
    """dbus + avahi-daemon (started once if they do not run yet)."""
    peers.ensure_dnssd()


@pytest.fixture
def ippeveprinter(request: pytest.FixtureRequest, tmp_path: Path):
    started: list[peers.IppEvePrinter] = []

    def make(name: str = "eve", *, start: bool = True, fast: bool = True, duplex: bool = False,
             **kw: Any) -> peers.IppEvePrinter:
        for tool in ("ippeveprinter", "ipptool", "avahi-daemon", "dbus-daemon"):
            peers.require(tool)
        printer = peers.IppEvePrinter(tmp_path / name, name=name, fast=fast, duplex=duplex, **kw)
        started.append(printer)
        register_peer(request, printer)
        if start:
            printer.start()
        return printer

    yield make
    for printer in started:
        printer.stop()


@pytest.fixture
def node(request: pytest.FixtureRequest, tmp_path: Path):
    started: list[peers.Node] = []

    def make(queues: dict[str, dict[str, Any]], name: str = "node", *, start: bool = True,
             **kw: Any) -> peers.Node:
        n = peers.Node(tmp_path / name, queues, name=name, **kw)
        started.append(n)
        register_peer(request, n)
        if start:
            n.start()
        return n

    yield make
    for n in started:
        n.stop()


@pytest.fixture
def cupsd(request: pytest.FixtureRequest):
    started: list[peers.Cupsd] = []

    def make(name: str = "cupsd", *, start: bool = True) -> peers.Cupsd:
        for tool in ("cupsd", "lpadmin", "lp", "lpstat"):
            peers.require(tool)
        c = peers.Cupsd(name=name)
        started.append(c)
        register_peer(request, c)
        if start:
            c.start()
        return c

    yield make
    for c in started:
        c.cleanup()


@pytest.fixture
def appsocket_sink():
    sinks: list[peers.AppSocketSink] = []

    def make(*, keep: bool = True, start: bool = True, port: int | None = None) -> peers.AppSocketSink:
        s = peers.AppSocketSink(port=port, keep=keep)
        sinks.append(s)
        if start:
            s.up()
        return s

    yield make
    for s in sinks:
        s.down()


@pytest.fixture
def snmp_agent(request: pytest.FixtureRequest, tmp_path: Path):
    started: list[peers.Snmpd] = []

    def make(name: str = "snmpd", *, start: bool = True, **kw: Any) -> peers.Snmpd:
        peers.require("snmpd")
        agent = peers.Snmpd(tmp_path / name, name=name, **kw)
        started.append(agent)
        register_peer(request, agent)
        if start:
            agent.start()
        return agent

    yield make
    for agent in started:
        agent.stop()


@pytest.fixture(scope="session")
def ipptool_docs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The PWG .test files with every document they print (peers.make_ipptool_docs)."""
    peers.require("gs")
    peers.require("ipptool")
    return peers.make_ipptool_docs(tmp_path_factory.mktemp("ipptool-docs"))


@pytest.fixture(scope="session")
def pdl_corpus(tmp_path_factory: pytest.TempPathFactory):
    """The document engine's acceptance corpus (tests/pdlcorpus.py): (directory, entries).

    Built with Ghostscript and qpdf once, into a cache keyed by their versions and
    pdlcorpus.CORPUS_VERSION, so a second local run reuses it at once
    (SPOOLPROXY_CORPUS_DIR chooses the directory); with CI set it is built once per run,
    in this session's temporary directory."""
    import os

    import pdlcorpus

    for tool in ("gs", "qpdf"):
        peers.require(tool)
    directory = None
    if os.environ.get("CI", "").lower() not in ("", "0", "false") and not os.environ.get("SPOOLPROXY_CORPUS_DIR"):
        directory = tmp_path_factory.mktemp("pdl-corpus") / "corpus"
    return pdlcorpus.build(directory)
