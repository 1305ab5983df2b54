from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from vulfix.settings import Settings
from vulfix.store.api_keys import ApiKeyStore
from vulfix.store.database import create_engine
from vulfix.store.migrate import upgrade
from vulfix.store.secret_cipher import SecretCipher, load_master_key


@pytest.fixture
def db_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'data' / 'vulfix.db'}"


@pytest.fixture
def settings(db_url: str) -> Settings:
    return Settings(db=db_url)


@pytest.fixture
def cipher(settings: Settings) -> SecretCipher:
    return SecretCipher(load_master_key(settings))


@pytest.fixture
async def engine(migrated_db_url: str) -> AsyncIterator[AsyncEngine]:
    """An engine on a migrated database, SQLite and PostgreSQL in turn."""
    engine = create_engine(migrated_db_url)
    yield engine
    await engine.dispose()


@pytest.fixture
async def sqlite_engine(db_url: str) -> AsyncIterator[AsyncEngine]:
    """For tests of SQLite itself (its file, locks and pragmas)."""
    upgrade(db_url)
    engine = create_engine(db_url)
    yield engine
    await engine.dispose()


@pytest.fixture
def store(engine: AsyncEngine, cipher: SecretCipher) -> ApiKeyStore:
    return ApiKeyStore(engine, cipher)
