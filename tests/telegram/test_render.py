"""What the operator sees: request and outcome messages (HTML) and the answer buttons."""

from __future__ import annotations

import html
import re
from datetime import UTC, datetime
from typing import Any

import pytest
from aiogram.types import ForceReply, InlineKeyboardMarkup

from loopgate.channels.telegram.callbacks import CallbackSigner
from loopgate.channels.telegram.render import escape, keyboard, outcome_text, request_text
from loopgate.events import Option, Vote
from loopgate.views import RequestView

REQUEST_ID = "7c09e0a4-3f1b-4c5d-9e8f-0123456789ab"
CREATED = datetime(2030, 1, 2, 3, 4, 5, tzinfo=UTC)
EXPIRES = datetime(2030, 1, 2, 3, 9, 5, tzinfo=UTC)
DECIDED = datetime(2030, 1, 2, 3, 6, 7, tzinfo=UTC)
TELEGRAM_LIMIT = 4096
ALLOWED_TAGS = re.compile(r"</?(b|i|code)>")

signer = CallbackSigner.for_bot_token("123456:secret-token")


def view(**changes: Any) -> RequestView:
    fields: dict[str, Any] = {
        "request_id": REQUEST_ID,
        "session_id": "deploy-bot",
        "client_id": "ci",
        "tenant": "local",
        "message": "Deploy v2.1.0 to production?",
        "request_type": "confirmation",
        "options": (Option(label="Approve"), Option(label="Reject")),
        "allow_text": False,
        "metadata": {},
        "timeout_seconds": 300,
        "on_timeout": "reject",
        "callback_url": None,
        "idempotency_key": None,
        "status": "delivered",
        "approved": None,
        "response_option": None,
        "response_text": None,
        "responder": None,
        "channel": None,
        "created_at": CREATED,
        "expires_at": EXPIRES,
        "delivered_at": None,
        "decided_at": None,
        "version": 2,
    }
    fields.update(changes)
    if "options" in changes and isinstance(changes["options"], list):
        fields["options"] = tuple(Option(label=label) for label in changes["options"])
    return RequestView(**fields)


def visible(text: str) -> str:
    """What Telegram shows for an HTML message: tags gone, entities decoded."""
    assert "<" not in ALLOWED_TAGS.sub("", text), "unexpected raw tag or unescaped <"
    return html.unescape(ALLOWED_TAGS.sub("", text))


def worst_case(**changes: Any) -> RequestView:
    noisy = "&<>" * 100
    return view(
        message="&" * 4000,
        metadata={f"{i}{noisy}": noisy for i in range(15)},
        session_id="&" * 200,
        client_id="<" * 200,
        allow_text=True,
        **changes,
    )


# --- escaping ------------------------------------------------------------------------------


def test_escape_touches_only_the_three_html_characters() -> None:
    assert escape("<b>a & b</b> *_[`'\"") == "&lt;b&gt;a &amp; b&lt;/b&gt; *_[`'\""


def test_the_message_is_escaped_and_markdown_characters_stay_verbatim() -> None:
    text = request_text(view(message="<b>rm -rf</b> & *bold* _it_ [link](x)"))
    assert "&lt;b&gt;rm -rf&lt;/b&gt; &amp; *bold* _it_ [link](x)" in text
    assert "<b>rm -rf</b>" not in text
    assert "<b>rm -rf</b> & *bold* _it_ [link](x)" in visible(text)


def test_metadata_keys_and_values_are_escaped() -> None:
    text = request_text(view(metadata={"<k>&": "<v> & *x*", "n": 847, "list": [1, "a"]}))
    assert "• <i>&lt;k&gt;&amp;</i>: &lt;v&gt; &amp; *x*" in text
    assert "• <i>n</i>: 847" in text
    assert '• <i>list</i>: [1,"a"]' in text
    assert "<v>" not in text


def test_session_and_client_ids_are_escaped() -> None:
    text = request_text(view(session_id="s<1>&_*[", client_id="c<2>&_*["))
    assert "<code>s&lt;1&gt;&amp;_*[</code> · c&lt;2&gt;&amp;_*[" in text
    assert "s<1>&_*[ · c<2>&_*[" in visible(text)


# --- the request message -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("request_type", "title"),
    [
        ("confirmation", "🔔 <b>Approval needed</b>"),
        ("choice", "🔘 <b>Choose one</b>"),
        ("input", "✍️ <b>Answer needed</b>"),
    ],
)
def test_the_title_says_what_kind_of_request_it_is(request_type: str, title: str) -> None:
    text = request_text(view(request_type=request_type))
    assert text.splitlines()[0] == title


def test_the_question_follows_the_title() -> None:
    lines = request_text(view()).splitlines()
    assert lines[1:3] == ["", "Deploy v2.1.0 to production?"]


def test_the_deadline_is_shown_in_utc() -> None:
    text = request_text(view())
    assert "⏳ expires 2030-01-02 03:09 UTC" in text
    assert "no deadline" not in text


