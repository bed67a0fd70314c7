"""How routes answer: HTML pages (or htmx fragments) for browsers, JSON for API clients."""

from __future__ import annotations

from typing import Any

from jinja2 import Environment
from quart import Quart, Response, current_app, jsonify, request

_TEMPLATES = "onetimeshare.page_templates"


def _page_templates(app: Quart) -> Environment:
    """Pages render synchronously, from an overlay of Quart's Jinja environment.

    Quart renders in Jinja's async mode (every block an async generator) and runs each
    template context processor through ``ensure_async`` - quart-auth's is synchronous,
    so every page cost a hop to a thread. Our templates await nothing, and the globals
    Quart's processor would add (request, session, g, url_for) are environment globals
    already, so a synchronous overlay sharing the loader, globals and filters renders
    the same pages for less CPU per request. Its own cache: the overlay must never
    reuse a template compiled for async mode. Made again if the app's loader changes.
    """
    templates: Environment | None = app.extensions.get(_TEMPLATES)
    loader = app.jinja_env.loader
    if templates is None or templates.loader is not loader:
        templates = app.jinja_env.overlay(enable_async=False, cache_size=400, loader=loader)
        app.extensions[_TEMPLATES] = templates
    return templates


def wants_json() -> bool:
    """True when the client prefers JSON to HTML; browsers and ``*/*`` get HTML.

    A tus request (it names the protocol's version) is a program's: JSON, whatever
    it accepts."""
    if "Tus-Resumable" in request.headers:
        return True
    best = request.accept_mimetypes.best_match(["text/html", "application/json"])
    return best == "application/json"


def is_htmx() -> bool:
    return request.headers.get("HX-Request") == "true"


async def page(template: str, status_code: int = 200, /, **context: Any) -> Response:
    """Render a page; an htmx request gets just its fragment (the template decides)."""
    templates = _page_templates(current_app)
    body = templates.get_template(template).render(htmx=is_htmx(), **context)
    response = Response(body, status=status_code, content_type="text/html; charset=utf-8")
    response.vary.add("HX-Request")
    return response


def json_response(payload: dict[str, Any], status: int = 200) -> Response:
    response = jsonify(payload)
    response.status_code = status
    return response


def redirect_to(location: str) -> Response:
    """303 for browsers; htmx follows HX-Redirect instead of swapping a page in."""
    if is_htmx():
        return no_store(Response(status=200, headers={"HX-Redirect": location}))
    return no_store(Response(status=303, headers={"Location": location}))


def no_store(response: Response) -> Response:
    """For anything that shows a share: never keep it in a cache or the back/forward cache."""
    response.headers["Cache-Control"] = "no-store"
    return response
