"""Random sequences of every stock command, on SQLite, keep the ledger's rules after every step.

A Hypothesis rule-based state machine drives the application service of one tenant (two
products, two warehouses in different time zones, pickable and non-pickable bins, lots with
expiries around a moving business date, backdated corrections, a period lock) and checks, after
each step: no lot-and-bin on-hand goes negative, now or at any business time; reserved never
exceeds on hand; quantities are conserved; policy picks are the policy-ordered prefix of the
eligible stock; replaying the events (with and without snapshots) gives back the state the
commands left behind. A refused command writes nothing; a repeated idempotency key replays the
first outcome; the tenant's hash chain verifies at the end of each run.
"""

from __future__ import annotations

import functools
import shutil
import tempfile
from collections.abc import Callable, Iterable
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any, cast
from uuid import UUID
from zoneinfo import ZoneInfo

import pytest
from eventsourcing.domain import DomainEventProtocol, MutableOrImmutableAggregate
from eventsourcing.persistence import Recording
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    invariant,
    multiple,
    precondition,
    rule,
    run_state_machine_as_test,
)

from domain.allocation import LotStatus, RemovalPolicy, Slice, Take, allocate, policy_order
from domain.errors import (
    DomainError,
    InsufficientStock,
    LotExpired,
    LotUnavailable,
    PeriodLocked,
    UnknownReference,
    ValidationFailed,
)
from domain.ids import tenant_id_for
from domain.inventory import InventoryApplication, StockResult
from domain.lots import Lot
from domain.metadata import EventMetadata
from domain.quantities import ZERO
from domain.stock import Conditions, StockItem
from domain.values import Pick
from eventstore.sqlite import SQLiteLedgerStore

SLUG = "state-machine"
TENANT = tenant_id_for(SLUG)
START = datetime(2025, 3, 1, 9, 0, tzinfo=UTC)
DAY = START.date()
FRESH, BOLT = "FRESH", "BOLT"
SKUS = (FRESH, BOLT)
#: Auckland's business date runs a day ahead of UTC's for half of each UTC day.
WAREHOUSES = {"W1": "UTC", "W2": "Pacific/Auckland"}
BINS = {"P1": True, "P2": True, "QC": False}  # code: pickable
#: Lot ids name one lot per SKU: FRESH's lots expire on these dates, BOLT's never.
EXPIRY = {
    "L1": DAY + timedelta(days=1),
    "L2": DAY + timedelta(days=3),
    "L3": DAY + timedelta(days=6),
    "L4": DAY + timedelta(days=12),
    "L-OLD": DAY - timedelta(days=2),  # already expired when it first arrives
}
UNKNOWN_LOT = "NO-SUCH-LOT"
#: Stock each run opens with: (sku, warehouse, bin, lot), OPENING_QUANTITY of each.
OPENING_QUANTITY = Decimal(8)
OPENING = (
    (FRESH, "W1", "P1", "L1"),
    (FRESH, "W1", "P1", "L2"),
    (FRESH, "W1", "P2", "L3"),
    (FRESH, "W1", "QC", "L4"),
    (FRESH, "W2", "P1", "L2"),
    (FRESH, "W2", "P2", "L3"),
    (BOLT, "W1", "P1", "L1"),
    (BOLT, "W1", "P2", "L2"),
    (BOLT, "W2", "P1", "L3"),
    (BOLT, "W2", "P2", "L2"),
)

skus = st.sampled_from(SKUS)
warehouses = st.sampled_from(tuple(WAREHOUSES))
bins = st.sampled_from(("P1", "P1", "P1", "P2", "P2", "P2", "QC", "QC", "NOWHERE"))
known_lots = st.sampled_from(tuple(EXPIRY))
lots = st.one_of(*[known_lots] * 5, st.just(UNKNOWN_LOT))
maybe_lots = st.none() | lots
mostly_lots = st.one_of(*[known_lots] * 3, st.none())  # none: a generated lot id
rarely_lots = st.none() | st.none() | lots
references = st.sampled_from(("SO-1", "SO-2", "SO-3"))
rarely_references = st.none() | st.none() | references
routes = st.sampled_from((("W1", "W2"), ("W2", "W1")) * 3 + (("W1", "W1"),))
#: Mostly whole units; BOLT (2 decimals) takes the cents, FRESH (0 decimals) refuses them.
cents = st.sampled_from((0,) * 8 + (25, 50, 1))


def units(whole: int, hundredths: int) -> Decimal:
    return Decimal(whole) + Decimal(hundredths) / 100


def quantities(low: int, high: int) -> st.SearchStrategy[Decimal]:
    return st.builds(units, st.integers(low, high), cents)


Command = Callable[[EventMetadata], StockResult]
Outcome = StockResult | DomainError
Place = tuple[str, str]


def valid(sku: str, quantity: Decimal) -> bool:
    return sku == BOLT or quantity == quantity.to_integral_value()


def total(quantities: Iterable[Decimal]) -> Decimal:
    return sum(quantities, ZERO)


