"""A synthetic crypto exchange with planted fraud rings, written as the ingest contract's tables.

Collusion rings, promotion-abuse rings and bot farms hide among benign accounts that share identifiers
for legitimate reasons (households, carrier NAT, public Wi-Fi, company cards, popular promos and hot
wallets). Every account's own attributes and activity come from one distribution whatever its role, so
fraud shows only in how accounts are tied together — the signal a graph model is there to find
(`bench/leak_check.py` checks this).

Example::

    from pathlib import Path
    from ingest.synthetic import generate_exchange

    summary = generate_exchange(100_000, seed=7, out_dir=Path("data/synth"))
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ingest.synthetic.activity import generate_logins
from ingest.synthetic.connecting import RingEvents, connect_ring_members
from ingest.synthetic.drift import DRIFTS, apply_drift
from ingest.synthetic.labels import draw_labels
from ingest.synthetic.params import ExchangeParams
from ingest.synthetic.payments import generate_card_events, generate_promos, generate_withdrawals
from ingest.synthetic.planting import plant_rings
from ingest.synthetic.population import draw_population
from ingest.synthetic.rings import THREAT_NAMES, plan_rings
from ingest.synthetic.tables import FORMATS, SyntheticWriteError, build_tables, write_tables
from ingest.synthetic.transfers import generate_transfers
from ingest.synthetic.world import build_world

__all__ = [
    "ExchangeParams",
    "GenerationSummary",
    "SyntheticWriteError",
    "generate_exchange",
    "MIN_ACCOUNTS",
    "DEFAULT_ACCOUNTS",
    "DEFAULT_SEED",
    "FORMATS",
]

#: Fewest accounts an exchange may have (rings of every threat must fit among mostly benign accounts).
MIN_ACCOUNTS = 500
#: ``ringwatch generate``'s defaults: accounts, seed, file format.
DEFAULT_ACCOUNTS = 10_000
DEFAULT_SEED = 7
# Stage streams are spawned in this order; a new stage goes at the end so earlier streams stay the same.
_STAGES = (
    "rings",
    "population",
    "world",
    "planting",
    "logins",
    "transfers",
    "cards",
    "promos",
    "withdrawals",
    "labels",
    "tables",
    "connecting",
    "drift",
)


@dataclass(frozen=True)
class GenerationSummary:
    """What `generate_exchange` wrote.

    Attributes:
        out_dir: Folder holding the tables, ``truth.csv`` and ``generation.json``.
        seed: Seed the exchange was generated from.
        n_accounts: Number of accounts.
        fmt: ``"parquet"`` or ``"csv"``.
        row_counts: Rows per table (contract tables and ``truth``).
        rings: Rings planted per threat.
        fraud_accounts: Ring members per threat.
        seconds: Wall-clock time of the generation.
    """

    out_dir: Path
    seed: int
    n_accounts: int
    fmt: str
    row_counts: dict[str, int]
    rings: dict[str, int]
    fraud_accounts: dict[str, int]
    seconds: float


def generate_exchange(
    n_accounts: int,
    seed: int,
    out_dir: Path,
    params: ExchangeParams | None = None,
    fmt: str = "parquet",
    progress: Callable[[str], None] | None = None,
    drift: str | None = None,
) -> GenerationSummary:
    """Generate a synthetic exchange and write it as contract tables into ``out_dir``.

    The output is a pure function of ``(n_accounts, seed, params, fmt)``: the same call writes
    byte-identical files.

    Args:
        n_accounts: Number of accounts (at least `MIN_ACCOUNTS`).
        seed: Non-negative random seed.
        out_dir: Folder to write into (created if missing).
        params: Generation parameters; defaults to `ExchangeParams()`.
        fmt: ``"parquet"`` or ``"csv"`` for the contract tables (``truth.csv`` is always CSV).
        progress: Called with the name of each stage as it starts.
        drift: Shift chosen distributions on purpose, for monitoring tests (one of
            :data:`ingest.synthetic.drift.DRIFTS`); None: no drift.

    Returns:
        A summary of what was written.

    Raises:
        ValueError: An argument is out of range.
        SyntheticWriteError: The output could not be written.
    """
    if isinstance(n_accounts, bool) or not isinstance(n_accounts, int) or n_accounts < MIN_ACCOUNTS:
        raise ValueError(f"n_accounts must be an int >= {MIN_ACCOUNTS}, got {n_accounts!r}")
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed must be a non-negative int, got {seed!r}")
    if fmt not in FORMATS:
        raise ValueError(f"fmt must be one of {FORMATS}, got {fmt!r}")
    if drift is not None and drift not in DRIFTS:
        raise ValueError(f"drift must be one of {', '.join(DRIFTS)}, got {drift!r}")
    params = params if params is not None else ExchangeParams()
    began = time.perf_counter()
    streams = np.random.SeedSequence(seed).spawn(len(_STAGES))
    rngs = {name: np.random.default_rng(s) for name, s in zip(_STAGES, streams, strict=True)}

    def stage(name: str) -> np.random.Generator:
        if progress is not None:
            progress(name)
        return rngs[name]

    plan = plan_rings(stage("rings"), n_accounts, params)
    population = draw_population(stage("population"), plan, params)
    world = build_world(stage("world"), n_accounts, params)
    ties = plant_rings(stage("planting"), world, population, plan, params)
    logins = generate_logins(stage("logins"), population, world, ties.synced, params)
    transfers = generate_transfers(stage("transfers"), population, world, ties, params)
    cards = generate_card_events(stage("cards"), population, world, params)
    promos = generate_promos(stage("promos"), population, ties, params)
    withdrawals = generate_withdrawals(stage("withdrawals"), population, world, params)
    events = RingEvents(world, population, logins, cards, withdrawals, transfers)
    retied = connect_ring_members(stage("connecting"), plan, events)
    labels = draw_labels(stage("labels"), population, params)
    tables = build_tables(stage("tables"), population, world, logins, cards, transfers, promos, withdrawals, labels)
    if drift is not None:
        tables = apply_drift(tables, drift, stage("drift"), params.end_ts)

    row_counts = {name: table.num_rows for name, table in tables.items()}
    rings = {THREAT_NAMES[c]: int((plan.kind == c).sum()) for c in range(1, len(THREAT_NAMES))}
    fraud = {THREAT_NAMES[c]: int((population.threat == c).sum()) for c in range(1, len(THREAT_NAMES))}
    meta = {
        "seed": seed,
        "n_accounts": n_accounts,
        "format": fmt,
        "params": params.to_dict(),
        "counts": row_counts,
        "rings": rings,
        "fraud_accounts": fraud,
        "retied_ring_groups": retied,
        **({"drift": drift} if drift is not None else {}),
        "labelled": {THREAT_NAMES[c]: int((labels.threat == c).sum()) for c in range(len(THREAT_NAMES))},
    }
    write_tables(tables, Path(out_dir), fmt, meta)
    return GenerationSummary(
        out_dir=Path(out_dir),
        seed=seed,
        n_accounts=n_accounts,
        fmt=fmt,
        row_counts=row_counts,
        rings=rings,
        fraud_accounts=fraud,
        seconds=time.perf_counter() - began,
    )
