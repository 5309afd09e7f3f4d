"""The benchmarks' aggregate: one explicit event class and one integer of state.

It lives in its own module (not in ``bench.append``) so that its event topics are
``bench.counter:Counter.Incremented`` and not ``__main__:...`` when run with ``python -m``.
"""

from __future__ import annotations

from typing import Any

from eventsourcing.domain import Aggregate


class Counter(Aggregate):
    """Counts; every increment is one event."""

    class Incremented(Aggregate.Event):
        """The count went up by `amount`."""

        amount: int

        def apply(self, aggregate: Any) -> None:
            aggregate.count += self.amount

    def __init__(self) -> None:
        self.count = 0

    def increment(self, amount: int = 1) -> None:
        self.trigger_event(self.Incremented, amount=amount)
