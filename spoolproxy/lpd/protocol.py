"""Sans-IO LPD (RFC 1179): bytes in, events out for a server; bytes for a client.

Never touches a socket. A server feeds what it receives to
``ServerConnection.receive_data`` (``b""`` at EOF) and pulls events with
``next_event`` until it returns ``NEED_DATA``; it writes the acknowledgements
(``ACK``/``NAK``) itself, as the protocol leaves their timing to the daemon.

The server side is a small state machine (h11 style: every transition is in
``ServerConnection._next``)::

    COMMAND  --daemon command line-->  JOB      (02 receive job)
                                       DONE     (01, 03, 04, 05: only EOF may follow)
    JOB      --\\x01 LF-->              JOB      (AbortJob)
             --\\x02/\\x03 COUNT SP NAME LF-->  FILE   (FileStart; COUNT 0 data: UNTIL_EOF)
    FILE     --COUNT bytes-->          TRAILER  (FileData chunks as they arrive)
    TRAILER  --\\0-->                   JOB      (FileEnd)
    UNTIL_EOF --bytes-->  UNTIL_EOF (FileData); --EOF-->  CLOSED (FileEnd)
    COMMAND, JOB, DONE --EOF-->        CLOSED   (ConnectionClosed)
    any      --bad input-->            ERROR    (LpdProtocolError, raised again on every call)

The control file model (``parse_control``/``build_control``) and the client-side
encoders (``command``, ``subcommand_control``, ``subcommand_data``, file names) are
here too, so that the server, the upstream client and the tests share one reading
of the RFC.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from enum import Enum, IntEnum
from typing import Literal, Sequence, Union

__all__ = [
    "ABORT_JOB", "ACK", "MAX_DATA_FILES", "NAK", "NEED_DATA", "PRINT_LETTERS", "AbortJob", "Command", "ConnectionClosed",
    "ControlFile", "DaemonCommand", "Event", "FileData", "FileEnd", "FileStart", "LpdProtocolError",
    "PrintFile", "ServerConnection", "build_control", "command", "control_name", "data_name",
    "file_names", "format_for", "parse_control", "subcommand_control", "subcommand_data",
]

ACK = b"\0"
NAK = b"\x01"  # RFC 1179 §6: any non-zero octet is a negative acknowledgement
ABORT_JOB = b"\x01\n"

MAX_NAME = 255  # bytes in a file name on the wire
MAX_COUNT_DIGITS = 20  # keeps int() cheap; no real file needs more


class Command(IntEnum):
    """Daemon commands, RFC 1179 §5 (the first octet of a connection)."""

    PRINT_WAITING = 1
    RECEIVE_JOB = 2
    QUEUE_SHORT = 3
    QUEUE_LONG = 4
    REMOVE = 5


class LpdProtocolError(Exception):
    """Remote sent something the protocol does not allow; str() is a one-line reason a
    log/admin can read."""


# -- events ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class DaemonCommand:
    """The connection's first line. For REMOVE ``operands[0]`` is the agent (the
    requesting user) and the rest the list; for 1/3/4 ``operands`` is the list."""

    command: Command
    queue: str
    operands: tuple[str, ...] = ()


@dataclass(frozen=True)
class AbortJob:
    """Receive-job subcommand 1: forget the files of this job received so far."""


@dataclass(frozen=True)
class FileStart:
    """A control or data file follows; ``size`` 0 (data only) = until the connection closes."""

    kind: Literal["control", "data"]
    name: str
    size: int


@dataclass(frozen=True)
class FileData:
    data: bytes


@dataclass(frozen=True)
class FileEnd:
    """The file's trailing \\0 arrived (or EOF, for a size-0 data file)."""


@dataclass(frozen=True)
class ConnectionClosed:
    """Clean EOF between commands or files."""


class _NeedData:
    def __repr__(self) -> str:
        return "NEED_DATA"


NEED_DATA = _NeedData()

Event = Union[DaemonCommand, AbortJob, FileStart, FileData, FileEnd, ConnectionClosed]


# -- text -----------------------------------------------------------------------------------

_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_BLANK = re.compile(rb"[ \t]+")
_SUBCOMMAND = re.compile(rb"[ \t]*([^ \t]*)[ \t]*(.*)", re.S)


