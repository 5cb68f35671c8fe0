"""The benchmark's documents: a fixed mix of formats and sizes, made once with
Ghostscript and cached.

Why made rather than shipped: the repository carries no binary documents, and a
load test wants real driver output in every format the proxy reads (PDF, PostScript,
PCL 5, PCL XL, PWG Raster), including one big job, which Ghostscript writes in
seconds from small PostScript programs. Why cached: the big job is tens of MB and a
benchmark runs many times; ``corpus`` reuses the files of ``cache_dir`` as long as its
``manifest.json`` says they were made from the same programs by the same Ghostscript.

Every program draws what ``Doc.pages`` and ``Doc.color_pages`` say: a colour page
uses DeviceRGB colours or an RGB image, a gray page only ``setgray`` and gray images,
so the counts are the truth a page counter is measured against. The output is
deterministic for one Ghostscript version (``SOURCE_DATE_EPOCH`` fixed, rendered to a
fixed temporary name because pdfwrite derives the document /ID from it).

    docs = corpus(Path("~/.cache/spoolproxy-bench").expanduser())
    pick = mix(docs, {"small.pdf": 5, "report.pdf": 2, "large.pdf": 0.1})
    doc = pick(random.Random(1))
"""
from __future__ import annotations

import bisect
import contextlib
import fcntl
import hashlib
import itertools
import json
import os
import random
import shutil
import subprocess
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator, Sequence

from .errors import BenchError

__all__ = ["Doc", "DOCUMENTS", "corpus", "mix", "ghostscript"]

SPEC_VERSION = 1  # bump when the programs change in a way the key would not see
MANIFEST = "manifest.json"
SOURCE_DATE_EPOCH = "1600000000"
GS_TIMEOUT = 300.0
A4 = (595, 842)


@dataclass(frozen=True)
class Doc:
    """One benchmark document: where it is, its MIME type, and what it holds."""

    name: str
    path: Path
    format: str
    pages: int
    color_pages: int
    size: int


@dataclass(frozen=True)
class _Spec:
    """How a document is made: the device, its options and one (colour, style) per
    page; style is "bars" (frame, bars, a big label), "text" (a page of prose) or
    "noise" (a full-page image of pseudo-random pixels that no filter can shrink)."""

    name: str
    format: str
    device: str
    pages: tuple[tuple[bool, str], ...]
    options: tuple[str, ...] = ()

    @property
    def color_pages(self) -> int:
        return sum(1 for color, _ in self.pages if color)


# pdfwrite would otherwise JPEG-compress (and may downsample) the noise images: Flate
# keeps every byte, so the big job is as big as its pixels
_RAW_IMAGES = ("-dAutoFilterColorImages=false", "-dColorImageFilter=/FlateEncode",
               "-dAutoFilterGrayImages=false", "-dGrayImageFilter=/FlateEncode",
               "-dDownsampleColorImages=false", "-dDownsampleGrayImages=false")

DOCUMENTS: tuple[_Spec, ...] = (
    _Spec("small.pdf", "application/pdf", "pdfwrite", ((False, "bars"),)),
    _Spec("mixed.pdf", "application/pdf", "pdfwrite",
          ((False, "bars"), (True, "bars"), (False, "text"), (False, "bars"))),
    _Spec("report.pdf", "application/pdf", "pdfwrite",
          tuple((n in (1, 8, 15), "text") for n in range(1, 21))),
    _Spec("large.pdf", "application/pdf", "pdfwrite",
          tuple((n % 5 != 0, "noise") for n in range(1, 41)), _RAW_IMAGES),
    _Spec("doc.ps", "application/postscript", "ps2write",
          ((True, "bars"), (False, "text"), (False, "bars"))),
    _Spec("doc.pcl", "application/vnd.hp-pcl", "ljet4", ((False, "text"), (False, "bars"))),
    _Spec("doc.pxl", "application/vnd.hp-pclxl", "pxlmono", ((False, "text"), (False, "bars"))),
    _Spec("doc.pwg", "image/pwg-raster", "pwgraster", ((True, "bars"),),
          ("-r150", "-dcupsColorSpace=19", "-dcupsBitsPerColor=8")),  # 8-bit sRGB
    _Spec("doc.urf", "image/urf", "urf", ((False, "bars"), (True, "bars")),
          ("-r150", "-dcupsColorSpace=19", "-dcupsBitsPerColor=8")),  # Apple raster (AirPrint)
)

_WORDS = ("the proxy counts every page of a job before it prints and charges the account "
          "of the user who sent it while the printer behind it sees nothing but a stream "
          "of bytes from one trusted sender quarterly figures remain within the budget").split()

