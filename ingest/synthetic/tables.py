"""Turn the generated integer events into the contract's tables and write them.

Identifiers become text only here: each pool (devices, IPs, cards, wallets) is formatted once and events
pick their strings with Arrow ``take``. Event tables are sorted by time (then account) like an export.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from graph.errors import RingwatchError
from ingest.contract import CARD_EVENT_TYPES, TABLES_BY_NAME, TRUTH_COLUMNS, TRUTH_FILE
from ingest.synthetic.activity import Logins
from ingest.synthetic.formats import (
    account_ids,
    device_fingerprints,
    digit_matrix,
    fixed_width,
    ipv4_text,
    ipv6_text,
    iso_timestamps,
    luhn_cards,
    wallet_addresses,
)
from ingest.synthetic.labels import LABEL_SOURCES, Labels
from ingest.synthetic.payments import PROMO_CATALOG, CardEvents, PromoRedemptions, Withdrawals
from ingest.synthetic.population import COUNTRIES, Population
from ingest.synthetic.rings import THREAT_NAMES
from ingest.synthetic.transfers import ASSETS, Transfers
from ingest.synthetic.world import World, user_agents

FORMATS = ("parquet", "csv")


class SyntheticWriteError(RingwatchError):
    """A generated table could not be written to the output folder."""


def _take(strings: pa.Array, index: np.ndarray) -> pa.Array:
    index = np.asarray(index, dtype=np.int64)
    return strings.take(pa.array(index, mask=index < 0))


def _categorical(vocabulary: Sequence[str], index: np.ndarray) -> pa.DictionaryArray:
    """A column over a small vocabulary, dictionary-encoded (nulls where ``index`` < 0).

    Parquet stores it as an ordinary dictionary-encoded string column (the Arrow schema is not stored),
    so readers see plain strings; it just skips materialising millions of copies of long strings.
    """
    index = np.asarray(index, dtype=np.int32)
    return pa.DictionaryArray.from_arrays(pa.array(index, mask=index < 0), pa.array(list(vocabulary)))


def _ip_texts(world: World) -> pa.Array:
    pool = world.ip_pool
    v6 = pool.column("v6").astype(bool)
    v4_idx, v6_idx = np.flatnonzero(~v6), np.flatnonzero(v6)
    text = pa.concat_arrays(
        [ipv4_text(pool.column("v4")[v4_idx]), ipv6_text(pool.column("hi")[v6_idx], pool.column("lo")[v6_idx])]
    )
    where = np.empty(v6.size, dtype=np.int64)
    where[np.concatenate([v4_idx, v6_idx])] = np.arange(v6.size)
    return text.take(pa.array(where))


def _by_time(ts: np.ndarray, account: np.ndarray) -> np.ndarray:
    # One int64 key (time, then account) sorts much faster than a two-key lexsort.
    key = ts * (int(account.max(initial=0)) + 1) + account
    return np.argsort(key, kind="stable")


def build_tables(
    rng: np.random.Generator,
    population: Population,
    world: World,
    logins: Logins,
    cards: CardEvents,
    transfers: Transfers,
    promos: PromoRedemptions,
    withdrawals: Withdrawals,
    labels: Labels,
) -> dict[str, pa.Table]:
    """Assemble every contract table plus the truth table (keyed by file stem).

    Args:
        rng: Random generator for identifier text (fingerprints, card numbers, addresses).
        population, world, logins, cards, transfers, promos, withdrawals, labels: Generated data.

    Returns:
        Table name → Arrow table with exactly the contract's columns, in contract order.
    """
    acc = account_ids(population.n)
    devices = device_fingerprints(rng, world.device_pool.size)
    ips = _ip_texts(world)
    card_numbers = luhn_cards(rng, world.card_pool.size)
    wallets = wallet_addresses(rng, world.wallet_pool.column("btc").astype(bool))
    tables: dict[str, dict[str, Any]] = {}

    tables["accounts"] = {
        "account_id": acc,
        "created_at": iso_timestamps(population.created_at),
        "email": population.email,
        "phone": population.phone,
        "country": _categorical([c for c, _, _ in COUNTRIES], population.country),
        "kyc_level": pa.array(population.kyc_level.astype(np.int64)),
        "referrer_id": _take(acc, population.referrer),
        "signup_ip": _take(ips, world.ips.ids[world.ips.ptr[:-1]]),
        "signup_device_id": _take(devices, world.devices.ids[world.devices.ptr[:-1]]),
    }
    o = _by_time(logins.ts, logins.account)
    tables["logins"] = {
        "account_id": _take(acc, logins.account[o]),
        "ts": iso_timestamps(logins.ts[o]),
        "ip": _take(ips, logins.ip[o]),
        "device_id": _take(devices, logins.device[o]),
        "user_agent": _categorical(user_agents()[0], logins.ua[o]),
    }
    o = _by_time(cards.ts, cards.account)
    tables["card_events"] = {
        "account_id": _take(acc, cards.account[o]),
        "ts": iso_timestamps(cards.ts[o]),
        "card_number": _take(card_numbers, cards.card[o]),
        "event_type": _categorical(CARD_EVENT_TYPES, cards.kind[o]),
        "amount": pa.array(cards.amount[o]),
    }
    o = _by_time(transfers.ts, transfers.sender)
    tables["transfers"] = {
        "ts": iso_timestamps(transfers.ts[o]),
        "from_account_id": _take(acc, transfers.sender[o]),
        "to_account_id": _take(acc, transfers.recipient[o]),
        "asset": _categorical(ASSETS, transfers.asset[o]),
        "amount": pa.array(transfers.amount[o]),
    }
    o = _by_time(promos.ts, promos.account)
    tables["promo_redemptions"] = {
        "account_id": _take(acc, promos.account[o]),
        "ts": iso_timestamps(promos.ts[o]),
        "promo_code": _categorical([c for c, _ in PROMO_CATALOG], promos.code[o]),
        "amount": pa.array(promos.amount[o]),
    }
    o = _by_time(withdrawals.ts, withdrawals.account)
    tables["withdrawals"] = {
        "account_id": _take(acc, withdrawals.account[o]),
        "ts": iso_timestamps(withdrawals.ts[o]),
        "address": _take(wallets, withdrawals.wallet[o]),
        "asset": _categorical(ASSETS, withdrawals.asset[o]),
        "amount": pa.array(withdrawals.amount[o]),
    }
    tables["labels"] = {
        "account_id": _take(acc, labels.account),
        "label": _categorical(THREAT_NAMES, labels.threat),
        "source": _categorical(LABEL_SOURCES, labels.source),
        "ts": iso_timestamps(labels.ts),
    }
    n_rings = population.n_rings
    ring_digits = digit_matrix(np.arange(n_rings), max(5, len(str(max(n_rings - 1, 0)))))
    ring_ids = pc.binary_join_element_wise("ring_", fixed_width(ring_digits), "")
    tables["truth"] = {
        "account_id": acc,
        "label": _categorical(THREAT_NAMES, population.threat),
        "ring_id": _take(ring_ids, population.ring),
    }
    out = {name: pa.table(columns) for name, columns in tables.items()}
    for name, table in out.items():
        expected = TRUTH_COLUMNS if name == "truth" else TABLES_BY_NAME[name].columns
        if tuple(table.column_names) != tuple(expected):
            raise SyntheticWriteError(f"table {name} has columns {table.column_names}, contract says {expected}")
    return out


def write_tables(tables: dict[str, pa.Table], out_dir: Path, fmt: str, meta: dict[str, Any]) -> None:
    """Write the tables as ``<name>.<fmt>``, ``truth.csv`` and ``generation.json`` into ``out_dir``.

    A same-named table in the other format is removed, so the folder never holds two versions of a table.

    Raises:
        SyntheticWriteError: The folder or a file could not be written.
    """
    if fmt not in FORMATS:
        raise ValueError(f"fmt must be one of {FORMATS}, got {fmt!r}")
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        for name, table in tables.items():
            if name == "truth":
                pacsv.write_csv(table, out_dir / TRUTH_FILE, pacsv.WriteOptions(quoting_style="needed"))
                continue
            for other in FORMATS:
                if other != fmt:
                    (out_dir / f"{name}.{other}").unlink(missing_ok=True)
            path = out_dir / f"{name}.{fmt}"
            if fmt == "parquet":
                pq.write_table(table, path, compression="zstd", store_schema=False)
            else:
                pacsv.write_csv(table, path, pacsv.WriteOptions(quoting_style="needed"))
        (out_dir / "generation.json").write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")
    except OSError as e:
        raise SyntheticWriteError(f"could not write the synthetic exchange to {out_dir}: {e}") from e
