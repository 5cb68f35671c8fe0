"""PWG Raster and Apple raster (URF): pages, colour, sides, media, copies; conversion
to grayscale and to duplex.

This is the specification: ``ext/raster.pyx`` (``spoolproxy._ext.raster``) is its
compiled twin; it reuses the header functions below (``_read_page`` and the header
patchers, all marked "shared") and does the line walking in C. Both must return the
same values, write the same bytes and raise the same exception classes.

Formats
-------
PWG Raster (PWG 5102.4): the sync word ``RaS2``, then per page a 1796-byte CUPS raster
v2 page header (big-endian) followed by the page's compressed lines. Apple raster
(URF, ``image/urf``): ``UNIRAST\\0``, a 4-byte page count (Ghostscript writes 0, so it
is not trusted), then per page a 32-byte header (bits per pixel, colour space, duplex,
quality, reserved, width, height, resolution, reserved) and the compressed lines.
Ghostscript's ``appleraster`` device writes exactly what its ``urf`` device writes.
CUPS raster v1/v3 (``RaS1``/``RaS3``, uncompressed, either byte order) is not PWG and
is not accepted (UnsupportedFormat); the sniffer does not report it either.

Line encoding (both formats): a line-repeat byte (the line occurs byte+1 times), then
runs until the line's width is filled, counted in *units* (a whole pixel, or a whole
byte when pixels are smaller than a byte): 0..127 = the next unit repeated n+1 times;
129..255 = 257-n literal units follow; 128 = the rest of the line is white (0xFF in
the additive spaces, 0x00 in the subtractive ones - libcups's reading, for both
formats). A run that overruns the line is a DamagedDocument (libcups clamps it, which
desynchronises the stream). A line-repeat count that runs past the page's height is
tolerated (libcups ignores it too): the page simply ends.

Colour spaces accepted (anything else is UnsupportedFormat):
- gray, never colour: PWG Black (3), sGray (18), and W (0, not in PWG but trivially
  gray); URF sGray (0) and W (4); 1, 2, 4, 8 or 16 bits.
- RGB: PWG RGB (1), sRGB (19), AdobeRGB (20); URF sRGB (1), AdobeRGB (3), RGB (5);
  8 or 16 bits per colour, or Ghostscript's 1 bit per colour packed as a nibble
  ``0RGB`` two pixels to a byte. A pixel is colour when the spread of its channels
  (max - min) exceeds ``COLOR_TOLERANCE`` (on the 0..255 scale; ``x257`` at 16 bits,
  any difference at 1 bit): anti-aliased gray text is not colour, a tinted pixel is.
- CMYK: PWG/URF CMYK (6); 8 or 16 bits, or 1 bit packed as nibbles ``CMYK``. A pixel
  is colour when C, M or Y exceeds ``COLOR_TOLERANCE`` (it would put colour ink on
  paper even when neutral - what Ghostscript's ``inkcov`` counts).
- PWG Device1..Device15 (48..62) and URF CIELab (2): colour cannot be decided from
  the pixels (``color=None``).
cupsColorOrder must be 0 (chunky). Limits, so that a header cannot make us allocate
or loop without bound: 1 <= height <= ``MAX_HEIGHT``, width >= 1, bytes per line
(ceil(width * bits per pixel / 8)) <= ``MAX_BYTES_PER_LINE``, and for PWG
cupsBytesPerLine must equal that value.

Page attributes: PWG media from PageSize (points; 0 = not said, the ``media`` default
applies), sides from Duplex/Tumble, copies from NumCopies (0 = not said, the ``copies``
default applies). URF media from width and height at the resolution (none when it is
0), sides from the duplex byte (1 one-sided, 2 short edge, 3 long edge; other values
= not said, the ``sides`` default applies), copies from the ``copies`` default (URF
has no copies field).

Conversions (``to_grayscale``, ``to_duplex``) read the section [start, end) and write
its converted form to ``out`` (only that section: the caller writes what surrounds
it). The file header is copied. Grayscale, per page:
- gray colour spaces: copied byte for byte;
- RGB (8 and 16 bit): every pixel becomes Y = (299 R + 587 G + 114 B + 500) // 1000
  (ITU-R BT.601 luma, integer, rounded; the same formula at 16 bits), the header says
  sGray (PWG 18 / URF 0), bits per colour and pixel 8 (16), one colour, bytes per line
  = width (x2); the compressed lines keep their exact structure (same line-repeat
  bytes, same run codes, each pixel replaced by its luma), so R=G=B pixels keep
  their value;
- RGB at 1 bit: to 8-bit sGray (each channel 0 or 255), re-encoded run by run (see
  ``_Rgb1Encoder``);
- CMYK pages without colour are copied; CMYK pages with colour, DeviceN and CIELab
  pages raise ConversionError (no exact gray for them).
Duplex: every page header gets the requested sides (PWG Duplex/Tumble, the URF duplex
byte); everything else is copied.

Memory is bounded: the file is read in ``CHUNK`` pieces and at most one compressed
line (< 2 x ``MAX_BYTES_PER_LINE``) more is held.
"""
from __future__ import annotations

