"""PostScript: pages, copies, sides and media from the DSC comments and the
setpagedevice keys; grayscale and duplex conversions.

This is the specification: ``ext/postscript.pyx`` (``spoolproxy._ext.postscript``)
is its compiled twin and must return the same values and raise the same
exceptions for every input.

How a section is read (the tokenizer; both twins do exactly this):

* The file is read in chunks; an event is only looked at with ``LOOK`` bytes of
  the file after it in memory (or the end of the section), so no line is ever
  read whole and results do not depend on where chunks end.
* A DSC comment is ``%%`` at the start of a line (the section's first byte, or a
  byte after CR or LF; CR, LF and CRLF all end lines). Its text is what follows
  ``%%`` up to the line end, at most ``LINE_MAX`` bytes.
* ``%%BeginBinary: n`` and ``%%BeginData: n [type [Bytes|Lines]]`` skip n bytes
  (or n lines) after the comment's line end unseen, nested documents included.
* A key is ``/NumCopies``, ``/#copies``, ``/Duplex``, ``/Tumble`` or ``/PageSize``
  followed by a delimiter; its value (an integer, ``null``, ``true``/``false``, or
  ``[w h]``) must be within ``VALUE_WINDOW`` bytes. Keys are taken wherever they
  appear at document level (a key in a string or comment counts too: documents do
  not write these names other than to set them).
* The Universal Exit Language ``ESC%-12345X`` ends the section (not inside
  skipped binary data); the offset just past it is returned.

What the events mean (``_Doc``):

* Pages: the ``%%Page:`` comments at document level (not inside
  ``%%BeginDocument``/``%%EndDocument``, which nest) are counted and checked
  against ``%%Pages:`` (the header's value, or the trailer's when the header says
  ``(atend)``). When both are there they must agree; without page comments the
  ``%%Pages:`` count (> 0) is used. Anything else raises ``NeedsInterpreter``:
  the dispatcher counts such a file with Ghostscript.
* A page takes the state current when it ends (at the next ``%%Page:``, the
  ``%%Trailer`` or the end of the section): copies (``/NumCopies`` n, else
  ``/#copies`` n, else ``%%Requirements: numcopies(n)``, else the PJL default),
  sides (``/Duplex``, ``/Tumble``, ``%%IncludeFeature:``/``%%BeginFeature:``
  ``*Duplex``, ``%%Requirements: duplex[(tumble)]``), media (``/PageSize``, else
  ``%%PageMedia:`` named in ``%%DocumentMedia:``, else the first
  ``%%DocumentMedia:``, else a ``%%PageBoundingBox:`` at the origin, else
  ``*PageSize`` features, else the PJL default).
* Colour is only decided when the document says so reliably: a page is gray if
  ``%%PageProcessColors:`` (or the whole document's ``%%DocumentProcessColors:``)
  lists at most Black and no custom (spot) colours are listed; every other page
  has ``color=None`` and the dispatcher asks Ghostscript's inkcov device.
"""
from __future__ import annotations

import re
from typing import Iterator

from spoolproxy.pdl.model import (
    ONE_SIDED, TWO_SIDED_LONG, TWO_SIDED_SHORT, PageRun, RunBuilder, points_to_pwg,
    NeedsInterpreter,
)

__all__ = ["NeedsInterpreter", "scan", "to_grayscale", "to_duplex", "CHUNK", "LOOK", "LINE_MAX",
           "VALUE_WINDOW", "GRAY_PROLOG"]

CHUNK = 1 << 20
LOOK = 512            # bytes of the file an event may look at after its start
LINE_MAX = 256        # DSC lines are at most 255 characters
VALUE_WINDOW = 128    # a key's value must start and end within this many bytes after the key
MAX_MEDIA_NAMES = 64  # %%DocumentMedia entries remembered
MAX_COLOR_NAMES = 16  # process colour names remembered per set
UEL = b"\x1b%-12345X"


