"""What every fuzz target in tests/fuzz shares: the choice between atheris and the plain
random/mutational loop, the loop itself, and the command line.

A target keeps what is its own (the modules under test, ``TestOneInput`` and its checks,
a seed corpus, a mutator) and delegates the rest::

    sys.path.insert(0, str(Path(__file__).resolve().parent))  # this module, also when loaded by path
    import _harness

    pure = _harness.instrumented_import("spoolproxy.pdl.raster", __name__)
    ...
    def run_random(iterations, seed=None):
        return _harness.run_random(_check, seed_corpus(), mutate, iterations, seed)

    def main(argv):
        _harness.fuzz_main(argv, TestOneInput, run_random, "fuzz_pdl_raster")

Run as a script, a target takes either ``N [SEED]`` (N iterations of the plain loop) or
libFuzzer options and a corpus directory (atheris, coverage-guided, when it is installed;
the plain loop otherwise). Imported (as the property tests do), it never uses atheris.
"""
from __future__ import annotations

import importlib
import random
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

ROOT = Path(__file__).resolve().parents[2]

Mutator = Callable[[random.Random, bytes, list[bytes]], bytes]
Op = Callable[[random.Random, bytearray, int, list[bytes]], None]

_atheris: ModuleType | None = None
_decided = False


def _use_atheris(argv: Sequence[str]) -> ModuleType | None:
    """atheris, when the command line asks for it (no iteration count) and it is installed."""
    global _atheris, _decided
    if not _decided:
        _decided = True
        if not (len(argv) > 1 and argv[1].isdigit()):
            try:
                import atheris
            except ImportError:
                atheris = None
            _atheris = atheris
    return _atheris


def instrumented_import(name: str, caller: str) -> ModuleType:
    """Import module ``name`` (and what it imports from spoolproxy) for a target whose
    ``__name__`` is ``caller``: run as a script, put the checkout on sys.path (runnable
    without installing) and, when atheris will drive it, import under its instrumentation.
    Later plain ``from spoolproxy... import`` lines get the same, instrumented modules."""
    if caller != "__main__":
        return importlib.import_module(name)
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    atheris = _use_atheris(sys.argv)
    if atheris is None:
        return importlib.import_module(name)
    with atheris.instrument_imports(include=["spoolproxy"]):
        return importlib.import_module(name)


# --- the random / mutational loop -----------------------------------------------------------


def random_bytes(*prefixes: bytes, max_len: int = 64) -> Callable[[random.Random], bytes]:
    """An input maker: up to ``max_len`` random bytes, after one of ``prefixes`` if given."""
    def make(rng: random.Random) -> bytes:
        head = rng.choice(prefixes) if prefixes else b""
        return head + rng.randbytes(rng.randint(0, max_len))
    return make


def run_random(
    check: Callable[[bytes], Any],
    seed_corpus: Sequence[bytes],
    mutate: Mutator,
    iterations: int,
    seed: int | None = None,
    *,
    random_input: Callable[[random.Random], bytes] | None = None,
    random_share: float = 0.1,
    breeds: Callable[[Any], bool] = bool,
    corpus_limit: int = 256,
    show: Callable[[bytes], str] = bytes.hex,
) -> int:
    """Run ``check`` on ``iterations`` generated inputs; return how many ran.

    A ``random_share`` of the inputs come from ``random_input`` (by default up to 64
    random bytes; with a share of 0 every input is a mutant), the rest are ``mutate``-d
    from the corpus. An input whose check result ``breeds`` joins the corpus (up to
    ``corpus_limit``). A failing input is printed with the seed, and the error raised.
    """
    seed = int(time.time()) if seed is None else seed
    rng = random.Random(seed)
    corpus = list(seed_corpus)
    make = random_input or random_bytes()
    for n in range(iterations):
        if random_share and rng.random() < random_share:
            data = make(rng)
        else:
            data = mutate(rng, rng.choice(corpus), corpus)
        try:
            result = check(data)
        except BaseException:
            print(f"failing input (seed {seed}, iteration {n}): {show(data)}", file=sys.stderr)
            raise
        if breeds(result) and len(corpus) < corpus_limit:
            corpus.append(data)  # inputs that get far breed more interesting mutants
    return iterations


# --- mutators: a few rounds of operations, each at a random position ----------------------------


