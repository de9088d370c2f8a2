"""The hub's tables. Inbox, delivery attempts and the audit log are
append-only; records, xref and the queues are state. Every row that belongs to
a piece of work carries its correlation id, so lineage is a set of lookups.

Lease and retry times are integer milliseconds since the epoch: compared on
every poll, they must sort the same on SQLite and PostgreSQL.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Date,
    DateTime,
    Index,
    Integer,
    MetaData,
    SmallInteger,
    String,
    Table,
    Text,
    UniqueConstraint,
)

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "pk": "pk_%(table_name)s",
    }
)

# SQLite only auto-increments an INTEGER PRIMARY KEY; PostgreSQL wants BIGINT.
Id = BigInteger().with_variant(Integer(), "sqlite")
Utc = DateTime(timezone=True)

inbox = Table(
    "inbox",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("source", String(64), nullable=False),
    Column("event_id", String(200), nullable=False),
    Column("event_type", String(64), nullable=False),
    Column("aggregate_key", String(200), nullable=False),
    Column("correlation_id", String(64), nullable=False),
    Column("occurred_at", Utc, nullable=True),
    Column("received_at", Utc, nullable=False),
    Column("payload", Text, nullable=True),  # the canonical event as JSON
    Column("raw", Text, nullable=True),  # the body as received, kept when it was malformed
    # pending → done | parked | failed; parked → pending when its dependency arrives
    Column("status", String(16), nullable=False),
    Column("waiting_on", String(200), nullable=True),
    # set when an operator re-runs the event: a version already applied applies again
    Column("replay", Boolean, nullable=False, default=False),
    Column("duplicates", Integer, nullable=False, default=0),
    Column("attempts", Integer, nullable=False, default=0),
    Column("processed_at", Utc, nullable=True),
    Column("config_version", Integer, nullable=True),
    UniqueConstraint("source", "event_id"),
    Index(None, "aggregate_key", "status", "id"),
    Index(None, "waiting_on"),
    Index(None, "correlation_id"),
    Index(None, "status"),
)

# One row per aggregate with work waiting. A worker leases the row (SKIP LOCKED
# on PostgreSQL), processes the aggregate's events in inbox order, and fences
# each commit on still holding the lease, so order holds across workers.
aggregates = Table(
    "aggregates",
    metadata,
    Column("key", String(200), primary_key=True),
    Column("pending", Integer, nullable=False, default=0),
    Column("lease_owner", String(100), nullable=True),
    Column("lease_until_ms", BigInteger, nullable=False, default=0),
    Index(None, "pending", "lease_until_ms"),
)

records = Table(
    "records",
    metadata,
    Column("kind", String(32), primary_key=True),
    Column("id", String(200), primary_key=True),
    Column("data", Text, nullable=False),
    Column("version", Integer, nullable=False, default=1),
    Column("status", String(32), nullable=True),
    Column("correlation_id", String(64), nullable=False),
    Column("config_version", Integer, nullable=True),
    Column("updated_at", Utc, nullable=False),
    Index(None, "correlation_id"),
    Index(None, "kind", "status"),
)

xref = Table(
    "xref",
    metadata,
    Column("system", String(64), primary_key=True),
    Column("kind", String(32), primary_key=True),
    Column("external_id", String(200), primary_key=True),
    Column("canonical_id", String(200), nullable=False),
    Column("correlation_id", String(64), nullable=False),
    Column("created_at", Utc, nullable=False),
    Index(None, "kind", "canonical_id"),
    Index(None, "system", "canonical_id"),
)

outbox = Table(
    "outbox",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("target", String(64), nullable=False),
    Column("kind", String(64), nullable=False),
    Column("idempotency_key", String(128), nullable=False),
    Column("aggregate_key", String(200), nullable=False),
    Column("payload", Text, nullable=False),
    Column("correlation_id", String(64), nullable=False),
    Column("inbox_id", BigInteger, nullable=True),
    Column("record_kind", String(32), nullable=True),
    Column("record_id", String(200), nullable=True),
    # pending → done | failed (exception open) | superseded (a replay replaced it)
    Column("status", String(16), nullable=False),
    Column("attempts", Integer, nullable=False, default=0),
    Column("next_attempt_ms", BigInteger, nullable=False, default=0),
    Column("depends_on", String(128), nullable=True),
    Column("external_id", String(200), nullable=True),
    Column("last_error", Text, nullable=True),
    Column("created_at", Utc, nullable=False),
    Column("done_at", Utc, nullable=True),
    # The dispatch lane (see dispatch_lanes), fixed when the command is written.
    Column("lane", SmallInteger, nullable=False, default=0, server_default="0"),
    UniqueConstraint("target", "idempotency_key"),
    Index(None, "target", "status", "lane", "id"),
    Index(None, "correlation_id"),
    Index(None, "record_kind", "record_id"),
    Index(None, "target", "record_id"),
)

delivery_attempts = Table(
    "delivery_attempts",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("outbox_id", BigInteger, nullable=False),
    Column("target", String(64), nullable=False),
    Column("batch_id", String(64), nullable=False),
    Column("attempt", Integer, nullable=False),
    Column("owner", String(100), nullable=False),
    Column("started_at", Utc, nullable=False),
    Column("outcome", String(16), nullable=False),
    Column("detail", Text, nullable=True),
    Column("correlation_id", String(64), nullable=False),
    Index(None, "outbox_id"),
    Index(None, "batch_id"),
    # Room on each page for every row's one update (its outcome), so that
    # PostgreSQL makes it heap-only and writes no index entries (0008).
    postgresql_with={"fillfactor": 50},
)

exceptions = Table(
    "exceptions",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("reason", String(40), nullable=False),
    Column("message", Text, nullable=False),
    # open → retried | replayed | dismissed | resolved
    Column("status", String(16), nullable=False),
    Column("stage", String(16), nullable=False),  # inbound | outbound
    Column("inbox_id", BigInteger, nullable=True),
    Column("outbox_id", BigInteger, nullable=True),
    Column("record_kind", String(32), nullable=True),
    Column("record_id", String(200), nullable=True),
    Column("raw", Text, nullable=True),
    Column("correlation_id", String(64), nullable=False),
    Column("config_version", Integer, nullable=True),
    Column("created_at", Utc, nullable=False),
    Column("updated_at", Utc, nullable=False),
    Column("resolution", Text, nullable=True),
    Column("resolved_by", String(100), nullable=True),
    Index(None, "status", "reason"),
    Index(None, "correlation_id"),
    Index(None, "inbox_id"),
    Index(None, "outbox_id"),
)

audit_log = Table(
    "audit_log",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("at", Utc, nullable=False),
    Column("actor", String(100), nullable=False),
    Column("action", String(64), nullable=False),
    Column("subject", String(200), nullable=False),
    Column("detail", Text, nullable=False),
    Column("correlation_id", String(64), nullable=True),
    Column("prev_hash", String(64), nullable=False),
    Column("hash", String(64), nullable=False),
)

config_versions = Table(
    "config_versions",
    metadata,
    Column("version", Integer, primary_key=True, autoincrement=False),
    Column("document", Text, nullable=False),
    Column("digest", String(64), nullable=False),
    Column("status", String(16), nullable=False),  # proposed | active | superseded | rejected
    Column("proposed_by", String(100), nullable=False),
    Column("approved_by", String(100), nullable=True),
    Column("note", Text, nullable=True),
    Column("created_at", Utc, nullable=False),
    Column("activated_at", Utc, nullable=True),
)

# What every dispatcher of a target shares: its circuit breaker, and the
# pacing of its calls (the vendor's rate limit is per account, not per
# process): ``paced_until_us`` is the theoretical arrival time of the next
# call (GCRA).
target_leases = Table(
    "target_leases",
    metadata,
    Column("target", String(64), primary_key=True),
    Column("circuit", String(16), nullable=False, default="closed"),
    Column("circuit_until_ms", BigInteger, nullable=False, default=0),
    Column("consecutive_failures", Integer, nullable=False, default=0),
    Column("paced_until_us", BigInteger, nullable=False, default=0, server_default="0"),
)

# A target's commands are split into lanes by aggregate (as many as the vendor
# allows calls at once); one dispatcher at a time holds a lane, for one round
# of claim, calls and settlement, so each aggregate's commands go in order
# while the lanes go in parallel.
dispatch_lanes = Table(
    "dispatch_lanes",
    metadata,
    Column("target", String(64), primary_key=True),
    Column("lane", SmallInteger, primary_key=True, autoincrement=False),
    Column("lease_owner", String(100), nullable=True),
    Column("lease_until_ms", BigInteger, nullable=False, default=0),
)

cursors = Table(
    "cursors",
    metadata,
    Column("source", String(64), primary_key=True),
    Column("stream", String(64), primary_key=True),
    Column("value", Text, nullable=False),
    Column("updated_at", Utc, nullable=False),
)


# API tokens: only a hash is stored; the token itself is shown once.
api_tokens = Table(
    "api_tokens",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("name", String(100), nullable=False),
    Column("role", String(16), nullable=False),
    Column("token_hash", String(64), nullable=False, unique=True),
    Column("prefix", String(16), nullable=False),
    Column("created_by", String(100), nullable=False),
    Column("created_at", Utc, nullable=False),
    Column("expires_at", Utc, nullable=False),
    Column("revoked_at", Utc, nullable=True),
    Column("last_used_at", Utc, nullable=True),
    # What a token may submit to /v1/events (JSON arrays); None: no events at all.
    Column("sources", Text, nullable=True),
    Column("event_types", Text, nullable=True),
)

# Console sessions: the browser holds a random id, the store only its hash.
# A session ends when it expires, when it is logged out (revoked) or when the
# API token it was opened with stops being valid.
console_sessions = Table(
    "console_sessions",
    metadata,
    Column("id_hash", String(64), primary_key=True),
    Column("name", String(200), nullable=False),
    Column("role", String(16), nullable=False),
    Column("token_id", Id, nullable=True),  # None for an OIDC login
    Column("created_at", Utc, nullable=False),
    Column("expires_at", Utc, nullable=False),
    Column("revoked_at", Utc, nullable=True),
)

# Connections to vendor accounts; credentials are encrypted at rest (Fernet).
connections = Table(
    "connections",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("vendor", String(32), nullable=False),
    Column("base_url", Text, nullable=False),
    Column("credentials", Text, nullable=False),  # a Fernet token, never plain text
    Column("options", Text, nullable=False),
    Column("key_id", String(16), nullable=False),
    Column("updated_at", Utc, nullable=False),
)

# Alerts that are firing now: an alert posts when its row appears, not again
# while it stays, and clears when the condition no longer holds.
alerts_firing = Table(
    "alerts_firing",
    metadata,
    Column("key", String(100), primary_key=True),
    Column("message", Text, nullable=False),
    Column("since", Utc, nullable=False),
)

# Vendor drift per connection, record type, field and kind: how often, first
# and last seen, and one record as read (the latest), for the console page.
vendor_drift = Table(
    "vendor_drift",
    metadata,
    Column("connection", String(100), primary_key=True),
    Column("record_type", String(100), primary_key=True),
    Column("field", String(200), primary_key=True),
    Column("kind", String(30), primary_key=True),
    Column("count", BigInteger, nullable=False),
    Column("expected", String(30), nullable=False),
    Column("seen", String(30), nullable=False),
    Column("api_version", String(30), nullable=False),
    Column("first_seen", Utc, nullable=False),
    Column("last_seen", Utc, nullable=False),
    Column("sample", Text, nullable=False),
)

# A connection's reviewed baseline (`billbridge contracts record`): the shape
# of a sample read from the vendor, accepted into its contract.
vendor_baselines = Table(
    "vendor_baselines",
    metadata,
    Column("connection", String(100), primary_key=True),
    Column("api_version", String(30), nullable=False),
    Column("shape", Text, nullable=False),
    Column("recorded_by", String(200), nullable=False),
    Column("recorded_at", Utc, nullable=False),
)

# One row per time charge with its figures as columns, kept in the worker's
# transaction, so dashboards aggregate in SQL instead of decoding records.
# Quantities are integers in ten-thousandths: exact for every currency's
# minor unit and for hours, and summed exactly by any database.
charge_facts = Table(
    "charge_facts",
    metadata,
    Column("id", String(200), primary_key=True),
    Column("time_entry", String(200), nullable=False),
    Column("project", String(200), nullable=False),
    Column("worker", String(200), nullable=False),
    Column("work_date", Date, nullable=False),
    Column("hours_e4", BigInteger, nullable=False),
    Column("amount_e4", BigInteger, nullable=False),
    Column("currency", String(3), nullable=False),
    Column("billable", Boolean, nullable=False),
    Column("status", String(16), nullable=False),
    Column("config_version", Integer, nullable=True),
    Index(None, "status", "project"),
)
