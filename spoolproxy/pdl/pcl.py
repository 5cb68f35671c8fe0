"""PCL 5 (5e and 5c, and the PCL 3/4 subset): pages, copies, sides, media and colour
from an escape-sequence tokenizer; grayscale and duplex conversions.

This is the specification: ``ext/pcl.pyx`` (``spoolproxy._ext.pcl``) is its compiled
twin and must return the same values and raise the same exceptions for every input.

Tokenizer:

* ``ESC c`` with c in 0x30..0x7E is a two-character command (``ESC E`` is the reset).
* ``ESC p [g] value param [value param ...]``: p in 0x21..0x2F, an optional group
  character g in 0x60..0x7E, then value fields (sign, up to ``MAX_VALUE_CHARS``
  digits and a decimal fraction; the integer part is used) each ended by a
  parameter character: lowercase (0x60..0x7E) continues the combined sequence,
  uppercase (0x40..0x5E) ends it; anything else ends it unconsumed.
* Binary payloads follow a parameter and are skipped by their byte count: every
  ``W`` parameter (raster rows, fonts, patterns, palettes, configure image data,
  ...), ``ESC*b#V`` (a raster plane) and ``ESC&p#X`` (transparent print data).
* ``ESC%#B`` enters HP-GL/2 (left by ``ESC%#A`` or ``ESC E``): mnemonics are read
  for their page effects only: drawing commands mark the page in the current pen's
  colour, ``SP`` selects a pen; ``PG`` is ignored, as PCL 5 printers ignore it in
  HP-GL/2 entered from PCL (dual-context mode); labels (``LB``, ``BL``, to the
  terminator set by ``DT``, ETX by default), ``PE`` data (to ``;``) and ``CO``
  comments are skipped.
* ``ESC%-12345X`` (UEL) ends the section; the offset just past it is returned.

Pages: a form feed (outside HP-GL/2) always ejects a page, blank or not: printers
and Ghostscript's own PCL interpreter print a blank sheet for it, and Ghostscript's
ljet4 device writes a blank page as just a form feed. A page with something marked
on it is also ejected by a reset ``ESC E``, ``ESC&l#H`` (paper source / eject),
``ESC&l#A`` (page size), ``ESC&l#S`` (simplex/duplex), and the end
of the section; on an unmarked page these eject nothing.
Marks are printable text characters (0x21..0x7E, 0xA1..0xFE), raster data with
bytes, transparent data, rectangles ``ESC*c#P`` other than white fill (1), and
HP-GL/2 drawing. The page takes copies (``ESC&l#X``), sides (``ESC&l#S``: 0 simplex,
1 long edge, 2 short edge) and media (``ESC&l#A``) current when it is ejected; a
reset restores the defaults the PJL header gave.

Colour (conservative: a page that might put colour on paper is colour):

* The palette is tracked as "is entry i off the neutral axis": ``ESC*r#U`` (1 gray,
  3 RGB, -3 CMY: the fixed 8-entry simple-colour palettes), ``ESC*v#W`` (configure
  image data: colour space, pixel encoding mode, bits per index; default entries
  are taken as the simple-colour order for 2 bits and more, white/black for 1 bit),
  ``ESC*v#A/#B/#C`` + ``ESC*v#I`` (assign an entry; neutral when the three components
  are equal, for the luminance-chrominance and L*a*b* spaces when both chroma
  components are 0), ``ESC*v#S`` (foreground).
* Text, rules and mono raster mark in the foreground colour; HP-GL/2 in the pen's.
* Raster rows: when the palette has a colour entry, or the pixels are direct colour
  (configure image data pixel encoding 2 or 3), each row's planes are decoded
  (compression methods 0 none, 1 run length, 2 PackBits, 3 delta row against the seed
  rows; ``ESC*b#M``) and the row is colour when a pixel, within the source width
  ``ESC*r#S`` when set, is: its palette entry is colour (indexed by plane or by
  pixel with 1, 2, 4 or 8 bits), or its primaries differ (direct by plane; direct by
  pixel with 8 bits per primary, RGB or CMY spaces). A row that cannot be decoded
  (another method, a plane row over ``ROW_MAX`` bytes or a payload over
  ``ROW_DATA_MAX``, more than ``MAX_PLANES`` planes, other direct formats, a delta
  row whose seed was not kept) counts as colour. Otherwise raster rows are not
  decoded: they mark in the foreground colour (gray palettes: never colour).
"""
from __future__ import annotations

