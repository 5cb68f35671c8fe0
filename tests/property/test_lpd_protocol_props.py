"""spoolproxy.lpd.protocol under hypothesis:

- any bytes, cut into any chunks, give events or LpdProtocolError - never another
  exception, never a hang (each call makes progress or asks for data);
- the cut does not change the outcome (events with FileData joined, and the error);
- build_control -> parse_control gives back the job;
- a well-formed job stream (command(), subcommands, files, stray line ends, aborts, a
  size-0 last data file) parses back to the same files and bytes, however it is cut.
"""
from __future__ import annotations

import hypothesis.strategies as st
from hypothesis import HealthCheck, given, settings

from spoolproxy.lpd import protocol as p

SETTINGS = settings(deadline=None, max_examples=300, suppress_health_check=[HealthCheck.too_slow])

LIMITS = st.fixed_dictionaries({
    "max_line": st.sampled_from([8, 32, 1024]),
    "max_control": st.sampled_from([16, 1024, 64 << 10]),
    "max_data": st.sampled_from([0, 10, 1000]),
})


def cut(data: bytes, sizes: list[int]) -> list[bytes]:
    """``data`` in chunks of the given sizes (cycled); never an empty chunk (b"" is EOF)."""
    out, i, k = [], 0, 0
    sizes = sizes or [len(data) or 1]
    while i < len(data):
        n = sizes[k % len(sizes)]
        out.append(data[i:i + n])
        i, k = i + n, k + 1
    return out


def outcome(chunks: list[bytes], **limits) -> tuple[list, str | None]:
    """(events with adjacent FileData joined, the error message or None)."""
    conn = p.ServerConnection(**limits)
    events: list = []

    def pull() -> bool:
        for _ in range(10_000):  # every call makes progress: a bound, not a timing
            ev = conn.next_event()
            if ev is p.NEED_DATA:
                return True
            if isinstance(ev, p.FileData):
                assert ev.data, "empty FileData"
                if events and isinstance(events[-1], p.FileData):
                    events[-1] = p.FileData(events[-1].data + ev.data)
                    continue
            events.append(ev)
            if isinstance(ev, p.ConnectionClosed):
                return False
        raise AssertionError("no progress")

    try:
        for chunk in chunks + [b""]:
            conn.receive_data(chunk)
            if not pull():
                break
    except p.LpdProtocolError as e:
        assert str(e) and "\n" not in str(e)
        return events, str(e)
    assert isinstance(events[-1], p.ConnectionClosed)  # EOF was given: the connection ends
    return events, None


# inputs that look like LPD often enough to get past the first line
lpd_like = st.lists(st.one_of(
    st.binary(max_size=12),
    st.sampled_from([b"\x02lp\n", b"\x03lp a b\n", b"\x05lp root 1\n", b"\n", b"\r\n", b"\0", b"\x01\n",
                     b"\x025 cfA001h\n", b"\x033 dfA001h\n", b"\x030 dfA\n", b"\x0299 c\n", b"Hh\nPu\nldfA\n"]),
), max_size=12).map(b"".join)


@SETTINGS
@given(st.one_of(st.binary(max_size=200), lpd_like), st.lists(st.integers(1, 16), max_size=8), LIMITS)
def test_any_bytes_any_chunks_only_protocol_errors_and_the_cut_does_not_matter(data, sizes, limits):
    whole = outcome([data] if data else [], **limits)
    assert outcome(cut(data, sizes), **limits) == whole
    assert outcome(cut(data, [1]), **limits) == whole


@SETTINGS
@given(st.one_of(st.binary(max_size=300), lpd_like))
def test_parse_control_raises_only_protocol_errors(data):
    try:
        cf = p.parse_control(data)
    except p.LpdProtocolError as e:
        assert str(e).startswith("control file: ")
        return
    for f in cf.files:
        assert f.letter in p.PRINT_LETTERS and f.name and "/" not in f.name and f.copies >= 1


def _fits(limit: int):
    return lambda s: len(s.encode("utf-8")) <= limit


text = st.text(st.characters(blacklist_categories=("Cc", "Cs")), max_size=40)
names = st.from_regex(r"[A-Za-z0-9._-]{1,40}", fullmatch=True)
jobs = st.fixed_dictionaries({
    "host": text.filter(_fits(31)),
    "user": text.filter(_fits(31)),
    "job_name": text.filter(_fits(99)),
    "title": text.filter(_fits(79)),
    "job_class": text.filter(_fits(31)),
    "banner": st.booleans(),
    "files": st.lists(st.tuples(st.sampled_from(sorted(p.PRINT_LETTERS)), names, st.integers(1, 4),
                                text.filter(_fits(131))),
                      max_size=6, unique_by=lambda f: f[1]),
})


@SETTINGS
@given(jobs)
def test_build_control_parse_control_round_trip(job):
    cf = p.parse_control(p.build_control(**job))
    assert (cf.host, cf.user, cf.job_name, cf.title, cf.job_class) == \
        (job["host"], job["user"], job["job_name"], job["title"], job["job_class"])
    assert cf.banner_user == (job["user"] if job["banner"] else "")
    assert [(f.letter, f.name, f.copies, f.title) for f in cf.files] == [tuple(f) for f in job["files"]]
    assert cf.unlink == tuple(f[1] for f in job["files"]) and cf.other == ()


stray = st.sampled_from([b"", b"", b"\n", b"\r\n", b"\n\n"])
stream_files = st.lists(st.tuples(st.sampled_from(["control", "data", "abort"]), names,
                                  st.binary(min_size=1, max_size=300), stray), max_size=6)


@SETTINGS
@given(stream_files, st.one_of(st.none(), st.binary(max_size=200)), st.lists(st.integers(1, 64), max_size=8))
def test_a_generated_job_stream_parses_back(files, until_eof, sizes):
    data = p.command(p.Command.RECEIVE_JOB, "floor1.colour")
    want: list = [p.DaemonCommand(p.Command.RECEIVE_JOB, "floor1.colour", ())]
    for kind, name, body, gap in files:
        data += gap
        if kind == "abort":
            data += p.ABORT_JOB
            want.append(p.AbortJob())
            continue
        head = p.subcommand_control if kind == "control" else p.subcommand_data
        data += head(len(body), name) + body + b"\0"
        want += [p.FileStart(kind, name, len(body)), p.FileData(body), p.FileEnd()]
    if until_eof is not None:  # LPRng: a data file of size 0 runs until the connection closes
        data += p.subcommand_data(0, "dfZ999h") + until_eof
        want += [p.FileStart("data", "dfZ999h", 0)] + ([p.FileData(until_eof)] if until_eof else []) + [p.FileEnd()]
    want.append(p.ConnectionClosed())
    assert outcome(cut(data, sizes)) == (want, None)
