# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""Compiled twin of spoolproxy.pdl.pcl: the PCL 5 scan in C, without the GIL.

The pure module is the specification (its docstring has the rules); this one walks
the same tokens in a resumable C state machine over 1 MiB chunks, taking the GIL
only to read the next chunk and to hand finished page runs to the RunBuilder. The
conversions are the pure module's (they are I/O bound and rare)."""
from libc.stdlib cimport malloc, free
from libc.string cimport memcpy, memmove, memcmp

from spoolproxy.pdl.model import ONE_SIDED, TWO_SIDED_LONG, TWO_SIDED_SHORT, RunBuilder
from spoolproxy.pdl.pcl import to_grayscale, to_duplex, PAGE_SIZES, CHUNK, LOOK, MAX_VALUE_CHARS

__all__ = ["scan", "to_grayscale", "to_duplex", "PAGE_SIZES", "CHUNK", "LOOK", "MAX_VALUE_CHARS"]

cdef enum:
    C_CHUNK = 1 << 20
    C_LOOK = 64
    C_VALUE = 32
    C_CID_MAX = 256
    C_RUNS = 64
    C_MAX_COPIES = 32767
    C_SIZES = 128
    C_ROW_MAX = 65536
    C_ROW_DATA_MAX = 1 << 17
    C_PLANES = 8

cdef enum:
    H_START = 0
    H_LETTER
    H_PARAMS
    H_LABEL
    H_PE
    H_DT

cdef enum:
    R_MORE = 0      # give me more bytes (or: the section ended, if at EOF)
    R_UEL = 1       # a UEL: pos is just past it
    R_FLUSH = 2     # the run buffer is full

cdef long long SAT = 2147483647

cdef struct Run:
    long long count
    int color
    int sides
    int has_media
    long long mw, mh
    long long copies

cdef struct St:
    # defaults from the PJL header
    int d_sides, d_has_media
    long long d_mw, d_mh, d_copies
    # page state
    int sides, has_media
    long long mw, mh, copies
    int marked, color
    unsigned char palette[256]
    int npal, ncolor, space, direct, fg, encoding, bits, prim8
    long long pen
    long long comps[3]
    int hpgl
    # raster
    long long compression, width
    int stale, row_data, row_unknown, nplanes
    Py_ssize_t seedlen[C_PLANES]
    Py_ssize_t planelen[C_PLANES]
    unsigned char* seeds      # C_PLANES rows of C_ROW_MAX
    unsigned char* planes
    # HP-GL/2 reader
    int hphase, hfirst, hm0, hm1, hterm, hnum_done
    long long hnum
    # tokenizer
    long long skip_left
    int in_seq, seq_p, seq_g
    # runs
    Run runs[C_RUNS]
    int nruns
    Run cur
    int has_cur

cdef long long SIZE_W[C_SIZES]
cdef long long SIZE_H[C_SIZES]
cdef int SIZE_OK[C_SIZES]
for _code in range(C_SIZES):
    SIZE_OK[_code] = 0
for _code, (_w, _h) in PAGE_SIZES.items():
    if 0 <= _code < C_SIZES:
        SIZE_OK[_code] = 1
        SIZE_W[_code] = _w
        SIZE_H[_code] = _h

cdef tuple SIDES = (ONE_SIDED, TWO_SIDED_LONG, TWO_SIDED_SHORT)
cdef unsigned char RGB8[8]
RGB8[:] = [0, 1, 1, 1, 1, 1, 1, 0]


cdef inline bint _marking(unsigned char c) noexcept nogil:
    return (0x21 <= c <= 0x7E) or (0xA1 <= c <= 0xFE)