import re

from spoolproxy.pdl.model import (
    ONE_SIDED, TWO_SIDED_LONG, TWO_SIDED_SHORT, RunBuilder, inches_to_pwg,
)

__all__ = ["scan", "to_grayscale", "to_duplex", "PAGE_SIZES", "CHUNK", "LOOK", "MAX_VALUE_CHARS"]

CHUNK = 1 << 20
LOOK = 64              # bytes a command may look at from its start
MAX_VALUE_CHARS = 32   # a longer value field ends the sequence
MAX_COPIES = 32767
ROW_MAX = 65536        # longest decoded raster plane row looked at (bytes)
ROW_DATA_MAX = 1 << 17 # longest raster row payload decoded
MAX_PLANES = 8
UEL = b"\x1b%-12345X"
ESC = 0x1B


def _mm(w: float, h: float) -> tuple[int, int]:
    return int(round(w * 100)), int(round(h * 100))


def _in(w: float, h: float) -> tuple[int, int]:
    return inches_to_pwg(w), inches_to_pwg(h)


# ESC&l#A page size codes -> PWG units (portrait)
PAGE_SIZES = {
    1: _in(7.25, 10.5),    # executive
    2: _in(8.5, 11),       # letter
    3: _in(8.5, 14),       # legal
    6: _in(11, 17),        # ledger / tabloid
    25: _mm(148, 210),     # A5
    26: _mm(210, 297),     # A4
    27: _mm(297, 420),     # A3
    45: _mm(182, 257),     # JIS B5
    46: _mm(257, 364),     # JIS B4
    71: _mm(100, 148),     # Hagaki
    72: _mm(148, 200),     # Oufuku-Hagaki
    80: _in(3.875, 7.5),   # Monarch envelope
    81: _in(4.125, 9.5),   # Com-10 envelope
    90: _mm(110, 220),     # DL envelope
    91: _mm(162, 229),     # C5 envelope
    100: _mm(176, 250),    # B5 envelope
}

# which entries of the simple-colour palettes are off the neutral axis
_RGB8 = (False, True, True, True, True, True, True, False)   # black red green yellow blue magenta cyan white
_CMY8 = (False, True, True, True, True, True, True, False)   # white cyan magenta blue yellow green red black
_MONO = (False, False)
_DRAW = frozenset(b"PD PE RA RR EA ER EP FP WG EW CI AA AR AT RT BR BZ LB".split())
_SIDES = {0: ONE_SIDED, 1: TWO_SIDED_LONG, 2: TWO_SIDED_SHORT}
_MARKING = bytes(c for c in range(256) if 0x21 <= c <= 0x7E or 0xA1 <= c <= 0xFE)
_NOT_MARKING = bytes(c for c in range(256) if c not in _MARKING)
_TEXT_STOP = re.compile(rb"[\x0c\x1b]")
_VALUE = re.compile(rb"[+-]?([0-9]*)(?:\.[0-9]*)?")


class _Reader:
    """A window on the section: ``need(n)`` makes n bytes from ``pos`` available
    (unless the section ends first) by reading whole chunks."""

    def __init__(self, f, start: int, end: int | None) -> None:
        self.f = f
        self.next_read = start
        self.stop = end
        self.buf = b""
        self.base = start
        self.pos = 0
        self.eof = False

    def fill(self) -> bool:
        want = CHUNK if self.stop is None else min(CHUNK, self.stop - self.next_read)
        data = b""
        if want > 0:
            self.f.seek(self.next_read)
            data = self.f.read(want)
        if not data:
            self.eof = True
            return False
        self.next_read += len(data)
        self.buf = self.buf[self.pos:] + data
        self.base += self.pos
        self.pos = 0
        return True

    def need(self, n: int) -> None:
        while len(self.buf) - self.pos < n and not self.eof:
            self.fill()

    def offset(self) -> int:
        return self.base + self.pos

    def skip(self, n: int) -> bool:
        """Move n bytes on; False when the section ends first."""
        while n > 0:
            avail = len(self.buf) - self.pos
            if avail >= n:
                self.pos += n
                return True
            self.pos += avail
            n -= avail
            if not self.fill():
                return False
        return True


