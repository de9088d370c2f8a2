"""The API's documentation pages, served with no request leaving the host:
Swagger UI at /docs and ReDoc at /redoc, their scripts, style sheets and
icon from the fastapi-offline package under /docs/assets. FastAPI's own
Swagger UI page starts it with an inline script; here that script is served
as /docs/assets/swagger-init.js, so the page's Content-Security-Policy
(api.headers.DOCS_CSP) allows scripts and styles from 'self' only; ReDoc's
(REDOC_CSP) also allows the inline style ReDoc makes as it draws. The API
takes bearer tokens, so there is no OAuth2 redirect page."""

from __future__ import annotations

import re
from importlib.resources import files
from pathlib import Path

from fastapi import APIRouter, FastAPI
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import HTMLResponse, Response
from fastapi.staticfiles import StaticFiles

DOCS, REDOC, ASSETS = "/docs", "/redoc", "/docs/assets"
SWAGGER_INIT = f"{ASSETS}/swagger-init.js"
_INLINE = re.compile(r"<script>(.*?)</script>", re.DOTALL)


def assets_folder() -> Path:
    """Swagger UI's and ReDoc's files as the fastapi-offline package ships them."""
    return Path(str(files("fastapi_offline") / "static"))


def swagger_page(app: FastAPI) -> tuple[str, str]:
    """FastAPI's Swagger UI page pointed at the local assets, and its one
    inline script as a file of its own (the page loads it from 'self')."""
    html = bytes(get_swagger_ui_html(
        openapi_url=app.openapi_url or "/openapi.json", title=f"{app.title} - Swagger UI",
        swagger_js_url=f"{ASSETS}/swagger-ui-bundle.js",
        swagger_css_url=f"{ASSETS}/swagger-ui.css",
        swagger_favicon_url=f"{ASSETS}/favicon.png",
        oauth2_redirect_url=None,  # bearer tokens only: no OAuth2 flow to come back from
        swagger_ui_parameters=app.swagger_ui_parameters).body).decode()
    scripts = _INLINE.findall(html)
    if len(scripts) != 1:  # FastAPI changed its page: fail at start-up, not in a browser
        raise RuntimeError(f"FastAPI's Swagger UI page has {len(scripts)} inline scripts, "
                           "expected 1")
    page = _INLINE.sub(f'<script src="{SWAGGER_INIT}"></script>', html)
    return page, scripts[0]


def redoc_page(app: FastAPI) -> str:
    """FastAPI's ReDoc page on the local script, without Google's fonts."""
    return bytes(get_redoc_html(openapi_url=app.openapi_url or "/openapi.json",
                                title=f"{app.title} - ReDoc",
                                redoc_js_url=f"{ASSETS}/redoc.standalone.js",
                                redoc_favicon_url=f"{ASSETS}/favicon.png",
                                with_google_fonts=False).body).decode()


def install(app: FastAPI) -> None:
    """Serve /docs, /redoc and their assets; ``app`` is made with
    ``docs_url=None, redoc_url=None`` so FastAPI's CDN pages are not there."""
    swagger, init = swagger_page(app)
    redoc = redoc_page(app)
    router = APIRouter(include_in_schema=False)

    @router.get(DOCS)
    def docs() -> HTMLResponse:
        return HTMLResponse(swagger)

    @router.get(SWAGGER_INIT)
    def swagger_init() -> Response:
        return Response(init, media_type="text/javascript")

    @router.get(REDOC)
    def redoc_html() -> HTMLResponse:
        return HTMLResponse(redoc)

    app.include_router(router)
    app.mount(ASSETS, StaticFiles(directory=assets_folder()), name="docs-assets")
