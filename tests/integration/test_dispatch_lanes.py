"""Dispatch lanes: a target that takes several calls at once has its commands
split into lanes by aggregate; dispatchers hold a lane for one round, so lanes
go in parallel while each aggregate's commands go in order, and every
dispatcher of a target shares its pace."""

from __future__ import annotations

import itertools
import threading
import time
from collections import Counter
from collections.abc import Sequence

import pytest
from sqlalchemy import Engine, select, text

from billbridge.connectors.base import OutboundCommand, RateLimit, RecordResult
from billbridge.engine.clock import ManualClock
from billbridge.engine.dispatcher import DispatcherSettings
from billbridge.engine.hub import Hub, HubSettings
from billbridge.engine.outbox import NewCommand, enqueue_many, lane_of
from billbridge.engine.worker import SimulatedCrash
from billbridge.store import binder
from billbridge.store.tables import dispatch_lanes, outbox, target_leases
from conftest import CONFIG, project_event, time_entry
from fakes import FakeTarget

PROJECTS = [f"GLX-{i:03}" for i in range(1, 9)]


class _FirstCalls:
    """Each thread's first call waits at a barrier of ``parties``, which times
    out unless that many are in flight together; ``met`` says which did."""

    def __init__(self, parties: int) -> None:
        self.barrier = threading.Barrier(parties, timeout=10)
        self.met: list[bool] = []
        self._seen = threading.local()

    def arrived(self) -> bool:
        """Whether this thread has had its first call (and, from now on, has)."""
        seen = getattr(self._seen, "done", False)
        self._seen.done = True
        return seen

    def arrive(self) -> None:
        if self.arrived():
            return
        try:
            self.barrier.wait()
            self.met.append(True)
        except threading.BrokenBarrierError:
            self.met.append(False)


def _target(lanes: int, **kwargs: object) -> FakeTarget:
    target = FakeTarget(**kwargs)  # type: ignore[arg-type]
    target.concurrency = lanes  # type: ignore[attr-defined]
    return target


def _hub(engine: Engine, target: FakeTarget, clock: ManualClock | None = None,
         seed: int = 7) -> Hub:
    hub = Hub(engine, {"ledger": target}, clock=clock or ManualClock(), seed=seed)
    hub.activate_config(CONFIG)
    return hub


def _month(hub: Hub, per_project: int = 3) -> None:
    """Projects and their time entries, processed: commands in the outbox."""
    hub.ingest([project_event(p) for p in PROJECTS], source="psa")
    hub.ingest([time_entry(f"{p}-te-{i}", project=p) for p in PROJECTS
                for i in range(per_project)], source="harvest")
    while hub.worker.run_once():
        pass


def _lanes(engine: Engine) -> list[tuple[str, int]]:
    with engine.connect() as conn:
        return [(r.aggregate_key, r.lane) for r in conn.execute(
            select(outbox.c.aggregate_key, outbox.c.lane).order_by(outbox.c.id))]


def _hold(engine: Engine, lane: int, until_ms: int, owner: str = "elsewhere") -> None:
    """Another dispatcher is mid-round on ``lane`` (or died there)."""
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO dispatch_lanes (target, lane, lease_owner, lease_until_ms)"
                          " VALUES ('ledger', :lane, :owner, :until)"),
                     {"lane": lane, "owner": owner, "until": until_ms})


def test_an_aggregate_s_commands_share_one_lane_and_the_lanes_are_spread(
        engine: Engine) -> None:
    hub = _hub(engine, _target(3))
    _month(hub)
    written = _lanes(engine)
    assert len(written) == len(PROJECTS) * 4  # a project and three charges each
    assert all(lane == lane_of(key, 3) for key, lane in written)
    assert {lane for _, lane in written} == {0, 1, 2}
    # Which lane is the same in every process (crc32, not the salted hash()).
    assert lane_of("project:GLX-001", 3) == lane_of("project:GLX-001", 3) == 0
    assert lane_of("project:GLX-001", 1) == 0


def _customers(engine: Engine, hub: Hub, count: int, lanes: int) -> None:
    """``count`` customer upserts, each its own aggregate, straight into the outbox."""
    with engine.begin() as conn:
        enqueue_many(conn, [NewCommand(
            target="ledger", kind="customer.upsert", origin=f"e-{i}",
            payload={"id": f"C-{i}"}, aggregate_key=f"customer:C-{i}", correlation_id="c",
            record_kind="customer", record_id=f"C-{i}",
            lane=lane_of(f"customer:C-{i}", lanes)) for i in range(count)], at=hub.clock.now())


