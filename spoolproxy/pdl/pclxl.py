"""PCL XL (PCL 6): page count, copies, sides, media and colour per page; grayscale and
duplex conversions.

This is the specification: ``ext/pclxl.pyx`` (``spoolproxy._ext.pclxl``) is its
compiled twin and must return equal values and raise the same exceptions.

The stream
----------
A section starts (after optional blank bytes) with the stream header, one line
``B HP-PCL XL;class;revision;comment LF`` where B is the binding: ``)`` binary
little-endian, ``(`` binary big-endian, ``'`` ASCII. The binary bindings are a
sequence of tags (PCL XL Feature Reference, protocol classes 1.1 to 3.0):

* white space 00 09-0D 20, skipped;
* data values C0-C5 (ubyte uint16 uint32 sint16 sint32 real32), their arrays C8-CD
  (an element count typed C0 ubyte or C1 uint16 follows the tag), xy pairs D0-D5 and
  boxes E0-E5;
* attribute ids F8 (ubyte id) and F9 (uint16 id): the value before it becomes that
  attribute of the next operator;
* embedded data FA (uint32 length) and FB (ubyte length), after the operator that
  reads it (ReadImage, ReadRastPattern, ReadChar, ...);
* operators 41-BF, which take the attributes collected since the previous one;
* a new stream header (27-29) or ESC: ``ESC%-12345X`` (UEL) ends the section
  (the offset just past it is returned); any other byte is a DamagedDocument.

A file that ends inside a token ends the section there: the pages finished so far
are the answer (a printer prints no more than that). The ASCII binding is only
tokenized (see _scan_ascii): pages, copies, sides and media from the operator and
attribute names, colour None (undecided).

Pages
-----
A page is BeginPage ... EndPage (an EndPage without a BeginPage is ignored, a page
without an EndPage is not counted). From BeginPage: MediaSize (enumeration or
name), CustomMediaSize + CustomMediaSizeUnits, SimplexPageMode / DuplexPageMode
(eDuplexVerticalBinding is long-edge, eDuplexHorizontalBinding short-edge);
PageCopies from EndPage (2.0 and later), else from BeginPage (some drivers), else
the caller's default. What a page does not say comes from the keyword arguments.

Colour
------
A page is colour if it paints with a colour off the neutral axis (components that
differ by more than NEUTRAL_TOLERANCE out of 255): the graphics state tracks the
colour space (eGray, eRGB, eSRGB; anything not gray counts as RGB), the palette
(PaletteData; with a palette, a colour value is an index into it), the brush and
the pen (SetBrushSource / SetPenSource with RGBColor, GrayLevel, PrimaryArray,
PatternSelectID, NullBrush/NullPen), PushGS/PopGS (MAX_GS_DEPTH levels kept). A
paint operator (PaintPath, Rectangle, RoundRectangle, Ellipse, Chord, Pie; Text and
scan lines use the brush only) makes the page colour when what it paints with is.
Images and raster patterns (BeginImage/BeginRastPattern, ReadImage/ReadRastPattern)
in a gray space, or indexed through a palette without colour entries, are gray
without reading their data; otherwise the data is decoded exactly (eNoCompression,
eRLECompression, eDeltaRowCompression) and the pixels checked. JPEG data is not
decoded: a direct JPEG image in an RGB space is colour. Data that cannot be decoded
(unknown compression or depth, rows longer than MAX_ROW bytes, a palette we could
not read) counts as colour when the colour space could make colour.
A raster pattern's colour is remembered by its id and counts when a brush or pen
selects it.
"""
from __future__ import annotations

import struct

from .model import (
    ONE_SIDED, TWO_SIDED_LONG, TWO_SIDED_SHORT, ConversionError, DamagedDocument, PdlError,
    RunBuilder,
)

__all__ = [
    "scan", "to_grayscale", "to_duplex", "MEDIA_SIZES", "NEUTRAL_TOLERANCE", "CHUNK",
    "MAX_GS_DEPTH", "MAX_ROW",
]

CHUNK = 1 << 20
NEUTRAL_TOLERANCE = 2      # out of 255: RGB components this close are gray
MAX_GS_DEPTH = 32          # PushGS levels remembered (deeper pushes keep the state)
MAX_ROW = 1 << 20          # image rows longer than this (bytes) are not decoded
MAX_VALUE = 4096           # array values longer than this (bytes) are skipped, not kept
MAX_HEADER = 1024          # stream header line
MAX_CONVERTED_BLOCK = 64 << 20   # to_grayscale: largest image block it re-encodes in memory

UEL = b"\x1b%-12345X"
_WS = frozenset(b"\x00\t\n\x0b\x0c\r ")

# data types (tag & 7 for the element type)
_ELEM_SIZE = (1, 2, 4, 2, 4, 4)
_ELEM_FMT = "BHIhif"

# operators
OP_BEGIN_PAGE = 0x43
OP_END_PAGE = 0x44
OP_POP_GS = 0x60
OP_PUSH_GS = 0x61
OP_SET_BRUSH = 0x63
OP_SET_COLOR_SPACE = 0x6A
OP_SET_PEN = 0x79
OP_TEXT = 0xA8
OP_BEGIN_IMAGE = 0xB0
OP_READ_IMAGE = 0xB1
OP_END_IMAGE = 0xB2
OP_BEGIN_RAST_PATTERN = 0xB3
OP_READ_RAST_PATTERN = 0xB4
OP_END_RAST_PATTERN = 0xB5
OP_BEGIN_SCAN = 0xB6
OP_SCAN_LINE_REL = 0xB9
_PAINT_BRUSH_PEN = frozenset((0x86, 0xA0, 0xA2, 0x98, 0x96, 0x9E))
_PAINT_BRUSH = frozenset((OP_TEXT, OP_BEGIN_SCAN, OP_SCAN_LINE_REL))

# attributes
A_PALETTE_DEPTH = 2
A_COLOR_SPACE = 3
A_NULL_BRUSH = 4
A_NULL_PEN = 5
A_PALETTE_DATA = 6
A_PATTERN_SELECT_ID = 8
A_GRAY_LEVEL = 9
A_RGB_COLOR = 11
A_PRIMARY_ARRAY = 14
A_COLORIMETRIC_SPACE = 17
A_MEDIA_SIZE = 37
A_ORIENTATION = 40
A_CUSTOM_MEDIA_SIZE = 47
A_CUSTOM_MEDIA_SIZE_UNITS = 48
A_PAGE_COPIES = 49
A_SIMPLEX_PAGE_MODE = 52
A_DUPLEX_PAGE_MODE = 53
A_DUPLEX_PAGE_SIDE = 54
A_COLOR_DEPTH = 98
A_BLOCK_HEIGHT = 99
A_COLOR_MAPPING = 100
A_COMPRESS_MODE = 101
A_PATTERN_DEFINE_ID = 105
A_SOURCE_HEIGHT = 107
A_SOURCE_WIDTH = 108
A_PAD_BYTES_MULTIPLE = 110
A_BLOCK_BYTE_LENGTH = 111

E_GRAY = 1
E_RGB = 2
E_DUPLEX_HORIZONTAL = 0
E_DUPLEX_VERTICAL = 1
C_NONE, C_RLE, C_JPEG, C_DELTA_ROW = 0, 1, 2, 3

