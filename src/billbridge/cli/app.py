"""`billbridge` commands. Every command migrates the store on start-up."""

from __future__ import annotations

import json
import logging
import signal
import sys
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table
from rich.text import Text
from typer.core import TyperGroup

from billbridge.cli import finance
from billbridge.engine.audit import AuditError
from billbridge.engine.dispatcher import DispatcherSettings
from billbridge.engine.hub import Hub, HubSettings, HubSetup, build_hub
from billbridge.engine.worker import WorkerSettings
from billbridge.errors import BillbridgeError, Conflict, Forbidden, Invalid, Unauthenticated
from billbridge.heap import freeze_startup, tune_for_batches
from billbridge.logs import configure_logging
from billbridge.services import audit, config_versions, exceptions, lineage, stores
from billbridge.services.auth import Permission

EXIT_USAGE, EXIT_FAILURE = 2, 1
errors = Console(stderr=True)


def exit_code(exc: BillbridgeError) -> int:
    """2 for a call to correct (invalid input, a caller who may not), 1 for a
    refusal by the hub's state (not found, conflict)."""
    return EXIT_USAGE if isinstance(exc, Invalid | Forbidden) else EXIT_FAILURE


def _refusal(exc: Exception) -> tuple[str, int]:
    """What a command's error says, in one line, and its exit code: the
    mistakes a user makes (a missing or wrong file, a store that cannot be
    opened, a key not set) say what to fix; anything else says to run again
    with --debug, which shows the traceback."""
    from billbridge.domain.config import ConfigError
    from billbridge.engine.secrets import SecretsError

    if isinstance(exc, BillbridgeError):
        return exc.message, exit_code(exc)
    if isinstance(exc, FileNotFoundError | NotADirectoryError) and exc.filename:
        return f"{exc.filename}: no such file or folder", EXIT_USAGE
    if isinstance(exc, IsADirectoryError) and exc.filename:
        return f"{exc.filename} is a folder: give a file", EXIT_USAGE
    if isinstance(exc, PermissionError) and exc.filename:
        return f"{exc.filename}: permission denied", EXIT_USAGE
    if isinstance(exc, OSError) and exc.strerror:
        return f"{exc.filename or 'the system'}: {exc.strerror}", EXIT_FAILURE
    if isinstance(exc, ConfigError | SecretsError | AuditError):
        return str(exc), EXIT_FAILURE
    return (f"unexpected error: {type(exc).__name__}: {exc} (run again with --debug for the "
            "traceback, and report it)"), EXIT_FAILURE


class Commands(TyperGroup):
    """Every command's error becomes one line on stderr and its exit code, never
    a traceback (unless --debug)."""

    def invoke(self, ctx: Any) -> Any:  # typer's own click Context
        try:
            return super().invoke(ctx)
        except (typer.Exit, typer.Abort, typer.exceptions.TyperException):
            raise  # an exit code already chosen, or a usage error click reports
        except Exception as exc:
            if ctx.params.get("debug"):
                raise
            message, code = _refusal(exc)
            said = " ".join(line.strip() for line in message.splitlines() if line.strip())
            errors.print(f"[red]{escape(said)}[/red]", soft_wrap=True, highlight=False)
            raise typer.Exit(code) from None


app = typer.Typer(help="billbridge: CRM, time tools and ERP joined with exactly-once delivery.",
                  no_args_is_help=True, pretty_exceptions_enable=False, cls=Commands)
exceptions_app = typer.Typer(help="The exception queue: list, retry, replay, dismiss.",
                             no_args_is_help=True)
audit_app = typer.Typer(help="The tamper-evident audit log.", no_args_is_help=True)
emulator_app = typer.Typer(help="Run an emulated vendor system on 127.0.0.1.",
                           no_args_is_help=True)
app.add_typer(exceptions_app, name="exceptions")
app.add_typer(audit_app, name="audit")
app.add_typer(emulator_app, name="emulator")
config_app = typer.Typer(help="Governed configuration: validate, preview changes.",
                         no_args_is_help=True)
app.add_typer(config_app, name="config")
token_app = typer.Typer(help="API tokens: create (shown once), list, revoke.",
                        no_args_is_help=True)
app.add_typer(token_app, name="token")
secrets_app = typer.Typer(help="Encrypted connector credentials.", no_args_is_help=True)
app.add_typer(secrets_app, name="secrets")
bench_app = typer.Typer(help="Benchmarks (figures go to docs/benchmarks.md).",
                        no_args_is_help=True)
app.add_typer(bench_app, name="bench")
scenario_app = typer.Typer(help="Business rules as data: run scenario files.",
                           no_args_is_help=True)
app.add_typer(scenario_app, name="scenario")
finance.register(app.add_typer)  # invoices, billing


@app.callback()
def _global_options(debug: Annotated[bool, typer.Option(
        "--debug", envvar="BILLBRIDGE_DEBUG",
        help="show the Python traceback of an error instead of one line")] = False) -> None:
    """billbridge: CRM, time tools and ERP joined with exactly-once delivery."""

console = Console()
DbOption = Annotated[str | None, typer.Option("--database-url", envvar="BILLBRIDGE_DATABASE_URL",
                                              help="SQLAlchemy URL (default: ./billbridge.db)")]
TargetOption = Annotated[list[str] | None, typer.Option(
    "--target", help="NAME=URL or NAME=KIND+URL of a delivery target (repeatable)")]
SourceOption = Annotated[list[str] | None, typer.Option(
    "--source", help="NAME=URL or NAME=KIND+URL of a source to poll (repeatable)")]
JsonOption = Annotated[bool, typer.Option("--json", help="print the result as JSON")]
HostOption = Annotated[str, typer.Option(help="the address to listen on")]



def _engine(url: str | None, *, intake: bool = False, create: bool = False) -> Any:
    return stores.open_store(url, intake=intake, create=create)


def _now() -> datetime:
    return datetime.now(UTC)


def _hub(url: str | None, targets: list[str] | None, lease_seconds: float = 30.0,
         batch_size: int = 200, intake: bool = False, create: bool = False) -> Hub:
    try:
        return build_hub(HubSetup(
            store=_engine(url, intake=intake, create=create),
            targets=targets or ["ledger=http://127.0.0.1:8100"],
            settings=HubSettings(
                worker=WorkerSettings(lease_ms=int(lease_seconds * 1000), batch_size=batch_size),
                dispatcher=DispatcherSettings(lease_ms=int(lease_seconds * 1000)))))
    except Invalid as exc:  # a --target that names no vendor or has no URL
        raise typer.BadParameter(str(exc)) from None


def _sources(specs: list[str] | None) -> list[Any]:
    """The --source connections, built; a spec that names no vendor or has no URL
    is a usage error naming it."""
    from billbridge.connectors.registry import build_source

    try:
        return [build_source(spec) for spec in specs or []]
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="'--source'") from None


