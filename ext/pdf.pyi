# Stub for the compiled twin of spoolproxy.pdl.pdf (ext/pdf.pyx): the same API.
from typing import BinaryIO, Iterator

from spoolproxy.pdl.model import DamagedDocument as DamagedDocument
from spoolproxy.pdl.model import EncryptedDocument as EncryptedDocument
from spoolproxy.pdl.model import PageRun, PdlError as PdlError
from spoolproxy.pdl.model import UnsupportedFormat as UnsupportedFormat
from spoolproxy.pdl.pdf import Name as Name, Page as Page, Ref as Ref, Stream as Stream

CHUNK: int
HEADER_WINDOW: int
MAX_NESTING: int
MAX_OBJECT: int
MAX_DECODED: int
MAX_TREE_DEPTH: int

PdfObject = dict | list | Name | int | float | bool | bytes | Ref | Stream | None

class Document:
    start: int
    base: int
    size: int
    repaired: bool
    warnings: list[str]
    trailer: dict
    catalog: dict
    def __init__(self, f: BinaryIO, start: int = 0) -> None: ...
    def resolve(self, obj: PdfObject) -> PdfObject: ...
    def pages(self) -> Iterator[Page]: ...
    def page_count(self) -> int: ...
    def viewer_preferences(self) -> dict: ...

def page_media(page: dict) -> tuple[int, int] | None: ...
def scan(f: BinaryIO, start: int = 0, *, sides: str = ..., media: tuple[int, int] | None = None,
         copies: int = 1) -> tuple[tuple[PageRun, ...], int]: ...
def page_count(f: BinaryIO, start: int = 0) -> int: ...
