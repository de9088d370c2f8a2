"""The long-running loop shared by `billbridge worker` and `billbridge serve`:
process, dispatch and poll until told to stop."""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Sequence

import structlog

from billbridge.connectors.base import DeliveryError, Source
from billbridge.engine import alerts
from billbridge.engine.hub import Hub
from billbridge.engine.sync import sync
from billbridge.engine.wakeup import Listener

log = structlog.get_logger("billbridge.runner")


def run(hub: Hub, stop: threading.Event, *, sources: Sequence[Source] = (),
        poll_seconds: float = 5.0, idle_sleep: float = 0.05, idle_poll: float = 1.0,
        alert_seconds: float = 30.0, idle_exit: float | None = None, process: bool = True,
        dispatch: bool = True) -> None:
    """Run until ``stop`` is set, or until nothing moved for ``idle_exit`` seconds.

    With nothing to do the loop waits ``idle_sleep`` seconds before it looks
    again; on PostgreSQL it waits until work is announced, looking again
    every ``idle_poll`` seconds for work no one announces (engine/wakeup.py).

    ``process`` and ``dispatch`` say which of the two jobs this loop does, so a
    deployment can run processing workers and dispatchers as separate
    processes; with neither the loop only polls (the hub takes work in, and
    `billbridge worker` processes elsewhere do it)."""
    def step() -> int:
        if process and dispatch:
            return hub.step()  # the dispatcher keeps pace with what was processed
        return (hub.worker.run_once() if process else 0) + \
            (hub.dispatcher.run_once() if dispatch else 0)

    # A loop that only polls sources has nothing to wake for.
    listener = Listener(hub.engine, idle_sleep=idle_sleep, idle_poll=idle_poll,
                        listen=process or dispatch)
    try:
        _loop(hub, stop, sources, poll_seconds, listener, alert_seconds, idle_exit, step)
    finally:
        listener.close()
        hub.dispatcher.release()


def _loop(hub: Hub, stop: threading.Event, sources: Sequence[Source], poll_seconds: float,
          listener: Listener, alert_seconds: float, idle_exit: float | None,
          step: Callable[[], int]) -> None:
    last_poll = last_alerts = -math.inf  # both run at once on start
    idle_since = time.monotonic()
    while not stop.is_set():
        if time.monotonic() - last_alerts >= alert_seconds:
            last_alerts = time.monotonic()
            try:
                alerts.evaluate(hub.engine, hub.clock.now())
            except Exception as exc:  # alerting must never stop the hub
                log.warning("alert check failed", error=repr(exc))
        if sources and time.monotonic() - last_poll >= poll_seconds:
            last_poll = time.monotonic()
            for source in sources:
                try:
                    result = sync(hub.engine, source, hub.clock)
                    if result.accepted:
                        log.info("polled", source=source.name, accepted=result.accepted,
                                 duplicates=result.duplicates, cursor=result.cursor)
                except DeliveryError as exc:
                    log.warning("poll failed; will try again", source=source.name,
                                error=str(exc))
        try:
            moved = step()
        except Exception as exc:  # keep the loop alive; the failure is logged
            log.exception("step failed", error=repr(exc))
            moved = 0
        if moved:
            idle_since = time.monotonic()
            continue
        if idle_exit is not None and time.monotonic() - idle_since >= idle_exit:
            return
        listener.wait(stop)
