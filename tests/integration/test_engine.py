"""The engine on a real store (SQLite, and PostgreSQL in CI) with an
in-memory target: inbox, ordering, parking, outbox, retries, exceptions."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from prometheus_client import REGISTRY
from sqlalchemy import Engine, select, text
from structlog.testing import capture_logs

from billbridge.engine import audit, exception_queue, lineage
from billbridge.engine.clock import ManualClock
from billbridge.engine.hub import Hub, HubSettings
from billbridge.engine.inbox import IngestStatus
from billbridge.engine.policy import RetryPolicy
from billbridge.store.tables import delivery_attempts, exceptions, inbox, outbox
from conftest import CONFIG, project_event, time_entry
from fakes import FakeTarget


@pytest.fixture
def target() -> Iterator[FakeTarget]:
    """An ERP that writes a record on every first-attempt send: whatever a
    test did, the hub must not have sent any command twice as new."""
    target = FakeTarget()
    yield target
    assert target.twins() == {}, "the ERP holds twins: a command was sent twice as new"


@pytest.fixture
def hub(engine: Engine, target: FakeTarget) -> Iterator[Hub]:
    hub = Hub(engine, {"ledger": target}, clock=ManualClock(), seed=7,
              settings=HubSettings(retry=RetryPolicy(base_seconds=1, cap_seconds=60,
                                                     max_attempts=6)))
    hub.activate_config(CONFIG)
    yield hub


def open_reasons(hub: Hub) -> list[str]:
    with hub.engine.connect() as conn:
        return sorted(r.reason for r in exception_queue.list_open(conn))


def charge_amounts(target: FakeTarget) -> dict[str, str]:
    return {p["time_entry"]: p["amount"] for p in target.payloads("time_charge.post")}


def test_second_delivery_is_counted_and_dropped(hub: Hub, target: FakeTarget) -> None:
    first = hub.ingest([project_event(), time_entry("te-1")], source="harvest")
    again = hub.ingest([time_entry("te-1")], source="harvest")
    assert [r.status for r in first] == [IngestStatus.ACCEPTED] * 2
    assert again[0].status is IngestStatus.DUPLICATE
    assert again[0].inbox_id == first[1].inbox_id
    hub.run_until_idle()
    with hub.engine.connect() as conn:
        assert conn.execute(select(inbox.c.duplicates).where(inbox.c.event_id == "te-1:v1")
                            ).scalar() == 1
    assert charge_amounts(target) == {"te-1": "1400.00"}


def test_same_event_id_from_another_source_is_not_a_duplicate(hub: Hub) -> None:
    hub.ingest([time_entry("te-1")], source="harvest")
    other = hub.ingest([time_entry("te-1")], source="kantata")
    assert other[0].status is IngestStatus.ACCEPTED


def _repeats_counted(source: str) -> float:
    return REGISTRY.get_sample_value("billbridge_events_deduplicated_total",
                                     {"source": source}) or 0.0


def test_a_repeat_delivery_is_counted_against_the_source_that_sent_it(hub: Hub) -> None:
    """Two sources each have an event te-1:v1 (and a malformed bad-1): a
    repeat from one is counted on that source's row and metric only."""
    sources = ("kantata", "harvest")
    metric_before = {s: _repeats_counted(s) for s in sources}
    bad = '{"type": "time_entry.upserted", "id": "bad-1", "data": {"hours": "lots"}}'
    rows = {s: [r.inbox_id for r in hub.ingest([time_entry("te-1"), bad], source=s)]
            for s in sources}
    again = [hub.ingest([time_entry("te-1"), bad], source=s)
             for s in ("harvest", "harvest", "kantata")]
    assert [[r.status for r in results] for results in again] == \
        [[IngestStatus.DUPLICATE] * 2] * 3
    assert [[r.inbox_id for r in results] for results in again] == \
        [rows["harvest"], rows["harvest"], rows["kantata"]]
    with hub.engine.connect() as conn:
        counted = {(r.source, r.event_id): r.duplicates for r in conn.execute(
            select(inbox.c.source, inbox.c.event_id, inbox.c.duplicates))}
    assert counted == {("harvest", "te-1:v1"): 2, ("harvest", "bad-1"): 2,
                       ("kantata", "te-1:v1"): 1, ("kantata", "bad-1"): 1}
    assert {s: _repeats_counted(s) - metric_before[s] for s in sources} == \
        {"harvest": 4, "kantata": 2}


def test_malformed_payload_lands_raw_in_the_queue_and_the_queue_keeps_flowing(
        hub: Hub, target: FakeTarget) -> None:
    body = '{"type": "time_entry.upserted", "id": "bad-1", "at": "2026-03-03T18:00:00Z",' \
           ' "data": {"id": "te-x", "hours": "lots"}}'
    results = hub.ingest([project_event(), body, time_entry("te-1")], source="harvest")
    assert [r.status for r in results] == [IngestStatus.ACCEPTED, IngestStatus.MALFORMED,
                                           IngestStatus.ACCEPTED]
    hub.run_until_idle()
    with hub.engine.connect() as conn:
        [exc] = exception_queue.list_open(conn)
    assert exc.reason == "MALFORMED_PAYLOAD" and exc.raw == body
    assert "data.hours" in exc.message or "hours" in exc.message
    assert charge_amounts(target) == {"te-1": "1400.00"}


