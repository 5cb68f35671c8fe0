"""PDF structure reader and page counter.

This is the specification: ``ext/pdf.pyx`` (``spoolproxy._ext.pdf``) is its compiled
twin. The compiled module is this very source compiled by Cython (``include``d), with
the byte loops (repair scan, PNG predictors, RC4, LZW) replaced by typed C versions
that release the GIL. So this file must stay valid Cython: no ``from __future__``
import, and the names the twin replaces (see ext/pdf.pyx) stay module-level functions.

Reading works on a seekable binary file with random access: seek + bounded reads,
never the whole file. Memory grows with the number of objects the document has
(cross-reference tables of a repaired file, the object cache), never with its bytes.

Object model (what ``Document.resolve`` returns):

    dictionary   dict with str keys (the name without its slash)
    name         Name (a str subclass)
    integer      int          real     float      boolean   bool     null  None
    string       bytes (decrypted when the document is encrypted)
    array        list
    reference    Ref(num, gen)
    stream       Stream: .dict, .filters, .decoded(limit=None) -> bytes

Names are decoded as Latin-1 (one character per byte, lossless), after ``#xx`` escapes.

``Document(f, start=0)`` reads the PDF whose section starts at byte ``start`` of ``f``
(junk before ``%PDF-``, such as a PJL header, is allowed: offsets count from the
header, and from ``start`` when that is what the file's offsets say). A missing or
damaged cross-reference table is rebuilt by scanning the file for ``N G obj`` and
``trailer`` (``Document.repaired`` tells).

Media per page (``scan``): the MediaBox, intersected with the CropBox when there is
one, times /UserUnit, with /Rotate applied: a page shown rotated by 90 or 270 degrees
has its width and height swapped, so a page is given in the orientation it is viewed
and printed in (a landscape MediaBox rotated 90 degrees is a portrait page).
"""
import base64
import hashlib
import itertools
import re
import zlib
from typing import Iterator, NamedTuple

from spoolproxy.pdl.model import (
    ONE_SIDED, TWO_SIDED_LONG, TWO_SIDED_SHORT, DamagedDocument, EncryptedDocument, PdlError,
    RunBuilder, UnsupportedFormat, points_to_pwg,
)

__all__ = [
    "Name", "Ref", "Stream", "Page", "Document", "scan", "page_count", "page_media",
    "PdlError", "DamagedDocument", "EncryptedDocument", "UnsupportedFormat",
]

CHUNK = 1 << 20               # bytes per read when scanning the file
HEADER_WINDOW = 1024          # %PDF- must start within this many bytes of `start`
TAIL_WINDOW = 4096            # startxref is looked for in the last bytes of the file
MAX_NESTING = 64              # arrays/dictionaries inside each other
MAX_OBJECT = 1 << 24          # bytes of one object's text (stream data not included)
MAX_DECODED = 1 << 28         # bytes a stream may decode to when the caller sets no limit
MAX_TREE_DEPTH = 256          # levels of the page tree
MAX_XREF_SECTIONS = 4096      # /Prev chain length
MAX_CACHE = 8192              # parsed objects kept
_BLOCK = 1 << 16              # the read cache's block
_BLOCK_COUNT = 4              # blocks kept


class Name(str):
    """A PDF name object (without the slash)."""
    __slots__ = ()

    def __repr__(self) -> str:
        return "/" + str.__str__(self)


class Ref(NamedTuple):
    """An indirect reference ``num gen R``."""
    num: int
    gen: int


class Stream:
    """A stream object. ``dict`` is its dictionary; the data is read from the file
    only when ``decoded`` (or ``raw``) is called."""
    __slots__ = ("dict", "_doc", "_pos", "_length", "_ref")

    def __init__(self, d: dict, doc, pos: int, length: int, ref) -> None:
        self.dict = d
        self._doc = doc
        self._pos = pos
        self._length = length
        self._ref = ref  # Ref of the object holding it (for decryption); None inside an object stream

    def __repr__(self) -> str:
        return f"Stream({self.dict!r}, {self._length} bytes)"

    @property
    def filters(self) -> list:
        """The names of the stream's filters, in the order they are applied to decode."""
        return _filter_list(self._doc.resolve(self.dict.get("Filter")), self._doc)

    def raw(self, limit=None) -> bytes:
        """The stream's data as stored (after decryption, before the filters)."""
        return self._doc._stream_raw(self, limit)

    def decoded(self, limit=None) -> bytes:
        """The data with every filter undone. ``limit`` (bytes) cuts the result short;
        without it a stream decoding to more than MAX_DECODED bytes is a DamagedDocument.
        Image filters the reader does not decode (DCT, JPX, JBIG2, CCITTFax) raise
        UnsupportedFormat (see ``filters``)."""
        return self._doc._stream_decoded(self, limit)


class Page(dict):
    """A page dictionary with the inheritable attributes (MediaBox, CropBox, Rotate,
    Resources) filled in from its ancestors and resolved. ``ref`` is the page object's
    reference (None for a direct page dictionary), ``index`` its 0-based position."""
    __slots__ = ("ref", "index")

    def __init__(self, d: dict, ref, index: int) -> None:
        dict.__init__(self, d)
        self.ref = ref
        self.index = index


_new_tuple = tuple.__new__  # Ref(a, b) without the NamedTuple constructor's overhead


class _NeedMore(Exception):
    """The bytes in hand end inside a token: read a bigger window."""


class _Broken(Exception):
    """The cross-reference data does not match the file: repair it."""


# -- lexer ----------------------------------------------------------------------------------

_WS_CHARS = b"\x00\t\n\f\r "
_SKIP = re.compile(rb"(?:[\x00\t\n\f\r ]+|%[^\r\n]*)+")
_REGULAR = re.compile(rb"[^\x00\t\n\f\r ()<>\[\]{}/%]+")
_INT = re.compile(rb"[+-]?[0-9]+")
_REAL = re.compile(rb"[+-]?(?:[0-9]+\.[0-9]*|\.[0-9]+)")
_LOOSE_NUMBER = re.compile(rb"[+-]*([0-9]*\.?[0-9]*)")  # "--5", "1.2.3", "4-5": the leading number
_STR_SPECIAL = re.compile(rb"[()\\\r]")
_NOT_HEX = re.compile(rb"[^0-9A-Fa-f]")
_NAME_ESCAPE = re.compile(rb"#([0-9A-Fa-f]{2})")
_OCTAL = re.compile(rb"[0-7]{1,3}")
# a run of references "n g R" in an array (a /Kids array of thousands), read by one match
_REF_RUN = re.compile(rb"(?:[\x00\t\n\f\r ]*[0-9]{1,10}[\x00\t\n\f\r ]+[0-9]{1,5}[\x00\t\n\f\r ]+R"
                      rb"(?![^\x00\t\n\f\r ()<>\[\]{}/%]))+")
_ARRAY_SKIP = re.compile(rb"[^\[\]()<>%/]*")
_REF_ITEM = re.compile(rb"([0-9]+)[\x00\t\n\f\r ]+([0-9]+)")

# token kinds
_T_EOF, _T_INT, _T_REAL, _T_NAME, _T_STR, _T_KW, _T_OPEN_ARRAY, _T_CLOSE_ARRAY, _T_OPEN_DICT, _T_CLOSE_DICT = range(10)

_ESCAPES = {ord("n"): b"\n", ord("r"): b"\r", ord("t"): b"\t", ord("b"): b"\b", ord("f"): b"\f"}
_KEYWORDS = {b"true": True, b"false": False, b"null": None}
# keywords that cannot be inside an object: a container they appear in was not closed
_STRUCTURE = frozenset([b"endobj", b"stream", b"endstream", b"obj", b"xref", b"trailer", b"startxref"])


def _number(tok: bytes):
    """The value of a run of regular characters that looks like a number, or None."""
    if _INT.fullmatch(tok):
        if len(tok) > 18:
            return float(tok)  # too long for an integer anyone means; float() has no digit limit
        return int(tok)
    if _REAL.fullmatch(tok):
        return float(tok)
    c = tok[0]
    if c in b"+-.0123456789":
        m = _LOOSE_NUMBER.match(tok)
        digits = m[1]
        if any(48 <= b <= 57 for b in digits):
            neg = b"-" in tok[:m.start(1)]  # any minus among the signs, as other readers do
            head = digits.split(b".")
            text = head[0] + (b"." + head[1] if len(head) > 1 else b"")
            value = float(text if text[:1] != b"." else b"0" + text)
            return -value if neg else value
        if digits in (b"", b"."):
            return 0
    return None