# MediaSize enumeration -> (width, height) in PWG units (1/100 mm), portrait
MEDIA_SIZES = {
    0: (21590, 27940),   # eLetterPaper
    1: (21590, 35560),   # eLegalPaper
    2: (21000, 29700),   # eA4Paper
    3: (18415, 26670),   # eExecPaper
    4: (27940, 43180),   # eLedgerPaper
    5: (29700, 42000),   # eA3Paper
    6: (10478, 24130),   # eCOM10Envelope
    7: (9843, 19050),    # eMonarchEnvelope
    8: (16200, 22900),   # eC5Envelope
    9: (11000, 22000),   # eDLEnvelope
    10: (25700, 36400),  # eJB4Paper
    11: (18200, 25700),  # eJB5Paper
    12: (17600, 25000),  # eB5Envelope
    13: (17600, 25000),  # eB5Paper
    14: (10000, 14800),  # eJPostcard
    15: (14800, 20000),  # eJDoublePostcard
    16: (14800, 21000),  # eA5Paper
    17: (10500, 14800),  # eA6Paper
    18: (12800, 18200),  # eJB6Paper
    19: (27000, 39000),  # eJIS8K
    20: (19500, 27000),  # eJIS16K
    21: (21600, 33000),  # eJISExec
}
# MediaSize given as a name (ubyte array, 2.0)
MEDIA_NAMES = {
    b"LETTER": 0, b"LEGAL": 1, b"A4": 2, b"EXEC": 3, b"LEDGER": 4, b"A3": 5, b"COM10": 6,
    b"MONARCH": 7, b"C5": 8, b"DL": 9, b"JB4": 10, b"JB5": 11, b"B5ENV": 12, b"B5": 13,
    b"JPOSTCARD": 14, b"JDOUBLEPOSTCARD": 15, b"A5": 16, b"A6": 17, b"JB6": 18,
    b"JIS8K": 19, b"JIS16K": 20, b"JISEXEC": 21,
}
# CustomMediaSizeUnits (Measure) -> PWG units per unit
_MEASURE_PWG = (2540.0, 100.0, 10.0)


# ---------------------------------------------------------------------------------- input


class _Source:
    """A file read in CHUNK pieces from ``start``; ``pos`` is the file offset."""
    __slots__ = ("f", "buf", "i", "base", "eof", "limit", "rec")

    def __init__(self, f, start: int, limit: int | None = None) -> None:
        if start < 0:
            raise PdlError("start must not be negative")
        self.f = f
        self.buf = b""
        self.i = 0
        self.base = start
        self.eof = False
        self.limit = limit     # read nothing at or past this offset (conversions' end)
        self.rec: bytearray | None = None   # conversions: every byte taken is appended here
        f.seek(start)

    @property
    def pos(self) -> int:
        return self.base + self.i

    def _fill(self) -> bool:
        """Make at least one byte available; False at end of file."""
        if self.i < len(self.buf):
            return True
        if self.eof:
            return False
        self.base += len(self.buf)
        want = CHUNK if self.limit is None else min(CHUNK, self.limit - self.base)
        self.buf = self.f.read(want) if want > 0 else b""
        self.i = 0
        if not self.buf:
            self.eof = True
            return False
        return True

    def byte(self) -> int:
        if self.i >= len(self.buf) and not self._fill():
            return -1
        b = self.buf[self.i]
        self.i += 1
        if self.rec is not None:
            self.rec.append(b)
        return b

    def take(self, n: int) -> bytes | None:
        """Exactly n bytes, or None when the file ends first."""
        j = self.i + n
        if j <= len(self.buf):
            self.i = j
            got = self.buf[j - n:j]
        else:
            parts = []
            while n > 0:
                if not self._fill():
                    if self.rec is not None:
                        self.rec += b"".join(parts)
                    return None
                piece = self.buf[self.i:self.i + n]
                self.i += len(piece)
                n -= len(piece)
                parts.append(piece)
            got = b"".join(parts)
        if self.rec is not None:
            self.rec += got
        return got

    def pieces(self, n: int):
        """Yields the next n bytes in pieces (fewer when the file ends)."""
        while n > 0 and self._fill():
            piece = self.buf[self.i:self.i + n]
            self.i += len(piece)
            n -= len(piece)
            yield piece

    def skip(self, n: int) -> bool:
        """Skip n bytes; False when the file ends first."""
        avail = len(self.buf) - self.i
        if self.rec is not None:
            got = 0
            for piece in self.pieces(n):
                self.rec += piece
                got += len(piece)
            return got == n
        if n <= avail:
            self.i += n
            return True
        target = self.pos + n
        if self.limit is not None and target > self.limit:
            self.base, self.buf, self.i, self.eof = self.limit, b"", 0, True
            return False
        self.base = target
        self.buf = b""
        self.i = 0
        self.f.seek(target - 1)
        if not self.f.read(1):  # the file ends before the last byte skipped
            self.f.seek(0, 2)
            self.base = self.f.tell()
            self.eof = True
            return False
        return True


def _header(src: _Source) -> tuple[int, int]:
    """Reads a stream header line; (binding byte, offset of the header)."""
    while True:
        b = src.byte()
        if b < 0:
            raise DamagedDocument("PCL XL: no stream header")
        if b not in _WS:
            break
    at = src.pos - 1
    _header_rest(src, b, at)
    return b, at


def _header_rest(src: _Source, binding: int, at: int) -> None:
    if binding not in (0x27, 0x28, 0x29):
        raise DamagedDocument(f"PCL XL: no stream header at offset {at}")
    line = bytearray()
    while True:
        b = src.byte()
        if b < 0:
            raise DamagedDocument("PCL XL: the stream header does not end")
        if b == 0x0A:
            break
        line.append(b)
        if len(line) > MAX_HEADER:
            raise DamagedDocument("PCL XL: stream header too long")
    if not line.startswith(b" HP-PCL XL"):
        raise DamagedDocument(f"PCL XL: not a PCL XL stream header at offset {at}")


# ---------------------------------------------------------------------------------- values


class _Value:
    """A data value: tag, element count, raw bytes (None when longer than MAX_VALUE)."""
    __slots__ = ("tag", "count", "raw")

    def __init__(self, tag: int, count: int, raw: bytes | None) -> None:
        self.tag = tag
        self.count = count
        self.raw = raw

    def numbers(self, big: bool) -> tuple:
        if self.raw is None:
            return ()
        fmt = (">" if big else "<") + _ELEM_FMT[self.tag & 7] * self.count
        return struct.unpack(fmt, self.raw)

    def first(self, big: bool):
        """First element as a number, or None."""
        if self.raw is None or self.count == 0:
            return None
        size = _ELEM_SIZE[self.tag & 7]
        return struct.unpack((">" if big else "<") + _ELEM_FMT[self.tag & 7], self.raw[:size])[0]

    @property
    def is_real(self) -> bool:
        return self.tag & 7 == 5


def _read_value(src: _Source, tag: int, big: bool) -> _Value | None:
    """The value after ``tag`` (a data type tag); None at end of file."""
    et = tag & 7
    size = _ELEM_SIZE[et]
    kind = tag & 0xF8
    if kind == 0xC0:
        count = 1
    elif kind == 0xD0:
        count = 2
    elif kind == 0xE0:
        count = 4
    else:  # array
        ct = src.byte()
        if ct < 0:
            return None
        if ct == 0xC0:
            c = src.take(1)
            if c is None:
                return None
            count = c[0]
        elif ct == 0xC1:
            c = src.take(2)
            if c is None:
                return None
            count = int.from_bytes(c, "big" if big else "little")
        else:
            raise DamagedDocument(f"PCL XL: bad array length type 0x{ct:02X} at offset {src.pos - 1}")
    n = count * size
    if n > MAX_VALUE:
        return _Value(tag, count, None) if src.skip(n) else None
    raw = src.take(n)
    if raw is None:
        return None
    return _Value(tag, count, raw)


# scalar, xy and box tags -> (bytes, element count) (the scan reads these inline)
_FIXED_VALUES = {
    kind | et: (n * _ELEM_SIZE[et], n) for kind, n in ((0xC0, 1), (0xD0, 2), (0xE0, 4)) for et in range(6)
}


