"""Who may do what in a tenant: roles and their permissions, the tenant's API keys, and where
its webhooks may send its events.

An API key is `ldg_<tenant id hex>_<key id>_<secret>`: the tenant and key are named in clear, the
secret is random (256 bits) and only its SHA-256 is recorded, in the tenant's own stream
(`Tenant.ApiKeyIssued`, `Tenant.ApiKeyRevoked`), so the audit feed shows who issued or revoked
which key. A high-entropy secret needs no slow hash: nothing can be guessed from its digest.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import re
import secrets
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from urllib.parse import urlsplit
from uuid import UUID

from domain.errors import ValidationFailed

PREFIX = "ldg"
#: Every permission a role may grant; "*" grants them all.
ALL = "*"
PERMISSIONS = frozenset(
    {
        "stock:read",
        "stock:write",
        "stock:backdate",
        "catalog:read",
        "catalog:write",
        "po:write",
        "so:write",
        "audit:read",
        "admin",
    }
)
#: The role a tenant always keeps, with `admin` or every permission, so it cannot lock itself out.
ADMIN_ROLE = "admin"
ROLE_NAME = re.compile(r"^[a-z0-9_-]{1,64}$")
MAX_ROLES = 100
#: The contract's default role -> permissions map ("*": every permission).
DEFAULT_ROLES: dict[str, frozenset[str]] = {
    "admin": frozenset({"*"}),
    "warehouse_operator": frozenset({"stock:read", "stock:write", "catalog:read"}),
    "purchasing_agent": frozenset({"stock:read", "catalog:read", "po:write"}),
    "sales": frozenset({"stock:read", "catalog:read", "so:write"}),
    "auditor": frozenset({"stock:read", "catalog:read", "audit:read"}),
    "integrator": frozenset(
        {"stock:read", "stock:write", "catalog:read", "catalog:write", "po:write", "so:write"}
    ),
}
_KEY = re.compile(rf"^{PREFIX}_([0-9a-f]{{32}})_([0-9a-f]{{12}})_([A-Za-z0-9_-]{{43}})$")
MAX_NAME = 200


@dataclass(frozen=True)
class ApiKey:
    """An issued key as recorded: never its secret."""

    key_id: str
    name: str
    roles: tuple[str, ...]
    issued_at: datetime
    revoked_at: datetime | None

    @property
    def active(self) -> bool:
        return self.revoked_at is None


@dataclass(frozen=True)
class PresentedKey:
    """A key as a caller presents it, split into its parts."""

    tenant_id: UUID
    key_id: str
    secret: str


def new_key(tenant_id: UUID) -> tuple[str, str, str]:
    """(key id, secret, the whole key) of a fresh key of the tenant."""
    key_id, secret = secrets.token_hex(6), secrets.token_urlsafe(32)
    return key_id, secret, f"{PREFIX}_{tenant_id.hex}_{key_id}_{secret}"


def digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def matches(secret: str, recorded_digest: str) -> bool:
    return hmac.compare_digest(digest(secret), recorded_digest)


def parse_key(text: str) -> PresentedKey | None:
    """The parts of something shaped like a key of this service; None if it is not one."""
    found = _KEY.fullmatch(text)
    if found is None:
        return None
    return PresentedKey(UUID(hex=found[1]), found[2], found[3])


def is_key(text: str) -> bool:
    return text.startswith(f"{PREFIX}_")


def validate_key_name(name: str) -> str:
    stripped = name.strip()
    if not stripped or len(stripped) > MAX_NAME or not stripped.isprintable():
        raise ValidationFailed("name", f"must be 1-{MAX_NAME} printable characters")
    return stripped


def validate_roles(
    roles: list[str] | tuple[str, ...], known: dict[str, frozenset[str]]
) -> list[str]:
    """At least one role, each known to the tenant's role map; duplicates dropped."""
    if not roles:
        raise ValidationFailed("roles", "name at least one role")
    unknown = sorted(set(roles) - set(known))
    if unknown:
        raise ValidationFailed(
            "roles", f"unknown role(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}"
        )
    return list(dict.fromkeys(roles))


