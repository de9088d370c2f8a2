"""Alert thresholds post once while they hold, clear when they stop, and
fire again when they come back; two evaluators never post the same alert."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy import Engine, text

from billbridge.engine.alerts import evaluate
from billbridge.engine.clock import ManualClock
from billbridge.engine.hub import Hub
from conftest import CONFIG, project_event, time_entry
from fakes import FakeTarget

RULES = {"webhook_url": "http://alerts.example.invalid/hook", "max_open_exceptions": 0,
         "max_parked_minutes": 60, "on_circuit_open": True}


def test_thresholds_post_once_clear_and_fire_again(engine: Engine) -> None:
    posted: list[dict[str, Any]] = []
    poster = lambda url, body: posted.append({"url": url, **body})  # noqa: E731
    target = FakeTarget()
    hub = Hub(engine, {"ledger": target}, clock=ManualClock())
    hub.activate_config({**CONFIG, "alerts": RULES})
    hub.ingest([project_event(), time_entry("te-1", worker="w-carol"),
                time_entry("te-2", project="NEW-404")], source="harvest")
    hub.run_until_idle()

    assert [a.key for a in evaluate(engine, hub.clock.now(), poster=poster)] == [
        "open_exceptions"]
    assert evaluate(engine, hub.clock.now(), poster=poster) == []  # still holding: quiet
    hub.clock.sleep(3 * 3600)  # type: ignore[attr-defined]
    assert [a.key for a in evaluate(engine, hub.clock.now(), poster=poster)] == [
        "oldest_parked"]
    assert posted[0]["url"] == RULES["webhook_url"] and "1 open exceptions" in \
        posted[0]["message"]

    with engine.begin() as conn:
        conn.execute(text("UPDATE exceptions SET status = 'dismissed'"))
    assert evaluate(engine, hub.clock.now(), poster=poster) == []
    with engine.begin() as conn:
        conn.execute(text("UPDATE exceptions SET status = 'open'"))
        conn.execute(text("UPDATE target_leases SET circuit = 'open'"))
    fired = {a.key for a in evaluate(engine, hub.clock.now(), poster=poster)}
    assert fired == {"open_exceptions", "circuit:ledger"}  # came back: fires again
    assert len(posted) == 4


def test_two_workers_do_not_post_the_same_alert(engine: Engine) -> None:
    posted: list[str] = []
    hub = Hub(engine, {"ledger": FakeTarget()}, clock=ManualClock())
    hub.activate_config({**CONFIG, "alerts": RULES})
    hub.ingest(['{"broken'], source="harvest")
    now = hub.clock.now() + timedelta(seconds=1)
    first = evaluate(engine, now, poster=lambda u, b: posted.append(b["alert"]))
    second = evaluate(engine, now, poster=lambda u, b: posted.append(b["alert"]))
    assert [a.key for a in first] == ["open_exceptions"] and second == []
    assert posted == ["open_exceptions"]