from typing import BinaryIO, NamedTuple

from spoolproxy.pdl.model import (
    ONE_SIDED, TWO_SIDED_LONG, TWO_SIDED_SHORT, ConversionError, DamagedDocument, PageRun,
    RunBuilder, UnsupportedFormat, points_to_pwg,
)

__all__ = [
    "PWG_SYNC", "URF_MAGIC", "COLOR_TOLERANCE", "MAX_HEIGHT", "MAX_BYTES_PER_LINE", "CHUNK",
    "scan", "to_grayscale", "to_duplex",
]

PWG_SYNC = b"RaS2"
URF_MAGIC = b"UNIRAST\x00"
PWG_HEADER_SIZE = 1796
URF_FILE_HEADER_SIZE = 12  # magic + page count
URF_HEADER_SIZE = 32

COLOR_TOLERANCE = 2               # channel spread (RGB) or C/M/Y level (CMYK) on 0..255
COLOR_TOLERANCE_16 = COLOR_TOLERANCE * 257
MAX_HEIGHT = 1_000_000
MAX_BYTES_PER_LINE = 1 << 22      # 4 MiB: 64 in at 1200 dpi in 16-bit CMYK is 0.6 MiB
CHUNK = 1 << 20

# pixel kinds: how a page's pixels are checked for colour and converted
K_GRAY, K_RGB8, K_RGB16, K_RGB1, K_CMYK8, K_CMYK16, K_CMYK1, K_OTHER = range(8)

FMT_PWG, FMT_URF = 0, 1

# PWG page header fields (byte offsets into the 1796-byte header)
_DUPLEX, _HWRES, _NUMCOPIES, _PAGESIZE, _TUMBLE = 272, 276, 340, 352, 368
_WIDTH, _HEIGHT, _BPC, _BPP, _BPL, _ORDER, _CSPACE, _NUMCOLORS = 372, 376, 384, 388, 392, 396, 400, 420

_PWG_GRAY = {0, 3, 18}
_PWG_RGB = {1, 19, 20}
_PWG_CMYK = 6
_PWG_ADDITIVE = {0, 1, 18, 19, 20}      # white is 0xFF (libcups's list, PWG spaces only)
_PWG_SGRAY = 18

# URF colour space byte -> (family, additive)
_URF_SPACES = {0: ("gray", True), 1: ("rgb", True), 2: ("lab", False), 3: ("rgb", True),
               4: ("gray", True), 5: ("rgb", True), 6: ("cmyk", False)}
_URF_SGRAY = 0
_URF_SIDES = {1: ONE_SIDED, 2: TWO_SIDED_SHORT, 3: TWO_SIDED_LONG}
_URF_DUPLEX_BYTE = {ONE_SIDED: 1, TWO_SIDED_SHORT: 2, TWO_SIDED_LONG: 3}


