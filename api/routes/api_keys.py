"""A tenant's API keys over HTTP (`admin` permission): issue, list, revoke."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, Field

from api.auth import Principal, permitted
from api.commands import command_meta
from api.pages import Page
from domain.tenant import Tenant

router = APIRouter(prefix="/v1/api-keys", tags=["administration"])
Admin = Annotated[Principal, Depends(permitted("admin"))]
PROBLEMS = {
    401: {"description": "`unauthenticated`"},
    403: {"description": "`forbidden`: needs `admin`"},
    404: {"description": "`not-found`"},
    422: {"description": "`validation-error`"},
}


class NewKey(BaseModel):
    name: str = Field(min_length=1, max_length=200)
    roles: list[str] = Field(min_length=1)


class KeyItem(BaseModel):
    id: str
    name: str
    roles: list[str]
    issued_at: datetime
    revoked_at: datetime | None


class IssuedKey(KeyItem):
    key: str = Field(description="The key itself: shown only in this response.")
    position: int


class RevokedKey(KeyItem):
    position: int


class KeyPage(Page):
    items: list[KeyItem]


def _tenant(request: Request, caller: Principal) -> Tenant:
    app = request.app.state.ledger.app(caller.tenant_id)
    found: Tenant = app.load(caller.tenant_id, Tenant)
    return found


def _saved(request: Request, caller: Principal, tenant: Tenant) -> int:
    app = request.app.state.ledger.app(caller.tenant_id)
    recordings = app.record(tenant, meta=command_meta(request, caller, None))
    return int(max(r.notification.id for r in recordings))


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
    responses=PROBLEMS,  # type: ignore[arg-type]
)
def issue(request: Request, caller: Admin, body: NewKey) -> IssuedKey:
    tenant = _tenant(request, caller)
    key = tenant.issue_api_key(body.name, body.roles)
    position = _saved(request, caller, tenant)
    issued = tenant.api_keys()[-1]
    return IssuedKey(**_item(tenant, issued.key_id).model_dump(), key=key, position=position)


@router.get(
    "",
    response_model=KeyPage,
    summary="The tenant's keys, revoked ones too (never their secrets)",
    responses=PROBLEMS,  # type: ignore[arg-type]
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
    responses=PROBLEMS,  # type: ignore[arg-type]
)
def revoke(request: Request, caller: Admin, key_id: str) -> RevokedKey:
    tenant = _tenant(request, caller)
    tenant.revoke_api_key(key_id)
    recorded = bool(tenant.pending_events)  # revoking a revoked key records nothing
    position = _saved(request, caller, tenant) if recorded else _head(request, caller)
    return RevokedKey(**_item(tenant, key_id).model_dump(), position=position)
