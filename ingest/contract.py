"""The input contract: which exchange-event tables ringwatch reads, and their columns.

A folder holds any of these tables, each as ``<table>.csv`` or ``<table>.parquet``. Extra columns are
ignored; a table missing a required column is refused as a whole with a message naming the column.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final


@dataclass(frozen=True)
class TableContract:
    """One input table: its name, columns in order, and which of them may be empty."""

    name: str
    columns: tuple[str, ...]
    nullable: frozenset[str] = frozenset()
    #: Columns holding an account id that must be known (or becomes a stub account).
    account_refs: tuple[str, ...] = ()


ACCOUNTS: Final = TableContract(
    "accounts",
    (
        "account_id",
        "created_at",
        "email",
        "phone",
        "country",
        "kyc_level",
        "referrer_id",
        "signup_ip",
        "signup_device_id",
    ),
    nullable=frozenset({"email", "phone", "referrer_id"}),
    account_refs=("referrer_id",),
)
LOGINS: Final = TableContract(
    "logins",
    ("account_id", "ts", "ip", "device_id", "user_agent"),
    nullable=frozenset({"user_agent"}),
    account_refs=("account_id",),
)
CARD_EVENTS: Final = TableContract(
    "card_events",
    ("account_id", "ts", "card_number", "event_type", "amount"),
    account_refs=("account_id",),
)
TRANSFERS: Final = TableContract(
    "transfers",
    ("ts", "from_account_id", "to_account_id", "asset", "amount"),
    account_refs=("from_account_id", "to_account_id"),
)
PROMO_REDEMPTIONS: Final = TableContract(
    "promo_redemptions",
    ("account_id", "ts", "promo_code", "amount"),
    account_refs=("account_id",),
)
WITHDRAWALS: Final = TableContract(
    "withdrawals",
    ("account_id", "ts", "address", "asset", "amount"),
    account_refs=("account_id",),
)
LABELS: Final = TableContract(
    "labels",
    ("account_id", "label", "source", "ts"),
    account_refs=("account_id",),
)

#: Every table, in the order ingestion processes them (accounts first: later tables reference them).
TABLES: Final = (ACCOUNTS, LOGINS, CARD_EVENTS, TRANSFERS, PROMO_REDEMPTIONS, WITHDRAWALS, LABELS)
TABLES_BY_NAME: Final = {t.name: t for t in TABLES}

CARD_EVENT_TYPES: Final = ("add", "deposit", "chargeback")
KYC_LEVELS: Final = (0, 1, 2, 3)

#: Written by `ringwatch generate` next to the tables; never ingested.
TRUTH_FILE: Final = "truth.csv"
TRUTH_COLUMNS: Final = ("account_id", "label", "ring_id")
