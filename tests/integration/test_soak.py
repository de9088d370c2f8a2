"""A short soak, about two minutes: the whole fleet on PostgreSQL under kills,
an ERP outage, 429 storms, lost acknowledgements and late and repeated
webhooks reconciles with no loss and no duplicate. `make soak` runs the long
one."""

from __future__ import annotations

import pytest

from billbridge.bench.soak import SoakSettings, run
from conftest import PG_URL, skip_without_pg

pytestmark = [pytest.mark.postgres, pytest.mark.slow]


@pytest.mark.timeout(420)
def test_a_short_soak_loses_nothing_and_duplicates_nothing() -> None:
    skip_without_pg()
    assert PG_URL
    result = run(SoakSettings(seconds=45, settle_seconds=200, erp_down_seconds=8,
                              storm_seconds=5, kill_every=(6.0, 10.0), seed=7),
                 server_url=PG_URL)
    assert result["ok"], result
    # The chaos happened, and the verdict had work to judge.
    assert result["verdict"]["approved"] > 50, result
    assert result["verdict"]["erp_postings"] >= result["verdict"]["approved"], result
    assert sum(result["kills"].values()) >= 3, result
    # Down for most of the planned 8 s: stopping and starting the ERP's server takes
    # a second or two of it on a busy machine.
    assert result["erp_down_s"] >= 4, result
    assert result["faults_injected"]["erp"].get("429", 0) > 0, result
    assert result["inbox_repeats_dropped"] > 0, result
