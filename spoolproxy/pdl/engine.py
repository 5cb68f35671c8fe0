"""The document engine's entry points: analyse a document, convert it.

A document is split into sections: a PJL job is PJL headers, each followed by a
section in one language (ENTER LANGUAGE, or the body's content when there is no
ENTER) that ends at the next UEL; any other document is one section. Each section
goes to the scanner for its format (a compiled module from ext/ or its pure twin,
as spoolproxy._twins decides) with the PJL settings as its defaults; QTY multiplies
the pages of the section.

Pages whose colour a scanner cannot decide (PDF content it cannot evaluate,
PostScript, which only an interpreter can run, colour JPEG images) are rendered by Ghostscript's
inkcov device in a sandboxed subprocess, unless ``ghostscript=False``; then they
stay undecided (``color=None``) and the caller's policy decides.

Everything here is synchronous and may take long on big files: call it off the
event loop (``trio.to_thread.run_sync``). The scanners release the GIL.
"""
from __future__ import annotations

import contextlib
import dataclasses
import functools
import os
import shutil
import tempfile
from types import ModuleType
from typing import BinaryIO, Iterator

from .. import _twins
from . import pjl
from .model import (
    ONE_SIDED, TWO_SIDED_LONG, TWO_SIDED_SHORT, Analysis, ConversionError, DamagedDocument,
    NeedsInterpreter, PageRun, PdlError, RunBuilder, UnsupportedFormat,
)

__all__ = ["analyze", "convert_grayscale", "convert_duplex", "conversion_targets", "convert_format", "GS_TIMEOUT"]

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

# format → the twin pair that scans and converts it
_SCANNERS = {PDF: "pdf", POSTSCRIPT: "postscript", PCL: "pcl", PCLXL: "pclxl",
             PWG_RASTER: "raster", URF: "raster"}
_PJL_LANGUAGES = (PCL, PCLXL, POSTSCRIPT, PDF)  # what ENTER LANGUAGE can switch to

GS_TIMEOUT = 120.0      # seconds for one Ghostscript run
TEXT_LINES_PER_PAGE = 60  # a plain-text page as CUPS's texttopdf lays it out (6 lpi, 10 in)
TEXT_COLUMNS = 80
_WINDOW = 4096
_COPY_CHUNK = 1 << 20


@functools.cache
def _scanner(fmt: str) -> ModuleType:
    name = _SCANNERS.get(fmt)
    if name is None:
        raise UnsupportedFormat(f"no scanner for {fmt}")
    return _twins.load(f"spoolproxy.pdl.{name}")


@functools.cache
def _sniffer():
    return _twins.load("spoolproxy.pdl.sniff")


@dataclasses.dataclass(frozen=True, slots=True)
class _Section:
    fmt: str
    header: int          # where the PJL header before the section starts (== body when none)
    body: int            # where the section's own bytes start
    env: pjl.Env         # PJL settings in force (the defaults when there is no PJL)


@contextlib.contextmanager
def _opened(source) -> Iterator[BinaryIO]:
    if isinstance(source, (str, os.PathLike)):
        with open(source, "rb") as f:
            yield f
    else:
        yield source


def _window(f: BinaryIO, pos: int) -> bytes:
    f.seek(pos)
    return f.read(_WINDOW)


def _walk(f: BinaryIO, size: int) -> Iterator[tuple[_Section, tuple[PageRun, ...] | None, int]]:
    """Each section of the document, scanned: (section, its runs, where it ends);
    runs is None for PostScript that only an interpreter can count.
    A document without PJL is one section with an empty header; bytes after a UEL
    that ends a section are read as PJL again, whatever came before."""
    env = pjl.Env()
    pos = 0
    while pos < size:
        header = pjl.read_header(f, pos, env)
        if header.body >= size:  # trailing PJL (EOJ, UELs): no more pages
            return
        fmt = pjl.LANGUAGES.get(header.language or "")
        if fmt is None:  # no ENTER, or a language we do not know: the content says
            fmt = _sniffer().detect(_window(f, header.body))
        section = _Section(fmt, pos, header.body, dataclasses.replace(env))
        try:
            runs, end = _scan_section(f, section)
        except NeedsInterpreter:  # PostScript without usable DSC: Ghostscript counts it
            runs, end = None, _uel_end(f, header.body, size)
        if end <= header.body:
            raise DamagedDocument(f"the {fmt} section at byte {header.body} does not end")
        yield section, runs, end
        pos = end


