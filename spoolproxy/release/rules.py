"""The rules of releasing a held job, free of I/O: which jobs wait for release, who
may see and release them, at which printers, whether a printer is ready, what a
printer can print, and which changes at release are allowed (cheaper ones only).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable, Mapping

from ..config import QueueSettings
from ..ipp.model import JobState, PrinterState

HOLD_REASON = "job-hold-until-specified"  # a job waiting for its release at a device
# printer-state-reasons that say nothing is wrong (RFC 8011 §5.4.12: a keyword without
# a -report or -warning suffix is an error, except these)
BENIGN_REASONS = frozenset({"none", "identify-printer-requested", "printer-restarted", "printer-ready-to-print",
                            "cups-waiting-for-job-completed", "hold-new-jobs"})
BLOCKING_REPORTS = frozenset({"offline-report", "shutdown-report"})


def waits_for_release(job: Any, queues: Mapping[str, QueueSettings]) -> bool:
    """A job held on a hold or findme queue until someone releases it at a device (not
    one held for an administrator, e.g. an uncountable document), once the document
    engine has counted it (what it costs is known)."""
    q = queues.get(job.queue)
    return (q is not None and q.holds and job.state == JobState.PENDING_HELD
            and job.closed and job.analyzed and HOLD_REASON in job.state_reasons)


def release_printers(queue: str, queues: Mapping[str, QueueSettings]) -> tuple[str, ...]:
    """The queues whose printers may print a job of ``queue``: its own printer for
    Secure Print, the group's for Find-Me."""
    q = queues.get(queue)
    if q is None:
        return ()
    return tuple(q.printers) if q.mode == "findme" else (queue,)


def held_queues_at(printer: str, queues: Mapping[str, QueueSettings]) -> tuple[str, ...]:
    """The hold and findme queues whose jobs can be released at ``printer``."""
    return tuple(name for name, q in queues.items()
                 if q.holds and printer in release_printers(name, queues))


def may_release(who: str, groups: Iterable[str], owner: str, q: QueueSettings) -> bool:
    return q.may_release_for(who, tuple(groups), owner)


@dataclass(frozen=True)
class Readiness:
    ready: bool
    why: str = ""  # for people: why the printer cannot take a job now


def readiness(printer: str, state: int, reasons: list[str], message: str, reachable: bool | None) -> Readiness:
    """Whether the printer of queue ``printer`` can take a job now, from its status as
    the upstream poller knows it (the printer's own IPP state; SNMP later)."""
    detail = message or ", ".join(r for r in reasons if r != "none")
    if reachable is False:
        return Readiness(False, f"The printer {printer} is not answering{': ' + detail if detail else ''}.")
    if state == PrinterState.STOPPED:
        return Readiness(False, f"The printer {printer} is stopped{': ' + detail if detail else ''}.")
    bad = [r for r in reasons if r in BLOCKING_REPORTS
           or (r not in BENIGN_REASONS and not r.endswith(("-report", "-warning")))]
    if bad:
        return Readiness(False, f"The printer {printer} has a problem: {', '.join(bad)}"
                                f"{f' ({message})' if message else ''}.")
    return Readiness(True)


def prints_color(q: QueueSettings, attributes: Any) -> bool:
    """Configured ``color``, else the printer's IPP color-supported, else yes (a printer
    that says nothing is not made to print gray)."""
    if q.color is not None:
        return q.color
    if attributes is not None:
        v = attributes.value("color-supported")
        if isinstance(v, bool):
            return v
    return True


def formats_supported(attributes: Any) -> tuple[str, ...]:
    """The printer's document-format-supported (lower case); () when it does not say."""
    if attributes is None:
        return ()
    attr = attributes.get("document-format-supported")
    if attr is None:
        return ()
    return tuple(str(v).lower() for v in attr.values if isinstance(v, str))


# what a printer is sent when it cannot take a document's own format: best first
PREFERRED_TARGETS = ("application/pdf", "application/postscript", "image/pwg-raster", "application/vnd.hp-pclxl",
                     "application/vnd.hp-pcl", "image/urf")
MONO_TARGETS = frozenset({"application/vnd.hp-pcl"})  # what the engine makes of them prints gray


def format_for(fmt: str, supported: tuple[str, ...], convertible: Iterable[str]) -> str | None:
    """'' when the printer takes ``fmt`` as it is, the format to convert to, or None
    when the printer can print none of what the document can become."""
    fmt = (fmt or "").lower()
    # application/octet-stream means "I detect which of my formats it is", not "anything",
    # unless it is all the printer says
    known = [f for f in supported if f != "application/octet-stream"]
    if not known or fmt in known:
        return ""
    targets = set(convertible)
    for target in PREFERRED_TARGETS:
        if target in supported and target in targets:
            return target
    return None


@dataclass(frozen=True)
class Changes:
    """What the person releasing may change: only towards cheaper printing."""

    copies: int | None = None
    grayscale: bool = False
    duplex: bool = False


class ChangeRefused(ValueError):
    pass


def check_changes(ch: Changes, copies_now: int) -> None:
    if ch.copies is not None and not 1 <= ch.copies <= copies_now:
        raise ChangeRefused(f"copies can only be lowered at release: 1 to {copies_now}, not {ch.copies}")


def choose_printer(here: str, group: tuple[str, ...], load: Mapping[str, int], ready: Mapping[str, bool],
                   balance: bool) -> str:
    """Where a release at ``here`` prints: ``here``, or with ``balance`` the ready printer
    of the group with the fewest jobs waiting (``here`` when it ties)."""
    if not balance:
        return here
    candidates = [p for p in group if ready.get(p)]
    if not candidates:
        return here
    return min(candidates, key=lambda p: (load.get(p, 0), p != here, group.index(p)))
