"""`billbridge invoices list|show` and `billbridge billing preview|run|runs`:
finance's month-end from the command line. Money is always printed with its
currency and totals are summed per currency; `--json` prints the use case's
result as it is."""

from __future__ import annotations

import importlib
import json
from collections.abc import Callable, Mapping
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any

import typer
from pydantic import BaseModel
from rich.console import Console
from rich.table import Table
from rich.text import Text
from rich.tree import Tree

from billbridge.services import billing_runs, invoices
from billbridge.services.auth import Permission
from billbridge.services.billing_runs import Preview, RunSummary
from billbridge.services.invoices import InvoiceDetail

invoices_app = typer.Typer(help="Invoices the hub raised: list (filtered), show one.",
                           no_args_is_help=True)
billing_app = typer.Typer(help="Billing runs: preview a period end, run it once, list runs.",
                          no_args_is_help=True)
console = Console()

JsonOption = Annotated[bool, typer.Option("--json", help="print the result as JSON")]
DbOption = Annotated[str | None, typer.Option("--database-url", envvar="BILLBRIDGE_DATABASE_URL",
                                              help="SQLAlchemy URL (default: ./billbridge.db)")]
PeriodEndOption = Annotated[str, typer.Option(
    "--period-end", help="the last work date to invoice, YYYY-MM-DD")]


def _cli() -> Any:
    """The command line's shared helpers (store, identity, clock), read when a
    command runs: cli.app registers these commands, so it imports this first.
    (By module name: the package's ``app`` is the Typer application.)"""
    return importlib.import_module("billbridge.cli.app")


def money(amount: Decimal, currency: str) -> str:
    return f"{amount} {currency}"


def per_currency(totals: Mapping[str, Decimal]) -> str:
    return ", ".join(money(a, c) for c, a in totals.items()) or "nothing"


def _print_json(result: BaseModel | list[Any]) -> None:
    if isinstance(result, list):
        print(json.dumps([r.model_dump(mode="json") for r in result], indent=2))
    else:
        print(result.model_dump_json(indent=2))


def _plain(value: Any) -> Text:
    """Ids and descriptions as data: never markup or emoji."""
    return Text("" if value is None else str(value))


@invoices_app.command("list")
def invoices_list(
        project: Annotated[str | None, typer.Option(help="a project code")] = None,
        customer: Annotated[str | None, typer.Option(help="a customer's id or name")] = None,
        period_end: Annotated[str | None, typer.Option(
            "--period-end", help="the period end invoiced, YYYY-MM-DD")] = None,
        status: Annotated[str | None, typer.Option(
            help="draft, posted, issued, paid or void")] = None,
        currency: Annotated[str | None, typer.Option(help="ISO 4217, e.g. USD")] = None,
        as_json: JsonOption = False, database_url: DbOption = None) -> None:
    """Invoices matching every filter given, with totals per currency."""
    end = invoices.parse_period_end(period_end) if period_end else None
    with _cli()._engine(database_url).connect() as conn:
        found = invoices.list_invoices(conn, project=project, customer=customer,
                                       period_end=end, status=status, currency=currency)
    if as_json:
        _print_json(found)
        return
    table = Table("invoice", "customer", "project", "period end", "status", "ERP id",
                  "subtotal", "tax", "total", title=f"{len(found.items)} invoice(s)")
    for i in found.items:
        table.add_row(_plain(i.id), _plain(i.customer_name or i.customer), _plain(i.project),
                      str(i.period_end or ""), i.status, _plain(i.erp_id),
                      money(i.subtotal, i.currency), money(i.tax, i.currency),
                      money(i.total, i.currency))
    console.print(table)
    console.print(f"total: {per_currency(found.totals)}", highlight=False)


@invoices_app.command("show")
def invoices_show(invoice_id: Annotated[str, typer.Argument(help="the invoice's id")],
                  as_json: JsonOption = False,
                  database_url: DbOption = None) -> None:
    """One invoice: its lines, each down to the charges it bills and where they
    came from, the tax rule applied and its status history."""
    with _cli()._engine(database_url).connect() as conn:
        shown = invoices.show(conn, invoice_id)
    if as_json:
        _print_json(shown)
        return
    render_invoice(console, shown)


def render_invoice(out: Console, shown: InvoiceDetail) -> None:
    inv, cur = shown.invoice, shown.invoice.currency
    rule = shown.tax_rule or {}
    out.print(Text(f"invoice {inv.id} ({inv.status}) for {inv.customer_name or inv.customer}"
                   f", project {inv.project or '-'}, period to {inv.period_end}"))
    out.print(Text(f"subtotal {money(inv.subtotal, cur)}, tax {money(inv.tax, cur)} "
                   f"({rule.get('tax_code', '?')} {rule.get('rate', '?')} %: entity "
                   f"{rule.get('entity_country', '?')} billing {rule.get('customer_country', '?')}"
                   f"), total {money(inv.total, cur)}; configuration v{shown.config_version}"))
    tree = Tree(Text("lines"))
    for line in shown.lines:
        node = tree.add(Text(f"{line.description}: {line.quantity} x {line.unit_price} = "
                             f"{money(line.amount, cur)}"))
        for c in line.charges:
            node.add(Text(_charge_text(c)))
    out.print(tree)
    history = Table("status", "at (UTC)", "ERP id", "by", title="status history")
    for step in shown.history:
        history.add_row(step.status, str(step.at or "")[:19], _plain(step.erp_id), _plain(step.by))
    out.print(history)