def validate_role_map(roles: Mapping[str, Sequence[str]]) -> dict[str, list[str]]:
    """A role -> permissions map a tenant may adopt, its permissions sorted and deduplicated.

    Role names are 1-64 lowercase letters, digits, underscores or hyphens; permissions are the
    known ones or "*"; the `admin` role stays and keeps `admin` (or "*").
    """
    if len(roles) > MAX_ROLES:
        raise ValidationFailed("roles", f"at most {MAX_ROLES} roles")
    checked: dict[str, list[str]] = {}
    for name, permissions in sorted(roles.items()):
        if not ROLE_NAME.fullmatch(name):
            raise ValidationFailed(
                f"roles.{name}", "a role name is 1-64 lowercase letters, digits, _ or -"
            )
        unknown = sorted(set(permissions) - PERMISSIONS - {ALL})
        if unknown:
            raise ValidationFailed(
                f"roles.{name}",
                f"unknown permission(s) {', '.join(unknown)};"
                f" known: {', '.join(sorted(PERMISSIONS))} or {ALL}",
            )
        checked[name] = [ALL] if ALL in permissions else sorted(set(permissions))
    admin = checked.get(ADMIN_ROLE)
    if admin is None or not {ALL, "admin"} & set(admin):
        raise ValidationFailed(
            f"roles.{ADMIN_ROLE}",
            f"the {ADMIN_ROLE} role must stay and keep admin (or {ALL}):"
            " without it nobody could change the roles again",
        )
    return checked


def grants(roles: Mapping[str, Sequence[str]]) -> dict[str, frozenset[str]]:
    """A recorded role map as the permissions each role grants."""
    return {name: frozenset(permissions) for name, permissions in roles.items()}


# -- webhook targets ------------------------------------------------------------------------------

#: A public event type name such as `stock.received`, or "*" for every type.
EVENT_TYPE = re.compile(r"^[a-z_]+(\.[a-z_]+)*$")
MAX_EVENT_TYPES = 100
MAX_URL = 2000
SECRET_LENGTH = (16, 256)
#: Resolves a host and port to the IP addresses it names (raises OSError when it cannot).
Resolver = Callable[[str, int], Sequence[str]]


def validate_webhook_events(
    events: Sequence[str], known: frozenset[str] | None = None
) -> list[str]:
    """At least one public event type (or "*": all of them), deduplicated; names are checked
    against `known` when given, else by their shape."""
    if not events:
        raise ValidationFailed("events", "name at least one event type, or *")
    if len(events) > MAX_EVENT_TYPES:
        raise ValidationFailed("events", f"at most {MAX_EVENT_TYPES} event types")
    if ALL in events:
        return [ALL]
    wrong = sorted(
        name
        for name in set(events)
        if not EVENT_TYPE.fullmatch(name) or (known is not None and name not in known)
    )
    if wrong:
        raise ValidationFailed("events", f"not public event type(s): {', '.join(wrong)}")
    return list(dict.fromkeys(events))


def validate_webhook_secret(secret: str) -> str:
    """The secret deliveries are signed with: 16-256 printable characters."""
    low, high = SECRET_LENGTH
    if not low <= len(secret) <= high or not secret.isprintable():
        raise ValidationFailed("secret", f"must be {low}-{high} printable characters")
    return secret


def validate_webhook_url(url: str) -> tuple[str, int]:
    """An absolute http(s) URL without credentials or fragment; its host and port."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise ValidationFailed("url", "is not a URL") from None
    if len(url) > MAX_URL or not url.isprintable() or " " in url:
        raise ValidationFailed("url", f"must be at most {MAX_URL} printable characters")
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValidationFailed("url", "must be an absolute http:// or https:// URL")
    if parts.username is not None or parts.password is not None or parts.fragment:
        raise ValidationFailed("url", "must carry no credentials and no fragment")
    return parts.hostname, port or (443 if parts.scheme == "https" else 80)


def is_public_address(address: str) -> bool:
    """Whether an IP address is globally routable: not private, loopback, link-local,
    multicast, reserved or unspecified (an IPv4-mapped IPv6 address counts as its IPv4)."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_global and not (
        ip.is_private
        or ip.is_loopback
        or ip.is_link_local
        or ip.is_multicast
        or ip.is_reserved
        or ip.is_unspecified
    )


def check_webhook_target(url: str, resolve: Resolver, *, allow_private: bool) -> str:
    """A webhook URL whose host resolves, to public addresses only unless `allow_private`."""
    host, port = validate_webhook_url(url)
    try:
        addresses = list(resolve(host, port))
    except (OSError, UnicodeError):
        addresses = []
    if not addresses:
        raise ValidationFailed("url", f"the host {host!r} does not resolve")
    if not allow_private:
        private = sorted({a for a in addresses if not is_public_address(a)})
        if private:
            raise ValidationFailed(
                "url",
                f"the host {host!r} resolves to a private, loopback, link-local or reserved"
                f" address ({', '.join(private)}); the operator has not allowed those",
            )
    return url
