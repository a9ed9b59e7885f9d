"""The partial labels an exchange's review teams would hold, and the full truth kept aside.

Only some members of some rings are known (a chargeback review caught one colluder, a promo audit
flagged a few abusers); a sample of benign accounts was reviewed and cleared. Whole rings stay unknown.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ingest.synthetic.params import ExchangeParams
from ingest.synthetic.population import Population
from ingest.synthetic.rings import BENIGN_CODE, BOT_CODE, COLLUSION_CODE, PROMO_CODE, groups_from_labels

LABEL_SOURCES: tuple[str, ...] = ("manual_review", "chargeback_review", "promo_audit", "kyc_review")
#: For each threat code, the sources its labels come from (indices into `LABEL_SOURCES`).
SOURCES_BY_THREAT: dict[int, tuple[int, ...]] = {
    BENIGN_CODE: (0, 3),
    COLLUSION_CODE: (0, 1),
    PROMO_CODE: (2, 0),
    BOT_CODE: (0,),
}


@dataclass(frozen=True)
class Labels:
    """Known labels: account, threat code (see `rings.THREAT_NAMES`), source index, Unix-second ts."""

    account: np.ndarray
    threat: np.ndarray
    source: np.ndarray
    ts: np.ndarray


def draw_labels(rng: np.random.Generator, population: Population, params: ExchangeParams) -> Labels:
    """Label part of the rings' members and a sample of benign accounts.

    Args:
        rng: Random generator of this stage.
        population: Accounts with their true threat and ring.
        params: Generation parameters.

    Returns:
        Labels sorted by account; every label's ts falls after its account's creation.
    """
    n_rings = population.n_rings
    rings = groups_from_labels(population.ring, n_rings)
    known_ring = rng.random(n_rings) >= params.unlabelled_ring_rate
    group = rings.group_of_member()
    picked = known_ring[group] & (rng.random(group.size) < params.label_rate)
    # A ring the reviewers know of has at least one labelled member.
    missing = known_ring & (np.bincount(group, weights=picked, minlength=n_rings) == 0) & (rings.sizes() > 0)
    pick_one = rings.ptr[:-1] + np.floor(rng.random(n_rings) * rings.sizes()).astype(np.int64)
    picked[pick_one[missing]] = True
    benign = np.flatnonzero((population.threat == BENIGN_CODE) & (rng.random(population.n) < params.benign_label_rate))
    account = np.sort(np.concatenate([rings.members[picked], benign]))
    threat = population.threat[account]
    source = np.empty(account.size, dtype=np.int8)
    for code, options in SOURCES_BY_THREAT.items():
        mask = threat == code
        source[mask] = np.asarray(options)[rng.integers(0, len(options), int(mask.sum()))]
    earliest = np.maximum(population.created_at[account], params.window_start_ts) + 3600
    ts = earliest + np.floor(rng.random(account.size) * (params.end_ts - earliest + 1)).astype(np.int64)
    return Labels(account=account, threat=threat, source=source, ts=ts)
