"""``/console``: the console's page shells and its static files.

The shells are rendered by Jinja2 (autoescaped; path parameters reach the page's script as JSON in
a data attribute, never as markup). Every response carries a strict Content-Security-Policy: scripts
only from this origin and no inline script, so an injected value cannot run code that reads the
API key from ``sessionStorage``; no framing (click-jacking); no referrer leaves the console.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse
from fastapi.staticfiles import StaticFiles
from jinja2 import Environment, PackageLoader, select_autoescape

from app.console.pages import PAGES, Page

# style-src allows data: for one reason: the evaluation page shows the API's HTML report in a
# sandboxed blob: frame, which inherits this policy, so the report's own inline styles are moved into
# a data: stylesheet (a blob: one would not load in the sandbox's opaque origin). Stylesheets cannot
# run script, and the console never parses API values as markup, so nothing else can add one.
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self' data:; img-src 'self' data: blob:; "
        "connect-src 'self'; frame-src 'self' blob:; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}

_templates = Environment(loader=PackageLoader("app.console", "templates"), autoescape=select_autoescape(default=True))

router = APIRouter(prefix="/console", include_in_schema=False)


_shell = _templates.get_template("console/page.html")


def _page_route(page: Page) -> Any:
    def render(request: Request) -> HTMLResponse:
        html = _shell.render(page=page, pages=PAGES, params=dict(request.path_params))
        return HTMLResponse(html, headers=SECURITY_HEADERS)

    render.__name__ = f"console_{page.name}"
    return render


for _page in PAGES:
    router.add_api_route(_page.path or "/", _page_route(_page), methods=["GET"], response_class=HTMLResponse)


@router.get("", response_class=RedirectResponse)
def console_root() -> RedirectResponse:
    return RedirectResponse("/console/", status_code=308)


class ConsoleStatic(StaticFiles):
    """The console's scripts and styles, with the same headers as the pages (``nosniff`` matters:
    a module script is only run when it is served as JavaScript)."""

    def file_response(self, *args: Any, **kwargs: Any) -> Any:
        response = super().file_response(*args, **kwargs)
        response.headers.update({k: v for k, v in SECURITY_HEADERS.items() if k != "Cache-Control"})
        response.headers["Cache-Control"] = "no-cache"
        return response


static_files = ConsoleStatic(packages=[("app.console", "static")])