_DELIM = rb"[ \t\r\n\f\x00()<>\[\]{}/%]"
_EVENT = re.compile(rb"(?<=[\r\n])%%|\x1b%-12345X|/(NumCopies|\#copies|Duplex|Tumble|PageSize)(?=" + _DELIM + rb"|\Z)")
_WS = rb"[ \t\r\n\f\x00]*"
_REAL = rb"[+-]?(?:[0-9]{1,7}(?:\.[0-9]{0,6})?|\.[0-9]{1,6})"
_INT_VALUE = re.compile(_WS + rb"([0-9]{1,9}|null)(?=" + _DELIM + rb"|\Z)")
_BOOL_VALUE = re.compile(_WS + rb"(true|false)(?=" + _DELIM + rb"|\Z)")
_SIZE_VALUE = re.compile(_WS + rb"\[" + _WS + rb"(" + _REAL + rb")[ \t\r\n\f\x00]+(" + _REAL + rb")" + _WS + rb"\]")
_INT_TOKEN = re.compile(rb"[0-9]{1,9}")
_REAL_TOKEN = re.compile(_REAL)
_EOL = re.compile(rb"\r\n|\r|\n")
_SPLIT = re.compile(rb"[ \t]+")

# *PageSize / *PageRegion feature names (PPD), in points
_NAMED_SIZES = {
    b"Letter": (612, 792), b"Legal": (612, 1008), b"Executive": (522, 756), b"Tabloid": (792, 1224),
    b"Ledger": (1224, 792), b"A3": (842, 1191), b"A4": (595, 842), b"A5": (420, 595), b"B5": (516, 729),
}
_FEATURE_SIDES = {b"DuplexNoTumble": TWO_SIDED_LONG, b"DuplexTumble": TWO_SIDED_SHORT, b"None": ONE_SIDED}


def _real(tok: bytes) -> float | None:
    return float(tok) if _REAL_TOKEN.fullmatch(tok) else None


def _size(w: float | None, h: float | None) -> tuple[int, int] | None:
    """Points to PWG units, when both are plausible page lengths."""
    if w is None or h is None or not (0 < w <= 100000 and 0 < h <= 100000):
        return None
    return points_to_pwg(w), points_to_pwg(h)


def _args(text: bytes, kw_len: int) -> list[bytes]:
    return [a for a in _SPLIT.split(text[kw_len:]) if a]


def _keyword(text: bytes) -> bytes:
    """The DSC keyword: up to and including a colon, or up to a blank."""
    m = re.match(rb"[^ \t:]*:?", text)
    return m.group() if m else b""


def _add_names(names: set | None, more: list[bytes]) -> set:
    """A colour-name set with more names; it stops growing at MAX_COLOR_NAMES (by then it
    surely holds more than Black, which is all that is asked of it)."""
    names = set() if names is None else names
    for n in more:
        if len(names) >= MAX_COLOR_NAMES:
            break
        names.add(n)
    return names


def skip_after(text: bytes) -> tuple[int, bool]:
    """(n, in_lines) for a %%BeginBinary / %%BeginData comment's text, else (0, False)."""
    kw = _keyword(text)
    if kw not in (b"BeginBinary:", b"BeginData:"):
        return 0, False
    args = _args(text, len(kw))
    if not args or not re.fullmatch(rb"[0-9]{1,15}", args[0]):
        return 0, False
    lines = kw == b"BeginData:" and len(args) >= 3 and args[2] == b"Lines"
    return int(args[0]), lines


# --- the tokenizer ---------------------------------------------------------------------------

