"""Ring grouping: risky accounts and what ties them → groups → a decision per group.

The input (:class:`RingCandidates`, read from Neo4j by :func:`serving.ring_links.read_candidates` or built in
memory by :func:`serving.ring_links.candidates_from_graph`) holds the *candidates* — *seeds* (accounts flagged
by the scoring run on their own score, or known to be fraud: a fraud label, a confirmed verdict) and
*elevated* accounts, whose score is under the threshold but not far — with the identifiers two or more of
them share and the money between them. Each candidate has a *margin*: its largest threat score over that
threat's threshold, at most 1; a seed's is 1.

**Weights, not a hard super-node cut.** An identifier (device, card, IP, IP network block, wallet, email,
phone, promo code) ties each pair of its candidate users with weight ``Σ margins of its candidates / all its
users``. A carrier-NAT address or a campaign code is used mostly by ordinary accounts and ties almost
nothing, whatever its size; a bot farm's network block or emulator device is used mostly by risky accounts
and ties them however many they are. Identifiers where candidates are under ``min_share`` of the users tie
nobody. Each transfer relationship (per direction and asset) or referral between two candidates adds
``money_weight``; a pair's weight is the sum of everything it shares, where the places it shares — a device,
an IP address, a network block — count once, at the strongest (:func:`link_weights`): a household shares its
home's device and address, which is one tie, not two.

**Groups.**

1. *Ties*: a pair is tied when its weight is at least ``link_min`` and, weighed by the smaller of the two
   margins, at least ``admit_tie``: an elevated account's ties count in proportion to its own score. This is
   how a camouflaged ring member whose score stays under the threshold joins through the one device it
   shares with the ring, while an innocent household member with an ordinary score does not join through
   the family device.
2. *Components* of the tied pairs are the groups.
3. *Split*: a group larger than ``split_above`` — larger than any ring one investigator reviews as one — is
   cut at its *joining bridges*, single ties with at least ``split_side`` accounts on each side (found in
   linear time from the bridge tree): two rings that one pair of accounts happens to tie come apart, while a
   farm, whose members are tied many times over, stays whole, and so does a ring tied in a chain. A part
   still larger than ``split_above`` is split by Louvain community detection (networkx, fixed seed).
   (Louvain alone, tried first, cut a 300-account farm into its three network blocks; cutting every bridge
   cut chains of transfers into single accounts.)
4. *Decision*: a group is a ring when it has at least ``min_size`` members, ``min_seeds`` seeds (one seed
   with its neighbours is what an innocent household with one false positive looks like) and a score mass —
   the sum of its members' margins — of at least ``min_mass`` and ``min_mean`` per member. Its members that
   are not seeds are then flagged as "member of ring R" (:mod:`serving.rings`).
5. *Expansion*: a collusion or promotion-abuse ring then takes in the accounts tied to ``expand_ties`` or more
   of its members — through an identifier that at most ``expand_max_users`` accounts use, a transfer or a
   referral, counted once per member — whatever their own score (:func:`joining_members`); the accounts that
   joined then bring their own ties, for up to ``expand_rounds`` rounds. A ring member
   pays the next one and is paid by the one before, so a colluder the model scored low is tied to two
   members; an innocent household member shares its device and home IP with *one* member and stays out.
   An account already flagged on its own score or known to be fraud needs only ``expand_ties_flagged`` (1):
   it is flagged anyway, the question is only which ring it belongs to — a camouflaged member the model
   caught, tied to its ring by one weak channel, is a member of that ring. *Sign-up bursts*: when at least
   ``burst_share`` of a ring's members signed up within ``burst_days`` of each other (scripted sign-ups, a
   promotion's week: :func:`signup_burst`), an account tied to one member by a referral, or by a small
   identifier the ring's members are at least ``min_share`` of the users of, that signed up inside that window
   joins too: the next recruit of a referral chain is tied to the ring by its referrer alone, while the
   ordinary accounts a member pays, or that share its device, signed up at any other time. Transfers do not
   count (members pay ordinary accounts that signed up in the same weeks), nor do identifiers the ring is a
   small part of (a member's company card: one colleague in the week, and the others then had two ties each —
   the card, to two members). Measured in the README (promotion-abuse ring recall 0.64 → 0.77 and 0.52 → 0.66
   on two 50k generated exchanges, account FPR 0.47 → 0.48 % and 0.50 → 0.52 %). Known-benign accounts (a
   benign label, a false-positive verdict) never join. Bot farms are not expanded:
   their members already join through the farm's network blocks, and two ties to a farm are what its
   neighbours on shared home IPs have (measured: of the accounts two ties would add to bot-farm rings, three
   in four were benign). Nor are groups larger than ``expand_max_size``: two ties to a group of hundreds are
   what its neighbourhood has by chance (measured: two mixed 230- and 320-account groups grew by 450 accounts,
   most of them benign, and took the account FPR from 1.0 % to 3.0 % on one generated exchange).
6. *The false-positive budget*: known-benign accounts are never flagged by a ring, and they measure what the
   flags cost: they are a sample of the benign accounts, so the share of them flagged — on their own score, or
   by a ring were they not known — estimates the account false-positive rate of everything the job writes.
   While that share is over the target (``max_account_fpr``; by default the scoring run's own target account
   FPR: the rings get what the per-account thresholds leave of it), and the graph has at least
   ``min_known_benign`` of them, the weakest ring (by its members' mean margin) is dropped
   (:func:`within_fpr_budget`). A weak model — labels on 10 % of ring members — makes its elevated candidates
   clump into households and offices, and grouping then flagged 3.5 % of benign accounts on one generated
   setting; the budget stops that, at the rings' cost. (A lower confidence bound instead of the share, tried
   first, let the rings through on small samples: 1.2–1.35 % account FPR on four of fourteen 20k exchanges.)
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import networkx as nx
import numpy as np
import pandas as pd

from gnn.feature_defs import DAY_MS
from gnn.thresholds import DEFAULT_FPR_TARGET
from graph import schema as s
from graph.queries.rings import IP_BLOCK

#: Identifiers that say where an account connects from: those a pair shares count once (:func:`link_weights`).
LOCATION_LABELS: frozenset[str] = frozenset({s.DEVICE.label, s.IP.label, IP_BLOCK})


@dataclass(frozen=True)
class SharedIdentifier:
    """An identifier that two or more candidates use.

    Attributes:
        label: node label (``Device`` …) or ``IPBlock`` for a network block.
        key: the node's business key (a block's CIDR).
        members: the candidates that use it.
        users: every account that uses it, candidate or not.
    """

    label: str
    key: str
    members: tuple[str, ...]
    users: int

    @property
    def share(self) -> float:
        """Share of its users that are candidates."""
        return len(self.members) / max(self.users, len(self.members), 1)

    def weight(self, margin: dict[str, float]) -> float:
        """How strongly it ties its candidate users: their margins summed over all its users (see the module
        docstring)."""
        return sum(margin[m] for m in self.members) / max(self.users, len(self.members), 1)


@dataclass
class RingCandidates:
    """What ring grouping reads.

    Attributes:
        accounts: one row per candidate: ``account_id``, ``label`` (risk label), ``score``, one column per
            threat score, ``seed`` (flagged or known fraud), ``known_label``, ``verdict``, ``run_id``,
            ``first_seen`` / ``last_seen`` (epoch ms).
        shared: identifiers used by two or more candidates.
        money: transfers and referrals between candidates: ``src``, ``dst``, ``type``, ``count``.
        known_benign: known-benign accounts in the whole graph (a benign label or a false-positive verdict) the
            model did not train on (created at or after ``unseen_after``): the sample the false-positive rate of
            the grouping's flags is estimated on (:func:`within_fpr_budget`). The model learnt the others as
            negatives, so they are rarely elevated and would make the rate look lower than it is.
        unseen_after: epoch ms; None: every account counts as unseen.
    """

    accounts: pd.DataFrame
    shared: list[SharedIdentifier]
    money: pd.DataFrame
    known_benign: int = 0
    unseen_after: int | None = None


#: The columns of :attr:`RingNeighbours.ties`.
TIE_COLUMNS = ["account_id", "member", "via", "key"]


@dataclass
class RingNeighbours:
    """Accounts tied to members of detected rings, for their expansion (:func:`joining_members`).

    Attributes:
        accounts: their rows, in the columns of :attr:`RingCandidates.accounts` (``seed`` false).
        ties: ``account_id``, ``member``, ``via``, ``key``: the account is tied to the ring member through an
            identifier used by at most ``expand_max_users`` accounts (``via``: its label, ``key``: its key; the rows
            of an identifier name every one of its users), a transfer or a referral (``via``: the relationship
            type, ``key`` empty); one row per pair and tie.
    """

    accounts: pd.DataFrame
    ties: pd.DataFrame


@dataclass(frozen=True)
class GroupingPolicy:
    """The knobs of grouping (see the module docstring); the defaults are the measured choice (README).

    ``max_account_fpr`` is the false-positive budget's target (step 6); None: the scoring run's target account
    FPR (:attr:`gnn.thresholds.ThresholdPolicy.fpr_target`), or :data:`gnn.thresholds.DEFAULT_FPR_TARGET` when
    the run had none (a review budget) — :meth:`account_fpr_target`.
    """

    admit_share: float = 0.1
    elevated_share: float = 0.1
    min_share: float = 0.2
    money_weight: float = 0.3
    link_min: float = 0.3
    admit_tie: float = 0.2
    split_above: int = 400
    split_side: int = 10
    min_size: int = 3
    min_seeds: int = 2
    min_mass: float = 3.0
    min_mean: float = 0.3
    louvain_seed: int = 0
    expand_ties: int = 2
    expand_ties_flagged: int = 1
    expand_max_users: int = 10
    expand_rounds: int = 3
    expand_max_size: int = 100
    expand_kinds: tuple[str, ...] = (s.COLLUSION, s.PROMO_ABUSE)
    burst_days: float = 7.0
    burst_share: float = 0.5
    max_account_fpr: float | None = None
    min_known_benign: int = 200

    def __post_init__(self) -> None:
        if self.max_account_fpr is not None and not 0.0 < self.max_account_fpr <= 1.0:
            raise ValueError(f"max_account_fpr must be in (0, 1], got {self.max_account_fpr}")
        for name in ("admit_share", "elevated_share", "min_share", "min_mean", "burst_share"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {getattr(self, name)}")
        for name in (
            "split_above",
            "split_side",
            "min_size",
            "min_seeds",
            "expand_max_users",
            "expand_rounds",
            "expand_max_size",
            "min_known_benign",
        ):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        for name in (
            "money_weight",
            "link_min",
            "admit_tie",
            "min_mass",
            "expand_ties",
            "expand_ties_flagged",
            "burst_days",
        ):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        unknown = set(self.expand_kinds) - set(s.THREATS)
        if unknown:
            raise ValueError(f"expand_kinds must be threats ({', '.join(s.THREATS)}), got {sorted(unknown)}")

    def account_fpr_target(self, run_target: float | None = None) -> float:
        """The budget's target: ``max_account_fpr`` when set, else the scoring run's ``run_target``, else the
        default target account FPR."""
        if self.max_account_fpr is not None:
            return self.max_account_fpr
        return run_target if run_target is not None else DEFAULT_FPR_TARGET


@dataclass
class Group:
    """A group of candidates, its score mass, and whether it is a ring.

    Attributes:
        members: account ids, sorted.
        seeds: the members flagged on their own score or known to be fraud.
        mass: the sum of the members' margins (score over threshold, at most 1; 1 for a seed).
        is_ring: the group's decision (see the module docstring).
    """

    members: list[str]
    seeds: list[str]
    mass: float
    is_ring: bool = False

    @property
    def admitted(self) -> list[str]:
        """Members that are not seeds: flagged because they are in the ring."""
        seeds = set(self.seeds)
        return [m for m in self.members if m not in seeds]


def margins_of(candidates: RingCandidates) -> dict[str, float]:
    """Each candidate's margin for grouping: its score over its threshold, at most 1; 1 for a seed."""
    accounts = candidates.accounts
    seed = accounts["seed"].astype(bool).to_numpy()
    margin = np.minimum(accounts["margin"].to_numpy(dtype=np.float64, na_value=0.0), 1.0)
    return dict(zip(accounts["account_id"], np.where(seed, 1.0, margin)))