def _text(b: bytes) -> str:
    """UTF-8 when it is, else latin-1 (every byte is a character): never raises."""
    try:
        return b.decode("utf-8")
    except UnicodeDecodeError:
        return b.decode("latin-1")


def _file_name_problem(raw: bytes, name: str) -> str:
    if not raw:
        return "empty file name"
    if len(raw) > MAX_NAME:
        return f"file name longer than {MAX_NAME} bytes"
    if "/" in name:
        return f"file name {name!r} contains '/'"
    if _CONTROL.search(name):
        return f"file name {name!r} contains a control character"
    return ""


# -- the server side ------------------------------------------------------------------------

class _State(Enum):
    COMMAND = "command"
    DONE = "done"
    JOB = "job"
    FILE = "file"
    TRAILER = "trailer"
    UNTIL_EOF = "until-eof"
    CLOSED = "closed"
    ERROR = "error"


_COMMAND_NAMES = {
    Command.PRINT_WAITING: "print-waiting", Command.RECEIVE_JOB: "receive-job",
    Command.QUEUE_SHORT: "short queue state", Command.QUEUE_LONG: "long queue state",
    Command.REMOVE: "remove-jobs",
}


class ServerConnection:
    """One LPD connection as a daemon sees it.

    ``max_line``: longest command/subcommand line (bytes before LF); ``max_control``:
    largest control file; ``max_data``: largest data file (0 = no limit; also bounds
    a size-0 data file, which runs until EOF).
    """

    def __init__(self, *, max_line: int = 1024, max_control: int = 64 << 10, max_data: int = 0) -> None:
        self.max_line = max_line
        self.max_control = max_control
        self.max_data = max_data
        self.in_job = False  # a RECEIVE_JOB command line was received
        self.queue = ""
        self._buf = bytearray()
        self._eof = False
        self._state = _State.COMMAND
        self._error: LpdProtocolError | None = None
        self._file: FileStart | None = None
        self._remaining = 0  # bytes of the current file still to come
        self._received = 0  # bytes of a size-0 data file so far

    @property
    def state(self) -> str:
        return self._state.value

    def receive_data(self, data: bytes) -> None:
        """Bytes from the peer; ``b""`` means it closed its side (EOF)."""
        if not data:
            self._eof = True
            return
        if self._eof:
            raise RuntimeError("receive_data after EOF")
        self._buf += data

    def next_event(self) -> Event | _NeedData:
        """The next event, or NEED_DATA. Raises LpdProtocolError (and again on every
        later call: the connection is unusable after it)."""
        if self._error is not None:
            raise self._error
        try:
            return self._next()
        except LpdProtocolError as e:
            self._state, self._error = _State.ERROR, e
            raise

    # -- transitions ----------------------------------------------------------------------

    def _next(self) -> Event | _NeedData:
        st, buf = self._state, self._buf
        if st is _State.COMMAND:
            # refuse a wrong first byte at once: no need to wait for a line that may never end
            if buf and not 1 <= buf[0] <= 5:
                raise LpdProtocolError(f"unknown daemon command byte 0x{buf[0]:02x}")
            line = self._line()
            if line is None:
                return self._eof_or_wait()
            return self._command(line)
        if st is _State.DONE:
            if buf:
                raise LpdProtocolError("bytes after a command that takes none")
            return self._eof_or_wait()
        if st is _State.JOB:
            # some clients send LF (or CRLF) after each acknowledgement they read
            while buf[:1] == b"\n" or buf[:2] == b"\r\n":
                del buf[:1 if buf[0] == 0x0A else 2]
            if buf == b"\r" and not self._eof:
                return NEED_DATA
            if buf and buf[0] not in (1, 2, 3):
                raise LpdProtocolError(f"unknown receive-job subcommand byte 0x{buf[0]:02x}")
            line = self._line()
            if line is None:
                return self._eof_or_wait()
            return self._subcommand(line)
        if st is _State.FILE:
            if buf:
                n = min(self._remaining, len(buf))
                data = self._take(n)
                self._remaining -= n
                if not self._remaining:
                    self._state = _State.TRAILER
                return FileData(data)
            if self._eof:
                f = self._file
                assert f is not None
                raise LpdProtocolError(f"connection closed in the middle of {f.kind} file {f.name!r} "
                                       f"({f.size - self._remaining} of {f.size} bytes)")
            return NEED_DATA
        if st is _State.TRAILER:
            if buf:
                end = buf[0]
                del buf[:1]
                if end != 0:
                    raise LpdProtocolError(f"{self._what()} is not followed by a \\0 byte (0x{end:02x})")
                self._state, self._file = _State.JOB, None
                return FileEnd()
            if self._eof:
                raise LpdProtocolError(f"connection closed before the \\0 that ends {self._what()}")
            return NEED_DATA
        if st is _State.UNTIL_EOF:
            if buf:
                # what fits goes out first, so the events before the error do not depend
                # on how the bytes were cut into chunks
                room = self.max_data - self._received if self.max_data else len(buf)
                if room <= 0:
                    raise LpdProtocolError(f"{self._what()} is larger than {self.max_data} bytes")
                n = min(room, len(buf))
                self._received += n
                return FileData(self._take(n))
            if self._eof:
                self._state, self._file = _State.CLOSED, None
                return FileEnd()
            return NEED_DATA
        if st is _State.CLOSED:
            return ConnectionClosed()
        raise AssertionError(st)  # pragma: no cover - ERROR raises in next_event

    def _eof_or_wait(self) -> ConnectionClosed | _NeedData:
        if self._eof:  # _line() has already refused a partial line
            self._state = _State.CLOSED
            return ConnectionClosed()
        return NEED_DATA

    def _what(self) -> str:
        f = self._file
        return f"{f.kind} file {f.name!r}" if f is not None else "the file"

    def _take(self, n: int) -> bytes:
        buf = self._buf
        if n == len(buf):
            data = bytes(buf)
            buf.clear()
        else:
            data = bytes(buf[:n])
            del buf[:n]
        return data

    def _line(self) -> bytes | None:
        """A whole line without its LF (and a CR before it), or None for not yet."""
        buf = self._buf
        end = buf.find(b"\n", 0, self.max_line + 1)
        if end < 0:
            if len(buf) > self.max_line:
                raise LpdProtocolError(f"line longer than {self.max_line} bytes")
            if self._eof and buf:
                raise LpdProtocolError("connection closed in the middle of a line")
            return None
        line = bytes(buf[:end])
        del buf[:end + 1]
        return line[:-1] if line.endswith(b"\r") else line

    def _command(self, line: bytes) -> DaemonCommand:
        cmd = Command(line[0])
        words = [w for w in _BLANK.split(line[1:]) if w]
        if not words:
            raise LpdProtocolError(f"{_COMMAND_NAMES[cmd]} command without a queue name")
        queue = _text(words[0])
        if _CONTROL.search(queue):
            raise LpdProtocolError(f"queue name {queue!r} contains a control character")
        self.queue = queue
        if cmd == Command.RECEIVE_JOB:
            self.in_job = True
            self._state = _State.JOB
        else:
            self._state = _State.DONE
        return DaemonCommand(cmd, queue, tuple(_text(w) for w in words[1:]))

    def _subcommand(self, line: bytes) -> AbortJob | FileStart:
        code = line[0]
        if code == 1:
            return AbortJob()
        kind: Literal["control", "data"] = "control" if code == 2 else "data"
        # COUNT SP NAME; like the command line, runs of SP/HT are tolerated
        m = _SUBCOMMAND.match(line, 1)
        assert m is not None  # the pattern matches any bytes
        count, raw = m.group(1), m.group(2).rstrip(b" \t")
        if not count.isdigit():  # bytes.isdigit: ASCII digits only, so no sign either
            raise LpdProtocolError(f"{kind} file count {_text(count)[:40]!r} is not a number")
        if len(count) > MAX_COUNT_DIGITS:
            raise LpdProtocolError(f"{kind} file count of {len(count)} digits is too large")
        size = int(count)
        name = _text(raw)
        problem = _file_name_problem(raw, name)
        if problem:
            raise LpdProtocolError(f"{kind} file: {problem}")
        if kind == "control":
            if size == 0:
                raise LpdProtocolError(f"control file {name!r} of 0 bytes")
            if size > self.max_control:
                raise LpdProtocolError(f"control file {name!r} of {size} bytes is larger than {self.max_control}")
        elif self.max_data and size > self.max_data:
            raise LpdProtocolError(f"data file {name!r} of {size} bytes is larger than {self.max_data}")
        start = FileStart(kind, name, size)
        self._file = start
        if size == 0:  # LPRng's reading: the data runs until the client closes the connection
            self._state, self._received = _State.UNTIL_EOF, 0
        else:
            self._state, self._remaining = _State.FILE, size
        return start


