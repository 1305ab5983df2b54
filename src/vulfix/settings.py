"""One settings object: defaults, then an optional TOML file, then `VULFIX_*` variables.

Command-line flags override the result. `vulfix config` prints it with secrets redacted.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Any

import msgspec
import platformdirs

ENV_PREFIX = "VULFIX_"
SECRET_FIELDS = frozenset({"master_key"})


def default_data_dir() -> Path:
    return Path(platformdirs.user_data_dir("vulfix", appauthor=False))


def default_db_url() -> str:
    return f"sqlite:///{default_data_dir() / 'vulfix.db'}"


class Settings(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    db: str = msgspec.field(default_factory=default_db_url)
    host: str = "127.0.0.1"
    port: int = 8080
    tls_cert: str | None = None
    tls_key: str | None = None
    # Requests per second per (account, action); 0 disables limiting.
    rate_limit: int = 20
    # Per-action overrides of rate_limit, e.g. {"DescribeVulFixStatus": 50}.
    rate_limits: dict[str, int] = msgspec.field(default_factory=dict)
    redis: str | None = None
    # Base64 Fernet key; when absent, a key file beside the database is used (or created).
    master_key: str | None = None
    master_key_file: str | None = None
    # Host names a reverse proxy presents, accepted as signed hosts.
    public_hostnames: list[str] = msgspec.field(default_factory=list)
    # Require the credential scope's service to be "cwp" (Node derives it from the host name).
    strict_service: bool = False
    # Accepted regions; empty accepts any well-formed region.
    regions: list[str] = msgspec.field(default_factory=list)
    default_language: str = "zh-CN"
    # UTC offset or IANA zone for the API's `YYYY-MM-DD HH:MM:SS` times.
    display_timezone: str = "Asia/Shanghai"
    # Optional v1 replay cache: reject a (SecretId, Nonce, Timestamp) seen within the window.
    v1_replay_cache: bool = False
    log_level: str = "INFO"
    # The engine and its agents (seconds).
    heartbeat_interval: float = 30.0
    poll_wait: float = 25.0
    lease_seconds: float = 900.0
    offline_after: float = 90.0
    dispatch_timeout: float = 600.0
    engine_interval: float = 1.0
    # Live snapshots a host may keep; RetryCreateSnapshot beyond it is ResourceInsufficient.
    snapshot_quota: int = 64


def load_settings(config_file: str | None = None, **overrides: Any) -> Settings:
    """Defaults < TOML file (`--config` or `VULFIX_CONFIG`) < environment < explicit overrides."""
    data: dict[str, Any] = {}
    path = config_file or os.environ.get(ENV_PREFIX + "CONFIG")
    if path:
        data.update(tomllib.loads(Path(path).read_text(encoding="utf-8")))
    fields = {f.name: f for f in msgspec.structs.fields(Settings)}
    for name in fields:
        raw = os.environ.get(ENV_PREFIX + name.upper())
        if raw is not None:
            data[name] = _from_env(raw)
    data.update({k: v for k, v in overrides.items() if v is not None})
    return msgspec.convert(data, Settings, strict=False)


def _from_env(raw: str) -> Any:
    """JSON for lists and maps (`["a","b"]`, `{"X": 5}`), the plain string otherwise."""
    if raw[:1] in "[{":
        return msgspec.json.decode(raw)
    return raw


def redacted(settings: Settings) -> dict[str, Any]:
    shown: dict[str, Any] = msgspec.to_builtins(settings)
    for name in SECRET_FIELDS:
        if shown.get(name):
            shown[name] = "***"
    return shown
