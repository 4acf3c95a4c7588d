"""``/metrics`` in the Prometheus text format, and every HTTP response counted by route.

Where ``/metrics`` is served (``config.metrics_exposure``):

- ``metrics.enabled = false``: nowhere;
- ``metrics.bind`` set: only on that listener, a small app of its own
  (:func:`metrics_app`) that ``loopgate serve`` starts beside the main one;
- otherwise on the main port, when ``server.host`` is a loopback address or
  ``metrics.token`` is set. Bound beyond loopback with neither, the route is
  not there (404): metrics are never public by default.

With ``metrics.token`` set, a scrape must send ``Authorization: Bearer
<token>``, wherever it is served; anything else is a 401.

HTTP responses are counted under the route's template
(``/v1/requests/{request_id}``), never the raw path, and a path no route
matches under ``unmatched``, so a scanner cannot grow the label set. A 429
from a rate limit is counted like any other status.
"""

from __future__ import annotations

import hmac

from aiohttp import hdrs, web
from aiohttp.typedefs import Handler, Middleware

from loopgate.config import Config, metrics_exposure
from loopgate.errors import Unauthorized
from loopgate.hub import Hub
from loopgate.metrics import CONTENT_TYPE, Metrics
from loopgate.web.auth import bearer
from loopgate.web.errors import error_middleware
from loopgate.web.keys import CONFIG, METRICS

PATH = "/metrics"
UNMATCHED = "unmatched"


async def scrape(request: web.Request) -> web.Response:
    """Every metric of this process, in the Prometheus text format."""
    token = request.app[CONFIG].metrics.token
    if token and not hmac.compare_digest((bearer(request) or "").encode(), token.encode()):
        raise Unauthorized(
            "/metrics needs the metrics token: send Authorization: Bearer <metrics.token>"
        )
    body = request.app[METRICS].exposition()
    return web.Response(body=body, headers={hdrs.CONTENT_TYPE: CONTENT_TYPE})


def http_metrics_middleware(metrics: Metrics) -> Middleware:
    """Count each response by route template, method and status (outermost middleware)."""

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        try:
            response = await handler(request)
        except web.HTTPException as exc:  # redirects; errors are rendered further in
            metrics.http_response(_route(request), method_label(request), exc.status)
            raise
        metrics.http_response(_route(request), method_label(request), response.status)
        return response

    return middleware


def _route(request: web.Request) -> str:
    resource = request.match_info.route.resource
    return resource.canonical if resource is not None else UNMATCHED


def method_label(request: web.Request) -> str:
    """The method, or ``other``: any token is a method, only known ones are label values."""
    return request.method if request.method in hdrs.METH_ALL else "other"


def setup(app: web.Application, config: Config, metrics: Metrics) -> None:
    """Share ``metrics`` with the app, and serve ``/metrics`` if the main port should."""
    app[METRICS] = metrics
    if metrics_exposure(config) == "main":
        app.router.add_get(PATH, scrape)


def watch_hub(metrics: Metrics, hub: Hub) -> None:
    """The hub's parked waiters and open streams, read at each scrape."""
    metrics.gauge(
        "loopgate_hub_waiters",
        "Long-polls, MCP calls and console pages parked on the hub, waiting for an event.",
        lambda: hub.waiting,
    )
    metrics.gauge("loopgate_sse_streams", "Open SSE event streams.", lambda: hub.subscribers)


def metrics_app(config: Config, metrics: Metrics) -> web.Application:
    """The listener of its own on ``metrics.bind``: ``/metrics`` and nothing else."""
    app = web.Application(middlewares=[error_middleware])
    app[CONFIG], app[METRICS] = config, metrics
    app.router.add_get(PATH, scrape)
    return app
