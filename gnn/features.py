"""Raw node features, computed from the exported graph at a reference time ``T``: the one place they are
defined and documented.

Features are *raw* (the model side normalises them on training accounts). Counts, totals and durations
are ``log1p``-compressed (heavy tails); a missing value gives 0. All are float32 and NaN-free.
**No feature reads a label**: ``known_label*`` and ``verdict*`` columns are dropped before anything is computed,
and ``T``
(:func:`default_reference_time`) ignores label times too. Days are ``(later − earlier) / 86 400 s``,
clipped at 0. A *volume* sums amounts each divided by the median per-event amount of its asset over the
whole graph, so BTC and USDT amounts add up in comparable units. ``k`` is one of ``device, ip, card,
email, phone, wallet``; ``<type>`` a lower-case relationship type.

Account features:

=================================  ============================================  =========================
name                               definition                                    why
=================================  ============================================  =========================
``age_days_log``                   days from ``created_at`` to T (0 for stubs)   rings use new accounts
``kyc_0`` ``kyc_1`` ``kyc_2``      one-hot ``kyc_level`` (all 0 for stubs)       verification depth
``kyc_3``
``is_stub``                        ``stub`` flag                                 seen only via others
``country_freq``                   share of accounts with the same country       rare vs common origin
``email_domain_freq``              share of accounts with the same email domain  rare vs common provider
``logins_log``                     Σ ``USED_DEVICE.count`` − signup uses         activity level
``deg_<type>_log``                 out-degree for the types to identifiers:      breadth of use
                                   distinct devices, IPs, cards, emails,
                                   phones, promos; (wallet, asset) pairs
``deg_<type>_out_log``             out-degree for ``REFERRED`` (accounts it      referral farming,
                                   referred) and ``TRANSFERRED_TO`` (per asset)  money sent
``deg_<type>_in_log``              in-degree for the same two types              referred or not, receipts
``wallets_log``                    distinct withdrawal wallets                   cash-out breadth
``counterparties_log``             distinct accounts sent to or received from    rings trade in a circle
``transfer_out_count_log``         Σ count of outgoing transfers                 money flow out
``transfer_out_volume_log``        Σ volume of outgoing transfers                money flow out
``transfer_in_count_log``          Σ count of incoming transfers                 money flow in
``transfer_in_volume_log``         Σ volume of incoming transfers                money flow in
``withdrawal_count_log``           Σ ``WITHDREW_TO.count``                       cash-out
``withdrawal_volume_log``          Σ volume of withdrawals                       cash-out
``promo_count_log``                Σ ``REDEEMED.count``                          promotion use
``promo_total_log``                Σ ``REDEEMED.total``                          promotion use
``deposit_count_log``              Σ ``USED_CARD.deposit_count``                 card funding
``deposit_total_log``              Σ ``USED_CARD.deposit_total``                 card funding
``chargeback_count_log``           Σ ``USED_CARD.chargeback_count``              disputed funding
``chargeback_total_log``           Σ ``USED_CARD.chargeback_total``              disputed funding
``active_span_days_log``           latest ``last_seen`` − earliest               one-shot vs long-lived
                                   ``first_seen`` over its device, IP, card,
                                   outgoing transfer, withdrawal and promo use
``signup_burst_1h_log``            other accounts created within ±1 h            sign-up bursts
``signup_burst_1h_prefix_log``     the same, signed up from the same /24 (/48)   bursts from one network
``shared_<k>_max_log``             over its identifiers of kind k: the most      shared identifiers tie
                                   *other* accounts using one of them            rings together
``shared_<k>_mean_log``            … the mean number of other accounts           (same)
``shared_<k>_max_capped_log``      max, identifiers used by more than            NAT IPs, hot wallets
                                   ``FEATURE_SHARED_CAP`` (200) accounts left out        would drown rings
``shared_<k>_mean_capped_log``     mean, the same identifiers left out           (same)
``shared_<k>_supernodes_log``      its identifiers above the cap                 what capping left out
``referral_depth_log``             distinct accounts above it on its            referral chains
                                   ``REFERRED`` chain (cycle-safe)
``small_group_<k>_log``            k ∈ device, ip, card, wallet: most other     rings are small groups;
                                   accounts sharing one such identifier, among  households, NATs and hot
                                   identifiers used by 2–30 accounts            wallets are not
``small_group_kinds``              kinds (of the six) of small-group            rings share several
                                   identifier it shares with someone            kinds at once
``group_peers_log``                accounts sharing any small-group identifier  size of its group
``group_peers_multi_log``          … sharing two or more with it                tight ties
``peer_counterparties_log``        transfer counterparties that are also group  money moving inside a
                                   peers                                        group (collusion)
``peer_counterparty_share``        that over all its counterparties             (same), scale-free
``peer_transfer_density``          that over its group peers                    (same), scale-free
``transfer_triangles_log``         triangles through it in the undirected       circular flows
                                   transfer graph
``reciprocal_counterparties_log``  counterparties it both sends to and          wash trading
                                   receives from
=================================  ============================================  =========================

Identifier features (``Device``, ``IP``, ``Card``, ``Email``, ``Phone``, ``Wallet``, ``Promo``):

========================  ======================================================  =======================
name                      definition                                              why
========================  ======================================================  =======================
``degree_log``            relationships to accounts (per asset for ``Wallet``)    how widely used
``accounts_log``          distinct accounts using it                              sharing
``age_days_log``          days from its earliest ``first_seen`` (``since``) to T  fresh identifiers
``active_span_days_log``  latest ``last_seen`` − earliest ``first_seen``          burst vs steady use
``countries_log``         distinct countries of its accounts                      one device, many lands
``uses_log``              Σ ``count`` (Device, IP, Card, Wallet, Promo)           intensity of use
``signups_log``           accounts that signed up on it (Device, IP)              sign-up factories
``ipv6``                  1 for an IPv6 address (IP)                              address family
``bin_freq``              share of cards with the same BIN (Card)                 issuer concentration
``assets_log``            distinct assets withdrawn to it (Wallet)                hot vs private wallet
========================  ======================================================  =======================
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from gnn.feature_defs import (
    IndexedRel,
    column,
    days_log,
    distinct_count,
    first_per_segment,
    frequency,
    identifier_features,
    referral_depth,
    segment_max,
    segment_min,
    segment_sum,
    shared_stats,
    window_counts,
)
from gnn.ring_features import FEATURE_NAMES as RING_FEATURE_NAMES
from gnn.ring_features import ring_structure_features
from graph import schema as s
from graph.queries.export import NODE_EXPORTS, REL_EXPORTS
from graph.supernodes import FEATURE_SHARED_CAP

#: Identifiers used by more accounts than this are super-nodes for the "capped" sharing features.
#: Half-width of the sign-up burst window.
BURST_WINDOW_MS = 3_600_000
#: Changes whenever a feature's definition or the set of features changes (recorded in snapshots).
FEATURE_VERSION = 1
LABEL_PREFIXES = ("known_label", "verdict")

#: Identifier kinds of the sharing features, and the relationship that links an account to each.
SHARED_KINDS: tuple[tuple[str, s.RelSpec], ...] = (
    ("device", s.USED_DEVICE),
    ("ip", s.USED_IP),
    ("card", s.USED_CARD),
    ("email", s.HAS_EMAIL),
    ("phone", s.HAS_PHONE),
    ("wallet", s.WITHDREW_TO),
)
_ACTIVE = (s.USED_DEVICE, s.USED_IP, s.USED_CARD, s.TRANSFERRED_TO, s.WITHDREW_TO, s.REDEEMED)


@dataclass(frozen=True)
class NodeFeatures:
    """The features of one node type.

    Attributes:
        names: column names of ``values``.
        values: float32 ``[num_nodes, len(names)]``, NaN-free.
    """

    names: list[str]
    values: np.ndarray


@dataclass(frozen=True)
class Population:
    """The graph-wide tallies a few features are relative to, for computing the features of *part* of a graph.

    Online scoring (:mod:`serving.api`) computes features on an account's receptive field read from Neo4j; the
    frequencies, the typical amounts and the sign-up bursts compare an account with the *whole* graph, so the
    subgraph's own rows would give other values. Passed to :func:`compute_features`, these tallies (read by
    :func:`graph.receptive_field.read_population`) take the subgraph's place in exactly those features; without
    one (batch), the graph is its own population.

    Attributes:
        accounts: accounts in the graph.
        countries / email_domains: accounts per ``country`` / ``email_domain`` value.
        cards / card_bins: cards in the graph / cards per ``bin``.
        typical_amount: relationship type (``TRANSFERRED_TO``, ``WITHDREW_TO``) → asset → the median per-event
            amount over all its relationships (the unit of a *volume*).
        created_ms: sorted ``created_at`` (epoch ms) of every account that has one.
        signup_prefix_created_ms: network prefix → sorted ``created_at`` of the accounts whose sign-up IP is in it.
    """

    accounts: int
    countries: Mapping[str, int]
    email_domains: Mapping[str, int]
    cards: int
    card_bins: Mapping[str, int]
    typical_amount: Mapping[str, Mapping[str, float]]
    created_ms: np.ndarray
    signup_prefix_created_ms: Mapping[str, np.ndarray] = field(default_factory=dict)


def without_labels(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` without its label columns (``known_label*``, ``verdict*``): what features may read (``frame``
    itself when it has none; features only read their frames)."""
    labels = [c for c in frame.columns if c.startswith(LABEL_PREFIXES)]
    return frame.drop(columns=labels) if labels else frame


