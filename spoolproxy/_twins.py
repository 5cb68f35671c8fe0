"""Choosing between a compiled module from ext/ and its pure-Python twin.

ext/NAME.pyx is built as ``spoolproxy._ext.NAME``; its twin is a pure module of
the same API somewhere in the package (``spoolproxy.pdl.NAME`` for the document
engine). ``load`` returns the compiled one when it is built, unless the
environment sets ``SPOOLPROXY_NO_EXTENSIONS=1``. A compiled module that is
present but fails to import is an error, not a reason to fall back.
"""
from __future__ import annotations

import importlib
import os
from types import ModuleType

EXT_PACKAGE = "spoolproxy._ext"


def load(pure: str) -> ModuleType:
    """The module to use for the twin pair whose pure half is the dotted name ``pure``."""
    compiled = f"{EXT_PACKAGE}.{pure.rpartition('.')[2]}"
    if os.environ.get("SPOOLPROXY_NO_EXTENSIONS", "") in ("", "0"):
        try:
            return importlib.import_module(compiled)
        except ModuleNotFoundError as e:
            if e.name not in (compiled, EXT_PACKAGE):
                raise
    return importlib.import_module(pure)


def implementation(module: ModuleType) -> str:
    """"cython" for a module built from ext/, "python" for a pure twin."""
    return "cython" if module.__name__.startswith(EXT_PACKAGE + ".") else "python"
