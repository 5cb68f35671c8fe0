# Stub for the compiled twin of spoolproxy.pdl.postscript (ext/postscript.pyx).
from typing import BinaryIO

from spoolproxy.pdl.model import PageRun, PdlError

CHUNK: int
LOOK: int
LINE_MAX: int
VALUE_WINDOW: int
GRAY_PROLOG: bytes

class NeedsInterpreter(PdlError): ...

def scan(f: BinaryIO, start: int = 0, *, sides: str = ..., media: tuple[int, int] | None = None,
         copies: int = 1) -> tuple[tuple[PageRun, ...], int]: ...
def to_grayscale(f: BinaryIO, out: BinaryIO, start: int = 0, end: int | None = None) -> None: ...
def to_duplex(f: BinaryIO, out: BinaryIO, sides: str, start: int = 0, end: int | None = None) -> None: ...
