"""Errors as `application/problem+json` (RFC 9457) with the types of the /v1 contract."""

from __future__ import annotations

from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import InterfaceError, OperationalError
from starlette.exceptions import HTTPException

from api.context import request_id_of
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
    body = {
        "type": f"/errors/{code}",
        "title": code.replace("-", " ").capitalize(),
        "status": status,
        "detail": detail,
        "request_id": request_id_of(request),
        "retryable": code in RETRYABLE,
        **fields,
    }
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
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
        code = {404: "not-found", 401: "unauthenticated", 403: "forbidden"}.get(error.status_code)
        if code is None:  # e.g. 405: answered as a problem with the framework's status
            body = {
                "type": "about:blank",
                "title": HTTPStatus(error.status_code).phrase,
                "status": error.status_code,
                "detail": str(error.detail),
                "request_id": request_id_of(request),
                "retryable": False,
            }
            return JSONResponse(body, status_code=error.status_code, media_type=PROBLEM)
        return problem(request, code, str(error.detail))

    @app.exception_handler(OperationalError)
    @app.exception_handler(InterfaceError)
    async def _database(request: Request, error: Exception) -> JSONResponse:
        detail = f"the database is unreachable ({type(error).__name__})"
        return problem(request, "service-unavailable", detail)
