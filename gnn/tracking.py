"""Experiment tracking and the model registry (MLflow).

Local by default: a SQLite store and artifact folder under the data folder; ``MLFLOW_TRACKING_URI`` (read
through :class:`~graph.settings.Settings`) points elsewhere (a team server). Every training run logs its
parameters, per-epoch metrics, the model folder, the feature spec and the snapshot's content hash. A run
whose validation score beats the current ``champion``'s becomes a new version under the ``champion`` alias;
scoring loads that alias.

Everything goes through an ``MlflowClient`` built for the configured store: no process-wide tracking URI is
set. A registry that does not answer is an error (:class:`TrackingError`), never "there is no champion":
otherwise an unreachable server would make every new model the champion. Only the registry's own answer
"this model is not registered" (its error code, not its message) and a registered model without the
``champion`` alias (its alias table) mean "no champion yet".
"""

from __future__ import annotations

import math
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from graph.errors import RingwatchError
from graph.logs import logger
from graph.settings import Settings

if TYPE_CHECKING:
    from mlflow import MlflowClient

    from gnn.estimator import RiskModel

REGISTERED_MODEL = "ringwatch-risk"
CHAMPION = "champion"
EXPERIMENT = "ringwatch"
SCORE_TAG = "val_auprc_mean"

log = logger(__name__)


class TrackingError(RingwatchError):
    """The tracking server or registry cannot be used, or holds no champion."""


@dataclass
class LoggedModel:
    """A training run as tracked: its MLflow run, registered version, and whether it became the champion."""

    run_id: str
    version: str
    promoted: bool
    score: float
    champion_score: float | None


def tracking_uri(settings: Settings) -> str:
    """The tracking store: ``MLFLOW_TRACKING_URI``, else a SQLite file under the data folder."""
    if settings.mlflow_tracking_uri:
        return settings.mlflow_tracking_uri
    return f"sqlite:///{settings.data_dir.resolve() / 'mlflow' / 'mlflow.db'}"


def tracking_client(settings: Settings) -> MlflowClient:
    """An ``MlflowClient`` for the configured store and registry (the local folder is created when needed)."""
    from mlflow import MlflowClient

    if not settings.mlflow_tracking_uri:
        (settings.data_dir.resolve() / "mlflow").mkdir(parents=True, exist_ok=True)
    uri = tracking_uri(settings)
    return MlflowClient(tracking_uri=uri, registry_uri=uri)


def _experiment_id(client: MlflowClient, settings: Settings) -> str:
    exp = client.get_experiment_by_name(EXPERIMENT)
    if exp is not None:
        return str(exp.experiment_id)
    artifacts = None
    if not settings.mlflow_tracking_uri:
        artifacts = (settings.data_dir.resolve() / "mlflow" / "artifacts").as_uri()
    return str(client.create_experiment(EXPERIMENT, artifact_location=artifacts))


def _is_not_found(error: Exception) -> bool:
    """The registry answered that the thing asked for does not exist (by error code, not message text)."""
    from mlflow.exceptions import MlflowException

    return isinstance(error, MlflowException) and error.error_code == "RESOURCE_DOES_NOT_EXIST"


def _registry_error(action: str, client: MlflowClient, error: Exception) -> TrackingError:
    return TrackingError(
        f"the model registry at {client.tracking_uri} did not answer while {action}: "
        f"{type(error).__name__}: {error}; nothing was promoted, fix the store "
        "(MLFLOW_TRACKING_URI) and run again"
    )


def champion_version(client: MlflowClient) -> Any | None:
    """The registry's ``champion`` model version, or None when there is none yet.

    Raises:
        TrackingError: the registry could not be read (unreachable, refused, broken) — not the same as "none".
    """
    try:
        registered = client.get_registered_model(REGISTERED_MODEL)
    except Exception as e:
        if _is_not_found(e):
            return None
        raise _registry_error("looking for the champion", client, e) from e
    if CHAMPION not in (registered.aliases or {}):
        return None
    try:
        return client.get_model_version(REGISTERED_MODEL, str(registered.aliases[CHAMPION]))
    except Exception as e:
        raise _registry_error("reading the champion", client, e) from e


