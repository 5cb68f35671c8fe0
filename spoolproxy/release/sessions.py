"""Device sessions and login lockout, in memory and free of I/O (the clock is given).

A session is a random token bound to the device it was made at and ending after
``timeout`` seconds without use; a token presented at another device, or after
that, is refused. The table keeps only a hash of each token, so a memory dump
does not hand out sessions. Sessions end with the node: a restart logs everyone
out, which is what a person at a device expects anyway.

Lockout counts wrong secrets per login (the user, once a card, identity number or
username names one): after ``attempts`` in a row that login is locked for
``seconds``, whichever device the guesses come from; a right secret resets the count.
"""
from __future__ import annotations

import hashlib
import secrets
import time
from dataclasses import dataclass
from typing import Callable

TOKEN_BYTES = 32


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode("utf-8", "surrogateescape")).digest()


@dataclass
class Session:
    user: str
    device: str
    method: str  # how the user logged in: card, card+pin, identity+pin, password
    created: float
    last_used: float
    csrf: str = ""  # what the release page's forms carry back (a cross-site form cannot know it)


class SessionError(Exception):
    """No valid session: ``reason`` is "missing", "unknown", "expired" or "other-device"."""

    def __init__(self, reason: str, message: str):
        super().__init__(message)
        self.reason = reason


class Sessions:
    def __init__(self, timeout: float, *, clock: Callable[[], float] = time.monotonic):
        self.timeout = timeout
        self.clock = clock
        self._by_digest: dict[bytes, Session] = {}

    def __len__(self) -> int:
        return len(self._by_digest)

    def create(self, user: str, device: str, method: str) -> tuple[str, Session]:
        """A new session; the token is returned once and never stored."""
        self._sweep()
        token = secrets.token_urlsafe(TOKEN_BYTES)
        now = self.clock()
        s = Session(user, device, method, now, now, secrets.token_urlsafe(16))
        self._by_digest[_digest(token)] = s
        return token, s

    def get(self, token: str | None, device: str) -> Session:
        """The live session of ``token`` at ``device`` (and mark it used), or SessionError."""
        if not token:
            raise SessionError("missing", "log in first: no session token")
        d = _digest(token)
        s = self._by_digest.get(d)
        if s is None:
            raise SessionError("unknown", "the session is not valid (logged out, or the node restarted)")
        now = self.clock()
        if now - s.last_used > self.timeout:
            del self._by_digest[d]
            raise SessionError("expired", f"the session expired after {self.timeout:g} s without use")
        if s.device != device:
            raise SessionError("other-device", "this session belongs to another device")
        s.last_used = now
        return s

    def end(self, token: str | None) -> Session | None:
        return self._by_digest.pop(_digest(token), None) if token else None

    def _sweep(self) -> None:
        """Forget expired sessions (amortised: at most once per timeout)."""
        now = self.clock()
        if now - getattr(self, "_swept", -1e18) < self.timeout:
            return
        self._swept = now
        self._by_digest = {d: s for d, s in self._by_digest.items() if now - s.last_used <= self.timeout}


class Locked(Exception):
    def __init__(self, retry_after: float):
        super().__init__(f"too many wrong attempts: try again in {max(1, round(retry_after))} s")
        self.retry_after = retry_after


class Lockout:
    def __init__(self, attempts: int, seconds: float, *, clock: Callable[[], float] = time.monotonic):
        self.attempts = attempts
        self.seconds = seconds
        self.clock = clock
        self._failures: dict[str, tuple[int, float]] = {}  # login -> (wrong in a row, locked until)

    def check(self, login: str) -> None:
        """Raise Locked while ``login`` is locked."""
        count, until = self._failures.get(login, (0, 0.0))
        now = self.clock()
        if until > now:  # (clamped: the float sum until - now can come out a hair over)
            raise Locked(min(until - now, self.seconds))
        if until and count >= self.attempts:  # the lock ran out: a fresh count
            del self._failures[login]

    def failed(self, login: str) -> bool:
        """Count a wrong secret; True when this one locked the login."""
        count, until = self._failures.get(login, (0, 0.0))
        count += 1
        locked = count >= self.attempts
        self._failures[login] = (count, self.clock() + self.seconds if locked else until)
        if len(self._failures) > 100_000:  # bounded however many names are tried
            now = self.clock()
            self._failures = {k: v for k, v in self._failures.items() if v[1] > now}
        return locked

    def succeeded(self, login: str) -> None:
        self._failures.pop(login, None)
