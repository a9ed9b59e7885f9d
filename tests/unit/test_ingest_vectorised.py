"""The vectorised column functions of ingestion give exactly what their one-value versions give."""

from __future__ import annotations

import ipaddress
import os
import re

import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st

from ingest.graph_rows import ip_prefix, ip_prefixes
from ingest.pii import KINDS, holds, personal_data_candidates
from ingest.privacy import Hasher, card_digits, digest_text, digest_texts, email_domain, normalise_email
from ingest.rules import _ZONED_TS, canonical_ip, canonical_ips, column_memo, memoised, parse_timestamps

TRICKY_IPS = [
    "1.2.3.4", "01.2.3.4", "1.2.3.04", "255.255.255.255", "256.1.1.1", "0.0.0.0", " 1.2.3.4", "1.2.3.4\n",
    "1.2.3", "1.2.3.4.5", "١.2.3.4", "::1", "2001:DB8::1", "::ffff:1.2.3.4", "fe80::1%eth0", "", "not an ip",
]  # fmt: skip

octets = st.integers(0, 255).map(str) | st.sampled_from(["00", "01", "256", "999", "-1", "١"])
dotted = st.lists(octets, min_size=3, max_size=5).map(".".join)
ipv6 = st.integers(0, 2**128 - 1).map(lambda n: str(ipaddress.IPv6Address(n)))
ip_like = dotted | ipv6 | st.sampled_from(TRICKY_IPS) | st.text(max_size=12)


def _one_by_one(values: list[str | None]) -> list[str | None]:
    return [canonical_ip(v) if isinstance(v, str) else None for v in values]


@settings(max_examples=200, deadline=None)
@given(st.lists(ip_like | st.none(), max_size=30))
def test_canonical_ips_equals_one_value_parsing(values: list[str | None]) -> None:
    got = canonical_ips(pd.Series(values, dtype="string"))
    assert [None if pd.isna(v) else v for v in got] == _one_by_one(values)


def test_canonical_ips_on_the_tricky_cases_and_their_index() -> None:
    series = pd.Series(TRICKY_IPS + [None], index=range(100, 100 + len(TRICKY_IPS) + 1), dtype="string")
    got = canonical_ips(series)
    assert got.index.equals(series.index)
    assert [None if pd.isna(v) else v for v in got] == _one_by_one([*TRICKY_IPS, None])
    assert got[100] == "1.2.3.4" and pd.isna(got[101]) and got[112] == "2001:db8::1"


@settings(max_examples=100, deadline=None)
@given(st.lists(dotted | ipv6, max_size=30))
def test_ip_prefixes_equal_one_value_prefixes(values: list[str]) -> None:
    canonical = [c for c in _one_by_one(list(values)) if c is not None]
    got = ip_prefixes(pd.Series(canonical, dtype="string"))
    assert got.tolist() == [ip_prefix(ip) for ip in canonical]


def test_digest_series_equals_digest_per_value_and_keeps_missing_values() -> None:
    hasher = Hasher("a-test-key-of-enough-bytes")
    values = pd.Series(["4111", None, "é✓", "4111", ""], index=[3, 1, 4, 1, 5], dtype="string")
    got = hasher.digest_series("card", values)
    want = [None if v is None else hasher.digest("card", v) for v in ["4111", None, "é✓", "4111", ""]]
    assert [None if pd.isna(v) else v for v in got] == want
    assert got.index.equals(values.index)
    assert hasher.digest_series("card", values).iloc[0] != hasher.digest_series("email", values).iloc[0]
    assert hasher.digest_series("card", values.iloc[:0]).empty


def test_digest_texts_equal_base32_of_each_digest() -> None:
    for width in (1, 4, 5, 16, 32, 33):
        digests = [os.urandom(width) for _ in range(20)]
        assert digest_texts(digests) == [digest_text(d) for d in digests]
    assert digest_texts([]) == []


