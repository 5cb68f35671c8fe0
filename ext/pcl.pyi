# Stub for the compiled twin of spoolproxy.pdl.pcl (ext/pcl.pyx).
from typing import BinaryIO

from spoolproxy.pdl.model import PageRun

CHUNK: int
LOOK: int
MAX_VALUE_CHARS: int
PAGE_SIZES: dict[int, tuple[int, int]]

def scan(f: BinaryIO, start: int = 0, *, sides: str = ..., media: tuple[int, int] | None = None,
         copies: int = 1) -> tuple[tuple[PageRun, ...], int]: ...
def to_grayscale(f: BinaryIO, out: BinaryIO, start: int = 0, end: int | None = None) -> None: ...
def to_duplex(f: BinaryIO, out: BinaryIO, sides: str, start: int = 0, end: int | None = None) -> None: ...
