"""Times as the tables keep them (naive UTC) and back, exactly as `astimezone` would give."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

from hypothesis import given
from hypothesis import strategies as st

from vulfix.store.tables import as_utc, to_stored

_ZONES = st.builds(
    timezone, st.timedeltas(min_value=timedelta(hours=-23), max_value=timedelta(hours=23))
)
_AWARE = st.datetimes(
    min_value=datetime(1900, 1, 2), max_value=datetime(9000, 1, 1), timezones=_ZONES
)


@given(_AWARE)
def test_an_aware_time_is_stored_as_its_naive_utc(moment: datetime) -> None:
    stored = to_stored(moment)
    assert stored.tzinfo is None
    assert stored == moment.astimezone(UTC).replace(tzinfo=None)


@given(_AWARE)
def test_a_stored_time_reads_back_as_the_same_instant_in_utc(moment: datetime) -> None:
    back = as_utc(to_stored(moment))
    assert back.tzinfo is UTC
    assert back == moment


def test_a_naive_time_is_taken_as_local_time_as_astimezone_takes_it() -> None:
    naive = datetime(2026, 12, 5, 10, 30, 0, 123456)
    assert to_stored(naive) == naive.astimezone(UTC).replace(tzinfo=None)


def test_a_time_a_driver_gave_a_zone_is_relabelled_utc() -> None:
    zoned = datetime(2026, 12, 5, 10, 30, tzinfo=timezone(timedelta(hours=8)))
    assert as_utc(zoned) == datetime(2026, 12, 5, 10, 30, tzinfo=UTC)