def picked(picks: Iterable[Pick]) -> Decimal:
    return total(p.quantity for p in picks)


def placed(picks: Iterable[Pick]) -> list[tuple[str, str, Decimal]]:
    """Picks as (lot, bin, quantity) per take: consecutive picks of one place are one take."""
    takes: list[tuple[str, str, Decimal]] = []
    for pick in picks:
        if takes and takes[-1][:2] == (pick.lot, pick.bin):
            takes[-1] = (pick.lot, pick.bin, takes[-1][2] + pick.quantity)
        else:
            takes.append((pick.lot, pick.bin, pick.quantity))
    return takes


def by_reference(item: StockItem | None) -> dict[str, Decimal]:
    holds = {} if item is None else item.holds
    return {ref: total(h.quantity for h in held) for ref, held in holds.items()}


def by_place(item: StockItem | None) -> dict[Place, Decimal]:
    result: dict[Place, Decimal] = {}
    for held in ({} if item is None else item.holds).values():
        for hold in held:
            result[(hold.lot, hold.bin)] = result.get((hold.lot, hold.bin), ZERO) + hold.quantity
    return result


def without(totals: dict[Any, Decimal], *keys: Any) -> dict[Any, Decimal]:
    return {key: value for key, value in totals.items() if key not in keys}


def expired(item: StockItem, lot: str, today: date) -> bool:
    expires_on = item.expiry[lot]
    return expires_on is not None and expires_on < today


def eligible(item: StockItem, conditions: Conditions) -> set[Slice]:
    """What a policy may take, from the rules: released, unexpired, pickable, unreserved stock."""
    found = set()
    reserved = by_place(item)
    for lot, bin_code in {(layer.lot, layer.bin) for layer in item.layers.values()}:
        place = conditions.bins.get(bin_code)
        usable = item.status[lot] == LotStatus.RELEASED and not expired(item, lot, conditions.today)
        if place is None or not place.pickable or not usable:
            continue
        layers = [la for la in item.layers.values() if (la.lot, la.bin) == (lot, bin_code)]
        free = total(la.quantity for la in layers) - reserved.get((lot, bin_code), ZERO)
        if free > ZERO:
            first = min(la.received_at for la in layers)
            found.add(Slice(lot, bin_code, item.expiry[lot], first, free))
    return found


def spec_key(policy: RemovalPolicy) -> Callable[[Slice], tuple[Any, ...]]:
    """The removal order as issue 3 states it, written independently of `domain.allocation`."""
    if policy is RemovalPolicy.FEFO:
        return lambda s: (
            s.expires_on is None,
            s.expires_on or date.max,
            s.received_at,
            s.lot,
            s.bin,
        )
    return lambda s: (s.received_at, s.lot, s.bin)


def state_of(item: StockItem) -> tuple[dict[str, Any], list[Any]]:
    """Everything a stock item knows; the holds in order too, since the order decides releases."""
    state = {name: value for name, value in vars(item).items() if name != "_pending_events"}
    return state, list(item.holds.items())


def movements(event: object) -> list[tuple[datetime, Place, Decimal]]:
    """How a stock event changed the on-hand of its places, at its effective (business) time."""
    if isinstance(event, StockItem.Received):
        return [(event.effective_at, (event.layer.lot, event.layer.bin), event.layer.quantity)]
    changes = []
    if isinstance(event, StockItem.Removed | StockItem.Moved):
        changes = [(event.effective_at, (p.lot, p.bin), -p.quantity) for p in event.picks]
    if isinstance(event, StockItem.Moved):
        changes += [(event.effective_at, (la.lot, la.bin), la.quantity) for la in event.arrivals]
    return changes


