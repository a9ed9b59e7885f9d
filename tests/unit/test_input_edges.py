"""Unlucky and hostile inputs at the boundary: huge amounts, far years, typed Parquet, repeated column names,
bad truth files, reject files that must open safely in a spreadsheet and read back exactly, file modes."""

from __future__ import annotations

import csv
import io
import stat
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from graph.errors import InputContractError
from ingest.contract import ACCOUNTS, TRANSFERS
from ingest.load import CHUNK_ROWS, prepare, write_rejects
from ingest.privacy import Hasher
from ingest.read import ROW, TableFile, read_table, read_truth
from ingest.rejects import neutralise, read_reject_file, reject_csv, reject_file
from ingest.validate import validate_table

HASHER = Hasher("unit-test-key-0123456789")


def _frame(contract, rows):
    df = pd.DataFrame(rows, columns=list(contract.columns)).astype("string")
    df.insert(0, ROW, range(1, len(df) + 1))
    return df


def test_amounts_that_would_add_up_to_infinity_are_rejected():
    rows = [
        ["2026-01-01T00:00:00Z", "a", "b", "BTC", "1e308"],
        ["2026-01-02T00:00:00Z", "a", "b", "BTC", "1e308"],
        ["2026-01-03T00:00:00Z", "a", "b", "BTC", "1e15"],
    ]
    v = validate_table(_frame(TRANSFERS, rows), TRANSFERS)
    assert v.rejects["reason"].tolist() == ["amount: must be at most 1e+15"] * 2
    assert v.accepted["amount"].tolist() == [1e15]


def test_far_years_get_the_right_reason_whatever_else_the_column_holds():
    rows = [
        ["2026-01-01T00:00:00.123456789Z", "a", "b", "BTC", "1"],  # nanoseconds: once voided every far year
        ["3000-01-01T00:00:00Z", "a", "b", "BTC", "1"],
        ["1600-01-01T00:00:00Z", "a", "b", "BTC", "1"],
        ["2026-13-01T00:00:00Z", "a", "b", "BTC", "1"],
    ]
    v = validate_table(_frame(TRANSFERS, rows), TRANSFERS)
    assert v.accepted["ts"].tolist() == [pd.Timestamp("2026-01-01T00:00:00.123456Z")]
    assert v.rejects["reason"].tolist() == ["ts: must be a time in the years 1900-2199"] * 2 + [
        "ts: must be an ISO-8601 timestamp with a time zone"
    ]


def _accounts_parquet(path: Path, kyc: pa.Array) -> None:
    pq.write_table(
        pa.table(
            {
                "account_id": ["a", "b", "c"],
                "created_at": pa.array([datetime(2026, 1, 1, tzinfo=UTC)] * 3),
                "email": [None, None, None],
                "phone": [None, None, None],
                "country": ["DE"] * 3,
                "kyc_level": kyc,
                "referrer_id": pa.array([None, 1, 2], pa.int64()),  # an integer column with a gap stays integral
                "signup_ip": ["10.0.0.1"] * 3,
                "signup_device_id": ["d1", "d2", "d3"],
            }
        ),
        path,
    )


def test_parquet_numbers_read_as_a_csv_would_hold_them(tmp_path):
    _accounts_parquet(tmp_path / "accounts.parquet", pa.array([1.0, 2.0, 1.5]))
    raw = read_table(TableFile(ACCOUNTS, tmp_path / "accounts.parquet"))
    assert raw["kyc_level"].tolist() == ["1", "2", "1.5"] and raw["referrer_id"].tolist()[1:] == ["1", "2"]
    v = validate_table(raw, ACCOUNTS)
    assert v.accepted["kyc_level"].tolist() == [1, 2]
    assert v.rejects["reason"].tolist() == ["kyc_level: must be one of 0, 1, 2, 3"]


def test_a_repeated_column_name_refuses_the_file(tmp_path):
    (tmp_path / "accounts.csv").write_text(
        "account_id,created_at,email,phone,country,kyc_level,referrer_id,signup_ip,signup_device_id,country\n"
        "a,2026-01-01T00:00:00Z,,,DE,1,,10.0.0.1,d1,FR\n"
    )
    with pytest.raises(InputContractError, match=r"accounts.csv: column name\(s\) 'country' appear more than once"):
        read_table(TableFile(ACCOUNTS, tmp_path / "accounts.csv"))
    table = pa.table([pa.array(["a"]), pa.array(["b"])], names=["account_id", "account_id"])
    pq.write_table(table, tmp_path / "dup.parquet")
    with pytest.raises(InputContractError, match="'account_id' appear more than once"):
        read_table(TableFile(ACCOUNTS, tmp_path / "dup.parquet"))


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "does not exist"),
        ("", "is not a readable CSV file"),
        (b"\x89PNG\r\n\x1a\n\x00\x00", "is not a readable CSV file"),
        ("a,b\n1,2\n", "lacks column(s) account_id, label"),
    ],
)
def test_a_bad_truth_file_is_a_clear_error(tmp_path, content, message):
    path = tmp_path / "truth.csv"
    if isinstance(content, bytes):
        path.write_bytes(content)
    elif content is not None:
        path.write_text(content)
    with pytest.raises(InputContractError, match=message.replace("(", r"\(").replace(")", r"\)")):
        read_truth(path)


