"""Issue 3 acceptance: the document engine against Ghostscript, on every corpus file.

The corpus (tests/pdlcorpus.py, built once and cached by the ``pdl_corpus`` fixture) holds
gs-made PDF (with and without object streams), PostScript, PCL 5, PCL XL, PWG and Apple
raster documents of 1, 2, 17 and 2000 pages, colour and gray, and hand-built edge cases.
For every file it records the expected page count, colour per page and copies:

* PDF and PostScript: what Ghostscript says of that very file: the pages its ``inkcov``
  device renders (for PDF also ``pdfpagecount``), a page being colour when C, M or Y
  coverage is above 0.1 % (``pdlcorpus.INKCOV_ARGS``: neutral colours are K-only).
* PCL 5, PCL XL, PWG and Apple raster, which gs cannot read back: the count and inkcov
  of the source document gs made them from; ``pxlmono`` and ``ljet4`` output is gray on
  every page by construction. Raster pixels were checked against that oracle when the
  corpus was built (gray pages exactly neutral, colour pages not).
* Hand-built files: by construction, confirmed by gs where gs can read them.

Each implementation is analysed in its own process (``pdlcorpus.py analyze``), since the
dispatcher picks compiled or pure twins once, at import: ``python`` runs with
``SPOOLPROXY_NO_EXTENSIONS=1``, ``cython`` without it and must really have loaded the
compiled modules. A missing scanner module fails these tests (it is never a reason to
skip); a compiled twin that is not built skips the ``cython`` half, except under
``SPOOLPROXY_REQUIRE_EXT=1`` (CI), where that fails. No timing is asserted.
"""
from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import pdlcorpus

pytestmark = pytest.mark.interop

REPO = Path(__file__).resolve().parents[2]
IMPLS = ("python", "cython")
# the pure modules the engine is made of (issue 3); a missing one is a failure
SCANNERS = ("pdf", "pdfcolor", "postscript", "pcl", "pclxl", "raster", "ghostscript")
# the ones with a compiled twin, plus whatever else ext/ holds
COMPILED = sorted({"pdf", "pdfcolor", "postscript", "pcl", "pclxl", "raster"}
                  | {p.stem for p in (REPO / "ext").glob("*.pyx")})
NAMES = pdlcorpus.names()
CHILD_TIMEOUT = 900

_results: dict[str, dict[str, Any]] = {}


def _flag(name: str) -> bool:
    return os.environ.get(name, "") not in ("", "0")


def _missing_compiled() -> list[str]:
    missing = []
    for name in COMPILED:
        try:
            importlib.import_module(f"spoolproxy._ext.{name}")
        except ModuleNotFoundError:
            missing.append(name)
    return missing


def _require_impl(impl: str) -> None:
    if impl != "cython":
        return
    missing = _missing_compiled()
    if missing:
        what = f"compiled twins not built: {', '.join('spoolproxy._ext.' + m for m in missing)}"
        if _flag("SPOOLPROXY_REQUIRE_EXT"):
            pytest.fail(f"{what} (SPOOLPROXY_REQUIRE_EXT=1)", pytrace=False)
        pytest.skip(f"{what} (pip install -e . builds them)")


@pytest.fixture(scope="module")
def corpus(pdl_corpus) -> dict[str, pdlcorpus.Entry]:
    directory, entries = pdl_corpus
    return {e.name: e for e in entries}


@pytest.fixture(scope="module")
def manifest(pdl_corpus) -> Path:
    return pdl_corpus[0] / "manifest.json"


@pytest.fixture(scope="module")
def results(manifest: Path, tmp_path_factory: pytest.TempPathFactory):
    """results(impl) -> what ``pdlcorpus.py analyze`` found with that implementation.

    The first call starts one analysis process per available implementation, side by
    side (the corpus takes a while, and CI has two cores), and every later call reads
    their results."""

    def get(impl: str) -> dict[str, Any]:
        _require_impl(impl)
        if impl not in _results:
            impls = [i for i in IMPLS if i not in _results and (i != "cython" or not _missing_compiled())]
            _results.update(_analyse(impls, manifest, tmp_path_factory))
        res = _results[impl]
        if "child_error" in res:
            pytest.fail(res["child_error"], pytrace=False)
        if "import_error" in res:
            pytest.fail(f"import spoolproxy.pdl failed ({impl}): {res['import_error']}", pytrace=False)
        return res

    return get