class _Tokenizer:
    """Events of one section, in order: ("dsc", at, text, data_start), ("key", at, name, value,
    value_start, value_end) and ("uel", at, end). Offsets are absolute file offsets;
    data_start is where a BeginBinary/BeginData payload starts (None if not one)."""

    def __init__(self, f, start: int, end: int | None) -> None:
        self.f = f
        self.next_read = start
        self.limit_off = end
        self.buf = b"\n"        # one byte of history: the section starts a line
        self.base = start - 1   # file offset of buf[0]
        self.pos = 1
        self.eof = False

    def _refill(self) -> None:
        keep = self.pos - 1     # keep one byte before pos for the line-start look-behind
        want = CHUNK
        if self.limit_off is not None:
            want = min(want, self.limit_off - self.next_read)
        data = b""
        if want > 0:
            self.f.seek(self.next_read)
            data = self.f.read(want)
        if not data:
            self.eof = True
        self.next_read += len(data)
        self.buf = self.buf[keep:] + data
        self.base += keep
        self.pos = 1

    def end_offset(self) -> int:
        return self.base + len(self.buf)

    def __iter__(self) -> Iterator[tuple]:
        skip_bytes = 0
        skip_lines = 0
        while True:
            if not self.eof and len(self.buf) - self.pos < LOOK + 1:
                self._refill()
                continue
            buf, pos, n = self.buf, self.pos, len(self.buf)
            limit = n if self.eof else n - LOOK
            if skip_bytes:
                take = min(skip_bytes, n - pos)
                self.pos = pos + take
                skip_bytes -= take
                if skip_bytes and self.eof:
                    return
                continue
            if skip_lines:
                while skip_lines and pos < limit:
                    m = _EOL.search(buf, pos, limit + 1 if limit < n else n)
                    if m is None or m.start() >= limit:
                        pos = limit
                        break
                    pos = m.end()
                    skip_lines -= 1
                self.pos = pos
                if skip_lines and self.eof:
                    return
                continue
            if pos >= limit:
                return  # only at the end: otherwise the refill above keeps LOOK bytes ahead
            m = _EVENT.search(buf, pos)
            if m is None or m.start() >= limit:
                self.pos = max(pos, limit)
                if self.eof:
                    return
                continue
            at = m.start()
            c = buf[at]
            if c == 0x25:  # %%
                stop = min(at + LINE_MAX, n)
                eol = at + 2
                while eol < stop and buf[eol] not in (0x0D, 0x0A):
                    eol += 1
                text = buf[at + 2:eol]
                data_start = None
                if eol < stop:
                    data_start = eol + (2 if buf[eol] == 0x0D and buf[eol + 1:eol + 2] == b"\n" else 1)
                    nskip, in_lines = skip_after(text)
                    if nskip:
                        self.pos = data_start
                        if in_lines:
                            skip_lines = nskip
                        else:
                            skip_bytes = nskip
                        yield ("dsc", self.base + at, text, self.base + data_start)
                        continue
                self.pos = eol
                yield ("dsc", self.base + at, text, None)
            elif c == 0x1B:
                self.pos = m.end()
                yield ("uel", self.base + at, self.base + m.end())
                return
            else:
                name = m.group(1)
                self.pos = m.end()
                window_end = min(m.end() + VALUE_WINDOW, n)
                value, vs, ve = _value(name, buf, m.end(), window_end)
                yield ("key", self.base + at, name, value,
                       None if vs is None else self.base + vs, None if ve is None else self.base + ve)


_NOVALUE = object()


def _value(name: bytes, buf: bytes, pos: int, end: int):
    """(value, start, end) of a key's value token, or (_NOVALUE, None, None)."""
    if name in (b"NumCopies", b"#copies"):
        m = _INT_VALUE.match(buf, pos, end)
        if m:
            tok = m.group(1)
            return (None if tok == b"null" else int(tok)), m.start(1), m.end(1)
    elif name in (b"Duplex", b"Tumble"):
        m = _BOOL_VALUE.match(buf, pos, end)
        if m:
            return m.group(1) == b"true", m.start(1), m.end(1)
    else:
        m = _SIZE_VALUE.match(buf, pos, end)
        if m:
            return _size(float(m.group(1)), float(m.group(2))), m.start(1), m.end(2)
    return _NOVALUE, None, None


