"""The PostgreSQL and Redis servers and the Chromium some tests need, found or reported missing.

A missing server skips those tests with the reason, so the suite runs anywhere; with
`VULFIX_REQUIRE_SERVICES=1` (as `.ci/run` sets it) a missing server fails them instead, so CI
can never pass by skipping.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
import pytest
import redis

POSTGRES_ADMIN_URL = os.environ.get(
    "VULFIX_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test"
)
REDIS_URL = os.environ.get("VULFIX_TEST_REDIS", "redis://127.0.0.1:6379/0")
# Debian's chromium (`make test` installs it where it can); playwright drives it, and never
# downloads a browser of its own.
CHROMIUM = os.environ.get("VULFIX_TEST_CHROMIUM", "/usr/bin/chromium")


def missing(service: str, why: str) -> None:
    """Skips the test, or fails it where services are required."""
    message = f"{service} not reachable ({why})"
    if os.environ.get("VULFIX_REQUIRE_SERVICES") == "1":
        pytest.fail(message + " and VULFIX_REQUIRE_SERVICES=1", pytrace=False)
    pytest.skip(f"{message}; .ci/run sets VULFIX_REQUIRE_SERVICES=1 to fail instead")


def _admin() -> psycopg.Connection:
    try:
        return psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True, connect_timeout=3)
    except psycopg.OperationalError as exc:
        missing(f"PostgreSQL at {POSTGRES_ADMIN_URL}", str(exc).strip())
        raise


@contextmanager
def fresh_postgres_database() -> Iterator[str]:
    """An empty database of its own, dropped afterwards; yields its URL."""
    name = f"vulfix_e2e_{secrets.token_hex(4)}"
    with _admin() as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    base = POSTGRES_ADMIN_URL.rsplit("/", 1)[0]
    try:
        yield f"{base}/{name}"
    finally:
        with _admin() as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def redis_url() -> str:
    """The test Redis's URL, once it answers."""
    client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=3)
    try:
        client.ping()
    except redis.RedisError as exc:
        missing(f"Redis at {REDIS_URL}", str(exc))
    finally:
        client.close()
    return REDIS_URL


def chromium_path() -> str:
    """The Chromium executable the console's browser tests drive."""
    if not os.access(CHROMIUM, os.X_OK):
        missing(f"Chromium at {CHROMIUM}", "not installed; Debian: apt-get install chromium")
    return CHROMIUM
