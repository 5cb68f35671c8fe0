"""What the benchmarks print while they run: lines, and a spinner for a long phase."""
from __future__ import annotations

import contextlib
import sys
from typing import Any, Iterator


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


def stop_on_sigterm() -> None:
    """SIGTERM (a CI timeout) becomes a Ctrl-C, so that a benchmark's ``finally`` stops
    the processes it started (a shell's ``cmd &`` starts us with SIGINT ignored)."""
    import os
    import signal
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, lambda *_: os.kill(os.getpid(), signal.SIGINT))


def new_result(benchmark: str, args: Any, started: float, load: tuple[float, float, float],
               **extra: Any) -> dict[str, Any]:
    """The head of a benchmark's JSON: what ran, where, with which settings."""
    import os
    import platform
    from pathlib import Path
    return {
        "benchmark": benchmark, "started": started,
        "machine": {"cpus": os.cpu_count(), "loadavg_start": load, "python": platform.python_version(),
                    "platform": platform.platform()},
        "settings": {k: (sorted(v) if isinstance(v, set) else str(v) if isinstance(v, Path) else v)
                     for k, v in vars(args).items()},
        **extra,
    }
