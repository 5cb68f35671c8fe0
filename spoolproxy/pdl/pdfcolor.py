"""Does a PDF page put colour on paper? A scan of its content, without rendering.

This is the specification: ``ext/pdfcolor.pyx`` (``spoolproxy._ext.pdfcolor``) is its
compiled twin. The compiled module is this very source compiled by Cython
(``include``d), with the two byte-level kernels — ``parse_ops`` (the content-stream
tokenizer) and ``image_has_color`` (the pixel check) — replaced by typed C versions
that release the GIL over the byte buffers. So this file must stay valid Cython (no
``from __future__`` import) and the kernels stay module-level functions called
through their module-level names.

``page_color(doc, page)`` -> True (the page would put colour on paper), False (only
black, gray and white), None (the scan cannot tell; the caller asks Ghostscript's
inkcov). ``doc`` is a ``spoolproxy.pdl.pdf.Document`` (only ``resolve`` is used),
``page`` a ``Page`` (a dict with inherited Resources), or anything with a ``.dict``.

What counts:
* the page's content streams (an array of streams is one stream), and what they paint
  through Form XObjects, tiling patterns, Type 3 glyph procedures and the appearance
  streams of printable annotations (/F print flag set, hidden flag clear) — with a
  cycle guard and a depth limit (deeper: undecided);
* paint operators only: fill and stroke, text (not in render modes 3 and 7), ``sh``,
  images (``Do`` and inline ``BI``/``ID``/``EI``); a colour that is set and never
  used to paint does not count;
* the graphics state: q/Q stack, fill and stroke colour space and colour, text
  render mode, font.

A colour is neutral when, within TOLERANCE, its RGB components are equal, its CMYK
C, M and Y are 0, its Lab a* and b* are 0 (within LAB_TOLERANCE); gray spaces are
always neutral. ICCBased counts as gray, RGB or CMYK by /N (else /Alternate).
Indexed: by the palette entries (the one set, or for images the ones the samples can
reach). Separation/DeviceN: colorants Black and None are neutral, process colorants
Cyan/Magenta/Yellow are judged directly, anything else through the tint transform
when it is a sampled (type 0), exponential (type 2) or stitching (type 3) function of
those; other functions: undecided. Images: DeviceGray/CalGray/1-component ICC are gray,
image masks paint the fill colour, other images are decoded (Flate, LZW, RunLength,
ASCII filters, none) and every pixel checked; DCT/JPX/JBIG2/CCITT colour images are
undecided. Shadings: the function's samples, or its two ends for an exponential
function (exact: interpolation keeps a neutral colour neutral); mesh shadings
without function in a non-gray space are undecided.
"""
import math

from spoolproxy.pdl.model import PdlError

__all__ = ["page_color", "parse_ops", "image_has_color", "TOLERANCE", "LAB_TOLERANCE", "OPS_BATCH",
           "TEST_RGB", "TEST_CMYK", "TEST_LAB", "TEST_TABLE",
           "MAX_DEPTH", "MAX_NESTING", "MAX_IMAGE_BYTES", "MAX_CONTENT_BYTES"]

TOLERANCE = 1.0 / 255.0 + 1e-9   # colour components in 0..1: one 8-bit step is still equal
LAB_TOLERANCE = 1.0              # a*, b* in their own units (about -100..100)
MAX_DEPTH = 24                   # forms / patterns / glyphs inside each other
MAX_NESTING = 32                 # arrays and dictionaries inside each other in content
MAX_CONTENT_BYTES = 1 << 27      # decoded content of one stream
MAX_IMAGE_BYTES = 1 << 27        # decoded samples of one image
MAX_FUNCTION_SAMPLES = 1 << 20   # sample values of a type 0 function we look through
MAX_VISITS = 10000               # streams scanned for one page (forms used many times...)
MAX_OPS = 1 << 24                # operations interpreted for one page
MAX_STACK = 256                  # q without Q beyond this is not saved (Q then pops less)
OPS_BATCH = 4096                 # operations per parse_ops call

# -- the content-stream tokenizer (kernel) -----------------------------------------------------

_WS = b"\x00\t\n\x0c\r "
_DELIMS = b"()<>[]{}/%"
_SPECIAL = _WS + _DELIMS
_ESC = {110: 10, 114: 13, 116: 9, 98: 8, 102: 12}  # \n \r \t \b \f
_HEXVAL = {ord(ch): int(ch, 16) for ch in "0123456789abcdefABCDEF"}
_KEYWORDS = {"true": True, "false": False, "null": None}
_INLINE_COMPONENTS = {"G": 1, "DeviceGray": 1, "RGB": 3, "DeviceRGB": 3, "CMYK": 4, "DeviceCMYK": 4,
                      "I": 1, "Indexed": 1, "CalGray": 1}


def _number(tok):
    """int or float for a number token (bytes), else None. Integers: up to 18 digits."""
    body = tok[1:] if tok[:1] in (b"+", b"-") else tok
    if not body:
        return None
    dot = body.find(b".")
    if dot < 0:
        if not body.isdigit():
            return None
        if len(body) > 18:
            return float(tok)
        return int(tok)
    whole, frac = body[:dot], body[dot + 1:]
    if (whole and not whole.isdigit()) or (frac and not frac.isdigit()) or not (whole or frac):
        return None
    return float(tok)


def _literal(data, pos, n):
    """A literal string starting after its '(' at ``pos``: (bytes, position after ')')."""
    out = bytearray()
    depth = 1
    while pos < n:
        c = data[pos]
        pos += 1
        if c == 92:  # backslash
            if pos >= n:
                break
            c = data[pos]
            pos += 1
            if c in _ESC:
                out.append(_ESC[c])
            elif 48 <= c <= 55:
                v = c - 48
                for _ in range(2):
                    if pos < n and 48 <= data[pos] <= 55:
                        v = v * 8 + data[pos] - 48
                        pos += 1
                    else:
                        break
                out.append(v & 255)
            elif c == 13:
                if pos < n and data[pos] == 10:
                    pos += 1
            elif c != 10:
                out.append(c)
        elif c == 40:
            depth += 1
            out.append(c)
        elif c == 41:
            depth -= 1
            if depth == 0:
                return bytes(out), pos
            out.append(c)
        else:
            out.append(c)
    return bytes(out), pos


def _hexstring(data, pos, n):
    """A hex string starting after its '<' at ``pos``: (bytes, position after '>')."""
    out = bytearray()
    hi = -1
    while pos < n:
        c = data[pos]
        pos += 1
        if c == 62:
            break
        v = _HEXVAL.get(c)
        if v is None:
            continue
        if hi < 0:
            hi = v
        else:
            out.append(hi * 16 + v)
            hi = -1
    if hi >= 0:
        out.append(hi * 16)
    return bytes(out), pos


def _name(data, pos, n):
    """A name starting after its '/' at ``pos``: (str, position after it)."""
    end = pos
    while end < n and data[end] not in _SPECIAL:
        end += 1
    raw = data[pos:end]
    if 35 in raw:  # '#xx' escapes
        out = bytearray()
        i = 0
        while i < len(raw):
            c = raw[i]
            if c == 35 and i + 2 < len(raw) + 0 and raw[i + 1] in _HEXVAL and raw[i + 2] in _HEXVAL:
                out.append(_HEXVAL[raw[i + 1]] * 16 + _HEXVAL[raw[i + 2]])
                i += 3
            else:
                out.append(c)
                i += 1
        raw = bytes(out)
    return raw.decode("latin-1"), end


