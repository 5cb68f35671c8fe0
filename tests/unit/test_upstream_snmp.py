"""How a queue uses its printer's SNMP status (spoolproxy.upstream.service): the merged
view clients and the release side see, and waiting for the page counter to settle after
a job. The SNMP agent itself is real in tests/interop/test_snmp_e2e.py; here its answers
are scripted so that every combination is covered."""
from __future__ import annotations

import pytest
import trio
import trio.testing

from spoolproxy.config import from_mapping
from spoolproxy.ipp.model import PrinterState
from spoolproxy.release import rules
from spoolproxy.snmp import SnmpStatus
from spoolproxy.upstream.base import PrinterStatus
from spoolproxy.upstream.service import Lane, _settled_counter


def lane(tmp_path, **snmp) -> Lane:
    s = from_mapping({"node": {"state_dir": str(tmp_path)},
                      "queues": {"q": {"printer": "socket://10.0.0.9", "snmp": {"interval": 5, **snmp}}}})
    return Lane("q", s.queues["q"], store=None, backend=None, snmp=None)


def ok(**kw) -> SnmpStatus:
    return SnmpStatus(**{"state": "ok", "printer_state": PrinterState.IDLE, "updated": 1.0, **kw})


def test_without_snmp_the_view_is_the_delivery_status(tmp_path):
    q = lane(tmp_path)
    assert q.view() is q.status


def test_an_error_reason_stops_the_printer_and_says_why(tmp_path):
    q = lane(tmp_path)
    q.status = PrinterStatus(PrinterState.IDLE, ["none"], "Idle.", reachable=True)
    q.snmp_status = ok(reasons=["media-jam-error", "toner-low-warning"], printer_state=PrinterState.STOPPED)
    v = q.view()
    assert v.state == PrinterState.STOPPED and v.reasons == ["media-jam-error", "toner-low-warning"]
    assert "media-jam-error" in v.message and v.snmp is q.snmp_status
    assert q.status.state == PrinterState.IDLE and q.status.reasons == ["none"]  # the base is untouched
    ready = rules.readiness("q", v.state, v.reasons, v.message, v.reachable)
    assert not ready.ready and "media-jam-error" in ready.why


def test_warnings_are_shown_but_do_not_stop_release(tmp_path):
    q = lane(tmp_path)
    q.status = PrinterStatus(PrinterState.IDLE, ["none"], "", reachable=True)
    q.snmp_status = ok(reasons=["toner-low-warning", "media-low-warning"])
    v = q.view()
    assert v.state == PrinterState.IDLE and v.reasons == ["toner-low-warning", "media-low-warning"]
    assert rules.readiness("q", v.state, v.reasons, v.message, v.reachable).ready


def test_the_printer_printing_makes_an_idle_queue_processing(tmp_path):
    q = lane(tmp_path)
    q.status = PrinterStatus(PrinterState.IDLE, ["none"], "", reachable=True)
    q.snmp_status = ok(printer_state=PrinterState.PROCESSING)
    assert q.view().state == PrinterState.PROCESSING


def test_an_unknown_agent_or_an_unreachable_printer_changes_nothing(tmp_path):
    q = lane(tmp_path)
    q.status = PrinterStatus(PrinterState.IDLE, ["none"], "", reachable=True)
    q.snmp_status = SnmpStatus(state="unknown", error="no answer")
    v = q.view()
    assert (v.state, v.reasons, v.snmp.state) == (PrinterState.IDLE, ["none"], "unknown")
    q.status = PrinterStatus(PrinterState.STOPPED, ["offline-report"], "cannot reach printer", reachable=False)
    q.snmp_status = ok(reasons=["media-jam-error"])  # stale: the printer itself is gone
    assert q.view().reasons == ["offline-report"]


class Scripted:
    """An SnmpPrinter whose polls answer from a list (the last one repeats)."""

    def __init__(self, answers: list[SnmpStatus]):
        self.answers = answers
        self.polls = 0

    async def poll(self) -> SnmpStatus:
        await trio.lowlevel.checkpoint()
        answer = self.answers[min(self.polls, len(self.answers) - 1)]
        self.polls += 1
        return answer


def at(counter: int | None, status: int = 3) -> SnmpStatus:
    return ok(page_counter=counter, printer_status=status, counter_unit="impressions")


@pytest.mark.parametrize("answers, expected", [
    ([at(10), at(10)], (10, True)),
    ([at(10, 4), at(12, 4), at(13, 5), at(13), at(13)], (13, True)),  # printing, warming up, then still
    ([at(10), at(11), at(12), at(12)], (12, True)),  # idle but the counter still moving
    ([SnmpStatus(state="unknown"), at(7), at(7)], (7, True)),
    ([at(10, 4)], (10, False)),  # never idle within the limit: the last value, not settled
    ([SnmpStatus(state="unknown")], (None, False)),
])
def test_the_page_counter_is_read_once_the_printer_has_settled(answers, expected):
    async def main():
        return await _settled_counter(Scripted(answers), 30.0)

    counter, settled, unit = trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))
    assert (counter, settled) == expected
    assert unit == ("impressions" if counter is not None else "")