class LiveApplication(InventoryApplication):
    """The application under test; it keeps the stock items it saved: the live state."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.live: dict[UUID, StockItem] = {}
        self.lots_changed: set[tuple[str, str]] = set()  # (sku, lot) of registries written

    def save(
        self,
        *objs: MutableOrImmutableAggregate[UUID] | DomainEventProtocol[UUID] | None,
        **kwargs: Any,
    ) -> list[Recording[UUID]]:
        recordings = super().save(*objs, **kwargs)
        written = {recording.domain_event.originator_id for recording in recordings}
        for obj in objs:
            if isinstance(obj, StockItem):
                self.live[obj.id] = obj
            elif isinstance(obj, Lot) and obj.id in written:
                self.lots_changed.add((obj.sku, obj.lot))
        return recordings


class StockLedgerMachine(RuleBasedStateMachine):
    """One tenant's stock, driven by random commands through the application service."""

    #: (sku, warehouse, reference) of reservations made; later released or issued (or not).
    reservations = Bundle("reservations")

    def __init__(self, seeded: Path) -> None:
        super().__init__()
        self.directory = Path(tempfile.mkdtemp(prefix="stock-", dir=seeded.parent))
        shutil.copyfile(seeded, self.directory / "ledger.db")
        self.store = SQLiteLedgerStore(str(self.directory / "ledger.db"), pool_size=4)
        self.now = START
        factory = self.store.factory_for(TENANT)
        # The live application snapshots every 2nd version; `replayed` folds events only (its
        # factory reads no snapshots), and `snapshotted` starts from the newest snapshot and
        # folds the tail.
        self.app = LiveApplication(TENANT, factory, snapshot_interval=2, clock=self.clock)
        events_only = self.store.factory_for(TENANT, snapshots=False)
        self.replayed = InventoryApplication(
            TENANT, events_only, snapshot_interval=0, clock=self.clock
        )
        self.snapshotted = InventoryApplication(TENANT, factory, snapshot_interval=2)
        self.expected = {(sku, code): ZERO for sku in SKUS for code in WAREHOUSES}
        for sku, warehouse, _, _ in OPENING:
            self.expected[(sku, warehouse)] += OPENING_QUANTITY
        self.block_expired_issue = True
        self.backdate: timedelta | None = None  # of the next command
        self.period_lock: date | None = None
        self.keys = 0
        self.last: tuple[Callable[[], StockResult], StockResult] | None = None
        # The stock items as their events fold, reloaded only when the live one moved on; and
        # the version of each at which the costlier invariants last held.
        self.loaded: dict[Place, StockItem] = {}
        self.checked: dict[str, dict[UUID, int]] = {"time": {}, "replay": {}, "lots": {}}
        # What never changes: the products' rules and the warehouses' bins.
        self.product_rules = {sku: self.replayed.product(sku).rules for sku in SKUS}
        self.bins = {code: self.replayed.warehouse(code).bins for code in WAREHOUSES}

    def clock(self) -> datetime:
        return self.now

    # -- plumbing -------------------------------------------------------------------------------

    def head(self) -> int:
        return self.store.head(TENANT).position

    def items(self) -> dict[Place, StockItem]:
        """The stock items as their events fold (every one is stocked by the seed)."""
        for sku, warehouse in self.expected:
            loaded = self.loaded.get((sku, warehouse))
            live = None if loaded is None else self.app.live.get(loaded.id)
            if loaded is None or (live is not None and live.version != loaded.version):
                item = self.replayed.stock_item(sku, warehouse)
                assert item is not None
                self.loaded[(sku, warehouse)] = item
        return self.loaded

    def unchecked(self, invariant: str) -> list[StockItem]:
        """The items changed since the invariant last held for them (else it still holds)."""
        checked = self.checked[invariant]
        items = [i for i in self.items().values() if checked.get(i.id) != i.version]
        checked.update((item.id, item.version) for item in items)
        return items

    def item(self, sku: str, warehouse: str) -> StockItem | None:
        return self.items().get((sku, warehouse))

    def today(self, warehouse: str) -> date:
        """The warehouse's business date: the date now in its time zone."""
        return self.now.astimezone(ZoneInfo(WAREHOUSES[warehouse])).date()

    def conditions(self, sku: str, warehouse: str) -> Conditions:
        today, rules, bins = self.today(warehouse), self.product_rules[sku], self.bins[warehouse]
        return Conditions(rules, bins, today, self.now, self.block_expired_issue)

    def attempt(self, command: Command, *, stock: bool = True) -> Outcome:
        """Runs a command with a fresh idempotency key; a refusal must have written nothing."""
        self.keys += 1
        effective_at = None if self.backdate is None else self.now - self.backdate
        meta = EventMetadata(idempotency_key=f"cmd-{self.keys}", effective_at=effective_at)
        bound, self.backdate = functools.partial(command, meta), None
        head = self.head()
        outcome: Outcome
        try:
            outcome = bound()
        except DomainError as error:
            outcome = error
        if isinstance(outcome, DomainError):
            assert self.head() == head, f"{outcome!r} refused the command, yet events were written"
        else:
            self.last = (bound, outcome)
            if stock and effective_at is not None and self.period_lock is not None:
                assert effective_at.date() >= self.period_lock, "an entry in a locked period"
        if not stock and effective_at is not None:
            assert isinstance(outcome, ValidationFailed), "configuration took a business time"
        # Commands are a minute apart, so no two receipts share a receipt time and no order
        # rests on a generated (random) lot id: Hypothesis replays each example the same way.
        # Rules therefore read the business date before their command.
        self.now += timedelta(minutes=1)
        return outcome

    def policy_takes(
        self, sku: str, warehouse: str, quantity: Decimal, lot: str | None = None
    ) -> tuple[list[Take], Decimal]:
        """What the policy must take now: a prefix of the eligible slices in policy order."""
        item = self.item(sku, warehouse)
        if item is None:
            return [], quantity
        conditions = self.conditions(sku, warehouse)
        slices = item.slices(conditions, policy_only=True)
        assert set(slices) == eligible(item, conditions)
        ordered = policy_order(conditions.product.policy, slices)
        assert ordered == sorted(slices, key=spec_key(conditions.product.policy))
        return allocate([s for s in ordered if lot is None or s.lot == lot], quantity)

    def check_policy(
        self,
        outcome: Outcome,
        expected: tuple[list[Take], Decimal],
        *,
        partial: bool = False,
        backdated: bool = False,
    ) -> None:
        """Picks are the policy's prefix; a refusal means the stock falls short now (backdated:
        or at some time since the entry's effective time, or the period is locked)."""
        takes, shortage = expected
        if backdated and isinstance(outcome, InsufficientStock | PeriodLocked):
            return
        if isinstance(outcome, StockResult):
            assert shortage == ZERO or (partial and takes), f"short by {shortage}, yet {outcome}"
            assert placed(outcome.picks) == [(t.lot, t.bin, t.quantity) for t in takes]
        else:
            assert isinstance(outcome, InsufficientStock), f"{outcome!r} with {takes} available"
            assert shortage > ZERO, f"{outcome!r}, yet {takes} cover it"
            assert not partial or not takes, f"{outcome!r}, yet {takes} could be reserved"

    def check_shippable(
        self, picks: Iterable[Pick], before: StockItem | None, today: date, *, named: bool
    ) -> None:
        """Shipped stock is of released lots, and unexpired unless a named lot may be expired."""
        assert before is not None
        for pick in picks:
            assert before.status[pick.lot] == LotStatus.RELEASED, f"{pick} of a lot not released"
            if not named or self.block_expired_issue:
                assert not expired(before, pick.lot, today), f"{pick} of an expired lot"

    # -- the business date and the tenant's rule -----------------------------------------------

    @rule(days=st.integers(0, 3), hours=st.integers(0, 23))
    def advance_business_date(self, days: int, hours: int) -> None:
        self.now += timedelta(days=days, hours=hours)

    @rule(block=st.booleans())
    def set_block_expired_issue(self, block: bool) -> None:
        outcome = self.attempt(
            lambda m: self.app.change_settings(m, block_expired_issue=block), stock=False
        )
        if isinstance(outcome, StockResult):
            self.block_expired_issue = block

    @rule(days_ago=st.integers(0, 3))
    def lock_period(self, days_ago: int) -> None:
        lock = self.now.date() - timedelta(days=days_ago)  # the tenant's time zone is UTC
        outcome = self.attempt(
            lambda m: self.app.change_settings(m, period_lock_date=lock), stock=False
        )
        if isinstance(outcome, StockResult):
            self.period_lock = lock

    @rule(hours=st.integers(1, 72))
    def backdate_next_command(self, hours: int) -> None:
        """The next command corrects the past: its entry takes effect some hours ago."""
        self.backdate = timedelta(hours=hours, seconds=30)  # off the commands' minute grid

    # -- commands -------------------------------------------------------------------------------

    @rule(
        sku=skus,
        warehouse=warehouses,
        bin_code=bins,
        qty=quantities(1, 20),
        lot=mostly_lots,
        expiry=st.sampled_from(("right", "right", "right", "none", "wrong")),
    )
    def receive(
        self, sku: str, warehouse: str, bin_code: str, qty: Decimal, lot: str | None, expiry: str
    ) -> None:
        expires_on, cost = self.expiry_for(sku, lot, expiry), "1.25" if sku == FRESH else "0.3"
        outcome = self.attempt(
            lambda m: self.app.receive(
                sku, warehouse, bin_code, qty, cost, m, lot=lot, expires_on=expires_on
            )
        )
        if isinstance(outcome, StockResult):
            assert outcome.lot is not None
            assert lot in (None, outcome.lot)
            self.expected[(sku, warehouse)] += qty

    def expiry_for(self, sku: str, lot: str | None, choice: str) -> date | None:
        """The expiry a receipt states: the lot's own, none, or a conflicting one."""
        if lot is None:
            right = None if sku == BOLT else self.now.date() + timedelta(days=4)
        else:
            registry = self.replayed.lot(sku, lot)
            fresh = EXPIRY[lot] if sku == FRESH else None
            right = fresh if registry is None else registry.expires_on
        if choice == "none":
            return None
        if choice == "wrong":
            return (right or DAY) + timedelta(days=1)
        return right

    @rule(
        sku=skus,
        warehouse=warehouses,
        qty=quantities(1, 12),
        lot=maybe_lots,
        bin_code=st.none() | bins,
    )
    def issue(
        self, sku: str, warehouse: str, qty: Decimal, lot: str | None, bin_code: str | None
    ) -> None:
        by_policy = lot is None and bin_code is None and valid(sku, qty)
        expected = self.policy_takes(sku, warehouse, qty) if by_policy else None
        before, today = self.item(sku, warehouse), self.today(warehouse)
        backdated = self.backdate is not None
        outcome = self.attempt(
            lambda m: self.app.issue(sku, warehouse, qty, "sale", m, lot=lot, bin_code=bin_code)
        )
        if expected is not None:
            self.check_policy(outcome, expected, backdated=backdated)
        if isinstance(outcome, StockResult):
            named = lot is not None
            self.check_shippable(outcome.picks, before, today, named=named)
            assert picked(outcome.picks) == qty
            self.expected[(sku, warehouse)] -= qty
            assert by_reference(self.item(sku, warehouse)) == by_reference(before)

    @rule(
        target=reservations,
        sku=skus,
        warehouse=warehouses,
        qty=quantities(1, 12),
        reference=references,
        lot=rarely_lots,
        partial=st.booleans(),
    )
    def reserve(
        self, sku: str, warehouse: str, qty: Decimal, reference: str, lot: str | None, partial: bool
    ) -> object:
        refusal = self.named_lot_refusal(sku, warehouse, lot)
        expected = self.policy_takes(sku, warehouse, qty, lot) if valid(sku, qty) else None
        before = by_reference(self.item(sku, warehouse))
        backdated = self.backdate is not None
        outcome = self.attempt(
            lambda m: self.app.reserve(
                sku, warehouse, qty, reference, m, lot=lot, allow_partial=partial
            )
        )
        if backdated and isinstance(outcome, PeriodLocked):
            return multiple()
        if refusal is not None and expected is not None:
            assert isinstance(outcome, refusal), f"{outcome!r}, expected {refusal.__name__}"
        elif expected is not None:
            self.check_policy(outcome, expected, partial=partial)
        if isinstance(outcome, StockResult):
            held = picked(outcome.picks)
            assert held + (outcome.shortage or ZERO) == qty
            after = by_reference(self.item(sku, warehouse))
            assert after[reference] == before.get(reference, ZERO) + held
            assert without(after, reference) == without(before, reference)
            return (sku, warehouse, reference)
        return multiple()

    def named_lot_refusal(
        self, sku: str, warehouse: str, lot: str | None
    ) -> type[DomainError] | None:
        """The error a reservation of a named lot must meet, if any."""
        item = self.item(sku, warehouse)
        if lot is None or item is None:
            return None
        if lot not in item.expiry:
            return UnknownReference
        if expired(item, lot, self.today(warehouse)):
            return LotExpired
        if item.status[lot] != LotStatus.RELEASED:
            return LotUnavailable
        return None

    @rule(reservation=reservations)
    def release(self, reservation: tuple[str, str, str]) -> None:
        sku, warehouse, reference = reservation
        before = by_reference(self.item(sku, warehouse))
        locked = self.backdate is not None and self.period_lock is not None
        outcome = self.attempt(lambda m: self.app.release(sku, warehouse, reference, m))
        if not (locked and isinstance(outcome, PeriodLocked)):
            assert isinstance(outcome, StockResult) == (reference in before), outcome
        if isinstance(outcome, StockResult):
            assert by_reference(self.item(sku, warehouse)) == without(before, reference)

    @rule(reservation=reservations, qty=st.none() | quantities(1, 6))
    def issue_reserved(self, reservation: tuple[str, str, str], qty: Decimal | None) -> None:
        sku, warehouse, reference = reservation
        item, today = self.item(sku, warehouse), self.today(warehouse)
        before = by_reference(item)
        outcome = self.attempt(
            lambda m: self.app.issue_reserved(sku, warehouse, reference, m, qty=qty)
        )
        if isinstance(outcome, StockResult):
            self.check_shippable(outcome.picks, item, today, named=False)
            issued = picked(outcome.picks)
            assert issued == (before[reference] if qty is None else qty)
            self.expected[(sku, warehouse)] -= issued
            after = by_reference(self.item(sku, warehouse))
            assert after.get(reference, ZERO) == before[reference] - issued
            assert without(after, reference) == without(before, reference)

    @rule(
        sku=skus,
        warehouse=warehouses,
        from_bin=bins,
        to_bin=bins,
        qty=quantities(1, 12),
        lot=rarely_lots,
        reference=rarely_references,
    )
    def move(
        self,
        sku: str,
        warehouse: str,
        from_bin: str,
        to_bin: str,
        qty: Decimal,
        lot: str | None,
        reference: str | None,
    ) -> None:
        before = self.item(sku, warehouse)
        outcome = self.attempt(
            lambda m: self.app.move(
                sku, warehouse, from_bin, to_bin, qty, m, lot=lot, reference=reference
            )
        )
        if isinstance(outcome, StockResult):
            self.after_move(before, self.item(sku, warehouse), from_bin, to_bin, qty, outcome)
            if reference is None:
                assert by_place(self.item(sku, warehouse)) == by_place(before)

    def after_move(
        self,
        before: StockItem | None,
        after: StockItem | None,
        from_bin: str,
        to_bin: str,
        qty: Decimal,
        outcome: StockResult,
    ) -> None:
        """The quantity left one bin for the other; lots and reservations kept their totals."""
        assert before is not None
        assert after is not None
        assert picked(outcome.picks) == qty
        assert {p.bin for p in outcome.picks} == {from_bin}
        assert after.on_hand(bin_code=from_bin) == before.on_hand(bin_code=from_bin) - qty
        assert after.on_hand(bin_code=to_bin) == before.on_hand(bin_code=to_bin) + qty
        assert all(after.on_hand(lot) == before.on_hand(lot) for lot in before.expiry)
        assert by_reference(after) == by_reference(before)

    @rule(
        sku=skus,
        route=routes,
        to_bin=bins,
        qty=quantities(1, 12),
        lot=rarely_lots,
        from_bin=st.none() | st.none() | bins,
        reference=rarely_references,
    )
    def transfer(
        self,
        sku: str,
        route: tuple[str, str],
        to_bin: str,
        qty: Decimal,
        lot: str | None,
        from_bin: str | None,
        reference: str | None,
    ) -> None:
        source, target = route
        by_policy = lot is None and from_bin is None and reference is None and source != target
        expected = None
        if by_policy and to_bin in BINS and valid(sku, qty):
            expected = self.policy_takes(sku, source, qty)
        before = (self.item(sku, source), self.item(sku, target))
        backdated = self.backdate is not None
        outcome = self.attempt(
            lambda m: self.app.transfer(
                sku,
                source,
                target,
                to_bin,
                qty,
                m,
                lot=lot,
                from_bin=from_bin,
                reference=reference,
            )
        )
        if expected is not None:
            self.check_policy(outcome, expected, backdated=backdated)
        if isinstance(outcome, StockResult):
            assert picked(outcome.picks) == qty
            self.expected[(sku, source)] -= qty
            self.expected[(sku, target)] += qty
            self.after_transfer(sku, route, to_bin, reference, before, outcome)

    def after_transfer(
        self,
        sku: str,
        route: tuple[str, str],
        to_bin: str,
        reference: str | None,
        before: tuple[StockItem | None, StockItem | None],
        outcome: StockResult,
    ) -> None:
        """Reservations stay behind; lot, expiry, receipt time and cost travel with the stock."""
        (source, target), (origin, destination) = route, before
        assert origin is not None
        sent, arrived = self.item(sku, source), self.item(sku, target)
        assert arrived is not None
        held, left = by_reference(origin), by_reference(sent)
        if reference is not None:
            assert left.get(reference, ZERO) == held[reference] - picked(outcome.picks)
        assert without(left, reference) == without(held, reference)
        assert by_reference(arrived) == by_reference(destination)
        first = 1 if destination is None else destination.next_layer
        layers = sorted(
            (la for la in arrived.layers.values() if la.id >= first), key=lambda la: la.id
        )
        assert [(la.lot, la.bin, la.quantity, la.unit_cost, la.received_at) for la in layers] == [
            (p.lot, to_bin, p.quantity, p.unit_cost, origin.layers[str(p.layer)].received_at)
            for p in outcome.picks
        ]
        for pick in outcome.picks:
            assert arrived.expiry[pick.lot] == origin.expiry[pick.lot] == pick.expires_on

    @rule(
        sku=skus,
        warehouse=warehouses,
        bin_code=bins,
        qty=quantities(1, 8),
        negative=st.booleans(),
        lot=maybe_lots,
        unit_cost=st.none() | st.just("0.75"),
    )
    def adjust(
        self,
        sku: str,
        warehouse: str,
        bin_code: str,
        qty: Decimal,
        negative: bool,
        lot: str | None,
        unit_cost: str | None,
    ) -> None:
        delta = -qty if negative else qty
        before = by_reference(self.item(sku, warehouse))
        outcome = self.attempt(
            lambda m: self.app.adjust(
                sku, warehouse, bin_code, delta, "correction", m, lot=lot, unit_cost=unit_cost
            )
        )
        if isinstance(outcome, StockResult):
            self.expected[(sku, warehouse)] += delta
            assert picked(outcome.picks) == (qty if negative else ZERO)
            assert by_reference(self.item(sku, warehouse)) == before

    @rule(
        sku=skus,
        warehouse=warehouses,
        bin_code=bins,
        counted=st.just(ZERO) | quantities(0, 15),
        lot=maybe_lots,
        scan=st.sampled_from(("none", "none", "match", "stale")),
    )
    def count(
        self, sku: str, warehouse: str, bin_code: str, counted: Decimal, lot: str | None, scan: str
    ) -> None:
        before = self.item(sku, warehouse)
        ledger = self.ledger_quantity(before, bin_code, lot)
        expected = {"none": None, "match": ledger, "stale": ledger + 1}[scan]
        outcome = self.attempt(
            lambda m: self.app.count(
                sku, warehouse, bin_code, counted, m, lot=lot, expected=expected
            )
        )
        if scan == "stale":
            assert not isinstance(outcome, StockResult), "a count with a stale scan was recorded"
        if isinstance(outcome, StockResult):
            self.after_count(sku, warehouse, bin_code, counted, before, outcome)

    def ledger_quantity(self, item: StockItem | None, bin_code: str, lot: str | None) -> Decimal:
        """What the ledger holds of the lot in the bin (the bin's only lot when none is named)."""
        if item is None:
            return ZERO
        if lot is None:
            here = sorted({lt for lt, b in item.places() if b == bin_code})
            lot = here[0] if len(here) == 1 else None
        return ZERO if lot is None else item.on_hand(lot, bin_code)

    def after_count(
        self,
        sku: str,
        warehouse: str,
        bin_code: str,
        counted: Decimal,
        before: StockItem | None,
        outcome: StockResult,
    ) -> None:
        """The difference is recorded; a count below the reserved releases just the shortfall."""
        assert before is not None
        assert outcome.lot is not None
        assert outcome.difference is not None
        place = (outcome.lot, bin_code)
        assert outcome.difference == counted - before.on_hand(*place)
        self.expected[(sku, warehouse)] += outcome.difference
        reserved, after = by_place(before), by_place(self.item(sku, warehouse))
        assert after.get(place, ZERO) == min(reserved.get(place, ZERO), counted)
        assert without(after, place) == without(reserved, place)

    @rule(sku=skus, lot=lots, status=st.sampled_from(("released", "hold", "quarantine") * 2))
    def set_lot_status(self, sku: str, lot: str, status: str) -> None:
        exists = self.replayed.lot(sku, lot) is not None
        locked = self.backdate is not None and self.period_lock is not None
        outcome = self.attempt(lambda m: self.app.set_lot_status(sku, lot, status, m))
        if not (locked and isinstance(outcome, PeriodLocked)):
            assert isinstance(outcome, StockResult) == exists, outcome

    @rule(sku=skus, warehouse=warehouses, lot=rarely_lots)
    def write_off_expired(self, sku: str, warehouse: str, lot: str | None) -> None:
        before, today = self.item(sku, warehouse), self.today(warehouse)
        backdated = self.backdate is not None
        outcome = self.attempt(lambda m: self.app.write_off_expired(sku, warehouse, m, lot=lot))
        if lot is None and not backdated:
            assert isinstance(outcome, StockResult), f"{outcome!r}"
        if isinstance(outcome, StockResult) and before is not None:
            gone = {lt for lt in before.expiry if expired(before, lt, today) and lot in (None, lt)}
            written_off = total(la.quantity for la in before.layers.values() if la.lot in gone)
            assert picked(outcome.picks) == written_off
            self.expected[(sku, warehouse)] -= written_off
            after = self.item(sku, warehouse)
            assert after is not None
            assert all(layer.lot not in gone for layer in after.layers.values())
            kept = {place: q for place, q in by_place(before).items() if place[0] not in gone}
            assert by_place(after) == kept

    @precondition(lambda self: self.last is not None)
    @rule()
    def repeat_last_command(self) -> None:
        """The same idempotency key again returns the first outcome and appends nothing."""
        assert self.last is not None
        command, first = self.last
        head = self.head()
        again = command()
        assert again.replayed
        assert self.head() == head
        assert (again.position, again.picks, again.lot, again.difference, again.shortage) == (
            first.position,
            first.picks,
            first.lot,
            first.difference,
            first.shortage,
        )

    # -- invariants -----------------------------------------------------------------------------

    @invariant()
    def no_lot_and_bin_goes_negative(self) -> None:
        for item in self.items().values():
            assert all(layer.quantity > ZERO for layer in item.layers.values()), item.layers

    @invariant()
    def no_lot_and_bin_was_ever_negative_in_business_time(self) -> None:
        """Backdated entries included: the on-hand of each place, in effective-time order."""
        for item in self.unchecked("time"):
            changes = [m for event in self.replayed.events.get(item.id) for m in movements(event)]
            balance: dict[Place, Decimal] = {}
            for at, place, delta in sorted(changes, key=lambda change: change[0]):
                balance[place] = balance.get(place, ZERO) + delta
                assert balance[place] >= ZERO, (item.sku, item.warehouse, place, at)

    @invariant()
    def reserved_never_exceeds_on_hand(self) -> None:
        for item in self.items().values():
            for place, reserved in by_place(item).items():
                assert reserved <= item.on_hand(*place), (item.sku, item.warehouse, place)
            assert all(h.quantity > ZERO for held in item.holds.values() for h in held)

    @invariant()
    def quantity_is_conserved(self) -> None:
        """Receipts - issues + adjustments + counts + transfers in - transfers out = on hand."""
        for (sku, warehouse), expected in self.expected.items():
            item = self.item(sku, warehouse)
            assert (ZERO if item is None else item.on_hand()) == expected, (sku, warehouse)

    @invariant()
    def a_lot_has_one_expiry_and_status_wherever_it_is(self) -> None:
        """Checked for the items and the registries that changed since it last held."""
        changed, self.app.lots_changed = self.app.lots_changed, set()
        unchecked = {item.id for item in self.unchecked("lots")}
        registries: dict[tuple[str, str], Lot | None] = {}
        for item in self.items().values():
            for lot, expires_on in item.expiry.items():
                if item.id not in unchecked and (item.sku, lot) not in changed:
                    continue
                if (item.sku, lot) not in registries:
                    registries[(item.sku, lot)] = self.replayed.lot(item.sku, lot)
                registry = registries[(item.sku, lot)]
                assert registry is not None, lot
                assert (expires_on, item.status[lot]) == (registry.expires_on, registry.status)
                assert item.warehouse in registry.warehouses

    @invariant()
    def replay_and_snapshots_give_the_live_state(self) -> None:
        for item in self.unchecked("replay"):  # `item` was folded from its events alone
            live = self.app.live.get(item.id)
            if live is not None:  # else no command wrote to it yet
                assert state_of(item) == state_of(live)
                assert state_of(self.snapshotted.repository.get(item.id)) == state_of(live)

    def teardown(self) -> None:
        try:
            verification = self.store.verify(TENANT)
            assert verification.ok, verification
        finally:
            self.store.close()
            shutil.rmtree(self.directory, ignore_errors=True)


