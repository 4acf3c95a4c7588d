"""Loopgate's pure domain: one decider per aggregate.

Each module offers ``initial``, ``evolve(state, event)``, ``decide(command,
state)``, ``fold(events)`` and ``is_terminal(state)`` (``account`` holds two aggregates,
so its names say which: ``decide_user``, ``fold_api_key``). Nothing here reads a
clock, makes an id or does I/O: time and ids arrive in the commands, and the
command handlers in ``loopgate.commands`` load and append the streams.

* :mod:`loopgate.domain.session` — ``session-<tenant>/<id>``: register, deactivate.
* :mod:`loopgate.domain.request` — ``request-<id>``: create, deliver, remind,
  answer, cancel, expire.
* :mod:`loopgate.domain.account` — ``user-<id>``: register, log in, fail to;
  ``apikey-<id>``: create, revoke; the username, password and lock-out rules.
* :mod:`loopgate.domain.approval` — which answers count as ``approved``.
"""

from loopgate.domain import account, approval, request, session

__all__ = ["account", "approval", "request", "session"]