def _inline_length(d, start, data):
    """Where an inline image's data ends, from its dictionary when it says (``/L``,
    ``/Length``, or unfiltered samples of a known size followed by ``EI``), else -1."""
    n = len(data)
    for key in ("L", "Length"):
        v = d.get(key)
        if type(v) is int and 0 <= v <= n - start:
            return start + v
    if d.get("F", d.get("Filter")) not in (None, []):
        return -1
    w, h = d.get("W", d.get("Width")), d.get("H", d.get("Height"))
    bpc = d.get("BPC", d.get("BitsPerComponent"))
    mask = d.get("IM", d.get("ImageMask"))
    cs = d.get("CS", d.get("ColorSpace"))
    if mask is True:
        comps, bpc = 1, 1
    else:
        if type(cs) is list and cs:
            cs = cs[0]
        comps = _INLINE_COMPONENTS.get(cs, 0) if type(cs) is str else 0
    if type(w) is not int or type(h) is not int or type(bpc) is not int or comps == 0:
        return -1
    if not (0 < w <= 1 << 24 and 0 < h <= 1 << 24 and bpc in (1, 2, 4, 8, 16)):
        return -1
    size = (w * comps * bpc + 7) // 8 * h
    if size > n - start:
        return -1
    end = start + size
    p = end
    while p < n and data[p] in _WS:
        p += 1
    if data[p:p + 2] == b"EI" and (p + 2 >= n or data[p + 2] in _SPECIAL):
        return end
    return -1


def _find_ei(data, start):
    """The offset of the whitespace before the ``EI`` that ends inline image data
    (whitespace, EI, then whitespace, a delimiter or the end), or -1."""
    n = len(data)
    pos = start
    while True:
        i = data.find(b"EI", pos)
        if i < 0:
            return -1
        if i > start and data[i - 1] in _WS and (i + 2 >= n or data[i + 2] in _SPECIAL):
            return i - 1
        pos = i + 1


def _inline_image(data, pos, n, pairs):
    """After ``ID`` at ``pos``: the inline image's (dict, samples, position after EI)."""
    d = {}
    for i in range(0, len(pairs) - 1, 2):
        if type(pairs[i]) is str:
            d[pairs[i]] = pairs[i + 1]
    if pos < n and data[pos] in _WS:
        pos += 1  # the one whitespace byte after ID
    end = _inline_length(d, pos, data)
    if end >= 0:
        samples = data[pos:end]
        p = end
        while p < n and data[p] in _WS:
            p += 1
        if data[p:p + 2] == b"EI":
            p += 2
        return d, samples, p
    ws = _find_ei(data, pos)
    if ws < 0:
        return d, data[pos:], n
    return d, data[pos:ws], ws + 3


def parse_ops(data, pos=0, max_ops=OPS_BATCH, wanted=None):
    """Up to ``max_ops`` operations of the content stream ``data`` from ``pos``:
    ``([(operator, operands), ...], next position)``; the position is ``len(data)``
    at the end. Operands: int, float, str (a name, without slash), bytes (a string),
    list, dict (str keys), True/False/None. An inline image is one operation
    ``("BI", [dict, samples])``. Arrays and dictionaries still open when an operator
    comes are closed there; brackets nested deeper than MAX_NESTING are ignored.
    With ``wanted`` (a set of operator names, or a dict: name -> whether its operands
    are needed) the other operations are skipped: not returned and not counted; an
    operation whose operands are not needed comes with an empty list (the compiled
    twin then does not build those operands at all).
    """
    if not isinstance(data, (bytes, bytearray)):
        raise TypeError("data must be bytes")
    n = len(data)
    pos = max(0, int(pos))
    ops = []
    operands = []
    stack = []  # open containers: [is_dict, items]
    while pos < n and len(ops) < max_ops:
        c = data[pos]
        if c in _WS:
            pos += 1
            continue
        value = None
        if c == 37:  # % comment
            while pos < n and data[pos] not in b"\r\n":
                pos += 1
            continue
        if c == 47:  # /name
            value, pos = _name(data, pos + 1, n)
        elif c == 40:
            value, pos = _literal(data, pos + 1, n)
        elif c == 60:
            if pos + 1 < n and data[pos + 1] == 60:
                pos += 2
                if len(stack) < MAX_NESTING:
                    stack.append([True, []])
                continue
            value, pos = _hexstring(data, pos + 1, n)
        elif c == 91:
            pos += 1
            if len(stack) < MAX_NESTING:
                stack.append([False, []])
            continue
        elif c == 93 or c == 62:
            pos += 2 if (c == 62 and pos + 1 < n and data[pos + 1] == 62) else 1
            if stack:
                is_dict, items = stack.pop()
                value = _container(is_dict, items)
            else:
                continue
        elif c == 123 or c == 125 or c == 41:  # { } ) out of place
            pos += 1
            continue
        else:
            end = pos + 1
            while end < n and data[end] not in _SPECIAL:
                end += 1
            tok = data[pos:end]
            pos = end
            value = _number(tok)
            if value is None:
                word = tok.decode("latin-1")
                if word in _KEYWORDS:
                    value = _KEYWORDS[word]
                else:
                    while stack:  # an operator closes whatever is open
                        is_dict, items = stack.pop()
                        v = _container(is_dict, items)
                        (stack[-1][1] if stack else operands).append(v)
                    if word == "ID":  # the operands since BI are the image's key/value pairs
                        d, samples, pos = _inline_image(data, pos, n, operands)
                        if wanted is None or "BI" in wanted:
                            ops.append(("BI", [d, samples]))
                    elif word != "BI" and (wanted is None or word in wanted):
                        needs = True if wanted is None or type(wanted) is not dict else wanted[word]
                        ops.append((word, operands if needs else []))
                    operands = []
                    continue
        (stack[-1][1] if stack else operands).append(value)
    while stack and pos >= n:
        is_dict, items = stack.pop()
        (stack[-1][1] if stack else operands).append(_container(is_dict, items))
    return ops, pos


def _container(is_dict, items):
    if not is_dict:
        return items
    d = {}
    for i in range(0, len(items) - 1, 2):
        if type(items[i]) is str:
            d[items[i]] = items[i + 1]
    return d


# -- the pixel check (kernel) --------------------------------------------------------------------

TEST_RGB, TEST_CMYK, TEST_LAB, TEST_TABLE = 0, 1, 2, 3


