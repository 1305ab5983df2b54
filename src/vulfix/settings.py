"""One settings object: defaults, then an optional TOML file, then `VULFIX_*` variables.

Command-line flags override the result. `vulfix config` prints it with secrets redacted.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit, urlunsplit

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
    # redis://[:password@]host:port/db shared by the replicas: rate limits and agent wake-ups.
    redis: str | None = None
    # What the rate limiter answers while Redis is unreachable: "open" accepts every request
    # (availability first); "closed" refuses each with RequestLimitExceeded (the budget first).
    redis_fail_mode: Literal["open", "closed"] = "open"
    # Prefix of every Redis key and channel, so several deployments can share one Redis.
    redis_prefix: str = "vulfix:"
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
    # Console sign-in attempts per client address and second (0: no limit).
    console_sign_in_rate: int = 5
    # Reverse proxies whose X-Forwarded-For/-Proto headers are believed (comma-separated
    # addresses or networks, "*" for any): the client address the sign-in limit counts, and
    # HTTPS behind a TLS-terminating proxy (the console's cookie is then Secure).
    forwarded_allow_ips: str = "127.0.0.1"


class SettingsError(ValueError):
    """A setting cannot be used; the message names it and where it can be set."""


def load_settings(config_file: str | None = None, **overrides: Any) -> Settings:
    """Defaults < TOML file (`--config` or `VULFIX_CONFIG`) < environment < explicit overrides."""
    data: dict[str, Any] = {}
    path = config_file or os.environ.get(ENV_PREFIX + "CONFIG")
    if path:
        try:
            data.update(tomllib.loads(Path(path).read_text(encoding="utf-8")))
        except OSError as exc:
            raise SettingsError(
                f"cannot read the configuration file {path}: {exc.strerror}"
            ) from exc
        except tomllib.TOMLDecodeError as exc:
            raise SettingsError(f"configuration file {path}: {exc}") from exc
    fields = {f.name: f for f in msgspec.structs.fields(Settings)}
    for name in fields:
        raw = os.environ.get(ENV_PREFIX + name.upper())
        if raw is not None:
            data[name] = _from_env(name, raw)
    data.update({k: v for k, v in overrides.items() if v is not None})
    try:
        return msgspec.convert(data, Settings, strict=False)
    except msgspec.ValidationError as exc:
        raise SettingsError(_explained(str(exc))) from exc


def _explained(message: str) -> str:
    """msgspec's `Expected int, got str - at `$.port`` as a line naming the setting."""
    problem, _, where = message.partition(" - at `$.")
    name = where.rstrip("`").split(".")[0].split("[")[0]
    if not name:
        return f"invalid settings: {problem}"
    return (
        f"setting {name} ({ENV_PREFIX}{name.upper()}, the configuration file or its flag): "
        f"{problem}"
    )


def _from_env(name: str, raw: str) -> Any:
    """JSON for lists and maps (`["a","b"]`, `{"X": 5}`), the plain string otherwise."""
    if raw[:1] in "[{":
        try:
            return msgspec.json.decode(raw)
        except msgspec.DecodeError as exc:
            raise SettingsError(f"{ENV_PREFIX}{name.upper()} is not valid JSON: {exc}") from exc
    return raw


def redacted(settings: Settings) -> dict[str, Any]:
    shown: dict[str, Any] = msgspec.to_builtins(settings)
    for name in SECRET_FIELDS:
        if shown.get(name):
            shown[name] = "***"
    if shown.get("redis"):
        shown["redis"] = redacted_url(shown["redis"])
    return shown


def redacted_url(url: str) -> str:
    """`url` with the password of its user part masked (`redis://:***@host:6379/0`)."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    user, _, host = parts.netloc.rpartition("@")
    name = user.partition(":")[0]
    return urlunsplit(parts._replace(netloc=f"{name}:***@{host}"))
