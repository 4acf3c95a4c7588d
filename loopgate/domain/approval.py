"""Whether an answer counts as an approval: the ``approved`` flag agents read.

An option may say so explicitly (``Option(label="Ship it", approves=True)``), and
then that wins. A plain label is an approval unless one of its words is negative
or deferring (:data:`NEGATIVE_WORDS`). Words are runs of letters, compared
case-insensitively, so emoji, punctuation and digits only separate words:
``"⏸️ Hold"`` and ``"NO!"`` are refusals, ``"✅ Approve"`` is an approval.

Only whole words count: ``"Nothing to add"`` approves although it starts with
"no". The list is kept exactly as documented, so ``"Not now"`` and ``"Don't
deploy"`` approve (neither "not" nor "don"/"t" is listed); an option author who
means otherwise sets ``approves`` explicitly.

(The reference server checks only cancel/reject/deny, and so counts its own
README's "⏸️ Hold" as an approval; Loopgate does not.)
"""

from __future__ import annotations

import re

from loopgate.events import Option, RequestType

NEGATIVE_WORDS: frozenset[str] = frozenset(
    {
        "no",
        "cancel",
        "reject",
        "deny",
        "decline",
        "abort",
        "stop",
        "hold",
        "wait",
        "pause",
        "skip",
        "later",
        "review",
    }
)

# Letters of any script: \w minus digits and underscore.
_WORD = re.compile(r"[^\W\d_]+")


def words(label: str) -> list[str]:
    """The case-folded words of ``label``; anything that is not a letter separates them."""
    return _WORD.findall(label.casefold())


def label_approves(label: str) -> bool:
    """True unless one of the label's words is in :data:`NEGATIVE_WORDS`."""
    return NEGATIVE_WORDS.isdisjoint(words(label))


def approves(option: Option) -> bool:
    """The option's explicit ``approves`` if set, else what its label implies."""
    if option.approves is not None:
        return option.approves
    return label_approves(option.label)


def text_approves(text: str, request_type: RequestType) -> bool:
    """Whether a free-text answer approves.

    A free-text answer approves unless the request says otherwise. A
    ``confirmation`` does: it asks a yes/no question, so a typed "no, wait" must
    not read as a yes, and the text is judged by the label rule. Any other text
    (an ``input`` or a ``choice`` with ``allow_text``) is information, not a
    verdict, and approves.
    """
    if request_type == "confirmation":
        return label_approves(text)
    return True
