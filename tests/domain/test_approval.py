"""Which answers count as ``approved``: the word rule of DESIGN.md §7."""

from __future__ import annotations

import pytest

from loopgate.domain.approval import (
    NEGATIVE_WORDS,
    approves,
    label_approves,
    text_approves,
    words,
)
from loopgate.events import Option, RequestType

LABELS: list[tuple[str, bool]] = [
    # approvals
    ("Approve", True),
    ("✅ Approve", True),
    ("Yes", True),
    ("OK!", True),
    ("Ship it 🚀", True),
    ("Deploy to prod", True),
    # every listed word refuses, whatever the case, emoji or punctuation
    ("No", False),
    ("NO!", False),
    ("no.", False),
    ("❌ Cancel", False),
    ("Reject", False),
    ("DENY", False),
    ("Decline…", False),
    ("🛑 abort", False),
    ("Stop!", False),
    ("⏸️ Hold", False),
    ("Wait", False),
    ("(pause)", False),
    ("Skip this one", False),
    ("Ask me later", False),
    ("Needs review", False),
    # words are split on anything that is not a letter
    ("hold-on", False),
    ("stop_now", False),
    ("no2", False),
    ("yes/no", False),
    # only whole, listed words count
    ("Nothing to add", True),
    ("Notable", True),
    ("Nobody objects", True),
    ("Not now", True),
    ("Don't deploy", True),
    ("Cancelled", True),
]


@pytest.mark.parametrize(("label", "approved"), LABELS, ids=[label for label, _ in LABELS])
def test_a_plain_label_approves_unless_a_word_is_negative_or_deferring(
    label: str, approved: bool
) -> None:
    assert label_approves(label) is approved
    assert approves(Option(label=label)) is approved


def test_the_negative_words_are_exactly_the_documented_ones() -> None:
    documented = "no cancel reject deny decline abort stop hold wait pause skip later review"
    assert set(documented.split()) == NEGATIVE_WORDS


def test_words_ignore_case_emoji_and_punctuation() -> None:
    assert words("⏸️ Hold-on, OK? Don't!") == ["hold", "on", "ok", "don", "t"]


def test_words_of_other_scripts_are_words_too() -> None:
    assert words("Ja, bitte — Überprüfen") == ["ja", "bitte", "überprüfen"]


@pytest.mark.parametrize(
    ("option", "approved"),
    [
        (Option(label="Reject the risk and ship", approves=True), True),
        (Option(label="Approve rollback", approves=False), False),
        (Option(label="Approve rollback"), True),
    ],
    ids=["explicit yes beats a negative word", "explicit no beats a plain label", "inferred"],
)
def test_an_explicit_approves_wins_over_the_label(option: Option, approved: bool) -> None:
    assert approves(option) is approved


@pytest.mark.parametrize(
    ("request_type", "text", "approved"),
    [
        ("confirmation", "yes please", True),
        ("confirmation", "No.", False),
        ("confirmation", "wait until Monday", False),
        ("input", "no", True),
        ("input", "stop the old workers first", True),
        ("choice", "later", True),
    ],
)
def test_free_text_approves_unless_it_declines_a_confirmation(
    request_type: RequestType, text: str, approved: bool
) -> None:
    assert text_approves(text, request_type) is approved