def log_training_run(
    settings: Settings,
    model_dir: Path,
    params: dict[str, Any],
    history: list[dict[str, Any]],
    metrics: dict[str, float],
    tags: dict[str, str],
    run_name: str,
    client: MlflowClient | None = None,
    promote: bool = True,
) -> LoggedModel:
    """Log a finished training run, register the model, and promote it if it beats the champion.

    Args:
        settings: which tracking store (``MLFLOW_TRACKING_URI`` or the local one).
        model_dir: the saved model folder, logged as the run's ``model`` artifact.
        params: run parameters (values cut to 500 characters).
        history: per-epoch ``{"epoch", "loss", "val_auprc_mean", "val_auprc": {threat: value}}``.
        metrics: final metrics; ``val_auprc_mean`` decides promotion.
        tags: run and model-version tags.
        run_name: the training run id.
        client: a client to use instead of one built from ``settings``.
        promote: False registers the model without ever promoting it (a challenger, e.g. ``monitor --retrain``).

    Raises:
        TrackingError: the store or the registry failed; the model is then never promoted.
    """
    from mlflow.entities import Metric, Param

    client = client or tracking_client(settings)
    try:
        run = client.create_run(_experiment_id(client, settings), run_name=run_name, tags=tags)
        run_id = run.info.run_id
        now = int(time.time() * 1000)
        epoch_metrics = []
        for h in history:
            step = int(h["epoch"])
            epoch_metrics += [
                Metric("train_loss", float(h["loss"]), now, step),
                Metric("val_auprc_mean", float(h["val_auprc_mean"]), now, step),
            ]
            epoch_metrics += [
                Metric(f"val_auprc_{t}", float(v), now, step) for t, v in h["val_auprc"].items() if not math.isnan(v)
            ]
        final = [Metric(k, float(v), now, 0) for k, v in metrics.items() if not math.isnan(v)]
        client.log_batch(
            run_id, metrics=epoch_metrics + final, params=[Param(k, str(v)[:500]) for k, v in params.items()]
        )
        client.log_artifacts(run_id, str(model_dir), "model")
        client.set_terminated(run_id)
        source = f"{run.info.artifact_uri}/model"
    except Exception as e:
        raise TrackingError(
            f"logging training run {run_name} to {tracking_uri(settings)} failed: {type(e).__name__}: {e}"
        ) from e
    try:
        client.get_registered_model(REGISTERED_MODEL)
    except Exception as e:
        if not _is_not_found(e):
            raise _registry_error("registering the model", client, e) from e
        client.create_registered_model(REGISTERED_MODEL)
    score = float(metrics.get(SCORE_TAG, float("nan")))
    try:
        version = client.create_model_version(
            REGISTERED_MODEL, source=source, run_id=run_id, tags={SCORE_TAG: str(score), **tags}
        )
    except Exception as e:
        raise _registry_error("registering the model", client, e) from e
    champion = champion_version(client)
    champion_score = None if champion is None else float(champion.tags.get(SCORE_TAG, "nan"))
    promoted = promote and (champion_score is None or (not math.isnan(score) and score > champion_score))
    if promoted:
        client.set_registered_model_alias(REGISTERED_MODEL, CHAMPION, version.version)
    log.info(
        "tracked training run %s as %s/%s (%s)",
        run_name,
        REGISTERED_MODEL,
        version.version,
        "promoted to champion" if promoted else "not better than the champion",
        extra={"mlflow_run_id": run_id, "score": score, "champion_score": champion_score},
    )
    return LoggedModel(run_id, str(version.version), promoted, score, champion_score)


def champion_model_dir(
    settings: Settings, dest: Path | None = None, client: MlflowClient | None = None
) -> tuple[Path, str]:
    """Download the champion's model folder; returns (folder, version such as ``ringwatch-risk/3``).

    Raises:
        TrackingError: there is no champion yet, or the registry could not be read.
    """
    import mlflow.artifacts

    client = client or tracking_client(settings)
    version = champion_version(client)
    if version is None:
        raise TrackingError(
            f"no {CHAMPION!r} model in the registry at {tracking_uri(settings)}: run `ringwatch train` first"
        )
    dest = dest or Path(tempfile.mkdtemp(prefix="ringwatch-model-"))
    uri = tracking_uri(settings)
    path = mlflow.artifacts.download_artifacts(
        artifact_uri=version.source, dst_path=str(dest), tracking_uri=uri, registry_uri=uri
    )
    return Path(path), f"{REGISTERED_MODEL}/{version.version}"


def load_model(settings: Settings, model: str) -> tuple[RiskModel, str, Path]:
    """The model a job should use: ``"champion"`` (the registry's alias) or a model folder.

    Returns:
        (the model, its version — ``ringwatch-risk/<n>`` or the folder's name —, its folder).

    Raises:
        TrackingError: ``"champion"`` and there is none, or the registry could not be read.
        ModelError: the folder holds no model ringwatch can load.
    """
    from gnn.estimator import RiskModel

    if model == CHAMPION:
        folder, version = champion_model_dir(settings)
        return RiskModel.load(folder), version, folder
    path = Path(model)
    return RiskModel.load(path), path.name, path
