from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from vulfix.inventory.errors import InvalidDocumentError
from vulfix.inventory.records import AutoFixState, Inventory
from vulfix.inventory.validation import check_references, default_disk_id, load_inventory

EXAMPLE = Path(__file__).parents[2] / "docs" / "examples" / "fleet.json"


def host(quuid: str = "h-1", **fields: Any) -> dict[str, Any]:
    return {"Quuid": quuid, "OsFamily": "debian", **fields}


def vul(vul_id: int = 1, **fields: Any) -> dict[str, Any]:
    return {"VulId": vul_id, "VulName": f"vulnerability {vul_id}", **fields}


def load(document: Any) -> Inventory:
    return load_inventory(json.dumps(document).encode())


def problems(document: Any) -> list[str]:
    with pytest.raises(InvalidDocumentError) as caught:
        load(document)
    return list(caught.value.problems)


def test_minimal_entries_get_the_documented_defaults() -> None:
    inventory = load(
        {
            "hosts": [host("h-1")],
            "vulnerabilities": [vul(7)],
            "findings": [{"Quuid": "h-1", "VulId": 7}],
        }
    )
    (h,) = inventory.hosts
    assert (h.uuid, h.host_name, h.host_ip, h.instance_id) == ("", "", "", "")
    assert (h.machine_type, h.tags, h.region_id) == ("CVM", (), 1)
    assert h.snapshot_supported is True
    assert re.fullmatch(r"disk-[0-9a-z]{8}", h.disk_id)
    (v,) = inventory.vulnerabilities
    assert (v.vul_category, v.level, v.fix_methods, v.service) == (4, "medium", (0,), "")
    assert (v.cve_ids, v.fix_tag, v.packages, v.kbs) == ((), (), (), ())
    assert inventory.findings[0].state == AutoFixState.CAN_FIX


@pytest.mark.parametrize(
    ("machine_type", "supported"),
    [("CVM", True), ("LH", True), ("BM", False), ("ECM", False), ("Other", False)],
)
def test_snapshot_support_defaults_by_machine_type(machine_type: str, supported: bool) -> None:
    inventory = load({"hosts": [host(MachineType=machine_type)]})
    assert inventory.hosts[0].snapshot_supported is supported


def test_explicit_snapshot_support_and_disk_id_win() -> None:
    inventory = load(
        {"hosts": [host(MachineType="BM", SnapshotSupported=True, DiskId="disk-fc19gd5w")]}
    )
    assert inventory.hosts[0].snapshot_supported is True
    assert inventory.hosts[0].disk_id == "disk-fc19gd5w"


def test_generated_disk_id_depends_only_on_the_quuid() -> None:
    assert default_disk_id("h-1") == default_disk_id("h-1")
    assert default_disk_id("h-1") != default_disk_id("h-2")
    assert load({"hosts": [host("h-1")]}).hosts[0].disk_id == default_disk_id("h-1")


def test_a_vulnerability_with_kb_patches_defaults_to_windows_system() -> None:
    kbs = [{"KbId": 5034439, "KbNumber": "KB5034439"}]
    inventory = load({"vulnerabilities": [vul(Kbs=kbs)]})
    assert inventory.vulnerabilities[0].vul_category == 5
    assert inventory.vulnerabilities[0].kbs[0].pre_kb_list == ()


def test_the_documented_example_is_valid() -> None:
    inventory = load_inventory(EXAMPLE.read_bytes())
    assert len(inventory.hosts) == 12
    assert len(inventory.vulnerabilities) == 6
    assert {h.os_family for h in inventory.hosts} == {"debian", "ubuntu", "rhel", "windows"}
    assert {h.machine_type for h in inventory.hosts} >= {"CVM", "BM", "Other"}
    windows = [v for v in inventory.vulnerabilities if len(v.kbs) == 2]
    assert windows and any(kb.pre_kb_list for kb in windows[0].kbs)
    assert any(1 in v.fix_methods and v.service for v in inventory.vulnerabilities)


