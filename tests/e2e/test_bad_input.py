"""The error boundary: an ordinary mistake, at the command line or at the API,
is answered with what to fix and never with a traceback.

Each CLI row runs in-process (typer's CliRunner, exceptions not caught, so an
error that escapes the boundary fails the row with its traceback) and states
the exit code (2: a call to correct, 1: a refusal or failure) and a piece of
the one line that names what to fix. Each API row states the HTTP status, the
problem body's code and a piece of its detail. A few rows run `billbridge` as
a real process, where Python itself would print the traceback."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine
from typer.testing import CliRunner

from billbridge.api.problems import MEDIA_TYPE
from billbridge.cli.app import app
from billbridge.connectors.generic.webhooks import GenericWebhooks
from billbridge.engine import tokens
from billbridge.engine.hub import Hub
from billbridge.engine.secrets import new_key
from billbridge.web import create_app
from conftest import CONFIG, project_event, time_entry

ROOT = Path(__file__).parents[2]
EXAMPLE = ROOT / "scenarios" / "tm-worker-override.yaml"
PG_URL = os.environ.get("BILLBRIDGE_TEST_PG_URL", "")
# The environment each row starts from: no token, no key, no store of the caller's.
CLEAN = {"BILLBRIDGE_TOKEN": None, "BILLBRIDGE_TOKEN_FILE": None, "BILLBRIDGE_DATABASE_URL": None,
         "BILLBRIDGE_SECRET_KEY": None, "BILLBRIDGE_SECRET_KEY_FILE": None,
         "BILLBRIDGE_DEBUG": None, "BILLBRIDGE_WEBHOOK_SECRET": None, "COLUMNS": "200"}


def said(text: str) -> str:
    """The words of an output, without the frame typer draws round a usage error."""
    return " ".join(re.sub(r"[│╭╮╰╯─]", " ", text).split())


class Place:
    """Files and tokens the rows refer to, made once."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.url = f"sqlite:///{root / 'hub.db'}"
        self.key = root / "secret.key"
        self.key.write_bytes(new_key())
        self.env: dict[str, str | None] = {**CLEAN, "BILLBRIDGE_DATABASE_URL": self.url,
                                           "BILLBRIDGE_SECRET_KEY_FILE": str(self.key)}
        first = cli(["token", "create", "--role", "admin", "--name", "ada"], self.env)
        assert first.exit_code == 0, first.output
        self.admin = first.stdout.split()[-1]
        finance = cli(["token", "create", "--role", "finance", "--name", "fiona"],
                      {**self.env, "BILLBRIDGE_TOKEN": self.admin})
        assert finance.exit_code == 0, finance.output
        self.finance = finance.stdout.split()[-1]
        (root / "empty").mkdir()
        (root / "bad.yaml").write_text("rate_cards: [\n  - {id: x\n")
        (root / "bad-scenario.yaml").write_text("name: x\nevents: [\n")
        (root / "misspelt.yaml").write_text(EXAMPLE.read_text().replace("\nexpect:\n",
                                                                        "\nexpcet:\n"))
        (root / "config.yaml").write_text("legal_entities: []\n")
        (root / "events.json").write_text("[]")


def cli(args: list[str], env: dict[str, str | None]) -> Any:
    return CliRunner().invoke(app, args, env=env, catch_exceptions=False)


@pytest.fixture(scope="module")
def place(tmp_path_factory: pytest.TempPathFactory) -> Place:
    return Place(tmp_path_factory.mktemp("bad-input"))


@pytest.fixture(scope="module")
def taken_port() -> Iterator[int]:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        yield listener.getsockname()[1]


