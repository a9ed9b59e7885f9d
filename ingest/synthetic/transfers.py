"""Account-to-account transfers: family payments, collusion rings' circular flows, everything else.

Each account draws how many transfers it sends and how many it receives from the same distributions
(sends: active or not, then an overdispersed count; receives: a share of all transfers by a heavy-tailed
popularity). Those stubs are then wired: members of a household or a collusion ring first spend part of
their stubs inside the group — rotated so that flows go round in cycles, collusion lots of equal value
within minutes of each other (wash trading) — and every remaining stub is paired at random. An
account's own counts, amounts and timing therefore follow the common distribution whatever its role.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ingest.synthetic.activity import active_span, count_draw
from ingest.synthetic.params import ExchangeParams
from ingest.synthetic.planting import RingTies
from ingest.synthetic.population import Population
from ingest.synthetic.rings import COLLUSION_CODE, Groups, groups_from_labels
from ingest.synthetic.world import World

ASSETS: tuple[str, ...] = ("BTC", "ETH", "USDT", "USDC", "SOL")
PRICES = np.array([60000.0, 3000.0, 1.0, 1.0, 150.0])
TRANSFER_ASSET_P = np.array([0.25, 0.25, 0.3, 0.1, 0.1])
STABLE = np.array([False, False, True, True, False])


@dataclass(frozen=True)
class Transfers:
    """Transfers as integer/float columns (``asset`` indexes `ASSETS`)."""

    ts: np.ndarray
    sender: np.ndarray
    recipient: np.ndarray
    asset: np.ndarray
    amount: np.ndarray


def usd_values(rng: np.random.Generator, n: int, median: float = 300.0, sigma: float = 1.3) -> np.ndarray:
    """Lognormal USD values of ``n`` movements of funds."""
    return rng.lognormal(np.log(median), sigma, n)


def in_asset(usd: np.ndarray, asset: np.ndarray) -> np.ndarray:
    """Amounts in asset units: 2 decimals for stablecoins, 8 otherwise."""
    units = usd / PRICES[asset]
    return np.where(STABLE[asset], np.round(units, 2), np.round(units, 8))


def _first_per_group(rng: np.random.Generator, group: np.ndarray, rows: np.ndarray, bias: np.ndarray) -> np.ndarray:
    """One row per group among ``rows``, at random but preferring rows with low ``bias``."""
    key = bias[rows] + rng.random(rows.size)
    order = rows[np.lexsort((key, group[rows]))]
    _, first = np.unique(group[order], return_index=True)
    return order[first]


def _pair_inside(
    rng: np.random.Generator, groups: Groups, out_n: np.ndarray, in_n: np.ndarray, share: np.ndarray, forced: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Wire part of each group member's stubs to other members.

    Stubs are laid out by level (a member's first internal transfer is level 0, its second level 1, …)
    so that each level's transfers go round the group in a cycle.

    Args:
        rng: Random generator.
        groups: The groups (rings, households).
        out_n, in_n: Transfers each account sends / receives in all.
        share: Per account, the fraction of its stubs kept inside its group.
        forced: Per group, whether it must get at least one internal transfer when possible.

    Returns:
        (sender, recipient, group, level) of each internal transfer.
    """
    members, group = groups.members, groups.group_of_member()
    pos = groups.position_of_member()
    q = rng.binomial(out_n[members], share[members])
    p = rng.binomial(in_n[members], share[members])
    # Forced groups (collusion rings) keep at least one internal flow whenever two members can make it,
    # even if that ties in a weak member; the forced recipient is preferably not the forced sender.
    for drawn, total in ((q, out_n), (p, in_n)):
        empty = forced & (np.bincount(group, weights=drawn, minlength=groups.n_groups) == 0)
        rows = np.flatnonzero(empty[group] & (total[members] > 0))
        drawn[_first_per_group(rng, group, rows, (q > 0).astype(float) if drawn is p else np.zeros(q.size))] = 1

    def stubs(counts: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Stub rows sorted by (group, level, position), their levels, and stubs per group."""
        row = np.repeat(np.arange(members.size), counts)
        level = np.arange(row.size) - np.repeat(np.cumsum(counts) - counts, counts)
        order = np.lexsort((pos[row], level, group[row]))
        return row[order], level[order], np.bincount(group[row], minlength=groups.n_groups)

    out_row, out_level, out_g = stubs(q)
    in_row, _, in_g = stubs(p)
    k = np.minimum(out_g, in_g)

    def first_k(row: np.ndarray, per_group: np.ndarray) -> np.ndarray:
        rank = np.arange(row.size) - np.repeat(np.cumsum(per_group) - per_group, per_group)
        return rank < k[group[row]]

    kept = first_k(out_row, out_g)
    out_row, out_level = out_row[kept], out_level[kept]
    in_row = in_row[first_k(in_row, in_g)]
    # Rotate recipients by one inside each group: member i pays member i+1, the last pays the first.
    g = group[in_row]
    start = np.repeat(np.cumsum(k) - k, k)
    rank = np.arange(in_row.size) - start
    in_row = in_row[start + (rank + 1) % np.maximum(k[g], 1)]
    sender, recipient = members[out_row], members[in_row]
    keep = sender != recipient
    return sender[keep], recipient[keep], g[keep], out_level[keep]


def _pair_rest(rng: np.random.Generator, out_n: np.ndarray, in_n: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    sender = np.repeat(np.arange(out_n.size), out_n)
    recipient = rng.permutation(np.repeat(np.arange(in_n.size), in_n))
    for _ in range(3):
        loop = np.flatnonzero(sender == recipient)
        if loop.size == 0:
            break
        other = rng.integers(0, sender.size, loop.size)
        recipient[loop], recipient[other] = recipient[other], recipient[loop]
    keep = sender != recipient
    return sender[keep], recipient[keep]


def generate_transfers(
    rng: np.random.Generator, population: Population, world: World, ties: RingTies, params: ExchangeParams
) -> Transfers:
    """All transfers of the window.

    Args:
        rng: Random generator of this stage.
        population: Accounts in creation order.
        world: Holds the households.
        ties: Which collusion members circulate funds inside their ring.
        params: Generation parameters.

    Returns:
        Transfers (unsorted).
    """
    n = population.n
    start, end = active_span(population, params)
    out_n = np.where(rng.random(n) < params.transfer_active_rate, count_draw(rng, n, params.transfers_mean), 0)
    popularity = rng.lognormal(0.0, 1.0, n)
    in_n = rng.multinomial(int(out_n.sum()), popularity / popularity.sum())

    n_rings = population.n_rings
    group_of = np.full(n, -1, dtype=np.int64)
    hh = world.households
    group_of[hh.members] = n_rings + hh.group_of_member()
    colluder = population.threat == COLLUSION_CODE
    group_of[colluder] = population.ring[colluder]
    n_groups = n_rings + hh.n_groups
    share = np.where(colluder, 0.0, params.household_transfer_share)
    share[ties.transfers] = params.collusion_internal_share
    groups = groups_from_labels(group_of, n_groups)
    inner_s, inner_r, inner_g, inner_level = _pair_inside(
        rng, groups, out_n, in_n, share, np.arange(n_groups) < n_rings
    )
    rest_s, rest_r = _pair_rest(
        rng, out_n - np.bincount(inner_s, minlength=n), in_n - np.bincount(inner_r, minlength=n)
    )
    sender = np.concatenate([inner_s, rest_s])
    recipient = np.concatenate([inner_r, rest_r])
    earliest = np.maximum(start[sender], start[recipient])
    ts = earliest + np.floor(rng.random(sender.size) * (end - earliest + 1)).astype(np.int64)
    asset = rng.choice(len(ASSETS), size=sender.size, p=TRANSFER_ASSET_P)
    usd = usd_values(rng, sender.size)

    # Collusion flows: each level of a ring is one lot going round the ring within minutes (same asset,
    # value less a small fee). A member sends at most one transfer per lot, so its own transfers keep
    # independent times, assets and amounts, like anyone's.
    wash = np.flatnonzero(inner_g < n_rings)
    _, lot = np.unique(inner_g[wash] * (int(inner_level.max(initial=0)) + 1) + inner_level[wash], return_inverse=True)
    n_lots = int(lot.max(initial=-1)) + 1
    lot_ts = params.window_start_ts + np.floor(rng.random(n_lots) * (end - params.window_start_ts)).astype(np.int64)
    t = lot_ts[lot] + rng.exponential(1800.0, wash.size).astype(np.int64)
    fits = (t >= earliest[wash]) & (t <= end)
    ts[wash[fits]] = t[fits]
    asset[wash] = rng.choice(len(ASSETS), size=n_lots, p=TRANSFER_ASSET_P)[lot]
    usd[wash] = usd_values(rng, n_lots)[lot] * (1 - rng.uniform(0, 0.03, wash.size))
    amount = in_asset(usd, asset)
    return Transfers(ts=ts, sender=sender, recipient=recipient, asset=asset.astype(np.int8), amount=amount)
