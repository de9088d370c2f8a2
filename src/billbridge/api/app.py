"""The hub's HTTP API under /v1: webhook and event ingress, the queues,
exception actions, lineage, governed configuration with maker-checker,
reconciliation and the audit log. One role check guards every route; every
error is a JSON problem body with a stable `code` (api.problems)."""

from __future__ import annotations

import copy
import time
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Annotated, Any

from anyio import CapacityLimiter, to_thread
from fastapi import Depends, FastAPI, Query, Request, Response
from fastapi import Path as PathParam
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, Counter, generate_latest
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field
from starlette.routing import Route

from billbridge.api import limits, problems
from billbridge.api.auth import Permission, require
from billbridge.api.headers import SecurityHeaders
from billbridge.api.params import MAX_ID, MAX_VERSION, PRINTABLE, iso_date, whole_number
from billbridge.api.problems import ApiError, Problem
from billbridge.connectors.base import (
    DeliveryError,
    RateLimit,
    SignatureError,
    WebhookReceiver,
    WebhookRequest,
)
from billbridge.connectors.ratelimit import TokenBucket
from billbridge.domain.config import ConfigError
from billbridge.domain.events import PAYLOADS
from billbridge.engine.group_commit import GroupCommitter
from billbridge.engine.hub import Hub
from billbridge.engine.tokens import Identity, OutOfScope
from billbridge.services import audit, config_versions, exceptions, lineage, queues, reconcile
from billbridge.services.exceptions import Action
from billbridge.services.oidc import OidcSettings

WEBHOOKS_REJECTED = Counter("billbridge_webhooks_rejected_total",
                            "Webhook deliveries refused at the door", ["source", "why"])
VENDOR_THREADS = 16
"""Deliveries whose receivers may be calling their vendors at once; more wait their turn."""
SCHEMA_VERSION = "v1"

Reader = Annotated[Identity, Depends(require(Permission.READ))]
Actor = Annotated[Identity, Depends(require(Permission.ACT))]
Proposer = Annotated[Identity, Depends(require(Permission.CONFIG_PROPOSE))]
Approver = Annotated[Identity, Depends(require(Permission.CONFIG_APPROVE))]
Auditor = Annotated[Identity, Depends(require(Permission.AUDIT))]
Ingester = Annotated[Identity, Depends(require(Permission.INGEST))]
SchemaReader = Annotated[Identity, Depends(require(Permission.SCHEMAS))]
# The number check after the bounds: placed before them it hides them from the
# OpenAPI document.
Digits = BeforeValidator(whole_number)
Limit = Annotated[int, Query(ge=1, le=1000), Digits]
Cursor = Annotated[int | None, Query(ge=0, le=MAX_ID,
                                     description="the last id of the previous page"), Digits]
RowId = Annotated[int, PathParam(ge=1, le=MAX_ID), Digits]
VersionNo = Annotated[int, PathParam(ge=1, le=MAX_VERSION), Digits]
Ident = Annotated[str, PathParam(max_length=300, pattern=PRINTABLE,
                                 description="an event, record, command or posting id")]
Filter = Annotated[str | None, Query(max_length=200, pattern=PRINTABLE)]

ERRORS: dict[int | str, dict[str, Any]] = {
    status: {"model": Problem, "description": text} for status, text in {
        400: "malformed request", 401: "missing, unknown, expired or revoked token",
        429: "too many requests: see Retry-After",
        403: "the token's role may not do this", 404: "no such thing",
        409: "the action does not apply in this state", 413: "too large",
        422: "invalid input", 500: "the hub failed: quote the correlation id",
        503: "not ready, or a vendor is unreachable"}.items()}


def _error_response(description: str) -> dict[str, Any]:
    return {"description": description, "content": {problems.MEDIA_TYPE: {
        "schema": {"$ref": "#/components/schemas/Problem"}}}}