# -- control files (RFC 1179 §7) ------------------------------------------------------------

PRINT_LETTERS = frozenset("cdfglnoprtv")

# field limits of RFC 1179 §7 (what BSD lpd and CUPS keep); build_control truncates to them
_LIMITS = {"H": 31, "P": 31, "J": 99, "C": 31, "L": 31, "T": 79, "N": 131, "M": 255}


@dataclass(frozen=True)
class PrintFile:
    """A file the control file prints: its print letter, data file name, how many
    times it is named (copies) and its N line ("" if none)."""

    letter: str
    name: str
    copies: int = 1
    title: str = ""


@dataclass(frozen=True)
class ControlFile:
    host: str = ""  # H
    user: str = ""  # P
    job_name: str = ""  # J
    job_class: str = ""  # C
    banner_user: str = ""  # L
    title: str = ""  # T
    mail: str = ""  # M
    files: tuple[PrintFile, ...] = ()  # in order of first appearance
    unlink: tuple[str, ...] = ()  # U
    other: tuple[str, ...] = ()  # lines not interpreted (fonts 1-4, I, W, S, ...), as received


_FIELDS = {"H": "host", "P": "user", "J": "job_name", "C": "job_class", "L": "banner_user",
           "T": "title", "M": "mail"}


def parse_control(data: bytes) -> ControlFile:
    """Read a control file. Repeated print lines naming the same (letter, file) are
    copies. An N line titles the file printed just before it (BSD lpr and CUPS write it
    after the print lines), or, if that one has an N line already or there is none, the
    next new file (clients that write it first). A later H/P/J/... line replaces an
    earlier one. Raises LpdProtocolError("control file: ...")."""
    fields: dict[str, str] = {}
    order: list[tuple[str, str]] = []
    copies: dict[tuple[str, str], int] = {}
    titles: dict[tuple[str, str], str] = {}
    unlink: list[str] = []
    other: list[str] = []
    pending_title: str | None = None
    last: tuple[str, str] | None = None
    seen = False
    for raw in data.split(b"\n"):
        if raw.endswith(b"\r"):
            raw = raw[:-1]
        if not raw:
            continue
        seen = True
        line = _text(raw)
        letter, value = line[0], line[1:]
        if letter in PRINT_LETTERS:
            if not value:
                raise LpdProtocolError(f"control file: print line {letter!r} without a file name")
            if "/" in value:
                raise LpdProtocolError(f"control file: print line {letter!r} names {value[:60]!r}, "
                                       "which contains '/'")
            key = (letter, value)
            if key not in copies:
                order.append(key)
                copies[key] = 0
                if pending_title is not None:
                    titles[key], pending_title = pending_title, None
            copies[key] += 1
            last = key
        elif letter == "N":
            if last is not None and last not in titles:
                titles[last] = value
            else:
                pending_title = value
        elif letter == "U":
            unlink.append(value)
        elif letter in _FIELDS:
            fields[_FIELDS[letter]] = value
        else:
            other.append(line)
    if not seen:
        raise LpdProtocolError("control file: no lines")
    files = tuple(PrintFile(k[0], k[1], copies[k], titles.get(k, "")) for k in order)
    return ControlFile(files=files, unlink=tuple(unlink), other=tuple(other), **fields)


