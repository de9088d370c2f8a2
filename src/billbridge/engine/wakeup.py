"""Waking idle workers when work arrives.

Whatever makes work for a worker (events stored, released or requeued in the
inbox; commands written to the outbox) announces it in its own transaction
(``store.notify.announce``). An idle worker listens on the store's channel
(``store.notify.Channel``, PostgreSQL) and wakes at once; it still looks again
every ``idle_poll`` seconds for work that no one announces (a backoff or a
lease running out, a dead worker's aggregate). Without a channel (on SQLite,
or while the listening connection is down) a worker polls every
``idle_sleep`` seconds as before."""

from __future__ import annotations

import threading
import time

import structlog
from sqlalchemy import Engine

from billbridge.store.notify import CHANNEL, Channel, ChannelLost, announce

__all__ = ["CHANNEL", "Listener", "announce"]

log = structlog.get_logger("billbridge.wakeup")

RECONNECT_SECONDS = 5.0
"""How long a listener whose connection broke polls before it listens again."""
SLICE_SECONDS = 0.25
"""The longest a wait goes without looking at its stop event."""


class Listener:
    """An idle worker's wait: until work is announced, ``idle_poll`` passes,
    or ``stop`` is set; on a store that cannot announce, or for a loop that
    does not work the queues (``listen`` false), ``idle_sleep``."""

    def __init__(self, engine: Engine, *, idle_sleep: float = 0.05,
                 idle_poll: float = 1.0, listen: bool = True) -> None:
        self.idle_sleep = idle_sleep
        self.idle_poll = idle_poll
        self._channel = Channel(engine) if listen else None
        self._retry_at = 0.0
        self.wakeups = 0  # announcements that ended a wait (for tests and logs)

    @property
    def listening(self) -> bool:
        return self._channel is not None and self._channel.is_open

    def wait(self, stop: threading.Event) -> bool:
        """Wait while there is nothing to do; True when work was announced."""
        channel = self._open()
        if channel is None:
            stop.wait(self.idle_sleep)
            return False
        deadline = time.monotonic() + self.idle_poll
        try:
            while not stop.is_set():
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                if channel.received(min(left, SLICE_SECONDS)):
                    self.wakeups += 1
                    return True
        except ChannelLost as lost:
            self._lost(lost)
        return False

    def catch_up(self) -> None:
        """Return once every announcement committed before the call has reached
        this listener (``Channel.catch_up``)."""
        channel = self._open()
        if channel is not None:
            try:
                channel.catch_up()
            except ChannelLost as lost:
                self._lost(lost)

    def _open(self) -> Channel | None:
        """The listening channel, opened if it can be now; None to poll."""
        channel = self._channel
        if channel is None or not channel.available:
            return None
        if not channel.is_open:
            if time.monotonic() < self._retry_at:
                return None
            try:
                channel.open()
            except ChannelLost as lost:
                log.warning("wake-up listener cannot connect; polling meanwhile",
                            error=str(lost))
                self._retry_at = time.monotonic() + RECONNECT_SECONDS
                return None
        return channel

    def _lost(self, lost: ChannelLost) -> None:
        log.warning("wake-up listener lost its connection; polling until it is back",
                    error=str(lost))
        self.close()
        self._retry_at = time.monotonic() + RECONNECT_SECONDS

    def close(self) -> None:
        if self._channel is not None:
            self._channel.close()
