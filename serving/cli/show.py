"""How the command line shows each stage's result: tables and summary lines (never JSON; see ``--json``).

Everything from the data goes through :func:`~serving.cli.console.safe` (markup strings) or is passed with
``markup=False``; see :mod:`serving.cli.console`.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from rich.console import Console
from rich.panel import Panel
from rich.table import Table

from gnn.snapshot_job import SnapshotSummary
from gnn.thresholds import describe_thresholds
from gnn.training_job import TrainingSummary
from graph import schema as s
from ingest.job import IngestReport
from ingest.synthetic import GenerationSummary
from serving.cli.console import safe
from serving.demo import DemoResult
from serving.erasure import ErasureResult
from serving.scoring_job import ScoringSummary


def generation(out: Console, folder: object, summary: GenerationSummary) -> None:
    """``ringwatch generate``: what was written and the planted rings."""
    out.print(
        f"wrote {safe(folder)} in {summary.seconds:.1f} s: "
        + ", ".join(f"{k} {v}" for k, v in summary.row_counts.items())
    )
    out.print("planted rings: " + ", ".join(f"{k} {v}" for k, v in summary.rings.items()))


def ingestion(out: Console, report: IngestReport) -> None:
    """``ringwatch ingest``: per table read / accepted / rejected, outliers, ledger chunks, erased rows."""
    table = Table(title=f"ingested {safe(report.folder)}", show_lines=False)
    for column in ("table", "read", "accepted", "rejected", "top reject reason"):
        table.add_column(column, justify="right" if column in ("read", "accepted", "rejected") else "left")
    for name, stats in report.quality["tables"].items():
        reasons = stats["reject_reasons"]
        top = max(reasons, key=reasons.get) if reasons else ""
        table.add_row(name, str(stats["read"]), str(stats["accepted"]), str(stats["rejected"]), safe(top))
    out.print(table)
    ok = "[green]every row accounted for[/green]" if report.accounted_for else "[red]rows unaccounted for![/red]"
    out.print(
        f"{ok}; {report.quality['unknown_account_references']} referenced account(s) not in this "
        "folder's accounts table (kept as stub accounts unless already in the graph)"
    )
    flagged = {k: v["flagged"] for k, v in report.quality["outliers"].items() if v["flagged"]}
    if flagged:
        out.print("outliers flagged: " + ", ".join(f"{k}={v}" for k, v in flagged.items()))
    if report.erased_rows:
        out.print(
            "[yellow]skipped rows of erased accounts[/yellow]: "
            + ", ".join(f"{k} {v}" for k, v in report.erased_rows.items())
        )
    chunks = report.chunks
    out.print(
        f"ledger chunks ({chunks['rows_each']} rows each): {chunks['written']} written, {chunks['skipped']} "
        f"already committed (skipped), {report.seconds:.1f} s"
    )
    out.print(f"rejects and quality.json: {safe(report.rejects_dir)}")


def snapshot(out: Console, summary: SnapshotSummary) -> None:
    """``ringwatch snapshot``: counts and features per type, content hash."""
    table = Table(title=f"snapshot {safe(summary.snapshot)}")
    for column in ("type", "count", "features"):
        table.add_column(column, justify="left" if column == "type" else "right")
    for label, n in summary.nodes.items():
        table.add_row(label, str(n), str(summary.features.get(label, "")))
    for rel_type, n in summary.edges.items():
        table.add_row(rel_type, str(n), "")
    out.print(table)
    out.print(
        f"source {safe(summary.source)}; content hash {summary.content_hash[:16]}…; "
        f"reference time {summary.reference_time}; {summary.labelled_accounts} labelled accounts"
    )


def training(out: Console, summary: TrainingSummary) -> None:
    """``ringwatch train``: validation AUPRC per source, the shipped choice, test metrics, promotion."""
    table = Table(title=f"{summary.run} — validation AUPRC and the shipped choice")
    for column in ("threat", "gnn", "baseline", "ensemble", "shipped", "test AUPRC", "test AUROC"):
        table.add_column(column)
    for threat in s.THREATS:
        v = summary.validation[threat]["auprc"]
        t = summary.test["threats"][threat]
        table.add_row(
            threat,
            *(f"{v.get(src, float('nan')):.3f}" for src in ("gnn", "baseline", "ensemble")),
            summary.choice[threat],
            f"{t['auprc']:.3f}",
            f"{t['auroc']:.3f}",
        )
    out.print(table)
    if summary.tracking:
        verdict = (
            "promoted to [bold]champion[/bold]"
            if summary.tracking["promoted"]
            else f"not promoted (validation gate {safe(summary.tracking.get('gate', 'not run'))})"
        )
        out.print(f"registered {summary.model_version} (MLflow run {summary.tracking['run_id']}): {verdict}")
        if summary.gate:
            gate_report(out, summary.gate)
    out.print(f"model folder: {safe(summary.model_dir)}")


def evaluation(out: Console, result: dict[str, Any]) -> None:
    """``ringwatch evaluate``: per-threat metrics, account FPR, ring recall, files written."""
    table = Table(
        title=f"{safe(result['model_version'])} on {result['evaluated_accounts']:,} accounts ({safe(result['scope'])})"
    )
    for column in ("threat", "AUROC", "AUPRC", "base rate", "Recall@K", "precision", "recall", "FPR", "ECE"):
        table.add_column(column, justify="right" if column != "threat" else "left")
    for threat, m in {**result["threats"], "overall": result["overall"]}.items():
        ece = m.get("calibration", {}).get("ece", float("nan"))
        table.add_row(
            threat,
            *(f"{m[k]:.3f}" for k in ("auroc", "auprc", "base_rate", "recall_at_k", "precision", "recall", "fpr")),
            f"{ece:.3f}",
        )
    out.print(table)
    if "account_fpr" in result["overall"]:
        out.print(f"account false-positive rate at the written labels: {result['overall']['account_fpr']:.4f}")
    rings = result.get("rings")
    if rings:
        kinds = ", ".join(f"{k} {v['recovered']}/{v['planted']}" for k, v in rings["by_kind"].items())
        out.print(
            f"rings: {rings['recovered']} of {rings['planted']} planted rings recovered "
            f"(≥{rings['share_required']:.0%} of members flagged in one detected ring) → recall "
            f"{rings['recall']:.3f} ({kinds}); {rings['detected']} detected, purity {rings['purity']:.2f}"
        )
        if "unlabelled_rings" in rings:
            u = rings["unlabelled_rings"]
            out.print(f"rings with no labelled member: {u['recovered']} found / {u['planted']} planted")
    for f in result.get("files", []):
        out.print(f"wrote {safe(f)}")


def scoring(out: Console, summary: ScoringSummary) -> None:
    """``ringwatch score``: accounts per label, batches written, label changes, thresholds."""
    if summary.resumed:
        out.print(f"resumed unfinished scoring run {safe(summary.run_id)}; committed batches were skipped")
    table = Table(title=f"scoring run {safe(summary.run_id)} — model {safe(summary.model_version)}")
    table.add_column("label")
    table.add_column("accounts", justify="right")
    for label in (*s.THREATS, s.CLEAR):
        table.add_row(label, f"{summary.labels.get(label, 0):,}")
    out.print(table)
    o = summary.outcome
    out.print(
        f"wrote {o['written']:,} accounts in {o['batches']} batches ({o['written_now']} now, "
        f"{o['already_committed']} already committed); {o['label_changes']:,} labels changed since the "
        f"previous run; plan in {safe(summary.plan)}"
    )
    if summary.graph_from and summary.graph_from != "export":
        out.print(f"scored the graph as snapshot {safe(summary.graph_from)} holds it (unchanged since; no export)")
    if summary.policy:
        out.print(f"thresholds: {safe(summary.policy)} → {describe_thresholds(summary.thresholds)}")
    if summary.challenger:
        shadow(out, summary.challenger)


def shadow(out: Console, comparison: dict[str, Any]) -> None:
    """The champion/challenger comparison of a scoring run (``ringwatch score --challenger``)."""

    def pct(v: Any) -> str:
        return "—" if v is None or v != v else f"{100 * v:.1f} %"

    out.print(
        f"challenger {safe(comparison['challenger_model_version'])} in shadow (its scores in challenger_*; "
        f"risk labels and rings are the champion's): score correlation {comparison['score_correlation']:.3f}, "
        f"flagged {comparison['champion_flagged']:,} vs {comparison['challenger_flagged']:,}, overlap "
        f"{pct(comparison['flagged_overlap'])}, {comparison['disagreements']:,} disagreements; precision on them "
        f"(verdicts and known labels): champion {pct(comparison['champion_precision_on_disagreements'])} of "
        f"{comparison['champion_judged']}, challenger {pct(comparison['challenger_precision_on_disagreements'])} "
        f"of {comparison['challenger_judged']}"
    )


def gate_report(out: Console, gate: dict[str, Any]) -> None:
    """A validation gate's report: per-threat checks, the bias test's worst groups, and why it failed."""
    from gnn.bias import worst_group

    table = Table(
        title=f"validation gate of {safe(gate['model_version'])} — {'passed' if gate['passed'] else 'FAILED'}"
    )
    for column in ("threat", "AUPRC", "champion AUPRC", "ECE", "positives"):
        table.add_column(column, justify="left" if column == "threat" else "right")
    for threat, m in gate["threats"].items():
        table.add_row(
            threat,
            f"{m['auprc']:.3f}",
            "—" if m["champion_auprc"] != m["champion_auprc"] else f"{m['champion_auprc']:.3f}",
            f"{m['ece']:.4f}",
            str(m["positives"]),
        )
    out.print(table)
    overall = gate["bias"]["overall"]
    worst = worst_group(gate["bias"])
    line = (
        f"bias test on {gate['evaluated_accounts']:,} accounts ({safe(gate['labels'])}): "
        f"overall FPR {100 * overall['fpr']:.2f} %"
    )
    if worst is not None:
        line += (
            f"; worst judged group {safe(worst['attribute'])}={safe(worst['group'])} FPR {100 * worst['fpr']:.2f} % "
            f"({worst['fpr_ratio']:.2f} × overall; flagged-rate ratio {worst['flagged_rate_ratio']:.2f})"
        )
    out.print(line)
    for reason in gate["reasons"]:
        out.print(f"[red]gate:[/red] {safe(reason)}")


def promotion(out: Console, result: Any) -> None:
    """``ringwatch promote``: the outcome, who and why, and the gate's report."""
    gate_report(out, result.gate)
    forced = " [yellow](forced past a failed gate)[/yellow]" if result.outcome == "forced" else ""
    out.print(
        f"{safe(result.model_version)} is the champion{forced} (was {safe(result.previous_champion or 'none')}); "
        f"by {safe(result.by)}: {safe(result.reason)}; audit record {safe(result.promotion_id)}"
    )


