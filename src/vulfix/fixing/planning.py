"""Planning a fix task: every check CreateVulFix makes, and the records it will create.

Pure: the caller loads the facts (hosts, vulnerabilities, findings, recent snapshots) and
writes the plan; nothing here touches storage. Checks follow DESIGN §2 and spec §3.4.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from vulfix.fixing.budgets import Budget
from vulfix.fixing.errors import CannotAutoFix, IncompleteFixItem, InvalidFixRequest
from vulfix.fixing.statuses import SnapshotStatus
from vulfix.inventory.can_fix import shown_state
from vulfix.inventory.records import AutoFixState as State

# IsSupportAutoFix as the caller sees it (pending on an offline host shows 2): spec §3.4.
BUSY_OR_DONE_STATES = frozenset({State.FIXING, State.FIXED, State.DETECTING, State.IGNORED})
INCAPABLE_STATES = frozenset(
    {State.CANNOT_FIX, State.AGENT_OFFLINE, State.NOT_FLAGSHIP, State.MACHINE_TYPE_NOT_ALLOWED,
     State.LINUX_ONLY, State.WINDOWS_ONLY}
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class FixItemRequest:
    vul_id: int
    kb_id: int
    fix_method: int
    quuids: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class FixRequest:
    items: tuple[FixItemRequest, ...]
    save_days: int
    snapshot_name: str = ""
    max_concurrency: str = ""
    max_errors: str = ""


@dataclass(frozen=True, slots=True)
class HostFact:
    host_id: int
    quuid: str
    host_name: str
    host_ip: str
    machine_type: str
    snapshot_supported: bool
    agent_online: bool
    has_recent_snapshot: bool


@dataclass(frozen=True, slots=True)
class KbFact:
    kb_id: int
    kb_number: str
    kb_name: str
    pre_kb_list: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class VulFact:
    vul_id: int
    vul_name: str
    fix_methods: tuple[int, ...]
    service: str
    kbs: Mapping[int, KbFact]


@dataclass(frozen=True, slots=True)
class PlannedItem:
    vul_id: int
    kb_id: int
    fix_method: int
    vul_name: str
    kb: KbFact | None
    hosts: tuple[HostFact, ...]


@dataclass(frozen=True, slots=True)
class TaskPlan:
    items: tuple[PlannedItem, ...]
    hosts: tuple[HostFact, ...]
    snapshot_status: Mapping[int, SnapshotStatus]  # by host_id
    save_days: int
    snapshot_name: str
    max_concurrency: Budget
    max_errors: Budget
    max_concurrency_text: str
    max_errors_text: str


# What the storage calls, inside its transaction, with the facts it loaded.
Planner = Callable[
    [Mapping[str, HostFact], Mapping[int, VulFact], Mapping[tuple[int, int], int]], TaskPlan
]


def plan_task(
    request: FixRequest,
    hosts: Mapping[str, HostFact],
    vulnerabilities: Mapping[int, VulFact],
    finding_states: Mapping[tuple[int, int], int],
    language: str = "zh-CN",
) -> TaskPlan:
    """Validate the request whole (nothing is created if anything is wrong) and plan it."""
    concurrency = Budget.parse(request.max_concurrency, "MaxConcurrency")
    errors = Budget.parse(request.max_errors, "MaxErrors")
    items = _merge_items(request.items)
    unknown = sorted({q for item in items for q in item.quuids if q not in hosts})
    if unknown:
        raise InvalidFixRequest(
            f"Unknown hosts: {', '.join(unknown)}.", f"主机不存在：{', '.join(unknown)}。"
        )
    planned = tuple(_plan_item(item, hosts, vulnerabilities, finding_states) for item in items)
    task_hosts = tuple({h.host_id: h for item in planned for h in item.hosts}.values())
    snapshot_status = _snapshot_plan(task_hosts, request.save_days)
    name = request.snapshot_name or _default_snapshot_name(planned[0].vul_name, language)
    return TaskPlan(
        items=planned,
        hosts=task_hosts,
        snapshot_status=snapshot_status,
        save_days=request.save_days,
        snapshot_name=name,
        max_concurrency=concurrency,
        max_errors=errors,
        max_concurrency_text=request.max_concurrency.strip(),
        max_errors_text=request.max_errors.strip(),
    )


def _merge_items(items: Sequence[FixItemRequest]) -> list[FixItemRequest]:
    """Entries with the same (VulId, KbId, FixMethod) merge; duplicate Quuids collapse."""
    merged: dict[tuple[int, int, int], dict[str, None]] = {}  # dicts keep order, drop repeats
    for item in items:
        if item.vul_id == 0 and item.kb_id == 0:
            raise IncompleteFixItem(
                "Each CreateVulFixTaskQuuids entry needs a VulId or a KbId.",
                "CreateVulFixTaskQuuids 的每一项都需要 VulId 或 KbId。",
            )
        merged.setdefault((item.vul_id, item.kb_id, item.fix_method), {}).update(
            dict.fromkeys(item.quuids)
        )
    return [FixItemRequest(v, k, m, tuple(q)) for (v, k, m), q in merged.items()]


def _plan_item(
    item: FixItemRequest,
    hosts: Mapping[str, HostFact],
    vulnerabilities: Mapping[int, VulFact],
    finding_states: Mapping[tuple[int, int], int],
) -> PlannedItem:
    vul = _resolve_vulnerability(item, vulnerabilities)
    kb = vul.kbs.get(item.kb_id) if item.kb_id else None
    if item.kb_id and kb is None:
        raise InvalidFixRequest(
            f"Vulnerability {vul.vul_id} has no KB patch {item.kb_id}.",
            f"漏洞 {vul.vul_id} 没有补丁 {item.kb_id}。",
        )
    if item.fix_method not in vul.fix_methods:
        raise CannotAutoFix(
            f"Vulnerability {vul.vul_id} cannot be fixed with FixMethod {item.fix_method}.",
            f"漏洞 {vul.vul_id} 不支持修复方式 {item.fix_method}。",
        )
    stored = {q: finding_states.get((hosts[q].host_id, vul.vul_id)) for q in item.quuids}
    states = {
        q: None if state is None else shown_state(state, hosts[q].agent_online)
        for q, state in stored.items()
    }
    not_pending = sorted(q for q, s in states.items() if s is None or s in BUSY_OR_DONE_STATES)
    if not_pending:
        raise InvalidFixRequest(
            f"Vulnerability {vul.vul_id} is not pending a fix on: {', '.join(not_pending)}.",
            f"以下主机上的漏洞 {vul.vul_id} 不处于待修复状态：{', '.join(not_pending)}。",
        )
    incapable = sorted(q for q, s in states.items() if s in INCAPABLE_STATES)
    if incapable:
        raise CannotAutoFix(
            f"Vulnerability {vul.vul_id} cannot be fixed automatically on: {', '.join(incapable)}.",
            f"以下主机不支持自动修复漏洞 {vul.vul_id}：{', '.join(incapable)}。",
        )
    return PlannedItem(
        vul.vul_id,
        item.kb_id,
        item.fix_method,
        vul.vul_name,
        kb,
        tuple(hosts[q] for q in item.quuids),
    )


def _resolve_vulnerability(item: FixItemRequest, vulnerabilities: Mapping[int, VulFact]) -> VulFact:
    if item.vul_id:
        vul = vulnerabilities.get(item.vul_id)
        if vul is None:
            raise InvalidFixRequest(f"Unknown VulId {item.vul_id}.", f"漏洞 {item.vul_id} 不存在。")
        return vul
    owners = [v for v in vulnerabilities.values() if item.kb_id in v.kbs]
    if len(owners) != 1:
        raise InvalidFixRequest(
            f"KbId {item.kb_id} does not name exactly one vulnerability; give its VulId.",
            f"补丁 {item.kb_id} 无法唯一确定漏洞，请同时提供 VulId。",
        )
    return owners[0]


def _snapshot_plan(hosts: Sequence[HostFact], save_days: int) -> dict[int, SnapshotStatus]:
    if save_days > 0:
        return {
            h.host_id: SnapshotStatus.PENDING
            if h.snapshot_supported
            else SnapshotStatus.NOT_SUPPORTED
            for h in hosts
        }
    missing = sorted(h.quuid for h in hosts if h.snapshot_supported and not h.has_recent_snapshot)
    if missing:
        raise InvalidFixRequest(
            "SaveDays is 0, so no snapshot will be taken, but these hosts have no snapshot "
            f"from the last 24 hours: {', '.join(missing)}.",
            f"SaveDays 为 0 时不会创建快照，但以下主机 24 小时内没有快照：{', '.join(missing)}。",
        )
    return {
        h.host_id: SnapshotStatus.NOT_NEEDED
        if h.snapshot_supported
        else SnapshotStatus.NOT_SUPPORTED
        for h in hosts
    }


def _default_snapshot_name(vul_name: str, language: str) -> str:
    prefix = "vul-fix_" if language == "en-US" else "漏洞修复_"
    return (prefix + vul_name)[:255]
