"""The benchmark suite's one error type.

A benchmark that cannot run (a tool is missing, a peer did not start, the caller
named a document that does not exist) raises ``BenchError`` with a message that says
what to do; the runner prints it and exits non-zero. Numbers never raise: a benchmark
reports them, tests assert.
"""
from __future__ import annotations

__all__ = ["BenchError"]


class BenchError(RuntimeError):
    """The benchmark could not run; str() says why and, where it can, what to do."""
