# cython: language_level=3, annotation_typing=False
"""Compiled twin of spoolproxy.pdl.pdf: the PDF structure reader and page counter.

The pure module is the specification, and this module is that very source compiled
(the ``include`` below), so the two cannot drift apart. After it, the byte loops are
replaced by typed C versions that run without the GIL: the repair scan
(``_scan_chunk``), the PNG predictors (``_png_unpredict``) and RC4 (``_rc4``). Each
returns exactly what the pure function returns; the tests compare them.

The object model's classes (Name, Ref, Stream, Page) are the pure module's own, so
``isinstance`` checks written against spoolproxy.pdl.pdf hold for objects from either
twin; the exceptions come from spoolproxy.pdl.model in both.
"""

include "../spoolproxy/pdl/pdf.py"

from libc.stdlib cimport free, malloc, realloc
from libc.string cimport memcmp, memcpy, memset

from spoolproxy.pdl.pdf import Name, Page, Ref, Stream  # one object model for both twins

__doc__ = """Compiled twin of spoolproxy.pdl.pdf (see that module for the API)."""


# -- repair scan ---------------------------------------------------------------------------

cdef inline bint _is_ws(unsigned char c) noexcept nogil:
    return c == 0 or c == 9 or c == 10 or c == 12 or c == 13 or c == 32


cdef inline bint _is_digit(unsigned char c) noexcept nogil:
    return 48 <= c <= 57


cdef inline bint _is_regular(unsigned char c) noexcept nogil:
    if _is_ws(c):
        return False
    return not (c == b'(' or c == b')' or c == b'<' or c == b'>' or c == b'[' or c == b']'
                or c == b'{' or c == b'}' or c == b'/' or c == b'%')


cdef struct _Hits:
    long long* v      # obj: (num, gen, start) triples; trailers: starts
    Py_ssize_t n
    Py_ssize_t cap


cdef int _push(_Hits* h, long long x) noexcept nogil:
    cdef long long* grown
    if h.n == h.cap:
        h.cap = h.cap * 2 if h.cap else 256
        grown = <long long*>realloc(h.v, h.cap * sizeof(long long))
        if grown == NULL:
            return -1
        h.v = grown
    h.v[h.n] = x
    h.n += 1
    return 0


cdef Py_ssize_t _run_back(const unsigned char* p, Py_ssize_t i, bint digits) noexcept nogil:
    """Length of the run of digits (or white space) that ends at p[i] (going back to 0)."""
    cdef Py_ssize_t k = 0
    while i - k >= 0 and (_is_digit(p[i - k]) if digits else _is_ws(p[i - k])):
        k += 1
    return k


cdef int _scan(const unsigned char* p, Py_ssize_t n, Py_ssize_t lo, Py_ssize_t hi,
               _Hits* objs, _Hits* trailers) noexcept nogil:
    cdef Py_ssize_t q, i, k, w, start, gen_start
    cdef long long num, gen
    # "N G obj": from each "obj" look back over white space, digits, white space, digits
    q = lo
    while q + 3 <= n:
        if not (p[q] == b'o' and p[q + 1] == b'b' and p[q + 2] == b'j'):
            q += 1
            continue
        if q + 3 < n and _is_regular(p[q + 3]):
            q += 3
            continue
        i = q - 1
        w = _run_back(p, i, False)
        if w < 1 or w > 32:
            q += 3
            continue
        i -= w
        k = _run_back(p, i, True)
        if k < 1 or k > 5:
            q += 3
            continue
        gen_start = i - k + 1
        i -= k
        w = _run_back(p, i, False)
        if w < 1 or w > 32:
            q += 3
            continue
        i -= w
        k = _run_back(p, i, True)
        if k < 1 or k > 10:
            q += 3
            continue
        start = i - k + 1
        if start >= hi:
            break
        if start >= lo:
            num = 0
            for i in range(start, start + k):
                num = num * 10 + (p[i] - 48)
            gen = 0
            i = gen_start
            while _is_digit(p[i]):
                gen = gen * 10 + (p[i] - 48)
                i += 1
            if _push(objs, num) or _push(objs, gen) or _push(objs, start):
                return -1
        q += 3
    # "trailer" [white space]{0,32} "<<"
    q = lo
    while q + 7 <= n and q < hi:
        if p[q] != b't' or memcmp(p + q, b"trailer", 7) != 0:
            q += 1
            continue
        i = q + 7
        while i < n and i - (q + 7) < 33 and _is_ws(p[i]):
            i += 1
        if i - (q + 7) <= 32 and i + 2 <= n and p[i] == b'<' and p[i + 1] == b'<':
            if _push(trailers, q):
                return -1
            q = i + 2
        else:
            q += 7
    return 0


