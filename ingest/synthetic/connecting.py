"""Make every planted ring one ring: each member reachable from the rest through ring-specific ties.

Planting draws each member's part in its ring's mechanisms independently, and events are drawn from an
account's identifiers at random, so some members end up tied to nothing that shows in the data: a weak
colluder whose ring device nobody else picked, a weak promo abuser whose one mechanism the ring does not use,
a bot on the farm's schedule but on its own device and network, a shared card never used. Nobody can detect
such a member from the graph, and real rings are not like that — a member is in the ring *because* it shares
something with it. This pass runs on the generated events, finds per ring the members connected to the
ring's largest group through ring-specific ties, and ties each other group to it through **one** link, so a
camouflaged member stays camouflaged (one weak channel) but is there to be found.

A *ring-specific tie*, as it shows in the events, is an identifier (device, IP, card, wallet; also an IPv4 /24
or IPv6 /64 network block) used by two or more members of the ring and mostly by them (members are at least
:data:`RING_SHARE` of its users: a carrier-NAT address or a hot wallet two members happen to use is not one),
a transfer between two members, or a referral between two members.

The new link is a referral from an earlier member for promo rings that recruit by referral, otherwise the
member's sign-up device (which every account's row shows) becomes one its ring already uses; its logins from
the old device move with it. How many identifiers an account uses never changes.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
from scipy.sparse.csgraph import connected_components

from ingest.synthetic.activity import Logins
from ingest.synthetic.payments import CardEvents, Withdrawals
from ingest.synthetic.population import Population
from ingest.synthetic.rings import PROMO_CODE, PROMO_REFERRAL, RingPlan
from ingest.synthetic.transfers import Transfers
from ingest.synthetic.world import World

#: A shared identifier is ring-specific when ring members are at least this share of its users.
RING_SHARE = 0.5
#: Rounds of re-tying (a group tied through the device it shares needs one round per member at most).
MAX_ROUNDS = 20


def _ip_blocks(world: World) -> np.ndarray:
    """A network-block key (IPv4 /24 or IPv6 /64) per IP of the pool."""
    pool = world.ip_pool
    v6 = pool.column("v6").astype(bool)
    v4 = pool.column("v4").astype(np.uint64) >> np.uint64(8)
    hi = pool.column("hi").astype(np.uint64)
    return np.where(v6, hi | np.uint64(1), v4 << np.uint64(1))  # the low bit tells the two families apart


def _ring_specific(owner: np.ndarray, ident: np.ndarray, ring: np.ndarray) -> np.ndarray:
    """Per distinct (owner, ident) use: whether ``ident`` is a ring-specific tie of the owner's ring."""
    codes, inverse = np.unique(ident, return_inverse=True)
    users = np.bincount(inverse, minlength=codes.size)
    member = ring[owner] >= 0
    pair = inverse[member].astype(np.int64) * (int(ring.max(initial=0)) + 1) + ring[owner[member]]
    pair_codes, pair_counts = np.unique(pair, return_counts=True)
    mates = np.zeros(ident.size, dtype=np.int64)
    mates[member] = pair_counts[np.searchsorted(pair_codes, pair)]
    return member & (mates >= 2) & (mates >= RING_SHARE * users[inverse])


