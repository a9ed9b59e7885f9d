import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st

from graph.errors import ConfigurationError
from ingest.privacy import (
    Hasher,
    email_domain,
    luhn_valid,
    luhn_valid_series,
    mask_card,
    normalise_email,
    normalise_phone,
)


def test_known_card_numbers_pass_luhn_and_typos_fail():
    assert luhn_valid("4111111111111111")
    assert luhn_valid("5500005555555559")
    assert not luhn_valid("4111111111111112")
    assert not luhn_valid("4111-1111")


@given(st.lists(st.text(alphabet="0123456789", min_size=1, max_size=19), min_size=1, max_size=30))
def test_vectorised_luhn_matches_the_scalar_one(numbers):
    got = luhn_valid_series(pd.Series(numbers)).tolist()
    assert got == [luhn_valid(n) for n in numbers]


def test_mask_keeps_only_bin_and_last_four():
    assert mask_card("4111 1111 1111 1111") == "411111******1111"
    assert mask_card("4111") == "****"
    assert mask_card(None) == ""


def test_hash_is_keyed_and_namespaced():
    a, b = Hasher("k" * 16), Hasher("j" * 16)
    assert a.digest("card", "4111111111111111") != b.digest("card", "4111111111111111")
    assert a.digest("card", "x") != a.digest("email", "x")
    assert a.digest("card", "x") == Hasher("k" * 16).digest("card", "x")
    assert "k" * 16 not in repr(a)


def test_short_key_is_refused():
    with pytest.raises(ConfigurationError, match="too short"):
        Hasher("short")


def test_email_normalisation_folds_gmail_variants_and_tags():
    emails = pd.Series(["J.Doe+promo@Gmail.com", "jdoe@googlemail.com", "A.B+x@Corp.io", None], dtype="string")
    norm = normalise_email(emails)
    assert norm.tolist()[:3] == ["jdoe@gmail.com", "jdoe@gmail.com", "a.b@corp.io"]
    assert pd.isna(norm.iloc[3])
    assert email_domain(norm).tolist()[:3] == ["gmail.com", "gmail.com", "corp.io"]


def test_phone_normalisation_keeps_plus_and_digits():
    assert normalise_phone(pd.Series(["+1 (555) 010-2000"])).tolist() == ["+15550102000"]
