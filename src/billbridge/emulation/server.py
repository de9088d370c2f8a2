"""The emulator server: ``ThreadingHTTPServer`` on 127.0.0.1 with routes,
JSON responses and fault injection applied to every non-admin route.

It is built on the standard library on purpose: the lost acknowledgement must
apply the write and then close the TCP connection without a byte of answer,
which an ASGI server does not let an application do.
"""

from __future__ import annotations

import contextlib
import json
import re
import socket
import ssl
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from billbridge.emulation.faults import Fault, FaultInjector, FaultRule, HeldRequest

ADMIN_PREFIX = "/_emulator/"


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]  # lower-cased names
    body: bytes
    params: dict[str, str] = field(default_factory=dict)

    def json(self) -> Any:
        return json.loads(self.body or b"null")

    def arg(self, name: str, default: str | None = None) -> str | None:
        values = self.query.get(name)
        return values[0] if values else default


@dataclass
class Response:
    status: int = 200
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)

    def encoded(self) -> bytes:
        if isinstance(self.body, bytes):
            return self.body
        if self.body is None:
            return b""
        return json.dumps(self.body, default=str).encode()


_NUMBER = re.compile(r'"\\u0000(-?[0-9.E+-]+)\\u0000"')


class DecimalResponse(Response):
    """Writes Decimal as a JSON number with its digits (``1400.00``), as the
    vendors do, not as a string or a rounded float."""

    def encoded(self) -> bytes:
        if isinstance(self.body, bytes) or self.body is None:
            return super().encoded()
        return decimal_json(self.body)


def decimal_json(body: Any) -> bytes:
    """JSON with each Decimal written as a number with its digits (``1400.00``)."""
    text = json.dumps(body, default=lambda v: f"\u0000{v}\u0000"
                      if isinstance(v, Decimal) else str(v))
    return _NUMBER.sub(r"\1", text).encode()


def error(status: int, code: str, message: str) -> Response:
    return Response(status, {"error": {"code": code, "message": message}})


def in_shape(response: Response, shape: Callable[[int, str], Response]) -> Response:
    """One of the base server's own ``error`` answers (an injected fault, an
    unknown route) as ``shape`` makes the vendor's (status, message), its
    headers kept; any other answer as it is."""
    body = response.body
    if not (isinstance(body, dict) and isinstance(body.get("error"), dict)):
        return response
    shaped = shape(response.status, str(body["error"].get("message")))
    shaped.headers.update(response.headers)
    return shaped


Handler = Callable[[Request], Response]


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    emulator: EmulatorServer

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that went away mid-request (a killed worker) is not an
        # emulator fault; anything else is printed as the standard server does.
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


class _RequestHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Without this, small responses on a kept-alive connection wait ~40 ms for
    # the client's delayed ACK (Nagle), which would slow every emulated call.
    disable_nagle_algorithm = True
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _handle(self) -> None:
        emulator = self.server.emulator
        split = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        request = Request(self.command, split.path, parse_qs(split.query),
                          {k.lower(): v for k, v in self.headers.items()}, body)
        response = emulator.dispatch(request, drop=self._drop)
        if response is None:
            return
        payload = response.encoded()
        self.send_response(response.status)
        headers = {"Content-Type": "application/json", **response.headers}
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        if self.command != "HEAD":  # HEAD answers the headers GET would, no body
            self.wfile.write(payload)

    def _drop(self) -> None:
        """Close the connection without answering: the lost acknowledgement."""
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.connection.shutdown(socket.SHUT_RDWR)

    do_GET = do_HEAD = do_POST = do_PUT = do_PATCH = do_DELETE = _handle


