from __future__ import annotations

import stat
import threading
from pathlib import Path

import pytest
from cryptography.fernet import Fernet

from vulfix.settings import Settings
from vulfix.store import secret_cipher
from vulfix.store.secret_cipher import (
    MasterKeyError,
    SecretCipher,
    load_master_key,
    master_key_path,
)


def test_key_file_is_created_beside_the_database_private_and_reused(tmp_path: Path) -> None:
    settings = Settings(db=f"sqlite:///{tmp_path / 'data' / 'vulfix.db'}")
    key = load_master_key(settings)

    path = tmp_path / "data" / "master.key"
    assert master_key_path(settings) == path
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert path.read_bytes().strip() == key
    assert load_master_key(settings) == key
    assert [p.name for p in path.parent.iterdir()] == ["master.key"]


def test_master_key_setting_wins_over_any_file(tmp_path: Path) -> None:
    configured = Fernet.generate_key()
    settings = Settings(
        db=f"sqlite:///{tmp_path / 'vulfix.db'}",
        master_key=configured.decode(),
        master_key_file=str(tmp_path / "elsewhere.key"),
    )
    assert load_master_key(settings) == configured
    assert list(tmp_path.iterdir()) == []


def test_master_key_file_setting_is_read_or_created(tmp_path: Path) -> None:
    existing = Fernet.generate_key()
    (tmp_path / "given.key").write_bytes(existing + b"\n")
    given = Settings(
        db=f"sqlite:///{tmp_path / 'v.db'}", master_key_file=str(tmp_path / "given.key")
    )
    assert load_master_key(given) == existing

    fresh = Settings(
        db=f"sqlite:///{tmp_path / 'v.db'}", master_key_file=str(tmp_path / "k" / "new.key")
    )
    created = load_master_key(fresh)
    assert (tmp_path / "k" / "new.key").read_bytes().strip() == created
    assert not (tmp_path / "master.key").exists()


def test_postgresql_keeps_the_key_in_the_user_data_dir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(secret_cipher, "default_data_dir", lambda: tmp_path / "userdata")
    settings = Settings(db="postgresql://vulfix@db/vulfix")
    key = load_master_key(settings)
    assert (tmp_path / "userdata" / "master.key").read_bytes().strip() == key


@pytest.mark.parametrize("bad", ["", "short", "x" * 44])
def test_malformed_keys_are_reported(tmp_path: Path, bad: str) -> None:
    (tmp_path / "bad.key").write_text(bad)
    with pytest.raises(MasterKeyError, match=r"bad\.key"):
        load_master_key(Settings(db="sqlite://", master_key_file=str(tmp_path / "bad.key")))
    if bad:
        with pytest.raises(MasterKeyError, match="master_key"):
            load_master_key(Settings(db="sqlite://", master_key=bad))


def test_processes_racing_to_create_the_key_all_get_the_same_one(tmp_path: Path) -> None:
    settings = Settings(db=f"sqlite:///{tmp_path / 'vulfix.db'}")
    start = threading.Barrier(8)
    keys: list[bytes] = []

    def load() -> None:
        start.wait()
        keys.append(load_master_key(settings))

    threads = [threading.Thread(target=load) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert len(keys) == 8 and len(set(keys)) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["master.key"]


def test_cipher_round_trips_and_rejects_other_keys() -> None:
    cipher = SecretCipher(Fernet.generate_key())
    sealed = cipher.encrypt("s3cret-ÄÖ")
    assert b"s3cret" not in sealed
    assert cipher.decrypt(sealed) == "s3cret-ÄÖ"
    with pytest.raises(MasterKeyError):
        SecretCipher(Fernet.generate_key()).decrypt(sealed)
