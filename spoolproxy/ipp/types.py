"""Value types of the IPP data model (RFC 8010 §3.9, RFC 8011 §5.1).

Python value for each value tag:
  INTEGER, ENUM -> int            BOOLEAN -> bool
  STRING (octetString) -> bytes   DATE -> datetime.datetime (aware, decisecond precision)
  RESOLUTION -> Resolution        RANGE -> Range
  TEXT_LANG, NAME_LANG -> TextLang
  BEGIN_COLLECTION -> Collection (ordered member attributes)
  TEXT, NAME, KEYWORD, URI, URI_SCHEME, CHARSET, LANGUAGE, MIME_TYPE -> str
  out-of-band tags (0x10-0x1F) -> None
  any other tag (unknown / extension) -> bytes, kept as received
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterable, Iterator

from .model import Tag


@dataclass(frozen=True, slots=True)
class Resolution:
    x: int
    y: int
    units: int = 3  # 3 = dots per inch, 4 = dots per centimetre


@dataclass(frozen=True, slots=True)
class Range:
    lower: int
    upper: int


@dataclass(frozen=True, slots=True)
class TextLang:
    text: str
    lang: str


@dataclass(slots=True)
class Attribute:
    """One attribute: a name, the tag of its values and one or more values.

    ``value_tags`` is None when every value has ``tag``; when a 1setOf mixes
    syntaxes (e.g. keyword | name) it lists one tag per value.
    """

    name: str
    tag: int
    values: list[Any]
    value_tags: list[int] | None = None

    @classmethod
    def of(cls, name: str, tag: int, *values: Any) -> "Attribute":
        return cls(name, tag, list(values) if values else [None])

    @property
    def value(self) -> Any:
        return self.values[0]

    def tags(self) -> list[int]:
        return list(self.value_tags) if self.value_tags else [self.tag] * len(self.values)

    def is_out_of_band(self) -> bool:
        return 0x10 <= self.tag <= 0x1F


class Collection(list):
    """An IPP collection value: ordered member attributes (list[Attribute])."""

    def get(self, name: str) -> Attribute | None:
        for a in self:
            if a.name == name:
                return a
        return None


@dataclass(slots=True)
class Group:
    tag: int
    attributes: list[Attribute] = field(default_factory=list)

    def get(self, name: str) -> Attribute | None:
        for a in self.attributes:
            if a.name == name:
                return a
        return None

    def value(self, name: str, default: Any = None) -> Any:
        a = self.get(name)
        return default if a is None or a.is_out_of_band() else a.value

    def add(self, name: str, tag: int, *values: Any) -> Attribute:
        attr = Attribute.of(name, tag, *values)
        self.attributes.append(attr)
        return attr

    def append(self, attr: Attribute) -> None:
        self.attributes.append(attr)

    def __contains__(self, name: object) -> bool:
        return any(a.name == name for a in self.attributes)

    def __iter__(self) -> Iterator[Attribute]:
        return iter(self.attributes)

    def __len__(self) -> int:
        return len(self.attributes)


@dataclass(slots=True)
class Message:
    """An IPP request or response. ``code`` is the operation-id or status-code."""

    version: tuple[int, int] = (2, 0)
    code: int = 0
    request_id: int = 1
    groups: list[Group] = field(default_factory=list)

    def group(self, tag: int) -> Group | None:
        for g in self.groups:
            if g.tag == tag:
                return g
        return None

    def groups_of(self, tag: int) -> list[Group]:
        return [g for g in self.groups if g.tag == tag]

    def add_group(self, tag: int, attributes: Iterable[Attribute] = ()) -> Group:
        g = Group(tag, list(attributes))
        self.groups.append(g)
        return g

    @property
    def operation(self) -> Group:
        g = self.group(Tag.OPERATION)
        if g is None:
            g = Group(Tag.OPERATION)
            self.groups.insert(0, g)
        return g