def default_reference_time(nodes: Mapping[str, pd.DataFrame], rels: Mapping[str, pd.DataFrame]) -> int:
    """The latest time in the data (seconds since the epoch; 0 when it holds none), label times excluded.

    Deterministic (not the wall clock): the same data always gives the same features.
    """
    latest = 0
    specs = [(e.node.label, e.columns, nodes) for e in NODE_EXPORTS]
    specs += [(e.rel.type, e.columns, rels) for e in REL_EXPORTS]
    for name, columns, frames in specs:
        frame = frames.get(name)
        if frame is None or not len(frame):
            continue
        for c in columns:
            if c.kind == "datetime" and not c.name.startswith(LABEL_PREFIXES) and c.name in frame.columns:
                value = frame[c.name].max()
                if not pd.isna(value):
                    latest = max(latest, int(value))
    return latest // 1000


def compute_features(
    nodes: Mapping[str, pd.DataFrame],
    rels: Mapping[str, IndexedRel],
    reference_time: int,
    shared_cap: int = FEATURE_SHARED_CAP,
    population: Population | None = None,
    identifiers: Collection[str] | None = None,
) -> dict[str, NodeFeatures]:
    """Every node type's features (see the module docstring for the list).

    Args:
        nodes: label → node frame, rows in node-position order (label columns are ignored).
        rels: relationship type → edges as node positions, for every domain type.
        reference_time: T, seconds since the epoch.
        shared_cap: identifiers used by more accounts are left out of the capped sharing features.
        population: the whole graph's tallies when ``nodes`` and ``rels`` are part of it (online scoring);
            None: they are the whole graph.
        identifiers: the identifier labels whose features are wanted (None: all). Online scoring takes the
            others from the batch run's feature store, and an identifier's features read only its own rows.

    Returns:
        label → features, for ``Account`` and every identifier label asked for.

    Raises:
        ValueError: a relationship type is missing, or a feature came out non-finite (a bug).
    """
    missing = [r.type for r in s.DOMAIN_RELS if r.type not in rels]
    if missing:
        raise ValueError(f"rels lacks relationship types {missing}")
    unlabelled = {label: without_labels(frame) for label, frame in nodes.items()}
    t_ms = float(reference_time) * 1000.0
    accounts = account_features(unlabelled, rels, t_ms, shared_cap, BURST_WINDOW_MS, population)
    base = _assemble(s.ACCOUNT.label, accounts)
    ring = ring_structure_features(
        {t: np.stack([r.src, r.dst]) for t, r in rels.items()},
        {label: len(frame) for label, frame in nodes.items()},
        len(nodes[s.ACCOUNT.label]),
    )
    out = {
        s.ACCOUNT.label: NodeFeatures(
            [*base.names, *RING_FEATURE_NAMES], np.hstack([base.values, ring]).astype(np.float32)
        )
    }
    for spec in s.IDENTIFIER_NODES:
        if identifiers is not None and spec.label not in identifiers:
            continue
        features = identifier_features(spec, unlabelled, rels, t_ms)
        if spec == s.CARD and population is not None:
            features["bin_freq"] = population_share(
                unlabelled[spec.label]["bin"], population.card_bins, population.cards
            )
        out[spec.label] = _assemble(spec.label, features)
    return out