@pytest.mark.parametrize(
    ("document", "message"),
    [
        (
            {"hosts": [host(), host("h-2"), host("h-3"), {"Quuid": "h-4"}]},
            "hosts[3].OsFamily: required",
        ),
        ({"hosts": [host(Colour="blue")]}, "hosts[0].Colour: unknown field"),
        ({"hosts": [host(RegionId="1")]}, "hosts[0].RegionId: expected int, got str"),
        ({"hosts": [host(RegionId=0)]}, "hosts[0].RegionId: expected int >= 1"),
        ({"hosts": [host(Tags=["a", 2])]}, "hosts[0].Tags[1]: expected str, got int"),
        (
            {"hosts": [host(SnapshotSupported="yes")]},
            "hosts[0].SnapshotSupported: expected bool, got str",
        ),
        ({"hosts": [host("")]}, "hosts[0].Quuid: must not be empty"),
        ({"hosts": [host("x" * 129)]}, "hosts[0].Quuid: expected str of length <= 128"),
        ({"hosts": {}}, "hosts: expected array, got object"),
        ({"vulnerabilities": [vul(0)]}, "vulnerabilities[0].VulId: expected int >= 1"),
        ({"vulnerabilities": [{"VulId": 1}]}, "vulnerabilities[0].VulName: required"),
        (
            {"vulnerabilities": [vul(Kbs=[{"KbId": 1, "KbNumber": "KB1"}, {"KbNumber": "KB2"}])]},
            "vulnerabilities[0].Kbs[1].KbId: required",
        ),
        (
            {"vulnerabilities": [vul(Packages=[{"Name": "openssl", "Version": "3"}])]},
            "vulnerabilities[0].Packages[0].Version: unknown field",
        ),
        (
            {"findings": [{"Quuid": "h-1", "VulId": "7"}]},
            "findings[0].VulId: expected int, got str",
        ),
        ({"host": []}, "host: unknown field"),
        ([], "document: expected object, got array"),
    ],
)
def test_shape_errors_name_the_entry_and_field(document: Any, message: str) -> None:
    assert problems(document) == [message]


def test_malformed_json_is_reported_for_the_document() -> None:
    with pytest.raises(InvalidDocumentError) as caught:
        load_inventory(b'{"hosts": [')
    assert caught.value.problems[0].startswith("document: not valid JSON")


@pytest.mark.parametrize(
    ("document", "message"),
    [
        (
            {"hosts": [host(MachineType="VM")]},
            'hosts[0].MachineType: must be one of CVM, BM, ECM, LH, Other, not "VM"',
        ),
        ({"hosts": [host(OsFamily="Debian")]}, "hosts[0].OsFamily: must be a lower-case name"),
        ({"hosts": [host(HostIp="10.0.0")]}, 'hosts[0].HostIp: not an IP address: "10.0.0"'),
        ({"hosts": [host("h 1")]}, "hosts[0].Quuid: must start with a letter or digit"),
        (
            {"vulnerabilities": [vul(Level="severe")]},
            'vulnerabilities[0].Level: must be one of low, medium, high, critical, not "severe"',
        ),
        (
            {"vulnerabilities": [vul(VulCategory=3)]},
            "vulnerabilities[0].VulCategory: must be one of 1, 2, 4, 5, not 3",
        ),
        (
            {"vulnerabilities": [vul(CveIds=["CVE-2024-6387", "cve-2024-1"])]},
            'vulnerabilities[0].CveIds[1]: not a CVE id: "cve-2024-1"',
        ),
        ({"vulnerabilities": [vul(FixMethods=[])]}, "vulnerabilities[0].FixMethods: must name"),
        (
            {"vulnerabilities": [vul(FixMethods=[0, 2])]},
            "vulnerabilities[0].FixMethods[1]: must be one of 0, 1, not 2",
        ),
        (
            {"vulnerabilities": [vul(FixMethods=[1])]},
            "vulnerabilities[0].Service: required when FixMethods contains 1",
        ),
        (
            {"findings": [{"Quuid": "h-1", "VulId": 1, "IsSupportAutoFix": 8}]},
            "findings[0].IsSupportAutoFix: must be one of 0, 1, 3, 4, 7, 10, 11, 12, not 8",
        ),
        (
            {"findings": [{"Quuid": "h-1", "VulId": 1, "IsSupportAutoFix": 2}]},
            "findings[0].IsSupportAutoFix: 2 (agent offline) follows from the agent's status",
        ),
    ],
)
def test_value_errors_name_the_entry_and_field(document: Any, message: str) -> None:
    found = problems(document)
    assert len(found) == 1
    assert found[0].startswith(message)


