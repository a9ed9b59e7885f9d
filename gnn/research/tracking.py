"""Benchmark results in MLflow: one run of the ``research`` experiment per data set and protocol.

The store is the project's (:func:`gnn.tracking.tracking_client`: the local SQLite file under the data folder,
or ``MLFLOW_TRACKING_URI``). A run holds the data set's summary and the GNN settings as parameters, each
model's mean and standard deviation of each metric as ``<model>.<metric>_mean`` / ``_std`` metrics, and the
whole result as ``result.json``.
"""

from __future__ import annotations

from gnn.research.protocol import BenchResult
from gnn.tracking import TrackingError, log_record_run, tracking_client, tracking_uri
from graph.settings import Settings

RESEARCH_EXPERIMENT = "research"


def log_bench(settings: Settings, result: BenchResult) -> str:
    """Log ``result`` as a run of :data:`RESEARCH_EXPERIMENT`; returns the MLflow run id.

    Raises:
        TrackingError: the store failed.
    """
    client = tracking_client(settings)
    name = f"{result.dataset['name']}-{result.protocol}"
    params = {
        "dataset": result.dataset["name"],
        "source": result.dataset["source"],
        "protocol": result.protocol,
        "seeds": len(result.seeds),
        **{f"config.{k}": v for k, v in result.config.items()},
    }
    metrics = {f"{model}.{key}": value for model, stats in result.summary().items() for key, value in stats.items()}
    metrics["peak_memory_mib"] = result.peak_memory_mib
    try:
        return log_record_run(
            client,
            settings,
            RESEARCH_EXPERIMENT,
            run_name=name,
            tags={"dataset": params["dataset"], "protocol": result.protocol},
            metrics=metrics,
            params=params,
            record=result.as_dict(),
            record_file="result.json",
        )
    except Exception as e:
        raise TrackingError(
            f"logging the benchmark {name} to {tracking_uri(settings)} failed: {type(e).__name__}: {e}"
        ) from e
