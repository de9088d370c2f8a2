"""A real Tryton server for tests, on SQLite and 127.0.0.1.

The template database (modules activated, then the firm's one-time set-up
from ``tryton_setup.py``) takes about half a minute to build on two cores,
so it is built once and kept in the machine's cache (``cache_directory``),
keyed by the set-up script and the versions of trytond and its modules, so
that the next session and a fresh clone on the same machine reuse it. Each
test copies the file and starts its own ``trytond`` on a free port.
"""

from __future__ import annotations

import hashlib
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
SETUP = Path(__file__).with_name("tryton_setup.py")
BIN = Path(sys.executable).parent


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
    digest = hashlib.sha256(SETUP.read_bytes() + ",".join(MODULES).encode()
                            + "\n".join(versions).encode())
    return digest.hexdigest()[:16]


def cache_directory() -> Path:
    """Where built templates are kept: ``BILLBRIDGE_TEST_CACHE``, else the
    user's cache (``$XDG_CACHE_HOME`` or ``~/.cache``) under billbridge/."""
    if configured := os.environ.get("BILLBRIDGE_TEST_CACHE"):
        return Path(configured)
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "billbridge" / "tests"


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
    _run([sys.executable, str(SETUP), str(conf), DATABASE, str(work / "ids.json")], env=env)
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

    def options(self, **overrides: Any) -> dict[str, Any]:
        """The connection options a firm would configure for this database."""
        ids = self.ids
        return {"database": DATABASE, "company": ids["company"],
                "labour_product": ids["labour_product"], "revenue_account": ids["revenue"],
                "employees": ids["employees"], "taxes": ids["taxes"],
                "payment_term": ids["payment_term"], **overrides}
