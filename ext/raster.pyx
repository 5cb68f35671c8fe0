# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""Compiled twin of spoolproxy.pdl.raster: PWG Raster and Apple raster (URF) pages,
colour, sides, media and copies, and the grayscale and duplex conversions.

The pure module is the specification (its docstring has the rules). Page headers are
decoded by its shared functions (``_read_page``, ``_gray_header``, ``_duplex_header``:
a few microseconds a page); what is done here in C, without the GIL, is the part that
costs: walking the compressed lines, checking pixels for colour and re-encoding them.
The file is read in chunks into one buffer; the GIL is taken back once per chunk to
refill it (and once per output chunk to write)."""
from libc.stdint cimport uint8_t
from libc.string cimport memcpy, memmove
from cpython.bytes cimport PyBytes_FromStringAndSize

from spoolproxy.pdl import raster as _spec
from spoolproxy.pdl.model import (
    ONE_SIDED, ConversionError, DamagedDocument, RunBuilder, UnsupportedFormat,
)

__all__ = [
    "PWG_SYNC", "URF_MAGIC", "COLOR_TOLERANCE", "MAX_HEIGHT", "MAX_BYTES_PER_LINE", "CHUNK",
    "scan", "to_grayscale", "to_duplex",
]

PWG_SYNC = _spec.PWG_SYNC
URF_MAGIC = _spec.URF_MAGIC
COLOR_TOLERANCE = _spec.COLOR_TOLERANCE
MAX_HEIGHT = _spec.MAX_HEIGHT
MAX_BYTES_PER_LINE = _spec.MAX_BYTES_PER_LINE
CHUNK = _spec.CHUNK

cdef Py_ssize_t _CHUNK = _spec.CHUNK
cdef int _TOL = _spec.COLOR_TOLERANCE
cdef int _TOL16 = _spec.COLOR_TOLERANCE_16

cdef enum:
    K_GRAY = 0
    K_RGB8
    K_RGB16
    K_RGB1
    K_CMYK8
    K_CMYK16
    K_CMYK1
    K_OTHER

assert (K_GRAY, K_RGB8, K_RGB16, K_RGB1, K_CMYK8, K_CMYK16, K_CMYK1, K_OTHER) == (
    _spec.K_GRAY, _spec.K_RGB8, _spec.K_RGB16, _spec.K_RGB1, _spec.K_CMYK8, _spec.K_CMYK16,
    _spec.K_CMYK1, _spec.K_OTHER)

cdef enum:
    MODE_SCAN = 0     # walk and check colour
    MODE_COPY = 1     # copy the lines byte for byte (and check colour when asked)
    MODE_GRAY = 2     # RGB 8/16 -> luma, same run structure
    MODE_RGB1 = 3     # packed 1-bit RGB -> 8-bit gray, re-encoded

cdef enum:
    R_DONE = 0
    R_NEED_INPUT = 1
    R_NEED_FLUSH = 2
    R_TRUNCATED = -1
    R_OVERRUN = -2

# byte -> 1 if a pixel in it is colour (both nibbles / high nibble only)
cdef uint8_t _RGB1_BOTH[256]
cdef uint8_t _RGB1_HIGH[256]
cdef uint8_t _CMYK1_BOTH[256]
cdef uint8_t _CMYK1_HIGH[256]
cdef uint8_t _RGB1_LUMA[16]


cdef void _init_tables():
    cdef int b
    for b in range(256):
        _RGB1_BOTH[b] = _spec._RGB1_COLOR[0][b]
        _RGB1_HIGH[b] = _spec._RGB1_COLOR[1][b]
        _CMYK1_BOTH[b] = _spec._CMYK1_COLOR[0][b]
        _CMYK1_HIGH[b] = _spec._CMYK1_COLOR[1][b]
    for b in range(16):
        _RGB1_LUMA[b] = _spec._RGB1_LUMA[b]


_init_tables()


# -- input ---------------------------------------------------------------------------------------


cdef class _In:
    """The section [start, end) of a file, buffered: ``buf[pos:n]`` are the bytes at
    file offset ``base + pos``."""
    cdef object f
    cdef object readinto
    cdef bint bounded
    cdef long long left
    cdef bytearray storage
    cdef uint8_t* buf
    cdef Py_ssize_t cap, pos, n
    cdef long long base
    cdef bint eof

    def __init__(self, f, long long start, end):
        if start < 0 or (end is not None and end < start):
            raise ValueError("raster: bad section bounds")
        f.seek(start)
        self.f = f
        self.readinto = getattr(f, "readinto", None)
        self.bounded = end is not None
        self.left = (end - start) if end is not None else 0
        self._alloc(2 * _CHUNK)
        self.pos = self.n = 0
        self.base = start
        self.eof = False

    cdef void _alloc(self, Py_ssize_t cap):
        cdef bytearray fresh = bytearray(cap)
        if self.n > self.pos:
            memcpy(<uint8_t*> fresh, self.buf + self.pos, self.n - self.pos)
        self.n -= self.pos
        self.base += self.pos
        self.pos = 0
        self.storage = fresh
        self.buf = <uint8_t*> fresh
        self.cap = cap

    cdef Py_ssize_t ensure(self, Py_ssize_t need) except -1:
        """Bytes available at pos (>= need unless the section ends first)."""
        cdef Py_ssize_t want, got
        if self.n - self.pos >= need or self.eof:
            return self.n - self.pos
        if need + _CHUNK > self.cap:
            self._alloc(need + _CHUNK)
        elif self.pos:
            memmove(self.buf, self.buf + self.pos, self.n - self.pos)
            self.n -= self.pos
            self.base += self.pos
            self.pos = 0
        while self.n < need and not self.eof:
            want = self.cap - self.n
            if self.bounded and want > self.left:
                want = <Py_ssize_t> self.left
            got = self._read(want) if want else 0
            if got == 0:
                self.eof = True
                break
            self.n += got
            if self.bounded:
                self.left -= got
        return self.n - self.pos

    cdef Py_ssize_t _read(self, Py_ssize_t want) except -1:
        cdef Py_ssize_t got
        if self.readinto is not None:
            got = self.readinto(memoryview(self.storage)[self.n:self.n + want]) or 0
            return got
        data = self.f.read(want)
        got = len(data)
        if got > want:
            raise ValueError("raster: read() returned more than asked")
        memcpy(self.buf + self.n, <const char*> data, got)
        return got

    cdef bytes take(self, Py_ssize_t size):
        if self.ensure(size) < size:
            raise DamagedDocument("raster: the document ends inside a header")
        cdef bytes data = PyBytes_FromStringAndSize(<char*> self.buf + self.pos, size)
        self.pos += size
        return data

    cdef bint at_end(self) except -1:
        return self.ensure(1) == 0


cdef tuple _open(_In r):
    if r.ensure(_spec.URF_FILE_HEADER_SIZE) >= 4 and r.buf[r.pos:r.pos + 4] == _spec.PWG_SYNC:
        return _spec.FMT_PWG, r.take(4)
    if r.ensure(_spec.URF_FILE_HEADER_SIZE) >= 8 and r.buf[r.pos:r.pos + 8] == _spec.URF_MAGIC:
        if r.ensure(_spec.URF_FILE_HEADER_SIZE) < _spec.URF_FILE_HEADER_SIZE:
            raise DamagedDocument("URF: the document ends inside the file header")
        return _spec.FMT_URF, r.take(_spec.URF_FILE_HEADER_SIZE)
    raise UnsupportedFormat("not PWG raster (RaS2) nor Apple raster (UNIRAST)")


# -- the walk (no GIL) ---------------------------------------------------------------------------


cdef struct Walk:
    int kind
    int mode
    Py_ssize_t units
    Py_ssize_t unit
    Py_ssize_t need          # longest compressed line
    bint odd                 # packed nibbles, odd width: the last byte has one pixel
    bint check
    bint color
    long long lines_left
    uint8_t* out
    Py_ssize_t out_n
    Py_ssize_t out_cap
    Py_ssize_t out_max_line


cdef inline int _max3(int a, int b, int c) noexcept nogil:
    if b > a:
        a = b
    return c if c > a else a


cdef inline int _min3(int a, int b, int c) noexcept nogil:
    if b < a:
        a = b
    return c if c < a else a


cdef inline int _be16(const uint8_t* p) noexcept nogil:
    return (p[0] << 8) | p[1]


cdef bint _units_color(int kind, const uint8_t* p, Py_ssize_t k, bint last_half) noexcept nogil:
    """Whether any of the k units at p is colour (see the pure _units_color)."""
    cdef Py_ssize_t j
    cdef int spread
    cdef const uint8_t* both
    cdef const uint8_t* high
    if kind == K_RGB8:
        for j in range(k):
            if _max3(p[0], p[1], p[2]) - _min3(p[0], p[1], p[2]) > _TOL:
                return True
            p += 3
        return False
    if kind == K_RGB16:
        for j in range(k):
            spread = (_max3(_be16(p), _be16(p + 2), _be16(p + 4))
                      - _min3(_be16(p), _be16(p + 2), _be16(p + 4)))
            if spread > _TOL16:
                return True
            p += 6
        return False
    if kind == K_CMYK8:
        for j in range(k):
            if p[0] > _TOL or p[1] > _TOL or p[2] > _TOL:
                return True
            p += 4
        return False
    if kind == K_CMYK16:
        for j in range(k):
            if _be16(p) > _TOL16 or _be16(p + 2) > _TOL16 or _be16(p + 4) > _TOL16:
                return True
            p += 8
        return False
    if kind == K_RGB1 or kind == K_CMYK1:
        if kind == K_RGB1:
            both = &_RGB1_BOTH[0]
            high = &_RGB1_HIGH[0]
        else:
            both = &_CMYK1_BOTH[0]
            high = &_CMYK1_HIGH[0]
        if last_half:
            k -= 1
            if high[p[k]]:
                return True
        for j in range(k):
            if both[p[j]]:
                return True
        return False
    return False


cdef inline int _luma(int r, int g, int b) noexcept nogil:
    return (299 * r + 587 * g + 114 * b + 500) // 1000


cdef inline uint8_t* _gray_units(int kind, const uint8_t* p, Py_ssize_t k, uint8_t* o) noexcept nogil:
    cdef Py_ssize_t j
    cdef int y
    if kind == K_RGB8:
        for j in range(k):
            o[j] = <uint8_t> _luma(p[0], p[1], p[2])
            p += 3
        return o + k
    for j in range(k):
        y = _luma(_be16(p), _be16(p + 2), _be16(p + 4))
        o[0] = <uint8_t> (y >> 8)
        o[1] = <uint8_t> (y & 0xFF)
        o += 2
        p += 6
    return o


cdef inline uint8_t* _emit_repeat(uint8_t* o, uint8_t value, Py_ssize_t n) noexcept nogil:
    cdef Py_ssize_t k
    while n:
        k = 128 if n > 128 else n
        o[0] = <uint8_t> (k - 1)
        o[1] = value
        o += 2
        n -= k
    return o


cdef inline uint8_t* _emit_rgb1_literal(uint8_t* o, const uint8_t* src, Py_ssize_t stride,
                                        Py_ssize_t npx) noexcept nogil:
    """npx gray pixels from packed 1-bit RGB at src (stride 0: one byte repeated),
    as literal runs of up to 128 (a lone pixel as a repeat of one)."""
    cdef Py_ssize_t c0 = 0, m, j, px
    cdef uint8_t b
    while c0 < npx:
        m = npx - c0
        if m > 128:
            m = 128
        o[0] = 0 if m == 1 else <uint8_t> (257 - m)
        o += 1
        for j in range(m):
            px = c0 + j
            b = src[(px >> 1) * stride]
            o[j] = _RGB1_LUMA[(b >> 4) if (px & 1) == 0 else (b & 15)]
        o += m
        c0 += m
    return o


cdef inline Py_ssize_t _skip_line(const uint8_t* buf, Py_ssize_t pos, Py_ssize_t n,
                                  Py_ssize_t units, Py_ssize_t unit) noexcept nogil:
    """Walk one line's runs from pos (past the repeat byte) without looking at the
    pixels; the position after them, or R_TRUNCATED / R_OVERRUN. The bounds are
    checked per run before a code byte is read, and for the whole line at its end
    (both failures are the same DamagedDocument)."""
    cdef Py_ssize_t x = 0, k, size
    cdef unsigned int code
    cdef bint lit
    while x < units:
        if pos >= n:
            return R_TRUNCATED
        code = buf[pos]
        pos += 1
        if code == 128:
            return pos
        lit = code > 128
        k = (257 - code) if lit else (code + 1)
        size = k * unit if lit else unit
        x += k
        pos += size
    if x > units:
        return R_OVERRUN
    if pos > n:
        return R_TRUNCATED
    return pos


cdef inline bint _rgb8_color(const uint8_t* p, Py_ssize_t k) noexcept nogil:
    """Whether any of k 8-bit RGB pixels is colour; exact neutral pixels (the common
    case) are ruled out with a branch-free pass first."""
    cdef Py_ssize_t j
    cdef unsigned int acc = 0
    for j in range(k):
        acc |= (p[3 * j] ^ p[3 * j + 1]) | (p[3 * j + 1] ^ p[3 * j + 2])
    if acc == 0:
        return False
    return _units_color(K_RGB8, p, k, False)


cdef inline Py_ssize_t _check_line(int kind, const uint8_t* buf, Py_ssize_t pos, Py_ssize_t n,
                                   Py_ssize_t units, Py_ssize_t unit, bint odd,
                                   bint* color) noexcept nogil:
    """_skip_line that also checks the pixels for colour until one is found."""
    cdef Py_ssize_t x = 0, k, size
    cdef unsigned int code
    cdef bint last, found = False
    while x < units:
        if pos >= n:
            return R_TRUNCATED
        code = buf[pos]
        pos += 1
        if code == 128:
            break
        if code < 128:
            k = code + 1
            size = unit
        else:
            k = 257 - code
            size = k * unit
        if x + k > units:
            return R_OVERRUN
        if pos + size > n:
            return R_TRUNCATED
        if not found:
            if kind == K_RGB8:
                found = _rgb8_color(buf + pos, 1 if code < 128 else k)
            else:
                last = odd and x + k == units
                if code < 128:
                    found = _units_color(kind, buf + pos, 1, last) or (
                        last and k > 1 and _units_color(kind, buf + pos, 1, False))
                else:
                    found = _units_color(kind, buf + pos, k, last)
        x += k
        pos += size
    if found:
        color[0] = True
    return pos


cdef inline Py_ssize_t _gray_line(int kind, const uint8_t* buf, Py_ssize_t pos, Py_ssize_t n,
                                  Py_ssize_t units, Py_ssize_t unit, uint8_t** po) noexcept nogil:
    """One RGB (8/16) line's runs as luma runs of the same structure, written at *po."""
    cdef Py_ssize_t x = 0, k, size
    cdef unsigned int code
    cdef uint8_t* o = po[0]
    while x < units:
        if pos >= n:
            return R_TRUNCATED
        code = buf[pos]
        pos += 1
        o[0] = <uint8_t> code
        o += 1
        if code == 128:
            break
        if code < 128:
            k = code + 1
            size = unit
        else:
            k = 257 - code
            size = k * unit
        if x + k > units:
            return R_OVERRUN
        if pos + size > n:
            return R_TRUNCATED
        o = _gray_units(kind, buf + pos, 1 if code < 128 else k, o)
        x += k
        pos += size
    po[0] = o
    return pos


