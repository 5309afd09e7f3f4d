"""Who and what caused a change: recorded beside every event of a save."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal
from uuid import UUID

ActorKind = Literal["api_key", "jwt", "cli", "system"]


@dataclass(frozen=True)
class Actor:
    """The credential that issued a command."""

    kind: ActorKind
    id: str
    roles: tuple[str, ...] = ()

    def as_dict(self) -> dict[str, object]:
        return {"kind": self.kind, "id": self.id, "roles": list(self.roles)}


SYSTEM_ACTOR = Actor(kind="system", id="ledger")


@dataclass(frozen=True)
class EventMetadata:
    """Recorded with each event of a save; `effective_at` is business time (None: recorded)."""

    actor: Actor = SYSTEM_ACTOR
    request_id: str | None = None
    idempotency_key: str | None = None
    causation_id: UUID | None = None
    effective_at: datetime | None = field(default=None)

    def __post_init__(self) -> None:
        if self.effective_at is not None and self.effective_at.utcoffset() is None:
            raise ValueError("effective_at must carry a time zone offset")