def link_weights(candidates: RingCandidates, policy: GroupingPolicy) -> dict[tuple[str, str], float]:
    """Weight of every tied pair of candidates (``a < b``): identifiers they share plus money between them.

    The *location* identifiers a pair shares (:data:`LOCATION_LABELS`: a device, an IP address, a network block)
    count once, at the strongest of their weights: a device and the address it connects from are one place — a
    household's, an office's, an operator's desk —, not two pieces of evidence. Summed, they made every
    household that shares its home's device and address tie twice over, and a ring member's family join its
    ring (measured on fourteen 20k exchanges: account FPR 0.48 → 0.44 %, ring recall 0.28 → 0.30; README).
    """
    margin = margins_of(candidates)
    located: dict[tuple[str, str], float] = defaultdict(float)
    weights: dict[tuple[str, str], float] = defaultdict(float)
    for ident in candidates.shared:
        if ident.share < policy.min_share or len(ident.members) < 2:
            continue
        w = ident.weight(margin)
        members = sorted(ident.members)
        place = ident.label in LOCATION_LABELS
        for i, a in enumerate(members):
            for b in members[i + 1 :]:
                if place:
                    located[(a, b)] = max(located[(a, b)], w)
                else:
                    weights[(a, b)] += w
    for pair, w in located.items():
        weights[pair] += w
    money = candidates.money
    for a, b in zip(money["src"], money["dst"]):
        if a != b:  # each relationship counts: a transfer per direction and asset, a referral
            weights[(min(a, b), max(a, b))] += policy.money_weight
    return dict(weights)


