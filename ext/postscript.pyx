# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""Compiled twin of spoolproxy.pdl.postscript.

The byte scan (finding DSC comment lines, setpagedevice keys and the UEL, skipping
binary sections) runs in C without the GIL over 1 MiB chunks. What the events mean
is defined once, in the pure module's ``_Doc``, which gets them with the GIL; to
keep that cheap the C side

* passes on only the DSC lines ``_Doc`` acts on (the keywords in its handler table,
  Begin/EndDocument, and ``%%+`` lines continuing one of its list comments): the
  others change nothing, and ``_Doc`` ignores a ``%%+`` after any other line;
* folds runs of identical pages: the events from one ``%%Page:`` to the next (a
  "group") are held back; a group whose events are byte for byte those of the
  group before is only counted, and delivered as ``_Doc.repeat(k)``. Groups with
  Begin/EndDocument or Trailer lines are never folded (they are not idempotent).

The conversions are the pure module's (they are I/O bound and rare)."""
from libc.stdlib cimport malloc, free
from libc.stdint cimport uint64_t
from libc.string cimport memcpy, memmove, memcmp

from spoolproxy.pdl import postscript as _pure
from spoolproxy.pdl.postscript import (
    NeedsInterpreter, to_grayscale, to_duplex, CHUNK, LOOK, LINE_MAX, VALUE_WINDOW, GRAY_PROLOG,
)

__all__ = ["NeedsInterpreter", "scan", "to_grayscale", "to_duplex", "CHUNK", "LOOK", "LINE_MAX",
           "VALUE_WINDOW", "GRAY_PROLOG"]

cdef enum:
    C_CHUNK = 1 << 20
    C_LOOK = 512
    C_LINE_MAX = 256
    C_VALUE_WINDOW = 128
    C_ARENA = 1 << 18       # event records handed to Python per call
    C_ARENA_SLACK = 1 << 14 # room kept free: a group flush writes at most C_SIG + a few records
    C_SIG = 4096            # a page group longer than this is delivered as it comes

cdef enum:
    W_MORE = 0      # refill (or the end, at EOF)
    W_UEL = 1       # pos just past a UEL
    W_FLUSH = 2     # the arena is nearly full
    W_SKIP = 3      # a BeginBinary/BeginData line: Python decides the skip (skip_at, skip_end, skip_data)

cdef enum:
    R_DSC = 0       # record: kind, key, u32 length, bytes
    R_KEY = 1
    R_REPEAT = 2    # length field = count
    R_PAGE = 3      # a %%Page: line (its arguments are not used)

cdef enum:
    K_OTHER = 0     # a DSC line _Doc does nothing with
    K_PLAIN = 1     # one it acts on
    K_PAGE = 2
    K_BREAK = 3     # BeginDocument, EndDocument, Trailer: end any page group
    K_CONT = 4      # %%+
    K_LIST = 5      # one _Doc acts on whose values may go on in %%+ lines

cdef struct St:
    # output arena
    unsigned char* out
    Py_ssize_t out_len
    # page-group folding
    int in_group, spilled, prev_ok, last_passed
    long long repeats
    Py_ssize_t cur_len, prev_len
    unsigned char cur[C_SIG]
    unsigned char prev[C_SIG]
    # a BeginBinary / BeginData line for Python to look at
    Py_ssize_t skip_at, skip_end, skip_data

cdef const char* KEYS[5]
KEYS[0] = b"NumCopies"
KEYS[1] = b"#copies"
KEYS[2] = b"Duplex"
KEYS[3] = b"Tumble"
KEYS[4] = b"PageSize"
cdef int KEY_LEN[5]
KEY_LEN[:] = [9, 7, 6, 6, 8]
cdef tuple KEY_NAMES = (b"NumCopies", b"#copies", b"Duplex", b"Tumble", b"PageSize")

cdef unsigned char DELIM[256]
cdef unsigned char HOT[256]
cdef int KEY_BY_FIRST[256]
for _c in range(256):
    KEY_BY_FIRST[_c] = -1
for _k, _name in enumerate(KEY_NAMES):
    KEY_BY_FIRST[_name[0]] = _k
for _c in range(256):
    DELIM[_c] = _c in b" \t\r\n\f\x00()<>[]{}/%"
    HOT[_c] = _c in b"%/\x1b"