WEBHOOK_OPERATION: dict[str, Any] = {"post": {
    "tags": ["ingress"], "summary": "Webhook", "operationId": "webhook",
    "description": "A vendor's signed delivery. Answered once its events are in the inbox.",
    "parameters": [{"name": "source", "in": "path", "required": True,
                    "schema": {"type": "string", "title": "Source"}}],
    "requestBody": {"required": True, "content": {"application/json": {"schema": {}}}},
    "responses": {
        "202": {"description": "stored: one result per event", "content": {
            "application/json": {"schema": {"type": "object", "properties": {
                "results": {"type": "array", "items": {"type": "object"}}}}}}},
        "200": {"description": "stored; answered in the vendor's own format"},
        "401": _error_response("unsigned, forged or stale delivery"),
        "404": _error_response("no webhook source of that name"),
        "413": _error_response("body over the hub's cap (BILLBRIDGE_MAX_BODY_BYTES, 4 MiB)"),
        "429": _error_response("the source is over its ingress rate: see Retry-After"),
        "503": _error_response("not stored (vendor or store unreachable): send it again")}}}


EVENTS_BODY: dict[str, Any] = {"requestBody": {"required": True, "content": {
    "application/json": {"schema": {"type": "array", "maxItems": limits.MAX_EVENTS, "items": {
        "type": "object", "required": ["type"],
        "description": "a canonical event: {type, source, id, at, data}; GET /v1/schemas"}}}}}}


class Page(BaseModel):
    items: list[dict[str, Any]]
    next_cursor: int | None = Field(description="pass as ?cursor= for the next page")


class ReconcilePage(Page):
    erps: list[dict[str, Any]] = Field(
        description="each ERP read: its name, how many live labour postings it holds, or why "
                    "it could not be read")
    projects: list[dict[str, Any]] = Field(
        description="per project: approved hours, the hub's charges, the ERP's live postings")


class DismissBody(BaseModel):
    model_config = ConfigDict(strict=True)
    reason: str = Field(min_length=1, max_length=2000)


class ProposalBody(BaseModel):
    model_config = ConfigDict(strict=True)
    document: dict[str, Any]
    note: str | None = Field(default=None, max_length=2000)


class RollbackBody(BaseModel):
    model_config = ConfigDict(strict=True)  # `true` is not version 1
    to_version: int = Field(ge=1, le=MAX_VERSION)


class RejectBody(BaseModel):
    model_config = ConfigDict(strict=True)
    reason: str = Field(min_length=1, max_length=2000)


def _page(items: list[dict[str, Any]], limit: int) -> Page:
    return Page(items=items, next_cursor=int(items[-1]["id"]) if len(items) == limit else None)