# (id, arguments, extra environment, exit code, a piece of the message)
# In arguments and environment: {root} is the rows' folder, {admin} and {finance}
# tokens, {key} a key file, {port} a port another process listens on.
ADMIN: dict[str, str | None] = {"BILLBRIDGE_TOKEN": "{admin}"}
FINANCE: dict[str, str | None] = {"BILLBRIDGE_TOKEN": "{finance}"}
NO_KEY: dict[str, str | None] = {"BILLBRIDGE_SECRET_KEY_FILE": None}
CLI_ROWS: list[tuple[str, list[str], dict[str, str | None], int, str]] = [
    ("reconcile-date", ["reconcile", "--period-end", "31/03/2026"], {}, 2,
     "--period-end '31/03/2026' is not a date: use YYYY-MM-DD"),
    ("validate-missing", ["config", "validate", "MISSING"], {}, 2,
     "MISSING: no such file or folder"),
    ("propose-missing", ["config", "propose", "MISSING"], FINANCE, 2,
     "MISSING: no such file or folder"),
    ("diff-missing", ["config", "diff", "MISSING", "{root}/empty"], {}, 2,
     "MISSING: no such file or folder"),
    ("scenario-missing", ["scenario", "run", "missing.yaml"], {}, 1,
     "missing.yaml: cannot read the scenario: No such file or directory"),
    ("scenario-folder", ["scenario", "run", "{root}"], {}, 1,
     "is a folder: name the scenario files in it"),
    ("scenario-yaml", ["scenario", "run", "{root}/bad-scenario.yaml"], {}, 1,
     "bad-scenario.yaml: line 3, column 1:"),
    ("scenario-misspelt", ["scenario", "run", "{root}/misspelt.yaml"], {}, 1,
     "unknown key 'expcet' at the top level; did you mean 'expect'?"),
    ("ingest-missing", ["ingest", "missing.json", "--source", "harvest"], ADMIN, 2,
     "missing.json: no such file or folder"),
    ("ingest-folder", ["ingest", "{root}/empty", "--source", "harvest"], ADMIN, 2,
     "empty is a folder: give a file"),
    ("sqlite-folder", ["migrate", "--database-url", "sqlite:////nonexistent/dir/x.db"], {}, 1,
     "cannot open the store sqlite:////nonexistent/dir/x.db: its folder does not exist"),
    ("url-nonsense", ["migrate", "--database-url", "nonsense"], {}, 2,
     "'nonsense' is not a database URL"),
    ("unknown-command", ["status-of-nothing"], {}, 2, "No such command 'status-of-nothing'"),
    ("url-unknown-dialect", ["lineage", "x", "--database-url", "foo://x"], {}, 2,
     "'foo://x' is not a database URL"),
    ("demo-port", ["demo", "--port", "{port}", "--no-serve", "--workdir", "{root}/demo"], {}, 1,
     "is taken (another billbridge demo or serve?): stop it, or choose another with --port"),
    ("serve-port", ["serve", "--port", "{port}"], {"BILLBRIDGE_WEBHOOK_SECRET": "s"}, 1,
     "choose another with --port"),
    ("token-overflow", ["token", "create", "--role", "admin", "--name", "x", "--expires",
                        "99999999999d"], ADMIN, 2, "expiry '99999999999d' is too far ahead"),
    ("token-past-9999", ["token", "create", "--role", "admin", "--name", "x", "--expires",
                         "9999999d"], ADMIN, 2, "expiry '9999999d' is too far ahead"),
    ("token-expiry-shape", ["token", "create", "--role", "admin", "--name", "x", "--expires",
                            "soon"], ADMIN, 2, "expiry 'soon' must look like 90d, 12h or 30m"),
    ("emulator-of-files", ["emulator", "run", "csv"], {}, 2,
     "csv has no emulator that listens: its system is files in a folder"),
    ("token-revoke-unknown", ["token", "revoke", "999"], ADMIN, 1,
     "no token 999: `billbridge token list` shows the ids"),
    ("token-role", ["token", "create", "--role", "boss", "--name", "x"], ADMIN, 2,
     "'boss' is not a valid Role"),
    ("no-token", ["config", "propose", "{root}/config.yaml"], {}, 2,
     "needs your token: set BILLBRIDGE_TOKEN or pass --token-file FILE"),
    ("forged-token", ["config", "propose", "{root}/config.yaml"],
     {"BILLBRIDGE_TOKEN": "bb_forged"}, 2, "the token is refused"),
    ("token-file-missing", ["config", "approve", "1", "--token-file", "{root}/nowhere"], {}, 2,
     "cannot read the token file: No such file or directory"),
    ("role-may-not", ["exceptions", "dismiss", "1", "--note", "noise"], FINANCE, 2,
     "fiona: role finance may not act"),
    ("approve-unknown", ["config", "approve", "99"], FINANCE, 1,
     "there is no configuration version 99"),
    ("validate-yaml", ["config", "validate", "{root}/bad.yaml"], {}, 1, "not valid YAML"),
    ("validate-empty-folder", ["config", "validate", "{root}/empty"], {}, 1, "no YAML files"),
    ("source-shape", ["worker", "--source", "garbage", "--idle-exit", "0"], {}, 2,
     "expected NAME=URL or NAME=VENDOR+URL, got 'garbage'"),
    ("source-vendor", ["worker", "--source", "hr=harvset+http://127.0.0.1:1", "--idle-exit",
                       "0"], {}, 2, "unknown vendor 'harvset'"),
    ("target-vendor", ["reconcile", "--target", "erp=ledgr+http://127.0.0.1:1"], {}, 2,
     "unknown vendor 'ledgr'"),
    ("target-stored-no-key", ["reconcile", "--target", "erp"], NO_KEY, 1,
     "no encryption key: set BILLBRIDGE_SECRET_KEY or BILLBRIDGE_SECRET_KEY_FILE"),
    ("lineage-unknown", ["lineage", "te-nowhere"], {}, 1, "nothing is known by 'te-nowhere'"),
    ("replay-reason", ["exceptions", "replay", "--reason", "NO_RATEE"], ADMIN, 2,
     "unknown reason code 'NO_RATEE'; did you mean NO_RATE?"),
    ("replay-both", ["exceptions", "replay", "1", "--reason", "NO_RATE"], ADMIN, 2,
     "give exception ids or --reason, not both"),
    ("retry-unknown", ["exceptions", "retry", "999"], ADMIN, 1, "exception 999"),
    ("dismiss-no-note", ["exceptions", "dismiss", "1"], ADMIN, 2,
     "Missing option '--note'"),
    # --reason is a reason code everywhere: free text for a dismissal is --note.
    ("dismiss-reason-text", ["exceptions", "dismiss", "1", "--reason", "noise"], ADMIN, 2,
     "No such option: --reason"),
    ("list-reason", ["exceptions", "list", "--reason", "NO_RATEE"], {}, 2,
     "unknown reason code 'NO_RATEE'; did you mean NO_RATE? (known: PROJECT_UNKNOWN"),
    ("list-reason-lower", ["exceptions", "list", "--reason", "no_rate"], {}, 2,
     "did you mean NO_RATE?"),
    ("status-url-nonsense", ["status", "--database-url", "nonsense"], {}, 2,
     "'nonsense' is not a database URL"),
    ("store-not-there", ["exceptions", "list", "--database-url", "sqlite:///{root}/nowhere.db"],
     {}, 1, "nowhere.db does not exist here"),
    ("retry-wait-type", ["exceptions", "retry", "1", "--wait", "soon"], ADMIN, 2,
     "Invalid value for '--wait'"),
    ("emulator-vendor", ["emulator", "run", "nosuch"], {}, 2, "unknown vendor 'nosuch'"),
    ("audit-no-key", ["audit", "verify"], NO_KEY, 1, "keyed by the hub's secret key"),
    ("rotate-missing-key", ["secrets", "rotate", "{root}/no-such.key"], ADMIN, 2,
     "no-such.key: no such file or folder"),
    ("credential-on-line", ["secrets", "add", "erp", "ledger", "http://x", "--credential",
                            "password=hunter2"], ADMIN, 2,
     "credentials on the command line show in ps and shell history"),
    ("parked-days-type", ["reconcile", "--parked-days", "many"], {}, 2,
     "Invalid value for '--parked-days'"),
    ("invoice-unknown", ["invoices", "show", "inv_nowhere"], {}, 1,
     "there is no invoice 'inv_nowhere'"),
    ("invoices-status", ["invoices", "list", "--status", "payed"], {}, 2,
     "unknown invoice status 'payed': use one of draft, posted, issued, paid, void"),
    ("invoices-currency", ["invoices", "list", "--currency", "dollars"], {}, 2,
     "unknown currency 'dollars': give an ISO 4217 code"),
    ("invoices-period-end", ["invoices", "list", "--period-end", "31/03/2026"], {}, 2,
     "period end '31/03/2026' is not a date: write it YYYY-MM-DD"),
    ("billing-preview-date", ["billing", "preview", "--period-end", "2026-02-30"], {}, 2,
     "period end '2026-02-30' is not a date"),
    ("billing-preview-no-config", ["billing", "preview", "--period-end", "2026-03-31"], {}, 1,
     "no configuration is active"),
    ("billing-run-date", ["billing", "run", "--period-end", "31/03/2026"], FINANCE, 2,
     "write it YYYY-MM-DD"),
    ("billing-run-no-period", ["billing", "run"], FINANCE, 2,
     "Missing option '--period-end'"),
    ("billing-run-no-token", ["billing", "run", "--period-end", "2026-03-31"], {}, 2,
     "this changes the hub, so it needs your token"),
    ("billing-run-no-config", ["billing", "run", "--period-end", "2026-03-31"], FINANCE, 1,
     "no configuration is active"),
]
if PG_URL:
    CLI_ROWS.append(("postgres-no-db", ["migrate", "--database-url",
                                        PG_URL.rsplit("/", 1)[0] + "/no_such_db"], {}, 1,
                     'database "no_such_db" does not exist'))


