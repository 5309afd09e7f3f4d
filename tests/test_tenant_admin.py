"""Tenant administration rules: settings, the role map, and where webhooks may deliver."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import date
from decimal import Decimal
from typing import Any

import pytest

from domain.access import (
    DEFAULT_ROLES,
    Resolver,
    check_webhook_target,
    is_public_address,
    validate_role_map,
    validate_webhook_events,
)
from domain.errors import NotFound, ValidationFailed
from domain.tenant import Tenant
from domain.tenant_settings import TenantSettings

DEFAULTS = TenantSettings(
    timezone="UTC",
    currency="USD",
    over_receipt_tolerance_pct=Decimal(0),
    block_expired_issue=True,
    default_removal_policy="fifo",
    period_lock_date=None,
    rate_limit_per_second=None,
)
SECRET = "s3cret-of-16-chars-or-more"


def sealed(secret: str) -> str:
    """Stands for the service's sealing: any function that hides the secret."""
    return "sealed:" + secret[::-1]


def registered() -> Tenant:
    tenant = Tenant.register("acme")
    tenant.collect_events()
    return tenant


def resolving_to(*addresses: str) -> Resolver:
    def resolve(host: str, port: int) -> Sequence[str]:
        return addresses

    return resolve


def unresolvable(host: str, port: int) -> Sequence[str]:
    raise OSError("Name or service not known")


# -- settings -------------------------------------------------------------------------------------


def test_a_new_tenant_has_the_default_settings() -> None:
    assert registered().settings() == DEFAULTS


def test_a_tenant_recorded_before_the_new_settings_loads_with_their_defaults() -> None:
    tenant = registered()
    for name in ("currency", "default_removal_policy", "rate_limit_per_second", "role_map"):
        tenant.__dict__.pop(name, None)
    assert (tenant.currency, tenant.default_removal_policy) == ("USD", "fifo")
    assert tenant.rate_limit_per_second is None
    assert tenant.roles() == DEFAULT_ROLES


def test_replacing_settings_records_only_the_fields_that_changed() -> None:
    tenant = registered()
    wanted = replace(DEFAULTS, currency="EUR", rate_limit_per_second=25, timezone="Europe/Berlin")
    tenant.replace_settings(wanted)
    events = tenant.collect_events()
    assert [type(e).__name__ for e in events] == ["SettingsChanged"]
    changes = events[0].changes  # type: ignore[attr-defined]
    assert changes == {"currency": "EUR", "rate_limit_per_second": 25, "timezone": "Europe/Berlin"}
    assert tenant.settings() == wanted


def test_replacing_settings_with_the_same_document_records_nothing() -> None:
    tenant = registered()
    tenant.replace_settings(replace(DEFAULTS, over_receipt_tolerance_pct=Decimal("0.00")))
    assert tenant.collect_events() == []


def test_replacing_settings_can_clear_the_period_lock_and_the_rate_limit() -> None:
    tenant = registered()
    tenant.replace_settings(
        replace(DEFAULTS, period_lock_date=date(2026, 1, 1), rate_limit_per_second=5)
    )
    tenant.replace_settings(DEFAULTS)
    assert tenant.collect_events()[-1].changes == {  # type: ignore[attr-defined]
        "period_lock_date": None,
        "rate_limit_per_second": None,
    }
    assert tenant.settings() == DEFAULTS


@pytest.mark.parametrize("currency", ["usd", "US", "XXX", "XAU", "ABC", "DEM", "EURO", ""])
def test_a_currency_outside_the_active_iso_4217_codes_is_refused(currency: str) -> None:
    with pytest.raises(ValidationFailed, match="currency"):
        registered().replace_settings(replace(DEFAULTS, currency=currency))


