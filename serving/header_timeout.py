"""A deadline for a connection's request headers (uvicorn has none).

uvicorn times out idle keep-alive connections, but a client that opens a
connection and sends its headers a byte at a time holds a worker's socket
forever (slowloris). This arms a timer when a connection is made; if no
request has reached the end of its headers when it fires, the server answers
``408`` and closes the connection. The body has its own deadline in
:mod:`serving.contract`.

uvicorn's protocol classes are patched in place, so this is the one module that
touches uvicorn's internals (``connection_made``, ``connection_lost`` and the
``cycle`` a protocol starts once a request's headers are complete).
"""

from __future__ import annotations

import logging
from typing import Any

log = logging.getLogger("serving.contract")

_BODY_408 = b'{"error": "request headers not received in time"}'
RESPONSE_408 = (
    b"HTTP/1.1 408 Request Timeout\r\ncontent-type: application/json\r\n"
    + f"content-length: {len(_BODY_408)}\r\nconnection: close\r\n\r\n".encode()
    + _BODY_408
)
_TIMER = "_feastline_header_timer"


def install(seconds: float) -> None:
    """Give every new connection ``seconds`` to deliver its request headers."""
    from uvicorn.protocols.http.h11_impl import H11Protocol
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

    protocols: tuple[Any, ...] = (H11Protocol, HttpToolsProtocol)
    for protocol in protocols:
        if getattr(protocol, "_feastline_header_seconds", None) is None:
            _patch(protocol)
        protocol._feastline_header_seconds = seconds


def _patch(protocol: Any) -> None:
    made, lost = protocol.connection_made, protocol.connection_lost

    def connection_made(self: Any, transport: Any) -> None:
        made(self, transport)
        setattr(self, _TIMER, self.loop.call_later(self._feastline_header_seconds, _expire, self))

    def connection_lost(self: Any, exc: Exception | None) -> None:
        timer = getattr(self, _TIMER, None)
        if timer is not None:
            timer.cancel()
        lost(self, exc)

    protocol.connection_made = connection_made
    protocol.connection_lost = connection_lost


def _expire(protocol: Any) -> None:
    """No request got past its headers on this connection in time: 408 and close."""
    if getattr(protocol, "cycle", None) is not None or protocol.transport.is_closing():
        return
    log.info("client error 408: request headers not received in time")
    protocol.transport.write(RESPONSE_408)
    protocol.transport.close()
