"""Tie ring members together through shared identifiers, on top of the benign world.

Members keep their own slot counts: a shared identifier replaces one of the member's slots (the primary
one for bot farms, cards and wallets; the last one for collusion and promo devices/IPs, so the member
still signs up and mostly logs in from its own device). Weak members take part in one mechanism only.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from ingest.synthetic.params import ExchangeParams
from ingest.synthetic.population import Population
from ingest.synthetic.rings import (
    BOT_CODE,
    COLLUSION_CODE,
    PROMO_CARD,
    PROMO_CODE,
    PROMO_DEVICE,
    PROMO_WALLET,
    RingPlan,
    groups_from_labels,
)
from ingest.synthetic.world import World, add_devices, add_wallets, draw_user_agents, personal_ips


@dataclass(frozen=True)
class RingTies:
    """Which behavioural ring mechanisms each account takes part in (per-account booleans).

    Attributes:
        transfers: Collusion member circulating funds inside its ring.
        synced: Bot member on its farm's shared login schedule.
        promo_codes: Promo-abuse member redeeming its ring's promo codes.
    """

    transfers: np.ndarray
    synced: np.ndarray
    promo_codes: np.ndarray


def _one_per_member(
    rng: np.random.Generator, ring_m: np.ndarray, k_per_ring: np.ndarray, add: Callable[[int], np.ndarray]
) -> np.ndarray:
    """Allocate ``k_per_ring[r]`` identifiers per ring with ``add``; give each member one of its ring's."""
    offsets = np.concatenate([[0], np.cumsum(k_per_ring)])
    ids = add(int(offsets[-1]))
    pick = offsets[ring_m] + (rng.random(ring_m.size) * k_per_ring[ring_m]).astype(np.int64)
    return ids[pick]


def _shared_ips(
    rng: np.random.Generator, world: World, members: np.ndarray, ring_m: np.ndarray, k_per_ring: np.ndarray
) -> None:
    """Point the last IP slot of ``members`` at one of their ring's dual-stack shared addresses."""
    slot = world.ips.last(members)
    was_v6 = world.ip_pool.column("v6")[world.ips.ids[slot]].astype(bool)
    k_total = int(k_per_ring.sum())
    v4 = personal_ips(rng, world.ip_pool, np.zeros(k_total, bool))
    v6 = personal_ips(rng, world.ip_pool, np.ones(k_total, bool))
    offsets = np.concatenate([[0], np.cumsum(k_per_ring)])
    pick = offsets[ring_m] + (rng.random(ring_m.size) * k_per_ring[ring_m]).astype(np.int64)
    # Keep the IP version the slot had, so a member's IPv6 share is that of any account.
    world.ips.ids[slot] = np.where(was_v6, v6[pick], v4[pick])


def _farm_ips(
    rng: np.random.Generator,
    world: World,
    members: np.ndarray,
    farm_m: np.ndarray,
    n_farms: int,
    params: ExchangeParams,
) -> None:
    """Point the home IP of bot ``members`` at hosts in their farm's /24 blocks (or its /64)."""
    lo_sub, hi_sub = params.bot_subnets
    n_sub = rng.integers(lo_sub, hi_sub + 1, size=n_farms)
    blocks = rng.integers(1, 224, (n_farms, hi_sub)).astype(np.uint64) << np.uint64(24)
    blocks |= rng.integers(0, 1 << 16, (n_farms, hi_sub)).astype(np.uint64) << np.uint64(8)
    prefix = (np.uint64(0x2A00) + rng.integers(0, 256, n_farms).astype(np.uint64)) << np.uint64(48)
    prefix |= rng.integers(0, 1 << 48, n_farms, dtype=np.int64).astype(np.uint64)
    block = blocks[farm_m, (rng.random(members.size) * n_sub[farm_m]).astype(np.int64)]
    v4 = block | rng.integers(1, 255, members.size).astype(np.uint64)
    slot = world.ips.first(members)
    v6 = world.ip_pool.column("v6")[world.ips.ids[slot]].astype(bool)
    lo = rng.integers(0, 2**63, members.size, dtype=np.int64).astype(np.uint64)
    world.ips.ids[slot] = world.ip_pool.add(members.size, v6=v6, v4=v4, hi=prefix[farm_m], lo=lo)


