"""The published canonical event schemas (docs/schemas/v1) are a contract:
a change to a model that changes its schema fails here, so that it is made
deliberately: as a compatible addition to v1, or as a new version."""

import json
from pathlib import Path

import pytest

from billbridge.domain.events import PAYLOADS

PUBLISHED = Path(__file__).parents[2] / "docs" / "schemas" / "v1"


@pytest.mark.parametrize("event_type", sorted(PAYLOADS))
def test_event_schema_matches_the_published_v1(event_type: str) -> None:
    published = json.loads((PUBLISHED / f"{event_type}.json").read_text())
    assert PAYLOADS[event_type].model_json_schema() == published, (
        f"{event_type}'s schema changed: if compatible, republish docs/schemas/v1; "
        "if breaking, publish a v2")


def test_every_published_schema_has_an_event_type() -> None:
    assert {p.stem for p in PUBLISHED.glob("*.json")} == set(PAYLOADS)
