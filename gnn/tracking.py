"""Experiment tracking and the model registry (MLflow).

Local by default: a SQLite store and artifact folder under the data folder; ``MLFLOW_TRACKING_URI``
points elsewhere (a team server). Every training run logs its parameters, per-epoch metrics, the model
folder, the feature spec and the snapshot's content hash. A run whose validation score beats the current
``champion``'s becomes a new version under the ``champion`` alias; scoring loads that alias.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from graph.errors import RingwatchError
from graph.settings import Settings

REGISTERED_MODEL = "ringwatch-risk"
CHAMPION = "champion"
EXPERIMENT = "ringwatch"
SCORE_TAG = "val_auprc_mean"


class TrackingError(RingwatchError):
    """The tracking server or registry cannot be used, or holds no champion."""


@dataclass
class LoggedModel:
    run_id: str
    version: str
    promoted: bool
    score: float
    champion_score: float | None


def _mlflow(settings: Settings):
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    import mlflow

    uri = os.environ.get("MLFLOW_TRACKING_URI")
    if not uri:
        folder = settings.data_dir.resolve() / "mlflow"
        folder.mkdir(parents=True, exist_ok=True)
        uri = f"sqlite:///{folder / 'mlflow.db'}"
    mlflow.set_tracking_uri(uri)
    return mlflow


def tracking_uri(settings: Settings) -> str:
    return _mlflow(settings).get_tracking_uri()


def _experiment_id(mlflow, settings: Settings) -> str:
    exp = mlflow.get_experiment_by_name(EXPERIMENT)
    if exp is not None:
        return exp.experiment_id
    artifacts = None
    if not os.environ.get("MLFLOW_TRACKING_URI"):
        artifacts = (settings.data_dir.resolve() / "mlflow" / "artifacts").as_uri()
    return mlflow.create_experiment(EXPERIMENT, artifact_location=artifacts)


def log_training_run(settings: Settings, model_dir: Path, params: dict[str, Any], history: list[dict[str, Any]],
                     metrics: dict[str, float], tags: dict[str, str], run_name: str) -> LoggedModel:
    """Log a finished training run, register the model, and promote it if it beats the champion."""
    mlflow = _mlflow(settings)
    from mlflow import MlflowClient

    client = MlflowClient()
    with mlflow.start_run(experiment_id=_experiment_id(mlflow, settings), run_name=run_name) as run:
        mlflow.log_params({k: str(v)[:500] for k, v in params.items()})
        mlflow.set_tags(tags)
        for h in history:
            step = int(h["epoch"])
            mlflow.log_metric("train_loss", float(h["loss"]), step=step)
            mlflow.log_metric("val_auprc_mean", float(h["val_auprc_mean"]), step=step)
            for threat, value in h["val_auprc"].items():
                if value == value:  # skip NaN
                    mlflow.log_metric(f"val_auprc_{threat}", float(value), step=step)
        mlflow.log_metrics({k: float(v) for k, v in metrics.items() if v == v})
        mlflow.log_artifacts(str(model_dir), "model")
        source = f"{run.info.artifact_uri}/model"
    try:
        client.get_registered_model(REGISTERED_MODEL)
    except Exception:  # noqa: BLE001 — not found is the only expected case; anything else resurfaces below
        client.create_registered_model(REGISTERED_MODEL)
    score = float(metrics.get(SCORE_TAG, float("nan")))
    version = client.create_model_version(REGISTERED_MODEL, source=source, run_id=run.info.run_id,
                                          tags={SCORE_TAG: str(score), **tags})
    champion_score = _champion_score(client)
    promoted = champion_score is None or (score == score and score > champion_score)
    if promoted:
        client.set_registered_model_alias(REGISTERED_MODEL, CHAMPION, version.version)
    return LoggedModel(run.info.run_id, version.version, promoted, score, champion_score)


def _champion_score(client) -> float | None:
    try:
        champion = client.get_model_version_by_alias(REGISTERED_MODEL, CHAMPION)
    except Exception:  # noqa: BLE001 — no champion yet
        return None
    return float(champion.tags.get(SCORE_TAG, "nan"))


def champion_model_dir(settings: Settings, dest: Path | None = None) -> tuple[Path, str]:
    """Download the champion's model folder; returns (folder, version)."""
    mlflow = _mlflow(settings)
    from mlflow import MlflowClient

    try:
        version = MlflowClient().get_model_version_by_alias(REGISTERED_MODEL, CHAMPION)
    except Exception as e:  # noqa: BLE001
        raise TrackingError(
            f"no {CHAMPION!r} model in the registry at {mlflow.get_tracking_uri()}: run `ringwatch train` first"
        ) from e
    dest = dest or Path(tempfile.mkdtemp(prefix="ringwatch-model-"))
    path = mlflow.artifacts.download_artifacts(artifact_uri=version.source, dst_path=str(dest))
    return Path(path), f"{REGISTERED_MODEL}/{version.version}"
