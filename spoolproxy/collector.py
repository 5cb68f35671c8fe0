"""Python's garbage collector as a long-running node wants it.

A node holds its job records, settings and modules for its whole life. Once it has
loaded its state it freezes what is there, so that the collector's full passes skip
it: with 10,000 jobs held one pass took ~90 ms, stalling every request. The
thresholds stay Python's: raising the young generation's (tried: 10,000 and 50,000
allocations instead of 700) sped up a burst of 1,024 charges by about a tenth but
cost the IPP accept path about a millisecond of CPU per job (bench/accept_rate.py:
2.6-2.8 against 3.7-3.85 ms), which matters more.
"""
from __future__ import annotations

import contextlib
import gc
from typing import Iterator


def settle() -> None:
    """Collect, then freeze what is alive now: from here on the collector's passes
    look only at what the node allocates while it serves."""
    gc.collect()
    gc.freeze()


@contextlib.contextmanager
def settled() -> Iterator[None]:
    """settle() for a while (benchmarks that measure a node's code in their own process)."""
    settle()
    try:
        yield
    finally:
        gc.unfreeze()
