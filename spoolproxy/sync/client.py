"""The site's HTTP client of the primary's sync API: msgpack bodies over httpx
(which runs on trio through anyio), the site's key as a bearer token, TLS checked
against ``sync.ca_file`` or the system's CAs."""
from __future__ import annotations

import ssl
from typing import Any

import httpx
import msgpack

from .wire import MEDIA_TYPE, PREFIX


def _why(e: BaseException) -> str:
    """The most telling message along an error's causes (a TLS certificate problem
    hides two levels under httpx's ConnectError)."""
    parts, seen = [], e
    while seen is not None and len(parts) < 4:
        text = str(seen).strip()
        if text and text not in parts:
            parts.append(text)
        seen = seen.__cause__ or seen.__context__
    return f"{type(e).__name__}: {parts[-1] if parts else ''}".rstrip(": ")


class PrimaryUnreachable(Exception):
    """No answer from the primary (connection, timeout, 5xx): the link is down."""


class SyncRefused(Exception):
    """The primary answered and said no (a wrong key, a bad request)."""


class Client:
    def __init__(self, settings: Any, key: str, *, transport: httpx.AsyncBaseTransport | None = None):
        verify: Any = ssl.create_default_context(cafile=str(settings.ca_file)) if settings.ca_file else True
        self.http = httpx.AsyncClient(base_url=settings.primary + PREFIX, timeout=settings.timeout,
                                      headers={"Authorization": f"Bearer {key}", "Accept": MEDIA_TYPE},
                                      verify=verify, transport=transport)

    async def aclose(self) -> None:
        await self.http.aclose()

    async def call(self, method: str, path: str, body: Any = None, **params: Any) -> Any:
        try:
            r = await self.http.request(
                method, path, params=params or None,
                content=None if body is None else msgpack.packb(body, use_bin_type=True),
                headers={"Content-Type": MEDIA_TYPE} if body is not None else None)
        except httpx.HTTPError as e:
            raise PrimaryUnreachable(_why(e)) from None
        if r.status_code >= 500:
            raise PrimaryUnreachable(f"the primary answered {r.status_code}")
        if r.status_code != 200:
            detail = r.text[:300]
            try:
                detail = r.json().get("detail", detail)
            except ValueError:
                pass
            raise SyncRefused(f"the primary refused {method} {path}: {r.status_code} {detail}")
        try:
            return msgpack.unpackb(r.content, raw=False, strict_map_key=False)
        except (ValueError, msgpack.ExtraData, msgpack.FormatError, msgpack.StackError) as e:
            raise PrimaryUnreachable(f"the primary's answer is not msgpack: {e}") from None

    async def snapshot(self) -> dict[str, Any]:
        return await self.call("GET", "/snapshot")

    async def changes(self, after: int, limit: int) -> dict[str, Any]:
        return await self.call("GET", "/changes", after=after, limit=limit)

    async def journal(self, entries: list[dict[str, Any]], *, require_funds: bool = False) -> list[dict[str, Any]]:
        answer = await self.call("POST", "/journal", {"entries": entries, "require_funds": require_funds})
        return answer["answers"]

    async def first_print(self, user: str) -> dict[str, Any]:
        return await self.call("POST", "/user", {"user": user})

    async def login(self, user: str, password: str) -> dict[str, Any]:
        return await self.call("POST", "/login", {"user": user, "password": password})
