"""Liveness, readiness and the Prometheus metrics."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from billbridge.api.auth import Permission, require
from billbridge.api.problems import ApiError
from billbridge.engine.hub import Hub
from billbridge.services import queues


def router(hub: Hub, *, open_metrics: bool) -> APIRouter:
    """``open_metrics`` serves /metrics without a token."""
    routes = APIRouter()

    @routes.get("/healthz", tags=["health"])
    def healthz() -> dict[str, str]:
        health = queues.health(hub.engine)
        return {"status": health.status, "database": health.database}

    @routes.get("/readyz", tags=["health"])
    def readyz() -> dict[str, Any]:
        version = queues.active_config(hub.engine)
        if not version:
            raise ApiError(503, "NOT_READY", "no configuration is active yet")
        return {"status": "ready", "config_version": version}

    @routes.get("/metrics", tags=["health"], response_class=Response,
                dependencies=[] if open_metrics else [Depends(require(Permission.METRICS))],
                responses={200: {"content": {CONTENT_TYPE_LATEST: {"schema": {"type": "string"}}},
                                 "description": "Prometheus text exposition"}})
    def metrics() -> Response:
        queues.publish_gauges(hub.engine)
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    return routes