class _Command:
    """One parameter of an escape sequence (p, group, value, param upper-cased) and the
    spans of its value field and of its payload, for the conversions."""
    __slots__ = ("p", "g", "value", "param", "vstart", "vend", "data")


class _Scanner:
    def __init__(self, sides: str, media, copies: int) -> None:
        self.defaults = (sides, media, copies)
        self.runs = RunBuilder()
        self.reset()
        self.marked = False
        self.color = False

    def reset(self) -> None:
        self.sides, self.media, self.copies = self.defaults
        self.set_palette(_MONO, 0)
        self.hpgl = False
        self.compression = 0
        self.width = 0
        self.start_raster()

    def start_raster(self) -> None:
        """Seed rows are zero (empty) again; the row being built is dropped."""
        self.seeds: dict[int, bytes] = {}
        self.stale = False      # seed rows not kept up to date (rows were not decoded)
        self.end_row()

    def end_row(self) -> None:
        self.planes: list[bytes] = []
        self.row_data = False
        self.row_unknown = False

    def set_palette(self, flags, space: int, direct: bool = False, encoding: int = 0, bits: int = 1,
                    prim8: bool = True) -> None:
        self.palette = list(flags)
        self.space = space
        self.direct = direct
        self.encoding = encoding  # pixel encoding mode: 0/1 indexed by plane/pixel, 2/3 direct by plane/pixel
        self.bits = bits          # bits per index
        self.prim8 = prim8        # 8 bits per primary (direct by pixel)
        self.fg = False
        self.pen = 1
        self.comps = [0, 0, 0]
        self.last_assigned = (0, 0, 0)

    def needs_decode(self) -> bool:
        """Raster pixels decide the colour: direct colour, or a palette with a colour entry."""
        return self.direct or (len(self.palette) > 2 and self.palette_color())

    def palette_color(self) -> bool:
        return any(self.palette)

    def mark(self, color: bool) -> None:
        self.marked = True
        if color:
            self.color = True

    def eject(self, always: bool = False) -> None:
        if self.marked or always:
            self.runs.add(self.color, self.sides, self.media, self.copies)
            self.marked = False
            self.color = False

    def entry(self, i: int) -> bool:
        return self.palette[i] if 0 <= i < len(self.palette) else False

    # one parameter of an escape sequence (data: its payload, when the scan fetched it)
    def command(self, p: int, g: int, value: int, param: int, data: bytes | None) -> None:
        if p == 0x26 and g == 0x6C:             # &l
            if param == 0x58:                   # X copies
                if value >= 1:
                    self.copies = min(value, MAX_COPIES)
            elif param == 0x53:                 # S simplex/duplex
                self.eject()
                if value in _SIDES:
                    self.sides = _SIDES[value]
            elif param == 0x41:                 # A page size
                self.eject()
                if value in PAGE_SIZES:
                    self.media = PAGE_SIZES[value]
            elif param == 0x48:                 # H paper source / eject
                self.eject()
        elif p == 0x2A and g == 0x72:                     # *r raster
            if param == 0x55:                             # U simple colour
                if value == 1:
                    self.set_palette(_MONO, 0)
                elif value == 3:
                    self.set_palette(_RGB8, 0, bits=3)
                elif value == -3:
                    self.set_palette(_CMY8, 1, bits=3)
            elif param == 0x53:                           # S source width (pixels)
                self.width = max(value, 0)
            elif param == 0x41:                           # A start raster graphics
                self.start_raster()
            elif param in (0x42, 0x43):                   # B, C end raster graphics
                self.end_row()
        elif p == 0x2A and g == 0x62 and param == 0x4D:   # *b#M compression method
            self.compression = value
        elif p == 0x2A and g == 0x62 and param == 0x59:   # *b#Y y offset: seed rows are zeroed
            self.start_raster()
        elif p == 0x2A and g == 0x76:          # *v palette
            if param == 0x57 and data is not None and len(data) >= 6:
                self.configure(data)
            elif param in (0x41, 0x42, 0x43):
                self.comps[param - 0x41] = value
            elif param == 0x49:
                self.last_assigned = tuple(self.comps)
                if 0 <= value < len(self.palette):
                    a, b, c = self.comps
                    self.palette[value] = not (b == 0 and c == 0) if self.space >= 3 else not (a == b == c)
                self.comps = [0, 0, 0]
            elif param == 0x53:
                self.fg = self.entry(value)
        elif p == 0x2A and g == 0x62 and param in (0x57, 0x56):   # *b#W / *b#V raster data
            self.raster(value, data, param == 0x57)
        elif p == 0x2A and g == 0x63 and param == 0x50:   # *c#P rectangle
            if value != 1:
                self.mark(self.fg)
        elif p == 0x26 and g == 0x70 and param == 0x58:   # &p#X transparent data
            if value > 0:
                self.mark(self.fg)
        elif p == 0x25 and g == 0 and param == 0x42:      # %#B HP-GL/2
            self.hpgl = True
        elif p == 0x25 and g == 0 and param == 0x41:      # %#A back to PCL
            self.hpgl = False

    def configure(self, data: bytes) -> None:
        space, mode, bits = data[0], data[1], data[2]
        prim8 = data[3] == data[4] == data[5] == 8
        if mode in (2, 3):
            self.set_palette(_RGB8 if space != 1 else _CMY8, space, direct=True, encoding=mode, prim8=prim8)
            return
        bits = min(max(bits, 1), 8)
        if bits == 1:
            flags = _MONO
        else:
            base = _CMY8 if space == 1 else _RGB8
            flags = tuple(base[i] if i < 8 else False for i in range(1 << bits))
        self.set_palette(flags, space, encoding=1 if mode == 1 else 0, bits=bits, prim8=prim8)

    # raster rows

    def raster(self, value: int, data: bytes | None, last: bool) -> None:
        """A plane (V) or the last plane (W) of a raster row."""
        if not self.needs_decode():
            if value > 0:
                self.mark(self.fg if len(self.palette) <= 2 else False)
                self.stale = True
            if last:
                self.end_row()
            return
        if value > 0:
            self.mark(False)
            self.row_data = True
        index = len(self.planes)
        if index >= MAX_PLANES:
            self.row_unknown = True
        else:
            row = None
            if value <= 0:
                data = b""
            if data is not None and not (self.compression == 3 and self.stale):
                row = _decode_row(self.compression, data, self.seeds.get(index, b""))
            if row is None:
                self.row_unknown = True
                self.stale = True
            else:
                self.seeds[index] = row
                self.planes.append(row)
        if last:
            if self.row_data and (self.row_unknown or self.row_color()):
                self.mark(True)
            self.end_row()

    def row_color(self) -> bool:
        planes, width = self.planes, self.width
        if not planes:
            return False
        if self.encoding == 0:
            return _indexed_by_plane(planes, width, self.palette)
        if self.encoding == 1:
            return len(planes) > 1 or _indexed_by_pixel(planes[0], width, self.bits, self.palette)
        if self.space not in (0, 1, 2):
            return True
        if self.encoding == 2:
            return len(planes) > 3 or _direct_by_plane(planes, width)
        return len(planes) > 1 or not self.prim8 or _direct_by_pixel(planes[0], width)


