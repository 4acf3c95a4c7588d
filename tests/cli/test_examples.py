"""Every example in ``examples/`` runs against a live server and does what it says.

The shell gate and the seed's polling client run as processes against a real
``loopgate serve``; the agent tool and the webhook receiver are imported and
run against the app in-process (the receiver on both stores).
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import os
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestServer
from cli_server import TIMEOUT, clean_env, get, post, running_server

from loopgate.client import Loopgate, LoopgateClient
from loopgate.config import Config, WebhooksConfig
from loopgate.store.base import EventStore
from loopgate.web.app import create_app

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
ServerFactory = Callable[..., Awaitable[TestServer]]


def load_example(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"example_{name}", EXAMPLES / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with running_server(cwd=tmp_path_factory.mktemp("examples")) as (base, _process):
        yield base


def run_example(command: list[str], server: str, **env: str) -> subprocess.Popen[str]:
    # `loopgate` must be found on PATH, as in a CI job with the package installed.
    path = os.pathsep.join((str(Path(sys.executable).parent), os.environ.get("PATH", "")))
    return subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**clean_env(), "PATH": path, "LOOPGATE_URL": server, **env},
    )


def answer_when_asked(
    server: str, message: str, option: str, process: subprocess.Popen[str]
) -> None:
    deadline = time.monotonic() + TIMEOUT
    while True:
        _, body = get(f"{server}/v1/requests?status=pending&limit=200")
        mine = [r for r in body["requests"] if r["message"] == message]
        if mine:
            status, answered = post(
                f"{server}/v1/requests/{mine[0]['request_id']}/response", {"option": option}
            )
            assert status == 200, answered
            return
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline, "the example never asked"
        time.sleep(0.05)


@pytest.mark.parametrize(
    ("version", "option", "code", "said"),
    [("v2.1", "Deploy", 0, "approved: deploying v2.1"), ("v2.2", "Hold", 1, "not approved")],
)
def test_the_shell_deploy_gate_follows_the_answer(
    server: str, version: str, option: str, code: int, said: str
) -> None:
    process = run_example(["sh", str(EXAMPLES / "deploy_gate.sh"), version], server)
    answer_when_asked(server, f"Deploy {version} to production?", option, process)
    stdout, stderr = process.communicate(timeout=TIMEOUT)
    assert process.returncode == code, stderr
    assert said in stdout


def test_the_shell_deploy_gate_does_not_deploy_when_nobody_answers(server: str) -> None:
    process = run_example(
        ["sh", str(EXAMPLES / "deploy_gate.sh"), "v2.3"], server, GATE_TIMEOUT="1"
    )
    stdout, stderr = process.communicate(timeout=TIMEOUT)
    assert process.returncode == 2, stderr
    assert "nobody answered in time: not deploying v2.3" in stdout


@pytest.mark.parametrize(("option", "code"), [("🚀 Deploy", 0), ("⏸️ Hold", 1)])
def test_the_seed_polling_client_exits_with_the_decision(
    server: str, option: str, code: int
) -> None:
    process = run_example([sys.executable, str(EXAMPLES / "deploy_gate.py")], server)
    answer_when_asked(server, "Deploy v2.1.0 to production? All tests passed ✅", option, process)
    _, stderr = process.communicate(timeout=TIMEOUT)
    assert process.returncode == code, stderr
    assert option in stderr


@pytest.fixture
async def live(store: EventStore, aiohttp_server: ServerFactory) -> TestServer:
    config = Config(webhooks=WebhooksConfig(allow_private_networks=True, retry_seconds=0.05))
    return await aiohttp_server(create_app(config, store=store))


async def answer_in_process(live: TestServer, option: str) -> str:
    async with LoopgateClient(str(live.make_url(""))) as operator:
        deadline = time.monotonic() + TIMEOUT
        while not (pending := await operator.list_requests(statuses=("pending",))):
            assert time.monotonic() < deadline, "nothing was asked"
            await asyncio.sleep(0.02)
        request_id: str = pending[0]["request_id"]
        await operator.answer(request_id, option=option)
    return request_id


def test_the_tool_definitions_share_one_input_schema() -> None:
    tools = load_example("agent_tools")
    assert tools.OPENAI_TOOL["function"]["parameters"] is tools.ANTHROPIC_TOOL["input_schema"]
    assert tools.OPENAI_TOOL["function"]["name"] == tools.ANTHROPIC_TOOL["name"] == "ask_human"
    assert tools.PARAMETERS["required"] == ["question"]


@pytest.mark.parametrize(
    ("arguments", "option", "approved"),
    [
        ('{"question": "Delete the old logs?"}', "Approve", True),  # OpenAI: a JSON string
        ({"question": "Email the customer?", "options": ["Send", "Hold"]}, "Hold", False),
    ],
)
async def test_the_agent_tool_asks_and_reports_the_decision(
    live: TestServer, arguments: str | dict[str, Any], option: str, approved: bool
) -> None:
    tools = load_example("agent_tools")
    with Loopgate(str(live.make_url(""))) as gate:
        calling = asyncio.create_task(
            asyncio.to_thread(tools.handle_tool_call, gate, "ask_human", arguments)
        )
        await answer_in_process(live, option)
        result = json.loads(await asyncio.wait_for(calling, TIMEOUT))
        unknown = json.loads(tools.handle_tool_call(gate, "rm_rf", "{}"))
    assert result == {"approved": approved, "answer": option, "status": "answered"}
    assert unknown == {"error": "unknown tool 'rm_rf'"}


async def test_the_webhook_receiver_gets_one_verified_decision(
    live: TestServer, aiohttp_server: ServerFactory
) -> None:
    receiver = load_example("webhook_receiver")
    base = str(live.make_url(""))
    secret = await asyncio.to_thread(receiver.fetch_secret, base, None)
    decisions: list[dict[str, Any]] = []
    arrived = asyncio.Event()

    def on_decision(decision: dict[str, Any]) -> None:
        decisions.append(decision)
        arrived.set()

    hook = await aiohttp_server(receiver.make_app(secret, on_decision))
    async with LoopgateClient(base) as gate:
        await gate.submit(
            "Ship?", options=["Ship", "Hold"], callback_url=str(hook.make_url("/loopgate"))
        )
        request_id = await answer_in_process(live, "Ship")
        await asyncio.wait_for(arrived.wait(), 2.0)
    async with (
        aiohttp.ClientSession() as http,
        http.post(hook.make_url("/loopgate"), data=b"{}") as forged,
    ):
        assert forged.status == 401  # unsigned: refused, and not passed on
    assert [(d["request_id"], d["status"], d["response"]) for d in decisions] == [
        (request_id, "answered", "Ship")
    ]