def test_time_before_its_project_parks_visibly_then_posts_on_activation(
        hub: Hub, target: FakeTarget) -> None:
    hub.ingest([time_entry("te-1", project="NEW-002")], source="harvest")
    hub.run_until_idle()
    with hub.engine.connect() as conn:
        row = conn.execute(select(inbox.c.status, inbox.c.waiting_on)
                           .where(inbox.c.event_id == "te-1:v1")).one()
    assert (row.status, row.waiting_on) == ("parked", "project:NEW-002")
    assert target.effects == [] and open_reasons(hub) == []

    hub.ingest([project_event("NEW-002")], source="psa")
    hub.run_until_idle()
    assert target.kinds() == ["project.upsert", "time_charge.post"]
    assert charge_amounts(target) == {"te-1": "1400.00"}


def test_events_of_one_aggregate_apply_in_inbox_order(hub: Hub, target: FakeTarget) -> None:
    events = [project_event()] + [time_entry("te-1", version=v, hours=str(v))
                                  for v in range(1, 6)]
    hub.ingest(events, source="harvest")
    hub.run_until_idle()
    # Each version was newer than the last when it applied, so each was posted.
    assert [p["source_version"] for p in target.payloads("time_charge.post")] == [1, 2, 3, 4, 5]


def test_stale_version_is_ignored(hub: Hub, target: FakeTarget) -> None:
    hub.ingest([project_event(), time_entry("te-1", version=3, hours="3")], source="harvest")
    hub.ingest([time_entry("te-1", version=2, hours="2")], source="harvest")
    hub.run_until_idle()
    assert [p["hours"] for p in target.payloads("time_charge.post")] == ["3.00"]


def test_command_waits_for_the_command_it_depends_on(hub: Hub, target: FakeTarget) -> None:
    target.script = ["permanent"]  # the project write is refused
    hub.ingest([project_event(), time_entry("te-1")], source="harvest")
    hub.run_until_idle()
    assert target.effects == []
    assert open_reasons(hub) == ["TARGET_REJECTED"]
    with hub.engine.connect() as conn:
        waiting = conn.execute(select(outbox.c.kind, outbox.c.status)
                               .where(outbox.c.status == "pending")).all()
    assert [tuple(w) for w in waiting] == [("time_charge.post", "pending")]

    with hub.engine.begin() as conn:
        [exc] = exception_queue.list_open(conn)
        exception_queue.retry(conn, exc.id, actor="ops", at=hub.clock.now())
    hub.run_until_idle()
    assert target.kinds() == ["project.upsert", "time_charge.post"]


def test_lost_acknowledgement_is_retried_without_a_twin(hub: Hub, target: FakeTarget) -> None:
    target.script = ["lost_ack", "429:30", "transient"]
    hub.ingest([project_event(), time_entry("te-1"), time_entry("te-2", worker="w-bob")],
               source="harvest")
    hub.run_until_idle()
    # The target writes a new record for every first-attempt send, so the
    # resend after the lost acknowledgement is a twin unless it says it is one.
    assert target.twins() == {}
    assert len(target.effects) == 3
    assert target.live_charges() == {"te-1": ["1400.00"], "te-2": ["1200.00"]}
    assert len(target.calls) > 3  # the faults really happened and were retried


def test_retry_after_is_honoured(hub: Hub, target: FakeTarget) -> None:
    target.script = ["429:120"]
    hub.ingest([project_event()], source="psa")
    start = hub.clock.ms()
    hub.step()
    hub.step()
    with hub.engine.connect() as conn:
        due = conn.execute(select(outbox.c.next_attempt_ms)).scalar_one()
    assert due >= start + 120_000
    assert target.effects == []
    hub.run_until_idle()
    assert target.kinds() == ["project.upsert"]


def test_partly_failed_batch_settles_each_record(hub: Hub, target: FakeTarget) -> None:
    target.reject = lambda c: "unknown worker" if c.payload.get("worker") == "w-bob" else None
    hub.ingest([project_event(), time_entry("te-1"), time_entry("te-2", worker="w-bob"),
                time_entry("te-3", hours="2")], source="harvest")
    hub.run_until_idle()
    assert charge_amounts(target) == {"te-1": "1400.00", "te-3": "350.00"}
    with hub.engine.connect() as conn:
        [exc] = exception_queue.list_open(conn)
    assert exc.reason == "TARGET_REJECTED" and "unknown worker" in exc.message
    assert exc.record_id == "tc_te-2" and json.loads(exc.raw)["worker"] == "w-bob"
    with hub.engine.connect() as conn:
        attempts = {r.record_id: (r.outcome, r.detail) for r in conn.execute(
            select(outbox.c.record_id, delivery_attempts.c.outcome, delivery_attempts.c.detail)
            .join(delivery_attempts, delivery_attempts.c.outbox_id == outbox.c.id)
            .where(outbox.c.kind == "time_charge.post"))}
    # Each command's attempt in the call says how it ended; an applied one
    # names the id the target gave it.
    ids = {c.payload["time_entry"]: target.applied[c.idempotency_key] for c in target.effects
           if c.kind == "time_charge.post"}
    assert attempts["tc_te-1"] == ("applied", ids["te-1"])
    assert attempts["tc_te-3"] == ("applied", ids["te-3"])
    assert attempts["tc_te-2"][0] == "rejected" and "unknown worker" in attempts["tc_te-2"][1]


