"""Validation: every bad row reported with field and rule; accepted + rejected == read, always."""

import string

import pandas as pd
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ingest.contract import ACCOUNTS, CARD_EVENTS, LOGINS, TABLES, TRANSFERS
from ingest.read import ROW
from ingest.validate import validate_table


def frame(contract, rows):
    df = pd.DataFrame(rows, columns=list(contract.columns)).astype("string")
    df.insert(0, ROW, range(1, len(df) + 1))
    return df


GOOD_LOGIN = ["acc_1", "2026-01-01T00:00:00Z", "10.0.0.1", "dev1", "Mozilla/5.0"]


def test_every_bad_row_is_reported_not_just_the_first():
    rows = [
        GOOD_LOGIN,
        ["acc_2", "2026-01-01 00:00:00", "10.0.0.1", "dev1", None],  # no zone
        ["acc_3", "2026-01-01T00:00:00+02:00", "10.0.0.300", "dev1", None],  # bad ip
        [None, "yesterday", "::1", None, None],  # several problems at once
    ]
    v = validate_table(frame(LOGINS, rows), LOGINS)
    assert len(v.accepted) == 1 and len(v.rejects) == 3
    reasons = dict(zip(v.rejects[ROW], v.rejects["reason"]))
    assert reasons[2] == "ts: must be an ISO-8601 timestamp with a time zone"
    assert reasons[3] == "ip: must be an IPv4 or IPv6 address"
    assert "account_id: required value is missing" in reasons[4]
    assert "device_id: required value is missing" in reasons[4]
    assert "ts: must be an ISO-8601 timestamp with a time zone" in reasons[4]


def test_accepted_rows_are_typed_and_canonical():
    rows = [["acc_1", "2026-01-01T02:00:00+02:00", "2001:DB8:0:0::1", "dev1", None]]
    v = validate_table(frame(LOGINS, rows), LOGINS)
    row = v.accepted.iloc[0]
    assert row["ts"] == pd.Timestamp("2026-01-01T00:00:00Z")
    assert row["ip"] == "2001:db8::1"


def test_card_numbers_are_masked_in_rejects():
    rows = [
        ["acc_1", "2026-01-01T00:00:00Z", "4111111111111111", "steal", "10"],
        ["acc_1", "2026-01-01T00:00:00Z", "4111111111111112", "deposit", "10"],
    ]
    v = validate_table(frame(CARD_EVENTS, rows), CARD_EVENTS)
    assert v.rejects["card_number"].tolist() == ["411111******1111", "411111******1112"]
    assert "event_type: must be one of add, deposit, chargeback" in v.rejects["reason"].iloc[0]
    assert "Luhn" in v.rejects["reason"].iloc[1]
    text = v.rejects.to_csv()
    assert "4111111111111111" not in text and "4111111111111112" not in text


def test_accounts_rules_and_duplicates():
    good = ["a1", "2026-01-01T00:00:00Z", "x@y.io", "+15550102000", "US", "1", None, "10.0.0.1", "d1"]
    rows = [
        good,
        ["a2", "2026-01-01T00:00:00Z", "not-an-email", None, "XX", "4", "a2", "10.0.0.1", "d1"],
        ["a1", "2026-01-02T00:00:00Z", None, None, "de", "0", None, "10.0.0.2", "d2"],
        ["a3", "2026-01-01T00:00:00Z", None, None, "de", "0", "a1", "10.0.0.2", "d2"],
    ]
    v = validate_table(frame(ACCOUNTS, rows), ACCOUNTS)
    reasons = dict(zip(v.rejects[ROW], v.rejects["reason"]))
    assert set(reasons) == {2, 3}
    for expected in (
        "email: must be an email address",
        "country: must be an ISO-3166 alpha-2 country code",
        "kyc_level: must be one of 0, 1, 2, 3",
        "referrer_id: an account cannot refer itself",
    ):
        assert expected in reasons[2]
    assert reasons[3] == "account_id: duplicate of row 1"
    assert v.accepted["country"].tolist() == ["US", "DE"]


def test_self_transfer_and_negative_amount_are_rejected():
    rows = [
        ["2026-01-01T00:00:00Z", "a", "b", "btc", "1.5"],
        ["2026-01-01T00:00:00Z", "a", "a", "btc", "1"],
        ["2026-01-01T00:00:00Z", "a", "b", "btc", "-1"],
        ["2026-01-01T00:00:00Z", "a", "b", "btc", "inf"],
    ]
    v = validate_table(frame(TRANSFERS, rows), TRANSFERS)
    assert v.accepted["asset"].tolist() == ["BTC"]
    assert v.rejects["reason"].tolist() == [
        "to_account_id: must differ from from_account_id",
        "amount: must be a number >= 0",
        "amount: must be a number >= 0",
    ]


cell = st.one_of(
    st.none(),
    st.text(alphabet=string.printable + "äß€`'\"{}", max_size=30),
    st.sampled_from(["2026-01-01T00:00:00Z", "10.0.0.1", "4111111111111111", "deposit", "US", "1", "-3", "benign"]),
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data(), table=st.sampled_from(TABLES))
def test_malformed_rows_are_accounted_for_with_reasons(data, table):
    n = data.draw(st.integers(min_value=0, max_value=12))
    rows = [[data.draw(cell) for _ in table.columns] for _ in range(n)]
    v = validate_table(frame(table, rows), table)
    assert len(v.accepted) + len(v.rejects) == v.read == n
    assert set(v.accepted[ROW]).isdisjoint(v.rejects[ROW])
    assert v.rejects["reason"].notna().all()
    for reason in v.rejects["reason"]:
        for item in reason.split("; "):
            field = item.split(":", 1)[0]
            assert field in table.columns or field == "row", item
    if "card_number" in table.columns:
        assert not v.rejects["card_number"].fillna("").str.contains(r"\d{7,}").any()