def _is_value_tag(b: int) -> bool:
    return (0xC0 <= b <= 0xC5) or (0xC8 <= b <= 0xCD) or (0xD0 <= b <= 0xD5) or (0xE0 <= b <= 0xE5)


def _int_attr(attrs: dict, key: int, big: bool, default=None):
    v = attrs.get(key)
    if v is None:
        return default
    x = v.first(big)
    if x is None:
        return default
    if isinstance(x, float):
        if not (-2147483648.0 < x < 2147483648.0):
            return default
        return int(x)
    return x


# ---------------------------------------------------------------------------------- colour


def _neutral_ints(a: int, b: int, c: int) -> bool:
    t = NEUTRAL_TOLERANCE
    return abs(a - b) <= t and abs(b - c) <= t and abs(a - c) <= t


def _neutral_reals(a: float, b: float, c: float) -> bool:
    t = NEUTRAL_TOLERANCE / 255.0
    # written so that NaN compares neutral, as the compiled twin's C does
    return not (abs(a - b) > t or abs(b - c) > t or abs(a - c) > t)


class _Palette:
    """Which entries of a palette are colour."""
    __slots__ = ("color", "any")

    def __init__(self, color: tuple, any_color: bool) -> None:
        self.color = color
        self.any = any_color


def _make_palette(value: _Value | None, rgb: bool) -> _Palette | None:
    if value is None:
        return None
    if value.raw is None or (value.tag & 7) != 0:  # only 8-bit (ubyte) palettes are read
        return _Palette((), rgb)
    raw = value.raw
    if not rgb:
        return _Palette((False,) * len(raw), False)
    color = tuple(not _neutral_ints(raw[i], raw[i + 1], raw[i + 2]) for i in range(0, len(raw) - 2, 3))
    return _Palette(color, any(color))


def _palette_entry(pal: _Palette, index) -> bool:
    if isinstance(index, float):
        if not (0.0 <= index < 65536.0):
            return pal.any
        index = int(index)
    if 0 <= index < len(pal.color):
        return pal.color[index]
    return pal.any


class _GState:
    __slots__ = ("rgb", "palette", "brush", "pen")

    def __init__(self) -> None:
        self.rgb = False
        self.palette: _Palette | None = None
        self.brush = False
        self.pen = False

    def copy(self) -> "_GState":
        g = _GState()
        g.rgb, g.palette, g.brush, g.pen = self.rgb, self.palette, self.brush, self.pen
        return g


def _paint_color(g: _GState, attrs: dict, big: bool, patterns: bytearray, current: bool,
                 null_attr: int) -> bool:
    """Colour of the brush or pen that SetBrushSource/SetPenSource selects."""
    if null_attr in attrs:
        return False
    for key in (A_RGB_COLOR, A_GRAY_LEVEL, A_PRIMARY_ARRAY):
        v = attrs.get(key)
        if v is None:
            continue
        if g.palette is not None:
            first = v.first(big)
            return g.palette.any if first is None else _palette_entry(g.palette, first)
        if key == A_GRAY_LEVEL:
            return False
        if key == A_PRIMARY_ARRAY and not g.rgb:
            return False
        if v.raw is None or v.count < 3:
            return v.raw is None  # too long to keep: assume colour
        a, b, c = v.numbers(big)[:3]
        if v.is_real:
            return not _neutral_reals(a, b, c)
        return not _neutral_ints(a, b, c)
    v = attrs.get(A_PATTERN_SELECT_ID)
    if v is not None:
        pid = _int_attr(attrs, A_PATTERN_SELECT_ID, big)
        if pid is None:
            return True
        pid &= 0xFFFF
        return bool(patterns[pid >> 3] & (1 << (pid & 7)))
    return current


class _Image:
    """An image or raster pattern being read: what its data looks like, whether it is colour."""
    __slots__ = ("decode", "color", "width", "depth", "ncomp", "indexed", "table", "dpr",
                 "seed", "pattern")

    def __init__(self) -> None:
        self.decode = False
        self.color = False
        self.width = 0
        self.depth = 8
        self.ncomp = 1
        self.indexed = False
        self.table: tuple = ()
        self.dpr = 0
        self.seed: bytearray | None = None
        self.pattern = -1


def _begin_image(g: _GState, attrs: dict, big: bool) -> _Image:
    im = _Image()
    mapping = _int_attr(attrs, A_COLOR_MAPPING, big, 0)
    dcode = _int_attr(attrs, A_COLOR_DEPTH, big, 2)
    width = _int_attr(attrs, A_SOURCE_WIDTH, big, 0)
    im.indexed = mapping == 1
    if im.indexed:
        pal = g.palette
        could = pal is not None and pal.any
    else:
        pal = None
        could = g.rgb
    im.color = could  # until the data shows otherwise
    if not could:
        im.color = False
        return im
    depth = {0: 1, 1: 4, 2: 8}.get(dcode)
    ncomp = 1 if im.indexed else 3
    if depth is None or width < 0:
        return im  # cannot decode: colour
    dpr = (width * depth * ncomp + 7) >> 3
    if dpr == 0:  # no pixels
        im.color = False
        return im
    if dpr > MAX_ROW or (im.indexed and not pal.color):
        return im
    im.decode = True
    im.color = False
    im.width, im.depth, im.ncomp, im.dpr = width, depth, ncomp, dpr
    if im.indexed:
        im.table = pal.color
    return im


