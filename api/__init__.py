"""The /v1 HTTP API (FastAPI): commands and queries for integrators and staff."""
