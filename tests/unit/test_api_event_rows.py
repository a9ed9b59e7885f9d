"""The API's one-row event path equals batch ingestion's: the same accept/reject decision as
:func:`ingest.validate.validate_table`, and the same graph parts — hence the same content ids, the idempotency
key — as :func:`ingest.graph_rows.build_graph_parts` of the one-row table."""

from __future__ import annotations

from typing import Any

import pandas as pd
import pytest

from ingest.contract import TABLES_BY_NAME
from ingest.graph_rows import build_graph_parts
from ingest.load import part_id
from ingest.privacy import Hasher
from ingest.read import ROW
from ingest.validate import validate_table
from serving.api.event_rows import event_parts, event_table, row_cells, row_passes
from tests.conftest import TEST_HASH_KEY

TS = "2026-02-28T12:00:00Z"
GOOD: list[tuple[str, dict[str, Any]]] = [
    ("logins", {"account_id": "a1", "ts": TS, "ip": "10.1.2.3", "device_id": "d-1", "user_agent": "Mozilla/5.0"}),
    ("logins", {"account_id": "a1", "ts": "2026-02-28 12:00:00+01:00", "ip": "::FFFF:1.2.3.4", "device_id": "d"}),
    ("logins", {"account_id": " a2 ", "ts": TS, "ip": "2001:db8::1", "device_id": "d-2", "user_agent": ""}),
    ("transfers", {"from_account_id": "a1", "to_account_id": "a2", "ts": TS, "amount": "12.5", "asset": "usdt"}),
    ("transfers", {"from_account_id": "b", "to_account_id": "a", "ts": TS, "amount": 0, "asset": "BTC"}),
    ("withdrawals", {"account_id": "a1", "address": "w1", "ts": TS, "amount": "3", "asset": "btc"}),
    ("promo_redemptions", {"account_id": "a1", "promo_code": "P1", "ts": TS, "amount": 5.25}),
    (
        "card_events",
        {"account_id": "a1", "card_number": "4111111111111111", "event_type": "deposit", "ts": TS, "amount": "10"},
    ),
    (
        "card_events",
        {
            "account_id": "a1",
            "card_number": "5555 5555 5555 4444",
            "event_type": "chargeback",
            "ts": TS,
            "amount": "7.5",
        },
    ),
    (
        "accounts",
        {
            "account_id": "a9",
            "created_at": TS,
            "email": "New.User@Example.org",
            "phone": "+14155550123",
            "country": "us",
            "kyc_level": "1",
            "referrer_id": "a1",
            "signup_ip": "203.0.113.9",
            "signup_device_id": "dv",
        },
    ),
    (
        "accounts",
        {
            "account_id": "a8",
            "created_at": TS,
            "email": None,
            "phone": None,
            "country": "DE",
            "kyc_level": 2,
            "referrer_id": None,
            "signup_ip": "2001:db8::7",
            "signup_device_id": "dv2",
        },
    ),
]
BAD: list[tuple[str, dict[str, Any]]] = [
    ("logins", {"account_id": "a1", "ts": "yesterday", "ip": "10.1.2.3", "device_id": "d"}),
    ("logins", {"account_id": "a1", "ts": "2026-02-28T12:00:00", "ip": "10.1.2.3", "device_id": "d"}),
    ("logins", {"account_id": "a1", "ts": "1850-01-01T00:00:00Z", "ip": "10.1.2.3", "device_id": "d"}),
    ("logins", {"account_id": "a1", "ts": TS, "ip": "10.1.2.300", "device_id": "d"}),
    ("logins", {"account_id": None, "ts": TS, "ip": "10.1.2.3", "device_id": "d"}),
    ("logins", {"account_id": "a1", "ts": TS, "ip": "10.1.2.3", "device_id": "x" * 300}),
    ("logins", {"account_id": "a1", "ts": TS, "ip": "10.1.2.3", "device_id": "d", "user_agent": "me@example.org"}),
    ("logins", {"account_id": "4111 1111 1111 1111", "ts": TS, "ip": "10.1.2.3", "device_id": "d"}),
    ("transfers", {"from_account_id": "a1", "to_account_id": "a1", "ts": TS, "amount": "1", "asset": "BTC"}),
    ("transfers", {"from_account_id": "a1", "to_account_id": "a2", "ts": TS, "amount": "-1", "asset": "BTC"}),
    ("transfers", {"from_account_id": "a1", "to_account_id": "a2", "ts": TS, "amount": "1e20", "asset": "BTC"}),
    ("withdrawals", {"account_id": "a1", "address": "w", "ts": TS, "amount": "nan", "asset": "B T C"}),
    (
        "card_events",
        {"account_id": "a1", "card_number": "4111111111111112", "event_type": "deposit", "ts": TS, "amount": "1"},
    ),
    (
        "card_events",
        {"account_id": "a1", "card_number": "4111111111111111", "event_type": "refund", "ts": TS, "amount": "1"},
    ),
    (
        "accounts",
        {
            "account_id": "a9",
            "created_at": TS,
            "email": "not-an-email",
            "phone": None,
            "country": "US",
            "kyc_level": "1",
            "referrer_id": None,
            "signup_ip": "203.0.113.9",
            "signup_device_id": "d",
        },
    ),
    (
        "accounts",
        {
            "account_id": "a9",
            "created_at": TS,
            "email": None,
            "phone": None,
            "country": "XX",
            "kyc_level": "7",
            "referrer_id": "a9",
            "signup_ip": "203.0.113.9",
            "signup_device_id": "d",
        },
    ),
]


def _batch(table: str, row: dict[str, Any]) -> pd.DataFrame | None:
    """Batch validation of the one-row table: the accepted rows, or None when it is rejected."""
    contract = TABLES_BY_NAME[table]
    validation = validate_table(event_table(contract, row_cells(contract, row)), contract)
    return None if len(validation.rejects) else validation.accepted.drop(columns=[ROW])


@pytest.mark.parametrize(("table", "row"), GOOD + BAD)
def test_the_row_check_decides_as_batch_validation(table: str, row: dict[str, Any]) -> None:
    contract = TABLES_BY_NAME[table]
    assert row_passes(contract, row_cells(contract, row)) == (_batch(table, row) is not None)
    assert ((table, row) in GOOD) == (_batch(table, row) is not None)  # the cases are what they say


@pytest.mark.parametrize(("table", "row"), GOOD)
def test_event_parts_are_batch_ingestions_parts_with_the_same_ids(table: str, row: dict[str, Any]) -> None:
    hasher = Hasher(TEST_HASH_KEY)
    contract = TABLES_BY_NAME[table]
    accepted = _batch(table, row)
    assert accepted is not None
    batch = build_graph_parts({table: accepted}, hasher)
    fast = event_parts(contract, row_cells(contract, row), hasher)
    assert [(p.kind, p.source) for p in fast] == [(p.kind, p.source) for p in batch]
    for mine, theirs in zip(fast, batch):
        assert mine.rows.astype(object).to_dict("records") == theirs.rows.astype(object).to_dict("records")
        assert part_id(mine) == part_id(theirs), mine.kind


def test_an_unknown_column_is_named() -> None:
    with pytest.raises(ValueError, match="^colour: not a column of logins"):
        row_cells(TABLES_BY_NAME["logins"], {"account_id": "a", "colour": "red"})