cdef void _set_palette(St* s, const unsigned char* flags, int n, int space, int direct,
                       int encoding, int bits, int prim8) noexcept nogil:
    cdef int i
    s.npal = n
    s.ncolor = 0
    for i in range(n):
        s.palette[i] = flags[i]
        s.ncolor += flags[i]
    s.space = space
    s.direct = direct
    s.encoding = encoding
    s.bits = bits
    s.prim8 = prim8
    s.fg = 0
    s.pen = 1
    s.comps[0] = s.comps[1] = s.comps[2] = 0


cdef void _mono(St* s) noexcept nogil:
    cdef unsigned char z[2]
    z[0] = z[1] = 0
    _set_palette(s, z, 2, 0, 0, 0, 1, 1)


cdef inline void _end_row(St* s) noexcept nogil:
    s.nplanes = 0
    s.row_data = 0
    s.row_unknown = 0


cdef void _start_raster(St* s) noexcept nogil:
    cdef int i
    for i in range(C_PLANES):
        s.seedlen[i] = 0
    s.stale = 0
    _end_row(s)


cdef void _reset(St* s) noexcept nogil:
    s.sides = s.d_sides
    s.has_media = s.d_has_media
    s.mw = s.d_mw
    s.mh = s.d_mh
    s.copies = s.d_copies
    _mono(s)
    s.hpgl = 0
    s.compression = 0
    s.width = 0
    _start_raster(s)


cdef inline int _entry(St* s, long long i) noexcept nogil:
    return s.palette[i] if 0 <= i < s.npal else 0


cdef inline void _mark(St* s, int color) noexcept nogil:
    s.marked = 1
    if color:
        s.color = 1


cdef void _eject(St* s, bint always=False) noexcept nogil:
    cdef Run* c = &s.cur
    if not s.marked and not always:
        return
    if (s.has_cur and c.color == s.color and c.sides == s.sides and c.has_media == s.has_media
            and (not s.has_media or (c.mw == s.mw and c.mh == s.mh)) and c.copies == s.copies):
        c.count += 1
    else:
        if s.has_cur:
            s.runs[s.nruns] = c[0]
            s.nruns += 1
        s.has_cur = 1
        c.count = 1
        c.color = s.color
        c.sides = s.sides
        c.has_media = s.has_media
        c.mw = s.mw
        c.mh = s.mh
        c.copies = s.copies
    s.marked = 0
    s.color = 0


cdef void _configure(St* s, const unsigned char* d) noexcept nogil:
    cdef unsigned char flags[256]
    cdef int space = d[0], mode = d[1], bits = d[2], i, n
    cdef int prim8 = d[3] == 8 and d[4] == 8 and d[5] == 8
    if mode == 2 or mode == 3:
        _set_palette(s, RGB8, 8, space, 1, mode, 1, prim8)
        return
    if bits < 1:
        bits = 1
    if bits > 8:
        bits = 8
    n = 1 << bits
    for i in range(n):
        flags[i] = RGB8[i] if (bits > 1 and i < 8) else 0
    _set_palette(s, flags, n, space, 0, 1 if mode == 1 else 0, bits, prim8)


cdef inline bint _needs_decode(St* s) noexcept nogil:
    return s.direct or (s.npal > 2 and s.ncolor > 0)


