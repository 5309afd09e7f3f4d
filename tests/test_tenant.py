"""The tenant aggregate and its registration."""

from __future__ import annotations

import pytest

from domain.errors import AlreadyExists, ValidationFailed
from domain.ids import tenant_id_for
from domain.metadata import EventMetadata
from domain.tenant import Tenant
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