def _c_scan_chunk(bytes data, Py_ssize_t lo, Py_ssize_t hi):
    cdef const unsigned char* p = data
    cdef Py_ssize_t n = len(data), j
    cdef _Hits objs
    cdef _Hits trailers
    cdef int rc
    objs.v = NULL
    objs.n = objs.cap = 0
    trailers.v = NULL
    trailers.n = trailers.cap = 0
    try:
        with nogil:
            rc = _scan(p, n, max(lo, 0), hi, &objs, &trailers)
        if rc:
            raise MemoryError()
        found = [(objs.v[j], objs.v[j + 1], objs.v[j + 2]) for j in range(0, objs.n, 3)]
        starts = [trailers.v[j] for j in range(trailers.n)]
        return found, starts
    finally:
        free(objs.v)
        free(trailers.v)


# -- PNG predictors -------------------------------------------------------------------------

cdef inline int _abs(int x) noexcept nogil:
    return -x if x < 0 else x


cdef void _unpng(const unsigned char* src, unsigned char* dst, Py_ssize_t rows, Py_ssize_t rowlen,
                 Py_ssize_t bpp) noexcept nogil:
    cdef Py_ssize_t r, i, stride = rowlen + 1
    cdef const unsigned char* row
    cdef unsigned char* out
    cdef const unsigned char* prior
    cdef int a, b, c, pr, pa, pb, pc, ftype
    for r in range(rows):
        row = src + r * stride + 1
        ftype = row[-1]
        out = dst + r * rowlen
        prior = dst + (r - 1) * rowlen if r > 0 else NULL
        for i in range(rowlen):
            a = out[i - bpp] if i >= bpp else 0
            b = prior[i] if prior != NULL else 0
            c = prior[i - bpp] if (prior != NULL and i >= bpp) else 0
            if ftype == 1:
                out[i] = <unsigned char>(row[i] + a)
            elif ftype == 2:
                out[i] = <unsigned char>(row[i] + b)
            elif ftype == 3:
                out[i] = <unsigned char>(row[i] + ((a + b) >> 1))
            elif ftype == 4:
                pr = a + b - c
                pa = _abs(pr - a)
                pb = _abs(pr - b)
                pc = _abs(pr - c)
                if pa <= pb and pa <= pc:
                    out[i] = <unsigned char>(row[i] + a)
                elif pb <= pc:
                    out[i] = <unsigned char>(row[i] + b)
                else:
                    out[i] = <unsigned char>(row[i] + c)
            else:
                out[i] = row[i]


def _c_png_unpredict(bytes data, int colors, int bpc, int columns):
    cdef Py_ssize_t bpp = max(1, (colors * bpc + 7) // 8)
    cdef Py_ssize_t rowlen = (<Py_ssize_t>colors * bpc * columns + 7) // 8
    cdef Py_ssize_t rows
    cdef const unsigned char* src = data
    cdef bytearray out
    cdef unsigned char* dst
    if rowlen <= 0:
        return b""
    rows = len(data) // (rowlen + 1)
    out = bytearray(rows * rowlen)
    if rows:
        dst = out
        with nogil:
            _unpng(src, dst, rows, rowlen, bpp)
    return bytes(out)


# -- RC4 ------------------------------------------------------------------------------------

cdef void _rc4_run(const unsigned char* key, Py_ssize_t klen, const unsigned char* src,
                   unsigned char* dst, Py_ssize_t n) noexcept nogil:
    cdef unsigned char s[256]
    cdef unsigned char t
    cdef int i, j = 0
    cdef Py_ssize_t k
    for i in range(256):
        s[i] = <unsigned char>i
    for i in range(256):
        j = (j + s[i] + key[i % klen]) & 0xFF
        t = s[i]
        s[i] = s[j]
        s[j] = t
    i = j = 0
    for k in range(n):
        i = (i + 1) & 0xFF
        j = (j + s[i]) & 0xFF
        t = s[i]
        s[i] = s[j]
        s[j] = t
        dst[k] = src[k] ^ s[(s[i] + s[j]) & 0xFF]


def _c_rc4(bytes key, data):
    cdef bytes src = bytes(data)
    cdef Py_ssize_t klen = len(key), n = len(src)
    cdef bytearray out = bytearray(n)
    cdef const unsigned char* k = key
    cdef const unsigned char* s = src
    cdef unsigned char* d
    if klen == 0:
        raise ZeroDivisionError("integer modulo by zero")  # what the pure twin raises
    if n:
        d = out
        with nogil:
            _rc4_run(k, klen, s, d, n)
    return bytes(out)


_scan_chunk = _c_scan_chunk
_png_unpredict = _c_png_unpredict
_rc4 = _c_rc4