class _Page(NamedTuple):
    """One page header, decoded (shared with the compiled twin)."""
    kind: int
    width: int
    height: int
    bpl: int        # decoded bytes per line
    unit: int       # bytes per run unit (a pixel, or a byte of packed pixels)
    white: int      # what code 128 fills with
    color: bool | None   # None when the pixels cannot tell; otherwise False until a pixel says
    sides: str
    media: tuple[int, int] | None
    copies: int


# -- headers (shared) --------------------------------------------------------------------------


def _kind(family: str, bpc: int, bpp: int) -> int:
    """The pixel kind for a colour family and bit depth; UnsupportedFormat if not one we read."""
    if family == "gray" and bpc in (1, 2, 4, 8, 16) and bpp == bpc:
        return K_GRAY
    if family == "rgb":
        kind = {(8, 24): K_RGB8, (16, 48): K_RGB16, (1, 4): K_RGB1}.get((bpc, bpp))
    elif family == "cmyk":
        kind = {(8, 32): K_CMYK8, (16, 64): K_CMYK16, (1, 4): K_CMYK1}.get((bpc, bpp))
    elif family == "other" and bpc in (8, 16) and bpp % bpc == 0 and 0 < bpp <= 15 * bpc:
        kind = K_OTHER
    elif family == "other1" and bpc in (1, 8, 16) and bpp == bpc:  # Device1: one colorant
        kind = K_OTHER
    else:
        kind = None
    if kind is None:
        raise UnsupportedFormat(f"raster: {bpc} bits per colour, {bpp} per pixel not supported for {family}")
    return kind