cdef Py_ssize_t _decode_row(long long method, const unsigned char* data, Py_ssize_t n,
                            const unsigned char* seed, Py_ssize_t seedlen, unsigned char* out) noexcept nogil:
    """As _pure._decode_row, into out (C_ROW_MAX bytes): the row's length, or -1."""
    cdef Py_ssize_t i = 0, o = 0, k, count, offset, pos, take, end
    cdef int c, more
    if method == 0:
        if n > C_ROW_MAX:
            return -1
        memcpy(out, data, n)
        return n
    if method == 1:
        while i + 1 < n:
            count = data[i] + 1
            if o + count > C_ROW_MAX:
                return -1
            for k in range(count):
                out[o + k] = data[i + 1]
            o += count
            i += 2
        return o
    if method == 2:
        while i < n:
            c = data[i]
            i += 1
            if c < 128:
                take = c + 1
                if take > n - i:
                    take = n - i
                if o + take > C_ROW_MAX:
                    return -1
                memcpy(out + o, data + i, take)
                o += take
                i += c + 1
            elif c > 128:
                if i < n:
                    count = 257 - c
                    if o + count > C_ROW_MAX:
                        return -1
                    for k in range(count):
                        out[o + k] = data[i]
                    o += count
                    i += 1
        return o
    if method == 3:
        memcpy(out, seed, seedlen)
        o = seedlen
        pos = 0
        while i < n:
            c = data[i]
            i += 1
            count = (c >> 5) + 1
            offset = c & 31
            if offset == 31:
                while i < n:
                    more = data[i]
                    i += 1
                    offset += more
                    if more != 255:
                        break
            pos += offset
            take = count
            if take > n - i:
                take = n - i
            if take <= 0:
                break
            end = pos + take
            if end > C_ROW_MAX:
                return -1
            if end > o:
                for k in range(o, end):
                    out[k] = 0
                o = end
            memcpy(out + pos, data + i, take)
            i += take
            pos = end
        return o
    return -1


cdef inline int _bit(const unsigned char* row, Py_ssize_t len, Py_ssize_t x) noexcept nogil:
    return (row[x >> 3] >> (7 - (x & 7))) & 1 if (x >> 3) < len else 0


cdef bint _row_color(St* s) noexcept nogil:
    cdef int k = s.nplanes, p, bits, mask, idx
    cdef Py_ssize_t nbytes = 0, w, x, count, bit
    cdef const unsigned char* row
    cdef unsigned char r, g, b
    if k == 0:
        return False
    for p in range(k):
        if s.planelen[p] > nbytes:
            nbytes = s.planelen[p]
    if s.encoding == 0 or s.encoding == 2:
        if s.encoding == 2:
            if k > 3:
                return True
            if s.space > 2:
                return True
        w = nbytes * 8
        if s.width and s.width < w:
            w = s.width
        for x in range(w):
            if s.encoding == 0:
                idx = 0
                for p in range(k):
                    idx |= _bit(s.planes + p * C_ROW_MAX, s.planelen[p], x) << p
                if idx < s.npal and s.palette[idx]:
                    return True
            else:
                r = _bit(s.planes, s.planelen[0], x)
                g = _bit(s.planes + C_ROW_MAX, s.planelen[1], x) if k > 1 else 0
                b = _bit(s.planes + 2 * C_ROW_MAX, s.planelen[2], x) if k > 2 else 0
                if r != g or g != b:
                    return True
        return False
    row = s.planes
    if s.encoding == 1:
        if k > 1:
            return True
        bits = s.bits
        if not (bits == 1 or bits == 2 or bits == 4 or bits == 8):
            return True
        count = s.planelen[0] * 8 // bits
        if s.width and s.width < count:
            count = s.width
        mask = (1 << bits) - 1
        for x in range(count):
            bit = x * bits
            idx = (row[bit >> 3] >> (8 - bits - (bit & 7))) & mask
            if idx < s.npal and s.palette[idx]:
                return True
        return False
    if s.space > 2:
        return True
    if k > 1 or not s.prim8:
        return True
    count = s.planelen[0] // 3
    if s.width and s.width < count:
        count = s.width
    for x in range(count):
        if row[3 * x] != row[3 * x + 1] or row[3 * x + 1] != row[3 * x + 2]:
            return True
    return False


