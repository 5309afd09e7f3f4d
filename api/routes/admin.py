"""A tenant's settings and role map over HTTP (`GET`/`PUT /v1/settings`, `GET`/`PUT /v1/roles`),
and what every tenant administration command shares."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from typing import Annotated, Any, Literal
from uuid import UUID

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, Field, StrictBool

from api.auth import Caller, Principal, permitted, role_maps
from api.commands import Number, command_meta
from api.pages import MinPosition, decimal_text
from api.problems import problem_responses
from api.routes.inputs import Body
from domain.access import ALL, PERMISSIONS
from domain.errors import ProjectionLagging
from domain.idempotency import IdempotencyRecord
from domain.tenant import Tenant
from domain.tenant_settings import TenantSettings

router = APIRouter(prefix="/v1", tags=["administration"])
Admin = Annotated[Principal, Depends(permitted("admin"))]
RoleReader = Annotated[Principal, Depends(permitted("admin", "audit:read"))]
PROBLEMS = problem_responses(
    {
        403: "`forbidden`: needs `admin`",
        404: "`not-found`: the credential's tenant is not registered",
        409: "`concurrency-conflict`",
        503: "`projection-lagging`: `min_position` is beyond the ledger's head;"
        " `service-unavailable`: the database is unreachable",
    }
)
#: Seconds between looks at the ledger's head while a reader waits for its `min_position`.
POLL = 0.05


@dataclass(frozen=True)
class TenantChange:
    """What a tenant administration command did: the position it reached, and the JSON body
    an idempotent retry answers with again."""

    position: int
    body: bytes = b"{}"
    replayed: bool = False

    def outcome(self) -> bytes:
        return self.body

    @classmethod
    def replay(cls, record: IdempotencyRecord) -> TenantChange:
        return cls(record.position, record.outcome, replayed=True)


def run_tenant_command(
    request: Request,
    caller: Principal,
    command: str,
    arguments: dict[str, Any],
    change: Callable[[Tenant], bytes],
    idempotency_key: str | None = None,
) -> tuple[TenantChange, Tenant | None]:
    """Runs `change` on the caller's tenant once per idempotency key, with the request's
    metadata; the result and the tenant as changed (None when the result is a replay)."""
    app = request.app.state.ledger.app(caller.tenant_id)
    changed: list[Tenant] = []

    def action() -> tuple[list[Tenant], TenantChange]:
        tenant = app.tenant()
        body = change(tenant)
        changed[:] = [tenant]
        return [tenant], TenantChange(0, body)

    meta = command_meta(request, caller, idempotency_key)
    result: TenantChange = app.run(command, arguments, meta, action, TenantChange.replay)
    return result, None if result.replayed else changed[-1]


def ledger_position(request: Request, tenant_id: UUID, min_position: int | None) -> int:
    """The tenant's head position, once it is at least `min_position` (a state read from the
    ledger itself reflects every recorded event)."""
    store = request.app.state.ledger.store
    deadline = time.monotonic() + request.app.state.settings.min_position_timeout
    head = int(store.head(tenant_id).position)
    while min_position and head < min_position:
        if time.monotonic() >= deadline:
            raise ProjectionLagging(
                f"position {min_position} not reached: the ledger is at {head}",
                wanted=min_position,
                reached=head,
                lagging=("ledger",),
            )
        time.sleep(POLL)
        head = int(store.head(tenant_id).position)
    return head


def caller_tenant(request: Request, caller: Principal) -> Tenant:
    found: Tenant = request.app.state.ledger.app(caller.tenant_id).tenant()
    return found


# -- settings -------------------------------------------------------------------------------------

#: The highest per-tenant request rate that can be set.
MAX_RATE_LIMIT = 1_000_000
RateLimit = Annotated[int, Field(ge=1, le=MAX_RATE_LIMIT)]


class SettingsIn(Body):
    """The whole settings document (every field, as `GET /v1/settings` returns it)."""

    timezone: str = Field(description="IANA time zone name, such as `Europe/Berlin`.")
    currency: str = Field(description="Active ISO 4217 code in capitals, such as `EUR`.")
    over_receipt_tolerance_pct: Number = Field(
        description="Percent a purchase order line may be received beyond its quantity (0-1000)."
    )
    block_expired_issue: StrictBool
    default_removal_policy: Literal["fifo", "fefo"]
    period_lock_date: date | None = Field(
        description="Entries effective before this date are `period-locked`; null: none."
    )
    rate_limit_per_second: RateLimit | None = Field(
        description="Requests per second for this tenant; null: the service's default."
    )


class SettingsOut(BaseModel):
    """The tenant's settings; decimals are strings."""

    timezone: str
    currency: str
    over_receipt_tolerance_pct: str
    block_expired_issue: bool
    default_removal_policy: Literal["fifo", "fefo"]
    period_lock_date: date | None
    rate_limit_per_second: int | None
    position: int