def _samples(row, count, bpc):
    """The first ``count`` samples of one row of ``bpc``-bit samples."""
    if bpc == 8:
        return row[:count]
    if bpc == 16:
        return [row[2 * i] << 8 | row[2 * i + 1] for i in range(min(count, len(row) // 2))]
    per = 8 // bpc
    mask = (1 << bpc) - 1
    out = []
    for byte in row:
        for k in range(per):
            out.append((byte >> (8 - bpc * (k + 1))) & mask)
    return out[:count]


def image_has_color(data, width, height, ncomp, bpc, test, params):
    """True when a pixel of the image is colour. ``data``: the decoded samples, rows
    padded to whole bytes (a short buffer: the pixels it holds). ``test``:
    TEST_RGB / TEST_CMYK / TEST_LAB with ``params`` = (decode array of 2 * ncomp
    floats, tolerance); TEST_TABLE (ncomp 1) with ``params`` = bytes of 2**bpc
    entries, non-zero for a sample value that is colour. A sample s decodes to
    dmin + s * (dmax - dmin) / (2**bpc - 1)."""
    if not isinstance(data, (bytes, bytearray)):
        raise TypeError("data must be bytes")
    if bpc not in (1, 2, 4, 8, 16) or width <= 0 or height <= 0 or ncomp <= 0:
        return False
    rowbytes = (width * ncomp * bpc + 7) // 8
    rows = min(height, len(data) // rowbytes)
    count = width * ncomp
    maxval = (1 << bpc) - 1
    if test == TEST_TABLE:
        table = params
        if ncomp != 1 or len(table) < maxval + 1:
            raise ValueError("table test: one component and 2**bpc entries")
        for r in range(rows):
            for s in _samples(data[r * rowbytes:(r + 1) * rowbytes], count, bpc):
                if table[s]:
                    return True
        return False
    decode, tol = params
    if len(decode) < 2 * ncomp or ncomp < (4 if test == TEST_CMYK else 3):
        raise ValueError("decode array too short for the test")
    lo = [float(decode[2 * i]) for i in range(ncomp)]
    span = [(float(decode[2 * i + 1]) - float(decode[2 * i])) / maxval for i in range(ncomp)]
    for r in range(rows):
        s = _samples(data[r * rowbytes:(r + 1) * rowbytes], count, bpc)
        for p in range(0, len(s) - ncomp + 1, ncomp):
            a = lo[0] + s[p] * span[0]
            b = lo[1] + s[p + 1] * span[1]
            c = lo[2] + s[p + 2] * span[2]
            if test == TEST_RGB:
                if abs(a - b) > tol or abs(b - c) > tol or abs(a - c) > tol:
                    return True
            elif test == TEST_CMYK:
                if a > tol or b > tol or c > tol:
                    return True
            elif abs(b) > tol or abs(c) > tol:
                return True
    return False


# -- colour spaces ---------------------------------------------------------------------------------


class _Undecided(Exception):
    """Something on the page cannot be judged: the page is undecided unless colour
    is found elsewhere."""


class _ColorFound(Exception):
    """Colour is painted: the scan can stop."""


class _Space:
    """A colour space as far as neutrality goes. ``n``: components; ``initial``: the
    colour ``cs`` sets; ``color(comps)``: True / False / None (cannot tell)."""
    n = 1
    kind = "gray"

    def initial(self):
        return [0.0] * self.n

    def color(self, comps):
        return False


class _Gray(_Space):
    pass


class _RGB(_Space):
    n = 3
    kind = "rgb"

    def color(self, comps):
        if len(comps) < 3:
            return False
        a, b, c = comps[0], comps[1], comps[2]
        return abs(a - b) > TOLERANCE or abs(b - c) > TOLERANCE or abs(a - c) > TOLERANCE


class _CMYK(_Space):
    n = 4
    kind = "cmyk"

    def initial(self):
        return [0.0, 0.0, 0.0, 1.0]

    def color(self, comps):
        return len(comps) >= 3 and (comps[0] > TOLERANCE or comps[1] > TOLERANCE or comps[2] > TOLERANCE)


class _Lab(_Space):
    n = 3
    kind = "lab"

    def __init__(self, ranges):
        self.ranges = ranges  # amin amax bmin bmax

    def initial(self):
        # 0 clamped into the ranges
        a = min(max(0.0, self.ranges[0]), self.ranges[1])
        b = min(max(0.0, self.ranges[2]), self.ranges[3])
        return [0.0, a, b]

    def color(self, comps):
        return len(comps) >= 3 and (abs(comps[1]) > LAB_TOLERANCE or abs(comps[2]) > LAB_TOLERANCE)


class _Unknown(_Space):
    kind = "unknown"

    def __init__(self, n=1):
        self.n = n

    def color(self, comps):
        return None


class _Indexed(_Space):
    kind = "indexed"

    def __init__(self, table):
        self.table = table  # per palette entry: True / False / None

    def color(self, comps):
        if not comps or not self.table:
            return False
        i = int(min(max(_round(comps[0]), 0), len(self.table) - 1))
        return self.table[i]


class _Tint(_Space):
    """Separation / DeviceN: ``judge(comps)`` decides."""
    kind = "tint"

    def __init__(self, n, judge, always=None):
        self.n = n
        self.judge = judge
        self.always = always  # False when no tint can give colour, True/None otherwise unknown

    def initial(self):
        return [1.0] * self.n

    def color(self, comps):
        return self.judge(comps)


class _PatternSpace(_Space):
    kind = "pattern"

    def __init__(self, under):
        self.under = under  # the space of an uncoloured pattern's colour, or None
        self.n = under.n if under is not None else 0

    def initial(self):
        return []


def _round(x):
    return math.floor(x + 0.5)


def _num(x):
    return (type(x) is int or type(x) is float) and math.isfinite(x)


def _nums(arr, count=None):
    """The list of finite numbers ``arr`` is, else None."""
    if type(arr) is not list or (count is not None and len(arr) != count):
        return None
    for x in arr:
        if not _num(x):
            return None
    return [float(x) for x in arr]


_GRAY = _Gray()
_DEVICE = {"DeviceGray": _GRAY, "G": _GRAY, "CalGray": _GRAY,
           "DeviceRGB": _RGB(), "RGB": _RGB(), "CalRGB": _RGB(),
           "DeviceCMYK": _CMYK(), "CMYK": _CMYK()}
_PROCESS = {"Cyan": 0, "Magenta": 1, "Yellow": 2}
_NEUTRAL_COLORANTS = ("Black", "None")


# -- functions (tint transforms, shadings) --------------------------------------------------------


class _Function:
    """A PDF function we can evaluate: type 0 (sampled), 2 (exponential), 3 (stitching),
    or an array of 1-output functions. ``values()`` lists outputs that together bound
    every output (all samples / both ends), so "all of them neutral" proves the whole
    function neutral for any colour space whose neutral set is a linear subspace."""

    def __init__(self, scan, obj, depth=0):
        if depth > 8:
            raise _Undecided("function nesting")
        self.scan = scan
        obj = scan.resolve(obj)
        if type(obj) is list:
            self.type = "array"
            self.parts = [_Function(scan, f, depth + 1) for f in obj[:32]]
            return
        d = scan.dict_of(obj)
        if d is None:
            raise _Undecided("function is not a dictionary")
        self.type = scan.resolve(d.get("FunctionType"))
        self.domain = _nums(scan.resolve(d.get("Domain"))) or [0.0, 1.0]
        rng = _nums(scan.resolve(d.get("Range")))
        self.range = rng
        if self.type == 2:
            self.c0 = _nums(scan.resolve(d.get("C0"))) or [0.0]
            self.c1 = _nums(scan.resolve(d.get("C1"))) or [1.0]
            if len(self.c0) != len(self.c1):
                raise _Undecided("C0/C1")
            e = scan.resolve(d.get("N"))
            self.exp = float(e) if _num(e) else 1.0
        elif self.type == 3:
            self.parts = [_Function(scan, f, depth + 1) for f in (scan.resolve(d.get("Functions")) or [])[:64]]
            self.bounds = _nums(scan.resolve(d.get("Bounds"))) or []
            self.encode = _nums(scan.resolve(d.get("Encode"))) or []
            if not self.parts or len(self.bounds) != len(self.parts) - 1 or len(self.encode) < 2 * len(self.parts):
                raise _Undecided("stitching function")
        elif self.type == 0:
            self._sampled(obj, d)
        elif self.type == 4:
            src = scan.stream_data(obj, MAX_CALCULATOR)
            if src is None or self.range is None:
                raise _Undecided("calculator function")
            self.program = _calculator_program(src)
        else:
            raise _Undecided("function type")

    def _sampled(self, obj, d):
        scan = self.scan
        size = _nums(scan.resolve(d.get("Size")))
        bps = scan.resolve(d.get("BitsPerSample"))
        if not size or self.range is None or bps not in (1, 2, 4, 8, 12, 16, 24, 32):
            raise _Undecided("sampled function")
        m = len(size)
        nout = len(self.range) // 2
        total = nout
        for s in size:
            if s < 1:
                raise _Undecided("sampled function size")
            total *= int(s)
        if m > 8 or total > MAX_FUNCTION_SAMPLES or len(self.domain) < 2 * m:
            raise _Undecided("sampled function too large")
        self.size = [int(s) for s in size]
        self.nout = nout
        enc = _nums(scan.resolve(d.get("Encode")))
        self.encode = enc if enc and len(enc) >= 2 * m else [x for s in self.size for x in (0.0, s - 1.0)]
        dec = _nums(scan.resolve(d.get("Decode")))
        self.decode = dec if dec and len(dec) >= 2 * nout else list(self.range)
        data = scan.stream_data(obj, (total * bps + 7) // 8)
        if data is None:
            raise _Undecided("sampled function data")
        maxv = float((1 << bps) - 1)
        vals = []
        bits = 0
        acc = 0
        it = iter(data)
        for _ in range(total):
            while bits < bps:
                b = next(it, None)
                if b is None:
                    break
                acc = (acc << 8) | b
                bits += 8
            if bits < bps:
                vals.append(0.0)
                continue
            bits -= bps
            v = (acc >> bits) & ((1 << bps) - 1)
            acc &= (1 << bits) - 1
            vals.append(v / maxv)
        self.samples = vals
        if total == 0:
            raise _Undecided("empty sampled function")

    def _decoded(self, k, v):
        return self.decode[2 * k] + v * (self.decode[2 * k + 1] - self.decode[2 * k])

    def _clip(self, outs):
        if self.range is None:
            return outs
        return [min(max(v, self.range[2 * i]), self.range[2 * i + 1]) if 2 * i + 1 < len(self.range) else v
                for i, v in enumerate(outs)]

    def values(self):
        """Output vectors whose convex hull holds every output."""
        if self.type == 4:
            raise _Undecided("a calculator function has no bounding values")
        if self.type == 2:
            return [self._clip(list(self.c0)), self._clip(list(self.c1))]
        if self.type == 3:
            out = []
            for p in self.parts:
                out += p.values()
            return out
        if self.type == 0:
            n = self.nout
            s = self.samples
            return [[self._decoded(k, s[i + k]) for k in range(n)] for i in range(0, len(s) - n + 1, n)]
        # an array of 1-output functions: every combination of their bounds
        outs = [[]]
        for p in self.parts:
            vals = [v[0] for v in p.values() if v]
            lo, hi = (min(vals), max(vals)) if vals else (0.0, 0.0)
            outs = [o + [x] for o in outs for x in ((lo,) if lo == hi else (lo, hi))]
            if len(outs) > 4096:
                raise _Undecided("too many corners")
        return outs

    def hull_is_exact(self):
        """True when the outputs of ``values`` are reached by interpolation only (so
        one colour value among them really occurs, near enough)."""
        return self.type != "array"

    def __call__(self, x):
        """Outputs at the inputs ``x`` (a list of floats)."""
        if self.type == "array":
            return [p(x)[0] if p(x) else 0.0 for p in self.parts]
        if self.type == 2:
            t = min(max(x[0] if x else 0.0, self.domain[0]), self.domain[1])
            if t < 0 and self.exp != int(self.exp):
                t = 0.0
            try:
                f = t ** self.exp if not (t == 0 and self.exp < 0) else 0.0
            except (OverflowError, ZeroDivisionError):
                raise _Undecided("exponential function") from None
            return self._clip([a + f * (b - a) for a, b in zip(self.c0, self.c1)])
        if self.type == 3:
            t = min(max(x[0] if x else 0.0, self.domain[0]), self.domain[1])
            k = 0
            while k < len(self.bounds) and t >= self.bounds[k]:
                k += 1
            lo = self.domain[0] if k == 0 else self.bounds[k - 1]
            hi = self.domain[1] if k == len(self.bounds) else self.bounds[k]
            e0, e1 = self.encode[2 * k], self.encode[2 * k + 1]
            u = e0 if hi == lo else e0 + (t - lo) * (e1 - e0) / (hi - lo)
            return self.parts[k]([u])
        if self.type == 4:
            m = len(self.domain) // 2
            ins = [min(max(x[i] if i < len(x) else 0.0, self.domain[2 * i]), self.domain[2 * i + 1])
                   for i in range(m)]
            outs = _calculate(self.program, ins)
            n = len(self.range) // 2
            if len(outs) < n:
                raise _Undecided("calculator function left too few results")
            return self._clip([float(v) for v in outs[len(outs) - n:]])
        return self._sample_at(x)

    def _sample_at(self, x):
        # multilinear interpolation between the samples around x
        m = len(self.size)
        idx = []
        for i in range(m):
            d0, d1 = self.domain[2 * i], self.domain[2 * i + 1]
            t = min(max(x[i] if i < len(x) else d0, d0), d1)
            e0, e1 = self.encode[2 * i], self.encode[2 * i + 1]
            e = e0 if d1 == d0 else e0 + (t - d0) * (e1 - e0) / (d1 - d0)
            e = min(max(e, 0.0), self.size[i] - 1.0)
            lo = int(math.floor(e))
            hi = min(lo + 1, self.size[i] - 1)
            idx.append((lo, hi, e - lo))
        out = [0.0] * self.nout
        for corner in range(1 << m):
            w = 1.0
            off = 0
            stride = 1
            for i in range(m):
                lo, hi, fr = idx[i]
                if corner >> i & 1:
                    w *= fr
                    j = hi
                else:
                    w *= 1.0 - fr
                    j = lo
                off += j * stride
                stride *= self.size[i]
            if w == 0.0:
                continue
            base = off * self.nout
            for k in range(self.nout):
                out[k] += w * self._decoded(k, self.samples[base + k])
        return self._clip(out)


# -- type 4 (PostScript calculator) functions ---------------------------------------------------

MAX_CALCULATOR = 1 << 16   # bytes of a calculator program
MAX_CALC_STEPS = 100000    # operators run for one evaluation
MAX_CALC_STACK = 1000


def _calculator_program(src):
    """The program of a type 4 function as nested lists of numbers, booleans,
    operator names and blocks (lists). Malformed: _Undecided."""
    text = bytes(src).replace(b"{", b" { ").replace(b"}", b" } ")
    root = []
    stack = [root]
    for tok in text.split():
        if tok == b"{":
            if len(stack) > 64:
                raise _Undecided("calculator nesting")
            block = []
            stack[-1].append(block)
            stack.append(block)
        elif tok == b"}":
            if len(stack) == 1:
                raise _Undecided("calculator braces")
            stack.pop()
        else:
            v = _number(tok)
            if v is None:
                word = tok.decode("latin-1")
                v = _KEYWORDS.get(word, word) if word in ("true", "false") else word
            stack[-1].append(v)
    if len(stack) != 1 or len(root) != 1 or type(root[0]) is not list:
        raise _Undecided("calculator program is not one block")
    return root[0]


def _calc_num(v):
    if type(v) is bool or not (type(v) is int or type(v) is float):
        raise _Undecided("calculator type error")
    return v


def _calc_binary(op, a, b):
    if op in ("and", "or", "xor"):
        if type(a) is bool and type(b) is bool:
            return {"and": a and b, "or": a or b, "xor": a != b}[op]
        if type(a) is int and type(b) is int:
            return {"and": a & b, "or": a | b, "xor": a ^ b}[op]
        raise _Undecided("calculator type error")
    if op in ("eq", "ne"):
        return (a == b) if op == "eq" else (a != b)
    a, b = _calc_num(a), _calc_num(b)
    if op == "add":
        return a + b
    if op == "sub":
        return a - b
    if op == "mul":
        return a * b
    if op == "div":
        if b == 0:
            raise _Undecided("calculator division by zero")
        return a / b
    if op in ("idiv", "mod"):
        if type(a) is not int or type(b) is not int or b == 0:
            raise _Undecided("calculator idiv/mod")
        q = abs(a) // abs(b) * (1 if (a >= 0) == (b >= 0) else -1)
        return q if op == "idiv" else a - q * b
    if op == "exp":
        try:
            r = float(a) ** float(b)
        except (OverflowError, ZeroDivisionError):
            raise _Undecided("calculator exp") from None
        if type(r) is complex:
            raise _Undecided("calculator exp")
        return r
    if op == "atan":
        r = math.degrees(math.atan2(a, b))
        return r + 360.0 if r < 0 else r
    if op == "bitshift":
        if type(a) is not int or type(b) is not int or abs(b) > 64:
            raise _Undecided("calculator bitshift")
        return (a << b) & 0xFFFFFFFF if b >= 0 else a >> -b
    if op == "gt":
        return a > b
    if op == "ge":
        return a >= b
    if op == "lt":
        return a < b
    return a <= b  # le


_CALC_BINARY = frozenset(["add", "sub", "mul", "div", "idiv", "mod", "exp", "atan", "and", "or", "xor",
                          "bitshift", "eq", "ne", "gt", "ge", "lt", "le"])


def _calc_unary(op, a):
    if op == "not":
        if type(a) is bool:
            return not a
        if type(a) is int:
            return ~a
        raise _Undecided("calculator type error")
    a = _calc_num(a)
    try:
        if op == "abs":
            return abs(a)
        if op == "neg":
            return -a
        if op == "ceiling":
            return float(math.ceil(a)) if type(a) is float else a
        if op == "floor":
            return float(math.floor(a)) if type(a) is float else a
        if op == "round":
            return float(math.floor(a + 0.5)) if type(a) is float else a
        if op == "truncate":
            return float(math.trunc(a)) if type(a) is float else a
        if op == "cvi":
            return int(a)
        if op == "cvr":
            return float(a)
        if op == "sqrt":
            return math.sqrt(a)
        if op == "sin":
            return math.sin(math.radians(a))
        if op == "cos":
            return math.cos(math.radians(a))
        if op == "ln":
            return math.log(a)
        return math.log10(a)  # log
    except (ValueError, OverflowError):
        raise _Undecided("calculator domain error") from None


_CALC_UNARY = frozenset(["not", "abs", "neg", "ceiling", "floor", "round", "truncate", "cvi", "cvr",
                         "sqrt", "sin", "cos", "ln", "log"])


def _calculate(program, inputs):
    """Run a calculator program on ``inputs``; the operand stack at the end."""
    stack = list(inputs)
    steps = [0]
    _calc_run(program, stack, steps)
    return stack


def _calc_run(block, stack, steps):
    for item in block:
        steps[0] += 1
        if steps[0] > MAX_CALC_STEPS or len(stack) > MAX_CALC_STACK:
            raise _Undecided("calculator runs too long")
        if type(item) is list or type(item) is bool or type(item) is int or type(item) is float:
            stack.append(item)
            continue
        op = item
        if op == "if" or op == "ifelse":
            need = 2 if op == "if" else 3
            if len(stack) < need:
                raise _Undecided("calculator stack underflow")
            if op == "if":
                proc, cond = stack.pop(), stack.pop()
                if type(proc) is not list or type(cond) is not bool:
                    raise _Undecided("calculator if")
                if cond:
                    _calc_run(proc, stack, steps)
            else:
                no, yes, cond = stack.pop(), stack.pop(), stack.pop()
                if type(yes) is not list or type(no) is not list or type(cond) is not bool:
                    raise _Undecided("calculator ifelse")
                _calc_run(yes if cond else no, stack, steps)
        elif op in _CALC_BINARY:
            if len(stack) < 2:
                raise _Undecided("calculator stack underflow")
            b, a = stack.pop(), stack.pop()
            stack.append(_calc_binary(op, a, b))
        elif op in _CALC_UNARY:
            if not stack:
                raise _Undecided("calculator stack underflow")
            stack.append(_calc_unary(op, stack.pop()))
        elif op == "dup":
            if not stack:
                raise _Undecided("calculator stack underflow")
            stack.append(stack[-1])
        elif op == "pop":
            if not stack:
                raise _Undecided("calculator stack underflow")
            stack.pop()
        elif op == "exch":
            if len(stack) < 2:
                raise _Undecided("calculator stack underflow")
            stack[-1], stack[-2] = stack[-2], stack[-1]
        elif op == "copy":
            k = stack.pop() if stack else None
            if type(k) is not int or k < 0 or k > len(stack):
                raise _Undecided("calculator copy")
            stack.extend(stack[len(stack) - k:])
        elif op == "index":
            k = stack.pop() if stack else None
            if type(k) is not int or k < 0 or k >= len(stack):
                raise _Undecided("calculator index")
            stack.append(stack[-1 - k])
        elif op == "roll":
            if len(stack) < 2:
                raise _Undecided("calculator stack underflow")
            j, k = stack.pop(), stack.pop()
            if type(j) is not int or type(k) is not int or k < 0 or k > len(stack):
                raise _Undecided("calculator roll")
            if k:
                j %= k
                part = stack[len(stack) - k:]
                del stack[len(stack) - k:]
                stack.extend(part[k - j:] + part[:k - j])
        else:
            raise _Undecided("calculator operator")


def _sample_function(fn):
    """Outputs of ``fn`` on a grid over its domain (9 points a side, 1 or 2 inputs)."""
    m = len(fn.domain) // 2
    if m < 1 or m > 2:
        raise _Undecided("function inputs")
    axes = []
    for i in range(m):
        lo, hi = fn.domain[2 * i], fn.domain[2 * i + 1]
        axes.append([lo + (hi - lo) * k / 8.0 for k in range(9)])
    points = [[a] for a in axes[0]] if m == 1 else [[a, b] for a in axes[0] for b in axes[1]]
    return [fn(p) for p in points]


# -- the scan ---------------------------------------------------------------------------------------


class _State:
    __slots__ = ("fill_space", "fill", "fill_pattern", "stroke_space", "stroke", "stroke_pattern",
                 "render", "font", "uncoloured")

    def __init__(self):
        self.fill_space = _GRAY
        self.fill = [0.0]
        self.fill_pattern = None
        self.stroke_space = _GRAY
        self.stroke = [0.0]
        self.stroke_pattern = None
        self.render = 0
        self.font = None
        self.uncoloured = False  # in a Type 3 glyph after d1: colour operators are ignored

    def copy(self):
        s = _State()
        for k in _State.__slots__:
            setattr(s, k, getattr(self, k))
        return s


_FILL_OPS = frozenset(["f", "F", "f*", "B", "B*", "b", "b*"])
_STROKE_OPS = frozenset(["S", "s", "B", "B*", "b", "b*"])
_TEXT_OPS = frozenset(["Tj", "TJ", "'", '"'])
# the operators the scan interprets -> whether it looks at their operands
_WANTED = {op: True for op in ("g", "G", "rg", "RG", "k", "K", "cs", "CS", "sc", "scn", "SC", "SCN",
                               "Tr", "Tf", "sh", "Do", "BI")}
_WANTED.update({op: False for op in _FILL_OPS | _STROKE_OPS | _TEXT_OPS | frozenset(["q", "Q", "d1"])})
_COLOR_OPS = frozenset(["g", "G", "rg", "RG", "k", "K", "cs", "CS", "sc", "scn", "SC", "SCN"])
_UNDECODED_FILTERS = frozenset(["DCTDecode", "JPXDecode", "JBIG2Decode", "CCITTFaxDecode", "DCT", "CCF"])
_INLINE_KEYS = {"W": "Width", "H": "Height", "BPC": "BitsPerComponent", "CS": "ColorSpace",
                "D": "Decode", "IM": "ImageMask", "F": "Filter", "DP": "DecodeParms", "I": "Interpolate"}
_INLINE_FILTERS = {"AHx": "ASCIIHexDecode", "A85": "ASCII85Decode", "LZW": "LZWDecode",
                   "Fl": "FlateDecode", "RL": "RunLengthDecode", "CCF": "CCITTFaxDecode", "DCT": "DCTDecode"}


class _Scan:
    def __init__(self, doc):
        self.doc = doc
        self.undecided = False
        self.active = set()     # ids of the streams being scanned (cycle guard)
        self.spaces = {}        # (id of a colour space array, id of resources) -> (array, resources, _Space)
        self.fonts = {}         # (id of resources, name) -> (resources, Type 3 font or None)
        self.visits = 0         # streams scanned, against MAX_VISITS
        self.ops = 0            # operations interpreted, against MAX_OPS

    # -- objects

    def resolve(self, obj):
        return self.doc.resolve(obj)

    def dict_of(self, obj):
        """The dictionary of a dict or a stream, else None."""
        obj = self.resolve(obj)
        if isinstance(obj, dict):
            return obj
        d = getattr(obj, "dict", None)
        return d if isinstance(d, dict) else None

    def is_stream(self, obj):
        return not isinstance(obj, dict) and isinstance(getattr(obj, "dict", None), dict) \
            and hasattr(obj, "decoded")

    def stream_data(self, obj, limit):
        """A stream's decoded data (at most ``limit`` bytes), or None when it cannot
        be decoded here."""
        if not self.is_stream(obj):
            return None
        try:
            return bytes(obj.decoded(limit))
        except PdlError:
            return None

    def lookup(self, resources, category, name):
        res = self.dict_of(resources)
        if res is None:
            return None
        cat = self.dict_of(res.get(category))
        if cat is None or not isinstance(name, str):
            return None
        return cat.get(name)

    # -- colour spaces

    def space(self, obj, resources, depth=0):
        """The _Space of a colour space name or array (resolved through the resources)."""
        if depth > 8:
            return _Unknown()
        if isinstance(obj, str):
            dev = _DEVICE.get(obj)
            if dev is not None:
                return dev
            if obj == "Pattern":
                return _PatternSpace(None)
            named = self.lookup(resources, "ColorSpace", obj)
            if named is None:
                return _Unknown()
            return self.space(named, resources, depth + 1)
        key = (id(obj), id(resources))
        cached = self.spaces.get(key)
        if cached is not None and cached[0] is obj and cached[1] is resources:
            return cached[2]
        res = self._space_array(self.resolve(obj), resources, depth)
        if len(self.spaces) < 4096:
            self.spaces[key] = (obj, resources, res)  # holding them keeps their ids unique
        return res

    def _space_array(self, arr, resources, depth):
        if isinstance(arr, str):
            return self.space(arr, resources, depth + 1)
        if type(arr) is not list or not arr:
            return _Unknown()
        family = self.resolve(arr[0])
        if not isinstance(family, str):
            return _Unknown()
        if family in ("CalGray", "DeviceGray", "G"):
            return _GRAY
        if family in ("CalRGB", "DeviceRGB", "RGB"):
            return _DEVICE["DeviceRGB"]
        if family in ("DeviceCMYK", "CMYK"):
            return _DEVICE["DeviceCMYK"]
        if family == "Lab":
            d = self.dict_of(arr[1]) if len(arr) > 1 else None
            rng = _nums(self.resolve(d.get("Range")), 4) if d is not None else None
            return _Lab(rng or [-100.0, 100.0, -100.0, 100.0])
        if family == "ICCBased":
            return self._icc(arr, resources, depth)
        if family in ("Indexed", "I"):
            return self._indexed(arr, resources, depth)
        if family == "Separation":
            return self._separation(arr, resources, depth)
        if family == "DeviceN":
            return self._devicen(arr, resources, depth)
        if family == "Pattern":
            under = self.space(arr[1], resources, depth + 1) if len(arr) > 1 else None
            return _PatternSpace(under)
        return _Unknown()

    def _icc(self, arr, resources, depth):
        d = self.dict_of(arr[1]) if len(arr) > 1 else None
        if d is None:
            return _Unknown()
        n = self.resolve(d.get("N"))
        if n == 1:
            return _GRAY
        if n == 3:
            return _DEVICE["DeviceRGB"]
        if n == 4:
            return _DEVICE["DeviceCMYK"]
        alt = d.get("Alternate")
        if alt is not None:
            return self.space(alt, resources, depth + 1)
        return _Unknown(n if type(n) is int and 0 < n <= 32 else 1)

    def _indexed(self, arr, resources, depth):
        if len(arr) < 4:
            return _Unknown()
        base = self.space(arr[1], resources, depth + 1)
        hival = self.resolve(arr[2])
        if type(hival) is not int or hival < 0:
            return _Unknown()
        hival = min(hival, 255)
        lookup = self.resolve(arr[3])
        if isinstance(lookup, (bytes, bytearray)):
            table = bytes(lookup)
        else:
            table = self.stream_data(lookup, (hival + 1) * max(base.n, 1))
            if table is None:
                return _Indexed([None] * (hival + 1))
        n = base.n
        entries = []
        for i in range(hival + 1):
            chunk = table[i * n:(i + 1) * n]
            if len(chunk) < n:  # a short palette: the missing bytes read as 0
                chunk = chunk + bytes(n - len(chunk))
            entries.append(base.color(self._base_comps(base, chunk)))
        return _Indexed(entries)

    @staticmethod
    def _base_comps(base, chunk):
        if base.kind == "lab":
            r = base.ranges
            return [chunk[0] * 100.0 / 255.0, r[0] + chunk[1] * (r[1] - r[0]) / 255.0,
                    r[2] + chunk[2] * (r[3] - r[2]) / 255.0]
        return [b / 255.0 for b in chunk]

    def _tint_judge(self, fn, alt, n):
        def judge(comps):
            if len(comps) < n:
                comps = list(comps) + [1.0] * (n - len(comps))
            try:
                out = fn(list(comps[:n]))
            except _Undecided:
                return None
            return alt.color(out)
        return judge

    def _separation(self, arr, resources, depth):
        if len(arr) < 4:
            return _Unknown()
        name = self.resolve(arr[1])
        if name in _NEUTRAL_COLORANTS:
            return _Tint(1, lambda comps: False, always=False)
        if name in _PROCESS:
            return _Tint(1, lambda comps: bool(comps) and comps[0] > TOLERANCE)
        return self._via_function(arr[2], arr[3], 1, resources, depth)

    def _devicen(self, arr, resources, depth):
        if len(arr) < 4:
            return _Unknown()
        names = self.resolve(arr[1])
        if type(names) is not list or not names or len(names) > 32:
            return _Unknown()
        names = [self.resolve(x) for x in names]
        n = len(names)
        if all(x in _NEUTRAL_COLORANTS for x in names):
            return _Tint(n, lambda comps: False, always=False)
        if all(x in _NEUTRAL_COLORANTS or x in _PROCESS for x in names):
            idx = [i for i, x in enumerate(names) if x in _PROCESS]
            return _Tint(n, lambda comps: any(i < len(comps) and comps[i] > TOLERANCE for i in idx))
        return self._via_function(arr[2], arr[3], n, resources, depth)

    def _via_function(self, alt_obj, fn_obj, n, resources, depth):
        alt = self.space(alt_obj, resources, depth + 1)
        if alt.kind == "gray":
            return _Tint(n, lambda comps: False, always=False)
        if alt.kind in ("unknown", "pattern", "indexed", "tint"):
            return _Unknown(n)
        try:
            fn = _Function(self, fn_obj)
        except _Undecided:
            return _Unknown(n)
        try:
            if not any(alt.color(v) for v in fn.values()):
                return _Tint(n, lambda comps: False, always=False)  # no tint gives colour
        except _Undecided:
            pass  # a calculator: judged tint by tint
        return _Tint(n, self._tint_judge(fn, alt, n))

    # -- painting

    def paint_color(self, space, comps, pattern, resources, state, depth):
        """Judge one paint with a colour: raises _ColorFound, notes undecided."""
        if isinstance(space, _PatternSpace):
            self.pattern(pattern, space, comps, resources, state, depth)
            return
        verdict = space.color(comps)
        if verdict:
            raise _ColorFound()
        if verdict is None:
            self.undecided = True

    def fill(self, st, resources, depth):
        self.paint_color(st.fill_space, st.fill, st.fill_pattern, resources, st, depth)

    def stroke(self, st, resources, depth):
        self.paint_color(st.stroke_space, st.stroke, st.stroke_pattern, resources, st, depth)

    def pattern(self, name, space, comps, resources, state, depth):
        pat = self.lookup(resources, "Pattern", name) if isinstance(name, str) else None
        d = self.dict_of(pat)
        if d is None:
            return  # no such pattern: nothing is painted
        ptype = self.resolve(d.get("PatternType"))
        if ptype == 2:
            self.shading(d.get("Shading"), resources)
            return
        if ptype != 1:
            self.undecided = True
            return
        paint_type = self.resolve(d.get("PaintType"))
        if paint_type == 2:  # uncoloured: the colour given with scn paints the cells
            if space.under is None:
                self.undecided = True
                return
            verdict = space.under.color(comps)
            if verdict:
                raise _ColorFound()
            if verdict is None:
                self.undecided = True
            return
        inner = _State()
        self.content(pat, d.get("Resources"), inner, depth + 1, parent_resources=resources)

    def shading(self, obj, resources):
        d = self.dict_of(obj)
        if d is None:
            return
        space = self.space(self.resolve(d.get("ColorSpace")), resources)
        if space.kind == "gray":
            return
        if space.kind in ("unknown", "pattern"):
            self.undecided = True
            return
        fobj = d.get("Function")
        if fobj is None:  # mesh shadings without function: colours in the stream
            self.undecided = True
            return
        try:
            fn = _Function(self, fobj)
            values = fn.values() if fn.type != 4 else _sample_function(fn)
        except _Undecided:
            self.undecided = True
            return
        if fn.type == 4:  # samples of a calculator prove colour, never its absence
            for v in values:
                if space.color(v):
                    raise _ColorFound()
            self.undecided = True
            return
        if isinstance(space, _Tint):
            # tints between the values may differ through a non-linear transform
            if space.always is False:
                return
            for v in values:
                if space.color(v):
                    raise _ColorFound()
            self.undecided = True
            return
        any_color = False
        for v in values:
            verdict = space.color(v)
            if verdict and fn.hull_is_exact():
                raise _ColorFound()
            any_color = any_color or verdict is not False
        if any_color:  # the corners of an array of functions may not occur
            self.undecided = True

    # -- images

    def image(self, d, data_of, st, resources):
        """Judge an image. ``d``: its dictionary (full key names); ``data_of(limit)``
        gives the decoded samples or None; filters in ``d``."""
        R = self.resolve
        if R(d.get("ImageMask")) is True:
            self.fill(st, resources, 0)
            return
        cs_obj = R(d.get("ColorSpace"))
        if cs_obj is None:
            self.undecided = True  # JPX carrying its own colour space
            return
        space = self.space(cs_obj, resources)
        if space.kind == "gray" or (isinstance(space, _Tint) and space.always is False):
            return
        if space.kind in ("unknown", "pattern"):
            self.undecided = True
            return
        w, h, bpc = R(d.get("Width")), R(d.get("Height")), R(d.get("BitsPerComponent"))
        if type(w) is not int or type(h) is not int or w <= 0 or h <= 0:
            return  # nothing a renderer would paint
        if bpc not in (1, 2, 4, 8, 16):
            self.undecided = True
            return
        size = (w * space.n * bpc + 7) // 8 * h
        if size > MAX_IMAGE_BYTES:
            self.undecided = True
            return
        data = data_of(size)
        if data is None:
            self.undecided = True
            return
        decode = _nums(R(d.get("Decode")))
        maxval = (1 << bpc) - 1
        if space.kind in ("rgb", "cmyk", "lab"):
            if decode is None or len(decode) < 2 * space.n:
                if space.kind == "lab":
                    r = space.ranges
                    decode = [0.0, 100.0, r[0], r[1], r[2], r[3]]
                else:
                    decode = [0.0, 1.0] * space.n
            test = {"rgb": TEST_RGB, "cmyk": TEST_CMYK, "lab": TEST_LAB}[space.kind]
            tol = LAB_TOLERANCE if space.kind == "lab" else TOLERANCE
            found = image_has_color(data, w, h, space.n, bpc, test, (decode, tol))
        else:  # indexed, separation, devicen: a table over the sample values
            if space.n != 1 or bpc == 16:
                self.undecided = True
                return
            if decode is None or len(decode) < 2:
                decode = [0.0, float(maxval)] if space.kind == "indexed" else [0.0, 1.0]
            table = bytearray(maxval + 1)
            unsure = False
            for s in range(maxval + 1):
                v = decode[0] + s * (decode[1] - decode[0]) / maxval
                verdict = space.color([v])
                if verdict is None:
                    unsure = True
                table[s] = 1 if verdict is not False else 0
            found = image_has_color(data, w, h, 1, bpc, TEST_TABLE, bytes(table))
            if found and unsure:
                # a sample reached an entry we could not judge (or one that is colour)
                if not self._table_certain(space, decode, maxval, data, w, h, bpc):
                    self.undecided = True
                    return
        if found:
            raise _ColorFound()

    def _table_certain(self, space, decode, maxval, data, w, h, bpc):
        """After a table hit with unsure entries: True (raising _ColorFound) when a
        sample certainly reaches a colour entry, else False."""
        table = bytearray(maxval + 1)
        for s in range(maxval + 1):
            v = decode[0] + s * (decode[1] - decode[0]) / maxval
            table[s] = 1 if space.color([v]) is True else 0
        if image_has_color(data, w, h, 1, bpc, TEST_TABLE, bytes(table)):
            raise _ColorFound()
        return False

    def xobject_image(self, obj, st, resources):
        d = self.dict_of(obj)
        filters = []
        try:
            filters = list(getattr(obj, "filters", []) or [])
        except PdlError:
            self.undecided = True
            return
        cs = self.resolve(d.get("ColorSpace"))
        if any(f in _UNDECODED_FILTERS for f in filters):
            if self.resolve(d.get("ImageMask")) is True:
                self.fill(st, resources, 0)
                return
            space = self.space(cs, resources) if cs is not None else _Unknown()
            if space.kind != "gray" and not (isinstance(space, _Tint) and space.always is False):
                self.undecided = True
            return
        self.image(d, lambda limit: self.stream_data(obj, limit), st, resources)

    def inline_image(self, raw_d, samples, st, resources):
        d = {}
        for k, v in raw_d.items():
            d[_INLINE_KEYS.get(k, k)] = v
        cs = d.get("ColorSpace")
        if isinstance(cs, str) and cs in ("I", "Indexed"):
            cs = "Indexed"
        elif type(cs) is list and cs and cs[0] == "I":
            cs = ["Indexed"] + cs[1:]
        d["ColorSpace"] = cs
        filters = d.get("Filter")
        if filters is None:
            filters = []
        elif not isinstance(filters, list):
            filters = [filters]
        filters = [_INLINE_FILTERS.get(f, f) if isinstance(f, str) else "?" for f in filters]
        if any(f in _UNDECODED_FILTERS or f == "?" for f in filters):
            if d.get("ImageMask") is True:
                self.fill(st, resources, 0)
                return
            space = self.space(cs, resources) if cs is not None else _Unknown()
            if space.kind != "gray":
                self.undecided = True
            return
        parms = d.get("DecodeParms")
        if not isinstance(parms, list):
            parms = [parms] * len(filters)

        def data_of(limit):
            return _decode_inline(samples, filters, parms, limit)

        self.image(d, data_of, st, resources)

    # -- content

    def content(self, stream_obj, resources, st, depth, parent_resources=None):
        """Scan a form / pattern / glyph / appearance stream (or the page's list)."""
        self.visits += 1
        if depth > MAX_DEPTH or self.visits > MAX_VISITS:
            raise _Undecided("too deep or too much")
        key = id(stream_obj)
        if key in self.active:
            return  # a cycle paints nothing more
        res = resources if self.dict_of(resources) is not None else parent_resources
        self.active.add(key)
        try:
            if type(stream_obj) is list:
                parts = []
                total = 0
                for s in stream_obj[:4096]:
                    data = self.stream_data(self.resolve(s), MAX_CONTENT_BYTES - total)
                    if data is None:
                        continue
                    parts.append(data)
                    total += len(data) + 1
                    if total >= MAX_CONTENT_BYTES:
                        self.undecided = True
                        break
                data = b"\n".join(parts)
            else:
                data = self.stream_data(stream_obj, MAX_CONTENT_BYTES)
                if data is None:
                    self.undecided = True
                    return
                if len(data) >= MAX_CONTENT_BYTES:
                    self.undecided = True
            self.run(data, res, st, depth)
        finally:
            self.active.discard(key)

    def run(self, data, resources, st, depth):
        stack = []
        pos = 0
        n = len(data)
        while pos < n:
            ops, pos = parse_ops(data, pos, OPS_BATCH, _WANTED)
            self.ops += len(ops)
            if self.ops > MAX_OPS:
                raise _Undecided("too many operations")
            for op, args in ops:
                st = self.op(op, args, st, stack, resources, depth)

    def set_color(self, st, fill, args, resources):
        pattern = None
        if args and isinstance(args[-1], str):
            pattern = args[-1]
            args = args[:-1]
        i = len(args)
        while i > 0 and _num(args[i - 1]):
            i -= 1
        comps = [float(a) for a in args[i:]]
        if fill:
            st.fill, st.fill_pattern = comps, pattern
        else:
            st.stroke, st.stroke_pattern = comps, pattern

    def op(self, op, args, st, stack, resources, depth):
        if op in _FILL_OPS or op in _STROKE_OPS:
            if op in _FILL_OPS:
                self.fill(st, resources, depth)
            if op in _STROKE_OPS:
                self.stroke(st, resources, depth)
        elif op == "q":
            if len(stack) < MAX_STACK:
                stack.append(st)
                st = st.copy()
        elif op == "Q":
            if stack:
                st = stack.pop()
        elif st.uncoloured and op in _COLOR_OPS:
            pass  # a d1 glyph paints in the colour of the text that shows it
        elif op == "d1":
            st.uncoloured = True
        elif op in ("g", "G", "rg", "RG", "k", "K"):
            space = _DEVICE[{"g": "G", "G": "G", "rg": "RGB", "RG": "RGB", "k": "CMYK", "K": "CMYK"}[op]]
            comps = _nums(args[len(args) - space.n:], space.n)
            if comps is None:
                return st  # wrong operands: the operator is skipped, as a renderer does
            if op in ("g", "rg", "k"):
                st.fill_space, st.fill, st.fill_pattern = space, comps, None
            else:
                st.stroke_space, st.stroke, st.stroke_pattern = space, comps, None
        elif op in ("cs", "CS"):
            space = self.space(args[-1], resources) if args and isinstance(args[-1], str) else _Unknown()
            if op == "cs":
                st.fill_space, st.fill, st.fill_pattern = space, space.initial(), None
            else:
                st.stroke_space, st.stroke, st.stroke_pattern = space, space.initial(), None
        elif op in ("sc", "scn"):
            self.set_color(st, True, args, resources)
        elif op in ("SC", "SCN"):
            self.set_color(st, False, args, resources)
        elif op in _TEXT_OPS:
            self.text(st, resources, depth)
        elif op == "Tr":
            if args and type(args[-1]) is int:
                st.render = args[-1]
        elif op == "Tf":
            if len(args) >= 2 and isinstance(args[-2], str):
                st.font = args[-2]
        elif op == "sh":
            if args and isinstance(args[-1], str):
                self.shading(self.lookup(resources, "Shading", args[-1]), resources)
        elif op == "Do":
            if args and isinstance(args[-1], str):
                self.xobject(args[-1], st, resources, depth)
        elif op == "BI":
            if len(args) == 2 and isinstance(args[0], dict):
                self.inline_image(args[0], args[1], st, resources)
        return st

    def text(self, st, resources, depth):
        mode = st.render
        if mode in (3, 7):
            return
        font = self.type3_font(resources, st.font) if st.font is not None else None
        if font is not None:
            self.type3(font, st, resources, depth)
            return
        if mode in (0, 2, 4, 6) or type(mode) is not int or not 0 <= mode <= 7:
            self.fill(st, resources, depth)
        if mode in (1, 2, 5, 6):
            self.stroke(st, resources, depth)

    def type3_font(self, resources, name):
        """The Type 3 font dictionary ``name`` is in ``resources``, else None (cached:
        text shows look it up again and again)."""
        key = (id(resources), name)
        hit = self.fonts.get(key)
        if hit is not None and hit[0] is resources:
            return hit[1]
        font = self.dict_of(self.lookup(resources, "Font", name))
        if font is not None and self.resolve(font.get("Subtype")) != "Type3":
            font = None
        self.fonts[key] = (resources, font)  # holding resources keeps its id unique
        return font

    def type3(self, font, st, resources, depth):
        procs = self.dict_of(font.get("CharProcs"))
        if procs is None:
            return
        fres = font.get("Resources")
        for name in list(procs)[:4096]:
            glyph = self.resolve(procs[name])
            inner = st.copy()
            inner.render = 0
            self.content(glyph, fres, inner, depth + 1, parent_resources=resources)

    def xobject(self, name, st, resources, depth):
        obj = self.resolve(self.lookup(resources, "XObject", name))
        d = self.dict_of(obj)
        if d is None:
            return
        sub = self.resolve(d.get("Subtype"))
        if sub == "Image":
            self.xobject_image(obj, st, resources)
        elif sub == "Form" or sub is None:
            self.form(obj, d, st, resources, depth)

    def form(self, obj, d, st, resources, depth):
        self.content(obj, d.get("Resources"), st.copy(), depth + 1, parent_resources=resources)

    def annotations(self, annots, depth):
        """The normal appearances of the annotations that print (flag 3 set; hidden
        and NoView clear)."""
        annots = self.resolve(annots)
        if type(annots) is not list:
            return
        for a in annots[:4096]:
            d = self.dict_of(a)
            if d is None:
                continue
            flags = self.resolve(d.get("F"))
            flags = flags if type(flags) is int else 0
            if not flags & 4 or flags & 2 or flags & 32:
                continue
            ap = self.dict_of(d.get("AP"))
            if ap is None:
                continue
            normal = self.resolve(ap.get("N"))
            if not self.is_stream(normal):  # appearance states: /AS picks one
                states = self.dict_of(normal)
                state = self.resolve(d.get("AS"))
                normal = self.resolve(states.get(state)) if states is not None and isinstance(state, str) else None
            if self.is_stream(normal):
                self.content(normal, normal.dict.get("Resources"), _State(), depth + 1)


def _decode_inline(samples, filters, parms, limit):
    """Inline image data with its filters undone (Flate, LZW, RunLength, ASCII), or
    None when that cannot be done here."""
    if not filters:
        return bytes(samples[:limit])
    try:
        from spoolproxy.pdl import pdf as _pdf
        decode = _pdf._apply_filters
    except (ImportError, AttributeError):
        return None
    try:
        return decode(bytes(samples), list(filters), list(parms)[:len(filters)] + [None] * len(filters), limit)
    except PdlError:
        return None


def _page_dict(page):
    if isinstance(page, dict):
        return page
    d = getattr(page, "dict", None)
    if isinstance(d, dict):
        return d
    raise TypeError("page must be a page dictionary")


def _page_color(doc, page):
    """page_color without the guard against our own mistakes (tests and fuzzing)."""
    return _page_color_of(doc, _page_dict(page), page)


def _page_color_of(doc, d, page):
    scan = _Scan(doc)
    resources = d.get("Resources")
    if resources is None:
        resources = getattr(page, "resources", None)
    try:
        contents = scan.resolve(d.get("Contents"))
        if contents is not None:
            if type(contents) is not list:
                contents = [contents]
            scan.content(contents, resources, _State(), 0)
        scan.annotations(d.get("Annots"), 0)
    except _ColorFound:
        return True
    except _Undecided:
        return None
    return None if scan.undecided else False


def page_color(doc, page):
    """True if the page would put colour on paper, False if only black, gray and
    white, None if the scan cannot tell (see the module docstring)."""
    d = _page_dict(page)
    try:
        return _page_color_of(doc, d, page)
    except PdlError:
        raise
    except RecursionError:
        return None
    except (TypeError, ValueError, IndexError, KeyError, ArithmeticError, AttributeError, MemoryError):
        # a document shaped in a way this scan did not foresee: let Ghostscript decide
        return None
