"""Delivery to LPD printers (spoolproxy.upstream.lpd, spoolproxy.lpd.client) against an
in-test LPD daemon built on spoolproxy.lpd.protocol.ServerConnection, which commits a
job when it acknowledges the control file (as BSD lpd and LPRng do), with knobs for
refusals, broken connections and the stray LF some daemons send after an
acknowledgement. Plus the lpd:// printer URIs in the configuration."""
from __future__ import annotations

import os
import socket
from dataclasses import dataclass, field

import pytest
import trio

from spoolproxy import config
from spoolproxy.ipp.model import JobState, PrinterState, Tag
from spoolproxy.ipp.types import Attribute
from spoolproxy.lpd import client
from spoolproxy.lpd import protocol as p
from spoolproxy.upstream import JobRejected, PrinterOffline, Upstream
from spoolproxy.upstream.base import DeliveryContext
from spoolproxy.upstream.lpd import LpdBackend, batches, job_copies, local_host_name

from test_upstream import (add_job, digests, final, free_port, make_settings, running, state,  # noqa: F401
                           store, wait_until)


@dataclass
class Received:
    queue: str
    control_name: str
    control: p.ControlFile
    data: dict[str, bytes]

    def documents(self) -> list[bytes]:
        """The data files in the order the control file prints them."""
        return [self.data[f.name] for f in self.control.files]


@dataclass
class LpdDaemon:
    """An LPD receiver: ``jobs`` are the committed ones."""

    queues: tuple[str, ...] = ("lp",)
    jobs: list[Received] = field(default_factory=list)
    connections: int = 0
    discarded: int = 0  # connections that ended before their job was committed
    refuse_data: int = 0  # NAK the end of this many data files (the spool is full)
    break_after: int | None = None  # reset the connection that reaches this many bytes of data files
    lf_after_ack: bool = False  # a defective daemon: LF after every acknowledgement
    listing: bytes = b"lp is ready\nno entries\n"
    port: int = 0

    def uri(self, queue: str = "lp") -> str:
        return f"lpd://127.0.0.1:{self.port}/{queue}"

    async def start(self, nursery, port: int = 0) -> "LpdDaemon":
        listeners = await trio.open_tcp_listeners(port, host="127.0.0.1")
        self.port = listeners[0].socket.getsockname()[1]
        nursery.start_soon(trio.serve_listeners, self._conn, listeners)
        return self

    async def _conn(self, stream: trio.SocketStream) -> None:
        self.connections += 1
        conn = p.ServerConnection()
        ok = p.ACK + (b"\n" if self.lf_after_ack else b"")

        async def event():
            while True:
                ev = conn.next_event()
                if ev is not p.NEED_DATA:
                    return ev
                conn.receive_data(await stream.receive_some(65536))

        committed = False
        seen = 0  # bytes of data files on this connection
        try:
            cmd = await event()
            if not isinstance(cmd, p.DaemonCommand):
                return
            if cmd.command in (p.Command.QUEUE_SHORT, p.Command.QUEUE_LONG):
                await stream.send_all(self.listing + b"long\n" * (cmd.command == p.Command.QUEUE_LONG))
                return
            if cmd.queue not in self.queues:
                await stream.send_all(p.NAK + f"{cmd.queue}: unknown printer\n".encode())
                return
            await stream.send_all(ok)
            data: dict[str, bytes] = {}
            while True:
                ev = await event()
                if isinstance(ev, p.ConnectionClosed):
                    return
                if isinstance(ev, p.AbortJob):
                    data.clear()
                    await stream.send_all(ok)
                    continue
                assert isinstance(ev, p.FileStart)
                await stream.send_all(ok)
                body = bytearray()
                while not isinstance(chunk := await event(), p.FileEnd):
                    body += chunk.data
                    seen += len(chunk.data) if ev.kind == "data" else 0
                    if self.break_after is not None and seen >= self.break_after:
                        self.break_after = None
                        stream.socket.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                                 b"\x01\x00\x00\x00\x00\x00\x00\x00")
                        return  # RST: the receiver throws the partial job away
                if ev.kind == "data":
                    if self.refuse_data:
                        self.refuse_data -= 1
                        await stream.send_all(b"\x02")
                        return
                    data[ev.name] = bytes(body)
                    await stream.send_all(ok)
                    continue
                control = p.parse_control(bytes(body))
                assert all(f.name in data for f in control.files), "control file before its data"
                self.jobs.append(Received(cmd.queue, ev.name, control, data))
                committed = True
                await stream.send_all(ok)
                data = {}
        except (p.LpdProtocolError, trio.BrokenResourceError, trio.ClosedResourceError, OSError):
            return  # like a real daemon: the partial job is thrown away
        finally:
            if not committed:
                self.discarded += 1
            await trio.aclose_forcefully(stream)


