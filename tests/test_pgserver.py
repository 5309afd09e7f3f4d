"""The test harness can make its own PostgreSQL cluster from the local server binaries."""

from __future__ import annotations

import tempfile
from pathlib import Path

import psycopg
import pytest

from tests.pgserver import reachable, throwaway_cluster

pytestmark = pytest.mark.postgres


def cluster_dirs() -> set[Path]:
    return set(Path(tempfile.gettempdir()).glob("ledger-pg-*"))


def test_a_throwaway_cluster_serves_and_is_removed_afterwards() -> None:
    before = cluster_dirs()
    with throwaway_cluster() as url:
        with psycopg.connect(url) as conn:
            assert conn.execute("SELECT 1").fetchone() == (1,)
        assert len(cluster_dirs() - before) == 1
    assert not reachable(url)
    assert cluster_dirs() - before == set()
