"""`ledger serve`: the /v1 HTTP API with the read models following in the background."""

from __future__ import annotations

from typing import Annotated

import typer
import uvicorn

from api.app import create_app
from ledger.cli_support import guarded, load_settings
from ledger.wiring import check_schema


def serve(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=0, max=65535, help="Port to listen on.")] = 8000,
) -> None:
    """Runs the HTTP API (see /docs) until SIGINT/SIGTERM; on the embedded default too."""
    settings = load_settings()
    with guarded(lambda: check_schema(settings)):
        pass
    uvicorn.run(create_app(settings), host=host, port=port, log_level="info")
