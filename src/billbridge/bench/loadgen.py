"""An open-loop generator of signed webhooks, meant to run in its own process.

Delivery ``i`` is due at ``start + i / rate`` and is sent then whether or not
earlier ones have been answered (on a free keep-alive connection, or a new
one). Latency is measured from the due time, not from the moment the request
left, so a server that falls behind shows it in the latency instead of
silently slowing the generator down (coordinated omission). The generator
reports its own lag (sent minus due) so a reader can tell when the generator,
not the server, was the bottleneck.

Requests are written on raw asyncio transports (uvloop) and answers parsed by
httptools: a full HTTP client per request costs more CPU than the server
spends acknowledging it, and the generator shares the machine with it.
"""

from __future__ import annotations

import asyncio
import gc
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, cast
from urllib.parse import urlsplit

import httptools
import uvloop

from billbridge.connectors.generic.webhooks import sign

TIMEOUT_SECONDS = 10.0


@dataclass(frozen=True, slots=True)
class Delivery:
    """One scheduled webhook and what became of it."""

    event_id: str
    due: float  # seconds after the run's start
    lag: float  # seconds between due and sent
    latency: float | None  # seconds between due and the full answer; None: no answer
    status: int | None  # HTTP status, None when the request failed
    error: str | None = None


def time_entry_body(run: str, index: int) -> tuple[str, bytes]:
    """The inbox event id and the webhook body of delivery ``index``: one new
    approved time entry of the generic source each."""
    entry = {"id": f"{run}-{index}", "version": 1, "worker": f"w-{index % 50}",
             "project": f"P-{index % 20}", "task": "dev", "work_date": "2026-03-02",
             "hours": "1.5", "billable": True, "notes": "", "status": "approved",
             "updated_at": "2026-03-03T18:00:00+00:00"}
    body = {"event_id": f"{entry['id']}:v1", "event": "time_entry.upserted",
            "occurred_at": entry["updated_at"], "time_entry": entry}
    return f"{entry['id']}:v1", json.dumps(body, separators=(",", ":")).encode()


class _Connection(asyncio.Protocol):
    """One keep-alive connection carrying one request at a time; answers are
    parsed by httptools (C), the parser uvicorn itself uses."""

    def __init__(self) -> None:
        self.parser = httptools.HttpResponseParser(self)
        self.transport: asyncio.Transport | None = None
        self.answer: asyncio.Future[int] | None = None
        self.closed = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not subclasses of asyncio.Transport, only alike.
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._fail(ConnectionError(f"bad HTTP answer: {exc}"))

    def on_message_complete(self) -> None:  # called by the parser
        if self.answer is not None and not self.answer.done():
            self.answer.set_result(self.parser.get_status_code())

    def connection_lost(self, exc: Exception | None) -> None:
        self._fail(ConnectionError(f"connection lost: {exc!r}"))

    def _fail(self, exc: Exception) -> None:
        self.closed = True
        if self.answer is not None and not self.answer.done():
            self.answer.set_exception(exc)

    def request(self, host: str, path: str, body: bytes, secret: str) -> asyncio.Future[int]:
        """Sign ``body`` now (the signature carries the time it was sent) and send it."""
        assert self.transport is not None
        stamp = str(int(time.time()))
        head = (f"POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
                f"Content-Length: {len(body)}\r\nX-Generic-Timestamp: {stamp}\r\n"
                f"X-Generic-Signature: {sign(secret, stamp, body)}\r\n\r\n")
        self.answer = asyncio.get_running_loop().create_future()
        self.transport.write(head.encode() + body)
        return self.answer


class _Pool:
    """Idle keep-alive connections, opened on demand up to a ceiling; past
    it a delivery waits for one to come back (and its latency shows that)."""

    def __init__(self, host: str, port: int, ceiling: int) -> None:
        self.host, self.port, self.ceiling = host, port, ceiling
        self.idle: list[_Connection] = []
        self.opened = 0
        self.peak = 0
        self.freed = asyncio.Condition()

    async def take(self) -> _Connection:
        while True:
            while self.idle:
                conn = self.idle.pop()
                if not conn.closed:
                    return conn
                self.opened -= 1
            if self.opened < self.ceiling:
                self.opened += 1
                self.peak = max(self.peak, self.opened)
                try:
                    _, conn = await asyncio.get_running_loop().create_connection(
                        _Connection, self.host, self.port)
                except OSError:
                    self.opened -= 1
                    raise
                return conn
            async with self.freed:
                await self.freed.wait()

    async def give_back(self, conn: _Connection) -> None:
        if conn.closed:
            self.opened -= 1
        else:
            self.idle.append(conn)
        async with self.freed:
            self.freed.notify()


async def _deliver(pool: _Pool, index: int, due: float, start: float, url_path: str,
                   host: str, secret: str, run: str,
                   body_for: Callable[[str, int], tuple[str, bytes]]) -> Delivery:
    event_id, body = body_for(run, index)
    sent = due
    try:
        conn = await pool.take()
        sent = time.perf_counter()
        answer = conn.request(host, url_path, body, secret)
        status = await asyncio.wait_for(answer, TIMEOUT_SECONDS)
        done = time.perf_counter()
        await pool.give_back(conn)
    except (OSError, TimeoutError, ConnectionError) as exc:
        return Delivery(event_id, due - start, sent - due, None, None, repr(exc))
    return Delivery(event_id, due - start, sent - due, done - due, status)


async def _drive(url: str, secret: str, rate: float, seconds: float, run: str,
                 max_connections: int, warm_connections: int,
                 body_for: Callable[[str, int], tuple[str, bytes]]
                 ) -> tuple[list[Delivery], dict[str, Any]]:
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    pool = _Pool(host, port, max_connections)
    loop = asyncio.get_running_loop()
    # Connections a vendor would already hold open; more are opened on demand.
    warm = []
    for _ in range(min(warm_connections, max_connections)):
        try:
            warm.append(await pool.take())
        except OSError:
            break  # nobody listening: every delivery will record that
    for conn in warm:
        await pool.give_back(conn)
    total = int(rate * seconds)
    # perf_counter, not loop.time(): uvloop's loop clock counts whole milliseconds.
    start = time.perf_counter() + 0.05
    tasks: list[asyncio.Task[Delivery]] = []
    for index in range(total):
        due = start + index / rate
        delay = due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(loop.create_task(_deliver(pool, index, due, start, parts.path, host,
                                               secret, run, body_for)))
    deliveries = list(await asyncio.gather(*tasks))
    for conn in pool.idle:
        if conn.transport is not None:
            conn.transport.close()
    return deliveries, {"connections_peak": pool.peak}


def generate(url: str, *, secret: str, rate: float, seconds: float, run: str,
             max_connections: int = 256, warm_connections: int = 32,
             body_for: Callable[[str, int], tuple[str, bytes]] = time_entry_body,
             ) -> tuple[list[Delivery], dict[str, Any]]:
    """Send ``rate * seconds`` signed webhooks to ``url`` on schedule; return
    every delivery's fate and the generator's own figures (CPU seconds used,
    connections opened)."""
    cpu = time.process_time()
    # A collection pass over the growing list of deliveries would pause the
    # generator and be charged to the server as latency; reference counting
    # frees what a run leaves behind.
    gc.disable()
    try:
        deliveries, info = uvloop.run(_drive(url, secret, rate, seconds, run, max_connections,
                                         warm_connections, body_for))
    finally:
        gc.enable()
    info["cpu_seconds"] = round(time.process_time() - cpu, 3)
    return deliveries, info