@pytest.mark.parametrize(("state", "name"), [(5, "fixing"), (6, "fixed"), (9, "fix failed")])
def test_engine_owned_states_are_refused(state: int, name: str) -> None:
    document = {"findings": [{"Quuid": "h-1", "VulId": 1, "IsSupportAutoFix": state}]}
    assert problems(document) == [
        f"findings[0].IsSupportAutoFix: {state} ({name}) is set by the fix engine, not by an import"
    ]


def test_every_importable_state_is_accepted() -> None:
    states = [0, 1, 3, 4, 7, 10, 11, 12]
    findings = [{"Quuid": f"h-{s}", "VulId": 1, "IsSupportAutoFix": s} for s in states]
    inventory = load({"findings": findings})
    assert [int(f.state) for f in inventory.findings] == states


def test_duplicates_point_at_the_first_occurrence() -> None:
    document = {
        "hosts": [host("h-1"), host("h-2"), host("h-1")],
        "vulnerabilities": [
            vul(
                1, Packages=[{"Name": "a", "FixedVersion": "1"}, {"Name": "a", "FixedVersion": "2"}]
            ),
            vul(1, Kbs=[{"KbId": 5, "KbNumber": "KB5"}, {"KbId": 5, "KbNumber": "KB5"}]),
        ],
        "findings": [{"Quuid": "h-1", "VulId": 1}, {"Quuid": "h-1", "VulId": 1}],
    }
    assert sorted(problems(document)) == sorted(
        [
            'hosts[2].Quuid: duplicate "h-1", first at hosts[0].Quuid',
            'vulnerabilities[0].Packages[1].Name: duplicate "a", '
            "first at vulnerabilities[0].Packages[0].Name",
            "vulnerabilities[1].Kbs[1].KbId: duplicate 5, first at vulnerabilities[1].Kbs[0].KbId",
            "vulnerabilities[1].VulId: duplicate 1, first at vulnerabilities[0].VulId",
            'findings[1]: duplicate (Quuid "h-1", VulId 1), first at findings[0]',
        ]
    )


def test_all_problems_are_collected_and_a_long_list_is_cut_short() -> None:
    document = {"hosts": [host(f"h-{i}", MachineType="VM") for i in range(25)]}
    with pytest.raises(InvalidDocumentError) as caught:
        load(document)
    assert len(caught.value.problems) == 25
    lines = str(caught.value).splitlines()
    assert len(lines) == 21
    assert lines[-1] == "... and 5 more problems"


def test_references_may_point_into_the_document_or_the_store() -> None:
    inventory = load(
        {
            "hosts": [host("h-1")],
            "vulnerabilities": [vul(1)],
            "findings": [{"Quuid": "h-1", "VulId": 1}, {"Quuid": "h-stored", "VulId": 2}],
        }
    )
    assert inventory.outside_quuids() == {"h-stored"}
    assert inventory.outside_vul_ids() == {2}
    check_references(inventory, {"h-stored"}, {2})


def test_unknown_references_name_the_finding() -> None:
    findings = [{"Quuid": "h-1", "VulId": i} for i in range(1, 13)]
    findings.append({"Quuid": "h-9", "VulId": 99})
    inventory = load({"hosts": [host("h-1")], "findings": findings})
    with pytest.raises(InvalidDocumentError) as caught:
        check_references(inventory, set(), set(range(1, 13)))
    assert caught.value.problems == (
        'findings[12]: unknown Quuid "h-9"',
        "findings[12]: unknown VulId 99",
    )
