"""The cost model: what a job costs, from the document engine's page kinds and a
queue's price table. Pure: no I/O, no clock, no database.

Money is an ``int`` of minor units (cents) everywhere (DESIGN.md, Decisions). The
only non-integer input is ``duplex_discount_percent``; it is read as a Decimal
(TOML ``12.5`` is taken as written, not as the nearest binary float) and applied
with ``fractions.Fraction``. The one rounding is the per-page discount, rounded
half up (toward +inf) to a whole minor unit: a page's price is then an integer, so
a bill is a sum of ``count x unit price`` lines a person can check by hand, and n
IPP copies cost exactly n times one copy.

How a job is priced (``compute``), in this order:

1. every impression (page image put on paper: the document's own copies and the
   job's IPP copies included) costs the gray or colour price of its media entry
   (either orientation, +-1 mm), else the top-level ``gray``/``color``; a page of
   undecided colour is priced as ``undecided`` says (colour by default: never free
   colour); a job printed without colour (``gray=True``) is priced all gray;
2. an impression on a duplex sheet (one carrying two impressions) costs
   ``duplex_discount_percent`` less, the discount per page rounded half up;
3. ``duplex_discount`` comes off per duplex sheet, ``per_page`` is added per
   impression (either may make the sum negative), ``per_job`` once;
4. the sum is raised to 0, then to ``minimum``, then capped at ``maximum`` (if > 0).

A job that puts no page on paper costs nothing: ``per_job`` and ``minimum`` are
not charged for an empty job.
"""
from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from decimal import Decimal
from fractions import Fraction
from typing import TYPE_CHECKING, Annotated, Any, Callable, Iterable, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, field_validator, model_validator
from pydantic_core import InitErrorDetails, PydanticCustomError

from ..pdl import ONE_SIDED, SIDES

if TYPE_CHECKING:
    from ..spool.job import Job

__all__ = ["CostSettings", "MediaPrice", "Cost", "Term", "compute", "job_cost", "media_size",
           "MEDIA_ALIASES", "MEDIA_TOLERANCE", "format_money", "parse_money"]

MEDIA_TOLERANCE = 100  # PWG units (1/100 mm): PDF sizes in points round a little off
MEDIA_ALIASES = {
    "a3": "iso_a3_297x420mm",
    "a4": "iso_a4_210x297mm",
    "a5": "iso_a5_148x210mm",
    "letter": "na_letter_8.5x11in",
    "legal": "na_legal_8.5x14in",
    "tabloid": "na_ledger_11x17in",
    "ledger": "na_ledger_11x17in",  # the same sheet as tabloid, turned (orientation is ignored)
}
MONOCHROME_MODES = frozenset({"monochrome", "process-monochrome", "bi-level", "process-bi-level"})


# --- money text ----------------------------------------------------------------------

_AMOUNT = re.compile(r"([+-]?)([0-9]*)(?:\.([0-9]*))?", re.ASCII)


def format_money(amount: int, digits: int = 2, symbol: str = "") -> str:
    """Minor units as text: ``format_money(150)`` -> "1.50", ``-5`` -> "-0.05",
    ``format_money(150, 0, "¥")`` -> "¥150" (the sign goes before the symbol)."""
    if not isinstance(amount, int) or isinstance(amount, bool):
        raise TypeError(f"amount must be an int of minor units, not {type(amount).__name__}")
    if digits < 0:
        raise ValueError("digits must not be negative")
    sign = "-" if amount < 0 else ""
    whole, frac = divmod(abs(amount), 10 ** digits)
    return f"{sign}{symbol}{whole}" + (f".{frac:0{digits}d}" if digits else "")


def parse_money(text: str, digits: int = 2) -> int:
    """An amount as written by a person -> minor units: "1.5" -> 150, "-0.05" -> -5,
    "3" -> 300. Exact (no float on the way); more decimals than ``digits`` is an
    error rather than a silent rounding."""
    if not isinstance(text, str):
        raise TypeError(f"parse_money takes text, not {type(text).__name__}")
    m = _AMOUNT.fullmatch(text.strip())
    if m is None or not (m.group(2) or m.group(3)):
        raise ValueError(f"not an amount: {text!r} (write it like 1.50, 3 or -0.05)")
    sign, whole, frac = m.group(1), m.group(2) or "0", m.group(3) or ""
    if len(frac) > digits:
        raise ValueError(f"{text.strip()!r} has {len(frac)} decimals; amounts have at most {digits}")
    value = int(whole) * 10 ** digits + int(frac.ljust(digits, "0") or "0")
    return -value if sign == "-" else value


# --- media names ---------------------------------------------------------------------

