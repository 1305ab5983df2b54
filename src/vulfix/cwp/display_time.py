"""Times as the API shows them: `YYYY-MM-DD HH:MM:SS` in the configured display zone."""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone, tzinfo
from zoneinfo import ZoneInfo

_OFFSET = re.compile(r"(?:UTC)?([+-])(\d{2}):?(\d{2})")


def parse_zone(name: str) -> tzinfo:
    """An IANA name (`Asia/Shanghai`) or a fixed offset (`+08:00`, `UTC+08:00`)."""
    match = _OFFSET.fullmatch(name.strip())
    if match:
        sign = 1 if match.group(1) == "+" else -1
        return timezone(sign * timedelta(hours=int(match.group(2)), minutes=int(match.group(3))))
    return ZoneInfo(name)


class DisplayClock:
    """Formats times in one zone, remembering recent seconds: a task's records share a few
    moments (created together, finished close together), and a big task's answer shows
    tens of thousands of them, where converting and formatting each cost most of the build."""

    def __init__(self, zone: tzinfo, remembered: int = 65_536) -> None:
        self.zone = zone
        self._shown: dict[datetime, str] = {}
        self._remembered = remembered

    def show(self, moment: datetime | None) -> str:
        if moment is None:
            return ""
        second = moment.replace(microsecond=0)  # what is shown: equal seconds look alike
        shown = self._shown.get(second)
        if shown is None:
            if len(self._shown) >= self._remembered:
                self._shown.clear()
            shown = self._shown[second] = second.astimezone(self.zone).strftime("%Y-%m-%d %H:%M:%S")
        return shown
