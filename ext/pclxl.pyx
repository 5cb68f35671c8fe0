# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""Compiled twin of spoolproxy.pdl.pclxl: the PCL XL scanner. The pure module is the
specification (its docstring has the rules); this one walks the binary tokens in C
with the GIL released per buffer, and must return and raise exactly as the pure one.

How it is fast (the scan is meant to run at about 1 GB/s per core):
* no Python object per token: a value goes into a fixed C slot, and only for the few
  attribute ids an operator here reads (_KEPT); an array longer than SHORT bytes is
  copied out of the buffer only when such an id takes it;
* the token loop tests values, attribute ids and operators in that order with plain
  branches, takes a value and its attribute id at once, and handles painting operators
  without a call; it runs without the GIL over each 1 MiB chunk, read with readinto
  into the scanner's own buffer (no bytes object per chunk);
* embedded data nobody needs is skipped by offset (a seek past the chunk), and image
  rows are decoded only while the page's colour is still open;
* pages become runs in C; a full batch of finished runs (DONECAP) goes to Python at
  once, and when the keyword defaults are plain values the PageRuns are built directly
  (one object per distinct run) instead of through a RunBuilder;
* the header line is read from the same buffer, and scanners (their buffers) are kept
  for the next call, so a small file costs little more than its bytes.