cdef inline Py_ssize_t _rgb1_line(const uint8_t* buf, Py_ssize_t pos, Py_ssize_t n,
                                  Py_ssize_t units, bint odd, uint8_t** po) noexcept nogil:
    """One packed 1-bit RGB line re-encoded as 8-bit gray (the pure _Rgb1Encoder)."""
    cdef Py_ssize_t x = 0, k, npx
    cdef unsigned int code
    cdef uint8_t* o = po[0]
    cdef uint8_t hi, lo
    while x < units:
        if pos >= n:
            return R_TRUNCATED
        code = buf[pos]
        pos += 1
        if code == 128:
            o[0] = 128
            o += 1
            break
        k = code + 1 if code < 128 else 257 - code
        if x + k > units:
            return R_OVERRUN
        if pos + (1 if code < 128 else k) > n:
            return R_TRUNCATED
        npx = 2 * k - (1 if odd and x + k == units else 0)
        if code < 128:
            hi = _RGB1_LUMA[buf[pos] >> 4]
            lo = _RGB1_LUMA[buf[pos] & 15]
            if hi == lo:
                o = _emit_repeat(o, hi, npx)
            else:
                o = _emit_rgb1_literal(o, buf + pos, 0, npx)
            pos += 1
        else:
            o = _emit_rgb1_literal(o, buf + pos, 1, npx)
            pos += k
        x += k
    po[0] = o
    return pos


