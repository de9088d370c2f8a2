"""Security headers on every answer of the API and the console: no framing,
no MIME sniffing, no referrer, nothing stored by a browser or proxy unless a
route says otherwise, and a Content-Security-Policy. The console's pages
carry no inline script or style (one style sheet served from 'self'), so
theirs allows nothing else; JSON answers allow nothing at all. The API's
/docs and /redoc (api.docs) load Swagger UI and ReDoc from 'self' with no
inline script, so theirs allows 'self' and nothing else (images also as data:
URIs, which both draw their icons with; ReDoc's inline style and search
worker)."""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

CONSOLE_CSP = ("default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self'; "
               "frame-ancestors 'none'; base-uri 'none'")
API_CSP = "default-src 'none'; frame-ancestors 'none'; base-uri 'none'"
DOCS_CSP = ("default-src 'self'; img-src 'self' data:; form-action 'self'; "
            "frame-ancestors 'none'; base-uri 'none'")
# ReDoc draws with style elements and attributes it makes at run time
# (styled-components) and searches in a worker it makes from a blob: URL:
# inline style and that worker, still nothing from another origin. Its
# footer's logo, an image on Redocly's CDN, is refused by img-src.
REDOC_CSP = f"{DOCS_CSP}; style-src 'self' 'unsafe-inline'; worker-src 'self' blob:"
COMMON = [(b"x-frame-options", b"DENY"), (b"x-content-type-options", b"nosniff"),
          (b"referrer-policy", b"no-referrer")]


def policy(path: str) -> bytes:
    if path.startswith("/console"):
        return CONSOLE_CSP.encode()
    if path == "/docs":
        return DOCS_CSP.encode()
    if path == "/redoc":
        return REDOC_CSP.encode()
    return API_CSP.encode()


class SecurityHeaders:
    """Plain ASGI middleware (no body buffering): the webhook door is the hot path."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        csp = policy(scope["path"])

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                present = {name.lower() for name, _ in headers}
                headers += [(k, v) for k, v in COMMON if k not in present]
                if b"content-security-policy" not in present:
                    headers.append((b"content-security-policy", csp))
                if b"cache-control" not in present:
                    headers.append((b"cache-control", b"no-store"))
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_headers)
