"""The inventory as the rest of vulfix sees it: validated, with every default applied."""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import IntEnum

# A host id the API can name (the same rule as `vulfix.cwp.quuids`); real ones are UUIDs.
QUUID_FORMAT = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,127}")

MACHINE_TYPES = ("CVM", "BM", "ECM", "LH", "Other")
# Cloud-disk snapshots exist for CVM and Lighthouse; other machines need a provider that says so.
SNAPSHOT_MACHINE_TYPES = frozenset({"CVM", "LH"})
LEVELS = ("low", "medium", "high", "critical")
# 1 web CMS, 2 application, 4 Linux software, 5 Windows system (there is no 3).
VUL_CATEGORIES = (1, 2, 4, 5)
LINUX_SOFTWARE = 4
WINDOWS_SYSTEM = 5
UPDATE_COMPONENT = 0  # FixMethod 0: upgrade the packages or install the KB patches
DISABLE_SERVICE = 1  # FixMethod 1: stop and disable the vulnerable service
FIX_METHODS = (UPDATE_COMPONENT, DISABLE_SERVICE)
# Ids are stored as 32-bit integers; larger ones cannot name anything.
MAX_ID = 2**31 - 1


class AutoFixState(IntEnum):
    """A finding's `IsSupportAutoFix` (spec §2.7)."""

    CANNOT_FIX = 0
    CAN_FIX = 1
    AGENT_OFFLINE = 2
    NOT_FLAGSHIP = 3
    MACHINE_TYPE_NOT_ALLOWED = 4
    FIXING = 5
    FIXED = 6
    DETECTING = 7
    FIX_FAILED = 9
    IGNORED = 10
    LINUX_ONLY = 11
    WINDOWS_ONLY = 12


# What a scanner may report; the fix engine alone moves findings into and out of these.
IMPORTABLE_STATES = frozenset(
    {
        AutoFixState.CANNOT_FIX,
        AutoFixState.CAN_FIX,
        AutoFixState.NOT_FLAGSHIP,
        AutoFixState.MACHINE_TYPE_NOT_ALLOWED,
        AutoFixState.DETECTING,
        AutoFixState.IGNORED,
        AutoFixState.LINUX_ONLY,
        AutoFixState.WINDOWS_ONLY,
    }
)
ENGINE_OWNED_STATES = frozenset({AutoFixState.FIXING, AutoFixState.FIXED, AutoFixState.FIX_FAILED})


@dataclass(frozen=True, slots=True)
class Host:
    quuid: str
    uuid: str
    host_name: str
    host_ip: str
    instance_id: str
    machine_type: str
    os_family: str
    tags: tuple[str, ...]
    snapshot_supported: bool
    region_id: int
    disk_id: str


@dataclass(frozen=True, slots=True)
class Package:
    name: str
    fixed_version: str


@dataclass(frozen=True, slots=True)
class KbPatch:
    kb_id: int
    kb_number: str
    kb_name: str
    pre_kb_list: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Vulnerability:
    vul_id: int
    vul_name: str
    vul_category: int
    level: str
    cve_ids: tuple[str, ...]
    fix_methods: tuple[int, ...]
    fix_tag: tuple[str, ...]
    packages: tuple[Package, ...]
    kbs: tuple[KbPatch, ...]
    service: str


@dataclass(frozen=True, slots=True)
class Finding:
    quuid: str
    vul_id: int
    state: AutoFixState


@dataclass(frozen=True, slots=True)
class Inventory:
    """A validated document; entries keep their document order, so positions name them."""

    hosts: tuple[Host, ...]
    vulnerabilities: tuple[Vulnerability, ...]
    findings: tuple[Finding, ...]

    def outside_quuids(self) -> set[str]:
        """Hosts the findings name that the document does not define (they must exist)."""
        return {f.quuid for f in self.findings} - {h.quuid for h in self.hosts}

    def outside_vul_ids(self) -> set[int]:
        return {f.vul_id for f in self.findings} - {v.vul_id for v in self.vulnerabilities}


@dataclass(frozen=True, slots=True)
class ImportSummary:
    """What one import did. `findings_kept` were left in a state the fix engine owns."""

    account_id: int
    hosts_inserted: int = 0
    hosts_updated: int = 0
    vulnerabilities_inserted: int = 0
    vulnerabilities_updated: int = 0
    kb_patches: int = 0
    findings_inserted: int = 0
    findings_updated: int = 0
    findings_kept: int = 0
