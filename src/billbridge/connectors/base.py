"""What every target connector offers the dispatcher, and the one table that
classifies an HTTP outcome as success, transient or permanent."""

from __future__ import annotations

import email.utils
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any, Protocol
from urllib.parse import urlsplit


class IdempotencyMode(StrEnum):
    """How a target keeps a retried write from applying twice."""

    NATIVE = "native"  # the target deduplicates on our key (external id, request id, header)
    MARKER_LOOKUP = "marker_lookup"  # we write the key as a marker and look it up before creating


@dataclass(frozen=True, slots=True)
class OutboundCommand:
    """One row of the outbox as a target connector sees it."""

    id: int
    target: str
    kind: str
    idempotency_key: str
    aggregate_key: str
    payload: Mapping[str, Any]
    correlation_id: str = ""
    refs: Mapping[str, str] = field(default_factory=dict)
    """This target's own ids for the canonical records the payload names,
    keyed ``"kind:canonical id"`` (e.g. ``"project:GLX-001"`` → ``"1042"``),
    from the hub's cross-reference: how a connector fills a vendor reference
    field (a customer ref on an invoice, a project ref on a time bill)
    without asking the vendor."""

    attempt: int = 1
    """1 on the first send; more on a resend after a fault, when an earlier
    attempt may have applied (a lost acknowledgement) in a batch grouped
    differently. A target whose idempotency is per request, not per record,
    looks for its markers before resending such a command."""

    def ref(self, kind: str, canonical_id: Any) -> str | None:
        return self.refs.get(f"{kind}:{canonical_id}")


class ResultStatus(StrEnum):
    APPLIED = "applied"  # written now, or found already written under the same key
    REJECTED = "rejected"  # the target refused this record: a permanent fault
    RETRY = "retry"  # this record hit a transient fault inside an otherwise good batch


@dataclass(frozen=True, slots=True)
class RecordResult:
    """Per-record outcome of a batch call."""

    idempotency_key: str
    status: ResultStatus
    external_id: str | None = None
    code: str | None = None
    message: str | None = None
    retry_after: float | None = None

    @classmethod
    def of(cls, command: OutboundCommand, status: ResultStatus, external_id: str | None = None,
           code: str | None = None, message: str | None = None,
           retry_after: float | None = None) -> RecordResult:
        """The outcome of ``command``, keyed by its idempotency key."""
        return cls(command.idempotency_key, status, external_id, code, message, retry_after)


@dataclass(frozen=True, slots=True)
class LivePosting:
    """One labour posting that is live at the ERP now (not deleted, voided or
    reversed), as the ERP itself holds it: what reconcile and the scenario
    harness compare with the hub's charges."""

    charge: str  # the canonical time charge it posts (found by marker, external id or reference)
    external_id: str  # the ERP's own id of the posting
    hours: Decimal
    amount: Decimal
    currency: str
    project: str | None = None


class LedgerReader(Protocol):
    """An ERP target that can say which labour postings it holds live."""

    def live_postings(self, charge_ids: Sequence[str] | None = None) -> list[LivePosting]:
        """Live postings, of ``charge_ids`` only when given."""
        ...


