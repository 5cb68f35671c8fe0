"""The release's pure parts against plain models: sessions and lockout as state
machines driven by a fake clock, and the rules (who may release, where it prints,
which changes are allowed, whether a printer is ready)."""
from __future__ import annotations

import hypothesis.strategies as st
from hypothesis import given, settings
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from spoolproxy.config import QueueSettings
from spoolproxy.ipp.model import PrinterState
from spoolproxy.release import rules
from spoolproxy.release.sessions import Locked, Lockout, SessionError, Sessions

TIMEOUT, ATTEMPTS, LOCK = 10.0, 3, 30.0
names = st.sampled_from(["ann", "bob", "card:1234", "identity:9"])
devices = st.sampled_from(["d1", "d2"])
steps = st.floats(min_value=0, max_value=25, allow_nan=False)


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class SessionsMachine(RuleBasedStateMachine):
    """Sessions: a token works at its own device until TIMEOUT passes without use."""

    def __init__(self):
        super().__init__()
        self.clock = Clock()
        self.sessions = Sessions(TIMEOUT, clock=self.clock)
        self.model: dict[str, tuple[str, str, float | None]] = {}  # token -> (user, device, last use; None: ended)

    @rule(user=names, device=devices)
    def create(self, user, device):
        token, s = self.sessions.create(user, device, "card")
        assert token not in self.model and len(token) >= 40
        self.model[token] = (user, device, self.clock.now)

    @rule(dt=steps)
    def wait(self, dt):
        self.clock.now += dt

    @precondition(lambda self: self.model)
    @rule(data=st.data(), device=devices)
    def use(self, data, device):
        token = data.draw(st.sampled_from(sorted(self.model)))
        user, home, last = self.model[token]
        try:
            s = self.sessions.get(token, device)
        except SessionError as e:
            if last is None:
                assert e.reason == "unknown"
            elif self.clock.now - last > TIMEOUT:
                assert e.reason in ("expired", "unknown")  # a sweep may have forgotten it already
                self.model[token] = (user, home, None)
            else:
                assert e.reason == "other-device" and device != home
            return
        assert last is not None and self.clock.now - last <= TIMEOUT and device == home
        assert (s.user, s.device) == (user, home)
        self.model[token] = (user, home, self.clock.now)

    @precondition(lambda self: self.model)
    @rule(data=st.data())
    def end(self, data):
        token = data.draw(st.sampled_from(sorted(self.model)))
        user, home, last = self.model[token]
        ended = self.sessions.end(token)
        assert (ended is not None) <= (last is not None)
        self.model[token] = (user, home, None)

    @rule(token=st.text(max_size=50))
    def made_up_tokens_never_work(self, token):
        if token not in self.model:
            try:
                self.sessions.get(token, "d1")
            except SessionError:
                return
            raise AssertionError("a made-up token was accepted")


class LockoutMachine(RuleBasedStateMachine):
    """Lockout: ATTEMPTS wrong secrets in a row lock a login for LOCK seconds; a right
    one resets the count; logins do not affect each other."""

    def __init__(self):
        super().__init__()
        self.clock = Clock()
        self.lockout = Lockout(ATTEMPTS, LOCK, clock=self.clock)
        self.wrong: dict[str, int] = {}
        self.until: dict[str, float] = {}

    def locked(self, login: str) -> bool:
        return self.until.get(login, 0) > self.clock.now

    @rule(dt=steps)
    def wait(self, dt):
        self.clock.now += dt

    @rule(login=names, right=st.booleans())
    def attempt(self, login, right):
        try:
            self.lockout.check(login)
        except Locked as e:
            assert self.locked(login) and 0 < e.retry_after <= LOCK
            return
        assert not self.locked(login)
        if login in self.until:  # the lock ran out: counting starts again
            del self.until[login]
            self.wrong[login] = 0
        if right:
            self.lockout.succeeded(login)
            self.wrong[login] = 0
        else:
            self.wrong[login] = self.wrong.get(login, 0) + 1
            locked_now = self.lockout.failed(login)
            assert locked_now == (self.wrong[login] >= ATTEMPTS)
            if locked_now:
                self.until[login] = self.clock.now + LOCK

    @invariant()
    def locks_agree(self):
        for login in ("ann", "bob", "card:1234", "identity:9"):
            try:
                self.lockout.check(login)
                assert not self.locked(login)
            except Locked:
                assert self.locked(login)


