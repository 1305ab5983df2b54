"""Rules across fields and entries, defaults that depend on other fields, and references.

Problems are collected rather than raised one by one, so a large file can be fixed in one
pass; each reads `section[index].Field: why`.
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
import re
from collections.abc import Hashable, Iterable

from msgspec import UNSET

from vulfix.inventory.document import (
    FindingEntry,
    HostEntry,
    InventoryDocument,
    VulnerabilityEntry,
    decode_document,
)
from vulfix.inventory.errors import InvalidDocumentError
from vulfix.inventory.records import (
    DISABLE_SERVICE,
    ENGINE_OWNED_STATES,
    FIX_METHODS,
    IMPORTABLE_STATES,
    LEVELS,
    LINUX_SOFTWARE,
    MACHINE_TYPES,
    QUUID_FORMAT,
    SNAPSHOT_MACHINE_TYPES,
    VUL_CATEGORIES,
    WINDOWS_SYSTEM,
    AutoFixState,
    Finding,
    Host,
    Inventory,
    KbPatch,
    Package,
    Vulnerability,
)

OS_FAMILY = re.compile(r"[a-z][a-z0-9._-]*")
CVE_ID = re.compile(r"CVE-\d{4}-\d{4,}")
DISK_ID_ALPHABET = "0123456789abcdefghijklmnopqrstuvwxyz"
DISK_ID_LENGTH = 8


def quoted(text: str) -> str:
    """A string as the document writes it (JSON quotes), for messages."""
    return json.dumps(text, ensure_ascii=False)


def _listed(values: Iterable[object]) -> str:
    return ", ".join(str(v) for v in values)


def default_disk_id(quuid: str) -> str:
    """`disk-` + 8 lower-case alphanumerics derived from the Quuid: the same on every import."""
    number = int.from_bytes(hashlib.sha256(quuid.encode()).digest()[:8], "big")
    letters = []
    for _ in range(DISK_ID_LENGTH):
        number, digit = divmod(number, len(DISK_ID_ALPHABET))
        letters.append(DISK_ID_ALPHABET[digit])
    return "disk-" + "".join(letters)


def _first_seen(problems: list[str], keyed: Iterable[tuple[Hashable, str, str]]) -> None:
    """Reports every repeat of a key: (key, where, how the key reads in a message)."""
    first: dict[Hashable, str] = {}
    for key, where, shown in keyed:
        if key in first:
            problems.append(f"{where}: duplicate {shown}, first at {first[key]}")
        else:
            first[key] = where


def _host(problems: list[str], where: str, entry: HostEntry) -> Host:
    if not QUUID_FORMAT.fullmatch(entry.quuid):
        problems.append(
            f"{where}.Quuid: must start with a letter or digit and hold only letters, digits "
            f"and . _ : -, not {quoted(entry.quuid)}"
        )
    if not OS_FAMILY.fullmatch(entry.os_family):
        problems.append(
            f"{where}.OsFamily: must be a lower-case name such as debian, ubuntu, rhel, "
            f"windows, not {quoted(entry.os_family)}"
        )
    if entry.machine_type not in MACHINE_TYPES:
        problems.append(
            f"{where}.MachineType: must be one of {_listed(MACHINE_TYPES)}, "
            f"not {quoted(entry.machine_type)}"
        )
    if entry.host_ip:
        try:
            ipaddress.ip_address(entry.host_ip)
        except ValueError:
            problems.append(f"{where}.HostIp: not an IP address: {quoted(entry.host_ip)}")
    snapshot_supported = (
        entry.machine_type in SNAPSHOT_MACHINE_TYPES
        if entry.snapshot_supported is UNSET
        else entry.snapshot_supported
    )
    return Host(
        quuid=entry.quuid,
        uuid=entry.uuid,
        host_name=entry.host_name,
        host_ip=entry.host_ip,
        instance_id=entry.instance_id,
        machine_type=entry.machine_type,
        os_family=entry.os_family,
        tags=tuple(entry.tags),
        snapshot_supported=snapshot_supported,
        region_id=entry.region_id,
        disk_id=default_disk_id(entry.quuid) if entry.disk_id is UNSET else entry.disk_id,
    )


def _vulnerability(problems: list[str], where: str, entry: VulnerabilityEntry) -> Vulnerability:
    if entry.vul_category is UNSET:
        category = WINDOWS_SYSTEM if entry.kbs else LINUX_SOFTWARE
    else:
        category = entry.vul_category
        if category not in VUL_CATEGORIES:
            problems.append(
                f"{where}.VulCategory: must be one of {_listed(VUL_CATEGORIES)}, not {category}"
            )
    if entry.level not in LEVELS:
        problems.append(
            f"{where}.Level: must be one of {_listed(LEVELS)}, not {quoted(entry.level)}"
        )
    for index, cve_id in enumerate(entry.cve_ids):
        if not CVE_ID.fullmatch(cve_id):
            problems.append(f"{where}.CveIds[{index}]: not a CVE id: {quoted(cve_id)}")
    if not entry.fix_methods:
        problems.append(f"{where}.FixMethods: must name at least one method")
    for index, method in enumerate(entry.fix_methods):
        if method not in FIX_METHODS:
            problems.append(
                f"{where}.FixMethods[{index}]: must be one of {_listed(FIX_METHODS)}, not {method}"
            )
    _first_seen(
        problems,
        ((m, f"{where}.FixMethods[{i}]", str(m)) for i, m in enumerate(entry.fix_methods)),
    )
    if DISABLE_SERVICE in entry.fix_methods and not entry.service:
        problems.append(
            f"{where}.Service: required when FixMethods contains {DISABLE_SERVICE} "
            "(disable the service)"
        )
    _first_seen(
        problems,
        (
            (p.name, f"{where}.Packages[{i}].Name", quoted(p.name))
            for i, p in enumerate(entry.packages)
        ),
    )
    _first_seen(
        problems,
        ((k.kb_id, f"{where}.Kbs[{i}].KbId", str(k.kb_id)) for i, k in enumerate(entry.kbs)),
    )
    return Vulnerability(
        vul_id=entry.vul_id,
        vul_name=entry.vul_name,
        vul_category=category,
        level=entry.level,
        cve_ids=tuple(entry.cve_ids),
        fix_methods=tuple(entry.fix_methods),
        fix_tag=tuple(entry.fix_tag),
        packages=tuple(Package(p.name, p.fixed_version) for p in entry.packages),
        kbs=tuple(
            KbPatch(k.kb_id, k.kb_number, k.kb_name, tuple(k.pre_kb_list)) for k in entry.kbs
        ),
        service=entry.service,
    )


def _finding(problems: list[str], where: str, entry: FindingEntry) -> Finding:
    state = entry.is_support_auto_fix
    if state in ENGINE_OWNED_STATES:
        name = AutoFixState(state).name.lower().replace("_", " ")
        problems.append(
            f"{where}.IsSupportAutoFix: {state} ({name}) is set by the fix engine, not by an import"
        )
    elif state == AutoFixState.AGENT_OFFLINE:
        problems.append(
            f"{where}.IsSupportAutoFix: {state} (agent offline) follows from the agent's "
            "status, not from an import"
        )
    elif state not in IMPORTABLE_STATES:
        allowed = _listed(sorted(int(s) for s in IMPORTABLE_STATES))
        problems.append(f"{where}.IsSupportAutoFix: must be one of {allowed}, not {state}")
    known = state in IMPORTABLE_STATES
    return Finding(
        entry.quuid, entry.vul_id, AutoFixState(state) if known else AutoFixState.CAN_FIX
    )


def validate_document(document: InventoryDocument) -> Inventory:
    problems: list[str] = []
    hosts = tuple(_host(problems, f"hosts[{i}]", e) for i, e in enumerate(document.hosts))
    vulnerabilities = tuple(
        _vulnerability(problems, f"vulnerabilities[{i}]", e)
        for i, e in enumerate(document.vulnerabilities)
    )
    findings = tuple(
        _finding(problems, f"findings[{i}]", e) for i, e in enumerate(document.findings)
    )
    _first_seen(
        problems, ((h.quuid, f"hosts[{i}].Quuid", quoted(h.quuid)) for i, h in enumerate(hosts))
    )
    _first_seen(
        problems,
        (
            (v.vul_id, f"vulnerabilities[{i}].VulId", str(v.vul_id))
            for i, v in enumerate(vulnerabilities)
        ),
    )
    _first_seen(
        problems,
        (
            ((f.quuid, f.vul_id), f"findings[{i}]", f"(Quuid {quoted(f.quuid)}, VulId {f.vul_id})")
            for i, f in enumerate(findings)
        ),
    )
    if problems:
        raise InvalidDocumentError(problems)
    return Inventory(hosts, vulnerabilities, findings)


def load_inventory(data: bytes) -> Inventory:
    """Decodes and validates a document; references to stored entries are checked at import."""
    return validate_document(decode_document(data))


def check_references(
    inventory: Inventory, stored_quuids: set[str], stored_vul_ids: set[int]
) -> None:
    """Every finding names a host and a vulnerability, from the document or already stored."""
    quuids = stored_quuids | {h.quuid for h in inventory.hosts}
    vul_ids = stored_vul_ids | {v.vul_id for v in inventory.vulnerabilities}
    problems: list[str] = []
    for index, finding in enumerate(inventory.findings):
        if finding.quuid not in quuids:
            problems.append(f"findings[{index}]: unknown Quuid {quoted(finding.quuid)}")
        if finding.vul_id not in vul_ids:
            problems.append(f"findings[{index}]: unknown VulId {finding.vul_id}")
    if problems:
        raise InvalidDocumentError(problems)
