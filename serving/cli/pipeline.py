"""The pipeline's commands: generate, ingest, snapshot, train, evaluate, score, promote, rings, demo.

Each parses its options (ranges and defaults from the library's own constants and validators), opens what it
needs, calls its stage's entry point, and prints the result — to standard error when ``--json`` reserves
standard output for the JSON document.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console

from gnn.ray_train import RayConfig
from gnn.snapshot import read_snapshot
from gnn.snapshot_job import SnapshotSummary, graph_source, take_snapshot
from gnn.thresholds import ThresholdPolicy
from gnn.tracking import CHAMPION
from gnn.train import TrainConfig
from graph.runs import Progress
from graph.settings import Settings, load_settings
from ingest.load import CHUNK_ROWS
from ingest.load import DEFAULT_BATCH_SIZE as INGEST_BATCH_SIZE
from ingest.synthetic import DEFAULT_ACCOUNTS, DEFAULT_SEED, FORMATS, MIN_ACCOUNTS
from ingest.synthetic.drift import DRIFTS
from serving.cli import show
from serving.cli.console import console, human_output, print_json, progress_bar
from serving.cli.graph_access import open_graph
from serving.demo import DEMO_ACCOUNTS, DEMO_EPOCHS, DEMO_SEED
from serving.ring_grouping import GroupingPolicy
from serving.score import DEFAULT_BATCH_SIZE as SCORE_BATCH_SIZE

T = TypeVar("T")
JsonOption = Annotated[
    bool,
    typer.Option(
        "--json",
        help="Print the result as one JSON document on standard output (everything else goes to standard error).",
    ),
]


def checked(build: Callable[[], T]) -> T:
    """``build()``, with a library's ``ValueError`` about an argument shown as a usage error (exit code 2)."""
    try:
        return build()
    except ValueError as e:
        raise typer.BadParameter(str(e)) from e


@contextmanager
def _bar(title: str, out: Console) -> Iterator[Progress]:
    with progress_bar(title, out) as update:
        yield update


def generate(
    out: Annotated[Path, typer.Option(help="Folder to write the tables and truth.csv into.")],
    accounts: Annotated[int, typer.Option(min=MIN_ACCOUNTS, help="Number of accounts.")] = DEFAULT_ACCOUNTS,
    seed: Annotated[int, typer.Option(min=0, help="Random seed (same seed, same exchange).")] = DEFAULT_SEED,
    fmt: Annotated[str, typer.Option("--format", help=" or ".join(FORMATS) + ".")] = FORMATS[0],
    drift: Annotated[
        str | None,
        typer.Option(help="Shift distributions on purpose, for monitoring tests: " + ", ".join(DRIFTS) + "."),
    ] = None,
) -> None:
    """Generate a synthetic exchange with planted fraud rings (and truth.csv, never ingested)."""
    from ingest.synthetic import generate_exchange

    if fmt not in FORMATS:
        raise typer.BadParameter(f"--format must be one of {', '.join(FORMATS)}, got {fmt!r}")
    with console.status("generating…") as status:
        summary = checked(lambda: generate_exchange(accounts, seed, out, fmt=fmt, progress=status.update, drift=drift))
    show.generation(console, out, summary)


