"""How webhook deliveries are signed, and how a receiver checks them.

Every delivery is an HTTP POST whose body is a JSON object (UTF-8) with these headers:

- ``X-Ledger-Event-Id``: the public event's id (the same on every attempt and every webhook).
- ``X-Ledger-Delivery-Id``: the delivery's id, one per (webhook, event), the same on every
  attempt: receivers deduplicate by it (a delivery may arrive more than once).
- ``X-Ledger-Timestamp``: when this attempt was signed, in Unix seconds.
- ``X-Ledger-Signature``: ``sha256=`` and the lowercase hex HMAC-SHA256, keyed with the webhook's
  secret (its UTF-8 bytes), of ``f"{timestamp}.{body}"``: the timestamp header's value, a full
  stop, then the body's exact bytes.

A receiver recomputes the HMAC over the raw body it received (before parsing it), compares it
with the header in constant time, and refuses a timestamp too far from its own clock (five minutes
is usual), so a captured request cannot be replayed later. In Python::

    expected = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    ok = hmac.compare_digest(f"sha256={expected.hexdigest()}", signature)
    ok = ok and abs(time.time() - int(timestamp)) <= 300

`verify` does exactly that.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Mapping

HEADER_EVENT_ID = "X-Ledger-Event-Id"
HEADER_DELIVERY_ID = "X-Ledger-Delivery-Id"
HEADER_TIMESTAMP = "X-Ledger-Timestamp"
HEADER_SIGNATURE = "X-Ledger-Signature"
SCHEME = "sha256"
#: How far a receiver should let a delivery's timestamp be from its own clock.
TOLERANCE_SECONDS = 300


def signature(secret: str, timestamp: int, body: bytes) -> str:
    """The `X-Ledger-Signature` value of a body signed at `timestamp` with `secret`."""
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"{SCHEME}={mac.hexdigest()}"


def signed_headers(
    secret: str, body: bytes, *, event_id: str, delivery_id: str, timestamp: int
) -> dict[str, str]:
    """The headers of one delivery attempt (content type, ids, timestamp, signature)."""
    return {
        "Content-Type": "application/json",
        HEADER_EVENT_ID: event_id,
        HEADER_DELIVERY_ID: delivery_id,
        HEADER_TIMESTAMP: str(timestamp),
        HEADER_SIGNATURE: signature(secret, timestamp, body),
    }


def verify(
    secret: str,
    headers: Mapping[str, str],
    body: bytes,
    *,
    tolerance: float = TOLERANCE_SECONDS,
    now: float | None = None,
) -> bool:
    """Whether a received delivery was signed with `secret` within `tolerance` seconds of
    `now` (the receiver's clock). `headers` is looked up case-insensitively."""
    lowered = {name.lower(): value for name, value in headers.items()}
    stamp = lowered.get(HEADER_TIMESTAMP.lower(), "")
    given = lowered.get(HEADER_SIGNATURE.lower(), "")
    if not stamp.isdigit() or not given:
        return False
    timestamp = int(stamp)
    if abs((time.time() if now is None else now) - timestamp) > tolerance:
        return False
    return hmac.compare_digest(signature(secret, timestamp, body), given)