def plant_rings(
    rng: np.random.Generator, world: World, population: Population, plan: RingPlan, params: ExchangeParams
) -> RingTies:
    """Point ring members' slots at their ring's shared identifiers and decide behavioural ties.

    Args:
        rng: Random generator of this stage.
        world: The benign world; its slots are modified in place.
        population: Accounts in creation order (ring membership, weak ties).
        plan: The ring plan (kinds, sizes, promo mechanisms).
        params: Generation parameters.

    Returns:
        The behavioural ties (ring transfers, synchronized logins, shared promo codes).
    """
    n, n_rings = population.n, plan.n_rings
    rings = groups_from_labels(population.ring, n_rings)
    members, ring_m = rings.members, rings.group_of_member()
    kind_m = plan.kind[ring_m]
    weak_m = population.weak[members]
    choice = rng.integers(0, 4, members.size)  # the one mechanism a weak member takes part in
    has_wallet = world.wallets.counts()[members] > 0
    has_card = world.cards.counts()[members] > 0
    u = rng.random((members.size, 3))

    def count(kind: int, lo: int, hi: int) -> np.ndarray:
        return np.where(plan.kind == kind, rng.integers(lo, hi + 1, n_rings), 0)

    # Collusion: shared devices / IPs / cash-out wallets, funds circulating in the ring.
    col = kind_m == COLLUSION_CODE
    dev = col & np.where(weak_m, choice == 0, u[:, 0] < params.collusion_device_p)
    ip = col & np.where(weak_m, choice == 1, u[:, 1] < params.collusion_ip_p)
    wal = col & has_wallet & np.where(weak_m, choice == 2, u[:, 2] < params.collusion_wallet_p)
    transfers_m = col & (~weak_m | (choice == 3) | ((choice == 2) & ~has_wallet))
    world.devices.ids[world.devices.last(members[dev])] = _one_per_member(
        rng, ring_m[dev], count(COLLUSION_CODE, 1, 3), lambda k: add_devices(rng, world.device_pool, k)
    )
    _shared_ips(rng, world, members[ip], ring_m[ip], count(COLLUSION_CODE, 1, 2))
    world.wallets.ids[world.wallets.first(members[wal])] = _one_per_member(
        rng, ring_m[wal], count(COLLUSION_CODE, 1, 3), lambda k: add_wallets(rng, world.wallet_pool, k)
    )

    # Promo abuse: each ring uses its own subset of mechanisms (referral chains are in `population`).
    promo = kind_m == PROMO_CODE
    mech = plan.promo_mechanisms[ring_m]
    v = rng.random((members.size, 3))
    uses = [
        promo & mech[:, j] & np.where(weak_m, choice == j, v[:, j - 1] < params.promo_member_p)
        for j in (PROMO_CARD, PROMO_DEVICE, PROMO_WALLET)
    ]
    card, dev, wal = uses[0] & has_card, uses[1], uses[2] & has_wallet
    world.cards.ids[world.cards.first(members[card])] = _one_per_member(
        rng, ring_m[card], count(PROMO_CODE, 1, 3), world.card_pool.add
    )
    world.devices.ids[world.devices.last(members[dev])] = _one_per_member(
        rng, ring_m[dev], count(PROMO_CODE, 1, 3), lambda k: add_devices(rng, world.device_pool, k)
    )
    world.wallets.ids[world.wallets.first(members[wal])] = _one_per_member(
        rng, ring_m[wal], count(PROMO_CODE, 1, 2), lambda k: add_wallets(rng, world.wallet_pool, k)
    )

    # Bot farms: a few emulator fingerprints (one user agent), sign-ups from the farm's /24s, one schedule.
    bot = kind_m == BOT_CODE
    farm_devices = np.where(
        plan.kind == BOT_CODE, np.maximum(1, np.round(plan.size / params.bot_accounts_per_device)), 0
    ).astype(np.int64)
    farm_ua = draw_user_agents(rng, n_rings)
    dev = bot & (~weak_m | (choice == 0))
    ip = bot & (~weak_m | (choice == 1))
    synced_m = bot & (~weak_m | (choice >= 2))
    world.devices.ids[world.devices.first(members[dev])] = _one_per_member(
        rng,
        ring_m[dev],
        farm_devices,
        lambda k: add_devices(rng, world.device_pool, k, ua=np.repeat(farm_ua, farm_devices)),
    )
    _farm_ips(rng, world, members[ip], ring_m[ip], n_rings, params)

    def per_account(mask: np.ndarray) -> np.ndarray:
        out = np.zeros(n, dtype=bool)
        out[members[mask]] = True
        return out

    return RingTies(transfers=per_account(transfers_m), synced=per_account(synced_m), promo_codes=per_account(promo))
