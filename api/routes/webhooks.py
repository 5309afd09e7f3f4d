"""Routes of the /v1 API (being filled in)."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter()
