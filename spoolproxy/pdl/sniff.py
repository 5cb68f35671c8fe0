"""Which page description language a document is in, from its first bytes.

This is the specification: ``ext/sniff.pyx`` (``spoolproxy._ext.sniff``) is its
compiled twin and must give the same answer, and raise the same exceptions, for
every input. ``spoolproxy.pdl.detect`` picks one of the two.

Rules, applied to the first ``WINDOW`` bytes:

1. PJL. A document that starts with the Universal Exit Language (``ESC%-12345X``)
   or with ``@PJL`` is a PJL job: UELs, blank space and ``@PJL`` lines are read
   one by one (case-insensitively). ``@PJL ENTER LANGUAGE = X`` with X one of PDF,
   POSTSCRIPT, PCL, PCLXL answers X's type at once; any other language, or the
   end of the PJL lines without an ENTER, means the rules below are applied to
   the bytes that follow (the "body").
2. Magic numbers at the start of the body: ``%PDF-`` PDF, ``%!`` PostScript,
   ``'``/``(``/``)`` + `` HP-PCL XL;`` PCL XL (the stream header; the first byte
   is the binding: ASCII, big- or little-endian binary), ESC ``E``/``&``/``*``
   PCL 5, ``RaS2`` PWG raster, ``UNIRAST\\0`` Apple raster (URF), ``FF D8 FF``
   JPEG, the PNG signature.
3. ``%PDF-`` starting anywhere in the first ``PDF_HEADER_WINDOW`` bytes of the
   body is PDF too (Acrobat accepts junk before the header).
4. Text: the body is UTF-8 (ASCII included) with no control characters other
   than tab, line feed, form feed and carriage return. When the document is
   longer than the window, a multi-byte character cut by the window's end is
   ignored.
5. Anything else, and an empty body, is ``application/octet-stream``.
"""
from __future__ import annotations

import re

__all__ = ["WINDOW", "PDF_HEADER_WINDOW", "detect"]

WINDOW = 4096
PDF_HEADER_WINDOW = 1024

PDF = "application/pdf"
POSTSCRIPT = "application/postscript"
PCL = "application/vnd.hp-pcl"
PCLXL = "application/vnd.hp-pclxl"
PWG_RASTER = "image/pwg-raster"
URF = "image/urf"
JPEG = "image/jpeg"
PNG = "image/png"
TEXT = "text/plain"
OCTET_STREAM = "application/octet-stream"

_UEL = b"\x1b%-12345X"
_LANGUAGES = {b"PDF": PDF, b"POSTSCRIPT": POSTSCRIPT, b"PCL": PCL, b"PCLXL": PCLXL}
# after "@PJL": the ENTER command and its language (what follows it on the line is ignored)
_ENTER = re.compile(rb"[ \t]+ENTER[ \t]+LANGUAGE[ \t]*=[ \t]*([^ \t\r\n]*)", re.IGNORECASE)
# every byte but the control characters text may not contain (all but TAB, LF, FF, CR; DEL)
_NOT_CONTROL = bytes(c for c in range(256) if not ((c < 0x20 and c not in b"\t\n\f\r") or c == 0x7F))
_SPACE = b" \t\r\n"


def detect(data) -> str:
    """MIME type of the document whose first bytes are ``data`` (any contiguous
    bytes-like object: bytes, bytearray, memoryview, mmap). Only the first
    ``WINDOW`` bytes are read. Raises TypeError for a non-buffer and BufferError
    for a non-contiguous buffer, like the compiled twin."""
    if type(data) is bytes:
        window, total = data[:WINDOW], len(data)
    else:
        with memoryview(data) as m:
            if not m.c_contiguous:
                raise BufferError("detect() needs a contiguous buffer")
            window, total = m.cast("B")[:WINDOW].tobytes(), m.nbytes
    mime, pos = _skip_pjl(window)
    if mime is not None:
        return mime
    return _classify(window[pos:], truncated=total > WINDOW)


def _skip_pjl(window: bytes) -> tuple[str | None, int]:
    """(type named by an ENTER command, or None; where the body starts)."""
    if not (window.startswith(_UEL) or window[:4].upper() == b"@PJL"):
        return None, 0
    n, pos = len(window), 0
    while pos < n:
        if window[pos] in _SPACE:
            pos += 1
        elif window.startswith(_UEL, pos):
            pos += len(_UEL)
        elif window[pos:pos + 4].upper() == b"@PJL":
            eol = window.find(b"\n", pos)
            end = n if eol < 0 else eol
            m = _ENTER.match(window, pos + 4, end)
            pos = n if eol < 0 else eol + 1
            if m:
                return _LANGUAGES.get(m[1].upper()), pos
        else:
            break
    return None, pos


def _classify(body: bytes, truncated: bool) -> str:
    if not body:
        return OCTET_STREAM
    if body.startswith(b"%PDF-"):
        return PDF
    if body.startswith(b"%!"):
        return POSTSCRIPT
    if body[0] in b"'()" and body.startswith(b" HP-PCL XL;", 1):
        return PCLXL
    if body[0] == 0x1B and body[1:2] in (b"E", b"&", b"*"):
        return PCL
    if body.startswith(b"RaS2"):
        return PWG_RASTER
    if body.startswith(b"UNIRAST\0"):
        return URF
    if body.startswith(b"\xff\xd8\xff"):
        return JPEG
    if body.startswith(b"\x89PNG\r\n\x1a\n"):
        return PNG
    if body.find(b"%PDF-", 0, PDF_HEADER_WINDOW + 4) >= 0:  # header starts in the first 1024 bytes
        return PDF
    if _is_text(body, truncated):
        return TEXT
    return OCTET_STREAM


def _is_text(body: bytes, truncated: bool) -> bool:
    if body.translate(None, _NOT_CONTROL):  # what is left are control characters
        return False
    if truncated:
        body = body[:len(body) - _partial_tail(body)]
    try:
        body.decode("utf-8")  # strict: no overlongs, surrogates or code points past U+10FFFF
    except UnicodeDecodeError:
        return False
    return True


def _partial_tail(b: bytes) -> int:
    """Length of a multi-byte sequence cut off at the end of ``b`` (0 if none):
    the last lead byte within 3 bytes of the end, when it announces more bytes
    than are left. Its bytes are not checked."""
    n = len(b)
    for k in range(1, min(3, n) + 1):
        c = b[n - k]
        if 0x80 <= c < 0xC0:
            continue
        if c >= 0xC0 and (2 if c < 0xE0 else 3 if c < 0xF0 else 4) > k:
            return k
        return 0
    return 0
