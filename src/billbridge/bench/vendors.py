"""The emulated time tool and ERP of a benchmark, in a process of their own.

They stand for other companies' systems: in their own process their work does
not share the hub's interpreter, and what they cost (CPU, memory) is reported
apart from the hub's. The parent drives them through a pipe: seed, push
webhooks, count what the ERP applied, read its postings, stop."""

from __future__ import annotations

import multiprocessing
import resource
import threading
from dataclasses import dataclass
from decimal import Decimal
from multiprocessing.connection import Connection
from typing import Any

from billbridge.connectors.generic.emulator import LedgerEmulator, TimeSourceEmulator

TOKEN = "bench-ledger-token"
CHARGE = "time_charge.post"


def time_entry(i: int, projects: int) -> dict[str, Any]:
    """The i-th approved entry of the month: 50 consultants, ``projects``
    projects, half an hour to eight hours."""
    return {"id": f"te-{i}", "worker": f"w-{i % 50}", "project": f"P-{i % projects}",
            "task": "dev", "work_date": f"2026-03-{1 + i % 28:02d}",
            "hours": str(Decimal(1 + i % 16) / 2), "billable": True, "notes": "",
            "status": "approved"}


@dataclass(frozen=True, slots=True)
class Posting:
    """One time charge as the ERP holds it."""

    time_entry: str
    idempotency_key: str
    applied_at: str


class Vendors:
    """The parent's handle on the vendors' process."""

    def __init__(self, entries: int, projects: int) -> None:
        context = multiprocessing.get_context("spawn")
        self._pipe, child = context.Pipe()
        self._process = context.Process(target=_serve, args=(child, entries, projects),
                                        name="bench-vendors", daemon=True)
        self._process.start()
        child.close()
        urls = self._pipe.recv()
        self.ledger_url: str = urls["ledger"]
        self.tool_url: str = urls["tool"]

    @property
    def pid(self) -> int | None:
        return self._process.pid

    def _ask(self, *request: Any) -> Any:
        self._pipe.send(request)
        return self._pipe.recv()

    def applied(self, kind: str = CHARGE) -> int:
        """Effects of ``kind`` the ERP applied so far (a counter: cheap to ask)."""
        return int(self._ask("applied", kind))

    def push_webhooks(self, url: str, secret: str, entry_ids: list[str],
                      per_delivery: int) -> None:
        """Start sending signed webhooks for ``entry_ids`` (in the background)."""
        self._ask("webhooks", url, secret, entry_ids, per_delivery)

    def webhook_statuses(self) -> list[int] | None:
        """The HTTP status of each delivery, once all were sent (else None)."""
        statuses: list[int] | None = self._ask("webhook_statuses")
        return statuses

    def erp_calls(self) -> int:
        return int(self._ask("calls"))

    def postings(self) -> list[Posting]:
        """Every time charge the ERP holds, oldest first."""
        return [Posting(*p) for p in self._ask("postings")]

    def stop(self) -> dict[str, float]:
        """Stop the vendors; their CPU seconds and peak memory."""
        usage: dict[str, float] = self._ask("stop")
        self._process.join(timeout=30)
        return usage

    def kill(self) -> None:
        if self._process.is_alive():
            self._process.kill()
            self._process.join(timeout=10)


def _serve(pipe: Connection, entries: int, projects: int) -> None:
    ledger = LedgerEmulator(token=TOKEN, max_batch=100)
    tool = TimeSourceEmulator()
    for i in range(entries):
        tool.upsert(time_entry(i, projects))
    ledger.start()
    tool.start()
    pipe.send({"ledger": ledger.url, "tool": tool.url})
    statuses: list[list[int]] = []
    while True:
        command, *args = pipe.recv()
        if command == "applied":
            pipe.send(ledger.applied[args[0]])
        elif command == "webhooks":
            threading.Thread(target=_push, args=(tool, statuses, *args), name="webhooks",
                             daemon=True).start()
            pipe.send(None)
        elif command == "webhook_statuses":
            pipe.send(statuses[0] if statuses else None)
        elif command == "calls":
            pipe.send(ledger.calls)
        elif command == "postings":
            pipe.send([(p["data"].get("time_entry"), p["idempotency_key"], p["applied_at"])
                       for p in ledger.postings(CHARGE)])
        elif command == "stop":
            ledger.stop()
            tool.stop()
            usage = resource.getrusage(resource.RUSAGE_SELF)
            pipe.send({"cpu_s": usage.ru_utime + usage.ru_stime,
                       "peak_rss_mb": usage.ru_maxrss / 1024})
            return


def _push(tool: TimeSourceEmulator, statuses: list[list[int]], url: str, secret: str,
          entry_ids: list[str], per_delivery: int) -> None:
    statuses.append(tool.send_webhook(url, entry_ids, secret=secret, per_delivery=per_delivery))
