# cython: language_level=3, cdivision=True
# (no boundscheck/wraparound directives: the included pure code indexes lists with -1)
"""Compiled twin of spoolproxy.pdl.pdfcolor: the colour of a PDF page from its content.

The pure module is included as it is (it is the specification, and the object-level
work — resources, colour spaces, functions, forms — is the same code here); the two
byte-level kernels it calls through module-level names are then replaced by typed C
versions: ``parse_ops`` lexes the content stream into a token buffer without the GIL
and builds the operands with it, ``image_has_color`` checks every pixel without the
GIL. Both must return exactly what the pure kernels return.
"""
from cpython.bytes cimport PyBytes_FromStringAndSize
from libc.math cimport fabs
from libc.stdlib cimport free, malloc, strtod

include "../spoolproxy/pdl/pdfcolor.py"


# -- the tokenizer --------------------------------------------------------------------------------

cdef enum:
    T_INT = 1      # ival
    T_REAL         # dval
    T_NAME         # start..end: the name's characters after '/'
    T_LIT          # start: after '(', end: after ')' (or n)
    T_HEX          # start: after '<', end: after '>' (or n)
    T_AOPEN
    T_DOPEN
    T_CLOSE        # ']' '>' or '>>'
    T_WORD         # start..end: a keyword or operator
    T_FLOATTEXT    # a number too long for the C buffer: float() of start..end

cdef enum:
    C_TEST_RGB = 0     # = TEST_RGB ... of the pure module
    C_TEST_CMYK = 1
    C_TEST_LAB = 2
    C_TEST_TABLE = 3

cdef enum:
    TOKBUF = 8192
    NUMBUF = 64

cdef struct Tok:
    int kind
    Py_ssize_t begin   # where the token's text begins
    Py_ssize_t start
    Py_ssize_t end
    long long ival
    double dval


cdef inline bint _ws(unsigned char c) noexcept nogil:
    return c == 0 or c == 9 or c == 10 or c == 12 or c == 13 or c == 32


cdef inline bint _special(unsigned char c) noexcept nogil:
    return (_ws(c) or c == b'(' or c == b')' or c == b'<' or c == b'>' or c == b'[' or c == b']'
            or c == b'{' or c == b'}' or c == b'/' or c == b'%')


cdef inline int _hexv(unsigned char c) noexcept nogil:
    if 48 <= c <= 57:
        return c - 48
    if 97 <= c <= 102:
        return c - 87
    if 65 <= c <= 70:
        return c - 55
    return -1


cdef inline bint _digit(unsigned char c) noexcept nogil:
    return 48 <= c <= 57


cdef int _classify(const unsigned char* p, Py_ssize_t a, Py_ssize_t b, Tok* t) noexcept nogil:
    """Number or word, as pdfcolor._number decides."""
    cdef Py_ssize_t i = a, dot = -1, k
    cdef long long v = 0
    cdef char buf[NUMBUF]
    cdef bint neg = False
    cdef Py_ssize_t whole = 0, frac = 0
    if p[i] == b'+' or p[i] == b'-':
        neg = p[i] == b'-'
        i += 1
    if i >= b:
        return T_WORD
    for k in range(i, b):
        if p[k] == b'.':
            if dot >= 0:
                return T_WORD
            dot = k
        elif not _digit(p[k]):
            return T_WORD
    if dot < 0:
        if b - i > 18:
            return T_FLOATTEXT if b - a >= NUMBUF else _real(p, a, b, t, buf)
        for k in range(i, b):
            v = v * 10 + (p[k] - 48)
        t.ival = -v if neg else v
        return T_INT
    whole = dot - i
    frac = b - dot - 1
    if whole == 0 and frac == 0:
        return T_WORD
    if b - a >= NUMBUF:
        return T_FLOATTEXT
    return _real(p, a, b, t, buf)


cdef int _real(const unsigned char* p, Py_ssize_t a, Py_ssize_t b, Tok* t, char* buf) noexcept nogil:
    cdef Py_ssize_t k
    for k in range(b - a):
        buf[k] = <char>p[a + k]
    buf[b - a] = 0
    t.dval = strtod(buf, NULL)
    return T_REAL


cdef Py_ssize_t _skip_literal(const unsigned char* p, Py_ssize_t pos, Py_ssize_t n) noexcept nogil:
    """The position after the ')' closing a literal string that starts at ``pos``."""
    cdef int depth = 1
    cdef unsigned char c
    while pos < n:
        c = p[pos]
        pos += 1
        if c == 92:
            pos += 1  # whatever follows a backslash is not a bracket
        elif c == 40:
            depth += 1
        elif c == 41:
            depth -= 1
            if depth == 0:
                return pos
    return n