def test_a_batch_refused_whole_is_split_to_find_the_bad_record(
        hub: Hub, target: FakeTarget) -> None:
    target.reject = lambda c: "bad" if c.payload.get("worker") == "w-bob" else None
    target.script = ["ok", "whole_batch_rejects", "whole_batch_rejects", "whole_batch_rejects"]
    hub.ingest([project_event()], source="psa")
    hub.run_until_idle()
    hub.ingest([time_entry(f"te-{i}", worker="w-bob" if i == 3 else "w-alice")
                for i in range(1, 6)], source="harvest")
    hub.run_until_idle()
    assert sorted(charge_amounts(target)) == ["te-1", "te-2", "te-4", "te-5"]
    assert open_reasons(hub) == ["TARGET_REJECTED"]
    # Each half after a refusal is a resend: a target that wrote part of the
    # refused batch looks for its markers before writing again.
    good = next(e.idempotency_key for e in target.effects if e.payload.get("time_entry") == "te-1")
    assert target.attempts_seen[good][0] == 1 and target.attempts_seen[good][-1] > 1


def test_circuit_opens_on_a_down_target_and_nothing_is_lost(
        hub: Hub, target: FakeTarget) -> None:
    target.script = ["transient"] * 5
    hub.ingest([project_event()], source="psa")
    for _ in range(5):
        hub.step()
        hub.clock.sleep(20)  # past each backoff (≤ 16 s), short of the 30 s cooldown
    with hub.engine.connect() as conn:
        state = conn.execute(text("SELECT circuit FROM target_leases")).scalar()
    assert state == "open"
    calls = len(target.calls)
    hub.step()
    assert len(target.calls) == calls  # open: no call made
    hub.run_until_idle()
    assert target.kinds() == ["project.upsert"]


def test_when_the_circuit_closes_the_backlog_goes_without_waiting_out_its_backoff(
        engine: Engine, target: FakeTarget) -> None:
    hub = Hub(engine, {"ledger": target}, clock=ManualClock(), seed=7,
              settings=HubSettings(retry=RetryPolicy(base_seconds=100, cap_seconds=1000),
                                   breaker_threshold=1, breaker_cooldown=5))
    hub.activate_config(CONFIG)
    target.script = ["transient"]
    hub.ingest([project_event("GLX-001")], source="psa")
    hub.step()  # fails: the circuit opens; the command backs off 50 s or more
    hub.ingest([project_event("GLX-002")], source="psa")
    hub.clock.sleep(6)  # past the cooldown, far short of the backoff
    hub.step()  # the trial call (the new command) succeeds: the circuit closes
    hub.step()
    assert sorted(p["code"] for p in target.payloads("project.upsert")) == ["GLX-001",
                                                                            "GLX-002"]


def test_the_first_call_after_the_cooldown_carries_exactly_one_command(
        engine: Engine, target: FakeTarget) -> None:
    """Half-open: one command probes a target that was down; the backlog
    follows only once it has succeeded."""
    hub = Hub(engine, {"ledger": target}, clock=ManualClock(), seed=7,
              settings=HubSettings(retry=RetryPolicy(base_seconds=1, cap_seconds=1),
                                   breaker_threshold=1, breaker_cooldown=5))
    hub.activate_config(CONFIG)
    target.script = ["transient", "ok", "transient"]
    hub.ingest([project_event(f"GLX-00{i}") for i in range(1, 5)], source="psa")
    hub.step()  # one call of four fails: the circuit opens for 5 s
    hub.clock.sleep(6)  # past the cooldown and every command's backoff (at most 1 s)
    hub.step()  # the probe succeeds; the circuit closes; the next call fails: open again
    hub.clock.sleep(6)
    hub.step()  # the probe of the second opening, then the rest
    assert [len(call) for call in target.calls] == [4, 1, 3, 1, 2]
    assert sorted(p["code"] for p in target.payloads("project.upsert")) == \
        [f"GLX-00{i}" for i in range(1, 5)]


def test_a_failed_trial_call_opens_the_circuit_again_for_the_same_cooldown(
        engine: Engine, target: FakeTarget) -> None:
    """The breaker lives in the store (every round reads it back): after a
    failed trial call the target is tried again one cooldown later, however
    long it has been down, so the hub resumes soon after the target does."""
    hub = Hub(engine, {"ledger": target}, clock=ManualClock(), seed=7,
              settings=HubSettings(breaker_threshold=1, breaker_cooldown=5))
    hub.activate_config(CONFIG)
    target.script = ["transient"] * 4
    hub.ingest([project_event("GLX-001")], source="psa")

    def circuit() -> tuple[str, int]:
        with engine.connect() as conn:
            row = conn.execute(text("SELECT circuit, circuit_until_ms FROM target_leases")).one()
        return row.circuit, int(row.circuit_until_ms) - hub.clock.ms()

    hub.step()
    assert circuit() == ("open", 5_000)
    for _ in range(3):  # three trial calls, each failing
        hub.clock.sleep(5)
        calls = len(target.calls)
        hub.step()
        assert len(target.calls) == calls + 1
        assert circuit() == ("open", 5_000)
    hub.clock.sleep(5)
    hub.run_until_idle()
    assert target.kinds()[-1] == "project.upsert" and circuit()[0] == "closed"


