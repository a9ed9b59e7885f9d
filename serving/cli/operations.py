"""The operations commands: monitor (drift, efficacy, alerts, retraining trigger) and dashboard."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from graph.settings import load_settings
from serving.cli.console import console, err_console, human_output, print_json, safe
from serving.cli.graph_access import open_graph
from serving.cli.pipeline import JsonOption

if TYPE_CHECKING:
    from serving.monitor.job import MonitorOutcome
    from serving.monitor.retrain import RetrainOutcome

ALERT_EXIT = 3


def monitor(
    run: Annotated[
        str | None, typer.Option("--run", help="The scoring run to monitor (default: the newest saved).")
    ] = None,
    config: Annotated[
        Path | None, typer.Option(help="TOML/JSON file overriding alert rules and retraining policy.")
    ] = None,
    fail_on_alert: Annotated[
        bool, typer.Option("--fail-on-alert", help=f"Exit with code {ALERT_EXIT} when any alert was raised.")
    ] = False,
    retrain: Annotated[
        bool, typer.Option("--retrain", help="Train a challenger (registered, not promoted) if the policy says so.")
    ] = False,
    as_json: JsonOption = False,
) -> None:
    """Monitor a scoring run: feature and score drift, flagged share, churn, verdict precision, data quality;
    raise alerts (Neo4j, alert log, webhook) and write Prometheus metrics."""
    from serving.monitor.config import load_config
    from serving.monitor.job import run_monitor
    from serving.monitor.retrain import retrain_if_needed

    settings = load_settings()
    rules = load_config(config or settings.monitor_config)  # a malformed file fails before anything runs
    out = human_output(as_json)
    with open_graph(settings, out=out) as driver:
        with out.status("monitoring…"):
            outcome = run_monitor(settings, driver, run, rules)
        retrained = None
        if retrain:
            out.print("checking the retraining policy (a challenger is trained when it says so)…")
            retrained = retrain_if_needed(settings, driver, outcome.record, rules.retrain)
    record = outcome.record
    if as_json:
        print_json({**outcome.as_dict(), "retrain": retrained.as_dict() if retrained else None})
    else:
        _show(outcome, retrained)
    if fail_on_alert and record.alerts:
        err_console.print(f"{len(record.alerts)} alert(s) raised: exit code {ALERT_EXIT}")
        raise typer.Exit(ALERT_EXIT)


def _show(outcome: MonitorOutcome, retrained: RetrainOutcome | None) -> None:
    record = outcome.record
    console.print(
        f"monitored scoring run {safe(record.scoring_run_id)} ({record.accounts:,} accounts, model "
        f"{safe(record.model_version)}) as {safe(record.run_id)}"
    )
    for reference, drifts in record.feature_drift.items():
        top = ", ".join(f"{safe(d['name'])} {d['psi']:.3f}" for d in drifts[:5])
        console.print(f"  feature PSI vs {reference}: {top}")
    for reference, drifts in record.score_drift.items():
        console.print(f"  score PSI vs {reference}: " + ", ".join(f"{safe(d['name'])} {d['psi']:.3f}" for d in drifts))
    console.print("  flagged share: " + ", ".join(f"{t} {v:.4f}" for t, v in record.flagged_share.items()))
    if not record.references.get("previous run"):
        console.print("  [dim]no previous scoring run: drift against it starts with the next run[/dim]")
    for a in record.alerts:
        colour = "red" if a["severity"] == "critical" else "yellow"
        console.print(
            f"  [{colour}]{a['severity']}[/{colour}] {safe(a['rule'])} {safe(a['subject'])}: {safe(a['message'])}"
        )
    console.print(f"  {len(record.alerts)} alert(s); webhook: {safe(record.delivery)}")
    if outcome.metrics_file:
        console.print(f"  metrics: {safe(outcome.metrics_file)}", highlight=False)
    if retrained is not None:
        if retrained.trained:
            console.print(
                f"  retrained ({safe('; '.join(retrained.reasons))}): {safe(retrained.trained['model_version'])} "
                "registered as a challenger, not promoted"
            )
        else:
            console.print("  no retraining needed (no drift alert, few new verdicts, champion recent)")


def dashboard(
    port: Annotated[int, typer.Option(min=1, max=65535, help="Port on 127.0.0.1.")] = 8050,
) -> None:
    """Serve the stakeholders' dashboard on 127.0.0.1: efficacy, drift, data quality, alerts, model versions."""
    import uvicorn

    from graph.driver import build_driver
    from serving.monitor.dashboard import create_app

    settings = load_settings()
    driver = build_driver(settings)
    console.print(f"dashboard on http://127.0.0.1:{port}/ (Ctrl-C stops it)", highlight=False)
    try:
        uvicorn.run(create_app(settings, lambda: driver), host="127.0.0.1", port=port, log_level="warning")
    finally:
        driver.close()
