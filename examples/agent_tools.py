"""Give an LLM agent a "ask a human" tool, for OpenAI- and Anthropic-style function calling.

Both APIs take a JSON Schema of the tool's input: OpenAI's ``tools=[{"type":
"function", "function": {...}}]`` and Anthropic's ``tools=[{"name", ...,
"input_schema"}]``. When the model calls the tool, hand its name and
arguments to :func:`handle_tool_call` and send the returned string back as
the tool result. No model is called here: the tool itself is plain Python::

    LOOPGATE_URL=http://127.0.0.1:8080 python examples/agent_tools.py "Delete the old logs?"
"""

from __future__ import annotations

import json
import sys
from typing import Any

from loopgate.client import Loopgate

NAME = "ask_human"
DESCRIPTION = (
    "Ask a human operator for approval or input before doing something risky or "
    "irreversible. Blocks until they answer and returns their decision."
)
PARAMETERS: dict[str, Any] = {
    "type": "object",
    "properties": {
        "question": {"type": "string", "description": "What to ask, with enough context."},
        "options": {
            "type": "array",
            "items": {"type": "string"},
            "description": "Answer buttons, e.g. ['Approve', 'Reject']. Omit for yes/no.",
        },
        "timeout_seconds": {
            "type": "integer",
            "minimum": 1,
            "description": "How long to wait for the human (default 600).",
        },
    },
    "required": ["question"],
}

OPENAI_TOOL = {
    "type": "function",
    "function": {"name": NAME, "description": DESCRIPTION, "parameters": PARAMETERS},
}
ANTHROPIC_TOOL = {"name": NAME, "description": DESCRIPTION, "input_schema": PARAMETERS}


def ask_human(
    gate: Loopgate,
    question: str,
    options: list[str] | None = None,
    timeout_seconds: int = 600,
) -> dict[str, Any]:
    """The tool: ask through Loopgate and report the decision as the model should see it."""
    decision = gate.ask(
        question,
        options=options or ["Approve", "Reject"],
        timeout=timeout_seconds,
        session_id="agent-tools",
    )
    return {
        "approved": decision.approved,
        "answer": decision.response,
        "status": decision.status,  # answered, expired or cancelled
    }


def handle_tool_call(gate: Loopgate, name: str, arguments: str | dict[str, Any]) -> str:
    """Run one tool call (OpenAI sends arguments as a JSON string, Anthropic as an object)."""
    if name != NAME:
        return json.dumps({"error": f"unknown tool {name!r}"})
    args = json.loads(arguments) if isinstance(arguments, str) else arguments
    return json.dumps(ask_human(gate, **args))


if __name__ == "__main__":
    with Loopgate() as gate:
        print(handle_tool_call(gate, NAME, {"question": " ".join(sys.argv[1:]) or "Proceed?"}))