cdef void _raster(St* s, long long value, const unsigned char* data, Py_ssize_t dlen, bint have,
                  bint last) noexcept nogil:
    """As _pure._Scanner.raster: have is False when the payload was not fetched."""
    cdef int index
    cdef Py_ssize_t got
    if not _needs_decode(s):
        if value > 0:
            _mark(s, s.fg if s.npal <= 2 else 0)
            s.stale = 1
        if last:
            _end_row(s)
        return
    if value > 0:
        _mark(s, 0)
        s.row_data = 1
    index = s.nplanes
    if index >= C_PLANES:
        s.row_unknown = 1
    else:
        got = -1
        if value <= 0:
            data = NULL
            dlen = 0
            have = True
        if have and not (s.compression == 3 and s.stale):
            got = _decode_row(s.compression, data, dlen, s.seeds + index * C_ROW_MAX, s.seedlen[index],
                              s.planes + index * C_ROW_MAX)
        if got < 0:
            s.row_unknown = 1
            s.stale = 1
        else:
            memcpy(s.seeds + index * C_ROW_MAX, s.planes + index * C_ROW_MAX, got)
            s.seedlen[index] = got
            s.planelen[index] = got
            s.nplanes = index + 1
    if last:
        if s.row_data and (s.row_unknown or _row_color(s)):
            _mark(s, 1)
        _end_row(s)


cdef void _command(St* s, int p, int g, long long value, int param,
                   const unsigned char* data, Py_ssize_t dlen) noexcept nogil:
    cdef long long a, b, c
    cdef int old, col
    if p == 0x26 and g == 0x6C:
        if param == 0x58:
            if value >= 1:
                s.copies = value if value < C_MAX_COPIES else C_MAX_COPIES
        elif param == 0x53:
            _eject(s)
            if 0 <= value <= 2:
                s.sides = <int>value
        elif param == 0x41:
            _eject(s)
            if 0 <= value < C_SIZES and SIZE_OK[value]:
                s.has_media = 1
                s.mw = SIZE_W[value]
                s.mh = SIZE_H[value]
        elif param == 0x48:
            _eject(s)
    elif p == 0x2A and g == 0x72:
        if param == 0x55:
            if value == 1:
                _mono(s)
            elif value == 3:
                _set_palette(s, RGB8, 8, 0, 0, 0, 3, 1)
            elif value == -3:
                _set_palette(s, RGB8, 8, 1, 0, 0, 3, 1)
        elif param == 0x53:
            s.width = value if value > 0 else 0
        elif param == 0x41:
            _start_raster(s)
        elif param == 0x42 or param == 0x43:
            _end_row(s)
    elif p == 0x2A and g == 0x62 and param == 0x4D:
        s.compression = value
    elif p == 0x2A and g == 0x62 and param == 0x59:
        _start_raster(s)
    elif p == 0x2A and g == 0x76:
        if param == 0x57 and data != NULL and dlen >= 6:
            _configure(s, data)
        elif param == 0x41 or param == 0x42 or param == 0x43:
            s.comps[param - 0x41] = value
        elif param == 0x49:
            if 0 <= value < s.npal:
                a = s.comps[0]
                b = s.comps[1]
                c = s.comps[2]
                col = (not (b == 0 and c == 0)) if s.space >= 3 else (not (a == b and b == c))
                old = s.palette[value]
                s.palette[value] = col
                s.ncolor += col - old
            s.comps[0] = s.comps[1] = s.comps[2] = 0
        elif param == 0x53:
            s.fg = _entry(s, value)
    elif p == 0x2A and g == 0x62 and (param == 0x57 or param == 0x56):
        _raster(s, value, data, dlen, data != NULL, param == 0x57)
    elif p == 0x2A and g == 0x63 and param == 0x50:
        if value != 1:
            _mark(s, s.fg)
    elif p == 0x26 and g == 0x70 and param == 0x58:
        if value > 0:
            _mark(s, s.fg)
    elif p == 0x25 and g == 0 and param == 0x42:
        if not s.hpgl:
            s.hphase = H_START
            s.hfirst = 0
            s.hm0 = s.hm1 = 0
            s.hterm = 0x03
            s.hnum = 0
            s.hnum_done = 0
        s.hpgl = 1
    elif p == 0x25 and g == 0 and param == 0x41:
        s.hpgl = 0


