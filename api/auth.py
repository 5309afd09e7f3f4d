"""Who is calling: a bearer API key of a tenant or a JWT (HS256 secret or RS256 public key from
settings), its tenant and roles, and the permissions those roles grant in the tenant's current
role map."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
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
#: Seconds a tenant's role map read for JWT callers is reused (a change made through this
#: process takes effect at once; one made elsewhere within this time).
ROLE_MAP_TTL = 5.0
RoleMap = Mapping[str, frozenset[str]]


@dataclass(frozen=True)
class Principal:
    """An authenticated caller: its tenant, who it is, how it authenticated, its roles, and the
    tenant's role map its roles are read in (a role the map lacks grants nothing)."""

    tenant_id: UUID
    subject: str
    kind: str  # "jwt" | "api_key"
    roles: tuple[str, ...]
    role_map: RoleMap = field(default_factory=lambda: DEFAULT_ROLES, compare=False, repr=False)

    def permissions(self, roles: RoleMap | None = None) -> frozenset[str]:
        found = self.role_map if roles is None else roles
        granted: set[str] = set()
        for role in self.roles:
            granted |= found.get(role, frozenset())
        return frozenset(granted)

    def may(self, permission: str) -> bool:
        granted = self.permissions()
        return "*" in granted or permission in granted


class RoleMaps:
    """Each tenant's role map, read from the ledger and kept for `ttl` seconds."""

    def __init__(self, ttl: float = ROLE_MAP_TTL) -> None:
        self.ttl = ttl
        self._maps: dict[UUID, tuple[float, RoleMap]] = {}
        self._lock = threading.Lock()

    def get(self, tenant_id: UUID, load: Callable[[], RoleMap]) -> RoleMap:
        now = time.monotonic()
        with self._lock:
            kept = self._maps.get(tenant_id)
        if kept is not None and now - kept[0] < self.ttl:
            return kept[1]
        found = load()
        self.put(tenant_id, found, now)
        return found

    def put(self, tenant_id: UUID, role_map: RoleMap, at: float | None = None) -> None:
        """Keeps a role map just read (or just changed) for the next requests."""
        with self._lock:
            self._maps[tenant_id] = (time.monotonic() if at is None else at, role_map)


def role_maps(request: Request) -> RoleMaps:
    """The app's role-map cache (`create_app` makes it)."""
    found: RoleMaps = request.app.state.role_maps
    return found


def tenant_roles(request: Request, tenant_id: UUID) -> RoleMap:
    """The tenant's role map as recorded now (the default map for a tenant not registered)."""
    try:
        tenant: Tenant = request.app.state.ledger.app(tenant_id).load(tenant_id, Tenant)
    except NotFound:
        return DEFAULT_ROLES
    return tenant.roles()


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
    """The caller of this request (401 `unauthenticated` without a valid bearer credential),
    kept on `request.state.principal` and passed to the app's `caller_checks` (rate limits)."""
    caller = _caller(request)
    request.state.principal = caller
    checks: list[Callable[[Request, Principal], None]] = request.app.state.caller_checks
    for check in checks:
        check(request, caller)
    return caller


def _caller(request: Request) -> Principal:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Problem("unauthenticated", "send Authorization: Bearer <credential>")
    token = token.strip()
    if is_key(token):
        return _api_key(request, token)
    verify: Callable[[str], Principal] = request.app.state.verify
    caller = verify(token)
    found = role_maps(request).get(
        caller.tenant_id, lambda: tenant_roles(request, caller.tenant_id)
    )
    return replace(caller, role_map=found)


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
    if key is None or tenant is None:
        raise Problem("unauthenticated", "the API key is unknown or revoked")
    role_map = tenant.roles()
    role_maps(request).put(tenant_id, role_map)
    return Principal(tenant_id, key.key_id, "api_key", key.roles, role_map)


Caller = Annotated[Principal, Depends(authenticated)]


def permitted(permission: str, *alternatives: str) -> Callable[[Principal], Principal]:
    """A dependency: the caller, if its roles grant `permission` or one of `alternatives`
    (else 403 `forbidden`)."""
    wanted = (permission, *alternatives)

    def check(caller: Caller) -> Principal:
        if not any(caller.may(name) for name in wanted):
            raise Problem("forbidden", f"this needs the {' or '.join(wanted)} permission")
        return caller

    return check