class _Lexer:
    """Tokens and objects from ``data`` (a window of the file). When ``final`` is
    false, running into the end of ``data`` raises _NeedMore."""
    __slots__ = ("data", "pos", "final", "shallow")

    def __init__(self, data: bytes, pos: int = 0, final: bool = True, shallow: bool = False) -> None:
        self.data = data
        self.pos = pos
        self.final = final
        self.shallow = shallow  # arrays are skipped, read as [] or [None] (empty or not)

    def _end(self):
        if not self.final:
            raise _NeedMore()
        return _T_EOF, None

    def token(self):
        data = self.data
        m = _SKIP.match(data, self.pos)
        pos = m.end() if m else self.pos
        n = len(data)
        if pos >= n:
            self.pos = n
            return self._end()
        c = data[pos]
        if c == 0x2F:  # "/"
            m = _REGULAR.match(data, pos + 1)
            end = m.end() if m else pos + 1
            if end >= n and not self.final:
                raise _NeedMore()
            self.pos = end
            raw = data[pos + 1:end]
            if b"#" in raw:
                raw = _NAME_ESCAPE.sub(lambda e: bytes((int(e[1], 16),)), raw)
            return _T_NAME, Name(raw.decode("latin-1"))
        if c == 0x28:  # "("
            return _T_STR, self._literal(pos + 1)
        if c == 0x3C:  # "<"
            if pos + 1 >= n and not self.final:
                raise _NeedMore()
            if data[pos + 1:pos + 2] == b"<":
                self.pos = pos + 2
                return _T_OPEN_DICT, None
            end = data.find(b">", pos + 1)
            if end < 0:
                if not self.final:
                    raise _NeedMore()
                end = n
            self.pos = end + 1
            hexdigits = _NOT_HEX.sub(b"", data[pos + 1:end])
            if len(hexdigits) % 2:
                hexdigits += b"0"
            return _T_STR, bytes.fromhex(hexdigits.decode("ascii"))
        if c == 0x3E:  # ">"
            if pos + 1 >= n and not self.final:
                raise _NeedMore()
            if data[pos + 1:pos + 2] == b">":
                self.pos = pos + 2
                return _T_CLOSE_DICT, None
            self.pos = pos + 1
            return _T_KW, b">"
        if c == 0x5B:  # "["
            self.pos = pos + 1
            return _T_OPEN_ARRAY, None
        if c == 0x5D:  # "]"
            self.pos = pos + 1
            return _T_CLOSE_ARRAY, None
        if c in b"{})":
            self.pos = pos + 1
            return _T_KW, bytes((c,))
        m = _REGULAR.match(data, pos)
        end = m.end()
        if end >= n and not self.final:
            raise _NeedMore()
        self.pos = end
        tok = data[pos:end]
        value = _number(tok)
        if value is not None:
            return (_T_INT if type(value) is int else _T_REAL), value
        return _T_KW, tok

    def _literal(self, pos: int) -> bytes:
        data, n = self.data, len(self.data)
        out = bytearray()
        depth = 1
        while True:
            m = _STR_SPECIAL.search(data, pos)
            if m is None:
                if not self.final:
                    raise _NeedMore()
                out += data[pos:]  # unterminated: what there is
                self.pos = n
                return bytes(out)
            j = m.start()
            out += data[pos:j]
            c = data[j]
            pos = j + 1
            if c == 0x28:
                depth += 1
                out.append(c)
            elif c == 0x29:
                depth -= 1
                if depth == 0:
                    self.pos = pos
                    return bytes(out)
                out.append(c)
            elif c == 0x0D:  # an end of line in a string is a line feed, whatever it was
                if pos >= n and not self.final:
                    raise _NeedMore()
                if data[pos:pos + 1] == b"\n":
                    pos += 1
                out.append(0x0A)
            else:  # backslash
                if pos + 3 >= n and not self.final:
                    raise _NeedMore()
                if pos >= n:
                    continue
                e = data[pos]
                if e in _ESCAPES:
                    out += _ESCAPES[e]
                    pos += 1
                elif 0x30 <= e <= 0x37:
                    o = _OCTAL.match(data, pos)
                    out.append(int(o[0], 8) & 0xFF)
                    pos = o.end()
                elif e == 0x0D:  # line continuation
                    pos += 2 if data[pos + 1:pos + 2] == b"\n" else 1
                elif e == 0x0A:
                    pos += 1
                else:
                    out.append(e)
                    pos += 1

    def parse(self, depth: int = 0):
        kind, value = self.token()
        return self._object(kind, value, depth)

    def _object(self, kind, value, depth):
        if kind == _T_INT:
            if value >= 0:
                return self._maybe_ref(value)
            return value
        if kind == _T_NAME or kind == _T_STR or kind == _T_REAL:
            return value
        if kind == _T_OPEN_ARRAY:
            if self.shallow:
                return self._skip_array(depth + 1)
            return self._array(depth + 1)
        if kind == _T_OPEN_DICT:
            return self._dict(depth + 1)
        if kind == _T_KW:
            return _KEYWORDS.get(value)
        return None  # end of data, a stray "]" or ">>"

    def _maybe_ref(self, num):
        save = self.pos
        kind, gen = self.token()
        if kind == _T_INT and gen >= 0:
            kind, kw = self.token()
            if kind == _T_KW and kw == b"R":
                return Ref(num, gen)
        self.pos = save
        return num

    def _array(self, depth):
        if depth > MAX_NESTING:
            raise DamagedDocument("PDF objects nested too deeply")
        out = []
        while True:
            m = _REF_RUN.match(self.data, self.pos)
            if m is not None:
                out += [_new_tuple(Ref, (int(a), int(b))) for a, b in _REF_ITEM.findall(self.data, m.start(), m.end())]
                self.pos = m.end()
            save = self.pos
            kind, value = self.token()
            if kind == _T_CLOSE_ARRAY or kind == _T_EOF:
                return out
            if kind == _T_KW and value in _STRUCTURE:
                self.pos = save  # not closed: the caller sees the keyword
                return out
            if kind == _T_CLOSE_DICT:
                continue
            out.append(self._object(kind, value, depth))

    def _skip_array(self, depth):
        """Past an array without building it (a /Kids of thousands, when only the
        /Count beside it is wanted): [None] when it has elements, [] when not."""
        if depth > MAX_NESTING:
            raise DamagedDocument("PDF objects nested too deeply")
        data, n = self.data, len(self.data)
        nonempty = False
        while True:
            m = _ARRAY_SKIP.match(data, self.pos)
            end = m.end()
            if not nonempty and data[m.start():end].strip(_WS_CHARS):
                nonempty = True
            if end >= n:
                self.pos = n
                self._end()
                return [None] if nonempty else []
            c = data[end]
            if c == 0x5D:  # "]"
                self.pos = end + 1
                return [None] if nonempty else []
            self.pos = end
            if c == 0x25:  # "%": a comment
                self.pos = _SKIP.match(data, end).end()
                continue
            nonempty = True
            kind, value = self.token()
            self._object(kind, value, depth)

    def _dict(self, depth):
        if depth > MAX_NESTING:
            raise DamagedDocument("PDF objects nested too deeply")
        out = {}
        while True:
            save = self.pos
            kind, key = self.token()
            if kind == _T_CLOSE_DICT or kind == _T_EOF:
                return out
            if kind == _T_KW and key in _STRUCTURE:
                self.pos = save
                return out
            if kind != _T_NAME:
                self._object(kind, key, depth)  # not a key: skip it (and what it contains)
                continue
            save = self.pos
            kind, value = self.token()
            if kind == _T_CLOSE_DICT or kind == _T_EOF:
                out[str(key)] = None
                return out
            if kind == _T_KW and value in _STRUCTURE:
                self.pos = save
                out[str(key)] = None
                return out
            out[str(key)] = self._object(kind, value, depth)


