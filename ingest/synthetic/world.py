"""The identifiers accounts use (devices, IPs, cards, withdrawal wallets) and legitimate sharing.

Each account owns a number of *slots* per identifier kind, drawn from one distribution for everyone;
slot 0 is the primary (signup device, home IP). Slots start out holding a fresh personal identifier.
Legitimate sharing then points slots at shared identifiers — households (home IP, often a device),
carrier NAT and public Wi-Fi addresses (super-nodes), company cards, exchanges' hot wallets — and
ring planting (`planting`) does the same for fraud. Pointing a slot elsewhere never changes how many
distinct identifiers an account uses.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np

from ingest.synthetic.params import ExchangeParams
from ingest.synthetic.rings import Groups, partition

BTC_WALLET_P = 0.35
MOBILE_ONLY_P = 0.1
MAX_EXTRA_IPS = 6
_BROWSERS = (("Chrome", 40), ("Safari", 25), ("Firefox", 8), ("Edg", 8), ("OPR", 3), ("SamsungBrowser", 4))
_SYSTEMS = (
    ("Windows NT 10.0; Win64; x64", 35),
    ("Macintosh; Intel Mac OS X 10_15_7", 18),
    ("X11; Linux x86_64", 4),
    ("iPhone; CPU iPhone OS 17_4 like Mac OS X", 22),
    ("Linux; Android 14; SM-S918B", 12),
    ("Linux; Android 13; Pixel 7", 6),
    ("iPad; CPU OS 17_4 like Mac OS X", 3),
)


@lru_cache(maxsize=1)
def user_agents() -> tuple[tuple[str, ...], np.ndarray]:
    """The user-agent strings devices report and their popularity (sums to 1)."""
    texts, weights = [], []
    for system, ws in _SYSTEMS:
        for browser, wb in _BROWSERS:
            for major, wv in ((124, 5), (123, 3), (122, 2), (120, 1)):
                texts.append(f"Mozilla/5.0 ({system}) AppleWebKit/537.36 (KHTML, like Gecko) {browser}/{major}.0")
                weights.append(ws * wb * wv)
    w = np.asarray(weights, dtype=float)
    return tuple(texts), w / w.sum()


def draw_user_agents(rng: np.random.Generator, n: int) -> np.ndarray:
    """Indices into `user_agents` for ``n`` devices."""
    popularity = user_agents()[1]
    return rng.choice(popularity.size, size=n, p=popularity)


@dataclass
class Pool:
    """A growing universe of identifiers of one kind, with numeric columns describing each."""

    size: int = 0
    parts: dict[str, list[np.ndarray]] = field(default_factory=dict)

    def add(self, n: int, **columns: np.ndarray) -> np.ndarray:
        """Append ``n`` identifiers with the given per-identifier columns; return their indices."""
        for name, values in columns.items():
            self.parts.setdefault(name, []).append(np.broadcast_to(values, (n,)).copy())
        start, self.size = self.size, self.size + n
        return np.arange(start, self.size, dtype=np.int64)

    def column(self, name: str) -> np.ndarray:
        """One column over the whole pool."""
        return np.concatenate(self.parts[name]) if self.parts.get(name) else np.empty(0)


@dataclass
class Slots:
    """Which identifier each slot of each account holds (CSR by account)."""

    ptr: np.ndarray
    ids: np.ndarray

    @classmethod
    def from_counts(cls, counts: np.ndarray) -> Slots:
        """Slots for accounts owning ``counts[i]`` slots each, all unset (-1)."""
        ptr = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
        return cls(ptr=ptr, ids=np.full(int(ptr[-1]), -1, dtype=np.int64))

    def counts(self) -> np.ndarray:
        """Slots per account."""
        return np.diff(self.ptr)

    def owner(self) -> np.ndarray:
        """Account of every slot."""
        return np.repeat(np.arange(self.ptr.size - 1), self.counts())

    def position(self) -> np.ndarray:
        """Position of every slot inside its account (0 = primary)."""
        return np.arange(self.ids.size) - np.repeat(self.ptr[:-1], self.counts())

    def first(self, accounts: np.ndarray) -> np.ndarray:
        """Slot index of the primary slot of each account (accounts must own a slot)."""
        return self.ptr[accounts]

    def last(self, accounts: np.ndarray) -> np.ndarray:
        """Slot index of the last slot of each account (accounts must own a slot)."""
        return self.ptr[accounts + 1] - 1


def personal_ips(rng: np.random.Generator, pool: Pool, v6: np.ndarray) -> np.ndarray:
    """Add one fresh residential address per entry of ``v6`` (its IP version); return indices."""
    n = v6.size
    first_octet = rng.choice(np.setdiff1d(np.arange(1, 224), [10, 100, 127, 169, 172, 192]), size=n)
    v4 = (first_octet.astype(np.uint64) << np.uint64(24)) | rng.integers(0, 1 << 24, n).astype(np.uint64)
    hi = (np.uint64(0x2A00) + rng.integers(0, 256, n).astype(np.uint64)) << np.uint64(48)
    hi |= rng.integers(0, 1 << 48, n, dtype=np.int64).astype(np.uint64)
    lo = rng.integers(0, 2**63, n, dtype=np.int64).astype(np.uint64)
    return pool.add(n, v6=v6, v4=v4, hi=hi, lo=lo)


def shared_v4(rng: np.random.Generator, pool: Pool, n: int, blocks: int) -> np.ndarray:
    """Add ``n`` IPv4 addresses drawn from ``blocks`` random /16s (a carrier's or venue's ranges)."""
    bases = rng.integers(1, 224, blocks).astype(np.uint64) << np.uint64(24)
    bases |= rng.integers(0, 256, blocks).astype(np.uint64) << np.uint64(16)
    v4 = bases[rng.integers(0, blocks, n)] | rng.integers(1, 1 << 16, n).astype(np.uint64)
    zero = np.zeros(n, np.uint64)
    return pool.add(n, v6=np.zeros(n, bool), v4=v4, hi=zero, lo=zero)


def add_devices(rng: np.random.Generator, pool: Pool, n: int, ua: np.ndarray | None = None) -> np.ndarray:
    """Add ``n`` devices (each reporting one user agent); return their indices."""
    return pool.add(n, ua=draw_user_agents(rng, n) if ua is None else ua)


def add_wallets(rng: np.random.Generator, pool: Pool, n: int) -> np.ndarray:
    """Add ``n`` withdrawal wallets (BTC or EVM); return their indices."""
    return pool.add(n, btc=rng.random(n) < BTC_WALLET_P)


def _counts(rng: np.random.Generator, n: int, p: tuple[float, ...]) -> np.ndarray:
    return rng.choice(len(p), size=n, p=np.asarray(p) / sum(p))


@dataclass
class World:
    """Every account's identifier slots, the pools behind them, and the benign groups."""

    devices: Slots
    ips: Slots
    cards: Slots
    wallets: Slots
    device_pool: Pool
    ip_pool: Pool
    card_pool: Pool
    wallet_pool: Pool
    households: Groups
    companies: Groups


