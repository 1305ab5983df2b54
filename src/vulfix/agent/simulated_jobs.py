"""What a simulated host makes of a job: how long it takes and what it reports.

Drawn from the host's own random generator, in a fixed order per job, so a host's results
depend only on the seed, its Quuid and the jobs it was given, never on scheduling.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from vulfix.agent_protocol import FixWork, JobEnvelope, JobReport, SnapshotDeleteWork, SnapshotWork

# Nominal durations in seconds (before --speed), drawn uniformly.
SNAPSHOT_SECONDS = (2.0, 5.0)
FIX_SECONDS = (3.0, 10.0)
SNAPSHOT_DELETE_SECONDS = (0.5, 2.0)

APT_FAMILIES = frozenset({"debian", "ubuntu", "kali", "deepin", "uos"})
WINDOWS_FAMILIES = frozenset({"windows"})
DISABLE_SERVICE = 1

# (reason, exit code); `{package}` and `{service}` are filled in.
Failures = tuple[tuple[str, int], ...]

APT_FAILURES: Failures = (
    ("E: Could not get lock /var/lib/dpkg/lock-frontend. It is held by process 2117 (apt)", 100),
    ("E: Unable to locate package {package}", 100),
    ("E: Failed to fetch http://mirrors.tencentyun.com/ubuntu/pool/main/{package}.deb  404", 100),
    (
        "dpkg: error processing package {package} (--configure): post-installation script "
        "subprocess returned error exit status 1",
        100,
    ),
    ("E: You don't have enough free space in /var/cache/apt/archives/.", 100),
)
YUM_FAILURES: Failures = (
    ("Error: Unable to find a match: {package}", 1),
    ("Error: Failed to download metadata for repo 'updates': Cannot download repomd.xml", 1),
    ("Error: Transaction test error: file /usr/lib64/lib{package}.so conflicts", 1),
)
WINDOWS_FAILURES: Failures = (
    ("0x80240017: the update is not applicable to this computer", -2145124329),
    ("1618: another installation is already in progress", 1618),
    ("1603: fatal error during installation", 1603),
)
SERVICE_FAILURES: Failures = (
    ("Failed to stop {service}.service: Unit {service}.service not loaded.", 5),
    ("Failed to disable unit: Access denied", 1),
)
SNAPSHOT_FAILURES: Failures = (
    ('Volume group "vg0" has insufficient free space (120 extents): 1280 required.', 5),
    ("snapshot provider timed out after 300 s", 124),
    ('Logical volume "root" is busy: cannot snapshot while it is being converted', 5),
)


@dataclass(frozen=True, slots=True)
class SimulatedRun:
    seconds: float
    report: JobReport


def job_kind(job: JobEnvelope) -> str:
    if isinstance(job.work, SnapshotWork):
        return "snapshot"
    if isinstance(job.work, SnapshotDeleteWork):
        return "snapshot_delete"
    return "fix"


def simulate_job(
    job: JobEnvelope,
    *,
    os_family: str,
    snapshot_supported: bool,
    rng: random.Random,
    fail_rate: float,
    snapshot_fail_rate: float,
    speed: float,
) -> SimulatedRun:
    work = job.work
    if isinstance(work, SnapshotWork):
        seconds = rng.uniform(*SNAPSHOT_SECONDS) / speed
        failed = rng.random() < snapshot_fail_rate
        which = rng.randrange(len(SNAPSHOT_FAILURES))
        if not snapshot_supported:
            report = JobReport(outcome="unsupported", reason="no snapshot provider on this host")
            return SimulatedRun(0.0, report)
        return SimulatedRun(seconds, _snapshot(job.job_id, work, failed, which, seconds))
    if isinstance(work, SnapshotDeleteWork):
        seconds = rng.uniform(*SNAPSHOT_DELETE_SECONDS) / speed
        output = f"$ lvremove -y {work.provider_ref}\n  Logical volume removed.\n"
        return SimulatedRun(
            seconds,
            JobReport(outcome="success", exit_code=0, output_tail=output, duration_seconds=seconds),
        )
    seconds = rng.uniform(*FIX_SECONDS) / speed
    failed = rng.random() < fail_rate
    choice = rng.random()
    return SimulatedRun(seconds, _fix(work, os_family, failed, choice, seconds))


def _snapshot(
    job_id: int, work: SnapshotWork, failed: bool, choice: int, seconds: float
) -> JobReport:
    name = f"vulfix-{job_id}"
    command = f"$ lvcreate --snapshot --name {name} --size 5G vg0/root\n"
    if failed:
        reason, code = SNAPSHOT_FAILURES[choice]
        return JobReport(
            outcome="failure",
            reason=reason,
            exit_code=code,
            output_tail=f"{command}  {reason}\n",
            duration_seconds=seconds,
        )
    output = f'{command}  Logical volume "{name}" created ({work.snapshot_name}).\n'
    return JobReport(
        outcome="success",
        exit_code=0,
        output_tail=output,
        provider_ref=f"lvm:vg0/{name}",
        duration_seconds=seconds,
    )


def _fix(work: FixWork, os_family: str, failed: bool, choice: float, seconds: float) -> JobReport:
    named = work.packages[0].name if work.packages else (work.vul_name.split() or ["package"])[0]
    if work.fix_method == DISABLE_SERVICE and work.service:
        failures, lines = (
            SERVICE_FAILURES,
            [
                f"$ systemctl disable --now {work.service}",
                f"Removed /etc/systemd/system/multi-user.target.wants/{work.service}.service.",
            ],
        )
    elif os_family in WINDOWS_FAMILIES or work.kb_number:
        failures, lines = (
            WINDOWS_FAILURES,
            [
                f"> wusa.exe {work.kb_number or 'KB' + str(work.kb_id)}.msu /quiet /norestart",
                f"Installing {work.kb_name or work.vul_name}...",
            ],
        )
    elif os_family in APT_FAMILIES:
        targets = " ".join(f"{p.name}={p.fixed_version}" for p in work.packages) or named
        failures, lines = (
            APT_FAILURES,
            [
                f"$ apt-get install --only-upgrade -y {targets}",
                "Reading package lists...",
                "Building dependency tree...",
                f"{max(1, len(work.packages))} upgraded, 0 newly installed, 0 to remove.",
            ],
        )
    else:
        targets = " ".join(f"{p.name}-{p.fixed_version}" for p in work.packages) or named
        failures, lines = (
            YUM_FAILURES,
            [
                f"$ yum update -y {targets}",
                "Dependencies resolved.",
                f"Upgrading: {max(1, len(work.packages))} packages",
            ],
        )
    if not failed:
        return JobReport(
            outcome="success",
            exit_code=0,
            output_tail="\n".join(lines) + "\nComplete.\n",
            duration_seconds=seconds,
        )
    template, code = failures[int(choice * len(failures))]
    reason = template.format(package=named, service=work.service)
    output = "\n".join([*lines[:2], reason]) + "\n"
    return JobReport(
        outcome="failure",
        reason=reason,
        exit_code=code,
        output_tail=output,
        duration_seconds=seconds,
    )