def _port_free(host: str, port: int) -> None:
    """Refuse a port another process listens on, before anything starts."""
    import errno
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the server binds
        try:
            probe.bind((host, port))
        except OSError as exc:
            if exc.errno != errno.EADDRINUSE:
                raise
            raise Conflict(f"port {port} on {host} is taken (another billbridge demo or serve?):"
                           f" stop it, or choose another with --port {port + 1}") from None


@app.command("migrate")
def migrate(database_url: DbOption = None) -> None:
    """Create the store, or upgrade its schema."""
    _engine(database_url, create=True)
    console.print(f"schema is up to date: {stores.status(database_url).url}")




@app.command()
def status(database_url: DbOption = None) -> None:
    """The store a command would use here, why that one, and what it holds."""
    seen = stores.status(database_url)
    console.print(Text(f"store: {seen.url} (chosen by {seen.chosen_by})"))
    if not seen.exists:
        console.print(Text(f"no store there yet: `billbridge migrate --database-url {seen.url}` "
                           f"creates it (the demo's is {stores.DEMO_STORE})"), soft_wrap=True)
        raise typer.Exit(1)
    console.print(Text(f"schema: {seen.schema}"))
    for what, count in seen.counts.items():
        console.print(Text(f"{what}: {count}"))


@app.command()
def worker(database_url: DbOption = None, target: TargetOption = None,
           source: SourceOption = None,
           lease_seconds: Annotated[float, typer.Option(help="aggregate and target lease")] = 30.0,
           batch_size: Annotated[int, typer.Option(help="events per transaction")] = 200,
           idle_exit: Annotated[float | None, typer.Option(
               help="exit after this many seconds with nothing to do")] = None,
           config: Annotated[Path | None, typer.Option(
               help="activate this configuration file first")] = None,
           process: Annotated[bool, typer.Option(
               help="run inbox events through their flows")] = True,
           dispatch: Annotated[bool, typer.Option(
               help="send outbox commands to the targets")] = True) -> None:
    """Process inbox events and dispatch outbox commands (run as many as you like
    on PostgreSQL: they share the queue). --no-dispatch and --no-process split
    the two jobs between processes."""
    from billbridge.engine.runner import run

    configure_logging()
    hub = _hub(database_url, target, lease_seconds, batch_size, create=True)
    if config is not None:
        _bootstrap_config(hub, config)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    sources = _sources(source)
    freeze_startup()
    tune_for_batches()
    run(hub, stop, sources=sources, idle_exit=idle_exit, process=process, dispatch=dispatch)


@app.command()
def serve(database_url: DbOption = None, target: TargetOption = None,
          source: SourceOption = None, host: HostOption = "127.0.0.1",
          port: Annotated[int, typer.Option(help="the port to listen on")] = 8000,
          webhook_secret: Annotated[str | None, typer.Option(
              envvar="BILLBRIDGE_WEBHOOK_SECRET",
              help="the generic webhook door's signing secret (no default)")] = None,
          config: Annotated[Path | None, typer.Option(
              help="activate this configuration file first")] = None,
          engine: Annotated[bool, typer.Option(
              help="process and dispatch in this process too; --no-engine serves only the "
                   "API and webhooks, beside `billbridge worker` processes")] = True,
          open_metrics: Annotated[bool, typer.Option(
              help="serve /metrics without a token, for a scraper on a private network")] = False,
          secure_cookies: Annotated[bool | None, typer.Option(
              envvar="BILLBRIDGE_SECURE_COOKIES",
              help="mark the console's cookie Secure (behind a TLS proxy); it always is when "
                   "a request arrives over TLS")] = None) -> None:
    """Run the hub: API (/healthz, /metrics, webhooks), workers and dispatcher."""
    from billbridge.api.routes.ingress import door_rate
    from billbridge.connectors.base import RateLimit, WebhookReceiver
    from billbridge.connectors.generic.webhooks import GenericWebhooks
    from billbridge.connectors.registry import (
        build_webhooks,
        environment_options,
        parse_connection,
    )
    from billbridge.web import serve_hub

    if not webhook_secret:
        # No built-in secret: a door anyone could sign for is not opened.
        console.print("[red]serve: the generic webhook door has no secret: set "
                      "BILLBRIDGE_WEBHOOK_SECRET (e.g. to `python -c 'import secrets; "
                      "print(secrets.token_urlsafe(32))'`) and give the same to the sender[/red]",
                      soft_wrap=True)
        raise typer.Exit(2)
    _port_free(host, port)
    configure_logging()
    # Webhooks are acknowledged after their commit: small checkpoints there.
    hub = _hub(database_url, target, intake=True, create=True)
    if config is not None:
        _bootstrap_config(hub, config)
    webhooks: dict[str, WebhookReceiver] = {"generic": GenericWebhooks(webhook_secret)}
    # Each door's rate: BILLBRIDGE_<NAME>_WEBHOOK_RATE_PER_SECOND and _WEBHOOK_BURST.
    rates: dict[str, RateLimit] = {"generic": door_rate(environment_options("generic"))}
    sources = _sources(source)
    for spec in source or []:
        connection = parse_connection(spec)
        if connection.credentials.get("webhook_secret"):
            webhooks[connection.name] = build_webhooks(connection)
            rates[connection.name] = door_rate(connection.options)
    serve_hub(hub, host=host, port=port, sources=sources,
              webhooks=webhooks, engine=engine, open_metrics=open_metrics,
              secure_cookies=secure_cookies, webhook_rates=rates)


@app.command()
def demo(port: Annotated[int, typer.Option(
        help="the port the hub and console listen on (0: any free one)")] = 8000,
         serve: Annotated[bool, typer.Option(
        help="keep serving after the story")] = True,
         workdir: Annotated[Path, typer.Option(
             help="the demo's folder: its store (hub.db), key and log; emptied first")]
         = Path("var/demo"),
         crm: Annotated[str, typer.Option(
             help="hubspot | salesforce | dynamics-sales")] = "hubspot",
         time_tool: Annotated[str, typer.Option(
             "--time", help="harvest | kantata | replicon | csv")] = "harvest",
         # Help is rich markup: "\\[" keeps the extra's brackets.
         erp: Annotated[str, typer.Option(
             help="ledger | netsuite | quickbooks | xero | dynamics-finance | tryton (pip install "
                  "'billbridge\\[tryton]')")] = "ledger") -> None:
    """Tell the quote-to-cash story on SQLite with an emulated CRM, time tool and
    ERP of your choice, and verify it against what the ERP holds."""
    from billbridge.demo.story import Lineup, run_demo

    _port_free("127.0.0.1", port)  # before the story clears its folder
    sys.exit(run_demo(console, port=port, keep_serving=serve, workdir=workdir,
                      lineup=Lineup(crm=crm, time=time_tool, erp=erp)))