def rings(out: Console, summary: dict[str, Any], limit: int = 10) -> None:
    """``ringwatch rings``: the top rings and the grouping's counts."""
    table = Table(
        title=f"top rings of {summary['rings']:,} ({safe(summary['rings_run_id'])}, from "
        f"{safe(summary['scoring_run_id'])})"
    )
    for column in ("ring", "kind", "size", "score", "active", "evidence"):
        table.add_column(column, justify="right" if column in ("size", "score") else "left")
    for ring in summary["top"][:limit]:
        span = (
            f"{datetime.fromtimestamp(ring['first_seen'] / 1000, UTC):%Y-%m-%d} → "
            f"{datetime.fromtimestamp(ring['last_seen'] / 1000, UTC):%Y-%m-%d}"
        )
        table.add_row(
            safe(ring["ring_id"]),
            safe(ring["kind"]),
            str(ring["size"]),
            f"{ring['score']:.3f}",
            span,
            safe(ring["evidence"]),
        )  # evidence names shared identifiers: data, not markup
    out.print(table)
    out.print(
        f"{summary['candidates']:,} candidates ({summary['flagged_accounts']:,} flagged on their own score) "
        f"→ {summary['rings']:,} rings ({summary['ring_members']:,} members, {summary['admitted']:,} of them "
        f"flagged as ring members; {summary['kept_ids']} kept their id, {summary['new']} new, "
        f"{summary['retired']} retired) in {summary['seconds']} s"
    )