def copies_attr(n: int) -> list[Attribute]:
    return [Attribute("copies", Tag.INTEGER, [n])]


# --------------------------------------------------------------------------- pure parts

def test_local_host_name():
    assert local_host_name("print-01.example.org") == "print-01.example.org"
    assert local_host_name("bad host_name/é") == "badhostname"
    assert local_host_name("x" * 40) == "x" * 31
    assert local_host_name("") == local_host_name("__") == "spoolproxy"
    assert 0 < len(local_host_name()) <= 31


async def test_job_copies(store):
    assert job_copies(await add_job(store, "q", [(b"x", "application/pdf")])) == 1
    assert job_copies(await add_job(store, "q", [(b"x", "application/pdf")], attrs=copies_attr(4))) == 4
    assert job_copies(await add_job(store, "q", [(b"x", "application/pdf")], attrs=copies_attr(0))) == 1


def test_batches_of_at_most_52_files():
    from spoolproxy.spool.job import Document
    docs = [Document(i, f"f{i}", "application/pdf", 0 if i in (3, 60) else 10) for i in range(1, 110)]
    out = batches(docs)
    assert [sum(1 for d in b if d.size) for b in out] == [52, 52, 3]
    assert [d for b in out for d in b] == docs
    assert batches([]) == []


def test_backend_needs_a_queue(tmp_path):
    qs = make_settings(tmp_path, {"q": "lpd://h/lp"}).queues["q"]
    b = LpdBackend("lpd://printer.example:5515/floor1", qs, local_host="node1")
    assert (b.host, b.port, b.queue, b.local_host) == ("printer.example", 5515, "floor1", "node1")
    assert LpdBackend("lpd://printer.example/lp", qs).port == 515
    for bad in ("lpd://printer.example", "lpd://printer.example/", "lpd://h/two%20words"):
        with pytest.raises(ValueError):
            LpdBackend(bad, qs)


# --------------------------------------------------------------------------- delivery

async def test_two_document_job_delivered_byte_identical(nursery, store, state):
    daemon = await LpdDaemon().start(nursery)
    big = os.urandom(1_500_000)
    job = await add_job(store, "q", [(big, "application/pdf"), (b"%!PS second", "application/postscript")],
                        user="alice", name="Quarterly report")
    up = Upstream(make_settings(state, {"q": daemon.uri()}), store)
    async with running(up):
        await wait_until(lambda: final(job))
    assert job.state == JobState.COMPLETED, job.state_message
    (got,) = daemon.jobs
    assert digests(got.documents()) == digests([big, b"%!PS second"])
    host = local_host_name()
    n = job.id % 1000
    assert got.queue == "lp" and got.control_name == f"cfA{n:03d}{host}"
    cf = got.control
    assert (cf.user, cf.job_name, cf.host) == ("alice", "Quarterly report", host)
    assert [(f.letter, f.name, f.copies, f.title) for f in cf.files] == [
        ("l", f"dfA{n:03d}{host}", 1, "doc1"), ("l", f"dfB{n:03d}{host}", 1, "doc2")]
    assert cf.unlink == tuple(f.name for f in cf.files)
    assert daemon.connections == 1 and up.status("q").reachable is True


async def test_copies_are_repeated_print_lines(nursery, store, state):
    daemon = await LpdDaemon().start(nursery)
    job = await add_job(store, "q", [(b"one", "application/pdf"), (b"two", "application/pdf")],
                        attrs=copies_attr(3))
    up = Upstream(make_settings(state, {"q": daemon.uri()}), store)
    async with running(up):
        await wait_until(lambda: final(job))
    (got,) = daemon.jobs
    assert [f.copies for f in got.control.files] == [3, 3]
    assert got.documents() == [b"one", b"two"]


async def test_refused_queue_aborts_the_job_with_the_reason(nursery, store, state):
    daemon = await LpdDaemon().start(nursery)
    job = await add_job(store, "q", [(b"x", "application/pdf")])
    up = Upstream(make_settings(state, {"q": daemon.uri("nosuch")}), store)
    async with running(up):
        await wait_until(lambda: final(job))
    assert job.state == JobState.ABORTED
    assert "nosuch" in job.state_message and "unknown printer" in job.state_message
    assert daemon.jobs == [] and daemon.connections == 1  # not retried


async def test_refused_file_is_retried_and_the_job_delivered_once(nursery, store, state):
    daemon = await LpdDaemon(refuse_data=1).start(nursery)
    job = await add_job(store, "q", [(b"first", "application/pdf"), (b"second", "application/pdf")])
    up = Upstream(make_settings(state, {"q": daemon.uri()}), store)
    async with running(up):
        await wait_until(lambda: final(job))
    assert job.state == JobState.COMPLETED
    assert len(daemon.jobs) == 1 and daemon.jobs[0].documents() == [b"first", b"second"]
    assert daemon.connections == 2 and daemon.discarded == 1


