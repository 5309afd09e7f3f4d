"""One JSON line per request (tenant, request id, actor, method, route, status, duration) on the
`ledger.http` logger, and the request's HTTP metrics."""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime
from typing import Any

import orjson
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.auth import Principal
from api.metrics import UNMATCHED, Metrics

LOGGER = "ledger.http"
#: Where FastAPI keeps the matched route with its router's prefix.
EFFECTIVE_ROUTE = "effective_route_context"
log = logging.getLogger(LOGGER)

#: Attributes every log record has; anything else on a record is a field of the line.
_STANDARD = frozenset(logging.makeLogRecord({}).__dict__) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    """A log record as one JSON object: time (UTC), level, logger, message and its fields."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        line.update((k, v) for k, v in record.__dict__.items() if k not in _STANDARD)
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return orjson.dumps(line, default=str).decode()


def route_of(scope: Scope) -> str:
    """The template of the route that answered (`/v1/products/{sku}`), never the raw path.

    FastAPI keeps an included router's route unprefixed in `scope["route"]` and the prefixed
    one in its effective route context; older versions flatten included routes instead.
    """
    framework = scope.get("fastapi")
    effective = framework.get(EFFECTIVE_ROUTE) if isinstance(framework, dict) else None
    for candidate in (effective, scope.get("route")):
        template = getattr(candidate, "path_format", None)
        if isinstance(template, str) and template:
            return template
    return UNMATCHED


def request_fields(scope: Scope, route: str, status: int, seconds: float) -> dict[str, Any]:
    """What the log line of a request says (a caller only once it has authenticated)."""
    state: dict[str, Any] = scope.get("state", {})
    found = state.get("principal")
    caller = found if isinstance(found, Principal) else None
    return {
        "tenant": str(caller.tenant_id) if caller else None,
        "request_id": state.get("request_id"),
        "actor": {"kind": caller.kind, "id": caller.subject} if caller else None,
        "method": scope.get("method"),
        "route": route,
        "status": status,
        "duration_ms": round(seconds * 1000, 3),
    }


class RequestTelemetry:
    """ASGI middleware: times each HTTP request, counts it by route template and status, and
    logs it (when `log_requests`)."""

    def __init__(self, app: ASGIApp, metrics: Metrics, log_requests: bool = True) -> None:
        self.app = app
        self.metrics = metrics
        self.log_requests = log_requests

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        scope.setdefault("state", {})
        started = time.perf_counter()
        status = 500  # unless a response starts: an error no handler answered

        async def sending(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            self.finished(scope, status, time.perf_counter() - started)

    def finished(self, scope: Scope, status: int, seconds: float) -> None:
        route = route_of(scope)
        self.metrics.request(str(scope.get("method")), route, status, seconds)
        if self.log_requests:
            fields = request_fields(scope, route, status, seconds)
            level = logging.ERROR if status >= 500 else logging.INFO
            log.log(level, "%s %s %s", fields["method"], route, status, extra=fields)
