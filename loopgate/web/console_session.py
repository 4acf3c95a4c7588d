"""Who is signed in to the web console: its cookie, its CSRF tokens, and the gate.

The console authenticates browsers with a cookie and never with API keys or
login tokens; the cookie in turn opens nothing but the console's own routes
(``Path=/console``), so a browser's ambient credential can never drive the
JSON API.

- The cookie, ``loopgate_console``, is ``<session id>.<expiry>.<mac>``: an
  HMAC-SHA256 keyed from ``auth.jwt_secret`` makes it unforgeable (the session
  id alone is no secret: it is in the log). It is ``HttpOnly``,
  ``SameSite=Lax``, ``Secure`` over https (always with
  ``console.secure_cookie = true``) and lasts ``console.session_ttl_seconds``.
  A valid mac is not enough: the session is looked up on every request
  (:class:`~loopgate.accounts.console_sessions.ConsoleSessions`), so signing out ends
  it on the server at once, in every process.
- CSRF: every console form carries a token, the HMAC of the session id
  (before sign-in, of a random nonce kept in the ``loopgate_login`` cookie).
  Every POST must carry the right one, compared in constant time, and, when
  the browser names an ``Origin``, come from this very host; otherwise it is
  refused with 403 before anything is done.

Signed out, every console page but sign-in, an invitation's join page
(``/console/join/<token>``, whose form is checked like sign-in's) and the
static files answers 303 to ``/console/login?next=<the page>``.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import secrets
from urllib.parse import quote, urlencode, urlsplit, urlunsplit

import structlog
from aiohttp import web
from aiohttp.typedefs import Handler

from loopgate.domain.console import ConsoleSession
from loopgate.errors import Forbidden
from loopgate.web.keys import (
    ACCOUNTS,
    ACTOR,
    CONFIG,
    CONSOLE_SESSION,
    CONSOLE_SESSIONS,
    CREDENTIAL,
    REQUEST_ID,
)

log = structlog.get_logger(__name__)

SESSION_COOKIE = "loopgate_console"
LOGIN_COOKIE = "loopgate_login"
COOKIE_PATH = "/console"
CSRF_FIELD = "csrf_token"
HOME = "/console"
LOGIN = "/console/login"
STATIC = "/console/static/"
JOIN = "/console/join/"  # an invitation's page: the invited person has no account yet
_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def is_console_path(path: str) -> bool:
    return path == HOME or path.startswith(HOME + "/")


@functools.lru_cache(maxsize=4)
def _derived_key(jwt_secret: str) -> bytes:
    # A key of its own, so a console mac can never pass for a token signature.
    return hmac.new(jwt_secret.encode(), b"loopgate console v1", hashlib.sha256).digest()


def _mac(request: web.Request, purpose: str, value: str) -> str:
    key = _derived_key(request.app[ACCOUNTS].jwt_secret)
    digest = hmac.new(key, f"{purpose}\x00{value}".encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")


def _same(sent: str, expected: str) -> bool:
    # In constant time; as bytes, since compare_digest refuses non-ASCII text.
    return hmac.compare_digest(sent.encode(), expected.encode())


def _session_id_in(request: web.Request) -> str | None:
    """The session id of a cookie this server made and that has not expired; else None."""
    session_id, _, rest = request.cookies.get(SESSION_COOKIE, "").partition(".")
    expiry, _, mac = rest.partition(".")
    if not (session_id and expiry.isascii() and expiry.isdigit() and len(expiry) <= 12 and mac):
        return None
    if not _same(mac, _mac(request, "session", f"{session_id}.{expiry}")):
        return None
    if int(expiry) <= request.app[ACCOUNTS].clock().timestamp():
        return None
    return session_id


def csrf_token(request: web.Request) -> str:
    """The token the signed-in browser's forms carry."""
    return _mac(request, "csrf", request[CONSOLE_SESSION].session_id)


def login_csrf(request: web.Request) -> tuple[str, str | None]:
    """The sign-in form's token, and a new nonce to store if the browser has none yet."""
    nonce = request.cookies.get(LOGIN_COOKIE, "")
    fresh = None if nonce else secrets.token_urlsafe(16)
    return _mac(request, "login", nonce or fresh or ""), fresh