def account_features(
    nodes: Mapping[str, pd.DataFrame],
    rels: Mapping[str, IndexedRel],
    t_ms: float,
    shared_cap: int,
    window_ms: int,
    population: Population | None = None,
) -> dict[str, np.ndarray]:
    """The account features, by name (see the module docstring); ``population`` as in :func:`compute_features`."""
    accounts = nodes[s.ACCOUNT.label]
    n = len(accounts)
    created = column(accounts, "created_at", np.nan)
    kyc = column(accounts, "kyc_level", -1.0)
    f = {"age_days_log": days_log(np.full(n, t_ms), created)}
    f.update({f"kyc_{level}": (kyc == level).astype(np.float64) for level in range(4)})
    f["is_stub"] = column(accounts, "stub")
    if population is None:
        f["country_freq"] = frequency(accounts["country"])
        f["email_domain_freq"] = frequency(accounts["email_domain"])
    else:
        f["country_freq"] = population_share(accounts["country"], population.countries, population.accounts)
        f["email_domain_freq"] = population_share(
            accounts["email_domain"], population.email_domains, population.accounts
        )
    f.update(_activity(rels, n, population))
    f.update(_bursts(created, nodes[s.IP.label], rels[s.USED_IP.type], window_ms, population))
    for kind, rel in SHARED_KINDS:
        edges = rels[rel.type]
        stats = shared_stats(edges.src, edges.dst, n, len(nodes[rel.target.label]), shared_cap)
        for stat, values in vars(stats).items():  # max_others → shared_device_max_log, …
            f[f"shared_{kind}_{stat.replace('_others', '')}_log"] = np.log1p(values)
    f["referral_depth_log"] = np.log1p(referral_depth(_referrer(rels[s.REFERRED.type], n)))
    return f


