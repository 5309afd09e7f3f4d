"""Prometheus metrics of the relay and the consumers (the process's default registry, served by
`--metrics-port`). No label names a tenant: lags are sums over every tenant, in event positions
(the ledger's own tracking, not broker offsets)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge

RELAY_PUBLISHED = Counter(
    "ledger_relay_published_total",
    "Events the relay published and the broker acknowledged, by topic.",
    ["topic"],
)
RELAY_LAG = Gauge(
    "ledger_relay_lag_events",
    "Events recorded but not yet acknowledged by the broker, over every tenant, by topic.",
    ["topic"],
)
CONSUMED = Counter(
    "ledger_consumer_messages_total",
    "Messages a consumer read, by consumer and outcome (applied, duplicate, foreign_store,"
    " parked).",
    ["consumer", "outcome"],
)
CONSUMER_LAG = Gauge(
    "ledger_consumer_lag_events",
    "Events recorded but not yet applied by a consumer, over every tenant, by consumer.",
    ["consumer"],
)
WEBHOOK_ATTEMPTS = Counter(
    "ledger_webhook_attempts_total",
    "Webhook delivery attempts, by outcome (delivered, failed, dead).",
    ["outcome"],
)
