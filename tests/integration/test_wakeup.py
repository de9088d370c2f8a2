"""Idle workers wake when work is announced (PostgreSQL LISTEN/NOTIFY) and
otherwise poll: an announcement goes out only with its transaction's commit,
what piles up while a worker is busy wakes it once, and a listener whose
connection breaks falls back to polling and listens again later."""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator

import pytest
from sqlalchemy import Engine, text
from structlog.testing import capture_logs

from billbridge.engine import aggregates, runner, wakeup
from billbridge.engine.hub import Hub
from billbridge.engine.wakeup import Listener
from conftest import CONFIG, project_event, time_entry
from fakes import FakeTarget

LONG = 30.0  # an idle poll far longer than any wait below: only an announcement ends it


@pytest.fixture
def hub(engine: Engine) -> Iterator[Hub]:
    hub = Hub(engine, {"ledger": FakeTarget()})
    hub.activate_config(CONFIG)
    yield hub


def _wait_in_thread(listener: Listener, stop: threading.Event) -> tuple[threading.Thread,
                                                                          list[bool]]:
    woke: list[bool] = []
    thread = threading.Thread(target=lambda: woke.append(listener.wait(stop)), daemon=True)
    thread.start()
    return thread, woke


def _until(condition: Callable[[], bool], timeout: float = 10.0) -> bool:
    """Whether ``condition`` came true within ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


def _someone_listens(engine: Engine) -> bool:
    """Whether a session of this database has issued LISTEN for work (its
    last statement); from then on every commit that announces work reaches it."""
    with engine.connect() as conn:
        return bool(conn.execute(text(
            "SELECT count(*) FROM pg_stat_activity WHERE query = :listen "
            "AND datname = current_database() AND pid <> pg_backend_pid()"),
            {"listen": f"LISTEN {wakeup.CHANNEL}"}).scalar())


on_postgres = pytest.mark.parametrize(
    "engine", [pytest.param("postgres", marks=pytest.mark.postgres)], indirect=True)


@on_postgres
def test_an_ingested_event_wakes_a_waiting_listener_at_once(hub: Hub) -> None:
    listener = Listener(hub.engine, idle_poll=0.2)
    stop = threading.Event()
    try:
        assert listener.wait(stop) is False  # nothing announced: the poll runs out
        assert listener.listening
        listener.idle_poll = LONG
        thread, woke = _wait_in_thread(listener, stop)
        started = time.monotonic()
        hub.ingest([project_event()], source="psa")
        thread.join(timeout=10)
        assert woke == [True]
        assert time.monotonic() - started < 10 < LONG
        assert listener.wakeups == 1
    finally:
        stop.set()
        listener.close()


@on_postgres
def test_work_rolled_back_wakes_no_one_and_committed_work_wakes_once(hub: Hub) -> None:
    listener = Listener(hub.engine, idle_poll=0.3)
    stop = threading.Event()
    try:
        assert listener.wait(stop) is False  # listening from here on
        with hub.engine.connect() as conn:
            trans = conn.begin()
            aggregates.bump_pending(conn, Counter({"project:GLX-001": 1}))
            trans.rollback()
        # Had the announcement gone out with the rollback, it would be here now.
        listener.catch_up()
        assert listener.wait(stop) is False
        # Three commits while the worker is busy, all of them delivered before it
        # waits again (however slowly the listening backend forwards them under
        # load): one wait takes them all.
        for n in range(3):
            hub.ingest([project_event(event_id=f"p-{n}")], source="psa")
        listener.catch_up()
        assert listener.wait(stop) is True
        assert listener.wait(stop) is False
        assert listener.wakeups == 1
    finally:
        listener.close()


@on_postgres
def test_a_listener_whose_connection_breaks_polls_then_listens_again(
        hub: Hub, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(wakeup, "RECONNECT_SECONDS", 0.0)
    listener = Listener(hub.engine, idle_poll=0.2, idle_sleep=0.01)
    stop = threading.Event()
    try:
        assert listener.wait(stop) is False and listener.listening
        with hub.engine.begin() as conn:
            ended = conn.execute(text(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE query = :listen AND datname = current_database() "
                "AND pid <> pg_backend_pid()"),
                {"listen": f"LISTEN {wakeup.CHANNEL}"}).scalars().all()
        assert ended == [True]
        with capture_logs() as logs:
            assert listener.wait(stop) is False  # the broken connection is noticed, not raised
        assert not listener.listening
        assert [e["event"] for e in logs] == [
            "wake-up listener lost its connection; polling until it is back"]
        assert listener.wait(stop) is False  # listening again
        assert listener.listening
        hub.ingest([project_event()], source="psa")
        assert listener.wait(stop) is True
    finally:
        listener.close()


@pytest.mark.parametrize("listen", [True, False])
def test_without_a_listener_an_idle_wait_is_the_short_sleep(engine: Engine,
                                                            listen: bool) -> None:
    """SQLite cannot announce, and a loop that only polls sources does not
    listen: they look again every ``idle_sleep`` as before. A set stop ends
    any wait at once."""
    listener = Listener(engine, idle_sleep=0.05, idle_poll=LONG, listen=listen)
    stop = threading.Event()
    try:
        if engine.dialect.name == "sqlite" or not listen:
            started = time.monotonic()
            assert listener.wait(stop) is False
            assert time.monotonic() - started < LONG / 2
            assert not listener.listening
        stop.set()
        started = time.monotonic()
        assert listener.wait(stop) is False
        assert time.monotonic() - started < LONG / 2
    finally:
        listener.close()


def test_a_running_worker_posts_new_work_without_waiting_for_its_idle_poll(
        engine: Engine) -> None:
    """The whole loop: a worker idle with a 30 s poll posts a time entry
    ingested by another process's intake within seconds, on PostgreSQL by
    the announcement, on SQLite by its short sleep."""
    target = FakeTarget()
    hub = Hub(engine, {"ledger": target})
    hub.activate_config(CONFIG)
    intake = Hub(engine, {})
    stop = threading.Event()
    thread = threading.Thread(target=runner.run, args=(hub, stop),
                              kwargs={"idle_poll": LONG}, daemon=True)
    thread.start()
    try:
        if engine.dialect.name == "postgresql":
            # The worker listens once it has looked and found nothing: from then
            # on only the announcement can end its 30 s wait within the 10 s below.
            assert _until(lambda: _someone_listens(engine))
        intake.ingest([project_event(), time_entry("te-1")], source="harvest")
        assert _until(lambda: bool(target.payloads("time_charge.post")), timeout=10.0)  # < LONG
        assert [p["time_entry"] for p in target.payloads("time_charge.post")] == ["te-1"]
    finally:
        stop.set()
        thread.join(timeout=10)
    assert not thread.is_alive()
