"""Every failure becomes a clear page or JSON body with a precise status, never a traceback."""

from __future__ import annotations

import logging
import sys
from types import TracebackType

import redis.exceptions
from quart import Blueprint, Quart, Response, has_request_context, request
from quart.typing import ResponseTypes
from quart_rate_limiter import RateLimitExceeded
from werkzeug.exceptions import HTTPException, MethodNotAllowed

from .. import logs
from ..errors import PasswordRequired, Problem, ServiceUnavailable, ShareGone
from .extension import services
from .messages import (
    HTTP_ERRORS,
    RATE_LIMITED_TITLE,
    UNEXPECTED_MESSAGE,
    UNEXPECTED_TITLE,
    message,
    rate_limited_message,
    title,
)
from .responses import is_htmx, json_response, no_store, page, wants_json

log = logging.getLogger(__name__)

blueprint = Blueprint("errors", __name__)


class Application(Quart):
    """Quart, whose last-resort failure handling keeps tokens out of the log.

    Quart logs an unhandled exception as "Exception on request GET <path>", and when
    even the error page fails, the exception escapes to the server, which logs it
    outside the request (where the log filter can no longer tell which token to
    look for) and answers an empty 500.
    """

    def log_exception(
        self,
        exception_info: tuple[type, BaseException, TracebackType] | tuple[None, None, None],
    ) -> None:
        if has_request_context():
            self._log_request_failure("Exception on request", exception_info)
        else:
            super().log_exception(exception_info)

    async def handle_exception(self, error: Exception) -> ResponseTypes:
        try:
            return await super().handle_exception(error)
        except Exception as failure:
            if failure is error:  # re-raised on purpose (testing or debug mode)
                raise
            # The 500 page itself failed: log it here, inside the request, and
            # answer without any template.
            self._log_request_failure("The error page failed on request", sys.exc_info())
            return await self.finalize_request(bare_internal_error(), from_error_handler=True)

    def _log_request_failure(
        self,
        what: str,
        exception_info: tuple[type, BaseException, TracebackType] | tuple[None, None, None],
    ) -> None:
        self.logger.error(
            "%s %s %s",
            what,
            request.method,
            logs.redact_path(request.path),
            exc_info=exception_info,
        )


def bare_internal_error() -> Response:
    """The 500 answer that needs nothing that could have failed: no template, no Redis."""
    if wants_json():
        response = json_response({"error": UNEXPECTED_MESSAGE, "code": "internal_error"}, 500)
    else:
        response = Response(
            f"{UNEXPECTED_TITLE}. {UNEXPECTED_MESSAGE}\n",
            status=500,
            content_type="text/plain; charset=utf-8",
        )
    return no_store(response)


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


@blueprint.app_errorhandler(Problem)
async def problem(error: Problem) -> Response:
    extra: dict[str, object] = {}
    if isinstance(error, ShareGone):
        extra["reason"] = error.reason
    if isinstance(error, PasswordRequired):
        extra["tries_left"] = error.tries_left
    if error.retry_after is not None and error.status == 429:
        extra["retry_after"] = error.retry_after  # as the rate limiter's 429s have it
    response = await render_error(error.status, error.code, title(error), message(error), **extra)
    return with_retry_after(response, error)


def with_retry_after(response: Response, error: Problem) -> Response:
    if error.retry_after is not None:
        response.headers["Retry-After"] = str(error.retry_after)
    return response


@blueprint.app_errorhandler(RateLimitExceeded)
async def rate_limited(error: RateLimitExceeded) -> Response:
    await count_quietly("rate_limited", "rate_limited")
    response = await render_error(
        429,
        "rate_limited",
        RATE_LIMITED_TITLE,
        rate_limited_message(error.retry_after),
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
    heading, words = HTTP_ERRORS.get(status, (error.name, error.description or error.name))
    response = await render_error(status, error.name.lower().replace(" ", "_"), heading, words)
    if isinstance(error, MethodNotAllowed) and error.valid_methods:
        response.headers["Allow"] = ", ".join(sorted(error.valid_methods))
    return response


@blueprint.app_errorhandler(redis.exceptions.ConnectionError)
@blueprint.app_errorhandler(redis.exceptions.TimeoutError)
@blueprint.app_errorhandler(redis.exceptions.BusyLoadingError)
async def redis_down(error: Exception) -> Response:
    log.error("Redis is unavailable: %s", type(error).__name__)
    return await problem(ServiceUnavailable("database_unreachable"))


@blueprint.app_errorhandler(Exception)
async def unexpected(error: Exception) -> Response:
    log.exception("unhandled error")
    return await render_error(500, "internal_error", UNEXPECTED_TITLE, UNEXPECTED_MESSAGE)
