"""How routes answer: HTML pages (or htmx fragments) for browsers, JSON for API clients."""

from __future__ import annotations

from typing import Any

from quart import Response, jsonify, render_template, request


def wants_json() -> bool:
    """True when the client prefers JSON to HTML; browsers and ``*/*`` get HTML."""
    best = request.accept_mimetypes.best_match(["text/html", "application/json"])
    return best == "application/json"


def is_htmx() -> bool:
    return request.headers.get("HX-Request") == "true"


async def page(template: str, status_code: int = 200, /, **context: Any) -> Response:
    """Render a page; an htmx request gets just its fragment (the template decides)."""
    body = await render_template(template, htmx=is_htmx(), **context)
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