# Eight hextets, some zero, some with leading zeros or upper case: the IPv6 fast path's edges.
hextet = st.sampled_from(["0", "00", "0000", "1", "db8", "0db8", "ABC", "abc", "ffff", "10", "1000"])
eight_hextets = st.lists(hextet, min_size=8, max_size=8).map(":".join)
SHORT_IPV6 = ["1:0:2:0:3:0:4:0", "0:1:2:3:4:5:6:7", "1:0:0:2:3:4:5:6", "a:b:0:d:0:0:0:0", "0:0:0:1:2:3:4:5"]


@settings(max_examples=200, deadline=None)
@given(st.lists(eight_hextets | st.sampled_from(SHORT_IPV6), max_size=30))
def test_canonical_ips_and_prefixes_of_written_out_ipv6(values: list[str]) -> None:
    got = canonical_ips(pd.Series(values, dtype="string"))
    want = _one_by_one(list(values))
    assert [None if pd.isna(v) else v for v in got] == want
    canonical = [c for c in want if c is not None]
    assert ip_prefixes(pd.Series(canonical, dtype="string")).tolist() == [ip_prefix(ip) for ip in canonical]


def _pandas_timestamps(values: pd.Series) -> pd.Series:
    """The parse before the fixed-position reader: pandas' ISO-8601 parser over every value."""
    zoned = values.str.match(_ZONED_TS).fillna(False).astype(bool)
    text = values.where(zoned).str.replace(r"(\.\d{6})\d+", r"\1", regex=True)
    return pd.to_datetime(text, utc=True, format="ISO8601", errors="coerce").astype("datetime64[us, UTC]")


TRICKY_TIMES = [
    "2025-09-02T00:00:02Z", "2024-02-29T23:59:59Z", "2023-02-29T00:00:00Z", "2025-04-31T12:00:00Z",
    "2025-01-01T24:00:00Z", "2025-01-01T23:59:60Z", "0000-01-01T00:00:00Z", "1899-12-31T23:59:59Z",
    "9999-12-31T23:59:59Z", "2025-13-01T00:00:00Z", "2025-00-10T00:00:00Z", "2025-01-00T00:00:00Z",
    "2025-01-01T00:00:00z", "2025-01-01 00:00:00Z", "2025-01-01T00:00:00+02:00", "2025-01-01T00:00:00.5Z",
    "2026-01-01T00:00:00.123456789Z", "2025-01-01T00:00:00", "2025-01-01T00:00Z", "２０２５-01-01T00:00:00Z",
    "2025-01-01T00:00:00Z ", "", "not a time",
]  # fmt: skip
digit_text = st.text(alphabet="0123456789", min_size=2, max_size=2)
plain_shaped = st.builds(
    lambda y, mo, d, h, mi, s: f"{y}-{mo}-{d}T{h}:{mi}:{s}Z",
    st.integers(0, 9999).map(lambda y: f"{y:04d}"),
    digit_text,
    digit_text,
    digit_text,
    digit_text,
    digit_text,
)


@settings(max_examples=200, deadline=None)
@given(st.lists(plain_shaped | st.sampled_from(TRICKY_TIMES) | st.none(), max_size=30))
def test_parse_timestamps_equals_pandas_parser(values: list[str | None]) -> None:
    series = pd.Series(values, index=range(7, 7 + len(values)), dtype="string")
    got = parse_timestamps(series)
    pd.testing.assert_series_equal(got, _pandas_timestamps(series), check_names=False)


def test_parse_timestamps_on_the_tricky_cases() -> None:
    series = pd.Series(TRICKY_TIMES, dtype="string")
    got = parse_timestamps(series)
    pd.testing.assert_series_equal(got, _pandas_timestamps(series), check_names=False)
    assert got[0] == pd.Timestamp("2025-09-02T00:00:02Z") and pd.isna(got[2]) and pd.isna(got[3])


