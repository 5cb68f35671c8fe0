"""spoolproxy.lpd.protocol: the RFC 1179 state machine (every event path, every error),
control files, and the client-side encoders."""
from __future__ import annotations

import pytest

from spoolproxy.lpd import protocol as p
from spoolproxy.lpd.protocol import (AbortJob, Command, ConnectionClosed, ControlFile, DaemonCommand,
                                     FileData, FileEnd, FileStart, LpdProtocolError, PrintFile)


def pull(conn: p.ServerConnection) -> list:
    """Every event available now (stops at NEED_DATA or ConnectionClosed)."""
    out = []
    while True:
        ev = conn.next_event()
        if ev is p.NEED_DATA:
            return out
        out.append(ev)
        if isinstance(ev, ConnectionClosed):
            return out


def merged(events: list) -> list:
    """Adjacent FileData joined: chunking changes how data is cut, nothing else."""
    out: list = []
    for ev in events:
        if isinstance(ev, FileData) and out and isinstance(out[-1], FileData):
            out[-1] = FileData(out[-1].data + ev.data)
        else:
            out.append(ev)
    return out


def run(data: bytes, *, step: int | None = None, eof: bool = True, **kw) -> list:
    """All events for ``data`` fed whole (or ``step`` bytes at a time), then EOF."""
    conn = p.ServerConnection(**kw)
    events = []
    chunks = ([data] if data else []) if step is None else [data[i:i + step] for i in range(0, len(data), step)]
    for chunk in chunks:
        conn.receive_data(chunk)
        events += pull(conn)
    if eof:
        conn.receive_data(b"")
        events += pull(conn)
    return merged(events)


def error(data: bytes, *, eof: bool = True, **kw) -> str:
    """The error ``data`` raises, whole and a byte at a time (the same one)."""
    msgs = []
    for step in (None, 1):
        with pytest.raises(LpdProtocolError) as e:
            run(data, step=step, eof=eof, **kw)
        msgs.append(str(e.value))
    assert "\n" not in msgs[0]
    return msgs[0]


def job(*files: bytes, queue: str = "lp") -> bytes:
    return p.command(Command.RECEIVE_JOB, queue) + b"".join(files)


def data_file(name: str, body: bytes) -> bytes:
    return p.subcommand_data(len(body), name) + body + b"\0"


def control_file(name: str, body: bytes) -> bytes:
    return p.subcommand_control(len(body), name) + body + b"\0"


CONTROL = b"Hclient\nPalice\nJreport\nldfA001client\nNreport.pdf\nUdfA001client\n"
DATA = b"%PDF-1.4\n\x00\x01\x02 binary \n\r\x00 end"


# -- daemon commands ---------------------------------------------------------------------------


@pytest.mark.parametrize("cmd, line, operands", [
    (Command.PRINT_WAITING, b"\x01lp\n", ()),
    (Command.QUEUE_SHORT, b"\x03lp\n", ()),
    (Command.QUEUE_SHORT, b"\x03lp alice 12\n", ("alice", "12")),
    (Command.QUEUE_LONG, b"\x04lp  alice\t12 \n", ("alice", "12")),
    (Command.REMOVE, b"\x05lp root 12 bob\n", ("root", "12", "bob")),
    (Command.REMOVE, b"\x05lp root\r\n", ("root",)),
])
def test_daemon_commands(cmd, line, operands):
    assert run(line) == [DaemonCommand(cmd, "lp", operands), ConnectionClosed()]


def test_command_state_helpers():
    conn = p.ServerConnection()
    assert not conn.in_job and conn.queue == ""
    conn.receive_data(b"\x02floor1.colour\n")
    assert pull(conn) == [DaemonCommand(Command.RECEIVE_JOB, "floor1.colour", ())]
    assert conn.in_job and conn.queue == "floor1.colour"
    assert conn.next_event() is p.NEED_DATA


def test_connect_and_close_without_a_command():
    assert run(b"") == [ConnectionClosed()]
    conn = p.ServerConnection()
    assert conn.next_event() is p.NEED_DATA
    conn.receive_data(b"")
    assert conn.next_event() == ConnectionClosed()
    assert conn.next_event() == ConnectionClosed()  # and stays so


