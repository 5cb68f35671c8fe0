"""What the primary's sync API and the site's client agree on."""
from __future__ import annotations

from typing import Any

import msgpack

PREFIX = "/api/v1/sync"
MEDIA_TYPE = "application/msgpack"
MAX_BODY = 32 << 20  # a request body (a batch of journal entries)


def pack(value: Any) -> bytes:
    return msgpack.packb(value, use_bin_type=True)


def unpack(data: bytes) -> Any:
    return msgpack.unpackb(data, raw=False, strict_map_key=False)
