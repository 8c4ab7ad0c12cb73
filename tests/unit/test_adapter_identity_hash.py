from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shared.events.identity import (
    InvalidIdentityError,
    hash_email,
    hash_phone,
    normalise_card,
    normalise_email,
    normalise_phone,
)

KEY = b"program-identity-key"


def test_email_is_trimmed_and_lowercased_before_hashing() -> None:
    # Given two spellings of one address
    # When both are hashed
    # Then the hashes agree and do not contain the address
    assert hash_email(KEY, "  Jon.Snow@Example.COM ") == hash_email(KEY, "jon.snow@example.com")
    assert "jon" not in hash_email(KEY, "jon.snow@example.com")


def test_the_key_matters() -> None:
    assert hash_email(KEY, "a@b.c") != hash_email(b"other", "a@b.c")


@pytest.mark.parametrize(
    ("raw", "region"), [("+44 7911 123456", None), ("07911 123456", "GB"), ("0044-7911-123456", "GB")]
)
def test_phone_spellings_normalise_to_one_e164_number(raw: str, region: str | None) -> None:
    assert normalise_phone(raw, region) == "+447911123456"
    assert hash_phone(KEY, raw, region) == hash_phone(KEY, "+447911123456")


def test_email_and_phone_hashes_live_in_different_spaces() -> None:
    # A string that parses as both must not collide across kinds.
    assert hash_email(KEY, "+447911123456@x.io") != hash_phone(KEY, "+447911123456")


@pytest.mark.parametrize("raw", ["", "no-at-sign", "@example.com", "a@", "a b@example.com", "a@b@c"])
def test_non_addresses_are_refused(raw: str) -> None:
    with pytest.raises(InvalidIdentityError):
        normalise_email(raw)


@pytest.mark.parametrize(("raw", "region"), [("12", "GB"), ("hello", None), ("07911 123456", None)])
def test_non_numbers_are_refused(raw: str, region: str | None) -> None:
    with pytest.raises(InvalidIdentityError):
        normalise_phone(raw, region)


def test_an_empty_key_is_a_programming_error() -> None:
    with pytest.raises(ValueError):
        hash_email(b"", "a@b.c")


@given(st.text(max_size=60))
def test_hashing_never_fails_with_anything_but_invalid_identity(text: str) -> None:
    for fn in (lambda: hash_email(KEY, text), lambda: hash_phone(KEY, text, "US")):
        try:
            assert len(fn()) == 64
        except InvalidIdentityError:
            pass


def test_a_card_number_has_one_spelling_across_channels() -> None:
    # Given the ways tills, apps and notes write one loyalty card
    spellings = ["6012 3456 78", "6012-3456-78", "6012345678", " 6012 345678 "]
    # Then they normalise to one identity, and junk is refused
    assert {normalise_card(s) for s in spellings} == {"6012345678"}
    assert normalise_card("ab-12 cd") == "AB12CD"
    for junk in ("", "12", "12#45", "x" * 33):
        with pytest.raises(InvalidIdentityError):
            normalise_card(junk)