def test_two_dispatchers_send_two_lanes_at_the_same_time(engine: Engine) -> None:
    """With more queued than a round sends, each dispatcher's round fills from
    one lane, and both are inside a call at once. (A barrier of two in the
    target's send times out unless they overlap.)"""
    meeting = _FirstCalls(2)

    class Meeting(FakeTarget):
        def send(self, batch: Sequence[OutboundCommand]) -> list[RecordResult]:
            meeting.arrive()  # each dispatcher's first call
            return super().send(batch)

    target = Meeting(max_batch=2)  # a round: five calls of two
    target.concurrency = 2  # type: ignore[attr-defined]
    clock = ManualClock()
    # Each sends from its own thread only (as two processes of one thread each).
    one_at_a_time = HubSettings(dispatcher=DispatcherSettings(parallel_rounds=1))
    first = Hub(engine, {"ledger": target}, clock=clock, seed=7, settings=one_at_a_time)
    first.activate_config(CONFIG)
    _customers(engine, first, 60, lanes=2)
    second = Hub(engine, {"ledger": target}, clock=clock, seed=8, settings=one_at_a_time)
    runs = [threading.Thread(target=h.dispatcher.run_once) for h in (first, second)]
    for run in runs:
        run.start()
    for run in runs:
        run.join(timeout=30)
    assert meeting.met == [True, True]
    meeting.arrived()  # the rest goes from here, with no one to meet
    first.run_until_idle()
    assert len(target.applied) == 60
    assert sum(len(call) for call in target.calls) == 60  # none sent twice


def test_a_lone_dispatcher_fills_its_calls_from_several_lanes(engine: Engine) -> None:
    """A short queue spread over four lanes still goes in one round of full
    calls, not a call per lane."""
    target = _target(4, max_batch=10)
    hub = _hub(engine, target)
    _customers(engine, hub, 20, lanes=4)
    with engine.connect() as conn:
        assert len(set(conn.execute(select(outbox.c.lane)).scalars())) == 4
    assert hub.dispatcher.run_once() == 20
    assert [len(call) for call in target.calls] == [10, 10]


def test_a_held_lane_is_left_alone_and_the_others_go(engine: Engine) -> None:
    target = _target(2)
    hub = _hub(engine, target)
    _month(hub)
    _hold(engine, 0, hub.clock.ms() + 10_000)
    hub.dispatcher.run_once()
    sent = set(target.applied)
    with engine.connect() as conn:
        lane_of_key = dict(conn.execute(select(outbox.c.idempotency_key, outbox.c.lane)).all())
    assert sent and {lane_of_key[k] for k in sent} == {1}
    hub.clock.sleep(11)  # the holder's lease runs out: its lane is anyone's
    hub.run_until_idle()
    assert len(target.applied) == len(PROJECTS) * 4


def test_an_aggregate_s_earlier_command_in_another_lane_holds_back_its_later_ones(
        engine: Engine) -> None:
    """After the target's lane count changed, an aggregate can have commands in
    two lanes: the later ones wait for the earlier, whichever lane they are in."""
    target = _target(2)
    hub = _hub(engine, target)
    now = hub.clock.now()

    def update_of(n: int, lane: int) -> NewCommand:
        return NewCommand(target="ledger", kind="customer.upsert", origin=f"e-{n}",
                          payload={"id": "C-1", "name": f"version {n}"},
                          aggregate_key="customer:C-1", correlation_id="c",
                          record_kind="customer", record_id="C-1", lane=lane)

    with engine.begin() as conn:  # written with two lanes, then with one
        enqueue_many(conn, [update_of(1, 1), update_of(2, 0), update_of(3, 0)], at=now)
    _hold(engine, 1, hub.clock.ms() + 10_000)
    assert hub.dispatcher.run_once() == 0  # lane 0's two wait for lane 1's first
    hub.clock.sleep(11)
    hub.run_until_idle()
    assert [c.payload["name"] for c in target.effects] == ["version 1", "version 2",
                                                            "version 3"]


def test_a_record_being_rewritten_in_another_lane_holds_back_what_depends_on_it(
        engine: Engine) -> None:
    """An invoice (its own aggregate and lane) refers to the project's id at the
    target: while an update of the project is pending in another lane, the
    invoice waits for it."""
    target = _target(2)
    hub = _hub(engine, target)
    now = hub.clock.now()
    with engine.begin() as conn:
        binder.bind(conn, [{"system": "ledger", "kind": "project", "external_id": "X-1",
                          "canonical_id": "P-1", "correlation_id": "c"}], at=now)
        enqueue_many(conn, [
            NewCommand(target="ledger", kind="project.upsert", origin="e-1",
                       payload={"code": "P-1", "name": "renamed"}, aggregate_key="project:P-1",
                       correlation_id="c", record_kind="project", record_id="P-1", lane=0),
            NewCommand(target="ledger", kind="invoice.create", origin="e-2",
                       payload={"project": "P-1"}, aggregate_key="invoice:I-1",
                       correlation_id="c", record_kind="invoice", record_id="I-1",
                       depends_on="project:P-1", lane=1)], at=now)
    _hold(engine, 0, hub.clock.ms() + 10_000)
    assert hub.dispatcher.run_once() == 0  # lane 1's invoice waits for lane 0's update
    hub.clock.sleep(11)
    hub.dispatcher.run_once()
    hub.dispatcher.run_once()
    assert [c.kind for c in target.effects] == ["project.upsert", "invoice.create"]


