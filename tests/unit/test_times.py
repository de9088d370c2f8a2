"""A stored instant is read back in UTC by one helper (domain.times.as_utc):
SQLite hands back the UTC it was given without a zone, PostgreSQL with one."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import billbridge
from billbridge.domain.times import as_utc

SOURCE = Path(billbridge.__file__).parent


def test_a_time_without_a_zone_is_the_utc_it_was_stored_as() -> None:
    assert as_utc(datetime(2026, 3, 31, 23, 30)) == datetime(2026, 3, 31, 23, 30, tzinfo=UTC)
    assert as_utc(datetime(2026, 3, 31, 23, 30)).tzinfo is UTC


def test_a_time_with_a_zone_is_moved_to_utc_not_relabelled() -> None:
    sydney = timezone(timedelta(hours=11))
    moved = as_utc(datetime(2026, 4, 1, 10, 30, tzinfo=sydney))
    assert (moved.isoformat(), moved.tzinfo) == ("2026-03-31T23:30:00+00:00", UTC)


def test_no_time_stays_none() -> None:
    assert as_utc(None) is None


def test_only_domain_times_gives_a_zoneless_time_its_zone() -> None:
    # connectors/ parse vendors' own formats (their team's code) and are not counted.
    files = [p for p in SOURCE.rglob("*.py") if "connectors" not in p.relative_to(SOURCE).parts]
    assert len(files) > 100
    twins = [str(p.relative_to(SOURCE)) for p in files
             if "replace(tzinfo=" in p.read_text() and p != SOURCE / "domain" / "times.py"]
    assert not twins, "use billbridge.domain.times.as_utc in: " + ", ".join(twins)