cdef int _walk(Walk* w, const uint8_t* buf, Py_ssize_t* ppos, Py_ssize_t n, bint eof) noexcept nogil:
    """Walk lines from *ppos until the page ends, more input is needed (a whole
    longest line must be buffered unless at the end) or the output must be flushed."""
    cdef Py_ssize_t pos = ppos[0], start, r
    cdef Py_ssize_t units = w.units, unit = w.unit, need = w.need
    cdef int rep, kind = w.kind, mode = w.mode
    cdef bint check = w.check, odd = w.odd, color = w.color
    cdef long long lines_left = w.lines_left
    cdef uint8_t* o = NULL
    cdef int rc = R_DONE
    while lines_left > 0:
        if n - pos < need and not eof:
            rc = R_NEED_INPUT
            break
        if mode != MODE_SCAN and w.out_n + w.out_max_line > w.out_cap:
            rc = R_NEED_FLUSH
            break
        if pos >= n:
            return R_TRUNCATED
        start = pos
        rep = buf[pos] + 1
        if mode == MODE_SCAN or mode == MODE_COPY:
            if check and not color:
                r = _check_line(kind, buf, pos + 1, n, units, unit, odd, &color)
            else:
                r = _skip_line(buf, pos + 1, n, units, unit)
            if r < 0:
                return <int> r
            if mode == MODE_COPY:
                memcpy(w.out + w.out_n, buf + start, r - start)
                w.out_n += r - start
        else:
            o = w.out + w.out_n
            o[0] = buf[start]
            o += 1
            if mode == MODE_GRAY:
                r = _gray_line(kind, buf, pos + 1, n, units, unit, &o)
            else:
                r = _rgb1_line(buf, pos + 1, n, units, odd, &o)
            if r < 0:
                return <int> r
            w.out_n = o - w.out
        pos = r
        if rep >= lines_left:
            lines_left = 0
        else:
            lines_left -= rep
    w.color = color
    w.lines_left = lines_left
    ppos[0] = pos
    return rc


