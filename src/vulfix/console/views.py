"""How records read on screen: status names and badge styles, durations, times."""

from __future__ import annotations

from datetime import datetime

from vulfix.cwp.display_time import DisplayClock
from vulfix.fixing.planning import BUSY_OR_DONE_STATES, INCAPABLE_STATES

# (label, badge style) by snapshot record status (DESIGN §2).
SNAPSHOT_STATUS = {
    0: ("pending", "wait"),
    1: ("created", "ok"),
    2: ("failed", "fail"),
    10: ("not supported", "skip"),
    11: ("not needed", "skip"),
}
# (label, badge style) by host-fix record status.
FIX_STATUS = {
    0: ("waiting", "wait"),
    1: ("fixing", "run"),
    2: ("fixed", "ok"),
    3: ("failed", "fail"),
    4: ("snapshot failed", "fail"),
}
# IsSupportAutoFix (spec §2.7).
AUTO_FIX_STATE = {
    0: "cannot be fixed automatically",
    1: "can be fixed",
    2: "agent offline",
    3: "needs the flagship edition",
    4: "machine type not allowed",
    5: "fixing",
    6: "fixed",
    7: "being detected",
    9: "fix failed",
    10: "ignored",
    11: "Linux only",
    12: "Windows only",
}
# The states CreateVulFix accepts a host in: the fix flow offers only these.
STARTABLE_STATES = frozenset(AUTO_FIX_STATE) - BUSY_OR_DONE_STATES - INCAPABLE_STATES
FIX_METHODS = {0: "update the component", 1: "disable the service"}


def duration(seconds: int) -> str:
    """`RemainingTime` for people: "45 s", "3 min 20 s", "2 h 5 min"."""
    if seconds < 60:
        return f"{seconds} s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes} min {seconds} s" if seconds else f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min" if minutes else f"{hours} h"


def shown(display: DisplayClock, moment: datetime | None, never: str = "never") -> str:
    return display.show(moment) if moment is not None else never
