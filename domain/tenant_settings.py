"""A tenant's settings and how they are checked: slug, names, time zone, currency, tolerances,
rate limit; and the webhook view administrators see."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from domain.errors import ValidationFailed

SLUG_PATTERN = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")
MAX_NAME_LENGTH = 200
MAX_TOLERANCE_PCT = Decimal(1000)
ZERO = Decimal(0)
#: Active ISO 4217 currencies a tenant may keep its books in (no funds, metals or test codes).
_ISO_4217 = """
    AED AFN ALL AMD AOA ARS AUD AWG AZN BAM BBD BDT BGN BHD BIF BMD BND BOB BRL BSD BTN BWP
    BYN BZD CAD CDF CHF CLP CNY COP CRC CUP CVE CZK DJF DKK DOP DZD EGP ERN ETB EUR FJD FKP GBP
    GEL GHS GIP GMD GNF GTQ GYD HKD HNL HTG HUF IDR ILS INR IQD IRR ISK JMD JOD JPY KES KGS KHR
    KMF KPW KRW KWD KYD KZT LAK LBP LKR LRD LSL LYD MAD MDL MGA MKD MMK MNT MOP MRU MUR MVR MWK
    MXN MYR MZN NAD NGN NIO NOK NPR NZD OMR PAB PEN PGK PHP PKR PLN PYG QAR RON RSD RUB RWF SAR
    SBD SCR SDG SEK SGD SHP SLE SOS SRD SSP STN SVC SYP SZL THB TJS TMT TND TOP TRY TTD TWD TZS
    UAH UGX USD UYU UZS VED VES VND VUV WST XAF XCD XCG XOF XPF YER ZAR ZMW ZWG"""
CURRENCIES = frozenset(_ISO_4217.split())
DEFAULT_CURRENCY = "USD"
REMOVAL_POLICIES = ("fifo", "fefo")
MAX_RATE_LIMIT = 1_000_000
MAX_ACTIVE_WEBHOOKS = 100


def validate_slug(slug: str) -> str:
    """Slugs are 1-63 lowercase letters, digits and inner hyphens (DNS-label rules)."""
    if not SLUG_PATTERN.fullmatch(slug):
        raise ValidationFailed(
            "slug", f"{slug!r} must be 1-63 lowercase letters, digits or inner hyphens"
        )
    return slug


def validate_timezone(timezone: str) -> str:
    """A time zone is an IANA name such as ``Europe/Berlin``."""
    if timezone not in available_timezones():
        try:
            ZoneInfo(timezone)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValidationFailed(
                "timezone", f"{timezone!r} is not an IANA time zone name"
            ) from None
    return timezone


def validate_currency(currency: str) -> str:
    """A currency is an active ISO 4217 code in capitals, such as ``EUR``."""
    if currency not in CURRENCIES:
        raise ValidationFailed("currency", f"{currency!r} is not an active ISO 4217 currency code")
    return currency


def validate_tolerance(tolerance: Decimal) -> Decimal:
    if not tolerance.is_finite() or not ZERO <= tolerance <= MAX_TOLERANCE_PCT:
        raise ValidationFailed(
            "over_receipt_tolerance_pct", f"must be from 0 to {MAX_TOLERANCE_PCT}"
        )
    return tolerance


def validate_rate_limit(limit: int | None) -> int | None:
    """Requests per second, 1 or more; None: the service's default."""
    if limit is not None and (isinstance(limit, bool) or not 1 <= limit <= MAX_RATE_LIMIT):
        raise ValidationFailed(
            "rate_limit_per_second", f"must be from 1 to {MAX_RATE_LIMIT}, or null"
        )
    return limit


@dataclass(frozen=True)
class TenantSettings:
    """The rules a tenant's commands follow and how its values are read."""

    timezone: str
    currency: str
    over_receipt_tolerance_pct: Decimal
    block_expired_issue: bool
    default_removal_policy: str
    period_lock_date: date | None
    rate_limit_per_second: int | None

    def validated(self) -> TenantSettings:
        """These settings, if every one is acceptable (else `ValidationFailed`)."""
        validate_timezone(self.timezone)
        validate_currency(self.currency)
        validate_tolerance(self.over_receipt_tolerance_pct)
        validate_rate_limit(self.rate_limit_per_second)
        if self.default_removal_policy not in REMOVAL_POLICIES:
            raise ValidationFailed("default_removal_policy", "must be fifo or fefo")
        return self


@dataclass(frozen=True)
class Webhook:
    """A registered webhook as administrators see it: never its secret."""

    webhook_id: str
    url: str
    events: tuple[str, ...]
    created_at: datetime
    disabled_at: datetime | None

    @property
    def active(self) -> bool:
        return self.disabled_at is None


def validate_name(name: str) -> str:
    """A display name is 1-200 printable characters."""
    stripped = name.strip()
    if not stripped or len(stripped) > MAX_NAME_LENGTH or not stripped.isprintable():
        raise ValidationFailed("name", f"must be 1-{MAX_NAME_LENGTH} printable characters")
    return stripped
