"""``loopgate policy apply|show|test``, run as real processes; apply and show on both stores."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import msgspec
from cli_server import TIMEOUT, clean_env

from loopgate.policies import PolicyFile

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "policy.toml"

# The must-show policy.
MUST_SHOW = """
[[rules]]
name = "big-payments"
[[rules.when]]
field = "metadata.amount"
op = "gte"
value = 10000
[rules.then]
approvers = ["group:finance"]
quorum = 2

[[rules]]
name = "staging"
[[rules.when]]
field = "session_id"
op = "glob"
value = "staging-*"
[rules.then]
decide = "approve"
"""


def loopgate(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "loopgate", *args],
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        env={**clean_env(), "LOOPGATE_LOG__FORMAT": "json"},
        cwd=cwd,
    )


def policy_file(tmp_path: Path, text: str = MUST_SHOW) -> Path:
    path = tmp_path / "policy.toml"
    path.write_text(text)
    return path


def test_the_policy_commands_have_help(tmp_path: Path) -> None:
    for command in (["policy"], ["policy", "apply"], ["policy", "show"], ["policy", "test"]):
        result = loopgate(*command, "--help", cwd=tmp_path)
        assert result.returncode == 0, result.stderr
        assert "usage: loopgate policy" in result.stdout
    assert "--request JSON" in loopgate("policy", "test", "--help", cwd=tmp_path).stdout


def test_apply_then_show(fresh_database_url: str, tmp_path: Path) -> None:
    db = ("--db", fresh_database_url)
    before = loopgate("policy", "show", *db, cwd=tmp_path)
    assert before.returncode == 0, before.stderr
    assert before.stdout.strip() == "workspace local: no policy set"

    applied = loopgate("policy", "apply", str(policy_file(tmp_path)), *db, cwd=tmp_path)
    assert applied.returncode == 0, applied.stderr
    assert applied.stdout.strip() == "policy v1 set for workspace local: 2 rule(s)"
    shown = loopgate("policy", "show", *db, cwd=tmp_path).stdout.splitlines()
    assert shown[0].startswith("workspace local: policy v1, set by cli at ")
    assert shown[1:] == [
        "1. big-payments: when metadata.amount gte 10000 -> approvers group:finance, quorum 2",
        '2. staging: when session_id glob "staging-*" -> decide approve',
    ]

    again = loopgate("policy", "apply", str(EXAMPLE), *db, cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    assert again.stdout.strip() == "policy v2 set for workspace local: 3 rule(s)"


def test_a_bad_file_or_workspace_sets_nothing(fresh_database_url: str, tmp_path: Path) -> None:
    db = ("--db", fresh_database_url)
    bad = policy_file(tmp_path, MUST_SHOW.replace("quorum = 2", "quorum = 0"))
    refused = loopgate("policy", "apply", str(bad), *db, cwd=tmp_path)
    assert refused.returncode == 2
    assert "rules[0] ('big-payments'): quorum must be 1 or more" in refused.stderr
    unknown = policy_file(tmp_path, MUST_SHOW.replace("quorum = 2", "quorom = 2"))
    refused = loopgate("policy", "apply", str(unknown), *db, cwd=tmp_path)
    assert refused.returncode == 2 and "quorom" in refused.stderr
    good = policy_file(tmp_path)
    elsewhere = loopgate("policy", "apply", str(good), "--workspace", "nope", *db, cwd=tmp_path)
    assert elsewhere.returncode == 2 and "no workspace 'nope'" in elsewhere.stderr
    assert "no policy set" in loopgate("policy", "show", *db, cwd=tmp_path).stdout


def test_policy_test_says_what_the_server_would_do(tmp_path: Path) -> None:
    path = str(policy_file(tmp_path))

    def test(request: dict[str, object]) -> list[str]:
        result = loopgate("policy", "test", path, "--request", json.dumps(request), cwd=tmp_path)
        assert result.returncode == 0, result.stderr
        return result.stdout.splitlines()

    staging = test({"session_id": "staging-42", "client_id": "deployer"})
    assert staging == [
        "rule 'staging' matches (policy v1)",
        "decide approve — decided_by policy staging@v1",
    ]
    payment = test({"session_id": "prod", "client_id": "payer", "metadata": {"amount": 25000}})
    assert payment == [
        "rule 'big-payments' matches (policy v1)",
        "requires approvers group:finance, quorum 2, veto, timeout 300s, on timeout reject",
    ]
    small = test(
        {
            "session_id": "prod",
            "client_id": "payer",
            "metadata": {"amount": 20},
            "approvers": ["user:alice"],
            "timeout_seconds": 60,
        }
    )
    assert small == [
        "no rule matches (policy v1)",
        "requires approvers user:alice, quorum 1, veto, timeout 60s, on timeout reject",
    ]


def test_policy_test_refuses_a_bad_request_or_file(tmp_path: Path) -> None:
    path = str(policy_file(tmp_path))
    bad_json = loopgate("policy", "test", path, "--request", "{", cwd=tmp_path)
    assert bad_json.returncode == 2 and "--request" in bad_json.stderr
    no_session = loopgate("policy", "test", path, "--request", '{"client_id": "c"}', cwd=tmp_path)
    assert no_session.returncode == 2 and "session_id" in no_session.stderr
    missing = loopgate("policy", "test", "nope.toml", "--request", "{}", cwd=tmp_path)
    assert missing.returncode == 2 and "nope.toml" in missing.stderr


def test_the_example_policy_is_valid_and_does_what_its_comments_say(tmp_path: Path) -> None:
    request = json.dumps({"session_id": "prod", "client_id": "c"})
    result = loopgate("policy", "test", str(EXAMPLE), "--request", request, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        "rule 'remind-then-page-the-lead' matches (policy v1)",
        "requires approvers role:approver, quorum 1, veto, timeout 300s, on timeout reject, "
        "escalate after 1800s to group:leads, remind every 600s",
    ]


def test_the_readmes_policy_is_the_example_file() -> None:
    readme = (EXAMPLE.parents[1] / "README.md").read_text()
    section = readme.split("\n## Policies\n", 1)[1].split("\n## ", 1)[0]
    block = section.split("```toml\n", 1)[1].split("```", 1)[0]
    assert msgspec.toml.decode(block, type=PolicyFile) == msgspec.toml.decode(
        EXAMPLE.read_bytes(), type=PolicyFile
    )
