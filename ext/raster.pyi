# Stub for the compiled twin of spoolproxy.pdl.raster (ext/raster.pyx).
from typing import BinaryIO

from spoolproxy.pdl.model import PageRun

PWG_SYNC: bytes
URF_MAGIC: bytes
COLOR_TOLERANCE: int
MAX_HEIGHT: int
MAX_BYTES_PER_LINE: int
CHUNK: int

def scan(f: BinaryIO, start: int = 0, *, sides: str = ..., media: tuple[int, int] | None = None,
         copies: int = 1) -> tuple[tuple[PageRun, ...], int]: ...
def to_grayscale(f: BinaryIO, out: BinaryIO, start: int = 0, end: int | None = None) -> None: ...
def to_duplex(f: BinaryIO, out: BinaryIO, sides: str, start: int = 0, end: int | None = None) -> None: ...