# the DSC keywords _Doc acts on, and how they group
_KINDS = {kw: K_LIST if kw in _pure._CONTINUABLE else K_PLAIN for kw in _pure._HANDLERS}
_KINDS.update({b"Page:": K_PAGE, b"Trailer": K_BREAK, b"BeginDocument:": K_BREAK, b"BeginDocument": K_BREAK,
               b"EndDocument": K_BREAK, b"+": K_CONT})
cdef int NKW = len(_KINDS)
cdef bytes _KW_BLOB = b"".join(_KINDS)
cdef const char* KW_TEXT = _KW_BLOB
cdef int KW_OFF[32]
cdef int KW_LEN[32]
cdef int KW_KIND[32]
_off = 0
for _i, (_kw, _k) in enumerate(_KINDS.items()):
    KW_OFF[_i] = _off
    KW_LEN[_i] = len(_kw)
    KW_KIND[_i] = _k
    _off += len(_kw)


cdef int _kind(const unsigned char* text, Py_ssize_t n) noexcept nogil:
    """How _Doc treats the DSC line whose text (after %%) is text[:n]: its keyword is
    what _pure._keyword() takes, up to and including a colon, or up to a blank."""
    cdef Py_ssize_t k = 0
    cdef int i
    while k < n and text[k] != 0x20 and text[k] != 0x09 and text[k] != 0x3A:
        k += 1
    if k < n and text[k] == 0x3A:
        k += 1
    for i in range(NKW):
        if KW_LEN[i] == k and memcmp(text, KW_TEXT + KW_OFF[i], k) == 0:
            return KW_KIND[i]
    return K_OTHER


cdef inline Py_ssize_t _record(unsigned char* dst, int kind, int key, const unsigned char* data,
                               Py_ssize_t n) noexcept nogil:
    dst[0] = kind
    dst[1] = key
    memcpy(dst + 2, &n, sizeof(Py_ssize_t))
    if n > 0 and data != NULL:
        memcpy(dst + 2 + sizeof(Py_ssize_t), data, n)
    return 2 + sizeof(Py_ssize_t) + (n if data != NULL else 0)


cdef inline void _emit(St* s, int kind, int key, const unsigned char* data, Py_ssize_t n) noexcept nogil:
    s.out_len += _record(s.out + s.out_len, kind, key, data, n)


cdef void _flush_repeats(St* s) noexcept nogil:
    if s.repeats:
        _emit(s, R_REPEAT, 0, NULL, <Py_ssize_t>s.repeats)
        s.repeats = 0


cdef void _end_group(St* s) noexcept nogil:
    if not s.in_group:
        return
    s.in_group = 0
    if s.spilled:
        s.prev_ok = 0
        return
    if s.prev_ok and s.cur_len == s.prev_len and memcmp(s.cur, s.prev, s.cur_len) == 0:
        s.repeats += 1
        return
    _flush_repeats(s)
    _emit(s, R_PAGE, 0, NULL, 0)
    memcpy(s.out + s.out_len, s.cur, s.cur_len)
    s.out_len += s.cur_len
    memcpy(s.prev, s.cur, s.cur_len)
    s.prev_len = s.cur_len
    s.prev_ok = 1


cdef void _event(St* s, int kind, int key, const unsigned char* data, Py_ssize_t n) noexcept nogil:
    """A DSC line or key _Doc should see, in order: held in the open page group, or delivered."""
    if s.in_group and not s.spilled:
        if s.cur_len + 2 + <Py_ssize_t>sizeof(Py_ssize_t) + n <= C_SIG:
            s.cur_len += _record(s.cur + s.cur_len, kind, key, data, n)
            return
        # too long to fold: deliver the group so far, and the rest as it comes
        _flush_repeats(s)
        _emit(s, R_PAGE, 0, NULL, 0)
        memcpy(s.out + s.out_len, s.cur, s.cur_len)
        s.out_len += s.cur_len
        s.spilled = 1
    _flush_repeats(s)
    _emit(s, kind, key, data, n)


