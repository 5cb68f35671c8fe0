# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""Compiled twin of spoolproxy.pdl.pclxl: the PCL XL scanner. The pure module is the
specification (its docstring has the rules); this one walks the binary tokens in C
with the GIL released per buffer, and must return and raise exactly as the pure one.

What stays in Python (rare or small): the stream header line, the ASCII binding
(handed to the pure scanner), and the conversions to_grayscale / to_duplex, which
are the pure module's functions (they are I/O bound and rewrite few bytes)."""
from libc.stdlib cimport malloc, free
from libc.string cimport memcpy, memmove, memset, memcmp
from libc.math cimport rint, fabs
from libc.stdint cimport int64_t, uint8_t, uint16_t, uint32_t, int16_t, int32_t

from spoolproxy.pdl import pclxl as _pure
from spoolproxy.pdl.model import ONE_SIDED, TWO_SIDED_LONG, TWO_SIDED_SHORT, DamagedDocument, PdlError, RunBuilder

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
    ACT_PAGE = 4       # a page ended: add it, then continue
    ACT_ILLEGAL = 5    # illegal tag at pos - 1
    ACT_ESC = 6        # ESC not a UEL at pos - 9
    ACT_HEADER = 7     # a stream header tag at pos - 1
    ACT_BADCOUNT = 8   # bad array length type at pos - 1

cdef enum:
    S_ONE = 0
    S_LONG = 1
    S_SHORT = 2
    S_DEFAULT = 3

ctypedef struct Val:
    int tag
    int64_t count
    int has_raw
    int len
    uint8_t raw[MAXVAL]

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

ctypedef struct St:
    int big
    # attributes of the operator being collected (present when gen matches)
    unsigned int gen
    unsigned int agen[256]
    Val* attrs            # 256 of them
    Val value
    int has_value
    int last_op
    # page
    int in_page
    int color
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
    int64_t data_got
    int64_t skip
    # the run of alike pages not yet handed to the RunBuilder
    int64_t run_n
    int run_color
    int run_sides
    int run_mcode
    double run_w
    double run_h
    int64_t run_copies


cdef inline int _ws(uint8_t b) noexcept nogil:
    return b == 0 or (9 <= b <= 13) or b == 32


cdef inline int _is_value_tag(uint8_t b) noexcept nogil:
    return (0xC0 <= b <= 0xC5) or (0xC8 <= b <= 0xCD) or (0xD0 <= b <= 0xD5) or (0xE0 <= b <= 0xE5)


cdef int _ELEM[6]
_ELEM[0] = 1; _ELEM[1] = 2; _ELEM[2] = 4; _ELEM[3] = 2; _ELEM[4] = 4; _ELEM[5] = 4


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
    if s.agen[aid] == s.gen:
        return &s.attrs[aid]
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
        for i in range(0, 3 * w, 3):
            a = row[i]; b = row[i + 1]; c = row[i + 2]
            if (a - b > TOL or b - a > TOL or b - c > TOL or c - b > TOL or a - c > TOL or c - a > TOL):
                return 1
        return 0
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
    cdef int64_t i = 0, take
    cdef uint8_t b, c
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
                elif c > 128:
                    d.rep = 257 - c
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
    """Returns 1 when a page ended (ACT_PAGE)."""
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
        s.g.brush = _paint_color(s, s.g.brush, 4)
    elif op == 0x79:
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
    elif op == 0x86 or op == 0xA0 or op == 0xA2 or op == 0x98 or op == 0x96 or op == 0x9E:
        if s.in_page and (s.g.brush or s.g.pen):
            s.color = 1
    elif op == 0xA8 or op == 0xB6 or op == 0xB9:
        if s.in_page and s.g.brush:
            s.color = 1
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

