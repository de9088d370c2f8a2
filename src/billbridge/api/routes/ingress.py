"""Ingress: vendors' signed webhooks (POST /v1/webhooks/{source}) and
canonical events pushed by a token (POST /v1/events/{source}). Both are
answered once their events are committed to the inbox."""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from anyio import CapacityLimiter, to_thread
from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import Counter
from starlette.routing import Route

from billbridge.api import limits
from billbridge.api.problems import ApiError
from billbridge.api.routes.common import Ingester
from billbridge.connectors.base import (
    DeliveryError,
    RateLimit,
    SignatureError,
    WebhookReceiver,
    WebhookRequest,
)
from billbridge.connectors.ratelimit import TokenBucket
from billbridge.engine import drift
from billbridge.engine.group_commit import GroupCommitter, SeenDrift
from billbridge.engine.inbox import IngestResult
from billbridge.engine.tokens import OutOfScope

WEBHOOKS_REJECTED = Counter("billbridge_webhooks_rejected_total",
                            "Webhook deliveries refused at the door", ["source", "why"])
VENDOR_THREADS = 16
DOOR_RATE = RateLimit(1200, 1, burst=2000)
"""A webhook source's default rate at the door, in deliveries: 1,200 a second
is the most one `billbridge serve` acknowledged with p99 within 25 ms, and a
burst of 2,000 the most it took at once with nothing lost (docs/benchmarks.md,
Ingest). Past it a source is answered 429 with Retry-After, and sends again."""


def door_rate(options: Mapping[str, Any], default: RateLimit = DOOR_RATE) -> RateLimit:
    """A connection's webhook rate at the door from its settings
    ``webhook_rate_per_second`` and ``webhook_burst`` (each optional)."""
    rate = _positive(options, "webhook_rate_per_second", float, default.per_second)
    burst = _positive(options, "webhook_burst", int, default.burst)
    return RateLimit(rate, 1, burst=int(burst))


def _positive(options: Mapping[str, Any], key: str, kind: type[float] | type[int],
              default: float) -> float:
    given = options.get(key)
    if given is None or given == "":
        return default
    try:
        value = kind(given)
    except (TypeError, ValueError):
        value = 0
    if value <= 0:
        raise ValueError(f"{key} must be a positive {'whole ' if kind is int else ''}number, "
                         f"not {given!r}")
    return value
"""Deliveries whose receivers may be calling their vendors at once; more wait their turn."""

EVENTS_BODY: dict[str, Any] = {"requestBody": {"required": True, "content": {
    "application/json": {"schema": {"type": "array", "maxItems": limits.MAX_EVENTS, "items": {
        "type": "object", "required": ["type"],
        "description": "a canonical event: {type, source, id, at, data}; GET /v1/schemas"}}}}}}


def router(committer: GroupCommitter) -> APIRouter:
    routes = APIRouter()

    @routes.post("/v1/events/{source}", status_code=202, tags=["ingress"],
                 openapi_extra=EVENTS_BODY)
    async def push_events(source: str, request: Request, who: Ingester) -> Any:
        """Canonical events from ``source``, if the token may submit that source's
        events of those types. The token and source are checked before the body
        is read, its size and nesting before it is parsed."""
        try:
            who.check_source(source)
            events = await to_thread.run_sync(limits.event_list, await request.body())
            who.check_event_types(source, (e["type"] for e in events))
        except OutOfScope as exc:
            raise ApiError(403, "OUT_OF_SCOPE", str(exc)) from None
        except limits.Refused as exc:
            raise ApiError(exc.status, exc.code, exc.message) from None
        return {"results": _results(await committer.store(events, source=source))}

    return routes


