"""What every console page shares: rendering, the error page, form fields, actors' names.

Used by the pages in ``web/console.py`` and ``web/console_admin.py``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar

import aiohttp_jinja2
import msgspec
from aiohttp import web
from multidict import MultiDictProxy

from loopgate import __version__
from loopgate.domain.teams import allows
from loopgate.web.auth import actor_of
from loopgate.web.console_session import csrf_token
from loopgate.web.keys import ACCOUNTS, ACTOR, CONSOLE_SESSION
from loopgate.web.params import refuse_nul
from loopgate.wire import decode_body

T = TypeVar("T", bound=msgspec.Struct)

OPEN = ("pending", "delivered")
"""The statuses of a request still waiting for an answer."""


def render(
    request: web.Request, template: str, context: Mapping[str, Any], *, status: int = 200
) -> web.Response:
    """A console page; every page knows who is signed in and the token its forms carry."""
    session = request.get(CONSOLE_SESSION)
    actor = request.get(ACTOR)
    base = {
        "session": session,
        "csrf_token": csrf_token(request) if session is not None else "",
        "version": __version__,
        "nav": None,
        # The nav offers the export only to a role that may use it (an approver may not).
        "may_export": actor is not None and allows(actor.role, "audit.export"),
    }
    return aiohttp_jinja2.render_template(
        f"console/{template}", request, {**base, **context}, status=status
    )


def error_page(request: web.Request, status: int, message: str) -> web.Response:
    return render(request, "error.html", {"status": status, "message": message}, status=status)


def see_other(location: str) -> web.Response:
    """Where a form goes after it did its work, so that a reload does not send it again."""
    return web.Response(status=303, headers={"Location": location})


def form_field(form: MultiDictProxy[Any], name: str) -> str | None:
    """A text field of a posted form; None when missing (a file upload counts as missing).

    A NUL in it is a 400 (see ``web/params.py``), whatever the form.
    """
    value = form.get(name)
    return refuse_nul(name, value) if isinstance(value, str) else None


def decode_form(fields: Mapping[str, Any], shape: type[T]) -> T:
    """Check form fields with the API's own body rules, and its messages."""
    return decode_body(msgspec.json.encode(fields), shape)


async def actor_names(request: web.Request) -> dict[str, str]:
    """How to name the tenant's own actors on a page: the user, and its API keys."""
    session = request[CONSOLE_SESSION]
    keys = await request.app[ACCOUNTS].list_api_keys(actor_of(request))
    names = {f"apikey:{key.key_id}": f"API key “{key.label}” ({key.prefix}…)" for key in keys}
    names[session.user_id] = f"you ({session.username})"
    return names


def named(text: str, names: Mapping[str, str]) -> str:
    for actor, name in names.items():
        text = text.replace(actor, name)
    return text
