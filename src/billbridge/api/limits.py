"""Limits checked before any work is done on a request: the body cap, an ASGI
layer that answers 413 on ``Content-Length`` or as soon as the stream passes
the cap, before the body is buffered; and the JSON guard, which measures a
body's size and nesting without parsing it, so nothing deeper or larger than
the hub accepts ever reaches a parser."""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Callable
from itertools import accumulate
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from billbridge.connectors.base import Malformed

MAX_BODY_BYTES = 4 * 1024 * 1024
"""The default body cap (BILLBRIDGE_MAX_BODY_BYTES): nothing larger is read."""
MAX_JSON_BYTES = 1024 * 1024
"""The largest JSON document parsed: a webhook delivery, or one call's events."""
MAX_JSON_DEPTH = 64
"""The deepest nesting parsed; canonical events and vendors' deliveries need under 10."""
KEPT_BYTES = 64 * 1024
"""How much of a delivery too large or too deep to parse is kept with its exception."""
MAX_EVENTS = 1000


def max_body_bytes(env: Any = os.environ) -> int:
    """The body cap from BILLBRIDGE_MAX_BODY_BYTES, or the default."""
    text = env.get("BILLBRIDGE_MAX_BODY_BYTES", "").strip()
    if not text:
        return MAX_BODY_BYTES
    if not text.isdigit() or int(text) < 1024:
        raise ValueError(f"BILLBRIDGE_MAX_BODY_BYTES={text!r} must be a number of bytes, "
                         "at least 1024")
    return int(text)


class _TooLarge(Exception):
    pass


class BodyLimit:
    """413 for a body over ``max_bytes``: from ``Content-Length`` before a byte
    is read, or from the stream the moment it passes the cap (chunked bodies
    declare no length)."""

    def __init__(self, app: ASGIApp, *, max_bytes: int,
                 refuse: Callable[[Request, str], Response]) -> None:
        self.app, self.max_bytes, self.refuse = app, max_bytes, refuse

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        message = f"the body is over the {self.max_bytes:,} bytes this hub accepts"
        declared = dict(scope["headers"]).get(b"content-length", b"").strip()
        if declared and (not declared.isdigit() or int(declared) > self.max_bytes):
            await self.refuse(Request(scope), message)(scope, receive, send)
            return
        seen = 0
        started = False

        async def counted() -> Message:
            nonlocal seen
            received = await receive()
            if received["type"] == "http.request":
                seen += len(received.get("body", b""))
                if seen > self.max_bytes:
                    raise _TooLarge
            return received

        async def watched(sent: Message) -> None:
            nonlocal started
            started = started or sent["type"] == "http.response.start"
            await send(sent)

        try:
            await self.app(scope, counted, watched)
        except _TooLarge:
            if started:
                raise
            await self.refuse(Request(scope), message)(scope, receive, send)


_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"')
_OPENERS, _CLOSERS = b"[{", b"]}"
_STEP = [1 if b in _OPENERS else -1 if b in _CLOSERS else 0 for b in range(256)]
_NOT_BRACKETS = bytes(b for b in range(256) if b not in _OPENERS + _CLOSERS)


def nesting(body: bytes, limit: int = MAX_JSON_DEPTH) -> int:
    """How deep a JSON text nests (brackets inside strings do not count); any
    answer up to ``limit`` may be an upper bound (the count of open brackets)."""
    opened = body.count(b"[") + body.count(b"{")
    if opened <= limit:
        return opened
    brackets = _STRING.sub(b"", body).translate(None, _NOT_BRACKETS)
    return max(accumulate(map(_STEP.__getitem__, brackets)), default=0)


def refusal(body: bytes, *, max_bytes: int = MAX_JSON_BYTES,
            max_depth: int = MAX_JSON_DEPTH) -> str | None:
    """Why a JSON body must not be parsed (too large or too deep), or None.
    A body that is not JSON (an XML delivery) is only measured."""
    if len(body) > max_bytes:
        return f"the body is {len(body):,} bytes, over the {max_bytes:,} a document may have"
    if body.lstrip()[:1] in (b"[", b"{") and nesting(body, max_depth) > max_depth:
        return f"the body nests deeper than the {max_depth} levels a document may have"
    return None


def kept_raw(body: bytes, why: str) -> Malformed:
    """A delivery the hub will not parse, as a malformed event: its first
    KEPT_BYTES and the digest of the whole, so the vendor's redelivery is a
    duplicate and an operator can match it against the vendor's copy."""
    digest = hashlib.sha256(body).hexdigest()
    text = body[:KEPT_BYTES].decode("utf-8", errors="replace")
    if len(body) > KEPT_BYTES:
        text += f"\n… truncated: {len(body):,} bytes in all, sha256 {digest}"
    return Malformed(text, f"{why}; kept unparsed (sha256 {digest})", f"sha256:{digest[:40]}")


class Refused(ValueError):
    """A body refused before it was stored: the HTTP status, a stable code, why."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


def event_list(body: bytes) -> list[dict[str, Any]]:
    """The events in a call to /v1/events: a JSON array of event objects, each
    with its ``type``; Refused saying what is wrong otherwise."""
    why = refusal(body)
    if why is not None:
        status = 413 if len(body) > MAX_JSON_BYTES else 422
        raise Refused(status, "PAYLOAD_TOO_LARGE" if status == 413 else "TOO_DEEP",
                      f"{why}: send fewer events per call")
    try:
        events = json.loads(body)
    except ValueError as exc:
        raise Refused(422, "INVALID_REQUEST", f"the body is not JSON: {exc}") from None
    if not isinstance(events, list) or not all(isinstance(e, dict) for e in events):
        raise Refused(422, "INVALID_REQUEST", "the body must be a JSON array of event objects")
    if len(events) > MAX_EVENTS:
        raise Refused(413, "TOO_MANY_EVENTS", f"at most {MAX_EVENTS} events per call")
    untyped = [n for n, e in enumerate(events) if not isinstance(e.get("type"), str)]
    if untyped:
        raise Refused(422, "INVALID_REQUEST", f"event {untyped[0]} has no `type`: every event "
                      "names its type (GET /v1/schemas lists them)")
    return events