def _geometry(width: int, height: int, bpp: int) -> tuple[int, int]:
    """(bytes per line, bytes per unit) after checking the limits."""
    if width < 1 or height < 1 or height > MAX_HEIGHT:
        raise DamagedDocument(f"raster: page of {width} x {height} pixels")
    bpl = (width * bpp + 7) // 8
    if bpl > MAX_BYTES_PER_LINE:
        raise DamagedDocument(f"raster: {bpl} bytes per line is more than {MAX_BYTES_PER_LINE}")
    return bpl, max(1, bpp // 8)


def _read_page(fmt: int, header: bytes, sides: str, media, copies: int) -> _Page:
    """Decode one page header (PWG_HEADER_SIZE or URF_HEADER_SIZE bytes). Shared."""
    if fmt == FMT_PWG:
        return _read_pwg(header, sides, media, copies)
    return _read_urf(header, sides, media, copies)


def _u32(h: bytes, off: int) -> int:
    return int.from_bytes(h[off:off + 4], "big")


def _read_pwg(h: bytes, sides: str, media, copies: int) -> _Page:
    cspace, bpc, bpp = _u32(h, _CSPACE), _u32(h, _BPC), _u32(h, _BPP)
    if cspace in _PWG_GRAY:
        family = "gray"
    elif cspace in _PWG_RGB:
        family = "rgb"
    elif cspace == _PWG_CMYK:
        family = "cmyk"
    elif cspace == 48:
        family = "other1"
    elif 49 <= cspace <= 62:
        family = "other"
    else:
        raise UnsupportedFormat(f"PWG raster: colour space {cspace} is not a PWG one")
    kind = _kind(family, bpc, bpp)
    if _u32(h, _ORDER) != 0:
        raise UnsupportedFormat("PWG raster: colour order is not chunky")
    width, height = _u32(h, _WIDTH), _u32(h, _HEIGHT)
    bpl, unit = _geometry(width, height, bpp)
    if _u32(h, _BPL) != bpl:
        raise DamagedDocument(f"PWG raster: cupsBytesPerLine {_u32(h, _BPL)}, expected {bpl}")
    if _u32(h, _DUPLEX):
        sides = TWO_SIDED_SHORT if _u32(h, _TUMBLE) else TWO_SIDED_LONG
    else:
        sides = ONE_SIDED
    pw, ph = _u32(h, _PAGESIZE), _u32(h, _PAGESIZE + 4)
    if pw and ph:
        media = (points_to_pwg(pw), points_to_pwg(ph))
    n = _u32(h, _NUMCOPIES)
    return _Page(kind, width, height, bpl, unit, 0xFF if cspace in _PWG_ADDITIVE else 0x00,
                 None if kind == K_OTHER else False, sides, media, n if n else copies)


def _read_urf(h: bytes, sides: str, media, copies: int) -> _Page:
    bpp, cspace, duplex = h[0], h[1], h[2]
    if cspace not in _URF_SPACES:
        raise UnsupportedFormat(f"URF: colour space {cspace}")
    family, additive = _URF_SPACES[cspace]
    if family == "lab":
        if bpp not in (24, 48):
            raise UnsupportedFormat(f"URF: {bpp} bits per pixel for CIELab")
        kind = K_OTHER
    else:
        channels = {"gray": 1, "rgb": 3, "cmyk": 4}[family]
        bpc = 1 if bpp == 4 and channels > 1 else bpp // channels
        kind = _kind(family, bpc, bpp)
    width, height, dpi = _u32(h, 12), _u32(h, 16), _u32(h, 20)
    bpl, unit = _geometry(width, height, bpp)
    if dpi:
        media = ((width * 2540 + dpi // 2) // dpi, (height * 2540 + dpi // 2) // dpi)
    return _Page(kind, width, height, bpl, unit, 0xFF if additive else 0x00,
                 None if kind == K_OTHER else False, _URF_SIDES.get(duplex, sides), media, copies)


def _gray_header(fmt: int, page: _Page, header: bytes) -> bytes:
    """The header of ``page`` converted to sGray (8 bits, or 16 for 16-bit RGB). Shared."""
    bits = 16 if page.kind == K_RGB16 else 8
    h = bytearray(header)
    if fmt == FMT_PWG:
        for off, value in ((_BPC, bits), (_BPP, bits), (_BPL, page.width * bits // 8),
                           (_CSPACE, _PWG_SGRAY), (_NUMCOLORS, 1)):
            h[off:off + 4] = value.to_bytes(4, "big")
    else:
        h[0], h[1] = bits, _URF_SGRAY
    return bytes(h)


def _duplex_header(fmt: int, sides: str, header: bytes) -> bytes:
    """The header with its sides set to ``sides``. Shared."""
    h = bytearray(header)
    if fmt == FMT_PWG:
        h[_DUPLEX:_DUPLEX + 4] = (0 if sides == ONE_SIDED else 1).to_bytes(4, "big")
        h[_TUMBLE:_TUMBLE + 4] = (1 if sides == TWO_SIDED_SHORT else 0).to_bytes(4, "big")
    else:
        h[2] = _URF_DUPLEX_BYTE[sides]
    return bytes(h)


def _check_sides(sides: str) -> None:
    if sides not in _URF_DUPLEX_BYTE:
        raise ValueError(f"sides must be one of {tuple(_URF_DUPLEX_BYTE)}, not {sides!r}")


def _max_line(page: _Page) -> int:
    """The longest a compressed line can be: the repeat byte, then at worst one
    code byte per unit plus the units."""
    return 1 + page.bpl + page.bpl // page.unit


# -- reading -----------------------------------------------------------------------------------


class _Reader:
    """The section [start, end) of ``f``, read in CHUNK pieces, with ``ensure(n)``
    to have at least n bytes at ``buf[pos:]`` when the section has them."""
    __slots__ = ("f", "left", "buf", "pos", "base", "eof")

    def __init__(self, f: BinaryIO, start: int, end: int | None) -> None:
        if start < 0 or (end is not None and end < start):
            raise ValueError("raster: bad section bounds")
        f.seek(start)
        self.f, self.left = f, None if end is None else end - start
        self.buf, self.pos, self.base, self.eof = b"", 0, start, False

    def ensure(self, n: int) -> int:
        """Bytes available at ``pos`` (>= n unless the section ends first)."""
        avail = len(self.buf) - self.pos
        while avail < n and not self.eof:
            want = max(CHUNK, n - avail)
            if self.left is not None:
                want = min(want, self.left)
            data = self.f.read(want) if want else b""
            if not data:
                self.eof = True
                break
            if self.left is not None:
                self.left -= len(data)
            self.base += self.pos
            self.buf = self.buf[self.pos:] + data
            self.pos = 0
            avail = len(self.buf)
        return avail

    def take(self, n: int) -> bytes:
        if self.ensure(n) < n:
            raise DamagedDocument("raster: the document ends inside a header")
        data = self.buf[self.pos:self.pos + n]
        self.pos += n
        return data

    @property
    def offset(self) -> int:
        return self.base + self.pos

    def at_end(self) -> bool:
        return self.ensure(1) == 0


def _open(r: _Reader) -> tuple[int, bytes]:
    """(format, file header) at the start of the section."""
    if r.ensure(URF_FILE_HEADER_SIZE) >= 4 and r.buf[r.pos:r.pos + 4] == PWG_SYNC:
        return FMT_PWG, r.take(4)
    if r.ensure(URF_FILE_HEADER_SIZE) >= 8 and r.buf[r.pos:r.pos + 8] == URF_MAGIC:
        if r.ensure(URF_FILE_HEADER_SIZE) < URF_FILE_HEADER_SIZE:
            raise DamagedDocument("URF: the document ends inside the file header")
        return FMT_URF, r.take(URF_FILE_HEADER_SIZE)
    raise UnsupportedFormat("not PWG raster (RaS2) nor Apple raster (UNIRAST)")


def _pages(r: _Reader, fmt: int, sides: str, media, copies: int):
    """Yield (page, raw header) for each page until the section ends."""
    size = PWG_HEADER_SIZE if fmt == FMT_PWG else URF_HEADER_SIZE
    while not r.at_end():
        header = r.take(size)
        yield _read_page(fmt, header, sides, media, copies), header


# -- colour of pixels ----------------------------------------------------------------------------


def _rgb_spread(r, g, b, tol) -> bool:
    return any(max(x, y, z) - min(x, y, z) > tol for x, y, z in zip(r, g, b))


def _nibble_table(test) -> tuple[bytes, bytes]:
    """(byte -> colour? for both nibbles, byte -> colour? for the high nibble only)."""
    both = bytes(1 if test(b >> 4) or test(b & 15) else 0 for b in range(256))
    high = bytes(1 if test(b >> 4) else 0 for b in range(256))
    return both, high


_RGB1_COLOR = _nibble_table(lambda n: (n & 7) not in (0, 7))
_CMYK1_COLOR = _nibble_table(lambda n: bool(n & 0xE))


def _be16(data: bytes) -> list[int]:
    return [int.from_bytes(data[i:i + 2], "big") for i in range(0, len(data), 2)]


def _units_color(kind: int, data: bytes, last_half: bool) -> bool:
    """Whether any pixel in ``data`` (whole units of ``kind``) is colour. ``last_half``:
    the last byte of packed nibbles holds one pixel and a padding nibble."""
    if kind == K_RGB8:
        r, g, b = data[0::3], data[1::3], data[2::3]
        return not (r == g == b) and _rgb_spread(r, g, b, COLOR_TOLERANCE)
    if kind == K_RGB16:
        v = _be16(data)
        return _rgb_spread(v[0::3], v[1::3], v[2::3], COLOR_TOLERANCE_16)
    if kind == K_CMYK8:
        return any(data[i::4] and max(data[i::4]) > COLOR_TOLERANCE for i in range(3))
    if kind == K_CMYK16:
        v = _be16(data)
        return any(v[i::4] and max(v[i::4]) > COLOR_TOLERANCE_16 for i in range(3))
    if kind in (K_RGB1, K_CMYK1):
        both, high = _RGB1_COLOR if kind == K_RGB1 else _CMYK1_COLOR
        if last_half:
            return b"\x01" in data[:-1].translate(both) or high[data[-1]] == 1
        return b"\x01" in data.translate(both)
    return False  # gray and undecidable kinds are not checked


# -- line walking ------------------------------------------------------------------------------


def _walk_page(r: _Reader, page: _Page, line_fn=None, check: bool = True) -> bool:
    """Walk the page's compressed lines; return whether a pixel is colour (checked only
    for the kinds that can tell, and only until the first colour pixel). ``line_fn(buf,
    start, end, runs)`` is called per line with the line's bytes ``buf[start:end]`` and
    its runs: a list of (code, offset of the unit data) (for conversions)."""
    units, unit, height = page.bpl // page.unit, page.unit, page.height
    odd = page.kind in (K_RGB1, K_CMYK1) and page.width % 2 == 1
    check = check and page.kind not in (K_GRAY, K_OTHER)
    color = False
    need = _max_line(page)
    y = 0
    while y < height:
        avail = r.ensure(need)
        buf, i = r.buf, r.pos
        lim = i + avail
        if i >= lim:
            raise DamagedDocument("raster: the document ends inside a page")
        start = i
        y += buf[i] + 1
        i += 1
        x = 0
        runs = [] if line_fn is not None else None
        while x < units:
            if i >= lim:
                raise DamagedDocument("raster: the document ends inside a line")
            code = buf[i]
            i += 1
            if code == 128:
                if runs is not None:
                    runs.append((code, i, units - x))
                x = units
                continue
            k = code + 1 if code < 128 else 257 - code
            if x + k > units:
                raise DamagedDocument("raster: a run overruns its line")
            size = unit if code < 128 else k * unit
            if i + size > lim:
                raise DamagedDocument("raster: the document ends inside a line")
            if runs is not None:
                runs.append((code, i, k))
            if check and not color:
                data = buf[i:i + size]
                last = odd and x + k == units
                if code < 128:
                    color = _units_color(page.kind, data, last) or (
                        last and k > 1 and _units_color(page.kind, data, False))
                else:
                    color = _units_color(page.kind, data, last)
            x += k
            i += size
        if line_fn is not None:
            line_fn(buf, start, i, runs)
        r.pos = i
    return color


# -- scan --------------------------------------------------------------------------------------


def scan(f: BinaryIO, start: int = 0, *, sides: str = ONE_SIDED, media=None,
         copies: int = 1) -> tuple[tuple[PageRun, ...], int]:
    """Pages of the PWG or URF raster starting at ``start`` (format from its magic);
    runs to the end of the file. Returns (runs, end offset)."""
    r = _Reader(f, start, None)
    fmt, _ = _open(r)
    runs = RunBuilder()
    for page, _header in _pages(r, fmt, sides, media, copies):
        color = _walk_page(r, page)
        runs.add(None if page.color is None else color, page.sides, page.media, page.copies)
    return runs.runs(), r.offset


# -- conversions -------------------------------------------------------------------------------


def _luma(r: int, g: int, b: int) -> int:
    return (299 * r + 587 * g + 114 * b + 500) // 1000


_RGB1_LUMA = bytes(_luma(255 * (n >> 2 & 1), 255 * (n >> 1 & 1), 255 * (n & 1)) for n in range(16))


class _Rgb1Encoder:
    """Re-encodes a line of 1-bit packed RGB (two pixels a byte) as 8-bit gray runs.
    Each input run becomes runs of its own, in order: a repeated byte whose two pixels
    have the same gray becomes repeat runs of up to 128 pixels; any other input run
    (repeat with two different grays, or literal) becomes literal runs of up to 128
    pixels, where a lone pixel is written as a repeat of one (code 0). Code 128
    stays 128. A run that reaches the end of a line of odd width drops its last
    (padding) pixel."""

    @staticmethod
    def repeat(out: bytearray, value: int, n: int) -> None:
        while n:
            k = min(n, 128)
            out += bytes((k - 1, value))
            n -= k

    @staticmethod
    def literal(out: bytearray, pixels: bytes) -> None:
        for j in range(0, len(pixels), 128):
            chunk = pixels[j:j + 128]
            out += (b"\x00" if len(chunk) == 1 else bytes((257 - len(chunk),))) + chunk

    @classmethod
    def line(cls, out: bytearray, buf: bytes, start: int, runs, units: int, odd: bool) -> None:
        out.append(buf[start])
        x = 0
        for code, i, k in runs:
            if code == 128:
                out.append(128)
                break
            drop = 1 if odd and x + k == units else 0
            if code < 128:
                b = buf[i]
                hi, lo = _RGB1_LUMA[b >> 4], _RGB1_LUMA[b & 15]
                if hi == lo:
                    cls.repeat(out, hi, 2 * k - drop)
                else:
                    cls.literal(out, bytes((hi, lo)) * k if not drop else (bytes((hi, lo)) * k)[:-1])
            else:
                px = bytearray()
                for b in buf[i:i + k]:
                    px += bytes((_RGB1_LUMA[b >> 4], _RGB1_LUMA[b & 15]))
                cls.literal(out, bytes(px[:len(px) - drop]))
            x += k


def _gray_units(kind: int, data: bytes) -> bytes:
    """Whole RGB units (8 or 16 bit) as their luma."""
    if kind == K_RGB8:
        return bytes(_luma(r, g, b) for r, g, b in zip(data[0::3], data[1::3], data[2::3]))
    v = _be16(data)
    return b"".join(_luma(r, g, b).to_bytes(2, "big") for r, g, b in zip(v[0::3], v[1::3], v[2::3]))


def _convert_line(out: bytearray, page: _Page, buf: bytes, start: int, end: int, runs) -> None:
    """One RGB line (8 or 16 bit) with the same structure, each unit replaced by its luma."""
    kind, unit = page.kind, page.unit
    out.append(buf[start])
    for code, i, k in runs:
        out.append(code)
        if code == 128:
            break
        size = unit if code < 128 else k * unit
        out += _gray_units(kind, buf[i:i + size])


def to_grayscale(f: BinaryIO, out: BinaryIO, start: int = 0, end: int | None = None) -> None:
    """Write the raster section [start, end) converted to grayscale to ``out``
    (see the module docstring for what each kind of page becomes)."""
    r = _Reader(f, start, end)
    fmt, file_header = _open(r)
    out.write(file_header)
    for page, header in _pages(r, fmt, ONE_SIDED, None, 1):
        pending = bytearray()

        if page.kind in (K_RGB8, K_RGB16, K_RGB1):
            out.write(_gray_header(fmt, page, header))
            units, odd = page.bpl // page.unit, page.width % 2 == 1

            def line(buf, s, e, runs):
                if page.kind == K_RGB1:
                    _Rgb1Encoder.line(pending, buf, s, runs, units, odd)
                else:
                    _convert_line(pending, page, buf, s, e, runs)
                if len(pending) >= CHUNK:
                    out.write(pending)
                    pending.clear()

            _walk_page(r, page, line, check=False)
        elif page.kind == K_OTHER:
            raise ConversionError("raster: a DeviceN or CIELab page has no exact gray")
        else:
            out.write(header)

            def line(buf, s, e, runs):
                pending.extend(buf[s:e])
                if len(pending) >= CHUNK:
                    out.write(pending)
                    pending.clear()

            if _walk_page(r, page, line):
                raise ConversionError("raster: a CMYK page with colour has no exact gray")
        out.write(pending)


def to_duplex(f: BinaryIO, out: BinaryIO, sides: str, start: int = 0, end: int | None = None) -> None:
    """Write the raster section [start, end) with every page header set to ``sides``."""
    _check_sides(sides)
    r = _Reader(f, start, end)
    fmt, file_header = _open(r)
    out.write(file_header)
    for page, header in _pages(r, fmt, ONE_SIDED, None, 1):
        out.write(_duplex_header(fmt, sides, header))
        pending = bytearray()

        def line(buf, s, e, runs):
            pending.extend(buf[s:e])
            if len(pending) >= CHUNK:
                out.write(pending)
                pending.clear()

        _walk_page(r, page, line, check=False)
        out.write(pending)
