"""`ledger serve`: the /v1 HTTP API with the read models following in the background."""

from __future__ import annotations

import logging
import sys
from typing import Annotated

import typer
import uvicorn

from api.app import create_app
from api.request_log import LOGGER, JsonFormatter
from ledger.cli_support import guarded, load_settings
from ledger.settings import Settings
from ledger.wiring import check_schema


def serve(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=0, max=65535, help="Port to listen on.")] = 8000,
) -> None:
    """Runs the HTTP API (see /docs) until SIGINT/SIGTERM; on the embedded default too."""
    settings = load_settings()
    with guarded(lambda: check_schema(settings)):
        pass
    log_requests(settings)
    # The JSON request log replaces uvicorn's access log, which would say the same again.
    uvicorn.run(
        create_app(settings),
        host=host,
        port=port,
        log_level="info",
        access_log=not settings.log_requests,
    )


def log_requests(settings: Settings) -> None:
    """One JSON line per request on stderr (unless `LEDGER_LOG_REQUESTS=false`)."""
    if not settings.log_requests:
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger(LOGGER)
    logger.handlers = [handler]
    logger.setLevel(logging.INFO)
    logger.propagate = False
