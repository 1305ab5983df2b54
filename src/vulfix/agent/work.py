"""What the agent does to its host for one job: snapshot, fix or delete a snapshot.

`HostWork` is built once at start-up, where a bad snapshot configuration is a `ConfigError`
(better than failing every snapshot job later). `run` never raises for what goes wrong on
the host: a missing program, a failed upgrade, a timeout all come back as a report with the
reason, the exit code and the tail of the transcript, for the server's host log.
"""

from __future__ import annotations

import logging
import time
from dataclasses import replace
from pathlib import Path

from vulfix.agent.commands import CommandRunner
from vulfix.agent.config import AgentConfig
from vulfix.agent.executors.package_managers import PackageManager, build_package_manager
from vulfix.agent.executors.package_upgrade import upgrade_packages
from vulfix.agent.executors.services import disable_service
from vulfix.agent.executors.windows_kb import install_kb, is_windows
from vulfix.agent.executors.work_result import WorkResult, failed, unsupported
from vulfix.agent.host_facts import read_os_release
from vulfix.agent.snapshot_providers import (
    SnapshotProvider,
    build_snapshot_provider,
    host_snapshot_name,
)
from vulfix.agent_protocol import (
    MAX_OUTPUT_TAIL,
    FixWork,
    JobEnvelope,
    JobReport,
    SnapshotDeleteWork,
    SnapshotWork,
)

log = logging.getLogger("vulfix.agent.work")

# CWP's FixMethod values.
UPGRADE_OR_PATCH = 0
DISABLE_SERVICE = 1


class HostWork:
    def __init__(self, config: AgentConfig, runner: CommandRunner, os_family: str) -> None:
        self._config = config
        self._runner = runner
        self._os_family = os_family
        self.snapshots: SnapshotProvider = build_snapshot_provider(config.snapshot, runner)
        self.packages: PackageManager | None = None
        if not is_windows(os_family):
            release = read_os_release(Path(config.os_release))
            families = [os_family, release.get("ID", ""), *release.get("ID_LIKE", "").split()]
            self.packages = build_package_manager(config.package_manager, runner, families=families)

    @property
    def snapshot_supported(self) -> bool:
        return self.snapshots.supported

    async def run(self, job: JobEnvelope) -> JobReport:
        started = time.monotonic()
        try:
            result = await self._dispatch(job)
        except Exception as exc:
            # A bug here must not take the agent down with the job still leased: report it.
            log.exception("job %d: the agent failed while running it", job.job_id)
            result = failed(f"the agent failed while running this job: {exc!r}")
        if self._runner.dry_run and result.outcome != "success":
            # A dry run reports success (nothing was attempted), saying what a real run met.
            result = replace(
                result, outcome="success", reason=f"dry run: a real run would fail: {result.reason}"
            )
        return job_report(result, time.monotonic() - started)

    async def _dispatch(self, job: JobEnvelope) -> WorkResult:
        work = job.work
        if isinstance(work, SnapshotWork):
            name = host_snapshot_name(work.snapshot_name, job.job_id)
            return await self.snapshots.create(name, work.save_days, job.job_id)
        if isinstance(work, SnapshotDeleteWork):
            return await self.snapshots.delete(work.provider_ref, job.job_id)
        return await self._fix(work)

    async def _fix(self, work: FixWork) -> WorkResult:
        dry_run = self._runner.dry_run
        if work.fix_method == DISABLE_SERVICE:
            if is_windows(self._os_family):
                return unsupported("disabling a service is not supported on Windows hosts")
            return await disable_service(self._runner, work.service, dry_run=dry_run)
        if work.fix_method != UPGRADE_OR_PATCH:
            return unsupported(f"FixMethod {work.fix_method} is not one this agent knows")
        if work.kb_id or work.kb_number.strip():
            return await install_kb(
                self._runner,
                work,
                kb_directory=self._config.kb_directory,
                os_family=self._os_family,
                dry_run=dry_run,
            )
        if self.packages is None:
            return unsupported(
                f"no package manager is known for os family {self._os_family!r}; "
                f"set package_manager in the agent's configuration"
            )
        return await upgrade_packages(self.packages, work.packages, dry_run=dry_run)


def job_report(result: WorkResult, duration: float) -> JobReport:
    """The wire report: the transcripts of every command, cut to the last MAX_OUTPUT_TAIL."""
    transcript = "".join(command.transcript() for command in result.commands)
    return JobReport(
        outcome=result.outcome,
        reason=result.reason,
        exit_code=result.exit_code,
        output_tail=transcript[-MAX_OUTPUT_TAIL:],
        provider_ref=result.provider_ref,
        duration_seconds=duration,
    )
