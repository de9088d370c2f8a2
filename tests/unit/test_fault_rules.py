import threading
import time

import pytest

from billbridge.emulation.faults import HOLD_LIMIT, Fault, FaultInjector, FaultRule, HeldRequest


@pytest.mark.parametrize(("spec", "expected"), [
    ("429", FaultRule(Fault.RATE_LIMITED, retry_after=1)),
    ("429:0", FaultRule(Fault.RATE_LIMITED, retry_after=0)),
    ("5xx", FaultRule(Fault.SERVER_ERROR, status=503)),
    ("502", FaultRule(Fault.SERVER_ERROR, status=502)),
    ("timeout:0.3", FaultRule(Fault.TIMEOUT, delay=0.3)),
    ("lost_ack", FaultRule(Fault.LOST_ACK)),
    ("ok", FaultRule(Fault.OK)),
])
def test_fault_specs_parse(spec: str, expected: FaultRule) -> None:
    assert FaultRule.parse(spec) == expected


def test_unknown_fault_spec_names_the_choices() -> None:
    with pytest.raises(ValueError, match="use ok, 5xx"):
        FaultRule.parse("explode")


def test_script_applies_in_order_then_requests_pass() -> None:
    faults = FaultInjector()
    faults.script(["429", "lost_ack"])
    assert [faults.next_rule("POST", "/x").fault for _ in range(3)] == [
        Fault.RATE_LIMITED, Fault.LOST_ACK, Fault.OK]
    assert faults.injected == {Fault.RATE_LIMITED: 1, Fault.LOST_ACK: 1}


def test_scripted_fault_waits_for_a_matching_path() -> None:
    faults = FaultInjector()
    faults.script([FaultRule(Fault.SERVER_ERROR, path_prefix="/v1/postings")])
    assert faults.next_rule("GET", "/v1/other").fault is Fault.OK
    assert faults.scripted() == 1  # still waiting for its path
    assert faults.next_rule("POST", "/v1/postings:batch").fault is Fault.SERVER_ERROR
    assert faults.scripted() == 0


def test_random_faults_are_repeatable_for_a_seed() -> None:
    def draw() -> list[Fault]:
        faults = FaultInjector()
        faults.set_random(42, {"5xx": 0.3, "429": 0.2})
        return [faults.next_rule("POST", "/x").fault for _ in range(50)]

    first = draw()
    assert first == draw()
    assert {Fault.SERVER_ERROR, Fault.RATE_LIMITED, Fault.OK} == set(first)


def test_hold_specs_parse_with_a_bounded_wait() -> None:
    assert FaultRule.parse("hold") == FaultRule(Fault.HOLD, delay=HOLD_LIMIT)
    assert FaultRule.parse("hold:5") == FaultRule(Fault.HOLD, delay=5.0)


def test_a_held_request_waits_for_release_and_is_seen_meanwhile() -> None:
    faults = FaultInjector()
    held = HeldRequest("POST", "/v1/postings:batch", b'{"items": []}')
    done = threading.Event()
    thread = threading.Thread(target=lambda: (faults.hold(held, FaultRule(Fault.HOLD, delay=10)),
                                              done.set()))
    thread.start()
    assert faults.wait_held(timeout=5) == held
    assert not done.wait(timeout=0.2), "the request went on before it was released"
    faults.release()
    assert done.wait(timeout=5)
    thread.join()
    assert faults.wait_held(timeout=0) is None  # a release forgets what it let go


def test_a_forgotten_hold_goes_on_by_itself_after_its_delay() -> None:
    faults = FaultInjector()
    started = time.monotonic()
    faults.hold(HeldRequest("GET", "/x", b""), FaultRule(Fault.HOLD, delay=0.2))
    assert time.monotonic() - started >= 0.2
