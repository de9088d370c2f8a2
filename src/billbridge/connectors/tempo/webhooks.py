"""The Tempo webhook door: Jira Cloud's worklog webhooks.

Tempo v4 has no webhook API of its own (unverified), but every Tempo worklog
is a Jira worklog, and Jira sends ``worklog_created``, ``worklog_updated`` and
``worklog_deleted``. An admin webhook registered with a secret is signed
WebSub-style: ``X-Hub-Signature: sha256=<hex HMAC-SHA256(secret, raw body)>``
(docs/connectors/tempo.md, "Sources"). The signature covers no time of its own, so the
replay window is read from the signed body's ``timestamp`` (epoch
milliseconds): a delivery older (or newer) than ``tolerance`` seconds is
refused. Webhooks of Connect or OAuth apps are not signed, and are refused.

Nothing in a delivery is trusted but the Jira worklog id: the worklog is read
again from Tempo (``GET /worklogs/jira/{id}``) under its author's timesheet
approval, and a deletion counts only when Tempo answers 404. The hub calls
``events`` off its event loop (``api/routes/ingress.py``), so these reads
block no other delivery.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from billbridge.connectors.base import Malformed, SignatureError, WebhookRequest
from billbridge.connectors.contracts import ContractWatch, name_drift
from billbridge.connectors.http import loads
from billbridge.connectors.signing import TOLERANCE_SECONDS, SecretReceiver
from billbridge.connectors.tempo.client import TempoClient
from billbridge.connectors.tempo.contract import CONTRACT
from billbridge.connectors.tempo.mapping import (
    MappingConfig,
    author_of,
    deleted_event,
    unmapped_issue,
    worklog_event,
)

SIGNATURE_HEADER = "X-Hub-Signature"
WORKLOG_EVENTS = frozenset({"worklog_created", "worklog_updated", "worklog_deleted"})


def sign(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def _body(raw: bytes) -> Mapping[str, Any] | None:
    try:
        body = loads(raw)
    except ValueError:
        return None
    return body if isinstance(body, dict) else None


class TempoWebhooks(SecretReceiver[TempoClient, MappingConfig]):
    def __init__(self, secret: str, client: TempoClient, *,
                 config: MappingConfig | None = None,
                 tolerance: float = TOLERANCE_SECONDS) -> None:
        super().__init__(secret, client, config or MappingConfig(), tolerance)
        self.contracts = ContractWatch(CONTRACT)

    def verify(self, request: WebhookRequest, *, now: float) -> None:
        if not self.secret:
            raise SignatureError("no webhook secret is configured for this source: register "
                                 "the Jira webhook with a secret and give it here")
        signature = request.header(SIGNATURE_HEADER)
        if not signature:
            raise SignatureError(f"the delivery is not signed ({SIGNATURE_HEADER} missing)")
        if not hmac.compare_digest(sign(self.secret, request.body), signature):
            raise SignatureError("the signature does not match the body")
        sent = (_body(request.body) or {}).get("timestamp")
        if isinstance(sent, bool) or not isinstance(sent, int):
            raise SignatureError("the signed body carries no timestamp (epoch milliseconds)")
        if abs(now - sent / 1000) > self.tolerance:
            raise SignatureError(f"the delivery is stale: sent {now - sent / 1000:.0f} s ago, "
                                 f"more than the {self.tolerance:.0f} s allowed")

    def events(self, request: WebhookRequest) -> list[Any]:
        body = _body(request.body)
        worklog = body.get("worklog") if body else None
        if body is None or not isinstance(worklog, dict) or not worklog.get("id"):
            return [Malformed(request.body.decode(errors="replace"),
                              "Jira webhook delivery is not a worklog event")]
        kind, jira_id = body.get("webhookEvent"), str(worklog["id"])
        if kind not in WORKLOG_EVENTS:
            return []  # an issue or project event the webhook also sends: not time
        found = self.client.jira_worklog(jira_id)
        if found is None:
            # Gone from Tempo: deleted. A create Tempo has not seen yet is read by the poll.
            if kind != "worklog_deleted":
                return []
            at = datetime.fromtimestamp(int(body.get("timestamp") or time.time() * 1000) / 1000,
                                        UTC)
            return [deleted_event(jira_id, None, at=at, config=self.config)]
        author, day = author_of(found), found.get("startDate")
        drift = self.contracts.read("worklog", found)
        approval = self.client.approval(author, str(day)) if author and day else None
        if approval is not None:
            self.contracts.read("approval", approval)
        issue = unmapped_issue(found, self.config)
        key = self.client.issue_key(issue, {}) if issue else None
        return [name_drift(worklog_event(found, approval, self.config, key), drift)]
