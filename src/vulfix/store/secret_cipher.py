"""Encryption at rest of API secret keys, under one master key.

The key comes from the settings (`master_key`, else `master_key_file`), else from `master.key`
beside the SQLite database (for PostgreSQL: in the user data directory). A missing key file is
created with a fresh key, readable by its owner only.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken

from vulfix.settings import Settings, default_data_dir
from vulfix.store.database import sqlite_path

MASTER_KEY_FILENAME = "master.key"


class MasterKeyError(Exception):
    """The master key is malformed, unreadable, or not the one the secrets were sealed with."""


def master_key_path(settings: Settings) -> Path:
    """Where the master key file is (or will be) when `master_key` is not set."""
    if settings.master_key_file:
        return Path(settings.master_key_file).expanduser()
    database = sqlite_path(settings.db)
    directory = database.parent if database is not None else default_data_dir()
    return directory / MASTER_KEY_FILENAME


def load_master_key(settings: Settings) -> bytes:
    if settings.master_key:
        return _validated(settings.master_key.strip().encode("ascii"), "setting master_key")
    path = master_key_path(settings)
    try:
        if not path.exists():
            _create_key_file(path)
        return _validated(path.read_bytes().strip(), str(path))
    except OSError as exc:
        raise MasterKeyError(f"cannot read or create master key file {path}: {exc}") from exc


def _validated(key: bytes, source: str) -> bytes:
    try:
        Fernet(key)
    except ValueError as exc:
        raise MasterKeyError(f"{source} is not a Fernet key (32 url-safe base64 bytes)") from exc
    return key


def _create_key_file(path: Path) -> None:
    """Write a new key so that a concurrent reader sees either no file or the whole key.

    The key goes to a private temporary file first, then is hard-linked into place; the link
    fails if another process got there first, and then that process's key is the one used.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{secrets.token_hex(8)}.tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as file:
            file.write(Fernet.generate_key() + b"\n")
            file.flush()
            os.fsync(file.fileno())
        with contextlib.suppress(FileExistsError):
            os.link(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)


class SecretCipher:
    """Seals and opens API secret keys."""

    def __init__(self, master_key: bytes) -> None:
        self._fernet = Fernet(master_key)

    def encrypt(self, plaintext: str) -> bytes:
        return self._fernet.encrypt(plaintext.encode("utf-8"))

    def decrypt(self, sealed: bytes) -> str:
        try:
            return self._fernet.decrypt(sealed).decode("utf-8")
        except InvalidToken as exc:
            raise MasterKeyError(
                "cannot decrypt a stored secret key: the master key is not the one it was "
                "encrypted with"
            ) from exc
