"""The vectorised column functions of ingestion give exactly what their one-value versions give."""

from __future__ import annotations

import ipaddress
import os

import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st

from ingest.graph_rows import ip_prefix, ip_prefixes
from ingest.privacy import Hasher, digest_text, digest_texts
from ingest.rules import canonical_ip, canonical_ips

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
