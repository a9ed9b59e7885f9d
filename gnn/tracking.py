"""Experiment tracking and the model registry (MLflow).

Local by default: a SQLite store and artifact folder under the data folder; ``MLFLOW_TRACKING_URI`` (read
through :class:`~graph.settings.Settings`) points elsewhere (a team server). Every training run logs its
parameters, per-epoch metrics, the model folder, the feature spec and the snapshot's content hash, and is
registered as a new version. A version becomes the ``champion`` (the alias scoring loads) only through the
validation gate (:mod:`gnn.gate`): automatically when its training run passes it, or by ``ringwatch promote``
(:mod:`serving.promotion`; ``--force`` overrides a failed gate). The gate's report is stored with the version
(``gate/gate_report.json`` in its run, ``gate_*`` metrics, ``gate`` and ``gate_reason`` tags); a promotion
records who, why, when, whether forced and the champion it replaced as version tags and in the run.

Everything goes through an ``MlflowClient`` built for the configured store: no process-wide tracking URI is
set. A registry that does not answer is an error (:class:`TrackingError`), never "there is no champion":
otherwise an unreachable server would make every new model the champion. Only the registry's own answer
"this model is not registered" (its error code, not its message) and a registered model without the
``champion`` alias (its alias table) mean "no champion yet".
"""

from __future__ import annotations

import getpass
import math
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from graph.errors import RingwatchError
from graph.logs import logger
from graph.settings import Settings

if TYPE_CHECKING:
    from mlflow import MlflowClient

    from gnn.estimator import RiskModel
    from gnn.gate import GateReport

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
    gate: str = "no gate run"


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


def experiment_id(client: MlflowClient, settings: Settings, name: str = EXPERIMENT) -> str:
    """The id of experiment ``name``, created on first use; with the local store its artifacts go under the
    data folder (not ``./mlruns`` of whatever folder the command ran in)."""
    exp = client.get_experiment_by_name(name)
    if exp is not None:
        return str(exp.experiment_id)
    artifacts = None
    if not settings.mlflow_tracking_uri:
        artifacts = (settings.data_dir.resolve() / "mlflow" / "artifacts").as_uri()
    return str(client.create_experiment(name, artifact_location=artifacts))


def log_record_run(
    client: MlflowClient,
    settings: Settings,
    experiment: str,
    *,
    run_name: str,
    tags: dict[str, str],
    metrics: dict[str, float],
    record: dict[str, Any],
    record_file: str,
    params: dict[str, Any] | None = None,
) -> str:
    """One finished MLflow run in ``experiment`` holding a record: its figures as metrics (NaNs left out),
    ``params``, and the record itself as the JSON artifact ``record_file``. Returns the MLflow run id; the
    caller turns a store failure into its own error."""
    from mlflow.entities import Metric, Param

    run = client.create_run(experiment_id(client, settings, experiment), run_name=run_name, tags=tags)
    now = int(time.time() * 1000)
    client.log_batch(
        run.info.run_id,
        metrics=[Metric(k, v, now, 0) for k, v in metrics.items() if not math.isnan(v)],
        params=[Param(k, str(v)[:500]) for k, v in (params or {}).items()],
    )
    client.log_dict(run.info.run_id, record, record_file)
    client.set_terminated(run.info.run_id)
    return str(run.info.run_id)


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
    gate: Callable[[str, Any | None], GateReport] | None = None,
) -> LoggedModel:
    """Log a finished training run, register the model, and promote it if it passes the validation gate.

    Args:
        settings: which tracking store (``MLFLOW_TRACKING_URI`` or the local one).
        model_dir: the saved model folder, logged as the run's ``model`` artifact.
        params: run parameters (values cut to 500 characters).
        history: per-epoch ``{"epoch", "loss", "val_auprc_mean", "val_auprc": {threat: value}}``.
        metrics: final metrics (``val_auprc_mean`` is also a model-version tag).
        tags: run and model-version tags.
        run_name: the training run id.
        client: a client to use instead of one built from ``settings``.
        promote: False registers the model without ever promoting it (a challenger, e.g. ``monitor --retrain``).
        gate: ``gate(version name, champion version or None)`` runs the validation gate
            (:func:`gnn.gate.validate_model`); its report is stored with the model (also when ``promote`` is
            False), and the model becomes the champion only when it passed. None: registered, never promoted.

    Raises:
        TrackingError: the store or the registry failed; the model is then never promoted.
    """
    from mlflow.entities import Metric, Param

    client = client or tracking_client(settings)
    try:
        run = client.create_run(experiment_id(client, settings), run_name=run_name, tags=tags)
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
    promoted, gate_summary = False, "no gate run"
    if gate is not None:
        report = gate(f"{REGISTERED_MODEL}/{version.version}", champion)
        record_gate(client, str(version.version), report)
        gate_summary = report.summary()
        if report.passed and promote:
            promote_version(
                client,
                str(version.version),
                by=promoter(None),
                reason=f"automatic: training run {run_name} passed the validation gate",
                forced=False,
            )
            promoted = True
    log.info(
        "tracked training run %s as %s/%s (%s)",
        run_name,
        REGISTERED_MODEL,
        version.version,
        "promoted to champion" if promoted else f"not promoted, gate {gate_summary}",
        extra={"mlflow_run_id": run_id, "score": score, "champion_score": champion_score},
    )
    return LoggedModel(run_id, str(version.version), promoted, score, champion_score, gate_summary)


