"""What drift is measured on: account-feature samples, and score samples of scoring runs.

Account features are the model's raw inputs (:mod:`gnn.features`). The scoring job hands its graph to the
monitor, which keeps a seeded sample of at most :data:`PROFILE_ROWS` accounts' features per run as
``<data dir>/monitor/features/<scoring run id>.parquet``: later runs compare against it without exporting the
graph again. The champion's reference is its training snapshot (``nodes/Account.parquet``, whose ``x__``
columns hold the same features), named by the registered version's ``snapshot`` tag; only the feature columns
are read. Scores and labels come from the scoring run's saved plan (``<data dir>/scoring/<run id>/``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Final

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from gnn.graph_data import RiskGraph
from gnn.snapshot import FEATURE_PREFIX
from graph import schema as s
from graph.errors import RingwatchError
from graph.private_files import private_dir
from graph.settings import Settings
from serving.score import PLAN_FILE
from serving.scoring_job import scoring_dir

#: Accounts kept per feature sample (PSI and KS on this many are within ±0.01 of the whole population's).
PROFILE_ROWS: Final = 20_000
PROFILE_SEED: Final = 0


class MonitorError(RingwatchError):
    """Monitoring cannot run: unknown run, no history, unreadable configuration or reference."""


def monitor_dir(settings: Settings) -> Path:
    """``<data dir>/monitor``: history, alert log, feature samples, metrics."""
    return settings.data_dir.resolve() / "monitor"


def feature_sample(graph: RiskGraph, rows: int = PROFILE_ROWS, seed: int = PROFILE_SEED) -> pd.DataFrame:
    """A seeded sample of at most ``rows`` accounts' raw features, one column per feature.

    Shapes:
        returned frame: ``[min(rows, num_accounts), num_account_features]`` float32.
    """
    x = graph.data[s.ACCOUNT.label].x.numpy()
    names = graph.feature_names[s.ACCOUNT.label]
    keep = _sample_index(x.shape[0], rows, seed)
    return pd.DataFrame(x[keep], columns=names)


def save_feature_sample(settings: Settings, scoring_run_id: str, sample: pd.DataFrame) -> Path:
    """Keep a run's feature sample (owner-only folder); returns its path."""
    folder = private_dir(monitor_dir(settings) / "features")
    path = folder / f"{scoring_run_id}.parquet"
    tmp = path.with_suffix(".tmp")
    sample.to_parquet(tmp, index=False)
    tmp.replace(path)
    return path


def load_feature_sample(settings: Settings, scoring_run_id: str) -> pd.DataFrame | None:
    """The feature sample kept for a scoring run, or None when there is none."""
    path = monitor_dir(settings) / "features" / f"{scoring_run_id}.parquet"
    return pd.read_parquet(path) if path.is_file() else None


def snapshot_features(snapshot: Path, rows: int = PROFILE_ROWS) -> pd.DataFrame:
    """The account features stored in a snapshot (a sample of at most ``rows``), columns without the prefix.

    Raises:
        MonitorError: the snapshot's account file is missing or unreadable.
    """
    path = Path(snapshot) / "nodes" / f"{s.ACCOUNT.label}.parquet"
    try:
        names = [n for n in pq.read_schema(path).names if n.startswith(FEATURE_PREFIX)]
        frame = pq.read_table(path, columns=names).to_pandas()
    except (OSError, ValueError) as e:
        raise MonitorError(f"the champion's training snapshot {snapshot} cannot be read: {e}") from e
    frame.columns = [c[len(FEATURE_PREFIX) :] for c in frame.columns]
    return frame.iloc[_sample_index(len(frame), rows, PROFILE_SEED)].reset_index(drop=True)


def plan_scores(settings: Settings, scoring_run_id: str) -> pd.DataFrame:
    """A scoring run's saved plan: ``account_id``, one score column per threat, ``score``, ``label``.

    Raises:
        MonitorError: no such run in the scoring folder (the message lists the newest runs there).
    """
    folder = scoring_dir(settings) / scoring_run_id
    path = folder / PLAN_FILE
    if not path.is_file():
        known = sorted(p.name for p in scoring_dir(settings).glob("score-*") if (p / PLAN_FILE).is_file())
        hint = f"known runs: {', '.join(known[-3:])}" if known else "no scoring run has been saved yet"
        raise MonitorError(f"no scoring run {scoring_run_id!r} in {scoring_dir(settings)} ({hint})")
    return pd.read_parquet(path, columns=[s.ACCOUNT.key, *s.THREATS, "score", "label"])


def _sample_index(n: int, rows: int, seed: int) -> np.ndarray:
    if n <= rows:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).choice(n, size=rows, replace=False))