def _row_color(im: _Image, row) -> bool:
    """Whether a decoded row (im.dpr bytes) has a colour pixel."""
    w, d = im.width, im.depth
    if im.indexed:
        table, n = im.table, len(im.table)
        if d == 8:
            vals = row[:w]
        else:
            per = 8 // d
            mask = (1 << d) - 1
            vals = [(row[i // per] >> (8 - d - (i % per) * d)) & mask for i in range(w)]
        for v in set(vals):
            if v >= n or table[v]:
                return True
        return False
    if d == 8:
        t = NEUTRAL_TOLERANCE
        for i in range(0, 3 * w, 3):
            a, b, c = row[i], row[i + 1], row[i + 2]
            if abs(a - b) > t or abs(b - c) > t or abs(a - c) > t:
                return True
        return False
    per = 8 // d
    mask = (1 << d) - 1
    samples = [(row[i // per] >> (8 - d - (i % per) * d)) & mask for i in range(3 * w)]
    for i in range(0, 3 * w, 3):
        if not (samples[i] == samples[i + 1] == samples[i + 2]):
            return True
    return False


# --- image data decoders: feed compressed pieces, get rows -----------------------------------


class _RowDecoder:
    """Decodes one ReadImage/ReadRastPattern block of ``rows`` rows into rows of ``dpr``
    bytes (``on_row`` is called with each; it returns True to stop)."""

    def __init__(self, im: _Image, mode: int, rows: int, pad: int, on_row) -> None:
        self.dpr = im.dpr
        self.mode = mode
        self.left = rows
        self.on_row = on_row
        self.done = rows <= 0
        if mode == C_DELTA_ROW:
            if im.seed is None:
                im.seed = bytearray(im.dpr)
            self.seed = im.seed
            self.state = 0       # 0 count lsb, 1 count msb, 2 command, 3 offset, 4 copy
            self.count = 0
            self.lsb = 0
            self.cnt = 0
            self.off = 0
            self.out = 0
            self.row = bytearray(self.seed)
        else:
            p = pad if pad > 0 else 1
            self.rin = -(-self.dpr // p) * p  # input row, padded
            self.row = bytearray()
            self.rle_lit = 0     # literal bytes still to copy
            self.rle_rep = 0     # pending repeat count (next byte repeated)

    def _emit(self, row) -> None:
        self.left -= 1
        if self.on_row(row) or self.left <= 0:
            self.done = True

    def feed(self, data) -> None:
        if self.done:
            return
        if self.mode == C_NONE:
            self._feed_raw(data)
        elif self.mode == C_RLE:
            self._feed_rle(data)
        else:
            self._feed_delta(data)

    def _put(self, data) -> None:
        """Uncompressed (padded) row bytes."""
        row, rin = self.row, self.rin
        i, n = 0, len(data)
        while i < n and not self.done:
            take = min(rin - len(row), n - i)
            row += data[i:i + take]
            i += take
            if len(row) == rin:
                self._emit(bytes(row[:self.dpr]))
                row.clear()

    def _feed_raw(self, data) -> None:
        self._put(data)

    def _feed_rle(self, data) -> None:
        i, n = 0, len(data)
        while i < n and not self.done:
            if self.rle_lit:
                take = min(self.rle_lit, n - i)
                self._put(data[i:i + take])
                self.rle_lit -= take
                i += take
            elif self.rle_rep:
                rep = self.rle_rep
                self.rle_rep = 0
                self._put(bytes((data[i],)) * rep)
                i += 1
            else:
                c = data[i]
                i += 1
                if c < 128:
                    self.rle_lit = c + 1
                elif c > 128:
                    self.rle_rep = 257 - c

    def _feed_delta(self, data) -> None:
        i, n = 0, len(data)
        dpr = self.dpr
        while i < n and not self.done:
            b = data[i]
            i += 1
            st = self.state
            if st == 0:
                self.lsb = b
                self.state = 1
            elif st == 1:
                self.count = self.lsb | (b << 8)
                if self.count == 0:
                    self._delta_row_end()
                else:
                    self.state = 2
            elif st == 2:
                self.count -= 1
                self.cnt = (b >> 5) + 1
                off = b & 0x1F
                if off == 31:
                    self.off = 31
                    self.state = 3
                else:
                    self.out += off
                    self.state = 4
                if self.count == 0:
                    self._delta_row_end()
            elif st == 3:
                self.count -= 1
                self.off += b
                if b != 0xFF:
                    self.out += self.off
                    self.state = 4
                if self.count == 0:
                    self._delta_row_end()
            else:
                self.count -= 1
                if self.out < dpr:
                    self.row[self.out] = b
                self.out += 1
                self.cnt -= 1
                if self.count == 0:
                    self._delta_row_end()
                elif self.cnt == 0:
                    self.state = 2

    def _delta_row_end(self) -> None:
        row = self.row
        self.seed[:] = row
        self.state = 0
        self.out = 0
        self._emit(bytes(row))


def _block_params(attrs: dict, big: bool) -> tuple[int, int, int]:
    rows = _int_attr(attrs, A_BLOCK_HEIGHT, big, 0)
    mode = _int_attr(attrs, A_COMPRESS_MODE, big, 0)
    pad = _int_attr(attrs, A_PAD_BYTES_MULTIPLE, big, 4)
    return rows, mode, pad


# ---------------------------------------------------------------------------------- scan


class _PageState:
    """What the scanner knows about the current page and session."""

    def __init__(self, sides: str, media, copies: int) -> None:
        self.default_sides = sides
        self.default_media = media
        self.default_copies = copies
        self.runs = RunBuilder()
        self.in_page = False
        self.color = False
        self.sides = sides
        self.media = media
        self.copies = copies
        self.g = _GState()
        self.stack: list[_GState] = []
        self.overflow = 0
        self.patterns = bytearray(8192)
        self.image: _Image | None = None
        self.block = None   # (rows, mode, pad) of the last ReadImage/ReadRastPattern


def _page_media(attrs: dict, big: bool, default):
    v = attrs.get(A_MEDIA_SIZE)
    if v is not None:
        if v.tag == 0xC8:  # a name
            if v.raw is None:
                return default
            code = MEDIA_NAMES.get(v.raw.rstrip(b"\x00").upper())
        else:
            code = _int_attr(attrs, A_MEDIA_SIZE, big)
        return MEDIA_SIZES.get(code, default)
    v = attrs.get(A_CUSTOM_MEDIA_SIZE)
    if v is not None and v.raw is not None and v.count >= 2:
        unit = _int_attr(attrs, A_CUSTOM_MEDIA_SIZE_UNITS, big, 0)
        if not (isinstance(unit, int) and 0 <= unit <= 2):
            return default
        w, h = v.numbers(big)[:2]
        scale = _MEASURE_PWG[unit]
        w, h = w * scale, h * scale
        if not (0.0 < w < 1e9 and 0.0 < h < 1e9):
            return default
        return (int(round(w)), int(round(h)))
    return default


def _page_sides(attrs: dict, big: bool, default: str) -> str:
    if A_DUPLEX_PAGE_MODE in attrs:
        mode = _int_attr(attrs, A_DUPLEX_PAGE_MODE, big)
        if mode == E_DUPLEX_HORIZONTAL:
            return TWO_SIDED_SHORT
        if mode == E_DUPLEX_VERTICAL:
            return TWO_SIDED_LONG
        return default
    if A_SIMPLEX_PAGE_MODE in attrs:
        return ONE_SIDED
    return default


def _copies(attrs: dict, big: bool, default: int) -> int:
    c = _int_attr(attrs, A_PAGE_COPIES, big)
    if c is None or c < 1:
        return default
    return c


def _operator(st: _PageState, op: int, attrs: dict, big: bool) -> None:
    g = st.g
    if op == OP_BEGIN_PAGE:
        st.in_page = True
        st.color = False
        st.media = _page_media(attrs, big, st.default_media)
        st.sides = _page_sides(attrs, big, st.default_sides)
        st.copies = _copies(attrs, big, st.default_copies)
        st.g = _GState()
        st.stack = []
        st.overflow = 0
        st.image = None
    elif op == OP_END_PAGE:
        if st.in_page:
            st.runs.add(st.color, st.sides, st.media, _copies(attrs, big, st.copies))
            st.in_page = False
        st.image = None
    elif op == OP_SET_COLOR_SPACE:
        cs = _int_attr(attrs, A_COLOR_SPACE, big)
        if cs is not None:
            g.rgb = cs != E_GRAY
        elif A_COLORIMETRIC_SPACE in attrs:
            g.rgb = True
        g.palette = _make_palette(attrs.get(A_PALETTE_DATA), g.rgb)
    elif op == OP_SET_BRUSH:
        g.brush = _paint_color(g, attrs, big, st.patterns, g.brush, A_NULL_BRUSH)
    elif op == OP_SET_PEN:
        g.pen = _paint_color(g, attrs, big, st.patterns, g.pen, A_NULL_PEN)
    elif op == OP_PUSH_GS:
        if len(st.stack) < MAX_GS_DEPTH:
            st.stack.append(g.copy())
        else:
            st.overflow += 1
    elif op == OP_POP_GS:
        if st.overflow:
            st.overflow -= 1
        elif st.stack:
            st.g = st.stack.pop()
    elif op in _PAINT_BRUSH_PEN:
        if st.in_page and (g.brush or g.pen):
            st.color = True
    elif op in _PAINT_BRUSH:
        if st.in_page and g.brush:
            st.color = True
    elif op == OP_BEGIN_IMAGE or op == OP_BEGIN_RAST_PATTERN:
        im = _begin_image(g, attrs, big)
        if op == OP_BEGIN_RAST_PATTERN:
            pid = _int_attr(attrs, A_PATTERN_DEFINE_ID, big, 0)
            im.pattern = pid & 0xFFFF if isinstance(pid, int) else 0
        elif st.color or not st.in_page:
            im.decode = False  # nothing to learn from its data
        st.image = im
    elif op == OP_READ_IMAGE or op == OP_READ_RAST_PATTERN:
        st.block = _block_params(attrs, big)
    elif op == OP_END_IMAGE or op == OP_END_RAST_PATTERN:
        im = st.image
        if im is not None:
            _finish_image(st, im)
        st.image = None


def _finish_image(st: _PageState, im: _Image) -> None:
    if im.pattern >= 0:
        pid = im.pattern
        if im.color:
            st.patterns[pid >> 3] |= 1 << (pid & 7)
        else:
            st.patterns[pid >> 3] &= ~(1 << (pid & 7)) & 0xFF
    elif im.color and st.in_page:
        st.color = True


def _image_data(st: _PageState, src: _Source, n: int) -> bool:
    """Embedded data of a ReadImage/ReadRastPattern; False at end of file."""
    im, block = st.image, st.block
    st.block = None
    if im is None or block is None or not im.decode:
        return src.skip(n)
    rows, mode, pad = block
    if mode == C_JPEG or mode not in (C_NONE, C_RLE, C_DELTA_ROW):
        im.color = True  # (decode is only set when the space could make colour)
        im.decode = False
        if im.pattern < 0 and st.in_page:
            st.color = True
        return src.skip(n)

    def on_row(row) -> bool:
        if _row_color(im, row):
            im.color = True
            return True
        return False

    dec = _RowDecoder(im, mode, rows, pad, on_row)
    got = 0
    for piece in src.pieces(n):
        got += len(piece)
        if not dec.done:
            dec.feed(piece)
    if im.color:
        im.decode = False
        if im.pattern < 0 and st.in_page:
            st.color = True
    return got == n


def scan(f, start=0, *, sides=ONE_SIDED, media=None, copies=1):
    """Pages of the PCL XL section of ``f`` starting at ``start`` (the stream header);
    returns (runs, offset just past the UEL that ends it, or the file size)."""
    src = _Source(f, start)
    binding, _ = _header(src)
    st = _PageState(sides, media, copies)
    end = _walk(src, binding, st, None)
    return st.runs.runs(), end


def _walk(src: _Source, binding: int, st: _PageState, hook) -> int:
    """The binary token loop (ASCII sections go to _scan_ascii). ``hook``, when given,
    is called as hook(kind, ...) by the conversions."""
    if binding == 0x27:
        return _scan_ascii(src, st)
    big = binding == 0x28
    attrs: dict = {}
    value: _Value | None = None
    last_op = -1
    # Speed only: while a token lies inside src's current chunk it is read from the
    # chunk here (what src.byte()/take() would return); anything else goes through src.
    # (A scan's src records nothing, so bypassing byte()/take() loses nothing.)
    fast = src.rec is None
    while True:
        buf = src.buf
        i = src.i
        if fast and i < len(buf):
            b = buf[i]
            src.i = i = i + 1
        else:
            b = src.byte()
            if b < 0:
                return src.pos
            buf = src.buf
            i = src.i
        if b in _WS:
            continue
        if 0x41 <= b <= 0xBF:
            _operator(st, b, attrs, big)
            attrs = {}
            value = None
            last_op = b
        elif b in _FIXED_VALUES:
            size, count = _FIXED_VALUES[b]
            j = i + size
            if fast and j <= len(buf):
                value = _Value(b, count, buf[i:j])
                src.i = j
            else:
                value = _read_value(src, b, big)
                if value is None:
                    return src.pos
        elif b == 0xF8 and fast and i < len(buf):
            src.i = i + 1
            if value is not None:
                attrs[buf[i]] = value
            value = None
        elif _is_value_tag(b):
            value = _read_value(src, b, big)
            if value is None:
                return src.pos
        elif b == 0xF8 or b == 0xF9:
            raw = src.take(1 if b == 0xF8 else 2)
            if raw is None:
                return src.pos
            aid = raw[0] if b == 0xF8 else int.from_bytes(raw, "big" if big else "little")
            if value is not None:
                attrs[aid] = value
            value = None
        elif b == 0xFA or b == 0xFB:
            raw = src.take(4 if b == 0xFA else 1)
            if raw is None:
                return src.pos
            n = raw[0] if b == 0xFB else int.from_bytes(raw, "big" if big else "little")
            if last_op == OP_READ_IMAGE or last_op == OP_READ_RAST_PATTERN:
                ok = _image_data(st, src, n)
            else:
                ok = src.skip(n)
            if not ok:
                return src.pos
            last_op = -1
        elif b == 0x1B:
            at = src.pos - 1
            rest = src.take(8)
            if rest is None:
                return src.pos
            if rest != UEL[1:]:
                raise DamagedDocument(f"PCL XL: ESC that is not a UEL at offset {at}")
            return src.pos
        elif b in (0x27, 0x28, 0x29):
            _header_rest(src, b, src.pos - 1)
            if b == 0x27:
                return _scan_ascii(src, st)
            big = b == 0x28
            attrs = {}
            value = None
        else:
            raise DamagedDocument(f"PCL XL: illegal tag 0x{b:02X} at offset {src.pos - 1}")


# ---------------------------------------------------------------------------------- ASCII


_ASCII_ATTRS = {
    b"MediaSize": A_MEDIA_SIZE, b"CustomMediaSize": A_CUSTOM_MEDIA_SIZE,
    b"CustomMediaSizeUnits": A_CUSTOM_MEDIA_SIZE_UNITS, b"PageCopies": A_PAGE_COPIES,
    b"SimplexPageMode": A_SIMPLEX_PAGE_MODE, b"DuplexPageMode": A_DUPLEX_PAGE_MODE,
}
_ASCII_ENUMS = {
    b"eDuplexHorizontalBinding": 0, b"eDuplexVerticalBinding": 1, b"eSimplexFrontSide": 0,
    b"eInch": 0, b"eMillimeter": 1, b"eTenthsOfAMillimeter": 2,
    b"eLetterPaper": 0, b"eLegalPaper": 1, b"eA4Paper": 2, b"eExecPaper": 3, b"eLedgerPaper": 4,
    b"eA3Paper": 5, b"eCOM10Envelope": 6, b"eMonarchEnvelope": 7, b"eC5Envelope": 8,
    b"eDLEnvelope": 9, b"eJB4Paper": 10, b"eJB5Paper": 11, b"eB5Envelope": 12, b"eB5Paper": 13,
    b"eJPostcard": 14, b"eJDoublePostcard": 15, b"eA5Paper": 16, b"eA6Paper": 17,
    b"eJB6Paper": 18, b"eJIS8K": 19, b"eJIS16K": 20, b"eJISExec": 21,
}
_ASCII_NAME = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_")
_ASCII_NUMBER = frozenset(b"0123456789+-.")
MAX_ASCII_WORD = 64


def _ascii_number(word: bytes):
    try:
        return int(word)
    except ValueError:
        try:
            x = float(word)
        except ValueError:
            return None
        return x if x == x and abs(x) < 1e9 else None


def _scan_ascii(src: _Source, st: _PageState) -> int:
    """ASCII binding: words separated by anything that cannot be in a name or number.
    Operators are recognised by name (BeginPage, EndPage); ``TYPE v... Name`` gives the
    numbers (or e-enumeration names) v of attribute Name. Comments (``//`` to end of
    line) and everything else are skipped; embedded data is not recognised. Pages are
    colour None: the ASCII binding is a debugging form, its colour is not decided."""
    values: list = []
    attrs: dict = {}
    word = bytearray()
    comment = False
    while True:
        b = src.byte()
        if b == 0x1B:
            rest = src.take(8)
            if rest == UEL[1:]:
                _ascii_word(st, bytes(word), values, attrs)
                return src.pos
            if rest is None:
                b = -1
        if b < 0:
            _ascii_word(st, bytes(word), values, attrs)
            return src.pos
        if comment:
            if b == 0x0A:
                comment = False
            continue
        if b in _ASCII_NAME or b in _ASCII_NUMBER:
            if len(word) < MAX_ASCII_WORD:
                word.append(b)
            continue
        if b == 0x2F and word == b"/":
            comment = True
            word.clear()
            continue
        if word:
            _ascii_word(st, bytes(word), values, attrs)
            word.clear()
        if b == 0x2F:
            word.append(b)


def _ascii_word(st: _PageState, word: bytes, values: list, attrs: dict) -> None:
    if not word or word == b"/":
        return
    num = _ascii_number(word) if word[0] in _ASCII_NUMBER else None
    if num is not None:
        values.append(num)
        return
    if word in _ASCII_ENUMS:
        values.append(_ASCII_ENUMS[word])
        return
    aid = _ASCII_ATTRS.get(word)
    if aid is not None:
        if values:
            attrs[aid] = tuple(values)
        values.clear()
        return
    if word == b"BeginPage":
        st.in_page = True
        st.media = _ascii_media(attrs, st.default_media)
        dm = attrs.get(A_DUPLEX_PAGE_MODE)
        if dm is not None:
            st.sides = {0: TWO_SIDED_SHORT, 1: TWO_SIDED_LONG}.get(dm[0], st.default_sides)
        elif A_SIMPLEX_PAGE_MODE in attrs:
            st.sides = ONE_SIDED
        else:
            st.sides = st.default_sides
        st.copies = _ascii_copies(attrs, st.default_copies)
    elif word == b"EndPage":
        if st.in_page:
            st.runs.add(None, st.sides, st.media, _ascii_copies(attrs, st.copies))
            st.in_page = False
    elif word in _ASCII_OPERATORS:
        pass
    elif word in _ASCII_TYPES:
        return  # values follow
    else:
        values.clear()  # an attribute we do not read
        return
    attrs.clear()
    values.clear()


_ASCII_OPERATORS = frozenset(b"""
BeginSession EndSession BeginPage EndPage VendorUnique Comment OpenDataSource CloseDataSource
BeginFontHeader ReadFontHeader EndFontHeader BeginChar ReadChar EndChar RemoveFont
SetCharAttributes SetDefaultGS SetColorTreatment BeginStream ReadStream EndStream ExecStream
RemoveStream PopGS PushGS SetClipReplace SetBrushSource SetCharAngle SetCharScale SetCharShear
SetClipIntersect SetClipRectangle SetClipToPage SetColorSpace SetCursor SetCursorRel
SetHalftoneMethod SetFillMode SetFont SetLineDash SetLineCap SetLineJoin SetMiterLimit
SetPageDefaultCTM SetPageOrigin SetPageRotation SetPageScale SetPaintTxMode SetPenSource
SetPenWidth SetROP SetSourceTxMode SetCharBoldValue SetNeutralAxis SetClipMode SetPathToClip
SetCharSubMode BeginUserDefinedLineCap EndUserDefinedLineCap CloseSubPath NewPath PaintPath
ArcPath SetColorTrapping BezierPath SetAdaptiveHalftoning BezierRelPath Chord ChordPath Ellipse
EllipsePath LinePath LineRelPath Pie PiePath Rectangle RectanglePath RoundRectangle
RoundRectanglePath Text TextPath BeginImage ReadImage EndImage BeginRastPattern ReadRastPattern
EndRastPattern BeginScan EndScan ScanLineRel PassThrough""".split())
_ASCII_TYPES = frozenset(
    p + s for p in (b"ubyte", b"uint16", b"uint32", b"sint16", b"sint32", b"real32")
    for s in (b"", b"_array", b"_xy", b"_box"))


def _ascii_copies(attrs: dict, default: int) -> int:
    c = attrs.get(A_PAGE_COPIES)
    if c is None or not isinstance(c[0], int) or c[0] < 1:
        return default
    return c[0]


def _ascii_media(attrs: dict, default):
    m = attrs.get(A_MEDIA_SIZE)
    if m is not None:
        return MEDIA_SIZES.get(m[0], default) if isinstance(m[0], int) else default
    c = attrs.get(A_CUSTOM_MEDIA_SIZE)
    if c is not None and len(c) >= 2:
        u = attrs.get(A_CUSTOM_MEDIA_SIZE_UNITS, (0,))[0]
        if not (isinstance(u, int) and 0 <= u <= 2):
            return default
        w, h = c[0] * _MEASURE_PWG[u], c[1] * _MEASURE_PWG[u]
        if 0 < w < 1e9 and 0 < h < 1e9:
            return (int(round(w)), int(round(h)))
    return default


# ---------------------------------------------------------------------------------- conversions
#
# The conversions walk the same tokens, keeping the bytes of the current operator's
# attribute list ("segment"): items (attribute id or None, raw bytes, value). An
# operator that needs no change is written as it came; one that does is rebuilt
# from its items. Embedded data is streamed through unless it is RGB image data.


def _enc_count(n: int, big: bool) -> bytes:
    if n < 256:
        return bytes((0xC0, n))
    return b"\xc1" + n.to_bytes(2, "big" if big else "little")


def _enc_attr(aid: int) -> bytes:
    return bytes((0xF8, aid)) if aid < 256 else b"\xf9" + aid.to_bytes(2, "little")


def _enc_ubyte_attr(value: int, aid: int) -> bytes:
    return bytes((0xC0, value)) + _enc_attr(aid)


def _enc_uint32_attr(value: int, aid: int, big: bool) -> bytes:
    return b"\xc2" + value.to_bytes(4, "big" if big else "little") + _enc_attr(aid)


def _enc_attr_id(aid: int, big: bool) -> bytes:
    return bytes((0xF8, aid)) if aid < 256 else b"\xf9" + aid.to_bytes(2, "big" if big else "little")


def _luma(r, g, b):
    """Gray of an RGB colour: Rec. 601 weights; integers rounded, reals as float32."""
    if isinstance(r, float) or isinstance(g, float) or isinstance(b, float):
        return struct.unpack("<f", struct.pack("<f", _clamp_real(0.299 * r + 0.587 * g + 0.114 * b)))[0]
    return (299 * r + 587 * g + 114 * b + 500) // 1000


def _clamp_real(x: float) -> float:
    if x != x:
        return 0.0
    return max(-3.0e38, min(3.0e38, x))


class _Segment:
    __slots__ = ("items", "pending")

    def __init__(self) -> None:
        self.items: list = []
        self.pending: tuple | None = None   # (raw, value) of a value not yet given an id

    def raw(self) -> bytes:
        parts = [it[1] for it in self.items]
        if self.pending is not None:
            parts.append(self.pending[0])
        return b"".join(parts)

    def attrs(self) -> dict:
        return {it[0]: it[2] for it in self.items if it[0] is not None and it[2] is not None}

    def clear(self) -> None:
        self.items = []
        self.pending = None


def _convert(f, out, start: int, end, on_op, on_data) -> None:
    """Copies f[start:end] to out through the token walk: on_op(op, seg, big) returns
    the bytes to write for an operator and its attributes (None: as they came);
    on_data(op, src, n, form, big) writes an embedded data block (None: copy it)."""
    if end is not None and end < start:
        raise PdlError("end before start")
    src = _Source(f, start, end)
    src.rec = bytearray()
    binding, _ = _header(src)
    if binding == 0x27:
        raise ConversionError("PCL XL: the ASCII binding is not converted")
    big = binding == 0x28
    out.write(src.rec)
    seg = _Segment()
    last_op = -1
    done = False
    while not done:
        src.rec = bytearray()
        b = src.byte()
        if b < 0:
            break
        if b in _WS:
            seg.items.append((None, bytes(src.rec), None))
        elif 0x41 <= b <= 0xBF:
            if seg.pending is not None:
                seg.items.append((None, seg.pending[0], None))
                seg.pending = None
            data = on_op(b, seg, big)
            out.write(seg.raw() + bytes((b,)) if data is None else data)
            seg.clear()
            last_op = b
        elif _is_value_tag(b):
            if seg.pending is not None:
                seg.items.append((None, seg.pending[0], None))
                seg.pending = None
            value = _read_value(src, b, big)
            if value is None:  # cut short by the end of the file (src.rec holds it)
                break
            seg.pending = (bytes(src.rec), value)
        elif b == 0xF8 or b == 0xF9:
            raw = src.take(1 if b == 0xF8 else 2)
            if raw is None:
                break
            aid = raw[0] if b == 0xF8 else int.from_bytes(raw, "big" if big else "little")
            if seg.pending is not None:
                seg.items.append((aid, seg.pending[0] + bytes(src.rec), seg.pending[1]))
                seg.pending = None
            else:
                seg.items.append((aid, bytes(src.rec), None))
        elif b == 0xFA or b == 0xFB:
            raw = src.take(4 if b == 0xFA else 1)
            if raw is None:
                break
            n = raw[0] if b == 0xFB else int.from_bytes(raw, "big" if big else "little")
            out.write(seg.raw())
            seg.clear()
            src.rec = None
            if not on_data(last_op, src, n, bytes((b,)) + raw, big):
                out.write(bytes((b,)) + raw)
                for piece in src.pieces(n):
                    out.write(piece)
            last_op = -1
            src.rec = bytearray()
            continue
        elif b == 0x1B:
            rest = src.take(8)
            if rest is not None and rest != UEL[1:]:
                raise DamagedDocument(f"PCL XL: ESC that is not a UEL at offset {src.pos - 9}")
            done = True
        elif b in (0x27, 0x28, 0x29):
            _header_rest(src, b, src.pos - 1)
            if b == 0x27:
                raise ConversionError("PCL XL: the ASCII binding is not converted")
            big = b == 0x28
        else:
            raise DamagedDocument(f"PCL XL: illegal tag 0x{b:02X} at offset {src.pos - 1}")
        if b in _WS or b >= 0xF8 or (0x41 <= b <= 0xBF) or _is_value_tag(b):
            continue
        out.write(seg.raw())
        seg.clear()
        out.write(src.rec)
        src.rec = bytearray()
    # end of the section (UEL, end of file or a token cut short): the rest as it is
    out.write(seg.raw())
    if src.rec:
        out.write(src.rec)
    src.rec = None
    rest_at = src.pos
    f.seek(rest_at)
    left = None if end is None else end - rest_at
    while left is None or left > 0:
        piece = f.read(CHUNK if left is None else min(CHUNK, left))
        if not piece:
            break
        out.write(piece)
        if left is not None:
            left -= len(piece)


def to_duplex(f, out, sides, start=0, end=None) -> None:
    """Copy of the PCL XL section f[start:end] whose every BeginPage says ``sides``:
    SimplexPageMode/DuplexPageMode replaced by DuplexPageMode eDuplexVerticalBinding
    (long edge) or eDuplexHorizontalBinding (short edge), or by SimplexPageMode for
    ONE_SIDED; DuplexPageSide is kept when the page was two-sided already, else
    dropped. Everything else is copied byte for byte."""
    if sides == TWO_SIDED_LONG:
        add = _enc_ubyte_attr(E_DUPLEX_VERTICAL, A_DUPLEX_PAGE_MODE)
    elif sides == TWO_SIDED_SHORT:
        add = _enc_ubyte_attr(E_DUPLEX_HORIZONTAL, A_DUPLEX_PAGE_MODE)
    elif sides == ONE_SIDED:
        add = _enc_ubyte_attr(0, A_SIMPLEX_PAGE_MODE)
    else:
        raise ValueError(f"sides must be one of {ONE_SIDED!r}, {TWO_SIDED_LONG!r}, {TWO_SIDED_SHORT!r}")

    def on_op(op, seg, big):
        if op != OP_BEGIN_PAGE:
            return None
        was_duplex = any(it[0] == A_DUPLEX_PAGE_MODE for it in seg.items)
        drop_side = sides == ONE_SIDED or not was_duplex
        parts, placed = [], False
        for aid, raw, _ in seg.items:
            if aid == A_SIMPLEX_PAGE_MODE or aid == A_DUPLEX_PAGE_MODE:
                if not placed:  # the new mode where the old one was
                    parts.append(add)
                    placed = True
            elif not (aid == A_DUPLEX_PAGE_SIDE and drop_side):
                parts.append(raw)
        if not placed:
            parts.append(add)
        return b"".join(parts) + bytes((op,))

    _convert(f, out, start, end, on_op, lambda *a: False)


class _GrayState:
    """to_grayscale: the original colour space (with PushGS/PopGS) and the image being read."""

    def __init__(self) -> None:
        self.rgb = False
        self.palette = False
        self.stack: list = []
        self.overflow = 0
        self.image: _Image | None = None    # an RGB direct image whose data is converted
        self.block = None
        self.read_seg: bytes | None = None  # held ReadImage bytes (BlockByteLength to patch)
        self.read_items = None


def _gray_color_attr(v: _Value, big: bool, palette: bool, aid: int) -> bytes:
    """A colour value attribute (RGBColor / PrimaryArray) as its gray equivalent."""
    et = v.tag & 7
    fmt = (">" if big else "<") + _ELEM_FMT[et]
    if v.raw is None or v.count == 0:
        raise ConversionError("PCL XL: a colour value too long to convert")
    nums = v.numbers(big)
    if palette:  # an index into the (converted) palette
        return bytes((0xC0 | et,)) + struct.pack(fmt, nums[0]) + _enc_attr_id(A_GRAY_LEVEL, big)
    if v.count < 3:
        raise ConversionError("PCL XL: an RGB colour with fewer than three components")
    g = _luma(*nums[:3])
    if et != 5:
        lo, hi = {0: (0, 255), 1: (0, 65535), 2: (0, 4294967295), 3: (-32768, 32767),
                  4: (-2147483648, 2147483647)}[et]
        g = max(lo, min(hi, g))
    if aid == A_PRIMARY_ARRAY:
        return bytes((0xC8 | et,)) + _enc_count(1, big) + struct.pack(fmt, g) + _enc_attr_id(aid, big)
    return bytes((0xC0 | et,)) + struct.pack(fmt, g) + _enc_attr_id(A_GRAY_LEVEL, big)


def _gray_row(im: _Image, row: bytes) -> bytes:
    w, d = im.width, im.depth
    if d == 8:
        return bytes((299 * row[i] + 587 * row[i + 1] + 114 * row[i + 2] + 500) // 1000
                     for i in range(0, 3 * w, 3))
    per = 8 // d
    mask = (1 << d) - 1
    samples = [(row[i // per] >> (8 - d - (i % per) * d)) & mask for i in range(3 * w)]
    gray = [(299 * samples[i] + 587 * samples[i + 1] + 114 * samples[i + 2] + 500) // 1000
            for i in range(0, 3 * w, 3)]
    out = bytearray((w * d + 7) >> 3)
    for i, v in enumerate(gray):
        out[i // per] |= v << (8 - d - (i % per) * d)
    return bytes(out)


def _packbits(data: bytes) -> bytes:
    out = bytearray()
    i, n = 0, len(data)
    while i < n:
        j = i + 1
        while j < n and j - i < 128 and data[j] == data[i]:
            j += 1
        if j - i >= 2:
            out += bytes((257 - (j - i), data[i]))
            i = j
            continue
        j = i + 1  # literal run until a repeat of 2 or 128 bytes
        while j < n and j - i < 128 and not (j + 1 < n and data[j] == data[j + 1]):
            j += 1
        out.append(j - i - 1)
        out += data[i:j]
        i = j
    return bytes(out)


def _delta_row(row: bytes, seed: bytes) -> bytes:
    body = bytearray()
    i, n, last = 0, len(row), 0
    while i < n:
        if row[i] == seed[i]:
            i += 1
            continue
        j = i
        while j < n and j - i < 8 and row[j] != seed[j]:
            j += 1
        off = i - last
        cnt = j - i
        if off < 31:
            body.append(((cnt - 1) << 5) | off)
        else:
            body.append(((cnt - 1) << 5) | 31)
            off -= 31
            while off >= 255:
                body.append(255)
                off -= 255
            body.append(off)
        body += row[i:j]
        last = j
        i = j
    if len(body) > 65535:
        raise ConversionError("PCL XL: a delta row too long to re-encode")
    return len(body).to_bytes(2, "little") + bytes(body)


def to_grayscale(f, out, start=0, end=None) -> None:
    """Copy of the PCL XL section f[start:end] that paints in gray: SetColorSpace
    eRGB/eSRGB (and colorimetric RGB) become eGray, RGB palettes their gray palettes,
    RGBColor/PrimaryArray their luma (Rec. 601, rounded) as GrayLevel/PrimaryArray,
    and direct RGB image and raster-pattern data is decoded, turned to luma and
    re-encoded the same way (none, RLE, DeltaRow; BlockByteLength patched). Exact
    except for rounding to the nearest gray. Cannot be done (ConversionError): RGB
    JPEG image data, 16-bit palettes, the ASCII binding. Everything else is copied
    byte for byte. (The dispatcher adds PJL RENDERMODE=GRAYSCALE.)"""
    gs = _GrayState()

    def on_op(op, seg, big):
        if gs.read_items is not None:  # a held ReadImage whose data block did not follow it
            raise ConversionError("PCL XL: image data is missing after ReadImage")
        if op == OP_PUSH_GS:
            if len(gs.stack) < MAX_GS_DEPTH:
                gs.stack.append((gs.rgb, gs.palette))
            else:
                gs.overflow += 1
            return None
        if op == OP_POP_GS:
            if gs.overflow:
                gs.overflow -= 1
            elif gs.stack:
                gs.rgb, gs.palette = gs.stack.pop()
            return None
        if op == OP_BEGIN_PAGE:
            gs.rgb, gs.palette, gs.stack, gs.overflow = False, False, [], 0
            return None
        if op == OP_SET_COLOR_SPACE:
            return _gray_color_space(gs, seg, big, op)
        if op in (OP_SET_BRUSH, OP_SET_PEN):
            if not gs.rgb:
                return None
            parts = []
            for aid, raw, v in seg.items:
                if aid in (A_RGB_COLOR, A_PRIMARY_ARRAY) and v is not None:
                    parts.append(_gray_color_attr(v, big, gs.palette, aid))
                elif aid == A_GRAY_LEVEL and v is not None and gs.palette:
                    parts.append(raw)
                else:
                    parts.append(raw)
            return b"".join(parts) + bytes((op,))
        if op in (OP_BEGIN_IMAGE, OP_BEGIN_RAST_PATTERN):
            attrs = seg.attrs()
            gs.image = None
            if gs.rgb and _int_attr(attrs, A_COLOR_MAPPING, big, 0) != 1:
                dcode = _int_attr(attrs, A_COLOR_DEPTH, big, 2)
                width = _int_attr(attrs, A_SOURCE_WIDTH, big, 0)
                depth = {0: 1, 1: 4, 2: 8}.get(dcode)
                if depth is None or width < 0 or (width * depth * 3 + 7) >> 3 > MAX_ROW:
                    raise ConversionError("PCL XL: an RGB image that cannot be decoded")
                im = _Image()
                im.width, im.depth, im.ncomp = width, depth, 3
                im.dpr = (width * depth * 3 + 7) >> 3
                gs.image = im
                gs.image.table = bytearray((width * depth + 7) >> 3)  # gray seed for DeltaRow
            return None
        if op in (OP_READ_IMAGE, OP_READ_RAST_PATTERN) and gs.image is not None:
            gs.block = _block_params(seg.attrs(), big)
            gs.read_items = (list(seg.items), op)
            return b""   # held until its data is converted
        if op in (OP_END_IMAGE, OP_END_RAST_PATTERN):
            gs.image = None
        return None

    def on_data(op, src, n, form, big):
        if gs.read_items is None:
            return False
        items, rop = gs.read_items
        gs.read_items = None
        rows, mode, pad = gs.block
        im = gs.image
        if mode == C_JPEG:
            raise ConversionError("PCL XL: RGB JPEG image data cannot be converted to gray exactly")
        if mode not in (C_NONE, C_RLE, C_DELTA_ROW):
            raise ConversionError(f"PCL XL: unknown image compression {mode}")
        if n > MAX_CONVERTED_BLOCK:
            raise ConversionError("PCL XL: an image block too large to convert")
        gray_rows: list = []
        dec = _RowDecoder(im, mode, rows, pad, lambda row: gray_rows.append(_gray_row(im, row)) and False)
        for piece in src.pieces(n):
            dec.feed(piece)
        gdpr = (im.width * im.depth + 7) >> 3
        if mode == C_DELTA_ROW:
            seed = im.table
            parts = []
            for r in gray_rows:
                parts.append(_delta_row(r, seed))
                seed[:] = r
            data = b"".join(parts)
        else:
            p = pad if pad > 0 else 1
            rin = -(-gdpr // p) * p
            padded = b"".join(r + bytes(rin - gdpr) for r in gray_rows)
            data = _packbits(padded) if mode == C_RLE else padded
        head = b"".join(
            _enc_uint32_attr(len(data), A_BLOCK_BYTE_LENGTH, big) if aid == A_BLOCK_BYTE_LENGTH else raw
            for aid, raw, v in items)
        if form[0] == 0xFB and len(data) < 256:
            length = bytes((0xFB, len(data)))
        else:
            length = b"\xfa" + len(data).to_bytes(4, "big" if big else "little")
        out.write(head + bytes((rop,)) + length + data)
        return True

    _convert(f, out, start, end, on_op, on_data)


def _gray_color_space(gs: _GrayState, seg: _Segment, big: bool, op: int):
    attrs = seg.attrs()
    cs = _int_attr(attrs, A_COLOR_SPACE, big)
    if cs is not None:
        gs.rgb = cs != E_GRAY
    elif A_COLORIMETRIC_SPACE in attrs:
        gs.rgb = True
    gs.palette = A_PALETTE_DATA in attrs
    if not gs.rgb:
        return None
    parts = []
    have_space = False
    for aid, raw, v in seg.items:
        if aid == A_COLOR_SPACE:
            parts.append(_enc_ubyte_attr(E_GRAY, A_COLOR_SPACE) if aid < 256 else raw)
            have_space = True
        elif aid is not None and 17 <= aid <= 21:   # colorimetric RGB and its parameters
            continue
        elif aid == A_PALETTE_DATA:
            if v is None or v.raw is None or (v.tag & 7) != 0:
                raise ConversionError("PCL XL: a palette that cannot be converted")
            pal = v.raw
            gray = bytes((299 * pal[i] + 587 * pal[i + 1] + 114 * pal[i + 2] + 500) // 1000
                         for i in range(0, len(pal) - 2, 3))
            parts.append(b"\xc8" + _enc_count(len(gray), big) + gray + _enc_attr_id(A_PALETTE_DATA, big))
        else:
            parts.append(raw)
    if not have_space:
        parts.append(_enc_ubyte_attr(E_GRAY, A_COLOR_SPACE))
    return b"".join(parts) + bytes((op,))
