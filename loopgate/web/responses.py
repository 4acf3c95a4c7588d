"""JSON responses, encoded by msgspec: UTF-8 as is (emoji stay emoji), and fast."""

from __future__ import annotations

from typing import Any

import msgspec
from aiohttp import web

_encoder = msgspec.json.Encoder()


def json_response(data: Any, *, status: int = 200) -> web.Response:
    return web.Response(body=_encoder.encode(data), status=status, content_type="application/json")