cdef Py_ssize_t _lex(const unsigned char* p, Py_ssize_t pos, Py_ssize_t n, Tok* toks,
                     Py_ssize_t cap, Py_ssize_t* count) noexcept nogil:
    """Lex tokens from ``pos`` into ``toks`` until ``cap`` tokens, the end, or the word
    ``ID`` (inline image data follows it). Returns the position after the last token."""
    cdef Py_ssize_t m = 0, end
    cdef unsigned char c
    cdef Tok* t
    while pos < n and m < cap:
        c = p[pos]
        if _ws(c):
            pos += 1
            continue
        if c == b'%':
            while pos < n and p[pos] != 13 and p[pos] != 10:
                pos += 1
            continue
        t = &toks[m]
        t.begin = pos
        t.start = pos + 1
        if c == b'/':
            end = pos + 1
            while end < n and not _special(p[end]):
                end += 1
            t.kind = T_NAME
            t.end = end
            pos = end
        elif c == b'(':
            t.kind = T_LIT
            pos = _skip_literal(p, pos + 1, n)
            t.end = pos
        elif c == b'<':
            if pos + 1 < n and p[pos + 1] == b'<':
                t.kind = T_DOPEN
                pos += 2
            else:
                t.kind = T_HEX
                end = pos + 1
                while end < n and p[end] != b'>':
                    end += 1
                pos = end + 1 if end < n else n
                t.end = pos
        elif c == b'[':
            t.kind = T_AOPEN
            pos += 1
        elif c == b']' or c == b'>':
            t.kind = T_CLOSE
            pos += 2 if (c == b'>' and pos + 1 < n and p[pos + 1] == b'>') else 1
        elif c == b'{' or c == b'}' or c == b')':
            pos += 1
            continue
        else:
            end = pos + 1
            while end < n and not _special(p[end]):
                end += 1
            t.start = pos
            t.end = end
            t.kind = _classify(p, pos, end, t)
            pos = end
            if t.kind == T_WORD and end - t.start == 2 and p[t.start] == b'I' and p[t.start + 1] == b'D':
                m += 1
                toks[m - 1].end = end
                count[0] = m
                return pos
        t.end = pos
        m += 1
    count[0] = m
    return pos


cdef bytes _literal_value(const unsigned char* p, Py_ssize_t pos, Py_ssize_t n):
    """The bytes of a literal string whose text starts at ``pos`` (after '(') and
    ends before ``n`` (the lexer's end of the token: after its ')', or the end)."""
    cdef Py_ssize_t cap = n - pos, k = 0
    cdef unsigned char* out
    cdef int depth = 1, v, j
    cdef unsigned char c
    if cap <= 0:
        return b""
    out = <unsigned char*>malloc(cap)
    if out == NULL:
        raise MemoryError()
    try:
        while pos < n:
            c = p[pos]
            pos += 1
            if c == 92:
                if pos >= n:
                    break
                c = p[pos]
                pos += 1
                if c == 110:
                    out[k] = 10; k += 1
                elif c == 114:
                    out[k] = 13; k += 1
                elif c == 116:
                    out[k] = 9; k += 1
                elif c == 98:
                    out[k] = 8; k += 1
                elif c == 102:
                    out[k] = 12; k += 1
                elif 48 <= c <= 55:
                    v = c - 48
                    for j in range(2):
                        if pos < n and 48 <= p[pos] <= 55:
                            v = v * 8 + p[pos] - 48
                            pos += 1
                        else:
                            break
                    out[k] = <unsigned char>(v & 255); k += 1
                elif c == 13:
                    if pos < n and p[pos] == 10:
                        pos += 1
                elif c != 10:
                    out[k] = c; k += 1
            elif c == 40:
                depth += 1
                out[k] = c; k += 1
            elif c == 41:
                depth -= 1
                if depth == 0:
                    break
                out[k] = c; k += 1
            else:
                out[k] = c; k += 1
        return PyBytes_FromStringAndSize(<char*>out, k)
    finally:
        free(out)


cdef bytes _hex_value(const unsigned char* p, Py_ssize_t pos, Py_ssize_t end):
    """The bytes of a hex string from ``pos`` (after '<') to ``end`` (after '>')."""
    cdef Py_ssize_t cap = (end - pos) // 2 + 1, k = 0
    cdef unsigned char* out
    cdef int hi = -1, v
    cdef unsigned char c
    out = <unsigned char*>malloc(cap if cap > 0 else 1)
    if out == NULL:
        raise MemoryError()
    try:
        while pos < end:
            c = p[pos]
            pos += 1
            if c == b'>':
                break
            v = _hexv(c)
            if v < 0:
                continue
            if hi < 0:
                hi = v
            else:
                out[k] = <unsigned char>(hi * 16 + v); k += 1
                hi = -1
        if hi >= 0:
            out[k] = <unsigned char>(hi * 16); k += 1
        return PyBytes_FromStringAndSize(<char*>out, k)
    finally:
        free(out)


