"""The agent API's wire format (`/agent/v1`), shared by the server and the host agent.

JSON with snake_case names; a host authenticates with `Authorization: Bearer <host_token>`.

    POST /agent/v1/enroll          EnrollRequest            -> EnrollResponse
    POST /agent/v1/heartbeat       Heartbeat                -> HeartbeatAck
    GET  /agent/v1/jobs?wait=S     (long-poll, S <= 60)     -> 200 JobEnvelope | 204 (none yet)
    POST /agent/v1/jobs/{id}/result[?next=1]  JobReport     -> ReportAck

Errors are 4xx with `AgentError`; a report is idempotent by job id (a resend is
acknowledged with `applied: false`, never applied twice). With `next=1` the acknowledgement
also carries the host's next job (`next_job`, leased as a poll would lease it), so an agent
working through a queue needs one round trip per job instead of two; servers that predate it
answer without the field and the agent polls as before.
"""

from __future__ import annotations

from typing import Literal

import msgspec

JobKind = Literal["snapshot", "fix", "snapshot_delete"]
Outcome = Literal["success", "failure", "unsupported"]

AGENT_API_PATH = "/agent/v1"
MAX_OUTPUT_TAIL = 64 * 1024


class EnrollRequest(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    enroll_token: str
    # Given when the host was imported (or enrolled before); otherwise the server makes one.
    quuid: str | None = None
    host_name: str
    host_ip: str
    os_family: str
    snapshot_supported: bool
    machine_type: str | None = None
    instance_id: str | None = None


class EnrollResponse(msgspec.Struct, kw_only=True):
    quuid: str
    host_token: str
    heartbeat_interval: float
    poll_wait: float


class Heartbeat(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    # The job the agent is running, whose lease the heartbeat extends.
    running_job_id: int | None = None


class HeartbeatAck(msgspec.Struct, kw_only=True):
    lease_extended: bool


class Package(msgspec.Struct, kw_only=True):
    name: str
    fixed_version: str


class SnapshotWork(msgspec.Struct, kw_only=True, tag="snapshot"):
    snapshot_name: str
    save_days: int


class FixWork(msgspec.Struct, kw_only=True, tag="fix"):
    vul_id: int
    vul_name: str
    fix_method: int
    packages: list[Package]
    service: str
    kb_id: int
    kb_number: str
    kb_name: str
    pre_kb_list: list[str]


class SnapshotDeleteWork(msgspec.Struct, kw_only=True, tag="snapshot_delete"):
    snapshot_id: str
    provider_ref: str


class JobEnvelope(msgspec.Struct, kw_only=True):
    job_id: int
    fix_id: int
    lease_seconds: float
    work: SnapshotWork | FixWork | SnapshotDeleteWork


class JobReport(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    outcome: Outcome
    reason: str = ""
    exit_code: int | None = None
    output_tail: str = msgspec.field(default="")
    # What the snapshot provider calls the snapshot it made (snapshot jobs only).
    provider_ref: str = ""
    duration_seconds: float = 0.0


class ReportAck(msgspec.Struct, kw_only=True):
    applied: bool
    detail: str = ""
    # Only when the report asked for it (`next=1`) and the host has a job waiting.
    next_job: JobEnvelope | None = None


class AgentError(msgspec.Struct, kw_only=True):
    error: str
    message: str
