"""Ghostscript as a sandboxed subprocess: ink coverage, page counts, conversions.

The document engine asks Ghostscript only what it cannot answer itself: the colour
of a PDF page its own scan could not decide, the page count of PostScript without
usable DSC, the grayscale conversion of a PDF, and the conversion of PDF or
PostScript into another format (CONVERSIONS). Every run is sandboxed the same way:

* ``-dSAFER -dBATCH -dNOPAUSE -dQUIET``; the argument vector is passed without a shell
  and the document is named after ``-f`` (so a name starting with ``-`` or ``@`` is
  still a file);
* stdin is /dev/null, the working directory and ``TMPDIR`` are a private temporary
  directory removed afterwards, the environment is minimal (no ``GS_OPTIONS``,
  ``GS_LIB`` ... from ours);
* gs runs in its own session; on timeout or runaway output the whole process group
  is killed (before it is reaped, so the group id cannot have been reused);
* stdout and stderr are read concurrently and only a bounded prefix is kept; what gs
  writes through its output device goes to a file in the private directory, read up
  to a bound. Device output is not read from stdout because a PostScript program can
  ``print`` there and would then be able to forge inkcov lines.

Colour through ``inkcov`` (the flag investigation, Ghostscript 10.00):
by default gs converts RGB to CMYK through ICC profiles, and a neutral RGB gray
(0.5 0.5 0.5 rg) comes out as C=M=Y=K (rich black), so every gray RGB page would count
as colour. ``-dUseFastColor`` replaces ICC by the PostScript formulas (C=1-R, ...,
then black generation / undercolour removal), but gs's default black generation is
zero, so a gray then comes out as C=M=Y, K=0 — still "colour". Neither alone is enough.
``-dUseFastColor`` together with identity black generation and undercolour removal
(``{} setblackgeneration {} setundercolorremoval``, i.e. full GCR: K=min(C,M,Y),
C-=K, M-=K, Y-=K) turns every neutral RGB gray into K only while a colour keeps its
C/M/Y. Checked for DeviceRGB fills, text and images, ICCBased RGB and gray, CalRGB,
CalGray and Lab in PDF (the pdfi interpreter honours UseFastColor for those too),
and for PostScript pages after ``setpagedevice``/``initgraphics``. DeviceGray goes to
K alone in every mode (``DeviceGrayToK`` defaults on). Limits: a PostScript program
may set its own black generation, and PostScript CIE/Lab colour spaces still go
through ICC (a neutral Lab colour in PostScript comes out as C=M=Y=K).
"""
from __future__ import annotations

import os
import selectors
import shutil
import signal
import subprocess
import tempfile
import time
from typing import Sequence

from .model import ConversionError, PdlError

__all__ = [
    "GhostscriptError", "GhostscriptUnavailable", "GhostscriptTimeout", "GhostscriptConversionError",
    "DEFAULT_TIMEOUT", "COLOR_THRESHOLD", "SAFE_FLAGS", "INKCOV_FLAGS", "INKCOV_SETUP",
    "MAX_DEVICE_OUTPUT", "MAX_MESSAGES", "CONVERSION_SOURCES", "CONVERSIONS", "RASTER_RESOLUTION",
    "inkcov", "parse_inkcov", "is_color", "page_count", "pdf_to_gray", "convert", "executable",
]

DEFAULT_TIMEOUT = 120.0      # seconds for one gs run
COLOR_THRESHOLD = 0.001      # a page is colour when C, M or Y covers more than 0.1 %
MAX_DEVICE_OUTPUT = 16 << 20  # inkcov writes ~45 bytes a page: room for 350 000 pages
MAX_MESSAGES = 64 << 10       # of stdout/stderr kept for the error message

# What gs says, exiting with status 0, when it could not open a PDF at all (a PDF
# it repairs says "**** Error: ..." too, but then goes on and its output is used).
_FATAL = (b"Couldn't initialise file",)