cdef str _name_value(const unsigned char* p, Py_ssize_t a, Py_ssize_t b):
    cdef Py_ssize_t i = a, k = 0
    cdef unsigned char* out
    cdef bint escaped = False
    for i in range(a, b):
        if p[i] == 35:
            escaped = True
            break
    if not escaped:
        return (<char*>p)[a:b].decode("latin-1")
    out = <unsigned char*>malloc(b - a + 1)
    if out == NULL:
        raise MemoryError()
    try:
        i = a
        while i < b:
            if p[i] == 35 and i + 2 < b + 0 and _hexv(p[i + 1]) >= 0 and _hexv(p[i + 2]) >= 0:
                out[k] = <unsigned char>(_hexv(p[i + 1]) * 16 + _hexv(p[i + 2])); k += 1
                i += 3
            else:
                out[k] = p[i]; k += 1
                i += 1
        return (<char*>out)[:k].decode("latin-1")
    finally:
        free(out)


cdef inline bint _is_keyword(const unsigned char* p, Tok* t) noexcept nogil:
    """true, false or null: a value, not an operator."""
    cdef Py_ssize_t k = t.end - t.start
    cdef const unsigned char* w = p + t.start
    if k == 4:
        return (w[0] == b't' and w[1] == b'r' and w[2] == b'u' and w[3] == b'e') or \
               (w[0] == b'n' and w[1] == b'u' and w[2] == b'l' and w[3] == b'l')
    return k == 5 and w[0] == b'f' and w[1] == b'a' and w[2] == b'l' and w[3] == b's' and w[4] == b'e'


cdef void _build(bytes buf, const unsigned char* p, Py_ssize_t n, Tok* toks, Py_ssize_t a, Py_ssize_t b,
                 list stack, list operands) except *:
    """Append the values of the operand tokens a..b to the open containers / operands."""
    cdef Py_ssize_t i
    cdef Tok* t
    cdef object value
    for i in range(a, b):
        t = &toks[i]
        if t.kind == T_INT:
            value = t.ival
        elif t.kind == T_REAL:
            value = t.dval
        elif t.kind == T_FLOATTEXT:
            value = float(buf[t.start:t.end])
        elif t.kind == T_NAME:
            value = _name_value(p, t.start, t.end)
        elif t.kind == T_LIT:
            value = _literal_value(p, t.start, t.end)
        elif t.kind == T_HEX:
            value = _hex_value(p, t.start, t.end)
        elif t.kind == T_AOPEN or t.kind == T_DOPEN:
            if len(stack) < MAX_NESTING:
                stack.append([t.kind == T_DOPEN, []])
            continue
        elif t.kind == T_CLOSE:
            if not stack:
                continue
            entry = stack.pop()
            value = _container(entry[0], entry[1])
        else:
            value = _KEYWORDS[buf[t.start:t.end].decode("latin-1")]
        (stack[-1][1] if stack else operands).append(value)


def parse_ops(data, pos=0, max_ops=OPS_BATCH, wanted=None):
    """Compiled twin of pdfcolor.parse_ops (see there). Operand tokens are kept as
    spans until their operator comes, and turned into objects only for the wanted
    operators."""
    if not isinstance(data, (bytes, bytearray)):
        raise TypeError("data must be bytes")
    cdef bytes buf = bytes(data)
    cdef const unsigned char* p = buf
    cdef Py_ssize_t n = len(buf)
    cdef Py_ssize_t cur = max(0, int(pos)), after = 0, next_pos, count = 0, i, first
    cdef Py_ssize_t limit = max_ops
    cdef Tok* toks = <Tok*>malloc(TOKBUF * sizeof(Tok))
    cdef Tok* t
    cdef list ops = []
    cdef list operands = []
    cdef list stack = []
    cdef str word
    cdef bint stop = False, keep
    if toks == NULL:
        raise MemoryError()
    try:
        while cur < n and len(ops) < limit:
            with nogil:
                after = _lex(p, cur, n, toks, TOKBUF, &count)
            next_pos = after
            first = 0
            for i in range(count):
                t = &toks[i]
                if t.kind != T_WORD or _is_keyword(p, t):
                    continue
                word = buf[t.start:t.end].decode("latin-1")
                keep = word != "BI" and (wanted is None or word in wanted)
                if keep and wanted is not None and type(wanted) is dict and not wanted[word]:
                    ops.append((word, []))  # operands not needed: never built
                elif keep or word == "ID":
                    _build(buf, p, n, toks, first, i, stack, operands)
                    while stack:  # an operator closes whatever is open
                        entry = stack.pop()
                        v = _container(entry[0], entry[1])
                        (stack[-1][1] if stack else operands).append(v)
                    if word == "ID":  # always the last token of a batch
                        d, samples, next_pos = _inline_image(buf, t.end, n, operands)
                        keep = wanted is None or "BI" in wanted
                        if keep:
                            ops.append(("BI", [d, samples]))
                    else:
                        ops.append((word, operands))
                operands = []
                stack = []
                first = i + 1
                if keep and len(ops) >= limit:
                    if word != "ID":
                        next_pos = t.end
                    stop = True
                    break
            if stop or count == 0:
                cur = next_pos
                break
            if first < count and after < n:
                if first > 0:
                    next_pos = toks[first].begin  # lex the unfinished operands again, whole
                else:  # a batch of nothing but operands: keep their values
                    _build(buf, p, n, toks, 0, count, stack, operands)
            cur = next_pos
        return ops, cur
    finally:
        free(toks)