def _analyse(impls: list[str], manifest: Path, tmp: pytest.TempPathFactory) -> dict[str, dict[str, Any]]:
    running = {}
    for impl in impls:
        work = tmp.mktemp(f"pdl-{impl}")
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH", "")) if p)
        env.pop("SPOOLPROXY_NO_EXTENSIONS", None)
        if impl == "python":
            env["SPOOLPROXY_NO_EXTENSIONS"] = "1"
        out = work / "results.json"
        argv = [sys.executable, str(REPO / "tests" / "pdlcorpus.py"), "analyze", str(manifest), str(out),
                str(work / "converted")]
        log = open(work / "child.log", "w+")
        running[impl] = (subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, cwd=REPO, env=env), out, log)
    found: dict[str, dict[str, Any]] = {}
    for impl, (proc, out, log) in running.items():
        try:
            proc.wait(CHILD_TIMEOUT)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            found[impl] = {"child_error": f"analysing the corpus ({impl}) took more than {CHILD_TIMEOUT} s"}
            continue
        finally:
            log.seek(0)
            text = log.read()
            log.close()
        if proc.returncode != 0 or not out.exists():
            found[impl] = {"child_error": f"the {impl} analysis process exited with {proc.returncode}:\n"
                                          f"{text[-5000:]}"}
        else:
            found[impl] = json.loads(out.read_text())
    return found


def _describe(e: pdlcorpus.Entry) -> str:
    return f"{e.name}: expected {e.pages} pages [{pdlcorpus.runs_str(e.colors)}] x{e.copies} ({e.oracle})"


def _got(a: dict) -> str:
    return f"got {a['pages']} pages [{pdlcorpus.runs_str(a['colors'])}] runs {a['runs']}"


# --------------------------------------------------------------------------- the engine exists


@pytest.mark.parametrize("module", SCANNERS)
def test_scanner_module_exists(module: str) -> None:
    """Each part of the engine is there (a missing one fails, never skips)."""
    importlib.import_module(f"spoolproxy.pdl.{module}")


def test_dispatcher_api() -> None:
    import spoolproxy.pdl as pdl

    for name in ("analyze", "convert_grayscale", "convert_duplex"):
        assert callable(getattr(pdl, name, None)), f"spoolproxy.pdl.{name} is missing"
    from spoolproxy.pdl import pdf

    assert callable(getattr(pdf, "page_count", None)), "spoolproxy.pdl.pdf.page_count is missing"


@pytest.mark.parametrize("impl", IMPLS)
def test_the_process_used_the_implementation_it_names(impl: str, results) -> None:
    res = results(impl)
    used = res.get("implementations", {})
    wrong = {m: how for m, how in used.items() if m in COMPILED and how != impl}
    assert not wrong, f"the {impl} run loaded {wrong} (all loaded: {used})"


# --------------------------------------------------------------------------- counts and colours


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("impl", IMPLS)
def test_pages_and_colors_match_ghostscript(impl: str, name: str, corpus, results) -> None:
    e = corpus[name]
    a = results(impl)["files"][name]
    assert "error" not in a, f"{_describe(e)}; analyze raised {a['error']}"
    assert a["pages"] == e.pages, f"{_describe(e)}; {_got(a)}"
    assert a["colors"] == e.colors, f"{_describe(e)}; {_got(a)}"
    copies = {run[4] for run in a["runs"]}
    assert copies == {e.copies}, f"{_describe(e)}; copies per run {sorted(copies)}"
    assert a["impressions"] == e.pages * e.copies
    if e.format is not None:
        assert a["format"] == e.format, f"{_describe(e)}; detected {a['format']}"


@pytest.mark.parametrize("name", NAMES)
def test_pure_and_compiled_agree(name: str, results) -> None:
    py, cy = results("python")["files"][name], results("cython")["files"][name]
    keys = ("error", "format", "runs", "warnings")
    assert {k: py.get(k) for k in keys} == {k: cy.get(k) for k in keys}