def test_a_failed_call_and_the_circuit_opening_and_closing_are_logged(
        engine: Engine, target: FakeTarget) -> None:
    """What an operator reads when a target goes down: each failed call, with
    its error and the run of failures, the circuit opening, and closing."""
    hub = Hub(engine, {"ledger": target}, clock=ManualClock(), seed=7,
              settings=HubSettings(breaker_threshold=2, breaker_cooldown=5))
    hub.activate_config(CONFIG)
    target.script = ["transient", "transient"]
    hub.ingest([project_event("GLX-001")], source="psa")
    with capture_logs() as logs:
        hub.step()
        hub.clock.sleep(60)
        hub.step()
        hub.clock.sleep(60)
        hub.step()
    events = [(e["event"], e.get("failures_in_a_row"), e.get("circuit")) for e in logs
              if e["event"].startswith("dispatch.")]
    assert events == [("dispatch.call_failed", 1, "closed"),
                      ("dispatch.circuit_opened", 2, None),
                      ("dispatch.call_failed", 2, "open"),
                      ("dispatch.circuit_closed", None, None)]
    failed = next(e for e in logs if e["event"] == "dispatch.call_failed")
    assert failed["target"] == "ledger" and "503 from fake" in failed["error"]


def test_a_call_failing_after_a_good_one_backs_off_by_the_targets_run_not_the_attempts(
        engine: Engine, target: FakeTarget) -> None:
    hub = Hub(engine, {"ledger": target}, clock=ManualClock(), seed=7,
              settings=HubSettings(retry=RetryPolicy(base_seconds=1, cap_seconds=1000,
                                                     max_attempts=50), breaker_threshold=100))
    hub.activate_config(CONFIG)
    target.script = ["transient"] * 6 + ["ok", "lost_ack"]
    hub.ingest([project_event("GLX-001")], source="psa")
    for _ in range(6):
        hub.clock.sleep(1000)  # past every backoff
        hub.step()
    hub.ingest([project_event("GLX-002")], source="psa")
    hub.step()  # GLX-001 still backs off; GLX-002's call succeeds: the target works
    hub.clock.sleep(1000)
    hub.step()  # GLX-001's seventh call fails as a whole
    with engine.connect() as conn:
        row = conn.execute(select(outbox.c.attempts, outbox.c.next_attempt_ms).where(
            outbox.c.status == "pending")).one()
    assert row.attempts == 7
    assert row.next_attempt_ms - hub.clock.ms() <= 1000  # not the 32 s or more of attempt 7


def test_a_long_run_of_failed_calls_backs_off_no_longer_than_the_breaker_s_cooldown(
        engine: Engine, target: FakeTarget) -> None:
    """Ten failed calls in a row would back off 256 s or more; the record waits
    at most the cooldown (the breaker holds calls while the target is down),
    so its aggregate is not held back for minutes. A Retry-After beyond it
    is still honoured."""
    hub = Hub(engine, {"ledger": target}, clock=ManualClock(), seed=7,
              settings=HubSettings(retry=RetryPolicy(base_seconds=1, cap_seconds=1000,
                                                     max_attempts=50),
                                   breaker_threshold=100, breaker_cooldown=30))
    hub.activate_config(CONFIG)
    target.script = ["transient"] * 10 + ["429:120"]
    hub.ingest([project_event("GLX-001")], source="psa")

    def wait_ms() -> int:
        with engine.connect() as conn:
            due = conn.execute(select(outbox.c.next_attempt_ms).where(
                outbox.c.status == "pending")).scalar_one()
        return int(due) - hub.clock.ms()

    for _ in range(10):
        hub.clock.sleep(1000)  # past every backoff
        hub.step()
    assert 15_000 <= wait_ms() <= 30_000
    hub.clock.sleep(31)
    hub.step()  # the eleventh call: 429, Retry-After 120 s
    assert wait_ms() >= 120_000
    hub.clock.sleep(121)
    hub.run_until_idle()
    assert target.kinds() == ["project.upsert"]


def test_retries_exhausted_opens_an_exception_that_can_be_retried(
        hub: Hub, target: FakeTarget) -> None:
    target.script = ["transient"] * 6
    hub.ingest([project_event()], source="psa")
    hub.run_until_idle()
    assert open_reasons(hub) == ["RETRIES_EXHAUSTED"]
    with hub.engine.begin() as conn:
        [exc] = exception_queue.list_open(conn)
        exception_queue.retry(conn, exc.id, actor="ops", at=hub.clock.now())
    hub.run_until_idle()
    assert target.kinds() == ["project.upsert"] and open_reasons(hub) == []


def _only_exception(hub: Hub) -> Any:
    with hub.engine.connect() as conn:
        [exc] = exception_queue.list_open(conn)
    return exc


