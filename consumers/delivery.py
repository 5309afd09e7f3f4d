"""The webhook dispatcher: sends the pending deliveries of the log and records what came of them.

Each attempt is an HTTP POST of the delivery's JSON body, signed as `consumers.signing` documents,
with the configured timeout and no redirects followed. Before each attempt the URL's host is
resolved and checked again (`domain.access.check_webhook_target`), since its DNS may have changed
since registration; a refused target counts as a failed attempt. A 2xx answer is `delivered`;
anything else (another status, a timeout, a connection error, a refused target) is `failed`, and
the next attempt is added, due after a pause of ``backoff * 2**(attempt - 1)`` seconds times a
random factor in [1, 1.5), never more than `backoff_max`. An attempt that fails as the
`max_attempts`-th is `dead`: published to the dead-letter topic first when one is configured
(`consumers.dead_letters`), else the dead row in the log is the dead letter.

Order: a webhook's deliveries are sent in event-position order, one at a time: the next is sent
only once the previous is delivered or dead. Receivers see a webhook's events in the ledger's
order (`position` is in every body), and an endpoint that is down is retried at the pace of one
delivery's back-off, not hammered with its whole backlog; the price is that one delivery an
endpoint keeps refusing holds the webhook's later ones until it is dead. Deliveries are at least
once: receivers deduplicate by `X-Ledger-Delivery-Id`.

Fairness: a pool of `workers` threads sends attempts of different webhooks at once, at most one
per webhook (its head); the due query takes each webhook's head, the longest-waiting first, and
`run` claims more as soon as a worker is free, so one slow or failing endpoint never holds back
another tenant's deliveries. Several dispatcher processes may run: an attempt is claimed by a
lease (`consumers.delivery_log.claim`) before it is sent.
"""

from __future__ import annotations

import logging
import random
import socket
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

import httpx
import orjson
from sqlalchemy import Engine

from consumers.delivery_log import Due, Outcome, claim, due_heads, finish
from consumers.metrics import WEBHOOK_ATTEMPTS
from consumers.signing import signed_headers
from domain.access import Resolver, check_webhook_target
from domain.errors import ValidationFailed

if TYPE_CHECKING:
    from consumers.dead_letters import DeadLetters

log = logging.getLogger(__name__)
#: How long past the timeout a claimed attempt stays leased (resolving, signing, recording).
LEASE_MARGIN_SECONDS = 30.0
USER_AGENT = "inventory-ledger-webhooks/1"
#: The longest pause before claiming again after the database failed.
RETRY_MAX_SECONDS = 30.0
#: Due attempts `run_once` claims at most.
BATCH = 100
MAX_ERROR = 500


def resolve(host: str, port: int) -> Sequence[str]:
    """The IP addresses a host name resolves to (OSError when it does not)."""
    found = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [str(info[4][0]) for info in found]


def pause(attempt: int, backoff: float, backoff_max: float, jitter: float | None = None) -> float:
    """Seconds to wait after the `attempt`-th failure: doubling from `backoff`, times a random
    factor in [1, 1.5) (`jitter` in [0, 0.5) when given), at most `backoff_max`."""
    spread = random.uniform(0, 0.5) if jitter is None else jitter  # noqa: S311 - not a secret
    return min(backoff_max, backoff * 2.0 ** (attempt - 1) * (1 + spread))