TestSessions = SessionsMachine.TestCase
TestLockout = LockoutMachine.TestCase
TestSessions.settings = TestLockout.settings = settings(max_examples=150, stateful_step_count=40, deadline=None)


# -- rules -------------------------------------------------------------------------------

people = st.sampled_from(["ann", "bob", "eve", "mo"])
groups = st.lists(st.sampled_from(["staff", "desk", "lab"]), max_size=2, unique=True)


@given(who=people, who_groups=groups, owner=people, mode=st.sampled_from(["owner", "manager"]),
       managers=st.lists(st.sampled_from(["mo", "@desk", "eve"]), max_size=2, unique=True),
       delegates=st.dictionaries(people, st.lists(st.sampled_from(["bob", "@lab", "eve"]), max_size=2), max_size=2))
def test_who_may_release(who, who_groups, owner, mode, managers, delegates):
    q = QueueSettings(printer="folder:x", mode="hold", release=mode, managers=managers, delegates=delegates)
    named = lambda names: who in names or any(f"@{g}" in names for g in who_groups)  # noqa: E731
    expected = named(managers) or (mode == "owner" and (who == owner or named(delegates.get(owner, []))))
    assert rules.may_release(who, who_groups, owner, q) == expected


@given(here=st.sampled_from("abc"), loads=st.dictionaries(st.sampled_from("abc"), st.integers(0, 5)),
       ready=st.dictionaries(st.sampled_from("abc"), st.booleans()), balance=st.booleans())
def test_choose_printer(here, loads, ready, balance):
    group = ("a", "b", "c")
    got = rules.choose_printer(here, group, loads, ready, balance)
    ok = [p for p in group if ready.get(p)]
    if not balance or not ok:
        assert got == here
    else:
        assert got in ok and loads.get(got, 0) == min(loads.get(p, 0) for p in ok)
        if here in ok and loads.get(here, 0) == loads.get(got, 0):
            assert got == here  # a tie stays at the printer the person stands at


@given(copies=st.integers(-2, 12), now=st.integers(1, 10))
def test_changes_only_lower_the_copies(copies, now):
    try:
        rules.check_changes(rules.Changes(copies=copies), now)
        assert 1 <= copies <= now
    except rules.ChangeRefused:
        assert not 1 <= copies <= now


reasons = st.lists(st.sampled_from(["none", "media-empty", "toner-low-warning", "media-jam-error", "offline-report",
                                    "identify-printer-requested", "cover-open", "other-report"]), min_size=1, max_size=3)


@given(state=st.sampled_from([PrinterState.IDLE, PrinterState.PROCESSING, PrinterState.STOPPED]), reasons=reasons,
       reachable=st.sampled_from([True, False, None]))
@settings(max_examples=300)
def test_readiness(state, reasons, reachable):
    r = rules.readiness("p", state, reasons, "", reachable)
    blocking = {"media-empty", "media-jam-error", "offline-report", "cover-open"}
    expected = reachable is not False and state != PrinterState.STOPPED and not blocking & set(reasons)
    assert r.ready == expected
    assert bool(r.why) == (not expected)


@given(fmt=st.sampled_from(["application/pdf", "application/postscript", "image/pwg-raster"]),
       supported=st.lists(st.sampled_from(["application/pdf", "application/postscript", "image/pwg-raster",
                                           "image/urf", "application/octet-stream"]), unique=True, max_size=3))
def test_format_for(fmt, supported):
    convertible = ("application/pdf", "application/postscript", "image/pwg-raster") \
        if fmt != "image/pwg-raster" else ()
    got = rules.format_for(fmt, tuple(supported), convertible)
    if fmt in supported or not set(supported) - {"application/octet-stream"}:
        assert got == ""
    elif set(convertible) & set(supported):
        assert got in supported and got in convertible
    else:
        assert got is None
