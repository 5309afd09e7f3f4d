"""A real `ledger serve` (uvicorn) in a subprocess on a free loopback port, for tests and
benchmarks that talk HTTP to the service as a client would."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from uuid import UUID

import httpx
from typer.testing import CliRunner

from domain.ids import tenant_id_for
from ledger.cli import app as cli

#: The HS256 secret the served JWTs are signed with (the same as the in-process tests').
SECRET = "test-secret-of-at-least-32-bytes-long"
STARTUP_SECONDS = 60.0
STOP_SECONDS = 20.0
#: Settings of a served test instance unless the caller says otherwise: reads wait long enough
#: for a busy machine, and no rate limit gets in the way of a test's own load.
DEFAULTS = {
    "LEDGER_MIN_POSITION_TIMEOUT": "30",
    "LEDGER_RATE_LIMIT_PER_SECOND": "1000000",
}


class ServerFailed(RuntimeError):
    """The server exited, or did not become ready, in time."""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def register_tenant(database_url: str, slug: str) -> UUID:
    """Registers a tenant in a migrated database with `ledger tenant create`, as an operator
    does before the service answers for it; its id (the `tenant_id` of its JWTs)."""
    result = CliRunner().invoke(
        cli, ["tenant", "create", slug], env={"LEDGER_DATABASE_URL": database_url}
    )
    if result.exit_code != 0:
        raise RuntimeError(f"ledger tenant create {slug}: {result.output}")
    tenant = tenant_id_for(slug)
    if result.output.strip() != str(tenant):
        raise RuntimeError(f"ledger tenant create {slug} printed {result.output!r}")
    return tenant


def _tail(log: Path, lines: int = 60) -> str:
    try:
        text = log.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


def _wait_ready(process: subprocess.Popen[bytes], base: str, log: Path) -> None:
    """Until `GET /readyz` answers 200 (database reachable, schema current)."""
    deadline = time.monotonic() + STARTUP_SECONDS
    while True:
        if process.poll() is not None:
            raise ServerFailed(f"the server exited with {process.returncode}:\n{_tail(log)}")
        try:
            if httpx.get(f"{base}/readyz", timeout=5).status_code == 200:
                return
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            raise ServerFailed(f"the server was not ready in {STARTUP_SECONDS} s:\n{_tail(log)}")
        time.sleep(0.1)


def stop(process: subprocess.Popen[bytes]) -> int:
    """SIGTERM (uvicorn shuts down gracefully), then SIGKILL if it does not end in time."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            return process.wait(timeout=STOP_SECONDS)
        except subprocess.TimeoutExpired:
            process.kill()
    return process.wait(timeout=STOP_SECONDS)


@contextlib.contextmanager
def served(
    database_url: str, env: Mapping[str, str] | None = None, *, secret: str = SECRET
) -> Iterator[str]:
    """Runs `ledger serve` against a migrated database with `LEDGER_JWT_SECRET=secret` (and
    `env` on top of `DEFAULTS`); yields its base URL once it is ready, stops it afterwards. When
    the block fails, the server's last output is printed (pytest shows it with the failure)."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    settings = DEFAULTS | {"LEDGER_DATABASE_URL": database_url, "LEDGER_JWT_SECRET": secret}
    with tempfile.TemporaryDirectory(prefix="ledger-serve-") as workdir:
        log = Path(workdir) / "server.log"
        # A file, not a pipe: a pipe nobody reads fills up and blocks the server's logging.
        with log.open("wb") as output:
            process = subprocess.Popen(
                [sys.executable, "-m", "ledger.cli", "serve", "--port", str(port)],
                env=os.environ | settings | dict(env or {}),
                stdout=output,
                stderr=subprocess.STDOUT,
                cwd=workdir,  # no .env file of the checkout is read
            )
        try:
            _wait_ready(process, base, log)
            yield base
        except BaseException:
            print(f"--- the server's last output ({base}) ---\n{_tail(log)}")
            raise
        finally:
            stop(process)