def test_replay_after_a_rate_fix_prices_under_the_new_configuration(
        hub: Hub, target: FakeTarget) -> None:
    hub.ingest([project_event(), time_entry("te-9", worker="w-carol", hours="2")],
               source="harvest")
    hub.run_until_idle()
    exc = _only_exception(hub)
    assert exc.reason == "NO_RATE"

    card = dict(CONFIG["rate_cards"][0])
    card["rates"] = {**card["rates"], "designer": "120.00"}
    hub.activate_config({**CONFIG, "rate_cards": [card]}, actor="finance")
    with hub.engine.begin() as conn:
        assert exception_queue.replay(conn, exc.id, actor="ops", at=hub.clock.now()) == \
            "replayed"
        # A second click is a no-op, not a second replay.
        assert exception_queue.replay(conn, exc.id, actor="ops", at=hub.clock.now()) == \
            "replayed"
    hub.run_until_idle()
    assert charge_amounts(target) == {"te-9": "240.00"}
    assert open_reasons(hub) == []
    with hub.engine.connect() as conn:
        actions = [e["action"] for e in audit.entries(conn)]
    assert actions.count("exception.replayed") == 1


def test_replay_after_a_fix_at_the_target_sends_the_same_command_again(
        hub: Hub, target: FakeTarget) -> None:
    """The ERP refused a charge (a closed period there, say); the operator fixes
    it in the ERP and replays: the same command, with the same key, goes again."""
    target.reject = lambda c: "PERIOD_CLOSED" if c.kind == "time_charge.post" else None
    hub.ingest([project_event(), time_entry("te-9")], source="harvest")
    hub.run_until_idle()
    exc = _only_exception(hub)
    assert exc.reason == "TARGET_REJECTED"
    target.reject = lambda c: None
    with hub.engine.begin() as conn:
        exception_queue.replay(conn, exc.id, actor="ops", at=hub.clock.now())
    hub.run_until_idle()
    assert charge_amounts(target) == {"te-9": "1400.00"}
    assert open_reasons(hub) == []
    with hub.engine.connect() as conn:
        statuses = conn.execute(select(outbox.c.status).where(
            outbox.c.kind == "time_charge.post")).scalars().all()
    assert statuses == ["done"]  # revived in place: one command, one key


def test_retry_as_is_reruns_under_the_configuration_it_first_ran_under(
        hub: Hub, target: FakeTarget) -> None:
    hub.ingest([project_event(), time_entry("te-9", worker="w-carol")], source="harvest")
    hub.run_until_idle()
    exc = _only_exception(hub)
    card = dict(CONFIG["rate_cards"][0])
    card["rates"] = {**card["rates"], "designer": "120.00"}
    hub.activate_config({**CONFIG, "rate_cards": [card]}, actor="finance")
    with hub.engine.begin() as conn:
        exception_queue.retry(conn, exc.id, actor="ops", at=hub.clock.now())
    hub.run_until_idle()
    assert open_reasons(hub) == ["NO_RATE"]  # same config, same result
    assert target.payloads("time_charge.post") == []


def test_dismiss_needs_a_reason_and_is_audited(hub: Hub) -> None:
    hub.ingest(['{"broken'], source="harvest")
    exc = _only_exception(hub)
    with hub.engine.begin() as conn, pytest.raises(exception_queue.ActionRefused,
                                                   match="say why"):
        exception_queue.dismiss(conn, exc.id, actor="ops", at=hub.clock.now(), reason=" ")
    with hub.engine.begin() as conn:
        assert exception_queue.dismiss(conn, exc.id, actor="ops", at=hub.clock.now(),
                                       reason="test noise") == "dismissed"
        assert exception_queue.dismiss(conn, exc.id, actor="ops", at=hub.clock.now(),
                                       reason="again") == "dismissed"
        [entry] = [e for e in audit.entries(conn) if e["action"] == "exception.dismissed"]
    assert entry["actor"] == "ops" and entry["detail"]["resolution"] == "test noise"
    assert open_reasons(hub) == []


def test_a_failing_flow_opens_handler_error_and_the_queue_continues(
        hub: Hub, target: FakeTarget) -> None:
    def broken(event: Any, ctx: Any) -> Any:
        raise RuntimeError("bug in flow")

    hub.worker.flows._handlers["project.updated"] = broken
    hub.ingest([project_event("A-1"), time_entry("te-1", project="B-1")], source="psa")
    hub.run_until_idle()
    assert open_reasons(hub) == ["HANDLER_ERROR"]
    with hub.engine.connect() as conn:
        statuses = dict(conn.execute(select(inbox.c.event_id, inbox.c.status)).all())
    assert statuses == {"project:A-1:active": "failed", "te-1:v1": "parked"}


def test_lineage_runs_from_source_event_to_posting_and_back(
        hub: Hub, target: FakeTarget) -> None:
    hub.ingest([project_event(), time_entry("te-1")], source="harvest")
    hub.run_until_idle()
    posting = next(v for k, v in target.applied.items()
                   if k == target.effects[1].idempotency_key)
    with hub.engine.connect() as conn:
        forward = lineage.trace(conn, "te-1:v1")
        back = lineage.trace(conn, posting)
    assert [c["external_id"] for c in forward.commands] == [posting]
    assert [e["event_id"] for e in back.events] == ["te-1:v1"]
    assert back.postings[0]["canonical_id"] == "tc_te-1"