def population_share(values: pd.Series, counts: Mapping[str, int], total: int) -> np.ndarray:
    """:func:`~gnn.feature_defs.frequency` against a population: ``counts[value] / total`` (0 where missing)."""
    looked_up = values.astype(object).map(lambda v: counts.get(v, 0) if isinstance(v, str) else 0)
    return looked_up.to_numpy(dtype=np.float64) / max(total, 1)


def _activity(rels: Mapping[str, IndexedRel], n: int, population: Population | None) -> dict[str, np.ndarray]:
    def total(rel: s.RelSpec, prop: str, by: str = "src", values: np.ndarray | None = None) -> np.ndarray:
        edges = rels[rel.type]
        weights = column(edges.props, prop) if values is None else values
        return np.log1p(np.maximum(segment_sum(getattr(edges, by), n, weights), 0.0))

    dev, tr, wd = rels[s.USED_DEVICE.type], rels[s.TRANSFERRED_TO.type], rels[s.WITHDREW_TO.type]
    logins = column(dev.props, "count") - column(dev.props, "signup")  # a signup counts as one use
    f = {"logins_log": total(s.USED_DEVICE, "count", values=logins)}
    for rel in s.DOMAIN_RELS:
        edges, name = rels[rel.type], rel.type.lower()
        if rel.target == s.ACCOUNT:
            f[f"deg_{name}_out_log"] = np.log1p(segment_sum(edges.src, n))
            f[f"deg_{name}_in_log"] = np.log1p(segment_sum(edges.dst, n))
        else:
            f[f"deg_{name}_log"] = np.log1p(segment_sum(edges.src, n))
    f["wallets_log"] = np.log1p(distinct_count(wd.src, wd.dst, n))
    f["counterparties_log"] = np.log1p(
        distinct_count(np.concatenate([tr.src, tr.dst]), np.concatenate([tr.dst, tr.src]), n)
    )
    typical = population.typical_amount if population is not None else {}
    transfer_volume = _volume(tr.props, typical.get(s.TRANSFERRED_TO.type) if population is not None else None)
    withdrawal_volume = _volume(wd.props, typical.get(s.WITHDREW_TO.type) if population is not None else None)
    f["transfer_out_count_log"] = total(s.TRANSFERRED_TO, "count")
    f["transfer_out_volume_log"] = total(s.TRANSFERRED_TO, "total", values=transfer_volume)
    f["transfer_in_count_log"] = total(s.TRANSFERRED_TO, "count", by="dst")
    f["transfer_in_volume_log"] = total(s.TRANSFERRED_TO, "total", by="dst", values=transfer_volume)
    f["withdrawal_count_log"] = total(s.WITHDREW_TO, "count")
    f["withdrawal_volume_log"] = total(s.WITHDREW_TO, "total", values=withdrawal_volume)
    f["promo_count_log"] = total(s.REDEEMED, "count")
    f["promo_total_log"] = total(s.REDEEMED, "total")
    for prop in ("deposit_count", "deposit_total", "chargeback_count", "chargeback_total"):
        f[f"{prop}_log"] = total(s.USED_CARD, prop)
    src = np.concatenate([rels[r.type].src for r in _ACTIVE])
    first = np.concatenate([column(rels[r.type].props, "first_seen", np.inf) for r in _ACTIVE])
    last = np.concatenate([column(rels[r.type].props, "last_seen", -np.inf) for r in _ACTIVE])
    f["active_span_days_log"] = days_log(segment_max(src, last, n, -np.inf), segment_min(src, first, n, np.inf))
    return f