_PROLOG = """\
%!PS-Adobe-3.0
%%Pages: {pages}
%%BoundingBox: 0 0 {w} {h}
%%EndComments
<< /PageSize [{w} {h}] >> setpagedevice
/W {w} def /H {h} def
/frame {{ 0 setgray 1 setlinewidth 36 36 W 72 sub H 72 sub rectstroke }} def
/label {{ 0 setgray /Helvetica-Bold findfont 28 scalefont setfont
  72 H 110 sub moveto (Page ) show 10 string cvs show }} def
/colours [[1 0 0] [0 0.6 0] [0 0 1] [1 0.8 0] [0 0.8 0.8] [0.8 0 0.8]] def
/colourbars {{ 0 1 5 {{ /i exch def colours i get aload pop setrgbcolor
  72 i 70 mul add 120 60 160 rectfill }} for }} def
/graybars {{ 0 1 5 {{ /i exch def 0.15 i 0.13 mul add setgray
  72 i 70 mul add 120 60 160 rectfill }} for }} def
/lines [{lines}] def
/text {{ % page -> ; 50 lines of prose, a different cut of /lines on every page
  /pg exch def 0 setgray /Times-Roman findfont 10 scalefont setfont
  0 1 49 {{ /i exch def 72 H 150 sub i 11.5 mul sub moveto
    lines pg 7 mul i add lines length mod get show }} for }} def
/colourstrip {{ colours 0 get aload pop setrgbcolor 72 70 W 144 sub 24 rectfill }} def
/graystrip {{ 0.6 setgray 72 70 W 144 sub 24 rectfill }} def
"""

# 1 MiB of pseudo-random bytes, made once by the interpreter; every image row is a
# slice of it, starting at a different place on every page (pdfwrite would store
# identical images once) and never repeating within Flate's 32 KiB window
_NOISE = """\
/N 1048576 def /R N string def 12345 srand
0 1 N 1 sub { R exch rand -8 bitshift 255 and put } for
/off 0 def
/slice { R off chunk getinterval /off off chunk add 7919 add N chunk sub mod def } def
/noise { % page colour? -> ; a 512x512 image over the whole page
  /rgb exch def /off exch 104729 mul N 24576 sub mod def
  /chunk rgb { 24576 } { 8192 } ifelse def
  gsave W H scale rgb { /DeviceRGB } { /DeviceGray } ifelse setcolorspace
  << /ImageType 1 /Width 512 /Height 512 /BitsPerComponent 8
     /Decode rgb { [0 1 0 1 0 1] } { [0 1] } ifelse
     /ImageMatrix [512 0 0 -512 0 512] /DataSource /slice load >> image
  grestore } def
"""


def _ps_string(text: str) -> str:
    return "(" + text.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)") + ")"


def _lines() -> list[str]:
    rng = random.Random(1179)
    return [" ".join(rng.choice(_WORDS) for _ in range(14)).capitalize() + "." for _ in range(61)]


def program(spec: _Spec, size: tuple[int, int] = A4) -> str:
    """The PostScript program that draws ``spec``'s pages."""
    w, h = size
    out = [_PROLOG.format(pages=len(spec.pages), w=w, h=h,
                          lines="\n  ".join(_ps_string(s) for s in _lines()))]
    if any(style == "noise" for _, style in spec.pages):
        out.append(_NOISE)
    for n, (color, style) in enumerate(spec.pages, 1):
        out.append(f"%%Page: {n} {n}")
        if style == "noise":
            out.append(f"{n} {'true' if color else 'false'} noise")
        elif style == "text":
            out.append(f"frame {n} text {'colourstrip' if color else 'graystrip'}")
        else:
            out.append(f"frame {'colourbars' if color else 'graybars'}")
        out.append(f"{n} label showpage")
    out.append("%%EOF\n")
    return "\n".join(out)


def _key(spec: _Spec) -> str:
    """What the file depends on besides Ghostscript: the program and the arguments."""
    h = hashlib.sha256()
    for part in (str(SPEC_VERSION), spec.device, *spec.options, program(spec)):
        h.update(part.encode() + b"\0")
    return h.hexdigest()


def ghostscript(gs: str | None = None) -> str:
    """The gs executable (``gs``, else $SPOOLPROXY_GS, else the PATH) or BenchError."""
    found = gs or os.environ.get("SPOOLPROXY_GS") or shutil.which("gs")
    if not found or not (shutil.which(found) or os.access(found, os.X_OK)):
        raise BenchError("Ghostscript (gs) is needed to make the benchmark documents: "
                         "apt-get install ghostscript")
    return found


