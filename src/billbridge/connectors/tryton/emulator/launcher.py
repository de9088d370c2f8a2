"""A real Tryton server on 127.0.0.1 with a SQLite database, for the tests
and the demo (trytond is not a runtime dependency: ``pip install
'billbridge[tryton]'`` brings it).

The template database (modules activated, then the firm's one-time set-up
from ``setup.py``) takes about half a minute to build on two cores, so it is
built once into a folder the caller chooses and reused while the set-up
script and the versions of trytond and its modules stay the same
(``template_key``). Each server copies the file into its own folder and
starts its own ``trytond`` on a free port.
"""

from __future__ import annotations

import base64
import hashlib
import importlib.util
import json
import os
import shutil
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

import httpx

DATABASE = "billbridge"
PASSWORD = "tryton-admin"  # the test database's admin password, nothing else
MODULES = ("project_invoice",)  # with its dependencies: timesheet, account_invoice, ...
SETUP = "billbridge.connectors.tryton.emulator.setup"
BIN = Path(sys.executable).parent
INSTALL = "pip install 'billbridge[tryton]'"


def missing() -> str | None:
    """What to install to run a Tryton server here, in one line; None when
    trytond, its project invoicing module and proteus are all installed."""
    for module in ("trytond", "trytond.modules.project_invoice", "proteus"):
        try:
            found = importlib.util.find_spec(module)
        except ModuleNotFoundError:
            found = None
        if found is None:
            return f"Tryton is not installed here ({module} is missing): {INSTALL}"
    return None


def _conf(directory: Path, port: int | None = None) -> Path:
    text = f"[database]\nuri = sqlite://\npath = {directory}\n"
    if port is not None:
        text += f"[web]\nlisten = 127.0.0.1:{port}\n"
    conf = directory / "trytond.conf"
    conf.write_text(text)
    return conf


def _run(args: list[str], *, env: dict[str, str] | None = None) -> None:
    done = subprocess.run(args, capture_output=True, text=True, env=env, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} failed ({done.returncode}):\n"
                           f"{done.stdout[-2000:]}\n{done.stderr[-4000:]}")


@dataclass(frozen=True)
class Template:
    """The prepared database file and the ids of what the set-up created."""

    file: Path
    ids: dict[str, Any]


def template_key() -> str:
    """What the template depends on: the set-up script, the modules asked
    for, and the version of every trytond distribution installed."""
    versions = sorted(f"{d.metadata['Name']}=={d.version}" for d in metadata.distributions()
                      if (d.metadata["Name"] or "").lower().startswith("trytond"))
    digest = hashlib.sha256(Path(__file__).with_name("setup.py").read_bytes()
                            + ",".join(MODULES).encode()
                            + "\n".join(versions).encode())
    return digest.hexdigest()[:16]


def template_directory() -> Path:
    """Where the demo keeps its template: the user's cache (``$XDG_CACHE_HOME``
    or ``~/.cache``) under billbridge/, one folder per ``template_key``."""
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "billbridge" / f"tryton-{template_key()}"


def build_template(directory: Path) -> Template:
    """Build the template in ``directory`` unless a complete one is there."""
    file, ids = directory / f"{DATABASE}.sqlite", directory / "ids.json"
    if file.exists() and ids.exists():
        return Template(file, json.loads(ids.read_text()))
    work = directory / f"building-{os.getpid()}"  # two sessions may build at once
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    conf = _conf(work)
    (work / f"{DATABASE}.sqlite").touch()
    (work / "password").write_text(PASSWORD)
    env = {**os.environ, "TRYTONPASSFILE": str(work / "password")}
    _run([str(BIN / "trytond-admin"), "-c", str(conf), "-d", DATABASE, "--all",
          "--email", "admin@example.com", "-u", *MODULES, "--activate-dependencies"], env=env)
    _run([sys.executable, "-m", SETUP, str(conf), DATABASE, str(work / "ids.json")], env=env)
    os.replace(work / f"{DATABASE}.sqlite", file)
    os.replace(work / "ids.json", ids)  # last: its presence says the template is complete
    shutil.rmtree(work, ignore_errors=True)
    return Template(file, json.loads(ids.read_text()))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class TrytonServer:
    """``trytond`` serving a private copy of the template."""

    def __init__(self, template: Template, directory: Path) -> None:
        self.directory = directory
        self.port = free_port()
        shutil.copyfile(template.file, directory / f"{DATABASE}.sqlite")
        self.conf = _conf(directory, self.port)
        self.ids = template.ids
        self.log = directory / "trytond.log"
        self._process: subprocess.Popen[bytes] | None = None
        self._session: str | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 60.0) -> TrytonServer:
        with self.log.open("wb") as log:
            self._process = subprocess.Popen(
                [str(BIN / "trytond"), "-c", str(self.conf), "-d", DATABASE],
                stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise RuntimeError(f"trytond exited: {self.log.read_text()[-3000:]}")
            try:
                answer = httpx.post(f"{self.url}/{DATABASE}/rpc/", timeout=5, json={
                    "method": "common.db.login", "id": 0,
                    "params": ["admin", {"password": PASSWORD}, "en"]})
                if answer.status_code == 200 and "result" in answer.json():
                    return self
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"trytond did not answer in {timeout} s: "
                           f"{self.log.read_text()[-3000:]}")

    def stop(self) -> None:
        if self._process is not None and self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(10)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
        self._process = None

    def _rpc(self, method: str, *params: Any) -> Any:
        """One JSON-RPC call as the admin (logged in on first use)."""
        if self._session is None:
            login = self._call("common.db.login", ["admin", {"password": PASSWORD}, "en"], {})
            user, session = login[0], login[1]
            self._session = base64.b64encode(f"admin:{user}:{session}".encode()).decode()
        return self._call(method, list(params),
                          {"Authorization": f"Session {self._session}"})

    def _call(self, method: str, params: list[Any], headers: dict[str, str]) -> Any:
        answer = httpx.post(f"{self.url}/{DATABASE}/rpc/", headers=headers, timeout=120,
                            json={"method": method, "params": params, "id": 1}).json()
        if answer.get("error"):
            raise RuntimeError(f"tryton {method}: {answer['error']}")
        return answer["result"]

    def pay(self, invoice_id: int) -> None:
        """The accountant records the customer's payment of the whole invoice
        with Tryton's Pay wizard (cash, the set-up's payment method)."""
        context = {"company": self.ids["company"], "companies": [self.ids["company"]]}
        active = {**context, "active_model": "account.invoice", "active_id": invoice_id,
                  "active_ids": [invoice_id]}
        wizard = "wizard.account.invoice.pay"
        session = self._rpc(f"{wizard}.create", context)[0]
        view = self._rpc(f"{wizard}.execute", session, {}, "start", active)
        values = {k: v for k, v in view["view"]["defaults"].items() if "." not in k}
        values["payment_method"] = self.ids["payment_method"]
        self._rpc(f"{wizard}.execute", session, {"start": values}, "choice", active)
        self._rpc(f"{wizard}.delete", session, active)

    def options(self, **overrides: Any) -> dict[str, Any]:
        """The connection options a firm would configure for this database."""
        ids = self.ids
        return {"database": DATABASE, "company": ids["company"],
                "labour_product": ids["labour_product"], "revenue_account": ids["revenue"],
                "employees": ids["employees"], "taxes": ids["taxes"],
                "payment_term": ids["payment_term"], **overrides}