@app.command("lineage")
def lineage_cmd(ident: Annotated[str, typer.Argument(
                    help="a time entry, charge, invoice, ERP id, event id or idempotency key")],
                database_url: DbOption = None,
                as_json: Annotated[bool, typer.Option(
                    "--json", help="print the tree as JSON")] = False) -> None:
    """What a record (time entry, charge, invoice, ERP id, event id) was made from
    and what it led to, with the amount and currency at each step."""
    with _engine(database_url).connect() as conn:
        found = lineage.trace(conn, ident)
    if as_json:
        print(json.dumps(lineage.as_json(found), indent=2))
        return
    from billbridge.cli.render import render_lineage

    render_lineage(console, found)


@app.command()
def ingest(file: Annotated[Path, typer.Argument(
               help="a JSON file: a list of events, or one event per line")],
           source: Annotated[str, typer.Option(help="the system it came from")],
           database_url: DbOption = None, token_file: TokenFileOption = None) -> None:
    """Store canonical events from a JSON file (a list, or one object per line), e.g.
    a billing run; as a token that may ingest."""
    text = file.read_text()
    try:
        loaded = json.loads(text)
        items = loaded if isinstance(loaded, list) else [loaded]
    except ValueError:
        items = [line for line in text.splitlines() if line.strip()]
    engine = _engine(database_url)
    _who(engine, token_file, Permission.INGEST)
    from billbridge.engine.clock import SystemClock
    from billbridge.engine.inbox import ingest_many

    with engine.begin() as conn:
        results = ingest_many(conn, items, source=source, clock=SystemClock())
    for r in results:
        console.print(f"{r.status.value:9} {r.event_id} {r.message or ''}")


def _exception_table(rows: list[Any]) -> Table:
    # Messages whole, wrapped in their column: the fix is at their end.
    table = Table("id", "reason", "stage", "record", "message", "created")
    table.columns[4].overflow = "fold"
    table.columns[4].ratio = 1
    for r in rows:
        table.add_row(str(r.id), r.reason, r.stage, r.record_id or "", r.message,
                      str(r.created_at)[:19])
    return table


ReasonFilter = Annotated[str | None, typer.Option(
    "--reason", help="a reason code (NO_RATE, MALFORMED_PAYLOAD…): only exceptions with it")]


@exceptions_app.command("list")
def exceptions_list(database_url: DbOption = None, reason: ReasonFilter = None,
                    limit: Annotated[int, typer.Option(help="at most this many")] = 100,
                    as_json: Annotated[bool, typer.Option(
                        "--json", help="print every field, raw payloads whole")] = False
                    ) -> None:
    """Open exceptions, oldest first, with their whole messages."""
    exceptions.known_reason(reason)
    with _engine(database_url).connect() as conn:
        rows = exceptions.open_list(conn, reason=reason, limit=limit, whole=as_json)
    if as_json:
        print(json.dumps([dict(r._mapping) for r in rows], default=str, indent=2))
    else:
        console.print(_exception_table(rows))


IdsArgument = Annotated[list[int], typer.Argument(help="exception numbers", metavar="ID...")]
WaitOption = Annotated[float, typer.Option(
    "--wait", help="seconds to wait for a running worker to settle the work and say how it "
                   "went (0: do not wait)")]


def _act(database_url: str | None, action: exceptions.Action, ids: list[int],
         token_file: Path | None, why: str | None = None, wait: float = 0) -> None:
    engine = _engine(database_url)
    actor = _who(engine, token_file, Permission.ACT).name
    with engine.connect() as conn:
        since = exceptions.newest_id(conn)
    results = exceptions.act_many(engine, ids, action, actor=actor, now=_now, reason=why)
    for result in results:
        if not isinstance(result, exceptions.Acted):
            console.print(Text(f"exception {result.id}: {result.why}", style="red"))
        elif result.status != {"retry": "retried", "replay": "replayed"}.get(action):
            console.print(f"exception {result.id}: {result.status}")
        else:
            said = _settled(engine, result.id, action, since, wait)
            console.print(Text(f"exception {result.id}: {result.status}; {said}"))
    if not all(isinstance(r, exceptions.Acted) for r in results):
        raise typer.Exit(1)


def _settled(engine: Any, exc_id: int, action: exceptions.Action, since: int,
             wait: float) -> str:
    """The outcome of the work sent back, once a worker settled it or ``wait`` ran out."""
    import time

    deadline = time.monotonic() + wait
    while True:
        with engine.connect() as conn:
            seen = exceptions.outcome(conn, exc_id, action, since=since)
        if seen.settled or time.monotonic() >= deadline:
            break
        time.sleep(0.2)  # polling the store for the worker's result, up to the deadline
    if seen.settled or wait <= 0:
        return seen.said
    return f"{seen.said} after {wait:g} s (is `billbridge serve` or `billbridge worker` running?)"


TokenFileOption = Annotated[Path | None, typer.Option(
    "--token-file", envvar="BILLBRIDGE_TOKEN_FILE",
    help="a file holding your API token (- for stdin), or set BILLBRIDGE_TOKEN: who acts, "
         "checked and audited as in the API")]
NO_IDENTITY = ("this changes the hub, so it needs your token: set BILLBRIDGE_TOKEN or pass "
               "--token-file FILE (an admin makes one with `billbridge token create`; a store "
               "with no token yet: `billbridge token create --role admin --name YOU`)")


def _who(engine: Any, token_file: Path | None, permission: Any) -> Any:
    """The identity behind the caller's token, if its role grants ``permission``:
    the API's own check, never $USER. No token, no change: one line saying why."""
    import os

    from billbridge.services.auth import authenticate, authorize

    try:
        token = (sys.stdin.readline() if str(token_file) == "-" else
                 token_file.read_text()) if token_file else os.environ.get("BILLBRIDGE_TOKEN")
    except OSError as exc:
        raise Invalid(f"cannot read the token file: {exc.strerror}: {token_file}") from None
    if not token or not token.strip():
        raise Invalid(NO_IDENTITY)
    try:
        identity = authenticate(engine, token.strip(), at=_now())
    except Unauthenticated as exc:
        raise Invalid(f"the token is refused: {exc}") from None
    try:
        authorize(identity, permission)
    except Forbidden as exc:
        raise Forbidden(f"{identity.name}: {exc.message}") from None
    return identity


@exceptions_app.command("retry")
def exceptions_retry(ids: IdsArgument,
                     database_url: DbOption = None, token_file: TokenFileOption = None,
                     wait: WaitOption = 10) -> None:
    """Send the same command again, or re-run the event as it first ran; then say
    how it went (done, or still failing with the new exception's number)."""
    _act(database_url, "retry", ids, token_file, wait=wait)


