"""schemathesis against the published OpenAPI document, with an admin token,
a bounded number of examples per operation: no server error, no undocumented
status, no response that breaks its schema."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from billbridge.api.app import create_app
from billbridge.connectors.generic.webhooks import GenericWebhooks
from billbridge.engine import tokens
from billbridge.engine.hub import Hub
from billbridge.store.db import make_engine
from conftest import CONFIG, project_event, time_entry
from fakes import FakeTarget

ROOT = Path(__file__).parents[2]
# The promises of the API: no 5xx, only documented statuses and content types,
# every response valid against its schema.
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance,
          response_schema_conformance]
_hub = Hub(make_engine("sqlite://"), {"ledger": FakeTarget()})
_hub.activate_config(CONFIG)
_hub.ingest([project_event(), time_entry("te-1"), time_entry("te-2", worker="w-carol")],
            source="harvest")
_hub.run_until_idle()
with _hub.engine.begin() as _conn:
    _, ADMIN = tokens.create(_conn, name="fuzzer", role=tokens.Role.ADMIN,
                             expires_in=timedelta(days=1), actor="test", at=datetime.now(UTC))
APP = create_app(_hub, webhooks={"generic": GenericWebhooks("s3cret")},
                 scenarios=ROOT / "scenarios")
schema = schemathesis.openapi.from_asgi("/openapi.json", APP)


@schema.exclude(path_regex="preview").parametrize()
@settings(max_examples=15, deadline=None, suppress_health_check=list(HealthCheck),
          derandomize=True)  # the same examples in every CI run
def test_api_conforms_to_its_openapi_document(case: schemathesis.Case) -> None:
    case.call_and_validate(headers={"Authorization": f"Bearer {ADMIN}"}, checks=CHECKS)