GATE_REPORT_FILE = "gate/gate_report.json"
#: Experiment of the shadow comparisons (one MLflow run per scoring run with a challenger).
SHADOW_EXPERIMENT = "ringwatch-shadow"


def promoter(by: str | None) -> str:
    """Who is promoting: ``by`` when given, else the operating-system user of this process."""
    if by:
        return by
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no user name in the environment or the password database
        return "unknown"


def model_version(client: MlflowClient, model: str) -> Any:
    """The registry's version named by ``model``: ``champion``, ``ringwatch-risk/<n>`` or ``<n>``.

    Raises:
        TrackingError: no such version (or no champion), or the registry could not be read.
    """
    if model == CHAMPION:
        found = champion_version(client)
        if found is None:
            raise TrackingError(f"no {CHAMPION!r} model in the registry at {client.tracking_uri}")
        return found
    number = model.removeprefix(f"{REGISTERED_MODEL}/")
    if not number.isdigit():
        raise TrackingError(f"{model!r} names no model version: give 'champion', {REGISTERED_MODEL}/<n> or <n>")
    try:
        return client.get_model_version(REGISTERED_MODEL, number)
    except Exception as e:
        if _is_not_found(e):
            raise TrackingError(f"the registry has no {REGISTERED_MODEL}/{number}") from e
        raise _registry_error(f"reading {REGISTERED_MODEL}/{number}", client, e) from e


def record_gate(client: MlflowClient, version: str, report: GateReport) -> None:
    """Store a gate report with a model version: the JSON in its run, ``gate_*`` metrics, ``gate`` tags.

    Raises:
        TrackingError: the store did not take it.
    """
    from mlflow.entities import Metric

    try:
        found = client.get_model_version(REGISTERED_MODEL, version)
        run_of_version = str(found.run_id)
        now = int(time.time() * 1000)
        client.log_dict(run_of_version, report.as_dict(), GATE_REPORT_FILE)
        client.log_batch(run_of_version, metrics=[Metric(k, v, now, 0) for k, v in report.metrics().items()])
        for key, value in {
            "gate": "passed" if report.passed else "failed",
            "gate_reason": report.summary()[:4000],
            "gate_champion": report.champion_version or "none",
        }.items():
            client.set_model_version_tag(REGISTERED_MODEL, version, key, value)
    except Exception as e:
        raise _registry_error(f"storing the gate report of {REGISTERED_MODEL}/{version}", client, e) from e


def read_gate(client: MlflowClient, version: str) -> dict[str, Any] | None:
    """The gate report stored with a model version (:func:`record_gate`), None when it has none."""
    import json

    try:
        found = client.get_model_version(REGISTERED_MODEL, version)
        run_of_version = str(found.run_id)
        if "gate" not in (found.tags or {}):
            return None
        with tempfile.TemporaryDirectory(prefix="ringwatch-gate-") as tmp:
            path = client.download_artifacts(run_of_version, GATE_REPORT_FILE, tmp)
            return dict(json.loads(Path(path).read_text(encoding="utf-8")))
    except Exception as e:
        raise _registry_error(f"reading the gate report of {REGISTERED_MODEL}/{version}", client, e) from e


def promote_version(client: MlflowClient, version: str, *, by: str, reason: str, forced: bool) -> str | None:
    """Move the ``champion`` alias to ``version`` and record who, why, when and whether forced.

    The gate is the caller's (:func:`log_training_run`, :func:`serving.promotion.promote`); this only moves
    the alias and writes the record: ``promoted_*`` tags on the version and a ``promotion`` entry in its run.

    Returns:
        The version that was the champion before (None: there was none).

    Raises:
        TrackingError: the registry failed (then the champion is unchanged or the record is incomplete).
    """
    previous = champion_version(client)
    record = {
        "promoted_by": by,
        "promoted_reason": reason[:4000],
        "promoted_at": str(int(time.time() * 1000)),
        "promoted_forced": str(bool(forced)).lower(),
        "promoted_from": f"{REGISTERED_MODEL}/{previous.version}" if previous is not None else "none",
    }
    try:
        found = client.get_model_version(REGISTERED_MODEL, version)
        run_of_version = str(found.run_id)
        client.set_registered_model_alias(REGISTERED_MODEL, CHAMPION, version)
        for key, value in record.items():
            client.set_model_version_tag(REGISTERED_MODEL, version, key, value)
            client.set_tag(run_of_version, key, value)
        client.log_dict(run_of_version, record, f"promotions/{record['promoted_at']}.json")
    except Exception as e:
        raise _registry_error(f"promoting {REGISTERED_MODEL}/{version}", client, e) from e
    log.info(
        "%s/%s is the champion (by %s%s): %s",
        REGISTERED_MODEL,
        version,
        by,
        ", forced past the gate" if forced else "",
        reason,
        extra=record,
    )
    return None if previous is None else str(previous.version)


