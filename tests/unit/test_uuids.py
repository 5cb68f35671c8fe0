"""spoolproxy.uuids: time-ordered identifiers (UUID version 7, RFC 9562)."""
from __future__ import annotations

import time
import uuid

from hypothesis import given
from hypothesis import strategies as st

from spoolproxy.uuids import new_id, uuid7

NS = st.integers(0, (1 << 48) * 1_000_000 - 1)  # the 48-bit millisecond clock's range


@given(NS)
def test_the_layout_is_version_7(now_ns):
    u = uuid7(now_ns)
    assert u.version == 7 and u.variant == uuid.RFC_4122
    assert u.int >> 80 == now_ns // 1_000_000  # the first 48 bits: Unix time in ms
    assert str(u)[14] == "7"


@given(NS, NS)
def test_ids_sort_by_the_millisecond_they_were_made(a, b):
    if a // 1_000_000 < b // 1_000_000:
        assert uuid7(a).hex < uuid7(b).hex < uuid7(b).hex[:12] + "g"  # (within a ms: any order)


def test_ids_made_now_are_unique_and_carry_the_time():
    before = time.time_ns() // 1_000_000
    ids = [uuid7() for _ in range(20_000)]
    after = time.time_ns() // 1_000_000
    assert len(set(ids)) == len(ids)
    assert all(before <= u.int >> 80 <= after for u in ids)
    assert [u.int >> 80 for u in ids] == sorted(u.int >> 80 for u in ids)


def test_new_id_names_its_kind():
    kind, _, rest = new_id("top-up").partition("/")
    assert kind == "top-up" and uuid.UUID(hex=rest).version == 7
