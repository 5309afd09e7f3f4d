"""`ledger` commands forked from one process that has imported the CLI already: a test can start
and kill many of them without paying for Python's start-up (seconds on a busy machine) each time.

The zygote is single-threaded and opens no connection (nothing is created at import time), so its
forked children are as fresh as a new process. Each child runs ``ledger.cli.main`` with its own
arguments and environment, writing to the log file. Run as ``python -m tests.zygote LOG``; it reads
one JSON request a line: ``{"args": [...], "env": {...}}`` starts a child and answers its pid,
``{"reap": pid}`` waits for that child (once the test has killed it) and answers its wait status.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import traceback
from pathlib import Path
from types import TracebackType
from typing import Any

from ledger.cli import main


def serve(log: str) -> None:
    for line in sys.stdin:
        request: dict[str, Any] = json.loads(line)
        if "reap" in request:
            _, status = os.waitpid(int(request["reap"]), 0)
            answer(status)
            continue
        pid = os.fork()
        if pid == 0:
            run_child(log, request["args"], request["env"])
        answer(pid)


def answer(value: int) -> None:
    sys.stdout.write(f"{value}\n")
    sys.stdout.flush()


def run_child(log: str, args: list[str], env: dict[str, str]) -> None:
    """Runs the command in the forked child and ends the child, whatever happens."""
    code = 1
    try:
        fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        os.dup2(fd, 1)
        os.dup2(fd, 2)
        os.dup2(os.open(os.devnull, os.O_RDONLY), 0)
        os.environ.update(env)
        sys.argv = ["ledger", *args]
        main()
        code = 0
    except SystemExit as exit_:
        code = exit_.code if isinstance(exit_.code, int) else int(exit_.code is not None)
    except BaseException:
        traceback.print_exc()
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


class Zygote:
    """The test's side: starts the zygote, asks it for children, kills and reaps them."""

    def __init__(self, log: Path) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "tests.zygote", str(log)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        self.children: set[int] = set()

    def start(self, args: list[str], env: dict[str, str]) -> int:
        """Forks a child running ``ledger <args>``; its pid."""
        pid = self._ask({"args": args, "env": env})
        self.children.add(pid)
        return pid

    def kill(self, pid: int) -> int:
        """SIGKILLs the child and waits until it is gone; its wait status."""
        os.kill(pid, signal.SIGKILL)
        self.children.discard(pid)
        return self._ask({"reap": pid})

    def _ask(self, request: dict[str, Any]) -> int:
        assert self.process.stdin is not None
        assert self.process.stdout is not None
        self.process.stdin.write(json.dumps(request) + "\n")
        self.process.stdin.flush()
        reply = self.process.stdout.readline()
        if not reply:
            raise RuntimeError(f"the zygote ended (exit status {self.process.wait()})")
        return int(reply)

    def __enter__(self) -> Zygote:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        for pid in list(self.children):  # a failed test leaves no follower behind
            self.kill(pid)
        assert self.process.stdin is not None
        self.process.stdin.close()
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


if __name__ == "__main__":
    serve(sys.argv[1])