HOSTILE_CELLS = [
    '=HYPERLINK("http://evil.test","click")',
    "+cmd|' /C calc'!A0",
    "@SUM(1+1)*cmd|'/C calc'!A0",
    "-2+3+cmd",
    '=DDE("cmd";"/C calc";"!A0")',
    "a\rb",
    "two\nlines",
    'q"uote, comma',
]


def test_reject_files_neutralise_formulas_and_read_back_exactly(tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    n = len(HOSTILE_CELLS)
    pd.DataFrame(
        {
            "ts": ["not a time"] * n,
            "from_account_id": HOSTILE_CELLS,
            "to_account_id": ["b"] * n,
            "asset": ["BTC"] * n,
            "amount": ["-1"] * n,
        }
    ).to_csv(folder / "transfers.csv", index=False, quoting=csv.QUOTE_ALL)
    run = prepare(folder, HASHER)
    write_rejects(run, tmp_path / "rejects")
    written = run.validations["transfers"].rejects
    back = read_reject_file(reject_file(tmp_path / "rejects", "transfers"))
    assert len(back) == n and back[ROW].tolist() == [str(i) for i in range(1, n + 1)]
    expected = pd.read_csv(io.StringIO(reject_csv(written)), dtype=str, keep_default_na=False, na_values=[""])
    pd.testing.assert_frame_equal(back, expected)
    sent = back["from_account_id"].tolist()
    assert sent[:5] == ["'" + c for c in HOSTILE_CELLS[:5]]  # formula prefixes neutralised
    assert sent[5:] == HOSTILE_CELLS[5:]  # the rest kept as it was, bare carriage return included
    assert [neutralise(v) for v in ("\tx", "\rx", "-1.5e3", "+7")] == ["'\tx", "'\rx", "-1.5e3", "+7"]
    assert back["amount"].tolist() == ["-1"] * n  # a plain negative number is not a formula


def test_reject_files_and_quality_report_are_owner_only(tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    pd.DataFrame(
        {"ts": ["x"], "from_account_id": ["a"], "to_account_id": ["b"], "asset": ["BTC"], "amount": ["1"]}
    ).to_csv(folder / "transfers.csv", index=False)
    rejects = tmp_path / "data" / "rejects" / "in"
    write_rejects(prepare(folder, HASHER), rejects)
    for folder_ in (tmp_path / "data", tmp_path / "data" / "rejects", rejects):
        assert stat.S_IMODE(folder_.stat().st_mode) == 0o700
    files = sorted(p.name for p in rejects.iterdir())
    assert files == ["quality.json", "transfers.rejects.csv"]
    assert {stat.S_IMODE(p.stat().st_mode) for p in rejects.iterdir()} == {0o600}


def test_row_numbers_count_data_rows_not_lines(tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "transfers.csv").write_text(
        "ts,from_account_id,to_account_id,asset,amount\n"
        '2026-01-01T00:00:00Z,"a\nwith\nlines",b,BTC,1\n'
        "2026-01-01T00:00:00Z,a,a,BTC,1\n"
    )
    run = prepare(folder, HASHER)
    assert run.validations["transfers"].rejects[ROW].tolist() == [2]  # the file's 5th line, its 2nd data row


def test_chunk_identity_depends_on_content_not_on_batch_size_or_row_order(tmp_path):
    from ingest.synthetic import generate_exchange

    generate_exchange(500, 3, tmp_path / "a", fmt="csv")
    small, large = prepare(tmp_path / "a", HASHER, 150), prepare(tmp_path / "a", HASHER, 10_000)
    assert [c.chunk_id for c in small.chunks] == [c.chunk_id for c in large.chunks]
    assert all(len(b) == 2 for b in small.batches if len(b) > 1 and b[-1].rows == CHUNK_ROWS)
    assert small.chunks_per_batch * CHUNK_ROWS == 200 and large.chunks_per_batch * CHUNK_ROWS == 10_000
    (tmp_path / "b").mkdir()
    for path in (tmp_path / "a").glob("*.csv"):  # the same events in another order: the same parts
        frame = pd.read_csv(path, dtype=str, keep_default_na=False)
        frame.sample(frac=1.0, random_state=1).to_csv(tmp_path / "b" / path.name, index=False)
    shuffled = prepare(tmp_path / "b", HASHER)
    assert shuffled.part_ids == large.part_ids
    transfers = [i for i, p in enumerate(large.parts) if p.kind == "TRANSFERRED_TO"]
    assert np.isfinite(large.parts[transfers[0]].rows["total"]).all()
