"""Liveness and readiness (database reachable, schema at the expected revision)."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Request
from pydantic import BaseModel

from api.problems import PROBLEM, PROBLEM_SCHEMA, Problem
from ledger.wiring import SchemaOutOfDate, check_schema

router = APIRouter(tags=["operations"])


class Health(BaseModel):
    status: Literal["ok"]


@router.get("/healthz", response_model=Health, summary="The process is alive")
def healthz() -> Health:
    return Health(status="ok")


@router.get(
    "/readyz",
    response_model=Health,
    summary="The database is reachable and its schema at this code's revision",
    responses={
        503: {
            "description": "not ready: `service-unavailable`",
            "content": {PROBLEM: {"schema": PROBLEM_SCHEMA}},
        }
    },
)
def readyz(request: Request) -> Health:
    try:
        check_schema(request.app.state.settings)
    except SchemaOutOfDate as error:
        raise Problem("service-unavailable", str(error)) from None
    return Health(status="ok")
