"""A job's print settings and the conversions that change them, shared by the
admission stage (a queue's filters: force grayscale, force duplex) and the release
(a mono printer, a user choosing a cheaper way to print at the device).

The attribute helpers read the job's stored IPP attributes; ``set_attributes``
writes back what the conversions did, so that the printer is told too and
Get-Job-Attributes shows what will be printed.
"""
from __future__ import annotations

import functools
import logging
import os
from typing import Any, Awaitable, Callable

from .. import pdl
from ..ipp import codec
from ..ipp.model import Tag
from ..ipp.types import Attribute
from ..spool.job import Job

log = logging.getLogger("spoolproxy.policy")

# PWG 5100.7 (IPP Job Extensions); a PJL header's account comes from the engine
ACCOUNT_ATTRIBUTES = ("job-account-id",)
TWO_SIDED = "two-sided-long-edge"
Runner = Callable[..., Awaitable[Any]]


def attributes(job: Job) -> list[Attribute]:
    if not job.attributes:
        return []
    try:
        return codec.decode_attributes(job.attributes)
    except codec.CodecError:
        return []


def value(attrs: list[Attribute], name: str) -> Any:
    for a in attrs:
        if a.name == name and a.values and not a.is_out_of_band():
            return a.values[0]
    return None


def int_attr(attrs: list[Attribute], name: str, default: int) -> int:
    v = value(attrs, name)
    return v if isinstance(v, int) and not isinstance(v, bool) and v > 0 else default


def keyword(attrs: list[Attribute], name: str) -> str | None:
    v = value(attrs, name)
    v = getattr(v, "text", v)
    return v if isinstance(v, str) else None


def sides(attrs: list[Attribute]) -> str | None:
    return keyword(attrs, "sides")


def named_account(attrs: list[Attribute]) -> str:
    for name in ACCOUNT_ATTRIBUTES:
        v = keyword(attrs, name)
        if v and v.strip():
            return v.strip()
    return ""


def set_attributes(attrs: list[Attribute], *, gray: bool, sides: str | None, copies: int | None = None) -> bytes:
    """The job's attributes with the conversions' print-color-mode and sides (and a
    new number of copies), encoded for ``job.attributes``."""
    def replaced(a: Attribute) -> bool:
        return ((gray and a.name == "print-color-mode") or (bool(sides) and a.name == "sides")
                or (copies is not None and a.name == "copies"))
    out = [a for a in attrs if not replaced(a)]
    if gray:
        out.append(Attribute("print-color-mode", Tag.KEYWORD, ["monochrome"]))
    if sides:
        out.append(Attribute("sides", Tag.KEYWORD, [sides]))
    if copies is not None:
        out.append(Attribute("copies", Tag.INTEGER, [copies]))
    return codec.encode_attributes(out)


def gray_summary(a: dict[str, Any]) -> None:
    """An analysis summary after its document was converted to grayscale."""
    a["color_impressions"] = 0
    a["undecided"] = 0
    merged: dict[tuple, int] = {}
    for n, _color, side, media, copies in a.get("kinds", ()):
        key = (side, tuple(media) if media else None, copies)
        merged[key] = merged.get(key, 0) + n
    a["kinds"] = [[n, False, s, list(m) if m else None, c] for (s, m, c), n in merged.items()]


async def convert_documents(job: Job, store: Any, run: Runner, *, gray: bool, duplex: bool,
                            formats: dict[int, str] | None = None,
                            why: str = "This queue prints in grayscale only") -> str:
    """Convert each document that needs it - to grayscale, to two-sided, to another
    format (``formats``: document number -> MIME type) - into a new spool file.
    Returns '' when done, else why not (no document of the job is changed then).
    ``run(fn, *args)`` runs the CPU-heavy conversion off the event loop; ``why`` starts
    the message of a grayscale conversion that is impossible."""
    done: list[tuple[Any, str, int, str | None, bool]] = []  # (doc, new file, size, format, gray)

    def undo() -> None:
        for _doc, name, *_ in done:
            store.discard_file(name)

    try:
        for doc in job.documents:
            a = doc.analysis or {}
            target = (formats or {}).get(doc.number)
            if "error" in a:
                if gray or target:
                    undo()
                    what = "converted" if target else "counted to convert it"
                    return (f"{why}, and the document could not be {what}." if gray else
                            f"The printer cannot print {doc.format} and the document could not be converted.")
                continue
            doc_gray = bool(gray and (a.get("color_impressions", 0) or a.get("undecided", 0)))
            doc_duplex = duplex and a.get("format") != "application/pdf"  # PDF: the sides attribute
            if not doc_gray and not doc_duplex and not target:
                continue
            name = store.new_file_name()
            dst = store.path(name)
            src = str(store.path(doc))
            try:
                if target:
                    await run(functools.partial(pdl.convert_format, gray=doc_gray), src, str(dst), target)
                elif doc_gray:
                    await run(pdl.convert_grayscale, src, str(dst))
                else:
                    await run(pdl.convert_duplex, src, str(dst), TWO_SIDED)
            except pdl.PdlError as e:
                store.discard_file(name)
                if doc_gray or target:
                    undo()
                    if target:
                        return f"The document could not be converted to {target} for this printer: {e}."
                    return f"{why}, and the document could not be converted: {e}."
                log.info("job %d document %d: printed two-sided by the sides attribute (%s)",
                         job.id, doc.number, e)
                continue
            done.append((doc, name, os.stat(dst).st_size, target, doc_gray))
    except BaseException:
        undo()
        raise
    replaced = []
    for doc, name, size, target, doc_gray in done:  # all converted: now change the job
        replaced.append(doc.path)
        doc.path, doc.size = name, size
        if target:
            doc.format = target
            if doc.analysis is not None:
                doc.analysis["format"] = target
        if doc_gray and doc.analysis is not None:
            gray_summary(doc.analysis)
            doc.analysis["converted"] = "grayscale"
    if replaced:
        job.extra.setdefault("replaced_files", []).extend(replaced)
    return ""
