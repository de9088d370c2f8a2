"""Emulators of the generic vendor: an ERP-like ledger that records every
effect it applies, and a time source that serves pages and sends webhooks."""

from __future__ import annotations

import bisect
import itertools
import json
import time
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from billbridge.connectors.generic.webhooks import sign
from billbridge.emulation.server import EmulatorServer, Request, Response, error


def _now_iso() -> str:
    return datetime.now(UTC).isoformat()


def _live(effect: dict[str, Any]) -> bool:
    return not effect.get("deleted") and "reversed_by" not in effect


class LedgerEmulator(EmulatorServer):
    """``POST /v1/postings:batch`` applies items; in ``native`` idempotency a
    repeated key answers ``duplicate`` and applies nothing; in ``none`` a repeat
    makes a twin, and the key is kept as a searchable ``marker``.

    Like a ledger, a ``time_charge.reverse`` cancels the posting it names
    (``data.posting``: its key or id) or else the latest live posting of
    ``data.charge``; ``DELETE /v1/postings/{id}`` removes a posting as a
    bookkeeper would by hand. ``GET /v1/postings?kind=…&live=true&record=…``
    lists what is left, ``limit`` at a time after the ``after`` cursor."""

    MAX_PAGE = 1000

    def __init__(self, *, token: str | None = "ledger-token", idempotency: str = "native",
                 max_batch: int = 100, latency: float = 0.0, port: int = 0) -> None:
        super().__init__(port=port, token=token)
        if idempotency not in ("native", "none"):
            raise ValueError("idempotency must be 'native' or 'none'")
        self.idempotency = idempotency
        self.max_batch = max_batch
        self.latency = latency
        self.calls = 0  # batch calls received, for benchmarks
        self.applied: Counter[str] = Counter()  # effects applied by kind, for benchmarks
        self.reject_if: Callable[[dict[str, Any]], str | None] = lambda item: None
        self._reject_rules: list[tuple[str, Any]] = []
        self.reset()
        self.route("POST", "/v1/postings:batch", self._batch)
        self.route("GET", "/v1/postings", self._list)
        self.route("DELETE", "/v1/postings/{id}", self._delete_route)
        self.route("GET", "/_emulator/effects", lambda r: Response(200, self.effects))
        self.route("POST", "/_emulator/reset", self._reset_route)
        self.route("POST", "/_emulator/reject", self._reject_route)

    def reset(self) -> None:
        with self.lock:
            self._effects: list[dict[str, Any]] = []
            self._by_key: dict[str, str] = {}
            # charge → its live postings, oldest first: a reversal finds its posting at once
            self._live: dict[str, list[dict[str, Any]]] = {}
            self._ids = itertools.count(1)
            self._reject_rules = []
            self.applied = Counter()

    @property
    def effects(self) -> list[dict[str, Any]]:
        with self.lock:
            return [dict(e) for e in self._effects]

    def postings(self, kind: str) -> list[dict[str, Any]]:
        """The applied effects of one kind, oldest first, as stored (read them,
        do not change them): a benchmark reads a million without copying each."""
        with self.lock:
            return [e for e in self._effects if e["kind"] == kind]

    def _rejection(self, item: dict[str, Any]) -> str | None:
        data = item.get("data") or {}
        for name, value in self._reject_rules:
            if data.get(name) == value:
                return f"{name} {value!r} is not accepted"
        return self.reject_if(item)

    def _batch(self, request: Request) -> Response:
        self.calls += 1
        if self.latency:
            time.sleep(self.latency)
        try:
            body = request.json()
            items = body["items"]
            if not isinstance(items, list):
                raise TypeError("items must be a list")
        except (ValueError, KeyError, TypeError) as exc:
            return error(400, "BAD_REQUEST", f"body must be {{'items': [...]}}: {exc}")
        if len(items) > self.max_batch:
            return error(413, "BATCH_TOO_LARGE",
                         f"{len(items)} items; at most {self.max_batch} per call")
        with self.lock:
            return Response(200, {"results": [self._apply(item) for item in items]})

    def _apply(self, item: Any) -> dict[str, Any]:
        if not isinstance(item, dict) or not isinstance(item.get("idempotency_key"), str) \
                or not isinstance(item.get("data"), dict) or not item.get("kind"):
            return {"idempotency_key": item.get("idempotency_key") if isinstance(item, dict)
                    else None, "status": "rejected",
                    "error": {"code": "VALIDATION",
                              "message": "each item needs idempotency_key, kind and data"}}
        key = item["idempotency_key"]
        problem = self._rejection(item)
        if problem:
            return {"idempotency_key": key, "status": "rejected",
                    "error": {"code": "VALIDATION", "message": problem}}
        if self.idempotency == "native" and key in self._by_key:
            return {"idempotency_key": key, "status": "duplicate", "id": self._by_key[key]}
        undone = self._reversed_posting(item["data"]) \
            if item["kind"] == "time_charge.reverse" else None
        if item["kind"] == "time_charge.reverse" and undone is None:
            return {"idempotency_key": key, "status": "rejected",
                    "error": {"code": "NOT_LIVE", "message": "no live posting "
                              f"{item['data'].get('posting') or ''} of charge "
                              f"{item['data'].get('charge')} to reverse"}}
        posting_id = f"L-{next(self._ids):06d}"
        self._by_key.setdefault(key, posting_id)
        self.applied[item["kind"]] += 1
        effect = {"seq": len(self._effects) + 1, "id": posting_id, "idempotency_key": key,
                  "marker": key, "kind": item["kind"], "aggregate": item.get("aggregate"),
                  "data": item["data"], "applied_at": _now_iso()}
        if item["kind"] == "time_charge.post":
            self._live.setdefault(str(item["data"].get("id")), []).append(effect)
        elif undone is not None:
            undone["reversed_by"] = posting_id
            self._live[str(item["data"].get("charge"))].remove(undone)
        self._effects.append(effect)
        return {"idempotency_key": key, "status": "created", "id": posting_id}

    def _reversed_posting(self, data: dict[str, Any]) -> dict[str, Any] | None:
        """The live posting a reversal cancels (the caller holds the lock)."""
        live = self._live.get(str(data.get("charge")), [])
        named = data.get("posting")
        if named:
            return next((e for e in live if named in (e["id"], e["idempotency_key"])), None)
        return live[-1] if live else None

    def delete(self, posting_id: str) -> bool:
        """Delete a posting behind the hub's back; False when there is none."""
        with self.lock:
            found = next((e for e in self._effects if e["id"] == posting_id), None)
            if found is None or found.get("deleted"):
                return False
            found["deleted"] = True
            live = self._live.get(str(found["data"].get("id")), [])
            live[:] = [e for e in live if e is not found]
            return True

    def _delete_route(self, request: Request) -> Response:
        if not self.delete(request.params["id"]):
            return error(404, "NOT_FOUND", f"no posting {request.params['id']}")
        return Response(204, None)

    def _list(self, request: Request) -> Response:
        marker, aggregate = request.arg("marker"), request.arg("aggregate")
        kind, live = request.arg("kind"), request.arg("live") == "true"
        records = set(request.query.get("record") or ())
        try:
            after = int(request.arg("after", "0") or 0)
            limit = int(request.arg("limit", str(self.MAX_PAGE)) or self.MAX_PAGE)
        except ValueError:
            return error(422, "INVALID_PARAMETER", "after and limit must be integers")
        if not 1 <= limit <= self.MAX_PAGE:
            return error(422, "INVALID_PARAMETER", f"limit must be 1 to {self.MAX_PAGE}")
        with self.lock:
            found = [dict(e) for e in self._effects[after:]
                     if (marker is None or e["marker"] == marker)
                     and (aggregate is None or e["aggregate"] == aggregate)
                     and (kind is None or e["kind"] == kind)
                     and (not live or _live(e))
                     and (not records or e["data"].get("id") in records)]
        page = found[:limit]
        more = len(found) > limit
        return Response(200, {"postings": page,
                              "next_after": page[-1]["seq"] if more else None})

    def _reset_route(self, _request: Request) -> Response:
        self.reset()
        return Response(200, {"reset": True})

    def _reject_route(self, request: Request) -> Response:
        body = request.json() or {}
        with self.lock:
            self._reject_rules.append((str(body["field"]), body["equals"]))
        return Response(200, {"rules": len(self._reject_rules)})


