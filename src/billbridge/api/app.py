"""The hub's HTTP API. This slice serves health, metrics, webhook ingress for
the generic source and read-only views of the exception queue and lineage;
issue 6 completes /v1 with tokens and roles."""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, Counter, generate_latest
from sqlalchemy import text

from billbridge.connectors.base import (
    DeliveryError,
    SignatureError,
    WebhookReceiver,
    WebhookRequest,
)
from billbridge.engine import exception_queue, lineage
from billbridge.engine.hub import Hub

WEBHOOKS_REJECTED = Counter("billbridge_webhooks_rejected_total",
                            "Webhook deliveries refused at the door", ["source", "why"])
MAX_WEBHOOK_BYTES = 1_000_000


def _error(status: int, code: str, message: str) -> JSONResponse:
    return JSONResponse({"code": code, "message": message}, status_code=status)


def create_app(hub: Hub, *, webhooks: Mapping[str, WebhookReceiver]) -> FastAPI:
    app = FastAPI(title="billbridge", version="0.1.0")

    @app.get("/healthz")
    def healthz() -> dict[str, Any]:
        with hub.engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        return {"status": "ok", "database": hub.engine.dialect.name}

    @app.get("/metrics")
    def metrics() -> Response:
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    @app.post("/v1/webhooks/{source}", status_code=202)
    async def webhook(source: str, request: Request) -> Any:
        receiver = webhooks.get(source)
        if receiver is None:
            WEBHOOKS_REJECTED.labels("unknown", "unknown_source").inc()
            return _error(404, "UNKNOWN_SOURCE", f"no webhook source is named {source!r}")
        body = await request.body()
        if len(body) > MAX_WEBHOOK_BYTES:
            WEBHOOKS_REJECTED.labels(source, "too_large").inc()
            return _error(413, "PAYLOAD_TOO_LARGE", "webhook body over 1 MB")
        delivery = WebhookRequest(request.method, str(request.url),
                                  {k.lower(): v for k, v in request.headers.items()}, body)
        try:
            receiver.verify(delivery, now=time.time())
        except SignatureError as exc:
            WEBHOOKS_REJECTED.labels(source, "signature").inc()
            return _error(401, "BAD_SIGNATURE", str(exc))
        try:
            events = receiver.events(delivery)
        except DeliveryError as exc:
            # The receiver needed the vendor's API to complete the events and could
            # not reach it: refuse, so the vendor delivers again later.
            WEBHOOKS_REJECTED.labels(source, "fetch_failed").inc()
            return _error(503, "UPSTREAM_UNAVAILABLE", str(exc))
        results = hub.ingest(events, source=source)
        acknowledgement = getattr(receiver, "acknowledgement", None)
        if acknowledgement is not None:
            # Some vendors want their own answer (Salesforce Outbound Messages: SOAP Ack).
            media_type, content = acknowledgement()
            return Response(content, status_code=200, media_type=media_type)
        return {"results": [{"event_id": r.event_id, "status": r.status.value,
                             "message": r.message} for r in results]}

    @app.get("/v1/exceptions")
    def list_exceptions(reason: str | None = None, limit: int = 100) -> Any:
        with hub.engine.connect() as conn:
            rows = exception_queue.list_open(conn, reason=reason, limit=min(limit, 1000))
        return {"items": [dict(r._mapping) for r in rows]}

    @app.get("/v1/lineage/{ident}")
    def get_lineage(ident: str) -> Any:
        with hub.engine.connect() as conn:
            found = lineage.trace(conn, ident)
        if not found.found:
            return _error(404, "NOT_FOUND", f"nothing is known by {ident!r}")
        return found.__dict__

    return app
