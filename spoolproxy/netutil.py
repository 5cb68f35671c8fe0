"""Small network helpers shared by the protocol servers."""
from __future__ import annotations

import trio


async def aclose_quietly(stream: trio.abc.AsyncResource, timeout: float = 1.0) -> None:
    """Close a client's stream at the end of its connection: shielded, so that a server
    being cancelled still closes it, and bounded, so that a peer that stopped reading
    cannot hold the task; whatever goes wrong in closing is of no interest any more."""
    with trio.move_on_after(timeout) as cleanup:
        cleanup.shield = True
        try:
            await stream.aclose()
        except Exception:
            pass
