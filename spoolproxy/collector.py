"""Python's garbage collector as a long-running node wants it.

The defaults suit short scripts: a young collection every 700 allocations and full
passes over every object alive. A node holds its job records, settings and modules
for its whole life and allocates briskly on every request, so once it has loaded its
state it freezes what is there (full passes skip it: with 10,000 jobs held one took
~90 ms, stalling every request) and collects the young generation every 50,000
allocations (at the default a burst of 1,024 concurrent charges spent about a third
of the event loop's time collecting). Reference counting still frees almost
everything at once; the collector only finds cycles, which now wait a little longer.
"""
from __future__ import annotations

import contextlib
import gc
from typing import Iterator

THRESHOLDS = (50_000, 20, 20)  # gc.set_threshold; Python's default is (700, 10, 10)


def settle() -> tuple[int, int, int]:
    """Freeze what is alive now and set the node's thresholds; returns the old ones."""
    old = gc.get_threshold()
    gc.collect()
    gc.freeze()
    gc.set_threshold(*THRESHOLDS)
    return old


@contextlib.contextmanager
def settled() -> Iterator[None]:
    """settle() for a while (benchmarks that measure a node's code in their own process)."""
    old = settle()
    try:
        yield
    finally:
        gc.set_threshold(*old)
        gc.unfreeze()