def _settings_out(settings: TenantSettings, position: int) -> SettingsOut:
    return SettingsOut(
        timezone=settings.timezone,
        currency=settings.currency,
        over_receipt_tolerance_pct=decimal_text(settings.over_receipt_tolerance_pct),
        block_expired_issue=settings.block_expired_issue,
        default_removal_policy="fefo" if settings.default_removal_policy == "fefo" else "fifo",
        period_lock_date=settings.period_lock_date,
        rate_limit_per_second=settings.rate_limit_per_second,
        position=position,
    )


@router.get(
    "/settings",
    response_model=SettingsOut,
    summary="The tenant's settings (any caller of the tenant)",
    responses=PROBLEMS,
)
def get_settings(request: Request, caller: Caller, min_position: MinPosition = None) -> SettingsOut:
    position = ledger_position(request, caller.tenant_id, min_position)
    return _settings_out(caller_tenant(request, caller).settings(), position)


@router.put(
    "/settings",
    response_model=SettingsOut,
    summary="Replace the tenant's settings (records the fields that changed)",
    responses=PROBLEMS,
)
def put_settings(request: Request, caller: Admin, body: SettingsIn) -> SettingsOut:
    wanted = TenantSettings(**body.model_dump()).validated()

    def change(tenant: Tenant) -> bytes:
        tenant.replace_settings(wanted)
        return b"{}"

    result, _ = run_tenant_command(
        request, caller, "replace_settings", body.model_dump(mode="json"), change
    )
    return _settings_out(wanted, result.position)


# -- roles ----------------------------------------------------------------------------------------

Permissions = list[str]


class RolesIn(Body):
    """The whole role map: each role's permissions (`*`: every permission)."""

    roles: dict[str, Permissions] = Field(
        description="Role name (1-64 of a-z, 0-9, _ and -) -> permissions. The `admin` role"
        " must stay and keep `admin` or `*`."
    )


class RolesOut(BaseModel):
    """The tenant's role map and the permissions a role may grant."""

    roles: dict[str, Permissions] = Field(
        description='Role name -> its permissions, sorted; `["*"]` grants every permission.'
    )
    permissions: list[str] = Field(description="Every permission a role may grant, and `*`.")
    position: int


def _roles_out(tenant: Tenant, position: int) -> RolesOut:
    return RolesOut(
        roles={name: sorted(perms) for name, perms in sorted(tenant.roles().items())},
        permissions=[*sorted(PERMISSIONS), ALL],
        position=position,
    )


@router.get(
    "/roles",
    response_model=RolesOut,
    summary="The tenant's role -> permissions map (`admin` or `audit:read`)",
    responses=PROBLEMS,
)
def get_roles(request: Request, caller: RoleReader, min_position: MinPosition = None) -> RolesOut:
    position = ledger_position(request, caller.tenant_id, min_position)
    return _roles_out(caller_tenant(request, caller), position)


@router.put(
    "/roles",
    response_model=RolesOut,
    summary="Replace the tenant's role map (takes effect at once for this service)",
    responses=PROBLEMS,
)
def put_roles(request: Request, caller: Admin, body: RolesIn) -> RolesOut:
    def change(tenant: Tenant) -> bytes:
        tenant.change_roles(body.roles)
        return b"{}"

    result, tenant = run_tenant_command(request, caller, "change_roles", body.model_dump(), change)
    tenant = tenant or caller_tenant(request, caller)
    role_maps(request).put(caller.tenant_id, tenant.roles())
    return _roles_out(tenant, result.position)