def _clean(value: str, limit: int) -> str:
    """A field value that cannot break a line: control characters become spaces, and at
    most ``limit`` bytes of UTF-8 (cut at a character boundary)."""
    value = _CONTROL.sub(" ", value)
    raw = value.encode("utf-8")
    if len(raw) <= limit:
        return value
    return raw[:limit].decode("utf-8", "ignore")


def build_control(*, host: str, user: str, job_name: str = "",
                  files: Sequence[tuple[str, str, int, str]], title: str = "", job_class: str = "",
                  banner: bool = False) -> bytes:
    """A control file for our client: H, P, then J, C, L (banner page for ``user``), T
    when given; then per file (letter, name, copies, title) its print line ``copies``
    times, U and N (BSD lpr's order). Text is cleaned and cut to the RFC's field sizes;
    a bad letter, name or copies count is a ValueError."""
    lines = [f"H{_clean(host, _LIMITS['H'])}", f"P{_clean(user, _LIMITS['P'])}"]
    if job_name:
        lines.append(f"J{_clean(job_name, _LIMITS['J'])}")
    if job_class:
        lines.append(f"C{_clean(job_class, _LIMITS['C'])}")
    if banner:
        lines.append(f"L{_clean(user, _LIMITS['L'])}")
    if title:
        lines.append(f"T{_clean(title, _LIMITS['T'])}")
    unlinked: set[str] = set()
    for letter, name, n, file_title in files:
        if letter not in PRINT_LETTERS:
            raise ValueError(f"{letter!r} is not a print letter")
        _check_name(name)
        if not isinstance(n, int) or n < 1:
            raise ValueError(f"copies must be a positive integer, not {n!r}")
        lines.extend(f"{letter}{name}" for _ in range(n))
        if name not in unlinked:
            unlinked.add(name)
            lines.append(f"U{name}")
        if file_title:
            lines.append(f"N{_clean(file_title, _LIMITS['N'])}")
    return ("\n".join(lines) + "\n").encode("utf-8")


