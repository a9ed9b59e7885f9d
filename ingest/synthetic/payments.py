"""Card events, promo redemptions and withdrawals.

Counts, amounts and timing come from one distribution for everyone. Rings show only through *which*
card, promo code or wallet an event uses: shared cards and wallets are already in the members' slots
(`planting`), and a promo-abuse ring's members redeem the ring's codes (drawn from the same catalogue
popularity as anyone's) right after their burst of sign-ups.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ingest.synthetic.activity import DAY, active_span, count_draw
from ingest.synthetic.params import ExchangeParams
from ingest.synthetic.planting import RingTies
from ingest.synthetic.population import Population
from ingest.synthetic.transfers import in_asset, usd_values
from ingest.synthetic.world import World

CARD_EVENT_ADD, CARD_EVENT_DEPOSIT, CARD_EVENT_CHARGEBACK = 0, 1, 2
#: (code, bonus in USD) in order of popularity.
PROMO_CATALOG: tuple[tuple[str, float], ...] = (
    ("WELCOME50", 50.0),
    ("WELCOME20", 20.0),
    ("FIRSTTRADE10", 10.0),
    ("REFER10", 10.0),
    ("SPRING25", 25.0),
    ("BONUS100", 100.0),
    ("STAKE5", 5.0),
    ("HODL30", 30.0),
    ("NEWYEAR25", 25.0),
    ("FUTURES15", 15.0),
    ("P2P20", 20.0),
    ("CARDBACK5", 5.0),
    ("EARN40", 40.0),
    ("LAUNCH75", 75.0),
    ("VIP200", 200.0),
    ("SUMMER30", 30.0),
    ("BLACKFRIDAY50", 50.0),
    ("AIRDROP10", 10.0),
    ("LOYAL15", 15.0),
    ("MOBILE10", 10.0),
    ("FLASH5", 5.0),
    ("SOLSTAKE20", 20.0),
    ("USDTBONUS10", 10.0),
    ("XMAS25", 25.0),
)
PROMO_CODES_PER_RING = 2
EVM_ASSETS = np.array([1, 2, 3])  # ETH, USDT, USDC (indices into transfers.ASSETS)
EVM_ASSET_P = np.array([0.4, 0.45, 0.15])
BTC_ASSET = 0


@dataclass(frozen=True)
class CardEvents:
    """Card events; ``kind`` is one of the ``CARD_EVENT_*`` codes, ``card`` indexes the card pool."""

    account: np.ndarray
    ts: np.ndarray
    card: np.ndarray
    kind: np.ndarray
    amount: np.ndarray


@dataclass(frozen=True)
class PromoRedemptions:
    """Promo redemptions; ``code`` indexes `PROMO_CATALOG`."""

    account: np.ndarray
    ts: np.ndarray
    code: np.ndarray
    amount: np.ndarray


@dataclass(frozen=True)
class Withdrawals:
    """Withdrawals; ``wallet`` indexes the wallet pool, ``asset`` indexes `transfers.ASSETS`."""

    account: np.ndarray
    ts: np.ndarray
    wallet: np.ndarray
    asset: np.ndarray
    amount: np.ndarray


def _events_per_slot(
    rng: np.random.Generator, counts: np.ndarray, slot_counts: np.ndarray, ptr: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Rows (account, slot index) for ``counts[a]`` events each on a random one of its slots."""
    account = np.repeat(np.arange(counts.size), counts)
    slot = ptr[account] + np.floor(rng.random(account.size) * slot_counts[account]).astype(np.int64)
    return account, slot