def fill(text: str | None, place: Place, port: int) -> str | None:
    if text is None:
        return None
    return text.format(root=place.root, admin=place.admin, finance=place.finance,
                       key=place.key, port=port)


@pytest.mark.parametrize(("args", "env", "code", "message"),
                         [row[1:] for row in CLI_ROWS], ids=[row[0] for row in CLI_ROWS])
def test_a_cli_mistake_is_one_line_saying_what_to_fix(
        place: Place, taken_port: int, args: list[str], env: dict[str, str | None], code: int,
        message: str) -> None:
    result = cli([str(fill(a, place, taken_port)) for a in args],
                 {**place.env, **{k: fill(v, place, taken_port) for k, v in env.items()}})
    assert "Traceback" not in result.output
    assert result.exit_code == code, result.output
    assert message in said(result.output), result.output
    # A scenario's verdict, and each exception acted on, is the command's report, on stdout.
    if not {"scenario", "retry"} & set(args):
        assert message in said(result.stderr), "not on stderr: " + result.output
        assert "unexpected error" not in result.output


def test_the_table_covers_at_least_thirty_command_line_mistakes() -> None:
    assert len(CLI_ROWS) >= 30


def test_a_failed_run_leaves_the_other_demo_alone(place: Place, taken_port: int) -> None:
    """A second demo refused for its port does not clear the first one's folder."""
    workdir = place.root / "running-demo"
    workdir.mkdir()
    (workdir / "hub.db").write_text("the first demo's store")
    result = cli(["demo", "--port", str(taken_port), "--workdir", str(workdir)], place.env)
    assert result.exit_code == 1
    assert (workdir / "hub.db").read_text() == "the first demo's store"