def _split(graph: nx.Graph, component: set[str], policy: GroupingPolicy) -> list[set[str]]:
    """A component, or its parts when it is larger than ``split_above`` (see the module docstring)."""
    if len(component) <= policy.split_above:
        return [component]
    sub = _ordered_subgraph(graph, component)
    sub.remove_edges_from(_joining_bridges(sub, policy.split_side))
    parts: list[set[str]] = []
    for part in nx.connected_components(sub):
        if len(part) > policy.split_above:
            parts += [
                set(p)
                for p in nx.community.louvain_communities(
                    _ordered_subgraph(sub, part), weight="weight", seed=policy.louvain_seed
                )
            ]
        else:
            parts.append(set(part))
    return parts


def _ordered_subgraph(graph: nx.Graph, nodes: set[str]) -> nx.Graph:
    """A copy of ``graph`` on ``nodes``, nodes and edges in sorted order.

    Louvain's result depends on the order it visits nodes in, and a subgraph taken on a set iterates in the set's
    order, which changes with the process's string hashing: without this, the same scores gave different rings
    from one run to the next.
    """
    out = nx.Graph()
    out.add_nodes_from(sorted(nodes))
    out.add_edges_from(sorted((min(a, b), max(a, b), d) for a, b, d in graph.subgraph(nodes).edges(data=True)))
    return out