cdef inline long long _payload(int p, int g, int param, long long value) noexcept nogil:
    if value <= 0:
        return 0
    if param == 0x57 or (p == 0x2A and g == 0x62 and param == 0x56) or (p == 0x26 and g == 0x70 and param == 0x58):
        return value
    return 0


cdef inline bint _is(int a, int b, const char* mn) noexcept nogil:
    return a == mn[0] and b == mn[1]


cdef bint _draws(int a, int b) noexcept nogil:
    return (_is(a, b, b"PD") or _is(a, b, b"PE") or _is(a, b, b"RA") or _is(a, b, b"RR") or _is(a, b, b"EA")
            or _is(a, b, b"ER") or _is(a, b, b"EP") or _is(a, b, b"FP") or _is(a, b, b"WG") or _is(a, b, b"EW")
            or _is(a, b, b"CI") or _is(a, b, b"AA") or _is(a, b, b"AR") or _is(a, b, b"AT") or _is(a, b, b"RT")
            or _is(a, b, b"BR") or _is(a, b, b"BZ") or _is(a, b, b"LB"))


cdef Py_ssize_t _hpgl_feed(St* s, const unsigned char* buf, Py_ssize_t pos, Py_ssize_t stop) noexcept nogil:
    """Read buf[pos:stop] as HP-GL/2; returns where it stopped (early when the run buffer fills)."""
    cdef Py_ssize_t i
    cdef int b, ph, letter, a
    for i in range(pos, stop):
        if s.nruns >= C_RUNS - 2:
            return i
        b = buf[i]
        ph = s.hphase
        if ph == H_LABEL:
            if b == s.hterm:
                s.hphase = H_PARAMS
            continue
        if ph == H_PE:
            if b == 0x3B:
                s.hphase = H_PARAMS
            continue
        if ph == H_DT:
            s.hterm = 0x03 if b == 0x3B else b
            s.hphase = H_PARAMS
            continue
        letter = (0x41 <= b <= 0x5A) or (0x61 <= b <= 0x7A)
        if ph == H_LETTER:
            if letter:
                a = s.hfirst
                b = b & 0xDF
                s.hm0 = a
                s.hm1 = b
                s.hphase = H_PARAMS
                if _draws(a, b):
                    _mark(s, _entry(s, s.pen))
                if _is(a, b, b"LB") or _is(a, b, b"BL"):
                    s.hphase = H_LABEL
                elif _is(a, b, b"PE"):
                    s.hphase = H_PE
                elif _is(a, b, b"DT"):
                    s.hphase = H_DT
                elif _is(a, b, b"SP"):
                    s.hnum = 0
                    s.hnum_done = 0
            else:
                s.hphase = H_PARAMS
            continue
        if letter:
            if _is(s.hm0, s.hm1, b"SP"):
                s.pen = s.hnum
            s.hm0 = s.hm1 = 0
            s.hfirst = b & 0xDF
            s.hphase = H_LETTER
        elif _is(s.hm0, s.hm1, b"SP") and not s.hnum_done:
            if 0x30 <= b <= 0x39:
                s.hnum = s.hnum * 10 + (b - 0x30)
                if s.hnum > 255:
                    s.hnum = 255
            elif s.hnum or not (b == 0x20 or b == 0x2C):
                s.hnum_done = 1
    return stop


cdef int _value(const unsigned char* buf, Py_ssize_t q, Py_ssize_t n, long long* value,
                Py_ssize_t* vend) noexcept nogil:
    """The value field at q (as _pure._parse_value): 1 ok, 0 too long."""
    cdef Py_ssize_t i = q, lim = q + C_VALUE + 1
    cdef long long v = 0
    cdef bint neg = False
    if lim > n:
        lim = n
    if i < lim and (buf[i] == b'+' or buf[i] == b'-'):
        neg = buf[i] == b'-'
        i += 1
    while i < lim and 0x30 <= buf[i] <= 0x39:
        v = v * 10 + (buf[i] - 0x30)
        if v > SAT:
            v = SAT
        i += 1
    if i < lim and buf[i] == b'.':
        i += 1
        while i < lim and 0x30 <= buf[i] <= 0x39:
            i += 1
    if i - q > C_VALUE:
        return 0
    value[0] = -v if neg else v
    vend[0] = i
    return 1


