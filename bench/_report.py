"""What the benchmarks print while they run: lines, and a spinner for a long phase."""
from __future__ import annotations

import contextlib
import sys
from typing import Iterator


def say(text: str = "") -> None:
    print(text, flush=True)


@contextlib.contextmanager
def phase(text: str) -> Iterator[None]:
    """A spinner with rich when it is installed and stdout is a terminal, else a line."""
    if sys.stdout.isatty():
        try:
            from rich.console import Console
        except ImportError:
            pass
        else:
            with Console().status(text):
                yield
            return
    say(text)
    yield
