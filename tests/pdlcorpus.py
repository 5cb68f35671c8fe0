"""The document engine's acceptance corpus (issue 3): built with Ghostscript, checked by
Ghostscript.

    python3 tests/pdlcorpus.py build [DIR]            # build (or reuse) the corpus, print the table
    python3 tests/pdlcorpus.py analyze MANIFEST OUT   # the child the acceptance test runs per twin

**What is in it.** Source PostScript documents that this module writes (1, 2, 17 and 2000
pages; ``color-N`` with a colour rectangle on pages 1, 4, 7, ... and ``gray-N`` with
none; every page also has DeviceGray text and fills, neutral DeviceRGB fills and a
K-only DeviceCMYK fill, all of which must count as gray), each converted by Ghostscript
with ``pdfwrite`` (classic xref table, no object streams), the same PDF rewritten by
``qpdf --object-streams=generate`` (xref stream + object streams), ``ps2write``,
``pxlmono``, ``pxlcolor``, ``ljet4`` (PCL 5), ``pwgraster``, ``urf`` and ``appleraster``
(8-bit sRGB; the raster and PCL devices at low resolutions so the corpus builds fast).
Then edge cases built here: incremental PDF updates that add pages, delete pages, both
in a chain, and one written with an xref stream over an object-stream file; a
linearized PDF; DSC ``%%Pages: (atend)``; an EPS with its own ``%%Page:`` comments
embedded with ``%%BeginDocument``; PCL 5 with ``ESC&l3X``; PJL-wrapped PCL XL with
``@PJL SET COPIES=2``; a PJL job with PCL XL then PostScript; PWG and URF rasters whose
only colour is one pixel. ``build()`` returns the manifest: per file its expected page
count, colour per page, copies and format.

**The oracle.** Page count and colour per page come from Ghostscript: for every file gs
can read (PDF, PostScript) the ``inkcov`` device is run on *that file* (one output line
per page gs renders: the count; a page is colour when C, M or Y coverage is above
``INK_THRESHOLD`` = 0.1 %), and for PDF the count is checked against gs's
``pdfpagecount``. gs cannot read PCL 5, PCL XL, PWG or Apple raster back, so for those the
oracle is the source document's gs count and inkcov (``pxlmono`` and ``ljet4`` output is
gray on every page by construction); for the raster files the build also decodes every
page and checks that gray pages are exactly neutral and colour pages are not, so that
oracle is confirmed by the pixels. Hand-built rasters are known by construction (and
checked by the same decoder). Every derived file must agree with its source's oracle or
the build fails: a corpus file that does not say what its manifest says is a bug here.

``inkcov`` runs with ``INKCOV_ARGS``: ``-dUseFastColor`` and an identity black generation
and undercolour removal, so that neutral colours (DeviceGray, R=G=B, CMYK with C=M=Y=0)
are K-only; gs's default ICC conversion puts C, M and Y into neutral RGB, which would call
every page with RGB-black text colour.

**Cache.** The corpus is built once into ``cache_dir()``, keyed by the gs and qpdf
versions and ``CORPUS_VERSION`` (bump it when anything here changes what is built), and
reused when its ``manifest.json`` is there; ``SPOOLPROXY_CORPUS_DIR`` chooses the
directory, and with ``CI`` set (a fresh machine anyway) the conftest builds it in the
session's temporary directory.
"""
from __future__ import annotations

import concurrent.futures
import dataclasses
import fcntl
import hashlib
import json
import os
import re
import shutil
import struct
import subprocess
import sys
import tempfile
import time
import zlib
from pathlib import Path
from typing import Any, Callable, Iterable

CORPUS_VERSION = 2
SIZES = (1, 2, 17, 2000)
INK_THRESHOLD = 0.001  # a page is colour when C, M or Y coverage is above 0.1 %
INKCOV_RESOLUTION = 36
INKCOV_ARGS = ("-q", "-dSAFER", "-dBATCH", "-dNOPAUSE", "-dUseFastColor", "-sDEVICE=inkcov",
               f"-r{INKCOV_RESOLUTION}", "-o", "-",
               "-c", "{} setblackgeneration {} setundercolorremoval", "-f")
GS_TIMEOUT = 300

PDF = "application/pdf"
PS = "application/postscript"
PCL = "application/vnd.hp-pcl"
PCLXL = "application/vnd.hp-pclxl"
PWG = "image/pwg-raster"
URF = "image/urf"

A4 = (595, 842)
UEL = b"\x1b%-12345X"


class CorpusError(RuntimeError):
    """The corpus could not be built, or a file does not match its oracle."""


# --------------------------------------------------------------------------- manifest


@dataclasses.dataclass
class Entry:
    """One corpus file and what the engine must say about it.

    colors: one letter per page, "C" colour or "G" gray.
    copies: the document's own copies of every page (PCL ESC&l#X, PJL COPIES).
    format: the MIME type the engine must detect (None: not checked).
    oracle: how pages/colors were obtained (for the test report).
    gray_convert: the acceptance test converts this file to grayscale and checks it.
    gs_readable: gs can render the file (PDF/PS): the converted file is rendered too.
    raster: "pwg"/"urf" when the file is a raster the test decodes pixel by pixel.
    """
    name: str
    path: str
    format: str | None
    pages: int
    colors: str
    oracle: str
    copies: int = 1
    gray_convert: bool = False
    gs_readable: bool = False
    raster: str | None = None
    family: str = ""
    size: int = 0

    @property
    def color_list(self) -> list[bool]:
        return [c == "C" for c in self.colors]


def load_manifest(path: str | Path) -> list[Entry]:
    data = json.loads(Path(path).read_text())
    root = Path(path).parent
    out = []
    for d in data["entries"]:
        e = Entry(**d)
        e.path = str(root / e.path)
        out.append(e)
    return out


def colors_str(colors: Iterable[bool]) -> str:
    return "".join("C" if c else "G" for c in colors)


def runs_str(colors: str) -> str:
    """'CCCGG' -> '3C 2G' (short enough for a report)."""
    if not colors:
        return "(no pages)"
    out, last, n = [], colors[0], 0
    for c in colors:
        if c == last:
            n += 1
        else:
            out.append(f"{n}{last}")
            last, n = c, 1
    out.append(f"{n}{last}")
    return " ".join(out)


# --------------------------------------------------------------------------- tools


def _which(tool: str) -> str:
    path = shutil.which(tool)
    if path is None:
        raise CorpusError(f"{tool} is not installed (Debian: ghostscript, qpdf)")
    return path


def tool_version(tool: str) -> str:
    arg = "--version"
    out = subprocess.run([_which(tool), arg], capture_output=True, text=True, timeout=30).stdout
    m = re.search(r"\d+(\.\d+)+", out)
    return m.group(0) if m else "unknown"


