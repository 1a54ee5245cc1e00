"""Optional API key: every endpoint but the health probes needs it when it is set."""

from __future__ import annotations

import hmac
import json
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

OPEN_PATHS = frozenset({"/livez", "/readyz", "/healthz"})


class ApiKeyMiddleware:
    """Accepts ``X-API-Key: <key>`` or ``Authorization: Bearer <key>``; else 401."""

    def __init__(self, app: ASGIApp, key: str) -> None:
        if not key:
            raise ValueError("an empty API key would accept every request")
        self.app = app
        self._key = key.encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in OPEN_PATHS or self._allowed(scope):
            await self.app(scope, receive, send)
            return
        body = json.dumps({"error": "missing or wrong API key (X-API-Key header)"}).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 401,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"www-authenticate", b"Bearer"),
                    (b"content-length", str(len(body)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})

    def _allowed(self, scope: Scope) -> bool:
        for name, value in scope.get("headers", ()):
            if name == b"x-api-key":
                return hmac.compare_digest(value, self._key)
            if name == b"authorization" and value.lower().startswith(b"bearer "):
                return hmac.compare_digest(value[7:].strip(), self._key)
        return False
