"""Deterministic stream ids: the same business key always names the same stream."""

from __future__ import annotations

from uuid import UUID, uuid5

#: Namespace of tenant ids; a tenant's id is derived from its slug.
TENANT_NAMESPACE = UUID("6f1d3c52-8a43-4f0e-9d7a-0b8f4c6e2a91")


def tenant_id_for(slug: str) -> UUID:
    """The tenant id a slug names, forever."""
    return uuid5(TENANT_NAMESPACE, slug)


def stream_id(tenant_id: UUID, kind: str, *key: str) -> UUID:
    """A stream id in the tenant's namespace: ``stream_id(t, "stock-item", sku, warehouse)``."""
    return uuid5(tenant_id, "\x1f".join((kind, *key)))
