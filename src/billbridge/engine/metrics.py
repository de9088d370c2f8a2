"""Prometheus metrics of the hub (exposed at /metrics by the API). Work done
inside ``uncounted()`` (a configuration preview's throwaway hubs) changes none
of them: /metrics counts the live hub only."""

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

from prometheus_client import Counter as _Counter
from prometheus_client import Gauge as _Gauge
from prometheus_client import Histogram as _Histogram

# A context variable, not a flag on the module: the live hub's threads keep
# counting while a preview runs beside them.
_counting: ContextVar[bool] = ContextVar("billbridge_metrics_counting", default=True)


@contextmanager
def uncounted() -> Iterator[None]:
    """Nothing done in this context (this thread, or task) reaches the metrics."""
    token = _counting.set(False)
    try:
        yield
    finally:
        _counting.reset(token)


class Counter(_Counter):
    def inc(self, amount: float = 1, exemplar: dict[str, str] | None = None) -> None:
        if _counting.get():
            super().inc(amount, exemplar)


class Gauge(_Gauge):
    def set(self, value: float) -> None:
        if _counting.get():
            super().set(value)


class Histogram(_Histogram):
    def observe(self, amount: float, exemplar: dict[str, str] | None = None) -> None:
        if _counting.get():
            super().observe(amount, exemplar)


EVENTS_RECEIVED = Counter("billbridge_events_received_total",
                          "Inbound events stored in the inbox", ["source", "type"])
EVENTS_DEDUPLICATED = Counter("billbridge_events_deduplicated_total",
                              "Repeat deliveries counted and dropped", ["source"])
EVENTS_MALFORMED = Counter("billbridge_events_malformed_total",
                           "Inbound payloads that failed validation", ["source"])
EVENTS_PROCESSED = Counter("billbridge_events_processed_total",
                           "Inbox events run through their flow", ["type", "result"])
COMMANDS_ENQUEUED = Counter("billbridge_commands_enqueued_total",
                            "Outbound commands written to the outbox", ["target", "kind"])
DUPLICATES_PREVENTED = Counter("billbridge_duplicates_prevented_total",
                               "Commands whose key was already in the outbox or at the target",
                               ["target"])
POSTINGS_CONFIRMED = Counter("billbridge_postings_confirmed_total",
                             "Commands the target confirmed applied", ["target", "kind"])
TARGET_CALLS = Counter("billbridge_target_calls_total", "Calls made to a target",
                       ["target", "outcome"])
RETRIES = Counter("billbridge_retries_total", "Commands scheduled for another attempt",
                  ["target"])
EXCEPTIONS_OPENED = Counter("billbridge_exceptions_opened_total",
                            "Exceptions opened", ["reason"])
PROCESSING_SECONDS = Histogram("billbridge_processing_seconds",
                               "Time to run one inbox batch through its flows")
DELIVERY_SECONDS = Histogram("billbridge_delivery_seconds", "Time of one target call",
                             ["target"])
CIRCUIT_OPEN = Gauge("billbridge_circuit_open", "1 while a target's circuit is open",
                     ["target"])
COMMANDS_UNROUTED = Counter("billbridge_commands_unrouted_total",
                            "Commands for a role no target plays in this hub", ["role", "kind"])
QUEUE_DEPTH = Gauge("billbridge_queue_depth", "Commands waiting per target", ["target"])
INBOX_WAITING = Gauge("billbridge_inbox_waiting", "Inbox events by waiting state", ["status"])
VENDOR_DRIFT = Counter("billbridge_vendor_drift_total",
                       "Records read whose shape departed from the connector's contract",
                       ["connection", "record_type", "field", "kind"])