def test_a_column_is_parsed_once_within_the_memo_and_each_caller_gets_its_own_rows() -> None:
    table = pd.DataFrame(
        {"ts": pd.Series(["2025-01-01T00:00:00Z", None, "bad", "2025-01-02T00:00:00Z"], dtype="string")}
    )
    calls: list[int] = []

    def parse(values: pd.Series) -> pd.Series:
        calls.append(len(values))
        return parse_timestamps(values)

    with column_memo(table):
        whole = memoised(parse, table["ts"])
        some = memoised(parse, table["ts"].dropna())
        other = memoised(parse, pd.Series(["2025-01-03T00:00:00Z"], dtype="string", name="elsewhere"))
    assert calls == [4, 1]  # the table's column once, the unknown column on its own
    assert whole.index.equals(table.index) and some.index.tolist() == [0, 2, 3]
    pd.testing.assert_series_equal(some, parse_timestamps(table["ts"].dropna()), check_names=False)
    assert other.iloc[0] == pd.Timestamp("2025-01-03T00:00:00Z")
    assert memoised(parse, table["ts"]) is not whole and calls[-1] == 4  # no memo outside the block


PII_LIKE = [
    "4111111111111111", "4111 1111 1111 1111", "dev-4111111111111111", "４１１１１１１１１１１１１１１１",
    "admin@example.com", "ａｄｍｉｎ＠ｅｘａｍｐｌｅ.com", "+1 (555) 010-2000", "555.010.2000", "10.0.0.1",
    "2026-01-01T10:00:00+02:00", "acc_000123", "4111111111111112", "",
]  # fmt: skip


@settings(max_examples=100, deadline=None)
@given(st.lists(st.sampled_from(PII_LIKE) | st.text(max_size=25) | st.none(), max_size=25))
def test_holds_with_the_joined_prefilter_equals_holds_per_kind(values: list[str | None]) -> None:
    series = pd.Series(values, dtype="string")
    candidates = personal_data_candidates(series).to_numpy(dtype=bool)
    for kind in KINDS:
        flagged = holds(series, kind)
        assert holds(series, kind, candidates).tolist() == flagged.tolist()
        assert not (flagged.to_numpy() & ~candidates).any()


def _email_before(values: pd.Series) -> pd.Series:
    """normalise_email before it was vectorised (Python's rsplit/split per value)."""
    text = values.astype("string").str.strip().str.lower()
    parts = text.str.rsplit("@", n=1, expand=True)
    if parts.shape[1] < 2:
        return text
    local, domain = parts[0], parts[1]
    local = local.str.split("+", n=1).str[0]
    gmail = domain.isin(["gmail.com", "googlemail.com"])
    local = local.where(~gmail, local.str.replace(".", "", regex=False))
    domain = domain.where(~gmail, "gmail.com")
    return (local + "@" + domain).where(text.notna())


email_like = st.lists(
    st.sampled_from(["J.Doe+promo@Gmail.com", "a@b@c.io", "@", "x@", "@y", "no-at", " A.B@googlemail.com "])
    | st.text(alphabet="ab.+@\n é", max_size=12)
    | st.none(),
    max_size=20,
)


def _same(got: pd.Series, want: pd.Series) -> None:
    assert [None if pd.isna(v) else v for v in got] == [None if pd.isna(v) else v for v in want]


@settings(max_examples=200, deadline=None)
@given(email_like)
def test_email_normalisation_equals_the_per_value_version(values: list[str | None]) -> None:
    series = pd.Series(values, dtype="string")
    norm = normalise_email(series)
    _same(norm, _email_before(series))
    _same(email_domain(norm), norm.str.rsplit("@", n=1).str[-1])


@settings(max_examples=200, deadline=None)
@given(st.lists(st.text(alphabet="0123456789 -x١４\n", max_size=20) | st.none(), max_size=20))
def test_card_digits_equal_python_digit_removal(values: list[str | None]) -> None:
    for chosen in (values, [v for v in values if v is None or v.isascii()]):  # the ASCII path and the other
        _same(
            card_digits(pd.Series(chosen, dtype="string")),
            [None if v is None else re.sub(r"\D", "", v) for v in chosen],
        )