class Dispatcher:
    """Sends due webhook deliveries from the log, `workers` at a time, one per webhook."""

    def __init__(
        self,
        engine: Engine,
        *,
        max_attempts: int,
        backoff: float,
        backoff_max: float,
        timeout: float,
        workers: int,
        allow_private: bool,
        unseal: Callable[[str], str],
        dead_letters: DeadLetters | None = None,
        resolver: Resolver = resolve,
        poll_interval: float = 0.2,
    ) -> None:
        self.engine = engine
        self.max_attempts = max_attempts
        self.backoff, self.backoff_max = backoff, backoff_max
        self.timeout = timeout
        self.workers = workers
        self.allow_private = allow_private
        self.unseal = unseal
        self.dead_letters = dead_letters
        self.resolver = resolver
        self.poll_interval = poll_interval
        #: How long a claimed attempt is this dispatcher's: a request may take the timeout to
        #: connect, then again to answer; the margin covers resolving and recording.
        self.lease_per_round = timedelta(seconds=2 * timeout)
        self.lease = self.lease_per_round + timedelta(seconds=LEASE_MARGIN_SECONDS)
        self._client = httpx.Client(
            timeout=timeout,
            follow_redirects=False,
            headers={"User-Agent": USER_AGENT},
            limits=httpx.Limits(max_connections=workers + 2, max_keepalive_connections=workers),
        )
        self._pool = ThreadPoolExecutor(workers, thread_name_prefix="webhook")

    # -- loops ------------------------------------------------------------------------------------

    def run_once(self) -> int:
        """Sends every delivery due now once (each webhook's next one, at most `BATCH`); waits
        for the outcomes and returns how many attempts were made. A slow endpoint delays the
        return, not the other sends; a service runs `run`."""
        claimed = self._claim(max(self.workers, BATCH))
        futures = [self._pool.submit(self.attempt, due) for due in claimed]
        for future in futures:
            future.result()
        return len(futures)

    def run(self, stop: threading.Event) -> int:
        """Sends due deliveries until `stop` is set, claiming more whenever a worker is free;
        returns how many attempts were made. Database errors are logged and retried."""
        running: set[Future[None]] = set()
        sent, retry = 0, self.poll_interval
        while not stop.is_set():
            free = self.workers - len(running)
            claimed: list[Due] = []
            if free > 0:
                try:
                    claimed = self._claim(free)
                    retry = self.poll_interval
                except Exception:  # the database: logged, tried again after a growing pause
                    log.exception("webhook dispatcher: claiming due deliveries failed")
                    stop.wait(retry)
                    retry = min(retry * 2, RETRY_MAX_SECONDS)
            running.update(self._pool.submit(self.attempt, due) for due in claimed)
            sent += len(claimed)
            if running:
                done, _ = wait(running, timeout=self.poll_interval, return_when=FIRST_COMPLETED)
                running -= done
            elif not claimed:
                stop.wait(self.poll_interval)
        wait(running)
        return sent

    def close(self) -> None:
        self._pool.shutdown(wait=True)
        self._client.close()

    # -- one attempt ------------------------------------------------------------------------------

    def attempt(self, due: Due) -> None:
        """Sends one claimed attempt and records its outcome (errors recording it are logged:
        the lease runs out and the attempt is due again)."""
        outcome = self.send(due)
        try:
            self._record(due, outcome)
        except Exception:
            log.exception(
                "webhook dispatcher: recording attempt %s of delivery %s failed",
                due.attempt,
                due.delivery_id,
            )

    def send(self, due: Due) -> Outcome:
        """POSTs the attempt's body to its webhook, signed; what came of it (never raises)."""
        started = datetime.now(UTC)
        body = due.payload.encode()
        try:
            check_webhook_target(due.url, self.resolver, allow_private=self.allow_private)
            secret = self.unseal(due.sealed_secret)
            event_id = str(orjson.loads(body)["event_id"])
            headers = signed_headers(
                secret,
                body,
                event_id=event_id,
                delivery_id=due.delivery_id,
                timestamp=int(time.time()),
            )
            # Only the status counts: the answer's body is never read (nor its size trusted).
            with self._client.stream("POST", due.url, content=body, headers=headers) as answer:
                status = answer.status_code
        except ValidationFailed as refused:
            return Outcome("failed", started, error=f"target refused: {refused}"[:MAX_ERROR])
        except httpx.TimeoutException:
            return Outcome("failed", started, error=f"timed out after {self.timeout:g} s")
        except Exception as error:  # a connection error, a secret that cannot be opened
            return Outcome("failed", started, error=_text(error))
        if 200 <= status < 300:
            return Outcome("delivered", started, status)
        return Outcome("failed", started, status, f"HTTP {status}")

    def _record(self, due: Due, outcome: Outcome) -> None:
        if outcome.status == "failed" and due.attempt >= self.max_attempts:
            outcome = Outcome("dead", outcome.attempted_at, outcome.response_status, outcome.error)
            if not self._dead_lettered(due, outcome):
                return
        retry_at = None
        if outcome.status == "failed":
            delay = pause(due.attempt, self.backoff, self.backoff_max)
            retry_at = datetime.now(UTC) + timedelta(seconds=delay)
        with self.engine.begin() as conn:
            recorded = finish(conn, due, outcome, retry_at)
        if recorded:
            WEBHOOK_ATTEMPTS.labels(outcome.status).inc()
        else:
            log.warning(
                "webhook dispatcher: attempt %s of delivery %s was %s, but its lease was lost"
                " (the webhook was disabled, or another dispatcher took it over)",
                due.attempt,
                due.delivery_id,
                outcome.status,
            )

    def _dead_lettered(self, due: Due, outcome: Outcome) -> bool:
        """Publishes a delivery out of attempts to the dead-letter topic (True without one).
        When the topic cannot take it, the attempt is left to its lease: when the lease ends it
        is tried again, so nothing is lost."""
        if self.dead_letters is None:
            return True
        try:
            self.dead_letters.publish_due(due, outcome)
        except Exception:
            log.exception(
                "webhook dispatcher: delivery %s could not be dead-lettered", due.delivery_id
            )
            return False
        return True

    def _claim(self, limit: int) -> list[Due]:
        """Leases up to `limit` due attempts, long enough for the workers to send them all."""
        now = datetime.now(UTC)
        with self.engine.begin() as conn:
            found = due_heads(conn, now, limit)
            rounds = -(-len(found) // self.workers)
            until = now + self.lease + (rounds - 1) * self.lease_per_round
            leased = [claim(conn, due, until) for due in found]
        return [due for due in leased if due is not None]


def _text(error: Exception) -> str:
    return f"{type(error).__name__}: {error}"[:MAX_ERROR]