def _parse_bytes(data: bytes):
    """One object from complete bytes (tests and object streams)."""
    return _Lexer(data, 0, True).parse()


# -- repair scan (replaced by a C loop in the compiled twin) ---------------------------------

_OBJ_HEADER = re.compile(
    rb"(?<![0-9])([0-9]{1,10})[\x00\t\n\f\r ]{1,32}([0-9]{1,5})[\x00\t\n\f\r ]{1,32}obj"
    rb"(?![^\x00\t\n\f\r ()<>\[\]{}/%])")
_TRAILER = re.compile(rb"trailer[\x00\t\n\f\r ]{0,32}<<")
_LEAD = 128       # bytes before a chunk that a match may look back at
_OVERLAP = 128    # bytes after a chunk that a match starting in it may reach


def _scan_chunk(data: bytes, lo: int, hi: int):
    """``N G obj`` headers and ``trailer <<`` keywords starting in data[lo:hi]:
    ([(num, gen, index), ...], [index of "trailer", ...]). A match is at most 83
    bytes long, so a chunk read with _LEAD bytes before and _OVERLAP bytes after
    finds exactly what a scan of the whole file would."""
    objs = []
    for m in _OBJ_HEADER.finditer(data, lo):
        if m.start() >= hi:
            break
        objs.append((int(m[1]), int(m[2]), m.start()))
    trailers = []
    for m in _TRAILER.finditer(data, lo):
        if m.start() >= hi:
            break
        trailers.append(m.start())
    return objs, trailers


# -- filters ----------------------------------------------------------------------------------

_FILTER_ALIASES = {
    "AHx": "ASCIIHexDecode", "A85": "ASCII85Decode", "LZW": "LZWDecode", "Fl": "FlateDecode",
    "RL": "RunLengthDecode", "CCF": "CCITTFaxDecode", "DCT": "DCTDecode",
}


def _filter_list(filters, doc):
    """The filter names of a stream's /Filter value (abbreviations expanded)."""
    if filters is None:
        return []
    if not isinstance(filters, list):
        filters = [filters]
    names = []
    for f in filters:
        f = doc.resolve(f) if doc is not None else f
        if isinstance(f, str):
            names.append(_FILTER_ALIASES.get(f, str(f)))
        else:
            raise DamagedDocument("PDF stream filter is not a name")
    return names


def _inflate(data: bytes, cap: int) -> bytes:
    """zlib data, at most ``cap`` + 1 bytes of it. Like other readers, a stream that
    breaks off or is corrupt half way gives what came before the damage."""
    d = zlib.decompressobj()
    out = []
    size = 0
    try:
        piece = d.decompress(data, cap + 1)
        out.append(piece)
        size += len(piece)
        while d.unconsumed_tail and size <= cap:
            piece = d.decompress(d.unconsumed_tail, cap + 1 - size)
            out.append(piece)
            size += len(piece)
        if size <= cap and not d.eof:
            out.append(d.flush())
    except zlib.error:
        if size == 0:
            # some producers write raw deflate without the zlib header
            try:
                d = zlib.decompressobj(-15)
                return d.decompress(data, cap + 1)
            except zlib.error:
                raise DamagedDocument("PDF stream: corrupt Flate data") from None
    return b"".join(out)


def _ascii_hex(data: bytes) -> bytes:
    end = data.find(b">")
    if end >= 0:
        data = data[:end]
    digits = _NOT_HEX.sub(b"", data)
    if len(digits) % 2:
        digits += b"0"
    return bytes.fromhex(digits.decode("ascii"))


def _ascii85(data: bytes) -> bytes:
    data = data.translate(None, _WS_CHARS)
    if data.startswith(b"<~"):
        data = data[2:]
    end = data.find(b"~")
    if end >= 0:
        data = data[:end]
    try:
        return base64.a85decode(data)
    except ValueError:
        raise DamagedDocument("PDF stream: corrupt ASCII85 data") from None


def _run_length(data: bytes, cap: int) -> bytes:
    out = bytearray()
    i, n = 0, len(data)
    while i < n and len(out) <= cap:
        c = data[i]
        if c < 128:
            out += data[i + 1:i + 2 + c]
            i += 2 + c
        elif c > 128:
            if i + 1 < n:
                out += data[i + 1:i + 2] * (257 - c)
            i += 2
        else:
            break
    return bytes(out)


def _lzw(data: bytes, early: int, cap: int) -> bytes:
    """LZW as in PDF (and TIFF): 9- to 12-bit codes, MSB first, 256 clear, 257 end.
    A code that is not defined yet means damage: decoding stops there."""
    out = bytearray()
    table = [bytes((i,)) for i in range(256)] + [b"", b""]
    bits, prev = 9, None
    buf = nbuf = 0
    for byte in data:
        buf = ((buf << 8) | byte) & 0xFFFFFF
        nbuf += 8
        while nbuf >= bits:
            nbuf -= bits
            code = (buf >> nbuf) & ((1 << bits) - 1)
            if code == 256:
                del table[258:]
                bits, prev = 9, None
                continue
            if code == 257:
                return bytes(out)
            if code < len(table):
                entry = table[code]
                if prev is not None and len(table) < 4096:
                    table.append(prev + entry[:1])
            elif code == len(table) and prev is not None:
                entry = prev + prev[:1]
                if len(table) < 4096:
                    table.append(entry)
            else:
                return bytes(out)
            out += entry
            if len(out) > cap:
                return bytes(out)
            prev = entry
            n = len(table) + early
            bits = 9 if n < 512 else 10 if n < 1024 else 11 if n < 2048 else 12
    return bytes(out)


