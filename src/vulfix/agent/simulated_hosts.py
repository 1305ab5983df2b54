"""The hosts a simulated fleet plays: read from an inventory import document.

Only what an agent would know of itself is read; every other key of the document is ignored,
so the simulator takes the same files as `vulfix import`.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import msgspec

from vulfix.agent_protocol import EnrollRequest

# Inventory rules mirrored from the import format: the default machine type, and the machine
# types whose cloud disks can be snapshotted when a host does not say.
DEFAULT_MACHINE_TYPE = "CVM"
SNAPSHOT_MACHINE_TYPES = frozenset({"CVM", "LH"})


class InventoryHost(msgspec.Struct, rename="pascal", kw_only=True):
    """What the simulator reads of an import document's host; other keys are ignored."""

    quuid: str
    os_family: str
    host_name: str = ""
    host_ip: str = ""
    machine_type: str = DEFAULT_MACHINE_TYPE
    snapshot_supported: bool | None = None
    instance_id: str = ""


class _InventoryFile(msgspec.Struct):
    hosts: list[InventoryHost] = []


def parse_inventory(document: bytes) -> list[InventoryHost]:
    try:
        return msgspec.json.decode(document, type=_InventoryFile).hosts
    except msgspec.DecodeError as exc:
        raise ValueError(f"not an inventory document: {exc}") from exc


def load_inventory(path: Path) -> list[InventoryHost]:
    return parse_inventory(path.read_bytes())


def enroll_request(host: InventoryHost, enroll_token: str) -> EnrollRequest:
    """The facts a real agent would find on this host; blanks filled in from the Quuid."""
    digest = hashlib.sha256(host.quuid.encode()).digest()
    snapshot_supported = host.snapshot_supported
    if snapshot_supported is None:
        snapshot_supported = host.machine_type in SNAPSHOT_MACHINE_TYPES
    return EnrollRequest(
        enroll_token=enroll_token,
        quuid=host.quuid,
        host_name=host.host_name or f"sim-{digest[:4].hex()}",
        host_ip=host.host_ip or f"10.{digest[0]}.{digest[1]}.{digest[2] or 1}",
        os_family=host.os_family,
        snapshot_supported=snapshot_supported,
        machine_type=host.machine_type,
        instance_id=host.instance_id or None,
    )