def generate_card_events(
    rng: np.random.Generator, population: Population, world: World, params: ExchangeParams
) -> CardEvents:
    """Card additions, deposits and chargebacks of the window."""
    start, end = active_span(population, params)
    slots = world.cards
    owner, pos = slots.owner(), slots.position()
    created = population.created_at[owner]
    # The first card is added soon after sign-up, later ones any time after.
    added = np.where(
        pos == 0,
        created + rng.exponential(3 * DAY, owner.size).astype(np.int64),
        created + np.floor(rng.random(owner.size) * (end - created)).astype(np.int64),
    )
    added = np.minimum(added, end)
    holders = slots.counts()
    deposits = np.where(holders > 0, count_draw(rng, holders.size, params.deposits_mean), 0)
    account, slot = _events_per_slot(rng, deposits, holders, slots.ptr)
    earliest = np.maximum(added[slot], start[account])
    ts = earliest + np.floor(rng.random(account.size) * (end - earliest + 1)).astype(np.int64)
    amount = np.round(rng.lognormal(np.log(250.0), 1.0, account.size), 2)
    back = np.flatnonzero(rng.random(account.size) < params.chargeback_rate)
    back_ts = ts[back] + rng.exponential(15 * DAY, back.size).astype(np.int64)
    back = back[back_ts <= end]
    back_ts = back_ts[back_ts <= end]
    shown = np.flatnonzero(added >= params.window_start_ts)
    return CardEvents(
        account=np.concatenate([owner[shown], account, account[back]]),
        ts=np.concatenate([added[shown], ts, back_ts]),
        card=np.concatenate([slots.ids[shown], slots.ids[slot], slots.ids[slot[back]]]),
        kind=np.repeat(
            np.array([CARD_EVENT_ADD, CARD_EVENT_DEPOSIT, CARD_EVENT_CHARGEBACK], np.int8),
            [shown.size, account.size, back.size],
        ),
        amount=np.concatenate([np.zeros(shown.size), amount, amount[back]]),
    )


def promo_popularity() -> np.ndarray:
    """Probability of each catalogue code being chosen for a redemption (Zipf-like)."""
    weights = 1.0 / np.arange(1, len(PROMO_CATALOG) + 1) ** 1.1
    return weights / weights.sum()


def generate_promos(
    rng: np.random.Generator, population: Population, ties: RingTies, params: ExchangeParams
) -> PromoRedemptions:
    """Promo redemptions of the window; ring members redeem their ring's codes first."""
    n = population.n
    _, end = active_span(population, params)
    counts = np.where(rng.random(n) < params.promo_active_rate, count_draw(rng, n, params.promos_mean), 0)
    account = np.repeat(np.arange(n), counts)
    nth = np.arange(account.size) - np.repeat(np.cumsum(counts) - counts, counts)
    code = rng.choice(len(PROMO_CATALOG), size=account.size, p=promo_popularity())
    n_rings = population.n_rings
    ring_codes = rng.choice(len(PROMO_CATALOG), size=(n_rings, PROMO_CODES_PER_RING), p=promo_popularity())
    from_ring = ties.promo_codes[account] & (nth < PROMO_CODES_PER_RING)
    code[from_ring] = ring_codes[population.ring[account[from_ring]], nth[from_ring]]
    created = population.created_at[account]
    ts = np.where(
        nth == 0,
        created + rng.exponential(2 * DAY, account.size).astype(np.int64),
        created + np.floor(rng.random(account.size) * (end - created)).astype(np.int64),
    )
    ts = np.minimum(ts, end)
    shown = ts >= params.window_start_ts
    bonus = np.array([b for _, b in PROMO_CATALOG])
    return PromoRedemptions(
        account=account[shown], ts=ts[shown], code=code[shown].astype(np.int16), amount=bonus[code[shown]]
    )


def generate_withdrawals(
    rng: np.random.Generator, population: Population, world: World, params: ExchangeParams
) -> Withdrawals:
    """Withdrawals of the window, each to one of the account's wallets in an asset of its chain."""
    start, end = active_span(population, params)
    holders = world.wallets.counts()
    counts = np.where(holders > 0, count_draw(rng, holders.size, params.withdrawals_mean), 0)
    account, slot = _events_per_slot(rng, counts, holders, world.wallets.ptr)
    wallet = world.wallets.ids[slot]
    btc = world.wallet_pool.column("btc").astype(bool)[wallet]
    asset = np.where(btc, BTC_ASSET, rng.choice(EVM_ASSETS, size=account.size, p=EVM_ASSET_P))
    ts = start[account] + np.floor(rng.random(account.size) * (end - start[account] + 1)).astype(np.int64)
    amount = in_asset(usd_values(rng, account.size, median=400.0, sigma=1.2), asset)
    return Withdrawals(account=account, ts=ts, wallet=wallet, asset=asset.astype(np.int8), amount=amount)
