"""A tenant's API keys over HTTP (`admin` permission): issue, list, revoke."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Request, Response
from pydantic import BaseModel, Field

from api.auth import Principal, permitted
from api.commands import IdempotencyKey, mark_replayed
from api.pages import Page
from api.problems import problem_responses
from api.routes.admin import run_tenant_command
from api.routes.inputs import Body
from domain.tenant import Tenant

router = APIRouter(prefix="/v1/api-keys", tags=["administration"])
Admin = Annotated[Principal, Depends(permitted("admin"))]
PROBLEMS = problem_responses(
    {
        403: "`forbidden`: needs `admin`",
        404: "`not-found`: no such key in this tenant",
    }
)


class NewKey(Body):
    name: str = Field(min_length=1, max_length=200)
    roles: list[str] = Field(min_length=1)


class KeyItem(BaseModel):
    id: str
    name: str
    roles: list[str]
    issued_at: datetime
    revoked_at: datetime | None


class IssuedKey(KeyItem):
    key: str | None = Field(
        description="The key itself, shown only in this response: null when a retry with the"
        " same `Idempotency-Key` answers it again, since the key is not kept (revoke it and"
        " issue another if it was lost)."
    )
    position: int


class RevokedKey(KeyItem):
    position: int


class KeyPage(Page):
    items: list[KeyItem]


def _tenant(request: Request, caller: Principal) -> Tenant:
    app = request.app.state.ledger.app(caller.tenant_id)
    found: Tenant = app.load(caller.tenant_id, Tenant)
    return found


def _head(request: Request, caller: Principal) -> int:
    return int(request.app.state.ledger.store.head(caller.tenant_id).position)


def _item(tenant: Tenant, key_id: str) -> KeyItem:
    key = next(k for k in tenant.api_keys() if k.key_id == key_id)
    return KeyItem(
        id=key.key_id,
        name=key.name,
        roles=list(key.roles),
        issued_at=key.issued_at,
        revoked_at=key.revoked_at,
    )


@router.post(
    "",
    status_code=201,
    response_model=IssuedKey,
    summary="Issue a key (shown once; only its hash is kept)",
    responses=PROBLEMS,
)
def issue(
    request: Request,
    response: Response,
    caller: Admin,
    body: NewKey,
    idempotency_key: IdempotencyKey = None,
) -> IssuedKey:
    issued: list[str] = []

    def change(tenant: Tenant) -> bytes:
        issued[:] = [tenant.issue_api_key(body.name, body.roles)]
        return _item(tenant, tenant.api_keys()[-1].key_id).model_dump_json().encode()

    result, _ = run_tenant_command(
        request, caller, "issue_api_key", body.model_dump(), change, idempotency_key
    )
    mark_replayed(response, result.replayed)
    item = KeyItem.model_validate_json(result.body)
    key = None if result.replayed else issued[0]
    return IssuedKey(**item.model_dump(), key=key, position=result.position)


@router.get(
    "",
    response_model=KeyPage,
    summary="The tenant's keys, revoked ones too (never their secrets)",
    responses=PROBLEMS,
)
def list_keys(request: Request, caller: Admin) -> KeyPage:
    tenant = _tenant(request, caller)
    return KeyPage(
        items=[_item(tenant, key.key_id) for key in tenant.api_keys()],
        next_cursor=None,
        position=_head(request, caller),
    )


@router.post(
    "/{key_id}/revoke",
    response_model=RevokedKey,
    summary="Revoke a key at once",
    responses=PROBLEMS,
)
def revoke(
    request: Request,
    response: Response,
    caller: Admin,
    key_id: str,
    idempotency_key: IdempotencyKey = None,
) -> RevokedKey:
    def change(tenant: Tenant) -> bytes:
        tenant.revoke_api_key(key_id)  # revoking a revoked key records nothing
        return _item(tenant, key_id).model_dump_json().encode()

    result, _ = run_tenant_command(
        request, caller, "revoke_api_key", {"key_id": key_id}, change, idempotency_key
    )
    mark_replayed(response, result.replayed)
    position = result.position or _head(request, caller)
    return RevokedKey(**KeyItem.model_validate_json(result.body).model_dump(), position=position)
