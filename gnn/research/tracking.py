"""Benchmark results in MLflow: one run of the ``research`` experiment per data set and protocol.

The store is the project's (:func:`gnn.tracking.tracking_client`: the local SQLite file under the data folder,
or ``MLFLOW_TRACKING_URI``). A run holds the data set's summary and the GNN settings as parameters, each
model's mean and standard deviation of each metric as ``<model>.<metric>_mean`` / ``_std`` metrics, and the
whole result as ``result.json``.
"""

from __future__ import annotations

import math
import time

from gnn.research.protocol import BenchResult
from gnn.tracking import TrackingError, tracking_client, tracking_uri
from graph.settings import Settings

RESEARCH_EXPERIMENT = "research"


def log_bench(settings: Settings, result: BenchResult) -> str:
    """Log ``result`` as a run of :data:`RESEARCH_EXPERIMENT`; returns the MLflow run id.

    Raises:
        TrackingError: the store failed.
    """
    from mlflow.entities import Metric, Param

    client = tracking_client(settings)
    name = f"{result.dataset['name']}-{result.protocol}"
    params = {
        "dataset": result.dataset["name"],
        "source": result.dataset["source"],
        "protocol": result.protocol,
        "seeds": len(result.seeds),
        **{f"config.{k}": v for k, v in result.config.items()},
    }
    now = int(time.time() * 1000)
    metrics = [
        Metric(f"{model}.{key}", value, now, 0)
        for model, stats in result.summary().items()
        for key, value in stats.items()
        if not math.isnan(value)
    ]
    metrics.append(Metric("peak_memory_mib", result.peak_memory_mib, now, 0))
    try:
        exp = client.get_experiment_by_name(RESEARCH_EXPERIMENT)
        exp_id = exp.experiment_id if exp is not None else client.create_experiment(RESEARCH_EXPERIMENT)
        run = client.create_run(
            str(exp_id), run_name=name, tags={"dataset": params["dataset"], "protocol": result.protocol}
        )
        client.log_batch(run.info.run_id, metrics=metrics, params=[Param(k, str(v)[:500]) for k, v in params.items()])
        client.log_dict(run.info.run_id, result.as_dict(), "result.json")
        client.set_terminated(run.info.run_id)
    except Exception as e:
        raise TrackingError(
            f"logging the benchmark {name} to {tracking_uri(settings)} failed: {type(e).__name__}: {e}"
        ) from e
    return str(run.info.run_id)