def test_a_request_without_deadline_says_so() -> None:
    text = request_text(view(expires_at=None, timeout_seconds=0))
    assert "⏳ no deadline" in text
    assert "expires" not in text


def test_the_reply_hint_appears_only_when_text_is_allowed() -> None:
    assert "Reply to this message" not in request_text(view(allow_text=False))
    with_buttons = request_text(view(allow_text=True))
    assert with_buttons.endswith("↩️ Reply to this message to answer (or tap a button).")
    without = request_text(view(allow_text=True, options=(), request_type="input"))
    assert without.endswith("↩️ Reply to this message to answer.")


def test_a_long_message_is_clipped_with_an_ellipsis() -> None:
    text = request_text(view(message="x" * 4000))
    question = text.splitlines()[2]
    assert question.endswith("…")
    assert question.startswith("x" * 100)
    assert len(question) < 4000


def test_a_short_message_is_not_clipped() -> None:
    text = request_text(view(message="y" * 2000))
    assert text.splitlines()[2] == "y" * 2000


def test_the_clip_counts_characters_not_entities() -> None:
    # "&" becomes "&amp;" only after clipping, so a message of "&" shows as many as "x".
    amps = visible(request_text(view(message="&" * 4000))).splitlines()[2]
    xs = visible(request_text(view(message="x" * 4000))).splitlines()[2]
    assert len(amps) == len(xs)
    assert "&amp;" in request_text(view(message="&" * 4000))


def test_the_worst_case_request_fits_telegrams_limit() -> None:
    text = request_text(worst_case())
    assert len(visible(text)) <= TELEGRAM_LIMIT
    assert len(text) > TELEGRAM_LIMIT  # the HTML itself may be longer; only what shows counts


@pytest.mark.parametrize(
    "changes",
    [
        {"status": "answered", "approved": True, "response_text": "&" * 4000},
        {"status": "cancelled"},
        {"status": "expired", "approved": False},
    ],
)
def test_the_worst_case_outcome_fits_telegrams_limit(changes: dict[str, Any]) -> None:
    text = outcome_text(worst_case(decided_at=DECIDED, responder="<" * 300, **changes))
    assert len(visible(text)) <= TELEGRAM_LIMIT


def test_long_metadata_keys_and_values_are_clipped() -> None:
    text = visible(request_text(view(metadata={"k" * 100: "v" * 500})))
    line = next(line for line in text.splitlines() if line.startswith("• "))
    key, value = line.removeprefix("• ").split(": ")
    assert key.endswith("…") and len(key) < 100
    assert value.endswith("…") and len(value) < 500


def test_up_to_ten_metadata_items_are_all_shown() -> None:
    text = visible(request_text(view(metadata={f"key{i}": i for i in range(10)})))
    assert [line for line in text.splitlines() if line.startswith("• ")] == [
        f"• key{i}: {i}" for i in range(10)
    ]
    assert "more" not in text


def test_more_than_ten_metadata_items_are_counted() -> None:
    text = visible(request_text(view(metadata={f"key{i}": i for i in range(13)})))
    bullets = [line for line in text.splitlines() if line.startswith("• ")]
    assert len(bullets) == 11
    assert bullets[-1] == "• … 3 more"
    assert "key9" in text and "key10" not in text


def test_no_metadata_means_no_metadata_lines() -> None:
    assert "• " not in request_text(view(metadata={}))


# --- the outcome -------------------------------------------------------------------------


def decided(**changes: Any) -> str:
    return visible(outcome_text(view(decided_at=DECIDED, **changes)))


def test_an_approval_shows_the_answer_who_and_when() -> None:
    text = decided(
        status="answered", approved=True, response_option="Approve", responder="telegram:42"
    )
    assert text.splitlines()[-1] == "✅ Approved: “Approve” by telegram:42 at 2030-01-02 03:06 UTC"
    assert "Deploy v2.1.0 to production?" in text
    assert "expires" not in text


def test_a_rejection_shows_the_answer_who_and_when() -> None:
    text = decided(
        status="answered", approved=False, response_text="not <now> & never", responder="a<b>"
    )
    assert (
        text.splitlines()[-1] == "❌ Rejected: “not <now> & never” by a<b> at 2030-01-02 03:06 UTC"
    )


def test_the_outcome_escapes_the_answer_and_the_responder() -> None:
    raw = outcome_text(
        view(
            decided_at=DECIDED,
            status="answered",
            approved=True,
            response_text="<i>x</i>",
            responder="<b>",
        )
    )
    assert "&lt;i&gt;x&lt;/i&gt;" in raw
    assert "by &lt;b&gt; at" in raw


@pytest.mark.parametrize(
    ("approved", "words"), [(True, "approved"), (False, "rejected"), (None, "no decision")]
)
def test_an_expiry_says_what_it_counted_as(approved: bool | None, words: str) -> None:
    text = decided(status="expired", approved=approved)
    assert text.splitlines()[-1] == f"⌛ Expired at 2030-01-02 03:06 UTC ({words})"