@exceptions_app.command("replay")
def exceptions_replay(ids: Annotated[list[int] | None, typer.Argument(
                          help="exception numbers", metavar="ID...")] = None,
                      reason: Annotated[str | None, typer.Option(
                          help="a reason code: replay every open exception with it instead")]
                      = None,
                      database_url: DbOption = None,
                      token_file: TokenFileOption = None, wait: WaitOption = 10) -> None:
    """Re-run the source event under the current configuration; then say how it
    went."""
    if bool(ids) == bool(reason):
        raise typer.BadParameter("give exception ids or --reason, not both")
    if ids:
        _act(database_url, "replay", ids, token_file, wait=wait)
        return
    assert reason is not None
    try:
        exceptions.known_reason(reason)
    except Invalid as exc:
        raise typer.BadParameter(exc.message, param_hint="'--reason'") from None
    engine = _engine(database_url)
    who = _who(engine, token_file, Permission.ACT)
    replayed, refused = exceptions.replay_backlog(engine, reason=reason, actor=who.name,
                                                  now=_now)
    console.print(f"{replayed} exception(s) with reason {reason} replayed")
    if refused:
        console.print(f"[red]{len(refused)} could not be replayed (retry or dismiss them): "
                      f"{', '.join(map(str, refused[:20]))}[/red]")
        raise typer.Exit(1)


@exceptions_app.command("dismiss")
def exceptions_dismiss(ids: IdsArgument,
                       note: Annotated[str, typer.Option(
                           help="why, in your words (required, audited)")],
                       database_url: DbOption = None,
                       token_file: TokenFileOption = None) -> None:
    """Close exceptions without acting on them."""
    _act(database_url, "dismiss", ids, token_file, note)


CheckpointOption = Annotated[Path | None, typer.Option(
    "--checkpoint-file", envvar="BILLBRIDGE_AUDIT_CHECKPOINT_FILE",
    help="where checkpoints of the chain's end are kept: outside the store, where its "
         "writers cannot write")]


@audit_app.command("verify")
def audit_verify(database_url: DbOption = None, checkpoint_file: CheckpointOption = None) -> None:
    """Check the audit log's HMAC chain, and its end against the latest checkpoint;
    exit 1 naming every row that does not hold."""
    try:
        verified = audit.verify(_engine(database_url), checkpoint_file)
    except AuditError as exc:
        errors.print(f"[red]{escape(str(exc))}[/red]", soft_wrap=True)
        raise typer.Exit(1) from None
    breaks, anchor = verified.breaks, verified.anchor
    if breaks:
        for b in breaks:
            console.print(f"[red]audit row {b.row_id}: {b.problem}[/red]")
        raise typer.Exit(1)
    if anchor is None:
        console.print("audit log intact; [yellow]its end is not anchored: no checkpoint of this "
                      "store (`billbridge audit checkpoint --checkpoint-file FILE`)[/yellow]")
    else:
        console.print(f"audit log intact, and it reaches its checkpoint of {anchor.at} "
                      f"(row {anchor.row_id}, {anchor.count} rows)")


@audit_app.command("checkpoint")
def audit_checkpoint(database_url: DbOption = None,
                     checkpoint_file: CheckpointOption = None) -> None:
    """Append the chain's end (row, HMAC, count) to the checkpoint file and the log,
    after checking the chain up to the previous checkpoint."""
    configure_logging()
    if checkpoint_file is None:
        console.print("[red]say where checkpoints go: --checkpoint-file FILE or "
                      "BILLBRIDGE_AUDIT_CHECKPOINT_FILE[/red]")
        raise typer.Exit(2)
    try:
        done = audit.checkpoint(_engine(database_url), checkpoint_file, at=_now())
    except AuditError as exc:
        errors.print(f"[red]{escape(str(exc))}[/red]", soft_wrap=True)
        raise typer.Exit(1) from None
    breaks, point = done.breaks, done.point
    if breaks or point is None:
        console.print(f"[red]no checkpoint: audit row {breaks[0].row_id} {breaks[0].problem} "
                      "(`billbridge audit verify` names every row)[/red]")
        raise typer.Exit(1)
    console.print(f"checkpoint: row {point.row_id}, {point.count} rows, head {point.head} "
                  f"-> {checkpoint_file}")


@audit_app.command("rekey")
def audit_rekey(database_url: DbOption = None, checkpoint_file: CheckpointOption = None,
                token_file: TokenFileOption = None) -> None:
    """Once, after upgrading a store from before keyed audit: chain its rows again
    under the hub's key (an admin's token), then write a checkpoint. Refused once
    the store has a checkpoint: a keyed store never needs it."""
    configure_logging()
    engine = _engine(database_url)
    who = _who(engine, token_file, Permission.ADMINISTER)
    try:
        count = audit.rekey(engine, actor=who.name, at=_now(), checkpoint_file=checkpoint_file)
    except AuditError as exc:
        errors.print(f"[red]{escape(str(exc))}[/red]", soft_wrap=True)
        raise typer.Exit(1) from None
    console.print(f"{count} audit row(s) chained under the hub's key"
                  + ("" if checkpoint_file else "; now run `billbridge audit checkpoint`"))


@emulator_app.command("ledger")
def emulator_ledger(port: Annotated[int, typer.Option(help="the port to listen on")] = 8100,
                    idempotency: Annotated[str, typer.Option(
                        help="native (honours Idempotency-Key) or none (accepts a repeat as "
                             "new, as a vendor without one would)")] = "native") -> None:
    """The generic ERP-like target, with fault injection at /_emulator/faults."""
    from billbridge.connectors.generic.emulator import LedgerEmulator

    _serve_emulator(LedgerEmulator(port=port, idempotency=idempotency))


@emulator_app.command("timesource")
def emulator_timesource(port: Annotated[int, typer.Option(
        help="the port to listen on")] = 8200) -> None:
    """The generic time-tracking source."""
    from billbridge.connectors.generic.emulator import TimeSourceEmulator

    _serve_emulator(TimeSourceEmulator(port=port))


@emulator_app.command("run")
def emulator_run(vendor: Annotated[str, typer.Argument(help="a registered vendor's name")],
                 port: Annotated[int, typer.Option(
                     help="the port to listen on (0: any free one)")] = 0,
                 kind: Annotated[str | None, typer.Option(
                     help="which emulator, when the vendor has several")] = None) -> None:
    """Any registered vendor's emulator (exported by its folder's emulator package)."""
    import importlib
    import inspect

    from billbridge.connectors.registry import VENDORS
    from billbridge.emulation.server import EmulatorServer

    if vendor not in VENDORS:
        raise typer.BadParameter(f"unknown vendor {vendor!r}; known: {', '.join(sorted(VENDORS))}")
    module = importlib.import_module(f"{VENDORS[vendor]}.emulator")
    if hasattr(module, "RUN"):  # a vendor whose system is not an HTTP server (a file drop)
        _serve_emulator(module.RUN(port=port))
        return
    found = {name: cls for name, cls in inspect.getmembers(module, inspect.isclass)
             if issubclass(cls, EmulatorServer) and cls is not EmulatorServer
             and f"{cls.__module__}.".startswith(f"{module.__name__}.")}
    if not found:  # a system that is files in a folder, with nothing that listens
        raise typer.BadParameter(f"{vendor} has no emulator that listens: its system is files "
                                 "in a folder (`billbridge demo --time csv` writes some)")
    if kind:
        found = {n: c for n, c in found.items() if kind.lower() in n.lower()}
    if len(found) != 1:
        raise typer.BadParameter(f"{vendor} has emulators {sorted(found)}: pick one with --kind")
    [cls] = found.values()
    _serve_emulator(cls(port=port))


