# Stub for the compiled twin of spoolproxy.pdl.pdfcolor (ext/pdfcolor.pyx).
from typing import Any

TOLERANCE: float
LAB_TOLERANCE: float
MAX_DEPTH: int
MAX_NESTING: int
MAX_IMAGE_BYTES: int
MAX_CONTENT_BYTES: int
OPS_BATCH: int
TEST_RGB: int
TEST_CMYK: int
TEST_LAB: int
TEST_TABLE: int

def page_color(doc: Any, page: Any) -> bool | None: ...
def parse_ops(data: bytes | bytearray, pos: int = ..., max_ops: int = ...) -> tuple[list[tuple[str, list[Any]]], int]: ...
def image_has_color(data: bytes | bytearray, width: int, height: int, ncomp: int, bpc: int, test: int,
                    params: tuple[list[float], float] | bytes) -> bool: ...