def _run(argv: list[str], timeout: float = GS_TIMEOUT, **kw: Any) -> subprocess.CompletedProcess:
    proc = subprocess.run(argv, capture_output=True, timeout=timeout, **kw)
    if proc.returncode != 0:
        raise CorpusError(f"{' '.join(map(str, argv))} exited with {proc.returncode}:\n"
                          f"{proc.stderr.decode(errors='replace')[-2000:]}")
    return proc


def gs(*args: str, timeout: float = GS_TIMEOUT) -> subprocess.CompletedProcess:
    return _run([_which("gs"), *args], timeout=timeout)


def inkcov(path: str | Path, timeout: float = GS_TIMEOUT) -> list[bool]:
    """Colour of every page gs renders of ``path`` (its length is gs's page count)."""
    out = gs(*INKCOV_ARGS, str(path), timeout=timeout).stdout.decode(errors="replace")
    colors = []
    for line in out.splitlines():
        m = re.match(r"\s*([\d.]+)\s+([\d.]+)\s+([\d.]+)\s+([\d.]+)\s+CMYK", line)
        if m:
            c, mg, y = (float(m.group(i)) for i in (1, 2, 3))
            colors.append(max(c, mg, y) > INK_THRESHOLD)
    return colors


def pdf_page_count(path: str | Path) -> int:
    """gs's own PDF page count (the PDF interpreter's pdfpagecount)."""
    p = str(Path(path).resolve())
    ps = f"({p}) (r) file runpdfbegin pdfpagecount = quit"
    out = gs("-q", "-dNODISPLAY", "-dSAFER", f"--permit-file-read={p}", "-c", ps).stdout.decode()
    return int(out.split()[-1])


# --------------------------------------------------------------------------- source PostScript


def source_colors(pages: int, color: bool) -> list[bool]:
    """The designed pattern: colour documents have colour on pages 1, 4, 7, ..."""
    return [color and i % 3 == 1 for i in range(1, pages + 1)]


_HUES = ("1 0 0", "0 0.6 0", "0 0 1", "0 1 1", "1 0 1", "1 0.8 0")

_PROLOG = """\
%%BeginProlog
/F { /Helvetica findfont exch scalefont setfont } bind def
/GRAYPAGE {  % n -> : what every page has: all neutral
  0 setgray 24 F 72 760 moveto (Page ) show 10 string cvs show
  12 F 72 740 moveto (spoolproxy acceptance corpus: gray text, DeviceGray, neutral RGB, K-only CMYK) show
  0.5 setgray 72 560 150 100 rectfill
  0.3 0.3 0.3 setrgbcolor 250 560 150 100 rectfill
  0 0 0 setrgbcolor 72 540 moveto (RGB black text) show
  0 0 0 0.6 setcmykcolor 72 400 150 100 rectfill
  0 setgray 2 setlinewidth 72 380 moveto 520 380 lineto stroke
} bind def
/COLORBOX { setrgbcolor 300 380 200 150 rectfill } bind def  % r g b -> : about 6 % of A4
%%EndProlog
"""


def _ps_page(n: int, ordinal: int, color: bool) -> str:
    body = f"%%Page: {n} {ordinal}\n{n} GRAYPAGE\n"
    if color:
        body += f"{_HUES[n % len(_HUES)]} COLORBOX\n"
    return body + "showpage\n"


def write_source_ps(path: Path, colors: list[bool], *, atend: bool = False,
                    embed_eps_on: int | None = None) -> None:
    """A DSC-conforming PostScript document whose page ``i`` is colour when ``colors[i]``.

    ``atend``: ``%%Pages: (atend)`` in the header and the count in the trailer.
    ``embed_eps_on``: that page (1-based) also draws an embedded EPS (``EPS_DOC``) between
    ``%%BeginDocument``/``%%EndDocument``; the EPS has its own ``%%Pages:``/``%%Page:``
    comments, which a DSC counter must not count, and puts colour on the page."""
    n = len(colors)
    with open(path, "w", encoding="ascii", newline="\n") as f:
        f.write("%!PS-Adobe-3.0\n%%Creator: spoolproxy tests/pdlcorpus.py\n")
        f.write(f"%%Title: {path.name}\n%%LanguageLevel: 2\n")
        f.write("%%Pages: (atend)\n" if atend else f"%%Pages: {n}\n")
        f.write(f"%%BoundingBox: 0 0 {A4[0]} {A4[1]}\n%%DocumentMedia: A4 {A4[0]} {A4[1]} 0 () ()\n")
        f.write("%%EndComments\n" + _PROLOG)
        f.write(f"%%BeginSetup\n<< /PageSize [{A4[0]} {A4[1]}] >> setpagedevice\n%%EndSetup\n")
        for i, c in enumerate(colors, 1):
            if embed_eps_on == i:
                f.write(f"%%Page: {i} {i}\n{i} GRAYPAGE\n" + _embedded_eps() + "showpage\n")
            else:
                f.write(_ps_page(i, i, c))
        f.write("%%Trailer\n")
        if atend:
            f.write(f"%%Pages: {n}\n")
        f.write("%%EOF\n")


EPS_DOC = """\
%!PS-Adobe-3.0 EPSF-3.0
%%BoundingBox: 0 0 200 200
%%Pages: 2
%%EndComments
%%Page: 1 1
0 0 1 setrgbcolor 0 0 200 100 rectfill
showpage
%%Page: 2 2
1 0 0 setrgbcolor 0 100 200 100 rectfill
showpage
%%Trailer
%%EOF
"""


def _embedded_eps() -> str:
    # The usual wrapper (PLRM, "Including EPS files"): save, a private dictionary with a
    # harmless showpage, and the document itself between %%BeginDocument/%%EndDocument.
    return ("/EPSsave save def /showpage {} def 0 setgray 0 setlinecap 1 setlinewidth\n"
            "320 360 translate\n"
            "%%BeginDocument: colour.eps\n" + EPS_DOC + "%%EndDocument\n"
            "EPSsave restore\n")


# --------------------------------------------------------------------------- PWG / Apple raster codec
# Just enough to write the hand-built rasters and to decode every page of a corpus
# raster (the oracle check and the pixel-exact reference conversion).

PWG_HEADER = 1796
# offsets (in the 1796-byte PWG header) of the fields used here
_PWG_FIELDS = {
    "HWResolution": 276, "NumCopies": 340, "PageSize": 352, "Duplex": 272, "Tumble": 368,
    "cupsWidth": 372, "cupsHeight": 376, "cupsBitsPerColor": 384, "cupsBitsPerPixel": 388,
    "cupsBytesPerLine": 392, "cupsColorOrder": 396, "cupsColorSpace": 400, "cupsNumColors": 420,
    "TotalPageCount": 452,
}
CSPACE_SGRAY, CSPACE_SRGB, CSPACE_W, CSPACE_K = 18, 19, 0, 3