cdef int _run(St* s, const uint8_t* buf, Py_ssize_t n, Py_ssize_t* ppos, bint eof) noexcept nogil:
    """Walks tokens in buf[*ppos:n]; returns an ACT_ code with *ppos where to go on."""
    cdef Py_ssize_t pos = ppos[0], q
    cdef uint8_t b, ct
    cdef int et, size, aid, r
    cdef int64_t count, nb, dl, take
    cdef Val* v
    while True:
        if s.data_left > 0:                      # image data being decoded
            take = n - pos
            if take > s.data_left:
                take = s.data_left
            if take <= 0:
                ppos[0] = pos
                return ACT_NEED
            if not s.dec.done:
                _feed(s, buf + pos, take)
            pos += take
            s.data_left -= take
            if s.data_left == 0:
                _data_done(s)
            continue
        if pos >= n:
            ppos[0] = pos
            return ACT_NEED
        b = buf[pos]
        if _ws(b):
            pos += 1
            continue
        if 0x41 <= b <= 0xBF:
            pos += 1
            r = _operator(s, b)
            s.gen += 1
            s.has_value = 0
            s.last_op = b
            if r:
                if (s.run_n and s.run_color == s.color and s.run_sides == s.sides
                        and s.run_mcode == s.media_code and s.run_w == s.media_w
                        and s.run_h == s.media_h and s.run_copies == s.page_copies):
                    s.run_n += 1
                    continue
                ppos[0] = pos
                return ACT_PAGE
            continue
        if _is_value_tag(b):
            et = b & 7
            size = _ELEM[et]
            q = pos + 1
            if (b & 0xF8) == 0xC0:
                count = 1
            elif (b & 0xF8) == 0xD0:
                count = 2
            elif (b & 0xF8) == 0xE0:
                count = 4
            else:
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
            nb = count * size
            s.value.tag = b
            s.value.count = count
            s.has_value = 1
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
            memcpy(s.value.raw, buf + q, nb)
            pos = q + nb
            continue
        if b == 0xF8 or b == 0xF9:
            if pos + (2 if b == 0xF8 else 3) > n:
                ppos[0] = pos
                return ACT_NEED
            if b == 0xF8:
                aid = buf[pos + 1]
                pos += 2
            else:
                aid = (buf[pos + 1] << 8) | buf[pos + 2] if s.big else (buf[pos + 2] << 8) | buf[pos + 1]
                pos += 3
            if s.has_value:
                if aid < 256:
                    v = &s.attrs[aid]
                    v.tag = s.value.tag
                    v.count = s.value.count
                    v.has_raw = s.value.has_raw
                    v.len = s.value.len
                    if s.value.has_raw:
                        memcpy(v.raw, s.value.raw, s.value.len)
                    s.agen[aid] = s.gen
            s.has_value = 0
            continue
        if b == 0xFA or b == 0xFB:
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
                    s.data_got = 0
                    if dl == 0:
                        _data_done(s)
                    continue
            elif r:
                s.has_block = 0
            if pos + dl > n:
                s.skip = pos + dl - n
                ppos[0] = n
                return ACT_SKIP
            pos += dl
            continue
        if b == 0x1B:
            if pos + 9 > n:
                ppos[0] = pos
                return ACT_NEED
            if memcmp(buf + pos + 1, b"%-12345X", 8) != 0:
                ppos[0] = pos + 9
                return ACT_ESC
            ppos[0] = pos + 9
            return ACT_UEL
        if b == 0x27 or b == 0x28 or b == 0x29:
            ppos[0] = pos + 1
            return ACT_HEADER
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
    cdef St* s
    cdef uint8_t* buf

    def __cinit__(self):
        self.s = <St*>malloc(sizeof(St))
        self.buf = <uint8_t*>malloc(BUFSIZE + SLACK)
        if self.s == NULL or self.buf == NULL:
            raise MemoryError()
        memset(self.s, 0, sizeof(St))
        self.s.attrs = <Val*>malloc(256 * sizeof(Val))
        self.s.stack = <GState*>malloc(MAXGS * sizeof(GState))
        if self.s.attrs == NULL or self.s.stack == NULL:
            raise MemoryError()
        if _alloc_rows(&self.s.im) != 0:
            raise MemoryError()
        self.s.gen = 1
        self.s.last_op = -1

    def __dealloc__(self):
        if self.s != NULL:
            free(self.s.attrs)
            free(self.s.stack)
            free(self.s.im.row)
            free(self.s.im.seed)
            free(self.s)
        free(self.buf)

    def run(self, f, Py_ssize_t base, int binding, sides, media, int64_t copies, runs):
        """Token loop from file offset ``base`` (just past the stream header)."""
        cdef St* s = self.s
        cdef Py_ssize_t n = 0, pos = 0, keep
        cdef int act
        cdef bint eof = False
        cdef const uint8_t* p
        cdef object chunk
        s.big = binding == 0x28
        f.seek(base)
        while True:
            with nogil:
                act = _run(s, self.buf, n, &pos, eof)
            if act == ACT_NEED:
                if eof:
                    return base + n, None
                keep = n - pos
                if keep > SLACK:  # cannot happen: a token is at most MAXVAL + 8 bytes
                    keep = SLACK
                memmove(self.buf, self.buf + pos, keep)
                base += pos
                chunk = f.read(BUFSIZE)
                if not chunk:
                    eof = True
                    n = keep
                    pos = 0
                    # an image data block cut short, or a token cut short: the section ends here
                    return base + n, None
                p = chunk
                memcpy(self.buf + keep, p, len(chunk))
                n = keep + len(chunk)
                pos = 0
            elif act == ACT_SKIP:
                base += n
                target = base + s.skip
                f.seek(target - 1)
                if not f.read(1):
                    f.seek(0, 2)
                    return f.tell(), None
                base = target
                n = 0
                pos = 0
            elif act == ACT_PAGE:
                self.flush(sides, media, copies, runs)
                s.run_n = 1
                s.run_color = s.color
                s.run_sides = s.sides
                s.run_mcode = s.media_code
                s.run_w = s.media_w
                s.run_h = s.media_h
                s.run_copies = s.page_copies
            elif act == ACT_UEL:
                return base + pos, None
            elif act == ACT_ILLEGAL:
                raise DamagedDocument(f"PCL XL: illegal tag 0x{self.buf[pos - 1]:02X} at offset {base + pos - 1}")
            elif act == ACT_BADCOUNT:
                raise DamagedDocument(f"PCL XL: bad array length type 0x{self.buf[pos - 1]:02X} at offset {base + pos - 1}")
            elif act == ACT_ESC:
                raise DamagedDocument(f"PCL XL: ESC that is not a UEL at offset {base + pos - 9}")
            elif act == ACT_HEADER:
                return base + pos, self.buf[pos - 1]

    def flush(self, sides, media, copies, runs):
        """Hands the pending run of alike pages to the RunBuilder."""
        cdef St* s = self.s
        if s.run_n:
            if s.run_mcode == -3:
                m = (int(s.run_w), int(s.run_h))
            elif s.run_mcode >= 0:
                m = MEDIA_SIZES.get(s.run_mcode, media)
            else:
                m = media
            runs.add(bool(s.run_color), _sides_name(s.run_sides, sides), m,
                     int(s.run_copies) if s.run_copies else copies, int(s.run_n))
            s.run_n = 0

    def page_state(self):
        s = self.s
        return bool(s.in_page), s.sides, s.media_code, s.copies


def scan(f, start=0, *, sides=ONE_SIDED, media=None, copies=1):
    """Pages of the PCL XL section of ``f`` starting at ``start``; see the pure twin."""
    src = _pure._Source(f, start)
    binding, _ = _pure._header(src)
    runs = RunBuilder()
    sc = _Scanner()
    pos = src.pos
    while True:
        if binding == 0x27:
            end = _ascii_rest(f, pos, sc, runs, sides, media, copies)
            return runs.runs(), end
        try:
            pos, tag = sc.run(f, pos, binding, sides, media, copies, runs)
        finally:
            sc.flush(sides, media, copies, runs)
        if tag is None:
            return runs.runs(), pos
        src = _pure._Source(f, pos)
        _pure._header_rest(src, tag, pos - 1)
        pos = src.pos
        binding = tag
        sc.s.gen += 1
        sc.s.has_value = 0


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