def _serve_emulator(server: Any) -> None:
    server.start()
    console.print(f"listening on {server.url}")
    if hasattr(server, "describe"):  # one line, unwrapped: a script may read it
        console.print(server.describe(), soft_wrap=True, markup=False, highlight=False)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    stop.wait()
    server.stop()


@app.command("reconcile")
def reconcile_cmd(database_url: DbOption = None, target: TargetOption = None,
                  period_end: Annotated[str | None, typer.Option(
                      help="bill-by date (YYYY-MM-DD; default today)")] = None,
                  parked_days: Annotated[int, typer.Option(
                      help="work parked longer than this many days is a finding")] = 7,
                  as_json: JsonOption = False) -> None:
    """Approved time, hub charges and the ERP's live postings (read from the ERP
    target, given as to `serve`) compared; every difference with amounts and
    the command that fixes it."""
    from datetime import date

    from billbridge.cli.render import render_reconciliation
    from billbridge.services.reconcile import reconcile

    try:
        end = date.fromisoformat(period_end) if period_end else _now().date()
    except ValueError:
        raise Invalid(f"--period-end {period_end!r} is not a date: use YYYY-MM-DD") from None
    hub = _hub(database_url, target)  # the targets as serve and worker build them
    result = reconcile(hub, period_end=end, now=_now(), parked_days=parked_days)
    if as_json:
        print(json.dumps(result.as_json(), indent=2))
        return
    render_reconciliation(console, result, end)


@token_app.command("create")
def token_create(role: Annotated[str, typer.Option(help="admin, operator, finance, auditor "
                                                   "or ingest")],
                 name: Annotated[str, typer.Option(help="who or what holds it")],
                 expires: Annotated[str, typer.Option(help="e.g. 90d, 12h")] = "90d",
                 source: Annotated[list[str] | None, typer.Option(
                     "--source", help="a source whose events the token may submit "
                                      "(repeatable; an ingest token needs one)")] = None,
                 event_type: Annotated[list[str] | None, typer.Option(
                     "--event-type", help="an event type the token may submit (repeatable; "
                                          "an ingest token needs one)")] = None,
                 database_url: DbOption = None, token_file: TokenFileOption = None) -> None:
    """Create a token (an admin's token acts); it is printed once and stored only as
    a hash. A store with no token at all takes the first, an admin's, without one."""
    import os

    from billbridge.engine import tokens
    from billbridge.services import tokens as services_tokens

    try:
        role_value = tokens.Role(role)
        lifetime = tokens.parse_duration(expires)
        _now() + lifetime  # an expiry past the year 9999 overflows here
        scope = tokens.Scope.of(source or [], event_type or []) if source or event_type \
            else None
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None
    except OverflowError:
        raise typer.BadParameter(f"expiry {expires!r} is too far ahead: give a lifetime such "
                                 "as 90d or 365d") from None
    # The first admin token sets a hub up, so it may create the store.
    engine = _engine(database_url, create=True)
    actor = None  # the store's first token, an admin's, needs none
    if token_file is not None or os.environ.get("BILLBRIDGE_TOKEN"):
        actor = _who(engine, token_file, Permission.ADMINISTER).name
    elif role_value is not tokens.Role.ADMIN:
        raise Invalid(NO_IDENTITY)
    token_id, token = services_tokens.create(engine, name=name, role=role_value,
                                             expires_in=lifetime, at=_now(), actor=actor,
                                             scope=scope)
    console.print(f"token {token_id} for {name} ({role_value.value}), expires in {expires}. "
                  "Keep it now; it is not shown again:")
    print(token)


@token_app.command("list")
def token_list(database_url: DbOption = None, token_file: TokenFileOption = None) -> None:
    """Tokens with their role, expiry, revocation and last use (never the token)."""
    from billbridge.services import tokens

    engine = _engine(database_url)
    _who(engine, token_file, Permission.ADMINISTER)
    rows = tokens.listing(engine)
    table = Table("id", "name", "role", "prefix", "expires", "revoked", "last used")
    for r in rows:
        table.add_row(str(r["id"]), r["name"], r["role"], r["prefix"] + "…",
                      str(r["expires_at"])[:16], str(r["revoked_at"] or "")[:16],
                      str(r["last_used_at"] or "")[:16])
    console.print(table)


@token_app.command("revoke")
def token_revoke(token_id: Annotated[int, typer.Argument(
                     help="the token's number (billbridge token list)")],
                 database_url: DbOption = None,
                 token_file: TokenFileOption = None) -> None:
    """Revoke a token at once (an admin's token acts)."""
    from billbridge.services import tokens

    engine = _engine(database_url)
    actor = _who(engine, token_file, Permission.ADMINISTER).name
    if tokens.revoke(engine, token_id, actor=actor, at=_now()):
        console.print(f"token {token_id} revoked")
    else:
        console.print(f"token {token_id} was revoked already")


@config_app.command("propose")
def config_propose(path: Annotated[Path, typer.Argument(
                       help="a configuration YAML file, or a folder of them")],
                   database_url: DbOption = None,
                   note: Annotated[str | None, typer.Option(
                       help="why, for the approver and the audit log")] = None,
                   token_file: TokenFileOption = None) -> None:
    """Propose a configuration folder as a new version (a second person approves)."""
    from billbridge.config_files import read_document
    from billbridge.domain.config import ConfigError
    engine = _engine(database_url)
    actor = _who(engine, token_file, Permission.CONFIG_PROPOSE).name
    try:
        document = read_document(path)
        version = config_versions.propose(engine, document, actor=actor, at=_now(), note=note)
    except ConfigError as exc:
        errors.print(f"[red]{escape(str(exc))}[/red]", soft_wrap=True)
        raise typer.Exit(1) from None
    console.print(f"proposed as version {version}; preview it with `billbridge config diff` and "
                  "have someone else run `billbridge config approve {version}`")