def _decode_row(method: int, data: bytes, seed: bytes) -> bytes | None:
    """A raster plane row decoded with compression method 0 (none), 1 (run length),
    2 (TIFF PackBits) or 3 (delta row, against ``seed``); None for other methods or a
    row longer than ROW_MAX bytes."""
    out = bytearray()
    n = len(data)
    if method == 0:
        out = bytearray(data)
    elif method == 1:
        for i in range(0, n - 1, 2):
            out += data[i + 1:i + 2] * (data[i] + 1)
            if len(out) > ROW_MAX:
                return None
    elif method == 2:
        i = 0
        while i < n:
            c = data[i]
            i += 1
            if c < 128:
                out += data[i:i + c + 1]
                i += c + 1
            elif c > 128:
                if i < n:
                    out += data[i:i + 1] * (257 - c)
                    i += 1
            if len(out) > ROW_MAX:
                return None
    elif method == 3:
        out = bytearray(seed)
        pos = i = 0
        while i < n:
            cmd = data[i]
            i += 1
            count, offset = (cmd >> 5) + 1, cmd & 31
            if offset == 31:
                while i < n:
                    more = data[i]
                    i += 1
                    offset += more
                    if more != 255:
                        break
            pos += offset
            take = data[i:i + count]
            i += len(take)
            if not take:
                break
            end = pos + len(take)
            if end > ROW_MAX:
                return None
            if end > len(out):
                out += bytes(end - len(out))
            out[pos:end] = take
            pos = end
    else:
        return None
    if len(out) > ROW_MAX:
        return None
    return bytes(out)