SAFE_FLAGS = ("-dSAFER", "-dBATCH", "-dNOPAUSE", "-dQUIET")
# See the module docstring: together these make neutral RGB grays K only.
INKCOV_FLAGS = ("-dUseFastColor",)
INKCOV_SETUP = "{} setblackgeneration {} setundercolorremoval"

# What convert() reads, and what it writes: target MIME type → (device arguments for
# colour, for grayscale), best fidelity first. Checked with gs 10.00: each output is
# detected by pdl.analyze as its type, with the source's pages, and the grayscale
# variant has no colour page.
CONVERSION_SOURCES = ("application/pdf", "application/postscript")
RASTER_RESOLUTION = 300  # dpi of PWG raster (IPP Everywhere printers take 300 dpi)
_GRAY = ("-sColorConversionStrategy=Gray", "-dProcessColorModel=/DeviceGray")
# AutoRotatePages=/None: pdfwrite and ps2write would otherwise turn pages to follow their text
_PDF = ("-sDEVICE=pdfwrite", "-dAutoRotatePages=/None")
_PS = ("-sDEVICE=ps2write", "-dAutoRotatePages=/None")
# pwgraster's default colour space is gray: sRGB (19) must be asked for; 18 is sGray
_PWG = ("-sDEVICE=pwgraster", f"-r{RASTER_RESOLUTION}", "-dcupsBitsPerColor=8")
CONVERSIONS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "application/pdf": (_PDF, (*_PDF, *_GRAY)),
    "application/postscript": (_PS, (*_PS, *_GRAY)),
    "application/vnd.hp-pclxl": (("-sDEVICE=pxlcolor",), ("-sDEVICE=pxlmono",)),
    "image/pwg-raster": ((*_PWG, "-dcupsColorSpace=19"), (*_PWG, "-dcupsColorSpace=18")),
    # ljet4 is PCL 5e, monochrome only: colours come out as halftoned black either way
    "application/vnd.hp-pcl": (("-sDEVICE=ljet4",), ("-sDEVICE=ljet4",)),
}


class GhostscriptError(PdlError):
    """Ghostscript failed; the message carries what gs said."""


class GhostscriptUnavailable(GhostscriptError):
    """There is no Ghostscript executable."""


class GhostscriptTimeout(GhostscriptError):
    """Ghostscript ran longer than allowed and was killed."""


class GhostscriptConversionError(GhostscriptError, ConversionError):
    """A conversion by Ghostscript failed (the source is untouched, no output is left)."""


def executable() -> str:
    """The gs to run: ``$SPOOLPROXY_GS`` when set, else ``gs`` on PATH."""
    found = os.environ.get("SPOOLPROXY_GS") or shutil.which("gs")
    if not found:
        raise GhostscriptUnavailable("Ghostscript (gs) is not installed")
    return found


def is_color(coverage: tuple[float, float, float, float]) -> bool:
    """True when an inkcov page puts colour on paper (any of C, M, Y above 0.1 %)."""
    c, m, y, _k = coverage
    return c > COLOR_THRESHOLD or m > COLOR_THRESHOLD or y > COLOR_THRESHOLD


# -- running gs ---------------------------------------------------------------------------------


def _environment(workdir: str) -> dict[str, str]:
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "TMPDIR": workdir, "HOME": workdir,
           "LC_ALL": "C"}
    return env


