"""``ringwatch research``: the research workbench's commands (benchmarks on public fraud graphs)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from gnn.research.datasets import load_dataset, loaders
from gnn.research.protocol import PROTOCOLS, RESEARCH_CONFIG, run_bench
from graph.settings import load_settings
from serving.cli.console import human_output, print_json, progress_bar
from serving.cli.pipeline import JsonOption, checked

research_app = typer.Typer(help="Research workbench: the same models on public fraud graphs.", no_args_is_help=True)


@research_app.command()
def bench(
    dataset: Annotated[str, typer.Argument(help=f"Data set format: {', '.join(sorted(loaders()))}.")],
    path: Annotated[Path, typer.Option(help="The data set's file (or folder), as published.")],
    protocol: Annotated[str, typer.Option(help="semi (20+80 labelled nodes) or full (own splits or 40/20/40).")] = (
        "semi"
    ),
    seeds: Annotated[int, typer.Option(min=1, help="Seeds 0 … N-1; mean ± std over them.")] = 5,
    epochs: Annotated[int, typer.Option(min=1, help="Most GNN epochs (early stopping on validation).")] = (
        RESEARCH_CONFIG.epochs
    ),
    hidden: Annotated[int, typer.Option(min=1)] = RESEARCH_CONFIG.hidden,
    mlflow: Annotated[bool, typer.Option("--mlflow/--no-mlflow", help="Log to the `research` experiment.")] = True,
    as_json: JsonOption = False,
) -> None:
    """Benchmark GraphSAGE, the graph-boosted baseline, the shipped choice and a no-graph baseline on DATASET."""
    from dataclasses import replace

    out = human_output(as_json)
    if protocol not in PROTOCOLS:
        raise typer.BadParameter(f"--protocol must be one of {PROTOCOLS}, got {protocol!r}")
    ds = checked(lambda: load_dataset(dataset, path))
    config = replace(RESEARCH_CONFIG, epochs=epochs, hidden=hidden)
    with progress_bar(f"{ds.name} ({protocol})", out) as update:
        update("seeds", 0, seeds)
        result = checked(
            lambda: run_bench(ds, protocol, seeds, config, on_seed=lambda i, _: update("seeds", i + 1, seeds))
        )
    document = result.as_dict()
    if mlflow:
        from gnn.research.tracking import log_bench

        document["mlflow_run"] = log_bench(load_settings(), result)
    if as_json:
        print_json(document)
        return
    out.print(result.table())
    if mlflow:
        out.print(f"logged to MLflow experiment 'research', run {document['mlflow_run']}")
