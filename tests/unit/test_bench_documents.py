"""The benchmark's document mix (spoolproxy.bench.documents): Ghostscript makes every
format, the document engine counts what the programs draw, the cache is reused, and
the weighted picker picks by weight. The corpus is made once for the module (a few
seconds, most of it the big PDF)."""
from __future__ import annotations

import json
import random
from collections import Counter
from pathlib import Path

import pytest

import peers
from spoolproxy import pdl
from spoolproxy.bench.documents import Doc, corpus, mix
from spoolproxy.bench.errors import BenchError

MAGIC = {"application/pdf": b"%PDF-", "application/postscript": b"%!PS",
         "application/vnd.hp-pcl": b"\x1bE", "application/vnd.hp-pclxl": b") HP-PCL XL",
         "image/pwg-raster": b"RaS2", "image/urf": b"UNIRAST\0"}


@pytest.fixture(scope="module")
def made(tmp_path_factory):
    gs = peers.require("gs")
    cache = tmp_path_factory.mktemp("bench-docs")
    return cache, corpus(cache, gs=gs)


def test_every_format_with_the_pages_it_draws(made):
    cache, docs = made
    assert [d.name for d in docs] == ["small.pdf", "mixed.pdf", "report.pdf", "large.pdf", "doc.ps",
                                      "doc.pcl", "doc.pxl", "doc.pwg", "doc.urf"]
    for d in docs:
        with d.path.open("rb") as f:
            head = f.read(512)
        magic = MAGIC[d.format]
        # PCL XL comes after gs's PJL header; the others start with their magic
        assert head.startswith(magic) or (d.format.endswith("pclxl") and magic in head), d.name
        assert d.size == d.path.stat().st_size > 0 and d.path.parent == cache
        a = pdl.analyze(d.path)
        assert a.format == d.format, d.name
        assert (a.pages, a.color_impressions, a.undecided_pages) == (d.pages, d.color_pages, 0), d.name
    by = {d.name: d for d in docs}
    assert (by["small.pdf"].pages, by["small.pdf"].color_pages) == (1, 0)
    assert (by["mixed.pdf"].pages, by["mixed.pdf"].color_pages) == (4, 1)
    assert by["report.pdf"].pages == 20 and 0 < by["report.pdf"].color_pages < 20
    assert by["large.pdf"].size > 10 << 20
    assert (by["doc.urf"].pages, by["doc.urf"].color_pages) == (2, 1)


def test_the_cache_is_reused_and_a_missing_file_remade(made):
    cache, docs = made
    before = {d.name: d.path.stat().st_mtime_ns for d in docs}
    again = corpus(cache)
    assert again == docs
    assert {d.name: d.path.stat().st_mtime_ns for d in again} == before
    manifest = json.loads((cache / "manifest.json").read_text())
    assert set(manifest["docs"]) == set(before) and manifest["gs"]

    small = (cache / "small.pdf").read_bytes()
    (cache / "small.pdf").unlink()
    third = corpus(cache)
    after = {d.name: d.path.stat().st_mtime_ns for d in third}
    assert third == docs and (cache / "small.pdf").read_bytes() == small  # deterministic
    assert [n for n in before if after[n] != before[n]] == ["small.pdf"]


def test_missing_ghostscript_says_what_to_install(tmp_path):
    with pytest.raises(BenchError, match="apt-get install ghostscript"):
        corpus(tmp_path, gs=str(tmp_path / "no-such-gs"))


def fake_docs() -> list[Doc]:
    return [Doc(n, Path(n), "application/pdf", 1, 0, 1) for n in ("a.pdf", "b.pdf", "c.pdf")]


def test_mix_picks_by_weight():
    pick = mix(fake_docs(), {"a.pdf": 3, "b.pdf": 1, "c.pdf": 0})
    rng = random.Random(42)
    counts = Counter(pick(rng).name for _ in range(4000))
    assert set(counts) == {"a.pdf", "b.pdf"}  # weight 0: never
    assert 0.70 < counts["a.pdf"] / 4000 < 0.80
    again = mix(fake_docs(), {"a.pdf": 3, "b.pdf": 1})
    rng1, rng2 = random.Random(7), random.Random(7)
    assert [pick(rng1) for _ in range(50)] == [again(rng2) for _ in range(50)]  # seeded: repeatable


def test_mix_rejects_unknown_names_and_bad_weights():
    with pytest.raises(BenchError, match="huge.pdf, tiny.pdf"):
        mix(fake_docs(), {"a.pdf": 1, "tiny.pdf": 1, "huge.pdf": 2})
    with pytest.raises(BenchError, match="b.pdf"):
        mix(fake_docs(), {"a.pdf": 1, "b.pdf": -1})
    with pytest.raises(BenchError):
        mix(fake_docs(), {"a.pdf": 0})
