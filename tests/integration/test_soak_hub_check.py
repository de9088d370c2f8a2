"""The soak's hub check reads the store and names what is behind: an entry at
an older version than the source's, events still waiting in the inbox."""

from __future__ import annotations

from sqlalchemy import Engine

from billbridge.bench.soak_check import Verdict, check_hub, queues
from billbridge.engine.hub import Hub
from conftest import CONFIG, project_event, time_entry
from fakes import FakeTarget


def hub_verdict(engine: Engine, source: list[dict[str, object]]) -> Verdict:
    verdict = Verdict()
    with engine.connect() as conn:
        check_hub(conn, source, verdict)
    return verdict


def test_the_hub_check_names_what_the_hub_is_behind_on(engine: Engine) -> None:
    hub = Hub(engine, {"ledger": FakeTarget()})
    hub.activate_config(CONFIG)
    hub.ingest([project_event(), time_entry("te-1")], source="harvest")
    hub.run_until_idle()
    assert hub_verdict(engine, [{"id": "te-1", "version": 1}]).hub == []

    hub.ingest([time_entry("te-2")], source="harvest")  # stored, not processed yet
    problems = hub_verdict(engine, [{"id": "te-1", "version": 2},
                                    {"id": "te-2", "version": 1}]).hub
    assert problems == ["hub holds te-1 at v1, source at v2",
                        "hub holds te-2 at vNone, source at v1",
                        "1 inbox event(s) still pending"]

    hub.worker.run_once()  # processed: its posting waits in the outbox
    problems = hub_verdict(engine, [{"id": "te-2", "version": 1}]).hub
    assert problems == ["1 outbox command(s) still pending",
                        "charge not posted to the ERP: tc_te-2 (no acknowledged posting yet)"]


def test_the_queues_line_says_what_waits_and_for_how_long(engine: Engine) -> None:
    target = FakeTarget()
    hub = Hub(engine, {"ledger": target})
    hub.activate_config(CONFIG)
    hub.ingest([project_event(), time_entry("te-1")], source="harvest")
    with engine.connect() as conn:
        assert queues(conn, hub.clock.ms()) == "inbox 2 pending, 0 parked; outbox 0 pending"
    target.script = ["transient"]  # the first call fails: its commands back off
    hub.worker.run_once()
    hub.dispatcher.run_once()
    with engine.connect() as conn:
        line = queues(conn, hub.clock.ms())
    # The project backs off; the charge waits for it (a dependency, not a backoff).
    assert line.startswith("inbox 0 pending, 0 parked; outbox 2 pending (1 backing off, next in ")
    assert line.endswith("; ledger circuit closed")
