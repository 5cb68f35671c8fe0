#!/usr/bin/env python3
"""The document engine (issue 3) against the tools people use, in one run, on the same files.

    python3 bench/pdl.py [--quick] [--json FILE] [--size-mib 1024] [--small-mib 100]
                         [--pages 2000] [--keep]                  (--help for the rest)

1. **PDF page count** of one Ghostscript-made PDF of ``--pages`` pages (default 2000):
   ours in-process (``spoolproxy._ext.pdf.page_count`` and the pure
   ``spoolproxy.pdl.pdf.page_count``, opening the file each time) against pikepdf's
   ``len(pdf.pages)`` in-process (also opening the file each time) and against the
   ``pdfinfo`` and ``qpdf --show-npages`` commands (whole process, as a shell script or a
   CUPS filter would run them). Targets: faster than pikepdf; 20x faster than pdfinfo.
2. **Scan throughput** of ``analyze(path, ghostscript=False)`` in this process (one core:
   the scanners are single-threaded) on PCL XL, PostScript and PWG Raster files of
   ``--size-mib`` (default 1 GiB), read from the page cache (the file was just written).
   Target 1 GB/s per core.
3. **PWG Raster to grayscale**: ``convert_grayscale`` from the big PWG file to a file
   beside it, MB/s of input; against Ghostscript doing the same work (see below).
   Targets 300 MB/s per core and >= 10x Ghostscript.
4. **Peak memory**: VmHWM of a fresh child process that imports the engine and analyses
   one file (and one that converts the PWG file), on ``--small-mib`` (100 MiB) and
   ``--size-mib`` (1 GiB) files; flat means the bigger file costs no more than
   ``FLAT_MIB`` more.

The inputs: a PDF that gs's ``pdfwrite`` makes of the acceptance corpus's PostScript
document (tests/pdlcorpus.py); four pages rendered by gs at 300 dpi (a colour document
page, a gray one, a photo-like page of coarse RGB noise and a page-sized photo-like image
at device resolution, a gradient with fine noise), as ``pwgraster`` (8-bit
sRGB) and ``pxlcolor`` and as raw RGB; the big PWG and PCL XL files repeat those pages
(the page blocks of gs's own output, cut at page boundaries) up to the size; the big
PostScript file is a DSC document whose pages carry a hex-encoded image (what a driver
writes), made here.

**"Ghostscript doing the same"** for the grayscale conversion: gs cannot read PWG Raster,
so it gets the very same pixels in the form it reads fastest, raw 8-bit RGB sample files,
one ``colorimage`` per page on a device of exactly that many pixels (``-g WxH``, same
resolution), and writes what we write: an 8-bit sGray ``pwgraster`` file. It does not have
to decode PWG run-length data (we do); it does colour conversion, rendering and PWG
encoding, which is what any gs-based filter would do to produce a gray raster. Its rate is
counted in the same unit: bytes of our PWG input that its pages correspond to, per second
(and megapixels per second for both).

Output: a table per section with ratios and whether each target is met; ``--json FILE``
writes every number. Benchmarks report, tests assert: exit 0 when it ran, whatever the
numbers; 3 when a tool it cannot do without (gs) is missing; 1 when our engine failed or
miscounted.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import statistics
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

REPO = Path(__file__).resolve().parents[1]
for p in (str(REPO), str(REPO / "tests"), str(REPO / "bench")):
    if p not in sys.path:
        sys.path.insert(0, p)

import pdlcorpus  # noqa: E402  (tests/pdlcorpus.py: the corpus's PostScript writer and raster codec)
from _report import say  # noqa: E402

EXIT_OK, EXIT_WRONG, EXIT_TOOL = 0, 1, 3
MIB = 1 << 20
FLAT_MIB = 8          # "flat": the 1 GiB file peaks at most this much above the 100 MiB one
TARGET_PIKEPDF = 1.0  # ours faster than pikepdf
TARGET_PDFINFO = 20.0
TARGET_SCAN_MBPS = 1000.0
TARGET_GRAY_MBPS = 300.0
TARGET_GRAY_VS_GS = 10.0


class ToolMissing(RuntimeError):
    pass


class Wrong(RuntimeError):
    """Our engine failed or gave a wrong count: the numbers would mean nothing."""


def which(tool: str) -> str | None:
    return shutil.which(tool)


def gs(*args: str, timeout: float = 600) -> None:
    exe = which("gs")
    if exe is None:
        raise ToolMissing("gs (Ghostscript) is not installed: it makes the inputs (Debian: ghostscript)")
    proc = subprocess.run([exe, "-q", "-dBATCH", "-dNOPAUSE", *args], capture_output=True, timeout=timeout)
    if proc.returncode:
        raise RuntimeError(f"gs {' '.join(args)}: {proc.stderr.decode(errors='replace')[-1500:]}")


def timed(fn: Callable[[], Any], *, min_runs: int, min_seconds: float) -> tuple[list[float], Any]:
    """Run ``fn`` at least ``min_runs`` times and for at least ``min_seconds`` (after one
    warm-up call); the list of durations and the last result."""
    result = fn()
    times: list[float] = []
    start = time.perf_counter()
    while len(times) < min_runs or time.perf_counter() - start < min_seconds:
        t0 = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - t0)
        if len(times) >= 10_000:
            break
    return times, result


def fmt_time(s: float) -> str:
    if s < 1e-3:
        return f"{s * 1e6:7.1f} us"
    if s < 1:
        return f"{s * 1e3:7.2f} ms"
    return f"{s:7.2f} s "



# --------------------------------------------------------------------------- inputs


def make_pdf(work: Path, pages: int) -> Path:
    ps = work / f"doc-{pages}.ps"
    pdlcorpus.write_source_ps(ps, pdlcorpus.source_colors(pages, True))
    pdf = work / f"doc-{pages}.pdf"
    gs("-dSAFER", "-sDEVICE=pdfwrite", "-o", str(pdf), str(ps))
    return pdf


PHOTO_PS = """%!PS-Adobe-3.0
%%Pages: 1
%%EndComments
<< /PageSize [595 842] >> setpagedevice
%%Page: 1 1
/rnd 12345 def
/next { rnd 1103515245 mul 12345 add 2147483647 and /rnd exch def rnd -16 bitshift 255 and } bind def
/n 160 def
/row n 3 mul string def
/img n n mul 3 mul string def
0 1 n n mul 3 mul 1 sub { img exch next put } for
gsave 20 20 translate 555 800 scale
n n 8 [n 0 0 n neg 0 n] img false 3 colorimage
grestore
showpage
%%EOF
"""


def make_raster_pages(work: Path, dpi: int) -> dict[str, Any]:
    """Four pages (colour document, gray document, coarse and fine photo) as gs renders them: PWG
    page blocks, raw RGB pixel files and a PCL XL stream cut into pages."""
    doc = work / "pages.ps"
    pdlcorpus.write_source_ps(doc, [True, False])
    photo = work / "photo.ps"
    photo.write_text(PHOTO_PS)
    fine = work / "fine.ps"
    write_fine_photo(fine, work / "fine.rgb", dpi)
    both = work / "pages.pdf"
    gs("-dSAFER", f"--permit-file-read={work / 'fine.rgb'}", "-sDEVICE=pdfwrite", "-o", str(both), str(doc),
       str(photo), str(fine))
    pwg = work / "pages.pwg"
    gs("-dSAFER", "-dUseFastColor", "-sDEVICE=pwgraster", f"-r{dpi}", "-dcupsColorSpace=19",
       "-dcupsBitsPerColor=8", "-o", str(pwg), str(both))
    raw = []
    for i in range(RASTER_PAGES):
        ppm = work / f"page{i + 1}.ppm"
        gs("-dSAFER", "-dUseFastColor", "-sDEVICE=ppmraw", f"-r{dpi}", f"-dFirstPage={i + 1}",
           f"-dLastPage={i + 1}", "-o", str(ppm), str(both))
        data = ppm.read_bytes()
        m = re.match(rb"P6\s+(?:#[^\n]*\n\s*)*(\d+)\s+(\d+)\s+(?:#[^\n]*\n\s*)*255\s", data)
        out = work / f"page{i + 1}.rgb"
        out.write_bytes(data[m.end():])
        raw.append({"path": out, "width": int(m.group(1)), "height": int(m.group(2))})
        ppm.unlink()
    blocks = pwg_page_blocks(pwg.read_bytes())
    pxl = work / "pages.pxl"
    gs("-dSAFER", "-dUseFastColor", "-sDEVICE=pxlcolor", f"-r{dpi}", "-o", str(pxl), str(both))
    head, pages, tail = pxl_split(pxl.read_bytes())
    return {"pwg_blocks": blocks, "raw": raw, "pxl": (head, pages, tail), "dpi": dpi}


RASTER_PAGES = 4  # colour document page, gray document page, coarse photo, fine photo


def write_fine_photo(ps: Path, raw: Path, dpi: int) -> None:
    """A page-sized photo-like image at device resolution (a gradient with fine noise):
    neighbouring pixels rarely repeat, the hardest case for run-length conversion."""
    w, h = round(595 * dpi / 72), round(842 * dpi / 72)
    ramp = bytes((x * 255 // max(w - 1, 1)) & 0xF8 for x in range(w) for _ in range(3))
    small = bytes(b & 7 for b in range(256))
    with open(raw, "wb") as f:
        for y in range(h):
            noise = os.urandom(3 * w).translate(small)
            row = int.from_bytes(ramp[y % 3:] + ramp[:y % 3], "big") ^ int.from_bytes(noise, "big")
            f.write(row.to_bytes(3 * w, "big"))
    ps.write_text(f"%!PS-Adobe-3.0\n%%Pages: 1\n%%EndComments\n<< /PageSize [595 842] >> setpagedevice\n"
                  f"%%Page: 1 1\n595 842 scale {w} {h} 8 [{w} 0 0 -{h} 0 {h}] ({raw}) (r) file false 3 colorimage\n"
                  f"showpage\n%%EOF\n")


def pwg_page_blocks(data: bytes) -> list[bytes]:
    """The page blocks (header + encoded lines) of a PWG raster file."""
    blocks, pos = [], 4
    while pos < len(data):
        h = data[pos:pos + pdlcorpus.PWG_HEADER]
        width, height = struct.unpack_from(">II", h, 372)
        bpp = struct.unpack_from(">I", h, 388)[0] // 8
        p = pos + pdlcorpus.PWG_HEADER
        lines = 0
        while lines < height:
            lines += data[p] + 1
            p += 1
            px = 0
            while px < width:
                c = data[p]
                p += 1
                if c < 128:
                    px += c + 1
                    p += bpp
                else:
                    px += 257 - c
                    p += (257 - c) * bpp
        blocks.append(data[pos:p])
        pos = p
    return blocks


# PCL XL (binary, either byte order): enough of a token walker to cut gs's stream into
# pages, so the big file repeats whole pages of real gs output.
_PXL_FIXED = {0xC0: 1, 0xC1: 2, 0xC2: 4, 0xC3: 2, 0xC4: 4, 0xC5: 4, 0xD0: 2, 0xD1: 4, 0xD2: 8, 0xD3: 4,
              0xD4: 8, 0xD5: 8, 0xE0: 4, 0xE1: 8, 0xE2: 16, 0xE3: 8, 0xE4: 16, 0xE5: 16, 0xF8: 1, 0xF9: 2}
_PXL_ARRAY = {0xC8: 1, 0xC9: 2, 0xCA: 4, 0xCB: 2, 0xCC: 4, 0xCD: 4}
_BEGIN_PAGE, _END_PAGE = 0x43, 0x44


def pxl_split(data: bytes) -> tuple[bytes, list[bytes], bytes]:
    """(everything before the first page, the pages, everything after the last)."""
    m = re.search(rb"([)(]) HP-PCL XL;[^\n]*\n", data)
    if m is None:
        raise RuntimeError("not a binary PCL XL stream")
    little = m.group(1) == b")"
    u16, u32 = ("<H", "<I") if little else (">H", ">I")
    pos, starts, ends = m.end(), [], []
    attr_start = None  # where the attribute list of the next operator begins
    while pos < len(data):
        t = data[pos]
        if attr_start is None and (0xC0 <= t <= 0xEF):
            attr_start = pos
        if t in _PXL_FIXED:
            pos += 1 + _PXL_FIXED[t]
        elif t in _PXL_ARRAY:
            lt = data[pos + 1]
            n = data[pos + 2] if lt == 0xC0 else struct.unpack_from(u16, data, pos + 2)[0]
            pos += 2 + (1 if lt == 0xC0 else 2) + n * _PXL_ARRAY[t]
        elif t == 0xFA:
            pos += 5 + struct.unpack_from(u32, data, pos + 1)[0]
        elif t == 0xFB:
            pos += 2 + data[pos + 1]
        elif 0x41 <= t <= 0xBF:
            if t == _BEGIN_PAGE:
                starts.append(attr_start if attr_start is not None else pos)
            elif t == _END_PAGE:
                ends.append(pos + 1)
            attr_start = None
            pos += 1
        elif t == 0x1B:  # UEL after the stream
            break
        else:
            pos += 1  # white space
    if not starts or len(starts) != len(ends):
        raise RuntimeError(f"PCL XL: {len(starts)} BeginPage, {len(ends)} EndPage")
    pages = [data[s:e] for s, e in zip(starts, ends)]
    return data[:starts[0]], pages, data[ends[-1]:]


def _fill(path: Path, head: bytes, blocks: list[bytes], tail: bytes, size: int) -> int:
    """head + blocks repeated in turn until the file reaches ``size`` + tail; the page count."""
    count = 0
    written = len(head) + len(tail)
    with open(path, "wb") as f:
        f.write(head)
        buf, pending = [], 0
        while written < size:
            b = blocks[count % len(blocks)]
            buf.append(b)
            pending += len(b)
            written += len(b)
            count += 1
            if pending >= 8 * MIB:
                f.write(b"".join(buf))
                buf, pending = [], 0
        f.write(b"".join(buf))
        f.write(tail)
    return count


def make_pwg(path: Path, pages: dict, size: int) -> int:
    return _fill(path, b"RaS2", pages["pwg_blocks"], b"", size)


def make_pxl(path: Path, pages: dict, size: int) -> int:
    head, blocks, tail = pages["pxl"]
    return _fill(path, head, blocks, tail, size)


def make_ps(path: Path, size: int) -> int:
    """A DSC PostScript document of about ``size`` bytes: pages with a 512x512 RGB image in
    hex lines (about 1.5 MiB each) and a line of text."""
    line = (bytes(range(256)) * 2)[:39].hex().encode() + b"\n"  # 78 hex digits + newline
    image_lines = (512 * 512 * 3 * 2) // 78 + 1
    page_body = (b"gsave 40 200 translate 512 512 scale\n"
                 b"512 512 8 [512 0 0 -512 0 512] {currentfile picstr readhexstring pop} false 3 colorimage\n"
                 + line * image_lines + b"\ngrestore 0 setgray 72 100 moveto (A driver's page) show showpage\n")
    head = (b"%!PS-Adobe-3.0\n%%Creator: spoolproxy bench/pdl.py\n%%Pages: (atend)\n%%EndComments\n"
            b"%%BeginProlog\n/picstr 1536 string def\n%%EndProlog\n"
            b"%%BeginSetup\n/Helvetica findfont 12 scalefont setfont\n%%EndSetup\n")
    count = 0
    with open(path, "wb") as f:
        f.write(head)
        written = len(head)
        while written < size:
            count += 1
            chunk = b"%%%%Page: %d %d\n" % (count, count) + page_body
            f.write(chunk)
            written += len(chunk)
        f.write(b"%%%%Trailer\n%%%%Pages: %d\n%%%%EOF\n" % count)
    return count


# --------------------------------------------------------------------------- 1. PDF page count


def bench_pdf_count(pdf: Path, args: argparse.Namespace) -> dict:
    from spoolproxy.pdl import pdf as pure

    rows: list[dict] = []
    expected = args.pages

    def inproc(label: str, fn: Callable[[], int], kind: str = "in-process") -> None:
        try:
            times, n = timed(fn, min_runs=args.min_runs, min_seconds=args.min_seconds)
        except Exception as e:  # noqa: BLE001 - a peer tool failing is reported, not fatal
            rows.append({"method": label, "kind": kind, "error": f"{type(e).__name__}: {e}"})
            return
        rows.append({"method": label, "kind": kind, "pages": n, "runs": len(times),
                     "median_s": statistics.median(times), "best_s": min(times)})

    def opened(count: Callable[[Any], int]) -> Callable[[], int]:
        def run() -> int:
            with open(pdf, "rb") as f:
                return count(f)
        return run

    try:
        compiled = __import__("spoolproxy._ext.pdf", fromlist=["page_count"])
        inproc("ours, compiled (spoolproxy._ext.pdf.page_count)", opened(compiled.page_count))
    except ModuleNotFoundError:
        rows.append({"method": "ours, compiled (spoolproxy._ext.pdf.page_count)", "kind": "in-process",
                     "error": "not built"})
    inproc("ours, pure (spoolproxy.pdl.pdf.page_count)", opened(pure.page_count))
    try:
        import pikepdf

        def pike() -> int:
            with pikepdf.open(pdf) as doc:
                return len(doc.pages)
        inproc(f"pikepdf {pikepdf.__version__} len(pdf.pages)", pike)
    except ImportError:
        rows.append({"method": "pikepdf len(pdf.pages)", "kind": "in-process",
                     "error": "pikepdf is not installed (pip install pikepdf, or the test extra)"})
    for label, argv, parse in (
            ("pdfinfo (whole process)", ["pdfinfo", str(pdf)],
             lambda out: int(re.search(rb"^Pages:\s+(\d+)", out, re.M).group(1))),
            ("qpdf --show-npages (whole process)", ["qpdf", "--show-npages", str(pdf)],
             lambda out: int(out.split()[0]))):
        if which(argv[0]) is None:
            rows.append({"method": label, "kind": "command", "error": f"{argv[0]} is not installed"})
            continue
        inproc(label, lambda argv=argv, parse=parse: parse(subprocess.run(argv, capture_output=True,
                                                                           check=True).stdout), "command")
    for r in rows:
        if "pages" in r and r["pages"] != expected:
            r["error"] = f"counted {r['pages']} pages, not {expected}"
    ours = next((r for r in rows if r["method"].startswith("ours, compiled") and "median_s" in r), None) \
        or next((r for r in rows if r["method"].startswith("ours, pure") and "median_s" in r), None)
    ratios = {}
    if ours:
        for r in rows:
            if "median_s" in r and r is not ours:
                r["ratio"] = r["median_s"] / ours["median_s"]
        pk = next((r for r in rows if r["method"].startswith("pikepdf") and "ratio" in r), None)
        pi = next((r for r in rows if r["method"].startswith("pdfinfo") and "ratio" in r), None)
        ratios = {"ours": ours["method"],
                  "vs_pikepdf": pk["ratio"] if pk else None, "vs_pdfinfo": pi["ratio"] if pi else None}
    say(f"\n1. PDF page count: {pdf.name} ({pdf.stat().st_size / MIB:.1f} MiB, {expected} pages), "
        f"median of >= {args.min_runs} runs")
    say(f"   {'method':52s} {'median':>10s} {'best':>10s} {'pages':>6s}  time / ours")
    for r in rows:
        if "error" in r and "median_s" not in r:
            say(f"   {r['method']:52s} {r['error']}")
            continue
        say(f"   {r['method']:52s} {fmt_time(r['median_s'])} {fmt_time(r['best_s'])} {r['pages']:6d}  "
            f"{('%.1fx' % r['ratio']) if 'ratio' in r else '(ours)':>8s}{'  ' + r['error'] if 'error' in r else ''}")
    met = {}
    if ratios.get("vs_pikepdf") is not None:
        met["faster_than_pikepdf"] = ratios["vs_pikepdf"] > TARGET_PIKEPDF
        say(f"   target: faster than pikepdf: {ratios['vs_pikepdf']:.1f}x -> "
            f"{'met' if met['faster_than_pikepdf'] else 'NOT met'}")
    if ratios.get("vs_pdfinfo") is not None:
        met["20x_pdfinfo"] = ratios["vs_pdfinfo"] >= TARGET_PDFINFO
        say(f"   target: {TARGET_PDFINFO:.0f}x faster than pdfinfo: {ratios['vs_pdfinfo']:.1f}x -> "
            f"{'met' if met['20x_pdfinfo'] else 'NOT met'}")
    return {"file": str(pdf), "bytes": pdf.stat().st_size, "pages": expected, "rows": rows, "ratios": ratios,
            "targets_met": met}


# --------------------------------------------------------------------------- 2. scan throughput


def implementations() -> dict[str, str]:
    out = {}
    for name in ("pdf", "postscript", "pcl", "pclxl", "raster"):
        try:
            __import__(f"spoolproxy._ext.{name}")
            out[name] = "python" if os.environ.get("SPOOLPROXY_NO_EXTENSIONS", "") not in ("", "0") else "cython"
        except ModuleNotFoundError:
            out[name] = "python"
    return out


def bench_scan(files: dict[str, tuple[Path, int]], args: argparse.Namespace) -> dict:
    import spoolproxy.pdl as pdl

    rows = []
    say(f"\n2. Scan throughput: analyze(path, ghostscript=False) in this process, file in the page cache, "
        f"median of >= {args.scan_runs} runs")
    say(f"   {'format':12s} {'size':>10s} {'pages':>7s} {'median':>10s} {'MB/s':>9s}  impl")
    impl = implementations()
    for label, (path, pages) in files.items():
        size = path.stat().st_size
        times, a = timed(lambda: pdl.analyze(str(path), ghostscript=False), min_runs=args.scan_runs, min_seconds=0)
        med = statistics.median(times)
        row = {"format": label, "file": str(path), "bytes": size, "pages_expected": pages, "pages": a.pages,
               "median_s": med, "best_s": min(times), "MBps": size / med / 1e6, "MBps_best": size / min(times) / 1e6,
               "implementation": impl[{"PCL XL": "pclxl", "PostScript": "postscript", "PWG Raster": "raster"}[label]]}
        row["target_met"] = row["MBps"] >= TARGET_SCAN_MBPS
        if a.pages != pages:
            row["error"] = f"counted {a.pages} pages, not {pages}"
        rows.append(row)
        say(f"   {label:12s} {size / MIB:8.0f} Mi {a.pages:7d} {fmt_time(med)} {row['MBps']:9.0f}  "
            f"{row['implementation']}{'  ' + row['error'] if 'error' in row else ''}")
    say(f"   target: {TARGET_SCAN_MBPS:.0f} MB/s per core: " + ", ".join(
        f"{r['format']} {'met' if r['target_met'] else 'NOT met'}" for r in rows))
    return {"rows": rows}


# --------------------------------------------------------------------------- 3. grayscale


def bench_gray(pwg: Path, pages: int, raster: dict, work: Path, args: argparse.Namespace) -> dict:
    import spoolproxy.pdl as pdl

    size = pwg.stat().st_size
    dst = work / "gray.pwg"
    blocks = raster["pwg_blocks"]
    px_per_cycle = sum(r["width"] * r["height"] for r in raster["raw"])
    pixels = sum(raster["raw"][i % RASTER_PAGES]["width"] * raster["raw"][i % RASTER_PAGES]["height"]
                 for i in range(pages))
    times, _ = timed(lambda: pdl.convert_grayscale(str(pwg), str(dst)), min_runs=args.scan_runs, min_seconds=0)
    med = statistics.median(times)
    out_size = dst.stat().st_size
    check = pdl.analyze(str(dst), ghostscript=False)
    ours = {"bytes_in": size, "bytes_out": out_size, "pages": pages, "median_s": med, "best_s": min(times),
            "MBps": size / med / 1e6, "Mpxps": pixels / med / 1e6,
            "after": {"pages": check.pages, "color_pages": sum(1 for c in check.page_colors() if c)}}
    if check.pages != pages or ours["after"]["color_pages"]:
        ours["error"] = f"after conversion: {check.pages} pages, {ours['after']['color_pages']} in colour"
    dst.unlink()
    # Ghostscript: the same pixels (raw RGB of the same pages) -> 8-bit sGray pwgraster
    n_gs = args.gs_pages
    w, h = raster["raw"][0]["width"], raster["raw"][0]["height"]
    prog = work / "gs-gray.ps"
    dpi = raster["dpi"]
    lines = [f"/p{i} ({r['path']}) def" for i, r in enumerate(raster["raw"])]
    for i in range(n_gs):
        r = raster["raw"][i % RASTER_PAGES]
        lines.append(f"gsave 72 {dpi} div dup scale {r['width']} {r['height']} scale {r['width']} {r['height']} 8 "
                     f"[{r['width']} 0 0 {-r['height']} 0 {r['height']}] p{i % RASTER_PAGES} (r) file false 3 colorimage "
                     f"grestore showpage")
    prog.write_text("\n".join(lines) + "\n")
    gs_out = work / "gs-gray.pwg"
    argv = ["-dSAFER", *[f"--permit-file-read={r['path']}" for r in raster["raw"]], "-sDEVICE=pwgraster",
            f"-r{dpi}", f"-g{w}x{h}", "-dFIXEDMEDIA", "-dcupsColorSpace=18", "-dcupsBitsPerColor=8",
            "-o", str(gs_out), str(prog)]
    gs_times = []
    for _ in range(max(1, args.min_runs // 2)):
        t0 = time.perf_counter()
        gs(*argv)
        gs_times.append(time.perf_counter() - t0)
    gmed = statistics.median(gs_times)
    equiv = sum(len(blocks[i % RASTER_PAGES]) for i in range(n_gs))
    gs_pixels = sum(raster["raw"][i % RASTER_PAGES]["width"] * raster["raw"][i % RASTER_PAGES]["height"]
                    for i in range(n_gs))
    ghost = {"pages": n_gs, "median_s": gmed, "equivalent_pwg_bytes": equiv, "MBps": equiv / gmed / 1e6,
             "Mpxps": gs_pixels / gmed / 1e6, "bytes_out": gs_out.stat().st_size}
    gs_out.unlink()
    ratio = ours["MBps"] / ghost["MBps"]
    met = {"300MBps": ours["MBps"] >= TARGET_GRAY_MBPS, "10x_gs": ratio >= TARGET_GRAY_VS_GS}
    say(f"\n3. PWG Raster -> grayscale: {pwg.name} ({size / MIB:.0f} MiB, {pages} pages at {dpi} dpi, "
        f"{px_per_cycle / RASTER_PAGES / 1e6:.1f} Mpx a page; page blocks of "
        + ", ".join(f"{len(b) / MIB:.2f}" for b in blocks) + " MiB: colour document, gray document, coarse photo, "
        "fine photo)")
    say(f"   ours  convert_grayscale file -> file  {fmt_time(med)}  {ours['MBps']:8.0f} MB/s  "
        f"{ours['Mpxps']:8.0f} Mpx/s{'  ' + ours['error'] if 'error' in ours else ''}")
    say(f"   gs    raw RGB -> pwgraster sGray, {n_gs} pages {fmt_time(gmed)}  {ghost['MBps']:8.1f} MB/s  "
        f"{ghost['Mpxps']:8.1f} Mpx/s  (MB/s of the PWG input those pages are)")
    say(f"   ratio ours/gs = {ratio:.1f}x")
    say(f"   target: {TARGET_GRAY_MBPS:.0f} MB/s per core: {'met' if met['300MBps'] else 'NOT met'}; "
        f">= {TARGET_GRAY_VS_GS:.0f}x Ghostscript: {'met' if met['10x_gs'] else 'NOT met'}")
    return {"file": str(pwg), "ours": ours, "ghostscript": ghost, "ratio": ratio, "targets_met": met}


# --------------------------------------------------------------------------- 4. memory

_CHILD = r"""
import sys
mode, path = sys.argv[1], sys.argv[2]
import spoolproxy.pdl as pdl
if mode == "analyze":
    print("pages", pdl.analyze(path, ghostscript=False).pages)
