"""`vulfix serve`: the API, the agent API, the console and the metrics on uvicorn."""

from __future__ import annotations

import contextlib
import logging
import sys
from pathlib import Path
from typing import TextIO

import click
from uvicorn.config import STARTUP_FAILURE

from vulfix.app import build
from vulfix.gc_tuning import tune_for_many_connections
from vulfix.serving import draining_server
from vulfix.settings import Settings, load_settings, redacted_url
from vulfix.store.database import display_url
from vulfix.store.migrate import upgrade
from vulfix.tcapi.observability import REQUEST_LOG, make_logging_cheap


@click.command("serve")
@click.option("--host", help="Address to listen on (default 127.0.0.1).")
@click.option("--port", type=int, help="Port to listen on (default 8080).")
@click.option("--db", help="Database URL: sqlite:///PATH (default) or postgresql://...")
@click.option(
    "--tls-cert", type=click.Path(exists=True, dir_okay=False), help="PEM certificate: serve HTTPS."
)
@click.option(
    "--tls-key",
    type=click.Path(exists=True, dir_okay=False),
    help="PEM private key for --tls-cert.",
)
@click.option(
    "--rate-limit",
    type=int,
    help="Requests/second per account and action; 0 disables (default 20).",
)
@click.option(
    "--redis",
    metavar="URL",
    help="redis://[:password@]host:port/db shared by replicas for rate limits and agent "
    "wake-ups (default: none, this process alone).",
)
@click.option(
    "--config",
    "config_file",
    type=click.Path(exists=True, dir_okay=False),
    help="TOML settings file.",
)
def serve_command(
    host: str | None,
    port: int | None,
    db: str | None,
    tls_cert: str | None,
    tls_key: str | None,
    rate_limit: int | None,
    redis: str | None,
    config_file: str | None,
) -> None:
    """Serve the CWP API on one endpoint, as the official clients expect."""
    settings = load_settings(
        config_file,
        host=host,
        port=port,
        db=db,
        tls_cert=tls_cert,
        tls_key=tls_key,
        rate_limit=rate_limit,
        redis=redis,
    )
    if bool(settings.tls_cert) != bool(settings.tls_key):
        raise click.UsageError("--tls-cert and --tls-key go together.")
    upgrade(settings.db)
    run_server(settings)


def run_server(settings: Settings) -> None:
    """Serve until SIGINT/SIGTERM, then shut down gracefully (migrations already applied)."""
    configure_logging(settings.log_level)
    application = build(settings)
    scheme = "https" if settings.tls_cert else "http"
    logging.getLogger("vulfix").info(
        "vulfix serving on %s://%s:%d (db %s, %s)",
        scheme,
        settings.host,
        settings.port,
        display_url(settings.db),
        f"shared through {redacted_url(settings.redis)}" if settings.redis else "no Redis",
    )
    server = draining_server(application, settings)
    tune_for_many_connections()
    with contextlib.suppress(KeyboardInterrupt):
        server.run()
    if not server.started:
        sys.exit(STARTUP_FAILURE)


def configure_logging(level: str, log_file: Path | None = None) -> None:
    """Log lines (and the request log) to stderr, or appended to `log_file`."""
    make_logging_cheap()
    stream: TextIO = log_file.open("a", encoding="utf-8") if log_file else sys.stderr
    REQUEST_LOG.stream = stream
    REQUEST_LOG.enabled = logging.getLevelName(level.upper()) <= logging.INFO
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