def _bits(row: bytes, nbytes: int) -> int:
    return int.from_bytes(row.ljust(nbytes, b"\0"), "big")


def _width_mask(nbytes: int, width: int) -> int:
    """The first ``width`` pixels of an nbytes*8 pixel bit row (all when width is 0)."""
    total = nbytes * 8
    w = min(width, total) if width else total
    return ((1 << w) - 1) << (total - w)


def _indexed_by_plane(planes: list[bytes], width: int, palette: list[bool]) -> bool:
    nbytes = max(len(p) for p in planes)
    if nbytes == 0:
        return False
    bits = [_bits(p, nbytes) for p in planes]
    inside = _width_mask(nbytes, width)
    for index in range(min(len(palette), 1 << len(planes))):
        if not palette[index]:
            continue
        m = inside
        for k, b in enumerate(bits):
            m &= b if index >> k & 1 else ~b
        if m:
            return True
    return False


def _indexed_by_pixel(row: bytes, width: int, bits: int, palette: list[bool]) -> bool:
    if bits not in (1, 2, 4, 8):
        return True
    count = len(row) * 8 // bits
    if width:
        count = min(count, width)
    mask = (1 << bits) - 1
    for x in range(count):
        bit = x * bits
        v = row[bit >> 3] >> (8 - bits - (bit & 7)) & mask
        if v < len(palette) and palette[v]:
            return True
    return False


def _direct_by_plane(planes: list[bytes], width: int) -> bool:
    nbytes = max(len(p) for p in planes)
    if nbytes == 0:
        return False
    r, g, b = (_bits(planes[k], nbytes) if k < len(planes) else 0 for k in range(3))
    return bool(((r ^ g) | (g ^ b)) & _width_mask(nbytes, width))


def _direct_by_pixel(row: bytes, width: int) -> bool:
    count = len(row) // 3
    if width:
        count = min(count, width)
    row = row[:3 * count]
    return not (row[0::3] == row[1::3] == row[2::3])


def _payload_len(p: int, g: int, param: int, value: int) -> int:
    if value <= 0:
        return 0
    if param == 0x57 or (p == 0x2A and g == 0x62 and param == 0x56) or (p == 0x26 and g == 0x70 and param == 0x58):
        return value
    return 0


def _parse_value(buf: bytes, q: int) -> tuple[int, int] | None:
    """(integer part, end of the value field) at q; None when the field is longer than
    MAX_VALUE_CHARS. The integer part saturates at 2**31 - 1."""
    m = _VALUE.match(buf, q, q + MAX_VALUE_CHARS + 1)
    if m.end() - q > MAX_VALUE_CHARS:
        return None
    digits = m.group(1)
    value = min(int(digits), 2**31 - 1) if digits else 0
    return (-value if buf[q:q + 1] == b"-" else value), m.end()


# HP-GL/2 parser phases
_H_START, _H_LETTER, _H_PARAMS, _H_LABEL, _H_PE, _H_DT = range(6)


