"""What the demo shows of a running task: progress bars, remaining time, failing hosts."""

from __future__ import annotations

from rich.console import Group, RenderableType
from rich.panel import Panel
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text

from vulfix.fixing.statuses import FIX_FAILED, SnapshotStatus
from vulfix.fixing.task_view import TaskFigures

MAX_FAILURES_SHOWN = 8


def failures(status: TaskFigures) -> list[tuple[str, str, str]]:
    """(host, what, why) for each failed snapshot and fix, snapshots first."""
    rows = [
        (s.host.host_name, "snapshot", s.fail_reason)
        for s in status.view.snapshot_records
        if s.status == SnapshotStatus.FAILED
    ]
    names = {item.item.id: item.item for item in status.items}
    for item in status.items:
        for record in item.records:
            if record.status in FIX_FAILED:
                vul = names[record.item_id]
                rows.append((record.host.host_name, f"{vul.vul_name}", record.fail_reason))
    return rows


def summary_line(status: TaskFigures) -> str:
    return (
        f"FixId {status.view.fix_id}: snapshots {status.snapshot_progress}%, "
        f"fixes {status.fix_progress}%, hosts fixed {status.fix_success_cnt}/{status.host_cnt}, "
        f"failed {status.fix_fail_cnt}, remaining {status.remaining_seconds} s"
    )


def render(status: TaskFigures, hints: str) -> RenderableType:
    bars = Table.grid(padding=(0, 2))
    bars.add_column(width=10)
    bars.add_column(width=50)
    bars.add_column()
    bars.add_row(
        "Snapshots",
        ProgressBar(total=100, completed=status.snapshot_progress),
        f"{status.snapshot_progress}%",
    )
    bars.add_row(
        "Fixes", ProgressBar(total=100, completed=status.fix_progress), f"{status.fix_progress}%"
    )
    done = status.ended_at is not None
    headline = Text.assemble(
        (f"Fix task {status.view.fix_id}  ", "bold"),
        f"{status.host_cnt} hosts, {len(status.items)} vulnerabilities  ",
        (
            "finished" if done else f"about {status.remaining_seconds} s to go",
            "green" if done else "yellow",
        ),
        f"   fixed {status.fix_success_cnt}, failed {status.fix_fail_cnt}, "
        f"snapshot failures {status.snapshot_fail_cnt}",
    )
    failed = failures(status)
    table = Table(
        title=f"Failures ({len(failed)}): retry them with RetryVulFix / RetryCreateSnapshot",
        expand=True,
    )
    table.add_column("Host", no_wrap=True)
    table.add_column("What")
    table.add_column("Why")
    for host, what, why in failed[:MAX_FAILURES_SHOWN]:
        table.add_row(host, what, why)
    parts: list[RenderableType] = [headline, bars]
    if failed:
        parts.append(table)
    parts.append(Text(hints, style="dim"))
    return Panel(Group(*parts), title="vulfix demo", subtitle="Ctrl-C to stop")