# --- what the events mean ----------------------------------------------------------------------

class _Doc:
    def __init__(self, sides: str, media, copies: int) -> None:
        self.depth = 0
        self.in_trailer = False
        self.header_pages = None      # int, "atend" or None
        self.trailer_pages = None
        self.page_open = False
        self.page_comments = 0
        self.runs = RunBuilder()
        self.num_copies = None        # /NumCopies
        self.hash_copies = None       # /#copies
        self.req_copies = None        # %%Requirements: numcopies(n)
        self.default_copies = copies
        self.sides = sides
        self.tumble = sides == TWO_SIDED_SHORT
        self.page_size = None         # /PageSize
        self.feature_size = None      # *PageSize feature
        self.media_names: dict[bytes, tuple[int, int]] = {}
        self.doc_media = None         # first %%DocumentMedia entry
        self.pjl_media = media
        self.page_media = None
        self.page_bbox = None
        self.page_colors = None       # set of names from %%PageProcessColors
        self.page_custom = False
        self.doc_colors = None        # set of names, None when not said
        self.doc_custom = False
        self.last_kw = b""

    # state

    def copies(self) -> int:
        for c in (self.num_copies, self.hash_copies, self.req_copies):
            if c is not None:
                return c
        return self.default_copies

    def media(self):
        for m in (self.page_size, self.media_names.get(self.page_media) if self.page_media else None,
                  self.doc_media, self.page_bbox, self.feature_size):
            if m is not None:
                return m
        return self.pjl_media

    def page_color(self):
        if self.page_colors is not None and not self.page_custom and self.page_colors <= {b"Black"}:
            return False
        return None

    def close_page(self) -> None:
        if self.page_open:
            self.runs.add(self.page_color(), self.sides, self.media(), self.copies())
            self.page_open = False

    def set_duplex(self, duplex: bool) -> None:
        self.sides = (TWO_SIDED_SHORT if self.tumble else TWO_SIDED_LONG) if duplex else ONE_SIDED

    def set_tumble(self, tumble: bool) -> None:
        self.tumble = tumble
        if self.sides != ONE_SIDED:
            self.set_duplex(True)

    # events

    def key(self, name: bytes, value) -> None:
        if self.depth or value is _NOVALUE:
            return
        if name == b"NumCopies":
            if value is None or value >= 1:
                self.num_copies = value
        elif name == b"#copies":
            if value is not None and value >= 1:
                self.hash_copies = value
        elif name == b"Duplex":
            self.set_duplex(value)
        elif name == b"Tumble":
            self.set_tumble(value)
        elif value is not None:
            self.page_size = value

    def dsc(self, text: bytes) -> None:
        kw = _keyword(text)
        args = _args(text, len(kw))
        if kw == b"+":  # continues the line before, when that is a list
            kw = self.last_kw if self.last_kw in _CONTINUABLE else b""
        else:
            self.last_kw = kw
            if kw in (b"BeginDocument:", b"BeginDocument"):
                self.depth += 1
                return
            if kw == b"EndDocument":
                self.depth = max(0, self.depth - 1)
                return
        if self.depth:
            return
        handler = _HANDLERS.get(kw)
        if handler is not None:
            handler(self, args)

    def repeat(self, k: int) -> None:
        """``k`` more page groups exactly like the last one (its ``%%Page:`` and the same
        events after it, none of them Begin/EndDocument or Trailer): each would close the
        open page and leave an identical one open, so k pages like the open one are
        added. The compiled twin uses this for runs of identical pages."""
        if self.depth == 0 and self.page_open:
            self.runs.add(self.page_color(), self.sides, self.media(), self.copies(), count=k)
            self.page_comments += k

    def on_page(self, args) -> None:
        self.close_page()
        self.in_trailer = False
        self.page_open = True
        self.page_comments += 1
        self.page_media = self.page_bbox = self.page_colors = None
        self.page_custom = False

    def on_trailer(self, args) -> None:
        self.close_page()
        self.in_trailer = True

    def on_pages(self, args) -> None:
        if not args:
            return
        v = "atend" if args[0] == b"(atend)" else int(args[0]) if _INT_TOKEN.fullmatch(args[0]) else None
        if v is None:
            return
        if self.in_trailer:
            self.trailer_pages = v
        elif self.header_pages is None:
            self.header_pages = v

    def on_requirements(self, args) -> None:
        for a in args:
            m = re.fullmatch(rb"numcopies\(([0-9]{1,9})\)", a)
            if m and int(m.group(1)) >= 1:
                self.req_copies = int(m.group(1))
            elif a == b"duplex":
                self.tumble = False
                self.set_duplex(True)
            elif a == b"duplex(tumble)":
                self.tumble = True
                self.set_duplex(True)

    def on_feature(self, args) -> None:
        if len(args) < 2:
            return
        if args[0] == b"*Duplex" and args[1] in _FEATURE_SIDES:
            self.sides = _FEATURE_SIDES[args[1]]
            self.tumble = self.sides == TWO_SIDED_SHORT
        elif args[0] in (b"*PageSize", b"*PageRegion") and args[1] in _NAMED_SIZES:
            self.feature_size = _size(*_NAMED_SIZES[args[1]])

    def on_document_media(self, args) -> None:
        if len(args) < 3:
            return
        size = _size(_real(args[1]), _real(args[2]))
        if size is None:
            return
        if self.doc_media is None:
            self.doc_media = size
        if len(self.media_names) < MAX_MEDIA_NAMES:
            self.media_names.setdefault(args[0], size)

    def on_page_media(self, args) -> None:
        if args and self.page_open:
            self.page_media = args[0]

    def on_page_bbox(self, args) -> None:
        if len(args) < 4 or not self.page_open:
            return
        llx, lly, urx, ury = (_real(a) for a in args[:4])
        if llx == 0 and lly == 0:
            self.page_bbox = _size(urx, ury)

    def on_doc_colors(self, args) -> None:
        if args == [b"(atend)"]:
            return
        self.doc_colors = _add_names(self.doc_colors, args)

    def on_doc_custom(self, args) -> None:
        if args and args != [b"(atend)"]:
            self.doc_custom = True

    def on_page_colors(self, args) -> None:
        if self.page_open:
            self.page_colors = _add_names(self.page_colors, args)

    def on_page_custom(self, args) -> None:
        if args and self.page_open:
            self.page_custom = True

    def finish(self) -> tuple[PageRun, ...]:
        self.close_page()
        declared = self.header_pages
        if declared is None or declared == "atend":
            declared = self.trailer_pages if self.trailer_pages != "atend" else None
        counted = self.page_comments
        if counted == 0:
            if not declared:
                raise NeedsInterpreter("no %%Page: comments and no %%Pages: count")
            self.runs.add(None, self.sides, self.media(), self.copies(), count=declared)
        elif declared is not None and declared != counted:
            raise NeedsInterpreter(f"%%Pages: says {declared} but there are {counted} %%Page: comments")
        runs = self.runs.runs()
        gray = isinstance(self.doc_colors, set) and self.doc_colors <= {b"Black"} and not self.doc_custom
        if gray:
            b = RunBuilder()
            for r in runs:
                b.add(False, r.sides, r.media, r.copies, r.count)
            runs = b.runs()
        return runs


