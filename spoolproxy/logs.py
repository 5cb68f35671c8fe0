"""Logging for the node: one readable line per event on stderr.

    2026-11-21 07:00:00 INFO  ipp: listening on ipp://print1:8631/ipp/print/demo
    2026-11-21 07:00:03 WARN  upstream: printer ipp://10.0.0.7/ipp/print not answering, retry in 2 s

The logger name is shortened to the part of the package it comes from
(``spoolproxy.ipp.server`` -> ``ipp``; at debug level ``ipp.server``); other
libraries keep their own names. When stderr goes to the systemd journal (which
stamps every line itself) the time is left out.
"""
from __future__ import annotations

import logging
import os
import sys
from typing import TextIO

LEVELS = ("debug", "info", "warning", "error")
_SHORT_LEVEL = {"WARNING": "WARN", "CRITICAL": "CRIT"}
# third-party loggers that talk too much at info level
NOISY = {"hpack": logging.WARNING, "hypercorn.access": logging.WARNING, "h2": logging.WARNING,
         "h11": logging.WARNING}
PACKAGE = "spoolproxy"


class Formatter(logging.Formatter):
    """``DATE TIME LEVEL name: message``, level padded to 5 and the package prefix dropped.

    Built by hand rather than from a %-template on a copy of the record: the node
    logs a line per job, and this is on the path of every accepted job."""

    def __init__(self, *, timestamps: bool = True, full_names: bool = False) -> None:
        super().__init__(datefmt="%Y-%m-%d %H:%M:%S")
        self.timestamps = timestamps
        self.full_names = full_names
        self._cache = (-1, "")  # (second, its timestamp): one tuple, so threads see a pair

    def short_name(self, name: str) -> str:
        if not name.startswith(PACKAGE + "."):
            return name
        rest = name[len(PACKAGE) + 1:]
        return rest if self.full_names else rest.split(".", 1)[0]

    def _time(self, record: logging.LogRecord) -> str:
        second = int(record.created)
        cached, stamp = self._cache
        if second != cached:  # strftime once a second, not once a line
            stamp = self.formatTime(record, self.datefmt)
            self._cache = (second, stamp)
        return stamp

    def format(self, record: logging.LogRecord) -> str:
        record.message = record.getMessage()
        level = _SHORT_LEVEL.get(record.levelname, record.levelname)
        line = f"{level:<5} {self.short_name(record.name)}: {record.message}"
        if self.timestamps:
            line = f"{self._time(record)} {line}"
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            line += "\n" + record.exc_text
        if record.stack_info:
            line += "\n" + self.formatStack(record.stack_info)
        return line


class _Handler(logging.StreamHandler):
    """Marks the handler that setup() installed, so a second call replaces it."""


def _to_journal(stream: TextIO) -> bool:
    journal = os.environ.get("JOURNAL_STREAM", "")
    if not journal:
        return False
    try:
        st = os.fstat(stream.fileno())
        dev, ino = journal.split(":", 1)
        return (st.st_dev, st.st_ino) == (int(dev), int(ino))
    except (OSError, ValueError, AttributeError):
        return False


def level_number(level: str | int) -> int:
    if isinstance(level, int):
        return level
    name = level.strip().upper()
    if name == "WARN":
        name = "WARNING"
    number = logging.getLevelName(name)
    if not isinstance(number, int):
        raise ValueError(f"unknown log level {level!r}; use one of {', '.join(LEVELS)}")
    return number


def setup(level: str | int = "info", *, stream: TextIO | None = None) -> None:
    """Send log records at ``level`` and above to stderr (or ``stream``) in the
    administrator's format. Calling it again replaces the previous setup."""
    number = level_number(level)
    stream = stream if stream is not None else sys.stderr
    root = logging.getLogger()
    for h in list(root.handlers):
        if isinstance(h, _Handler):
            root.removeHandler(h)
    handler = _Handler(stream)
    handler.setFormatter(Formatter(timestamps=not _to_journal(stream), full_names=number <= logging.DEBUG))
    root.addHandler(handler)
    root.setLevel(number)
    for name, quiet in NOISY.items():
        logging.getLogger(name).setLevel(max(quiet, number))
    logging.captureWarnings(True)  # warnings.warn() -> "py.warnings: ..." lines in the same format