cdef int _run(St* s, const unsigned char* buf, Py_ssize_t n, bint eof, Py_ssize_t* ppos) noexcept nogil:
    """Walk buf[*ppos:n]; stop when a token lacks look-ahead (R_MORE), at a UEL (R_UEL)
    or when the run buffer is full (R_FLUSH)."""
    cdef Py_ssize_t pos = ppos[0], q, vend, stop, need
    cdef long long value, length, take
    cdef int c, g, t, param
    cdef const unsigned char* data
    cdef Py_ssize_t dlen
    while True:
        if s.nruns >= C_RUNS - 2:
            ppos[0] = pos
            return R_FLUSH
        if s.skip_left:
            take = n - pos
            if take > s.skip_left:
                take = s.skip_left
            pos += take
            s.skip_left -= take
            if s.skip_left:
                ppos[0] = pos
                return R_MORE
            continue
        if s.in_seq:
            # the next parameter of a combined sequence, at pos
            if n - pos < C_LOOK and not eof:
                ppos[0] = pos
                return R_MORE
            c = s.seq_p
            g = s.seq_g
            q = pos
            if not _value(buf, q, n, &value, &vend):
                s.in_seq = 0
                pos = q
                continue
            if vend >= n:
                s.in_seq = 0
                pos = n
                continue
            t = buf[vend]
            if not (0x40 <= t <= 0x7E) or t == 0x5F:
                s.in_seq = 0
                pos = vend
                continue
            param = t - 0x20 if t >= 0x60 else t
            length = _payload(c, g, param, value)
            data = NULL
            dlen = 0
            if length and ((c == 0x2A and g == 0x76 and param == 0x57 and length <= C_CID_MAX) or (
                    c == 0x2A and g == 0x62 and length <= C_ROW_DATA_MAX and _needs_decode(s))):
                if n - (vend + 1) < length and not eof:
                    ppos[0] = pos
                    return R_MORE
                data = buf + vend + 1
                dlen = n - (vend + 1)
                if dlen > length:
                    dlen = length
            _command(s, c, g, value, param, data, dlen)
            pos = vend + 1
            s.skip_left = length
            if t < 0x60:
                s.in_seq = 0
            continue
        if pos >= n:
            ppos[0] = pos
            return R_MORE
        if buf[pos] != 0x1B:
            if s.hpgl:
                stop = pos
                while stop < n and buf[stop] != 0x1B:
                    stop += 1
                pos = _hpgl_feed(s, buf, pos, stop)
                continue
            while pos < n:
                c = buf[pos]
                if c == 0x1B:
                    break
                if c == 0x0C:
                    _eject(s, True)
                    if s.nruns >= C_RUNS - 2:
                        pos += 1
                        break
                elif not s.marked and _marking(c):
                    _mark(s, s.fg)
                elif s.fg and _marking(c):
                    _mark(s, 1)
                pos += 1
            continue
        if n - pos < C_LOOK and not eof:
            ppos[0] = pos
            return R_MORE
        c = buf[pos + 1] if pos + 1 < n else -1
        if c == 0x2A and buf[pos + 2] == 0x62 and n - pos >= C_LOOK:
            # fast path for the commonest command, a raster row ESC*b#W with a plain
            # unsigned count: exactly what the general path does for it
            q = pos + 3
            length = 0
            while q < pos + 3 + 9 and 0x30 <= buf[q] <= 0x39:
                length = length * 10 + (buf[q] - 0x30)
                q += 1
            if q > pos + 3 and buf[q] == 0x57 and not _needs_decode(s):
                if length > 0:
                    _mark(s, s.fg if s.npal <= 2 else 0)
                    s.stale = 1
                _end_row(s)
                pos = q + 1
                if length <= n - pos:
                    pos += length
                else:
                    s.skip_left = length
                continue
        if c == 0x25 and n - pos >= 9 and memcmp(buf + pos, b"\x1b%-12345X", 9) == 0:
            ppos[0] = pos + 9
            return R_UEL
        if 0x30 <= c <= 0x7E:
            pos += 2
            if c == 0x45:
                _eject(s)
                _reset(s)
            continue
        if not (0x21 <= c <= 0x2F):
            pos += 1
            continue
        g = buf[pos + 2] if (pos + 2 < n and 0x60 <= buf[pos + 2] <= 0x7E) else 0
        s.in_seq = 1
        s.seq_p = c
        s.seq_g = g
        pos += 3 if g else 2


