"""The investigator's commands: investigate, verdict, query-pack, report, erase."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from graph import schema as s
from graph.settings import load_settings
from serving.cli import show
from serving.cli.console import console, human_output, print_json, safe
from serving.cli.graph_access import open_graph
from serving.cli.pipeline import JsonOption
from serving.report import TOP_RINGS


def investigate(
    account_id: Annotated[str, typer.Argument(help="The account to look at.")],
    as_json: JsonOption = False,
) -> None:
    """Why an account is flagged: risk, label, reasons, what it shares, its ring and members."""
    from serving.investigate import investigate as look
    from serving.investigate import panel

    settings = load_settings()
    with open_graph(settings, out=human_output(as_json)) as driver:
        view = look(driver, settings.neo4j_database, account_id)
    if as_json:
        print_json(view)
    else:
        console.print(panel(view))


def verdict(
    account_id: Annotated[str, typer.Argument(help="The account.")],
    decision: Annotated[str, typer.Argument(metavar="|".join(s.VERDICTS), help="The verdict.")],
    note: Annotated[str, typer.Option(help="Why (kept with the verdict).")] = "",
    threat: Annotated[
        str | None, typer.Option(help="For confirmed: the threat (default: the account's label).")
    ] = None,
    by: Annotated[str | None, typer.Option(help="Who decided (default: your user name).")] = None,
) -> None:
    """Record an investigator's verdict; the next training run uses it as a label."""
    from serving.verdict import record_verdict

    settings = load_settings()
    with open_graph(settings) as driver:
        result = record_verdict(driver, settings.neo4j_database, account_id, decision, note, by, threat)
    console.print(
        f"recorded {safe(decision)} for {safe(result['account_id'])} (threat {safe(result['threat'])}, "
        f"label at the time {safe(result['risk_label'])}) at {safe(result['at'])}; the next "
        "`ringwatch train` uses it"
    )


def query_pack(
    out: Annotated[
        Path | None, typer.Option(help="Write one .cypher file per query here (Browser favourites).")
    ] = None,
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


def report(
    out: Annotated[Path, typer.Option(help="Folder for index.html and the ring pictures (created if missing).")],
    top: Annotated[int, typer.Option(min=1, help="How many rings to show (highest score first).")] = TOP_RINGS,
    metrics: Annotated[Path | None, typer.Option(help="metrics.json from `ringwatch evaluate --out`.")] = None,
) -> None:
    """Write a self-contained HTML report of the top rings: pictures, members, evidence, run metrics."""
    from serving.promotion import gate_report_of
    from serving.report import build_report, read_metrics

    if metrics is not None:
        read_metrics(metrics)  # a wrong file fails here, before a local Neo4j is started
    settings = load_settings()
    with open_graph(settings) as driver, console.status("building the report…"):
        index = build_report(
            driver,
            settings.neo4j_database,
            out,
            top=top,
            metrics_file=metrics,
            gate_of=lambda version: gate_report_of(settings, version),
        )
    console.print(f"report: {index.resolve().as_uri()}", markup=False, highlight=False, soft_wrap=True)


def erase(
    account_id: Annotated[str, typer.Argument(help="The account to erase.")],
    reason: Annotated[str, typer.Option(help="Why (kept on the tombstone), e.g. the request's reference.")] = "",
    snapshot: Annotated[
        list[Path] | None,
        typer.Option(help="A further snapshot folder to clean (repeatable); those under the data folder always are."),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Erase an account's personal data (GDPR Art. 17): graph, snapshots, scoring plans; keep a tombstone."""
    from serving.erasure import erase as erase_account

    settings = load_settings()
    out = human_output(as_json)
    with open_graph(settings, out=out) as driver:
        result = erase_account(settings, driver, account_id, reason, snapshot or ())
    show.erasure(out, account_id, result)
    if as_json:
        print_json(result.as_dict())
