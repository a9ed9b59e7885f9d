"""Drift statistics: PSI with bins from the reference's quantiles, the two-sample KS statistic, label churn.

PSI (population stability index) of a current sample against a reference: the reference's deciles cut the
axis into :data:`PSI_BINS` bins (ties merged, so a feature with few distinct values gets fewer bins), and
``PSI = Σ (c − r) · ln(c / r)`` over the bins, with ``r`` and ``c`` the shares of the reference and the current
sample in each bin (floored at :data:`PSI_FLOOR` so an empty bin does not give infinity). The usual reading,
and the thresholds used here: below :data:`PSI_MODERATE` (0.1) stable, up to :data:`PSI_MAJOR` (0.25) a
moderate shift worth a look, above it a major shift. Sampling noise alone gives about
``(bins − 1) · (1/n_ref + 1/n_cur)``, 0.006 for two samples of 3 000.

Values beyond the reference's range fall into its outer bins, so PSI sees a brand-new value only through the
bin it joins; KS, which needs no bins, sees it fully.

KS is the largest gap between the two empirical distribution functions (0 to 1), reported beside PSI because
it needs no binning.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

import numpy as np
import pandas as pd

PSI_BINS: Final = 10
PSI_FLOOR: Final = 1e-4
#: PSI below this is stable; between this and :data:`PSI_MAJOR` a moderate shift.
PSI_MODERATE: Final = 0.1
#: PSI above this is a major shift.
PSI_MAJOR: Final = 0.25


@dataclass(frozen=True)
class FeatureDrift:
    """One feature's (or score's) drift against a reference.

    Attributes:
        name: the feature (or ``score_<threat>``).
        psi: population stability index (see the module docstring).
        ks: two-sample Kolmogorov–Smirnov statistic.
        reference_mean, current_mean: means of the two samples.
    """

    name: str
    psi: float
    ks: float
    reference_mean: float
    current_mean: float

    @property
    def level(self) -> str:
        """``stable``, ``moderate`` or ``major`` by :data:`PSI_MODERATE` and :data:`PSI_MAJOR`."""
        return "major" if self.psi > PSI_MAJOR else "moderate" if self.psi > PSI_MODERATE else "stable"


def quantile_edges(reference: np.ndarray, bins: int = PSI_BINS) -> np.ndarray:
    """Inner bin edges from the reference's ``1/bins … (bins−1)/bins`` quantiles, duplicates removed.

    Each edge sits halfway between its quantile and the next larger value of the reference: many features
    take few distinct values (one-hots, shares such as ``country_freq``), and an edge right *at* a value
    would send a sample whose value moved by a hair (0.301 → 0.298) into the next bin — a false alarm.
    """
    if bins < 2:
        raise ValueError(f"bins must be at least 2, got {bins}")
    if reference.size == 0:
        return np.empty(0)
    ordered = np.sort(reference)
    quantiles = np.unique(np.quantile(ordered, np.arange(1, bins) / bins))
    above = np.searchsorted(ordered, quantiles, side="right")
    keep = above < ordered.size  # the largest value has nothing above it: no edge there
    return (quantiles[keep] + ordered[above[keep]]) / 2


def bin_shares(values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Share of ``values`` in each bin cut at ``edges`` (a value equal to an edge goes to the bin above it)."""
    counts = np.bincount(np.searchsorted(edges, values, side="right"), minlength=edges.size + 1)
    return counts / max(values.size, 1)


def psi(reference: np.ndarray, current: np.ndarray, bins: int = PSI_BINS) -> float:
    """PSI of ``current`` against ``reference`` (see the module docstring); 0 when either sample is empty.

    Args:
        reference: 1-D sample the bins come from.
        current: 1-D sample compared with it.
        bins: quantile bins of the reference.
    """
    reference, current = _clean(reference), _clean(current)
    if reference.size == 0 or current.size == 0:
        return 0.0
    edges = quantile_edges(reference, bins)
    r = np.maximum(bin_shares(reference, edges), PSI_FLOOR)
    c = np.maximum(bin_shares(current, edges), PSI_FLOOR)
    return float(np.sum((c - r) * np.log(c / r)))


def ks_statistic(reference: np.ndarray, current: np.ndarray) -> float:
    """The largest gap between the empirical distribution functions of the two samples (0 when one is empty)."""
    reference, current = np.sort(_clean(reference)), np.sort(_clean(current))
    if reference.size == 0 or current.size == 0:
        return 0.0
    grid = np.concatenate([reference, current])
    cdf_r = np.searchsorted(reference, grid, side="right") / reference.size
    cdf_c = np.searchsorted(current, grid, side="right") / current.size
    return float(np.max(np.abs(cdf_r - cdf_c)))


def column_drift(name: str, reference: np.ndarray, current: np.ndarray) -> FeatureDrift:
    """PSI, KS and means of one column."""
    ref, cur = _clean(reference), _clean(current)
    return FeatureDrift(
        name=name,
        psi=round(psi(ref, cur), 6),
        ks=round(ks_statistic(ref, cur), 6),
        reference_mean=round(float(ref.mean()), 6) if ref.size else 0.0,
        current_mean=round(float(cur.mean()), 6) if cur.size else 0.0,
    )


def frame_drift(reference: pd.DataFrame, current: pd.DataFrame) -> list[FeatureDrift]:
    """Drift of every column the two frames share, largest PSI first (ties by name).

    Args:
        reference: one column per feature (rows are accounts).
        current: the same columns (extra or missing ones are left out).
    """
    shared = [c for c in reference.columns if c in current.columns]
    drifts = [
        column_drift(c, reference[c].to_numpy(dtype=np.float64), current[c].to_numpy(dtype=np.float64)) for c in shared
    ]
    return sorted(drifts, key=lambda d: (-d.psi, d.name))


def label_churn(previous: pd.Series, current: pd.Series) -> dict[str, int]:
    """Accounts whose label changed between two runs, by direction (``"clear->collusion": 12`` …).

    Args:
        previous: label per account id (index) in the earlier run.
        current: label per account id in the later run; accounts in only one run are left out.
    """
    both = pd.DataFrame({"before": previous, "after": current}).dropna()
    changed = both[both["before"] != both["after"]]
    counts = (changed["before"].astype(str) + "->" + changed["after"].astype(str)).value_counts()
    return {str(k): int(v) for k, v in sorted(counts.items())}


def shares(labels: pd.Series, categories: Mapping[str, object] | tuple[str, ...]) -> dict[str, float]:
    """Share of ``labels`` equal to each category (0 for an empty series)."""
    n = max(len(labels), 1)
    counts = labels.value_counts()
    return {str(c): round(float(counts.get(c, 0)) / n, 6) for c in categories}


def _clean(values: np.ndarray) -> np.ndarray:
    values = np.asarray(values, dtype=np.float64).ravel()
    return values[np.isfinite(values)]
