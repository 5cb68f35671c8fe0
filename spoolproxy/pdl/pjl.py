"""PJL (HP Printer Job Language) job headers: what they set, and rewriting them.

A PJL job is UELs (``ESC%-12345X``) and ``@PJL`` lines around sections in a
page description language (``@PJL ENTER LANGUAGE=PCLXL`` starts one; the next UEL
ends it). The engine reads the settings that change what is printed: COPIES
(uncollated copies; the language's own copies command overrides it), QTY
(collated copies of the whole job, multiplying), DUPLEX/BINDING, PAPER and
RENDERMODE. Settings made with SET last until a PJL reset condition: a UEL
outside a JOB/EOJ pair, JOB, EOJ, RESET or INITIALIZE (HP PJL Technical
Reference, "PJL reset condition"). DEFAULT changes the printer's stored defaults,
which we cannot know, so it is ignored.

Headers are small: a line longer than MAX_LINE bytes is not PJL, and whatever
is not PJL is the start of a body.
"""
from __future__ import annotations

import dataclasses
import re

from .model import ONE_SIDED, TWO_SIDED_LONG, TWO_SIDED_SHORT, inches_to_pwg

__all__ = ["UEL", "Env", "Header", "read_header", "rewrite_header", "starts_pjl"]

UEL = b"\x1b%-12345X"
MAX_LINE = 4096
_CHUNK = 65536
_SPACE = b" \t\r\n\f\0"

# ENTER LANGUAGE names → MIME types
LANGUAGES = {
    "PCL": "application/vnd.hp-pcl",
    "PCLXL": "application/vnd.hp-pclxl",
    "POSTSCRIPT": "application/postscript",
    "PDF": "application/pdf",
}

# PJL PAPER values → PWG units (portrait width, height)
PAPER = {
    "LETTER": (21590, 27940), "LEGAL": (21590, 35560), "EXECUTIVE": (18415, 26670),
    "LEDGER": (27940, 43180), "TABLOID": (27940, 43180), "STATEMENT": (13970, 21590),
    "A3": (29700, 42000), "A4": (21000, 29700), "A5": (14800, 21000), "A6": (10500, 14800),
    "B4": (25700, 36400), "B5": (18200, 25700), "JISB4": (25700, 36400), "JISB5": (18200, 25700),
    "COM10": (inches_to_pwg(4.125), inches_to_pwg(9.5)), "DL": (11000, 22000),
    "C5": (16200, 22900), "MONARCH": (inches_to_pwg(3.875), inches_to_pwg(7.5)),
}

ACCOUNT_VARIABLES = frozenset({"ACCOUNT", "ACCT", "ACCOUNTCODE", "ACCOUNTID", "ACCOUNT_ID",
                               "ACCOUNTNUMBER"})
_SET = re.compile(rb"@PJL[ \t]+SET[ \t]+(?:LPARM[ \t]*:[ \t]*\w+[ \t]+)?(\w+)[ \t]*=[ \t]*\"?([^\"\r\n]*?)\"?[ \t]*\r?$",
                  re.IGNORECASE)
_ENTER = re.compile(rb"@PJL[ \t]+ENTER[ \t]+LANGUAGE[ \t]*=[ \t]*(\w+)", re.IGNORECASE)
_COMMAND = re.compile(rb"@PJL[ \t]*(\w*)", re.IGNORECASE)


def starts_pjl(head: bytes) -> bool:
    return head.startswith(UEL) or head[:4].upper() == b"@PJL"


@dataclasses.dataclass(slots=True)
class Env:
    """The PJL current environment, as far as it matters for counting."""
    copies: int = 1
    qty: int = 1
    duplex: bool | None = None
    binding: str = "LONGEDGE"
    paper: str | None = None
    rendermode: str | None = None
    in_job: bool = False
    # who the driver says pays: SET ACCOUNT=..., or JOBATTR="ACCT=..." (drivers that
    # do job accounting in PJL; the value keeps its case)
    account: str | None = None

    def reset(self) -> None:
        in_job = self.in_job
        self.__init__()  # type: ignore[misc]
        self.in_job = in_job

    def set(self, name: str, value: str) -> None:
        name, value = name.upper(), value.strip().upper()
        if name in ("COPIES", "QTY"):
            try:
                n = int(value)
            except ValueError:
                return
            if 1 <= n <= 999_999:
                setattr(self, name.lower(), n)
        elif name == "DUPLEX":
            self.duplex = value == "ON"
        elif name == "BINDING":
            self.binding = value
        elif name == "PAPER":
            self.paper = value
        elif name == "RENDERMODE":
            self.rendermode = value

    @property
    def sides(self) -> str:
        if not self.duplex:
            return ONE_SIDED
        return TWO_SIDED_SHORT if self.binding == "SHORTEDGE" else TWO_SIDED_LONG

    @property
    def media(self) -> tuple[int, int] | None:
        return PAPER.get(self.paper or "")