def test_text_is_utf8_or_latin1():
    assert run(b"\x03caf\xc3\xa9 \xe9l\xe8ve\n")[0] == DaemonCommand(Command.QUEUE_SHORT, "café", ("élève",))


def test_command_encoding_round_trips():
    line = p.command(Command.REMOVE, "lp", "root", "12")
    assert line == b"\x05lp root 12\n"
    assert run(line)[0] == DaemonCommand(Command.REMOVE, "lp", ("root", "12"))
    for bad in ("", "two words", "tab\there", "nl\n"):
        with pytest.raises(ValueError):
            p.command(Command.RECEIVE_JOB, bad)


# -- receiving a job ---------------------------------------------------------------------------


def test_data_file_then_control_file():
    stream = job(data_file("dfA001client", DATA), control_file("cfA001client", CONTROL))
    assert run(stream) == [
        DaemonCommand(Command.RECEIVE_JOB, "lp", ()),
        FileStart("data", "dfA001client", len(DATA)), FileData(DATA), FileEnd(),
        FileStart("control", "cfA001client", len(CONTROL)), FileData(CONTROL), FileEnd(),
        ConnectionClosed(),
    ]


def test_control_file_then_several_data_files():
    bodies = [b"one", b"\0\0\0" * 100, b"three\n"]
    stream = job(control_file("cfA002h", CONTROL),
                 *(data_file(f"df{chr(65 + i)}002h", b) for i, b in enumerate(bodies)))
    events = run(stream)
    assert events[1:4] == [FileStart("control", "cfA002h", len(CONTROL)), FileData(CONTROL), FileEnd()]
    for i, body in enumerate(bodies):
        assert events[4 + 3 * i:7 + 3 * i] == [FileStart("data", f"df{chr(65 + i)}002h", len(body)),
                                               FileData(body), FileEnd()]
    assert events[-1] == ConnectionClosed()


@pytest.mark.parametrize("step", [1, 2, 3, 5, 7, 64])
def test_chunking_does_not_change_the_events(step):
    stream = job(b"\n", data_file("dfA001h", DATA), b"\r\n", control_file("cfA001h", CONTROL),
                 p.ABORT_JOB, data_file("dfA002h", b"x"))
    assert run(stream, step=step) == run(stream)


def test_every_split_point():
    stream = job(data_file("dfA001h", DATA), b"\n", control_file("cfA001h", CONTROL))
    whole = run(stream)
    for i in range(len(stream) + 1):
        conn = p.ServerConnection()
        events = []
        for part in [x for x in (stream[:i], stream[i:]) if x] + [b""]:  # b"" is EOF: only at the end
            conn.receive_data(part)
            events += pull(conn)
        assert merged(events) == whole, i


def test_file_data_is_emitted_as_it_arrives():
    conn = p.ServerConnection()
    conn.receive_data(job(p.subcommand_data(10, "dfA001h")) + b"abc")
    assert pull(conn)[1:] == [FileStart("data", "dfA001h", 10), FileData(b"abc")]
    conn.receive_data(b"defghij\0")
    assert pull(conn) == [FileData(b"defghij"), FileEnd()]


def test_size_zero_data_file_runs_until_eof():
    conn = p.ServerConnection()
    conn.receive_data(job(control_file("cfA001h", CONTROL), b"\x030 dfA001h\n", b"first"))
    events = pull(conn)
    assert events[-2:] == [FileStart("data", "dfA001h", 0), FileData(b"first")]
    conn.receive_data(b"\0\n\x02 looks like a subcommand but is data")  # everything is data now
    assert pull(conn) == [FileData(b"\0\n\x02 looks like a subcommand but is data")]
    conn.receive_data(b"")
    assert pull(conn) == [FileEnd(), ConnectionClosed()]


def test_size_zero_data_file_bounded_by_max_data():
    assert "larger than 10" in error(job(b"\x030 dfA001h\n", b"x" * 11), max_data=10)
    assert run(job(b"\x030 dfA001h\n", b"x" * 10), max_data=10)[-3:] == [FileData(b"x" * 10), FileEnd(),
                                                                          ConnectionClosed()]


