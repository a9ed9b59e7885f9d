"""Field rules of the input contract, as pandera schemas over the tables' text.

Every check is vectorised and named for the rule a user broke; a failed row's reason reads
``<field>: <rule>`` (for example ``ts: must be an ISO-8601 timestamp with a time zone``). Every field also
carries the privacy guard's checks (:mod:`ingest.pii`): no card number, email address or phone number outside
the columns meant for them.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from functools import lru_cache

import numpy as np
import pandas as pd
import pandera.pandas as pa
import pyarrow
import pyarrow.compute as pc

from graph.schema import KNOWN_LABELS
from ingest.contract import CARD_EVENT_TYPES, KYC_LEVELS, TABLES, TableContract
from ingest.countries import ISO_ALPHA2
from ingest.pii import KINDS, forbidden, holds, personal_data_candidates
from ingest.privacy import card_digits, luhn_valid_series, text_matrix

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
_HEXTET = r"(?:0|[1-9a-f][0-9a-f]{0,3})"
#: An IPv6 address written out in eight lower-case hextets without leading zeros. It is its own canonical text
#: unless two zero hextets follow each other (``ipaddress`` compresses a run of two or more to ``::``).
FULL_IPV6 = rf"{_HEXTET}(?::{_HEXTET}){{7}}"
_ZERO_RUN = r"(?:^|:)0:0(?::|$)"
#: The common shape of a timestamp, ``2025-09-02T00:00:02Z``, with every field in its range (the day is checked
#: against its month after parsing): read by fixed positions instead of pandas' parser.
_PLAIN_UTC_TS = (
    r"^[1-9][0-9]{3}-(?:0[1-9]|1[0-2])-(?:0[1-9]|[12][0-9]|3[01])T(?:[01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9]Z$"
)


class ColumnMemo:
    """Results of per-value functions over whole columns of one table, each computed once.

    The rules below call a few costly per-value functions from several checks of the same column (a timestamp is
    parsed by two checks and again for the accepted rows; an amount likewise; every field is scanned for personal
    data by one check per kind). Within :func:`column_memo` each such function runs once over the table's whole
    column, and every caller gets the values for its own rows (pandera hands a check the column without its
    missing values). Only for functions whose result for a value depends on that value alone.

    Args:
        table: the table being validated (a unique index).
    """

    def __init__(self, table: pd.DataFrame) -> None:
        self.table = table
        self._results: dict[tuple[str, Callable[[pd.Series], pd.Series]], pd.Series] = {}

    def apply(self, fn: Callable[[pd.Series], pd.Series], values: pd.Series) -> pd.Series:
        """``fn(values)``, taken from ``fn`` of the table's column of the same name."""
        name = values.name
        if not isinstance(name, str) or name not in self.table.columns:
            return fn(values)
        key = (name, fn)
        if key not in self._results:
            self._results[key] = fn(self.table[name])
        whole = self._results[key]
        if values.index.equals(whole.index):
            return whole
        return whole.loc[values.index]


_MEMO: ContextVar[ColumnMemo | None] = ContextVar("ingest_rules_memo", default=None)


@contextmanager
def column_memo(table: pd.DataFrame) -> Iterator[ColumnMemo | None]:
    """Within the block, the rules' costly per-value functions run once per column of ``table`` (see
    :class:`ColumnMemo`). Only the table's own columns, or rows of them, may be checked inside the block."""
    memo = ColumnMemo(table) if table.index.is_unique else None
    token = _MEMO.set(memo)
    try:
        yield memo
    finally:
        _MEMO.reset(token)


def memoised(fn: Callable[[pd.Series], pd.Series], values: pd.Series) -> pd.Series:
    """``fn(values)``, computed once per column inside :func:`column_memo`."""
    memo = _MEMO.get()
    return fn(values) if memo is None else memo.apply(fn, values)


def parse_timestamps(values: pd.Series) -> pd.Series:
    """ISO-8601 text with a zone → UTC timestamps (to the microsecond); anything else → NaT.

    Fractions beyond microseconds are cut first: one nanosecond value would otherwise make pandas parse the whole
    column in nanoseconds, whose range (1677–2262) turns every later or earlier year of the column into NaT.
    Values of the common shape ``YYYY-MM-DDThh:mm:ssZ`` are read by position (:func:`_plain_utc_timestamps`),
    the others by pandas; both give the same times.
    """
    times = np.full(len(values), np.datetime64("NaT"), dtype="datetime64[us]")
    plain, stamps = _plain_utc_timestamps(values)
    times[plain] = stamps
    rest = ~plain & values.notna().to_numpy(dtype=bool)
    if rest.any():
        others = values[rest]
        zoned = others.str.match(_ZONED_TS).fillna(False).astype(bool)
        text = others.where(zoned).str.replace(r"(\.\d{6})\d+", r"\1", regex=True)
        parsed = pd.to_datetime(text, utc=True, format="ISO8601", errors="coerce")
        times[rest] = parsed.astype("datetime64[us, UTC]").dt.tz_localize(None).to_numpy()
    return pd.Series(times, index=values.index).dt.tz_localize("UTC")