@config_app.command("approve")
def config_approve(version: Annotated[int, typer.Argument(
                       help="the proposed version's number (billbridge config versions)")],
                   database_url: DbOption = None,
                   token_file: TokenFileOption = None) -> None:
    """Activate a proposed version; its proposer cannot approve it."""
    engine = _engine(database_url)
    actor = _who(engine, token_file, Permission.CONFIG_APPROVE).name
    config_versions.decide(engine, version, "approve", actor=actor, at=_now())
    console.print(f"version {version} is active")


@config_app.command("versions")
def config_versions_cmd(database_url: DbOption = None) -> None:
    """Configuration versions, newest first, with who proposed and approved them."""
    with _engine(database_url).connect() as conn:
        rows = config_versions.versions(conn)
    table = Table("version", "status", "proposed by", "approved by", "note", "created")
    for r in rows:
        table.add_row(str(r["version"]), r["status"], r["proposed_by"], r["approved_by"] or "",
                      (r["note"] or "")[:40], str(r["created_at"])[:16])
    console.print(table)


@config_app.command("show")
def config_show(version: Annotated[int | None, typer.Argument(
                    help="the version to show (default: the active one)")] = None,
                as_json: Annotated[bool, typer.Option(
                    "--json", help="the version and its document as one JSON object")] = False,
                database_url: DbOption = None) -> None:
    """Print a configuration version as YAML (the active one unless VERSION is
    given), headed by its number, status, who proposed and approved it and when."""
    with _engine(database_url).connect() as conn:
        shown = config_versions.show(conn, version)
    if as_json:
        print(json.dumps(shown, indent=2))
        return
    # Plain print, not Rich: a document's text is data, never markup.
    print(_config_yaml(shown), end="")


def _config_yaml(shown: dict[str, Any]) -> str:
    """A version as YAML that `config propose` takes back: who and when as comments."""
    import yaml

    def when(at: str | None) -> str:  # ISO 8601 in UTC, from the use case
        return f" at {at[:16].replace('T', ' ')} UTC" if at else ""

    decided = {"active": "approved", "superseded": "approved", "rejected": "rejected"}.get(
        shown["status"])
    head = [f"# configuration version {shown['version']} ({shown['status']})",
            f"# proposed by {shown['proposed_by']}{when(shown['created_at'])}"]
    if decided and shown["approved_by"]:
        head.append(f"# {decided} by {shown['approved_by']}{when(shown['activated_at'])}")
    elif shown["status"] == "proposed":
        head.append("# not yet approved")
    if shown["note"]:
        head.append(f"# note: {' '.join(str(shown['note']).split())}")
    body = yaml.safe_dump(shown["document"], sort_keys=False, allow_unicode=True,
                          default_flow_style=False) if shown["document"] else "{}\n"
    return "\n".join(head) + "\n" + body


@secrets_app.command("new-key")
def secrets_new_key(out: Annotated[Path, typer.Argument(
        help="the key file to write (owner-only)")]) -> None:
    """Write a new encryption key to a file (mode 600)."""
    from billbridge.engine.secrets import new_key
    stores.write_private(out, new_key())
    console.print(f"key written to {out}; point BILLBRIDGE_SECRET_KEY_FILE at it")


@secrets_app.command("add")
def secrets_add(name: Annotated[str, typer.Argument(help="the connection's name")],
                vendor: Annotated[str, typer.Argument(help="a registered vendor's name")],
                base_url: Annotated[str, typer.Argument(help="the vendor API's base URL")],
                credential: Annotated[list[str] | None, typer.Option(
                    help="- to read KEY=VALUE lines from stdin (never the values "
                         "themselves: the command line shows in ps and shell history)")] = None,
                credential_file: Annotated[Path | None, typer.Option(
                    help="a file of KEY=VALUE lines")] = None,
                database_url: DbOption = None, token_file: TokenFileOption = None) -> None:
    """Store a connection with its credentials encrypted (an admin's token acts)."""
    from billbridge.connectors.base import Connection
    from billbridge.engine import secrets

    if any(item != "-" for item in credential or []):
        raise Invalid("credentials on the command line show in ps and shell history: pass "
                      "--credential - and type KEY=VALUE lines on stdin, or --credential-file "
                      "FILE")
    try:
        text = credential_file.read_text() if credential_file else ""
        if credential:
            text += "\n" + sys.stdin.read()
        pairs = secrets.parse_credentials(text)
        vault = secrets.Vault(secrets.load_key())
        engine = _engine(database_url)
        actor = _who(engine, token_file, Permission.ADMINISTER).name
        with engine.begin() as conn:
            secrets.save(conn, vault, Connection(name, vendor, base_url, pairs), actor=actor,
                         at=_now())
    except (OSError, ValueError, secrets.SecretsError) as exc:
        errors.print(f"[red]{escape(str(exc))}[/red]", soft_wrap=True)
        raise typer.Exit(1) from None
    console.print(f"connection {name} ({vendor}) saved with {len(pairs)} encrypted "
                  "credential(s)")


@secrets_app.command("list")
def secrets_list(database_url: DbOption = None) -> None:
    """Connections (never their credentials)."""
    from billbridge.engine import secrets

    with _engine(database_url).connect() as conn:
        rows = secrets.listing(conn)
    table = Table("name", "vendor", "base url", "key id", "updated")
    for r in rows:
        table.add_row(r["name"], r["vendor"], r["base_url"], r["key_id"],
                      str(r["updated_at"])[:16])
    console.print(table)


@secrets_app.command("rotate")
def secrets_rotate(new_key_file: Annotated[Path, typer.Argument(
                       help="the new key's file (billbridge secrets new-key)")],
                   database_url: DbOption = None,
                   token_file: TokenFileOption = None) -> None:
    """Re-encrypt every connection, and chain the audit log again, under the key in
    NEW_KEY_FILE (an admin's token acts); checkpoint the audit log afterwards."""
    from billbridge.engine import secrets

    old = secrets.Vault(secrets.load_key())
    new = secrets.Vault(new_key_file.read_bytes().strip())
    engine = _engine(database_url)
    actor = _who(engine, token_file, Permission.ADMINISTER).name
    with engine.begin() as conn:
        count = secrets.rotate(conn, old, new, actor=actor, at=_now())
    console.print(f"{count} connection(s) re-encrypted; now use {new_key_file} as the key")