_HANDLERS = {
    b"Page:": _Doc.on_page,
    b"Trailer": _Doc.on_trailer,
    b"Pages:": _Doc.on_pages,
    b"Requirements:": _Doc.on_requirements,
    b"IncludeFeature:": _Doc.on_feature,
    b"BeginFeature:": _Doc.on_feature,
    b"DocumentMedia:": _Doc.on_document_media,
    b"PageMedia:": _Doc.on_page_media,
    b"PageBoundingBox:": _Doc.on_page_bbox,
    b"DocumentProcessColors:": _Doc.on_doc_colors,
    b"DocumentCustomColors:": _Doc.on_doc_custom,
    b"PageProcessColors:": _Doc.on_page_colors,
    b"PageCustomColors:": _Doc.on_page_custom,
}


# comments whose values may go on in %%+ lines
_CONTINUABLE = frozenset((b"Requirements:", b"DocumentMedia:", b"DocumentProcessColors:", b"DocumentCustomColors:",
                          b"PageProcessColors:", b"PageCustomColors:"))


def _check_sides(sides: str) -> None:
    if sides not in (ONE_SIDED, TWO_SIDED_LONG, TWO_SIDED_SHORT):
        raise ValueError(f"unknown sides {sides!r}")


def scan(f, start: int = 0, *, sides: str = ONE_SIDED, media=None, copies: int = 1):
    """(pages as runs, offset just past the section) of the PostScript section at ``start``."""
    _check_sides(sides)
    doc = _Doc(sides, media, copies)
    tok = _Tokenizer(f, start, None)
    end = None
    for ev in tok:
        kind = ev[0]
        if kind == "dsc":
            doc.dsc(ev[2])
        elif kind == "key":
            doc.key(ev[2], ev[3])
        else:
            end = ev[2]
    if end is None:
        end = tok.end_offset()
    return doc.finish(), end


