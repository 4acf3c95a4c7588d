"""The Block Kit message of a request: what it says, its buttons, its outcome (pure functions)."""

from __future__ import annotations

from datetime import UTC, datetime

from telegram.test_render import DECIDED, REQUEST_ID, view

from loopgate.channels.slack.render import (
    CONSOLE_ACTION,
    EDIT_LABEL,
    OPEN_LABEL,
    button_value,
    escape,
    outcome_message,
    read_button_value,
    request_message,
)
from loopgate.events import Action, Vote

CONSOLE = "https://loopgate.example"
DEPLOY = Action(tool="deploy", args={"env": "<prod>", "version": "v2.1"})
AT = datetime(2030, 1, 2, 3, 5, tzinfo=UTC)


def vote(member: str, approves: bool = True) -> Vote:
    label = "Approve" if approves else "Reject"
    return Vote(member=member, option=label, approves=approves, channel="slack", at=AT)


def buttons(blocks: list[dict[str, object]]) -> list[dict[str, object]]:
    return [e for b in blocks if b["type"] == "actions" for e in b["elements"]]  # type: ignore[attr-defined]


def texts(blocks: list[dict[str, object]]) -> str:
    found = []
    for block in blocks:
        if "text" in block:
            found.append(block["text"]["text"])  # type: ignore[index]
        found += [f["text"] for f in block.get("fields", [])]  # type: ignore[attr-defined]
        found += [e["text"] for e in block.get("elements", []) if e["type"] == "mrkdwn"]  # type: ignore[attr-defined]
    return "\n".join(found)


def test_one_button_per_option_carrying_the_request_and_the_option() -> None:
    message = request_message(view(message="Deploy <b>now</b> & then?"))
    found = buttons(message.blocks)
    assert [b["text"]["text"] for b in found] == ["Approve", "Reject"]  # type: ignore[index]
    assert [b["style"] for b in found] == ["primary", "danger"]
    for index, button in enumerate(found):
        pressed = read_button_value(str(button["value"]))
        assert (pressed.request_id, pressed.option) == (REQUEST_ID, index)
    assert "Deploy &lt;b&gt;now&lt;/b&gt; &amp; then?" in texts(message.blocks)
    assert "Deploy &lt;b&gt;now&lt;/b&gt; &amp; then?" in message.text


def test_the_action_its_args_and_metadata_are_shown_escaped() -> None:
    message = request_message(
        view(action=DEPLOY, fingerprint="abcdef0123456789", metadata={"ticket": "<T-1>"})
    )
    shown = texts(message.blocks)
    assert "🛠 *deploy*" in shown
    assert "`env`: &lt;prod&gt;" in shown and "`version`: v2.1" in shown
    assert "🔏 `abcdef012345`" in shown
    assert "*ticket*\n&lt;T-1&gt;" in shown
    assert "🛠 deploy" in message.text


def test_edit_in_console_only_for_an_editable_action_with_an_http_console() -> None:
    editable = request_message(view(action=DEPLOY, editable=True), console_url=CONSOLE)
    (edit,) = [b for b in buttons(editable.blocks) if b["action_id"] == CONSOLE_ACTION]
    assert edit["text"]["text"] == EDIT_LABEL  # type: ignore[index]
    assert edit["url"] == f"{CONSOLE}/console/requests/{REQUEST_ID}"
    for plain in (
        request_message(view(action=DEPLOY), console_url=CONSOLE),
        request_message(view(), console_url=CONSOLE),
        request_message(view(action=DEPLOY, editable=True), console_url="console.local"),
    ):
        assert CONSOLE_ACTION not in [b["action_id"] for b in buttons(plain.blocks)]


def test_a_question_without_options_links_to_the_console_to_answer() -> None:
    message = request_message(
        view(request_type="input", options=(), allow_text=True), console_url=CONSOLE
    )
    (only,) = buttons(message.blocks)
    assert only["text"]["text"] == OPEN_LABEL  # type: ignore[index]


def test_the_votes_so_far_name_the_voters() -> None:
    open_view = view(quorum=2, votes=(vote("u-alice"),), approvals=1)
    shown = texts(request_message(open_view, {"u-alice": "alice"}).blocks)
    assert "🗳 1 of 2 approvals — alice ✅" in shown
    assert "0 of 2 approvals" in texts(request_message(view(quorum=2)).blocks)
    assert "approvals" not in texts(request_message(view()).blocks)


def test_the_outcome_says_who_decided_what_and_when_without_buttons() -> None:
    decided = view(
        status="answered",
        approved=True,
        response_option="Approve",
        responder="u-bob",
        decided_at=DECIDED,
        channel="slack",
    )
    message = outcome_message(decided, "bob")
    assert buttons(message.blocks) == []
    assert "✅ *Approved*: “Approve” by bob at 2030-01-02 03:06 UTC" in texts(message.blocks)
    expired = outcome_message(view(status="expired", approved=False, decided_at=DECIDED))
    assert "⌛ *Expired* at 2030-01-02 03:06 UTC (rejected)" in texts(expired.blocks)


def test_the_outcome_of_a_quorum_lists_the_votes() -> None:
    decided = view(
        status="answered",
        approved=True,
        response_option="Approve",
        responder="u-carol",
        decided_at=DECIDED,
        quorum=2,
        votes=(vote("u-bob"), vote("u-carol")),
    )
    shown = texts(outcome_message(decided, "carol", {"u-bob": "bob", "u-carol": "carol"}).blocks)
    assert "🗳 Votes: bob ✅, carol ✅" in shown


def test_a_button_value_not_ours_is_refused() -> None:
    assert read_button_value(button_value("r1", 3)).option == 3
    for forged in ("", "{}", '{"request_id": "r1"}', "r1:0", '{"request_id": 1, "option": 0}'):
        try:
            read_button_value(forged)
        except ValueError:
            continue
        raise AssertionError(f"{forged!r} was read")


def test_escape_leaves_nothing_that_starts_a_link_or_a_mention() -> None:
    assert escape("<!channel> & <@U1|x>") == "&lt;!channel&gt; &amp; &lt;@U1|x&gt;"
