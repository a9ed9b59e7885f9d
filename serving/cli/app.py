"""The ``ringwatch`` command line: readable errors, non-zero exit codes, progress on long work."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Annotated

import click
import neo4j
import typer
from typer.exceptions import TyperException

from graph.errors import RingwatchError
from graph.local_server import LocalNeo4j
from graph.private_files import PRIVATE_UMASK
from graph.settings import Settings, load_settings
from serving.cli_support import open_graph
from serving.console import console, err_console, plain, safe
from serving.ring_grouping import GroupingPolicy

app = typer.Typer(
    name="ringwatch",
    help="Graph-based fraud-ring detection: exchange events → Neo4j graph → risk scores → rings.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
neo4j_app = typer.Typer(help="Run the local Neo4j server (ignored when NEO4J_URI points at your own).",
                        no_args_is_help=True)
app.add_typer(neo4j_app, name="neo4j")


@neo4j_app.command("start")
def neo4j_start(timeout: Annotated[float, typer.Option(help="Seconds to wait for Bolt to answer.")] = 180.0) -> None:
    """Install (first run only) and start the local Neo4j server on 127.0.0.1."""
    settings = load_settings()
    _refuse_external(settings, "start")
    server = LocalNeo4j.from_settings(settings, on_status=lambda m: console.print(f"[dim]{safe(m)}[/dim]"))
    server.start(timeout=timeout)  # installs the jars first when needed
    _print_status(server)


@neo4j_app.command("stop")
def neo4j_stop() -> None:
    """Stop the local Neo4j server (clean shutdown)."""
    settings = load_settings()
    _refuse_external(settings, "stop")
    if LocalNeo4j.from_settings(settings).stop():
        console.print("Neo4j stopped.")
    else:
        console.print("Neo4j was not running; nothing to stop.")


@neo4j_app.command("status")
def neo4j_status() -> None:
    """Say whether the local server runs (exit code 3 when it does not), which version, where, and where its
    password is."""
    settings = load_settings()
    if settings.uses_external_server:
        from graph.queries.inspect import server_components

        with open_graph(settings, start=False) as driver:
            records = server_components(driver)
        for r in records:
            console.print(f"external server {settings.neo4j_uri}: {r['name']} {r['version']} ({r['edition']})",
                          markup=False, highlight=False)
        return
    _print_status(LocalNeo4j.from_settings(settings))


def _print_status(server: LocalNeo4j) -> None:
    st = server.status()
    console.print("\n".join(plain(line) for line in st.describe().splitlines()), highlight=False, markup=False)
    if not st.running:
        raise typer.Exit(3)


def _refuse_external(settings: Settings, verb: str) -> None:
    if settings.uses_external_server:
        raise RingwatchError(f"NEO4J_URI is set ({settings.neo4j_uri}); ringwatch does not {verb} a server then")


@app.command()
def generate(
    out: Annotated[Path, typer.Option(help="Folder to write the tables and truth.csv into.")],
    accounts: Annotated[int, typer.Option(min=100, help="Number of accounts.")] = 10_000,
    seed: Annotated[int, typer.Option(help="Random seed (same seed, same exchange).")] = 7,
    fmt: Annotated[str, typer.Option("--format", help="parquet or csv.")] = "parquet",
) -> None:
    """Generate a synthetic exchange with planted fraud rings (and truth.csv, never ingested)."""
    from ingest.synthetic import generate_exchange

    with console.status("generating…") as status:
        summary = generate_exchange(accounts, seed, out, fmt=fmt, progress=lambda m: status.update(m))
    console.print(f"wrote {safe(out)} in {summary.seconds:.1f} s: "
                  + ", ".join(f"{k} {v}" for k, v in summary.row_counts.items()))
    console.print("planted rings: " + ", ".join(f"{k} {v}" for k, v in summary.rings.items()))


@app.command()
def ingest(
    folder: Annotated[Path, typer.Argument(help="Folder of exchange-event tables (.csv or .parquet).")],
    rejects: Annotated[Path | None, typer.Option(help="Where rejected rows and quality.json go.")] = None,
    batch_size: Annotated[int, typer.Option(min=1, help="Rows per write transaction (rounded up to whole "
                                                        "100-row ledger chunks).")] = 10_000,
    bulk: Annotated[bool, typer.Option(help="First load of an empty local database with neo4j-admin import.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the run report as JSON (only it on standard "
                                                         "output; progress and summary on standard error).")] = False,
) -> None:
    """Validate a folder of events and write it into the graph (idempotent, resumable)."""
    from serving.ingest_command import run_ingest

    settings = load_settings()
    report = run_ingest(settings, folder, rejects, batch_size, bulk, out=err_console if as_json else console)
    if as_json:
        print(json.dumps(report, default=str))


@app.command()
def snapshot(
    out: Annotated[Path, typer.Option(help="Snapshot folder to create.")],
    overwrite: Annotated[bool, typer.Option(help="Replace an existing snapshot.")] = False,
) -> None:
    """Export the graph (nodes, edges, features, labels, id maps) to Parquet plus a manifest."""
    from serving.snapshot_command import run_snapshot

    run_snapshot(load_settings(), out, overwrite=overwrite)


@app.command()
def train(
    snapshot_dir: Annotated[Path | None, typer.Option("--snapshot", help="Train on a snapshot instead of Neo4j.")] = None,
    epochs: Annotated[int, typer.Option(min=1)] = 30,
    hidden: Annotated[int, typer.Option(min=4)] = 64,
    sampling: Annotated[str, typer.Option(help="neighbor (mini-batches) or full (whole graph per step).")] = "neighbor",
    workers: Annotated[int, typer.Option(min=1, help="Ray Train workers.")] = 1,
    gpu: Annotated[bool | None, typer.Option("--gpu/--no-gpu", help="Default: use CUDA when present.")] = None,
    use_ray: Annotated[bool, typer.Option("--ray/--no-ray", help="Ray Train (default) or plain PyTorch.")] = True,
    seed: Annotated[int, typer.Option()] = 0,
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as JSON.")] = False,
) -> None:
    """Train GraphSAGE risk models (and the baseline) on the graph's known labels; track and promote."""
    from gnn.ray_train import RayConfig
    from gnn.train import TrainConfig
    from serving.train_command import run_train

    settings = load_settings()
    config = TrainConfig(epochs=epochs, hidden=hidden, sampling=sampling, seed=seed,
                         device=None if gpu is None else ("cuda" if gpu else "cpu"))
    ray = RayConfig(num_workers=workers, use_gpu=gpu, storage_path=settings.data_dir / "ray") if use_ray else None
    summary = run_train(settings, snapshot_dir, config, ray, quiet=as_json)
    if as_json:
        print(json.dumps(summary, default=float))