def _scan_section(f: BinaryIO, s: _Section) -> tuple[tuple[PageRun, ...], int]:
    if s.fmt in _SCANNERS:
        env = s.env
        return _scanner(s.fmt).scan(f, s.body, sides=env.sides, media=env.media, copies=env.copies)
    size = f.seek(0, 2)
    if s.fmt == JPEG:
        return (PageRun(1, _jpeg_color(f, s.body)),), size
    if s.fmt == PNG:
        return (PageRun(1, _png_color(f, s.body)),), size
    if s.fmt == TEXT:
        return (PageRun(_text_pages(f, s.body, size)),), size
    raise UnsupportedFormat(f"cannot count pages of {s.fmt} content")


def analyze(source, claimed: str | None = None, *, ghostscript: bool = True,
            gs_timeout: float = GS_TIMEOUT) -> Analysis:
    """The pages of ``source`` (a path or a seekable binary file): count, copies,
    sides, media and colour, as runs (spoolproxy.pdl.model.Analysis). ``claimed``
    is the document-format the client gave; the analysis reports a mismatch."""
    with _opened(source) as f:
        size = f.seek(0, 2)
        if size == 0:
            raise UnsupportedFormat("the document is empty")
        builder = RunBuilder()
        warnings: list[str] = []
        formats: list[str] = []
        account = None
        for section, runs, end in _walk(f, size):
            account = account or section.env.account
            if section.fmt not in formats:
                formats.append(section.fmt)
            if runs is None:
                if not ghostscript:
                    raise UnsupportedFormat("PostScript without DSC page comments needs Ghostscript to count it")
                runs = _interpret(f, section, end, size, gs_timeout)
            if ghostscript and section.fmt in (PDF, POSTSCRIPT, JPEG) and any(r.color is None for r in runs):
                try:
                    runs = _decide_colors(f, section, end, size, runs, gs_timeout, warnings)
                except PdlError as e:  # no gs, a timeout, a crash: the count stands, colour stays open
                    warnings.append(f"colour of {sum(r.count for r in runs if r.color is None)} page(s) "
                                    f"left undecided: {e}")
            qty = section.env.qty
            builder.extend(dataclasses.replace(r, copies=r.copies * qty) for r in runs)
        fmt = formats[0] if len(formats) == 1 else _sniffer().detect(_window(f, 0))
        if len(formats) > 1:
            warnings.append("several languages in one job: " + ", ".join(formats))
        return Analysis(fmt, builder.runs(), tuple(warnings), claimed, account)


# --- Ghostscript for what the scanners cannot decide ---------------------------------

def _gs():
    from . import ghostscript
    return ghostscript


@contextlib.contextmanager
def _section_file(f: BinaryIO, start: int, end: int, size: int, suffix: str):
    """A path holding bytes [start, end) of ``f`` (the file itself when that is all of it)."""
    name = getattr(f, "name", None)
    if start == 0 and end >= size and isinstance(name, str) and os.path.isfile(name):
        yield name
        return
    with tempfile.TemporaryDirectory(prefix="spoolproxy-gs-") as d:
        path = os.path.join(d, "section" + suffix)
        with open(path, "wb") as out:
            _copy(f, out, start, end)
        yield path


def _copy(f: BinaryIO, out: BinaryIO, start: int, end: int) -> None:
    f.seek(start)
    left = end - start
    while left > 0:
        chunk = f.read(min(_COPY_CHUNK, left))
        if not chunk:
            break
        out.write(chunk)
        left -= len(chunk)


def _decide_colors(f, section: _Section, end: int, size: int, runs, timeout: float,
                   warnings: list[str]) -> tuple[PageRun, ...]:
    """Fill in undecided page colours from Ghostscript's inkcov."""
    gs = _gs()
    suffix = {PDF: ".pdf", JPEG: ".jpg"}.get(section.fmt, ".ps")
    with _section_file(f, section.body, end, size, suffix) as path:
        if section.fmt == PDF:
            colors = _pdf_colors(gs, path, runs, timeout)
        elif section.fmt == JPEG:
            colors = [gs.is_color(gs.jpeg_inkcov(path, timeout=timeout))]
        else:
            colors = [gs.is_color(c) for c in gs.inkcov(path, timeout=timeout)]
    pages = sum(r.count for r in runs)
    if len(colors) != pages:
        warnings.append(f"Ghostscript rendered {len(colors)} pages where the scan counted {pages}")
    out = RunBuilder()
    i = 0
    for r in runs:
        for _ in range(r.count):
            color = r.color
            if color is None and i < len(colors):
                color = colors[i]
            out.add(color, r.sides, r.media, r.copies)
            i += 1
    return out.runs()


def _interpret(f, section: _Section, end: int, size: int, timeout: float) -> tuple[PageRun, ...]:
    """Pages and colours of a section as Ghostscript renders it."""
    gs = _gs()
    with _section_file(f, section.body, end, size, ".ps") as path:
        coverage = gs.inkcov(path, timeout=timeout)
    out = RunBuilder()
    for c in coverage:
        out.add(gs.is_color(c), section.env.sides, section.env.media, section.env.copies)
    return out.runs()


