"""Swagger UI (`/docs`) and ReDoc (`/redoc`) served by the gateway itself, with no outside request.

FastAPI's own pages load their scripts, styles and favicon from public hosts, which a gateway on
an isolated network cannot reach. The assets come instead from the `fastapi-offline` package
(pinned in the lock; it ships swagger-ui-dist's bundle and stylesheet, ReDoc's standalone
bundle and a favicon) and are served under `/static/docs/`. Swagger UI's online validator (an
outside request) is turned off; ReDoc is given no web fonts, and its bundle is served with the
one outside address it holds emptied (see `redoc_bundle`). Both pages carry a
Content-Security-Policy that lets them load from the gateway alone, should a later release of
either hold another.
"""

from __future__ import annotations

import re
from importlib.resources import files
from pathlib import Path

from fastapi import FastAPI
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import HTMLResponse, Response
from fastapi.staticfiles import StaticFiles

DOCS_PATH = "/docs"
REDOC_PATH = "/redoc"
STATIC_PATH = "/static/docs"
# The package's assets, read in place (its own FastAPI factory is not used: these pages are ours).
ASSETS = Path(str(files("fastapi_offline") / "static"))
ASSET_NAMES = ("swagger-ui-bundle.js", "swagger-ui.css", "redoc.standalone.js", "favicon.png")
# Each page's own inline script and styles (FastAPI's page templates), data: icons and ReDoc's
# search worker (a blob:) besides; nothing from another origin.
CONTENT_SECURITY_POLICY = "; ".join(
    (
        "default-src 'self'",
        "script-src 'self' 'unsafe-inline'",
        "style-src 'self' 'unsafe-inline'",
        "img-src 'self' data:",
        "font-src 'self' data:",
        "worker-src 'self' blob:",
        "connect-src 'self'",
        "base-uri 'self'",
        "frame-ancestors 'none'",
    )
)


# ReDoc's side menu shows its vendor's logo, loaded from the vendor's site whatever the options.
REDOC_LOGO = re.compile(rb'src:"https://[^"]*/logo-mini\.svg"')


def redoc_bundle() -> bytes:
    """ReDoc's bundle with its logo's address emptied: an image without a source loads nothing,
    and the menu then leaves it out. A release that words it otherwise stops the start."""
    bundle = (ASSETS / "redoc.standalone.js").read_bytes()
    patched, found = REDOC_LOGO.subn(b'src:""', bundle)
    if found != 1:
        raise RuntimeError(f"redoc.standalone.js: {found} logo addresses found, 1 expected")
    return patched


def only_from_the_gateway(page: HTMLResponse) -> HTMLResponse:
    page.headers["Content-Security-Policy"] = CONTENT_SECURITY_POLICY
    return page


def add_docs_routes(app: FastAPI) -> None:
    """`/docs`, `/redoc` and their assets on `app`, made with `docs_url=None, redoc_url=None`."""
    missing = [name for name in ASSET_NAMES if not (ASSETS / name).is_file()]
    if missing:  # a new release of the package that moved them: say so at the start
        raise RuntimeError(f"fastapi-offline no longer ships {missing} in {ASSETS}")
    redoc_js = redoc_bundle()
    openapi_url = app.openapi_url or "/openapi.json"
    favicon = f"{STATIC_PATH}/favicon.png"

    @app.get(DOCS_PATH, include_in_schema=False)
    async def swagger_ui() -> HTMLResponse:
        page = get_swagger_ui_html(
            openapi_url=openapi_url,
            title=f"{app.title} - Swagger UI",
            swagger_js_url=f"{STATIC_PATH}/swagger-ui-bundle.js",
            swagger_css_url=f"{STATIC_PATH}/swagger-ui.css",
            swagger_favicon_url=favicon,
            oauth2_redirect_url=None,
            # null: no call to the public validator service, no badge.
            swagger_ui_parameters={"validatorUrl": None},
        )
        return only_from_the_gateway(page)

    @app.get(REDOC_PATH, include_in_schema=False)
    async def redoc() -> HTMLResponse:
        page = get_redoc_html(
            openapi_url=openapi_url,
            title=f"{app.title} - ReDoc",
            redoc_js_url=f"{STATIC_PATH}/redoc.standalone.js",
            redoc_favicon_url=favicon,
            with_google_fonts=False,
        )
        return only_from_the_gateway(page)

    # Before the mount of the other assets, which would answer this path otherwise.
    @app.get(f"{STATIC_PATH}/redoc.standalone.js", include_in_schema=False)
    async def redoc_script() -> Response:
        return Response(redoc_js, media_type="text/javascript")

    app.mount(STATIC_PATH, StaticFiles(directory=ASSETS), name="docs-assets")