def ingest(
    folder: Annotated[Path, typer.Argument(help="Folder of exchange-event tables (.csv or .parquet).")],
    rejects: Annotated[Path | None, typer.Option(help="Where rejected rows and quality.json go.")] = None,
    batch_size: Annotated[
        int,
        typer.Option(min=1, help=f"Rows per write transaction (rounded up to whole {CHUNK_ROWS}-row ledger chunks)."),
    ] = INGEST_BATCH_SIZE,
    bulk: Annotated[bool, typer.Option(help="First load of an empty local database with neo4j-admin import.")] = False,
    snapshot_out: Annotated[
        Path | None,
        typer.Option(
            "--snapshot",
            help="With --bulk: also write the training snapshot here, from the loaded rows (no export).",
        ),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Validate a folder of events and write it into the graph (idempotent, resumable)."""
    from gnn.export import graph_fingerprint
    from gnn.snapshot_job import snapshot_from_rows
    from ingest.job import ingest_with_settings

    if snapshot_out is not None and not bulk:
        raise typer.BadParameter("--snapshot goes with --bulk (a first load); otherwise use `ringwatch snapshot`")
    settings = load_settings()
    out = human_output(as_json)
    with open_graph(settings, out=out) as driver, _bar("ingest", out) as progress:
        report = ingest_with_settings(
            settings,
            driver,
            folder,
            rejects,
            batch_size,
            bulk,
            progress=progress,
            on_bulk_loaded=None
            if snapshot_out is None
            else lambda run: show.snapshot(
                out,
                snapshot_from_rows(
                    run.graph_rows,
                    snapshot_out,
                    source=graph_source(settings),
                    fingerprint=graph_fingerprint(driver, settings.neo4j_database),
                ),
            ),
        )
    show.ingestion(out, report)
    if as_json:
        print_json(report.as_dict())


def _snapshot(
    settings: Settings,
    out_dir: Path,
    out: Console,
    overwrite: bool = False,
    accounts: Path | None = None,
    ring: str | None = None,
    hops: int = 2,
) -> SnapshotSummary:
    from gnn.export import ring_accounts

    with open_graph(settings, out=out) as driver, _bar("export", out) as progress:
        chosen = None
        if accounts is not None:
            chosen = [line.strip() for line in accounts.read_text(encoding="utf-8").splitlines() if line.strip()]
        if ring is not None:
            chosen = (chosen or []) + ring_accounts(driver, settings.neo4j_database, ring)
        summary = take_snapshot(
            driver,
            settings.neo4j_database,
            out_dir,
            source=graph_source(settings),
            overwrite=overwrite,
            progress=progress,
            accounts=chosen,
            hops=hops,
        )
    show.snapshot(out, summary)
    return summary


def snapshot(
    out: Annotated[Path, typer.Option(help="Snapshot folder to create.")],
    overwrite: Annotated[bool, typer.Option(help="Replace an existing snapshot.")] = False,
    accounts: Annotated[
        Path | None,
        typer.Option(exists=True, dir_okay=False, help="Only the neighbourhood of these accounts (one id a line)."),
    ] = None,
    ring: Annotated[str | None, typer.Option(help="Only the neighbourhood of this ring's members.")] = None,
    hops: Annotated[int, typer.Option(min=0, help="Neighbourhood radius with --accounts / --ring.")] = 2,
    as_json: JsonOption = False,
) -> None:
    """Export the graph (nodes, edges, features, labels, id maps) to Parquet plus a manifest; with --accounts or
    --ring, only their neighbourhood within --hops hops (an investigation as a research data set)."""
    summary = _snapshot(load_settings(), out, human_output(as_json), overwrite, accounts, ring, hops)
    if as_json:
        print_json(summary.as_dict())


def _snapshot_or_fresh(settings: Settings, snapshot_dir: Path | None, out: Console) -> Path:
    """The given snapshot, or a fresh one of the configured graph under the data folder."""
    if snapshot_dir is not None:
        return snapshot_dir
    fresh = settings.data_dir.resolve() / "snapshots" / time.strftime("%Y%m%dT%H%M%S")
    _snapshot(settings, fresh, out)
    return fresh


def train(
    snapshot_dir: Annotated[
        Path | None, typer.Option("--snapshot", help="Train on a snapshot instead of Neo4j.")
    ] = None,
    epochs: Annotated[int, typer.Option(min=1)] = TrainConfig.epochs,
    hidden: Annotated[int, typer.Option(min=1)] = TrainConfig.hidden,
    sampling: Annotated[str, typer.Option(help="neighbor (mini-batches) or full (whole graph per step).")] = (
        TrainConfig.sampling
    ),
    workers: Annotated[int, typer.Option(min=1, help="Ray Train workers.")] = RayConfig.num_workers,
    gpu: Annotated[bool | None, typer.Option("--gpu/--no-gpu", help="Default: use CUDA when present.")] = None,
    use_ray: Annotated[bool, typer.Option("--ray/--no-ray", help="Ray Train (default) or plain PyTorch.")] = True,
    seed: Annotated[int, typer.Option(min=0)] = TrainConfig.seed,
    as_json: JsonOption = False,
) -> None:
    """Train GraphSAGE risk models (and the baseline) on the graph's known labels; track and promote."""
    from gnn.training_job import train_on_snapshot

    settings = load_settings()
    out = human_output(as_json)
    config = checked(
        lambda: TrainConfig(
            epochs=epochs,
            hidden=hidden,
            sampling=sampling,
            seed=seed,
            device=None if gpu is None else ("cuda" if gpu else "cpu"),
        )
    )
    ray = (
        RayConfig(
            num_workers=workers, use_gpu=gpu, storage_path=settings.data_dir / "ray", address=settings.ray_address
        )
        if use_ray
        else None
    )
    folder = _snapshot_or_fresh(settings, snapshot_dir, out)

    def epoch_line(epoch: Any) -> None:
        aps = ", ".join(f"{k} {v:.3f}" for k, v in epoch.val_auprc.items())
        out.print(f"epoch {epoch.epoch:3d}  loss {epoch.loss:.4f}  val AUPRC {aps}  ({epoch.seconds:.1f} s)")

    with out.status("training (Ray Train)…" if ray else "training…"):
        summary = train_on_snapshot(settings, folder, config, ray, on_epoch=epoch_line)
    show.training(out, summary)
    if as_json:
        print_json(summary.as_dict())


def evaluate(
    truth: Annotated[Path | None, typer.Option(help="truth.csv from `ringwatch generate`.")] = None,
    model: Annotated[
        str | None,
        typer.Option(
            help="Evaluate a model offline: 'champion' or a model folder. "
            "Without it (and with --truth) the job's output in Neo4j "
            "is evaluated."
        ),
    ] = None,
    snapshot_dir: Annotated[Path | None, typer.Option("--snapshot", help="Evaluate a model on a snapshot.")] = None,
    out_dir: Annotated[
        Path | None, typer.Option("--out", help="Folder for metrics.json and PR-curve pictures.")
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Per-threat AUROC, AUPRC, Recall@K, FPR at the thresholds, and ring recall of the written output."""
    from gnn.evaluation import evaluate_saved_model
    from gnn.tracking import load_model
    from ingest.read import read_truth
    from serving.output_evaluation import evaluate_output

    settings = load_settings()
    out = human_output(as_json)
    truth_frame = read_truth(truth) if truth is not None else None  # a bad file fails before Neo4j starts
    if truth_frame is not None and model is None and snapshot_dir is None:
        with open_graph(settings, out=out) as driver:
            result = evaluate_output(driver, settings.neo4j_database, truth_frame, out_dir)
    else:
        risk_model, version, _ = load_model(settings, model or CHAMPION)
        graph = read_snapshot(_snapshot_or_fresh(settings, snapshot_dir, out))
        with out.status("scoring…"):
            result = evaluate_saved_model(risk_model, version, graph, truth_frame, out_dir)
    show.evaluation(out, result)
    if as_json:
        print_json(result)


def score(
    model: Annotated[str, typer.Option(help="'champion' (registry alias) or a model folder.")] = CHAMPION,
    since: Annotated[
        str | None,
        typer.Option(help="Rescore only accounts with events since this ISO time (and their neighbourhood)."),
    ] = None,
    batch_size: Annotated[int, typer.Option(min=1, help="Accounts per write transaction.")] = SCORE_BATCH_SIZE,
    new_run: Annotated[
        bool, typer.Option("--new-run", help="Start afresh instead of resuming an unfinished run.")
    ] = False,
    ray_actors: Annotated[
        int,
        typer.Option(
            min=0, help="Score with this many Ray Data actors (local Ray, or RAY_ADDRESS); 0 scores in this process."
        ),
    ] = 0,
    fpr_target: Annotated[
        float | None,
        typer.Option(
            min=0.0,
            max=1.0,
            help="Thresholds for this target account false-positive rate (e.g. 0.01), instead of the model's.",
        ),
    ] = None,
    budget: Annotated[
        int | None,
        typer.Option(
            min=0,
            help="Flag exactly this many accounts, the riskiest (a review budget), instead of the model's thresholds.",
        ),
    ] = None,
    challenger: Annotated[
        str | None,
        typer.Option(
            help="Also score with this model in shadow (ringwatch-risk/<n> or a folder): its scores go to "
            "challenger_* properties and never change risk labels or rings; the comparison is stored per run.",
        ),
    ] = None,
    snapshot_dir: Annotated[
        Path | None,
        typer.Option(
            "--snapshot",
            help="The snapshot the model was trained on: scored instead of exporting the graph again when no "
            "ringwatch command has changed the graph since it was taken.",
        ),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Score every account and write scores, labels and reasons back (resumes an unfinished run)."""
    from serving.scoring_job import run_scoring

    settings = load_settings()
    out = human_output(as_json)
    policy = checked(lambda: ThresholdPolicy.from_options(fpr_target, budget))
    with open_graph(settings, out=out) as driver, _bar("scoring", out) as progress:
        summary = run_scoring(
            settings,
            driver,
            model,
            since,
            batch_size,
            new_run,
            ray_actors,
            policy,
            progress,
            challenger=challenger,
            snapshot=snapshot_dir,
        )
    show.scoring(out, summary)
    if as_json:
        print_json(summary.as_dict())


def promote(
    model: Annotated[str, typer.Argument(help="The registered version to promote: ringwatch-risk/<n> or <n>.")],
    reason: Annotated[str, typer.Option(help="Why (recorded in MLflow and the graph; required with --force).")] = "",
    by: Annotated[str | None, typer.Option(help="Who decides (default: your user name).")] = None,
    force: Annotated[
        bool, typer.Option("--force", help="Promote even when the validation gate fails (recorded, with --reason).")
    ] = False,
    truth: Annotated[
        Path | None, typer.Option(help="Run the gate against truth.csv from `ringwatch generate` instead of labels.")
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Make a model version the champion — only if it passes the validation gate (or --force, recorded)."""
    from ingest.read import read_truth
    from serving.promotion import promote as run_promotion

    settings = load_settings()
    out = human_output(as_json)
    truth_frame = read_truth(truth) if truth is not None else None
    with open_graph(settings, out=out) as driver, _bar("validation gate", out) as progress:
        result = checked(
            lambda: run_promotion(
                settings, driver, model, reason=reason, by=by, force=force, truth=truth_frame, progress=progress
            )
        )
    show.promotion(out, result)
    if as_json:
        print_json(result.as_dict())


def rings(
    min_size: Annotated[int, typer.Option(min=2, help="Smallest group that is a ring.")] = GroupingPolicy.min_size,
    admit_share: Annotated[
        float,
        typer.Option(
            min=0.0,
            max=1.0,
            help="An account under its threshold is a candidate ring member from this share of the threshold.",
        ),
    ] = GroupingPolicy.admit_share,
    as_json: JsonOption = False,
) -> None:
    """Group risky accounts into rings through shared identifiers and money; flag ring members; write Rings."""
    from serving.rings import run_rings

    settings = load_settings()
    out = human_output(as_json)
    policy = checked(lambda: GroupingPolicy(admit_share=admit_share, min_size=min_size))
    with open_graph(settings, out=out) as driver, out.status("grouping risky accounts into rings…"):
        summary = run_rings(driver, settings.neo4j_database, policy)
    show.rings(out, summary)
    if as_json:
        print_json(summary)


def demo(
    accounts: Annotated[int, typer.Option(min=MIN_ACCOUNTS, help="Accounts in the generated exchange.")] = (
        DEMO_ACCOUNTS
    ),
    seed: Annotated[int, typer.Option(min=0, help="Random seed.")] = DEMO_SEED,
    out_dir: Annotated[Path, typer.Option("--out", help="Working folder for the demo's data.")] = Path("demo"),
    epochs: Annotated[int, typer.Option(min=1, help="Training epochs (early stopping may end sooner).")] = (
        DEMO_EPOCHS
    ),
    reset: Annotated[bool, typer.Option("--reset", help="Empty the database first.")] = False,
    as_json: JsonOption = False,
) -> None:
    """The whole job: start Neo4j, generate, ingest, train, score, rings, report, evaluate; print where to look."""
    from serving.demo import run_demo

    settings = load_settings()
    out = human_output(as_json)
    with open_graph(settings, out=out) as driver, _bar("demo", out) as progress:
        result = run_demo(
            settings,
            driver,
            accounts,
            seed,
            out_dir,
            epochs,
            reset,
            progress,
            on_stage=lambda stage, value: show.demo_stage(out, stage, value),
        )
    show.demo(out, result)
    if as_json:
        print_json(result.figures)


__all__ = ["demo", "evaluate", "generate", "ingest", "promote", "rings", "score", "snapshot", "train"]