def test_commands_in_a_lane_past_the_target_s_count_still_go(engine: Engine) -> None:
    """Written while the target had three lanes, sent by a dispatcher that now
    gives it one: the lanes past its count are found and served."""
    clock = ManualClock()
    before = _hub(engine, _target(3), clock)
    _month(before)
    assert {lane for _, lane in _lanes(engine)} == {0, 1, 2}
    target = _target(1)
    after = Hub(engine, {"ledger": target}, clock=clock, seed=9)
    after.run_until_idle()
    assert len(target.applied) == len(PROJECTS) * 4


def test_every_dispatcher_of_a_target_keeps_to_its_one_rate_limit(engine: Engine) -> None:
    """Two dispatchers, one call a second between them (not one each): the pace
    is kept on the target's row, not in each process."""
    clock = ManualClock()
    calls: list[int] = []

    class Timed(FakeTarget):
        def send(self, batch: Sequence[OutboundCommand]) -> list[RecordResult]:
            calls.append(clock.ms())
            return super().send(batch)

    target = Timed(max_batch=4)
    target.concurrency = 2  # type: ignore[attr-defined]
    target.rate_limit = RateLimit(1, 1, burst=1)
    first = _hub(engine, target, clock)
    _month(first)
    second = Hub(engine, {"ledger": target}, clock=clock, seed=8)
    for _ in range(4):
        first.dispatcher.run_once()
        second.dispatcher.run_once()
    assert len(calls) >= 6
    gaps = [b - a for a, b in itertools.pairwise(calls)]
    assert min(gaps) >= 1000, gaps


def test_a_clean_stop_gives_the_lanes_back(engine: Engine) -> None:
    hub = _hub(engine, _target(2))
    _hold(engine, 0, hub.clock.ms() + 10_000, owner=hub.dispatcher.owner)
    _hold(engine, 1, hub.clock.ms() + 10_000, owner="someone else")
    hub.dispatcher.release()
    with engine.connect() as conn:
        held = {r.lane: r.lease_owner for r in conn.execute(
            select(dispatch_lanes.c.lane, dispatch_lanes.c.lease_owner))}
    assert held == {0: None, 1: "someone else"}


def test_an_idle_dispatcher_writes_nothing(engine: Engine) -> None:
    """Nothing to send: no lane is leased (on SQLite, no write lock is taken)
    however often the workers look."""
    hub = _hub(engine, _target(3))
    for _ in range(3):
        assert hub.dispatcher.run_once() == 0
    with engine.connect() as conn:
        assert conn.execute(select(dispatch_lanes)).all() == []


