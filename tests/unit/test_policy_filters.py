"""The filters' pure decision: each rule, its scope, and its message."""
from __future__ import annotations

import pytest
from pydantic import ValidationError

from spoolproxy.config import ConfigError, from_mapping
from spoolproxy.policy.filters import Facts, FilterSettings, duplicate_message, evaluate

A4 = (21000, 29700)
LETTER = (21590, 27940)


def facts(**kw) -> Facts:
    base = dict(user="ann", groups=("students",), restricted=True, names=("report.pdf",), size=1000,
                copies=1, pages=4, color_pages=1, media=(A4,))
    base.update(kw)
    return Facts(**base)


def test_no_filters_let_everything_through():
    d = evaluate(facts(pages=10_000, copies=99, size=1 << 40), FilterSettings())
    assert not d.denied and not d.gray and not d.duplex


def test_restricted_scope_leaves_unrestricted_users_alone():
    s = FilterSettings(deny_color=True, max_pages=1)
    assert evaluate(facts(), s).denied
    assert not evaluate(facts(restricted=False), s).denied
    assert evaluate(facts(restricted=False), FilterSettings(deny_color=True, scope="all")).denied


def test_group_access_applies_to_everyone():
    s = FilterSettings(allowed_groups=("staff",))
    d = evaluate(facts(restricted=False), s, "lab")
    assert d.denied and "staff" in d.deny and "lab" in d.deny
    assert not evaluate(facts(groups=("staff",)), s).denied


def test_deny_colour_and_colour_groups():
    d = evaluate(facts(), FilterSettings(deny_color=True))
    assert d.denied and "1 colour page" in d.deny
    assert not evaluate(facts(color_pages=0), FilterSettings(deny_color=True)).denied
    by_group = FilterSettings(deny_color_groups=("students",))
    assert evaluate(facts(), by_group).denied
    assert not evaluate(facts(groups=("staff",)), by_group).denied


def test_force_grayscale_wins_over_deny_colour_and_force_duplex():
    d = evaluate(facts(), FilterSettings(deny_color=True, force_grayscale=True, force_duplex=True))
    assert not d.denied and d.gray and d.duplex
    assert d.applied == ["converted to grayscale", "printed two-sided"]


@pytest.mark.parametrize("setting,fact,ok,bad", [
    ("max_pages", "pages", 5, 6),
    ("max_copies", "copies", 5, 6),
    ("max_size", "size", 5, 6),
])
def test_limits(setting, fact, ok, bad):
    s = FilterSettings(**{setting: 5})
    assert not evaluate(facts(**{fact: ok}), s).denied
    d = evaluate(facts(**{fact: bad}), s)
    assert d.denied and "6" in d.deny and "5" in d.deny


def test_uncounted_job_is_not_refused_for_pages():
    assert not evaluate(facts(counted=False, pages=0), FilterSettings(max_pages=1)).denied


def test_allowed_media_matches_either_orientation_within_a_millimetre():
    s = FilterSettings(allowed_media=("a4",))
    assert not evaluate(facts(media=((29700, 21000),)), s).denied
    assert not evaluate(facts(media=((21050, 29650),)), s).denied  # PDF points round off
    d = evaluate(facts(media=(A4, LETTER)), s)
    assert d.denied and "215.9x279.4 mm" in d.deny
    assert not evaluate(facts(media=(LETTER,)), FilterSettings(allowed_media=("na_letter_8.5x11in",))).denied


def test_document_name_patterns_are_case_insensitive_globs():
    s = FilterSettings(deny_names=("*.EXE", "*secret*"))
    assert evaluate(facts(names=("setup.exe",)), s).denied
    assert evaluate(facts(names=("job", "Top-Secret plans")), s).denied
    assert not evaluate(facts(names=("notes.txt",)), s).denied


def test_bad_settings_name_the_key():
    with pytest.raises(ValidationError):
        FilterSettings(allowed_media=("a77",))
    with pytest.raises(ConfigError) as e:
        from_mapping({"queues": {"q": {"printer": "folder:x", "filters": {"max_pages": -1}}}}, "t.toml")
    assert "queues.q.filters.max_pages" in str(e.value)
    with pytest.raises(ConfigError) as e:
        from_mapping({"queues": {"q": {"printer": "folder:x", "filters": {"deny_colour": True}}}}, "t.toml")
    assert "queues.q.filters.deny_colour: unknown key" in str(e.value)


def test_duplicate_message_says_which_job():
    msg = duplicate_message(41, 12.3, FilterSettings(duplicate_window=60), "lab")
    assert "job 41" in msg and "12 s" in msg and "60 s" in msg and "lab" in msg