def test_abort_job_then_more_files():
    events = run(job(data_file("dfA001h", b"x"), p.ABORT_JOB, data_file("dfA002h", b"y")))
    assert events[4] == AbortJob()
    assert events[5:8] == [FileStart("data", "dfA002h", 1), FileData(b"y"), FileEnd()]


@pytest.mark.parametrize("stray", [b"\n", b"\r\n", b"\n\n", b"\r\n\n"])
def test_stray_line_ends_after_an_acknowledgement_are_ignored(stray):
    stream = job(stray, data_file("dfA001h", b"x"), stray, control_file("cfA001h", CONTROL), stray)
    assert run(stream) == run(job(data_file("dfA001h", b"x"), control_file("cfA001h", CONTROL)))
    assert run(stream, step=1) == run(stream)


def test_crlf_subcommand_lines_and_tabs():
    events = run(job(b"\x035\tdfA001h\r\nhello\0"))
    assert events[1:4] == [FileStart("data", "dfA001h", 5), FileData(b"hello"), FileEnd()]


def test_empty_job_and_eof_between_files():
    assert run(job()) == [DaemonCommand(Command.RECEIVE_JOB, "lp", ()), ConnectionClosed()]
    assert run(job(data_file("dfA001h", b"x")))[-1] == ConnectionClosed()


def test_data_after_eof_is_a_caller_bug():
    conn = p.ServerConnection()
    conn.receive_data(b"")
    conn.receive_data(b"")  # another EOF is harmless
    with pytest.raises(RuntimeError):
        conn.receive_data(b"x")


# -- errors ------------------------------------------------------------------------------------


@pytest.mark.parametrize("data, words", [
    (b"\x00lp\n", "unknown daemon command byte 0x00"),
    (b"\x06lp\n", "0x06"),
    (b"GET / HTTP/1.1\r\n", "0x47"),
    (b"\n", "0x0a"),
    (b"\x02\n", "without a queue name"),
    (b"\x02 \t\n", "without a queue name"),
    (b"\x02l\x01p\n", "control character"),
    (b"\x02lp\n\x04x\n", "unknown receive-job subcommand byte 0x04"),
    (b"\x02lp\n\x00", "0x00"),
    (b"\x02lp\n\r\x02", "0x0d"),
    (b"\x02lp\n\x03-5 dfA\n", "not a number"),
    (b"\x02lp\n\x03+5 dfA\n", "not a number"),
    (b"\x02lp\n\x035x dfA\n", "not a number"),
    (b"\x02lp\n\x03 dfA\n", "not a number"),
    (b"\x02lp\n\x03\n", "not a number"),
    (b"\x02lp\n\x03" + b"9" * 30 + b" dfA\n", "too large"),
    (b"\x02lp\n\x035\n", "empty file name"),
    (b"\x02lp\n\x035 \n", "empty file name"),
    (b"\x02lp\n\x035 ../etc/passwd\n", "'/'"),
    (b"\x02lp\n\x035 df\x07A\n", "control character"),
    (b"\x02lp\n\x035 df\xc2\x85A\n", "control character"),
    (b"\x02lp\n\x035 " + b"d" * 256 + b"\n", "longer than 255"),
    (b"\x02lp\n\x020 cfA001h\n", "of 0 bytes"),
    (b"\x02lp\n\x02999999999999 cfA001h\n", "larger than"),
    (b"\x02lp\n\x035 dfA\nhello\x01", "not followed by a \\0"),
    (b"\x02lp\n\x035 dfA\nhelloX", "0x58"),
    (b"\x03lp\nmore", "bytes after a command"),
    (b"\x01lp\n\n", "bytes after a command"),
    (b"\x05lp root\n\x05lp root\n", "bytes after a command"),
])
def test_protocol_errors(data, words):
    assert words in error(data)


def test_line_too_long_is_refused_before_its_end():
    assert "longer than 16" in error(b"\x03" + b"q" * 40, eof=False, max_line=16)
    assert "longer than 16" in error(b"\x02lp\n\x03" + b"9" * 40, eof=False, max_line=16)
    assert run(b"\x03" + b"q" * 15 + b"\n", max_line=16)[0].queue == "q" * 15  # the line: code byte + queue


