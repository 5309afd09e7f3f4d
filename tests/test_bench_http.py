"""The HTTP benchmark's smoke run: it serves, writes, seeds, reads and reports every figure."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FIGURE = r"[\d,]+/s  p50 +[\d.]+ ms  p99 +[\d.]+ ms"


def test_a_quick_run_of_the_http_benchmark_reports_commands_and_reads() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "bench.http", "--quick", "--backend", "sqlite"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    for label in (
        "HTTP, 16 clients, projections off",
        "HTTP, 16 clients, projections on",
        "direct, 16 threads",
    ):
        assert [line for line in lines if label in line and re.search(FIGURE, line)], label
    assert re.search(r"projections off / direct: \d+\.\d\d", done.stdout)
    assert re.search(r"reads: 500 stock-level rows", done.stdout)
    figures = [line for line in lines if re.search(FIGURE, line)]
    assert len(figures) == 3 + 2 * 3  # three command paths, two read cases of three runs
