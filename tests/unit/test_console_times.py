"""Times on console pages read as a person reads them, in UTC."""

from __future__ import annotations

import pytest

from billbridge.console.views import templates


@pytest.mark.parametrize(("given", "shown"), [
    ("2026-12-07T21:40:43.616078+00:00", "2026-12-07 21:40 UTC"),
    ("2026-03-31T16:05:00+02:00", "2026-03-31 14:05 UTC"),
    (None, ""),
    ("not a time", "not a time"),
])
def test_an_iso_time_is_shown_to_the_minute_in_utc(given: object, shown: str) -> None:
    assert templates.env.filters["when"](given) == shown
