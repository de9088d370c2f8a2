"""A fault-injecting proxy in front of a real Tryton server: Tryton is the
one ERP here that needs no emulator, but tests still need its lost
acknowledgements, timeouts and 429s. Every JSON-RPC call is forwarded to the
server; the base class's faults apply, matched on ``/{database}/{rpc method}``
(e.g. ``FaultRule(Fault.LOST_ACK, path_prefix="/db/model.timesheet.line.create")``):
a lost acknowledgement forwards the write, then drops the connection; a
timeout forwards it only after the client has given up.

Calls are forwarded one at a time, so a write delayed by a timeout fault
lands before any later call is served, as a slow transaction's locks would
hold back the next one.
"""

from __future__ import annotations

import json

import httpx

from billbridge.emulation.server import EmulatorServer, Request, Response


class TrytonFaultProxy(EmulatorServer):
    def __init__(self, *, upstream: str = "http://127.0.0.1:8000", port: int = 0) -> None:
        super().__init__(port=port)
        self.upstream = httpx.Client(base_url=upstream.rstrip("/"), timeout=120.0)
        self.forwarded = 0  # calls that reached Tryton
        self.route("POST", "/{database}/rpc/", self._forward)

    def fault_path(self, request: Request) -> str:
        try:
            method = json.loads(request.body or b"{}").get("method", "")
        except ValueError:
            method = ""
        return f"/{request.path.strip('/').split('/')[0]}/{method}"

    def _forward(self, request: Request) -> Response:
        headers = {k: v for k, v in request.headers.items()
                   if k in ("authorization", "content-type")}
        with self.lock:
            answer = self.upstream.post(request.path, content=request.body, headers=headers)
            self.forwarded += 1
        return Response(answer.status_code, answer.content,
                        {"Content-Type": answer.headers.get("content-type",
                                                            "application/json")})

    def stop(self) -> None:
        super().stop()
        self.upstream.close()