def mutator(*ops: Op, rounds: tuple[int, int] = (1, 4)) -> Mutator:
    """A mutator applying ``rounds`` randomly chosen ``ops`` at random positions; an op
    whose precondition does not hold at the position does nothing."""
    def mutate(rng: random.Random, data: bytes, corpus: list[bytes]) -> bytes:
        buf = bytearray(data)
        for _ in range(rng.randint(*rounds)):
            i = rng.randrange(len(buf) + 1)
            ops[rng.randrange(len(ops))](rng, buf, i, corpus)
        return bytes(buf)
    return mutate


def flip_bit(rng: random.Random, buf: bytearray, i: int, corpus: list[bytes]) -> None:
    if i < len(buf):
        buf[i] ^= 1 << rng.randrange(8)


def set_byte(values: Sequence[int]) -> Op:
    def op(rng: random.Random, buf: bytearray, i: int, corpus: list[bytes]) -> None:
        if i < len(buf):
            buf[i] = rng.choice(values)
    return op


def insert_token(tokens: Sequence[bytes]) -> Op:
    def op(rng: random.Random, buf: bytearray, i: int, corpus: list[bytes]) -> None:
        buf[i:i] = rng.choice(tokens)
    return op


def insert_random(most: int) -> Op:
    def op(rng: random.Random, buf: bytearray, i: int, corpus: list[bytes]) -> None:
        buf[i:i] = rng.randbytes(rng.randint(1, most))
    return op


def delete(most: int) -> Op:
    def op(rng: random.Random, buf: bytearray, i: int, corpus: list[bytes]) -> None:
        del buf[i:i + rng.randint(1, most)]
    return op


def truncate(rng: random.Random, buf: bytearray, i: int, corpus: list[bytes]) -> None:
    del buf[i:]


def splice_tail(rng: random.Random, buf: bytearray, i: int, corpus: list[bytes]) -> None:
    """Replace the rest of the input with the tail of a corpus entry."""
    other = rng.choice(corpus)
    buf[i:] = other[rng.randrange(len(other) + 1):]


def copy_within(most: int) -> Op:
    """Insert a copy of up to ``most`` bytes from elsewhere in the input."""
    def op(rng: random.Random, buf: bytearray, i: int, corpus: list[bytes]) -> None:
        if buf:
            j = rng.randrange(len(buf))
            buf[i:i] = buf[j:j + rng.randint(1, most)]
    return op


# --- the command line -------------------------------------------------------------------------


def fuzz_main(
    argv: Sequence[str],
    test_one_input: Callable[[bytes], None],
    run_random: Callable[[int, int | None], int],
    name: str,
    *,
    default_iterations: int = 10000,
    note: str = "",
) -> None:
    """``name [libFuzzer options] [corpus dir]`` runs atheris when it is installed;
    ``name N [SEED]`` (or no atheris) runs ``run_random`` (N = ``default_iterations``)."""
    atheris = _use_atheris(argv)
    if atheris is not None:
        atheris.Setup(list(argv), test_one_input)
        atheris.Fuzz()
        return
    iterations = int(argv[1]) if len(argv) > 1 else default_iterations
    seed = int(argv[2]) if len(argv) > 2 else None
    done = run_random(iterations, seed)
    print(f"{name}: {done} random/mutational inputs, no failure{note}")


def check_scanner_twins(pure, compiled, data: bytes, two_sided: str) -> bool:
    """The checks of a target for a scanner with conversions (PCL 5, PostScript):
    only PdlError escapes ``scan``, the twins agree, and what counts converts to
    grayscale and to duplex with the same page count. True when ``data`` counted."""
    import io

    from spoolproxy.pdl.model import PdlError

    def outcome(mod, blob: bytes):
        try:
            return mod.scan(io.BytesIO(blob))
        except PdlError as e:
            return type(e)

    got = outcome(pure, data)
    if compiled is not None:
        assert outcome(compiled, data) == got, "the twins disagree"
    if not isinstance(got, tuple):
        return False
    assert got[1] <= len(data)
    for convert in (pure.to_grayscale, lambda f, o: pure.to_duplex(f, o, two_sided)):
        out = io.BytesIO()
        convert(io.BytesIO(data), out)
        again = outcome(pure, out.getvalue())
        assert isinstance(again, tuple) and sum(r.count for r in again[0]) == sum(r.count for r in got[0])
    return True
