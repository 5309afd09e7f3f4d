"""Prometheus metrics of one app: HTTP requests, commands, appended events, concurrency retries,
rate-limited requests and projection lag. No label ever names a tenant."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Mapping

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

log = logging.getLogger(__name__)

#: Requests that matched no route share one label value (raw paths would be unbounded).
UNMATCHED = "unmatched"
Lag = Callable[[], Mapping[str, int] | None]


class Metrics:
    """The app's own registry (several apps in one process do not clash) and its metrics; also
    the observer the ledger tells what commands do."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "ledger_http_requests_total",
            "HTTP requests answered, by method, route template and status.",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "ledger_http_request_duration_seconds",
            "Time to answer an HTTP request, by method and route template.",
            ["method", "route"],
            registry=self.registry,
        )
        self.commands = Counter(
            "ledger_commands_total",
            "Commands run, by command and outcome (applied, replayed, refused, failed).",
            ["command", "outcome"],
            registry=self.registry,
        )
        self.events = Counter(
            "ledger_events_appended_total", "Events appended to the store.", registry=self.registry
        )
        self.retries = Counter(
            "ledger_concurrency_retries_total",
            "Commands run again after losing an optimistic-concurrency race.",
            registry=self.registry,
        )
        self.rate_limited = Counter(
            "ledger_rate_limited_total",
            "Requests refused because their tenant was over its rate.",
            registry=self.registry,
        )
        self.projection_lag = ProjectionLag(lambda: None)
        self.registry.register(self.projection_lag)

    def request(self, method: str, route: str, status: int, seconds: float) -> None:
        self.requests.labels(method, route, str(status)).inc()
        self.latency.labels(method, route).observe(seconds)

    def command_finished(self, command: str, outcome: str) -> None:
        self.commands.labels(command, outcome).inc()

    def events_appended(self, count: int) -> None:
        self.events.inc(count)

    def concurrency_retry(self, command: str) -> None:
        self.retries.inc()

    def watch_projections(self, lag: Lag) -> None:
        """Reports `lag()` (events behind per projection, over all tenants) at each scrape."""
        self.projection_lag.lag = lag

    def exposition(self) -> bytes:
        return generate_latest(self.registry)


class ProjectionLag(Collector):
    """`ledger_projection_lag_events{projection}`, read from the database when scraped."""

    def __init__(self, lag: Lag) -> None:
        self.lag = lag

    def collect(self) -> Iterator[Metric]:
        gauge = GaugeMetricFamily(
            "ledger_projection_lag_events",
            "Events recorded but not yet applied by a projection, summed over tenants.",
            labels=["projection"],
        )
        try:
            lags = self.lag()
        except Exception:  # a scrape must not fail with the database; the gap is the signal
            log.warning("projection lag could not be read", exc_info=True)
            lags = None
        for projection, events in sorted((lags or {}).items()):
            gauge.add_metric([projection], events)
        yield gauge

    def describe(self) -> Iterator[Metric]:
        return iter(())
