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
    def __init__(self, zone: tzinfo) -> None:
        self.zone = zone

    def show(self, moment: datetime | None) -> str:
        if moment is None:
            return ""
        return moment.astimezone(self.zone).strftime("%Y-%m-%d %H:%M:%S")