@dataclasses.dataclass
class RasterPage:
    width: int
    height: int
    bpp: int            # bits per pixel
    colorspace: int     # PWG cupsColorSpace, or the URF colour-space byte
    header: bytes       # the raw page header
    lines: list[bytes]  # decoded, one bytes object per line (shared when lines repeat)

    @property
    def bytes_per_pixel(self) -> int:
        return self.bpp // 8


def _u32(b: bytes, off: int) -> int:
    return struct.unpack_from(">I", b, off)[0]


def pwg_header(width: int, height: int, *, colorspace: int = CSPACE_SRGB, bits: int = 8,
               colors: int = 3, dpi: int = 72, copies: int = 1, media: tuple[int, int] = A4,
               total_pages: int = 0) -> bytes:
    h = bytearray(PWG_HEADER)
    h[0:9] = b"PwgRaster"
    struct.pack_into(">II", h, 276, dpi, dpi)
    struct.pack_into(">I", h, 340, copies)
    struct.pack_into(">II", h, 352, *media)
    struct.pack_into(">II", h, 372, width, height)
    struct.pack_into(">III", h, 384, bits, bits * colors, width * bits * colors // 8)
    struct.pack_into(">I", h, 400, colorspace)
    struct.pack_into(">I", h, 420, colors)
    struct.pack_into(">I", h, 452, total_pages)
    return bytes(h)


def encode_line(line: bytes, bpp: int) -> bytes:
    """PackBits-style PWG/URF encoding of one line: runs of equal pixels, and literal
    groups of up to 128 differing pixels."""
    px = [line[i:i + bpp] for i in range(0, len(line), bpp)]
    out = bytearray()
    i, n = 0, len(px)
    while i < n:
        j = i + 1
        while j < n and j - i < 128 and px[j] == px[i]:
            j += 1
        if j - i >= 2:
            out.append(j - i - 1)
            out += px[i]
            i = j
            continue
        j = i + 1  # a literal group: up to the next pair of equal pixels
        while j < n and j - i < 128 and not (j + 1 < n and px[j] == px[j + 1]):
            j += 1
        if j - i == 1:
            out.append(0)
            out += px[i]
        else:
            out.append(257 - (j - i))
            out += b"".join(px[i:j])
        i = j
    return bytes(out)


def encode_page(lines: list[bytes], bpp: int) -> bytes:
    """Lines with the line-repeat byte: equal consecutive lines share one record."""
    out = bytearray()
    i = 0
    while i < len(lines):
        j = i + 1
        while j < len(lines) and j - i < 256 and lines[j] == lines[i]:
            j += 1
        out.append(j - i - 1)
        out += encode_line(lines[i], bpp)
        i = j
    return bytes(out)


def _decode_line(data: bytes, pos: int, width: int, bpp: int, urf: bool, white: bytes) -> tuple[bytes, int]:
    out = bytearray()
    need = width * bpp
    while len(out) < need:
        if pos >= len(data):
            raise CorpusError("raster data ends inside a line")
        c = data[pos]
        pos += 1
        if c < 128:
            out += data[pos:pos + bpp] * (c + 1)
            pos += bpp
        elif c == 128 and urf:  # Apple raster: the rest of the line is white
            out += white * ((need - len(out)) // bpp)
        else:
            k = 257 - c
            out += data[pos:pos + k * bpp]
            pos += k * bpp
    if len(out) != need:
        raise CorpusError(f"a line decodes to {len(out)} bytes, not {need}")
    return bytes(out), pos


def _decode_lines(data: bytes, pos: int, width: int, height: int, bpp: int, urf: bool,
                  white: bytes, memo: dict[bytes, bytes]) -> tuple[list[bytes], int]:
    lines: list[bytes] = []
    while len(lines) < height:
        repeat = data[pos] + 1
        start = pos + 1
        # Most lines repeat across pages (white margins): decode each distinct record once.
        # The record's length is only known after decoding it, so the memo key is a
        # prefix that always contains the whole record (width * bpp + the control bytes).
        line, pos = _decode_line(data, start, width, bpp, urf, white)
        key = data[start:pos]
        line = memo.setdefault(key, line)
        lines.extend([line] * min(repeat, height - len(lines)))
    return lines, pos


def read_raster(path: str | Path) -> tuple[str, list[RasterPage]]:
    """("pwg" | "urf", pages) of a PWG raster or Apple raster file, fully decoded."""
    data = Path(path).read_bytes()
    memo: dict[bytes, bytes] = {}
    pages: list[RasterPage] = []
    if data[:4] == b"RaS2":
        pos = 4
        while pos < len(data):
            h = data[pos:pos + PWG_HEADER]
            if len(h) < PWG_HEADER:
                raise CorpusError("truncated PWG page header")
            w, ht = _u32(h, 372), _u32(h, 376)
            bpp, cs = _u32(h, 388), _u32(h, 400)
            if bpp % 8:
                raise CorpusError(f"{bpp} bits per pixel: the corpus only makes 8-bit samples")
            white = b"\xff" * (bpp // 8) if cs in (CSPACE_SRGB, CSPACE_SGRAY, CSPACE_W, 1) else b"\0" * (bpp // 8)
            lines, pos = _decode_lines(data, pos + PWG_HEADER, w, ht, bpp // 8, False, white, memo)
            pages.append(RasterPage(w, ht, bpp, cs, h, lines))
        return "pwg", pages
    if data[:8] == b"UNIRAST\0":
        pos = 12
        while pos < len(data):
            h = data[pos:pos + 32]
            if len(h) < 32:
                raise CorpusError("truncated URF page header")
            bpp, cs = h[0], h[1]
            w, ht = _u32(h, 12), _u32(h, 16)
            lines, pos = _decode_lines(data, pos + 32, w, ht, bpp // 8, True, b"\xff" * (bpp // 8), memo)
            pages.append(RasterPage(w, ht, bpp, cs, h, lines))
        return "urf", pages
    raise CorpusError(f"{path} is neither PWG raster nor Apple raster")


def page_is_color(page: RasterPage) -> bool:
    """Any pixel with R, G, B not all equal (no tolerance: the corpus is exact)."""
    if page.bytes_per_pixel != 3:
        return False
    for line in set(page.lines):
        if line[0::3] != line[1::3] or line[1::3] != line[2::3]:
            return True
    return False


def luma(r: int, g: int, b: int) -> int:
    """The reference grayscale conversion (ITU-R BT.601 weights, rounded; R=G=B stays)."""
    return (299 * r + 587 * g + 114 * b + 500) // 1000


def gray_line(line: bytes) -> bytes:
    return bytes(luma(line[i], line[i + 1], line[i + 2]) for i in range(0, len(line), 3))


def reference_gray(pages: list[RasterPage]) -> list[list[bytes]]:
    """The lines every page must have after grayscale conversion (8-bit sRGB -> 8-bit gray;
    a page already gray stays as it is)."""
    memo: dict[bytes, bytes] = {}
    out = []
    for p in pages:
        if p.bytes_per_pixel == 1:
            out.append(list(p.lines))
            continue
        if p.bytes_per_pixel != 3:
            raise CorpusError(f"reference conversion of {p.bpp}-bit pixels is not implemented")
        out.append([memo.get(ln) or memo.setdefault(ln, gray_line(ln)) for ln in p.lines])
    return out


def write_pwg(path: Path, pages: list[list[bytes]], width: int, *, dpi: int = 72) -> None:
    with open(path, "wb") as f:
        f.write(b"RaS2")
        for lines in pages:
            f.write(pwg_header(width, len(lines), dpi=dpi, total_pages=len(pages)))
            f.write(encode_page(lines, 3))


def write_urf(path: Path, pages: list[list[bytes]], width: int, *, dpi: int = 72) -> None:
    with open(path, "wb") as f:
        f.write(b"UNIRAST\0" + struct.pack(">I", len(pages)))
        for lines in pages:
            # as gs writes it: bits per pixel, colour space (1 = sRGB), duplex (1 = one-sided),
            # quality (0 = default), 8 reserved, width, height, resolution, 8 reserved
            f.write(struct.pack(">BBBB8xIII8x", 24, 1, 1, 0, width, len(lines), dpi))
            f.write(encode_page(lines, 3))


def one_pixel_pages(width: int = 48, height: int = 64) -> tuple[list[list[bytes]], list[bool]]:
    """Two sRGB pages: a neutral gray ramp with black and white lines, and the same
    page with one pixel in colour. Expected: gray, colour."""
    lines = []
    for y in range(height):
        if y % 16 == 0:
            lines.append(b"\0\0\0" * width)
        elif y % 16 < 6:
            lines.append(b"\xff\xff\xff" * width)
        else:
            lines.append(b"".join(bytes((v, v, v)) for v in ((x * 255) // (width - 1) for x in range(width))))
    colored = list(lines)
    y, x = height // 2 + 3, width // 3
    row = bytearray(colored[y])
    row[3 * x:3 * x + 3] = b"\xd0\x20\x30"
    colored[y] = bytes(row)
    return [lines, colored], [False, True]


# --------------------------------------------------------------------------- PDF incremental updates


def _qpdf_json(path: Path) -> dict:
    out = _run([_which("qpdf"), "--json=2", "--json-key=pages", "--json-key=qpdf", str(path)]).stdout
    return json.loads(out)


def _ref_num(ref: str) -> int:
    return int(ref.split()[0])


def _pdf_structure(path: Path) -> dict:
    """Root, the page tree's root object, the page objects in order, /Size and the last
    startxref of a PDF whose page tree is one /Pages node (as gs writes it)."""
    data = _qpdf_json(path)
    objects = data["qpdf"][1]
    trailer = objects["trailer"]["value"]
    root = _ref_num(trailer["/Root"])
    pages_root = _ref_num(objects[f"obj:{root} 0 R"]["value"]["/Pages"])
    kids = [_ref_num(r) for r in objects[f"obj:{pages_root} 0 R"]["value"]["/Kids"]]
    pages = [_ref_num(p["object"]) for p in data["pages"]]
    if kids != pages:
        raise CorpusError(f"{path}: the page tree has more than one level")
    raw = path.read_bytes()
    startxref = int(re.findall(rb"startxref\s+(\d+)", raw)[-1])
    return {"root": root, "pages_root": pages_root, "pages": pages, "size": int(trailer["/Size"]),
            "startxref": startxref, "raw": raw}


def _page_object(num: int, parent: int, content: int) -> bytes:
    return (f"{num} 0 obj\n<< /Type /Page /Parent {parent} 0 R /MediaBox [0 0 {A4[0]} {A4[1]}] "
            f"/Resources << >> /Contents {content} 0 R >>\nendobj\n").encode()


def _stream_object(num: int, content: bytes) -> bytes:
    body = zlib.compress(content)
    return (f"{num} 0 obj\n<< /Length {len(body)} /Filter /FlateDecode >>\nstream\n".encode()
            + body + b"\nendstream\nendobj\n")


NEW_PAGE_CONTENT = {
    True: b"0.5 g 72 600 200 100 re f 0 0 0 rg 72 450 200 100 re f 0.9 0.1 0.1 rg 300 300 200 150 re f\n",
    False: b"0.5 g 72 600 200 100 re f 0.4 0.4 0.4 rg 72 450 200 100 re f 0 0 0 0.7 k 300 300 200 150 re f\n",
}


def pdf_update(src: Path, dst: Path, *, add: list[bool] = (), delete: list[int] = (),
               xref_stream: bool = False) -> None:
    """Append one incremental update to ``src``: pages added at the end (their colours in
    ``add``) and the pages at the 0-based indexes ``delete`` removed from the page tree
    (their objects freed in the new xref section), written to ``dst``."""
    st = _pdf_structure(src)
    raw = st["raw"]
    if not raw.endswith(b"\n"):
        raw += b"\n"
    out = bytearray(raw)
    offsets: dict[int, int] = {}
    nxt = st["size"]
    new_pages = []
    for color in add:
        content, page = nxt, nxt + 1
        nxt += 2
        offsets[content] = len(out)
        out += _stream_object(content, NEW_PAGE_CONTENT[color])
        offsets[page] = len(out)
        out += _page_object(page, st["pages_root"], content)
        new_pages.append(page)
    gone = [st["pages"][i] for i in delete]
    kids = [p for p in st["pages"] if p not in gone] + new_pages
    offsets[st["pages_root"]] = len(out)
    out += (f"{st['pages_root']} 0 obj\n<< /Type /Pages /Count {len(kids)} /Kids ["
            + " ".join(f"{k} 0 R" for k in kids) + "] >>\nendobj\n").encode()
    if xref_stream:
        _xref_stream_section(out, offsets, gone, st, nxt)
    else:
        _xref_table_section(out, offsets, gone, st, nxt)
    dst.write_bytes(bytes(out))


def _xref_table_section(out: bytearray, offsets: dict[int, int], gone: list[int], st: dict, size: int) -> None:
    entries = {n: f"{off:010d} 00000 n \r\n" for n, off in offsets.items()}
    # freed objects: a linked list through the free entries, generation bumped to 1
    free = sorted(gone)
    for i, n in enumerate(free):
        entries[n] = f"{(free[i + 1] if i + 1 < len(free) else 0):010d} 00001 f \r\n"
    entries[0] = f"{(free[0] if free else 0):010d} 65535 f \r\n"
    xref_at = len(out)
    text = "xref\n"
    for n in sorted(entries):  # one subsection per object: always valid
        text += f"{n} 1\n{entries[n]}"
    text += (f"trailer\n<< /Size {size} /Root {st['root']} 0 R /Prev {st['startxref']} >>\n"
             f"startxref\n{xref_at}\n%%EOF\n")
    out += text.encode()


def _xref_stream_section(out: bytearray, offsets: dict[int, int], gone: list[int], st: dict, size: int) -> None:
    xref_num = size
    size += 1
    xref_at = len(out)
    offsets = dict(offsets)
    offsets[xref_num] = xref_at
    rows, index = bytearray(), []
    free = sorted(gone)
    entries: dict[int, bytes] = {n: struct.pack(">BIH", 1, off, 0) for n, off in offsets.items()}
    for i, n in enumerate(free):
        entries[n] = struct.pack(">BIH", 0, free[i + 1] if i + 1 < len(free) else 0, 1)
    for n in sorted(entries):
        index += [n, 1]
        rows += entries[n]
    out += (f"{xref_num} 0 obj\n<< /Type /XRef /Size {size} /Root {st['root']} 0 R /Prev {st['startxref']} "
            f"/W [1 4 2] /Index [{' '.join(map(str, index))}] /Length {len(rows)} >>\nstream\n").encode()
    out += rows + b"\nendstream\nendobj\n" + f"startxref\n{xref_at}\n%%EOF\n".encode()


# --------------------------------------------------------------------------- PJL


def pjl_wrap(body: bytes, language: str, *, copies: int | None = None, job: str = "corpus") -> bytes:
    head = UEL + b"@PJL JOB NAME=\"" + job.encode() + b"\"\r\n"
    if copies is not None:
        head += b"@PJL SET COPIES=%d\r\n" % copies
    head += b"@PJL ENTER LANGUAGE=" + language.encode() + b"\r\n"
    return head + body + UEL + b"@PJL EOJ\r\n" + UEL


def pxl_body(data: bytes) -> bytes:
    """The PCL XL stream of a gs pxl file, without gs's own PJL header and trailer."""
    m = re.search(rb"[)'(] HP-PCL XL;", data)
    if m is None:
        raise CorpusError("no PCL XL stream header")
    body = data[m.start():]
    end = body.rfind(UEL)
    return body[:end] if end >= 0 else body


# --------------------------------------------------------------------------- the build


@dataclasses.dataclass
class Job:
    """A corpus file to make: ``make(path)`` writes it; ``expect`` gives (colors, oracle)."""
    name: str
    filename: str
    format: str | None
    make: Callable[[Path], None]
    family: str
    depends: tuple[str, ...] = ()
    oracle: str = "gs"              # "gs": inkcov of this file; "source": the source's; "built": by construction
    source: str | None = None       # for oracle "source"
    expect: list[bool] | None = None  # designed colours (checked against the oracle)
    copies: int = 1
    gray_convert: bool = False
    raster: str | None = None


def _resolution(pages: int, kind: str) -> int:
    """Low resolutions keep the corpus small and fast; colour boxes stay many pixels wide."""
    if kind == "raster":
        return 12 if pages > 100 else 24
    if kind == "ljet4":
        return 75  # one of the resolutions the LaserJet 4 accepts
    return 30 if pages > 100 else 75  # pxl


def _raster_args(pages: int) -> list[str]:
    return [f"-r{_resolution(pages, 'raster')}", "-dcupsColorSpace=19", "-dcupsBitsPerColor=8"]


def _jobs(work: Path) -> list[Job]:
    jobs: list[Job] = []

    def path(name: str) -> Path:
        return work / name

    for color in (True, False):
        for n in SIZES:
            base = f"{'color' if color else 'gray'}-{n}"
            src = f"{base}.ps"
            colors = source_colors(n, color)
            convert = color and n <= 17
            jobs.append(Job(base + ".ps", src, PS, lambda p, c=colors: write_source_ps(p, c), "ps-source",
                            expect=colors, gray_convert=convert))
            srcp = path(src)

            def gsdev(dev: str, extra: list[str], s: Path = srcp) -> Callable[[Path], None]:
                # -dUseFastColor for the rendering devices: neutral colours (K-only CMYK
                # included) become exactly neutral pixels, as inkcov sees them
                fast = [] if dev in ("pdfwrite", "ps2write") else ["-dUseFastColor"]
                return lambda p: gs("-q", "-dSAFER", "-dBATCH", "-dNOPAUSE", f"-sDEVICE={dev}", *fast, *extra,
                                    "-o", str(p), str(s))

            nostm = f"{base}.pdf"
            jobs.append(Job(nostm, nostm, PDF, gsdev("pdfwrite", ["-dWriteObjStms=false", "-dWriteXRefStm=false"]),
                            "pdf", (src,), expect=colors, gray_convert=convert))
            jobs.append(Job(f"{base}.objstm.pdf", f"{base}.objstm.pdf", PDF,
                            lambda p, s=path(nostm): _run([_which("qpdf"), "--object-streams=generate",
                                                           str(s), str(p)]),
                            "pdf-objstm", (nostm,), oracle="restructured", source=nostm, expect=colors,
                            gray_convert=convert))
            jobs.append(Job(f"{base}.ps2write.ps", f"{base}.ps2write.ps", PS, gsdev("ps2write", []),
                            "ps2write", (src,), expect=colors, gray_convert=convert))
            gray = [False] * n
            jobs.append(Job(f"{base}.pxlmono.pxl", f"{base}.pxlmono.pxl", PCLXL,
                            gsdev("pxlmono", [f"-r{_resolution(n, 'pxl')}"]), "pxlmono", (src,),
                            oracle="source-gray", source=src, expect=gray))
            jobs.append(Job(f"{base}.pxlcolor.pxl", f"{base}.pxlcolor.pxl", PCLXL,
                            gsdev("pxlcolor", [f"-r{_resolution(n, 'pxl')}"]), "pxlcolor", (src,),
                            oracle="source", source=src, expect=colors, gray_convert=convert))
            jobs.append(Job(f"{base}.ljet4.pcl", f"{base}.ljet4.pcl", PCL,
                            gsdev("ljet4", [f"-r{_resolution(n, 'ljet4')}"]), "ljet4", (src,),
                            oracle="source-gray", source=src, expect=gray))
            for dev, fam, ext, fmt, kind in (("pwgraster", "pwgraster", "pwg", PWG, "pwg"),
                                             ("urf", "urf", "urf", URF, "urf"),
                                             ("appleraster", "appleraster", "appleraster.urf", URF, "urf")):
                jobs.append(Job(f"{base}.{ext}", f"{base}.{ext}", fmt, gsdev(dev, _raster_args(n)), fam, (src,),
                                oracle="source", source=src, expect=colors, raster=kind,
                                gray_convert=color and (n <= 17 or fam != "appleraster")))
    jobs.extend(_edge_jobs(work))
    return jobs


def _edge_jobs(work: Path) -> list[Job]:
    p = lambda name: work / name  # noqa: E731
    jobs: list[Job] = []
    c2, c17 = source_colors(2, True), source_colors(17, True)
    add = [True, False]
    jobs.append(Job("edge-pdf-incr-add", "edge-pdf-incr-add.pdf", PDF,
                    lambda d: pdf_update(p("color-2.pdf"), d, add=add), "edge", ("color-2.pdf",),
                    expect=c2 + add, gray_convert=True))
    delete = [1] + list(range(5, 17))  # keep pages 1, 3, 4, 5
    jobs.append(Job("edge-pdf-incr-delete", "edge-pdf-incr-delete.pdf", PDF,
                    lambda d: pdf_update(p("color-17.pdf"), d, delete=delete), "edge", ("color-17.pdf",),
                    expect=[c for i, c in enumerate(c17) if i not in delete]))
    jobs.append(Job("edge-pdf-incr-add-delete", "edge-pdf-incr-add-delete.pdf", PDF,
                    lambda d: pdf_update(p("edge-pdf-incr-add.pdf"), d, delete=[0]), "edge",
                    ("edge-pdf-incr-add.pdf",), expect=(c2 + add)[1:]))
    jobs.append(Job("edge-pdf-incr-xrefstm", "edge-pdf-incr-xrefstm.pdf", PDF,
                    lambda d: pdf_update(p("color-17.objstm.pdf"), d, add=[False, True, True], delete=[0, 16],
                                         xref_stream=True),
                    "edge", ("color-17.objstm.pdf",), expect=c17[1:16] + [False, True, True]))
    jobs.append(Job("edge-pdf-linearized", "edge-pdf-linearized.pdf", PDF,
                    lambda d: _run([_which("qpdf"), "--linearize", str(p("color-17.pdf")), str(d)]), "edge",
                    ("color-17.pdf",), expect=c17, gray_convert=True))
    jobs.append(Job("edge-ps-atend", "edge-ps-atend.ps", PS, lambda d: write_source_ps(d, c17, atend=True),
                    "edge", expect=c17, gray_convert=True))
    eps_colors = [False, True, False]
    jobs.append(Job("edge-ps-embedded-eps", "edge-ps-embedded-eps.ps", PS,
                    lambda d: write_source_ps(d, [False] * 3, embed_eps_on=2), "edge", expect=eps_colors,
                    gray_convert=True))
    jobs.append(Job("edge-pcl-copies3", "edge-pcl-copies3.pcl", PCL,
                    lambda d: d.write_bytes(_pcl_copies(p("gray-2.ljet4.pcl").read_bytes(), 3)), "edge",
                    ("gray-2.ljet4.pcl",), oracle="source-gray", source="gray-2.ps", expect=[False] * 2, copies=3))
    # gs ends every PCL XL page with PageCopies 1, which overrides PJL COPIES (the
    # language's own setting wins): without it the PJL default applies; with PageCopies 3
    # the language's 3 wins over PJL's 2.
    jobs.append(Job("edge-pjl-pclxl-copies2", "edge-pjl-pclxl-copies2.pxl", PCLXL,
                    lambda d: d.write_bytes(pjl_wrap(_pxl_page_copies(p("color-2.pxlcolor.pxl").read_bytes(), None),
                                                     "PCLXL", copies=2)),
                    "edge", ("color-2.pxlcolor.pxl",), oracle="source", source="color-2.ps", expect=c2, copies=2,
                    gray_convert=True))
    jobs.append(Job("edge-pjl-pclxl-pagecopies3", "edge-pjl-pclxl-pagecopies3.pxl", PCLXL,
                    lambda d: d.write_bytes(pjl_wrap(_pxl_page_copies(p("color-2.pxlcolor.pxl").read_bytes(), 3),
                                                     "PCLXL", copies=2)),
                    "edge", ("color-2.pxlcolor.pxl",), oracle="source", source="color-2.ps", expect=c2, copies=3))
    jobs.append(Job("edge-pjl-two-languages", "edge-pjl-two-languages.pjl", None,
                    lambda d: d.write_bytes(_two_languages(p("gray-2.pxlmono.pxl"), p("color-17.ps"))), "edge",
                    ("gray-2.pxlmono.pxl", "color-17.ps"), oracle="parts", expect=[False] * 2 + c17))
    pages, colors = one_pixel_pages()
    jobs.append(Job("edge-pwg-one-pixel", "edge-pwg-one-pixel.pwg", PWG,
                    lambda d: write_pwg(d, pages, len(pages[0][0]) // 3), "edge", oracle="built",
                    expect=colors, raster="pwg", gray_convert=True))
    jobs.append(Job("edge-urf-one-pixel", "edge-urf-one-pixel.urf", URF,
                    lambda d: write_urf(d, pages, len(pages[0][0]) // 3), "edge", oracle="built",
                    expect=colors, raster="urf", gray_convert=True))
    return jobs


def _pcl_copies(data: bytes, copies: int) -> bytes:
    out, n = re.subn(rb"\x1b&l1X", b"\x1b&l%dX" % copies, data)
    if n == 0:  # no copies command of its own: put ours right after the first reset
        i = data.index(b"\x1bE") + 2
        out = data[:i] + b"\x1b&l%dX" % copies + data[i:]
    return out


_PXL_PAGE_COPIES_1 = b"\xc1\x01\x00\xf8\x31\x44"  # uint16 1, attribute PageCopies, EndPage


def _pxl_page_copies(data: bytes, copies: int | None) -> bytes:
    """gs's PCL XL stream (without its PJL) with every EndPage's PageCopies 1 removed
    (None) or set to ``copies``."""
    body = pxl_body(data)
    pages = body.count(b"\xf8\x31\x44")
    new = b"\x44" if copies is None else b"\xc1" + struct.pack("<H", copies) + b"\xf8\x31\x44"
    if body.count(_PXL_PAGE_COPIES_1) != pages or not body.startswith(b")"):
        raise CorpusError("gs's PCL XL output no longer ends pages with 'uint16 1 PageCopies EndPage'")
    return body.replace(_PXL_PAGE_COPIES_1, new)


def _two_languages(pxl: Path, ps: Path) -> bytes:
    return (UEL + b"@PJL JOB NAME=\"two languages\"\r\n@PJL ENTER LANGUAGE=PCLXL\r\n"
            + pxl_body(pxl.read_bytes()) + UEL
            + b"@PJL ENTER LANGUAGE=POSTSCRIPT\r\n" + ps.read_bytes() + UEL + b"@PJL EOJ\r\n" + UEL)


def _run_jobs(jobs: list[Job], work: Path, workers: int) -> dict[str, float]:
    """Make every file, each after the files it depends on, ``workers`` at a time."""
    by_file = {j.filename: j for j in jobs}
    done: dict[str, concurrent.futures.Future] = {}
    took: dict[str, float] = {}

    def make(job: Job) -> None:
        for dep in job.depends:
            done[dep].result()  # raises the dependency's error
        t0 = time.monotonic()
        job.make(work / job.filename)
        took[job.filename] = time.monotonic() - t0

    # sources first, so that a worker never waits for a job queued behind it
    order = sorted(jobs, key=lambda j: _depth(j, by_file))
    with concurrent.futures.ThreadPoolExecutor(max_workers=workers) as pool:
        for job in order:
            done[job.filename] = pool.submit(make, job)
        for f in done.values():
            f.result()
    return took


def _depth(job: Job, by_file: dict[str, Job]) -> int:
    return 0 if not job.depends else 1 + max(_depth(by_file[d], by_file) for d in job.depends if d in by_file)


def _oracle(jobs: list[Job], work: Path, workers: int) -> dict[str, tuple[list[bool], str]]:
    """(colours, how) for every file; gs reads every PDF and PostScript file itself."""
    by_file = {j.filename: j for j in jobs}
    # gs renders every PDF and PostScript file itself, except the object-stream
    # rewrites: qpdf changes only their file structure (the content streams are the very
    # same bytes), so their colours are the classic file's inkcov and their page count is
    # gs's own pdfpagecount of the rewritten file (rendering 2000 PDF pages twice more
    # would double the build time for nothing).
    readable = [j for j in jobs if j.format in (PDF, PS) and j.oracle != "restructured"]
    pdfs = [j for j in jobs if j.format == PDF]
    with concurrent.futures.ThreadPoolExecutor(max_workers=workers) as pool:
        # longest first, so that the 2000-page files do not end up last on one worker
        readable.sort(key=lambda j: -(work / j.filename).stat().st_size)
        ink = dict(zip([j.filename for j in readable],
                       pool.map(lambda j: inkcov(work / j.filename), readable)))
        counts = dict(zip([j.filename for j in pdfs], pool.map(lambda j: pdf_page_count(work / j.filename), pdfs)))
    out: dict[str, tuple[list[bool], str]] = {}
    for j in jobs:
        if j.filename in ink:
            colors, how = ink[j.filename], "gs inkcov of this file"
        elif j.oracle == "restructured":
            colors = ink[j.source]
            how = f"gs inkcov of {j.source} (the same content streams, restructured by qpdf)"
            if counts[j.filename] != len(colors):
                raise CorpusError(f"{j.filename}: gs pdfpagecount {counts[j.filename]} but {j.source} has "
                                  f"{len(colors)} pages")
        elif j.oracle == "source":
            colors, how = ink[j.source], f"gs inkcov of {j.source} (gs cannot read {j.family})"
        elif j.oracle == "source-gray":
            colors = [False] * len(ink[j.source])
            how = f"page count: gs inkcov of {j.source}; gray by construction ({j.family} is monochrome)"
        elif j.oracle == "parts":
            colors = [False] * len(ink["gray-2.ps"]) + ink["color-17.ps"]
            how = "gs inkcov of gray-2.ps (the PCL XL part, pxlmono) + of color-17.ps (the PostScript part)"
        else:
            colors, how = list(j.expect), "by construction (checked by decoding the pixels)"
        if j.filename in counts:
            if counts[j.filename] != len(colors):
                raise CorpusError(f"{j.filename}: gs pdfpagecount {counts[j.filename]} but inkcov rendered "
                                  f"{len(colors)} pages")
            how += " + gs pdfpagecount"
        if j.expect is not None and list(j.expect) != colors:
            raise CorpusError(f"{j.filename}: designed {runs_str(colors_str(j.expect))} but the oracle "
                              f"({how}) says {runs_str(colors_str(colors))}")
        if j.raster:
            _check_raster(work / j.filename, colors)
        out[j.filename] = (colors, how)
    del by_file
    return out


def _check_raster(path: Path, colors: list[bool]) -> None:
    """The pixels agree with the oracle: gray pages exactly neutral, colour pages not."""
    _, pages = read_raster(path)
    seen = [page_is_color(p) for p in pages]
    if seen != colors:
        raise CorpusError(f"{path.name}: the pixels say {runs_str(colors_str(seen))}, the oracle "
                          f"{runs_str(colors_str(colors))}")


def _check_files(jobs: list[Job], work: Path) -> None:
    """The PDF variants are what their names say."""
    for j in jobs:
        if j.family == "pdf":
            if b"/ObjStm" in (work / j.filename).read_bytes():
                raise CorpusError(f"{j.filename} has object streams (gs wrote them: check -dWriteObjStms)")
        elif j.family == "pdf-objstm":
            if b"/ObjStm" not in (work / j.filename).read_bytes():
                raise CorpusError(f"{j.filename} has no object streams (qpdf --object-streams=generate)")


def build_into(work: Path, workers: int | None = None) -> list[Entry]:
    """Build every file into ``work`` and write ``work/manifest.json``."""
    t0 = time.monotonic()
    cpu0 = _children_cpu()
    workers = workers or os.cpu_count() or 2
    work.mkdir(parents=True, exist_ok=True)
    jobs = _jobs(work)
    took = _run_jobs(jobs, work, workers)
    _check_files(jobs, work)
    t1 = time.monotonic()
    oracle = _oracle(jobs, work, workers)
    entries = []
    for j in jobs:
        colors, how = oracle[j.filename]
        entries.append(Entry(name=j.filename, path=j.filename, format=j.format, pages=len(colors),
                             colors=colors_str(colors), oracle=how, copies=j.copies,
                             gray_convert=j.gray_convert, gs_readable=j.format in (PDF, PS),
                             raster=j.raster, family=j.family, size=(work / j.filename).stat().st_size))
    manifest = {"corpus_version": CORPUS_VERSION, "gs": tool_version("gs"), "qpdf": tool_version("qpdf"),
                "inkcov_args": list(INKCOV_ARGS), "ink_threshold": INK_THRESHOLD,
                "build_seconds": round(time.monotonic() - t0, 2), "make_seconds": round(t1 - t0, 2),
                "oracle_seconds": round(time.monotonic() - t1, 2), "workers": workers,
                "tools_cpu_seconds": round(_children_cpu() - cpu0, 1),
                "slowest": sorted(((round(v, 2), k) for k, v in took.items()), reverse=True)[:5],
                "entries": [dataclasses.asdict(e) for e in entries]}
    tmp = work / "manifest.json.tmp"
    tmp.write_text(json.dumps(manifest, indent=1) + "\n")
    os.replace(tmp, work / "manifest.json")
    return load_manifest(work / "manifest.json")


def _children_cpu() -> float:
    import resource
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def names() -> list[str]:
    """Every corpus file's name, without building anything (for test parametrisation)."""
    return [j.filename for j in _jobs(Path("."))]


def cache_key() -> str:
    return f"gs{tool_version('gs')}-qpdf{tool_version('qpdf')}-v{CORPUS_VERSION}"


def cache_dir() -> Path:
    if os.environ.get("SPOOLPROXY_CORPUS_DIR"):
        return Path(os.environ["SPOOLPROXY_CORPUS_DIR"])
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "spoolproxy" / "pdl-corpus" / cache_key()


def build(directory: Path | None = None) -> tuple[Path, list[Entry]]:
    """The corpus in ``directory`` (default ``cache_dir()``): reused when it is complete,
    else built. Safe to call from several processes at once (a lock file)."""
    directory = Path(directory) if directory else cache_dir()
    directory.parent.mkdir(parents=True, exist_ok=True)
    manifest = directory / "manifest.json"
    with open(str(directory) + ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if manifest.exists():
            data = json.loads(manifest.read_text())
            if data.get("corpus_version") == CORPUS_VERSION:
                return directory, load_manifest(manifest)
        if directory.exists():
            shutil.rmtree(directory)  # a half-built or outdated corpus
        building = Path(tempfile.mkdtemp(prefix=directory.name + ".building-", dir=directory.parent))
        try:
            build_into(building)
            os.rename(building, directory)
        finally:
            shutil.rmtree(building, ignore_errors=True)
    return directory, load_manifest(manifest)


# --------------------------------------------------------------------------- the analysis child
# The dispatcher picks the compiled or pure module of every twin pair once, at import
# (spoolproxy._twins.load), so each implementation is analysed in its own process: the
# acceptance test runs this with SPOOLPROXY_NO_EXTENSIONS=1 and without it.


def _analysis_dict(a: Any) -> dict:
    return {"format": a.format, "pages": a.pages, "impressions": a.impressions, "sheets": a.sheets,
            "colors": colors_str(bool(c) for c in a.page_colors()) if a.undecided_pages == 0 else
            "".join("?" if c is None else ("C" if c else "G") for c in a.page_colors()),
            "runs": [[r.count, r.color, r.sides, list(r.media) if r.media else None, r.copies] for r in a.runs],
            "warnings": list(a.warnings)}


def _error(e: BaseException) -> dict:
    return {"error": f"{type(e).__module__}.{type(e).__qualname__}: {e}"}


def _implementations() -> dict[str, str]:
    """Which twin the process uses, per compiled module name."""
    import importlib
    loaded = {}
    for name in list(sys.modules):
        if name.startswith("spoolproxy._ext."):
            loaded[name.rpartition(".")[2]] = "cython"
    for name in list(sys.modules):
        if name.startswith("spoolproxy.pdl."):
            short = name.rpartition(".")[2]
            loaded.setdefault(short, "python")
    del importlib
    return loaded


def analyze_corpus(manifest: Path, out: Path, convert_dir: Path) -> dict:
    """Analyse every corpus file, convert the ones marked to grayscale and analyse the
    result; every failure is recorded per file, never raised."""
    result: dict[str, Any] = {"files": {}, "converted": {}}
    try:
        import spoolproxy.pdl as pdl
    except BaseException as e:  # noqa: BLE001 - reported per file by the test
        result["import_error"] = _error(e)["error"]
        out.write_text(json.dumps(result))
        return result
    convert_dir.mkdir(parents=True, exist_ok=True)
    for e in load_manifest(manifest):
        t0 = time.perf_counter()
        try:
            result["files"][e.name] = _analysis_dict(pdl.analyze(e.path))
        except BaseException as ex:  # noqa: BLE001
            result["files"][e.name] = _error(ex)
        result["files"][e.name]["seconds"] = round(time.perf_counter() - t0, 4)
        if e.gray_convert:
            dst = convert_dir / ("gray-" + Path(e.path).name)
            rec: dict[str, Any] = {"path": str(dst)}
            try:
                pdl.convert_grayscale(e.path, str(dst))
                rec["sha256"] = hashlib.sha256(dst.read_bytes()).hexdigest()
                rec["analysis"] = _analysis_dict(pdl.analyze(str(dst)))
            except BaseException as ex:  # noqa: BLE001
                rec.update(_error(ex))
            result["converted"][e.name] = rec
    result["implementations"] = _implementations()
    result["IMPLEMENTATION"] = getattr(pdl, "IMPLEMENTATION", None)
    out.write_text(json.dumps(result, indent=1))
    return result


# --------------------------------------------------------------------------- command line


def _table(entries: list[Entry]) -> str:
    rows = [f"{'file':40s} {'format':26s} {'pages':>5s} {'copies':>6s}  colours"]
    for e in entries:
        rows.append(f"{e.name:40s} {str(e.format):26s} {e.pages:5d} {e.copies:6d}  {runs_str(e.colors)[:60]}")
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["analyze"] and len(argv) in (3, 4):
        manifest, out = Path(argv[1]), Path(argv[2])
        conv = Path(argv[3]) if len(argv) == 4 else out.parent / "converted"
        analyze_corpus(manifest, out, conv)
        return 0
    if argv[:1] == ["build"] and len(argv) <= 2:
        t0 = time.monotonic()
        directory, entries = build(Path(argv[1]) if len(argv) == 2 else None)
        print(_table(entries))
        data = json.loads((directory / "manifest.json").read_text())
        print(f"\n{len(entries)} files, {sum(e.size for e in entries) / 1e6:.1f} MB in {directory}")
        print(f"built in {data['build_seconds']} s ({data['make_seconds']} s making, {data['oracle_seconds']} s "
              f"oracle, {data['workers']} workers, gs+qpdf CPU {data['tools_cpu_seconds']} s); "
              f"this call took {time.monotonic() - t0:.1f} s")
        return 0
    print(__doc__.split("\n\n")[1], file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