def create_app(hub: Hub, *, webhooks: Mapping[str, WebhookReceiver] | None = None,
               scenarios: Path | None = None, oidc: OidcSettings | None = None,
               webhook_rate: RateLimit | None = None, open_metrics: bool = False,
               secure_cookies: bool | None = None,
               max_body_bytes: int | None = None) -> FastAPI:
    """``open_metrics`` serves /metrics without a token (a scraper on a private
    network); ``secure_cookies`` marks the console's cookie `Secure` even
    over plain HTTP (behind a TLS proxy), else BILLBRIDGE_SECURE_COOKIES says."""
    # Deliveries arriving together are committed to the inbox together.
    committer = GroupCommitter(hub.engine, hub.clock)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        yield
        committer.stop()

    app = FastAPI(title="billbridge", version="0.1.0", responses=ERRORS, lifespan=lifespan,
                  description="Integration hub API. Every /v1 route but webhooks needs a "
                              "bearer token; roles: admin, operator, finance, auditor, ingest.")
    app.state.hub = hub
    app.state.oidc = oidc if oidc is not None else OidcSettings.from_env()
    app.state.secure_cookies = secure_cookies
    app.add_middleware(SecurityHeaders)
    receivers = dict(webhooks or {})
    # Per-source ingress limit: a flood from one vendor cannot starve the others.
    door_limit = webhook_rate or RateLimit(2000, 1, burst=2000)
    doors = {name: TokenBucket(door_limit) for name in receivers}

    problems.install(app)
    app.add_middleware(limits.BodyLimit,
                       max_bytes=max_body_bytes or limits.max_body_bytes(),
                       refuse=lambda request, message: problems.problem(
                           request, 413, "PAYLOAD_TOO_LARGE", message))
    # Receivers may call their vendor (and wait on its rate limit): in threads of
    # their own, so a slow vendor holds neither the event loop nor the threads
    # every other route runs in.
    vendor_threads = CapacityLimiter(VENDOR_THREADS)

    def now() -> datetime:
        return datetime.now(UTC)

    # -- health and metrics ------------------------------------------------
    @app.get("/healthz", tags=["health"])
    def healthz() -> dict[str, str]:
        health = queues.health(hub.engine)
        return {"status": health.status, "database": health.database}

    @app.get("/readyz", tags=["health"])
    def readyz() -> dict[str, Any]:
        version = queues.active_config(hub.engine)
        if not version:
            raise ApiError(503, "NOT_READY", "no configuration is active yet")
        return {"status": "ready", "config_version": version}

    @app.get("/metrics", tags=["health"], response_class=Response,
             dependencies=[] if open_metrics else [Depends(require(Permission.METRICS))],
             responses={200: {"content": {CONTENT_TYPE_LATEST: {"schema": {"type": "string"}}},
                              "description": "Prometheus text exposition"}})
    def metrics() -> Response:
        queues.publish_gauges(hub.engine)
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    # -- ingress -----------------------------------------------------------
    async def webhook(request: Request) -> Response:
        source = request.path_params["source"]
        receiver = receivers.get(source)
        if receiver is None:
            WEBHOOKS_REJECTED.labels("unknown", "unknown_source").inc()
            raise ApiError(404, "UNKNOWN_SOURCE", f"no webhook source is named {source!r}")
        door = doors[source]
        if door.wait_time() > 0:
            WEBHOOKS_REJECTED.labels(source, "rate_limited").inc()
            retry = max(1, round(door.wait_time()))
            raise ApiError(429, "RATE_LIMITED", f"too many deliveries from {source}; "
                           f"retry in {retry} s", headers={"Retry-After": str(retry)})
        door.take()
        body = await request.body()  # no larger than the body cap
        delivery = WebhookRequest(request.method, str(request.url),
                                  {k.lower(): v for k, v in request.headers.items()}, body)
        try:
            events = await to_thread.run_sync(_open, receiver, delivery, time.time(),
                                              limiter=vendor_threads)
        except SignatureError as exc:
            WEBHOOKS_REJECTED.labels(source, "signature").inc()
            raise ApiError(401, "BAD_SIGNATURE", str(exc)) from None
        except DeliveryError as exc:
            # The receiver needed the vendor's API to complete the events and could
            # not reach it: refuse, so the vendor delivers again later.
            WEBHOOKS_REJECTED.labels(source, "fetch_failed").inc()
            raise ApiError(503, "UPSTREAM_UNAVAILABLE", str(exc)) from None
        results = await committer.store(events, source=source)
        acknowledgement = getattr(receiver, "acknowledgement", None)
        if acknowledgement is not None:
            media_type, content = acknowledgement()
            return Response(content, status_code=200, media_type=media_type)
        # A response, not a dict: FastAPI's encoder would walk it again.
        return JSONResponse({"results": [{"event_id": r.event_id, "status": r.status.value,
                                          "message": r.message} for r in results]},
                            status_code=202)

    @app.post("/v1/events/{source}", status_code=202, tags=["ingress"],
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
        results = await committer.store(events, source=source)
        return {"results": [{"event_id": r.event_id, "status": r.status.value,
                             "message": r.message} for r in results]}

    # -- queues --------------------------------------------------------------
    @app.get("/v1/inbox", response_model=Page, tags=["queues"])
    def list_inbox(who: Reader, status: Filter = None, cursor: Cursor = None,
                   limit: Limit = 100) -> Page:
        with hub.engine.connect() as conn:
            return _page(queues.inbox_page(conn, status=status, cursor=cursor, limit=limit),
                         limit)

    @app.get("/v1/outbox", response_model=Page, tags=["queues"])
    def list_outbox(who: Reader, status: Filter = None, target: Filter = None,
                    cursor: Cursor = None, limit: Limit = 100) -> Page:
        with hub.engine.connect() as conn:
            return _page(queues.outbox_page(conn, status=status, target=target, cursor=cursor,
                                            limit=limit), limit)

    @app.get("/v1/exceptions", response_model=Page, tags=["exceptions"])
    def list_exceptions(who: Reader, reason: Filter = None,
                        status: Annotated[str, Query(max_length=200, pattern=PRINTABLE)] = "open",
                        cursor: Cursor = None, limit: Limit = 100) -> Page:
        with hub.engine.connect() as conn:
            return _page(exceptions.page(conn, status=status, reason=reason, cursor=cursor,
                                         limit=limit), limit)

    @app.get("/v1/exceptions/{exc_id}", tags=["exceptions"])
    def get_exception(exc_id: RowId, who: Reader) -> dict[str, Any]:
        with hub.engine.connect() as conn:
            return exceptions.get(conn, exc_id)

    def act(exc_id: RowId, who: Identity, action: Action, reason: str | None = None) -> Any:
        done = exceptions.act(hub.engine, exc_id, action, actor=who.name, at=now(),
                              reason=reason)
        return {"id": done.id, "status": done.status}

    @app.post("/v1/exceptions/{exc_id}/retry", tags=["exceptions"])
    def retry(exc_id: RowId, who: Actor) -> Any:
        return act(exc_id, who, "retry")

    @app.post("/v1/exceptions/{exc_id}/replay", tags=["exceptions"])
    def replay(exc_id: RowId, who: Actor) -> Any:
        return act(exc_id, who, "replay")

    @app.post("/v1/exceptions/{exc_id}/dismiss", tags=["exceptions"])
    def dismiss(exc_id: RowId, body: DismissBody, who: Actor) -> Any:
        return act(exc_id, who, "dismiss", body.reason)

    @app.get("/v1/lineage/{ident}", tags=["lineage"])
    def get_lineage(ident: Ident, who: Reader) -> Any:
        with hub.engine.connect() as conn:
            return lineage.as_json(lineage.trace(conn, ident))

    # -- configuration -------------------------------------------------------
    @app.get("/v1/config/versions", response_model=Page, tags=["configuration"])
    def list_versions(who: Reader, cursor: Cursor = None, limit: Limit = 100) -> Page:
        """Newest first; the cursor is the last version of the previous page."""
        with hub.engine.connect() as conn:
            return _page(config_versions.versions_page(conn, cursor=cursor, limit=limit), limit)

    @app.get("/v1/config/versions/{version}", tags=["configuration"])
    def get_version(version: VersionNo, who: Reader) -> Any:
        with hub.engine.connect() as conn:
            return {"version": version, "document": config_versions.document(conn, version)}

    @app.post("/v1/config/proposals", status_code=201, tags=["configuration"])
    def propose(body: ProposalBody, who: Proposer) -> Any:
        try:
            version = config_versions.propose(hub.engine, body.document, actor=who.name,
                                              at=now(), note=body.note)
        except ConfigError as exc:
            raise ApiError(422, "INVALID_CONFIGURATION", str(exc)) from None
        return {"version": version, "status": "proposed"}

    @app.get("/v1/config/versions/{version}/preview", tags=["configuration"])
    def preview(version: VersionNo, who: Reader) -> Any:
        """The postings that would change if this version replaced the active one."""
        suite = sorted(scenarios.glob("*.yaml")) if scenarios else []
        found = config_versions.preview(hub.engine, version, suite)
        return {"version": found.version, "against": found.against,
                "scenarios": found.scenarios, "changes": found.changes}

    def decide(version: VersionNo, who: Identity, decision: config_versions.Decision,
               reason: str = "") -> Any:
        status = config_versions.decide(hub.engine, version, decision, actor=who.name,
                                        at=now(), reason=reason)
        return {"version": version, "status": status}

    @app.post("/v1/config/versions/{version}/approve", tags=["configuration"])
    def approve(version: VersionNo, who: Approver) -> Any:
        return decide(version, who, "approve")

    @app.post("/v1/config/versions/{version}/reject", tags=["configuration"])
    def reject(version: VersionNo, body: RejectBody, who: Approver) -> Any:
        return decide(version, who, "reject", body.reason)

    @app.post("/v1/config/rollback", status_code=201, tags=["configuration"])
    def rollback(body: RollbackBody, who: Proposer) -> Any:
        try:
            version = config_versions.rollback(hub.engine, body.to_version, actor=who.name,
                                               at=now())
        except ConfigError as exc:  # e.g. back to the version that is active
            raise ApiError(422, "INVALID_CONFIGURATION", str(exc)) from None
        return {"version": version, "status": "proposed"}

    # -- reports ---------------------------------------------------------------
    @app.get("/v1/reconcile", response_model=ReconcilePage, tags=["reports"])
    def get_reconcile(who: Reader,
                      period_end: Annotated[date | None, BeforeValidator(iso_date)] = None,
                      parked_days: Annotated[int, Query(ge=0, le=3650), Digits] = 7,
                      cursor: Cursor = None, limit: Limit = 100) -> ReconcilePage:
        """Approved time, hub charges and the ERP's live postings (read from the
        ERP now); differences in a stable order, the cursor is the last `id` seen."""
        result = reconcile.reconcile(hub, period_end=period_end or now().date(), now=now(),
                                     parked_days=parked_days)
        items = [{"id": n, **f.as_json()} for n, f in enumerate(reconcile.ordered(result),
                                                                 start=1)
                 if cursor is None or n > cursor][:limit]
        page = _page(items, limit)
        return ReconcilePage(items=page.items, next_cursor=page.next_cursor,
                             erps=[{"erp": e.name, "postings": len(e.postings),
                                    "error": e.error} for e in result.erps],
                             projects=[p.as_json() for p in result.projects])

    @app.get("/v1/audit", response_model=Page, tags=["audit"])
    def get_audit(who: Auditor, cursor: Cursor = None, limit: Limit = 100) -> Page:
        with hub.engine.connect() as conn:
            return _page(audit.page(conn, cursor=cursor, limit=limit), limit)

    @app.get("/v1/schemas", tags=["schemas"])
    def list_schemas(who: SchemaReader) -> Any:
        return {"version": SCHEMA_VERSION,
                "events": {name: f"/v1/schemas/{name}" for name in sorted(PAYLOADS)}}

    @app.get("/v1/schemas/{event_type}", tags=["schemas"])
    def get_schema(event_type: str, who: SchemaReader) -> Any:
        model = PAYLOADS.get(event_type)
        if model is None:
            raise ApiError(404, "NOT_FOUND", f"no canonical event type {event_type!r}")
        schema = model.model_json_schema()
        schema["$id"] = f"https://billbridge.dev/schemas/{SCHEMA_VERSION}/{event_type}.json"
        return schema

    def openapi() -> dict[str, Any]:
        # Every error answers with the problem body, invalid input too, so document
        # that instead of FastAPI's default validation-error shape.
        if app.openapi_schema is None:
            document = get_openapi(title=app.title, version=app.version,
                                   description=app.description, routes=app.routes)
            document["paths"]["/v1/webhooks/{source}"] = copy.deepcopy(WEBHOOK_OPERATION)
            problems.document(document)
            app.openapi_schema = document
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    # The webhook door is a plain Starlette route, first in the table: it reads
    # the raw body for the signature and needs none of FastAPI's parameter
    # handling, which cost three times the rest of an acknowledgement.
    app.router.routes.insert(0, Route("/v1/webhooks/{source}", webhook, methods=["POST"]))
    # The console's routes last: requests are matched in order, and webhooks
    # are the hot path.
    from billbridge.console.views import install as install_console

    install_console(app)
    return app


def _open(receiver: WebhookReceiver, delivery: WebhookRequest, now: float) -> list[Any]:
    """A delivery's events: its signature checked first, then its size and
    nesting; one too large or too deep to parse is kept raw as malformed, and
    answered like any other, so the vendor does not send it again."""
    receiver.verify(delivery, now=now)
    why = limits.refusal(delivery.body)
    return [limits.kept_raw(delivery.body, why)] if why else receiver.events(delivery)