# --- conversions -------------------------------------------------------------------------------

GRAY_PROLOG = b"""% spoolproxy: print in gray (every colour space mapped to its luma in DeviceGray)
userdict /spoolproxy.gray known not {
userdict begin
/spoolproxy.gray true def
/spoolproxy.setcs /setcolorspace load def
/spoolproxy.luma3 { 0.11 mul exch 0.59 mul add exch 0.3 mul add } bind def
/spoolproxy.luma4 { 4 1 roll spoolproxy.luma3 add 1 exch sub dup 0 lt { pop 0 } if } bind def
/spoolproxy.rgb [/DeviceN [/SpoolproxyR /SpoolproxyG /SpoolproxyB] /DeviceGray /spoolproxy.luma3 load] def
/spoolproxy.cmyk [/DeviceN [/SpoolproxyC /SpoolproxyM /SpoolproxyY /SpoolproxyK] /DeviceGray /spoolproxy.luma4 load] def
/spoolproxy.tint {
  dup type /nametype eq { 1 array astore } if 0 get
  dup /DeviceGray eq { pop } {
  /DeviceCMYK eq { /spoolproxy.luma4 } { /spoolproxy.luma3 } ifelse load
  [ 3 1 roll /exec load exch /exec load ] cvx } ifelse
} bind def
/spoolproxy.inks [""" + b" ".join(b"/SpoolproxyInk%d" % i for i in range(32)) + b"""] def
/spoolproxy.fam 12 dict def
spoolproxy.fam begin
/DeviceRGB { pop spoolproxy.rgb } bind def
/CalRGB { pop spoolproxy.rgb } bind def
/CIEBasedABC { pop spoolproxy.rgb } bind def
/Lab { pop spoolproxy.rgb } bind def
/DeviceCMYK { pop spoolproxy.cmyk } bind def
/ICCBased { dup 1 get /N get dup 3 eq { pop pop spoolproxy.rgb } { 4 eq { pop spoolproxy.cmyk } if } ifelse } bind def
/Indexed { dup length array copy dup dup 1 get spoolproxy.cs 1 exch put } bind def
/Separation { dup length array copy
  dup 1 get dup /All eq exch /None eq or not { dup 1 /SpoolproxySep put } if
  dup dup 3 get 1 index 2 get spoolproxy.tint 3 exch put dup 2 /DeviceGray put } bind def
/DeviceN { dup length array copy
  dup 1 get [ exch { /None eq { /None } { counttomark spoolproxy.inks exch get } ifelse } forall ]
  1 index exch 1 exch put
  dup dup 3 get 1 index 2 get spoolproxy.tint 3 exch put dup 2 /DeviceGray put } bind def
/Pattern { dup length 1 gt { dup length array copy dup dup 1 get spoolproxy.cs 1 exch put } if } bind def
end
/spoolproxy.cs { dup type /nametype eq { 1 array astore } if
  spoolproxy.fam 1 index 0 get known { spoolproxy.fam 1 index 0 get get exec } if } bind def
/setcolorspace { spoolproxy.cs spoolproxy.setcs } bind def
/setrgbcolor { spoolproxy.rgb spoolproxy.setcs setcolor } bind def
/setcmykcolor { spoolproxy.cmyk spoolproxy.setcs setcolor } bind def
/sethsbcolor { sethsbcolor currentrgbcolor setrgbcolor } bind def
/shfill { dup length dict copy dup /ColorSpace 2 copy get spoolproxy.cs put shfill } bind def
/spoolproxy.ci 8 dict def
/colorimage { dup 1 eq { pop pop image } {
  spoolproxy.ci begin
  /n exch def /multi exch def
  multi { n array astore } if /src exch def
  /m exch def /b exch def /h exch def /w exch def
  gsave n 4 eq { spoolproxy.cmyk } { spoolproxy.rgb } ifelse spoolproxy.setcs
  << /ImageType 1 /Width w /Height h /BitsPerComponent b /ImageMatrix m /DataSource src
     /MultipleDataSources multi /Decode n 4 eq { [0 1 0 1 0 1 0 1] } { [0 1 0 1 0 1] } ifelse >>
  end image grestore } ifelse } bind def
end
} if
"""