class RingEvents:
    """The events that can tie ring members together, as (account, identifier) uses."""

    def __init__(
        self,
        world: World,
        population: Population,
        logins: Logins,
        cards: CardEvents,
        withdrawals: Withdrawals,
        transfers: Transfers,
    ) -> None:
        self.world, self.population, self.logins = world, population, logins
        self.cards, self.withdrawals, self.transfers = cards, withdrawals, transfers

    def signup_devices(self) -> np.ndarray:
        return self.world.devices.ids[self.world.devices.ptr[:-1]]

    def uses(self) -> tuple[np.ndarray, np.ndarray]:
        """Distinct (account, tie node) pairs; tie nodes are numbered per kind after the accounts."""
        n, w = self.population.n, self.world
        signup_ip = w.ips.ids[w.ips.ptr[:-1]]
        ip_owner = np.concatenate([np.arange(n), self.logins.account])
        ips = np.concatenate([signup_ip, self.logins.ip])
        kinds = [
            (
                np.concatenate([np.arange(n), self.logins.account]),
                np.concatenate([self.signup_devices(), self.logins.device]),
            ),
            (ip_owner, ips),
            (ip_owner, np.unique(_ip_blocks(w)[ips], return_inverse=True)[1]),
            (self.cards.account, self.cards.card),
            (self.withdrawals.account, self.withdrawals.wallet),
        ]
        owners, nodes, offset = [], [], n
        for owner, ident in kinds:
            owners.append(owner)
            nodes.append(offset + ident)
            offset += int(ident.max(initial=-1)) + 1
        pairs = np.unique(np.stack([np.concatenate(owners), np.concatenate(nodes)]).astype(np.int64), axis=1)
        return pairs[0], pairs[1]

    def components(self) -> np.ndarray:
        """Component label per account over ring-specific ties (benign accounts get labels of their own)."""
        n, ring = self.population.n, self.population.ring
        owner, node = self.uses()
        tie = _ring_specific(owner, node, ring)
        src, dst = [owner[tie]], [node[tie]]
        for a, b in ((self.transfers.sender, self.transfers.recipient), (np.arange(n), self.population.referrer)):
            inside = (b >= 0) & (ring[a] >= 0) & (ring[a] == ring[np.maximum(b, 0)])
            src.append(a[inside])
            dst.append(b[inside])
        s, d = np.concatenate(src), np.concatenate(dst)
        size = int(max(n, d.max(initial=-1) + 1))
        graph = sp.csr_matrix((np.ones(s.size, np.int8), (s, d)), shape=(size, size))
        return connected_components(graph, directed=False)[1][:n]

    def move_signup_device(self, account: int, device: int) -> None:
        """Make ``device`` the account's sign-up device; its logins from the old one move along."""
        slot = int(self.world.devices.ptr[account])
        old = int(self.world.devices.ids[slot])
        self.world.devices.ids[slot] = device
        rows = (self.logins.account == account) & (self.logins.device == old)
        self.logins.device[rows] = device
        shown = rows & (self.logins.ua >= 0)
        self.logins.ua[shown] = self.world.device_pool.column("ua")[device]


def connect_ring_members(rng: np.random.Generator, plan: RingPlan, events: RingEvents) -> int:
    """Tie every member to its ring's largest connected group (see the module docstring).

    Args:
        rng: Random generator of this stage.
        plan: The ring plan (kinds, promo mechanisms).
        events: The generated events; sign-up devices, their logins and referrers are modified in place.

    Returns:
        How many members were given a new link.
    """
    population = events.population
    ring = population.ring
    order = np.argsort(ring, kind="stable")[int((ring < 0).sum()) :]
    starts = np.concatenate([[0], np.cumsum(np.bincount(ring[ring >= 0], minlength=plan.n_rings))])
    retied = 0
    for _ in range(MAX_ROUNDS):
        comp = events.components()
        signup = events.signup_devices()
        changed = 0
        for r in range(plan.n_rings):
            members = order[starts[r] : starts[r + 1]]
            labels, counts = np.unique(comp[members], return_counts=True)
            if labels.size < 2:
                continue
            main_label = labels[np.argmax(counts)]
            main = members[comp[members] == main_label]
            for label in labels[labels != main_label]:
                group = members[comp[members] == label]
                changed += _tie_one(rng, plan, r, group, main, signup, events)
        retied += changed
        if not changed:
            break
    return retied


def _tie_one(
    rng: np.random.Generator,
    plan: RingPlan,
    r: int,
    group: np.ndarray,
    main: np.ndarray,
    signup: np.ndarray,
    events: RingEvents,
) -> int:
    """Give one account of ``group`` a link to ``main``; 1 when done."""
    population = events.population
    if plan.kind[r] == PROMO_CODE and plan.promo_mechanisms[r, PROMO_REFERRAL]:
        # A referral ring recruits by referral: an earlier main member refers the group's newest account.
        x = int(group.max())
        earlier = main[main < x]
        if earlier.size and population.ring[max(int(population.referrer[x]), 0)] != r:
            population.referrer[x] = int(rng.choice(earlier))
            return 1
    # Prefer a member whose sign-up device ties it to no one (moving it cuts no tie inside the group).
    devices, counts = np.unique(signup[group], return_counts=True)
    alone = group[np.isin(signup[group], devices[counts == 1])]
    alone = alone[~population.weak[alone]] if (~population.weak[alone]).any() else alone
    x = int(rng.choice(alone if alone.size else group))
    # The device two or more main members already sign up from (the ring's own), else any main member's.
    main_devices, main_counts = np.unique(signup[main], return_counts=True)
    shared = main_devices[main_counts >= 2]
    events.move_signup_device(x, int(rng.choice(shared if shared.size else main_devices)))
    signup[x] = events.world.devices.ids[events.world.devices.ptr[x]]
    return 1