cdef class _Out:
    """The output buffer of a conversion."""
    cdef object write
    cdef bytearray storage
    cdef uint8_t* buf
    cdef Py_ssize_t cap

    def __init__(self, out):
        self.write = out.write
        self.cap = 0

    cdef void reserve(self, Py_ssize_t cap):
        if cap > self.cap:
            self.storage = bytearray(cap)
            self.buf = <uint8_t*> self.storage
            self.cap = cap

    cdef int flush(self, Walk* w) except -1:
        if w.out_n:
            self.write(PyBytes_FromStringAndSize(<char*> self.buf, w.out_n))
            w.out_n = 0
        return 0


cdef bint _walk_page(_In r, page, int mode, bint check, _Out out) except -1:
    """Walk one page (see the pure _walk_page); returns whether a pixel is colour."""
    cdef Walk w
    cdef int rc
    cdef Py_ssize_t pos
    cdef const uint8_t* buf
    cdef Py_ssize_t n
    cdef bint eof
    w.kind = page.kind
    w.mode = mode
    w.unit = page.unit
    w.units = page.bpl // page.unit
    w.need = _spec._max_line(page)
    w.odd = (w.kind == K_RGB1 or w.kind == K_CMYK1) and page.width % 2 == 1
    w.check = check and w.kind != K_GRAY and w.kind != K_OTHER
    w.color = False
    w.lines_left = page.height
    w.out_n = 0
    w.out_max_line = 2 + 3 * w.units + page.bpl
    if mode != MODE_SCAN:
        out.reserve(_CHUNK + w.out_max_line)
        w.out = out.buf
        w.out_cap = out.cap
    else:
        w.out = NULL
        w.out_cap = 0
    while True:
        r.ensure(w.need)
        buf, pos, n, eof = r.buf, r.pos, r.n, r.eof
        with nogil:
            rc = _walk(&w, buf, &pos, n, eof)
        r.pos = pos
        if rc == R_DONE:
            break
        if rc == R_NEED_FLUSH:
            out.flush(&w)
        elif rc == R_TRUNCATED:
            raise DamagedDocument("raster: the document ends inside a page")
        elif rc == R_OVERRUN:
            raise DamagedDocument("raster: a run overruns its line")
    if mode != MODE_SCAN:
        out.flush(&w)
    return w.color


