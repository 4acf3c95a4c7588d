"""``POST /slack/events``: Slack's interactivity and slash commands, through Bolt, with our errors.

Slack signs every request with the app's signing secret: ``X-Slack-Signature``
is ``v0=`` and the HMAC-SHA256 of ``v0:<X-Slack-Request-Timestamp>:<body>``.
The signature is checked here, before Bolt sees anything, so a missing or
wrong signature, or a timestamp more than 5 minutes away (a replay), is a 401
``bad_slack_signature`` in Loopgate's JSON error shape and nothing is read or
recorded. A signed body that is not a Slack request (no ``payload`` form
field that is a JSON object, no ``command``, no ``ssl_check``) is a 400; one
over 256 KiB a 413. Then Bolt answers:
it acknowledges at once and runs the listener after the response
(``loopgate/channels/slack/app.py``), as Slack's 3-second rule wants.

The route exists only in ``http`` mode; in ``socket`` mode the same requests
come over the WebSocket the runtime opens (``loopgate/channels/slack/runtime.py``).
"""

from __future__ import annotations

import json
from urllib.parse import parse_qs

from aiohttp import web
from slack_bolt.adapter.aiohttp import to_aiohttp_response, to_bolt_request
from slack_sdk.signature import SignatureVerifier

from loopgate.channels.slack.runtime import SlackRuntime
from loopgate.config import Config, ConfigError, console_public_url
from loopgate.errors import BadRequest, NotFound, PayloadTooLarge, Unauthorized
from loopgate.web.channels import register_channel
from loopgate.web.describe import Media, describe

EVENTS_PATH = "/slack/events"
SIGNATURE_HEADER = "X-Slack-Signature"
TIMESTAMP_HEADER = "X-Slack-Request-Timestamp"
MAX_BODY_BYTES = 256 * 1024
"""Slack's interactivity payloads carry the message clicked: tens of KB at most."""
SLACK: web.AppKey[SlackRuntime] = web.AppKey("slack")
VERIFIER: web.AppKey[SignatureVerifier] = web.AppKey("slack_signature")
"""Checks what Slack POSTs to ``/slack/events`` against ``slack.signing_secret`` (http mode)."""


def check_config(config: Config) -> None:
    """Raise ``ConfigError`` for a Slack set-up that cannot work."""
    slack = config.slack
    if slack.mode == "http" and not slack.signing_secret:
        raise ConfigError(
            "slack.signing_secret: required in http mode (the app's Basic Information page)"
        )
    if slack.mode == "socket" and not slack.app_token.startswith("xapp-"):
        raise ConfigError(
            "slack.app_token: socket mode needs an app-level token (xapp-…) with connections:write"
        )


def check_form(body: str) -> None:
    """``BadRequest`` unless ``body`` is a form Slack sends: a payload, a command, an ssl_check."""
    fields = {key: values[-1] for key, values in parse_qs(body, keep_blank_values=True).items()}
    # ssl_check: Slack probing a command URL's certificate (Bolt answers it).
    if "command" in fields or "ssl_check" in fields:
        return
    if "payload" not in fields:
        raise BadRequest(
            "not a Slack request: expected a payload or command form field",
            code="invalid_slack_payload",
        )
    try:
        payload = json.loads(fields["payload"])
    except ValueError:
        raise BadRequest(
            "not a Slack request: the payload field is not JSON", code="invalid_slack_payload"
        ) from None
    if not isinstance(payload, dict) or not isinstance(payload.get("type"), str):
        raise BadRequest(
            "not a Slack request: the payload has no type", code="invalid_slack_payload"
        )


@describe(
    "Slack interactivity and slash commands, signed by Slack",
    replies={200: Media(("application/json", "text/plain"), "Bolt's acknowledgement")},
    errors=(400, 401, 404, 413),
)
async def slack_events(request: web.Request) -> web.Response:
    raw = await request.read()
    if len(raw) > MAX_BODY_BYTES:
        raise PayloadTooLarge(f"a Slack request is at most {MAX_BODY_BYTES} bytes")
    try:
        body = raw.decode()
    except UnicodeDecodeError:
        raise BadRequest("a Slack request is UTF-8", code="invalid_slack_payload") from None
    timestamp = request.headers.get(TIMESTAMP_HEADER, "")
    signature = request.headers.get(SIGNATURE_HEADER, "")
    # is_valid checks the timestamp is within 5 minutes, then the HMAC in constant time;
    # it raises on a timestamp that is no number, or a signature that is not ASCII.
    well_formed = timestamp.isascii() and timestamp.isdigit() and signature.isascii()
    if not well_formed or not request.app[VERIFIER].is_valid(body, timestamp, signature):
        raise Unauthorized(
            f"wrong, missing or expired {SIGNATURE_HEADER}", code="bad_slack_signature"
        )
    check_form(body)
    response = await request.app[SLACK].bolt.async_dispatch(await to_bolt_request(request))
    if response.status == 404:
        raise NotFound("no Loopgate handler for this Slack request", code="unhandled_slack_request")
    return await to_aiohttp_response(response)


def setup(app: web.Application, config: Config) -> None:
    """Build the Slack runtime (when ``slack.bot_token`` is set) and add the events route.

    Raises ``ConfigError`` for a Slack set-up that cannot work.
    """
    check_config(config)
    runtime = SlackRuntime(config.slack, console_url=console_public_url(config))
    app[SLACK] = runtime
    register_channel(app, "slack", runtime)
    if config.slack.mode == "http":
        app[VERIFIER] = SignatureVerifier(config.slack.signing_secret)
        app.router.add_post(EVENTS_PATH, slack_events)
