import pytest

from billbridge.emulation.faults import Fault, FaultInjector, FaultRule


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
    assert faults.next_rule("POST", "/v1/postings:batch").fault is Fault.SERVER_ERROR


def test_random_faults_are_repeatable_for_a_seed() -> None:
    def draw() -> list[Fault]:
        faults = FaultInjector()
        faults.set_random(42, {"5xx": 0.3, "429": 0.2})
        return [faults.next_rule("POST", "/x").fault for _ in range(50)]

    first = draw()
    assert first == draw()
    assert {Fault.SERVER_ERROR, Fault.RATE_LIMITED, Fault.OK} == set(first)
