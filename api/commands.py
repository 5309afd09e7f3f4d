"""What every command endpoint shares: the caller and request as event metadata, and the
`Idempotent-Replayed` header of a replayed response."""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal
from typing import Annotated, cast

from fastapi import Header, Request, Response
from pydantic import BeforeValidator, Field

from api.auth import Principal
from api.context import request_id_of
from api.problems import Problem
from domain.metadata import Actor, ActorKind, EventMetadata

#: The `Idempotency-Key` header every POST takes (a client-chosen string, 1-255 characters).
IdempotencyKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        description="Same key and body again: the first response, nothing appended;"
        " another body: 422 `idempotency-key-reused`.",
    ),
]
REPLAYED = "Idempotent-Replayed"
#: An entry further back than this needs the `stock:backdate` permission.
BACKDATE_LIMIT = timedelta(hours=24)
BACKDATE = "stock:backdate"
#: Digits a number in a request may have (the read models keep NUMERIC(38, 12)).
MAX_DIGITS = 24


def exact(value: object) -> object:
    """A JSON number as the decimal it was written as (never a binary float); no booleans."""
    if isinstance(value, bool):
        raise ValueError("must be a number or a decimal string")
    if isinstance(value, float):
        return Decimal(str(value))
    return value


#: A quantity or amount: a JSON number or a decimal string, compared by value.
Number = Annotated[
    Decimal,
    BeforeValidator(exact),
    Field(
        max_digits=MAX_DIGITS,
        allow_inf_nan=False,
        description="A JSON number or a decimal string, compared by value"
        f" (at most {MAX_DIGITS} digits).",
    ),
]
Code = Annotated[str, Field(min_length=1, max_length=64)]
Text = Annotated[str, Field(min_length=1, max_length=200)]
EffectiveAt = Annotated[
    datetime | None,
    Field(
        description="Business time of an entry made late (with offset). More than 24 hours"
        " back needs `stock:backdate`."
    ),
]


def command_meta(
    request: Request,
    caller: Principal,
    idempotency_key: str | None,
    effective_at: datetime | None = None,
) -> EventMetadata:
    """The metadata recorded with the events a request causes: who, which request, which key,
    and the business time of an entry made late."""
    if idempotency_key is not None and not 1 <= len(idempotency_key) <= 255:
        raise Problem(
            "validation-error",
            "the Idempotency-Key header must be 1-255 characters",
            errors=[{"field": "header.Idempotency-Key", "message": "1-255 characters"}],
        )
    if effective_at is not None and effective_at.utcoffset() is None:
        raise Problem(
            "validation-error",
            "effective_at needs a UTC offset",
            errors=[{"field": "body.effective_at", "message": "needs a UTC offset"}],
        )
    actor = Actor(kind=cast("ActorKind", caller.kind), id=caller.subject, roles=caller.roles)
    return EventMetadata(
        actor=actor,
        request_id=request_id_of(request),
        idempotency_key=idempotency_key,
        effective_at=effective_at,
    )


def movement_meta(
    request: Request,
    caller: Principal,
    now: datetime,
    idempotency_key: str | None,
    effective_at: datetime | None = None,
) -> EventMetadata:
    """`command_meta` of a stock movement: more than 24 hours before `now` needs
    `stock:backdate`."""
    meta = command_meta(request, caller, idempotency_key, effective_at)
    if (
        effective_at is not None
        and effective_at < now - BACKDATE_LIMIT
        and not caller.may(BACKDATE)
    ):
        raise Problem(
            "forbidden", f"an entry more than 24 hours back needs the {BACKDATE} permission"
        )
    return meta


def mark_replayed(response: Response, replayed: bool) -> None:
    """Says that this is the first response to the same key again (nothing was appended)."""
    if replayed:
        response.headers[REPLAYED] = "true"
