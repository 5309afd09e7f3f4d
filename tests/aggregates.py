"""A minimal aggregate for exercising the event store."""

from __future__ import annotations

from eventsourcing.domain import Aggregate


class Counter(Aggregate):
    """Counts; each increment is one event."""

    class Created(Aggregate.Created):
        name: str

    class Incremented(Aggregate.Event):
        by: int

        def apply(self, aggregate: Aggregate) -> None:
            assert isinstance(aggregate, Counter)
            aggregate.total += self.by

    def __init__(self, name: str) -> None:
        self.name = name
        self.total = 0

    def increment(self, by: int = 1) -> None:
        self.trigger_event(self.Incremented, by=by)
