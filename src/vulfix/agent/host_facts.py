"""What the agent tells the server about its host when it enrols."""

from __future__ import annotations

import shlex
import socket
import sys
from pathlib import Path
from urllib.parse import urlsplit

from vulfix.agent.config import AgentConfig
from vulfix.agent_protocol import EnrollRequest

# os-release IDs by the family the server and the executors know them under. A distribution
# not listed keeps its own ID, and its ID_LIKE is tried first (Rocky says ID_LIKE="rhel ...").
KNOWN_FAMILIES = frozenset(
    {
        "debian", "ubuntu", "kali", "deepin", "uos", "rhel", "centos", "rocky", "almalinux",
        "fedora", "ol", "tencentos", "opencloudos", "suse", "opensuse", "sles", "alpine",
    }
)  # fmt: skip


def read_os_release(path: Path) -> dict[str, str]:
    """os-release's KEY=value lines, with shell quoting undone."""
    values: dict[str, str] = {}
    try:
        text = path.read_text(encoding="utf-8")
    except OSError:
        return values
    for line in text.splitlines():
        key, sep, raw = line.strip().partition("=")
        if sep and key and not key.startswith("#"):
            try:
                parts = shlex.split(raw)
            except ValueError:
                continue
            values[key] = parts[0] if parts else ""
    return values


def os_family(config: AgentConfig) -> str:
    """The configured family; `windows` on Windows; else os-release's ID (or the first known
    ID_LIKE); else `linux`."""
    if config.os_family:
        return config.os_family
    if sys.platform == "win32":
        return "windows"
    release = read_os_release(Path(config.os_release))
    own = release.get("ID", "").lower()
    if own in KNOWN_FAMILIES:
        return own
    for like in release.get("ID_LIKE", "").lower().split():
        if like in KNOWN_FAMILIES:
            return like
    return own or "linux"


def outward_ip(server_url: str) -> str:
    """The local address the host reaches the server from; "" when it cannot be told.

    Connecting a UDP socket sends nothing; it only asks the kernel which route it would take.
    """
    parts = urlsplit(server_url)
    host = parts.hostname or "127.0.0.1"
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_DGRAM)
        family, kind, proto, _, address = infos[0]
        with socket.socket(family, kind, proto) as probe:
            probe.connect(address)
            return str(probe.getsockname()[0])
    except OSError:
        return ""


def enroll_request(
    config: AgentConfig, *, quuid: str | None, family: str, snapshot_supported: bool
) -> EnrollRequest:
    return EnrollRequest(
        enroll_token=config.enroll_token,
        quuid=quuid,
        host_name=config.host_name or socket.gethostname(),
        host_ip=config.host_ip or outward_ip(config.server),
        os_family=family,
        snapshot_supported=snapshot_supported,
        machine_type=config.machine_type,
        instance_id=config.instance_id,
    )