@dataclasses.dataclass(frozen=True, slots=True)
class Header:
    """A run of PJL from ``start`` to ``body``. ``language`` is the ENTER
    LANGUAGE keyword (upper case), or None when the PJL ended without one
    (the body's language is then found by content) or at end of file."""
    start: int
    body: int
    language: str | None


def read_header(f, pos: int, env: Env) -> Header:
    """Read UELs, blank space and @PJL lines from ``pos`` and update ``env``.
    Stops after an ENTER LANGUAGE line, at the first byte that is not PJL, or at
    end of file."""
    start = pos
    f.seek(pos)
    buf = f.read(_CHUNK)
    base = pos
    i = 0
    while True:
        if len(buf) - i < MAX_LINE + len(UEL):  # keep a whole line in view
            f.seek(base + len(buf))
            more = f.read(_CHUNK)
            if more:
                buf = buf[i:] + more
                base += i
                i = 0
        if i >= len(buf):
            return Header(start, base + i, None)
        c = buf[i]
        if c in _SPACE and (start > 0 or base + i > start):  # blank space around PJL, not before a document
            i += 1
        elif buf.startswith(UEL, i):
            i += len(UEL)
            if not env.in_job:
                env.reset()
        elif buf[i:i + 4].upper() == b"@PJL":
            eol = buf.find(b"\n", i, i + MAX_LINE)
            if eol < 0:
                if len(buf) - i >= MAX_LINE:  # too long to be a PJL line
                    return Header(start, base + i, None)
                eol = len(buf)  # last line of the file
            line = buf[i:eol]
            i = min(eol + 1, len(buf))
            language = _apply(line, env)
            if language is not None:
                return Header(start, base + i, language)
        else:
            return Header(start, base + i, None)


def _apply(line: bytes, env: Env) -> str | None:
    """Apply one @PJL line to ``env``; the language if it is an ENTER."""
    m = _ENTER.match(line)
    if m:
        return m[1].decode("ascii").upper()
    m = _SET.match(line.rstrip(b"\r"))
    if m:
        name, value = m[1].decode("ascii").upper(), m[2].decode("latin-1").strip()
        if name == "JOBATTR" and "=" in value:
            name, value = value.split("=", 1)
            name, value = name.strip().lstrip("@").upper(), value.strip()
        if name in ACCOUNT_VARIABLES:
            env.account = value or None
        else:
            env.set(name, value)
        return None
    m = _COMMAND.match(line)
    command = m[1].upper() if m else b""
    if command == b"JOB":
        env.reset()
        env.in_job = True
    elif command == b"EOJ":
        env.in_job = False
        env.reset()
    elif command in (b"RESET", b"INITIALIZE"):
        env.reset()
    return None


def rewrite_header(raw: bytes, settings: dict[str, str]) -> bytes:
    """``raw`` (PJL header bytes, ending with its ENTER line if it has one) with
    ``@PJL SET NAME=VALUE`` for each of ``settings``: every existing SET of the same
    name is replaced in place, the others are added just before the ENTER line
    (or at the end when there is none). Every other byte is kept."""
    todo = {k.upper(): v for k, v in settings.items()}
    newline = b"\r\n" if b"\r\n" in raw else b"\n"
    seen: set[str] = set()

    def replace(m: re.Match) -> bytes:
        name = m[1].decode("ascii").upper()
        if name not in todo:
            return m[0]
        seen.add(name)
        return b"@PJL SET " + name.encode() + b"=" + todo[name].encode()

    out = re.sub(rb"@PJL[ \t]+SET[ \t]+(\w+)[ \t]*=[^\r\n]*", replace, raw, flags=re.IGNORECASE)
    added = b"".join(b"@PJL SET " + k.encode() + b"=" + v.encode() + newline
                     for k, v in todo.items() if k not in seen)
    enters = list(re.finditer(rb"@PJL[ \t]+ENTER", out, re.IGNORECASE))
    if not enters:
        return out + added
    at = enters[-1].start()
    return out[:at] + added + out[at:]