class DeliveryError(Exception):
    """A whole call failed; ``transient`` says whether retrying can help."""

    transient: bool = True

    def __init__(self, message: str, *, code: str = "DELIVERY_FAILED",
                 retry_after: float | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.retry_after = retry_after


class TransientError(DeliveryError):
    """Timeouts, dropped connections, 5xx, 429: retry later."""

    transient = True


class PermanentError(DeliveryError):
    """Validation errors, other 4xx, bad credentials: retrying as is cannot help."""

    transient = False


@dataclass(frozen=True, slots=True)
class RateLimit:
    """A target's documented request budget, enforced by the dispatcher's token bucket."""

    requests: float
    per_seconds: float
    burst: int = 1

    @property
    def per_second(self) -> float:
        return self.requests / self.per_seconds


class Limited(Protocol):
    """A vendor client that holds its account's rate limit (its target hands
    it to the dispatcher)."""

    @property
    def rate_limit(self) -> RateLimit: ...


class Target(Protocol):
    """A system the dispatcher delivers outbox commands to.

    A target may also say how many calls it takes at once, as an int
    attribute ``concurrency`` (1 when it says nothing): the dispatchers then
    split its commands into that many lanes by aggregate and send them in
    parallel.

    And it may say which payload fields it looks up in ``refs``, as an
    attribute ``references`` mapping a command kind to those fields (a kind
    it does not name: none). A target that says nothing gets every top-level
    string of the payload looked up: correct, and costly, since a posting's
    own ids, dates and amounts are looked up with the rest."""

    name: str
    max_batch: int
    rate_limit: RateLimit
    idempotency: IdempotencyMode

    def send(self, batch: Sequence[OutboundCommand]) -> list[RecordResult]:
        """Deliver ``batch`` in one call where the vendor allows it.

        Returns one result per command (any order). Raises ``TransientError`` or
        ``PermanentError`` when the call as a whole failed.
        """
        ...


ERP_REFERENCES: Mapping[str, tuple[str, ...]] = {
    "customer.upsert": ("id",),  # the customer written before, to update it
    "project.upsert": ("code", "customer"),  # the project itself, and its customer
    "time_charge.post": ("project",),  # the project (or job) the time is booked to
    "time_charge.reverse": ("charge",),  # the posting it undoes
    "invoice.create": ("project", "customer"),  # whom it bills
}
"""The payload fields an ERP target resolves through ``refs``, by command
kind: the canonical commands' own shape (DOMAIN.md), the same for every ERP
connector."""


class OutcomeKind(StrEnum):
    SUCCESS = "success"
    TRANSIENT = "transient"
    CONFIGURATION = "configuration"
    PERMANENT = "permanent"


@dataclass(frozen=True, slots=True)
class HttpOutcome:
    kind: OutcomeKind
    retry_after: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)


# One table, not scattered ifs: 2xx succeed; 408, 425, 429 and 5xx are worth a
# retry; 401/403 mean the connection is misconfigured; any other 4xx is final.
_TRANSIENT_STATUSES = frozenset({408, 425, 429, 500, 502, 503, 504})


def parse_retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """Seconds to wait from a Retry-After header: delta-seconds or an HTTP date."""
    if value is None or not value.strip():
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


def classify_http(status: int, headers: Mapping[str, str] | None = None) -> HttpOutcome:
    """Classify an HTTP status (and its Retry-After) for the retry policy."""
    retry_after = parse_retry_after((headers or {}).get("retry-after"))
    if 200 <= status < 300:
        return HttpOutcome(OutcomeKind.SUCCESS)
    if status in _TRANSIENT_STATUSES or status >= 500:
        return HttpOutcome(OutcomeKind.TRANSIENT, retry_after)
    if status in (401, 403):
        return HttpOutcome(OutcomeKind.CONFIGURATION)
    return HttpOutcome(OutcomeKind.PERMANENT)


@dataclass(frozen=True, slots=True)
class PollPage:
    """One page of an incremental poll: raw events for the inbox and the cursor
    to resume from once they are stored."""

    events: list[Any]
    cursor: str | None


class Source(Protocol):
    """A system the hub polls for changes.

    A source that reads governed settings (a file source's column map) may
    also have ``configure(configuration)``: the engine hands it the active
    ``domain.config.Configuration`` before each poll."""

    name: str

    def poll(self, cursor: str | None) -> Iterator[PollPage]:
        """Pages of changes since ``cursor`` (None: from the beginning)."""
        ...


class SignatureError(ValueError):
    """A webhook delivery that must not be trusted; the message says why."""


@dataclass(frozen=True, slots=True)
class WebhookRequest:
    method: str
    url: str  # the full URL the vendor called (some vendors sign it)
    headers: Mapping[str, str]  # lower-case names
    body: bytes

    def header(self, name: str) -> str:
        return self.headers.get(name.lower(), "")


