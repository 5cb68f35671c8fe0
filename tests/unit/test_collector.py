"""spoolproxy.collector: the garbage collector as a long-running node sets it."""
from __future__ import annotations

import gc

from spoolproxy import collector
from spoolproxy.app import run_node
from test_ipp_server import settings_for


def test_settled_freezes_what_is_alive_and_thaws_it_after():
    gc.unfreeze()
    alive = [object() for _ in range(10)]  # kept alive: frozen with the rest
    with collector.settled():
        assert gc.get_freeze_count() >= len(alive)
    assert gc.get_freeze_count() == 0


async def test_a_started_node_has_frozen_its_loaded_state(tmp_path, nursery):
    gc.unfreeze()
    try:
        await nursery.start(run_node, settings_for(tmp_path))
        assert gc.get_freeze_count() > 0
    finally:
        nursery.cancel_scope.cancel()