_DIMENSIONS = re.compile(r"([0-9]+(?:\.[0-9]+)?)x([0-9]+(?:\.[0-9]+)?)(mm|in)", re.ASCII)


@functools.lru_cache(maxsize=256)
def media_size(name: str) -> tuple[int, int]:
    """(width, height) in PWG units of a PWG 5101.1 self-describing media name
    (``iso_a4_210x297mm``, ``na_letter_8.5x11in``, ``custom_foo_100x200mm``) or an
    alias (a3, a4, a5, letter, legal, tabloid, ledger). The size is read from the
    name itself, the part after the last ``_``, so any standard or custom size works
    without a table. ValueError if the name does not say its size."""
    key = name.strip().lower()
    key = MEDIA_ALIASES.get(key, key)
    m = _DIMENSIONS.fullmatch(key.rpartition("_")[2])
    if m is None:
        raise ValueError(f"media name {name!r} does not end in its size (WxHmm or WxHin, e.g. "
                         f"iso_a4_210x297mm, na_letter_8.5x11in) and is not one of {', '.join(MEDIA_ALIASES)}")
    scale = 100 if m.group(3) == "mm" else 2540
    w, h = (round(Fraction(x) * scale) for x in m.group(1, 2))
    if w <= 0 or h <= 0:
        raise ValueError(f"media name {name!r} gives a size of zero")
    return w, h


def _near(a: tuple[int, int], b: tuple[int, int]) -> int | None:
    """How far apart two sizes are (the larger edge difference) in their closer
    orientation, or None if further than the tolerance."""
    d = min(max(abs(a[0] - b[0]), abs(a[1] - b[1])), max(abs(a[0] - b[1]), abs(a[1] - b[0])))
    return d if d <= MEDIA_TOLERANCE else None


# --- settings ------------------------------------------------------------------------

def _whole_amount(v: Any) -> Any:
    if isinstance(v, bool) or not isinstance(v, int):
        raise ValueError(f"must be a whole number of minor units, e.g. 10 for 0.10 (got {v!r})")
    return v


_Amount = Annotated[int, BeforeValidator(_whole_amount), Field(ge=0)]
_Signed = Annotated[int, BeforeValidator(_whole_amount)]


def _key_error(title: str, loc: tuple[str, ...], message: str, value: Any) -> ValidationError:
    """An error at ``loc`` below the field or model that raises it, so that
    config.py's message names the exact key (queues.q.cost.media.a7: ...)."""
    return ValidationError.from_exception_data(title, [InitErrorDetails(
        type=PydanticCustomError("value_error", message),  # no context: braces stay as written
        loc=loc, input=value)])


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class MediaPrice(_Section):
    """Prices of a page on one media size; a price left out is the top-level one."""
    gray: _Amount | None = None
    color: _Amount | None = None


class CostSettings(_Section):
    """A queue's price table (``queues.NAME.cost``). Money in minor units."""
    gray: _Amount = Field(0, description="per gray impression")
    color: _Amount = Field(0, description="per colour impression")
    media: dict[str, MediaPrice] = Field(default_factory=dict, description="media name -> {gray, color}")
    duplex_discount: _Amount = Field(0, description="off per sheet printed on both sides")
    duplex_discount_percent: Decimal = Field(Decimal(0), ge=0, le=100,
                                             description="percent off each page on a two-sided sheet")
    per_page: _Signed = Field(0, description="added per impression (may be negative)")
    per_job: _Signed = Field(0, description="added once per job (may be negative)")
    minimum: _Amount = Field(0, description="least a job costs")
    maximum: _Amount = Field(0, description="most a job costs, 0 = no maximum")
    undecided: Literal["color", "gray"] = Field(
        "color", description="price of a page whose colour could not be decided")

    @field_validator("media")
    @classmethod
    def _media_names(cls, v: dict[str, MediaPrice]) -> dict[str, MediaPrice]:
        seen: dict[str, tuple[int, int]] = {}
        for name in v:
            try:
                size = media_size(name)
            except ValueError as e:
                raise _key_error("CostSettings", (name,), str(e), name) from None
            for other, other_size in seen.items():
                if _near(size, other_size) is not None:
                    raise _key_error("CostSettings", (name,), f"is the same size as {other!r} (within 1 mm)", name)
            seen[name] = size
        return v

    @model_validator(mode="after")
    def _range(self) -> "CostSettings":
        if 0 < self.maximum < self.minimum:
            raise _key_error("CostSettings", ("maximum",),
                             f"must not be less than minimum ({self.minimum}), or 0 for no maximum", self.maximum)
        return self