@app.command()
def evaluate(
    truth: Annotated[Path | None, typer.Option(help="truth.csv from `ringwatch generate`.")] = None,
    model: Annotated[str | None, typer.Option(help="Evaluate a model offline: 'champion' or a model folder. "
                                                   "Without it (and with --truth) the job's output in Neo4j "
                                                   "is evaluated.")] = None,
    snapshot_dir: Annotated[Path | None, typer.Option("--snapshot", help="Evaluate a model on a snapshot.")] = None,
    out: Annotated[Path | None, typer.Option(help="Folder for metrics.json and PR-curve pictures.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the metrics as one JSON object.")] = False,
) -> None:
    """Per-threat AUROC, AUPRC, Recall@K, FPR at the thresholds, and ring recall of the written output."""
    from serving.train_command import print_evaluation, run_evaluate

    settings = load_settings()
    if truth is not None and model is None and snapshot_dir is None:
        from ingest.read import read_truth
        from serving.output_evaluation import evaluate_output

        truth_frame = read_truth(truth)
        with open_graph(settings) as driver:
            result = evaluate_output(driver, settings.neo4j_database, truth_frame, out)
    else:
        result = run_evaluate(settings, model or "champion", snapshot_dir, truth, out)
    if as_json:
        print(json.dumps(result, default=float))
    else:
        print_evaluation(result)


