"""Rich renderings shared by CLI commands and the demo."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

from rich.console import Console
from rich.table import Table
from rich.text import Text
from rich.tree import Tree as RichTree

from billbridge.engine.reconcile import Reconciliation
from billbridge.services.lineage import MAX_STEPS, Step, Tree, details, headline


def render_lineage(console: Console, found: Tree) -> None:
    """The tree as text: ids are never read as markup or emoji codes."""
    root = _lineage_node(found.root)
    tree = RichTree(Text.assemble(("lineage of ", "bold"), found.query, "\n", root))
    _lineage_branch(tree, found.root)
    console.print(tree, soft_wrap=False)
    if found.cut:
        console.print(Text(f"(cut at {MAX_STEPS} steps: ask for a narrower record)"))


def _lineage_node(step: Step) -> Text:
    style = {"event": "cyan", "posting": "magenta", "exception": "red", "line": "white"}
    label = Text(headline(step), style=style.get(step.kind, "green"))
    said = details(step)
    if said:
        label.append("\n" + said, style="dim")
    return label


def _lineage_branch(node: RichTree, step: Step) -> None:
    if step.up:
        made_from = node.add(Text("made from", style="bold"))
        for parent in step.up:
            _lineage_up(made_from.add(_lineage_node(parent)), parent)
    if step.down:
        led_to = node.add(Text("led to", style="bold"))
        for child in step.down:
            _lineage_down(led_to.add(_lineage_node(child)), child)


def _lineage_up(node: RichTree, step: Step) -> None:
    for parent in step.up:
        _lineage_up(node.add(_lineage_node(parent)), parent)


def _lineage_down(node: RichTree, step: Step) -> None:
    for child in step.down:
        _lineage_down(node.add(_lineage_node(child)), child)


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
