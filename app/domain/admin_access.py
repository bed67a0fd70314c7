"""Who may see the admin dashboard: one configured account, sessions that really end.

The password is checked with Argon2id (argon2-cffi's PasswordHasher, whose
verify is constant time), a wrong user name is checked against a dummy hash so
it takes as long as a wrong password, and every failure gets the same message.
Each login gets a random session id kept in Redis (only its SHA-256), so logging
out, "log out everywhere" and expiry end sessions on the server side, whatever
happens to the cookie.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from redis.asyncio import Redis

from ..config import Settings
from . import keys
from .passwords import Argon2Pool

log = logging.getLogger(__name__)


def hash_password(password: str) -> str:
    """An Argon2id hash for ADMIN_PASSWORD_HASH (RFC 9106 second recommendation)."""
    return PasswordHasher().hash(password)


class AdminAccess:
    def __init__(self, settings: Settings, redis: Redis, argon2: Argon2Pool) -> None:
        self._settings = settings
        self._redis = redis
        self._argon2 = argon2
        self._hasher = PasswordHasher()
        self._password_hash: str | None = settings.admin_password_hash
        self._dummy_hash = ""

    @property
    def enabled(self) -> bool:
        return self._password_hash is not None or self._settings.admin_password is not None

    async def prepare(self) -> None:
        """Hash a development password and make the dummy hash, off the event loop."""
        if not self.enabled:
            return
        if self._password_hash is None:
            assert self._settings.admin_password is not None
            log.warning(
                "ADMIN_PASSWORD is for development; set ADMIN_PASSWORD_HASH instead "
                "(onetimeshare hash-password)"
            )
            self._password_hash = await self._argon2.run(
                self._hasher.hash, self._settings.admin_password
            )
        self._dummy_hash = await self._argon2.run(self._hasher.hash, secrets.token_urlsafe(16))

    async def check(self, user: str, password: str) -> bool:
        """True only for the configured user and password; as slow for any wrong guess."""
        if not self.enabled:
            return False
        user_matches = hmac.compare_digest(user.encode(), self._settings.admin_user.encode())
        target = self._password_hash if user_matches else self._dummy_hash
        assert target is not None
        password_matches = await self._argon2.run(self._verify, target, password)
        return user_matches and password_matches

    def _verify(self, encoded_hash: str, password: str) -> bool:
        try:
            return self._hasher.verify(encoded_hash, password)
        except (VerificationError, InvalidHashError):
            return False

    # --- sessions ---

    @staticmethod
    def _key(session_id: str) -> str:
        return keys.admin_session(hashlib.sha256(session_id.encode()).hexdigest())

    async def open_session(self) -> str:
        session_id = secrets.token_urlsafe(32)
        await self._redis.set(self._key(session_id), b"1", ex=self._settings.admin_session_seconds)
        return session_id

    async def session_alive(self, session_id: str | None) -> bool:
        if not session_id:
            return False
        return bool(await self._redis.exists(self._key(session_id)))

    async def close_session(self, session_id: str | None) -> None:
        if session_id:
            await self._redis.delete(self._key(session_id))

    async def close_all_sessions(self) -> int:
        closed = 0
        async for key in self._redis.scan_iter(match=keys.ADMIN_SESSION + "*", count=500):
            closed += int(await self._redis.delete(key))
        return closed

    def csrf_token(self, session_id: str) -> str:
        """A per-session token for admin forms, derived so it needs no storage."""
        return hmac.new(
            self._settings.secret_key.encode(), b"csrf:" + session_id.encode(), hashlib.sha256
        ).hexdigest()

    def csrf_valid(self, session_id: str | None, token: str | None) -> bool:
        if not session_id or not token:
            return False
        return hmac.compare_digest(self.csrf_token(session_id), token)