@pytest.mark.parametrize("currency", ["EUR", "USD", "JPY", "CHF", "GBP", "INR"])
def test_an_active_iso_4217_currency_is_accepted(currency: str) -> None:
    tenant = registered()
    tenant.replace_settings(replace(DEFAULTS, currency=currency))
    assert tenant.currency == currency


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("timezone", "Mars/Olympus"),
        ("default_removal_policy", "lifo"),
        ("rate_limit_per_second", 0),
        ("rate_limit_per_second", True),
        ("over_receipt_tolerance_pct", Decimal(-1)),
        ("over_receipt_tolerance_pct", Decimal("1000.1")),
        ("over_receipt_tolerance_pct", Decimal("NaN")),
    ],
)
def test_an_unacceptable_setting_is_refused_naming_its_field(field: str, value: Any) -> None:
    tenant = registered()
    with pytest.raises(ValidationFailed) as refused:
        tenant.replace_settings(replace(DEFAULTS, **{field: value}))
    assert refused.value.field == field
    assert tenant.collect_events() == []


# -- roles ----------------------------------------------------------------------------------------


def test_a_tenant_starts_with_the_default_role_map() -> None:
    assert registered().roles() == DEFAULT_ROLES


def test_a_changed_role_map_is_in_force_and_recorded_once() -> None:
    tenant = registered()
    roles = {"admin": ["*"], "picker": ["stock:write", "stock:read", "stock:read"]}
    tenant.change_roles(roles)
    tenant.change_roles(roles)
    events = tenant.collect_events()
    assert [type(e).__name__ for e in events] == ["RolesChanged"]
    assert events[0].roles == {  # type: ignore[attr-defined]
        "admin": ["*"],
        "picker": ["stock:read", "stock:write"],
    }
    assert tenant.roles() == {
        "admin": frozenset({"*"}),
        "picker": frozenset({"stock:read", "stock:write"}),
    }


def test_setting_the_default_map_on_a_fresh_tenant_records_nothing() -> None:
    tenant = registered()
    tenant.change_roles({name: sorted(perms) for name, perms in DEFAULT_ROLES.items()})
    assert tenant.collect_events() == []


@pytest.mark.parametrize(
    "roles",
    [
        {"warehouse_operator": ["stock:read"]},
        {"admin": ["stock:read", "audit:read"]},
        {"admin": []},
    ],
)
def test_the_admin_role_cannot_be_removed_or_lose_admin(roles: dict[str, list[str]]) -> None:
    with pytest.raises(ValidationFailed, match="admin role must stay"):
        validate_role_map(roles)


def test_an_admin_role_granting_admin_without_everything_is_enough() -> None:
    assert validate_role_map({"admin": ["admin"]}) == {"admin": ["admin"]}


@pytest.mark.parametrize("name", ["Admin2", "with space", "", "x" * 65, "dots.no", "ümlaut"])
def test_a_role_name_outside_the_allowed_characters_is_refused(name: str) -> None:
    with pytest.raises(ValidationFailed, match="role name"):
        validate_role_map({"admin": ["*"], name: ["stock:read"]})


def test_an_unknown_permission_is_refused() -> None:
    with pytest.raises(ValidationFailed, match="stock:delete"):
        validate_role_map({"admin": ["*"], "picker": ["stock:read", "stock:delete"]})


def test_a_star_among_permissions_grants_every_permission() -> None:
    assert validate_role_map({"admin": ["stock:read", "*"]}) == {"admin": ["*"]}


def test_keys_are_issued_only_with_roles_of_the_current_map() -> None:
    tenant = registered()
    tenant.change_roles({"admin": ["*"], "picker": ["stock:read"]})
    tenant.issue_api_key("scanner", ["picker"])
    with pytest.raises(ValidationFailed, match="unknown role"):
        tenant.issue_api_key("old", ["warehouse_operator"])


# -- webhooks -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "address",
    [
        "10.0.0.1",
        "172.16.5.4",
        "192.168.1.1",
        "127.0.0.1",
        "169.254.1.1",
        "0.0.0.0",
        "224.0.0.1",
        "240.0.0.1",
        "100.64.0.1",
        "::1",
        "fe80::1",
        "fc00::1",
        "::",
        "ff02::1",
        "::ffff:10.0.0.1",
    ],
)
def test_private_loopback_link_local_multicast_reserved_and_unspecified_addresses_are_not_public(
    address: str,
) -> None:
    assert not is_public_address(address)


@pytest.mark.parametrize("address", ["8.8.8.8", "1.1.1.1", "2606:4700:4700::1111"])
def test_globally_routable_addresses_are_public(address: str) -> None:
    assert is_public_address(address)


