"""Document engine: format detection (and, to come, analysis and conversion).

Each function here comes from a compiled module in ext/ or from its pure-Python
twin in this package, as spoolproxy._twins.load decides; IMPLEMENTATION says which.
"""
from .. import _twins

_sniff = _twins.load("spoolproxy.pdl.sniff")

detect = _sniff.detect
IMPLEMENTATION: str = _twins.implementation(_sniff)  # "cython" or "python"

__all__ = ["detect", "IMPLEMENTATION"]
