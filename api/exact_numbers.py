"""JSON numbers with a fraction or an exponent reach validation as their exact digits.

Starlette parses a request body with `json.loads`, which turns `12345678901234567.25` into the
nearest float (`12345678901234568.0`) before any field type sees it. Quantities and money must be
exact, so this ASGI middleware rewrites such literals in a JSON body into strings of the same
digits; the decimal fields take strings and numbers alike, and compare them by value. Integers
and everything else stay as they were; a body that is not valid JSON is passed on untouched, for
validation to refuse.
"""

from __future__ import annotations

import json
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

#: Methods whose JSON bodies carry commands.
WITH_BODY = frozenset({"POST", "PUT", "PATCH"})


def exact(body: bytes) -> bytes | None:
    """The body with every non-integer JSON number as a string of its digits (None: the body
    is not JSON, or has no such number)."""
    found: list[str] = []

    def keep(text: str) -> str:
        found.append(text)
        return text

    try:
        document: Any = json.loads(body, parse_float=keep)
    except (ValueError, RecursionError):
        return None
    if not found:
        return None
    return json.dumps(document, separators=(",", ":")).encode()  # ASCII: lone surrogates too


class ExactNumbers:
    """ASGI middleware: JSON request bodies with exact decimal literals (see module doc)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in WITH_BODY or not _json(scope):
            await self.app(scope, receive, send)
            return
        chunks: list[bytes] = []
        while True:
            message = await receive()
            if message["type"] != "http.request":  # the client went away
                await self.app(scope, _replay([message], receive), send)
                return
            chunks.append(message.get("body", b""))
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        rewritten = exact(body)
        if rewritten is not None:
            body = rewritten
            scope = dict(scope)
            scope["headers"] = [
                (k, str(len(body)).encode() if k.lower() == b"content-length" else v)
                for k, v in scope["headers"]
            ]
        await self.app(scope, _replay([{"type": "http.request", "body": body}], receive), send)


def _json(scope: Scope) -> bool:
    for key, value in scope["headers"]:
        if key.lower() == b"content-type":
            kind: bytes = value.split(b";", 1)[0].strip().lower()
            return kind == b"application/json" or kind.endswith(b"+json")
    return False


def _replay(messages: list[Message], then: Receive) -> Receive:
    """A `receive` that hands out these messages, then the connection's own (its disconnect)."""
    pending = list(messages)

    async def receive() -> Message:
        if pending:
            return pending.pop(0)
        return await then()

    return receive
