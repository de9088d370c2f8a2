"""bench ingest's summary: every delivery counted once, in one pass over the run."""

from __future__ import annotations

from typing import ClassVar

from billbridge.bench.ingest import summarise
from billbridge.bench.loadgen import Delivery


class CountedDelivery(Delivery):
    """A delivery that counts how often it is compared with another."""

    __slots__ = ()
    comparisons: ClassVar[list[int]] = [0]

    def __eq__(self, other: object) -> bool:
        CountedDelivery.comparisons[0] += 1
        return super().__eq__(other)

    __hash__ = Delivery.__hash__


def _run(n: int) -> list[Delivery]:
    """``n`` deliveries: every tenth refused with 429, every hundredth unanswered."""
    out: list[Delivery] = []
    for i in range(n):
        if i % 100 == 99:
            out.append(CountedDelivery(f"e{i}", i / 1000, 0.0, None, None, "TimeoutError()"))
        elif i % 10 == 9:
            out.append(CountedDelivery(f"e{i}", i / 1000, 0.0, 0.002, 429))
        else:
            out.append(CountedDelivery(f"e{i}", i / 1000, 0.0, 0.001 + (i % 7) / 1000, 202))
    return out


def test_acknowledgements_are_counted_without_comparing_deliveries() -> None:
    deliveries = _run(20_000)
    CountedDelivery.comparisons[0] = 0
    summary = summarise(deliveries, {f"e{i}" for i in range(20_000) if i != 4}, 20.0)
    # A membership test of each delivery in the acknowledged list (n² comparisons,
    # about a minute after a 1,000/s run) shows here as millions of comparisons.
    assert CountedDelivery.comparisons[0] == 0
    assert summary["sent"] == 20_000
    assert summary["acknowledged"] == 18_000
    assert summary["not_acknowledged_by_status"] == {"429": 1_800, "no answer": 200}
    assert summary["no_answer_by_error"] == {"TimeoutError": 200}
    assert (summary["lost_after_ack"], summary["not_acknowledged"]) == (1, 2_000)
    assert summary["lost"] == 2_001
    assert summary["lost_examples"][0] == "e4"
    assert summary["ack_ms"]["p50"] == 4.0
