"""Vectorised building blocks of the node features (documented in :mod:`gnn.features`).

Every function works on whole columns with numpy, pandas or scipy: no Python loop runs per node or per
edge (the only loops run over a handful of doubling steps or over relationship types). Node positions are
int64 arrays; a "segment" reduction folds edge values into their source (or target) node.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from graph import schema as s

DAY_MS = 86_400_000


@dataclass(frozen=True)
class IndexedRel:
    """One relationship type's edges as node positions, with their properties.

    Attributes:
        src: int64 ``[num_edges]`` positions of the source nodes.
        dst: int64 ``[num_edges]`` positions of the target nodes.
        props: the relationship frame (``src``, ``dst``, discriminator, properties), row i is edge i.
    """

    src: np.ndarray
    dst: np.ndarray
    props: pd.DataFrame


def column(frame: pd.DataFrame, name: str, fill: float = 0.0) -> np.ndarray:
    """A numeric or boolean column as float64, nulls replaced by ``fill``."""
    return frame[name].to_numpy(dtype=np.float64, na_value=fill)


def segment_sum(seg: np.ndarray, n: int, values: np.ndarray | None = None) -> np.ndarray:
    """Sum of ``values`` (or count of entries) per segment id in ``[0, n)``."""
    return np.bincount(seg, weights=values, minlength=n).astype(np.float64)


def segment_max(seg: np.ndarray, values: np.ndarray, n: int, fill: float) -> np.ndarray:
    """Maximum of ``values`` per segment; ``fill`` where a segment is empty."""
    out = np.full(n, fill, dtype=np.float64)
    np.maximum.at(out, seg, values)
    return out


def segment_min(seg: np.ndarray, values: np.ndarray, n: int, fill: float) -> np.ndarray:
    """Minimum of ``values`` per segment; ``fill`` where a segment is empty."""
    out = np.full(n, fill, dtype=np.float64)
    np.minimum.at(out, seg, values)
    return out


def distinct_count(seg: np.ndarray, other: np.ndarray, n: int) -> np.ndarray:
    """Number of distinct values of ``other`` (non-negative ints; negatives ignored) per segment."""
    keep = other >= 0
    seg, other = seg[keep], other[keep].astype(np.int64)
    if not len(seg):
        return np.zeros(n, dtype=np.float64)
    width = int(other.max()) + 1
    pairs = np.unique(seg.astype(np.int64) * width + other)
    return segment_sum(pairs // width, n)


def frequency(values: pd.Series) -> np.ndarray:
    """Share of rows holding the same value as each row (0 where the value is missing)."""
    codes, _ = pd.factorize(values, use_na_sentinel=True)
    counts = np.bincount(codes[codes >= 0], minlength=int(codes.max(initial=-1)) + 1)
    counts = np.append(counts, 0)  # the missing values' code (-1) picks this 0
    return counts[codes] / max(len(values), 1)


def days_log(later_ms: np.ndarray, earlier_ms: np.ndarray) -> np.ndarray:
    """``log1p`` of the days from ``earlier_ms`` to ``later_ms`` (0 where either is NaN or it is negative)."""
    days = (later_ms - earlier_ms) / DAY_MS
    days = np.where(np.isfinite(days), np.maximum(days, 0.0), 0.0)
    return np.log1p(days)


def window_counts(times_ms: np.ndarray, window_ms: int, groups: np.ndarray | None = None) -> np.ndarray:
    """For each event, how many *other* events (of the same group) lie within ``±window_ms`` of it.

    Sorted times and two ``searchsorted`` calls; groups are folded into the sort key as
    ``group * stride + time`` with a stride wider than the time span plus the window on both sides.

    Args:
        times_ms: int64 event times.
        window_ms: half-width of the window (inclusive on both ends).
        groups: non-negative int64 group per event, or None for one group.

    Raises:
        ValueError: groups and time span together do not fit an int64 key.
    """
    if not len(times_ms):
        return np.zeros(0, dtype=np.float64)
    key = times_ms.astype(np.int64) - int(times_ms.min()) + window_ms
    if groups is not None:
        stride = int(key.max()) + 2 * window_ms + 1
        if (int(groups.max()) + 1) * stride >= 2**62:
            raise ValueError(f"{int(groups.max()) + 1} groups over a {stride} ms span overflow the sort key")
        key = groups.astype(np.int64) * stride + key
    ordered = np.sort(key)
    inside = np.searchsorted(ordered, key + window_ms, "right") - np.searchsorted(ordered, key - window_ms, "left")
    return (inside - 1).astype(np.float64)


def first_per_segment(seg: np.ndarray, order_keys: tuple[np.ndarray, ...]) -> tuple[np.ndarray, np.ndarray]:
    """The entry with the smallest ``order_keys`` (lexicographic) in each non-empty segment.

    Returns:
        (segment ids, entry positions), one pair per non-empty segment.
    """
    order = np.lexsort((*reversed(order_keys), seg))
    segments, first = np.unique(seg[order], return_index=True)
    return segments, order[first]


def referral_depth(parent: np.ndarray) -> np.ndarray:
    """How many distinct accounts lie above each account on its chain of referrers.

    ``parent[i]`` is the position of i's referrer, or -1. Cycle-safe: the members of a referral cycle of
    length L each have the other L - 1 above them, and an account that hangs d steps below a cycle has
    d + L - 1. Cycles are found as the strongly connected components (size > 1) of the referrer graph;
    their members become roots carrying L - 1, and depths are summed by pointer doubling (log2 of the
    longest chain steps), so the cost is a few passes over the array whatever the chains look like.
    """
    n = len(parent)
    positions = np.arange(n, dtype=np.int64)
    has_parent = (parent >= 0) & (parent != positions)
    base = np.zeros(n, dtype=np.int64)
    if has_parent.any():
        graph = coo_matrix((np.ones(int(has_parent.sum())), (positions[has_parent], parent[has_parent])), (n, n))
        _, component = connected_components(graph, directed=True, connection="strong")
        size = np.bincount(component, minlength=n)[component]
        on_cycle = size > 1
        base = np.where(on_cycle, size - 1, 0)
        has_parent &= ~on_cycle
    nxt = np.where(has_parent, parent, positions)
    steps = has_parent.astype(np.int64)
    while True:
        jumped = nxt[nxt]
        if np.array_equal(jumped, nxt):
            break
        steps = steps + steps[nxt]
        nxt = jumped
    return (steps + base[nxt]).astype(np.float64)


@dataclass(frozen=True)
class SharedStats:
    """How many *other* accounts share an account's identifiers of one kind (see :func:`shared_stats`)."""

    max_others: np.ndarray
    mean_others: np.ndarray
    max_others_capped: np.ndarray
    mean_others_capped: np.ndarray
    supernodes: np.ndarray


