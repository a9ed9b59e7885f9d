"""Planted fraud rings: how many, of which threat, how big, who is in them, and what each shares.

A ring is planted by choosing its members at random among all accounts *before* any per-account
attribute is drawn, so membership says nothing about an account's own attributes. What a ring shares
(creation anchor, country, devices, IPs, cards, wallets, promo codes, login schedule) is a ring-level
latent drawn from the same distribution a benign account draws its own from.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from graph.schema import BENIGN, BOT_FARM, COLLUSION, PROMO_ABUSE
from ingest.synthetic.params import ExchangeParams

#: Threat codes used in every per-account array; index into `THREAT_NAMES`.
BENIGN_CODE, COLLUSION_CODE, PROMO_CODE, BOT_CODE = 0, 1, 2, 3
THREAT_NAMES: tuple[str, ...] = (BENIGN, COLLUSION, PROMO_ABUSE, BOT_FARM)

#: Optional sharing mechanisms of a promo-abuse ring (columns of `RingPlan.promo_mechanisms`).
PROMO_REFERRAL, PROMO_CARD, PROMO_DEVICE, PROMO_WALLET = 0, 1, 2, 3


@dataclass
class RingPlan:
    """The rings of one exchange and the accounts (in slot order, before sorting) in them.

    Attributes:
        kind: Threat code of each ring, shape ``(n_rings,)``.
        size: Member count of each ring, shape ``(n_rings,)``.
        ring_of: Ring index of each account slot, -1 for benign, shape ``(n_accounts,)``.
        weak: Whether a member is tied to its ring through a single mechanism, shape ``(n_accounts,)``.
        promo_mechanisms: Which optional mechanisms each ring uses, shape ``(n_rings, 4)``
            (all False for non-promo rings).
    """

    kind: np.ndarray
    size: np.ndarray
    ring_of: np.ndarray
    weak: np.ndarray
    promo_mechanisms: np.ndarray

    @property
    def n_rings(self) -> int:
        """Number of rings planted."""
        return int(self.kind.size)

    def threat_of(self) -> np.ndarray:
        """Threat code of every account slot (0 for benign)."""
        threat = np.zeros(self.ring_of.size, dtype=np.int8)
        member = self.ring_of >= 0
        threat[member] = self.kind[self.ring_of[member]]
        return threat

    def reorder(self, order: np.ndarray) -> None:
        """Re-index the per-account arrays so that account ``i`` is old slot ``order[i]``."""
        self.ring_of = self.ring_of[order]
        self.weak = self.weak[order]


def _ring_sizes(rng: np.random.Generator, budget: int, size_range: tuple[int, int]) -> list[int]:
    lo, hi = size_range
    sizes: list[int] = []
    remaining = budget
    # A positive budget smaller than one ring still plants one ring of the smallest size.
    while remaining >= lo or (remaining > 0 and not sizes):
        # Sizes skew small (many small rings, a few large ones), as in observed fraud rings.
        size = lo + int((hi - lo + 1) * rng.random() ** 1.5)
        size = max(lo, min(size, hi, remaining)) if remaining >= lo else lo
        sizes.append(size)
        remaining -= size
    return sizes


def plan_rings(rng: np.random.Generator, n_accounts: int, params: ExchangeParams) -> RingPlan:
    """Decide the rings and pick their members uniformly at random among all account slots.

    Every threat gets at least one ring when the exchange is big enough to hold it.

    Args:
        rng: Random generator of this stage.
        n_accounts: Number of accounts in the exchange.
        params: Generation parameters.

    Returns:
        The ring plan, with per-account arrays in slot order.
    """
    total_share = params.collusion_share + params.promo_share + params.bot_share
    budget = params.fraud_rate * n_accounts
    kinds: list[int] = []
    sizes: list[int] = []
    for code, share, size_range in (
        (COLLUSION_CODE, params.collusion_share, params.collusion_size),
        (PROMO_CODE, params.promo_share, params.promo_size),
        (BOT_CODE, params.bot_share, params.bot_size),
    ):
        if share <= 0:
            continue
        drawn = _ring_sizes(rng, int(round(budget * share / total_share)), size_range)
        kinds += [code] * len(drawn)
        sizes += drawn
    size = np.asarray(sizes, dtype=np.int64)
    if size.sum() > n_accounts // 2:
        raise ValueError(
            f"n_accounts={n_accounts} is too small for the planted rings ({int(size.sum())} members); "
            "use more accounts or a lower fraud_rate"
        )
    ring_of = np.full(n_accounts, -1, dtype=np.int32)
    members = rng.permutation(n_accounts)[: size.sum()]
    ring_of[members] = np.repeat(np.arange(size.size, dtype=np.int32), size)
    weak = (ring_of >= 0) & (rng.random(n_accounts) < params.weak_tie_rate)
    kind = np.asarray(kinds, dtype=np.int8)
    mechanisms = rng.random((size.size, 4)) < params.promo_mechanism_p
    none = ~mechanisms.any(axis=1)
    mechanisms[np.flatnonzero(none), rng.integers(0, 4, size=int(none.sum()))] = True
    mechanisms[kind != PROMO_CODE] = False
    return RingPlan(kind=kind, size=size, ring_of=ring_of, weak=weak, promo_mechanisms=mechanisms)


@dataclass(frozen=True)
class Groups:
    """Accounts grouped (rings, households, companies) in CSR form.

    Attributes:
        ptr: Group ``g`` holds ``members[ptr[g]:ptr[g + 1]]``, shape ``(n_groups + 1,)``.
        members: Account indices, ascending within a group, shape ``(n_members,)``.
    """

    ptr: np.ndarray
    members: np.ndarray

    @property
    def n_groups(self) -> int:
        """Number of groups."""
        return int(self.ptr.size - 1)

    def group_of_member(self) -> np.ndarray:
        """Group index of each entry of ``members``."""
        return np.repeat(np.arange(self.n_groups), np.diff(self.ptr))

    def position_of_member(self) -> np.ndarray:
        """Position (0-based) of each entry of ``members`` inside its group."""
        return np.arange(self.members.size) - np.repeat(self.ptr[:-1], np.diff(self.ptr))

    def sizes(self) -> np.ndarray:
        """Size of each group."""
        return np.diff(self.ptr)


def groups_from_labels(group_of: np.ndarray, n_groups: int) -> Groups:
    """CSR groups from a per-account group index (-1 for none)."""
    inside = np.flatnonzero(group_of >= 0)
    members = inside[np.argsort(group_of[inside], kind="stable")]
    counts = np.bincount(group_of[inside], minlength=n_groups)
    return Groups(ptr=np.concatenate([[0], np.cumsum(counts)]), members=members)


def partition(rng: np.random.Generator, candidates: np.ndarray, size_range: tuple[int, int]) -> Groups:
    """Split a random order of ``candidates`` into groups with sizes uniform in ``size_range``.

    Candidates left over after the last whole group stay ungrouped.
    """
    shuffled = rng.permutation(candidates)
    lo, hi = size_range
    ends = np.cumsum(rng.integers(lo, hi + 1, size=shuffled.size // lo + 1))
    ptr = np.concatenate([[0], ends[ends <= shuffled.size]]).astype(np.int64)
    group = np.repeat(np.arange(ptr.size - 1), np.diff(ptr))
    members = shuffled[: ptr[-1]]
    return Groups(ptr=ptr, members=members[np.lexsort((members, group))])
