# Stub for the compiled twin of spoolproxy.pdl.sniff (ext/sniff.pyx).
from typing_extensions import Buffer

WINDOW: int
PDF_HEADER_WINDOW: int

def detect(data: Buffer) -> str: ...