async def test_connection_lost_mid_file_resends_the_whole_job_once(nursery, store, state):
    daemon = await LpdDaemon(break_after=100_000).start(nursery)
    first, second = os.urandom(50_000), os.urandom(1_000_000)
    job = await add_job(store, "q", [(first, "application/octet-stream"), (second, "application/octet-stream")])
    up = Upstream(make_settings(state, {"q": daemon.uri()}), store)
    async with running(up):
        await wait_until(lambda: final(job))
    assert job.state == JobState.COMPLETED
    (got,) = daemon.jobs
    assert digests(got.documents()) == digests([first, second])
    assert daemon.discarded == 1


async def test_refused_file_and_lost_connection_are_printer_offline(nursery, store, state):
    daemon = await LpdDaemon(refuse_data=1).start(nursery)
    settings = make_settings(state, {"q": daemon.uri()})
    job = await add_job(store, "q", [(b"x" * 1000, "application/pdf")])
    backend = LpdBackend(daemon.uri(), settings.queues["q"])
    ctx = DeliveryContext("q", settings.queues["q"], store)
    with pytest.raises(PrinterOffline) as e:
        await backend.deliver(job, ctx)
    assert e.value.maybe_received and "refused" in str(e.value)
    daemon.break_after = 10
    with pytest.raises(PrinterOffline) as e:
        await backend.deliver(job, ctx)
    assert e.value.maybe_received
    outcome = await backend.deliver(job, ctx)
    assert outcome.state == JobState.COMPLETED and len(daemon.jobs) == 1


async def test_missing_spool_file_aborts_and_the_daemon_keeps_nothing(nursery, store, state):
    daemon = await LpdDaemon().start(nursery)
    settings = make_settings(state, {"q": daemon.uri()})
    job = await add_job(store, "q", [(b"one", "application/pdf"), (b"two", "application/pdf")])
    store.path(job.documents[1]).unlink()
    backend = LpdBackend(daemon.uri(), settings.queues["q"])
    with pytest.raises(JobRejected) as e:
        await backend.deliver(job, DeliveryContext("q", settings.queues["q"], store))
    assert e.value.reasons == ["document-access-error"]
    await wait_until(lambda: daemon.discarded == 1)
    assert daemon.jobs == []


async def test_unreachable_daemon_is_offline_without_anything_sent(store, state):
    uri = f"lpd://127.0.0.1:{free_port()}/lp"
    settings = make_settings(state, {"q": uri})
    backend = LpdBackend(uri, settings.queues["q"])
    job = await add_job(store, "q", [(b"x", "application/pdf")])
    with pytest.raises(PrinterOffline) as e:
        await backend.deliver(job, DeliveryContext("q", settings.queues["q"], store))
    assert e.value.maybe_received is False and str(e.value).startswith("cannot reach printer")
    with pytest.raises(PrinterOffline) as e:
        await backend.probe()
    assert e.value.maybe_received is False


async def test_daemon_down_then_up(nursery, store, state):
    port = free_port()
    job = await add_job(store, "q", [(b"raw", "application/octet-stream")])
    up = Upstream(make_settings(state, {"q": f"lpd://127.0.0.1:{port}/lp"}), store)
    async with running(up) as n:
        st = up.status("q")
        await wait_until(lambda: st.reachable is False)
        assert st.state == PrinterState.STOPPED and job.state == JobState.PENDING
        daemon = await LpdDaemon().start(n, port)
        await wait_until(lambda: final(job))
        await wait_until(lambda: st.state == PrinterState.IDLE)
    assert job.state == JobState.COMPLETED and [j.documents() for j in daemon.jobs] == [[b"raw"]]


async def test_recovery_of_a_job_in_flight_sends_it_whole_once(nursery, store, state):
    daemon = await LpdDaemon().start(nursery)
    job = await add_job(store, "q", [(b"one", "application/pdf"), (b"two", "application/pdf")],
                        state=JobState.PROCESSING)
    job.delivery.phase = "sending"  # a crash while sending: the receiver has nothing committed
    await store.save(job)
    up = Upstream(make_settings(state, {"q": daemon.uri()}), store)
    async with running(up):
        await wait_until(lambda: final(job))
    assert [j.documents() for j in daemon.jobs] == [[b"one", b"two"]]


