"""A tenant's webhooks over HTTP (`admin` permission): register, list, disable, and the log of
their deliveries.

A webhook's secret is recorded in the tenant's `WebhookRegistered` event sealed with the
service's `LEDGER_SECRET_KEY` (deliveries are signed with it), so the audit feed and exports carry
only ciphertext, and it is never answered back."""

from __future__ import annotations

import socket
from collections.abc import Sequence
from datetime import datetime
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Depends, Request, Response
from pydantic import BaseModel, Field

from api.auth import Principal, permitted
from api.commands import IdempotencyKey, mark_replayed
from api.pages import Cursor, Limit, MinPosition, Page, decode_cursor, encode_cursor, scope
from api.problems import Problem, problem_responses
from api.routes.admin import caller_tenant, ledger_position, run_tenant_command
from api.routes.inputs import Body
from domain.access import check_webhook_target
from domain.tenant import Tenant
from domain.tenant_settings import Webhook
from ledger.public_events import TYPES
from ledger.sealing import SealingUnavailable, sealer
from projections.webhook_log import deliveries

router = APIRouter(prefix="/v1/webhooks", tags=["administration"])
#: The event types a webhook may subscribe to: the public ones (`GET /v1/event-types`).
PUBLIC_TYPES = frozenset(TYPES)
Admin = Annotated[Principal, Depends(permitted("admin"))]
PROBLEMS = problem_responses(
    {
        403: "`forbidden`: needs `admin`",
        404: "`not-found`: no such webhook in this tenant",
        409: "`idempotency-key-in-progress`, `concurrency-conflict`",
        422: "`validation-error` (also a URL that does not resolve or resolves to"
        " a private address), `idempotency-key-reused`",
        503: "`projection-lagging`: `min_position` is beyond the ledger's head;"
        " `service-unavailable`: the database is unreachable",
    }
)


def resolve(host: str, port: int) -> Sequence[str]:
    """The IP addresses a host name resolves to (OSError when it does not)."""
    found = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [str(info[4][0]) for info in found]


class WebhookIn(Body):
    url: str = Field(
        min_length=1,
        max_length=2000,
        description="Absolute http(s) URL; refused when its host resolves to a private,"
        " loopback or link-local address (unless the operator allows them).",
    )
    events: list[str] = Field(
        min_length=1,
        description='Public event types to deliver (`GET /v1/event-types`), or `["*"]` for all.',
    )
    secret: str = Field(
        min_length=16,
        max_length=256,
        description="Signs each delivery; kept by the ledger and never shown again.",
    )


class WebhookItem(BaseModel):
    id: str
    url: str
    events: list[str]
    active: bool
    created_at: datetime
    disabled_at: datetime | None


class WebhookOut(WebhookItem):
    position: int


class WebhookPage(Page):
    items: list[WebhookItem]


class DeliveryItem(BaseModel):
    delivery_id: str
    attempt: int
    event_position: int
    event_type: str
    status: str = Field(description="`pending`, `delivered`, `failed` or `dead`.")
    response_status: int | None
    error: str | None
    attempted_at: datetime | None
    next_attempt_at: datetime | None


class DeliveryPage(Page):
    items: list[DeliveryItem] = Field(
        description="Attempts in event order; `position` is the ledger's (the worker writes"
        " the log as it delivers)."
    )


def _cursor(cursor: str, kinds: tuple[type, ...]) -> tuple[Any, ...]:
    """The key a cursor of this list names (422 `validation-error` if it is not one)."""
    key = decode_cursor(cursor, len(kinds))
    if not all(type(part) is kind for part, kind in zip(key, kinds, strict=True)):
        raise Problem(
            "validation-error",
            "the cursor is not one this list gave",
            errors=[{"field": "query.cursor", "message": "not a cursor of this list"}],
        )
    return key


def _item(hook: Webhook) -> WebhookItem:
    return WebhookItem(
        id=hook.webhook_id,
        url=hook.url,
        events=list(hook.events),
        active=hook.active,
        created_at=hook.created_at,
        disabled_at=hook.disabled_at,
    )


def _answer(tenant: Tenant | None, webhook_id: str, body: bytes, position: int) -> WebhookOut:
    """The webhook as the command left it (or as its first response recorded it)."""
    if tenant is not None:
        return WebhookOut(**_item(tenant.webhook(webhook_id)).model_dump(), position=position)
    return WebhookOut(**orjson.loads(body), position=position)