class WebhookDoor:
    """The webhook route: each source's rate limit, then its receiver checks the
    signature and turns the body into events."""

    def __init__(self, receivers: Mapping[str, WebhookReceiver], committer: GroupCommitter,
                 rate: RateLimit, rates: Mapping[str, RateLimit] | None = None) -> None:
        self.receivers = dict(receivers)
        self.committer = committer
        # Per source (its own rate, else ``rate``): a flood from one vendor
        # cannot starve the others.
        self.doors = {name: TokenBucket((rates or {}).get(name, rate))
                      for name in self.receivers}
        # Receivers may call their vendor (and wait on its rate limit): in threads
        # of their own, so a slow vendor holds neither the event loop nor the
        # threads every other route runs in.
        self.vendor_threads = CapacityLimiter(VENDOR_THREADS)
        # Receivers whose deliveries carry records, or that read them again from
        # their vendor, check them against the connector's contract: the drift
        # one delivery shows is kept with its events (engine.drift).
        self.drift = {name: log for name, receiver in self.receivers.items()
                      if (log := drift.watch_receiver(committer.engine, name, receiver))}

    def route(self) -> Route:
        # A plain Starlette route: it reads the raw body for the signature and
        # needs none of FastAPI's parameter handling, which cost three times
        # the rest of an acknowledgement.
        return Route("/v1/webhooks/{source}", self.webhook, methods=["POST"])

    async def webhook(self, request: Request) -> Response:
        source = request.path_params["source"]
        receiver = self._admit(source)
        body = await request.body()  # no larger than the body cap
        delivery = WebhookRequest(request.method, str(request.url),
                                  {k.lower(): v for k, v in request.headers.items()}, body)
        try:
            events, seen = await to_thread.run_sync(_open, receiver, delivery, time.time(),
                                                    self.drift.get(source),
                                                    limiter=self.vendor_threads)
        except SignatureError as exc:
            WEBHOOKS_REJECTED.labels(source, "signature").inc()
            raise ApiError(401, "BAD_SIGNATURE", str(exc)) from None
        except DeliveryError as exc:
            # The receiver needed the vendor's API to complete the events and could
            # not reach it: refuse, so the vendor delivers again later.
            WEBHOOKS_REJECTED.labels(source, "fetch_failed").inc()
            raise ApiError(503, "UPSTREAM_UNAVAILABLE", str(exc)) from None
        results = await self.committer.store(events, source=source, drift=seen)
        acknowledgement = getattr(receiver, "acknowledgement", None)
        if acknowledgement is not None:
            media_type, content = acknowledgement()
            return Response(content, status_code=200, media_type=media_type)
        # A response, not a dict: FastAPI's encoder would walk it again.
        return JSONResponse({"results": _results(results)}, status_code=202)

    def _admit(self, source: str) -> WebhookReceiver:
        """The source's receiver, if it has one and is within its rate."""
        receiver = self.receivers.get(source)
        if receiver is None:
            WEBHOOKS_REJECTED.labels("unknown", "unknown_source").inc()
            raise ApiError(404, "UNKNOWN_SOURCE", f"no webhook source is named {source!r}")
        door = self.doors[source]
        if door.wait_time() > 0:
            WEBHOOKS_REJECTED.labels(source, "rate_limited").inc()
            retry = max(1, round(door.wait_time()))
            raise ApiError(429, "RATE_LIMITED", f"too many deliveries from {source}; "
                           f"retry in {retry} s", headers={"Retry-After": str(retry)})
        door.take()
        return receiver


def _results(results: list[IngestResult]) -> list[dict[str, Any]]:
    return [{"event_id": r.event_id, "status": r.status.value, "message": r.message}
            for r in results]


def _open(receiver: WebhookReceiver, delivery: WebhookRequest, now: float,
          log: drift.DeliveryDrift | None) -> tuple[list[Any], SeenDrift | None]:
    """A delivery's events, and the drift its records showed: its signature
    checked first, then its size and nesting; one too large or too deep to
    parse is kept raw as malformed, and answered like any other, so the vendor
    does not send it again."""
    receiver.verify(delivery, now=now)
    why = limits.refusal(delivery.body)
    if why:
        return [limits.kept_raw(delivery.body, why)], None
    if log is not None:
        log.take()  # nothing a failed delivery before on this thread left behind
    events = receiver.events(delivery)
    return events, (SeenDrift(log.connection, log.api_version, log.take())
                    if log is not None else None)