def _joining_bridges(graph: nx.Graph, side: int) -> list[tuple[str, str]]:
    """Bridges (ties whose removal disconnects the graph) with at least ``side`` accounts on each side."""
    bridges = list(nx.bridges(graph))
    if not bridges:
        return []
    # The bridge tree: 2-edge-connected blocks as nodes, weighted by size, joined by the bridges.
    core = nx.Graph(graph)
    core.remove_edges_from(bridges)
    block_of = {a: i for i, comp in enumerate(nx.connected_components(core)) for a in comp}
    size: defaultdict[int, int] = defaultdict(int)
    for i in block_of.values():
        size[i] += 1
    tree = nx.Graph()
    tree.add_nodes_from(size)
    tree.add_edges_from((block_of[u], block_of[v], {"bridge": (u, v)}) for u, v in bridges)
    total = len(block_of)
    root = next(iter(size))
    parent = dict(nx.bfs_predecessors(tree, root))
    below = dict(size)
    for node in reversed(list(nx.dfs_preorder_nodes(tree, root))):  # children before their parents
        if node in parent:
            below[parent[node]] += below[node]
    cut = []
    for u, v, data in tree.edges(data=True):
        child = u if parent.get(u) == v else v
        if min(below[child], total - below[child]) >= side:
            cut.append(data["bridge"])
    return cut


