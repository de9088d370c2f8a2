"""Every error the HTTP API answers is one JSON problem body (RFC 9457):
``type``, ``title``, ``status``, ``detail``, the hub's stable ``code``, and the
correlation id (also in the ``x-correlation-id`` header). One set of
exception handlers, installed once, builds it for every route."""

from __future__ import annotations

import traceback
import uuid
from collections.abc import Mapping
from http import HTTPStatus
from typing import Any

import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from billbridge.errors import (
    BillbridgeError,
    Conflict,
    Forbidden,
    Invalid,
    NotFound,
    Unauthenticated,
    Unavailable,
)

log = structlog.get_logger("billbridge.api")

MEDIA_TYPE = "application/problem+json"
TYPE_BASE = "https://billbridge.dev/problems/"
STATUS: tuple[tuple[type[BillbridgeError], int], ...] = (
    (Unauthenticated, 401), (Forbidden, 403), (NotFound, 404), (Conflict, 409), (Invalid, 422),
    (Unavailable, 503))
"""The HTTP status of each kind of BillbridgeError, most specific first."""
_HTTP_CODES = {400: "BAD_REQUEST", 404: "NOT_FOUND", 405: "METHOD_NOT_ALLOWED",
               413: "PAYLOAD_TOO_LARGE", 415: "UNSUPPORTED_MEDIA_TYPE"}


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str,
                 headers: Mapping[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message
        self.headers = dict(headers or {})


class Problem(BaseModel):
    type: str = Field(description="a URI naming the kind of problem: "
                                  f"{TYPE_BASE}<code in lower case, dashes for underscores>")
    title: str = Field(description="the HTTP status' phrase")
    status: int = Field(description="the HTTP status, repeated")
    detail: str = Field(description="what was wrong, with which thing, and what to do")
    code: str = Field(description="stable, machine-readable")
    message: str = Field(description="the same text as `detail`")
    correlation_id: str


def status_of(exc: BillbridgeError) -> int:
    return next((status for kind, status in STATUS if isinstance(exc, kind)), 400)


def problem_type(code: str) -> str:
    return TYPE_BASE + code.lower().replace("_", "-")


def problem(request: Request, status: int, code: str, detail: str,
            headers: Mapping[str, str] | None = None) -> JSONResponse:
    correlation = request.headers.get("x-correlation-id") or uuid.uuid4().hex
    body = {"type": problem_type(code), "title": HTTPStatus(status).phrase, "status": status,
            "detail": detail, "code": code, "message": detail, "correlation_id": correlation}
    return JSONResponse(body, status_code=status, media_type=MEDIA_TYPE,
                        headers={**(headers or {}), "x-correlation-id": correlation})


def install(app: FastAPI) -> None:
    """Answer every error, expected or not, with the problem body."""

    @app.exception_handler(ApiError)
    async def _api(request: Request, exc: ApiError) -> JSONResponse:
        return problem(request, exc.status, exc.code, exc.message, exc.headers)

    @app.exception_handler(BillbridgeError)
    async def _refused(request: Request, exc: BillbridgeError) -> JSONResponse:
        return problem(request, status_of(exc), exc.code, exc.message)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        # The router's own answers (404, and 405 with its Allow header).
        detail = str(exc.detail)
        if exc.status_code == 404 and detail == "Not Found":
            detail = f"no route is {request.url.path!r}; /openapi.json lists them"
        elif exc.status_code == 405 and exc.headers and "Allow" in exc.headers:
            detail = f"{request.method} is not allowed here; use {exc.headers['Allow']}"
        return problem(request, exc.status_code, _HTTP_CODES.get(exc.status_code, "HTTP_ERROR"),
                       detail, exc.headers)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}"
                             for e in exc.errors())
        return problem(request, 422, "INVALID_REQUEST", problems[:2000])

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        # A fault of the hub: the caller gets the correlation id to quote, the
        # log gets the traceback under it.
        answer = problem(request, 500, "INTERNAL_ERROR",
                         "the hub failed while answering this request; quote the "
                         "correlation id to its operator, whose log holds the cause")
        # The formatted traceback, not exc_info: some renderers print frames'
        # locals, and those hold the caller's bearer token.
        log.error("request failed", method=request.method, path=request.url.path,
                  correlation_id=answer.headers["x-correlation-id"], error=repr(exc),
                  traceback="".join(traceback.format_exception(exc)))
        return answer


def document(openapi: dict[str, Any]) -> None:
    """Describe every error response of an OpenAPI document as the problem body."""
    content = {MEDIA_TYPE: {"schema": {"$ref": "#/components/schemas/Problem"}}}
    for operations in openapi.get("paths", {}).values():
        for operation in operations.values():
            for status, response in operation.get("responses", {}).items():
                if status[0] in "45":
                    response["content"] = content
                    if status == "422":
                        response["description"] = "invalid input"
    schemas = openapi.setdefault("components", {}).setdefault("schemas", {})
    schemas["Problem"] = Problem.model_json_schema()
    schemas.pop("HTTPValidationError", None)
    schemas.pop("ValidationError", None)
