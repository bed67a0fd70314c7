"""Admin login and logout (quart-auth cookies, sessions that live in Redis)."""

from __future__ import annotations

import warnings

from quart import Blueprint, Response, abort, request, url_for
from quart_auth import AuthUser, QuartAuth, current_user, login_user, logout_user

from ..config import Settings
from ..errors import CrossSiteRequest
from .extension import services
from .guards import takes_body
from .ratelimit import limited
from .responses import no_store, page, redirect_to

blueprint = Blueprint("auth", __name__, url_prefix="/auth")

LOGIN_FAILED = "The user name or password is wrong."


class AdminUser(AuthUser):
    """Signed in only while the session id in the cookie still exists in Redis."""

    @property
    async def is_authenticated(self) -> bool:
        return await services().admin.session_alive(self.auth_id)


class AdminAuth(QuartAuth):
    async def _template_context(self) -> dict[str, AuthUser]:  # type: ignore[override]
        # Async on purpose: Quart runs a sync context processor in a thread, which
        # cost a thread hop on every page rendered (seen with py-spy under load).
        return {"current_user": self.load_user()}


def install(app: object, settings: Settings) -> QuartAuth:
    # quart-auth warns about any Strict cookie set on a redirect; ours is the login's
    # same-site 303, after which the browser does send it.
    warnings.filterwarnings("ignore", message="Strict samesite cookies will be ignored")
    return AdminAuth(
        app,  # type: ignore[arg-type]
        cookie_name="ots_admin",
        cookie_http_only=True,
        cookie_samesite="Strict",
        cookie_secure=settings.admin_cookie_secure,
        duration=settings.admin_session_seconds,
        salt="onetimeshare admin session",
        user_class=AdminUser,
    )


@blueprint.before_request
async def admin_must_exist() -> None:
    if not services().admin.enabled:
        abort(404)  # no credential configured: there is no admin area


@blueprint.get("/login")
@limited("page")
async def login_page() -> Response:
    if await current_user.is_authenticated:
        return redirect_to(url_for("admin.dashboard"))
    return no_store(await page("login.html", error=None, user=""))


@blueprint.post("/login")
@limited("login")
@takes_body
async def login() -> Response:
    form = await request.form
    user = form.get("user", "")[:256]
    password = form.get("password", "")[:1024]
    admin = services().admin
    if not await admin.check(user, password):
        return no_store(await page("login.html", 401, error=LOGIN_FAILED, user=user))
    login_user(AdminUser(await admin.open_session()))
    return redirect_to(url_for("admin.dashboard"))


@blueprint.post("/logout")
@limited("admin")
@takes_body
async def logout() -> Response:
    form = await request.form
    admin = services().admin
    if not admin.csrf_valid(current_user.auth_id, form.get("csrf")):
        raise CrossSiteRequest("form_expired")
    await admin.close_session(current_user.auth_id)
    logout_user()
    return redirect_to(url_for("auth.login_page"))
