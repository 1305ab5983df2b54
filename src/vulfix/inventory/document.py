"""The import document as written: JSON with the API's PascalCase field names.

msgspec checks shapes, types and lengths and stops at the first problem; its message and
`$.hosts[3].OsFamily`-style path are translated into the `hosts[3].OsFamily: why` form every
import error uses. Rules that span fields or entries live in `validation.py`.
"""

from __future__ import annotations

import re
from typing import Annotated

import msgspec
from msgspec import UNSET, Meta, UnsetType

from vulfix.inventory.errors import InvalidDocumentError
from vulfix.inventory.records import MAX_ID, UPDATE_COMPONENT

Id = Annotated[int, Meta(ge=1, le=MAX_ID)]
QuuidText = Annotated[str, Meta(min_length=1, max_length=128)]


class Entry(msgspec.Struct, rename="pascal", forbid_unknown_fields=True, kw_only=True):
    """An entry of the document: PascalCase names, nothing unknown."""


class HostEntry(Entry):
    quuid: QuuidText
    os_family: Annotated[str, Meta(max_length=32)]
    uuid: Annotated[str, Meta(max_length=128)] = ""
    host_name: Annotated[str, Meta(max_length=255)] = ""
    host_ip: Annotated[str, Meta(max_length=64)] = ""
    instance_id: Annotated[str, Meta(max_length=128)] = ""
    machine_type: str = "CVM"
    tags: list[str] = []
    # UNSET rather than None: the default depends on MachineType, and null is not a value.
    snapshot_supported: bool | UnsetType = UNSET
    region_id: Id = 1
    disk_id: Annotated[str, Meta(min_length=1, max_length=64)] | UnsetType = UNSET


class PackageEntry(Entry):
    name: Annotated[str, Meta(min_length=1, max_length=255)]
    fixed_version: Annotated[str, Meta(min_length=1, max_length=128)]


class KbEntry(Entry):
    kb_id: Id
    kb_number: Annotated[str, Meta(min_length=1, max_length=64)]
    kb_name: Annotated[str, Meta(max_length=512)] = ""
    pre_kb_list: list[str] = []


class VulnerabilityEntry(Entry):
    vul_id: Id
    vul_name: Annotated[str, Meta(min_length=1, max_length=512)]
    vul_category: int | UnsetType = UNSET
    level: str = "medium"
    cve_ids: list[str] = []
    fix_methods: list[int] = msgspec.field(default_factory=lambda: [UPDATE_COMPONENT])
    fix_tag: list[str] = []
    packages: list[PackageEntry] = []
    kbs: list[KbEntry] = []
    service: Annotated[str, Meta(max_length=128)] = ""


class FindingEntry(Entry):
    quuid: QuuidText
    vul_id: Id
    is_support_auto_fix: int = 1


class InventoryDocument(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    hosts: list[HostEntry] = []
    vulnerabilities: list[VulnerabilityEntry] = []
    findings: list[FindingEntry] = []


_LOCATED = re.compile(r"(?P<message>.*?)(?: - at `\$(?P<path>[^`]*)`)?", re.DOTALL)
_MISSING = re.compile(r"Object missing required field `(?P<field>[^`]+)`")
_UNKNOWN = re.compile(r"Object contains unknown field `(?P<field>[^`]+)`")


def _joined(path: str, field: str) -> str:
    return f"{path}.{field}" if path else field


def translate(error: msgspec.ValidationError) -> str:
    """msgspec's `... - at `$.hosts[3]`` message as `hosts[3].OsFamily: required`."""
    located = _LOCATED.fullmatch(str(error))
    assert located is not None  # the pattern matches any text
    message, path = located["message"], (located["path"] or "").lstrip(".")
    if missing := _MISSING.fullmatch(message):
        return f"{_joined(path, missing['field'])}: required"
    if unknown := _UNKNOWN.fullmatch(message):
        return f"{_joined(path, unknown['field'])}: unknown field"
    if message == "Expected `str` of length >= 1":
        reason = "must not be empty"
    else:
        reason = message.replace("`", "")
        reason = reason[:1].lower() + reason[1:]
    return f"{path or 'document'}: {reason}"


def decode_document(data: bytes) -> InventoryDocument:
    try:
        return msgspec.json.decode(data, type=InventoryDocument)
    except msgspec.ValidationError as error:
        raise InvalidDocumentError([translate(error)]) from error
    except msgspec.DecodeError as error:
        raise InvalidDocumentError([f"document: not valid JSON ({error})"]) from error