# -- the pixel check -------------------------------------------------------------------------------

cdef inline unsigned int _sample(const unsigned char* row, Py_ssize_t i, int bpc) noexcept nogil:
    cdef Py_ssize_t bit
    if bpc == 8:
        return row[i]
    if bpc == 16:
        return (<unsigned int>row[2 * i] << 8) | row[2 * i + 1]
    bit = i * bpc
    return (row[bit >> 3] >> (8 - bpc - (bit & 7))) & ((1 << bpc) - 1)


cdef bint _table_scan(const unsigned char* p, Py_ssize_t rows, Py_ssize_t rowbytes, Py_ssize_t count,
                      int bpc, const unsigned char* table) noexcept nogil:
    cdef Py_ssize_t r, i
    cdef const unsigned char* row
    for r in range(rows):
        row = p + r * rowbytes
        for i in range(count):
            if table[_sample(row, i, bpc)]:
                return True
    return False


cdef bint _decode_scan(const unsigned char* p, Py_ssize_t rows, Py_ssize_t rowbytes, Py_ssize_t width,
                       int ncomp, int bpc, int test, const double* lo, const double* span,
                       double tol) noexcept nogil:
    cdef Py_ssize_t r, x, base
    cdef const unsigned char* row
    cdef double a, b, c
    for r in range(rows):
        row = p + r * rowbytes
        for x in range(width):
            base = x * ncomp
            a = lo[0] + _sample(row, base, bpc) * span[0]
            b = lo[1] + _sample(row, base + 1, bpc) * span[1]
            c = lo[2] + _sample(row, base + 2, bpc) * span[2]
            if test == C_TEST_RGB:
                if fabs(a - b) > tol or fabs(b - c) > tol or fabs(a - c) > tol:
                    return True
            elif test == C_TEST_CMYK:
                if a > tol or b > tol or c > tol:
                    return True
            elif fabs(b) > tol or fabs(c) > tol:
                return True
    return False


def image_has_color(data, width, height, ncomp, bpc, test, params):
    """Compiled twin of pdfcolor.image_has_color (see there)."""
    if not isinstance(data, (bytes, bytearray)):
        raise TypeError("data must be bytes")
    if bpc not in (1, 2, 4, 8, 16) or width <= 0 or height <= 0 or ncomp <= 0:
        return False
    cdef bytes buf = bytes(data)
    cdef const unsigned char* p = buf
    cdef Py_ssize_t rowbytes = (width * ncomp * bpc + 7) // 8
    cdef Py_ssize_t rows = min(height, len(buf) // rowbytes)
    cdef Py_ssize_t w = width
    cdef int nc = ncomp, bits = bpc, mode = test
    cdef long long maxval = (1 << bpc) - 1
    cdef bytes table
    cdef const unsigned char* tp
    cdef double lo[3]
    cdef double span[3]
    cdef double tol
    cdef bint found
    cdef int i
    if mode == TEST_TABLE:
        table = bytes(params)
        if ncomp != 1 or len(table) < maxval + 1:
            raise ValueError("table test: one component and 2**bpc entries")
        tp = table
        with nogil:
            found = _table_scan(p, rows, rowbytes, w, bits, tp)
        return found
    decode, tol_obj = params
    if len(decode) < 2 * ncomp or ncomp < (4 if test == TEST_CMYK else 3):
        raise ValueError("decode array too short for the test")
    tol = tol_obj
    for i in range(3):
        lo[i] = float(decode[2 * i])
        span[i] = (float(decode[2 * i + 1]) - float(decode[2 * i])) / maxval
    with nogil:
        found = _decode_scan(p, rows, rowbytes, w, nc, bits, mode, lo, span, tol)
    return found