elif mode == "gray":
    pdl.convert_grayscale(path, sys.argv[3])
for line in open("/proc/self/status"):
    if line.startswith("VmHWM:"):
        print("VmHWM", int(line.split()[1]))
"""


def child_peak(mode: str, path: Path | None, work: Path) -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH", "")) if p)
    argv = [sys.executable, "-c", _CHILD, mode, str(path or "")]
    if mode == "gray":
        argv.append(str(work / "mem-gray.out"))
    t0 = time.perf_counter()
    proc = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=3600)
    took = time.perf_counter() - t0
    if mode == "gray":
        (work / "mem-gray.out").unlink(missing_ok=True)
    if proc.returncode:
        return {"error": proc.stderr.strip()[-800:]}
    out = dict(line.split() for line in proc.stdout.splitlines() if " " in line)
    return {"vmhwm_kib": int(out["VmHWM"]), "pages": int(out["pages"]) if "pages" in out else None,
            "seconds": took}


def bench_memory(small: dict[str, tuple[Path, int]], big: dict[str, tuple[Path, int]], work: Path) -> dict:
    base = child_peak("none", None, work)
    say(f"\n4. Peak memory (VmHWM of a fresh child process; importing the engine alone: "
        f"{base.get('vmhwm_kib', 0) / 1024:.1f} MiB)")
    say(f"   {'what':26s} {'small file':>22s} {'big file':>22s} {'difference':>11s}  flat (<= {FLAT_MIB} MiB)")
    rows = []
    for label in big:
        for mode in ("analyze", "gray") if label == "PWG Raster" else ("analyze",):
            s = child_peak(mode, small[label][0], work)
            b = child_peak(mode, big[label][0], work)
            row = {"format": label, "mode": mode, "small_bytes": small[label][0].stat().st_size,
                   "big_bytes": big[label][0].stat().st_size, "small": s, "big": b}
            if "error" in s or "error" in b:
                row["error"] = s.get("error") or b.get("error")
                say(f"   {label + ' ' + mode:26s} failed: {row['error']}")
            else:
                diff = (b["vmhwm_kib"] - s["vmhwm_kib"]) / 1024
                row["difference_mib"] = diff
                row["flat"] = diff <= FLAT_MIB
                say(f"   {label + ' ' + mode:26s} {row['small_bytes'] / MIB:6.0f} MiB: {s['vmhwm_kib'] / 1024:6.1f} MiB"
                    f" {row['big_bytes'] / MIB:6.0f} MiB: {b['vmhwm_kib'] / 1024:6.1f} MiB {diff:+9.1f} MiB  "
                    f"{'flat' if row['flat'] else 'NOT flat'}")
            rows.append(row)
    return {"baseline": base, "rows": rows}


# --------------------------------------------------------------------------- main


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description="Document engine benchmark: page count, scan and conversion "
                                            "throughput, peak memory; against pikepdf, pdfinfo, qpdf, gs.")
    p.add_argument("--quick", action="store_true",
                   help="tiny inputs (CI): 200-page PDF, 16 MiB / 4 MiB files, 100 dpi pages, few runs")
    p.add_argument("--pages", type=int, default=None, help="pages of the PDF (default 2000)")
    p.add_argument("--size-mib", type=int, default=None, help="big files for throughput and memory (default 1024)")
    p.add_argument("--small-mib", type=int, default=None, help="the smaller files of the memory test (default 100)")
    p.add_argument("--dpi", type=int, default=None, help="resolution of the raster pages (default 300)")
    p.add_argument("--gs-pages", type=int, default=None, help="pages Ghostscript converts (default 12)")
    p.add_argument("--min-runs", type=int, default=None, help="runs per in-process measurement (default 20)")
    p.add_argument("--min-seconds", type=float, default=None, help="least time per measurement (default 1)")
    p.add_argument("--scan-runs", type=int, default=None, help="runs per throughput measurement (default 3)")
    p.add_argument("--skip", default="", help="comma list of sections to leave out: pdf,scan,gray,memory")
    p.add_argument("--workdir", type=Path, help="make the inputs here (default: a temporary directory)")
    p.add_argument("--keep", action="store_true", help="keep the inputs")
    p.add_argument("--json", type=Path, help="write the results here")
    a = p.parse_args(argv)
    quick = a.quick
    defaults = {"pages": (2000, 200), "size_mib": (1024, 16), "small_mib": (100, 4), "dpi": (300, 100),
                "gs_pages": (12, 4), "min_runs": (20, 3), "min_seconds": (1.0, 0.0), "scan_runs": (3, 1)}
    for k, (full, small) in defaults.items():
        if getattr(a, k) is None:
            setattr(a, k, small if quick else full)
    a.skip = {s.strip() for s in a.skip.split(",") if s.strip()}
    return a


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    work = args.workdir or Path(tempfile.mkdtemp(prefix="spoolproxy-bench-pdl-"))
    work.mkdir(parents=True, exist_ok=True)
    started = time.time()
    result: dict[str, Any] = {
        "benchmark": "pdl", "started": started,
        "machine": {"cpus": os.cpu_count(), "loadavg_start": os.getloadavg(), "python": platform.python_version(),
                    "platform": platform.platform()},
        "settings": {k: (sorted(v) if isinstance(v, set) else str(v) if isinstance(v, Path) else v)
                     for k, v in vars(args).items()},
        "implementations": implementations(),
    }
    wrong: list[str] = []
    try:
        try:
            import spoolproxy.pdl  # noqa: F401  (fail early, before making gigabytes of inputs)
        except Exception as e:  # noqa: BLE001
            print(f"bench/pdl.py: cannot import the engine: {e}", file=sys.stderr)
            return EXIT_WRONG
        say(f"bench/pdl.py: {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.2f}; engine twins: "
            + ", ".join(f"{k} {v}" for k, v in result["implementations"].items()) + f"; inputs in {work}")
        t0 = time.perf_counter()
        pdf = make_pdf(work, args.pages) if "pdf" not in args.skip else None
        raster = make_raster_pages(work, args.dpi)
        big, small = {}, {}
        for label, maker, ext in (("PCL XL", lambda p, s: make_pxl(p, raster, s), "pxl"),
                                  ("PostScript", make_ps, "ps"),
                                  ("PWG Raster", lambda p, s: make_pwg(p, raster, s), "pwg")):
            path = work / f"big.{ext}"
            big[label] = (path, maker(path, args.size_mib * MIB))
            if "memory" not in args.skip:
                spath = work / f"small.{ext}"
                small[label] = (spath, maker(spath, args.small_mib * MIB))
        result["inputs_seconds"] = time.perf_counter() - t0
        say(f"inputs made in {result['inputs_seconds']:.1f} s: PDF {args.pages} pages; "
            + "; ".join(f"{k} {v[0].stat().st_size / MIB:.0f} MiB, {v[1]} pages" for k, v in big.items()))
        if pdf is not None:
            result["pdf_count"] = bench_pdf_count(pdf, args)
            wrong += [f"PDF count: {r['method']}: {r['error']}" for r in result["pdf_count"]["rows"]
                      if r["method"].startswith("ours") and "error" in r and r["error"] != "not built"]
        if "scan" not in args.skip:
            result["scan"] = bench_scan(big, args)
            wrong += [f"scan {r['format']}: {r['error']}" for r in result["scan"]["rows"] if "error" in r]
        if "gray" not in args.skip:
            result["grayscale"] = bench_gray(*big["PWG Raster"], raster, work, args)
            if "error" in result["grayscale"]["ours"]:
                wrong.append("grayscale: " + result["grayscale"]["ours"]["error"])
        if "memory" not in args.skip:
            result["memory"] = bench_memory(small, big, work)
            wrong += [f"memory {r['format']} {r['mode']}: {r['error']}" for r in result["memory"]["rows"]
                      if "error" in r]
    except ToolMissing as e:
        print(f"bench/pdl.py: {e}", file=sys.stderr)
        return EXIT_TOOL
    finally:
        if not args.keep and args.workdir is None:
            shutil.rmtree(work, ignore_errors=True)
        elif args.keep:
            say(f"kept {work}")
    result["elapsed"] = time.time() - started
    result["loadavg_end"] = os.getloadavg()
    result["errors"] = wrong
    if max(result["machine"]["loadavg_start"][0], result["loadavg_end"][0]) > 0.5 * (os.cpu_count() or 1):
        say(f"\nnote: the machine was busy (load {result['machine']['loadavg_start'][0]:.1f} -> "
            f"{result['loadavg_end'][0]:.1f} on {os.cpu_count()} CPUs): rates are noisy, rerun on an idle one")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2, default=str) + "\n")
        say(f"results: {args.json}")
    if wrong:
        print("bench/pdl.py: the engine failed or miscounted:\n  " + "\n  ".join(wrong), file=sys.stderr)
        return EXIT_WRONG
    return EXIT_OK


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        print("bench/pdl.py: interrupted", file=sys.stderr)
        sys.exit(130)
