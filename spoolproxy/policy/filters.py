"""Per-queue filters and restrictions: the settings and the pure decision.

``evaluate(facts, settings)`` looks only at the facts it is given (who, which
pages, what it costs) and returns what to do: deny with a message for the user,
or let the job through with conversions to apply. No I/O, so every rule is a
plain unit test. The job-path stage that gathers the facts, converts and records
the outcome is :mod:`spoolproxy.policy.admission`.

Scope: filters apply to restricted users unless ``scope = "all"``; printer access
by group (``allowed_groups``) is access control and applies to everyone.
"""
from __future__ import annotations

import fnmatch
from dataclasses import dataclass, field
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from ..ledger.cost import MEDIA_TOLERANCE, media_size  # 1 mm: sizes from points round a little off


class FilterSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    scope: Literal["restricted", "all"] = Field(
        "restricted", description="whom the filters apply to: restricted users, or everyone")
    deny_color: bool = False
    deny_color_groups: tuple[str, ...] = Field(
        (), description="deny colour only to members of these groups (implies deny_color)")
    force_grayscale: bool = False
    force_duplex: bool = False
    max_pages: int = Field(0, ge=0, description="printed pages per job, copies included; 0 = no limit")
    max_copies: int = Field(0, ge=0, description="0 = no limit")
    max_cost: int = Field(0, ge=0, description="minor units; 0 = no limit")
    max_size: int = Field(0, ge=0, description="spooled bytes per job; 0 = no limit")
    allowed_media: tuple[str, ...] = Field((), description="PWG media names or a4/letter/...; empty = any")
    deny_names: tuple[str, ...] = Field((), description="glob patterns on job and document names")
    duplicate_window: float = Field(0.0, ge=0, description="seconds; 0 = keep duplicates")
    allowed_groups: tuple[str, ...] = Field((), description="who may print here; empty = everyone")

    @field_validator("allowed_media")
    @classmethod
    def _media(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        for name in v:
            media_size(name)  # raises ValueError naming the media
        return v

    @property
    def media_sizes(self) -> list[tuple[str, tuple[int, int]]]:
        return [(n, media_size(n)) for n in self.allowed_media]


@dataclass(slots=True)
class Facts:
    """What the filters look at, gathered by the admission stage."""

    user: str
    groups: tuple[str, ...] = ()
    restricted: bool = True
    names: tuple[str, ...] = ()  # job-name and document names
    size: int = 0  # spooled bytes
    copies: int = 1  # IPP copies
    counted: bool = True  # False: a document could not be counted (pages unknown)
    pages: int = 0  # printed pages (impressions), copies included
    color_pages: int = 0
    media: tuple[tuple[int, int], ...] = ()  # distinct page sizes in PWG units


@dataclass(slots=True)
class Decision:
    deny: str = ""  # non-empty: the job is refused, and this tells the user why
    reason: str = ""  # IPP job-state-reasons keyword for a denial
    gray: bool = False  # convert to grayscale (and print monochrome)
    duplex: bool = False  # print two-sided
    applied: list[str] = field(default_factory=list)  # what was done, for the job record

    @property
    def denied(self) -> bool:
        return bool(self.deny)


def applies(settings: FilterSettings, facts: Facts) -> bool:
    return settings.scope == "all" or facts.restricted


def media_allowed(size: tuple[int, int], allowed: list[tuple[str, tuple[int, int]]]) -> bool:
    w, h = size
    for _name, (aw, ah) in allowed:
        for x, y in ((aw, ah), (ah, aw)):
            if abs(w - x) <= MEDIA_TOLERANCE and abs(h - y) <= MEDIA_TOLERANCE:
                return True
    return False


def _mm(size: tuple[int, int]) -> str:
    return f"{size[0] / 100:g}x{size[1] / 100:g} mm"


def evaluate(facts: Facts, s: FilterSettings, queue: str = "") -> Decision:
    """The filters' verdict, rules in a fixed order: access, names, size, copies,
    media, colour, conversions, pages. (Cost, credit and duplicates come after, in
    the admission stage: conversions change the price, and a job refused for
    another reason must not count as the original of a duplicate.)"""
    on = f" on {queue}" if queue else ""
    if s.allowed_groups and not set(s.allowed_groups) & set(facts.groups):
        return Decision(f"You may not print{on}: it is for members of "
                        f"{', '.join(s.allowed_groups)} only.", "job-canceled-by-system")
    if not applies(s, facts):
        return Decision()
    d = Decision()
    for name in facts.names:
        for pattern in s.deny_names:
            if fnmatch.fnmatchcase(name.casefold(), pattern.casefold()):
                return Decision(f"Documents named like {pattern!r} may not be printed{on} "
                                f"({name!r}).", "job-canceled-by-system")
    if s.max_size and facts.size > s.max_size:
        return Decision(f"The job is {facts.size} bytes; at most {s.max_size} bytes may be "
                        f"printed{on}.", "job-canceled-by-system")
    if s.max_copies and facts.copies > s.max_copies:
        return Decision(f"The job asks for {facts.copies} copies; at most {s.max_copies} may be "
                        f"printed{on}.", "job-canceled-by-system")
    allowed = s.media_sizes
    if allowed:
        for size in facts.media:
            if not media_allowed(size, allowed):
                return Decision(f"Paper size {_mm(size)} may not be used{on}; allowed: "
                                f"{', '.join(s.allowed_media)}.", "job-canceled-by-system")
    if s.force_grayscale:
        d.gray = True
        if facts.color_pages:
            d.applied.append("converted to grayscale")
    elif facts.color_pages and (s.deny_color and not s.deny_color_groups
                                or set(s.deny_color_groups) & set(facts.groups)):
        return Decision(f"Colour printing is not allowed{on}; the job has {facts.color_pages} "
                        "colour page(s). Print it in grayscale (black and white).",
                        "job-canceled-by-system")
    if s.force_duplex:
        d.duplex = True
        d.applied.append("printed two-sided")
    if s.max_pages and facts.counted and facts.pages > s.max_pages:
        return Decision(f"The job has {facts.pages} page(s) to print; at most {s.max_pages} may be "
                        f"printed at once{on}.", "job-canceled-by-system")
    return d


def duplicate_message(other: int, apart: float, s: FilterSettings, queue: str = "") -> str:
    """Duplicates are found by the admission stage (it needs the jobs seen before)."""
    on = f" on {queue}" if queue else ""
    return (f"Deleted as a duplicate of job {other}: the same document from the same user "
            f"{apart:.0f} s apart (duplicates within {s.duplicate_window:g} s are deleted{on}).")
