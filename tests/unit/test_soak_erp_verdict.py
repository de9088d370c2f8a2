"""The soak's ERP verdict catches what it must: a lost posting, a twin, a
second live posting, a reversal before its posting, a stale version and a
posting the source does not back."""

from __future__ import annotations

from typing import Any

from billbridge.bench.soak import _unsettled
from billbridge.bench.soak_check import Verdict, check_erp


def entry(n: int, version: int = 1, hours: str = "2", status: str = "approved") -> dict[str, Any]:
    return {"id": f"te-{n}", "version": version, "hours": hours, "status": status}


def post(seq: int, n: int, version: int = 1, hours: str = "2.00",
         key: str | None = None) -> dict[str, Any]:
    return {"seq": seq, "kind": "time_charge.post", "idempotency_key": key or f"p{n}v{version}",
            "data": {"id": f"tc_te-{n}", "time_entry": f"te-{n}", "hours": hours,
                     "source_version": version}}


def reverse(seq: int, n: int, version: int = 1) -> dict[str, Any]:
    return {"seq": seq, "kind": "time_charge.reverse", "idempotency_key": f"r{n}v{version}",
            "data": {"charge": f"tc_te-{n}"}}


def verdict_of(source: list[dict[str, Any]], effects: list[dict[str, Any]]) -> Verdict:
    verdict = Verdict()
    check_erp(source, effects, verdict)
    return verdict


def test_a_clean_history_passes() -> None:
    verdict = verdict_of([entry(1, version=2, hours="3"), entry(2, status="rejected")],
                         [post(1, 1), post(2, 2), reverse(3, 1), post(4, 1, 2, "3.00"),
                          reverse(5, 2)])
    assert verdict.ok, verdict.as_json()
    assert (verdict.erp_postings, verdict.erp_reversals, verdict.approved) == (3, 2, 1)


def test_an_approved_entry_missing_at_the_erp_is_lost() -> None:
    verdict = verdict_of([entry(1), entry(2)], [post(1, 1)])
    assert verdict.lost == ["te-2 v1 is not live at the ERP"]
    assert not verdict.ok


def test_a_key_applied_twice_is_a_duplicate() -> None:
    verdict = verdict_of([entry(1)], [post(1, 1), reverse(2, 1), post(3, 1)])
    assert verdict.duplicates == ["key p1v1 applied 2 times"]


def test_a_second_live_posting_is_a_duplicate_even_under_another_key() -> None:
    verdict = verdict_of([entry(1)], [post(1, 1), post(2, 1, key="other")])
    assert verdict.duplicates == ["tc_te-1: posted again while v1 was live"]


def test_a_reversal_before_its_posting_is_out_of_order() -> None:
    verdict = verdict_of([entry(1)], [reverse(1, 1), post(2, 1)])
    assert verdict.out_of_order == ["tc_te-1: reversed with nothing live"]


def test_an_older_version_left_live_is_stale() -> None:
    verdict = verdict_of([entry(1, version=2, hours="5")], [post(1, 1)])
    assert verdict.stale == ["te-1: ERP has v1 2.00 h, source v2 5 h"]


def test_postings_the_source_does_not_back_are_orphans() -> None:
    verdict = verdict_of([entry(1, status="rejected")], [post(1, 1), post(2, 9)])
    assert verdict.orphans == ["te-1 is rejected in the source but live at the ERP",
                               "tc_te-9 is live at the ERP; the source has no such entry"]


def test_a_look_while_settling_says_what_is_still_wrong() -> None:
    verdict = Verdict(lost=["te-7: approved, no live posting"],
                      hub=["outbox: 3 pending", "inbox: 1 pending"])
    assert _unsettled(verdict) == "1 lost, 2 hub (e.g. te-7: approved, no live posting)"