@app.command()
def score(
    model: Annotated[str, typer.Option(help="'champion' (registry alias) or a model folder.")] = "champion",
    since: Annotated[str | None, typer.Option(help="Rescore only accounts with events since this ISO time "
                                                   "(and their neighbourhood).")] = None,
    batch_size: Annotated[int, typer.Option(min=1, help="Accounts per write transaction.")] = 5_000,
    new_run: Annotated[bool, typer.Option("--new-run", help="Start afresh instead of resuming an unfinished "
                                                            "run.")] = False,
    ray_actors: Annotated[int, typer.Option(min=0, help="Score with this many Ray Data actors (local Ray, or "
                                                        "RAY_ADDRESS); 0 scores in this process.")] = 0,
    fpr_target: Annotated[float | None, typer.Option(min=0.0, max=1.0,
                                                     help="Thresholds for this target account false-positive "
                                                          "rate (e.g. 0.01), instead of the model's.")] = None,
    budget: Annotated[int | None, typer.Option(min=0, help="Flag exactly this many accounts, the riskiest "
                                                           "(a review budget), instead of the model's "
                                                           "thresholds.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the run summary as JSON.")] = False,
) -> None:
    """Score every account and write scores, labels and reasons back (resumes an unfinished run)."""
    from gnn.thresholds import ThresholdPolicy
    from serving.score_command import run_score

    try:
        policy = ThresholdPolicy.from_options(fpr_target, budget)
    except ValueError as e:
        raise typer.BadParameter(str(e)) from e
    summary = run_score(load_settings(), model, since, batch_size, new_run, quiet=as_json, ray_actors=ray_actors,
                        policy=policy)
    if as_json:
        print(json.dumps(summary, default=str))


@app.command()
def rings(
    min_size: Annotated[int, typer.Option(min=2, help="Smallest group that is a ring.")] = GroupingPolicy.min_size,
    admit_share: Annotated[float, typer.Option(min=0.0, max=1.0,
                                               help="An account under its threshold is a candidate ring member "
                                                    "from this share of the threshold.")] = GroupingPolicy.admit_share,
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as JSON.")] = False,
) -> None:
    """Group risky accounts into rings through shared identifiers and money; flag ring members; write Rings."""
    from serving.rings_command import run_rings_command

    try:
        policy = GroupingPolicy(admit_share=admit_share, min_size=min_size)
    except ValueError as e:
        raise typer.BadParameter(str(e)) from e
    summary = run_rings_command(load_settings(), policy, quiet=as_json)
    if as_json:
        print(json.dumps(summary, default=str))


@app.command()
def investigate(
    account_id: Annotated[str, typer.Argument(help="The account to look at.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print the view as JSON.")] = False,
) -> None:
    """Why an account is flagged: risk, label, reasons, what it shares, its ring and members."""
    from serving.investigate import investigate as look, panel

    settings = load_settings()
    with open_graph(settings) as driver:
        view = look(driver, settings.neo4j_database, account_id)
    if as_json:
        print(json.dumps(view, default=str))
    else:
        console.print(panel(view))


@app.command()
def verdict(
    account_id: Annotated[str, typer.Argument(help="The account.")],
    decision: Annotated[str, typer.Argument(metavar="confirmed|false_positive", help="The verdict.")],
    note: Annotated[str, typer.Option(help="Why (kept with the verdict).")] = "",
    threat: Annotated[str | None, typer.Option(help="For confirmed: the threat (default: the account's label).")] = None,
    by: Annotated[str | None, typer.Option(help="Who decided (default: your user name).")] = None,
) -> None:
    """Record an investigator's verdict; the next training run uses it as a label."""
    from serving.verdict import record_verdict

    settings = load_settings()
    with open_graph(settings) as driver:
        result = record_verdict(driver, settings.neo4j_database, account_id, decision, note, by, threat)
    console.print(f"recorded {safe(decision)} for {safe(result['account_id'])} (threat {safe(result['threat'])}, "
                  f"label at the time {safe(result['risk_label'])}) at {safe(result['at'])}; the next "
                  "`ringwatch train` uses it")


