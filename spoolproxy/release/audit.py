"""The audit log: every login (and failed or locked one), release, cancel, expiry and
card registration, durable in the "audit" table and as a line in the log.

Keys are the event's time in nanoseconds (8 bytes, big-endian, made unique within
the process), so the log reads back in time order either way. An entry is written
in the same commit as the change it records where there is one (a release saves
the jobs and their audit entries together): the log never claims what did not
happen, and nothing happens unlogged.
"""
from __future__ import annotations

import logging
import time
from typing import Any, Callable, Iterator

from ..db import Database, WriteTxn, key_u64, u64_key

AUDIT = "audit"
SCHEMA_VERSION = 1
EVENTS = ("login", "login-failed", "login-locked", "logout", "card-registered", "release", "release-refused",
          "cancel", "expire")

log = logging.getLogger("spoolproxy.audit")


class Audit:
    def __init__(self, db: Database, *, clock: Callable[[], int] = time.time_ns):
        self.db = db
        self.clock = clock
        self._last = 0

    def entry(self, event: str, *, user: str = "", device: str = "", job: int = 0, detail: str = "",
              **extra: Any) -> Callable[[WriteTxn], None]:
        """The write of one entry (run it in a transaction: ``record`` or a save's extras),
        logged now."""
        if event not in EVENTS:
            raise ValueError(f"unknown audit event {event!r}")
        t = max(self.clock(), self._last + 1)
        self._last = t
        rec = {"v": SCHEMA_VERSION, "t": t / 1e9, "event": event, "user": user, "device": device,
               "job": job, "detail": detail[:500], **extra}
        log.info("%s user=%r device=%r%s%s", event, user, device, f" job={job}" if job else "",
                 f": {detail}" if detail else "")
        key = u64_key(t)

        def fn(txn: WriteTxn) -> None:
            txn.put(AUDIT, key, rec)
        return fn

    async def record(self, event: str, **fields: Any) -> None:
        await self.db.transact(self.entry(event, **fields), nested=False)

    async def record_all(self, entries: list[Callable[[WriteTxn], None]]) -> None:
        """Several entries in one commit."""
        def fn(txn: WriteTxn) -> None:
            for e in entries:
                e(txn)
        await self.db.transact(fn, nested=False)

    def entries(self, *, limit: int = 100, event: str | None = None, user: str | None = None,
                job: int | None = None, before: float | None = None) -> list[dict[str, Any]]:
        """Newest first, filtered; ``before`` (unix time) pages back."""
        out = []
        for key, rec in self._scan():
            if before is not None and key_u64(key) / 1e9 >= before:
                continue
            if (event and rec.get("event") != event) or (user and rec.get("user") != user) \
                    or (job and rec.get("job") != job):
                continue
            out.append({k: v for k, v in rec.items() if k != "v"})
            if len(out) >= limit:
                break
        return out

    def _scan(self) -> Iterator[tuple[bytes, dict[str, Any]]]:
        return self.db.scan_reverse(AUDIT)
