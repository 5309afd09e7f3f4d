"""The public change feed (`GET /v1/events`) and its event types (`GET /v1/event-types`)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, Field, JsonValue

from api.auth import Principal, authenticated, permitted
from api.pages import MAX_POSITION, Cursor, Limit, Page
from api.problems import Problem, problem_responses
from ledger.public_events import TYPES, PublicEvent, PublicType, public_events

router = APIRouter(prefix="/v1", tags=["events"])
Reader = Annotated[Principal, Depends(permitted("stock:read"))]
#: At most this many positions are read for one page; a sparse type filter answers with fewer
#: items (maybe none) and a cursor to go on from.
SCAN = 10_000

PROBLEMS = problem_responses(
    {
        403: "`forbidden`: needs `stock:read`",
        422: "`validation-error`: e.g. an unknown type in `types`",
    }
)
#: What the event-type routes may answer: any authenticated route's errors.
TYPE_PROBLEMS = problem_responses({})
TYPE_NOT_FOUND = problem_responses({404: "`not-found`: no such public event type"})
After = Annotated[int, Query(ge=0, le=MAX_POSITION, description="Events after this position.")]


class PublicEventItem(BaseModel):
    """A public event: its type and version name the JSON Schema its `data` follows."""

    event_id: str
    position: int
    type: str
    version: int
    stream: str
    recorded_at: str
    effective_at: str
    data: dict[str, JsonValue]


class PublicEventPage(Page):
    items: list[PublicEventItem]


class EventTypeItem(BaseModel):
    """A public event type, its version, meaning and the JSON Schema of its `data`."""

    type: str
    version: int
    description: str
    schema_: dict[str, JsonValue] = Field(serialization_alias="schema")


class EventTypeList(BaseModel):
    items: list[EventTypeItem]


def _invalid(field: str, message: str) -> Problem:
    return Problem(
        "validation-error",
        "the request is not valid",
        errors=[{"field": f"query.{field}", "message": message}],
    )


def _position_of(cursor: str) -> int:
    """The position a cursor of this list names (a plain decimal position)."""
    digits = cursor.isascii() and cursor.isdigit() and len(cursor) <= len(str(MAX_POSITION))
    if not digits or int(cursor) > MAX_POSITION:
        raise _invalid("cursor", "not a cursor of this list")
    return int(cursor)


def _types(types: str | None) -> frozenset[str] | None:
    """The type names of a comma list (none: every type); 422 for a name that is not a public
    type."""
    names = frozenset(name.strip() for name in (types or "").split(",") if name.strip())
    if not names:
        return None
    unknown = sorted(names - TYPES.keys())
    if unknown:
        raise _invalid("types", f"unknown event types: {', '.join(unknown)}")
    return names


def _item(event: PublicEvent) -> PublicEventItem:
    return PublicEventItem.model_validate(event.as_dict())


def _type_item(kind: PublicType) -> EventTypeItem:
    return EventTypeItem(
        type=kind.name, version=kind.version, description=kind.description, schema_=kind.schema
    )


@router.get(
    "/events",
    response_model=PublicEventPage,
    summary="The tenant's public events in position order: the change feed for integrators",
    responses=PROBLEMS,
)
def list_events(
    request: Request,
    caller: Reader,
    after: After = 0,
    types: Annotated[
        str | None, Query(description="Only these public types (a comma-separated list).")
    ] = None,
    limit: Limit = 100,
    cursor: Cursor = None,
) -> PublicEventPage:
    """The tenant's public events in position order: the change feed for integrators."""
    wanted = _types(types)
    if cursor is not None:
        after = _position_of(cursor)
    store = request.app.state.ledger.store
    head = store.head(caller.tenant_id).position
    last = min(head, after + SCAN)
    items: list[PublicEventItem] = []
    found = public_events(store, caller.tenant_id, after, last, wanted, window=max(limit, 100))
    for event in found:
        items.append(_item(event))
        if len(items) == limit:
            last = event.position
            break
    return PublicEventPage(
        items=items, next_cursor=str(last) if last < head else None, position=head
    )


@router.get(
    "/event-types",
    response_model=EventTypeList,
    summary="The public event types with their versions and the JSON Schemas of their data",
    responses=TYPE_PROBLEMS,
    dependencies=[Depends(authenticated)],
)
def list_event_types() -> EventTypeList:
    """The public event types with their versions and the JSON Schemas of their data."""
    return EventTypeList(items=[_type_item(kind) for kind in TYPES.values()])


@router.get(
    "/event-types/{name}",
    response_model=EventTypeItem,
    summary="One public event type with the JSON Schema of its data",
    responses=TYPE_NOT_FOUND,
    dependencies=[Depends(authenticated)],
)
def get_event_type(name: str) -> EventTypeItem:
    """One public event type with the JSON Schema of its data."""
    kind = TYPES.get(name)
    if kind is None:
        raise Problem("not-found", f"no public event type {name!r}")
    return _type_item(kind)