def erasure(out: Console, account_id: str, result: ErasureResult) -> None:
    """``ringwatch erase``: what was removed, and that the tombstone stays."""
    if result.already_erased and not result.account_deleted:
        out.print(f"{safe(account_id)} was already erased; nothing left to remove")
        return
    what = "deleted from the graph" if result.account_deleted else "not in the graph (tombstone recorded)"
    ids = ", ".join(f"{k} {v}" for k, v in sorted(result.identifiers.items())) or "none"
    out.print(
        f"erased {safe(account_id)}: {what}; identifiers only it used deleted: {ids}; {result.verdicts} "
        f"verdict(s) deleted; taken out of {result.rings} ring(s); {len(result.snapshots)} snapshot(s) "
        f"rewritten, {len(result.plans)} scoring plan(s) cleaned"
    )
    out.print(
        "a tombstone (keyed hash of the id) keeps later ingestion from bringing it back; the next "
        "`ringwatch score` and `ringwatch rings` recompute without it"
    )


def demo_stage(out: Console, stage: str, result: Any) -> None:
    """One stage of ``ringwatch demo`` as it ends."""
    if stage == "start" and result and result.get("emptied"):
        out.print(f"emptied the database ({result['emptied']:,} nodes)")
    elif stage == "generate":
        out.print(
            f"generated an exchange ({result.seconds:.1f} s): planted rings "
            + ", ".join(f"{k} {v}" for k, v in result.rings.items())
        )
    elif stage == "ingest":
        ingestion(out, result)
    elif stage == "snapshot":
        snapshot(out, result)
    elif stage == "train":
        training(out, result)
    elif stage == "score":
        scoring(out, result)
    elif stage == "rings":
        rings(out, result)
    elif stage == "evaluate":
        evaluation(out, result)


def demo(out: Console, result: DemoResult) -> None:
    """Where to look after ``ringwatch demo``."""
    lines = [f"[bold]{what}[/bold]: {safe(where)}" for what, where in result.where]
    out.print(Panel("\n".join(lines), title=f"ringwatch demo — ingest run {safe(result.ingest_run)}", expand=False))