cdef _pages_gen(_In r, fmt, sides, media, copies):
    """List-free page loop helper: (page, header) or None at the end."""
    if r.at_end():
        return None
    header = r.take(_spec.PWG_HEADER_SIZE if fmt == _spec.FMT_PWG else _spec.URF_HEADER_SIZE)
    return _spec._read_page(fmt, header, sides, media, copies), header


# -- API -----------------------------------------------------------------------------------------


def scan(f, start=0, *, sides=ONE_SIDED, media=None, copies=1):
    """Pages of the PWG or URF raster starting at ``start``; see spoolproxy.pdl.raster.scan."""
    cdef _In r = _In(f, start, None)
    fmt, _ = _open(r)
    runs = RunBuilder()
    while True:
        item = _pages_gen(r, fmt, sides, media, copies)
        if item is None:
            break
        page = item[0]
        color = _walk_page(r, page, MODE_SCAN, True, None)
        runs.add(None if page.color is None else color, page.sides, page.media, page.copies)
    return runs.runs(), r.base + r.pos


def to_grayscale(f, out, start=0, end=None):
    """See spoolproxy.pdl.raster.to_grayscale."""
    cdef _In r = _In(f, start, end)
    cdef _Out o = _Out(out)
    fmt, file_header = _open(r)
    out.write(file_header)
    while True:
        item = _pages_gen(r, fmt, ONE_SIDED, None, 1)
        if item is None:
            break
        page, header = item
        kind = page.kind
        if kind == K_RGB8 or kind == K_RGB16 or kind == K_RGB1:
            out.write(_spec._gray_header(fmt, page, header))
            _walk_page(r, page, MODE_RGB1 if kind == K_RGB1 else MODE_GRAY, False, o)
        elif kind == K_OTHER:
            raise ConversionError("raster: a DeviceN or CIELab page has no exact gray")
        else:
            out.write(header)
            if _walk_page(r, page, MODE_COPY, True, o):
                raise ConversionError("raster: a CMYK page with colour has no exact gray")


def to_duplex(f, out, sides, start=0, end=None):
    """See spoolproxy.pdl.raster.to_duplex."""
    _spec._check_sides(sides)
    cdef _In r = _In(f, start, end)
    cdef _Out o = _Out(out)
    fmt, file_header = _open(r)
    out.write(file_header)
    while True:
        item = _pages_gen(r, fmt, ONE_SIDED, None, 1)
        if item is None:
            break
        page, header = item
        out.write(_spec._duplex_header(fmt, sides, header))
        _walk_page(r, page, MODE_COPY, False, o)