# --------------------------------------------------------------------------- grayscale conversion

CONVERTED = [n for n in NAMES if n in {j.filename for j in pdlcorpus._jobs(Path(".")) if j.gray_convert}]


@pytest.mark.parametrize("name", CONVERTED)
@pytest.mark.parametrize("impl", IMPLS)
def test_grayscale_conversion(impl: str, name: str, corpus, results) -> None:
    """Converted to grayscale and counted again: same pages and copies, no colour page;
    gs still renders a converted PDF/PostScript file (with the same count and no colour
    per inkcov); a converted raster is pixel-exact against pdlcorpus.reference_gray."""
    e = corpus[name]
    rec = results(impl)["converted"][name]
    assert "error" not in rec, f"{name}: convert_grayscale or the analysis after it raised {rec['error']}"
    a = rec["analysis"]
    assert "error" not in a, a
    assert a["pages"] == e.pages, f"{_describe(e)}; after conversion {_got(a)}"
    assert a["colors"] == "G" * e.pages, f"{_describe(e)}; after conversion {_got(a)}"
    assert a["impressions"] == e.pages * e.copies, f"{_describe(e)}; after conversion {_got(a)}"
    dst = Path(rec["path"])
    if e.gs_readable:
        rendered = pdlcorpus.inkcov(dst)
        assert len(rendered) == e.pages, f"gs renders {len(rendered)} pages of the converted {name}"
        assert not any(rendered), f"gs inkcov finds colour in the converted {name}: " \
                                  f"{pdlcorpus.runs_str(pdlcorpus.colors_str(rendered))}"
    if e.raster:
        _check_gray_raster(Path(e.path), dst)


def _check_gray_raster(src: Path, dst: Path) -> None:
    kind, before = pdlcorpus.read_raster(src)
    kind2, after = pdlcorpus.read_raster(dst)
    assert kind2 == kind, f"converted {kind} is now {kind2}"
    assert len(after) == len(before)
    reference = pdlcorpus.reference_gray(before)
    for i, (b, a, ref) in enumerate(zip(before, after, reference), 1):
        assert (a.width, a.height) == (b.width, b.height), f"page {i}"
        assert a.bpp == 8, f"page {i}: {a.bpp} bits per pixel after conversion"
        if kind == "pwg":
            assert a.colorspace in (pdlcorpus.CSPACE_SGRAY, pdlcorpus.CSPACE_W), f"page {i}: cupsColorSpace {a.colorspace}"
            assert pdlcorpus._u32(a.header, 384) == 8 and pdlcorpus._u32(a.header, 420) == 1
            assert pdlcorpus._u32(a.header, 392) == a.width, f"page {i}: cupsBytesPerLine"
            # everything but the colour fields stays as it was
            changed = {384, 388, 392, 396, 400, 420}
            for off in range(0, pdlcorpus.PWG_HEADER, 4):
                if off not in changed:
                    assert a.header[off:off + 4] == b.header[off:off + 4], f"page {i}: header bytes {off}..{off + 3}"
        else:
            assert a.colorspace in (0, 4), f"page {i}: URF colour space {a.colorspace}"
            assert a.header[2:] == b.header[2:], f"page {i}: URF header changed beyond bpp/colour space"
        if a.lines != ref:
            bad = next(y for y, (x, r) in enumerate(zip(a.lines, ref)) if x != r)
            pytest.fail(f"page {i} line {bad} differs from the reference conversion "
                        f"(first bytes {a.lines[bad][:12].hex()} vs {ref[bad][:12].hex()})", pytrace=False)


@pytest.mark.parametrize("name", [n for n in CONVERTED if not n.endswith(".pdf")])
def test_pure_and_compiled_convert_alike(name: str, results) -> None:
    """Streaming conversions are deterministic: both twins write the same bytes (PDF is
    left out: gs writes dates and IDs)."""
    py, cy = results("python")["converted"][name], results("cython")["converted"][name]
    assert py.get("error") == cy.get("error")
    assert py.get("sha256") == cy.get("sha256")