# --- the bill ------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Term:
    """One line of a bill: ``count`` x ``unit`` when count is set, else a lump sum."""
    label: str
    amount: int  # what it adds to the total (negative: a discount)
    count: int | None = None
    unit: int | None = None

    def text(self, money: Callable[[int], str], signed: bool = True) -> str:
        """Like "3 colour pages × 0.40"; ``signed=False`` shows a negative unit or lump
        as its size (the caller writes the minus sign between terms)."""
        if self.count is None:
            return f"{self.label} {money(self.amount if signed else abs(self.amount))}"
        assert self.unit is not None
        return f"{self.count} {self.label} × {money(self.unit if signed else abs(self.unit))}"


@dataclass(frozen=True, slots=True)
class Cost:
    """What a job costs and why. ``pages`` counts impressions (page images on paper,
    all copies included); ``color_pages`` and ``gray_pages`` split them as priced
    (so after ``gray=True`` and the ``undecided`` setting), ``undecided_pages`` are
    those whose colour the engine could not decide (in either count)."""
    total: int
    pages: int = 0
    color_pages: int = 0
    gray_pages: int = 0
    undecided_pages: int = 0
    sheets: int = 0
    duplex_sheets: int = 0
    terms: tuple[Term, ...] = ()
    note: str = ""  # why total differs from the sum of the terms: "minimum", "maximum", "not below 0"

    @property
    def subtotal(self) -> int:
        return sum(t.amount for t in self.terms)

    def breakdown(self, money: Callable[[int], str] = format_money) -> tuple[str, ...]:
        """One line per term and one for the total, for a report or the admin page."""
        out = [f"{t.text(money)} = {money(t.amount)}" for t in self.terms]
        out.append(f"total {money(self.total)}" + (f" ({self.note})" if self.note else ""))
        return tuple(out)

    @property
    def lines(self) -> tuple[str, ...]:
        """``breakdown()`` with two decimals."""
        return self.breakdown()

    def describe(self, money: Callable[[int], str] = format_money) -> str:
        """The whole sum on one line, for a job-state-message:
        "3 colour pages × 0.40 + 12 gray pages × 0.10 − 6 duplex sheets × 0.02 = 2.68".
        ``money`` formats an amount (e.g. functools.partial(format_money, digits=0))."""
        if not self.terms:
            return f"no pages = {money(self.total)}"
        parts = []
        for i, t in enumerate(self.terms):
            text = t.text(money, signed=False)
            parts.append(text if i == 0 and t.amount >= 0 else f"{'−' if t.amount < 0 else '+'} {text}")
        return " ".join(parts) + f" = {money(self.total)}" + (f" ({self.note})" if self.note else "")


def _round_half_up(x: Fraction) -> int:
    return (x.numerator * 2 + x.denominator) // (2 * x.denominator)


