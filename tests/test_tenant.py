"""The tenant aggregate and its registration."""

from __future__ import annotations

from dataclasses import replace
from datetime import date
from decimal import Decimal
from uuid import uuid4

import pytest

from domain.errors import AlreadyExists, ValidationFailed
from domain.ids import tenant_id_for
from domain.metadata import EventMetadata
from domain.tenant import Tenant
from eventstore.store import LedgerStore
from ledger.wiring import Ledger


def test_a_tenants_id_is_derived_from_its_slug() -> None:
    assert Tenant.register("acme").id == tenant_id_for("acme")
    assert tenant_id_for("acme") != tenant_id_for("acme-2")


def test_a_tenant_registers_with_name_and_timezone() -> None:
    tenant = Tenant.register("acme", "Acme GmbH", "Europe/Berlin")
    assert (tenant.slug, tenant.name, tenant.timezone) == ("acme", "Acme GmbH", "Europe/Berlin")


@pytest.mark.parametrize(
    "slug", ["", "UPPER", "-lead", "trail-", "under_score", "a" * 64, "sp ace"]
)
def test_a_slug_outside_dns_label_rules_is_refused(slug: str) -> None:
    with pytest.raises(ValidationFailed, match="slug"):
        Tenant.register(slug)


def test_an_unknown_time_zone_is_refused() -> None:
    with pytest.raises(ValidationFailed, match="timezone"):
        Tenant.register("acme", timezone="Europe/Atlantis")


def test_registering_a_slug_twice_is_refused(ledger: Ledger) -> None:
    tenant_id = tenant_id_for("twice")
    ledger.app(tenant_id).create_tenant("twice", None, "UTC", EventMetadata())
    with pytest.raises(AlreadyExists):
        ledger.app(tenant_id).create_tenant("twice", "Again", "UTC", EventMetadata())
    assert ledger.store.head(tenant_id).position == 1


def test_settings_roles_and_webhooks_survive_saving_loading_and_snapshots(
    store: LedgerStore,
) -> None:
    ledger = Ledger(store, snapshot_interval=2)
    slug = f"admin-{uuid4().hex[:8]}"
    tenant_id = tenant_id_for(slug)
    app = ledger.app(tenant_id)
    tenant = app.create_tenant(slug, None, "UTC", EventMetadata())
    wanted = replace(
        tenant.settings(),
        currency="EUR",
        timezone="Europe/Berlin",
        over_receipt_tolerance_pct=Decimal("2.5"),
        period_lock_date=date(2026, 1, 1),
        rate_limit_per_second=7,
        default_removal_policy="fefo",
    )
    tenant.replace_settings(wanted)
    tenant.change_roles({"admin": ["*"], "picker": ["stock:read"]})
    hook_id = tenant.register_webhook(
        "http://127.0.0.1/in", ["*"], "a-secret-of-16-chars", lambda secret: secret.upper()
    )
    tenant.disable_webhook(hook_id)
    app.record(tenant, meta=EventMetadata())

    for fresh in (Ledger(store, snapshot_interval=0), Ledger(store, snapshot_interval=2)):
        loaded: Tenant = fresh.app(tenant_id).load(tenant_id, Tenant)
        assert loaded.settings() == wanted
        assert loaded.roles() == {"admin": frozenset({"*"}), "picker": frozenset({"stock:read"})}
        assert loaded.webhooks() == tenant.webhooks()
        assert loaded.sealed_webhook_secret(hook_id) == "A-SECRET-OF-16-CHARS"