@app.command("query-pack")
def query_pack(
    out: Annotated[Path | None, typer.Option(help="Write one .cypher file per query here (Browser favourites).")] = None,
) -> None:
    """Print the investigator query pack (or write it as Browser favourites)."""
    from graph.queries.investigator import PACK, pack_file

    if out is None:
        print(pack_file(), end="")
        return
    out.mkdir(parents=True, exist_ok=True)
    for i, q in enumerate(PACK, 1):
        (out / f"{i:02d}-{q.name}.cypher").write_text(q.as_file(), encoding="utf-8")
    console.print(f"wrote {len(PACK)} queries to {safe(out)}; drag them onto Neo4j Browser's Favorites drawer")


@app.command()
def report(
    out: Annotated[Path, typer.Option(help="Folder for index.html and the ring pictures (created if missing).")],
    top: Annotated[int, typer.Option(min=1, help="How many rings to show (highest score first).")] = 20,
    metrics: Annotated[Path | None, typer.Option(help="metrics.json from `ringwatch evaluate --out`.")] = None,
) -> None:
    """Write a self-contained HTML report of the top rings: pictures, members, evidence, run metrics."""
    from serving.report import build_report, read_metrics

    if metrics is not None:
        read_metrics(metrics)  # a wrong file fails here, before a local Neo4j is started
    settings = load_settings()
    with open_graph(settings) as driver, console.status("building the report…"):
        index = build_report(driver, settings.neo4j_database, out, top=top, metrics_file=metrics)
    console.print(f"report: {index.resolve().as_uri()}", markup=False, highlight=False, soft_wrap=True)


@app.command()
def demo(
    accounts: Annotated[int, typer.Option(min=100, help="Accounts in the generated exchange.")] = 20_000,
    seed: Annotated[int, typer.Option(help="Random seed.")] = 7,
    out: Annotated[Path, typer.Option(help="Working folder for the demo's data.")] = Path("demo"),
    epochs: Annotated[int, typer.Option(min=1, help="Training epochs (early stopping may end sooner).")] = 15,
    reset: Annotated[bool, typer.Option("--reset", help="Empty the database first.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Also print the demo's figures as JSON.")] = False,
) -> None:
    """The whole job: start Neo4j, generate, ingest, train, score, rings, report, evaluate; print where to look."""
    from serving.demo import run_demo

    figures = run_demo(load_settings(), accounts, seed, out, epochs, reset)
    if as_json:
        print(json.dumps(figures, default=float))


def main() -> None:
    """Entry point: readable errors and exit codes instead of tracebacks.

    Files the commands create are owner-only (umask 077): reject files, snapshots, models, reports and the local
    server's store all hold users' data.
    """
    os.umask(PRIVATE_UMASK)
    try:
        code = app(standalone_mode=False)
    except RingwatchError as e:
        err_console.print(f"[bold red]error:[/bold red] {safe(e)}")
        sys.exit(1)
    except typer.Exit as e:
        sys.exit(e.exit_code)
    except (click.ClickException, TyperException) as e:
        # typer bundles its own click: its usage errors are TyperExceptions, not click's ClickException.
        show = getattr(e, "show", None)
        if show is None:
            raise
        show()
        sys.exit(getattr(e, "exit_code", 2))
    except typer.Abort:
        err_console.print("aborted")
        sys.exit(130)
    except KeyboardInterrupt:
        err_console.print("interrupted; rerun the same command to resume")
        sys.exit(130)
    except neo4j.exceptions.Neo4jError as e:
        err_console.print(f"[bold red]Neo4j error:[/bold red] {safe(e.message)} ({safe(e.code)})")
        sys.exit(1)
    except (neo4j.exceptions.ServiceUnavailable, neo4j.exceptions.SessionExpired) as e:
        err_console.print(f"[bold red]Neo4j unavailable:[/bold red] {safe(e)}")
        sys.exit(1)
    except Exception as e:  # a bug, not a user error: still one readable line, traceback on request
        if os.environ.get("RINGWATCH_DEBUG"):
            raise
        err_console.print(f"[bold red]unexpected error[/bold red] ({type(e).__name__}): {safe(e)}\n"
                          "rerun with RINGWATCH_DEBUG=1 for the traceback, and please report it")
        sys.exit(2)
    # Without standalone mode, click returns a command's exit code (typer.Exit) instead of exiting with it.
    if isinstance(code, int) and code:
        sys.exit(code)