class TimeSourceEmulator(EmulatorServer):
    """Time entries served by ``updated_since`` (inclusive) in pages ordered by
    (updated_at, id), and pushed to a hub as signed webhooks.

    Entries are kept encoded and in page order, so a page costs the same with
    ten entries stored as with a million (month-end benchmarks poll that many)."""

    MAX_PER_PAGE = 2000

    def __init__(self, *, port: int = 0, token: str | None = None) -> None:
        super().__init__(port=port, token=token)
        self._entries: dict[str, bytes] = {}  # id → the entry as served (JSON)
        self._order: list[tuple[datetime, str]] = []  # (updated_at, id), sorted
        self._clock = datetime(2026, 3, 1, tzinfo=UTC)
        self.route("GET", "/v1/time_entries", self._page)
        self.route("POST", "/_emulator/time_entries", self._admin_upsert)

    def _tick(self) -> str:
        # Its own clock: strictly increasing, so tests are repeatable.
        self._clock = max(self._clock + timedelta(microseconds=1), datetime.now(UTC))
        return self._clock.isoformat()

    def upsert(self, entry: dict[str, Any], *, updated_at: str | None = None) -> dict[str, Any]:
        with self.lock:
            entry_id = str(entry["id"])
            stored = self._entries.get(entry_id)
            previous = json.loads(stored) if stored is not None else None
            if previous is not None:
                del self._order[bisect.bisect_left(
                    self._order, (datetime.fromisoformat(previous["updated_at"]), entry_id))]
            record = {**(previous or {}), **entry, "id": entry_id,
                      "version": (previous["version"] + 1) if previous else 1,
                      "updated_at": updated_at or self._tick()}
            self._entries[entry_id] = json.dumps(record, default=str).encode()
            bisect.insort(self._order, (datetime.fromisoformat(record["updated_at"]), entry_id))
            return record

    def delete(self, entry_id: str) -> None:
        with self.lock:
            stored = self._entries.pop(entry_id, None)
            if stored is not None:
                self._order.remove((datetime.fromisoformat(json.loads(stored)["updated_at"]),
                                    entry_id))

    def entries(self) -> list[dict[str, Any]]:
        with self.lock:
            return [json.loads(self._entries[entry_id]) for _, entry_id in self._order]

    def _page(self, request: Request) -> Response:
        try:
            page = int(request.arg("page", "1") or 1)
            per_page = int(request.arg("per_page", "100") or 100)
        except ValueError:
            return error(422, "INVALID_PARAMETER", "page and per_page must be integers")
        if not 1 <= per_page <= self.MAX_PER_PAGE or page < 1:
            return error(422, "INVALID_PARAMETER",
                         f"per_page must be 1 to {self.MAX_PER_PAGE} and page at least 1")
        since = request.arg("updated_since")
        first = 0
        with self.lock:
            if since:
                try:
                    boundary = datetime.fromisoformat(since)
                except ValueError:
                    return error(422, "INVALID_PARAMETER",
                                 f"updated_since {since!r} is not ISO 8601")
                first = bisect.bisect_left(self._order, (boundary, ""))
            total = len(self._order) - first
            start = first + (page - 1) * per_page
            chunk = [self._entries[entry_id]
                     for _, entry_id in self._order[start:start + per_page]]
        total_pages = max(1, -(-total // per_page))
        tail = json.dumps({"page": page, "per_page": per_page, "total_pages": total_pages,
                           "total_entries": total,
                           "next_page": page + 1 if page < total_pages else None})
        return Response(200, b'{"time_entries":[' + b",".join(chunk) + b"]," +
                        tail[1:].encode())

    def _admin_upsert(self, request: Request) -> Response:
        body = request.json()
        items = body if isinstance(body, list) else [body]
        return Response(200, {"time_entries": [self.upsert(item) for item in items]})

    def send_webhook(self, url: str, entry_ids: list[str] | None = None, *, secret: str,
                     duplicate: bool = False, per_delivery: int = 1) -> list[int]:
        """POST signed webhooks: one per entry, or up to ``per_delivery`` entries
        in each (as vendors that batch their notifications do); each delivery
        twice with ``duplicate``."""
        with self.lock:
            chosen = [json.loads(self._entries[i]) for i in (entry_ids or list(self._entries))]
        notes = [{"event_id": f"{entry['id']}:v{entry['version']}",
                  "event": "time_entry.upserted", "occurred_at": entry["updated_at"],
                  "time_entry": entry} for entry in chosen]
        statuses = []
        with httpx.Client(timeout=10) as client:
            for start in range(0, len(notes), per_delivery):
                group = notes[start:start + per_delivery]
                body = httpx.Request("POST", url, json=group[0] if per_delivery == 1
                                     else {"events": group}).content
                for _ in range(2 if duplicate else 1):
                    stamp = str(int(time.time()))
                    response = client.post(url, content=body, headers={
                        "Content-Type": "application/json", "X-Generic-Timestamp": stamp,
                        "X-Generic-Signature": sign(secret, stamp, body)})
                    statuses.append(response.status_code)
        return statuses