class _Hpgl:
    """Resumable HP-GL/2 mnemonic reader (state survives chunk ends and PCL escapes)."""
    __slots__ = ("phase", "first", "mnemonic", "term", "num", "num_done", "draws_label")

    def __init__(self) -> None:
        self.enter()

    def enter(self) -> None:
        self.phase = _H_START
        self.first = 0
        self.mnemonic = b""
        self.term = 0x03
        self.num = 0
        self.num_done = False
        self.draws_label = False

    def end_instruction(self, sc: "_Scanner") -> None:
        if self.mnemonic == b"SP":
            sc.pen = self.num
        self.mnemonic = b""

    def feed(self, sc: "_Scanner", buf: bytes, pos: int, stop: int) -> None:
        for i in range(pos, stop):
            b = buf[i]
            phase = self.phase
            if phase == _H_LABEL:
                if b == self.term:
                    self.phase = _H_PARAMS
                continue
            if phase == _H_PE:
                if b == 0x3B:
                    self.phase = _H_PARAMS
                continue
            if phase == _H_DT:
                self.term = 0x03 if b == 0x3B else b
                self.phase = _H_PARAMS
                continue
            letter = 0x41 <= b <= 0x5A or 0x61 <= b <= 0x7A
            if phase == _H_LETTER:
                if letter:
                    self.start(sc, bytes((self.first, b & 0xDF)))
                else:
                    self.phase = _H_PARAMS
                continue
            if letter:
                self.end_instruction(sc)
                self.first = b & 0xDF
                self.phase = _H_LETTER
            elif self.mnemonic == b"SP" and not self.num_done:
                if 0x30 <= b <= 0x39:
                    self.num = min(self.num * 10 + (b - 0x30), 255)
                elif self.num or b not in b" ,":
                    self.num_done = True

    def start(self, sc: "_Scanner", mn: bytes) -> None:
        self.mnemonic = mn
        self.phase = _H_PARAMS
        if mn in _DRAW:
            sc.mark(sc.entry(sc.pen))
        if mn in (b"LB", b"BL"):
            self.phase = _H_LABEL
        elif mn == b"PE":
            self.phase = _H_PE
        elif mn == b"DT":
            self.phase = _H_DT
        elif mn == b"SP":
            self.num = 0
            self.num_done = False


def _tokens(rd: _Reader, sc: _Scanner):
    """Walk the section, calling sc.command for every parameter and handling text and
    HP-GL/2. Yields ("cmd", _Command, offset after its parameter and payload) and
    ("esc_e", offset after it); stops after a UEL (rd.pos just past it) or at the end."""
    hpgl = _Hpgl()
    while True:
        rd.need(LOOK)
        buf, pos, n = rd.buf, rd.pos, len(rd.buf)
        if pos >= n:
            return
        if buf[pos] != ESC:
            if sc.hpgl:
                esc = buf.find(b"\x1b", pos)
                stop = n if esc < 0 else esc
                hpgl.feed(sc, buf, pos, stop)
                rd.pos = stop
                continue
            m = _TEXT_STOP.search(buf, pos)
            stop = n if m is None else m.start()
            if buf[pos:stop].translate(None, _NOT_MARKING):
                sc.mark(sc.fg)
            if m is not None and buf[stop] == 0x0C:
                sc.eject(always=True)
                stop += 1
            rd.pos = stop
            continue
        if buf.startswith(UEL, pos):
            rd.pos = pos + len(UEL)
            return
        c = buf[pos + 1] if pos + 1 < n else -1
        if 0x30 <= c <= 0x7E:
            rd.pos = pos + 2
            if c == 0x45:  # ESC E
                sc.eject()
                sc.reset()
                yield ("esc_e", None, rd.offset())
            continue
        if not 0x21 <= c <= 0x2F:
            rd.pos = pos + 1  # a lone ESC
            continue
        g = buf[pos + 2] if pos + 2 < n and 0x60 <= buf[pos + 2] <= 0x7E else 0
        rel = 3 if g else 2  # where the next value field starts, from rd.pos
        while True:
            rd.need(rel + LOOK)
            buf, s, n = rd.buf, rd.pos, len(rd.buf)
            q = s + rel
            parsed = _parse_value(buf, q)
            if parsed is None:
                rd.pos = q
                break
            value, vend = parsed
            if vend >= n:
                rd.pos = n
                break
            t = buf[vend]
            if not 0x40 <= t <= 0x7E or t == 0x5F:
                rd.pos = vend
                break
            param = t - 0x20 if t >= 0x60 else t
            length = _payload_len(c, g, param, value)
            data = None
            if length and ((c == 0x2A and g == 0x76 and param == 0x57 and length <= 256) or (
                    c == 0x2A and g == 0x62 and length <= ROW_DATA_MAX and sc.needs_decode())):
                rd.need(vend + 1 - s + length)
                shift = rd.pos - s
                buf, s, q, vend = rd.buf, rd.pos, q + shift, vend + shift
                data = buf[vend + 1:vend + 1 + length]
            was_hpgl = sc.hpgl
            sc.command(c, g, value, param, data)
            if sc.hpgl and not was_hpgl:
                hpgl.enter()
            cmd = _Command()
            cmd.p, cmd.g, cmd.value, cmd.param = c, g, value, param
            cmd.vstart, cmd.vend, cmd.data = rd.base + q, rd.base + vend, data
            rd.pos = vend + 1
            if length and not rd.skip(length):
                return  # the payload runs past the end: nothing follows it
            yield ("cmd", cmd, rd.offset(), t >= 0x60)
            if t < 0x60:
                break
            rel = 0
        if sc.hpgl:
            continue


