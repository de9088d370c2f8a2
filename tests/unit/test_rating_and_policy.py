import random
from datetime import date
from decimal import Decimal

import pytest

from billbridge.connectors.base import OutcomeKind, RateLimit, classify_http, parse_retry_after
from billbridge.domain.config import ConfigError, load_configuration
from billbridge.domain.rating import rate_for
from billbridge.engine.clock import ManualClock
from billbridge.engine.policy import CircuitBreaker, CircuitState, RetryPolicy, TokenBucket

CONFIG = {
    "legal_entities": [{"code": "US01", "name": "Acme", "country": "US",
                        "functional_currency": "USD"}],
    "workers": [{"id": "w-alice", "name": "Alice", "role": "consultant", "legal_entity": "US01",
                 "cost_rate": "80", "currency": "USD"},
                {"id": "w-bob", "name": "Bob", "role": "consultant", "legal_entity": "US01",
                 "cost_rate": "70", "currency": "USD"}],
    "rate_cards": [
        {"id": "rc", "version": 1, "currency": "USD", "effective_from": "2026-01-01",
         "effective_to": "2026-03-31", "rates": {"consultant": "150"},
         "worker_overrides": {"w-alice": "175"}},
        {"id": "rc", "version": 2, "currency": "USD", "effective_from": "2026-04-01",
         "rates": {"consultant": "160"}},
    ],
}


def test_worker_override_beats_role_rate() -> None:
    rate = rate_for(load_configuration(CONFIG), "rc", "w-alice", date(2026, 3, 2))
    assert rate is not None and rate.hourly == Decimal("175")


def test_rate_in_force_on_work_date_not_posting_date() -> None:
    config = load_configuration(CONFIG)
    march = rate_for(config, "rc", "w-bob", date(2026, 3, 31))
    april = rate_for(config, "rc", "w-bob", date(2026, 4, 1))
    assert march is not None and march.hourly == Decimal("150")
    assert april is not None and april.hourly == Decimal("160") and april.card.version == 2


def test_no_rate_before_any_card_is_in_force() -> None:
    assert rate_for(load_configuration(CONFIG), "rc", "w-bob", date(2025, 12, 31)) is None


def test_configuration_errors_name_every_problem() -> None:
    bad = {**CONFIG, "workers": [{**CONFIG["workers"][0], "legal_entity": "GB01"}]}
    with pytest.raises(ConfigError, match="legal entity 'GB01' is not configured"):
        load_configuration(bad)


def test_backoff_grows_is_capped_and_honours_retry_after() -> None:
    policy = RetryPolicy(base_seconds=1, cap_seconds=10)
    rng = random.Random(1)
    assert 0.5 <= policy.delay(1, None, rng) <= 1
    assert 4 <= policy.delay(4, None, rng) <= 8
    assert policy.delay(20, None, rng) <= 10
    assert policy.delay(1, 42.0, rng) == 42.0


def test_http_outcomes_come_from_one_table() -> None:
    assert classify_http(429, {"retry-after": "7"}).kind is OutcomeKind.TRANSIENT
    assert classify_http(429, {"retry-after": "7"}).retry_after == 7
    assert classify_http(503).kind is OutcomeKind.TRANSIENT
    assert classify_http(401).kind is OutcomeKind.CONFIGURATION
    assert classify_http(422).kind is OutcomeKind.PERMANENT
    assert classify_http(201).kind is OutcomeKind.SUCCESS
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0


def test_token_bucket_spends_burst_then_waits_at_the_rate() -> None:
    clock = ManualClock()
    bucket = TokenBucket(RateLimit(100, 10, burst=2), clock)  # 10 per second
    start = clock.monotonic()
    for _ in range(12):
        bucket.take()
    assert clock.monotonic() - start == pytest.approx(1.0, abs=0.01)


def test_circuit_opens_after_threshold_and_half_opens_after_cooldown() -> None:
    breaker = CircuitBreaker(threshold=3, cooldown_seconds=10)
    for _ in range(3):
        breaker.failure(0)
    assert breaker.state is CircuitState.OPEN and not breaker.allows(5_000)
    assert breaker.allows(10_000) and breaker.state is CircuitState.HALF_OPEN
    breaker.failure(10_000)  # the trial call failed: open again, for the same cooldown
    assert breaker.state is CircuitState.OPEN and breaker.open_until_ms == 20_000
    assert not breaker.allows(19_999) and breaker.allows(20_000)
    breaker.success()
    assert breaker.state is CircuitState.CLOSED
