"""Between the agent wire format (`vulfix.agent_protocol`) and the domain port's dataclasses.

Untrusted values are bounded here, at the edge, so the domain and the store only ever see
what they can keep: an over-long output tail loses its beginning (the end of a log is what
explains a failure), an over-long reason is cut, and values no column can hold are refused.
"""

from __future__ import annotations

import math

from vulfix import agent_protocol as wire
from vulfix.fixing import agent_port as port

MAX_REASON = 1024
MAX_PROVIDER_REF = 512
INT32 = 2**31
MAX_ID = 2**63 - 1


class InvalidReport(ValueError):
    """A well-formed report carrying a value the server cannot accept."""


def host_facts(request: wire.EnrollRequest) -> port.HostFacts:
    return port.HostFacts(
        quuid=request.quuid,
        host_name=request.host_name,
        host_ip=request.host_ip,
        os_family=request.os_family,
        snapshot_supported=request.snapshot_supported,
        machine_type=request.machine_type,
        instance_id=request.instance_id,
    )


def job_result(report: wire.JobReport) -> port.JobResult:
    if report.exit_code is not None and not -INT32 <= report.exit_code < INT32:
        raise InvalidReport("exit_code must fit in 32 bits")
    if len(report.provider_ref) > MAX_PROVIDER_REF:
        raise InvalidReport(f"provider_ref is longer than {MAX_PROVIDER_REF} characters")
    if not math.isfinite(report.duration_seconds) or report.duration_seconds < 0:
        raise InvalidReport("duration_seconds must be a finite number >= 0")
    return port.JobResult(
        outcome=report.outcome,
        reason=report.reason[:MAX_REASON],
        exit_code=report.exit_code,
        output_tail=report.output_tail[-wire.MAX_OUTPUT_TAIL :],
        provider_ref=report.provider_ref,
        duration_seconds=report.duration_seconds,
    )


def _work(
    work: port.SnapshotWork | port.FixWork | port.SnapshotDeleteWork,
) -> wire.SnapshotWork | wire.FixWork | wire.SnapshotDeleteWork:
    if isinstance(work, port.SnapshotWork):
        return wire.SnapshotWork(snapshot_name=work.snapshot_name, save_days=work.save_days)
    if isinstance(work, port.SnapshotDeleteWork):
        return wire.SnapshotDeleteWork(snapshot_id=work.snapshot_id, provider_ref=work.provider_ref)
    return wire.FixWork(
        vul_id=work.vul_id,
        vul_name=work.vul_name,
        fix_method=work.fix_method,
        packages=[
            wire.Package(name=package.name, fixed_version=package.fixed_version)
            for package in work.packages
        ],
        service=work.service,
        kb_id=work.kb_id,
        kb_number=work.kb_number,
        kb_name=work.kb_name,
        pre_kb_list=list(work.pre_kb_list),
    )


def job_envelope(job: port.JobAssignment) -> wire.JobEnvelope:
    return wire.JobEnvelope(
        job_id=job.job_id,
        fix_id=job.fix_id,
        lease_seconds=job.lease_seconds,
        work=_work(job.work),
    )


def report_ack(
    outcome: port.ReportOutcome, next_job: port.JobAssignment | None = None
) -> wire.ReportAck:
    return wire.ReportAck(
        applied=outcome.applied,
        detail=outcome.detail,
        next_job=job_envelope(next_job) if next_job is not None else None,
    )


def parse_id(raw: str) -> int | None:
    """A positive 64-bit id written in plain digits, or None."""
    if not raw.isascii() or not raw.isdigit() or len(raw) > 19:
        return None
    value = int(raw)
    return value if 0 < value <= MAX_ID else None
