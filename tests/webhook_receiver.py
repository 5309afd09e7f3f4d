"""A webhook receiver for tests: an HTTP server on a free loopback port that records every
request (headers and body) and answers as told: fail the next N requests, fail always, or hold
each request until released."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import orjson
import pytest


@dataclass(frozen=True)
class Received:
    """One request the receiver got, and what it answered."""

    path: str
    headers: dict[str, str]
    body: bytes
    answered: int

    @property
    def json(self) -> dict[str, object]:
        found: dict[str, object] = orjson.loads(self.body)
        return found


class Receiver:
    """What the server answers, and what it got."""

    def __init__(self) -> None:
        self.failures_left = 0
        self.always_fail = False
        #: Set: requests are answered; clear: each request waits for it (at most `hold_max`).
        self.release = threading.Event()
        self.release.set()
        self.hold_max = 30.0
        self.arrived = threading.Event()
        self.received: list[Received] = []
        self._lock = threading.Lock()
        self.url = ""

    def fail(self, times: int) -> None:
        """Answers the next `times` requests with 500."""
        self.failures_left = times

    def hold(self) -> None:
        """Holds every request from now on until `release` is set."""
        self.release.clear()

    def answer(self) -> int:
        with self._lock:
            if self.always_fail:
                return 500
            if self.failures_left > 0:
                self.failures_left -= 1
                return 500
            return 200

    def record(self, got: Received) -> None:
        with self._lock:
            self.received.append(got)

    def delivered(self) -> list[Received]:
        """The requests answered with 2xx."""
        with self._lock:
            return [got for got in self.received if 200 <= got.answered < 300]

    def wait_for(self, count: int, timeout: float = 20.0) -> list[Received]:
        """The requests, once at least `count` arrived (failing the test otherwise)."""
        deadline = time.monotonic() + timeout
        while True:
            with self._lock:
                if len(self.received) >= count:
                    return list(self.received)
            if time.monotonic() > deadline:
                pytest.fail(f"the receiver got {len(self.received)} requests, not {count}")
            time.sleep(0.01)


def _handler(receiver: Receiver) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            receiver.arrived.set()
            receiver.release.wait(receiver.hold_max)
            status = receiver.answer()
            receiver.record(Received(self.path, dict(self.headers.items()), body, status))
            try:
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()
            except OSError:
                pass  # the sender gave up waiting (its timeout)

        def log_message(self, format: str, *args: object) -> None:
            return

    return Handler


@contextmanager
def webhook_receiver() -> Iterator[Receiver]:
    """A receiver listening on 127.0.0.1; stopped on exit."""
    receiver = Receiver()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(receiver))
    server.daemon_threads = True
    receiver.url = f"http://127.0.0.1:{server.server_address[1]}/hooks"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield receiver
    finally:
        receiver.release.set()
        server.shutdown()
        server.server_close()
        thread.join(5)
