"""The JSON schemas of the canonical events /v1/events accepts."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from billbridge.api.problems import ApiError
from billbridge.api.routes.common import SchemaReader
from billbridge.domain.events import PAYLOADS

SCHEMA_VERSION = "v1"


def router() -> APIRouter:
    routes = APIRouter()

    @routes.get("/v1/schemas", tags=["schemas"])
    def list_schemas(who: SchemaReader) -> Any:
        return {"version": SCHEMA_VERSION,
                "events": {name: f"/v1/schemas/{name}" for name in sorted(PAYLOADS)}}

    @routes.get("/v1/schemas/{event_type}", tags=["schemas"])
    def get_schema(event_type: str, who: SchemaReader) -> Any:
        model = PAYLOADS.get(event_type)
        if model is None:
            raise ApiError(404, "NOT_FOUND", f"no canonical event type {event_type!r}")
        schema = model.model_json_schema()
        schema["$id"] = f"https://billbridge.dev/schemas/{SCHEMA_VERSION}/{event_type}.json"
        return schema

    return routes
