"""Times as the API shows them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

from hypothesis import given
from hypothesis import strategies as st

from vulfix.cwp.display_time import DisplayClock, parse_zone

MOMENTS = st.datetimes(
    min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC)
)


@given(
    moments=st.lists(MOMENTS, max_size=50),
    zone=st.sampled_from(["+08:00", "Asia/Shanghai", "America/New_York", "-03:30"]),
)
def test_remembered_seconds_show_as_a_fresh_conversion_would(
    moments: list[datetime], zone: str
) -> None:
    clock = DisplayClock(parse_zone(zone), remembered=8)  # small: forgetting is exercised
    tz = parse_zone(zone)
    for moment in [*moments, *moments]:  # the second pass answers from memory
        assert clock.show(moment) == moment.astimezone(tz).strftime("%Y-%m-%d %H:%M:%S")


def test_moments_within_one_second_show_alike_and_none_shows_empty() -> None:
    clock = DisplayClock(timezone(timedelta(hours=8)))
    moment = datetime(2026, 12, 5, 1, 2, 3, 999_999, tzinfo=UTC)
    assert clock.show(moment) == clock.show(moment.replace(microsecond=0)) == "2026-12-05 09:02:03"
    assert clock.show(None) == ""
