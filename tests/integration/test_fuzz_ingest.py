"""A seeded corrupter over all seven tables of a generated exchange, ingested by the CLI into the real Neo4j.

Whatever the corruption — personal data planted in any field (card numbers in many writings, emails, phones),
markup and terminal escapes, spreadsheet formulas, line breaks and quotes, huge and odd numbers, far years,
wrong types, repeated rows, Parquet as well as CSV — the run ends without a traceback, every table's rows are
accounted for (accepted + rejected = read), every reject says why, every reject file reads back, and no card
number, email or phone number of the input appears anywhere the run wrote: the graph, the reject files, the
quality report, the terminal, Neo4j's logs. The figures of the run are printed (``pytest -s``) for the README.
"""

from __future__ import annotations

import csv
import json
import random
import re
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from ingest.contract import TABLES
from ingest.pii import CARD, EMAIL, KINDS, PHONE, holds
from ingest.privacy import luhn_valid
from ingest.rejects import read_reject_file, reject_file
from ingest.synthetic import generate_exchange
from tests.graph_dump import dump

SEED = 9
RATE = 0.05  # share of cells corrupted in every table
PARQUET_TABLES = ("logins", "transfers")


def luhn_pan(rng: random.Random, prefix: str = "4", length: int = 16) -> str:
    body = prefix + "".join(str(rng.randrange(10)) for _ in range(length - len(prefix) - 1))
    return next(body + d for d in "0123456789" if luhn_valid(body + d))


@dataclass
class Corruption:
    """What the corrupter did, and the personal data the outputs must not hold (digits, or email local parts)."""

    cells: int = 0
    rows: dict[str, int] = field(default_factory=dict)
    secret_digits: set[str] = field(default_factory=set)
    secret_words: set[str] = field(default_factory=set)


def hostile_value(rng: random.Random, c: Corruption, n: int) -> str:
    """One corrupt value; planted personal data is recorded in ``c``."""
    pan = luhn_pan(rng, rng.choice(["4", "51", "37", "6011"]), rng.choice([15, 16, 16, 19]))
    phone = f"+44 20 7{n % 1000:03d} {rng.randrange(10_000):04d}"
    local = f"leak{n}x{rng.randrange(10**6)}"
    kind = rng.randrange(30)
    if kind < 6:
        c.secret_digits.add(pan)
        groups = [pan[i : i + 4] for i in range(0, len(pan), 4)]
        return [
            pan,
            " ".join(groups),
            "-".join(groups),
            f"dev-{pan}",
            f"ua {pan} v1",
            "".join(chr(0xFF10 + int(d)) for d in pan),
        ][kind]
    if kind < 8:
        c.secret_words.add(local)
        return [f"{local}@fuzz.example", f"contact {local}@fuzz.example now"][kind - 6]
    if kind < 10:
        c.secret_digits.add(re.sub(r"\D", "", phone))
        return [phone, f"call {phone}"][kind - 8]
    return rng.choice(
        [
            "[/x]",
            "[bold red]x[/]",
            "fp[/x]\x1b[31m",
            "\x1b[2J\x1b]0;pwned\x07",
            "evil\u202etxt",
            "'; DROP TABLE x; --",
            '=HYPERLINK("http://evil.test","x")',
            "+cmd|' /C calc'!A0",
            "@SUM(1+1)",
            "-2+3+cmd",
            "a\rb",
            "two\nlines",
            'q"uote, comma',
            "",
            "   ",
            "1e308",
            "-1",
            "NaN",
            "inf",
            "1e-400",
            "0x10",
            "9" * 30,
            "x" * 3000,
            "3000-01-01T00:00:00Z",
            "2026-01-01T00:00:00.123456789Z",
            "1600-01-01T00:00:00Z",
            "2026-02-30T00:00:00Z",
            "2026-01-01T00:00:00",
            "999.1.1.1",
            "::ffff:1.2.3.4",
            "naïve-账户-🙂",
            "nul\x00byte",
            "1.0",
            "3.5",
            "benign",
            "deposit",
        ]
    )


