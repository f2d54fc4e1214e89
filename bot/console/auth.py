"""The console's admin token, its session cookie and CSRF tokens.

- The token is ``HELPLINE_CONSOLE_TOKEN``; when that is unset, one is generated once, only its SHA-256
  is stored in the database (``meta`` table) and the token itself is printed once at start-up
  (``bot console --new-token`` replaces a lost one). Tokens are compared with
  ``hmac.compare_digest``.
- Logging in with the token sets an HttpOnly, SameSite=Strict cookie ``NONCE.MAC``: a session nonce
  (its creation time and random bytes) and its HMAC under a key derived from the token, so nothing but
  the token's holder can mint one, changing the token logs every session out, and a session ends after
  ``SESSION_MAX_AGE_S``. No server-side session state.
- The CSRF token of a session is another HMAC of its nonce. Every POST/DELETE that comes with the
  cookie must carry it (a form's hidden ``csrf_token`` field, or the ``X-CSRF-Token`` header of a
  fetch); requests with ``Authorization: Bearer TOKEN`` need none (a browser never adds that header
  by itself).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass

from bot.console.records import ConsoleRecords

TOKEN_HASH_META = "console_token_sha256"
COOKIE_NAME = "helpline_console"
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "x-csrf-token"
TOKEN_BYTES = 32
# A login lasts a working day.
SESSION_MAX_AGE_S = 12 * 3600


def token_digest(token: str) -> str:
    """The stored form of a token (a 256-bit random token needs no slow hash)."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class TokenSetup:
    """What start-up decided about the token.

    Attributes:
        digest: SHA-256 of the token.
        generated: the new token, when one was generated now (to print once), else None.
        source: ``environment``, ``generated`` or ``database``.
    """

    digest: str
    generated: str | None
    source: str


def setup_token(records: ConsoleRecords, configured: str | None, *, new: bool = False) -> TokenSetup:
    """The console token: the configured one, the one generated earlier, or a new one.

    Args:
        records: the console's database records (where a generated token's hash is kept).
        configured: ``HELPLINE_CONSOLE_TOKEN``, or None.
        new: generate a new token even when one was generated before.

    Returns:
        The token's digest, and the token itself when it was generated now.
    """
    if configured:
        return TokenSetup(token_digest(configured), None, "environment")
    stored = records.get_meta(TOKEN_HASH_META)
    if stored and not new:
        return TokenSetup(stored, None, "database")
    token = secrets.token_urlsafe(TOKEN_BYTES)
    digest = token_digest(token)
    records.set_meta(TOKEN_HASH_META, digest)
    return TokenSetup(digest, token, "generated")


class Authenticator:
    """Checks tokens, session cookies and CSRF tokens against one token digest.

    Args:
        digest: SHA-256 hex of the admin token.
        clock: seconds since the epoch (tests pass their own).
    """

    def __init__(self, digest: str, clock: Callable[[], float] = time.time):
        self._digest = digest
        self._clock = clock
        # The signing key is derived from the token's digest: a new token invalidates old cookies.
        self._key = hashlib.sha256(b"helpline-console-session\x00" + digest.encode("ascii")).digest()

    def token_ok(self, candidate: str | None) -> bool:
        """Whether ``candidate`` is the admin token (timing-safe)."""
        if not candidate:
            return False
        return hmac.compare_digest(token_digest(candidate), self._digest)

    def _mac(self, purpose: str, nonce: str) -> str:
        return hmac.new(self._key, f"{purpose}:{nonce}".encode(), hashlib.sha256).hexdigest()

    def new_session(self) -> str:
        """A fresh session cookie value."""
        nonce = f"{int(self._clock())}-{secrets.token_urlsafe(16)}"
        return f"{nonce}.{self._mac('session', nonce)}"

    def session_nonce(self, cookie: str | None) -> str | None:
        """The nonce of a valid session cookie, else None."""
        if not cookie or cookie.count(".") != 1:
            return None
        nonce, mac = cookie.split(".")
        if not hmac.compare_digest(mac, self._mac("session", nonce)):
            return None
        created = nonce.split("-", 1)[0]
        if not created.isdigit() or not 0 <= self._clock() - int(created) <= SESSION_MAX_AGE_S:
            return None
        return nonce

    def csrf_token(self, nonce: str) -> str:
        """The CSRF token of a session."""
        return self._mac("csrf", nonce)

    def csrf_ok(self, nonce: str, candidate: str | None) -> bool:
        """Whether ``candidate`` is the session's CSRF token (timing-safe)."""
        return bool(candidate) and hmac.compare_digest(candidate, self.csrf_token(nonce))


def bearer_token(authorization: str | None) -> str | None:
    """The token of an ``Authorization: Bearer TOKEN`` header, else None."""
    if not authorization:
        return None
    scheme, _, value = authorization.partition(" ")
    return value.strip() if scheme.lower() == "bearer" and value.strip() else None
