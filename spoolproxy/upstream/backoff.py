"""Exponential back-off with jitter for retrying a printer.

``Backoff(initial, maximum)`` yields ``initial, 2*initial, 4*initial, ...`` capped at
``maximum``, each value scaled down by a random factor in ``[1 - jitter, 1]`` so that
queues which lost the same printer at the same moment do not retry in lock-step
("equal jitter"; never above the cap, never below ``(1 - jitter) * initial``).
Pure: no clock, no I/O; the random source can be injected for tests.
"""
from __future__ import annotations

import random
from typing import Callable


class Backoff:
    def __init__(self, initial: float, maximum: float, *, factor: float = 2.0,
                 jitter: float = 0.25, rand: Callable[[], float] = random.random) -> None:
        if initial <= 0 or maximum <= 0:
            raise ValueError("back-off delays must be positive")
        if not 0 <= jitter < 1:
            raise ValueError("jitter must be in [0, 1)")
        self.initial = initial
        self.maximum = max(maximum, initial)
        self.factor = factor
        self.jitter = jitter
        self._rand = rand
        self.failures = 0

    def peek(self) -> float:
        """The un-jittered delay the next call to :meth:`next` is based on."""
        try:
            base = self.initial * self.factor ** self.failures
        except OverflowError:
            base = self.maximum
        return min(base, self.maximum)

    def next(self) -> float:
        """Record one more failure and return how long to wait before retrying."""
        base = self.peek()
        self.failures += 1
        return base * (1.0 - self.jitter * self._rand())

    def reset(self) -> None:
        """The printer answered: start again at ``initial`` next time."""
        self.failures = 0

    def __repr__(self) -> str:
        return f"Backoff(initial={self.initial}, maximum={self.maximum}, failures={self.failures})"