def compute(kinds_per_document: Iterable[list], settings: CostSettings, *, copies: int = 1,
            sides: str | None = None, gray: bool = False) -> Cost:
    """The cost of a job whose documents have these page kinds (``summary()["kinds"]``
    of each: ``[n, color, sides, media, copies]``).

    copies: the job's IPP copies; multiplies every count.
    sides: the sides the job is printed with (IPP ``sides``, or a forced-duplex
        filter), overriding every kind's own.
    gray: the job is printed without colour, so every page is priced gray.

    Sheets are counted per kind and per copy, because kinds have lost the page
    order: each copy of a kind's n two-sided pages takes ceil(n/2) sheets, of which
    floor(n/2) carry two impressions (duplex sheets); one-sided pages take a sheet
    each. That is Analysis.sheets when like pages are consecutive, and never more
    than it. When two-sided pages of different kinds alternate, a real sheet may
    carry pages of two kinds: this counts at most one sheet more (and one duplex
    sheet less) per kind and copy than the printer uses.
    Raises ValueError for a malformed kind, an unknown sides value or copies < 1.
    """
    if copies < 1:
        raise ValueError(f"copies must be at least 1, not {copies}")
    if sides is not None and sides not in SIDES:
        raise ValueError(f"sides must be one of {', '.join(SIDES)}, not {sides!r}")
    table = [(media_size(name), name, p) for name, p in settings.media.items()]
    pct = Fraction(settings.duplex_discount_percent) / 100
    groups: dict[tuple, int] = {}  # (colour, undecided, media name, unit, reduced) -> impressions
    color_pages = gray_pages = undecided_pages = sheets = duplex_sheets = 0
    for kinds in kinds_per_document:
        for kind in kinds:
            try:
                n, color, kind_sides, media, doc_copies = kind
            except (TypeError, ValueError):
                raise ValueError(f"not a page kind [n, color, sides, media, copies]: {kind!r}") from None
            if not isinstance(n, int) or n < 0 or not isinstance(doc_copies, int):
                raise ValueError(f"page kind {kind!r}: the page count and copies must be ints, n >= 0")
            if n == 0:
                continue
            kind_sides = sides or kind_sides
            if kind_sides not in SIDES:
                raise ValueError(f"page kind {kind!r}: sides must be one of {', '.join(SIDES)}")
            times = max(1, doc_copies) * copies  # a document never prints a page 0 times
            undecided = color is None and not gray
            colour = False if gray else (settings.undecided == "color" if color is None else bool(color))
            price, where = _price(table, media, colour, settings)
            if kind_sides == ONE_SIDED:
                single, double = n, 0
            else:
                single, double = n % 2, n // 2
            sheets += (single + double) * times
            duplex_sheets += double * times
            impressions = n * times
            color_pages += impressions if colour else 0
            gray_pages += 0 if colour else impressions
            undecided_pages += impressions if color is None else 0
            reduced = price - _round_half_up(price * pct) if pct else price
            for count, unit in ((single * times, price), (2 * double * times, reduced)):
                if count:
                    key = (colour, undecided, where, unit, unit != price)
                    groups[key] = groups.get(key, 0) + count
    pages = color_pages + gray_pages
    if not pages:
        return Cost(0)
    order = {name: i for i, name in enumerate(settings.media)}
    terms = [Term(_label(*key), count * key[3], count, key[3])
             for key, count in sorted(groups.items(), key=lambda kv: (
                 not kv[0][0], kv[0][1], order.get(kv[0][2], len(order)), kv[0][4]))]
    if settings.duplex_discount and duplex_sheets:
        terms.append(Term("duplex sheets", -duplex_sheets * settings.duplex_discount, duplex_sheets,
                          -settings.duplex_discount))
    if settings.per_page:
        terms.append(Term("pages", pages * settings.per_page, pages, settings.per_page))
    if settings.per_job:
        terms.append(Term("per job", settings.per_job))
    subtotal = sum(t.amount for t in terms)
    total, note = max(0, subtotal), ("not below 0" if subtotal < 0 else "")
    if total < settings.minimum:
        total, note = settings.minimum, "minimum"
    if settings.maximum and total > settings.maximum:
        total, note = settings.maximum, "maximum"
    return Cost(total, pages, color_pages, gray_pages, undecided_pages, sheets, duplex_sheets,
                tuple(terms), note)


def _price(table, media, colour: bool, settings: CostSettings) -> tuple[int, str | None]:
    """(unit price, media entry name or None) of one impression. The nearest entry
    within the tolerance wins; on a tie, the one written first."""
    top = settings.color if colour else settings.gray
    if not media:
        return top, None
    size = (int(media[0]), int(media[1]))
    best: tuple[int, str, MediaPrice] | None = None
    for entry_size, name, p in table:
        d = _near(size, entry_size)
        if d is not None and (best is None or d < best[0]):
            best = (d, name, p)
    if best is None:
        return top, None
    price = best[2].color if colour else best[2].gray
    return (top if price is None else price), best[1]


def _label(colour: bool, undecided: bool, media: str | None, _unit: int, reduced: bool) -> str:
    label = (f"undecided pages as {'colour' if colour else 'gray'}" if undecided
             else "colour pages" if colour else "gray pages")
    return label + (f" on {media}" if media else "") + (" two-sided" if reduced else "")


def job_cost(job: "Job", settings: CostSettings, *, gray: bool = False, sides: str | None = None) -> Cost | None:
    """The cost of a spool job, or None while it cannot be known: a document not
    analysed yet or not countable, or stored attributes that do not decode (the
    copies would be a guess). The job's IPP ``copies``, ``sides`` and
    ``print-color-mode`` (monochrome, bi-level: priced gray) apply; ``sides`` and
    ``gray=True`` given here (a filter's conversions) win over them."""
    kinds = []
    for doc in job.documents:
        a = doc.analysis
        if not a or "error" in a or "kinds" not in a:
            return None
        kinds.append(a["kinds"])
    copies, job_sides, mono = 1, None, False
    if job.attributes:
        from ..ipp.codec import CodecError, decode_attributes
        try:
            attrs = decode_attributes(job.attributes)
        except CodecError:
            return None
        for attr in attrs:
            v = attr.values[0] if attr.values else None
            if attr.name == "copies" and isinstance(v, int) and not isinstance(v, bool):
                copies = max(1, v)
            elif attr.name == "sides" and v in SIDES:
                job_sides = v
            elif attr.name == "print-color-mode" and isinstance(v, str):
                mono = v in MONOCHROME_MODES
    return compute(kinds, settings, copies=copies, sides=sides or job_sides, gray=gray or mono)
