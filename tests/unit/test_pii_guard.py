"""The privacy guard: personal data outside its own columns is found, the row rejected, and never kept raw."""

from __future__ import annotations

import random

import pandas as pd
import pytest

from ingest.contract import TABLES, TableContract
from ingest.pii import (
    CARD,
    EMAIL,
    EXPECTED,
    FEW_VALUES,
    KINDS,
    PHONE,
    forbidden,
    holds,
    personal_data_candidates,
    redact_text,
)
from ingest.read import ROW
from ingest.validate import validate_table

PAN = "4111111111111111"
CARDS = [
    PAN,
    "4111 1111 1111 1111",
    "4111-1111-1111-1111",
    "dev-4111111111111111",
    "x4111111111111111y",
    "+1 4111 1111 1111 1111",
    "４１１１１１１１１１１１１１１１",
    "4111\u00a01111\u00a01111\u00a01111",
    "4111\u200b1111\u200b1111\u200b1111",
    "ua 5500 0055 5555 5559 end",
    "378282246310005",
]
EMAILS = ["admin@example.com", "bot (contact: ops@corp.io)", "ａｄｍｉｎ＠ｅｘａｍｐｌｅ.com"]
PHONES = ["+1 (555) 010-2000", "+44 20 7946 0958", "call 555-010-2000", "(555) 010-2000", "555.010.2000"]
CLEAN = [
    "acc_000123",
    "4bc3de32a83e1df78e874aef1a8f0c81",
    "0x31e1ed81532f62abbe61a7de25b9ef52091a3bd4",
    "bc1q8x2fv29a2gqnj8vlqf86ygf0saslm5wk9lyavx",
    "2026-01-01T10:00:00+02:00",
    "2026-01-01 10:00:00.123456789Z",
    "10.0.0.1",
    "2001:db8::1",
    "1519.54",
    "-3",
    "+100",
    "4111111111111112",  # Luhn-invalid
    "12345678901234567890123",  # one group of more than 19 digits
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.6367.207",
    "WELCOME50",
    "manual_review",
    "USDT",
    "fp[/x]\x1b[2J",
]


def _flags(values: list[str], kind: str) -> list[bool]:
    return holds(pd.Series(values, dtype="string"), kind).tolist()


@pytest.mark.parametrize(("kind", "found"), [(CARD, CARDS), (EMAIL, EMAILS), (PHONE, PHONES)])
def test_each_kind_is_found_in_its_shapes(kind, found):
    assert _flags(found, kind) == [True] * len(found)


@pytest.mark.parametrize("kind", [CARD, EMAIL, PHONE])
def test_ordinary_values_are_not_taken_for_personal_data(kind):
    assert _flags(CLEAN, kind) == [False] * len(CLEAN)


def test_redaction_keeps_no_more_than_bin_last_four_and_a_hint():
    masked = [redact_text(value) for value in CARDS]
    assert masked[:3] == ["411111******1111"] * 3
    assert masked[3:6] == ["dev-411111******1111", "x411111******1111y", "+1 411111******1111"]
    assert masked[-2:] == ["ua 550000******5559 end", "378282*****0005"]
    assert not holds(pd.Series(masked, dtype="string"), CARD).any()
    assert redact_text("ops: admin@example.com") == "ops: a***@example.com"
    assert redact_text("call +1 (555) 010-2000 now") == "call +* (***) ***-**00 now"
    assert redact_text("acc_000123") == "acc_000123"


def test_only_the_columns_meant_for_personal_data_may_hold_it():
    assert forbidden("user_agent") == (CARD, EMAIL, PHONE)
    assert forbidden("card_number") == (EMAIL, PHONE)
    assert forbidden("email") == (CARD,)
    assert forbidden("phone") == (EMAIL,)