def _uel_end(f: BinaryIO, start: int, size: int) -> int:
    """Just past the first UEL at or after ``start``, or ``size``."""
    f.seek(start)
    pos, tail = start, b""
    while pos < size:
        chunk = f.read(_COPY_CHUNK)
        if not chunk:
            break
        buf = tail + chunk
        i = buf.find(pjl.UEL)
        if i >= 0:
            return pos - len(tail) + i + len(pjl.UEL)
        tail = buf[-(len(pjl.UEL) - 1):]
        pos += len(chunk)
    return size


def _pdf_colors(gs, path: str, runs, timeout: float) -> list[bool | None]:
    """inkcov for the undecided pages only, one gs run per stretch of them."""
    colors: list[bool | None] = []
    page = 1
    for r in runs:
        if r.color is None:
            cov = gs.inkcov(path, first=page, last=page + r.count - 1, timeout=timeout)
            got = [gs.is_color(c) for c in cov]
            colors.extend((got + [None] * r.count)[:r.count])
        else:
            colors.extend([r.color] * r.count)
        page += r.count
    return colors


# --- formats without a scanner module: a page each, or lines of text ---------------

def _jpeg_color(f: BinaryIO, start: int) -> bool | None:
    """Gray for a one-component JPEG; otherwise undecided (Ghostscript decides)."""
    f.seek(start + 2)
    for _ in range(256):  # markers before the frame header
        marker = f.read(4)
        if len(marker) < 4 or marker[0] != 0xFF:
            return None
        kind, length = marker[1], int.from_bytes(marker[2:4], "big")
        if 0xC0 <= kind <= 0xCF and kind not in (0xC4, 0xC8, 0xCC):
            frame = f.read(6)
            return None if len(frame) < 6 else (False if frame[5] == 1 else None)
        if length < 2:
            return None
        f.seek(length - 2, 1)
    return None


def _png_color(f: BinaryIO, start: int) -> bool | None:
    f.seek(start + 8)
    ihdr = f.read(25)
    if len(ihdr) < 25 or ihdr[4:8] != b"IHDR":
        return None
    color_type = ihdr[17]
    return False if color_type in (0, 4) else None


def _text_pages(f: BinaryIO, start: int, end: int) -> int:
    """Pages of plain text: form feeds start pages, TEXT_LINES_PER_PAGE lines
    fill one, lines longer than TEXT_COLUMNS wrap."""
    pages, lines, column = 1, 0, 0
    marked = False
    f.seek(start)
    left = end - start
    while left > 0:
        chunk = f.read(min(_COPY_CHUNK, left))
        if not chunk:
            break
        left -= len(chunk)
        for b in chunk:
            if b == 0x0A:
                lines += 1
                column = 0
                if lines >= TEXT_LINES_PER_PAGE:
                    pages, lines = pages + 1, 0
                    marked = False
            elif b == 0x0C:
                pages, lines, column = pages + 1, 0, 0
                marked = False
            elif b != 0x0D:
                column += 1
                marked = True
                if column > TEXT_COLUMNS:
                    lines, column = lines + 1, 1
                    if lines >= TEXT_LINES_PER_PAGE:
                        pages, lines = pages + 1, 0
    if not marked and lines == 0 and pages > 1:
        pages -= 1  # a trailing form feed or a full last page starts no new page
    return pages


# --- conversions ---------------------------------------------------------------------

def convert_grayscale(src, dst) -> None:
    """Write ``src`` converted to print without colour to the path ``dst``."""
    _convert(src, dst, gray=True, sides=None)


def convert_duplex(src, dst, sides: str = TWO_SIDED_LONG) -> None:
    """Write ``src`` converted to print two-sided (``sides`` an IPP keyword) to ``dst``."""
    if sides not in (ONE_SIDED, TWO_SIDED_LONG, TWO_SIDED_SHORT):
        raise ValueError(f"sides must be an IPP sides keyword, not {sides!r}")
    _convert(src, dst, gray=False, sides=sides)


def _pjl_settings(gray: bool, sides: str | None) -> dict[str, str]:
    if gray:
        return {"RENDERMODE": "GRAYSCALE"}
    if sides == ONE_SIDED:
        return {"DUPLEX": "OFF"}
    return {"DUPLEX": "ON", "BINDING": "SHORTEDGE" if sides == TWO_SIDED_SHORT else "LONGEDGE"}