def build_world(rng: np.random.Generator, n: int, params: ExchangeParams) -> World:
    """Give every account its identifier slots and plant all legitimate sharing.

    Args:
        rng: Random generator of this stage.
        n: Number of accounts.
        params: Generation parameters.

    Returns:
        The world, before any fraud ring touches it.
    """
    devices = Slots.from_counts(_counts(rng, n, params.device_slots_p))
    device_pool = Pool()
    devices.ids[:] = add_devices(rng, device_pool, devices.ids.size)

    ips = Slots.from_counts(1 + np.minimum(rng.poisson(params.ip_extra_mean, n), MAX_EXTRA_IPS))
    ip_pool = Pool()
    ips.ids[:] = personal_ips(rng, ip_pool, rng.random(ips.ids.size) < params.ipv6_rate)
    pos, u = ips.position(), rng.random(ips.ids.size)
    nat = np.where(pos == 0, u < MOBILE_ONLY_P, u < params.nat_ip_p)
    wifi = (pos > 0) & ~nat & (u < params.nat_ip_p + params.wifi_ip_p)
    owner = ips.owner()
    # Carriers NAT through a few ranges with even load; Wi-Fi hotspots are many, some far busier (airports).
    pools = ((nat, params.nat_accounts_per_ip, 6, 1.0), (wifi, params.wifi_accounts_per_ip, 40, 2.0))
    for mask, per_ip, blocks, skew in pools:
        size = max(MAX_EXTRA_IPS + 2, int(round(mask.sum() / per_ip)))
        shared = shared_v4(rng, ip_pool, size, blocks)
        # One base per account and consecutive pool entries per slot: an account's shared IPs differ.
        base = np.floor(size * rng.random(n) ** skew).astype(np.int64)
        ips.ids[mask] = shared[(base[owner[mask]] + pos[mask]) % size]

    cards = Slots.from_counts(_counts(rng, n, params.card_slots_p))
    card_pool = Pool()
    cards.ids[:] = card_pool.add(cards.ids.size)

    wallets = Slots.from_counts(_counts(rng, n, params.wallet_slots_p))
    wallet_pool = Pool()
    wallets.ids[:] = add_wallets(rng, wallet_pool, wallets.ids.size)
    hot = add_wallets(rng, wallet_pool, params.n_hot_wallets)
    zipf = 1.0 / np.arange(1, hot.size + 1) ** 1.1
    base = rng.choice(hot.size, size=n, p=zipf / zipf.sum())
    is_hot = rng.random(wallets.ids.size) < params.hot_wallet_p
    w_owner, w_pos = wallets.owner()[is_hot], wallets.position()[is_hot]
    wallets.ids[is_hot] = hot[(base[w_owner] + w_pos) % hot.size]

    households = partition(rng, np.flatnonzero(rng.random(n) < params.household_rate), params.household_size)
    head = households.members[np.repeat(households.ptr[:-1], households.sizes())]
    ips.ids[ips.first(households.members)] = ips.ids[ips.first(head)]
    share_device = np.repeat(rng.random(households.n_groups) < params.household_device_p, households.sizes())
    devices.ids[devices.first(households.members[share_device])] = devices.ids[devices.first(head[share_device])]

    holders = np.flatnonzero(cards.counts() > 0)
    companies = partition(rng, holders[rng.random(holders.size) < params.company_card_rate], params.company_size)
    company_card = card_pool.add(companies.n_groups)
    cards.ids[cards.first(companies.members)] = company_card[companies.group_of_member()]

    return World(devices, ips, cards, wallets, device_pool, ip_pool, card_pool, wallet_pool, households, companies)