def _good_row(contract: TableContract) -> dict[str, str]:
    values = {
        "account_id": "acc_1",
        "created_at": "2026-01-01T00:00:00Z",
        "ts": "2026-01-01T00:00:00Z",
        "email": "a@b.io",
        "phone": "+15550102000",
        "country": "DE",
        "kyc_level": "1",
        "referrer_id": "acc_0",
        "signup_ip": "10.0.0.1",
        "signup_device_id": "d1",
        "ip": "10.0.0.2",
        "device_id": "d2",
        "user_agent": "ua",
        "card_number": PAN,
        "event_type": "deposit",
        "amount": "1.5",
        "from_account_id": "acc_1",
        "to_account_id": "acc_2",
        "asset": "BTC",
        "promo_code": "P1",
        "address": "w1",
        "label": "benign",
        "source": "manual",
    }
    return {c: values[c] for c in contract.columns}


PLANTED = {CARD: "4111 1111 1111 1111", EMAIL: "leak.victim@example.com", PHONE: "+44 20 7946 0958"}


@pytest.mark.parametrize("contract", TABLES, ids=lambda t: t.name)
def test_personal_data_in_any_other_column_rejects_the_row_and_is_masked_in_the_reject(contract):
    rows, expected = [_good_row(contract)], {}
    for column in contract.columns:
        for kind in forbidden(column):
            row = _good_row(contract)
            row[column] = f"x {PLANTED[kind]} y"
            rows.append(row)
            expected[len(rows)] = f"{column}: must not hold a {kind}"
    frame = pd.DataFrame(rows, columns=list(contract.columns)).astype("string")
    frame.insert(0, ROW, range(1, len(frame) + 1))
    v = validate_table(frame, contract)
    assert v.accepted[ROW].tolist() == [1]
    reasons = dict(zip(v.rejects[ROW], v.rejects["reason"]))
    assert set(reasons) == set(expected)
    for row, reason in expected.items():
        assert reason in reasons[row].split("; ")
    text = v.rejects.to_csv()
    for secret in ("4111 1111 1111 1111", PAN, "leak.victim", "7946 0958", "79460958"):
        assert secret not in text
    for column in EXPECTED:  # the PII columns of rejected rows are masked too
        if column in contract.columns:
            assert not v.rejects[column].fillna("").str.contains("a@b.io|5550102000|4111111111111111").any()


def _awkward_values(seed: int, n: int) -> list[str | None]:
    """Seeded text built from the pieces the pre-filters and finders look at: digits of several scripts, the
    separators a card number may hold, ``@``, ``+``, dots, dashes, letters, full-width forms."""
    rng = random.Random(seed)
    pieces = ["4111", "1111", "5559", "0", "7", "٣", "４", "５", " ", "-", "\u00a0", "\u200b", "\u2013", "\n",
              "ab@", "@cd.io", "＠", ".", "+44 ", "+", "(555) ", "010-2000", "/", "a", "Z", "é", "co", "x"]  # fmt: skip
    values: list[str | None] = [None]
    values += ["".join(rng.choice(pieces) for _ in range(rng.randint(1, 24))) for _ in range(n)]
    return values


def test_a_few_values_are_judged_as_a_whole_column_is():
    """Up to FEW_VALUES values are scanned with patterns compiled once (Python's engine); a column with
    pyarrow's RE2: the same pre-filters, the same answers, for every kind and for the joined pre-filter."""
    values = [*CARDS, *EMAILS, *PHONES, *CLEAN, *_awkward_values(7, 600)]
    column = pd.Series(values, dtype="string")
    assert len(column) > FEW_VALUES
    # An accented local part: pyarrow's own NFKC leaves "é" decomposed, which hid this one from a column.
    assert holds(pd.Series(["josé@example.com"] * (FEW_VALUES + 1), dtype="string"), EMAIL).all()
    by_column = {kind: holds(column, kind).tolist() for kind in KINDS}
    candidates = personal_data_candidates(column).tolist()
    assert sum(candidates) > 100 and all(sum(flags) > 10 for flags in by_column.values())
    for lo in range(0, len(values), FEW_VALUES):
        few = column.iloc[lo : lo + FEW_VALUES]
        assert personal_data_candidates(few).tolist() == candidates[lo : lo + FEW_VALUES]
        for kind in KINDS:
            assert holds(few, kind).tolist() == by_column[kind][lo : lo + FEW_VALUES], kind
