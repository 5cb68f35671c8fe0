"""Fuzz target for what an LPD client sends the node (spoolproxy.lpd.protocol): the
bytes of one connection through ``ServerConnection`` (whole, and cut into chunks the
input itself chooses), and every control file received through ``parse_control``.

    python tests/fuzz/fuzz_lpd_protocol.py [libFuzzer options] [corpus dir]   (atheris)
    python tests/fuzz/fuzz_lpd_protocol.py N [SEED]                            (plain loop)

``TestOneInput`` asserts that only LpdProtocolError escapes, that the cut does not
change the events, that a file's data is exactly the size it announced (or, for a
size-0 data file, whatever came until EOF), and that the limits hold.
"""
from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # _harness, also when loaded by file path
import _harness  # noqa: E402

_harness.instrumented_import("spoolproxy.lpd.protocol", __name__)
from spoolproxy.lpd import protocol as p  # noqa: E402

LIMITS = {"max_line": 64, "max_control": 512, "max_data": 4096}


def _events(chunks: list[bytes]) -> tuple[list, str | None, list[bytes]]:
    """(events with FileData joined, error or None, bodies of the control files)."""
    conn = p.ServerConnection(**LIMITS)
    events: list = []
    controls: list[bytes] = []
    current: p.FileStart | None = None
    body = bytearray()
    try:
        for chunk in chunks + [b""]:
            conn.receive_data(chunk)
            while True:
                ev = conn.next_event()
                if ev is p.NEED_DATA or isinstance(ev, p.ConnectionClosed):
                    break
                if isinstance(ev, p.FileStart):
                    assert current is None and ev.name and "/" not in ev.name
                    assert 0 < ev.size <= LIMITS["max_control"] if ev.kind == "control" else \
                        0 <= ev.size <= LIMITS["max_data"]
                    current, body = ev, bytearray()
                elif isinstance(ev, p.FileData):
                    assert current is not None and ev.data
                    body += ev.data
                    if events and isinstance(events[-1], p.FileData):
                        events[-1] = p.FileData(events[-1].data + ev.data)
                        continue
                elif isinstance(ev, p.FileEnd):
                    assert current is not None
                    assert len(body) == current.size if current.size else len(body) <= LIMITS["max_data"]
                    if current.kind == "control":
                        controls.append(bytes(body))
                    current = None
                else:
                    assert current is None, f"{ev} inside a file"
                events.append(ev)
            if isinstance(ev, p.ConnectionClosed):
                events.append(ev)
                break
    except p.LpdProtocolError as e:
        return events, str(e), controls
    assert isinstance(events[-1], p.ConnectionClosed)
    return events, None, controls


def _check(data: bytes) -> bool:
    # the first byte chooses the cut, so the fuzzer explores chunkings too
    step = (data[0] % 7 + 1) if data else 1
    whole = _events([data] if data else [])
    pieces = [data[i:i + step] for i in range(0, len(data), step)]
    assert _events(pieces) == whole, "the cut changed the events"
    for control in whole[2]:
        try:
            cf = p.parse_control(control)
        except p.LpdProtocolError:
            continue
        assert all(f.copies >= 1 and f.letter in p.PRINT_LETTERS for f in cf.files)
    try:  # the bytes as a control file, too
        p.parse_control(data)
    except p.LpdProtocolError:
        pass
    return whole[1] is None and len(whole[0]) > 2


def TestOneInput(data: bytes) -> None:
    _check(data)


def seed_corpus() -> list[bytes]:
    control = p.build_control(host="ws1", user="alice", job_name="report",
                              files=[("l", "dfA001ws1", 2, "report.pdf"), ("f", "dfB001ws1", 1, "")])
    job = p.command(p.Command.RECEIVE_JOB, "lp")
    return [
        job + p.subcommand_data(5, "dfA001ws1") + b"hello\0" + p.subcommand_data(3, "dfB001ws1") + b"abc\0"
        + p.subcommand_control(len(control), "cfA001ws1") + control + b"\0",
        job + b"\n" + p.subcommand_control(len(control), "cfA001ws1") + control + b"\0\r\n"
        + p.subcommand_data(0, "dfA001ws1") + b"until the end",
        job + p.subcommand_data(4, "dfA001ws1") + b"data\0" + p.ABORT_JOB,
        p.command(p.Command.QUEUE_LONG, "lp", "alice", "12"),
        p.command(p.Command.REMOVE, "lp", "root", "-"),
        p.command(p.Command.PRINT_WAITING, "lp"),
        control,
    ]


mutate = _harness.mutator(
    _harness.flip_bit, _harness.set_byte(b"\x00\x01\x02\x03\x04\x05\n\r \t/0123456789"),
    _harness.insert_token([b"\n", b"\r\n", b"\0", b"\x01\n", b"\x020 cfA\n", b"\x030 dfA\n", b"\x039 dfA\n",
                           b"\x0299 cfA\n", b"ldfA001ws1\n", b"N", b"U", b"/", b"9999999"]),
    _harness.insert_random(8), _harness.delete(8), _harness.truncate, _harness.splice_tail,
    _harness.copy_within(16),
)


def run_random(iterations: int, seed: int | None = None) -> int:
    return _harness.run_random(_check, seed_corpus(), mutate, iterations, seed,
                               random_input=_harness.random_bytes(b"\x02lp\n", b"\x03lp ", b"\x05lp root "))


def main(argv: list[str]) -> None:
    _harness.fuzz_main(argv, TestOneInput, run_random, "fuzz_lpd_protocol")


if __name__ == "__main__":
    main(sys.argv)
