"""Signed callback data of answer buttons: round trips, size, and everything forged."""

from __future__ import annotations

import uuid

import pytest

from loopgate.channels.telegram.callbacks import (
    MAX_CALLBACK_BYTES,
    CallbackSigner,
    ForgedCallback,
    request_id_of,
    request_ref,
)

UUID_ID = "7c09e0a4-3f1b-4c5d-9e8f-0123456789ab"
PLAIN_ID = "A" * 15 + "z_-9" + "b" * 11  # 30 characters, the longest plain id

signer = CallbackSigner.for_bot_token("123456:secret-token")


def replace_part(data: str, index: int, new: str) -> str:
    parts = data.split(".")
    parts[index] = new
    return ".".join(parts)


# --- round trips and size --------------------------------------------------------------


@pytest.mark.parametrize("request_id", [UUID_ID, str(uuid.uuid4()), "abc", "r-1_x", PLAIN_ID])
@pytest.mark.parametrize("index", [0, 1, 9, 10, 999])
def test_verify_returns_exactly_what_was_signed(request_id: str, index: int) -> None:
    assert signer.verify(signer.sign(request_id, index)) == (request_id, index)


def test_uuid_ids_are_packed_into_22_characters() -> None:
    ref = request_ref(UUID_ID)
    assert ref.startswith("u")
    assert len(ref) == 23
    assert request_id_of(ref) == UUID_ID


def test_short_plain_ids_are_kept_as_they_are() -> None:
    assert request_ref("abc") == "rabc"
    assert request_id_of("rabc") == "abc"


@pytest.mark.parametrize("request_id", [UUID_ID, PLAIN_ID])
def test_every_option_index_fits_in_64_bytes(request_id: str) -> None:
    for index in range(1000):
        data = signer.sign(request_id, index)
        assert len(data.encode()) <= MAX_CALLBACK_BYTES, (request_id, index)
        assert signer.verify(data) == (request_id, index)


def test_signing_is_deterministic_and_differs_per_button() -> None:
    assert signer.sign(UUID_ID, 1) == signer.sign(UUID_ID, 1)
    assert signer.sign(UUID_ID, 1) != signer.sign(UUID_ID, 2)
    assert signer.sign(UUID_ID, 1) != signer.sign(str(uuid.uuid4()), 1)


def test_the_key_comes_from_the_bot_token() -> None:
    data = signer.sign(UUID_ID, 0)
    assert CallbackSigner.for_bot_token("123456:secret-token").verify(data) == (UUID_ID, 0)
    with pytest.raises(ForgedCallback):
        CallbackSigner.for_bot_token("123456:another-token").verify(data)


# --- forgeries ---------------------------------------------------------------------------


def test_a_tampered_tag_is_refused() -> None:
    data = signer.sign(UUID_ID, 2)
    tag = data.split(".")[3]
    flipped = ("A" if tag[0] != "A" else "B") + tag[1:]
    with pytest.raises(ForgedCallback, match="bad signature"):
        signer.verify(replace_part(data, 3, flipped))
    with pytest.raises(ForgedCallback):
        signer.verify(replace_part(data, 3, tag[:-1]))
    with pytest.raises(ForgedCallback):
        signer.verify(replace_part(data, 3, ""))


def test_another_option_index_with_the_same_tag_is_refused() -> None:
    data = signer.sign(UUID_ID, 2)
    with pytest.raises(ForgedCallback, match="bad signature"):
        signer.verify(replace_part(data, 2, "3"))


def test_another_request_with_the_same_tag_is_refused() -> None:
    data = signer.sign(UUID_ID, 0)
    other = request_ref(str(uuid.uuid4()))
    with pytest.raises(ForgedCallback, match="bad signature"):
        signer.verify(replace_part(data, 1, other))
    with pytest.raises(ForgedCallback, match="bad signature"):
        signer.verify(replace_part(signer.sign("abc", 0), 1, "rabd"))


def test_data_signed_with_another_key_is_refused() -> None:
    data = CallbackSigner(b"another key").sign(UUID_ID, 0)
    with pytest.raises(ForgedCallback, match="bad signature"):
        signer.verify(data)


@pytest.mark.parametrize("prefix", ["b", "A", "", "aa"])
def test_a_wrong_prefix_is_refused(prefix: str) -> None:
    with pytest.raises(ForgedCallback, match="not a Loopgate answer button"):
        signer.verify(replace_part(signer.sign(UUID_ID, 0), 0, prefix))


def test_a_wrong_number_of_parts_is_refused() -> None:
    data = signer.sign(UUID_ID, 0)
    for bad in (data + ".x", data.rsplit(".", 1)[0], "a", "a.b", "....."):
        with pytest.raises(ForgedCallback, match="not a Loopgate answer button"):
            signer.verify(bad)


@pytest.mark.parametrize("index", ["²", "\u0661", "-1", "+1", " 1", "1 ", "1\n", "1000", "x", ""])
def test_an_index_that_is_not_0_to_999_in_ascii_digits_is_refused(index: str) -> None:
    with pytest.raises(ForgedCallback, match="not a Loopgate answer button"):
        signer.verify(replace_part(signer.sign(UUID_ID, 1), 2, index))


@pytest.mark.parametrize("index", ["01", "001"])
def test_a_non_canonical_index_is_refused_even_with_the_right_tag(index: str) -> None:
    # "01" must not pass with the tag of "1": the server never signed it.
    with pytest.raises(ForgedCallback):
        signer.verify(replace_part(signer.sign(UUID_ID, 1), 2, index))


def test_the_empty_string_is_refused() -> None:
    with pytest.raises(ForgedCallback):
        signer.verify("")


@pytest.mark.parametrize(
    "ref",
    ["", "u", "uAAAA", "u" + "A" * 21, "u" + "A" * 23, "r", "rab.c", "r" + "a" * 31, "xabc"],
)
def test_unreadable_references_are_forged_even_when_correctly_tagged(ref: str) -> None:
    # Only a signer's own refs are ever tagged; still, a bad one must not slip through.
    with pytest.raises(ForgedCallback):
        request_id_of(ref)
    tag = signer._tag(ref, 0)
    if "." not in ref:
        with pytest.raises(ForgedCallback):
            signer.verify(f"a.{ref}.0.{tag}")


# --- ids that cannot go on a button -------------------------------------------------------


@pytest.mark.parametrize(
    "request_id",
    ["a" * 31, "a" * 40, "abc.def", "has space", "ünïcode", "", "abc\n", uuid.uuid4().hex],
)
def test_sign_refuses_ids_that_are_too_long_or_odd(request_id: str) -> None:
    with pytest.raises(ValueError, match="too long or odd"):
        signer.sign(request_id, 0)


def test_sign_refuses_ids_that_are_not_forged_callbacks() -> None:
    # A bad id is the caller's mistake, not a forgery: a plain ValueError.
    with pytest.raises(ValueError) as info:
        signer.sign("a" * 40, 0)
    assert not isinstance(info.value, ForgedCallback)


@pytest.mark.parametrize(
    "request_id", [UUID_ID.upper(), "{" + UUID_ID + "}", "urn:uuid:" + UUID_ID]
)
def test_non_canonical_uuid_text_is_refused_not_normalised(request_id: str) -> None:
    # Packing would give back the lower-case form, another id; so these are refused.
    with pytest.raises(ValueError, match="too long or odd"):
        signer.sign(request_id, 0)


@pytest.mark.parametrize("index", [-1, 1000])
def test_sign_refuses_an_index_verify_could_not_read(index: int) -> None:
    with pytest.raises(ValueError, match="out of range"):
        signer.sign(UUID_ID, index)
