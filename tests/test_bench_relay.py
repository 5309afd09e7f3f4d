"""The relay benchmark's smoke run: it seeds, relays, sends the raw baseline and reports both
rates and their ratio."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.postgres
def test_a_small_run_of_the_relay_benchmark_reports_both_rates_and_the_ratio(
    pg_server: str,
) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "bench.relay", "--events", "300", "--tenants", "2", "--rounds", "1"],
        cwd=ROOT,
        env={**os.environ, "LEDGER_BENCH_DATABASE_URL": pg_server},
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    out = done.stdout
    assert re.search(r"relay \(store -> Kafka\) +[\d,]+\n", out), out
    assert re.search(r"raw kafka-python producer +[\d,]+\n", out), out
    assert re.search(r"ratio relay/raw +\d+\.\d\d", out), out