def test_debug_lets_the_exception_through(place: Place) -> None:
    with pytest.raises(FileNotFoundError):
        cli(["--debug", "config", "validate", "MISSING"], place.env)
    with pytest.raises(FileNotFoundError):
        cli(["config", "validate", "MISSING"], {**place.env, "BILLBRIDGE_DEBUG": "1"})


def test_an_unforeseen_fault_is_one_line_pointing_at_debug(
        place: Place, monkeypatch: pytest.MonkeyPatch) -> None:
    from billbridge.services import lineage

    def broken(*_: Any) -> None:
        raise KeyError("disk on fire")

    monkeypatch.setattr(lineage, "trace", broken)
    result = cli(["lineage", "te-1"], place.env)
    assert result.exit_code == 1
    assert result.stderr.strip() == ("unexpected error: KeyError: 'disk on fire' (run again "
                                     "with --debug for the traceback, and report it)")


def _billbridge(*args: str, env: dict[str, str | None]) -> subprocess.CompletedProcess[str]:
    merged = {k: v for k, v in {**os.environ, **env}.items() if v is not None}
    return subprocess.run([sys.executable, "-m", "billbridge", *args], capture_output=True,
                          text=True, timeout=120, env=merged)


@pytest.mark.parametrize(("args", "code", "line"), [
    (["config", "validate", "MISSING"], 2, "MISSING: no such file or folder"),
    (["migrate", "--database-url", "sqlite:////nonexistent/dir/x.db"], 1,
     "cannot open the store sqlite:////nonexistent/dir/x.db: its folder does not exist or "
     "cannot be written (SQLite makes the file, not the folder); check --database-url or "
     "BILLBRIDGE_DATABASE_URL"),
], ids=["missing-file", "store-folder"])
def test_a_real_process_prints_one_line_and_a_traceback_only_with_debug(
        place: Place, args: list[str], code: int, line: str) -> None:
    quiet = _billbridge(*args, env={**CLEAN, "COLUMNS": "80"})
    assert (quiet.returncode, quiet.stdout, quiet.stderr) == (code, "", line + "\n")
    loud = _billbridge("--debug", *args, env=CLEAN)
    assert loud.returncode == 1 and "Traceback (most recent call last)" in loud.stderr