def _gs_version(gs: str) -> str:
    try:
        out = subprocess.run([gs, "--version"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as e:
        raise BenchError(f"cannot run Ghostscript ({gs}): {e}") from None
    if out.returncode:
        raise BenchError(f"{gs} --version failed: {out.stderr.strip()[-500:]}")
    return out.stdout.strip()


def _render(gs: str, spec: _Spec, cache_dir: Path) -> int:
    """Make one document in ``cache_dir``; returns its size."""
    src = cache_dir / f".{spec.name}.src.ps"
    tmp = f".render-{spec.name}.tmp"  # fixed: pdfwrite's /ID depends on the output name
    src.write_text(program(spec))
    env = dict(os.environ, SOURCE_DATE_EPOCH=SOURCE_DATE_EPOCH)
    argv = [gs, "-dSAFER", "-dBATCH", "-dNOPAUSE", "-q", f"-sDEVICE={spec.device}",
            f"-dDEVICEWIDTHPOINTS={A4[0]}", f"-dDEVICEHEIGHTPOINTS={A4[1]}", "-dFIXEDMEDIA",
            *spec.options, f"-sOutputFile={tmp}", src.name]
    try:
        done = subprocess.run(argv, cwd=cache_dir, env=env, capture_output=True, timeout=GS_TIMEOUT,
                              stdin=subprocess.DEVNULL)
        if done.returncode:
            tail = (done.stderr or done.stdout).decode("utf-8", "replace").strip()[-800:]
            raise BenchError(f"Ghostscript failed to make {spec.name} (exit {done.returncode}): {tail}")
        os.replace(cache_dir / tmp, cache_dir / spec.name)
    except subprocess.TimeoutExpired:
        raise BenchError(f"Ghostscript took more than {GS_TIMEOUT:g} s to make {spec.name}") from None
    finally:
        src.unlink(missing_ok=True)
        (cache_dir / tmp).unlink(missing_ok=True)
    return (cache_dir / spec.name).stat().st_size


@contextlib.contextmanager
def _locked(cache_dir: Path) -> Iterator[None]:
    """One maker at a time per cache (two benchmarks started together share it)."""
    with open(cache_dir / ".lock", "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def _read_manifest(path: Path) -> dict:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def corpus(cache_dir: Path, *, gs: str | None = None) -> list[Doc]:
    """The benchmark documents in ``cache_dir``, made with Ghostscript where the cache
    has no file of the same program, options and Ghostscript version."""
    gs = ghostscript(gs)
    version = _gs_version(gs)
    cache_dir = Path(cache_dir)
    cache_dir.mkdir(parents=True, exist_ok=True)
    with _locked(cache_dir):
        old = _read_manifest(cache_dir / MANIFEST)
        old_docs = old.get("docs", {}) if old.get("gs") == version else {}
        sizes: dict[str, int] = {}
        todo: list[_Spec] = []
        for spec in DOCUMENTS:
            entry = old_docs.get(spec.name) if isinstance(old_docs, dict) else None
            path = cache_dir / spec.name
            if (isinstance(entry, dict) and entry.get("key") == _key(spec) and path.is_file()
                    and path.stat().st_size == entry.get("size")):
                sizes[spec.name] = entry["size"]
            else:
                todo.append(spec)
        if todo:
            # the big job first: it is most of the time, the small ones run beside it
            todo.sort(key=lambda s: -len(s.pages) * (100 if s.name == "large.pdf" else 1))
            with ThreadPoolExecutor(max_workers=max(1, min(4, os.cpu_count() or 1))) as pool:
                for spec, size in zip(todo, pool.map(lambda s: _render(gs, s, cache_dir), todo)):
                    sizes[spec.name] = size
            manifest = {"spec": SPEC_VERSION, "gs": version, "docs": {
                s.name: {"key": _key(s), "size": sizes[s.name], "format": s.format,
                         "pages": len(s.pages), "color_pages": s.color_pages} for s in DOCUMENTS}}
            tmp = cache_dir / f".{MANIFEST}.tmp"
            tmp.write_text(json.dumps(manifest, indent=1) + "\n")
            os.replace(tmp, cache_dir / MANIFEST)
    return [Doc(s.name, cache_dir / s.name, s.format, len(s.pages), s.color_pages, sizes[s.name])
            for s in DOCUMENTS]


def mix(docs: Sequence[Doc], weights: dict[str, float]) -> Callable[[random.Random], Doc]:
    """A picker: ``pick(rng)`` returns one of ``docs`` by name with the given weights
    (a document without a weight is never picked). Unknown names, negative weights or
    no positive weight at all are a BenchError."""
    by_name = {d.name: d for d in docs}
    unknown = sorted(set(weights) - set(by_name))
    if unknown:
        raise BenchError(f"no such benchmark document: {', '.join(unknown)} "
                         f"(there are: {', '.join(by_name)})")
    bad = sorted(n for n, w in weights.items() if not w >= 0)
    if bad:
        raise BenchError(f"document weights must be numbers >= 0: {', '.join(bad)}")
    chosen = [(by_name[n], float(w)) for n, w in weights.items() if w > 0]
    if not chosen:
        raise BenchError("the document mix has no document with a weight above 0")
    cumulative = list(itertools.accumulate(w for _, w in chosen))
    total = cumulative[-1]
    picks = [d for d, _ in chosen]

    def pick(rng: random.Random) -> Doc:
        return picks[min(bisect.bisect_right(cumulative, rng.random() * total), len(picks) - 1)]

    return pick