def test_size_limits():
    assert "larger than 100" in error(job(p.subcommand_control(101, "cfA001h")), max_control=100)
    run(job(control_file("cfA001h", b"H" * 100)), max_control=100)
    assert "larger than 10" in error(job(p.subcommand_data(11, "dfA001h")), max_data=10)
    run(job(data_file("dfA001h", b"x" * 10)), max_data=10)
    run(job(data_file("dfA001h", b"x" * 10000)))  # max_data 0: no limit


@pytest.mark.parametrize("data, words", [
    (b"\x02lp", "middle of a line"),
    (b"\x02lp\n\x035 dfA", "middle of a line"),
    (b"\x02lp\n\x035 dfA\nhel", "in the middle of data file 'dfA' (3 of 5 bytes)"),
    (b"\x02lp\n\x035 dfA\n", "(0 of 5 bytes)"),
    (b"\x02lp\n\x035 dfA\nhello", "before the \\0"),
    (b"\x02lp\n\x023 cfA\nH", "middle of control file 'cfA'"),
])
def test_eof_in_the_middle(data, words):
    assert words in error(data)


def test_an_error_sticks():
    conn = p.ServerConnection()
    conn.receive_data(b"\x09")
    with pytest.raises(LpdProtocolError) as first:
        conn.next_event()
    with pytest.raises(LpdProtocolError) as again:
        conn.next_event()
    assert again.value is first.value


# -- control files -----------------------------------------------------------------------------


def test_parse_control_fields():
    cf = p.parse_control(b"Hws1.example\nPalice\nJQuarterly report\nCA\nLalice\nTpr title\nMalice@example\n"
                         b"I8\nW132\n1times.r\n2times.i\n3times.b\n4special\nSdev inode\nZopts\n"
                         b"fdfA123ws1.example\nUdfA123ws1.example\nNreport.txt\n")
    assert cf == ControlFile(
        host="ws1.example", user="alice", job_name="Quarterly report", job_class="A", banner_user="alice",
        title="pr title", mail="alice@example",
        files=(PrintFile("f", "dfA123ws1.example", 1, "report.txt"),),
        unlink=("dfA123ws1.example",),
        other=("I8", "W132", "1times.r", "2times.i", "3times.b", "4special", "Sdev inode", "Zopts"))


def test_parse_control_copies_and_order():
    cf = p.parse_control(b"Hh\nPu\nldfAh\nldfAh\nodfBh\nldfAh\nodfBh\nfdfCh\n")
    assert [(f.letter, f.name, f.copies) for f in cf.files] == [("l", "dfAh", 3), ("o", "dfBh", 2),
                                                                ("f", "dfCh", 1)]


def test_same_name_different_letters_are_different_files():
    cf = p.parse_control(b"ldfAh\nfdfAh\n")
    assert [(f.letter, f.name) for f in cf.files] == [("l", "dfAh"), ("f", "dfAh")]


def test_n_lines_after_the_print_lines_bsd_and_cups():
    cf = p.parse_control(b"Hh\nPu\nldfAh\nldfAh\nUdfAh\nNone.pdf\nldfBh\nUdfBh\nNtwo.ps\n")
    assert [(f.name, f.copies, f.title) for f in cf.files] == [("dfAh", 2, "one.pdf"), ("dfBh", 1, "two.ps")]


def test_n_lines_before_the_print_lines():
    cf = p.parse_control(b"Hh\nPu\nNone.pdf\nldfAh\nNtwo.ps\nldfBh\n")
    assert [(f.name, f.title) for f in cf.files] == [("dfAh", "one.pdf"), ("dfBh", "two.ps")]


def test_untitled_files_and_crlf_lines():
    cf = p.parse_control(b"Hh\r\nPbob\r\nldfAh\r\n\r\nldfBh\r\n")
    assert cf.user == "bob" and [(f.name, f.title) for f in cf.files] == [("dfAh", ""), ("dfBh", "")]


def test_control_file_without_print_lines_and_last_line_without_lf():
    cf = p.parse_control(b"Hh\nPu")
    assert cf.files == () and cf.user == "u"


def test_control_file_text_fallback():
    assert p.parse_control(b"P\xe9l\xe8ve\nJcaf\xc3\xa9\n").user == "élève"
    assert p.parse_control(b"Jcaf\xc3\xa9\n").job_name == "café"