def _convert(src, dst, *, gray: bool, sides: str | None) -> None:
    with _opened(src) as f:
        size = f.seek(0, 2)
        tmp = f"{dst}.part"
        try:
            with open(tmp, "wb") as out:
                last = 0
                for section, _runs, end in _walk(f, size):
                    if section.body > section.header:  # the PJL header before it
                        f.seek(section.header)
                        raw = f.read(section.body - section.header)
                        if pjl.starts_pjl(raw):
                            raw = pjl.rewrite_header(raw, _pjl_settings(gray, sides))
                        out.write(raw)
                    _convert_section(f, out, section, end, size, gray, sides)
                    last = end
                _copy(f, out, last, size)  # trailing PJL (EOJ, UEL)
            os.replace(tmp, dst)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise


def _convert_section(f, out, s: _Section, end: int, size: int, gray: bool, sides: str | None) -> None:
    if s.fmt == PDF:
        if not gray:
            raise ConversionError("a PDF is made two-sided by the printer's sides attribute, not by rewriting it")
        with _section_file(f, s.body, end, size, ".pdf") as path, \
                tempfile.TemporaryDirectory(prefix="spoolproxy-gs-") as d:
            gray_path = os.path.join(d, "gray.pdf")
            _gs().pdf_to_gray(path, gray_path, timeout=GS_TIMEOUT)
            with open(gray_path, "rb") as g:
                shutil.copyfileobj(g, out, _COPY_CHUNK)
        return
    if s.fmt not in _SCANNERS:
        raise ConversionError(f"cannot convert {s.fmt} content")
    module = _scanner(s.fmt)
    try:
        if gray:
            module.to_grayscale(f, out, s.body, end)
        else:
            module.to_duplex(f, out, sides, s.body, end)
    except AttributeError:
        raise ConversionError(f"no {'grayscale' if gray else 'duplex'} conversion for {s.fmt}") from None


# --- format conversion (Ghostscript) -------------------------------------------------

def conversion_targets(source_format: str) -> tuple[str, ...]:
    """The formats (MIME types, as the engine names them) convert_format can turn a
    document in ``source_format`` into, best fidelity first. Ghostscript reads PDF and
    PostScript only: other formats, and every format when there is no Ghostscript,
    convert to nothing."""
    gs = _gs()
    if source_format not in gs.CONVERSION_SOURCES:
        return ()
    try:
        usable = os.access(gs.executable(), os.X_OK)  # $SPOOLPROXY_GS is not checked by executable()
    except gs.GhostscriptUnavailable:
        usable = False
    return tuple(gs.CONVERSIONS) if usable else ()


def convert_format(src, dst, target: str, *, gray: bool = False, timeout: float = GS_TIMEOUT) -> None:
    """Write ``src`` (a path or a seekable binary file) converted to ``target``, one of
    conversion_targets(its format), to the path ``dst``; ``gray``: without colour
    (PCL is always monochrome). A PJL job's one PDF or PostScript section is converted
    and its PJL left out (the PJL was for the language it is no longer in).

    Raises ConversionError, naming both formats, for a pair that cannot be converted,
    a Ghostscript that fails, times out or writes nothing; ``dst`` is then not written.
    """
    gs = _gs()
    with _opened(src) as f:
        size = f.seek(0, 2)
        fmt, start, end = _convertible_part(f, size)
        if fmt not in gs.CONVERSION_SOURCES or target not in gs.CONVERSIONS:
            raise ConversionError(
                f"cannot convert {fmt} to {target}: Ghostscript converts "
                f"{' and '.join(gs.CONVERSION_SOURCES)} to {', '.join(gs.CONVERSIONS)} only")
        try:
            with _section_file(f, start, end, size, ".pdf" if fmt == PDF else ".ps") as path:
                gs.convert(path, dst, target, gray=gray, timeout=timeout)
        except ConversionError as e:  # the same kind (timeout, no gs ...), with both formats named
            raise type(e)(f"cannot convert {fmt} to {target}: {e}") from None


def _convertible_part(f: BinaryIO, size: int) -> tuple[str, int, int]:
    """(format, start, end) of what is to be converted: the whole document, or the one
    section of a PJL job."""
    if size == 0:
        raise ConversionError("cannot convert an empty document")
    head = _window(f, 0)
    if not pjl.starts_pjl(head):  # no need to scan it: the format is all we need
        return _sniffer().detect(head), 0, size
    try:
        sections = [(s.fmt, s.body, end) for s, _runs, end in _walk(f, size)]
    except PdlError as e:
        raise ConversionError(f"cannot convert this PJL job: {e}") from None
    if len(sections) != 1:
        raise ConversionError(f"cannot convert a PJL job with {len(sections)} sections "
                              f"({', '.join(s[0] for s in sections)}) to one format")
    return sections[0]