def seed(template: Path, directory: Path) -> Path:
    """A migrated ledger with the tenant, its catalog and the opening stock, copied by each run."""
    path = directory / "seeded.db"
    shutil.copyfile(template, path)
    with SQLiteLedgerStore(str(path)) as store:
        factory = store.factory_for(TENANT)
        app = InventoryApplication(TENANT, factory, snapshot_interval=2, clock=lambda: START)
        meta = EventMetadata()
        app.create_tenant(SLUG, "State machine", "UTC", meta)
        for code, timezone in WAREHOUSES.items():
            app.register_warehouse(code, f"Site {code}", timezone, meta)
            for bin_code, pickable in BINS.items():
                app.add_bin(code, bin_code, meta, pickable=pickable)
        fresh = {"lot_tracked": True, "expiry_tracked": True, "shelf_life_days": 5}
        app.register_product(FRESH, "Milk", meta, removal_policy="fefo", **fresh)
        app.register_product(BOLT, "Hex bolt M8", meta, uom="kg", decimals=2)
        for sku, warehouse, bin_code, lot in OPENING:
            expires_on = EXPIRY[lot] if sku == FRESH else None
            app.receive(
                sku,
                warehouse,
                bin_code,
                OPENING_QUANTITY,
                "1",
                meta,
                lot=lot,
                expires_on=expires_on,
            )
    return path