def _charge_text(c: Any) -> str:
    made = [f"{c.kind} {c.record}"]
    if c.hours is not None:
        made.append(f"{c.work_date} {c.worker} {c.hours} h x {c.rate}")
    elif c.claimed:
        made.append(f"claimed {c.claimed}, markup {c.markup_pct} %")
    made.append(money(c.amount, c.currency))
    if c.fx_rate is not None:
        made.append(f"FX {c.fx_rate}")
    if c.rate_card:
        made.append(f"rate card {c.rate_card} v{c.rate_card_version}")
    if c.config_version is not None:
        made.append(f"config v{c.config_version}")
    if c.priced_by:
        made.append(f"priced by event {c.priced_by}")
    return "; ".join(made)


@billing_app.command("preview")
def billing_preview(period_end: PeriodEndOption, as_json: JsonOption = False,
                    database_url: DbOption = None) -> None:
    """What a billing run to the period end would invoice now, per project, with
    totals per currency, and what is held and why. Nothing is written."""
    cli = _cli()
    end = invoices.parse_period_end(period_end)
    seen = billing_runs.preview(cli._engine(database_url), end, at=cli._now())
    if as_json:
        _print_json(seen)
        return
    render_preview(console, seen)


def render_preview(out: Console, seen: Preview) -> None:
    table = Table("invoice", "customer", "project", "lines", "subtotal", "tax", "total",
                  title=f"a run to {seen.period_end} would raise {len(seen.invoices)} "
                        f"invoice(s) (configuration v{seen.config_version})")
    for i in seen.invoices:
        table.add_row(_plain(i.id), _plain(i.customer_name or i.customer), _plain(i.project),
                      str(i.lines),
                      money(i.subtotal, i.currency), money(i.tax, i.currency),
                      money(i.total, i.currency))
    out.print(table)
    out.print(f"total: {per_currency(seen.totals)}", highlight=False)
    if seen.held:
        held = Table("reason", "record", "why", title="held (not on these invoices)")
        for h in seen.held:
            held.add_row(h.reason, _plain(h.record), _plain(h.message))
        out.print(held)
    if seen.committed is not None:
        out.print(Text(f"the run to {seen.period_end} was committed already "
                       f"({seen.committed.id}): running it again raises nothing"))


@billing_app.command("run")
def billing_run(period_end: PeriodEndOption, as_json: JsonOption = False,
                database_url: DbOption = None,
                token_file: Annotated[Path | None, typer.Option(
                    "--token-file", envvar="BILLBRIDGE_TOKEN_FILE",
                    help="a file holding your API token (- for stdin), or set "
                         "BILLBRIDGE_TOKEN: a finance or admin token")] = None) -> None:
    """Commit the billing run to the period end, as finance: the hub's worker
    raises its invoices and posts them to the ERP. Once per period end: the
    same period again raises nothing and says so."""
    cli = _cli()
    end = invoices.parse_period_end(period_end)
    engine = cli._engine(database_url)
    who = cli._who(engine, token_file, Permission.BILLING_RUN)
    done = billing_runs.commit(engine, end, actor=who.name, at=cli._now())
    if as_json:
        _print_json(done)
        return
    console.print(Text(done.message))


@billing_app.command("runs")
def billing_runs_list(as_json: JsonOption = False,
                      database_url: DbOption = None) -> None:
    """Billing runs, newest first: who asked, when, and what each produced."""
    with _cli()._engine(database_url).connect() as conn:
        found = billing_runs.runs(conn)
    if as_json:
        _print_json(found)
        return
    render_runs(console, found)


def render_runs(out: Console, found: list[RunSummary]) -> None:
    table = Table("run", "period end", "by", "at (UTC)", "status", "invoices", "totals",
                  "held", title=f"{len(found)} billing run(s)")
    for r in found:
        table.add_row(_plain(r.id), str(r.period_end), _plain(r.requested_by or "scheduler"),
                      str(r.requested_at)[:19], r.status, _plain(", ".join(r.invoices)),
                      per_currency(r.totals),
                      _plain("; ".join(f"{h.reason} {h.record}" for h in r.problems)))
    out.print(table)


def register(add: Callable[..., None]) -> None:
    add(invoices_app, name="invoices")
    add(billing_app, name="billing")