def _plain_utc_timestamps(values: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """The values of the shape ``YYYY-MM-DDThh:mm:ssZ`` naming a real day, and their times (``datetime64[us]``,
    UTC): the digits read at fixed positions. A day past its month's end (``2025-02-30``) is not one of them."""
    text = pyarrow.array(values.astype("string"), type=pyarrow.string(), from_pandas=True)
    shaped = pc.fill_null(pc.match_substring_regex(text, _PLAIN_UTC_TS), False).to_numpy(zero_copy_only=False)
    if not shaped.any():
        return shaped, np.empty(0, dtype="datetime64[us]")
    chosen = values[shaped]
    digits = text_matrix(chosen, len("2025-09-02T00:00:02Z")) - np.uint8(ord("0"))

    def field(start: int, stop: int) -> np.ndarray:
        return digits[:, start:stop].astype(np.int64) @ 10 ** np.arange(stop - start - 1, -1, -1)

    year, month, day = field(0, 4), field(5, 7), field(8, 10)
    seconds = field(11, 13) * 3600 + field(14, 16) * 60 + field(17, 19)
    months = ((year - 1970) * 12 + month - 1).astype("datetime64[M]")
    days = months.astype("datetime64[D]") + (day - 1).astype("timedelta64[D]")
    real_day = days.astype("datetime64[M]") == months  # 2025-02-30 would fall in March
    stamps = days.astype("datetime64[us]") + (seconds * 1_000_000).astype("timedelta64[us]")
    shaped[np.flatnonzero(shaped)[~real_day]] = False
    return shaped, stamps[real_day]


def parse_amounts(values: pd.Series) -> pd.Series:
    numbers = pd.to_numeric(values, errors="coerce").astype("float64")
    return numbers.where(np.isfinite(numbers))


#: Up to this many values, :func:`canonical_ips` parses each one.
_FEW_IPS = 4


@lru_cache(maxsize=1_000_000)
def canonical_ip(text: str) -> str | None:
    """The canonical text of an IPv4/IPv6 address (``::FFFF:1.2.3.4`` style forms kept as IPv6), else None."""
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        return None


def canonical_ips(values: pd.Series) -> pd.Series:
    """:func:`canonical_ip` of every value, vectorised: a dotted quad without leading zeros, and an IPv6 address
    written out in eight canonical hextets with no two zero hextets in a row, are their own canonical text
    (regular expressions over the column); only the other values (compressed or upper-case IPv6, bad text) are
    parsed one distinct value at a time. A few values (an online event's row) are all parsed so: the column
    passes cost more than the parse."""
    text = values.astype("string")
    if len(text) <= _FEW_IPS:
        return pd.Series(
            [canonical_ip(v) if isinstance(v, str) else None for v in text.tolist()], index=text.index, dtype="string"
        )
    v4 = text.str.fullmatch(_CANONICAL_IPV4).fillna(False).astype(bool)
    v6 = text.str.fullmatch(FULL_IPV6).fillna(False).astype(bool)
    v6 &= ~text.str.contains(_ZERO_RUN, regex=True).fillna(False).astype(bool)
    fast = v4 | v6
    rest = text[~fast & text.notna()]
    parsed = rest.map({v: canonical_ip(v) for v in rest.unique()})
    return text.where(fast, parsed).astype("string")


def _is_zoned_timestamp(s: pd.Series) -> pd.Series:
    return memoised(parse_timestamps, s).notna()


def _is_in_years(s: pd.Series) -> pd.Series:
    years = memoised(parse_timestamps, s).dt.year
    return (years.isna() | years.between(*YEARS)).astype(bool)


def _is_non_negative_amount(s: pd.Series) -> pd.Series:
    return (memoised(parse_amounts, s) >= 0).fillna(False).astype(bool)


def _is_not_huge_amount(s: pd.Series) -> pd.Series:
    return ~(memoised(parse_amounts, s) > MAX_AMOUNT).fillna(False).astype(bool)


def _is_ip(s: pd.Series) -> pd.Series:
    return memoised(canonical_ips, s).notna()


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
    def check(s: pd.Series) -> pd.Series:
        # One pass over the column finds the values that may hold any kind; each kind's check looks only at those.
        candidates = memoised(personal_data_candidates, s).to_numpy(dtype=bool)
        return ~holds(s, kind, candidates)

    return _check(check, f"must not hold a {kind}")


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