@router.post(
    "",
    status_code=201,
    response_model=WebhookOut,
    summary="Register a webhook for public events (its secret is never shown again)",
    responses=PROBLEMS,
)
def register(
    request: Request,
    response: Response,
    caller: Admin,
    body: WebhookIn,
    idempotency_key: IdempotencyKey = None,
) -> WebhookOut:
    settings = request.app.state.settings
    try:
        seal = sealer(settings)
    except SealingUnavailable as error:
        raise Problem("service-unavailable", f"webhooks cannot be registered: {error}") from None
    created: list[str] = []

    def change(tenant: Tenant) -> bytes:
        check_webhook_target(body.url, resolve, allow_private=settings.webhook_allow_private)
        hook_id = tenant.register_webhook(body.url, body.events, body.secret, seal, PUBLIC_TYPES)
        created[:] = [hook_id]
        return _item(tenant.webhook(created[0])).model_dump_json().encode()

    result, tenant = run_tenant_command(
        request, caller, "register_webhook", body.model_dump(), change, idempotency_key
    )
    mark_replayed(response, result.replayed)
    return _answer(tenant, created[0] if created else "", result.body, result.position)


@router.get(
    "",
    response_model=WebhookPage,
    summary="The tenant's webhooks, disabled ones too (never their secrets)",
    responses=PROBLEMS,
)
def list_webhooks(
    request: Request,
    caller: Admin,
    limit: Limit = 100,
    cursor: Cursor = None,
    min_position: MinPosition = None,
) -> WebhookPage:
    position = ledger_position(request, caller.tenant_id, min_position)
    hooks = caller_tenant(request, caller).webhooks()
    if cursor is not None:
        after = _cursor(cursor, (str, str))
        hooks = [h for h in hooks if _key(h) > after]
    page = hooks[:limit]
    last = page[-1] if len(hooks) > limit else None
    return WebhookPage(
        items=[_item(hook) for hook in page],
        next_cursor=None if last is None else encode_cursor(_key(last)),
        position=position,
    )


def _key(hook: Webhook) -> tuple[str, str]:
    return (hook.created_at.isoformat(), hook.webhook_id)


@router.post(
    "/{webhook_id}/disable",
    response_model=WebhookOut,
    summary="Disable a webhook: nothing more is delivered to it",
    responses=PROBLEMS,
)
def disable(
    request: Request,
    response: Response,
    caller: Admin,
    webhook_id: str,
    idempotency_key: IdempotencyKey = None,
) -> WebhookOut:
    def change(tenant: Tenant) -> bytes:
        tenant.disable_webhook(webhook_id)
        return _item(tenant.webhook(webhook_id)).model_dump_json().encode()

    result, tenant = run_tenant_command(
        request, caller, "disable_webhook", {"id": webhook_id}, change, idempotency_key
    )
    mark_replayed(response, result.replayed)
    return _answer(tenant, webhook_id, result.body, result.position)


@router.get(
    "/{webhook_id}/deliveries",
    response_model=DeliveryPage,
    summary="The log of a webhook's delivery attempts",
    responses=PROBLEMS,
)
def list_deliveries(
    request: Request,
    caller: Admin,
    webhook_id: str,
    limit: Limit = 100,
    cursor: Cursor = None,
    min_position: MinPosition = None,
) -> DeliveryPage:
    position = ledger_position(request, caller.tenant_id, min_position)
    caller_tenant(request, caller).webhook(webhook_id)  # 404 unless it is this tenant's
    after = None
    if cursor is not None:
        event_position, delivery_id, attempt = _cursor(cursor, (int, str, int))
        after = (event_position, delivery_id, attempt)
    with request.app.state.engine.begin() as conn:
        scope(request, conn, caller.tenant_id)
        rows = deliveries(conn, caller.tenant_id, webhook_id, after=after, limit=limit + 1)
    page = rows[:limit]
    return DeliveryPage(
        items=[DeliveryItem.model_validate(row, from_attributes=True) for row in page],
        next_cursor=encode_cursor(page[-1].key) if len(rows) > limit else None,
        position=position,
    )
