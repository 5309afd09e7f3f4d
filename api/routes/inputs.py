"""What request values share: nothing in a body that the ledger could not record as JSON, no
NUL character in a filter (the databases cannot compare text with one)."""

from __future__ import annotations

from typing import Annotated, Any

import orjson
from pydantic import AfterValidator, BaseModel, model_validator
from pydantic_core import PydanticCustomError

from domain.idempotency import encoding_problem

#: Free-form attributes: at most this many keys, and this many bytes as JSON.
MAX_ATTRIBUTES = 64
MAX_ATTRIBUTE_BYTES = 16 * 1024


class Body(BaseModel):
    """A request body: a lone surrogate in any string (text that is not valid Unicode, so can
    be neither fingerprinted nor stored) is a `validation-error`. Integers are left to each
    field's bounds (and free-form ones to `attributes_in`)."""

    @model_validator(mode="before")
    @classmethod
    def _recordable(cls, data: Any) -> Any:
        found = encoding_problem(data, integers=False)
        if found is not None:
            field, message = found
            raise PydanticCustomError(
                "unrecordable", "{field}: {message}", {"field": field, "message": message}
            )
        return data


def attributes_in(attributes: dict[str, Any]) -> dict[str, Any]:
    """Free-form product attributes that can be recorded: JSON-encodable, at most
    `MAX_ATTRIBUTES` keys and `MAX_ATTRIBUTE_BYTES` bytes encoded."""
    if len(attributes) > MAX_ATTRIBUTES:
        raise ValueError(f"at most {MAX_ATTRIBUTES} attributes")
    try:
        encoded = orjson.dumps(attributes)
    except orjson.JSONEncodeError as error:
        raise ValueError(f"cannot be recorded as JSON ({error})") from None
    if len(encoded) > MAX_ATTRIBUTE_BYTES:
        raise ValueError(f"at most {MAX_ATTRIBUTE_BYTES} bytes as JSON")
    return attributes


def _without_nul(value: str | None) -> str | None:
    if value is not None and "\x00" in value:
        raise ValueError("must not contain a NUL character")
    return value


#: A text filter of a query (a SKU, warehouse, bin, lot or reference to match).
Filter = Annotated[str | None, AfterValidator(_without_nul)]