def _duplex_code(sides: str) -> bytes:
    feature = {ONE_SIDED: b"None", TWO_SIDED_LONG: b"DuplexNoTumble", TWO_SIDED_SHORT: b"DuplexTumble"}[sides]
    values = (b"/Duplex false" if sides == ONE_SIDED else
              b"/Duplex true /Tumble " + (b"true" if sides == TWO_SIDED_SHORT else b"false"))
    return (b"[{\n%%BeginFeature: *Duplex " + feature + b"\n<< " + values + b" >> setpagedevice\n"
            b"%%EndFeature\n} stopped cleartomark\n")


def _plan(f, start: int, end: int | None) -> tuple[int, int, bool]:
    """(where the gray prolog goes, where the duplex setup goes, whether that needs its own
    %%BeginSetup/%%EndSetup): after the header comments / before the prolog; in the setup
    section, else in a new one before the first page."""
    depth = 0
    after_header = before_prolog = end_setup = first_page = None
    first_line_end = None
    tok = _Tokenizer(f, start, end)
    for ev in tok:
        if ev[0] != "dsc":
            if ev[0] == "uel":
                break
            continue
        at, text = ev[1], ev[2]
        kw = _keyword(text)
        if kw in (b"BeginDocument:", b"BeginDocument"):
            depth += 1
        elif kw == b"EndDocument":
            depth = max(0, depth - 1)
        elif depth == 0:
            if kw == b"EndComments" and after_header is None:
                after_header = _line_end(f, at)
            elif kw == b"BeginProlog" and before_prolog is None:
                before_prolog = at
            elif kw == b"EndSetup" and end_setup is None:
                end_setup = at
            elif kw == b"Page:":
                first_page = at
                break
    gray_at = after_header if after_header is not None else before_prolog
    if gray_at is None:  # after the %! line, else at the very start
        f.seek(start)
        first_line_end = _line_end(f, start) if f.read(2) == b"%!" else None
        gray_at = first_line_end if first_line_end is not None else start
    if end_setup is not None:
        return gray_at, end_setup, False
    if first_page is not None:
        return gray_at, first_page, True
    return gray_at, gray_at, False