async def test_many_documents_go_as_several_lpd_jobs_and_empty_ones_are_skipped(nursery, store, state):
    daemon = await LpdDaemon().start(nursery)
    docs = [(b"" if i == 5 else f"doc {i}".encode(), "application/pdf") for i in range(54)]
    job = await add_job(store, "q", docs)
    up = Upstream(make_settings(state, {"q": daemon.uri()}), store)
    async with running(up):
        await wait_until(lambda: final(job))
    assert job.state == JobState.COMPLETED
    assert [len(j.control.files) for j in daemon.jobs] == [52, 1]
    assert [d for j in daemon.jobs for d in j.documents()] == [d for d, _ in docs if d]
    assert len({j.control_name for j in daemon.jobs}) == 2
    assert job.extra["upstream"]["docs_done"] == 54


# --------------------------------------------------------------------------- client

async def test_client_tolerates_lf_after_each_acknowledgement(nursery):
    daemon = await LpdDaemon(lf_after_ack=True).start(nursery)
    control = p.build_control(host="h", user="u", files=[("l", "dfA001h", 1, "")])

    async def chunks():
        for part in (b"hel", b"lo"):
            yield part

    await client.send_job("127.0.0.1", daemon.port, "lp", control=control, control_name="cfA001h",
                          data=[("dfA001h", 5, chunks)], timeout=5)
    assert [j.documents() for j in daemon.jobs] == [[b"hello"]]


async def test_client_refusal_carries_the_step_and_the_daemons_words(nursery):
    daemon = await LpdDaemon().start(nursery)
    control = p.build_control(host="h", user="u", files=[("l", "dfA001h", 1, "")])
    with pytest.raises(client.LpdRefused) as e:
        await client.send_job("127.0.0.1", daemon.port, "other", control=control, control_name="cfA001h",
                              data=[("dfA001h", 1, lambda: _aiter([b"x"]))], timeout=5)
    assert e.value.step == "job" and e.value.detail == "other: unknown printer" and "code 1" in str(e.value)


async def test_client_refuses_data_of_another_size(nursery):
    daemon = await LpdDaemon().start(nursery)
    control = p.build_control(host="h", user="u", files=[("l", "dfA001h", 1, "")])
    for got in ([b"abc"], [b"abcdef"]):
        with pytest.raises(client.LpdError) as e:
            await client.send_job("127.0.0.1", daemon.port, "lp", control=control, control_name="cfA001h",
                                  data=[("dfA001h", 5, lambda: _aiter(got))], timeout=5)
        assert "bytes announced" in str(e.value)
    assert daemon.jobs == []


async def test_client_ack_timeout_is_unreachable(nursery):
    async def mute(stream):
        await trio.sleep_forever()

    listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
    nursery.start_soon(trio.serve_listeners, mute, listeners)
    port = listeners[0].socket.getsockname()[1]
    with pytest.raises(client.LpdUnreachable) as e:
        await client.send_job("127.0.0.1", port, "lp", control=b"Hh\n", control_name="cfA001h", data=[],
                              timeout=0.2)
    assert e.value.connected and "no acknowledgement" in str(e.value)


async def test_queue_state(nursery):
    daemon = await LpdDaemon().start(nursery)
    assert await client.queue_state("127.0.0.1", daemon.port, "lp") == "lp is ready\nno entries\n"
    assert (await client.queue_state("127.0.0.1", daemon.port, "lp", True, users=["alice"])).endswith("long\n")
    assert await client.queue_state("127.0.0.1", daemon.port, "lp", limit=5) == "lp is"
    with pytest.raises(client.LpdUnreachable) as e:
        await client.queue_state("127.0.0.1", free_port(), "lp", timeout=5)
    assert not e.value.connected


async def _aiter(parts):
    for part in parts:
        yield part


# --------------------------------------------------------------------------- configuration

def test_lpd_printer_uris_validate():
    for uri in ("lpd://printer.example/lp", "lpd://10.0.0.9:515/floor1", "lpd://[::1]:5515/raw"):
        s = config.from_mapping({"queues": {"q": {"printer": uri}}})
        assert s.queues["q"].printer == uri
    assert "lpd" in config.PRINTER_SCHEMES


@pytest.mark.parametrize("uri, why", [
    ("lpd://printer.example", "lpd: needs a queue, e.g. lpd://host:515/queue"),
    ("lpd://printer.example:515/", "lpd: needs a queue"),
    ("lpd:///lp", "no host"),
    ("lpd://h/two%20words", "contains a space"),
])
def test_bad_lpd_printer_names_the_key(tmp_path, uri, why):
    path = tmp_path / "site.toml"
    path.write_text(f'[queues.q]\nprinter = "{uri}"\n', encoding="utf-8")
    with pytest.raises(config.ConfigError) as e:
        config.load(path)
    (line,) = str(e.value).splitlines()
    assert line.startswith(f"{path}: queues.q.printer: ") and why in line
