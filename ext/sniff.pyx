# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""Compiled twin of spoolproxy.pdl.sniff: which page description language a
document is in, from its first bytes. The pure module is the specification (the
rules are in its docstring); this one must answer and raise exactly as it does.
The scan runs without the GIL."""
from cpython.buffer cimport PyBUF_SIMPLE, PyBuffer_Release, PyObject_GetBuffer
from libc.stdint cimport uint64_t
from libc.string cimport memchr, memcmp, memcpy

__all__ = ["WINDOW", "PDF_HEADER_WINDOW", "detect"]

cdef enum:
    _WINDOW = 4096
    _PDF_HEADER_WINDOW = 1024

WINDOW = _WINDOW
PDF_HEADER_WINDOW = _PDF_HEADER_WINDOW

cdef enum:
    K_UNKNOWN = -1   # PJL: no ENTER with a language we know; classify the body
    K_OCTET = 0
    K_PDF
    K_POSTSCRIPT
    K_PCL
    K_PCLXL
    K_PWG_RASTER
    K_URF
    K_JPEG
    K_PNG
    K_TEXT
    K_NOT_ENTER      # a PJL line that is not an ENTER command

cdef tuple _NAMES = (
    "application/octet-stream",
    "application/pdf",
    "application/postscript",
    "application/vnd.hp-pcl",
    "application/vnd.hp-pclxl",
    "image/pwg-raster",
    "image/urf",
    "image/jpeg",
    "image/png",
    "text/plain",
)


cdef inline unsigned char _upper(unsigned char c) noexcept nogil:
    return c - 32 if 97 <= c <= 122 else c


cdef inline bint _blank(unsigned char c) noexcept nogil:
    return c == b' ' or c == b'\t'


cdef inline bint _space(unsigned char c) noexcept nogil:
    return c == b' ' or c == b'\t' or c == b'\r' or c == b'\n'


cdef inline bint _starts(const unsigned char* p, Py_ssize_t n,
                         const char* lit, Py_ssize_t k) noexcept nogil:
    return n >= k and memcmp(p, lit, k) == 0


cdef bint _starts_ci(const unsigned char* p, Py_ssize_t n,
                     const char* upper_lit, Py_ssize_t k) noexcept nogil:
    cdef Py_ssize_t i
    if n < k:
        return False
    for i in range(k):
        if _upper(p[i]) != <unsigned char>upper_lit[i]:
            return False
    return True


cdef int _enter(const unsigned char* p, Py_ssize_t i, Py_ssize_t end) noexcept nogil:
    """The line p[i:end] follows "@PJL": [ \\t]+ENTER[ \\t]+LANGUAGE[ \\t]*=[ \\t]*VALUE."""
    cdef Py_ssize_t j = i, k
    while j < end and _blank(p[j]):
        j += 1
    if j == i or not _starts_ci(p + j, end - j, b"ENTER", 5):
        return K_NOT_ENTER
    j += 5
    i = j
    while j < end and _blank(p[j]):
        j += 1
    if j == i or not _starts_ci(p + j, end - j, b"LANGUAGE", 8):
        return K_NOT_ENTER
    j += 8
    while j < end and _blank(p[j]):
        j += 1
    if j >= end or p[j] != b'=':
        return K_NOT_ENTER
    j += 1
    while j < end and _blank(p[j]):
        j += 1
    k = j
    while k < end and not _space(p[k]):
        k += 1
    if k - j == 3 and _starts_ci(p + j, 3, b"PDF", 3):
        return K_PDF
    if k - j == 10 and _starts_ci(p + j, 10, b"POSTSCRIPT", 10):
        return K_POSTSCRIPT
    if k - j == 3 and _starts_ci(p + j, 3, b"PCL", 3):
        return K_PCL
    if k - j == 5 and _starts_ci(p + j, 5, b"PCLXL", 5):
        return K_PCLXL
    return K_UNKNOWN


cdef int _skip_pjl(const unsigned char* p, Py_ssize_t n, Py_ssize_t* body) noexcept nogil:
    """Kind named by an ENTER command, or K_UNKNOWN; *body = where the body starts."""
    cdef Py_ssize_t pos = 0, end
    cdef const unsigned char* eol
    cdef int kind
    body[0] = 0
    if not (_starts(p, n, b"\x1b%-12345X", 9) or _starts_ci(p, n, b"@PJL", 4)):
        return K_UNKNOWN
    while pos < n:
        if _space(p[pos]):
            pos += 1
        elif _starts(p + pos, n - pos, b"\x1b%-12345X", 9):
            pos += 9
        elif _starts_ci(p + pos, n - pos, b"@PJL", 4):
            eol = <const unsigned char*>memchr(p + pos, b'\n', n - pos)
            end = n if eol == NULL else eol - p
            kind = _enter(p, pos + 4, end)
            pos = n if eol == NULL else end + 1
            if kind != K_NOT_ENTER:
                body[0] = pos
                return kind
        else:
            break
    body[0] = pos
    return K_UNKNOWN


cdef Py_ssize_t _partial_tail(const unsigned char* p, Py_ssize_t n) noexcept nogil:
    cdef Py_ssize_t k, need
    cdef unsigned char c
    for k in range(1, (3 if n > 3 else n) + 1):
        c = p[n - k]
        if 0x80 <= c < 0xC0:
            continue
        if c >= 0xC0:
            need = 2 if c < 0xE0 else (3 if c < 0xF0 else 4)
            if need > k:
                return k
        return 0
    return 0


cdef inline bint _plain_ascii8(const unsigned char* p) noexcept nogil:
    """All 8 bytes at p are in 0x20..0x7E (SWAR: no byte >= 0x80, < 0x20 or == 0x7F)."""
    cdef uint64_t x
    memcpy(&x, p, 8)
    return ((x | (x - 0x2020202020202020ULL) | ((x ^ 0x7F7F7F7F7F7F7F7FULL) - 0x0101010101010101ULL))
            & 0x8080808080808080ULL) == 0


cdef bint _is_text(const unsigned char* p, Py_ssize_t n, bint truncated) noexcept nogil:
    """Strict UTF-8 (Unicode table 3-7) without control characters but tab, LF, FF, CR."""
    cdef Py_ssize_t i = 0, more
    cdef unsigned char c, lo, hi
    if truncated:
        n -= _partial_tail(p, n)
    while i < n:
        if i + 8 <= n and _plain_ascii8(p + i):
            i += 8
            continue
        c = p[i]
        if c < 0x80:
            if (c < 0x20 and c != 0x09 and c != 0x0A and c != 0x0C and c != 0x0D) or c == 0x7F:
                return False
            i += 1
            continue
        lo = 0x80
        hi = 0xBF
        if 0xC2 <= c <= 0xDF:
            more = 1
        elif 0xE0 <= c <= 0xEF:
            more = 2
            if c == 0xE0:
                lo = 0xA0
            elif c == 0xED:
                hi = 0x9F
        elif 0xF0 <= c <= 0xF4:
            more = 3
            if c == 0xF0:
                lo = 0x90
            elif c == 0xF4:
                hi = 0x8F
        else:
            return False
        if i + more >= n:  # i + more is the index of the last byte of the sequence
            return False
        if not (lo <= p[i + 1] <= hi):
            return False
        if more >= 2 and not (0x80 <= p[i + 2] <= 0xBF):
            return False
        if more == 3 and not (0x80 <= p[i + 3] <= 0xBF):
            return False
        i += more + 1
    return True


cdef int _classify(const unsigned char* p, Py_ssize_t n, bint truncated) noexcept nogil:
    cdef Py_ssize_t i, limit
    cdef const unsigned char* hit
    if n == 0:
        return K_OCTET
    if _starts(p, n, b"%PDF-", 5):
        return K_PDF
    if _starts(p, n, b"%!", 2):
        return K_POSTSCRIPT
    if (p[0] == b"'" or p[0] == b'(' or p[0] == b')') and _starts(p + 1, n - 1, b" HP-PCL XL;", 11):
        return K_PCLXL
    if p[0] == 0x1B and n >= 2 and (p[1] == b'E' or p[1] == b'&' or p[1] == b'*'):
        return K_PCL
    if _starts(p, n, b"RaS2", 4):
        return K_PWG_RASTER
    if _starts(p, n, b"UNIRAST\0", 8):
        return K_URF
    if _starts(p, n, b"\xff\xd8\xff", 3):
        return K_JPEG
    if _starts(p, n, b"\x89PNG\r\n\x1a\n", 8):
        return K_PNG
    # "%PDF-" starting within the first PDF_HEADER_WINDOW bytes
    limit = n if n < _PDF_HEADER_WINDOW + 4 else _PDF_HEADER_WINDOW + 4
    i = 0
    while i + 5 <= limit:
        hit = <const unsigned char*>memchr(p + i, b'%', limit - 4 - i)
        if hit == NULL:
            break
        i = hit - p
        if memcmp(hit, b"%PDF-", 5) == 0:
            return K_PDF
        i += 1
    if _is_text(p, n, truncated):
        return K_TEXT
    return K_OCTET


cdef int _detect(const unsigned char* p, Py_ssize_t n, bint truncated) noexcept nogil:
    cdef Py_ssize_t body = 0
    cdef int kind = _skip_pjl(p, n, &body)
    if kind != K_UNKNOWN:
        return kind
    return _classify(p + body, n - body, truncated)


def detect(data) -> str:
    """MIME type of the document whose first bytes are ``data`` (any contiguous
    bytes-like object). Only the first WINDOW bytes are read."""
    cdef Py_buffer view
    cdef int kind
    cdef Py_ssize_t n
    if type(data) is not bytes:
        data = memoryview(data)
        if not data.c_contiguous:
            raise BufferError("detect() needs a contiguous buffer")
    PyObject_GetBuffer(data, &view, PyBUF_SIMPLE)
    try:
        n = view.len
        with nogil:
            kind = _detect(<const unsigned char*>view.buf,
                           n if n < _WINDOW else _WINDOW, n > _WINDOW)
    finally:
        PyBuffer_Release(&view)
    return _NAMES[kind]