def scan(f, Py_ssize_t start=0, *, sides=ONE_SIDED, media=None, copies=1):
    """(pages as runs, offset just past the section) of the PCL 5 section at ``start``."""
    cdef St* s
    cdef unsigned char* buf
    cdef Py_ssize_t cap = C_CHUNK + 4096, n = 0, pos = 0, base = start, got
    cdef bint eof = False
    cdef int r = R_MORE
    cdef int i
    if sides not in SIDES:
        raise ValueError(f"unknown sides {sides!r}")
    s = <St*>malloc(sizeof(St))
    if s == NULL:
        raise MemoryError()
    s.seeds = <unsigned char*>malloc(C_PLANES * C_ROW_MAX)
    s.planes = <unsigned char*>malloc(C_PLANES * C_ROW_MAX)
    if s.seeds == NULL or s.planes == NULL:
        free(s.seeds)
        free(s.planes)
        free(s)
        raise MemoryError()
    store = bytearray(cap)
    buf = store
    view = memoryview(store)
    readinto = getattr(f, "readinto", None)
    builder = RunBuilder()
    try:
        s.d_sides = SIDES.index(sides)
        s.d_has_media = media is not None
        s.d_mw = media[0] if media is not None else 0
        s.d_mh = media[1] if media is not None else 0
        s.d_copies = copies
        _reset(s)
        s.marked = s.color = 0
        s.skip_left = 0
        s.in_seq = 0
        s.nruns = 0
        s.has_cur = 0
        s.hphase = H_START
        s.hm0 = s.hm1 = s.hfirst = 0
        s.hterm = 3
        s.hnum = 0
        s.hnum_done = 0
        f.seek(start)
        while True:
            if r == R_MORE:
                if eof:
                    break
                if pos:
                    memmove(buf, buf + pos, n - pos)
                    n -= pos
                    base += pos
                    pos = 0
                if readinto is not None:
                    got = readinto(view[n:]) or 0
                else:
                    data = f.read(cap - n)
                    got = len(data)
                    memcpy(buf + n, <const char*>data, got)
                if got == 0:
                    eof = True
                n += got
            elif r == R_UEL:
                break
            _flush(s, builder, media)
            with nogil:
                r = _run(s, buf, n, eof, &pos)
        with nogil:
            _eject(s)
        _flush(s, builder, media)
        if s.has_cur:
            _add(builder, &s.cur, media)
        return builder.runs(), base + pos
    finally:
        view.release()
        free(s.seeds)
        free(s.planes)
        free(s)


cdef void _add(object builder, Run* r, object dmedia):
    cdef object m = None
    if r.has_media:
        m = (r.mw, r.mh)
    builder.add(bool(r.color), SIDES[r.sides], m, r.copies, r.count)


cdef void _flush(St* s, object builder, object dmedia):
    cdef int i
    for i in range(s.nruns):
        _add(builder, &s.runs[i], dmedia)
    s.nruns = 0