def find_groups(candidates: RingCandidates, policy: GroupingPolicy | None = None) -> list[Group]:
    """Groups of candidates and a ring decision for each, largest first (see the module docstring)."""
    policy = policy or GroupingPolicy()
    accounts = candidates.accounts
    ids = accounts["account_id"].tolist()
    seed = dict(zip(ids, accounts["seed"].astype(bool)))
    margin = margins_of(candidates)
    weights = link_weights(candidates, policy)
    graph = nx.Graph()
    graph.add_nodes_from(ids)
    graph.add_weighted_edges_from(
        (a, b, w)
        for (a, b), w in weights.items()
        if w >= policy.link_min and w * min(margin[a], margin[b]) >= policy.admit_tie
    )
    out: list[Group] = []
    for component in nx.connected_components(graph):
        for part in _split(graph, component, policy):
            members = sorted(part)
            mass = float(sum(margin[m] for m in members))
            group = Group(members, [m for m in members if seed[m]], mass)
            group.is_ring = (
                len(members) >= policy.min_size
                and len(group.seeds) >= policy.min_seeds
                and mass >= policy.min_mass
                and mass >= policy.min_mean * len(members)
            )
            out.append(group)
    return sorted(out, key=lambda g: (-len(g.members), g.members[0]))


def known_benign(accounts: pd.DataFrame) -> pd.Series:
    """Per candidate row: known to be benign (a benign label or a false-positive verdict)."""
    return (accounts["known_label"] == s.BENIGN) | (accounts["verdict"] == s.FALSE_POSITIVE)


def known_fraud(accounts: pd.DataFrame) -> pd.Series:
    """Per candidate row: known to be fraud (a threat label or a confirmed verdict)."""
    return accounts["known_label"].isin(s.THREATS) | (accounts["verdict"] == s.CONFIRMED)


def within_fpr_budget(
    strength: list[float],
    benign_flagged: list[int],
    own_flagged: int,
    known_benign: int,
    target: float,
    policy: GroupingPolicy,
) -> list[bool]:
    """Per ring, whether it is kept under the false-positive budget (module docstring, step 6).

    Args:
        strength: per ring, its members' mean margin (the weakest goes first).
        benign_flagged: per ring, the accounts of the known-benign sample it would flag were they not known.
        own_flagged: accounts of the sample flagged on their own score.
        known_benign: the sample's size (:attr:`RingCandidates.known_benign`).
        target: the account FPR all flags together may reach (:meth:`GroupingPolicy.account_fpr_target`).
    """
    keep = [True] * len(strength)
    if known_benign < policy.min_known_benign:
        return keep
    total = own_flagged + sum(benign_flagged)
    for i in sorted(range(len(strength)), key=lambda i: (strength[i], i)):
        if total <= target * known_benign:
            break
        keep[i] = False
        total -= benign_flagged[i]
    return keep


def signup_burst(created_at: Iterable[int | float | None], policy: GroupingPolicy) -> tuple[int, int] | None:
    """A ring's sign-up burst: the ``burst_days`` window (epoch ms, both ends included) that holds the most of
    its members' sign-ups (``created_at``, epoch ms; unknown ones left out), when that is at least ``burst_share``
    of them and two or more; None otherwise, or when ``burst_days`` is 0."""
    at = pd.to_numeric(pd.Series(list(created_at), dtype=object), errors="coerce").dropna().to_numpy(np.int64)
    at = np.sort(at)
    if policy.burst_days <= 0 or at.size < 2:
        return None
    width = int(policy.burst_days * DAY_MS)
    inside = np.searchsorted(at, at + width, side="right") - np.arange(at.size)
    best = int(np.argmax(inside))
    if inside[best] < max(2.0, policy.burst_share * at.size):
        return None
    return int(at[best]), int(at[best]) + width


