"""build_hub: the one assembly of a hub from its setup (store, targets,
routes, clock) that every entry point uses."""

from __future__ import annotations

from pathlib import Path

import pytest

from billbridge.connectors.generic.client import LedgerTarget
from billbridge.engine.clock import ManualClock
from billbridge.engine.hub import HubSetup, build_hub
from billbridge.errors import Invalid
from conftest import CONFIG, project_event, time_entry
from fakes import FakeTarget


def test_routes_send_the_erp_role_to_the_target_named_for_it(tmp_path: Path) -> None:
    books = FakeTarget("books")
    clock = ManualClock()
    hub = build_hub(HubSetup(store=f"sqlite:///{tmp_path / 'hub.db'}",
                             targets=[books, "ledger=http://127.0.0.1:9"],
                             routes={"erp": "books"}, clock=clock))
    assert hub.clock is clock
    assert hub.targets["books"] is books
    assert isinstance(hub.targets["ledger"], LedgerTarget)
    hub.activate_config(CONFIG)
    hub.ingest([project_event(), time_entry("te-1")], source="harvest")
    hub.run_until_idle()
    # The posting reached the target that plays the ERP, and only it.
    assert books.live_charges() == {"te-1": ["1400.00"]}  # 8 h at Alice's 175.00


def test_a_hub_is_settled_only_when_neither_inbox_nor_outbox_has_work_waiting() -> None:
    hub = build_hub(HubSetup(store="sqlite://", targets=[FakeTarget()], clock=ManualClock()))
    hub.activate_config(CONFIG)
    assert hub.settled()
    hub.ingest([project_event(), time_entry("te-1")], source="harvest")
    assert not hub.settled()  # events wait in the inbox
    hub.worker.run_once()
    assert not hub.settled()  # their commands wait in the outbox
    hub.run_until_idle()
    assert hub.settled()


def test_a_target_spec_naming_no_vendor_is_one_line_saying_which_are_known() -> None:
    with pytest.raises(Invalid, match=r"unknown vendor 'nosuch'; known: .*generic"):
        build_hub(HubSetup(store="sqlite://", targets=["erp=nosuch+http://127.0.0.1:9"]))


def test_a_target_spec_without_a_url_says_what_form_it_takes() -> None:
    with pytest.raises(Invalid, match=r"expected NAME=URL or NAME=VENDOR\+URL"):
        build_hub(HubSetup(store="sqlite://", targets=["ledger="]))
