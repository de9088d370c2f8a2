"""Governed configuration: versions, proposals, a preview of a version's
effect, approval by someone other than its maker, and rollback."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field

from billbridge.api.params import MAX_VERSION
from billbridge.api.problems import ApiError
from billbridge.api.routes.common import (
    Approver,
    Cursor,
    Limit,
    Page,
    Proposer,
    Reader,
    VersionNo,
    now,
    page,
)
from billbridge.domain.config import ConfigError
from billbridge.engine.hub import Hub
from billbridge.engine.tokens import Identity
from billbridge.services import config_versions


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


def router(hub: Hub, scenarios: Path | None) -> APIRouter:
    """``scenarios``: the folder of scenario files a preview runs."""
    routes = APIRouter()

    @routes.get("/v1/config/versions", response_model=Page, tags=["configuration"])
    def list_versions(who: Reader, cursor: Cursor = None, limit: Limit = 100) -> Page:
        """Newest first; the cursor is the last version of the previous page."""
        with hub.engine.connect() as conn:
            return page(config_versions.versions_page(conn, cursor=cursor, limit=limit), limit)

    @routes.get("/v1/config/versions/{version}", tags=["configuration"])
    def get_version(version: VersionNo, who: Reader) -> Any:
        with hub.engine.connect() as conn:
            return {"version": version, "document": config_versions.document(conn, version)}

    @routes.post("/v1/config/proposals", status_code=201, tags=["configuration"])
    def propose(body: ProposalBody, who: Proposer) -> Any:
        with _invalid_configuration():
            return _proposed(config_versions.propose(hub.engine, body.document, actor=who.name,
                                                     at=now(), note=body.note))

    @routes.get("/v1/config/versions/{version}/preview", tags=["configuration"])
    def preview(version: VersionNo, who: Reader) -> Any:
        """The postings that would change if this version replaced the active one."""
        suite = sorted(scenarios.glob("*.yaml")) if scenarios else []
        found = config_versions.preview(hub.engine, version, suite)
        return {"version": found.version, "against": found.against,
                "scenarios": found.scenarios, "changes": found.changes}

    @routes.post("/v1/config/versions/{version}/approve", tags=["configuration"])
    def approve(version: VersionNo, who: Approver) -> Any:
        return _decided(hub, version, who, "approve")

    @routes.post("/v1/config/versions/{version}/reject", tags=["configuration"])
    def reject(version: VersionNo, body: RejectBody, who: Approver) -> Any:
        return _decided(hub, version, who, "reject", body.reason)

    @routes.post("/v1/config/rollback", status_code=201, tags=["configuration"])
    def rollback(body: RollbackBody, who: Proposer) -> Any:
        with _invalid_configuration():  # e.g. back to the version that is active
            return _proposed(config_versions.rollback(hub.engine, body.to_version,
                                                      actor=who.name, at=now()))

    return routes


@contextmanager
def _invalid_configuration() -> Iterator[None]:
    try:
        yield
    except ConfigError as exc:
        raise ApiError(422, "INVALID_CONFIGURATION", str(exc)) from None


def _proposed(version: int) -> dict[str, Any]:
    return {"version": version, "status": "proposed"}


def _decided(hub: Hub, version: int, who: Identity, decision: config_versions.Decision,
             reason: str = "") -> dict[str, Any]:
    status = config_versions.decide(hub.engine, version, decision, actor=who.name,
                                    at=now(), reason=reason)
    return {"version": version, "status": status}