def _set_cookie(
    request: web.Request,
    response: web.StreamResponse,
    name: str,
    value: str,
    max_age: int | None = None,
) -> None:
    secure = request.secure or request.app[CONFIG].console.secure_cookie == "true"
    response.set_cookie(
        name,
        value,
        max_age=max_age,
        path=COOKIE_PATH,
        secure=secure,
        httponly=True,
        samesite="Lax",
    )


def remember_login_nonce(request: web.Request, response: web.StreamResponse, nonce: str) -> None:
    """Keep the sign-in form's nonce in the browser for as long as the browser is open."""
    _set_cookie(request, response, LOGIN_COOKIE, nonce)


def start_session(
    request: web.Request, response: web.StreamResponse, session: ConsoleSession
) -> None:
    """Hand the browser the cookie of its new session."""
    value = f"{session.session_id}.{int(session.expires_at.timestamp())}"
    max_age = max(0, int((session.expires_at - request.app[ACCOUNTS].clock()).total_seconds()))
    sealed = f"{value}.{_mac(request, 'session', value)}"
    _set_cookie(request, response, SESSION_COOKIE, sealed, max_age)
    response.del_cookie(LOGIN_COOKIE, path=COOKIE_PATH)


def end_session(response: web.StreamResponse) -> None:
    response.del_cookie(SESSION_COOKIE, path=COOKIE_PATH)


def safe_next(target: str | None) -> str:
    """Where to go after signing in: a console page of this server, else the queue."""
    if not target or "\\" in target or any(ord(c) < 0x20 or ord(c) == 0x7F for c in target):
        return HOME
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or ".." in parts.path or parts.path == LOGIN:
        return HOME
    if not is_console_path(parts.path):
        return HOME
    # Re-quoted, so that whatever the form sent back is a plain ASCII Location.
    return urlunsplit(
        ("", "", quote(parts.path, safe="/%:@"), quote(parts.query, safe="=&%+:@/"), "")
    )


def _sign_in_redirect(request: web.Request) -> web.Response:
    # A form posted while signed out cannot be replayed after sign-in: start from the queue.
    target = request.path_qs if request.method == "GET" else HOME
    location = LOGIN if target == HOME else f"{LOGIN}?{urlencode({'next': target})}"
    response = web.Response(status=303, headers={"Location": location})
    if SESSION_COOKIE in request.cookies:  # signed out or expired: let the browser forget it
        end_session(response)
    return response


async def _check_form(request: web.Request, session: ConsoleSession | None) -> None:
    """Refuse a POST that another site could have made the browser send."""
    origin = request.headers.get("Origin")
    if origin is not None and urlsplit(origin).netloc.lower() != request.host.lower():
        log.warning("console form refused", reason="cross-origin", origin=origin)
        raise Forbidden(
            "this form was sent from another site; open the console and send it from there",
            code="cross_origin",
        )
    if session is not None:
        expected = csrf_token(request)
    elif request.cookies.get(LOGIN_COOKIE):
        expected = login_csrf(request)[0]
    else:
        expected = ""
    sent = (await request.post()).get(CSRF_FIELD)
    if not expected or not isinstance(sent, str) or not _same(sent, expected):
        log.warning("console form refused", reason="csrf token missing or wrong")
        raise Forbidden(
            "this form has expired or did not come from this console; reload the page and "
            "send it again",
            code="csrf_failed",
        )


async def console_gate(request: web.Request, handler: Handler) -> web.StreamResponse:
    """The console's auth policy: the signed cookie, a sign-in redirect, CSRF on every POST."""
    if request.path.startswith(STATIC):
        return await handler(request)  # the same for everyone: no session to look up
    session_id = _session_id_in(request)
    session = None if session_id is None else await request.app[CONSOLE_SESSIONS].usable(session_id)
    if session is not None:
        request[CONSOLE_SESSION] = session
        # The cookie is a person's: they answer as themselves, with their role now.
        request[ACTOR] = await request.app[ACCOUNTS].actor_for_user(
            session.user_id, correlation_id=request.get(REQUEST_ID)
        )
        request[CREDENTIAL] = "console"
    elif request.path != LOGIN and not request.path.startswith(JOIN):
        return _sign_in_redirect(request)
    if request.method not in _SAFE_METHODS:
        await _check_form(request, session)
    return await handler(request)