@pytest.mark.parametrize("data, words", [
    (b"", "no lines"),
    (b"\n\n\r\n", "no lines"),
    (b"Hh\nl\n", "print line 'l' without a file name"),
    (b"Hh\nfdfA/../x\n", "contains '/'"),
    (b"o/etc/passwd\n", "contains '/'"),
])
def test_bad_control_files(data, words):
    with pytest.raises(LpdProtocolError) as e:
        p.parse_control(data)
    assert str(e.value).startswith("control file: ") and words in str(e.value)


def test_build_control_layout():
    data = p.build_control(host="node1", user="alice", job_name="Budget", job_class="A", banner=True,
                           title="T", files=[("l", "dfA007node1", 2, "budget.pdf"), ("l", "dfB007node1", 1, "")])
    assert data == (b"Hnode1\nPalice\nJBudget\nCA\nLalice\nTT\n"
                    b"ldfA007node1\nldfA007node1\nUdfA007node1\nNbudget.pdf\nldfB007node1\nUdfB007node1\n")


def test_build_control_round_trip():
    files = [("l", "dfA007node1", 3, "budget.pdf"), ("f", "dfB007node1", 1, ""), ("o", "dfC007node1", 2, "x.ps")]
    cf = p.parse_control(p.build_control(host="node1", user="alice", job_name="Budget 2026", files=files,
                                         title="t", job_class="B", banner=True))
    assert (cf.host, cf.user, cf.job_name, cf.title, cf.job_class, cf.banner_user) == \
        ("node1", "alice", "Budget 2026", "t", "B", "alice")
    assert [(f.letter, f.name, f.copies, f.title) for f in cf.files] == files
    assert cf.unlink == ("dfA007node1", "dfB007node1", "dfC007node1") and cf.other == ()


def test_build_control_cleans_and_cuts_text():
    cf = p.parse_control(p.build_control(host="h" * 40, user="ev\nil", job_name="é" * 80,
                                         files=[("l", "dfA001h", 1, "a\rb")]))
    assert cf.host == "h" * 31 and cf.user == "ev il" and cf.files[0].title == "a b"
    assert cf.job_name == "é" * 49  # 99 bytes of UTF-8, cut at a character boundary


@pytest.mark.parametrize("files", [
    [("x", "dfA001h", 1, "")], [("l", "df/A", 1, "")], [("l", "", 1, "")], [("l", "df A", 1, "")],
    [("l", "dfA001h", 0, "")],
])
def test_build_control_refuses_bad_files(files):
    with pytest.raises(ValueError):
        p.build_control(host="h", user="u", files=files)


def test_format_for():
    assert p.format_for("f") == p.format_for("p") == "text/plain"
    assert p.format_for("o") == "application/postscript"
    assert p.format_for("l") == p.format_for("d") == p.format_for("v") == "application/octet-stream"
    assert p.PRINT_LETTERS == frozenset("cdfglnoprtv")


# -- client-side encoders ----------------------------------------------------------------------


def test_file_names():
    assert p.control_name(7, "node1") == "cfA007node1"
    assert p.data_name(7, 0, "node1") == "dfA007node1"
    assert p.data_name(7, 25, "n") == "dfZ007n" and p.data_name(7, 26, "n") == "dfa007n"
    assert p.data_name(999, 51, "n") == "dfz999n"
    assert p.file_names(42, "h", 2) == ("cfA042h", "dfA042h", "dfB042h")
    for bad in ((1000, 0), (-1, 0), (1, 52), (1, -1)):
        with pytest.raises(ValueError):
            p.data_name(bad[0], bad[1], "h")
    with pytest.raises(ValueError):
        p.control_name(1000, "h")


def test_subcommands_and_acks():
    assert p.subcommand_control(12, "cfA001h") == b"\x0212 cfA001h\n"
    assert p.subcommand_data(0, "dfA001h") == b"\x030 dfA001h\n"
    assert p.ABORT_JOB == b"\x01\n" and p.ACK == b"\0" and p.NAK != p.ACK
    with pytest.raises(ValueError):
        p.subcommand_control(0, "cfA001h")
    with pytest.raises(ValueError):
        p.subcommand_data(5, "a/b")