@bench_app.command("burst")
def bench_burst(
        entries: Annotated[int, typer.Option(help="time entries in the burst")] = 10_000,
        store: Annotated[str, typer.Option(help="sqlite or postgres")] = "sqlite",
        workers: Annotated[int, typer.Option(help="`billbridge worker` processes")] = 1,
        dispatchers: Annotated[int, typer.Option(
            help="separate dispatching processes (`worker --no-process`); with any, the "
                 "workers only process (`--no-dispatch`)")] = 0,
        database_url: Annotated[str | None, typer.Option(
            "--database-url", help="with --store postgres: the server, e.g. "
            "postgresql://postgres@127.0.0.1:5432/postgres (a scratch database is made "
            "and dropped)")] = None,
        webhook_share: Annotated[float, typer.Option(
            help="share of entries also pushed as webhooks")] = 0.1,
        batch_size: Annotated[int, typer.Option(help="events per worker transaction")] = 1000,
        erp_concurrency: Annotated[int, typer.Option(
            help="calls the ERP takes at once (its dispatch lanes)")] = 4,
        floor_runs: Annotated[int, typer.Option(
            help="SQLite: replays of the burst's own rows through the store's least "
                 "lifecycle, right after it (bench floor); 0 for none")] = 1,
        as_json: JsonOption = False) -> None:
    """N approved entries pushed and polled, priced and posted to the emulated ERP;
    on SQLite with the store's floor under the same rows and the ratios to it."""
    from rich.progress import Progress

    from billbridge.bench.burst import run
    from billbridge.bench.floor import burst_with_floor
    from billbridge.bench.machine import reference_ms, sitting

    configure_logging(logging.WARNING)  # stdout is for the figures
    freeze_startup()  # the hub's intake in this process, as in `billbridge serve`

    reference = reference_ms()  # before the run, while the machine is as we found it
    load = sitting()

    def burst(progress: Any = None) -> dict[str, Any]:
        options: dict[str, Any] = {
            "store": store, "workers": workers, "dispatchers": dispatchers,
            "database_url": database_url, "webhook_share": webhook_share,
            "batch_size": batch_size, "erp_concurrency": erp_concurrency,
            "progress": progress}
        result = burst_with_floor(entries, runs=floor_runs, **options) \
            if store == "sqlite" and floor_runs > 0 else run(entries, **options)
        return result | {"machine_reference_ms": reference, "machine_before": load}

    if as_json:
        print(json.dumps(burst()))
        return
    with Progress(console=console) as bar:
        task = bar.add_task("posted to the ERP", total=entries)
        result = burst(lambda done, total: bar.update(task, completed=done))
    console.print(result)


@bench_app.command("floor")
def bench_floor(
        entries: Annotated[int, typer.Option(help="time entries to run")] = 20_000,
        runs: Annotated[int, typer.Option(help="replays of each kind")] = 3,
        batch: Annotated[int, typer.Option(
            help="entries whose rows go in one transaction (the worker's batch)")] = 200,
        as_json: JsonOption = False) -> None:
    """SQLite's floor under the burst: the burst's rows written again with no hub code."""
    from billbridge.bench.floor import run
    from billbridge.bench.machine import reference_ms

    configure_logging(logging.WARNING)  # stdout is for the figures
    reference = reference_ms()
    result = run(entries, runs=runs, batch=batch) | {"machine_reference_ms": reference}
    print(json.dumps(result) if as_json else json.dumps(result, indent=2))


@bench_app.command("ingest")
def bench_ingest(rate: Annotated[float, typer.Option(help="webhooks per second")] = 1000,
                 seconds: Annotated[float, typer.Option(help="how long to send")] = 30,
                 database_url: DbOption = None,
                 engine: Annotated[bool, typer.Option(
                     help="run workers in the serve process too (they compete for its CPU)")]
                 = False,
                 as_json: JsonOption = False) -> None:
    """Signed webhooks at a steady rate against `billbridge serve`: ack latency and loss."""
    from billbridge.bench.ingest import run
    from billbridge.bench.machine import reference_ms

    reference = reference_ms()
    result = run(rate, seconds, database_url=database_url,
                 serve_args=[] if engine else ["--no-engine"])
    result["machine_reference_ms"] = reference
    print(json.dumps(result) if as_json else json.dumps(result, indent=2))


@bench_app.command("machine")
def bench_machine(as_json: JsonOption = False) -> None:
    """How fast this machine runs Python now: the reference every bench prints."""
    from billbridge.bench.machine import ROUNDS, reference_ms

    result = {"machine_reference_ms": reference_ms(), "rounds": ROUNDS}
    print(json.dumps(result) if as_json else
          f"reference workload: {result['machine_reference_ms']} ms (median of {ROUNDS})")


@bench_app.command("replay")
def bench_replay(exceptions: Annotated[int, typer.Option(
                     help="time entries failing NO_RATE, fixed by one configuration change")]
                 = 10_000,
                 database_url: DbOption = None,
                 as_json: JsonOption = False) -> None:
    """A backlog of exceptions fixed by one approved configuration change and replayed."""
    from billbridge.bench.replay import run

    result = run(exceptions, database_url=database_url)
    print(json.dumps(result) if as_json else json.dumps(result, indent=2))


@bench_app.command("soak")
def bench_soak(seconds: Annotated[float, typer.Option(
                   envvar="SOAK_SECONDS", help="of traffic and chaos; settling follows")] = 300,
               settle_seconds: Annotated[float, typer.Option(
                   help="at most this long for the hub to settle afterwards")] = 300,
               erp_down_seconds: Annotated[float, typer.Option(
                   help="how long the ERP is down in the middle of the run")] = 60,
               seed: Annotated[int, typer.Option(help="the random seed of the load")] = 1,
               server_url: Annotated[str, typer.Option(
                   envvar="BILLBRIDGE_TEST_PG_URL",
                   help="PostgreSQL server; the soak creates and drops its own database")] =
               "postgresql://postgres@127.0.0.1:5432/postgres",
               as_json: JsonOption = False) -> None:
    """Chaos soak on PostgreSQL: kills, ERP outage, 429 storms, duplicate and late
    webhooks, overlapping polls; exits 1 unless source, hub and ERP reconcile."""
    from billbridge.bench.soak import SoakSettings, run

    settings = SoakSettings(seconds=seconds, settle_seconds=settle_seconds,
                            erp_down_seconds=erp_down_seconds, seed=seed)
    result = run(settings, server_url=server_url,
                 progress=lambda line: print(line, file=sys.stderr, flush=True))
    print(json.dumps(result) if as_json else json.dumps(result, indent=2))
    if not result["ok"]:
        raise typer.Exit(1)


@bench_app.command("console")
def bench_console(entries: Annotated[int, typer.Option(
                      help="time entries in the store")] = 100_000,
                  exceptions: Annotated[int, typer.Option(
                      help="open exceptions in the store")] = 5_000,
                  repeats: Annotated[int, typer.Option(
                      help="loads of each page")] = 5) -> None:
    """Median server time of every console page with a large store."""
    from billbridge.bench.console import run

    print(json.dumps(run(entries, exceptions, repeats), indent=2))


