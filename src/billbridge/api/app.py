"""The hub's HTTP API under /v1: webhook and event ingress, the queues,
exception actions, lineage, governed configuration with maker-checker,
reconciliation and the audit log, one router per OpenAPI tag (api.routes).
One role check guards every route; every error is a JSON problem body with a
stable `code` (api.problems)."""

from __future__ import annotations

import copy
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from functools import partial
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request, Response
from fastapi.openapi.utils import get_openapi

from billbridge.api import docs, limits, problems
from billbridge.api.headers import SecurityHeaders
from billbridge.api.problems import Problem
from billbridge.api.routes import (
    audit,
    billing,
    configuration,
    exceptions,
    health,
    ingress,
    lineage,
    queues,
    reports,
    schemas,
)
from billbridge.api.routes import uploads as files
from billbridge.connectors.base import RateLimit, WebhookReceiver
from billbridge.engine.group_commit import GroupCommitter
from billbridge.engine.hub import Hub
from billbridge.services.oidc import OidcSettings
from billbridge.services.uploads import FileIntake

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


def create_api(hub: Hub, *, webhooks: Mapping[str, WebhookReceiver] | None = None,
               scenarios: Path | None = None, oidc: OidcSettings | None = None,
               webhook_rate: RateLimit | None = None,
               webhook_rates: Mapping[str, RateLimit] | None = None, open_metrics: bool = False,
               secure_cookies: bool | None = None,
               max_body_bytes: int | None = None,
               uploads: Mapping[str, FileIntake] | None = None,
               refuse_page: Callable[[Request, str], Response | None] | None = None
               ) -> FastAPI:
    """The API alone (web.create_app mounts the console on it). ``open_metrics``
    serves /metrics without a token (a scraper on a private network);
    ``secure_cookies`` marks the console's cookie `Secure` even over plain HTTP
    (behind a TLS proxy), else BILLBRIDGE_SECURE_COOKIES says. ``uploads``
    are the file sources that take uploads, by name (the console reads them
    from ``app.state.uploads`` too). ``refuse_page`` answers a body over the
    cap for a page (the console's form) instead of a problem body, when it
    answers at all.
    ``webhook_rates`` is each webhook source's rate at the door, ``webhook_rate``
    (else ``ingress.DOOR_RATE``) that of a source not named there."""
    # Deliveries arriving together are committed to the inbox together.
    committer = GroupCommitter(hub.engine, hub.clock)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        yield
        committer.stop()

    app = FastAPI(title="billbridge", version="0.1.0", responses=ERRORS, lifespan=lifespan,
                  docs_url=None, redoc_url=None,
                  description="Integration hub API. Every /v1 route but webhooks needs a "
                              "bearer token; roles: admin, operator, finance, auditor, ingest.")
    app.state.hub = hub
    app.state.oidc = oidc if oidc is not None else OidcSettings.from_env()
    app.state.secure_cookies = secure_cookies
    app.state.scenarios = scenarios  # the suite a configuration preview runs
    app.state.uploads = dict(uploads or {})
    docs.install(app)
    app.add_middleware(SecurityHeaders)
    problems.install(app)
    app.add_middleware(limits.BodyLimit,
                       max_bytes=max_body_bytes or limits.max_body_bytes(),
                       refuse=lambda request, message: (
                           refuse_page and refuse_page(request, message)) or problems.problem(
                           request, 413, "PAYLOAD_TOO_LARGE", message))
    for router in (health.router(hub, open_metrics=open_metrics), ingress.router(committer),
                   queues.router(hub), exceptions.router(hub), lineage.router(hub),
                   configuration.router(hub, scenarios), reports.router(hub),
                   audit.router(hub), billing.router(hub), schemas.router(),
                   files.router(app.state.uploads)):
        app.include_router(router)
    app.openapi = partial(_openapi, app)  # type: ignore[method-assign]
    # The webhook door first in the table: requests are matched in order, and
    # webhooks are the hot path.
    door = ingress.WebhookDoor(webhooks or {}, committer, webhook_rate or ingress.DOOR_RATE,
                               webhook_rates)
    app.router.routes.insert(0, door.route())
    return app


def _openapi(app: FastAPI) -> dict[str, Any]:
    # Every error answers with the problem body, invalid input too, so document
    # that instead of FastAPI's default validation-error shape.
    if app.openapi_schema is None:
        document = get_openapi(title=app.title, version=app.version,
                               description=app.description, routes=app.routes)
        document["paths"]["/v1/webhooks/{source}"] = copy.deepcopy(WEBHOOK_OPERATION)
        problems.document(document)
        app.openapi_schema = document
    return app.openapi_schema