class _InFlight(FakeTarget):
    """Counts the calls in flight at once; each takes ``seconds`` (real time)."""

    def __init__(self, lanes: int, seconds: float = 0.05, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.concurrency = lanes
        self.seconds = seconds
        self.now = 0
        self.most = 0
        self.threads: set[str] = set()
        self._count = threading.Lock()

    def send(self, batch: Sequence[OutboundCommand]) -> list[RecordResult]:
        with self._count:
            self.now += 1
            self.most = max(self.most, self.now)
            self.threads.add(threading.current_thread().name)
        try:
            time.sleep(self.seconds)
            with self._count:  # FakeTarget's bookkeeping is not thread-safe
                return super().send(batch)
        finally:
            with self._count:
                self.now -= 1


def test_a_lone_dispatcher_that_is_behind_sends_on_its_lanes_at_once(engine: Engine) -> None:
    """One process, a long queue: its rounds on different lanes run in threads,
    so their calls overlap (a barrier of three in the target's send times out
    unless three are in flight together), and each aggregate still goes in
    order: a project before the charges that depend on it."""
    meeting = _FirstCalls(3)

    class Meeting(_InFlight):
        def send(self, batch: Sequence[OutboundCommand]) -> list[RecordResult]:
            if threading.current_thread().name.startswith("billbridge-dispatch"):
                meeting.arrive()
            return super().send(batch)

    target = Meeting(3, seconds=0, max_batch=2)  # a round: five calls of two
    hub = _hub(engine, target)
    _month(hub, per_project=12)  # 8 projects and 96 charges over three lanes
    hub.dispatcher.run_once()  # more waits than a round claims: the outbox is behind
    assert meeting.met == [True, True, True]
    hub.run_until_idle()
    assert len(target.effects) == len(PROJECTS) * 13  # each once
    seen: set[str] = set()
    for effect in target.effects:
        if effect.kind == "project.upsert":
            seen.add(str(effect.payload["code"]))
        else:
            assert effect.payload["project"] in seen, effect.payload


def test_parallel_rounds_keep_to_the_target_s_lanes(engine: Engine) -> None:
    """However many rounds a dispatcher may run at once, a target with two
    lanes never has more than two of its calls in flight."""
    target = _InFlight(2, max_batch=2)
    hub = _hub(engine, target)
    _customers(engine, hub, 80, lanes=2)
    assert hub.dispatcher.settings.parallel_rounds > 2
    hub.run_until_idle()
    assert target.most == 2
    assert len(target.effects) == 80


def test_a_short_queue_is_not_split_over_threads(engine: Engine) -> None:
    """Not behind: one round of full calls on the dispatcher's own thread."""
    target = _InFlight(4, seconds=0, max_batch=10)
    hub = _hub(engine, target)
    _customers(engine, hub, 20, lanes=4)
    assert hub.dispatcher.run_once() == 20
    assert [len(call) for call in target.calls] == [10, 10]
    assert target.threads == {threading.current_thread().name}


def test_a_crash_in_one_parallel_round_loses_nothing_and_doubles_nothing(
        engine: Engine) -> None:
    """One thread's round dies after its calls went out, before it recorded
    them: the dispatch says so, and once that round's lanes are free again
    every command has been applied once."""
    target = _InFlight(3, seconds=0, max_batch=2)
    clock = ManualClock()
    hub = _hub(engine, target, clock)
    _customers(engine, hub, 60, lanes=3)
    hub.dispatcher.run_once()
    crashed: list[str] = []

    def crash(stage: str, name: str) -> None:
        if stage == "sent" and not crashed and \
                threading.current_thread().name.startswith("billbridge-dispatch"):
            crashed.append(threading.current_thread().name)
            raise SimulatedCrash("dies before recording its calls")

    hub.dispatcher.crash_hook = crash
    with pytest.raises(SimulatedCrash):
        hub.dispatcher.run_once()
    hub.dispatcher.crash_hook = None
    clock.advance(hub.dispatcher.settings.lease_ms / 1000 + 1)  # its lanes' leases run out
    hub.run_until_idle()
    assert crashed
    assert len(target.effects) == 60
    assert len(target.applied) == 60
    sent = Counter(key for call in target.calls for key in call)
    assert max(sent.values()) == 2  # the crashed round's commands went twice, the key held


def test_a_lane_another_dispatcher_holds_gets_no_thread(engine: Engine) -> None:
    """Behind, with one of three lanes held elsewhere: two threads, one per
    free lane, and the held lane's commands wait for its holder."""
    target = _InFlight(3, seconds=0, max_batch=2)
    hub = _hub(engine, target)
    _customers(engine, hub, 60, lanes=3)
    _hold(engine, 0, hub.clock.ms() + 60_000)
    tried: list[int] = []
    take = hub.dispatcher._take_lane

    def spy(conn: object, name: str, lane: int) -> bool:
        tried.append(lane)
        return take(conn, name, lane)  # type: ignore[arg-type]

    hub.dispatcher._take_lane = spy  # type: ignore[method-assign]
    hub.dispatcher.run_once()
    assert 0 not in tried  # not even a lease attempt
    assert len(target.threads) == 2
    assert all(name.startswith("billbridge-dispatch") for name in target.threads)
    held = {f"C-{i}" for i in range(60) if lane_of(f"customer:C-{i}", 3) == 0}
    assert held and not held & {str(e.payload["id"]) for e in target.effects}


def test_two_lanes_failing_at_once_count_two_failures(engine: Engine) -> None:
    """Lanes fail together when a target goes down. Two settlements that each
    read the run of failures and wrote it back plus one would count one: the
    second waits for the first's count instead."""
    hub = _hub(engine, _target(3))
    dispatcher = hub.dispatcher
    with engine.begin() as conn:
        dispatcher._breaker(conn, "ledger")  # the target's row, as a first round makes it
    counted = threading.Event()

    def second() -> None:
        with engine.begin() as conn:
            dispatcher._count_failure(conn, "ledger")
        counted.set()

    with engine.connect() as first, first.begin():
        dispatcher._count_failure(first, "ledger")
        other = threading.Thread(target=second)
        other.start()
        assert not counted.wait(0.5), "the second count did not wait for the first"
    other.join(timeout=30)
    assert counted.is_set()
    with engine.connect() as conn:
        failures = conn.execute(select(target_leases.c.consecutive_failures)
                                .where(target_leases.c.target == "ledger")).scalar_one()
    assert failures == 2