def _line_end(f, at: int) -> int | None:
    """Offset just past the end of the line that starts at ``at`` (within LINE_MAX bytes)."""
    f.seek(at)
    line = f.read(LINE_MAX + 1)
    m = _EOL.search(line)
    return at + m.end() if m and m.start() < LINE_MAX else None


def _copy(f, out, frm: int, to: int) -> None:
    f.seek(frm)
    left = to - frm
    while left > 0:
        data = f.read(min(CHUNK, left))
        if not data:
            break
        out.write(data)
        left -= len(data)


def _section_end(f, end: int | None) -> int:
    if end is None:
        f.seek(0, 2)
        return f.tell()
    return end


def _rewrite(f, out, start: int, end: int | None, inserts: dict[int, bytes], edit) -> None:
    """Copy the section, inserting ``inserts[offset]`` before that offset and replacing
    the spans ``edit(event)`` returns (start, end, bytes) or None."""
    stop = _section_end(f, end)
    edits = []
    pos = start
    pending = sorted(inserts.items())
    for ev in _Tokenizer(f, start, end):
        e = edit(ev)
        if e is None:
            continue
        edits.append(e)
        if len(edits) >= 1024:
            pos = _apply(f, out, pos, edits, pending)
            edits = []
    pos = _apply(f, out, pos, edits, pending)
    for at, data in pending:
        _copy(f, out, pos, at)
        pos = max(pos, at)
        out.write(data)
    pending.clear()
    _copy(f, out, pos, stop)


def _apply(f, out, pos: int, edits, pending) -> int:
    for s, e, data in edits:
        while pending and pending[0][0] <= s:
            at, ins = pending.pop(0)
            _copy(f, out, pos, at)
            pos = max(pos, at)
            out.write(ins)
        _copy(f, out, pos, s)
        out.write(data)
        pos = e
    return pos


def to_grayscale(f, out, start: int = 0, end: int | None = None) -> None:
    """Write the section with a prolog that maps every colour to its gray (luma) inserted
    after the header comments, before any procedure could bind the colour operators."""
    gray_at, _, _ = _plan(f, start, end)
    _rewrite(f, out, start, end, {gray_at: GRAY_PROLOG}, lambda ev: None)


def to_duplex(f, out, sides: str, start: int = 0, end: int | None = None) -> None:
    """Write the section printing on ``sides``: a ``setpagedevice`` (guarded by ``stopped``,
    as PPD features are) in the setup section, and every ``/Duplex``/``/Tumble`` value and
    ``*Duplex`` feature comment in the document rewritten to match."""
    _check_sides(sides)
    _, at, wrap = _plan(f, start, end)
    code = _duplex_code(sides)
    if wrap:
        code = b"%%BeginSetup\n" + code + b"%%EndSetup\n"
    feature = {ONE_SIDED: b"None", TWO_SIDED_LONG: b"DuplexNoTumble", TWO_SIDED_SHORT: b"DuplexTumble"}[sides]

    def edit(ev):
        if ev[0] == "key":
            name, value, vs, ve = ev[2], ev[3], ev[4], ev[5]
            if name == b"Duplex" and value is not _NOVALUE:
                return vs, ve, b"false" if sides == ONE_SIDED else b"true"
            if name == b"Tumble" and value is not _NOVALUE and sides != ONE_SIDED:
                return vs, ve, b"true" if sides == TWO_SIDED_SHORT else b"false"
        elif ev[0] == "dsc":
            text = ev[2]
            m = re.match(rb"(?:IncludeFeature|BeginFeature):[ \t]*\*Duplex[ \t]+([^ \t]+)", text)
            if m:
                s = ev[1] + 2 + m.start(1)
                return s, s + len(m.group(1)), feature
        return None

    _rewrite(f, out, start, end, {at: code}, edit)