def test_a_worker_that_lost_its_lease_commits_nothing(hub: Hub, target: FakeTarget) -> None:
    from billbridge.engine import aggregates
    from billbridge.engine.worker import LeaseLost, Worker

    hub.ingest([project_event(), time_entry("te-1")], source="harvest")
    slow = Worker(hub.engine, hub.worker.flows, {"erp": "ledger"}, hub.clock, "slow-worker",
                  hub.settings.worker)
    with hub.engine.begin() as conn:
        [key] = aggregates.claim(conn, owner="slow-worker", now_ms=hub.clock.ms(),
                                 lease_ms=1000, limit=1)
    # The slow worker stalls past its lease and another worker takes the aggregate.
    hub.clock.sleep(2)
    with hub.engine.begin() as conn:
        assert aggregates.claim(conn, owner="other", now_ms=hub.clock.ms(), lease_ms=60_000,
                                limit=1) == [key]
    with pytest.raises(LeaseLost):
        slow._process_batch(key)
    with hub.engine.connect() as conn:
        assert conn.execute(select(inbox.c.status)).scalars().all() == ["pending", "pending"]
        assert conn.execute(select(outbox.c.id)).all() == []


def test_audit_verify_detects_an_edited_and_a_deleted_row(hub: Hub) -> None:
    for i in range(3):
        hub.activate_config({**CONFIG, "psa_system": f"psa-{i}"}, actor=f"user{i}")
    with hub.engine.connect() as conn:
        assert audit.verify(conn) == []
    with hub.engine.begin() as conn:
        conn.execute(text("UPDATE audit_log SET actor='mallory' WHERE id = 2"))
    with hub.engine.connect() as conn:
        assert [b.row_id for b in audit.verify(conn)] == [2]
    with hub.engine.begin() as conn:
        conn.execute(text("UPDATE audit_log SET actor='user0' WHERE id = 2"))  # as it was
        conn.execute(text("DELETE FROM audit_log WHERE id = 3"))
    with hub.engine.connect() as conn:
        assert [b.row_id for b in audit.verify(conn)] == [4]


def test_inbound_exception_ids_are_linked_to_their_event(hub: Hub) -> None:
    hub.ingest([project_event(), time_entry("te-1", worker="w-carol")], source="harvest")
    hub.run_until_idle()
    with hub.engine.connect() as conn:
        row = conn.execute(select(exceptions.c.inbox_id, exceptions.c.record_id)).one()
        event_id = conn.execute(select(inbox.c.event_id).where(inbox.c.id == row.inbox_id)
                                ).scalar()
    assert (event_id, row.record_id) == ("te-1:v1", "te-1")


def test_a_spent_daily_quota_defers_work_without_using_attempts(
        hub: Hub, target: FakeTarget) -> None:
    target.script = ["quota:7200"] * 20  # far more than max_attempts (6)
    hub.ingest([project_event()], source="psa")
    start = hub.clock.ms()
    hub.step()
    with hub.engine.connect() as conn:
        row = conn.execute(select(outbox.c.attempts, outbox.c.next_attempt_ms)).one()
    assert row.attempts == 0 and row.next_attempt_ms >= start + 7_200_000
    target.script = ["quota:60"] * 10
    hub.run_until_idle()
    assert target.kinds() == ["project.upsert"] and open_reasons(hub) == []


def test_a_record_the_mapping_could_not_read_is_kept_raw_with_its_reason(hub: Hub) -> None:
    from billbridge.connectors.base import Malformed

    deal = {"id": "123", "properties": {"dealstage": "mystery"}}
    [result] = hub.ingest([Malformed(deal, "deal 123: unknown stage 'mystery'", "deal-123-v1")],
                          source="hubspot")
    assert result.status is IngestStatus.MALFORMED and result.event_id == "deal-123-v1"
    exc = _only_exception(hub)
    assert exc.reason == "MALFORMED_PAYLOAD" and "unknown stage 'mystery'" in exc.message
    assert json.loads(exc.raw) == deal
    again = hub.ingest([Malformed(deal, "same again", "deal-123-v1")], source="hubspot")
    assert again[0].status is IngestStatus.DUPLICATE


def test_commands_carry_the_target_ids_of_the_records_they_name(hub: Hub,
                                                                target: FakeTarget) -> None:
    hub.ingest([project_event(), time_entry("te-1")], source="harvest")
    hub.run_until_idle()
    hub.ingest([time_entry("te-1", hours="6", version=2)], source="harvest")
    hub.run_until_idle()
    project_id = target.applied[next(e.idempotency_key for e in target.effects
                                     if e.kind == "project.upsert")]
    first_post = next(e for e in target.effects if e.kind == "time_charge.post")
    reverse = next(e for e in target.effects if e.kind == "time_charge.reverse")
    assert first_post.ref("project", "GLX-001") == project_id
    # The reversal names the charge: it learns the ERP's id of the posting it undoes.
    assert reverse.ref("time_charge", "tc_te-1") == target.applied[first_post.idempotency_key]
    assert first_post.ref("project", "NOPE") is None


def test_a_resend_after_a_lost_acknowledgement_says_it_is_a_second_attempt(
        hub: Hub, target: FakeTarget) -> None:
    hub.ingest([project_event()], source="harvest")
    hub.run_until_idle()
    target.script = ["lost_ack"]
    hub.ingest([time_entry("te-1")], source="harvest")
    hub.run_until_idle()
    [post] = [e for e in target.effects if e.kind == "time_charge.post"]
    assert post.attempt == 1  # applied on the first attempt, whose answer was lost
    assert target.calls[-1] == [post.idempotency_key]
    assert target.attempts_seen[post.idempotency_key] == [1, 2]