def corrupt_exchange(source: Path, target: Path, seed: int = SEED) -> Corruption:
    """Copy ``source``'s tables into ``target`` with ``RATE`` of their cells corrupted and 1 % of rows repeated."""
    rng = random.Random(seed)
    c = Corruption()
    target.mkdir()
    for contract in TABLES:
        frame = pd.read_csv(source / f"{contract.name}.csv", dtype=str, keep_default_na=False)
        if contract.name == "accounts":
            c.secret_words.update(frame["email"][frame["email"] != ""].str.split("@").str[0])
            phones = frame["phone"].str.replace(r"\D", "", regex=True)
            c.secret_digits.update(phones[phones.str.len() >= 10])
        if contract.name == "card_events":
            c.secret_digits.update(frame["card_number"].str.replace(r"\D", "", regex=True))
        cells = [(r, col) for r in range(len(frame)) for col in contract.columns]
        for r, col in rng.sample(cells, int(len(cells) * RATE)):
            frame.iat[r, frame.columns.get_loc(col)] = hostile_value(rng, c, c.cells)
            c.cells += 1
        repeats = frame.sample(n=max(1, len(frame) // 100), random_state=seed)
        frame = pd.concat([frame, repeats], ignore_index=True)
        c.rows[contract.name] = len(frame)
        if contract.name in PARQUET_TABLES:
            pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), target / f"{contract.name}.parquet")
        else:
            frame.to_csv(target / f"{contract.name}.csv", index=False, quoting=csv.QUOTE_ALL)
    return c


def _texts_of(value) -> list[str]:
    if isinstance(value, (list, tuple)):
        return [t for v in value for t in _texts_of(v)]
    return [str(value)]


def leaks(texts: list[str], c: Corruption) -> list[str]:
    """The texts holding a secret: its digits among one text's digits (NFKC: full-width digits count), or an
    email's local part."""
    lengths = sorted({len(s) for s in c.secret_digits})
    words = re.compile("|".join(re.escape(w.lower()) for w in sorted(c.secret_words)))
    found = []
    for text in texts:
        norm = unicodedata.normalize("NFKC", text)
        digits = re.sub(r"\D", "", norm)
        if any(
            digits[i : i + n] in c.secret_digits for n in lengths for i in range(len(digits) - n + 1)
        ) or words.search(norm.lower()):
            found.append(text[:200])
    return found


def test_a_corrupted_exchange_is_accounted_for_and_leaks_nothing(
    run_cli, empty_graph, neo4j_server, graph_env, tmp_path, capsys
):
    generate_exchange(1000, SEED, tmp_path / "clean", fmt="csv")
    c = corrupt_exchange(tmp_path / "clean", tmp_path / "fuzzed")
    planted = [v for p in (tmp_path / "fuzzed").glob("*.csv") for v in p.read_text().split('","')]
    assert len(leaks(planted, c)) > 1000  # the leak finder does find what was planted, where it was planted
    rejects = tmp_path / "rejects"
    code, out, err = run_cli(
        "ingest", str(tmp_path / "fuzzed"), "--rejects", str(rejects), "--json", "--batch-size", "500"
    )
    assert code == 0, err
    report = json.loads(out)
    tables = report["quality"]["tables"]
    assert set(tables) == {t.name for t in TABLES}
    outputs: list[str] = [out, err]
    rejected = {}
    for name, stats in tables.items():
        assert stats["read"] == c.rows[name] == stats["accepted"] + stats["rejected"], name
        back = read_reject_file(reject_file(rejects, name))
        assert len(back) == stats["rejected"], name  # every rejected row reads back, no row split or merged
        assert back["reason"].notna().all() and (back["reason"].str.len() > 0).all()
        assert back["reason"].str.fullmatch(r"[a-z_]+: [^;]+(; [a-z_]+: [^;]+)*").all()
        rejected[name] = stats["rejected"]
        outputs += [v for column in back.columns for v in back[column].dropna()]
    outputs.append((rejects / "quality.json").read_text())

    graph = dump(empty_graph)
    values = [
        t for props in [*graph["nodes"].values(), *graph["rels"].values()] for v in props.values() for t in _texts_of(v)
    ]
    values += [str(k) for k in [*graph["nodes"], *graph["rels"]]]
    for path in sorted(neo4j_server.layout.logs_dir.iterdir()):
        outputs += path.read_text(errors="replace").splitlines()

    leaked = leaks(outputs + values, c)
    strings = pd.Series([v for v in values if v and not v.isdigit()], dtype="string")
    shaped = {kind: int(holds(strings, kind).sum()) for kind in KINDS}
    figures = {
        "cells_corrupted": c.cells,
        "rows_read": sum(c.rows.values()),
        "rows_rejected": sum(rejected.values()),
        "rejected_per_table": rejected,
        "planted_or_source_secrets": len(c.secret_digits) + len(c.secret_words),
        "leaks": len(leaked),
        "graph_values_shaped_like": shaped,
    }
    with capsys.disabled():
        print(f"\nfuzz figures: {json.dumps(figures)}")
    assert leaked == []
    assert shaped == {CARD: 0, EMAIL: 0, PHONE: 0}
    assert sum(rejected.values()) > 0 and report["chunks"]["written"] > 0