cdef void _dsc(St* s, const unsigned char* text, Py_ssize_t n) noexcept nogil:
    cdef int kind = _kind(text, n)
    if kind == K_CONT:
        if not s.last_passed:  # _Doc ignores a %%+ unless the line before is a list it keeps
            return
    else:
        s.last_passed = kind == K_LIST
        if kind == K_OTHER:
            return
    if kind == K_PAGE:
        _end_group(s)
        s.in_group = 1
        s.spilled = 0
        s.cur_len = 0
    elif kind == K_BREAK:
        _end_group(s)
        s.prev_ok = 0
        _flush_repeats(s)
        _emit(s, R_DSC, 0, text, n)
    else:
        _event(s, R_DSC, 0, text, n)


cdef inline uint64_t _zero_byte(uint64_t v) noexcept nogil:
    return (v - 0x0101010101010101ULL) & ~v & 0x8080808080808080ULL


cdef extern from *:
    """
    static inline int spoolproxy_ctz64(unsigned long long v) { return __builtin_ctzll(v); }
    #if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    #define SPOOLPROXY_LITTLE_ENDIAN 1
    #else
    #define SPOOLPROXY_LITTLE_ENDIAN 0
    #endif
    """
    int spoolproxy_ctz64(unsigned long long v) nogil
    const int SPOOLPROXY_LITTLE_ENDIAN


cdef inline Py_ssize_t _next_hot(const unsigned char* buf, Py_ssize_t i, Py_ssize_t limit) noexcept nogil:
    """The first i' >= i below limit with buf[i'] one of '%', '/', ESC (or limit), eight
    bytes at a time: the lowest flagged byte of the zero-byte test is exact (little-endian
    load: the lowest byte is the first), false flags only ever sit above a true one."""
    cdef uint64_t x, m
    while SPOOLPROXY_LITTLE_ENDIAN and i + 8 <= limit:
        memcpy(&x, buf + i, 8)
        m = (_zero_byte(x ^ 0x2525252525252525ULL) | _zero_byte(x ^ 0x2F2F2F2F2F2F2F2FULL)
             | _zero_byte(x ^ 0x1B1B1B1B1B1B1B1BULL))
        if m:
            return i + (spoolproxy_ctz64(m) >> 3)
        i += 8
    while i < limit and not HOT[buf[i]]:
        i += 1
    return i


cdef int _walk(St* s, const unsigned char* buf, Py_ssize_t n, Py_ssize_t limit, Py_ssize_t* ppos,
               long long* skip_bytes, long long* skip_lines) noexcept nogil:
    cdef Py_ssize_t pos = ppos[0], i, stop, eol, after, endpos, wend
    cdef long long take
    cdef int k, c
    while True:
        if skip_bytes[0]:
            take = n - pos
            if take > skip_bytes[0]:
                take = skip_bytes[0]
            pos += take
            skip_bytes[0] -= take
            ppos[0] = pos
            if skip_bytes[0]:
                return W_MORE
            continue
        if skip_lines[0]:
            endpos = limit + 1 if limit < n else n
            while skip_lines[0] and pos < limit:
                c = buf[pos]
                if c == 0x0A:
                    pos += 1
                    skip_lines[0] -= 1
                elif c == 0x0D:
                    pos += 2 if (pos + 1 < endpos and buf[pos + 1] == 0x0A) else 1
                    skip_lines[0] -= 1
                else:
                    pos += 1
            ppos[0] = pos
            if skip_lines[0]:
                return W_MORE
            continue
        if s.out_len > C_ARENA - C_ARENA_SLACK:
            ppos[0] = pos
            return W_FLUSH
        i = _next_hot(buf, pos, limit)
        if i >= limit:
            ppos[0] = limit if limit > pos else pos
            return W_MORE
        c = buf[i]
        if c == 0x25:
            if not ((buf[i - 1] == 0x0D or buf[i - 1] == 0x0A) and i + 1 < n and buf[i + 1] == 0x25):
                pos = i + 1
                continue
            stop = i + C_LINE_MAX
            if stop > n:
                stop = n
            eol = i + 2
            while eol < stop and buf[eol] != 0x0D and buf[eol] != 0x0A:
                eol += 1
            if eol < stop and ((eol - i - 2 >= 12 and memcmp(buf + i + 2, b"BeginBinary:", 12) == 0)
                               or (eol - i - 2 >= 10 and memcmp(buf + i + 2, b"BeginData:", 10) == 0)):
                s.last_passed = 0  # _Doc has no handler for these: a %%+ after one is ignored
                s.skip_at = i
                s.skip_end = eol
                s.skip_data = eol + (2 if (buf[eol] == 0x0D and eol + 1 < n and buf[eol + 1] == 0x0A) else 1)
                ppos[0] = eol
                return W_SKIP
            _dsc(s, buf + i + 2, eol - i - 2)
            pos = eol
        elif c == 0x2F:
            pos = i + 1
            k = KEY_BY_FIRST[buf[i + 1]] if i + 1 < n else -1  # the keys' first letters differ
            if k >= 0:
                after = i + 1 + KEY_LEN[k]
                if after <= n and memcmp(buf + i + 1, KEYS[k], KEY_LEN[k]) == 0 and (after == n or DELIM[buf[after]]):
                    wend = after + C_VALUE_WINDOW
                    if wend > n:
                        wend = n
                    _event(s, R_KEY, k, buf + after, wend - after)
                    pos = after
        else:
            if n - i >= 9 and memcmp(buf + i, b"\x1b%-12345X", 9) == 0:
                ppos[0] = i + 9
                return W_UEL
            pos = i + 1


