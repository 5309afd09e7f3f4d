"""Who may do what in a tenant: roles and their permissions, and the tenant's API keys.

An API key is `ldg_<tenant id hex>_<key id>_<secret>`: the tenant and key are named in clear, the
secret is random (256 bits) and only its SHA-256 is recorded, in the tenant's own stream
(`Tenant.ApiKeyIssued`, `Tenant.ApiKeyRevoked`), so the audit feed shows who issued or revoked
which key. A high-entropy secret needs no slow hash: nothing can be guessed from its digest.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

from domain.errors import ValidationFailed

PREFIX = "ldg"
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
