"""Reason codes: why a record is parked or sits in the exception queue."""

from enum import StrEnum


class ReasonCode(StrEnum):
    # Billing rules (DOMAIN.md), checked in this order for time entries.
    PROJECT_UNKNOWN = "PROJECT_UNKNOWN"  # parked, not failed
    PROJECT_NOT_ACTIVE = "PROJECT_NOT_ACTIVE"
    TASK_UNKNOWN = "TASK_UNKNOWN"
    OUTSIDE_CONTRACT_PERIOD = "OUTSIDE_CONTRACT_PERIOD"
    NO_RATE = "NO_RATE"
    BUDGET_EXCEEDED = "BUDGET_EXCEEDED"
    PERIOD_LOCKED = "PERIOD_LOCKED"
    INVOICED_CHANGE = "INVOICED_CHANGE"
    NO_TAX_RULE = "NO_TAX_RULE"
    NO_FX_RATE = "NO_FX_RATE"
    # Engine and connector faults.
    MALFORMED_PAYLOAD = "MALFORMED_PAYLOAD"
    UNKNOWN_EVENT_TYPE = "UNKNOWN_EVENT_TYPE"
    SOURCE_CONFLICT = "SOURCE_CONFLICT"
    HANDLER_ERROR = "HANDLER_ERROR"
    TARGET_REJECTED = "TARGET_REJECTED"
    TARGET_AUTH = "TARGET_AUTH"
    RETRIES_EXHAUSTED = "RETRIES_EXHAUSTED"


BILLING_RULE_ORDER: tuple[ReasonCode, ...] = (
    ReasonCode.PROJECT_UNKNOWN,
    ReasonCode.PROJECT_NOT_ACTIVE,
    ReasonCode.TASK_UNKNOWN,
    ReasonCode.OUTSIDE_CONTRACT_PERIOD,
    ReasonCode.NO_RATE,
    ReasonCode.BUDGET_EXCEEDED,
    ReasonCode.PERIOD_LOCKED,
)
"""The order DOMAIN.md checks a time entry in; the first failure is its reason."""
