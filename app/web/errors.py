"""Every failure becomes a clear page or JSON body with a precise status, never a traceback."""

from __future__ import annotations

import logging

import redis.exceptions
from quart import Blueprint, Response
from quart_rate_limiter import RateLimitExceeded
from werkzeug.exceptions import HTTPException, MethodNotAllowed

from .. import logs
from ..errors import ServiceUnavailable, ShareError, ShareGone
from ..services import services
from .responses import is_htmx, json_response, no_store, page, wants_json

log = logging.getLogger(__name__)

blueprint = Blueprint("errors", __name__)

# Human words for the framework's own errors (unknown URL, wrong method, ...).
HTTP_MESSAGES: dict[int, tuple[str, str]] = {
    400: ("Bad request", "The request could not be understood."),
    404: ("Page not found", "There is nothing at this address."),
    405: ("Method not allowed", "This address does not accept that kind of request."),
    408: ("Too slow", "The upload stalled for too long and was cancelled. Please try again."),
    413: ("Too large", "The request is larger than this server accepts."),
    414: ("Address too long", "The address is longer than this server accepts."),
    431: ("Headers too large", "The request headers are larger than this server accepts."),
}


async def render_error(
    status: int, code: str, title: str, message: str, **extra: object
) -> Response:
    if wants_json():
        response = json_response({"error": message, "code": code, **extra}, status)
    else:
        response = await page(
            "error.html", status, title=title, message=message, code=code, **extra
        )
        if is_htmx():
            # Whatever part of the page asked, an error replaces the whole panel.
            response.headers["HX-Retarget"] = "#share-panel"
            response.headers["HX-Reswap"] = "outerHTML"
    return no_store(response)


@blueprint.app_errorhandler(ShareError)
async def share_error(error: ShareError) -> Response:
    extra: dict[str, object] = {}
    if isinstance(error, ShareGone):
        extra["reason"] = error.reason
    tries_left = getattr(error, "tries_left", None)
    if tries_left is not None:
        extra["tries_left"] = tries_left
    retry_after = getattr(error, "retry_after", None)
    if retry_after is not None:
        extra["retry_after"] = retry_after
    response = await render_error(error.status, error.code, error.title, error.message, **extra)
    if retry_after is not None:
        response.headers["Retry-After"] = str(retry_after)
    return response


@blueprint.app_errorhandler(RateLimitExceeded)
async def rate_limited(error: RateLimitExceeded) -> Response:
    await count_quietly("rate_limited", "rate_limited")
    response = await render_error(
        429,
        "rate_limited",
        "Too many requests",
        f"You are going a bit fast. Please wait {error.retry_after} s and try again.",
        retry_after=error.retry_after,
    )
    response.headers["Retry-After"] = str(error.retry_after)
    return response


async def count_quietly(counter: str, event: str) -> None:
    """Statistics must never turn a refusal into a failure."""
    logs.event(event)
    try:
        await services().metadata.count(counter, event)
    except (redis.exceptions.RedisError, OSError):
        log.warning("could not count %s", counter)


@blueprint.app_errorhandler(HTTPException)
async def http_error(error: HTTPException) -> Response:
    status = error.code or 500
    title, message = HTTP_MESSAGES.get(status, (error.name, error.description or error.name))
    response = await render_error(status, error.name.lower().replace(" ", "_"), title, message)
    if isinstance(error, MethodNotAllowed) and error.valid_methods:
        response.headers["Allow"] = ", ".join(sorted(error.valid_methods))
    return response


@blueprint.app_errorhandler(redis.exceptions.ConnectionError)
@blueprint.app_errorhandler(redis.exceptions.TimeoutError)
@blueprint.app_errorhandler(redis.exceptions.BusyLoadingError)
async def redis_down(error: Exception) -> Response:
    log.error("Redis is unavailable: %s", type(error).__name__)
    unavailable = ServiceUnavailable(
        "The service cannot reach its database right now. Nothing "
        "was changed; please try again in a minute."
    )
    response = await share_error(unavailable)
    response.headers["Retry-After"] = "30"
    return response


@blueprint.app_errorhandler(Exception)
async def unexpected(error: Exception) -> Response:
    log.exception("unhandled error")
    return await render_error(
        500,
        "internal_error",
        "Something went wrong",
        "The server hit an unexpected problem. Nothing was shared; please try again.",
    )