# Shrinking a failure may take Hypothesis up to five minutes; under the default timeout the
# minimal failing sequence would never be printed.
@pytest.mark.timeout(900)
def test_random_stock_commands_keep_every_ledger_rule(
    sqlite_template: Path, tmp_path: Path
) -> None:
    seeded = seed(sqlite_template, tmp_path)

    def machine() -> StockLedgerMachine:
        return StockLedgerMachine(seeded)

    # Hypothesis accepts any factory returning a machine; its annotation only names classes.
    factory = cast("type[RuleBasedStateMachine]", machine)
    settings_ = settings(max_examples=100, stateful_step_count=40, deadline=None)
    run_state_machine_as_test(factory, settings=settings_)


def lot_status_from_a_snapshot(machine: StockLedgerMachine) -> None:
    machine.set_lot_status(sku=FRESH, lot="L1", status="hold")  # the lot is snapshotted
    machine.receive(FRESH, "W1", "P1", units(1, 0), lot="L1", expiry="right")


def keyed_command_that_changed_nothing(machine: StockLedgerMachine) -> None:
    machine.set_block_expired_issue(block=True)  # already so: no event
    machine.repeat_last_command()


def backdated_release_in_a_locked_period(machine: StockLedgerMachine) -> None:
    machine.lock_period(days_ago=0)
    reservation = machine.reserve(FRESH, "W1", units(1, 0), "SO-1", lot=None, partial=False)
    assert isinstance(reservation, tuple)
    machine.backdate_next_command(hours=10)
    machine.release(reservation)