class EmulatorServer:
    """Base class of every emulator: routes, auth, faults, start/stop."""

    def __init__(self, *, port: int = 0, token: str | None = None,
                 tls: tuple[str, str] | None = None) -> None:
        self.tls = tls  # (certificate file, key file): serve HTTPS, as some clients insist
        self.faults = FaultInjector()
        self.token = token
        self.lock = threading.RLock()  # handlers hold it while they change state
        self._routes: list[tuple[str, re.Pattern[str], Handler]] = []
        self._port = port
        self._httpd: _Server | None = None
        self._thread: threading.Thread | None = None
        self.route("POST", "/_emulator/faults", self._admin_faults)
        self.route("GET", "/_emulator/faults", self._admin_fault_counts)

    # -- routing -------------------------------------------------------------
    def routes(self, table: Sequence[tuple[str, Handler]]) -> None:
        """``route`` each of ``("METHOD /path/{param}", handler)``."""
        for line, handler in table:
            method, _, pattern = line.partition(" ")
            self.route(method, pattern, handler)

    def route(self, method: str, pattern: str, handler: Handler) -> None:
        regex = "^" + re.sub(r"\{(\w+)\}", r"(?P<\1>[^/]+)", re.escape(pattern)
                             .replace(r"\{", "{").replace(r"\}", "}")) + "$"
        self._routes.append((method, re.compile(regex), handler))

    def _match(self, request: Request) -> Handler | None:
        for method, regex, handler in self._routes:
            found = regex.match(request.path)
            if found and method == request.method:
                request.params = found.groupdict()
                return handler
        return None

    def dispatch(self, request: Request, *, drop: Callable[[], None]) -> Response | None:
        handler = self._match(request)
        if handler is None:
            return error(404, "NOT_FOUND", f"no route for {request.method} {request.path}")
        admin = request.path.startswith(ADMIN_PREFIX)
        if not admin and self.token is not None and \
                request.headers.get("authorization") != f"Bearer {self.token}":
            return error(401, "UNAUTHORIZED", "missing or wrong bearer token")
        rule = FaultRule(Fault.OK) if admin else self.faults.next_rule(request.method,
                                                                       self.fault_path(request))
        if rule.fault is Fault.SERVER_ERROR:
            return error(rule.status, "SERVER_ERROR", "injected server error")
        if rule.fault is Fault.RATE_LIMITED:
            retry = {} if rule.retry_after is None else {"Retry-After": str(rule.retry_after)}
            return Response(429, {"error": {"code": "RATE_LIMITED",
                                            "message": "too many requests"}}, retry)
        if rule.fault is Fault.HOLD:
            self.faults.hold(HeldRequest(request.method, request.path, request.body), rule)
        try:
            if rule.fault is Fault.TIMEOUT:
                # A slow write: it holds the emulator's lock while it takes its time,
                # as a slow transaction holds its rows, then applies.
                with self.lock:
                    time.sleep(rule.delay)
                    response = handler(request)
            else:
                response = handler(request)
        except Exception as exc:  # an emulator bug answers 500 and keeps serving
            return error(500, "EMULATOR_ERROR", repr(exc))
        if rule.fault is Fault.LOST_ACK:
            drop()
            return None
        return response

    def fault_path(self, request: Request) -> str:
        """What a fault rule's ``path_prefix`` is matched against. An emulator
        whose calls all share one URL (JSON-RPC) names the call here instead."""
        return request.path

    # -- admin ---------------------------------------------------------------
    def _admin_faults(self, request: Request) -> Response:
        body = request.json() or {}
        if body.get("clear"):
            self.faults.clear()
        if body.get("release"):
            self.faults.release()
        if body.get("script"):
            self.faults.script(body["script"])
        if body.get("random"):
            self.faults.set_random(int(body["random"].get("seed", 0)), body["random"]["rates"])
        return self._admin_fault_counts(request)

    def _admin_fault_counts(self, _request: Request) -> Response:
        return Response(200, {"injected": {k.value: v for k, v in self.faults.injected.items()}})

    # -- lifecycle -------------------------------------------------------------
    @property
    def url(self) -> str:
        if self._httpd is None:
            raise RuntimeError("the emulator is not running")
        scheme = "https" if self.tls else "http"
        return f"{scheme}://127.0.0.1:{self._httpd.server_address[1]}"

    def start(self) -> EmulatorServer:
        self._httpd = _Server(("127.0.0.1", self._port), _RequestHandler)
        self._httpd.emulator = self
        if self.tls is not None:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(*self.tls)
            self._httpd.socket = context.wrap_socket(self._httpd.socket, server_side=True)
        self._thread = threading.Thread(target=self._httpd.serve_forever,
                                        kwargs={"poll_interval": 0.05}, daemon=True,
                                        name=type(self).__name__)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None

    def __enter__(self) -> EmulatorServer:
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.stop()
