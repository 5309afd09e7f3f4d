"""Errors as `application/problem+json` (RFC 9457) with the types of the /v1 contract."""

from __future__ import annotations

from collections.abc import Mapping
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import InterfaceError, OperationalError
from starlette.exceptions import HTTPException

from api.context import HEADER, request_id_of
from domain.errors import (
    DomainError,
    InsufficientStock,
    InvalidState,
    OverReceipt,
    ProjectionLagging,
    ValidationFailed,
)

PROBLEM = "application/problem+json"

#: HTTP status of each error type; types not listed are 409 (a rule refused the command).
STATUS: dict[str, int] = {
    "validation-error": 422,
    "unknown-reference": 422,
    "lot-required": 422,
    "idempotency-key-reused": 422,
    "unauthenticated": 401,
    "forbidden": 403,
    "not-found": 404,
    "rate-limited": 429,
    "projection-lagging": 503,
    "service-unavailable": 503,
    "internal-error": 500,
}
RETRYABLE = frozenset(
    {
        "concurrency-conflict",
        "idempotency-key-in-progress",
        "rate-limited",
        "projection-lagging",
        "service-unavailable",
    }
)

#: The body of every error response: RFC 9457 members, the request id, `retryable`, and the
#: case's own fields (`errors` of a `validation-error`, `requested`/`available`, `status`, ...).
PROBLEM_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["type", "title", "status", "detail", "request_id", "retryable"],
    "properties": {
        "type": {"type": "string", "description": "`/errors/<error type>`"},
        "title": {"type": "string"},
        "status": {
            "anyOf": [{"type": "integer"}, {"type": "string"}],
            "description": "The HTTP status; for `invalid-state` the contract's case field:"
            " the order's current status.",
        },
        "detail": {"type": "string"},
        "request_id": {"type": "string"},
        "retryable": {"type": "boolean"},
        "errors": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["field", "message"],
                "properties": {"field": {"type": "string"}, "message": {"type": "string"}},
            },
        },
    },
    "additionalProperties": True,
}
#: What any authenticated route may answer besides its own cases.
COMMON: dict[int, str] = {
    401: "`unauthenticated`: missing, malformed, expired or revoked credential",
    422: "`validation-error`",
    429: "`rate-limited`: the tenant is over its request rate (`Retry-After` set)",
    503: "`service-unavailable`: the database is unreachable",
}


def problem_responses(cases: Mapping[int, str]) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses` of a route: its error statuses and `COMMON`'s (its own description
    wins), each answered as `application/problem+json` of `PROBLEM_SCHEMA`."""
    merged = COMMON | dict(cases)
    return {
        status: {"description": text, "content": {PROBLEM: {"schema": PROBLEM_SCHEMA}}}
        for status, text in sorted(merged.items())
    }


class Problem(Exception):
    """An error the API answers with directly (authentication, permissions, paths)."""

    def __init__(self, code: str, detail: str, **fields: Any) -> None:
        super().__init__(detail)
        self.code = code
        self.detail = detail
        self.fields = fields


def problem(request: Request, code: str, detail: str, **fields: Any) -> JSONResponse:
    """The problem response of an error type, with the request id and `retryable`."""
    status = STATUS.get(code, 409)
    request_id = request_id_of(request)
    body = {
        "type": f"/errors/{code}",
        "title": code.replace("-", " ").capitalize(),
        "status": status,
        "detail": detail,
        "request_id": request_id,
        "retryable": code in RETRYABLE,
        **fields,
    }
    # Set here too: a 500 is answered outside the middleware that adds it to every response.
    headers = {HEADER: request_id}
    if status == 401:
        headers["WWW-Authenticate"] = "Bearer"
    return JSONResponse(body, status_code=status, media_type=PROBLEM, headers=headers)


def _domain_fields(error: DomainError) -> dict[str, Any]:
    """The case's own fields: what was asked and what there was, the status, the field."""
    if isinstance(error, InsufficientStock):
        return {"requested": str(error.requested), "available": str(error.available)}
    if isinstance(error, InvalidState):
        return {"status": error.status}
    if isinstance(error, OverReceipt):
        return {"ordered": str(error.ordered), "receivable": str(error.receivable)}
    if isinstance(error, ProjectionLagging):
        return {"wanted": error.wanted, "reached": error.reached, "lagging": list(error.lagging)}
    if isinstance(error, ValidationFailed):
        return {"errors": [{"field": error.field, "message": str(error)}]}
    return {}


def install(app: FastAPI) -> None:
    """Every error the app can meet, answered as a problem."""

    @app.exception_handler(Problem)
    async def _problem(request: Request, error: Problem) -> JSONResponse:
        return problem(request, error.code, error.detail, **error.fields)

    @app.exception_handler(DomainError)
    async def _domain(request: Request, error: DomainError) -> JSONResponse:
        return problem(request, error.code, str(error), **_domain_fields(error))

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, error: RequestValidationError) -> JSONResponse:
        errors = [
            {
                "field": ".".join(str(part) for part in item.get("loc", ())),
                "message": str(item.get("msg", "")),
            }
            for item in error.errors()
        ]
        return problem(request, "validation-error", "the request is not valid", errors=errors)

    @app.exception_handler(HTTPException)
    async def _http(request: Request, error: HTTPException) -> JSONResponse:
        if error.status_code == 400:  # a body that is not JSON at all: as any invalid body
            field = {"field": "body", "message": str(error.detail)}
            return problem(request, "validation-error", "the request is not valid", errors=[field])
        code = {404: "not-found", 401: "unauthenticated", 403: "forbidden"}.get(error.status_code)
        if code is None:  # e.g. 405: answered as a problem with the framework's status
            request_id = request_id_of(request)
            body = {
                "type": "about:blank",
                "title": HTTPStatus(error.status_code).phrase,
                "status": error.status_code,
                "detail": str(error.detail),
                "request_id": request_id,
                "retryable": False,
            }
            headers = {**(error.headers or {}), HEADER: request_id}
            return JSONResponse(
                body, status_code=error.status_code, media_type=PROBLEM, headers=headers
            )
        return problem(request, code, str(error.detail))

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, error: Exception) -> JSONResponse:
        """A fault of the service itself: answered as a problem; the server still logs it."""
        detail = f"the service failed unexpectedly ({type(error).__name__})"
        return problem(request, "internal-error", detail)

    @app.exception_handler(OperationalError)
    @app.exception_handler(InterfaceError)
    async def _database(request: Request, error: Exception) -> JSONResponse:
        detail = f"the database is unreachable ({type(error).__name__})"
        return problem(request, "service-unavailable", detail)