def _ring_share(all_ties: pd.DataFrame, ring_of: Mapping[str, int], ties: pd.DataFrame) -> np.ndarray:
    """Per row of ``ties``: the share of the users of its identifier that are members of its ring (1.0 for a
    referral: no identifier). ``all_ties`` are every row read, whose rows of an identifier name all its users."""
    ident = all_ties[all_ties["key"] != ""]
    users = pd.concat(
        [ident[["via", "key", "account_id"]], ident[["via", "key", "member"]].rename(columns={"member": "account_id"})]
    ).drop_duplicates()
    users = users.assign(ring=users["account_id"].map(ring_of))
    total = users.groupby(["via", "key"]).size()
    in_ring = users.dropna(subset=["ring"]).groupby(["via", "key", "ring"]).size()
    rows = pd.MultiIndex.from_frame(ties[["via", "key", "ring"]])
    share = in_ring.reindex(rows).to_numpy(float) / total.reindex(rows.droplevel("ring")).to_numpy(float)
    return np.where(ties["key"].to_numpy() == "", 1.0, np.nan_to_num(share))


def joining_members(
    rings: list[list[str]],
    neighbours: RingNeighbours,
    policy: GroupingPolicy,
    others: Iterable[str] = (),
    created_at: Mapping[str, int] | None = None,
) -> list[list[str]]:
    """Per ring (member lists), the accounts its expansion takes in (see the module docstring, step 5).

    An account joins the ring to whose members it is tied most — at least ``expand_ties`` distinct members
    (0 expands nothing), ``expand_ties_flagged`` for an account flagged on its own score or known to be
    fraud; ties go to the earlier ring. Otherwise, given ``created_at`` (epoch ms of the members and of the
    neighbours), an account tied to one member by a referral, or by an identifier the ring's members are at least
    ``min_share`` of the users of, joins when it signed up inside its ring's :func:`signup_burst` (the earlier
    ring when several). Accounts already in a ring (these, or ``others``: members of rings not expanded) and
    known-benign accounts never join.
    """
    out: list[list[str]] = [[] for _ in rings]
    if policy.expand_ties <= 0 or not rings or neighbours.ties.empty:
        return out
    ring_of = {m: i for i, members in enumerate(rings) for m in members}
    accounts = neighbours.accounts
    excluded = set(ring_of) | set(others) | set(accounts.loc[known_benign(accounts), "account_id"])
    ties = neighbours.ties[~neighbours.ties["account_id"].isin(excluded)]
    ties = ties.assign(ring=ties["member"].map(ring_of)).dropna(subset=["ring"])
    counts = ties.drop_duplicates(["account_id", "member"]).groupby(["account_id", "ring"]).size()
    counts = counts.reset_index(name="ties")
    flagged = set(accounts.loc[(accounts["label"] != s.CLEAR) | known_fraud(accounts), "account_id"])
    needed = np.where(counts["account_id"].isin(flagged), policy.expand_ties_flagged, policy.expand_ties)
    counts = counts[counts["ties"] >= needed].sort_values(["account_id", "ties", "ring"], ascending=[True, False, True])
    for account, ring in counts.drop_duplicates("account_id")[["account_id", "ring"]].itertuples(index=False):
        out[int(ring)].append(str(account))
    if created_at is None or policy.burst_days <= 0:
        return out
    bursts = {
        i: w for i, members in enumerate(rings) if (w := signup_burst((created_at.get(m) for m in members), policy))
    }
    burst = ties[
        ties["ring"].isin(list(bursts))
        & (ties["via"] != s.TRANSFERRED_TO.type)
        & ~ties["account_id"].isin(set(counts["account_id"]))
    ]
    if burst.empty:
        return out
    burst = burst[_ring_share(neighbours.ties, ring_of, burst) >= policy.min_share]
    signed_up = pd.to_numeric(burst["account_id"].map(created_at), errors="coerce").to_numpy(float)
    window = np.array([bursts[int(r)] for r in burst["ring"]], dtype=np.int64).reshape(-1, 2)
    burst = burst[(signed_up >= window[:, 0]) & (signed_up <= window[:, 1])].sort_values(["account_id", "ring"])
    for account, ring in burst.drop_duplicates("account_id")[["account_id", "ring"]].itertuples(index=False):
        out[int(ring)].append(str(account))
    return out