def _volume(props: pd.DataFrame, population: Mapping[str, float] | None = None) -> np.ndarray:
    """Each edge's total in units of its asset's median per-event amount (1 when that median is 0).

    ``population``: asset → the median over the whole graph (None: the median over ``props``).
    """
    total, count = column(props, "total"), column(props, "count")
    if not len(props):
        return total
    if population is None:
        per_event = pd.Series(total / np.maximum(count, 1.0))
        typical = per_event.groupby(pd.factorize(props["asset"])[0]).transform("median").to_numpy()
    else:
        typical = props["asset"].astype(object).map(lambda a: population.get(a, np.nan)).to_numpy(dtype=np.float64)
    return total / np.where(typical > 0, typical, 1.0)


def _bursts(
    created: np.ndarray, ips: pd.DataFrame, used_ip: IndexedRel, window_ms: int, population: Population | None
) -> dict[str, np.ndarray]:
    n = len(created)
    known = np.isfinite(created)
    overall = np.zeros(n)
    if population is None:
        overall[known] = window_counts(created[known].astype(np.int64), window_ms)
    else:
        overall[known] = _population_window(created[known], population.created_ms, window_ms)
    # The sign-up IP: the account's signup USED_IP edge (the earliest one, should there be several).
    signup = column(used_ip.props, "signup") > 0
    prefix_code, prefix_names = pd.factorize(ips["prefix"], use_na_sentinel=True)
    accounts, first = first_per_segment(
        used_ip.src[signup], (column(used_ip.props, "first_seen")[signup], used_ip.dst[signup])
    )
    prefix = np.full(n, -1, dtype=np.int64)
    prefix[accounts] = prefix_code[used_ip.dst[signup][first]]
    grouped = known & (prefix >= 0)
    same_prefix = np.zeros(n)
    if population is None:
        same_prefix[grouped] = window_counts(created[grouped].astype(np.int64), window_ms, prefix[grouped])
    else:
        for i in np.flatnonzero(grouped):  # a receptive field holds few accounts
            times = population.signup_prefix_created_ms.get(str(prefix_names[prefix[i]]))
            same_prefix[i] = 0.0 if times is None else _population_window(created[i : i + 1], times, window_ms)[0]
    return {"signup_burst_1h_log": np.log1p(overall), "signup_burst_1h_prefix_log": np.log1p(same_prefix)}


def _population_window(times_ms: np.ndarray, population_ms: np.ndarray, window_ms: int) -> np.ndarray:
    """:func:`~gnn.feature_defs.window_counts` of ``times_ms`` against the sorted times of a whole population
    (which holds them): the *other* events within ``±window_ms``, never below 0."""
    t = times_ms.astype(np.int64)
    inside = np.searchsorted(population_ms, t + window_ms, "right") - np.searchsorted(
        population_ms, t - window_ms, "left"
    )
    return np.maximum(inside - 1, 0).astype(np.float64)


def _referrer(referred: IndexedRel, n: int) -> np.ndarray:
    """Each account's referrer position (-1 if none; the earliest ``at`` if several referred it)."""
    parent = np.full(n, -1, dtype=np.int64)
    accounts, first = first_per_segment(referred.dst, (column(referred.props, "at", np.inf), referred.src))
    parent[accounts] = referred.src[first]
    return parent


def _assemble(label: str, columns: dict[str, np.ndarray]) -> NodeFeatures:
    names = list(columns)
    values = np.column_stack([np.asarray(columns[name], dtype=np.float64) for name in names])
    bad = [names[j] for j in np.flatnonzero(~np.isfinite(values).all(axis=0))]
    if bad:
        raise ValueError(f"{label} features {bad} are not finite")
    return NodeFeatures(names, values.astype(np.float32))
