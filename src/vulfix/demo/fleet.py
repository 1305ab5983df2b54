"""The demo fleet: 48 hosts (Debian, Ubuntu, Rocky, Windows) and 18 vulnerabilities with
plausible CVE ids and KB patches, generated the same way every time."""

from __future__ import annotations

import random
from typing import Any

# (VulId, name, CVE, level, package, fixed version, service disabled by FixMethod 1)
_LINUX_ROWS = [
    (2401, "OpenSSH signal handler race (regreSSHion)", "CVE-2024-6387", "critical",
     "openssh-server", "1:9.2p1-2+deb12u3", ""),
    (2402, "glibc iconv out-of-bounds write", "CVE-2024-2961", "high",
     "libc6", "2.36-9+deb12u7", ""),
    (2403, "sudo chroot privilege escalation", "CVE-2025-32463", "critical",
     "sudo", "1.9.13p3-1+deb12u2", ""),
    (2404, "curl SOCKS5 heap overflow", "CVE-2023-38545", "high", "curl", "7.88.1-10+deb12u4", ""),
    (2405, "OpenSSL X.400 type confusion", "CVE-2023-0286", "high",
     "openssl", "3.0.11-1~deb12u2", ""),
    (2406, "Linux kernel nf_tables use-after-free", "CVE-2024-1086", "high",
     "linux-image-amd64", "6.1.76-1", ""),
    (2407, "cups-browsed remote code execution", "CVE-2024-47176", "high",
     "cups-browsed", "2.0.0-1+deb12u1", "cups-browsed"),
    (2408, "polkit pkexec local privilege escalation", "CVE-2021-4034", "high",
     "policykit-1", "0.105-31+deb11u1", ""),
    (2409, "libwebp heap buffer overflow", "CVE-2023-4863", "high",
     "libwebp7", "1.2.4-0.2+deb12u1", ""),
    (2410, "nginx HTTP/2 rapid reset", "CVE-2023-44487", "medium", "nginx", "1.22.1-9+deb12u1", ""),
    (2411, "rpcbind reflection amplification", "CVE-2017-8779", "medium",
     "rpcbind", "1.2.6-6+b1", "rpcbind"),
    (2412, "Bash ShellShock", "CVE-2014-6271", "critical", "bash", "4.3-7+deb8u1", ""),
]  # fmt: skip
# (VulId, name, CVE, KB number, KB title, prerequisite KBs)
_WINDOWS_ROWS = [
    (2421, "Windows TCP/IP IPv6 remote code execution", "CVE-2024-38063", 5041578,
     "2024-08 Cumulative Update", []),
    (2422, "SMBv3 compression (SMBGhost)", "CVE-2020-0796", 4551762, "2020-03 Update", []),
    (2423, "Print Spooler (PrintNightmare)", "CVE-2021-34527", 5004945,
     "2021-07 Out-of-band Update", []),
    (2424, "MSMQ remote code execution (QueueJumper)", "CVE-2023-21554", 5025229,
     "2023-04 Cumulative Update", ["KB5022842"]),
    (2425, "Remote Desktop (BlueKeep)", "CVE-2019-0708", 4499175, "2019-05 Security Update", []),
    (2426, ".NET denial of service", "CVE-2024-21409", 5034439, "2024-02 .NET Update", []),
]  # fmt: skip

LINUX_VULNERABILITIES: list[dict[str, Any]] = [
    {
        "VulId": vul_id, "VulName": name, "CveIds": [cve], "Level": level, "VulCategory": 4,
        "Packages": [{"Name": package, "FixedVersion": version}],
        **({"FixMethods": [1, 0], "Service": service} if service else {}),
    }
    for vul_id, name, cve, level, package, version, service in _LINUX_ROWS
]  # fmt: skip
WINDOWS_VULNERABILITIES: list[dict[str, Any]] = [
    {
        "VulId": vul_id, "VulName": name, "CveIds": [cve], "Level": "critical", "VulCategory": 5,
        "Kbs": [{"KbId": kb, "KbNumber": f"KB{kb}", "KbName": title, "PreKbList": pre}],
    }
    for vul_id, name, cve, kb, title, pre in _WINDOWS_ROWS
]  # fmt: skip

_LINUX = [("debian", "deb-web"), ("ubuntu", "ubu-app"), ("rocky", "rky-db")]


def demo_inventory(seed: int = 7) -> dict[str, Any]:
    """An import document (`docs/inventory-format.md`) for the demo account."""
    rng = random.Random(seed)
    hosts: list[dict[str, Any]] = []
    findings: list[dict[str, Any]] = []
    for n in range(36):
        os_family, prefix = _LINUX[n % 3]
        machine_type = "BM" if n % 9 == 4 else ("LH" if n % 7 == 3 else "CVM")
        quuid = f"d3m0{n:04d}-5e1c-4c3a-8f2d-0a1b2c3d{n:04d}"
        hosts.append(_host(quuid, f"{prefix}-{n:02d}", n, os_family, machine_type))
        for vul in rng.sample(LINUX_VULNERABILITIES, rng.randint(2, 4)):
            findings.append({"Quuid": quuid, "VulId": vul["VulId"]})
    for n in range(12):
        quuid = f"d3m0{100 + n:04d}-5e1c-4c3a-8f2d-0a1b2c3d{100 + n:04d}"
        hosts.append(_host(quuid, f"win-srv-{n:02d}", 100 + n, "windows", "CVM"))
        for vul in rng.sample(WINDOWS_VULNERABILITIES, rng.randint(2, 3)):
            findings.append({"Quuid": quuid, "VulId": vul["VulId"]})
    vulnerabilities = [{**v, "VulCategory": 4} for v in LINUX_VULNERABILITIES] + [
        {**v, "VulCategory": 5} for v in WINDOWS_VULNERABILITIES
    ]
    return {"hosts": hosts, "vulnerabilities": vulnerabilities, "findings": findings}


def _host(quuid: str, name: str, n: int, os_family: str, machine_type: str) -> dict[str, Any]:
    return {
        "Quuid": quuid,
        "HostName": name,
        "HostIp": f"10.20.{n // 250}.{n % 250 + 2}",
        "OsFamily": os_family,
        "MachineType": machine_type,
        "InstanceId": f"ins-{n:08x}",
        "Tags": ["demo", "windows" if os_family == "windows" else "linux"],
    }
