"""Per-tenant rate limits shared by every replica: a counter per tenant and one-second window in
the database, moved by one upsert per request."""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from uuid import UUID

from sqlalchemy import (
    BigInteger,
    Column,
    Engine,
    Executable,
    Integer,
    MetaData,
    Table,
    Uuid,
    bindparam,
    delete,
)
from sqlalchemy.dialects import postgresql, sqlite

from api.problems import Problem

RATE_LIMITS = Table(
    "api_rate_limits",
    MetaData(),
    Column("tenant_id", Uuid, primary_key=True),
    Column("window_start", BigInteger, primary_key=True),
    Column("count", Integer, nullable=False),
)
#: Seconds a tenant's limit is used before it is read again.
LIMIT_CACHE_SECONDS = 5.0
#: How often a replica deletes windows older than `KEEP_SECONDS`.
CLEANUP_SECONDS = 60.0
KEEP_SECONDS = 60


class RateLimited(Problem):
    """429 `rate-limited`: the tenant is over its rate until its window ends."""

    def __init__(self, limit: int, retry_after: int) -> None:
        super().__init__(
            "rate-limited",
            f"more than {limit} requests in one second; retry after {retry_after} s",
            limit=limit,
            retry_after=retry_after,
        )
        self.retry_after = retry_after


class RateLimiter:
    """Counts each tenant's requests in fixed one-second windows, across replicas."""

    def __init__(
        self,
        engine: Engine,
        limit_of: Callable[[UUID], int | None],
        default: int,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.engine = engine
        self.limit_of = limit_of
        self.default = default
        self.clock = clock
        self._limits: dict[UUID, tuple[float, int]] = {}
        self._lock = threading.Lock()
        self._cleaned = clock()
        self._count = _upsert(engine.dialect.name)

    def check(self, tenant_id: UUID) -> None:
        """Counts a request of the tenant; `RateLimited` when it is one too many."""
        now = self.clock()
        window = math.floor(now)
        limit = self.limit(tenant_id, now)
        with self.engine.begin() as conn:
            count = conn.scalar(self._count, {"tenant_id": tenant_id, "window_start": window})
            if now - self._cleaned >= CLEANUP_SECONDS:
                self._cleaned = now
                old = RATE_LIMITS.c.window_start < window - KEEP_SECONDS
                conn.execute(delete(RATE_LIMITS).where(old))
        if count is not None and count > limit:
            raise RateLimited(limit, max(1, math.ceil(window + 1 - now)))

    def limit(self, tenant_id: UUID, now: float) -> int:
        """The tenant's requests per second (its setting, else the service default), cached."""
        with self._lock:
            cached = self._limits.get(tenant_id)
        if cached is not None and cached[0] > now:
            return cached[1]
        limit = self.limit_of(tenant_id) or self.default
        with self._lock:
            if len(self._limits) > 10_000:
                self._limits.clear()
            self._limits[tenant_id] = (now + LIMIT_CACHE_SECONDS, limit)
        return limit


def _upsert(dialect: str) -> Executable:
    """INSERT ... ON CONFLICT DO UPDATE SET count = count + 1 RETURNING count (one statement)."""
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    statement = insert(RATE_LIMITS).values(
        tenant_id=bindparam("tenant_id", type_=Uuid()),
        window_start=bindparam("window_start", type_=BigInteger()),
        count=1,
    )
    return statement.on_conflict_do_update(
        index_elements=[RATE_LIMITS.c.tenant_id, RATE_LIMITS.c.window_start],
        set_={"count": RATE_LIMITS.c.count + 1},
    ).returning(RATE_LIMITS.c.count)