def format_for(letter: str) -> str:
    """The MIME type a print letter implies. ``l`` (raw, "leave control characters")
    says nothing about the content: the server sniffs it."""
    if letter in ("f", "p"):
        return "text/plain"
    if letter == "o":
        return "application/postscript"
    return "application/octet-stream"


# -- the client side ------------------------------------------------------------------------

def _check_word(what: str, value: str) -> bytes:
    raw = value.encode("utf-8")
    if not raw or re.search(rb"[\x00-\x20\x7f]", raw):
        raise ValueError(f"{what} {value!r} is empty or contains a space or control character")
    return raw


def _check_name(name: str) -> bytes:
    raw = name.encode("utf-8")
    problem = _file_name_problem(raw, name) or (" " in name and "file name contains a space")
    if problem:
        raise ValueError(problem)
    return raw


def command(cmd: Command, queue: str, *operands: str) -> bytes:
    """A daemon command line, e.g. ``command(Command.RECEIVE_JOB, "lp")``."""
    parts = [_check_word("queue", queue)] + [_check_word("operand", o) for o in operands]
    return bytes([Command(cmd)]) + b" ".join(parts) + b"\n"


def subcommand_control(size: int, name: str) -> bytes:
    if size < 1:
        raise ValueError("a control file has at least one byte")
    return b"\x02%d %s\n" % (size, _check_name(name))


def subcommand_data(size: int, name: str) -> bytes:
    """Size 0 means "until the connection closes" (LPRng); our client never sends it."""
    if size < 0:
        raise ValueError("negative size")
    return b"\x03%d %s\n" % (size, _check_name(name))


_DATA_LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
MAX_DATA_FILES = len(_DATA_LETTERS)


def control_name(number: int, host: str) -> str:
    """``cfA`` + three-digit job number (0-999) + host, RFC 1179 §7."""
    if not 0 <= number <= 999:
        raise ValueError(f"job number {number} is not 0-999")
    return f"cfA{number:03d}{host}"


def data_name(number: int, index: int, host: str) -> str:
    """The ``index``-th (0-based) data file of a job: dfA..., dfB..., ... dfZ, dfa ... dfz
    (the convention of BSD lpr and LPRng for several files)."""
    if not 0 <= number <= 999:
        raise ValueError(f"job number {number} is not 0-999")
    if not 0 <= index < MAX_DATA_FILES:
        raise ValueError(f"a job has at most {MAX_DATA_FILES} data files")
    return f"df{_DATA_LETTERS[index]}{number:03d}{host}"


def file_names(number: int, host: str, count: int = 1) -> tuple[str, ...]:
    """The control file name, then the names of ``count`` data files."""
    return (control_name(number, host),) + tuple(data_name(number, i, host) for i in range(count))
