"""`ledger apikey create|list|revoke`: a tenant's API keys (recorded as the tenant's events)."""

from __future__ import annotations

from typing import Annotated

import typer

from domain.access import DEFAULT_ROLES
from domain.ids import tenant_id_for
from domain.tenant import Tenant
from ledger.cli_support import cli_meta, opened_ledger
from ledger.wiring import Ledger

apikey_app = typer.Typer(no_args_is_help=True, help="A tenant's API keys.")
TenantOption = Annotated[str, typer.Option("--tenant", help="The tenant's slug.")]


def _tenant(ledger: Ledger, slug: str) -> Tenant:
    tenant_id = tenant_id_for(slug)
    found: Tenant = ledger.app(tenant_id).load(tenant_id, Tenant)
    return found


@apikey_app.command("create")
def apikey_create(
    tenant: TenantOption,
    name: Annotated[str, typer.Option(help="What the key is for (1-200 characters).")],
    role: Annotated[
        list[str],
        typer.Option(
            help="A role of the key (repeatable), from the tenant's role map (`GET /v1/roles`;"
            f" by default {', '.join(DEFAULT_ROLES)})."
        ),
    ],
) -> None:
    """Issues a key and prints it as the last line: it is shown once, only its hash is kept."""
    with opened_ledger() as ledger:
        found = _tenant(ledger, tenant)
        key = found.issue_api_key(name, role)
        ledger.app(found.id).record(found, meta=cli_meta())
        issued = found.api_keys()[-1]
        typer.echo(f"id: {issued.key_id}  name: {issued.name}  roles: {', '.join(issued.roles)}")
        typer.echo("the key follows; it is shown only now (only its hash is kept):")
        typer.echo(key)


@apikey_app.command("list")
def apikey_list(tenant: TenantOption) -> None:
    """Lists the tenant's keys (never their secrets), revoked ones too."""
    with opened_ledger() as ledger:
        keys = _tenant(ledger, tenant).api_keys()
        if not keys:
            typer.echo("no API keys yet; create one with `ledger apikey create`")
        for key in keys:
            state = "active" if key.active else f"revoked {key.revoked_at:%Y-%m-%dT%H:%M:%SZ}"
            typer.echo(
                f"{key.key_id}  {state:<28}  issued {key.issued_at:%Y-%m-%dT%H:%M:%SZ}"
                f"  roles {','.join(key.roles)}  {key.name}"
            )


@apikey_app.command("revoke")
def apikey_revoke(
    tenant: TenantOption, key_id: Annotated[str, typer.Option("--id", help="The key's id.")]
) -> None:
    """Revokes a key at once: it authenticates nothing from now on."""
    with opened_ledger() as ledger:
        found = _tenant(ledger, tenant)
        found.revoke_api_key(key_id)
        ledger.app(found.id).record(found, meta=cli_meta())
        typer.echo(f"revoked {key_id}")
