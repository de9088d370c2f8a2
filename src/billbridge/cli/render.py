"""Rich renderings shared by CLI commands and the demo."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

from rich.console import Console
from rich.table import Table
from rich.tree import Tree

from billbridge.engine.lineage import Lineage
from billbridge.engine.reconcile import Reconciliation


def render_lineage(console: Console, found: Lineage) -> None:
    tree = Tree(f"[bold]lineage of {found.query}[/bold]")
    for event in found.events:
        node = tree.add(f"[cyan]event[/cyan] {event['source']}/{event['event_id']} "
                        f"{event['event_type']} → {event['status']}"
                        + (f" (waiting on {event['waiting_on']})" if event["waiting_on"] else "")
                        + (f", {event['duplicates']} repeat(s) dropped"
                           if event["duplicates"] else ""))
        for record in found.records:
            node.add(f"[green]record[/green] {record['kind']} {record['id']} "
                     f"({record['status']}, config v{record['config_version']})")
        for command in found.commands:
            cmd = node.add(f"[magenta]command[/magenta] #{command['id']} {command['kind']} → "
                           f"{command['target']} [{command['status']}] "
                           f"key {command['idempotency_key']}")
            for attempt in found.attempts:
                if attempt["outbox_id"] == command["id"]:
                    cmd.add(f"attempt {attempt['attempt']}: {attempt['outcome']} "
                            f"{attempt['detail'] or ''}")
            if command["external_id"]:
                cmd.add(f"[bold green]posted[/bold green] as {command['target']} "
                        f"{command['external_id']}")
        for exc in found.exceptions:
            node.add(f"[red]exception[/red] #{exc['id']} {exc['reason']} [{exc['status']}]: "
                     f"{exc['message'][:100]}")
    console.print(tree)


def _money(amounts: dict[str, Decimal] | None) -> str:
    if amounts is None:
        return "unread"
    return ", ".join(f"{a} {c}" for c, a in sorted(amounts.items())) or "0"


def render_reconciliation(console: Console, result: Reconciliation, period_end: date) -> None:
    """One line per ERP read (or why it could not be), the three columns per
    project with totals per currency, then every difference with its fix."""
    for erp in result.erps:
        console.print(f"[yellow]ERP {erp.name}: cannot be read: {erp.error}[/yellow]"
                      if erp.error else
                      f"ERP {erp.name}: {len(erp.postings)} live labour posting(s) read")
    columns = Table("project", "approved h", "hub h", "hub amount", "ERP h", "ERP amount",
                    title="approved time · hub charges · ERP postings")
    for row in result.projects:
        columns.add_row(row.project, str(row.approved_hours), str(row.hub_hours),
                        _money(row.hub_amounts),
                        "unread" if row.erp_hours is None else str(row.erp_hours),
                        _money(row.erp_amounts))
    read = any(e.error is None for e in result.erps)
    for currency, total in sorted(result.totals().items()):
        columns.add_row(f"[bold]total {currency}[/bold]", "", "", f"{total['hub']} {currency}",
                        "", f"{total['erp']} {currency}" if read else "unread")
    console.print(columns)
    table = Table("finding", "project", "record", "hours", "amount", "detail", "fix",
                  title=f"{len(result.findings)} difference(s) up to {period_end}")
    for f in sorted(result.findings, key=lambda f: (f.kind, f.project, f.record)):
        table.add_row(f.kind, f.project, f.record, str(f.hours or ""),
                      f"{f.amount} {f.currency}" if f.amount is not None else "",
                      f.detail, f.fix)
    console.print(table)