def shared_stats(account: np.ndarray, ident: np.ndarray, n_accounts: int, n_idents: int, cap: int) -> SharedStats:
    """Per account, over the identifiers it uses: max and mean number of other accounts using each.

    Edges are first reduced to distinct (account, identifier) pairs (a wallet used for two assets counts
    once). "Capped" statistics leave out identifiers used by more than ``cap`` accounts (carrier NAT IPs,
    hot wallets): super-nodes would otherwise drown the small shared identifiers rings hide behind.
    ``supernodes`` counts the account's identifiers above the cap.
    """
    pairs = np.unique(account.astype(np.int64) * max(n_idents, 1) + ident)
    acc, idt = pairs // max(n_idents, 1), pairs % max(n_idents, 1)
    per_ident = np.bincount(idt, minlength=n_idents)
    others = (per_ident[idt] - 1).astype(np.float64)
    over = per_ident[idt] > cap
    keep = ~over
    n_used = segment_sum(acc, n_accounts)
    n_kept = segment_sum(acc[keep], n_accounts)
    return SharedStats(
        max_others=segment_max(acc, others, n_accounts, 0.0),
        mean_others=segment_sum(acc, n_accounts, others) / np.maximum(n_used, 1.0),
        max_others_capped=segment_max(acc[keep], others[keep], n_accounts, 0.0),
        mean_others_capped=segment_sum(acc[keep], n_accounts, others[keep]) / np.maximum(n_kept, 1.0),
        supernodes=segment_sum(acc[over], n_accounts),
    )


def identifier_features(
    spec: s.NodeSpec, nodes: Mapping[str, pd.DataFrame], rels: Mapping[str, IndexedRel], t_ms: float
) -> dict[str, np.ndarray]:
    """The features of one identifier label, by name (defined in :mod:`gnn.features`)."""
    frame, accounts = nodes[spec.label], nodes[s.ACCOUNT.label]
    n = len(frame)
    incoming = [rels[r.type] for r in s.DOMAIN_RELS if r.target == spec]
    src = np.concatenate([e.src for e in incoming])
    dst = np.concatenate([e.dst for e in incoming])
    props = pd.concat([e.props for e in incoming], ignore_index=True)
    first = column(props, "first_seen" if "first_seen" in props else "since", np.nan)
    last = column(props, "last_seen" if "last_seen" in props else "since", np.nan)
    earliest = segment_min(dst, np.where(np.isnan(first), np.inf, first), n, np.inf)
    latest = segment_max(dst, np.where(np.isnan(last), -np.inf, last), n, -np.inf)
    country, _ = pd.factorize(accounts["country"], use_na_sentinel=True)
    f = {
        "degree_log": np.log1p(segment_sum(dst, n)),
        "accounts_log": np.log1p(distinct_count(dst, src, n)),
        "age_days_log": days_log(np.full(n, t_ms), earliest),
        "active_span_days_log": days_log(latest, earliest),
        "countries_log": np.log1p(distinct_count(dst, country[src], n)),
    }
    if "count" in props:
        f["uses_log"] = np.log1p(segment_sum(dst, n, column(props, "count")))
    if "signup" in props:
        f["signups_log"] = np.log1p(segment_sum(dst, n, column(props, "signup")))
    if spec == s.IP:
        f["ipv6"] = (column(frame, "version") == 6).astype(np.float64)
    if spec == s.CARD:
        f["bin_freq"] = frequency(frame["bin"])
    if spec == s.WALLET:
        asset, _ = pd.factorize(props["asset"], use_na_sentinel=True)
        f["assets_log"] = np.log1p(distinct_count(dst, asset, n))
    return f
