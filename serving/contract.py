"""The HTTP contract, enforced before BentoML sees a request.

BentoML parses any media type it has a serde for (multipart, pickle, text),
ignores unknown top-level fields, reads a body of any size in full before a
limit applies, and logs every validation error at ERROR with a traceback. This
ASGI middleware sits in front of it, for the API routes:

- a body must be ``application/json`` (else 415); what BentoML's form parser
  would choke on never reaches it;
- ``Content-Length`` above the limit is refused before a byte is read, and a
  chunked body is counted as it arrives (413);
- a body that stops arriving is dropped after ``body_timeout`` seconds (408);
- the body is validated against the route's strict model: unknown fields
  anywhere, wrong types, out-of-range values give 400 naming the field's path.

A client error is logged once, at INFO, on one line. The checked body is then
handed to BentoML unchanged.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable, Mapping, MutableMapping
from typing import Any

from pydantic import BaseModel, ValidationError

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

JSON = "application/json"
OPENAPI_PATH = "/docs.json"

log = logging.getLogger("serving.contract")


class ClientError(Exception):
    def __init__(self, status: int, message: str, detail: list[dict[str, Any]] | None = None):
        super().__init__(message)
        self.status = status
        self.detail = detail


class EmptyBody(BaseModel):
    """Routes without input accept nothing but ``{}`` (or no body)."""

    model_config = {"extra": "forbid"}


def validation_detail(err: ValidationError) -> tuple[str, list[dict[str, Any]]]:
    """A one-line summary and the per-field errors, each with its path (``flights.0.origin``)."""
    detail = [
        {"loc": ".".join(str(part) for part in e["loc"]), "msg": e["msg"], "type": e["type"]}
        for e in err.errors(include_url=False, include_context=False, include_input=False)
    ]
    first = detail[0] if detail else {"loc": "", "msg": "invalid"}
    more = f" (and {len(detail) - 1} more)" if len(detail) > 1 else ""
    where = f"{first['loc']}: " if first["loc"] else ""
    return f"invalid request: {where}{first['msg']}{more}", detail


class ContractMiddleware:
    """Media type, size, read time and schema of API requests, checked up front."""

    def __init__(
        self,
        app: ASGIApp,
        routes: Mapping[str, type[BaseModel]],
        max_body_bytes: int,
        body_timeout: float,
    ) -> None:
        self.app = app
        self.routes = dict(routes)
        self.max_body_bytes = max_body_bytes
        self.body_timeout = body_timeout

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope.get("path") == OPENAPI_PATH:
            await self._documented(scope, receive, send)
            return
        model = self.routes.get(scope.get("path", "")) if scope["type"] == "http" else None
        if model is None or scope.get("method") != "POST":
            await self.app(scope, receive, send)
            return
        try:
            body = await self._checked_body(scope, receive, model)
        except ClientError as err:
            log.info("client error %d %s %s: %s", err.status, scope["method"], scope["path"], err)
            await _reply(send, err.status, {"error": str(err), "detail": err.detail or []})
            return
        await self.app(scope, _replay(body, receive), send)

    async def _checked_body(self, scope: Scope, receive: Receive, model: type[BaseModel]) -> bytes:
        headers = _headers(scope)
        media = headers.get("content-type", "").split(";")[0].strip().lower()
        declared = headers.get("content-length")
        if declared is not None:
            if not declared.isdigit():
                raise ClientError(400, f"invalid Content-Length {declared[:40]!r}")
            if int(declared) > self.max_body_bytes:
                raise ClientError(413, self._too_large())
        if media and media != JSON:
            raise ClientError(415, f"unsupported media type {media[:80]!r}: send {JSON}")
        body = await self._read(receive)
        if not media and (body or model is not EmptyBody):
            raise ClientError(415, f"missing Content-Type: send {JSON}")
        if model is EmptyBody and not body.strip():
            return body
        try:
            model.model_validate_json(body)
        except ValidationError as err:
            message, detail = validation_detail(err)
            raise ClientError(400, message, detail) from None
        return body

    async def _read(self, receive: Receive) -> bytes:
        chunks: list[bytes] = []
        size = 0
        more = True
        while more:
            try:
                message = await asyncio.wait_for(receive(), timeout=self.body_timeout)
            except TimeoutError:
                raise ClientError(
                    408, f"request body not received within {self.body_timeout:g}s"
                ) from None
            if message["type"] == "http.disconnect":
                raise ClientError(400, "client disconnected before the body was complete")
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body_bytes:
                raise ClientError(413, self._too_large())
            chunks.append(chunk)
            more = message.get("more_body", False)
        return b"".join(chunks)

    async def _documented(self, scope: Scope, receive: Receive, send: Send) -> None:
        """BentoML's OpenAPI document, with the error responses added to each API route."""
        start: Message = {}
        chunks: list[bytes] = []

        async def capture(message: Message) -> None:
            if message["type"] == "http.response.start":
                start.update(message)
            elif message["type"] == "http.response.body":
                chunks.append(message.get("body", b""))

        await self.app(scope, receive, capture)
        body = b"".join(chunks)
        if start.get("status") == 200:
            spec = document_errors(json.loads(body), list(self.routes))
            body = json.dumps(spec).encode()
        headers = [(k, v) for k, v in start.get("headers", []) if k.lower() != b"content-length"]
        headers.append((b"content-length", str(len(body)).encode()))
        await send({**start, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    def _too_large(self) -> str:
        return f"request body larger than {self.max_body_bytes:,} bytes"


def _headers(scope: Scope) -> dict[str, str]:
    return {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", ())}


def _replay(body: bytes, receive: Receive) -> Receive:
    """The body already read, once; then the real channel (for disconnects)."""
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


async def _reply(send: Send, status: int, payload: dict[str, Any]) -> None:
    body = json.dumps(payload).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", JSON.encode()),
                (b"content-length", str(len(body)).encode()),
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


# What the OpenAPI schema says about the errors the service answers with.
ERROR_SCHEMA = {
    "type": "object",
    "properties": {"error": {"type": "string"}, "detail": {"type": "array"}},
    "required": ["error"],
}
ERROR_RESPONSES = {
    "400": "invalid request: malformed JSON, unknown, missing or mistyped fields, "
    "unknown airports or carriers, timestamps without an offset or out of range",
    "401": "missing or wrong API key (when FEASTLINE_API_KEY is set)",
    "408": "the request body did not arrive in time",
    "413": "request body larger than FEASTLINE_MAX_BODY_BYTES",
    "415": "the body is not application/json",
    "503": "online features unavailable (the online store cannot be reached); retry",
}


def document_errors(spec: dict[str, Any], routes: list[str]) -> dict[str, Any]:
    """Add the error responses above to each API route of an OpenAPI ``spec``.

    Also writes pydantic's JSON Schema bounds the OpenAPI 3.0 way: BentoML
    declares ``openapi: 3.0.x`` but passes ``exclusiveMinimum: 0`` through, a
    number where 3.0 wants ``minimum: 0, exclusiveMinimum: true``; tools that
    read the document (schemathesis among them) reject the number.
    """
    if str(spec.get("openapi", "")).startswith("3.0"):
        _openapi30_bounds(spec)
    for route in routes:
        for operation in spec.get("paths", {}).get(route, {}).values():
            if not isinstance(operation, dict):
                continue
            responses = operation.setdefault("responses", {})
            for status, description in ERROR_RESPONSES.items():
                responses[status] = {
                    "description": description,
                    "content": {JSON: {"schema": ERROR_SCHEMA}},
                }
    return spec


def _openapi30_bounds(node: Any) -> None:
    if isinstance(node, dict):
        for bound, plain in (("exclusiveMinimum", "minimum"), ("exclusiveMaximum", "maximum")):
            value = node.get(bound)
            if isinstance(value, int | float) and not isinstance(value, bool):
                node[plain], node[bound] = value, True
        for child in node.values():
            _openapi30_bounds(child)
    elif isinstance(node, list):
        for child in node:
            _openapi30_bounds(child)