def test_each_reversal_names_the_posting_it_undoes_even_when_versions_arrive_together(
        hub: Hub, target: FakeTarget) -> None:
    hub.ingest([project_event()], source="harvest")
    hub.run_until_idle()
    # Three versions queued before any is sent: post, reverse+post, reverse+post.
    hub.ingest([time_entry("te-1", hours=str(h), version=v)
                for v, h in ((1, 8), (2, 6), (3, 5))], source="harvest")
    hub.run_until_idle()
    posts = [e for e in target.effects if e.kind == "time_charge.post"]
    reversals = [e for e in target.effects if e.kind == "time_charge.reverse"]
    assert [p.payload["hours"] for p in posts] == ["8.00", "6.00", "5.00"]
    assert [r.ref("time_charge", "tc_te-1") for r in reversals] == \
        [target.applied[p.idempotency_key] for p in posts[:2]]
    # Each reversal went out only after the posting it undoes was acknowledged.
    order = [key for call in target.calls for key in call]
    for post, reverse in zip(posts, reversals, strict=False):
        assert order.index(post.idempotency_key) < order.index(reverse.idempotency_key)
        assert not any(post.idempotency_key in call and reverse.idempotency_key in call
                       for call in target.calls)


def test_an_operator_retry_is_sent_as_a_resend(hub: Hub, target: FakeTarget) -> None:
    hub.ingest([project_event()], source="harvest")
    hub.run_until_idle()
    target.script = ["permanent"]
    hub.ingest([time_entry("te-1")], source="harvest")
    hub.run_until_idle()
    with hub.engine.begin() as conn:
        [exc] = exception_queue.list_open(conn)
        exception_queue.retry(conn, exc.id, actor="ops", at=hub.clock.now())
    hub.run_until_idle()
    [post] = [e for e in target.effects if e.kind == "time_charge.post"]
    # The refused send may have applied at a real target: the retry must look first.
    assert target.attempts_seen[post.idempotency_key] == [1, 2]


def test_a_write_the_store_refuses_fails_that_event_only(hub: Hub, target: FakeTarget) -> None:
    from billbridge.flows.base import Binding

    real = hub.worker.flows.handler_for("time_entry.upserted")
    assert real is not None

    def binds_nothing_to_te_2(event: Any, ctx: Any) -> Any:
        outcome = real(event, ctx)
        if event.data["id"] == "te-2":  # a binding the store refuses (no canonical id)
            outcome.bindings.append(Binding("ledger", "time_entry", "X-2", None))  # type: ignore[arg-type]
        return outcome

    hub.worker.flows._handlers["time_entry.upserted"] = binds_nothing_to_te_2
    hub.ingest([project_event(), time_entry("te-1"), time_entry("te-2"), time_entry("te-3")],
               source="harvest")
    hub.run_until_idle()
    assert sorted(charge_amounts(target)) == ["te-1", "te-3"]
    assert open_reasons(hub) == ["HANDLER_ERROR"]
    with hub.engine.connect() as conn:
        statuses = dict(conn.execute(select(inbox.c.event_id, inbox.c.status)).all())
    assert statuses["te-2:v1"] == "failed"
    assert [statuses[f"te-{i}:v1"] for i in (1, 3)] == ["done", "done"]


def test_an_entry_and_the_activation_it_waits_for_in_one_batch_post_together(
        hub: Hub, target: FakeTarget) -> None:
    hub.ingest([time_entry("te-1", project="NEW-002"), project_event("NEW-002")],
               source="harvest")
    hub.run_until_idle()
    assert target.kinds() == ["project.upsert", "time_charge.post"]
    with hub.engine.connect() as conn:
        assert conn.execute(select(inbox.c.status)).scalars().all() == ["done"] * 3


def test_a_record_changed_several_times_in_one_batch_counts_every_change(hub: Hub) -> None:
    hub.ingest([project_event()] + [time_entry("te-1", version=v, hours=str(v))
                                    for v in (1, 2, 3)], source="harvest")
    hub.run_until_idle()
    with hub.engine.connect() as conn:
        version = conn.execute(text("SELECT version FROM records WHERE kind = 'time_entry'")
                               ).scalar()
    assert version == 3


def test_an_unreadable_stored_event_fails_alone(hub: Hub, target: FakeTarget) -> None:
    hub.ingest([project_event(), time_entry("te-1"), time_entry("te-2")], source="harvest")
    with hub.engine.begin() as conn:
        conn.execute(text("UPDATE inbox SET payload = '{\"truncated' "
                          "WHERE event_id = 'te-1:v1'"))
    hub.run_until_idle()
    assert sorted(charge_amounts(target)) == ["te-2"]
    exc = _only_exception(hub)
    assert exc.reason == "HANDLER_ERROR" and "te-1:v1" in exc.message


def test_a_repeat_within_one_delivery_is_counted_on_the_first(hub: Hub) -> None:
    results = hub.ingest([time_entry("te-1"), time_entry("te-1")], source="harvest")
    assert [r.status for r in results] == [IngestStatus.ACCEPTED, IngestStatus.DUPLICATE]
    assert results[0].inbox_id == results[1].inbox_id
    with hub.engine.connect() as conn:
        assert conn.execute(select(inbox.c.duplicates)).scalars().all() == [1]