# The API: the same mistakes arrive as problem bodies (RFC 9457 with the hub's code).
SECRET = "s3cret"
on_sqlite = pytest.mark.parametrize("engine", ["sqlite"], indirect=True)


@pytest.fixture
def client(engine: Engine) -> Iterator[tuple[TestClient, dict[str, str]]]:
    hub = Hub(engine, {})
    hub.activate_config(CONFIG)
    hub.ingest([project_event(), time_entry("te-1")], source="harvest")
    with hub.engine.begin() as conn:
        _, token = tokens.create(conn, name="ada", role=tokens.Role.ADMIN,
                                 expires_in=timedelta(days=1), actor="test", at=datetime.now(UTC))
    with TestClient(create_app(hub, webhooks={"generic": GenericWebhooks(SECRET)}),
                    raise_server_exceptions=False) as test_client:
        yield test_client, {"Authorization": f"Bearer {token}"}


# (id, method, path, request keywords, authorised, status, code, a piece of the detail)
API_ROWS: list[tuple[str, str, str, dict[str, Any], bool, int, str, str]] = [
    ("no-auth", "GET", "/v1/exceptions", {}, False, 401, "UNAUTHENTICATED", "token"),
    ("forged-auth", "GET", "/v1/exceptions", {"headers": {"Authorization": "Bearer bb_x"}},
     False, 401, "UNAUTHENTICATED", "unknown token"),
    ("unknown-exception", "GET", "/v1/exceptions/424242", {}, True, 404, "NOT_FOUND", "424242"),
    ("retry-unknown", "POST", "/v1/exceptions/424242/retry", {}, True, 404, "NOT_FOUND",
     "424242"),
    ("lineage-unknown", "GET", "/v1/lineage/te-nowhere", {}, True, 404, "NOT_FOUND",
     "nothing is known by 'te-nowhere'"),
    ("version-unknown", "GET", "/v1/config/versions/999", {}, True, 404, "NOT_FOUND", "999"),
    ("limit-type", "GET", "/v1/exceptions?limit=many", {}, True, 422, "INVALID_REQUEST",
     "limit"),
    ("period-end-shape", "GET", "/v1/reconcile?period_end=31/03/2026", {}, True, 422,
     "INVALID_REQUEST", "period_end"),
    ("proposal-bad-json", "POST", "/v1/config/proposals",
     {"content": b"{not json", "headers": {"content-type": "application/json"}}, True, 422,
     "INVALID_REQUEST", "JSON"),
    ("proposal-wrong-type", "POST", "/v1/config/proposals", {"json": ["rate_cards"]}, True,
     422, "INVALID_REQUEST", "body"),
    ("rollback-wrong-type", "POST", "/v1/config/rollback", {"json": {"to_version": "one"}},
     True, 422, "INVALID_REQUEST", "to_version"),
    ("dismiss-no-note", "POST", "/v1/exceptions/1/dismiss", {"json": {}}, True, 422,
     "INVALID_REQUEST", "note"),
    ("dismiss-reason-is-a-code", "POST", "/v1/exceptions/1/dismiss",
     {"json": {"reason": "noise"}}, True, 422, "INVALID_REQUEST", "reason"),
    ("list-reason-unknown", "GET", "/v1/exceptions?reason=NO_RATEE", {}, True, 422,
     "INVALID", "unknown reason code 'NO_RATEE'; did you mean NO_RATE?"),
    ("lineage-over-long", "GET", "/v1/lineage/" + "x" * 5000, {}, True, 422,
     "INVALID_REQUEST", "ident: String should have at most 300 characters"),
    ("schema-unknown", "GET", "/v1/schemas/time_entry.upsertd", {}, True, 404, "NOT_FOUND",
     "time_entry.upsertd"),
    ("webhook-unknown-source", "POST", "/v1/webhooks/nobody", {"content": b"{}"}, False, 404,
     "UNKNOWN_SOURCE", "nobody"),
    ("webhook-unsigned", "POST", "/v1/webhooks/generic", {"content": b"{}"}, False, 401,
     "BAD_SIGNATURE", "not signed (X-Generic-Signature missing)"),
    ("unknown-route", "GET", "/v1/invoicez", {}, True, 404, "NOT_FOUND", "/v1/invoicez"),
    ("wrong-method", "DELETE", "/v1/inbox", {}, True, 405, "METHOD_NOT_ALLOWED", "GET"),
    ("invoice-unknown", "GET", "/v1/invoices/inv_nowhere", {}, True, 404, "NOT_FOUND",
     "there is no invoice 'inv_nowhere'"),
    ("invoices-status", "GET", "/v1/invoices?status=payed", {}, True, 422, "INVALID_REQUEST",
     "status: String should match pattern '^(draft|posted|issued|paid|void)$'"),
    ("invoices-currency", "GET", "/v1/invoices?currency=dollars", {}, True, 422,
     "INVALID_REQUEST", "currency: String should match pattern"),
    ("invoices-period-end", "GET", "/v1/invoices?period_end=31/03/2026", {}, True, 422,
     "INVALID_REQUEST", "period_end"),
    ("billing-preview-date", "POST", "/v1/billing/preview",
     {"json": {"period_end": "31/03/2026"}}, True, 422, "INVALID_REQUEST",
     "period_end: Value error, must be a date written YYYY-MM-DD"),
    ("billing-run-date", "POST", "/v1/billing/commit", {"json": {"period_end": "2026-02-30"}},
     True, 422, "INVALID_REQUEST", "period_end"),
    ("billing-run-seconds", "POST", "/v1/billing/commit", {"json": {"period_end": 1774915200}},
     True, 422, "INVALID_REQUEST", "must be a date written YYYY-MM-DD"),
    ("billing-run-no-body", "POST", "/v1/billing/commit", {}, True, 422, "INVALID_REQUEST",
     "body"),
    ("billing-run-unknown", "GET", "/v1/billing/runs/run-1999-01-01", {}, True, 404,
     "NOT_FOUND", "there is no billing run 'run-1999-01-01'"),
]


@on_sqlite
@pytest.mark.parametrize(("method", "path", "sent", "authorised", "status", "code",
                          "detail"), [row[1:] for row in API_ROWS],
                         ids=[row[0] for row in API_ROWS])
def test_an_api_mistake_is_a_problem_body_saying_what_to_fix(
        client: tuple[TestClient, dict[str, str]], method: str, path: str,
        sent: dict[str, Any], authorised: bool, status: int, code: str,
        detail: str) -> None:
    test_client, admin = client
    headers = {**(admin if authorised else {}), **sent.get("headers", {})}
    response = test_client.request(method, path, **{**sent, "headers": headers})
    assert "Traceback" not in response.text
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == MEDIA_TYPE
    body = response.json()
    assert body["code"] == code, body
    assert detail in body["detail"], body


def test_the_api_table_covers_at_least_ten_mistakes() -> None:
    assert len(API_ROWS) >= 10