@config_app.command("validate")
def config_validate(path: Annotated[Path, typer.Argument(
        help="a configuration YAML file, or a folder of them")]) -> None:
    """Check a configuration folder (or file); name every problem; exit 1 if any.
    Warnings (a role no card prices, a rule that never applies, ...) are
    printed and leave the exit code 0."""
    from billbridge.config_files import load_folder
    from billbridge.domain.config import ConfigError
    from billbridge.domain.config_checks import findings

    try:
        _, config = load_folder(path)
    except ConfigError as exc:
        errors.print(f"[red]{escape(str(exc))}[/red]", soft_wrap=True)
        raise typer.Exit(1) from None
    found = findings(config)
    for finding in found:  # errors on stderr, warnings on stdout
        out, colour = (errors, "red") if finding.severity == "error" else (console, "yellow")
        out.print(f"[{colour}]{escape(str(finding))}[/{colour}]", soft_wrap=True,
                  highlight=False)
    if any(f.severity == "error" for f in found):
        raise typer.Exit(1)
    warned = f" ({len(found)} warning(s))" if found else ""
    console.print(f"{path}: valid{warned}: {len(config.legal_entities)} legal entities, "
                  f"{len(config.workers)} workers, {len(config.rate_cards)} rate card versions, "
                  f"{len(config.tax_rules)} tax rules, {len(config.fx_rates)} FX rates, "
                  f"{len(config.closed_periods)} closed periods")


@config_app.command("diff")
def config_diff(old: Annotated[Path, typer.Argument(help="the configuration in force")],
                new: Annotated[Path, typer.Argument(help="the proposed configuration")],
                scenarios: Annotated[Path, typer.Option(help="scenario folder to run")] =
                Path("scenarios"),
                as_json: JsonOption = False) -> None:
    """Which postings would change if NEW replaced OLD, over a scenario suite."""
    from billbridge.config_files import load_folder
    from billbridge.domain.config import ConfigError
    from billbridge.scenarios.diff import diff

    try:
        old_doc, _ = load_folder(old)
        new_doc, _ = load_folder(new)
    except ConfigError as exc:
        errors.print(f"[red]{escape(str(exc))}[/red]", soft_wrap=True)
        raise typer.Exit(1) from None
    suite = sorted(scenarios.glob("*.yaml"))
    if as_json:
        print(json.dumps([c.__dict__ for c in diff(old_doc, new_doc, suite)], indent=2))
        return
    from rich.progress import Progress

    with Progress(console=console, transient=True) as bar:
        task = bar.add_task("scenarios run under both", total=len(suite))
        changes = diff(old_doc, new_doc, suite,
                       progress=lambda done, _total: bar.update(task, completed=done))
    table = Table("scenario", "posting", "subject", "before", "after",
                  title=f"{len(changes)} posting(s) would change")
    for c in changes:
        table.add_row(c.scenario[:40], c.kind, c.subject, c.before, c.after)
    console.print(table)


@scenario_app.command("run")
def scenario_run(files: Annotated[list[Path], typer.Argument(
                     help="scenario YAML files")], as_json: JsonOption = False
                 ) -> None:
    """Run scenario files through the real engine; exit 1 if any fails (a file
    that cannot be run fails, saying why, and the others still run)."""
    from rich.progress import Progress

    from billbridge.scenarios.runner import run_files

    # On stderr, and gone when done: --json's output stays clean.
    with Progress(console=errors, transient=True) as bar:
        task = bar.add_task("scenarios", total=len(files))
        results = run_files(files, progress=lambda done, _total: bar.update(task,
                                                                             completed=done))
    if as_json:
        print(json.dumps([r.as_json() for r in results], indent=2, default=str))
    else:
        for r in results:
            mark = "[green]pass[/green]" if r.passed else "[red]FAIL[/red]"
            console.print(f"{mark} {escape(r.file)}: {escape(r.name)}", soft_wrap=True)
            for difference in r.differences:
                console.print(f"     {escape(difference)}", soft_wrap=True, highlight=False)
        passed = sum(r.passed for r in results)
        console.print(f"{passed} passed, {len(results) - passed} failed")
    if not all(r.passed for r in results):
        raise typer.Exit(1)


contracts_app = typer.Typer(help="Vendor contracts: check a vendor's answers against its "
                            "connector's contract, record a reviewed baseline.",
                            no_args_is_help=True)
app.add_typer(contracts_app, name="contracts")
ConnectionArg = Annotated[str, typer.Argument(
    help="the connection as for serve --source: NAME=VENDOR+URL (credentials from "
         "BILLBRIDGE_<NAME>_<KEY>)")]


def _render_check(report: Any, as_json: bool) -> None:
    if as_json:
        print(json.dumps(report.as_json(), indent=2))
        return
    console.print(f"{escape(report.connection)} at {escape(report.api_version)}: "
                  f"{report.records} records read", highlight=False)
    if not report.findings:
        console.print("[green]no drift: the vendor answers as the contract says[/green]")
        return
    table = Table("record", "field", "kind", "expected", "seen", "records")
    for f in report.findings:
        table.add_row(f["record_type"], f["field"], f["kind"], f["expected"], f["seen"],
                      str(f["count"]))
    console.print(table)


SampleOption = Annotated[int, typer.Option(
    min=1, max=1000, help="how many records to read from the vendor")]


@contracts_app.command("check")
def contracts_check(connection: ConnectionArg, database_url: DbOption = None,
                    sample: SampleOption = 50,
                    as_json: Annotated[bool, typer.Option(
                        "--json", help="the report as JSON")] = False,
                    api_version: Annotated[str | None, typer.Option(
                        "--api-version", help="read at this version instead of the pinned "
                        "one (e.g. v63.0), before proposing it")] = None) -> None:
    """Read a small sample from the vendor and report its drift from the
    connector's contract (the pinned version, the recorded baseline); exit 1 on drift."""
    from billbridge.services import contracts

    report = contracts.check(_engine(database_url), _sources([connection])[0], sample=sample,
                             api_version=api_version)
    _render_check(report, as_json)
    if report.findings:
        raise typer.Exit(1)


@contracts_app.command("record")
def contracts_record(connection: ConnectionArg, database_url: DbOption = None,
                     sample: SampleOption = 50, token_file: TokenFileOption = None) -> None:
    """After review: read a sample and keep its shape as the connection's new
    baseline (the drift kept for it is cleared; audited). An admin's token acts."""
    from billbridge.services import contracts

    engine = _engine(database_url)
    actor = _who(engine, token_file, Permission.ADMINISTER).name
    report = contracts.record(engine, _sources([connection])[0], actor=actor, at=_now(),
                              sample=sample)
    _render_check(report, False)
    console.print(f"baseline recorded for {escape(report.connection)} from "
                  f"{report.records} records", highlight=False)


def _bootstrap_config(hub: Hub, path: Path) -> None:
    """--config seeds an empty hub; once a configuration is active, changes go
    through propose and approve (maker-checker), never through a start flag."""
    from billbridge.config_files import read_document

    try:
        config_versions.bootstrap(hub, read_document(path), source=str(path))
    except Conflict as exc:  # a flag of `serve` or `worker`: a usage error, on stdout as ever
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from None


def main() -> None:
    app()