def test_a_url_resolving_to_any_private_address_is_refused_by_default() -> None:
    resolve = resolving_to("8.8.8.8", "10.0.0.1")
    with pytest.raises(ValidationFailed, match="private") as refused:
        check_webhook_target("https://hooks.example/in", resolve, allow_private=False)
    assert refused.value.field == "url"


def test_a_url_resolving_to_a_private_address_is_accepted_when_the_operator_allows_it() -> None:
    url = "http://127.0.0.1:9000/in"
    assert check_webhook_target(url, resolving_to("127.0.0.1"), allow_private=True) == url


def test_a_url_resolving_to_public_addresses_only_is_accepted() -> None:
    url = "https://hooks.example/in"
    assert check_webhook_target(url, resolving_to("8.8.8.8"), allow_private=False) == url


def test_a_url_whose_host_does_not_resolve_is_refused_even_when_private_is_allowed() -> None:
    with pytest.raises(ValidationFailed, match="does not resolve"):
        check_webhook_target("https://nowhere.invalid/", unresolvable, allow_private=True)


@pytest.mark.parametrize(
    "url",
    [
        "ftp://127.0.0.1/x",
        "/relative/path",
        "http://",
        "https://user:pw@127.0.0.1/",
        "https://127.0.0.1/#frag",
        "http://127.0.0.1:99999/",
        "https://127.0.0.1/" + "x" * 2000,
    ],
)
def test_a_url_that_is_not_an_absolute_http_url_is_refused(url: str) -> None:
    with pytest.raises(ValidationFailed, match="url"):
        check_webhook_target(url, resolving_to("127.0.0.1"), allow_private=True)


@pytest.mark.parametrize("events", [[], ["Stock.Received"], ["stock received"], ["stock."]])
def test_webhook_events_must_be_public_type_names_or_star(events: list[str]) -> None:
    with pytest.raises(ValidationFailed, match="events"):
        validate_webhook_events(events)


def test_webhook_events_are_checked_against_the_known_types_when_given() -> None:
    known = frozenset({"stock.received"})
    assert validate_webhook_events(["stock.received"], known) == ["stock.received"]
    with pytest.raises(ValidationFailed, match=r"stock\.issued"):
        validate_webhook_events(["stock.issued"], known)


def test_a_star_among_webhook_events_means_every_event() -> None:
    assert validate_webhook_events(["stock.received", "*"]) == ["*"]


@pytest.mark.parametrize("secret", ["short", "x" * 257, "sixteen-chars\nxx"])
def test_a_webhook_secret_must_be_16_to_256_printable_characters(secret: str) -> None:
    with pytest.raises(ValidationFailed, match="secret"):
        registered().register_webhook("http://127.0.0.1/in", ["*"], secret, sealed)


def test_a_registered_webhook_keeps_its_secret_only_sealed() -> None:
    tenant = registered()
    hook_id = tenant.register_webhook("http://127.0.0.1/in", ["stock.received"], SECRET, sealed)
    hook = tenant.webhook(hook_id)
    assert (hook.url, hook.events, hook.active) == (
        "http://127.0.0.1/in",
        ("stock.received",),
        True,
    )
    assert SECRET not in repr(hook)
    assert tenant.sealed_webhook_secret(hook_id) == sealed(SECRET)
    events = tenant.collect_events()
    assert [type(e).__name__ for e in events] == ["WebhookRegistered"]
    assert SECRET not in repr(events[0].__dict__)


def test_disabling_a_webhook_is_recorded_once() -> None:
    tenant = registered()
    hook_id = tenant.register_webhook("http://127.0.0.1/in", ["*"], SECRET, sealed)
    tenant.disable_webhook(hook_id)
    tenant.disable_webhook(hook_id)
    names = [type(e).__name__ for e in tenant.collect_events()]
    assert names == ["WebhookRegistered", "WebhookDisabled"]
    assert not tenant.webhook(hook_id).active


def test_disabling_an_unknown_webhook_is_not_found() -> None:
    with pytest.raises(NotFound):
        registered().disable_webhook("no-such-hook")
