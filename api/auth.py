"""Who is calling: a bearer API key of a tenant or a JWT (HS256 secret or RS256 public key from
settings), its tenant and roles, and the permissions those roles grant."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any
from uuid import UUID

import jwt
from fastapi import Depends, Request

from api.problems import Problem
from domain.access import DEFAULT_ROLES, is_key, parse_key
from domain.errors import NotFound
from domain.tenant import Tenant
from ledger.settings import Settings

REQUIRED_CLAIMS = ("sub", "tenant_id", "roles", "exp")


@dataclass(frozen=True)
class Principal:
    """An authenticated caller: its tenant, who it is, how it authenticated, its roles."""

    tenant_id: UUID
    subject: str
    kind: str  # "jwt" | "api_key"
    roles: tuple[str, ...]

    def permissions(self, roles: dict[str, frozenset[str]] = DEFAULT_ROLES) -> frozenset[str]:
        granted: set[str] = set()
        for role in self.roles:
            granted |= roles.get(role, frozenset())
        return frozenset(granted)

    def may(self, permission: str) -> bool:
        granted = self.permissions()
        return "*" in granted or permission in granted


def verifier(settings: Settings) -> Callable[[str], Principal]:
    """Checks a bearer token against the configured key; raises `Problem("unauthenticated")`."""
    if settings.jwt_public_key:
        key: str = settings.jwt_public_key
        algorithms = ["RS256"]
    elif settings.jwt_secret:
        key, algorithms = settings.jwt_secret.get_secret_value(), ["HS256"]
    else:
        key, algorithms = "", []
    options: jwt.types.Options = {
        "require": list(REQUIRED_CLAIMS),
        "verify_aud": settings.jwt_audience is not None,
    }

    def verify(token: str) -> Principal:
        if not algorithms:
            raise Problem("unauthenticated", "no credential is accepted: no JWT key is configured")
        try:
            claims = jwt.decode(
                token,
                key,
                algorithms=algorithms,
                issuer=settings.jwt_issuer,
                audience=settings.jwt_audience,
                options=options,
            )
        except jwt.ExpiredSignatureError:
            raise Problem("unauthenticated", "the credential has expired") from None
        except jwt.InvalidTokenError as error:
            raise Problem("unauthenticated", f"the credential is not valid: {error}") from None
        return _principal(claims)

    return verify


def _principal(claims: dict[str, Any]) -> Principal:
    try:
        tenant_id = UUID(str(claims["tenant_id"]))
    except ValueError:
        raise Problem("unauthenticated", "the credential's tenant_id is not a UUID") from None
    roles = claims["roles"]
    if not isinstance(roles, list) or not all(isinstance(role, str) for role in roles):
        raise Problem("unauthenticated", "the credential's roles are not a list of names")
    return Principal(tenant_id, str(claims["sub"]), "jwt", tuple(roles))


def authenticated(request: Request) -> Principal:
    """The caller of this request (401 `unauthenticated` without a valid bearer credential)."""
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Problem("unauthenticated", "send Authorization: Bearer <credential>")
    token = token.strip()
    if is_key(token):
        return _api_key(request, token)
    verify: Callable[[str], Principal] = request.app.state.verify
    return verify(token)


def _api_key(request: Request, token: str) -> Principal:
    """The tenant's active key this token is (its tenant read from the ledger)."""
    presented = parse_key(token)
    if presented is None:
        raise Problem("unauthenticated", "the API key is malformed")
    tenant_id = presented.tenant_id
    tenant: Tenant | None
    try:
        tenant = request.app.state.ledger.app(tenant_id).load(tenant_id, Tenant)
    except NotFound:
        tenant = None
    key = None if tenant is None else tenant.authenticate(presented.key_id, presented.secret)
    if key is None:
        raise Problem("unauthenticated", "the API key is unknown or revoked")
    return Principal(tenant_id, key.key_id, "api_key", key.roles)


Caller = Annotated[Principal, Depends(authenticated)]


def permitted(permission: str) -> Callable[[Principal], Principal]:
    """A dependency: the caller, if its roles grant `permission` (else 403 `forbidden`)."""

    def check(caller: Caller) -> Principal:
        if not caller.may(permission):
            raise Problem("forbidden", f"this needs the {permission} permission")
        return caller

    return check