What stays in Python: the ASCII binding (handed to the pure scanner), and the
conversions to_grayscale / to_duplex, which are the pure module's functions (they are
I/O bound and rewrite few bytes)."""
from libc.stdlib cimport malloc, calloc, free
from libc.string cimport memcpy, memmove, memset, memcmp, memchr
from cpython.memoryview cimport PyMemoryView_FromMemory
from cpython.buffer cimport PyBUF_WRITE
from libc.math cimport rint, fabs
from libc.stdint cimport int64_t, uint8_t, uint16_t, uint32_t, int16_t, int32_t, uint64_t

from spoolproxy.pdl import pclxl as _pure
from cpython.bytes cimport PyBytes_FromStringAndSize
from spoolproxy.pdl.model import (
    ONE_SIDED, TWO_SIDED_LONG, TWO_SIDED_SHORT, DamagedDocument, PageRun, PdlError, RunBuilder,
)

__all__ = ["scan", "to_grayscale", "to_duplex", "MEDIA_SIZES", "NEUTRAL_TOLERANCE", "CHUNK",
           "MAX_GS_DEPTH", "MAX_ROW"]

to_grayscale = _pure.to_grayscale
to_duplex = _pure.to_duplex
MEDIA_SIZES = _pure.MEDIA_SIZES
NEUTRAL_TOLERANCE = _pure.NEUTRAL_TOLERANCE
CHUNK = _pure.CHUNK
MAX_GS_DEPTH = _pure.MAX_GS_DEPTH
MAX_ROW = _pure.MAX_ROW

cdef enum:
    BUFSIZE = 1 << 20
    SLACK = 8192           # room kept past a chunk for a token cut at its end
    PAD = 64               # past SLACK: short values are copied 16 bytes at a time
    SHORT = 16             # values up to this many bytes are copied with a fixed-size copy
    MAXHDR = 1024          # = pure MAX_HEADER
    NSLOTS = 24            # attribute ids the scanner reads (see _KEPT), slot 0 unused
    DONECAP = 256          # finished runs handed to Python at a time
    MAXVAL = 4096          # = pure MAX_VALUE
    MAXGS = 32             # = pure MAX_GS_DEPTH
    MAXROW = 1 << 20       # = pure MAX_ROW
    TOL = 2                # = pure NEUTRAL_TOLERANCE
    NSIDES_DEFAULT = -1

# what the token loop asks of the Python side
cdef enum:
    ACT_NEED = 1       # more bytes for the token at pos (or more image data)
    ACT_SKIP = 2       # skip `skip` bytes past the buffer
    ACT_UEL = 3        # done: UEL at pos - 9 .. pos
    ACT_PAGE = 4       # the batch of finished runs is full: hand it over, then continue
    ACT_ILLEGAL = 5    # illegal tag at pos - 1
    ACT_ESC = 6        # ESC not a UEL at pos - 9
    ACT_HEADER = 7     # a stream header tag at pos - 1
    ACT_BADCOUNT = 8   # bad array length type at pos - 1

# byte classes of the token loop (_CLASS)
cdef enum:
    K_ILLEGAL = 0
    K_WS = 1
    K_OP = 2
    K_VAL = 3          # scalar, xy or box: _VBYTES[b] bytes follow
    K_ARR = 4          # array: an element count follows
    K_A8 = 5
    K_A16 = 6
    K_D32 = 7
    K_D8 = 8
    K_ESC = 9
    K_HDR = 10

# what an operator does (_OPKIND, bits)
cdef enum:
    OPK_NONE = 0       # nothing the scanner tracks
    OPK_BRUSH = 1      # paints with the brush
    OPK_PEN = 2        # paints with the pen
    OPK_STATE = 4      # _operator
cdef enum:
    S_ONE = 0
    S_LONG = 1
    S_SHORT = 2
    S_DEFAULT = 3

ctypedef struct PVal:              # the pending value (before its attribute id)
    int tag
    int64_t count
    int has_raw
    int len
    uint8_t raw[MAXVAL]

ctypedef struct Val:               # an attribute: 64 bytes, the loop writes many of them
    int64_t count
    const uint8_t* raw             # small, or the slot's part of St.longraw
    int32_t tag
    int32_t has_raw
    int32_t len
    int32_t _pad
    uint8_t small[SHORT]
    uint8_t _pad2[64 - 32 - SHORT]

ctypedef struct Palette:
    int present
    int any
    int n
    uint8_t color[MAXVAL]

ctypedef struct GState:
    int rgb
    int brush
    int pen
    Palette pal

ctypedef struct Image:
    int active
    int decode
    int color
    int64_t width
    int depth
    int ncomp
    int indexed
    int64_t dpr
    int pattern
    int has_seed
    int tn
    uint8_t table[MAXVAL]
    uint8_t* seed
    uint8_t* row

ctypedef struct Dec:               # one image data block being decoded
    int active
    int done
    int mode
    int64_t left
    int64_t rin
    int64_t rpos
    int64_t lit
    int64_t rep
    int state
    int64_t count
    int lsb
    int64_t cnt
    int64_t off
    int64_t out

ctypedef struct RunRec:        # all 8-byte fields: no padding, the bytes are a dict key
    int64_t count
    int64_t color
    int64_t sides
    int64_t mcode             # -2 default, -3 w/h, >= 0 enumeration (not when canon)
    double w
    double h
    int64_t copies            # 0: default (not when canon)

ctypedef struct St:
    int big
    # attributes of the operator being collected (present when gen matches); only the
    # ids the scanner reads are kept, each in its slot (_SLOT)
    uint64_t gen
    uint64_t agen[NSLOTS]
    Val* attrs            # NSLOTS of them
    uint8_t* longraw      # NSLOTS * MAXVAL: attribute values longer than SHORT
    PVal value
    int has_value
    int vdefer            # the pending value's bytes are still in the buffer at vq
    Py_ssize_t vq
    int last_op
    # page
    int in_page
    int color
    int paint             # in_page and what paints colour: OPK_BRUSH | OPK_PEN bits
    int sides
    int media_code        # -2 default, -3 custom (media_w/h), >=0 enumeration
    double media_w
    double media_h
    int64_t copies        # 0: default
    int page_sides
    int page_media
    double page_w
    double page_h
    int64_t page_copies
    # graphics state
    GState g
    GState* stack
    int depth
    int64_t overflow
    uint8_t patterns[8192]
    Image im
    int has_block
    int64_t b_rows
    int64_t b_mode
    int64_t b_pad
    Dec dec
    int64_t data_left     # embedded data bytes still to feed the decoder
    int64_t skip
    # the run of alike pages not yet handed to the RunBuilder
    # the run of alike pages not yet finished, and finished runs not yet handed over
    RunRec run
    RunRec done[DONECAP]
    int ndone
    # canon: the keyword defaults are plain (see _Scanner.set_defaults), so pages are
    # keyed by their values with the defaults filled in (alike = equal in Python)
    int canon
    int def_sides
    int def_mcode
    double def_w
    double def_h
    int64_t def_copies


cdef inline int _ws(uint8_t b) noexcept nogil:
    return b == 0 or (9 <= b <= 13) or b == 32


cdef inline int _is_value_tag(uint8_t b) noexcept nogil:
    return (0xC0 <= b <= 0xC5) or (0xC8 <= b <= 0xCD) or (0xD0 <= b <= 0xD5) or (0xE0 <= b <= 0xE5)


cdef int _ELEM[6]
_ELEM[0] = 1; _ELEM[1] = 2; _ELEM[2] = 4; _ELEM[3] = 2; _ELEM[4] = 4; _ELEM[5] = 4

# Byte tables of the token loop, filled once at import.
cdef uint8_t _CLASS[256]
cdef uint8_t _VBYTES[256]     # K_VAL: bytes of the value
cdef uint8_t _VCOUNT[256]     # K_VAL: its element count
cdef uint8_t _OPKIND[256]
cdef uint8_t _SLOT[256]       # attribute id -> slot in St.attrs; 0: not read by the scanner
cdef double _MEDIA_W[22]      # MEDIA_SIZES as C (canon mode)
cdef double _MEDIA_H[22]

# every attribute id _operator and its helpers read (pure A_* constants)
_KEPT = (2, 3, 4, 5, 6, 8, 9, 11, 14, 17, 37, 47, 48, 49, 52, 53, 98, 99, 100, 101, 105, 108, 110)


cdef void _init_tables():
    cdef int b, k
    for b in range(256):
        _CLASS[b] = K_ILLEGAL
        _VBYTES[b] = 0
        _VCOUNT[b] = 0
        _OPKIND[b] = OPK_NONE
        _SLOT[b] = 0
        if _ws(b):
            _CLASS[b] = K_WS
        elif 0x41 <= b <= 0xBF:
            _CLASS[b] = K_OP
        elif (0xC8 <= b <= 0xCD):
            _CLASS[b] = K_ARR
        elif _is_value_tag(b):
            _CLASS[b] = K_VAL
            k = 1 if b < 0xD0 else (2 if b < 0xE0 else 4)
            _VCOUNT[b] = k
            _VBYTES[b] = k * _ELEM[b & 7]
    _CLASS[0xF8] = K_A8
    _CLASS[0xF9] = K_A16
    _CLASS[0xFA] = K_D32
    _CLASS[0xFB] = K_D8
    _CLASS[0x1B] = K_ESC
    _CLASS[0x27] = K_HDR
    _CLASS[0x28] = K_HDR
    _CLASS[0x29] = K_HDR
    for b in (0x86, 0xA0, 0xA2, 0x98, 0x96, 0x9E):
        _OPKIND[b] = OPK_BRUSH | OPK_PEN
    for b in (0xA8, 0xB6, 0xB9):
        _OPKIND[b] = OPK_BRUSH
    for b in (0x43, 0x44, 0x6A, 0x63, 0x79, 0x61, 0x60, 0xB0, 0xB3, 0xB1, 0xB4, 0xB2, 0xB5):
        _OPKIND[b] = OPK_STATE
    for k in range(len(_KEPT)):
        _SLOT[<int>_KEPT[k]] = k + 1
    for k in range(22):
        _MEDIA_W[k] = _pure.MEDIA_SIZES[k][0]
        _MEDIA_H[k] = _pure.MEDIA_SIZES[k][1]


_init_tables()




cdef inline double _elem(const uint8_t* p, int et, int big, int* is_int, int64_t* iv) noexcept nogil:
    """Element of type et at p: sets *iv (integers) or returns the real."""
    cdef uint32_t u
    cdef float fl
    if et == 0:
        iv[0] = p[0]
        is_int[0] = 1
        return 0.0
    if et == 1 or et == 3:
        u = (p[0] << 8) | p[1] if big else (p[1] << 8) | p[0]
        iv[0] = <int16_t>u if et == 3 else <int64_t>u
        is_int[0] = 1
        return 0.0
    if big:
        u = (<uint32_t>p[0] << 24) | (<uint32_t>p[1] << 16) | (<uint32_t>p[2] << 8) | p[3]
    else:
        u = (<uint32_t>p[3] << 24) | (<uint32_t>p[2] << 16) | (<uint32_t>p[1] << 8) | p[0]
    if et == 2:
        iv[0] = u
        is_int[0] = 1
        return 0.0
    if et == 4:
        iv[0] = <int32_t>u
        is_int[0] = 1
        return 0.0
    memcpy(&fl, &u, 4)
    is_int[0] = 0
    return <double>fl


cdef inline Val* _attr(St* s, int aid) noexcept nogil:
    cdef int slot = _SLOT[aid]
    if s.agen[slot] == s.gen:
        return &s.attrs[slot]
    return NULL


cdef int _first(Val* v, int big, int* is_int, int64_t* iv, double* dv) noexcept nogil:
    """First element; 0 when there is none (raw not kept or empty)."""
    if v == NULL or not v.has_raw or v.count == 0:
        return 0
    dv[0] = _elem(v.raw, v.tag & 7, big, is_int, iv)
    return 1


cdef int _int_attr(St* s, int aid, int64_t dflt, int64_t* out) noexcept nogil:
    """pure _int_attr: 1 and *out when given, else *out = dflt and 0."""
    cdef int is_int
    cdef int64_t iv
    cdef double dv
    cdef Val* v = _attr(s, aid)
    out[0] = dflt
    if not _first(v, s.big, &is_int, &iv, &dv):
        return 0
    if is_int:
        out[0] = iv
        return 1
    if not (-2147483648.0 < dv < 2147483648.0):
        return 0
    out[0] = <int64_t>dv
    return 1


# ---------------------------------------------------------------------------------- colour

cdef inline int _neutral_i(int64_t a, int64_t b, int64_t c) noexcept nogil:
    cdef int64_t x = a - b, y = b - c, z = a - c
    if x < 0: x = -x
    if y < 0: y = -y
    if z < 0: z = -z
    return x <= TOL and y <= TOL and z <= TOL


cdef inline int _neutral_r(double a, double b, double c) noexcept nogil:
    cdef double t = TOL / 255.0
    return not (fabs(a - b) > t or fabs(b - c) > t or fabs(a - c) > t)


cdef void _make_palette(St* s, Palette* pal, Val* v, int rgb) noexcept nogil:
    cdef int i, n
    pal.present = 0
    if v == NULL:
        return
    pal.present = 1
    pal.n = 0
    if not v.has_raw or (v.tag & 7) != 0:
        pal.any = rgb
        return
    pal.any = 0
    if not rgb:
        pal.n = v.len
        memset(pal.color, 0, v.len)
        return
    n = v.len // 3
    for i in range(n):
        pal.color[i] = not _neutral_i(v.raw[3 * i], v.raw[3 * i + 1], v.raw[3 * i + 2])
        if pal.color[i]:
            pal.any = 1
    pal.n = n


cdef int _palette_entry(Palette* pal, int is_int, int64_t iv, double dv) noexcept nogil:
    if not is_int:
        if not (0.0 <= dv < 65536.0):
            return pal.any
        iv = <int64_t>dv
    if 0 <= iv < pal.n:
        return pal.color[iv]
    return pal.any


cdef int _paint_color(St* s, int current, int null_attr) noexcept nogil:
    cdef int keys[3]
    cdef int k, is_int, i
    cdef int64_t iv, pid
    cdef int64_t ia[3]
    cdef double da[3]
    cdef double dv
    cdef Val* v
    cdef GState* g = &s.g
    keys[0] = 11; keys[1] = 9; keys[2] = 14
    if _attr(s, null_attr) != NULL:
        return 0
    for k in range(3):
        v = _attr(s, keys[k])
        if v == NULL:
            continue
        if g.pal.present:
            if not _first(v, s.big, &is_int, &iv, &dv):
                return g.pal.any
            return _palette_entry(&g.pal, is_int, iv, dv)
        if keys[k] == 9:
            return 0
        if keys[k] == 14 and not g.rgb:
            return 0
        if not v.has_raw or v.count < 3:
            return not v.has_raw
        for i in range(3):
            da[i] = _elem(v.raw + i * _ELEM[v.tag & 7], v.tag & 7, s.big, &is_int, &ia[i])
        if (v.tag & 7) == 5:
            return not _neutral_r(da[0], da[1], da[2])
        return not _neutral_i(ia[0], ia[1], ia[2])
    if _attr(s, 8) != NULL:
        if not _int_attr(s, 8, 0, &pid):
            return 1
        pid &= 0xFFFF
        return (s.patterns[pid >> 3] >> (pid & 7)) & 1
    return current


cdef void _begin_image(St* s, int pattern) noexcept nogil:
    cdef Image* im = &s.im
    cdef int64_t mapping, dcode, width, pid
    cdef int could, depth, ncomp
    _int_attr(s, 100, 0, &mapping)
    _int_attr(s, 98, 2, &dcode)
    _int_attr(s, 108, 0, &width)
    im.active = 1
    im.decode = 0
    im.has_seed = 0
    im.pattern = -1
    im.indexed = mapping == 1
    if im.indexed:
        could = s.g.pal.present and s.g.pal.any
    else:
        could = s.g.rgb
    im.color = could
    if pattern:
        _int_attr(s, 105, 0, &pid)
        im.pattern = pid & 0xFFFF
    if not could:
        im.color = 0
        return
    if dcode == 0:
        depth = 1
    elif dcode == 1:
        depth = 4
    elif dcode == 2:
        depth = 8
    else:
        return
    if width < 0 or width > (<int64_t>1 << 40):
        return  # (wider than any row MAX_ROW allows: the pure twin gives up too)
    ncomp = 1 if im.indexed else 3
    im.dpr = (width * depth * ncomp + 7) >> 3
    if im.dpr == 0:
        im.color = 0
        return
    if im.dpr > MAXROW or (im.indexed and s.g.pal.n == 0):
        return
    im.decode = 1
    im.color = 0
    im.width = width
    im.depth = depth
    im.ncomp = ncomp
    if im.indexed:
        im.tn = s.g.pal.n
        memcpy(im.table, s.g.pal.color, s.g.pal.n)
    if not pattern and (s.color or not s.in_page):
        im.decode = 0


cdef int _rgb8_color(const uint8_t* row, int64_t w) noexcept nogil:
    """Whether 8-bit RGB pixels leave the neutral axis: |x - y| > TOL is one unsigned
    compare, x - y + TOL > 2 TOL, and pixels go in blocks without a branch each."""
    cdef int64_t i = 0, j, m
    cdef unsigned int acc
    cdef int a, b, c
    while i < w:
        m = w - i
        if m > 32:
            m = 32
        acc = 0
        for j in range(i, i + m):
            a = row[3 * j]
            b = row[3 * j + 1]
            c = row[3 * j + 2]
            acc |= ((<unsigned int>(a - b + TOL) > 2 * TOL) | (<unsigned int>(b - c + TOL) > 2 * TOL)
                    | (<unsigned int>(a - c + TOL) > 2 * TOL))
        if acc:
            return 1
        i += 32
    return 0


cdef int _row_color(Image* im, const uint8_t* row) noexcept nogil:
    cdef int64_t i, w = im.width
    cdef int d = im.depth, per, mask, a, b, c, v
    if im.indexed:
        if d == 8:
            for i in range(w):
                v = row[i]
                if v >= im.tn or im.table[v]:
                    return 1
            return 0
        per = 8 // d
        mask = (1 << d) - 1
        for i in range(w):
            v = (row[i // per] >> (8 - d - (i % per) * d)) & mask
            if v >= im.tn or im.table[v]:
                return 1
        return 0
    if d == 8:
        return _rgb8_color(row, w)
    per = 8 // d
    mask = (1 << d) - 1
    for i in range(0, 3 * w, 3):
        a = (row[i // per] >> (8 - d - (i % per) * d)) & mask
        b = (row[(i + 1) // per] >> (8 - d - ((i + 1) % per) * d)) & mask
        c = (row[(i + 2) // per] >> (8 - d - ((i + 2) % per) * d)) & mask
        if not (a == b and b == c):
            return 1
    return 0


cdef int _alloc_rows(Image* im) noexcept nogil:
    if im.row == NULL:
        im.row = <uint8_t*>malloc(MAXROW)
        im.seed = <uint8_t*>malloc(MAXROW)
        if im.row == NULL or im.seed == NULL:
            return -1
    return 0


cdef void _dec_start(St* s) noexcept nogil:
    cdef Dec* d = &s.dec
    cdef Image* im = &s.im
    cdef int64_t p
    memset(d, 0, sizeof(Dec))
    d.active = 1
    d.mode = <int>s.b_mode
    d.left = s.b_rows
    d.done = s.b_rows <= 0
    if d.mode == 3:
        if not im.has_seed:
            memset(im.seed, 0, im.dpr)
            im.has_seed = 1
        memcpy(im.row, im.seed, im.dpr)
    else:
        p = s.b_pad if s.b_pad > 0 else 1
        d.rin = ((im.dpr + p - 1) // p) * p


cdef inline void _emit(St* s, const uint8_t* row) noexcept nogil:
    cdef Dec* d = &s.dec
    d.left -= 1
    if _row_color(&s.im, row):
        s.im.color = 1
        d.done = 1
    elif d.left <= 0:
        d.done = 1


cdef inline void _put(St* s, const uint8_t* p, int64_t n) noexcept nogil:
    """Uncompressed padded row bytes into the row buffer."""
    cdef Dec* d = &s.dec
    cdef Image* im = &s.im
    cdef int64_t take, keep
    while n > 0 and not d.done:
        take = d.rin - d.rpos
        if take > n:
            take = n
        if d.rpos < im.dpr:
            keep = im.dpr - d.rpos
            if keep > take:
                keep = take
            memcpy(im.row + d.rpos, p, keep)
        d.rpos += take
        p += take
        n -= take
        if d.rpos == d.rin:
            d.rpos = 0
            _emit(s, im.row)


cdef inline void _put_rep(St* s, uint8_t b, int64_t n) noexcept nogil:
    cdef Dec* d = &s.dec
    cdef Image* im = &s.im
    cdef int64_t take, keep
    while n > 0 and not d.done:
        take = d.rin - d.rpos
        if take > n:
            take = n
        if d.rpos < im.dpr:
            keep = im.dpr - d.rpos
            if keep > take:
                keep = take
            memset(im.row + d.rpos, b, keep)
        d.rpos += take
        n -= take
        if d.rpos == d.rin:
            d.rpos = 0
            _emit(s, im.row)


cdef void _delta_end(St* s) noexcept nogil:
    cdef Dec* d = &s.dec
    memcpy(s.im.seed, s.im.row, s.im.dpr)
    d.state = 0
    d.out = 0
    _emit(s, s.im.row)


cdef void _feed(St* s, const uint8_t* p, int64_t n) noexcept nogil:
    cdef Dec* d = &s.dec
    cdef Image* im = &s.im
    cdef int64_t i = 0, take, j
    cdef uint8_t b, c
    cdef uint8_t* row
    if d.done:
        return
    if d.mode == 0:
        _put(s, p, n)
        return
    if d.mode == 1:
        while i < n and not d.done:
            if d.lit:
                take = d.lit if d.lit < n - i else n - i
                _put(s, p + i, take)
                d.lit -= take
                i += take
            elif d.rep:
                take = d.rep
                d.rep = 0
                _put_rep(s, p[i], take)
                i += 1
            else:
                c = p[i]
                i += 1
                if c < 128:
                    d.lit = c + 1
                    # a literal inside the row (not reaching its end): copied here
                    if i + d.lit <= n and d.rpos + d.lit < d.rin and d.rpos + d.lit <= im.dpr:
                        memcpy(im.row + d.rpos, p + i, d.lit)
                        d.rpos += d.lit
                        i += d.lit
                        d.lit = 0
                elif c > 128:
                    d.rep = 257 - c
                    # a repeat inside the row: written here (RGB drivers repeat 3 bytes a lot)
                    if i < n and d.rpos + d.rep < d.rin and d.rpos + d.rep <= im.dpr:
                        b = p[i]
                        i += 1
                        row = im.row + d.rpos
                        for j in range(d.rep):
                            row[j] = b
                        d.rpos += d.rep
                        d.rep = 0
        return
    while i < n and not d.done:
        b = p[i]
        i += 1
        if d.state == 0:
            d.lsb = b
            d.state = 1
        elif d.state == 1:
            d.count = d.lsb | (b << 8)
            if d.count == 0:
                _delta_end(s)
            else:
                d.state = 2
        elif d.state == 2:
            d.count -= 1
            d.cnt = (b >> 5) + 1
            if (b & 0x1F) == 31:
                d.off = 31
                d.state = 3
            else:
                d.out += b & 0x1F
                d.state = 4
            if d.count == 0:
                _delta_end(s)
        elif d.state == 3:
            d.count -= 1
            d.off += b
            if b != 0xFF:
                d.out += d.off
                d.state = 4
            if d.count == 0:
                _delta_end(s)
        else:
            d.count -= 1
            if d.out < s.im.dpr:
                s.im.row[d.out] = b
            d.out += 1
            d.cnt -= 1
            if d.count == 0:
                _delta_end(s)
            elif d.cnt == 0:
                d.state = 2


cdef void _data_done(St* s) noexcept nogil:
    """After an image data block was fed (pure _image_data's tail)."""
    s.dec.active = 0
    if s.im.color:
        s.im.decode = 0
        if s.im.pattern < 0 and s.in_page:
            s.color = 1


# ---------------------------------------------------------------------------------- pages

cdef void _page_media(St* s, int* code, double* w, double* h) noexcept nogil:
    """code: -2 default, -3 custom (w, h), else the enumeration (may be unknown: default)."""
    cdef Val* v = _attr(s, 37)
    cdef int64_t c, unit
    cdef int i, j, n, is_int
    cdef double scale, ww, hh
    cdef int64_t iv
    cdef uint8_t ch
    code[0] = -2
    if v != NULL:
        if v.tag == 0xC8:
            if not v.has_raw:
                return
            n = v.len
            while n > 0 and v.raw[n - 1] == 0:
                n -= 1
            code[0] = _media_name(v.raw, n)
            return
        if _int_attr(s, 37, 0, &c) and 0 <= c <= 21:
            code[0] = <int>c
        return
    v = _attr(s, 47)
    if v != NULL and v.has_raw and v.count >= 2:
        _int_attr(s, 48, 0, &unit)
        if not (0 <= unit <= 2):
            return
        scale = 2540.0 if unit == 0 else (100.0 if unit == 1 else 10.0)
        ww = _elem(v.raw, v.tag & 7, s.big, &is_int, &iv)
        if is_int:
            ww = <double>iv
        hh = _elem(v.raw + _ELEM[v.tag & 7], v.tag & 7, s.big, &is_int, &iv)
        if is_int:
            hh = <double>iv
        ww = ww * scale
        hh = hh * scale
        if not (0.0 < ww < 1e9 and 0.0 < hh < 1e9):
            return
        code[0] = -3
        w[0] = rint(ww)
        h[0] = rint(hh)


cdef const char* _NAMES[22]
_NAMES[:] = [b"LETTER", b"LEGAL", b"A4", b"EXEC", b"LEDGER", b"A3", b"COM10", b"MONARCH", b"C5",
             b"DL", b"JB4", b"JB5", b"B5ENV", b"B5", b"JPOSTCARD", b"JDOUBLEPOSTCARD", b"A5", b"A6",
             b"JB6", b"JIS8K", b"JIS16K", b"JISEXEC"]


cdef int _media_name(const uint8_t* p, int n) noexcept nogil:
    cdef int k, i, m
    cdef uint8_t c
    cdef const char* name
    for k in range(22):
        name = _NAMES[k]
        m = 0
        while name[m] != 0:
            m += 1
        if m != n:
            continue
        for i in range(n):
            c = p[i]
            if 97 <= c <= 122:
                c -= 32
            if c != <uint8_t>name[i]:
                break
        else:
            return k
    return -2


cdef int _page_sides(St* s) noexcept nogil:
    cdef int64_t mode
    if _attr(s, 53) != NULL:
        if _int_attr(s, 53, -1, &mode):
            if mode == 0:
                return S_SHORT
            if mode == 1:
                return S_LONG
        return S_DEFAULT
    if _attr(s, 52) != NULL:
        return S_ONE
    return S_DEFAULT


cdef int64_t _copies(St* s, int64_t dflt) noexcept nogil:
    cdef int64_t c
    if not _int_attr(s, 49, 0, &c) or c < 1:
        return dflt
    return c


cdef void _gs_copy(GState* dst, GState* src) noexcept nogil:
    dst.rgb = src.rgb
    dst.brush = src.brush
    dst.pen = src.pen
    dst.pal.present = src.pal.present
    dst.pal.any = src.pal.any
    dst.pal.n = src.pal.n
    memcpy(dst.pal.color, src.pal.color, src.pal.n)


cdef void _gs_reset(GState* g) noexcept nogil:
    g.rgb = 0
    g.brush = 0
    g.pen = 0
    g.pal.present = 0
    g.pal.n = 0
    g.pal.any = 0


cdef int _operator(St* s, int op) noexcept nogil:
    """The operators of kind OPK_STATE (painting ones are done in _end_op); returns 1
    when a page ended."""
    cdef int64_t cs
    cdef int code
    cdef double w = 0, h = 0
    if op == 0x43:
        s.in_page = 1
        s.color = 0
        _page_media(s, &code, &w, &h)
        s.media_code = code
        s.media_w = w
        s.media_h = h
        s.sides = _page_sides(s)
        s.copies = _copies(s, 0)
        _gs_reset(&s.g)
        s.depth = 0
        s.overflow = 0
        s.im.active = 0
    elif op == 0x44:
        s.im.active = 0
        if s.in_page:
            s.page_copies = _copies(s, s.copies)
            s.in_page = 0
            return 1
    elif op == 0x6A:
        if _int_attr(s, 3, 0, &cs):
            s.g.rgb = cs != 1
        elif _attr(s, 17) != NULL:
            s.g.rgb = 1
        _make_palette(s, &s.g.pal, _attr(s, 6), s.g.rgb)
    elif op == 0x63:
        # once the page is colour, the brush and pen cannot change any answer: the next
        # BeginPage resets them and nothing else reads them
        if not (s.in_page and s.color):
            s.g.brush = _paint_color(s, s.g.brush, 4)
    elif op == 0x79:
        if not (s.in_page and s.color):
            s.g.pen = _paint_color(s, s.g.pen, 5)
    elif op == 0x61:
        if s.depth < MAXGS:
            _gs_copy(&s.stack[s.depth], &s.g)
            s.depth += 1
        else:
            s.overflow += 1
    elif op == 0x60:
        if s.overflow:
            s.overflow -= 1
        elif s.depth:
            s.depth -= 1
            _gs_copy(&s.g, &s.stack[s.depth])
    elif op == 0xB0 or op == 0xB3:
        _begin_image(s, op == 0xB3)
    elif op == 0xB1 or op == 0xB4:
        s.has_block = 1
        _int_attr(s, 99, 0, &s.b_rows)
        _int_attr(s, 101, 0, &s.b_mode)
        _int_attr(s, 110, 4, &s.b_pad)
    elif op == 0xB2 or op == 0xB5:
        if s.im.active:
            if s.im.pattern >= 0:
                if s.im.color:
                    s.patterns[s.im.pattern >> 3] |= 1 << (s.im.pattern & 7)
                else:
                    s.patterns[s.im.pattern >> 3] &= ~(1 << (s.im.pattern & 7))
            elif s.im.color and s.in_page:
                s.color = 1
        s.im.active = 0
    return 0


# ---------------------------------------------------------------------------------- token loop

cdef inline void _keep_value(St* s, const uint8_t* buf) noexcept nogil:
    """The pending value's bytes out of the buffer (before it is refilled)."""
    if s.has_value and s.vdefer:
        memcpy(s.value.raw, buf + s.vq, s.value.len)
    s.vdefer = 0


cdef inline void _set_attr(St* s, const uint8_t* buf, int aid) noexcept nogil:
    """The pending value becomes attribute ``aid`` (when the scanner reads that id)."""
    cdef int slot = _SLOT[aid] if aid < 256 else 0
    cdef Val* v
    if slot:
        v = &s.attrs[slot]
        v.tag = s.value.tag
        v.count = s.value.count
        v.has_raw = s.value.has_raw
        v.len = s.value.len
        v.raw = v.small
        if s.value.has_raw:
            if s.vdefer:
                v.raw = s.longraw + slot * MAXVAL
                memcpy(s.longraw + slot * MAXVAL, buf + s.vq, s.value.len)
            elif s.value.len > SHORT:   # a long value kept across a buffer refill
                v.raw = s.longraw + slot * MAXVAL
                memcpy(s.longraw + slot * MAXVAL, s.value.raw, s.value.len)
            else:
                memcpy(v.small, s.value.raw, SHORT)
        s.agen[slot] = s.gen
    s.has_value = 0
    s.vdefer = 0


cdef inline int _end_op(St* s, int b) noexcept nogil:
    """After an operator; 1 when it ended a page that does not extend the pending run."""
    cdef int r = 0
    cdef int kind = _OPKIND[b]
    if kind == OPK_STATE:
        r = _operator(s, b)
        # only these operators change in_page, the brush or the pen (all 0 or 1)
        s.paint = s.in_page * (s.g.brush | (s.g.pen << 1))
    elif kind & s.paint:
        s.color = 1
    s.gen += 1
    s.has_value = 0     # (vdefer only counts while has_value)
    s.last_op = b
    if r:
        _page_done(s)
        return s.ndone == DONECAP
    return 0


cdef void _page_done(St* s) noexcept nogil:
    """The page just ended joins the pending run, or starts the next one."""
    cdef RunRec p
    p.count = 1
    p.color = s.color
    p.sides = s.sides
    p.mcode = s.media_code
    p.w = s.media_w
    p.h = s.media_h
    p.copies = s.page_copies
    if s.canon:
        if p.sides == S_DEFAULT:
            p.sides = s.def_sides
        if p.mcode >= 0:
            p.w = _MEDIA_W[p.mcode]
            p.h = _MEDIA_H[p.mcode]
            p.mcode = -3
        elif p.mcode != -3:
            p.mcode = s.def_mcode
            p.w = s.def_w
            p.h = s.def_h
        if p.copies == 0:
            p.copies = s.def_copies
    if (s.run.count and s.run.color == p.color and s.run.sides == p.sides
            and s.run.mcode == p.mcode and s.run.w == p.w and s.run.h == p.h
            and s.run.copies == p.copies):
        s.run.count += 1
        return
    if s.run.count:
        s.done[s.ndone] = s.run
        s.ndone += 1
    s.run = p


cdef int _run(St* s, const uint8_t* buf, Py_ssize_t n, Py_ssize_t* ppos) noexcept nogil:
    """Walks tokens in buf[*ppos:n]; returns an ACT_ code with *ppos where to go on."""
    cdef int act = _tokens(s, buf, n, ppos)
    _keep_value(s, buf)
    return act


cdef inline int _feed_some(St* s, const uint8_t* buf, Py_ssize_t n, Py_ssize_t* ppos) noexcept nogil:
    """Image data being decoded, from buf[*ppos:n]; 1 when the block wants more than
    the buffer holds."""
    cdef int64_t take = n - ppos[0]
    if take > s.data_left:
        take = s.data_left
    if take > 0:
        if not s.dec.done:
            _feed(s, buf + ppos[0], take)
        ppos[0] += take
        s.data_left -= take
        if s.data_left == 0:
            _data_done(s)
    return s.data_left > 0


cdef int _tokens(St* s, const uint8_t* buf, Py_ssize_t n, Py_ssize_t* ppos) noexcept nogil:
    # The tests are ordered (values, attribute ids, operators) and an attribute id right
    # after a value is taken at once: streams are mostly value, id, ..., operator, and
    # plain branches in that order predict far better than one jump table.
    cdef Py_ssize_t pos = ppos[0], q
    cdef uint8_t b, ct, k
    cdef int aid, r
    cdef Val* v
    cdef int64_t count, nb, dl
    if s.data_left > 0 and _feed_some(s, buf, n, &pos):
        ppos[0] = pos
        return ACT_NEED
    while True:
        if pos >= n:
            ppos[0] = pos
            return ACT_NEED
        b = buf[pos]
        if 0xC0 <= b < 0xF8:
            k = _CLASS[b]
            if k == K_VAL:
                nb = _VBYTES[b]
                if pos + 1 + nb > n:
                    s.has_value = 0
                    ppos[0] = pos
                    return ACT_NEED
                if pos + 3 + nb <= n and buf[pos + 1 + nb] == 0xF8:
                    # value and its id at once, straight into the attribute's slot (slot 0,
                    # where the ids the scanner does not read go, is never looked at)
                    v = &s.attrs[_SLOT[buf[pos + 2 + nb]]]
                    v.tag = b
                    v.count = _VCOUNT[b]
                    v.has_raw = 1
                    v.len = <int>nb
                    memcpy(v.small, buf + pos + 1, SHORT)
                    v.raw = v.small
                    s.agen[_SLOT[buf[pos + 2 + nb]]] = s.gen
                    s.has_value = 0
                    pos += 3 + nb
                    continue
                s.value.tag = b
                s.value.count = _VCOUNT[b]
                s.value.has_raw = 1
                s.value.len = <int>nb
                memcpy(s.value.raw, buf + pos + 1, SHORT)   # (the buffer has PAD bytes past n)
                s.has_value = 1
                s.vdefer = 0
                pos += 1 + nb
            elif k == K_ARR:
                q = pos + 1
                if q >= n:
                    ppos[0] = pos
                    return ACT_NEED
                ct = buf[q]
                q += 1
                if ct == 0xC0:
                    if q + 1 > n:
                        ppos[0] = pos
                        return ACT_NEED
                    count = buf[q]
                    q += 1
                elif ct == 0xC1:
                    if q + 2 > n:
                        ppos[0] = pos
                        return ACT_NEED
                    count = (buf[q] << 8) | buf[q + 1] if s.big else (buf[q + 1] << 8) | buf[q]
                    q += 2
                else:
                    ppos[0] = q
                    return ACT_BADCOUNT
                nb = count * _ELEM[b & 7]
                s.value.tag = b
                s.value.count = count
                s.has_value = 1
                s.vdefer = 0
                if nb > MAXVAL:
                    s.value.has_raw = 0
                    if q + nb > n:
                        s.skip = q + nb - n
                        ppos[0] = n
                        return ACT_SKIP
                    pos = q + nb
                    continue
                if q + nb > n:
                    s.has_value = 0
                    ppos[0] = pos
                    return ACT_NEED
                s.value.has_raw = 1
                s.value.len = <int>nb
                if nb <= SHORT:
                    memcpy(s.value.raw, buf + q, SHORT)
                else:   # copied only if an attribute the scanner reads takes it
                    s.vdefer = 1
                    s.vq = q
                pos = q + nb
            else:
                ppos[0] = pos + 1
                return ACT_ILLEGAL
            # most values are followed by their attribute id
            if pos + 2 <= n and buf[pos] == 0xF8:
                _set_attr(s, buf, buf[pos + 1])
                pos += 2
            continue
        if 0x41 <= b <= 0xBF:
            pos += 1
            if _end_op(s, b):
                ppos[0] = pos
                return ACT_PAGE
            continue
        if b == 0xF8:
            if pos + 2 > n:
                ppos[0] = pos
                return ACT_NEED
            if s.has_value:
                _set_attr(s, buf, buf[pos + 1])
            pos += 2
            continue
        k = _CLASS[b]
        if k == K_WS:
            pos += 1
        elif k == K_A16:
            if pos + 3 > n:
                ppos[0] = pos
                return ACT_NEED
            if s.has_value:
                aid = (buf[pos + 1] << 8) | buf[pos + 2] if s.big else (buf[pos + 2] << 8) | buf[pos + 1]
                _set_attr(s, buf, aid)
            pos += 3
        elif k == K_D32 or k == K_D8:
            if pos + (5 if b == 0xFA else 2) > n:
                ppos[0] = pos
                return ACT_NEED
            if b == 0xFB:
                dl = buf[pos + 1]
                pos += 2
            else:
                if s.big:
                    dl = ((<int64_t>buf[pos + 1] << 24) | (<int64_t>buf[pos + 2] << 16)
                          | (<int64_t>buf[pos + 3] << 8) | buf[pos + 4])
                else:
                    dl = ((<int64_t>buf[pos + 4] << 24) | (<int64_t>buf[pos + 3] << 16)
                          | (<int64_t>buf[pos + 2] << 8) | buf[pos + 1])
                pos += 5
            r = s.last_op == 0xB1 or s.last_op == 0xB4
            s.last_op = -1
            if r and s.im.active and s.has_block and s.im.decode:
                s.has_block = 0
                if s.b_mode != 0 and s.b_mode != 1 and s.b_mode != 3:
                    s.im.color = 1
                    s.im.decode = 0
                    if s.im.pattern < 0 and s.in_page:
                        s.color = 1
                else:
                    _dec_start(s)
                    s.data_left = dl
                    if dl == 0:
                        _data_done(s)
                    elif _feed_some(s, buf, n, &pos):
                        ppos[0] = pos
                        return ACT_NEED
                    continue
            elif r:
                s.has_block = 0
            if pos + dl > n:
                s.skip = pos + dl - n
                ppos[0] = n
                return ACT_SKIP
            pos += dl
        elif k == K_ESC:
            if pos + 9 > n:
                ppos[0] = pos
                return ACT_NEED
            ppos[0] = pos + 9
            if memcmp(buf + pos + 1, b"%-12345X", 8) != 0:
                return ACT_ESC
            return ACT_UEL
        elif k == K_HDR:
            ppos[0] = pos + 1
            return ACT_HEADER
        else:
            ppos[0] = pos + 1
            return ACT_ILLEGAL


cdef object _sides_name(int code, object dflt):
    if code == S_ONE:
        return ONE_SIDED
    if code == S_LONG:
        return TWO_SIDED_LONG
    if code == S_SHORT:
        return TWO_SIDED_SHORT
    return dflt


cdef object _media_value(St* s, object dflt):
    if s.media_code == -3:
        return (int(s.media_w), int(s.media_h))
    if s.media_code >= 0:
        return MEDIA_SIZES.get(s.media_code, dflt)
    return dflt


cdef class _Scanner:
    """The scan state and its read buffer; reused between scans (see _take/_give)."""
    cdef St* s
    cdef uint8_t* buf
    cdef Py_ssize_t n, pos, base   # buf[pos:n] is file[base + pos : base + n]
    cdef dict made                 # canon: PageRun by run record
    cdef list out                  # canon: finished runs

    def __cinit__(self):
        self.s = <St*>malloc(sizeof(St))
        # calloc: the fixed-size copies of short values may read PAD bytes past the data
        self.buf = <uint8_t*>calloc(BUFSIZE + SLACK + PAD, 1)
        if self.s == NULL or self.buf == NULL:
            raise MemoryError()
        memset(self.s, 0, sizeof(St))
        self.s.attrs = <Val*>malloc(NSLOTS * sizeof(Val))
        self.s.longraw = <uint8_t*>malloc(NSLOTS * MAXVAL)
        self.s.stack = <GState*>malloc(MAXGS * sizeof(GState))
        if self.s.attrs == NULL or self.s.stack == NULL or self.s.longraw == NULL:
            raise MemoryError()
        if _alloc_rows(&self.s.im) != 0:
            raise MemoryError()

    def __dealloc__(self):
        if self.s != NULL:
            free(self.s.attrs)
            free(self.s.longraw)
            free(self.s.stack)
            free(self.s.im.row)
            free(self.s.im.seed)
            free(self.s)
        free(self.buf)

    cdef void reset(self) noexcept:
        """A fresh scan state (keeping the allocations)."""
        cdef St* s = self.s
        cdef Val* attrs = s.attrs
        cdef uint8_t* longraw = s.longraw
        cdef GState* stack = s.stack
        cdef uint8_t* row = s.im.row
        cdef uint8_t* seed = s.im.seed
        memset(s, 0, sizeof(St))
        s.attrs = attrs
        s.longraw = longraw
        s.stack = stack
        s.im.row = row
        s.im.seed = seed
        s.gen = 1
        s.last_op = -1
        self.n = 0
        self.pos = 0
        self.base = 0

    cdef Py_ssize_t fill(self, f, Py_ssize_t keep) except -1:
        """Keeps buf[pos:pos + keep] at the start and reads the next chunk after it;
        returns the bytes read (0 at end of file)."""
        cdef Py_ssize_t got
        if keep > SLACK:  # cannot happen: a token is at most MAXVAL + 8 bytes
            keep = SLACK
        memmove(self.buf, self.buf + self.pos, keep)
        self.base += self.pos
        self.pos = 0
        self.n = keep
        got = self.read(f, self.buf + keep)
        self.n = keep + got
        return got

    cdef Py_ssize_t read(self, f, uint8_t* dst) except -1:
        """Up to BUFSIZE bytes from f into dst, without a bytes object per chunk."""
        cdef Py_ssize_t got
        cdef object chunk
        cdef const uint8_t* p
        readinto = getattr(f, "readinto", None)
        if readinto is not None:
            view = PyMemoryView_FromMemory(<char*>dst, BUFSIZE, PyBUF_WRITE)
            try:
                r = readinto(view)
            finally:
                view.release()
            got = r or 0
        else:
            chunk = f.read(BUFSIZE)
            got = len(chunk)
            p = chunk
            memcpy(dst, p, got)
        if got < 0 or got > BUFSIZE:
            got = 0
        return got

    cdef object header(self, f, int binding, Py_ssize_t at):
        """The rest of a stream header line whose binding byte (at file offset ``at``) was
        just taken; pure _header_rest."""
        cdef const uint8_t* q
        cdef Py_ssize_t lim
        if binding != 0x27 and binding != 0x28 and binding != 0x29:
            raise DamagedDocument(f"PCL XL: no stream header at offset {at}")
        while True:
            lim = self.n - self.pos
            if lim > MAXHDR + 1:
                lim = MAXHDR + 1
            q = <const uint8_t*>memchr(self.buf + self.pos, 0x0A, lim)
            if q != NULL:
                break
            if self.n - self.pos > MAXHDR:
                raise DamagedDocument("PCL XL: stream header too long")
            if not self.fill(f, self.n - self.pos):
                raise DamagedDocument("PCL XL: the stream header does not end")
        if q - (self.buf + self.pos) < 10 or memcmp(self.buf + self.pos, b" HP-PCL XL", 10) != 0:
            raise DamagedDocument(f"PCL XL: not a PCL XL stream header at offset {at}")
        self.pos = q + 1 - self.buf

    cdef object first_header(self, f):
        """Skips blank bytes and reads the first stream header; pure _header."""
        cdef int b
        while True:
            while self.pos < self.n and _ws(self.buf[self.pos]):
                self.pos += 1
            if self.pos < self.n:
                break
            if not self.fill(f, 0):
                raise DamagedDocument("PCL XL: no stream header")
        b = self.buf[self.pos]
        self.pos += 1
        self.header(f, b, self.base + self.pos - 1)
        return b

    cdef object run(self, f, Py_ssize_t start, sides, media, copies, runs):
        """The section from ``start``: its end offset, or (offset, 0x27) when an ASCII
        stream header hands the rest to the pure scanner."""
        cdef St* s = self.s
        cdef int act, binding
        cdef Py_ssize_t target, got
        self.base = start
        f.seek(start)
        binding = self.first_header(f)
        while True:
            if binding == 0x27:
                return self.base + self.pos, 0x27
            s.big = binding == 0x28
            while True:
                with nogil:
                    act = _run(s, self.buf, self.n, &self.pos)
                if act == ACT_NEED:
                    if not self.fill(f, self.n - self.pos):
                        # an image data block or a token cut short: the section ends here
                        return self.base + self.n, None
                elif act == ACT_SKIP:
                    target = self.base + self.n + s.skip
                    f.seek(target - 1)
                    self.base = target - 1
                    self.pos = 0
                    self.n = 0
                    got = self.read(f, self.buf)
                    if not got:  # the file ends before the last byte skipped
                        f.seek(0, 2)
                        return f.tell(), None
                    self.n = got
                    self.pos = 1
                elif act == ACT_PAGE:
                    self.hand_over(sides, media, copies, runs)
                elif act == ACT_UEL:
                    return self.base + self.pos, None
                elif act == ACT_ILLEGAL:
                    raise DamagedDocument(f"PCL XL: illegal tag 0x{self.buf[self.pos - 1]:02X} "
                                          f"at offset {self.base + self.pos - 1}")
                elif act == ACT_BADCOUNT:
                    raise DamagedDocument(f"PCL XL: bad array length type 0x{self.buf[self.pos - 1]:02X} "
                                          f"at offset {self.base + self.pos - 1}")
                elif act == ACT_ESC:
                    raise DamagedDocument(f"PCL XL: ESC that is not a UEL at offset {self.base + self.pos - 9}")
                elif act == ACT_HEADER:
                    binding = self.buf[self.pos - 1]
                    self.header(f, binding, self.base + self.pos - 1)
                    s.gen += 1
                    s.has_value = 0
                    break

    cdef void set_defaults(self, sides, media, copies) except *:
        """canon when the defaults are plain values whose equality C can decide."""
        cdef St* s = self.s
        s.canon = 0
        if type(copies) is not int or not (-(1 << 62) < copies < (1 << 62)):
            return
        if type(sides) is not str:
            return
        if sides == ONE_SIDED:
            s.def_sides = S_ONE
        elif sides == TWO_SIDED_LONG:
            s.def_sides = S_LONG
        elif sides == TWO_SIDED_SHORT:
            s.def_sides = S_SHORT
        else:
            return
        if media is None:
            s.def_mcode = -2
        elif (type(media) is tuple and len(media) == 2 and type(media[0]) is int and type(media[1]) is int
                and -(1 << 52) < media[0] < (1 << 52) and -(1 << 52) < media[1] < (1 << 52)):
            s.def_mcode = -3
            s.def_w = media[0]
            s.def_h = media[1]
        else:
            return
        s.def_copies = copies
        s.canon = 1
        self.made = {}
        self.out = []

    cdef object page_run(self, RunRec* r, sides, media, copies):
        """The PageRun of a canon run record (one object per distinct record)."""
        key = PyBytes_FromStringAndSize(<char*>r, sizeof(RunRec))
        pr = self.made.get(key)
        if pr is None:
            if r.mcode == -3:
                m = (int(r.w), int(r.h))
            else:
                m = None
            pr = PageRun(r.count, bool(r.color), _sides_name(<int>r.sides, sides), m, r.copies)
            if len(self.made) < 4096:
                self.made[key] = pr
        return pr

    cdef void hand_over(self, sides, media, copies, runs) except *:
        """Finished runs to Python (the list when canon, else the RunBuilder)."""
        cdef St* s = self.s
        cdef int i
        cdef RunRec* r
        for i in range(s.ndone):
            r = &s.done[i]
            if s.canon:
                self.out.append(self.page_run(r, sides, media, copies))
            else:
                self.add(r, sides, media, copies, runs)
        s.ndone = 0

    cdef void add(self, RunRec* r, sides, media, copies, runs) except *:
        if r.mcode == -3:
            m = (int(r.w), int(r.h))
        elif r.mcode >= 0:
            m = MEDIA_SIZES.get(r.mcode, media)
        else:
            m = media
        runs.add(bool(r.color), _sides_name(<int>r.sides, sides), m,
                 int(r.copies) if r.copies else copies, int(r.count))

    cdef void flush(self, sides, media, copies, runs) except *:
        """Hands every run over, the pending one too; the RunBuilder has them all."""
        cdef St* s = self.s
        self.hand_over(sides, media, copies, runs)
        if s.run.count:
            if s.canon:
                self.out.append(self.page_run(&s.run, sides, media, copies))
            else:
                self.add(&s.run, sides, media, copies, runs)
            s.run.count = 0
        if s.canon and self.out:
            runs.extend(self.out)
            self.out = []


# Scanners kept for the next scan: their buffers are allocated and already paged in,
# which matters for small files. list.pop/append are atomic under the GIL.
_spare = []


def scan(f, start=0, *, sides=ONE_SIDED, media=None, copies=1):
    """Pages of the PCL XL section of ``f`` starting at ``start``; see the pure twin."""
    cdef _Scanner sc
    if start < 0:
        raise PdlError("start must not be negative")
    try:
        sc = _spare.pop()
    except IndexError:
        sc = _Scanner()
    sc.reset()
    runs = None
    try:
        sc.set_defaults(sides, media, copies)
        if sc.s.canon:
            try:
                end, tag = sc.run(f, start, sides, media, copies, None)
            finally:
                sc.hand_over(sides, media, copies, None)
                if sc.s.run.count:
                    sc.out.append(sc.page_run(&sc.s.run, sides, media, copies))
                    sc.s.run.count = 0
            if tag is None:
                return tuple(sc.out), end
            runs = RunBuilder()
            runs.extend(sc.out)
        else:
            runs = RunBuilder()
            try:
                end, tag = sc.run(f, start, sides, media, copies, runs)
            finally:
                sc.flush(sides, media, copies, runs)
            if tag is None:
                return runs.runs(), end
        end = _ascii_rest(f, end, sc, runs, sides, media, copies)
        return runs.runs(), end
    finally:
        sc.made = None
        sc.out = None
        if len(_spare) < 2:
            _spare.append(sc)


cdef object _ascii_rest(f, pos, _Scanner sc, runs, sides, media, copies):
    """The ASCII binding goes to the pure scanner, continuing the page state."""
    cdef St* s = sc.s
    st = _pure._PageState(sides, media, copies)
    st.runs = runs
    st.in_page = bool(s.in_page)
    st.sides = _sides_name(s.sides, sides)
    st.media = _media_value(s, media)
    st.copies = int(s.copies) if s.copies else copies
    return _pure._scan_ascii(_pure._Source(f, pos), st)
