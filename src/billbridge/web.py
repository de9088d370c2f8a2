"""The hub's web process: the API (api.app) with the console's pages
(console.views) mounted after it, served by uvicorn while a background thread
processes, dispatches and polls. The one module that knows both faces, so
neither imports the other. Without the engine thread the process is only the
API and the console, for deployments that run `billbridge worker` processes
beside it."""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, cast

import uvicorn
from fastapi import FastAPI

from billbridge.api.app import create_api
from billbridge.connectors.base import RateLimit, Source, WebhookReceiver
from billbridge.console.files import refusal as console_refusal
from billbridge.console.views import install as install_console
from billbridge.engine.hub import Hub
from billbridge.engine.runner import run
from billbridge.heap import freeze_startup
from billbridge.services.uploads import FileIntake


def create_app(hub: Hub, **options: Any) -> FastAPI:
    """The API (``options`` are api.app.create_api's) with the console's
    routes last in the table; a console form's body over the cap is answered
    on the console's page."""
    app = create_api(hub, refuse_page=console_refusal, **options)
    install_console(app)
    return app



class HubServer:
    """The API server and the engine loop, started and stopped together.
    Without ``process`` the loop only polls sources, for a hub whose work is
    done by `billbridge worker` processes; without ``engine`` there is no
    loop at all (the API and its webhooks only)."""

    def __init__(self, hub: Hub, *, host: str = "127.0.0.1", port: int = 8000,
                 sources: Sequence[Source] = (),
                 webhooks: Mapping[str, WebhookReceiver] | None = None,
                 poll_seconds: float = 5.0, engine: bool = True,
                 process: bool = True, open_metrics: bool = False,
                 secure_cookies: bool | None = None, scenarios: Path | None = None,
                 webhook_rates: Mapping[str, RateLimit] | None = None) -> None:
        self.hub = hub
        self.engine = engine
        self.stop_event = threading.Event()
        # The suite a configuration preview runs: given, or ./scenarios if there is one.
        suite = scenarios or (Path("scenarios") if Path("scenarios").is_dir() else None)
        # A source with a drop folder (timesheet files) takes uploads there.
        drops = {s.name: cast(FileIntake, s) for s in sources if hasattr(s, "read_file")}
        app = create_app(hub, webhooks=webhooks or {}, uploads=drops, scenarios=suite,
                         open_metrics=open_metrics, secure_cookies=secure_cookies,
                         webhook_rates=webhook_rates)
        self.server = uvicorn.Server(uvicorn.Config(app, host=host, port=port,
                                                    log_level="warning", access_log=False))
        self.engine_thread = threading.Thread(
            target=run, args=(hub, self.stop_event),
            kwargs={"sources": sources, "poll_seconds": poll_seconds, "process": process,
                    "dispatch": process},
            daemon=True,
            name="billbridge-engine")
        self.api_thread = threading.Thread(target=self.server.run, daemon=True,
                                           name="billbridge-api")

    @property
    def url(self) -> str:
        config = self.server.config
        port = config.port
        if self.server.started and self.server.servers:
            # With port 0 the operating system chose one: ask the socket.
            port = self.server.servers[0].sockets[0].getsockname()[1]
        return f"http://{config.host}:{port}"

    def start(self) -> None:
        if self.engine:
            self.engine_thread.start()
        self.api_thread.start()
        for _ in range(200):
            if self.server.started:
                return
            self.stop_event.wait(0.025)
        raise RuntimeError(f"the API did not start on {self.url}")

    def stop(self) -> None:
        self.stop_event.set()
        self.server.should_exit = True
        self.api_thread.join(timeout=5)
        if self.engine:
            self.engine_thread.join(timeout=5)

    def wait(self) -> None:
        """Block until interrupted (Ctrl-C or SIGTERM)."""
        import signal

        signal.signal(signal.SIGTERM, lambda *_: self.stop_event.set())
        try:
            while not self.stop_event.wait(0.5):
                pass
        except KeyboardInterrupt:
            pass
        self.stop()


def serve_hub(hub: Hub, *, host: str, port: int, sources: Sequence[Source] = (),
              webhooks: Mapping[str, WebhookReceiver] | None = None,
              engine: bool = True, open_metrics: bool = False,
              secure_cookies: bool | None = None,
              webhook_rates: Mapping[str, RateLimit] | None = None) -> None:
    server = HubServer(hub, host=host, port=port, sources=sources, webhooks=webhooks,
                       engine=engine, open_metrics=open_metrics, secure_cookies=secure_cookies,
                       webhook_rates=webhook_rates)
    server.start()
    freeze_startup()  # the app, its routes, the schema: out of the collector's full passes
    print(f"billbridge serving on {server.url} (health {server.url}/healthz, "
          f"metrics {server.url}/metrics)", flush=True)
    server.wait()