def _png_unpredict(data: bytes, colors: int, bpc: int, columns: int) -> bytes:
    """Undo the PNG predictors (each row starts with its filter type byte)."""
    bpp = max(1, (colors * bpc + 7) // 8)
    rowlen = (colors * bpc * columns + 7) // 8
    if rowlen <= 0:
        return b""
    stride = rowlen + 1
    rows = len(data) // stride
    if rows and data.count(2, 0, rows * stride) >= rows and data[0:rows * stride:stride] == b"\x02" * rows:
        return _png_up_columns(data, rowlen, rows)
    out = bytearray()
    prior = bytearray(rowlen)
    for start in range(0, len(data) - stride + 1, stride):
        ftype = data[start]
        row = bytearray(data[start + 1:start + stride])
        if ftype == 1:
            for i in range(bpp, rowlen):
                row[i] = (row[i] + row[i - bpp]) & 0xFF
        elif ftype == 2:
            for i in range(rowlen):
                row[i] = (row[i] + prior[i]) & 0xFF
        elif ftype == 3:
            for i in range(rowlen):
                left = row[i - bpp] if i >= bpp else 0
                row[i] = (row[i] + ((left + prior[i]) >> 1)) & 0xFF
        elif ftype == 4:
            for i in range(rowlen):
                a = row[i - bpp] if i >= bpp else 0
                b = prior[i]
                c = prior[i - bpp] if i >= bpp else 0
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                pred = a if pa <= pb and pa <= pc else (b if pb <= pc else c)
                row[i] = (row[i] + pred) & 0xFF
        out += row
        prior = row
    return bytes(out)


def _png_up_columns(data: bytes, rowlen: int, rows: int) -> bytes:
    """Every row filtered with Up (what cross-reference streams use): each column is a
    running sum mod 256, computed a column at a time by C-speed builtins."""
    out = bytearray(rowlen * rows)
    stride = rowlen + 1
    for c in range(rowlen):
        column = data[c + 1:rows * stride:stride]
        out[c::rowlen] = bytes(map(_BYTE_MASK, itertools.accumulate(column)))
    return bytes(out)


_BYTE_MASK = (255).__and__


def _tiff_unpredict(data: bytes, colors: int, bpc: int, columns: int) -> bytes:
    """TIFF predictor 2 for 8-bit components (other depths are left as they are)."""
    if bpc != 8:
        return data
    rowlen = colors * columns
    if rowlen <= 0:
        return b""
    out = bytearray(data[:len(data) - len(data) % rowlen])
    for start in range(0, len(out), rowlen):
        for i in range(start + colors, start + rowlen):
            out[i] = (out[i] + out[i - colors]) & 0xFF
    return bytes(out)


def _int_param(parms: dict, key: str, default: int, lo: int, hi: int) -> int:
    v = parms.get(key, default)
    if type(v) is not int or not lo <= v <= hi:
        return default
    return v


def _unpredict(data: bytes, parms) -> bytes:
    if not isinstance(parms, dict):
        return data
    predictor = _int_param(parms, "Predictor", 1, 1, 15)
    if predictor == 1:
        return data
    colors = _int_param(parms, "Colors", 1, 1, 32)
    bpc = _int_param(parms, "BitsPerComponent", 8, 1, 16)
    columns = _int_param(parms, "Columns", 1, 1, 1 << 20)
    if predictor == 2:
        return _tiff_unpredict(data, colors, bpc, columns)
    if predictor >= 10:
        return _png_unpredict(data, colors, bpc, columns)
    return data


def _apply_filters(data: bytes, names: list, parms: list, limit) -> bytes:
    cap = MAX_DECODED if limit is None else max(0, limit)
    for name, p in zip(names, parms):
        if name == "FlateDecode":
            data = _unpredict(_inflate(data, cap), p)
        elif name == "LZWDecode":
            early = _int_param(p, "EarlyChange", 1, 0, 1) if isinstance(p, dict) else 1
            data = _unpredict(_lzw(data, early, cap), p)
        elif name == "ASCIIHexDecode":
            data = _ascii_hex(data)
        elif name == "ASCII85Decode":
            data = _ascii85(data)
        elif name == "RunLengthDecode":
            data = _run_length(data, cap)
        elif name == "Crypt":
            continue  # decryption is done before the filters (only /Identity is met in practice)
        else:
            raise UnsupportedFormat(f"PDF stream filter /{name} is not decoded here")
    if len(data) > cap:
        if limit is None:
            raise DamagedDocument(f"PDF stream decodes to more than {MAX_DECODED} bytes")
        data = data[:cap]
    return data


# -- encryption (standard security handler, empty user password) -----------------------------

_PAD = bytes.fromhex("28BF4E5E4E758A4164004E56FFFA01082E2E00B6D0683E802F0CA9FE6453697A")


def _rc4(key: bytes, data: bytes) -> bytes:
    s = list(range(256))
    j = 0
    klen = len(key)
    for i in range(256):
        j = (j + s[i] + key[i % klen]) & 0xFF
        s[i], s[j] = s[j], s[i]
    out = bytearray(len(data))
    i = j = 0
    for n in range(len(data)):
        i = (i + 1) & 0xFF
        j = (j + s[i]) & 0xFF
        s[i], s[j] = s[j], s[i]
        out[n] = data[n] ^ s[(s[i] + s[j]) & 0xFF]
    return bytes(out)


def _aes_cbc(key: bytes, iv: bytes, data: bytes, decrypt: bool) -> bytes:
    try:
        from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
    except ImportError:  # pragma: no cover - a dependency of the package
        raise EncryptedDocument("AES-encrypted PDF: the cryptography package is not installed") from None
    cipher = Cipher(algorithms.AES(key), modes.CBC(iv))
    op = cipher.decryptor() if decrypt else cipher.encryptor()
    return op.update(data) + op.finalize()


def _aes_decrypt(key: bytes, data: bytes) -> bytes:
    """PDF AES: a 16-byte IV, then CBC data with PKCS#5 padding (tolerated when wrong)."""
    if len(data) < 32:
        return b""
    body = data[16:len(data) - (len(data) % 16)]
    out = _aes_cbc(key, data[:16], body, True)
    pad = out[-1] if out else 0
    if 1 <= pad <= 16 and out.endswith(bytes((pad,)) * pad):
        out = out[:-pad]
    return out


def _hash_r6(password: bytes, salt: bytes, udata: bytes) -> bytes:
    """ISO 32000-2 algorithm 2.B."""
    k = hashlib.sha256(password + salt + udata).digest()
    rounds = 0
    e = b""
    while rounds < 64 or e[-1] > rounds - 32:
        e = _aes_cbc(k[:16], k[16:32], (password + k + udata) * 64, False)
        k = (hashlib.sha256, hashlib.sha384, hashlib.sha512)[sum(e[:16]) % 3](e).digest()
        rounds += 1
    return k[:32]


def _bytes_field(enc: dict, key: str, size: int) -> bytes:
    v = enc.get(key)
    if not isinstance(v, bytes) or len(v) < size:
        raise DamagedDocument(f"PDF /Encrypt /{key} is missing or too short")
    return v


class _Crypt:
    """Decrypts strings and streams of a document secured by the standard security
    handler, when its user password is empty."""
    __slots__ = ("key", "stm", "str", "r5", "encrypt_metadata")

    def __init__(self, enc: dict, doc_id: bytes, resolve) -> None:
        if enc.get("Filter") != "Standard":
            raise EncryptedDocument(f"PDF security handler {enc.get('Filter')!r} is not supported")
        v = enc.get("V", 0)
        r = enc.get("R", 0)
        if type(v) is not int or type(r) is not int:
            raise DamagedDocument("PDF /Encrypt: /V or /R is not an integer")
        self.encrypt_metadata = enc.get("EncryptMetadata", True) is not False
        self.r5 = r >= 5
        if v in (1, 2):
            length = enc.get("Length", 40)
            if type(length) is not int or not 40 <= length <= 128 or v == 1:
                length = 40 if v == 1 or type(length) is not int else max(40, min(128, length))
            self.stm = self.str = "RC4"
            self.key = self._key_r4(enc, doc_id, r, length // 8)
        elif v == 4:
            cf = resolve(enc.get("CF"))
            self.stm = self._method(resolve, cf, enc.get("StmF", "Identity"))
            self.str = self._method(resolve, cf, enc.get("StrF", "Identity"))
            length = 16
            for m in (self.stm, self.str):
                if m == "RC4":
                    length = self._cf_length(resolve, cf, enc)
            self.key = self._key_r4(enc, doc_id, r, length)
        elif v == 5:
            self.stm = self.str = "AESV3"
            self.key = self._key_r6(enc, r)
        else:
            raise EncryptedDocument(f"PDF encryption /V {v} is not supported")

    @staticmethod
    def _method(resolve, cf, name) -> str | None:
        if name == "Identity":
            return None
        d = resolve(cf.get(name)) if isinstance(cf, dict) else None
        cfm = resolve(d.get("CFM")) if isinstance(d, dict) else None
        if cfm == "V2":
            return "RC4"
        if cfm == "AESV2":
            return "AESV2"
        if cfm == "None" or cfm is None:
            return None
        raise EncryptedDocument(f"PDF crypt filter method {cfm!r} is not supported")

    @staticmethod
    def _cf_length(resolve, cf, enc) -> int:
        d = resolve(cf.get(enc.get("StmF"))) if isinstance(cf, dict) else None
        n = d.get("Length") if isinstance(d, dict) else None
        if type(n) is not int:
            n = enc.get("Length", 128)
        if type(n) is not int:
            return 16
        n = n // 8 if n > 16 else n  # bits by the specification, bytes by some producers
        return max(5, min(16, n))

    def _key_r4(self, enc, doc_id, r, n) -> bytes:
        o = _bytes_field(enc, "O", 32)[:32]
        u = _bytes_field(enc, "U", 16)
        p = enc.get("P", 0)
        if type(p) is not int:
            raise DamagedDocument("PDF /Encrypt /P is not an integer")
        h = hashlib.md5(_PAD + o + (p & 0xFFFFFFFF).to_bytes(4, "little") + doc_id)
        if r >= 4 and not self.encrypt_metadata:
            h.update(b"\xff\xff\xff\xff")
        key = h.digest()[:n]
        if r >= 3:
            for _ in range(50):
                key = hashlib.md5(key).digest()[:n]
        if r == 2:
            ok = _rc4(key, _PAD) == u[:32]
        else:
            x = _rc4(key, hashlib.md5(_PAD + doc_id).digest())
            for i in range(1, 20):
                x = _rc4(bytes(b ^ i for b in key), x)
            ok = x == u[:16]
        if not ok:
            raise EncryptedDocument("PDF is encrypted with a user password")
        return key

    def _key_r6(self, enc, r) -> bytes:
        u = _bytes_field(enc, "U", 48)
        ue = _bytes_field(enc, "UE", 32)
        if r >= 6:
            ok = _hash_r6(b"", u[32:40], b"") == u[:32]
            kek = _hash_r6(b"", u[40:48], b"") if ok else b""
        else:
            ok = hashlib.sha256(u[32:40]).digest() == u[:32]
            kek = hashlib.sha256(u[40:48]).digest() if ok else b""
        if not ok:
            raise EncryptedDocument("PDF is encrypted with a user password")
        return _aes_cbc(kek, b"\0" * 16, ue[:32], True)

    def _object_key(self, ref, aes: bool) -> bytes:
        if self.r5:
            return self.key
        num, gen = ref
        h = hashlib.md5(self.key + (num & 0xFFFFFF).to_bytes(3, "little") + (gen & 0xFFFF).to_bytes(2, "little")
                        + (b"sAlT" if aes else b""))
        return h.digest()[:min(len(self.key) + 5, 16)]

    def decrypt(self, data: bytes, ref, method) -> bytes:
        if method is None:
            return data
        if method == "RC4":
            return _rc4(self._object_key(ref, False), data)
        return _aes_decrypt(self._object_key(ref, True), data)

    def decrypt_strings(self, obj, ref, depth: int = 0):
        """``obj`` with every string in it decrypted (containers changed in place)."""
        if isinstance(obj, bytes):
            return self.decrypt(obj, ref, self.str)
        if depth > MAX_NESTING:
            return obj
        if isinstance(obj, dict):
            for k, v in obj.items():
                if isinstance(v, (bytes, list, dict)):
                    obj[k] = self.decrypt_strings(v, ref, depth + 1)
        elif isinstance(obj, list):
            for i, v in enumerate(obj):
                if isinstance(v, (bytes, list, dict)):
                    obj[i] = self.decrypt_strings(v, ref, depth + 1)
        return obj


# -- the file --------------------------------------------------------------------------------

class _Source:
    """Bounded reads at offsets, small ones served from a few cached blocks (the
    trailer, the xref table and the objects each cluster)."""
    __slots__ = ("f", "size", "_blocks")

    def __init__(self, f) -> None:
        self.f = f
        f.seek(0, 2)
        self.size = f.tell()
        self._blocks = {}  # aligned block offset -> bytes (up to _BLOCK_COUNT of them)

    def read(self, pos: int, n: int) -> bytes:
        if pos < 0:
            n += pos
            pos = 0
        if n <= 0 or pos >= self.size:
            return b""
        if n > _BLOCK // 2:
            self.f.seek(pos)
            return self.f.read(n)
        bp = pos - pos % _BLOCK
        block = self._block(bp)
        if pos + n <= bp + _BLOCK:
            return block[pos - bp:pos - bp + n]
        return block[pos - bp:] + self._block(bp + _BLOCK)[:pos + n - bp - _BLOCK]

    def _block(self, bp: int) -> bytes:
        block = self._blocks.get(bp)
        if block is None:
            if len(self._blocks) >= _BLOCK_COUNT:
                del self._blocks[next(iter(self._blocks))]  # the oldest
            self.f.seek(bp)
            block = self._blocks[bp] = self.f.read(_BLOCK)
        return block

    def find(self, needle: bytes, pos: int, end: int = -1) -> int:
        """Offset of the first ``needle`` at or after ``pos`` (before ``end``), or -1."""
        end = self.size if end < 0 else min(end, self.size)
        k = len(needle)
        while pos < end:
            chunk = self.read(pos, min(CHUNK, end - pos) + k - 1)
            i = chunk.find(needle)
            if i >= 0 and pos + i + k <= end:
                return pos + i
            pos += CHUNK
        return -1


# cross-reference entries: (0,) free, (1, offset, gen) in use, (2, stream num, index) compressed
_FREE = (0,)
_XREF_ENTRY = re.compile(rb"[\x00\t\n\f\r ]*([0-9]{1,10})[\x00\t\n\f\r ]+([0-9]{1,5})[\x00\t\n\f\r ]*([nf])")
_SUBSECTION = re.compile(rb"[\x00\t\n\f\r ]*([0-9]{1,10})[\x00\t\n\f\r ]+([0-9]{1,10})[ \t]*[\r\n]")
_EXACT_ENTRY = re.compile(rb"[0-9]{10} [0-9]{5} [nf]")
_WS_RUN = re.compile(rb"[\x00\t\n\f\r ]*")
_EOL_RUN = re.compile(rb"[\r\n ]*")
_TRAILER_KW = re.compile(rb"[\x00\t\n\f\r ]*trailer")


class _TableSection:
    """One classic ``xref`` table, read lazily: an entry's place is computed from its
    subsection's start and the entry length (20 bytes, or the 19/21 some writers use)."""
    __slots__ = ("src", "subs", "irregular")

    def __init__(self, src) -> None:
        self.src = src
        self.subs = []        # (first, count, offset of the first entry, entry length)
        self.irregular = {}   # num -> entry, for subsections whose entries are not evenly spaced

    def lookup(self, num: int):
        hit = self.irregular.get(num)
        if hit is not None:
            return hit
        for first, count, pos, elen in reversed(self.subs):  # a later subsection wins
            if first <= num < first + count:
                m = _XREF_ENTRY.match(self.src.read(pos + (num - first) * elen, elen + 4))
                if m is None:
                    raise _Broken()
                if m[3] == b"f":
                    return _FREE
                return (1, int(m[1]), int(m[2]))
        return None


class _StreamSection:
    """A cross-reference stream: decoded on first use, rows read from the bytes."""
    __slots__ = ("doc", "stream", "widths", "index", "data")

    def __init__(self, doc, stream) -> None:
        self.doc = doc
        self.stream = stream
        d = stream.dict
        w = doc.resolve(d.get("W"))
        if (not isinstance(w, list) or len(w) < 3
                or any(type(x) is not int or not 0 <= x <= 8 for x in w[:3])):
            raise _Broken()
        self.widths = (w[0], w[1], w[2])
        size = d.get("Size")
        index = doc.resolve(d.get("Index"))
        if index is None:
            index = [0, size]
        if not isinstance(index, list) or any(type(x) is not int or x < 0 for x in index):
            raise _Broken()
        self.index = [(index[i], index[i + 1]) for i in range(0, len(index) - 1, 2)]
        self.data = None

    def lookup(self, num: int):
        row = 0
        for first, count in self.index:
            if first <= num < first + count:
                row += num - first
                break
            row += count
        else:
            return None
        if self.data is None:
            self.data = self.doc._stream_decoded(self.stream, None, decrypt=False)
        w0, w1, w2 = self.widths
        rowlen = w0 + w1 + w2
        pos = row * rowlen
        if pos + rowlen > len(self.data):
            return None
        t = int.from_bytes(self.data[pos:pos + w0], "big") if w0 else 1
        a = int.from_bytes(self.data[pos + w0:pos + w0 + w1], "big")
        b = int.from_bytes(self.data[pos + w0 + w1:pos + rowlen], "big")
        if t == 0:
            return _FREE
        if t == 1:
            return (1, a, b)
        if t == 2:
            return (2, a, b)
        return None  # reserved types are to be treated as null references... by skipping them


class _Hybrid:
    """A table with its /XRefStm: a table entry in use wins, then the stream's."""
    __slots__ = ("table", "stream")

    def __init__(self, table, stream) -> None:
        self.table = table
        self.stream = stream

    def lookup(self, num: int):
        a = self.table.lookup(num)
        if a is not None and a[0] != 0:
            return a
        b = self.stream.lookup(num)
        if b is not None and b[0] != 0:
            return b
        return a if a is not None else b


class _Repaired:
    __slots__ = ("entries",)

    def __init__(self, entries: dict) -> None:
        self.entries = entries

    def lookup(self, num: int):
        return self.entries.get(num)


_INHERITED = ("MediaBox", "CropBox", "Rotate", "Resources")
_STARTXREF = re.compile(rb"startxref[\x00\t\n\f\r ]+([0-9]{1,15})")
_OBJ_START = re.compile(rb"[0-9]{1,10}[\x00\t\n\f\r ]+[0-9]{1,5}[\x00\t\n\f\r ]+obj")
_TRAILER_KEYS_SKIPPED = ("Prev", "XRefStm", "Type", "W", "Index", "Length", "Filter", "DecodeParms")


class Document:
    """A PDF read from ``f`` (a seekable binary file) starting at ``start``."""

    def __init__(self, f, start: int = 0) -> None:
        if type(start) is not int:
            raise TypeError("start must be an int")
        self._src = _Source(f)
        self.start = max(0, start)
        self.size = self._src.size
        head = self._src.read(self.start, HEADER_WINDOW + 8)
        i = head.find(b"%PDF-")
        self.base = self.start + (i if 0 <= i < HEADER_WINDOW + 4 else 0)
        self.repaired = False
        self.warnings = []
        self._sections = []
        self._cache = {}
        self._objstm_cache = {}
        self._busy = set()
        self._crypt = None
        self._encrypt_num = None
        self._shift = self.base
        self.trailer = {}
        try:
            self._load_xref()
            root = self.resolve(self.trailer.get("Root"))
            if not isinstance(root, dict):
                raise _Broken()
        except (_Broken, DamagedDocument):
            self._repair()
        self._setup_encryption()
        self.catalog = self.resolve(self.trailer.get("Root"))
        if not isinstance(self.catalog, dict):
            raise DamagedDocument("PDF has no document catalog")

    # -- cross-reference ------------------------------------------------------------------

    def _find_startxref(self) -> int:
        tail_pos = max(self.base, self.size - TAIL_WINDOW)
        tail = self._src.read(tail_pos, self.size - tail_pos)
        i = tail.rfind(b"startxref")
        if i < 0:
            raise _Broken()
        m = _STARTXREF.match(tail, i)
        if m is None:
            raise _Broken()
        return int(m[1])

    def _looks_like_xref(self, pos: int) -> bool:
        head = self._src.read(pos, 32)
        if head.startswith(b"xref"):
            return True
        return _OBJ_START.match(head) is not None

    def _load_xref(self) -> None:
        offset = self._find_startxref()
        for shift in (self.base, self.start, 0):
            if self._looks_like_xref(shift + offset):
                self._shift = shift
                break
        else:
            raise _Broken()
        pos = self._shift + offset
        seen = set()
        trailer = {}
        while pos is not None:
            if pos in seen or len(self._sections) >= MAX_XREF_SECTIONS:
                break
            seen.add(pos)
            if self._src.read(pos, 4) == b"xref":
                section, tdict = self._read_table(pos)
                stm = tdict.get("XRefStm")
                if type(stm) is int and stm >= 0:
                    try:
                        xs = self._read_xref_stream(self._shift + stm)
                        section = _Hybrid(section, xs)
                    except (_Broken, DamagedDocument):
                        pass
            else:
                section = self._read_xref_stream(pos)
                tdict = section.stream.dict
            self._sections.append(section)
            for k, v in tdict.items():
                if k not in trailer and k not in _TRAILER_KEYS_SKIPPED:
                    trailer[k] = v
            prev = tdict.get("Prev")
            pos = self._shift + prev if type(prev) is int and prev >= 0 else None
        self.trailer = trailer
        if not self._sections:
            raise _Broken()

    def _read_table(self, pos: int):
        section = _TableSection(self._src)
        pos += 4
        while True:
            head = self._src.read(pos, 64)
            m = _SUBSECTION.match(head)
            if m is None:
                break
            first, count = int(m[1]), int(m[2])
            pos += m.end()
            ws = _WS_RUN.match(self._src.read(pos, 32))
            pos += ws.end()
            if count == 0:
                continue
            first_entry = self._src.read(pos, 24)
            if not _EXACT_ENTRY.match(first_entry):
                pos = self._read_irregular(section, pos, first, count)
                continue
            eol = _EOL_RUN.match(first_entry, 18).end() - 18
            elen = 18 + eol
            last = self._src.read(pos + (count - 1) * elen, elen)
            if len(last) < elen or not _EXACT_ENTRY.match(last):
                pos = self._read_irregular(section, pos, first, count)
                continue
            section.subs.append((first, count, pos, elen))
            pos += count * elen
        head = self._src.read(pos, 64)
        m = _TRAILER_KW.match(head)
        if m is None:
            raise _Broken()
        tdict = self._parse_at(pos + m.end())
        if not isinstance(tdict, dict):
            raise _Broken()
        return section, tdict

    def _read_irregular(self, section, pos: int, first: int, count: int) -> int:
        """A subsection whose entries are not evenly spaced: read them one by one."""
        for i in range(count):
            data = self._src.read(pos, 40)
            m = _XREF_ENTRY.match(data)
            if m is None:
                break
            num = first + i
            section.irregular[num] = _FREE if m[3] == b"f" else (1, int(m[1]), int(m[2]))
            pos += m.end()
        return pos

    def _read_xref_stream(self, pos: int):
        try:
            obj = self._parse_indirect(pos, None)[1]
        except _NeedMore:
            raise _Broken() from None
        if not isinstance(obj, Stream) or obj.dict.get("Type") != "XRef":
            raise _Broken()
        return _StreamSection(self, obj)

    def _lookup(self, num: int):
        if num == 0:
            return _FREE
        for s in self._sections:
            e = s.lookup(num)
            if e is not None:
                return e
        return None

    # -- repair -----------------------------------------------------------------------------

    def _repair(self) -> None:
        if self.repaired:
            raise DamagedDocument("PDF cross-reference is damaged beyond repair")
        self.repaired = True
        self.warnings.append("PDF cross-reference table was damaged and has been rebuilt")
        entries = {}
        trailers = []
        pos = self.base
        while pos < self.size:
            lead = min(_LEAD, pos - self.base)
            data = self._src.read(pos - lead, lead + CHUNK + _OVERLAP)
            objs, trs = _scan_chunk(data, lead, lead + CHUNK)
            for num, gen, i in objs:
                entries[num] = (1, pos - lead + i, gen)
            for i in trs:
                trailers.append(pos - lead + i)
                if len(trailers) > 64:
                    del trailers[0]
            pos += CHUNK
        self._sections = [_Repaired(entries)]
        self._shift = 0
        self._cache.clear()
        self._objstm_cache.clear()
        # objects in object streams, and the dictionaries that can stand for a trailer
        candidates = []
        catalog = None
        streams = []
        for num in sorted(entries, key=lambda k: entries[k][1]):
            try:
                obj = self._fetch_direct(num, entries[num])
            except (PdlError, _Broken):
                continue
            d = obj.dict if isinstance(obj, Stream) else obj
            if not isinstance(d, dict):
                continue
            kind = d.get("Type")
            if kind == "ObjStm" and isinstance(obj, Stream):
                streams.append(num)
            elif kind == "XRef":
                candidates.append(d)
            elif kind == "Catalog":
                catalog = Ref(num, entries[num][2])
        for num in streams:
            try:
                pairs = self._objstm(num)[1]
            except (PdlError, _Broken):
                continue
            for idx, (inner, _off) in enumerate(pairs):
                if inner not in entries:
                    entries[inner] = (2, num, idx)
        for pos in reversed(trailers):
            try:
                d = self._parse_at(pos + 7)
            except (PdlError, _Broken, _NeedMore):
                continue
            if isinstance(d, dict):
                candidates.append(d)
        self._cache.clear()
        trailer = {}
        for d in reversed(candidates):  # the last one in the file first
            root = d.get("Root")
            if "Root" in trailer or not isinstance(root, Ref):
                continue
            try:
                ok = isinstance(self.resolve(root), dict)
            except (PdlError, _Broken):
                ok = False
            if ok:
                for k, v in d.items():
                    if k not in _TRAILER_KEYS_SKIPPED:
                        trailer.setdefault(k, v)
        if "Root" not in trailer and catalog is not None:
            trailer["Root"] = catalog
        if "Encrypt" not in trailer:
            for d in reversed(candidates):
                if "Encrypt" in d:
                    trailer["Encrypt"] = d["Encrypt"]
                    trailer.setdefault("ID", d.get("ID"))
                    break
        self.trailer = trailer

    # -- objects ----------------------------------------------------------------------------

    def _parse_at(self, pos: int):
        """One object at a file offset (no ``N G obj`` header), e.g. a trailer dictionary."""
        size = 4096
        while True:
            data = self._src.read(pos, size)
            final = len(data) < size
            try:
                return _Lexer(data, 0, final).parse()
            except _NeedMore:
                if size >= MAX_OBJECT:
                    raise DamagedDocument("PDF object too large") from None
                size *= 8

    def _parse_indirect(self, pos: int, want, shallow: bool = False):
        """(Ref, object) of the ``N G obj ... endobj`` at ``pos``; the object number must
        be ``want`` unless that is None. A stream's data is located, not read."""
        size = 4096
        while True:
            data = self._src.read(pos, size)
            final = len(data) < size
            lex = _Lexer(data, 0, final, shallow)
            try:
                k1, num = lex.token()
                k2, gen = lex.token()
                k3, kw = lex.token()
                if k1 != _T_INT or k2 != _T_INT or k3 != _T_KW or kw != b"obj" or num < 0 or gen < 0:
                    raise _Broken()
                if want is not None and num != want:
                    raise _Broken()
                obj = lex.parse()
                if shallow or not isinstance(obj, dict):
                    return Ref(num, gen), obj
                save = lex.pos
                kind, kw = lex.token()
                if kind != _T_KW or kw != b"stream":
                    lex.pos = save
                    return Ref(num, gen), obj
                p = lex.pos
                if p + 64 > len(data) and not final:
                    raise _NeedMore()
                if data[p:p + 2] == b"\r\n":
                    p += 2
                elif data[p:p + 1] in (b"\n", b"\r"):
                    p += 1
                else:
                    while data[p:p + 1] == b" ":
                        p += 1
                    if data[p:p + 2] == b"\r\n":
                        p += 2
                    elif data[p:p + 1] in (b"\n", b"\r"):
                        p += 1
                ref = Ref(num, gen)
                return ref, self._make_stream(obj, pos + p, ref)
            except _NeedMore:
                if final or size >= MAX_OBJECT:
                    raise DamagedDocument("PDF object too large") from None
                size = self._next_window(pos, size)

    def _next_window(self, pos: int, size: int) -> int:
        """A window that likely holds the whole object: up to its "endobj" (one search
        instead of parsing ever bigger windows), at least 8 times the last one."""
        end = self._src.find(b"endobj", pos + size - 8, pos + MAX_OBJECT)
        if end < 0:
            return size * 8
        return min(MAX_OBJECT, max(end - pos + 64, size * 2))

    def _make_stream(self, d: dict, data_pos: int, ref) -> Stream:
        length = d.get("Length")
        if isinstance(length, Ref):
            try:
                length = self.resolve(length)
            except (PdlError, _Broken):
                length = None
        if type(length) is int and 0 <= length <= self.size - data_pos:
            tail = self._src.read(data_pos + length, 32)
            if tail.lstrip(_WS_CHARS).startswith(b"endstream"):
                return Stream(d, self, data_pos, length, ref)
        end = self._src.find(b"endstream", data_pos)
        if end < 0:
            end = self.size
        length = end - data_pos
        before = self._src.read(end - 2, 2) if length >= 2 else b""
        if before == b"\r\n":
            length -= 2
        elif before[-1:] in (b"\n", b"\r"):
            length -= 1
        return Stream(d, self, data_pos, max(0, length), ref)

    def _fetch_direct(self, num: int, entry):
        """The object an in-use entry (1, offset, gen) points at."""
        ref, obj = self._parse_indirect(self._shift + entry[1], num)
        if self._crypt is not None and num != self._encrypt_num:
            if not isinstance(obj, Stream):
                obj = self._crypt.decrypt_strings(obj, ref)
            else:
                self._crypt.decrypt_strings(obj.dict, ref)
        return obj

    def _objstm(self, num: int):
        """(decoded data, [(object number, offset from /First), ...]) of object stream ``num``."""
        hit = self._objstm_cache.get(num)
        if hit is not None:
            return hit
        stm = self._fetch(num)
        if not isinstance(stm, Stream):
            raise DamagedDocument("PDF object stream is not a stream")
        n = self.resolve(stm.dict.get("N"))
        first = self.resolve(stm.dict.get("First"))
        if type(n) is not int or type(first) is not int or n < 0 or first < 0:
            raise DamagedDocument("PDF object stream without a valid /N and /First")
        data = stm.decoded()
        lex = _Lexer(data, 0, True)
        pairs = []
        for _ in range(n):
            k1, a = lex.token()
            k2, b = lex.token()
            if k1 != _T_INT or k2 != _T_INT or lex.pos > first:
                break
            pairs.append((a, first + b))
        if len(self._objstm_cache) >= 8:
            self._objstm_cache.clear()
        hit = (data, pairs)
        self._objstm_cache[num] = hit
        return hit

    def _fetch_compressed(self, num: int, stm_num: int, index: int):
        data, pairs = self._objstm(stm_num)
        if not 0 <= index < len(pairs) or pairs[index][0] != num:
            index = next((i for i, p in enumerate(pairs) if p[0] == num), -1)
            if index < 0:
                return None
        lex = _Lexer(data, pairs[index][1], True)
        obj = lex.parse()
        return obj

    def _fetch(self, num: int):
        if num in self._cache:
            return self._cache[num]
        if num in self._busy:
            raise DamagedDocument("PDF object refers to itself while being read")
        self._busy.add(num)
        try:
            try:
                obj = self._fetch_uncached(num)
            except (_Broken, DamagedDocument):
                if self.repaired:
                    raise DamagedDocument("PDF cross-reference is damaged beyond repair") from None
                self._busy.discard(num)
                self._repair_during_use()
                self._busy.add(num)
                try:
                    obj = self._fetch_uncached(num)
                except _Broken:
                    raise DamagedDocument("PDF cross-reference is damaged beyond repair") from None
        finally:
            self._busy.discard(num)
        if len(self._cache) >= MAX_CACHE:
            self._cache.clear()
        self._cache[num] = obj
        return obj

    def _repair_during_use(self) -> None:
        keep = self.trailer
        self._repair()
        for k in ("Root", "Encrypt", "ID", "Info"):  # what the table said still stands when the scan finds no trailer
            if k not in self.trailer and k in keep:
                self.trailer[k] = keep[k]

    def _fetch_uncached(self, num: int):
        entry = self._lookup(num)
        if entry is None or entry[0] == 0:
            return None
        if entry[0] == 1:
            if not 0 <= self._shift + entry[1] < self.size:
                raise _Broken()
            return self._fetch_direct(num, entry)
        if entry[1] == num:
            raise _Broken()
        try:
            return self._fetch_compressed(num, entry[1], entry[2])
        except DamagedDocument:
            raise _Broken() from None

    def resolve(self, obj):
        """``obj`` with an indirect reference replaced by the object it refers to (a free
        or missing object is None); anything else is returned as it is."""
        hops = 0
        while isinstance(obj, Ref):
            hops += 1
            if hops > 32:
                raise DamagedDocument("PDF reference chain too long")
            obj = self._fetch(obj[0])
        return obj

    # -- streams ----------------------------------------------------------------------------

    def _stream_raw(self, stream: Stream, limit, decrypt: bool = True) -> bytes:
        n = stream._length
        if limit is None and n > MAX_DECODED:
            raise DamagedDocument("PDF stream too long")
        data = self._src.read(stream._pos, n)
        if decrypt and self._crypt is not None and stream._ref is not None:
            method = self._crypt.stm
            d = stream.dict
            if d.get("Type") == "Metadata" and not self._crypt.encrypt_metadata:
                method = None
            names = _filter_list(self.resolve(d.get("Filter")), self)
            if names[:1] == ["Crypt"]:
                parms = self.resolve(d.get("DecodeParms"))
                p = parms[0] if isinstance(parms, list) and parms else parms
                p = self.resolve(p)
                if not isinstance(p, dict) or p.get("Name", "Identity") == "Identity":
                    method = None
            data = self._crypt.decrypt(data, stream._ref, method)
        if limit is not None and len(data) > limit:
            data = data[:limit]
        return data

    def _stream_decoded(self, stream: Stream, limit, decrypt: bool = True) -> bytes:
        d = stream.dict
        names = _filter_list(self.resolve(d.get("Filter")), self)
        parms = self.resolve(d.get("DecodeParms", d.get("DP")))
        if not isinstance(parms, list):
            parms = [parms]
        parms = [self.resolve(p) for p in parms] + [None] * (len(names) - len(parms))
        raw = self._stream_raw(stream, None if names else limit, decrypt)
        return _apply_filters(raw, names, parms, limit)

    # -- encryption -------------------------------------------------------------------------

    def _setup_encryption(self) -> None:
        enc_ref = self.trailer.get("Encrypt")
        if enc_ref is None:
            return
        if isinstance(enc_ref, Ref):
            self._encrypt_num = enc_ref.num
        enc = self.resolve(enc_ref)
        if not isinstance(enc, dict):
            return
        ids = self.resolve(self.trailer.get("ID"))
        doc_id = ids[0] if isinstance(ids, list) and ids and isinstance(ids[0], bytes) else b""
        self._crypt = _Crypt(enc, doc_id, self.resolve)
        self._cache.clear()
        self._objstm_cache.clear()

    # -- pages ------------------------------------------------------------------------------

    def pages(self) -> Iterator[Page]:
        """Every page in order, from a walk of the /Pages tree. A node met a second time
        (a cycle or a shared subtree) is skipped; deeper than MAX_TREE_DEPTH is damage."""
        root_ref = self.catalog.get("Pages")
        root = self.resolve(root_ref)
        if not isinstance(root, dict):
            return
        seen = set()
        if isinstance(root_ref, Ref):
            seen.add(root_ref.num)
        index = 0
        stack = [(self._kids(root), 0, self._inherit({}, root))]
        while stack:
            kids, i, inherited = stack[-1]
            if i >= len(kids):
                stack.pop()
                continue
            stack[-1] = (kids, i + 1, inherited)
            ref = kids[i]
            if isinstance(ref, Ref):
                if ref.num in seen:
                    continue
                seen.add(ref.num)
            node = self.resolve(ref)
            if not isinstance(node, dict):
                continue
            kind = node.get("Type")
            if kind == "Pages" or (kind != "Page" and "Kids" in node):
                if len(stack) >= MAX_TREE_DEPTH:
                    raise DamagedDocument("PDF page tree too deep")
                stack.append((self._kids(node), 0, self._inherit(inherited, node)))
                continue
            page = Page(node, ref if isinstance(ref, Ref) else None, index)
            for k in _INHERITED:
                if k in node:
                    page[k] = self.resolve(node[k])
                elif k in inherited:
                    page[k] = inherited[k]
            index += 1
            yield page

    def _kids(self, node: dict) -> list:
        kids = self.resolve(node.get("Kids"))
        return kids if isinstance(kids, list) else []

    def _inherit(self, inherited: dict, node: dict) -> dict:
        out = dict(inherited)
        for k in _INHERITED:
            if k in node:
                out[k] = self.resolve(node[k])
        return out

    def page_count(self) -> int:
        """/Root /Pages /Count when it is a sane number, else the pages counted by a walk."""
        ref = self.catalog.get("Pages")
        pages = self._shallow(ref)
        if pages is None:
            pages = self.resolve(ref)
        if isinstance(pages, dict):
            count = self.resolve(pages.get("Count"))
            kids = self.resolve(pages.get("Kids"))
            if type(count) is int and 0 <= count <= self._max_objects() and isinstance(kids, list) and (
                    count > 0 or not kids):
                return count
        return sum(1 for _ in self.pages())

    def _shallow(self, ref):
        """The object ``ref`` refers to with its arrays skipped (see _Lexer._skip_array),
        not cached; None when that cannot be done simply (page_count then resolves)."""
        if not isinstance(ref, Ref) or ref.num in self._cache:
            return None
        try:
            entry = self._lookup(ref.num)
            if entry is None or entry[0] == 0:
                return None
            if entry[0] == 1:
                return self._parse_indirect(self._shift + entry[1], ref.num, True)[1]
            data, pairs = self._objstm(entry[1])
            if not 0 <= entry[2] < len(pairs) or pairs[entry[2]][0] != ref.num:
                return None
            return _Lexer(data, pairs[entry[2]][1], True, True).parse()
        except (PdlError, _Broken):
            return None

    def _max_objects(self) -> int:
        size = self.trailer.get("Size")
        if self.repaired:
            size = len(self._sections[0].entries) + 1
        if type(size) is not int or size <= 0:
            size = self.size  # an object takes at least a byte
        return min(size, self.size)

    def viewer_preferences(self) -> dict:
        vp = self.resolve(self.catalog.get("ViewerPreferences"))
        return vp if isinstance(vp, dict) else {}


# -- the scanner API ---------------------------------------------------------------------------

_DUPLEX = {"Simplex": ONE_SIDED, "DuplexFlipLongEdge": TWO_SIDED_LONG, "DuplexFlipShortEdge": TWO_SIDED_SHORT}
_MAX_COORD = 1.0e7


def _box(value):
    """A rectangle as (x0, y0, x1, y1) normalised, or None when it is not one."""
    if not isinstance(value, list) or len(value) != 4:
        return None
    for v in value:
        if type(v) not in (int, float) or not -_MAX_COORD <= v <= _MAX_COORD:
            return None
    x0, y0, x1, y1 = value
    return (min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1))


def page_media(page: dict):
    """(width, height) of a page in PWG units as it is printed (MediaBox ∩ CropBox,
    UserUnit, Rotate applied), or None when the page has no usable MediaBox."""
    media = _box(page.get("MediaBox"))
    if media is None:
        return None
    crop = _box(page.get("CropBox"))
    if crop is not None:
        x0, y0 = max(media[0], crop[0]), max(media[1], crop[1])
        x1, y1 = min(media[2], crop[2]), min(media[3], crop[3])
        if x1 > x0 and y1 > y0:
            media = (x0, y0, x1, y1)
    unit = page.get("UserUnit", 1)
    if type(unit) not in (int, float) or not 0 < unit <= 1000:
        unit = 1
    w = points_to_pwg((media[2] - media[0]) * unit)
    h = points_to_pwg((media[3] - media[1]) * unit)
    if w <= 0 or h <= 0:
        return None
    rotate = page.get("Rotate", 0)
    if type(rotate) is int and rotate % 180 == 90:
        w, h = h, w
    return (w, h)


_COLOR_MODULE = []


def _page_color_function():
    """pdfcolor.page_color, or None while that module does not exist."""
    if not _COLOR_MODULE:
        from spoolproxy import _twins
        try:
            mod = _twins.load("spoolproxy.pdl.pdfcolor")
        except ModuleNotFoundError as e:
            if e.name not in ("spoolproxy.pdl.pdfcolor", "spoolproxy._ext.pdfcolor"):
                raise
            mod = None
        _COLOR_MODULE.append(getattr(mod, "page_color", None))
    return _COLOR_MODULE[0]


def scan(f, start: int = 0, *, sides: str = ONE_SIDED, media=None, copies: int = 1):
    """The document's pages as runs, and the file's size (a PDF runs to end of file).
    Sides from /ViewerPreferences /Duplex and copies from /NumCopies override the
    arguments; media per page from its boxes (see page_media), else ``media``;
    colour from pdfcolor.page_color when that module exists, else None."""
    doc = Document(f, start)
    vp = doc.viewer_preferences()
    duplex = doc.resolve(vp.get("Duplex"))
    if isinstance(duplex, str) and duplex in _DUPLEX:
        sides = _DUPLEX[duplex]
    n = doc.resolve(vp.get("NumCopies"))
    if type(n) is int and 1 <= n <= 999:
        copies = n
    color_of = _page_color_function()
    runs = RunBuilder()
    for page in doc.pages():
        color = None
        if color_of is not None:
            try:
                color = color_of(doc, page)
            except PdlError:
                color = None
        runs.add(color, sides, page_media(page) or media, copies)
    return runs.runs(), doc.size


def page_count(f, start: int = 0) -> int:
    """The number of pages (the /Count fast path; see Document.page_count)."""
    return Document(f, start).page_count()