def scan(f, start: int = 0, *, sides: str = ONE_SIDED, media=None, copies: int = 1):
    """(pages as runs, offset just past the section) of the PCL 5 section at ``start``."""
    if sides not in _SIDES.values():
        raise ValueError(f"unknown sides {sides!r}")
    sc = _Scanner(sides, media, copies)
    rd = _Reader(f, start, None)
    for _ in _tokens(rd, sc):
        pass
    sc.eject()
    return sc.runs.runs(), rd.offset()


# --- conversions ---------------------------------------------------------------------------------

def _luma(a: int, b: int, c: int) -> int:
    return (299 * a + 587 * b + 114 * c + 500) // 1000


def _gray_entry(space: int, index: int, a: int, b: int, c: int) -> bytes:
    """An assign-colour-index sequence giving entry ``index`` the gray of (a, b, c)."""
    if space == 1:  # CMY: gray is equal amounts of the three
        v = 255 - _luma(255 - a, 255 - b, 255 - c)
    else:
        v = _luma(a, b, c)
    return b"\x1b*v%da%db%dc%dI" % (v, v, v, index)


_RGB8_VALUES = ((0, 0, 0), (255, 0, 0), (0, 255, 0), (255, 255, 0), (0, 0, 255), (255, 0, 255), (0, 255, 255),
                (255, 255, 255))
_CMY8_VALUES = ((0, 0, 0), (255, 0, 0), (0, 255, 0), (255, 255, 0), (0, 0, 255), (255, 0, 255), (0, 255, 255),
                (255, 255, 255))  # cyan, magenta, blue(c+m), yellow, green(c+y), red(m+y), black, as CMY amounts


def _gray_pixels(row: bytes, space: int) -> bytes:
    """Direct-by-pixel 8-bit RGB or CMY pixels, each as the gray of its luma."""
    out = bytearray(row)
    for i in range(0, len(row) - 2, 3):
        a, b, c = row[i], row[i + 1], row[i + 2]
        v = 255 - _luma(255 - a, 255 - b, 255 - c) if space == 1 else _luma(a, b, c)
        out[i] = out[i + 1] = out[i + 2] = v
    return bytes(out)


def _gray_palette(space: int, entries: int) -> bytes:
    values = _CMY8_VALUES if space == 1 else _RGB8_VALUES
    return b"".join(_gray_entry(space, i, *values[i]) for i in range(min(entries, 8)))


class _Copier:
    def __init__(self, f, out, start: int) -> None:
        self.f, self.out, self.pos = f, out, start

    def to(self, at: int) -> None:
        self.f.seek(self.pos)
        left = at - self.pos
        while left > 0:
            data = self.f.read(min(CHUNK, left))
            if not data:
                break
            self.out.write(data)
            left -= len(data)
        self.pos = max(self.pos, at)

    def replace(self, s: int, e: int, data: bytes) -> None:
        self.to(s)
        self.out.write(data)
        self.pos = max(self.pos, e)

    def insert(self, at: int, data: bytes) -> None:
        self.to(at)
        self.out.write(data)