def test_any_dispatcher_sends_what_every_worker_produced(hub: Hub, target: FakeTarget) -> None:
    """A lane is held for one round only: between rounds it is free, so the
    next dispatcher to come sends everything ready in it, not only what its
    own worker produced."""
    hub.ingest([project_event()], source="harvest")
    hub.run_until_idle()
    other = Hub(hub.engine, {"ledger": target}, clock=hub.clock, seed=8,
                settings=hub.settings)
    assert other.dispatcher.owner != hub.dispatcher.owner
    other.ingest([time_entry(f"te-{i}") for i in range(35)], source="harvest")
    assert other.worker.run_once() == 35
    with hub.engine.connect() as conn:
        held = conn.execute(text("SELECT count(*) FROM dispatch_lanes "
                                 "WHERE lease_owner IS NOT NULL")).scalar()
    assert held == 0  # the earlier rounds gave their lane back
    assert hub.dispatcher.run_once() == 35  # all 35, in four calls
    assert len(charge_amounts(target)) == 35


def test_a_lane_another_dispatcher_holds_is_left_alone_until_its_lease_ends(
        hub: Hub, target: FakeTarget) -> None:
    """A dispatcher that died mid-round leaves its lane leased: no one sends
    from it until the lease runs out, then anyone may (the keys make the
    resend safe)."""
    hub.ingest([project_event()], source="harvest")
    hub.run_until_idle()
    hub.ingest([time_entry(f"te-{i}") for i in range(5)], source="harvest")
    assert hub.worker.run_once() == 5
    until = hub.clock.ms() + 10_000
    with hub.engine.begin() as conn:
        conn.execute(text("UPDATE dispatch_lanes SET lease_owner = 'gone', "
                          "lease_until_ms = :until"), {"until": until})
    assert hub.dispatcher.run_once() == 0
    hub.clock.sleep(11)
    assert hub.dispatcher.run_once() == 5
    assert len(charge_amounts(target)) == 5


def test_a_dispatcher_does_not_wait_on_a_lane_another_has_locked(
        hub: Hub, target: FakeTarget) -> None:
    """PostgreSQL: while another dispatcher's round has the lane row locked,
    this one skips the lane instead of queueing behind that transaction."""
    if hub.engine.dialect.name != "postgresql":
        pytest.skip("SQLite has one writer at a time: the wait is the store's, not the lane's")
    import threading

    hub.ingest([project_event()], source="harvest")
    hub.run_until_idle()
    other = Hub(hub.engine, {"ledger": target}, clock=hub.clock, seed=8,
                settings=hub.settings)
    result: list[int] = []
    with hub.engine.begin() as conn:  # the holder, mid-round
        conn.execute(text("UPDATE dispatch_lanes SET lease_until_ms = lease_until_ms + 1"))
        runner = threading.Thread(target=lambda: result.append(other.dispatcher.run_once()))
        runner.start()
        runner.join(timeout=10)
        blocked = runner.is_alive()
    runner.join()
    assert not blocked
    assert result == [0]


def test_a_round_sends_several_calls_and_a_failed_call_stops_it_in_order(
        hub: Hub, target: FakeTarget) -> None:
    """One claim covers several of the target's batches, sent in order. When a
    call fails, the batches after it are not sent (a later command of an
    aggregate must not overtake an earlier one that failed) and stay pending
    with no attempt recorded; what succeeded before it is settled."""
    hub.ingest([project_event()], source="harvest")
    hub.run_until_idle()
    target.calls.clear()
    hub.ingest([time_entry(f"te-{i:02}") for i in range(35)], source="harvest")
    assert hub.worker.run_once() == 35
    target.script = ["ok", "transient"]
    assert hub.dispatcher.run_once() == 10  # the first call's ten, settled
    assert [len(call) for call in target.calls] == [10, 10]  # the third never went
    with hub.engine.connect() as conn:
        rows = conn.execute(select(outbox.c.id, outbox.c.status, outbox.c.attempts,
                                   outbox.c.next_attempt_ms)
                            .where(outbox.c.kind == "time_charge.post")
                            .order_by(outbox.c.id)).all()
        recorded = set(conn.execute(text("SELECT outbox_id FROM delivery_attempts")).scalars())
    assert [r.status for r in rows] == ["done"] * 10 + ["pending"] * 25
    assert [r.attempts for r in rows] == [1] * 20 + [0] * 15
    failed, unsent = rows[10:20], rows[20:]
    assert all(r.next_attempt_ms > hub.clock.ms() for r in failed)  # backing off
    assert all(r.next_attempt_ms == 0 and r.id not in recorded for r in unsent)
    hub.run_until_idle()
    assert len(charge_amounts(target)) == 35


def test_a_round_leaves_its_aggregates_free_for_any_worker(hub: Hub) -> None:
    """The batch's commit gives the lease up (in its fence): the next round,
    of this worker or another, can take the aggregate at once."""
    from billbridge.store.tables import aggregates as aggregate_rows

    hub.ingest([project_event(), time_entry("te-1"), time_entry("te-2", project="GLX-002")],
               source="harvest")
    assert hub.worker.run_once() == 3
    with hub.engine.connect() as conn:
        leases = conn.execute(select(aggregate_rows.c.key, aggregate_rows.c.lease_owner,
                                     aggregate_rows.c.lease_until_ms, aggregate_rows.c.pending)
                              ).all()
    assert sorted(leases) == [("project:GLX-001", None, 0, 0), ("project:GLX-002", None, 0, 0)]