cdef void _deliver(object doc, St* s):
    """Hand the records in the arena to _Doc, in order."""
    cdef Py_ssize_t p = 0, n
    cdef int kind, key
    cdef const unsigned char* out = s.out
    while p < s.out_len:
        kind = out[p]
        key = out[p + 1]
        memcpy(&n, out + p + 2, sizeof(Py_ssize_t))
        p += 2 + sizeof(Py_ssize_t)
        if kind == R_DSC:
            doc.dsc(out[p:p + n])
            p += n
        elif kind == R_KEY:
            name = KEY_NAMES[key]
            doc.key(name, _pure._value(name, out[p:p + n], 0, n)[0])
            p += n
        elif kind == R_PAGE:
            doc.dsc(b"Page:")
        else:
            doc.repeat(n)
    s.out_len = 0


def scan(f, Py_ssize_t start=0, *, sides=_pure.ONE_SIDED, media=None, copies=1):
    """(pages as runs, offset just past the section) of the PostScript section at ``start``."""
    cdef unsigned char* buf
    cdef St* s
    cdef Py_ssize_t cap = C_CHUNK + 2 * C_LOOK + 2, n = 1, pos = 1, base = start - 1, limit, keep, got
    cdef long long skip_bytes = 0, skip_lines = 0
    cdef bint eof = False
    cdef int r
    _pure._check_sides(sides)
    doc = _pure._Doc(sides, media, copies)
    s = <St*>malloc(sizeof(St))
    if s == NULL:
        raise MemoryError()
    s.out = <unsigned char*>malloc(C_ARENA)
    if s.out == NULL:
        free(s)
        raise MemoryError()
    s.out_len = 0
    s.in_group = s.spilled = s.prev_ok = s.last_passed = 0
    s.repeats = 0
    s.cur_len = s.prev_len = 0
    store = bytearray(cap)
    buf = store
    view = memoryview(store)
    readinto = getattr(f, "readinto", None)
    end = None
    try:
        buf[0] = 0x0A  # the section starts a line
        f.seek(start)
        while True:
            if not eof and n - pos < C_LOOK + 1:
                keep = pos - 1
                memmove(buf, buf + keep, n - keep)
                n -= keep
                base += keep
                pos = 1
                if readinto is not None:
                    got = readinto(view[n:]) or 0
                else:
                    data = f.read(cap - n)
                    got = len(data)
                    memcpy(buf + n, <const char*>data, got)
                if got == 0:
                    eof = True
                n += got
                continue
            limit = n if eof else n - C_LOOK
            with nogil:
                r = _walk(s, buf, n, limit, &pos, &skip_bytes, &skip_lines)
            _deliver(doc, s)
            if r == W_UEL:
                end = base + pos
                break
            if r == W_SKIP:
                nskip, in_lines = _pure.skip_after(buf[s.skip_at + 2:s.skip_end])
                if nskip:
                    pos = s.skip_data
                    if in_lines:
                        skip_lines = nskip
                    else:
                        skip_bytes = nskip
                continue
            if r == W_MORE and eof:
                if skip_bytes == 0 and skip_lines == 0 and pos < limit:
                    continue
                break
        _end_group(s)
        _flush_repeats(s)
        _deliver(doc, s)
        if end is None:
            end = base + n
        return doc.finish(), end
    finally:
        view.release()
        free(s.out)
        free(s)
