"""The request id: echoed from `X-Request-ID` or generated, kept for the request's handlers."""

from __future__ import annotations

import re
from uuid import uuid4

from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

HEADER = "X-Request-ID"
#: A client's request id is kept when it is 1-200 printable ASCII characters.
VALID = re.compile(r"[\x21-\x7e]{1,200}")


def request_id_of(request: Request) -> str:
    """The request's id (set by `RequestIds`; generated here if it did not run)."""
    found = request.scope.get("state", {}).get("request_id")
    return str(found) if found else str(uuid4())


class RequestIds:
    """ASGI middleware: takes the client's `X-Request-ID` (or makes one) and echoes it."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        given = Request(scope).headers.get(HEADER, "")
        request_id = given if VALID.fullmatch(given) else str(uuid4())
        scope.setdefault("state", {})["request_id"] = request_id

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                name = HEADER.lower().encode()
                headers = [(k, v) for k, v in message.get("headers", []) if k.lower() != name]
                headers.append((name, request_id.encode()))
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, send_with_id)
