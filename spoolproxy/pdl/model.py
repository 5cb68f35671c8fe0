"""What the document engine says about a document, and the errors it raises.

Shared by every scanner, pure and compiled: ext/*.pyx import these classes from
here, so both twins return the same values and raise the very same exceptions.

Pages are kept as runs of consecutive pages that look alike (same colour, sides,
media, copies), so an analysis takes memory in proportion to how often the pages
change, not to how many there are: a 2000-page gray A4 document is one run.
"""
from __future__ import annotations

import dataclasses
from typing import Iterable, Iterator

__all__ = [
    "PdlError", "UnsupportedFormat", "DamagedDocument", "EncryptedDocument", "ConversionError",
    "NeedsInterpreter",
    "ONE_SIDED", "TWO_SIDED_LONG", "TWO_SIDED_SHORT", "SIDES",
    "PageRun", "Analysis", "RunBuilder", "points_to_pwg", "inches_to_pwg",
]


class PdlError(Exception):
    """The engine's own error: the only exception a scanner or converter lets out
    for any input (a TypeError for a wrong argument type aside)."""


class UnsupportedFormat(PdlError):
    """The document is in a format the engine does not analyse or convert."""


class DamagedDocument(PdlError):
    """The document is too broken to count, even after repair."""


class EncryptedDocument(PdlError):
    """The document is encrypted with a password we do not have."""


class NeedsInterpreter(PdlError):
    """The document can only be counted by running it (PostScript without usable DSC
    page comments): the engine hands it to Ghostscript."""


class ConversionError(PdlError):
    """A conversion could not be done (the document is left as it was)."""


ONE_SIDED = "one-sided"
TWO_SIDED_LONG = "two-sided-long-edge"
TWO_SIDED_SHORT = "two-sided-short-edge"
SIDES = (ONE_SIDED, TWO_SIDED_LONG, TWO_SIDED_SHORT)  # IPP "sides" keywords


def points_to_pwg(pt: float) -> int:
    """A length in PostScript points (1/72 in) as PWG units (1/100 mm), rounded."""
    return int(round(pt * 2540.0 / 72.0))


def inches_to_pwg(inches: float) -> int:
    return int(round(inches * 2540.0))


@dataclasses.dataclass(frozen=True, slots=True)
class PageRun:
    """``count`` consecutive pages alike.

    color: True if the page would put colour (not just black/gray) on paper, False
        if not, None if the scanner could not decide (the PDF scanner then asks
        Ghostscript, when allowed).
    sides: one of SIDES.
    media: (width, height) in PWG units (hundredths of a millimetre), portrait or
        as the document gives them; None when the document does not say.
    copies: how many times each page is printed by the document's own settings
        (PCL ``ESC&l#X``, PCL XL PageCopies, PostScript /NumCopies, raster NumCopies,
        PJL COPIES/QTY); job-level IPP copies are not included.
    """
    count: int
    color: bool | None = False
    sides: str = ONE_SIDED
    media: tuple[int, int] | None = None
    copies: int = 1

    def like(self, other: "PageRun") -> bool:
        return (self.color == other.color and self.sides == other.sides
                and self.media == other.media and self.copies == other.copies)


@dataclasses.dataclass(frozen=True, slots=True)
class Analysis:
    """A document's pages. ``format`` is the MIME type found by content."""
    format: str
    runs: tuple[PageRun, ...] = ()
    warnings: tuple[str, ...] = ()  # what a person may want to know (repaired xref, ...)
    claimed: str | None = None      # the document-format the client gave, if any
    account: str | None = None      # the account a PJL header names (SET ACCOUNT, JOBATTR ACCT)

    @property
    def format_mismatch(self) -> bool:
        """The client claimed a format other than the one the content is in
        (application/octet-stream and no claim are not mismatches)."""
        return self.claimed not in (None, "", "application/octet-stream") and self.claimed != self.format

    @property
    def pages(self) -> int:
        """Distinct pages in the document."""
        return sum(r.count for r in self.runs)

    @property
    def impressions(self) -> int:
        """Page images put on paper, the document's own copies included."""
        return sum(r.count * r.copies for r in self.runs)

    @property
    def color_impressions(self) -> int:
        return sum(r.count * r.copies for r in self.runs if r.color)

    @property
    def undecided_pages(self) -> int:
        return sum(r.count for r in self.runs if r.color is None)

    @property
    def sheets(self) -> int:
        """Sheets of paper: a one-sided page takes a sheet, two-sided pages go two
        to a sheet (a run of two-sided pages starts a new sheet)."""
        return sum(r.count * r.copies if r.sides == ONE_SIDED else -(-r.count // 2) * r.copies
                   for r in self.runs)

    def page_colors(self) -> Iterator[bool | None]:
        """Colour of each page, in order (expands the runs: for tests and reports)."""
        for r in self.runs:
            for _ in range(r.count):
                yield r.color

    def with_copies(self, factor: int) -> "Analysis":
        """The same pages, each printed ``factor`` times more (PJL COPIES/QTY)."""
        if factor == 1:
            return self
        return dataclasses.replace(self, runs=tuple(
            dataclasses.replace(r, copies=r.copies * factor) for r in self.runs))


class RunBuilder:
    """Collects pages one at a time into runs (what scanners use)."""
    __slots__ = ("_runs", "_last")

    def __init__(self) -> None:
        self._runs: list[PageRun] = []
        self._last: PageRun | None = None

    def add(self, color: bool | None = False, sides: str = ONE_SIDED,
            media: tuple[int, int] | None = None, copies: int = 1, count: int = 1) -> None:
        if count <= 0:
            return
        last = self._last
        if (last is not None and last.color == color and last.sides == sides
                and last.media == media and last.copies == copies):
            self._last = PageRun(last.count + count, color, sides, media, copies)
        else:
            if last is not None:
                self._runs.append(last)
            self._last = PageRun(count, color, sides, media, copies)

    def extend(self, runs: Iterable[PageRun]) -> None:
        for r in runs:
            self.add(r.color, r.sides, r.media, r.copies, r.count)

    def runs(self) -> tuple[PageRun, ...]:
        return tuple(self._runs) + ((self._last,) if self._last is not None else ())