def _kill_group(proc: subprocess.Popen) -> None:
    """Kill gs and anything it started. Called before the process is reaped."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def _message(output: bytes, returncode: int | None) -> str:
    """The most useful line gs printed: its first ``Error:`` line, else the last one."""
    lines = [ln.strip() for ln in output.decode("latin-1").splitlines() if ln.strip()]
    for ln in lines:
        if ln.startswith(("Error:", "**** Error")):
            return ln
    if lines:
        return lines[-1]
    return f"gs exited with status {returncode}"


def _spawn(argv: list[str], workdir: str) -> subprocess.Popen:
    try:
        return subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, cwd=workdir, env=_environment(workdir),
                                start_new_session=True, close_fds=True)
    except OSError as e:
        raise GhostscriptUnavailable(f"cannot run {argv[0]}: {e}") from None


def _run(args: Sequence[str], document: str | os.PathLike, timeout: float, *,
         setup: str | None = None, output_name: str | None = None,
         keep_output: str | os.PathLike | None = None, name_document: bool = True,
         counter: _LineCounter | None = None, error: type = GhostscriptError) -> tuple[bytes, bytes]:
    """Run gs on ``document`` in the sandbox; return (device output, messages).

    ``setup``: PostScript run (``-c``) before the document. ``output_name``: the device
    writes to that file in the private directory, which is read back (bounded), or
    moved to ``keep_output`` when that is given. ``name_document`` False: ``args``
    open the document themselves (it is not run with ``-f``). ``counter`` sees all
    that gs prints (messages are kept only up to MAX_MESSAGES).
    """
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not timeout > 0:
        raise TypeError("timeout must be a positive number of seconds")
    try:
        gs = executable()
    except GhostscriptUnavailable as e:
        raise _kind(error, GhostscriptUnavailable)(str(e)) from None
    doc = os.path.abspath(os.fspath(document))
    if not os.path.isfile(doc):
        raise error(f"no such document: {doc}")
    with tempfile.TemporaryDirectory(prefix="spoolproxy-gs-") as workdir:
        argv = [gs, *SAFE_FLAGS, *args]
        if output_name is not None:
            argv.append("-sOutputFile=" + os.path.join(workdir, output_name))
        if setup is not None:
            argv += ["-c", setup]
        if name_document:
            argv += ["-f", doc]
        try:
            proc = _spawn(argv, workdir)
        except GhostscriptUnavailable as e:
            raise _kind(error, GhostscriptUnavailable)(str(e)) from None
        try:
            messages, timed_out = _collect(proc, timeout, counter)
        finally:
            if proc.returncode is None:  # an exception on the way: never leave gs behind
                _kill_group(proc)
            proc.wait()
            assert proc.stdout is not None
            proc.stdout.close()
        if timed_out:
            raise _kind(error, GhostscriptTimeout)(f"Ghostscript took longer than {timeout:g} s and was stopped")
        if proc.returncode != 0:
            raise error(f"Ghostscript failed: {_message(messages, proc.returncode)}")
        if any(m in messages for m in _FATAL):  # gs exits 0 on a PDF it cannot open at all
            raise error(f"Ghostscript failed: {_message(messages, 0)}")
        data = b""
        if output_name is not None:
            produced = os.path.join(workdir, output_name)
            if keep_output is not None:
                # a document without pages gives no file or an empty one, and gs exits 0
                if not os.path.isfile(produced) or os.path.getsize(produced) == 0:
                    raise error(f"Ghostscript wrote no output ({_message(messages, 0)})")
                shutil.move(produced, os.fspath(keep_output))
            elif os.path.isfile(produced):
                with open(produced, "rb") as f:
                    data = f.read(MAX_DEVICE_OUTPUT + 1)
                if len(data) > MAX_DEVICE_OUTPUT:
                    raise error("Ghostscript's output is larger than expected")
        return data, messages


class _LineCounter:
    """Counts the lines of a byte stream that start with ``marker``, fed in chunks of
    any size, in constant memory (gs's messages are kept only up to a bound)."""

    def __init__(self, marker: bytes) -> None:
        self.marker = marker
        self.count = 0
        self._head: bytes | None = b""  # start of the current line; None: already decided

    def feed(self, chunk: bytes) -> None:
        pos = 0
        while pos < len(chunk):
            if self._head is None:  # skip to the next line
                nl = chunk.find(b"\n", pos)
                if nl < 0:
                    return
                pos, self._head = nl + 1, b""
                continue
            need = len(self.marker) - len(self._head)
            piece = chunk[pos:pos + need]
            nl = piece.find(b"\n")
            if nl >= 0:  # the line ended before it could match
                pos, self._head = pos + nl + 1, b""
                continue
            self._head += piece
            pos += len(piece)
            if len(self._head) == len(self.marker):
                self.count += self._head == self.marker
                self._head = None


def _collect(proc: subprocess.Popen, timeout: float,
             counter: _LineCounter | None = None) -> tuple[bytes, bool]:
    """Read gs's output (stderr is merged into stdout) until it closes and gs exits;
    keep at most MAX_MESSAGES of it. Returns (messages, timed_out); on timeout the
    process group has been killed."""
    deadline = time.monotonic() + timeout
    kept = bytearray()
    sel = selectors.DefaultSelector()
    try:
        pipe = proc.stdout
        assert pipe is not None
        os.set_blocking(pipe.fileno(), False)
        sel.register(pipe, selectors.EVENT_READ)
        while sel.get_map():
            left = deadline - time.monotonic()
            if left <= 0:
                _kill_group(proc)
                return bytes(kept), True
            for key, _ in sel.select(min(left, 1.0)):
                try:
                    chunk = os.read(key.fd, 65536)
                except BlockingIOError:
                    continue
                if not chunk:
                    sel.unregister(key.fileobj)
                    continue
                if counter is not None:
                    counter.feed(chunk)
                room = MAX_MESSAGES - len(kept)
                if room > 0:
                    kept += chunk[:room]  # the rest is read and dropped so gs never blocks on it
        try:
            proc.wait(max(deadline - time.monotonic(), 0.0))
        except subprocess.TimeoutExpired:
            _kill_group(proc)  # closed its output but kept running
            return bytes(kept), True
        return bytes(kept), False
    finally:
        sel.close()


class _ConversionTimeout(GhostscriptTimeout, GhostscriptConversionError):
    """A Ghostscript conversion ran out of time."""


class _ConversionUnavailable(GhostscriptUnavailable, GhostscriptConversionError):
    """A Ghostscript conversion found no Ghostscript."""


def _kind(error: type, kind: type) -> type:
    """``kind`` (GhostscriptTimeout or GhostscriptUnavailable), or its twin that is also
    a ConversionError when the caller converts: a caller catching either one catches it."""
    if issubclass(error, ConversionError):
        return {GhostscriptTimeout: _ConversionTimeout, GhostscriptUnavailable: _ConversionUnavailable}[kind]
    return kind


# -- the questions --------------------------------------------------------------------------------


def _page_args(first: int | None, last: int | None) -> list[str]:
    args = []
    for name, value in (("FirstPage", first), ("LastPage", last)):
        if value is None:
            continue
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise TypeError(f"{name} must be a page number (int >= 1)")
        args.append(f"-d{name}={value}")
    if first is not None and last is not None and last < first:
        raise ValueError("last page before first page")
    return args


def parse_inkcov(text: bytes) -> list[tuple[float, float, float, float]]:
    """The pages of inkcov output: lines ``C M Y K CMYK OK``."""
    pages = []
    for line in text.decode("latin-1").splitlines():
        parts = line.split()
        if len(parts) < 5 or parts[4] != "CMYK":
            continue
        try:
            c, m, y, k = (float(p) for p in parts[:4])
        except ValueError:
            continue
        pages.append((c, m, y, k))
    return pages


def inkcov(path: str | os.PathLike, first: int | None = None, last: int | None = None,
           timeout: float = DEFAULT_TIMEOUT, *, resolution: int = 75) -> list[tuple[float, float, float, float]]:
    """Ink coverage (C, M, Y, K as fractions of the page area) of each printed page of
    the PDF or PostScript at ``path``, pages ``first``..``last`` (1-based, inclusive).

    Neutral grays (DeviceGray, and RGB/ICC/Cal/Lab colours with equal components) come
    out as K only (module docstring). A PostScript program that asks for copies
    (``#copies``, ``/NumCopies``) gets one entry per copy: gs renders each.
    """
    args = ["-sDEVICE=inkcov", f"-r{int(resolution)}", *INKCOV_FLAGS, *_page_args(first, last)]
    data, _ = _run(args, path, timeout, setup=INKCOV_SETUP, output_name="inkcov.txt")
    return parse_inkcov(data)


def jpeg_inkcov(path: str | os.PathLike, timeout: float = DEFAULT_TIMEOUT, *,
                resolution: int = 75) -> tuple[float, float, float, float]:
    """Ink coverage of a JPEG image printed as one page of its own size (gs's
    viewjpeg.ps; only that file may be read), with inkcov's neutral-gray setup."""
    doc = os.path.abspath(os.fspath(path))
    name = _ps_string(doc)
    setup = (f"(viewjpeg.ps) runlibfile {name} viewJPEGgetsize 2 array astore "
             f"<< /PageSize 3 -1 roll >> setpagedevice {INKCOV_SETUP} {name} viewJPEG showpage")
    args = ["-sDEVICE=inkcov", f"-r{int(resolution)}", *INKCOV_FLAGS, f"--permit-file-read={doc}"]
    data, _ = _run(args, doc, timeout, setup=setup, output_name="inkcov.txt", name_document=False)
    pages = parse_inkcov(data)
    if len(pages) != 1:
        raise GhostscriptError(f"Ghostscript rendered {len(pages)} pages of a JPEG image")
    return pages[0]


def _is_pdf(path: str | os.PathLike) -> bool:
    try:
        with open(path, "rb") as f:
            return b"%PDF-" in f.read(1024)
    except OSError:
        return False


def _ps_string(text: str) -> str:
    """``text`` as a PostScript hex string (no quoting problem whatever it holds)."""
    return "<" + os.fsencode(text).hex() + ">"


def page_count(path: str | os.PathLike, timeout: float = DEFAULT_TIMEOUT) -> int:
    """Distinct pages of the PDF or PostScript at ``path``, as Ghostscript counts them.

    A PDF is opened by gs's PDF interpreter and asked for its page count (no rendering).
    PostScript is run on the ``bbox`` device, which reports each showpage once
    whatever copies the program asks for.
    """
    doc = os.path.abspath(os.fspath(path))
    if _is_pdf(doc):
        program = f"{_ps_string(doc)} (r) file runpdfbegin pdfpagecount = flush quit"
        # the program opens the document itself, so reading it must be permitted
        args = ["-dNODISPLAY", f"--permit-file-read={doc}", "-c", program]
        _, out = _run(args, doc, timeout, name_document=False)
        for token in reversed(out.split()):
            if token.isdigit():
                return int(token)
        raise GhostscriptError(f"Ghostscript did not count the pages: {_message(out, 0)}")
    counter = _LineCounter(b"%%BoundingBox:")
    _run(["-sDEVICE=bbox"], doc, timeout, counter=counter)
    return counter.count


def pdf_to_gray(src: str | os.PathLike, dst: str | os.PathLike, timeout: float = DEFAULT_TIMEOUT) -> None:
    """Write a grayscale copy of the PDF ``src`` to ``dst`` (pdfwrite, gray conversion).

    ``dst`` appears only when gs succeeded (it is written in the private directory and
    moved into place); on failure a GhostscriptConversionError is raised and nothing
    is left at ``dst``.
    """
    convert(src, dst, "application/pdf", gray=True, timeout=timeout)


def convert(src: str | os.PathLike, dst: str | os.PathLike, target: str, *, gray: bool = False,
            timeout: float = DEFAULT_TIMEOUT) -> None:
    """Write the PDF or PostScript ``src`` converted to ``target`` (a key of CONVERSIONS)
    to ``dst``; ``gray``: with the device's grayscale settings.

    gs streams: neither document is read into memory. ``dst`` appears only when gs
    succeeded and wrote something; otherwise a GhostscriptConversionError is raised
    and nothing is left at ``dst``.
    """
    if target not in CONVERSIONS:
        raise GhostscriptConversionError(f"Ghostscript does not convert to {target}")
    _run(CONVERSIONS[target][bool(gray)], src, timeout, output_name="converted", keep_output=dst,
         error=GhostscriptConversionError)
