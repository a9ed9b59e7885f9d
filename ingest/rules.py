"""Field rules of the input contract, as pandera schemas over the tables' text.

Every check is vectorised and named for the rule a user broke; a failed row's reason reads
``<field>: <rule>`` (for example ``ts: must be an ISO-8601 timestamp with a time zone``). Every field also
carries the privacy guard's checks (:mod:`ingest.pii`): no card number, email address or phone number outside
the columns meant for them.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from functools import lru_cache

import numpy as np
import pandas as pd
import pandera.pandas as pa

from graph.schema import KNOWN_LABELS
from ingest.contract import CARD_EVENT_TYPES, KYC_LEVELS, TABLES, TableContract
from ingest.countries import ISO_ALPHA2
from ingest.pii import KINDS, forbidden, holds
from ingest.privacy import card_digits, luhn_valid_series

MAX_ID_LENGTH = 256
#: Larger amounts are refused: totals of many events must stay finite (two 1e308 would add up to infinity).
MAX_AMOUNT = 1e15
#: Timestamps outside these years are refused (every later stage handles them, as pandas' nanosecond times do).
YEARS = (1900, 2199)
_ZONED_TS = r"^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?(Z|z|[+-]\d{2}:?\d{2})$"
_EMAIL = r"^[^@\s]+@[^@\s]+\.[^@\s]+$"
_PHONE = r"^\+?[0-9 ().-]{6,24}$"
_ASSET = r"^[A-Za-z0-9._-]{1,20}$"
_OCTET = r"(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"
#: An IPv4 address in canonical form (what ``ipaddress`` prints back): four decimal octets, no leading zeros.
_CANONICAL_IPV4 = rf"{_OCTET}(?:\.{_OCTET}){{3}}"


def parse_timestamps(values: pd.Series) -> pd.Series:
    """ISO-8601 text with a zone → UTC timestamps (to the microsecond); anything else → NaT.

    Fractions beyond microseconds are cut first: one nanosecond value would otherwise make pandas parse the whole
    column in nanoseconds, whose range (1677–2262) turns every later or earlier year of the column into NaT.
    """
    zoned = values.str.match(_ZONED_TS).fillna(False).astype(bool)
    text = values.where(zoned).str.replace(r"(\.\d{6})\d+", r"\1", regex=True)
    parsed = pd.to_datetime(text, utc=True, format="ISO8601", errors="coerce")
    return parsed.astype("datetime64[us, UTC]")


def parse_amounts(values: pd.Series) -> pd.Series:
    numbers = pd.to_numeric(values, errors="coerce").astype("float64")
    return numbers.where(np.isfinite(numbers))


@lru_cache(maxsize=1_000_000)
def canonical_ip(text: str) -> str | None:
    """The canonical text of an IPv4/IPv6 address (``::FFFF:1.2.3.4`` style forms kept as IPv6), else None."""
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        return None


def canonical_ips(values: pd.Series) -> pd.Series:
    """:func:`canonical_ip` of every value, vectorised: a dotted quad without leading zeros is its own
    canonical text (one regular expression over the column); only the other values (IPv6, bad text) are
    parsed one distinct value at a time."""
    text = values.astype("string")
    fast = text.str.fullmatch(_CANONICAL_IPV4).fillna(False).astype(bool)
    rest = text[~fast & text.notna()]
    parsed = rest.map({v: canonical_ip(v) for v in rest.unique()})
    return text.where(fast, parsed).astype("string")


def _is_zoned_timestamp(s: pd.Series) -> pd.Series:
    return parse_timestamps(s).notna()


def _is_in_years(s: pd.Series) -> pd.Series:
    years = parse_timestamps(s).dt.year
    return (years.isna() | years.between(*YEARS)).astype(bool)


def _is_non_negative_amount(s: pd.Series) -> pd.Series:
    return (parse_amounts(s) >= 0).fillna(False).astype(bool)


def _is_not_huge_amount(s: pd.Series) -> pd.Series:
    return ~(parse_amounts(s) > MAX_AMOUNT).fillna(False).astype(bool)


def _is_ip(s: pd.Series) -> pd.Series:
    return canonical_ips(s).notna()


def _is_card_number(s: pd.Series) -> pd.Series:
    shaped = s.str.fullmatch(r"[0-9][0-9 -]*").fillna(False).astype(bool)
    digits = card_digits(s)
    length_ok = digits.str.len().between(12, 19).fillna(False).astype(bool)
    return shaped & length_ok & luhn_valid_series(digits.where(shaped & length_ok))


def _is_phone(s: pd.Series) -> pd.Series:
    n_digits = s.str.count(r"\d")
    return (s.str.match(_PHONE).fillna(False) & n_digits.between(6, 15)).astype(bool)


def _is_country(s: pd.Series) -> pd.Series:
    return s.str.upper().isin(ISO_ALPHA2)


def _check(fn: Callable[[pd.Series], pd.Series], rule: str) -> pa.Check:
    return pa.Check(fn, name=rule, error=rule)


def _one_of(values: tuple[str, ...]) -> pa.Check:
    allowed = frozenset(values)
    return _check(lambda s: s.isin(allowed), f"must be one of {', '.join(values)}")


ID = _check(lambda s: s.str.len() <= MAX_ID_LENGTH, f"must be at most {MAX_ID_LENGTH} characters")
ZONED_TS = _check(_is_zoned_timestamp, "must be an ISO-8601 timestamp with a time zone")
TS_YEARS = _check(_is_in_years, f"must be a time in the years {YEARS[0]}-{YEARS[1]}")
AMOUNT = _check(_is_non_negative_amount, "must be a number >= 0")
AMOUNT_MAX = _check(_is_not_huge_amount, f"must be at most {MAX_AMOUNT:.0e}")
IP_ADDRESS = _check(_is_ip, "must be an IPv4 or IPv6 address")
CARD_NUMBER = _check(_is_card_number, "must be a card number (12-19 digits passing the Luhn check)")
EMAIL = _check(lambda s: s.str.match(_EMAIL).fillna(False).astype(bool), "must be an email address")
PHONE = _check(_is_phone, "must be a phone number (6-15 digits)")
COUNTRY = _check(_is_country, "must be an ISO-3166 alpha-2 country code")
KYC = _one_of(tuple(str(k) for k in KYC_LEVELS))
EVENT_TYPE = _one_of(CARD_EVENT_TYPES)
LABEL = _one_of(KNOWN_LABELS)
ASSET = _check(
    lambda s: s.str.match(_ASSET).fillna(False).astype(bool), "must be an asset symbol (1-20 letters, digits, . _ -)"
)
USER_AGENT = _check(lambda s: s.str.len() <= 1024, "must be at most 1024 characters")

_COLUMN_CHECKS: dict[str, list[pa.Check]] = {
    "account_id": [ID],
    "from_account_id": [ID],
    "to_account_id": [ID],
    "referrer_id": [ID],
    "device_id": [ID],
    "signup_device_id": [ID],
    "user_agent": [USER_AGENT],
    "promo_code": [ID],
    "address": [ID],
    "source": [ID],
    "created_at": [ZONED_TS, TS_YEARS],
    "ts": [ZONED_TS, TS_YEARS],
    "amount": [AMOUNT, AMOUNT_MAX],
    "ip": [IP_ADDRESS],
    "signup_ip": [IP_ADDRESS],
    "card_number": [CARD_NUMBER],
    "email": [EMAIL],
    "phone": [PHONE],
    "country": [COUNTRY],
    "kyc_level": [KYC],
    "event_type": [EVENT_TYPE],
    "label": [LABEL],
    "asset": [ASSET],
}


def _no_personal_data(kind: str) -> pa.Check:
    return _check(lambda s: ~holds(s, kind), f"must not hold a {kind}")


#: The privacy guard's check per kind of personal data (see :mod:`ingest.pii`).
NO_PERSONAL_DATA: dict[str, pa.Check] = {kind: _no_personal_data(kind) for kind in KINDS}


def table_schema(contract: TableContract) -> pa.DataFrameSchema:
    """The pandera schema of one table's text form (as read by :func:`ingest.read.read_table`)."""
    columns = {
        name: pa.Column(
            "string",
            checks=[*_COLUMN_CHECKS[name], *(NO_PERSONAL_DATA[kind] for kind in forbidden(name))],
            nullable=name in contract.nullable,
            required=True,
        )
        for name in contract.columns
    }
    return pa.DataFrameSchema(columns, name=contract.name, strict=False, coerce=False)


SCHEMAS: dict[str, pa.DataFrameSchema] = {t.name: table_schema(t) for t in TABLES}