class WebhookReceiver(Protocol):
    """A vendor's webhook door: its signature scheme and its body format."""

    def verify(self, request: WebhookRequest, *, now: float) -> None:
        """Raise ``SignatureError`` for an unsigned, forged or stale delivery."""
        ...

    def events(self, request: WebhookRequest) -> list[Any]:
        """Canonical events (or ``Malformed`` items) in a verified delivery.

        A receiver whose vendor sends only ids may fetch the records through
        its client; if it cannot, it raises ``TransientError`` and the hub
        answers 503 so the vendor delivers again. A receiver may also define
        ``acknowledgement() -> (media_type, bytes)`` when its vendor expects a
        particular answer body.
        """
        ...


@dataclass(frozen=True, slots=True)
class Connection:
    """How to reach one account of a vendor: from configuration, with its
    secrets already decrypted by the engine."""

    name: str
    vendor: str
    base_url: str
    credentials: Mapping[str, str] = field(default_factory=dict)
    options: Mapping[str, Any] = field(default_factory=dict)
    keep: Callable[[Mapping[str, str]], None] | None = field(default=None, compare=False)
    """Where a connector hands back credentials the vendor rotated (an OAuth
    refresh token that is good once): the engine seals them into the stored
    connection, so a restart does not come back with a spent token. None for
    a connection from the environment, whose credentials live in memory."""

    def __post_init__(self) -> None:
        # A password in a URL is stored, listed and audited as plain text:
        # credentials belong in ``credentials``, which the engine seals.
        if "@" in urlsplit(self.base_url).netloc:
            raise ValueError(
                f"connection {self.name}: its URL carries a user name or password; give the "
                "URL without them and the credentials as KEY=VALUE lines on stdin to "
                "`billbridge secrets add NAME VENDOR URL --credential -`")

    def keep_credentials(self, changed: Mapping[str, str]) -> None:
        if self.keep is not None:
            self.keep(changed)

    def dispatch_lanes(self, default: int, *, most: int | None = None) -> int:
        """How many calls the dispatchers may have in flight to this
        connection's target at once (its lanes): the ``dispatch_lanes`` option,
        else ``default``; at least one, and never past ``most`` (the vendor's
        own concurrency limit, where it has one)."""
        given = self.options.get("dispatch_lanes")
        try:
            lanes = default if given in (None, "") else int(given)
        except (TypeError, ValueError):
            raise ValueError(f"{self.name}: dispatch_lanes must be a whole number, "
                             f"not {given!r}") from None
        if lanes < 1:
            raise ValueError(f"{self.name}: dispatch_lanes must be at least 1, not {lanes}")
        return lanes if most is None else min(lanes, max(1, most))


@dataclass(frozen=True, slots=True)
class ConnectorSpec:
    """What a vendor's package offers; registered by one line in registry.py."""

    vendor: str
    source: Callable[[Connection], Source] | None = None
    target: Callable[[Connection], Target] | None = None
    webhooks: Callable[[Connection], WebhookReceiver] | None = None


@dataclass(frozen=True, slots=True)
class UnmappedPerson:
    """Time logged by a time-tool user the connection maps to no worker: what
    finance needs to count it as approved hours not priced, and the mapping to
    add (this user, under workers, in this connection)."""

    connection: str
    user: str
    name: str | None
    entry: str  # the canonical id the time entry will have once the user is mapped
    hours: str | None  # a decimal, as text
    approved: bool
    project: str | None = None
    work_date: str | None = None  # ISO date

    @property
    def fix(self) -> str:
        return (f"map user {self.user}{f' ({self.name})' if self.name else ''} to a worker "
                f"under workers in the {self.connection} connection")


@dataclass(frozen=True, slots=True)
class Malformed:
    """A vendor record a mapping could not turn into a canonical event: kept
    with its raw payload and the reason, and opened as an exception. A time
    entry whose only fault is an unmapped user says so in ``unmapped``: the
    hub then counts its hours as leakage (any time source, the same way)."""

    raw: Any
    reason: str
    event_id: str | None = None
    unmapped: UnmappedPerson | None = None