def _section_end(f, end):
    if end is None:
        f.seek(0, 2)
        return f.tell()
    return end


def _reopen(cmd: _Command, continues: bool) -> bytes:
    return bytes((ESC, cmd.p, cmd.g)) if continues and cmd.g else (bytes((ESC, cmd.p)) if continues else b"")


def to_grayscale(f, out, start: int = 0, end: int | None = None) -> None:
    """Write the section with its palettes in gray: simple colour (ESC*r3U / -3U) is
    followed by the equivalent configure-image-data palette (same planes, same indices)
    with every entry set to its luma; configure image data (RGB or CMY, indexed) by its
    default entries in gray; every assigned entry (ESC*v#I) by its gray; uncompressed
    direct-by-pixel 8-bit RGB/CMY raster rows rewritten pixel by pixel to their luma (same
    length). Not converted: compressed direct-by-pixel rows, direct-by-plane rows (one bit
    per primary has no gray), the colorimetric, L*a*b* and luminance-chrominance spaces,
    HP-GL/2 PC pen colours, colour patterns (ESC*c#W)."""
    stop = _section_end(f, end)
    sc = _Scanner(ONE_SIDED, None, 1)
    rd = _Reader(f, start, end)
    cp = _Copier(f, out, start)
    for ev in _tokens(rd, sc):
        if ev[0] != "cmd":
            continue
        cmd, after, continues = ev[1], ev[2], ev[3]
        p, g, param, value = cmd.p, cmd.g, cmd.param, cmd.value
        extra = b""
        if p == 0x2A and g == 0x72 and param == 0x55 and value in (3, -3):
            space = 0 if value == 3 else 1
            extra = b"\x1b*v6W" + bytes((space, 0, 3, 8, 8, 8)) + _gray_palette(space, 8)
        elif p == 0x2A and g == 0x76 and param == 0x57 and cmd.data is not None and len(cmd.data) >= 6:
            space, mode, bits = cmd.data[0], cmd.data[1], cmd.data[2]
            if space in (0, 1):
                entries = 8 if mode in (2, 3) else 1 << min(max(bits, 1), 8)
                extra = _gray_palette(space, entries) if entries > 2 else b""
        elif p == 0x2A and g == 0x76 and param == 0x49 and sc.space in (0, 1) and 0 <= value < len(sc.palette):
            extra = _gray_entry(sc.space, value, *sc.last_assigned)
        elif (p == 0x2A and g == 0x62 and param in (0x56, 0x57) and cmd.data is not None and len(cmd.data) == value
              and sc.direct and sc.encoding == 3 and sc.prim8 and sc.space in (0, 1) and sc.compression == 0):
            cp.replace(cmd.vend + 1, cmd.vend + 1 + value, _gray_pixels(cmd.data, sc.space))
        if extra:
            cp.insert(after, extra + _reopen(cmd, continues))
    cp.to(stop)


def to_duplex(f, out, sides: str, start: int = 0, end: int | None = None) -> None:
    """Write the section printing on ``sides``: every ESC&l#S value rewritten; when the
    section has none, ESC&l#S inserted after the first reset (ESC E), or at its start."""
    code = {v: k for k, v in _SIDES.items()}.get(sides)
    if code is None:
        raise ValueError(f"unknown sides {sides!r}")
    stop = _section_end(f, end)
    first_reset = None
    found = False
    for ev in _tokens(_Reader(f, start, end), _Scanner(ONE_SIDED, None, 1)):
        if ev[0] == "esc_e" and first_reset is None:
            first_reset = ev[2]
        elif ev[0] == "cmd" and ev[1].p == 0x26 and ev[1].g == 0x6C and ev[1].param == 0x53:
            found = True
            break
    cp = _Copier(f, out, start)
    if not found:
        cp.insert(first_reset if first_reset is not None else start, b"\x1b&l%dS" % code)
    else:
        for ev in _tokens(_Reader(f, start, end), _Scanner(ONE_SIDED, None, 1)):
            if ev[0] == "cmd" and ev[1].p == 0x26 and ev[1].g == 0x6C and ev[1].param == 0x53:
                cp.replace(ev[1].vstart, ev[1].vend, b"%d" % code)
    cp.to(stop)