def backdated_lot_status_in_a_locked_period(machine: StockLedgerMachine) -> None:
    machine.lock_period(days_ago=0)
    machine.backdate_next_command(hours=10)
    machine.set_lot_status(sku=FRESH, lot="L1", status="hold")


def backdated_settings_change(machine: StockLedgerMachine) -> None:
    machine.receive(FRESH, "W1", "P1", units(1, 0), lot="L1", expiry="right")
    machine.lock_period(days_ago=0)
    machine.backdate_next_command(hours=10)
    machine.set_block_expired_issue(block=False)


def backdated_period_lock(machine: StockLedgerMachine) -> None:
    machine.lock_period(days_ago=0)
    machine.backdate_next_command(hours=10)
    machine.lock_period(days_ago=0)


@pytest.mark.parametrize(
    "steps",
    [
        backdated_settings_change,
        backdated_period_lock,
        lot_status_from_a_snapshot,
        keyed_command_that_changed_nothing,
        backdated_release_in_a_locked_period,
        backdated_lot_status_in_a_locked_period,
    ],
)
def test_the_sequences_the_machine_once_failed_on_keep_every_rule(
    sqlite_template: Path, tmp_path: Path, steps: Callable[[StockLedgerMachine], None]
) -> None:
    machine = StockLedgerMachine(seed(sqlite_template, tmp_path))
    try:
        steps(machine)
    finally:
        machine.teardown()
