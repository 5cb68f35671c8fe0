"""Document engine: format detection, page analysis and conversions.

``detect`` names a document's format from its first bytes; ``analyze`` counts its
pages, copies, sides, media and colour; ``convert_grayscale`` and
``convert_duplex`` rewrite it; ``convert_format`` turns it into one of the formats
``conversion_targets`` names, for a printer that does not take its own. The
scanners behind them are compiled modules from ext/ or their pure-Python twins in
this package, as spoolproxy._twins.load decides; IMPLEMENTATION says which.
Analysis and conversion are synchronous and CPU-heavy: call them with
trio.to_thread.
"""
from .. import _twins
from .engine import analyze, conversion_targets, convert_duplex, convert_format, convert_grayscale
from .model import (
    ONE_SIDED, SIDES, TWO_SIDED_LONG, TWO_SIDED_SHORT, Analysis, ConversionError, DamagedDocument,
    EncryptedDocument, PageRun, PdlError, UnsupportedFormat,
)

_sniff = _twins.load("spoolproxy.pdl.sniff")

detect = _sniff.detect
IMPLEMENTATION: str = _twins.implementation(_sniff)  # "cython" or "python"

__all__ = [
    "detect", "analyze", "convert_grayscale", "convert_duplex", "conversion_targets", "convert_format",
    "IMPLEMENTATION",
    "Analysis", "PageRun", "PdlError", "UnsupportedFormat", "DamagedDocument", "EncryptedDocument",
    "ConversionError", "ONE_SIDED", "TWO_SIDED_LONG", "TWO_SIDED_SHORT", "SIDES",
]