def log_shadow_comparison(
    settings: Settings, run_id: str, comparison: dict[str, Any], client: MlflowClient | None = None
) -> str:
    """Log a scoring run's champion/challenger comparison as an MLflow run of :data:`SHADOW_EXPERIMENT`.

    Returns:
        The MLflow run id.

    Raises:
        TrackingError: the store failed.
    """
    client = client or tracking_client(settings)
    numbers = {k: float(v) for k, v in comparison.items() if isinstance(v, int | float) and not isinstance(v, bool)}
    tags = {k: str(v) for k, v in comparison.items() if isinstance(v, str)}
    try:
        return log_record_run(
            client,
            settings,
            SHADOW_EXPERIMENT,
            run_name=run_id,
            tags={"scoring_run": run_id, **tags},
            metrics=numbers,
            record=comparison,
            record_file="comparison.json",
        )
    except Exception as e:
        raise TrackingError(
            f"logging the shadow comparison of {run_id} to {tracking_uri(settings)} failed: {type(e).__name__}: {e}"
        ) from e


def champion_model_dir(
    settings: Settings, dest: Path | None = None, client: MlflowClient | None = None
) -> tuple[Path, str]:
    """Download the champion's model folder; returns (folder, version such as ``ringwatch-risk/3``).

    Raises:
        TrackingError: there is no champion yet, or the registry could not be read.
    """
    client = client or tracking_client(settings)
    version = champion_version(client)
    if version is None:
        raise TrackingError(
            f"no {CHAMPION!r} model in the registry at {tracking_uri(settings)}: run `ringwatch train` first"
        )
    return download_version(settings, version, dest), f"{REGISTERED_MODEL}/{version.version}"


#: In a cached download (:func:`download_version`): the model folder's path inside it.
_CACHED_FOLDER = ".ringwatch-model-folder"


def download_version(settings: Settings, version: Any, dest: Path | None = None) -> Path:
    """A registered model version's folder, downloaded into ``dest`` when given.

    Otherwise from the data folder's cache, ``<data dir>/models/registry/<name>/<version>``: a version never
    changes, so each is downloaded once (into a temporary folder beside it, then renamed: a job reading it never
    sees half a download), and every later job reads that copy — a daily job used to leave a new temporary copy
    behind on every run.
    """
    import mlflow.artifacts

    uri = tracking_uri(settings)

    def fetch(into: Path) -> Path:
        return Path(
            mlflow.artifacts.download_artifacts(
                artifact_uri=version.source, dst_path=str(into), tracking_uri=uri, registry_uri=uri
            )
        )

    if dest is not None:
        return fetch(dest)
    cached = settings.data_dir.resolve() / "models" / "registry" / str(version.name) / str(version.version)
    if not (cached / _CACHED_FOLDER).exists():
        cached.parent.mkdir(parents=True, exist_ok=True)
        partial = Path(tempfile.mkdtemp(prefix=f".{version.version}-", dir=cached.parent))
        try:
            folder = fetch(partial)
            (partial / _CACHED_FOLDER).write_text(str(folder.relative_to(partial)), encoding="utf-8")
            partial.rename(cached)
        except OSError:
            if not (cached / _CACHED_FOLDER).exists():  # not another job's download that finished first
                raise
        finally:
            shutil.rmtree(partial, ignore_errors=True)
    return cached / (cached / _CACHED_FOLDER).read_text(encoding="utf-8")


def load_model(settings: Settings, model: str) -> tuple[RiskModel, str, Path]:
    """The model a job should use: ``"champion"`` (the registry's alias), ``ringwatch-risk/<n>``, or a model folder.

    Returns:
        (the model, its version — ``ringwatch-risk/<n>`` or the folder's name —, its folder).

    Raises:
        TrackingError: ``"champion"`` and there is none, no such version, or the registry could not be read.
        ModelError: the folder holds no model ringwatch can load.
    """
    from gnn.estimator import RiskModel

    if model == CHAMPION:
        folder, version = champion_model_dir(settings)
        return RiskModel.load(folder), version, folder
    if model.startswith(f"{REGISTERED_MODEL}/"):
        folder = download_version(settings, model_version(tracking_client(settings), model))
        return RiskModel.load(folder), model, folder
    path = Path(model)
    return RiskModel.load(path), path.name, path