def test_a_cancellation_shows_who_and_when() -> None:
    text = decided(status="cancelled", responder="agent:ci")
    assert text.splitlines()[-1] == "🚫 Cancelled by agent:ci at 2030-01-02 03:06 UTC"


def test_the_outcome_keeps_the_escaped_question() -> None:
    raw = outcome_text(view(message="a < b", status="cancelled", decided_at=DECIDED))
    assert "a &lt; b" in raw


# --- the keyboard ------------------------------------------------------------------------


def labels(markup: InlineKeyboardMarkup) -> list[list[str]]:
    return [[button.text for button in row] for row in markup.inline_keyboard]


def test_one_button_per_option_with_its_label_verbatim() -> None:
    options = ["<b>Yes</b>", "No & never", "*maybe*"]
    markup = keyboard(view(options=options), signer)
    assert isinstance(markup, InlineKeyboardMarkup)
    assert [b.text for row in markup.inline_keyboard for b in row] == options


def test_each_button_is_signed_with_its_request_and_index() -> None:
    options = ["🚀 Deploy", "⏸️ Hold", "🔍 Review First", "Other"]
    markup = keyboard(view(options=options), signer)
    assert isinstance(markup, InlineKeyboardMarkup)
    buttons = [b for row in markup.inline_keyboard for b in row]
    assert len(buttons) == len(options)
    for index, button in enumerate(buttons):
        assert button.callback_data is not None
        assert signer.verify(button.callback_data) == (REQUEST_ID, index)


def test_short_labels_share_rows_of_three() -> None:
    markup = keyboard(view(options=["A", "B", "C", "D", "E"]), signer)
    assert isinstance(markup, InlineKeyboardMarkup)
    assert labels(markup) == [["A", "B", "C"], ["D", "E"]]


def test_a_long_label_gets_its_own_row() -> None:
    long = "Deploy to production now"
    markup = keyboard(view(options=["Yes", long, "No", "Later"]), signer)
    assert isinstance(markup, InlineKeyboardMarkup)
    assert labels(markup) == [["Yes"], [long], ["No", "Later"]]


def test_a_twelve_character_label_is_still_short() -> None:
    markup = keyboard(view(options=["x" * 12, "y" * 12, "z" * 13]), signer)
    assert isinstance(markup, InlineKeyboardMarkup)
    assert labels(markup) == [["x" * 12, "y" * 12], ["z" * 13]]


def test_an_open_question_without_options_asks_for_a_reply() -> None:
    markup = keyboard(view(options=(), allow_text=True, request_type="input"), signer)
    assert isinstance(markup, ForceReply)
    assert markup.force_reply is True


def test_no_options_and_no_text_means_no_keyboard() -> None:
    assert keyboard(view(options=(), allow_text=False), signer) is None


def test_options_win_over_the_reply_prompt_when_both_apply() -> None:
    markup = keyboard(view(allow_text=True), signer)
    assert isinstance(markup, InlineKeyboardMarkup)


# --- votes ---------------------------------------------------------------------------------


def vote(member: str, approves: bool = True) -> Vote:
    return Vote(
        member=member,
        option="Approve" if approves else "Reject",
        approves=approves,
        channel="telegram",
        at=DECIDED,
    )


def test_a_quorum_request_counts_its_approvals_and_names_the_voters() -> None:
    assert "0 of 2 approvals" in visible(request_text(view(quorum=2)))
    open_ = view(quorum=3, votes=(vote("u-1"), vote("telegram:7", approves=False)))
    text = visible(request_text(open_, {"u-1": "a<b>"}))
    assert "🗳 1 of 3 approvals — a<b> ✅, telegram:7 ❌" in text.splitlines()


def test_a_lone_approvers_request_says_nothing_of_votes() -> None:
    assert "approvals" not in request_text(view())
    text = decided(status="answered", approved=True, response_option="Approve", responder="u-1")
    assert "Votes" not in text


def test_the_outcome_of_a_quorum_request_lists_its_votes() -> None:
    votes = (vote("u-1"), vote("u-2"))
    text = visible(
        outcome_text(
            view(
                status="answered",
                approved=True,
                response_option="Approve",
                responder="u-2",
                decided_at=DECIDED,
                quorum=2,
                votes=votes,
            ),
            "bob",
            {"u-1": "alice", "u-2": "bob"},
        )
    )
    assert text.splitlines()[-1] == "🗳 Votes: alice ✅, bob ✅"


def test_the_worst_case_outcome_with_many_votes_fits_telegrams_limit() -> None:
    votes = tuple(vote("<" * 300 + str(i)) for i in range(40))
    changes = {"status": "answered", "approved": True, "response_text": "&" * 4000}
    text = outcome_text(
        worst_case(decided_at=DECIDED, responder="<" * 300, quorum=40, votes=votes, **changes)
    )
    assert len(visible(text)) <= TELEGRAM_LIMIT
    assert visible(text).endswith("and 35 more")
    assert len(visible(request_text(worst_case(quorum=41, votes=votes)))) <= TELEGRAM_LIMIT
