"""``ringwatch report``: a self-contained HTML page of the top rings, for investigators.

The page (``<out>/index.html``) carries its own CSS and pictures (SVG as ``data:`` URIs), so it can be
mailed or attached to a case as one file; the pictures are also written to ``<out>/rings/``. It shows:

* the latest completed scoring run (model, accounts scored, flagged, label changes, rings, when) and, given
  the ``metrics.json`` of ``ringwatch evaluate --out``, the model's per-threat metrics and its ``rings`` block;
* model governance: the latest run's champion/challenger comparison (when a challenger scored in shadow),
  the validation gate's report of each of the two model versions (per threat; FPR per country and KYC level),
  and the promotion audit trail;
* a table of contents of the top active rings (highest score, then size);
* per ring: kind, size, score, active span, first detection, the evidence summary, a picture of its
  subgraph (members coloured by risk score, the identifiers two or more of them share, transfers and
  referrals among them), a member table, and the shared identifiers and money links behind the picture.

Every value read from the graph or the metrics file goes through :func:`html.escape` (account ids and
identifier keys are user data) and is drawn with mathtext off.
"""

from __future__ import annotations

import base64
import html
import json
import math
import re
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

import neo4j

from gnn.feature_defs import DAY_MS
from gnn.thresholds import describe_thresholds
from graph import schema as s
from graph.errors import RingwatchError
from graph.supernodes import EVIDENCE_CAP
from serving.promotion import promotions
from serving.ring_picture import IDENTIFIER_NAMES, SUPERNODES_DRAWN_UP_TO, draw_ring
from serving.ring_view import RingView, read_rings
from serving.score import latest_completed_run

PICTURES_DIR = "rings"
INDEX_FILE = "index.html"
#: Reasons shown per member in the table (the graph keeps up to five).
REASONS_SHOWN = 3


class ReportError(RingwatchError):
    """The report cannot be built (unreadable metrics file, unwritable folder)."""


#: Rings shown by default (highest score first).
TOP_RINGS: Final = 20


def read_metrics(path: Path) -> dict[str, Any]:
    """The ``metrics.json`` written by ``ringwatch evaluate --out``.

    Raises:
        ReportError: the file is missing, not JSON, or has no per-threat metrics.
    """
    try:
        metrics = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as e:
        raise ReportError(
            f"metrics file {path} not found; pass the metrics.json that `ringwatch evaluate --out DIR` writes"
        ) from e
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ReportError(f"cannot read metrics file {path}: {e}") from e
    if not isinstance(metrics, dict) or not isinstance(metrics.get("threats"), dict):
        raise ReportError(f"{path} is not a metrics.json of `ringwatch evaluate` (it has no 'threats' block)")
    return metrics


# --- HTML -----------------------------------------------------------------------------------------------


def _e(value: Any) -> str:
    return html.escape("" if value is None else str(value), quote=True)


def _num(value: Any, digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    if isinstance(value, bool) or not isinstance(value, int | float):
        return _e(value)
    return f"{value:,}" if isinstance(value, int) else f"{value:,.{digits}f}"


def _time(ms: Any, fmt: str = "%Y-%m-%d %H:%M UTC") -> str:
    return "—" if ms is None else datetime.fromtimestamp(ms / 1000, UTC).strftime(fmt)


def _table(header: list[str], rows: list[list[str]], cls: str = "", row_cls: str = "") -> str:
    head = "".join(f"<th>{h}</th>" for h in header)
    tr = f'<tr class="{row_cls}">' if row_cls else "<tr>"
    body = "".join(tr + "".join(f"<td>{c}</td>" for c in row) + "</tr>\n" for row in rows)
    return f'<table class="{cls}"><thead><tr>{head}</tr></thead><tbody>\n{body}</tbody></table>'


def _run_section(run: dict[str, Any] | None, rings: list[RingView], total: int) -> str:
    if run is None:
        return '<p class="note">No completed scoring run in the graph: run <code>ringwatch score</code>.</p>'
    started, finished = run.get("started_at"), run.get("finished_at")
    seconds = (finished - started) / 1000 if started is not None and finished is not None else None
    facts = [
        ("scoring run", _e(run.get("run_id"))),
        ("model version", _e(run.get("model_version"))),
        ("accounts scored", _num(run.get("written", run.get("accounts")))),
        ("flagged on their own score", _num(run.get("flagged"))),
        ("flagged as ring members", _num(run.get("ring_admitted"))),
        (
            "thresholds",
            _e(
                f"{run.get('policy') or 'the model’s'}: "
                + describe_thresholds({t: run.get(f"threshold_{t}") for t in s.THREATS})
            ),
        ),
        ("label changes", _num(run.get("label_changes"))),
        ("rings", _num(run.get("rings", total))),
        ("finished", _time(run.get("finished_at"))),
        ("run time", "—" if seconds is None else f"{seconds:,.1f} s"),
    ]
    out = '<dl class="facts">' + "".join(f"<dt>{k}</dt><dd>{v}</dd>" for k, v in facts) + "</dl>"
    other = sorted({str(r.props.get("scoring_run_id")) for r in rings} - {str(run.get("run_id"))})
    if other:
        out += (
            f'<p class="note">Some rings were grouped from another scoring run ({_e(", ".join(other))}); '
            "rerun <code>ringwatch rings</code> to group the latest scores.</p>"
        )
    return out


def _flatten(block: dict[str, Any], prefix: str = "") -> list[tuple[str, Any]]:
    rows: list[tuple[str, Any]] = []
    for key, value in block.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            rows += _flatten(value, f"{name}.")
        else:
            rows.append((name, value if not isinstance(value, list) else json.dumps(value, default=str)[:200]))
    return rows


def _metrics_section(metrics: dict[str, Any] | None) -> str:
    if metrics is None:
        return ""
    columns = [
        ("auroc", "AUROC"),
        ("auprc", "AUPRC"),
        ("recall_at_k", "Recall@K"),
        ("precision", "precision"),
        ("recall", "recall"),
        ("fpr", "FPR"),
        ("threshold", "threshold"),
        ("positives", "positives"),
    ]
    threats = {**metrics["threats"], **({"overall": metrics["overall"]} if "overall" in metrics else {})}
    rows = [[_e(t), *(_num(m.get(k)) if isinstance(m, dict) else "—" for k, _ in columns)] for t, m in threats.items()]
    out = (
        f"<h2>Model evaluation</h2><p>{_e(metrics.get('model_version'))} on "
        f"{_num(metrics.get('evaluated_accounts'))} accounts ({_e(metrics.get('scope'))})</p>"
        + _table(["threat", *(h for _, h in columns)], rows, "metrics")
    )
    if isinstance(metrics.get("rings"), dict):
        rows = [[_e(k), _num(v)] for k, v in _flatten(metrics["rings"])]
        out += "<h3>Rings</h3>" + _table(["measure", "value"], rows, "metrics")
    return out


def _pct(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    return f"{100 * float(value):.2f} %"


def _gate_block(version: str, gate: dict[str, Any]) -> str:
    """One model version's gate report: verdict, per-threat checks, FPR per country and KYC level, reasons."""
    state = "passed" if gate.get("passed") else "failed"
    bias = gate.get("bias", {})
    overall = bias.get("overall", {})
    out = (
        f"<h3>Validation gate of {_e(version)}: {_e(state)}</h3><p>against {_e(gate.get('champion_version'))}, "
        f"{_num(gate.get('evaluated_accounts'))} accounts ({_e(gate.get('labels'))}); overall false-positive rate "
        f"{_pct(overall.get('fpr'))}, flagged rate {_pct(overall.get('flagged_rate'))}</p>"
    )
    rows = [
        [_e(t), _num(m.get("auprc")), _num(m.get("champion_auprc")), _num(m.get("ece"), 4), _e(m.get("positives"))]
        for t, m in gate.get("threats", {}).items()
    ]
    out += _table(["threat", "AUPRC", "champion AUPRC", "ECE", "positives"], rows, "metrics")
    for attribute in ("country", "kyc_level"):
        groups = [g for g in bias.get("groups", {}).get(attribute, []) if g.get("judged")][:10]
        rows = [
            [
                _e(g["group"]),
                _num(g["benign"]),
                _num(g["false_positives"]),
                _pct(g["fpr"]),
                _pct(g["fpr_lower"]),
                _num(g["fpr_ratio"], 2),
                _num(g["flagged_rate_ratio"], 2),
            ]
            for g in groups
        ]
        if rows:
            head = [attribute, "benign", "false positives", "FPR", "FPR lower bound", "FPR ratio", "flagged ratio"]
            out += _table(head, rows, "metrics")
    out += "".join(f'<p class="note">{_e(r)}</p>' for r in gate.get("reasons", []))
    return out


def _governance_section(
    run: dict[str, Any] | None, promotions: list[dict[str, Any]], gates: dict[str, dict[str, Any]]
) -> str:
    """Champion vs challenger (the latest run's shadow comparison), the gates' reports, the promotions."""
    shadow = {k.removeprefix("shadow_"): v for k, v in (run or {}).items() if k.startswith("shadow_")}
    if not (shadow or promotions or gates):
        return ""
    out = "<h2>Model governance</h2>"
    if shadow:
        facts = [
            ("champion", run.get("model_version") if run else None),
            ("challenger (shadow)", shadow.get("challenger_model_version")),
            ("score correlation", _num(shadow.get("score_correlation"))),
            (
                "flagged: champion / challenger / both",
                f"{_num(shadow.get('champion_flagged'))} / "
                f"{_num(shadow.get('challenger_flagged'))} / {_num(shadow.get('both_flagged'))}",
            ),
            ("flagged overlap", _pct(shadow.get("flagged_overlap"))),
            ("disagreements", _num(shadow.get("disagreements"))),
            (
                "champion precision on them",
                f"{_pct(shadow.get('champion_precision_on_disagreements'))} "
                f"of {_num(shadow.get('champion_judged'))} judged",
            ),
            (
                "challenger precision on them",
                f"{_pct(shadow.get('challenger_precision_on_disagreements'))} "
                f"of {_num(shadow.get('challenger_judged'))} judged",
            ),
        ]
        out += (
            '<dl class="facts">'
            + "".join(
                f"<dt>{_e(k)}</dt><dd>{v if k not in ('champion', 'challenger (shadow)') else _e(v)}</dd>"
                for k, v in facts
            )
            + "</dl>"
        )
    for version, gate in gates.items():
        out += _gate_block(version, gate)
    if promotions:
        rows = [
            [
                _e(p.get("at")),
                _e(p.get("model_version")),
                _e(p.get("outcome")),
                _e(p.get("by")),
                _e(p.get("reason")),
                _e(p.get("gate")),
            ]
            for p in promotions[:10]
        ]
        out += "<h3>Promotions</h3>" + _table(["when", "model", "outcome", "by", "why", "gate"], rows, "metrics")
    return out


def _toc(rings: list[RingView]) -> str:
    rows = [
        [
            f'<a href="#ring-{i}">{_e(r.ring_id)}</a>',
            _e(r.props.get("kind")),
            _num(r.props.get("size")),
            _num(r.props.get("score")),
            _e(r.props.get("evidence")),
        ]
        for i, r in enumerate(rings, 1)
    ]
    return "<h2>Top rings</h2>" + _table(["ring", "kind", "size", "score", "evidence"], rows, "toc")


def _member_rows(ring: RingView) -> list[list[str]]:
    rows = []
    for m in ring.members:
        known = " / ".join(_e(x) for x in (m.known_label, m.verdict) if x) or "—"
        reasons = "".join(f"<li>{_e(r)}</li>" for r in m.reasons[:REASONS_SHOWN])
        rows.append(
            [
                f"<code>{_e(m.account_id)}</code>",
                f'<span class="label {_e(m.risk_label)}">{_e(m.risk_label)}</span>',
                _num(m.risk_score),
                *(_num(m.scores.get(t)) for t in s.THREATS),
                known,
                f'<span class="nowrap">{_time(m.created_at, "%Y-%m-%d")}</span>',
                f"<ul>{reasons}</ul>" if reasons else "—",
            ]
        )
    return rows


def _caption(ring: RingView) -> str:
    text = (
        "Members are circles coloured by risk score; diamonds are identifiers two or more of them share, "
        "with the number of accounts using each in all; arrows are transfers and referrals."
    )
    supers = sum(i.users > EVIDENCE_CAP for i in ring.identifiers)
    if supers and len(ring.members) > SUPERNODES_DRAWN_UP_TO:
        text += f" {supers} super-node identifiers (over {EVIDENCE_CAP} users) are listed below but not drawn."
    return text


def render_ring(ring: RingView, rank: int, picture: str, picture_file: str | None = None) -> str:
    """The HTML section of one ring; ``picture`` is the ``src`` of its picture (a ``data:`` URI), and
    ``picture_file`` the picture's path relative to the page, linked for a full-size view."""
    p = ring.props
    span_days = (p["last_seen"] - p["first_seen"]) / DAY_MS if p.get("first_seen") and p.get("last_seen") else None
    facts = [
        ("kind", _e(p.get("kind"))),
        ("size", _num(p.get("size"))),
        ("score", _num(p.get("score"))),
        (
            "active",
            f"{_time(p.get('first_seen'), '%Y-%m-%d')} → {_time(p.get('last_seen'), '%Y-%m-%d')}"
            + ("" if span_days is None else f" ({span_days:,.0f} days)"),
        ),
        ("first detected", _time(p.get("first_detected"))),
        ("last detected", _time(p.get("last_detected"))),
        ("known fraud", _num(p.get("known_fraud"))),
        ("scoring run", _e(p.get("scoring_run_id"))),
    ]
    idents = [
        [
            _e(IDENTIFIER_NAMES.get(i.label, i.label)),
            f"<code>{_e(i.key)}</code>",
            _num(len(i.members)),
            _num(i.users) + (" (super-node: links nobody)" if i.users > EVIDENCE_CAP else ""),
        ]
        for i in ring.identifiers
    ]
    links = [
        [
            f"<code>{_e(x.src)}</code>",
            f"<code>{_e(x.dst)}</code>",
            _e(x.type),
            _e(x.asset) or "—",
            _num(x.count),
            _num(x.total, 2),
        ]
        for x in ring.links
    ]
    header = ["account", "label", "risk", *s.THREATS, "known / verdict", "created", "top reasons"]
    return (
        f'<section class="ring" id="ring-{rank}" data-ring-id="{_e(ring.ring_id)}">\n'
        f'<h2>{rank}. Ring <code>{_e(ring.ring_id)}</code> <a class="top" href="#top">↑ top</a></h2>\n'
        '<dl class="facts">' + "".join(f"<dt>{k}</dt><dd>{v}</dd>" for k, v in facts) + "</dl>\n"
        f'<p class="evidence"><b>Evidence:</b> {_e(p.get("evidence"))}</p>\n'
        f'<img class="picture" src="{picture}" alt="subgraph of ring {_e(ring.ring_id)}">\n'
        f'<p class="muted">{_caption(ring)}'
        + (f' Full size: <a href="{_e(picture_file)}">{_e(picture_file)}</a>.' if picture_file else "")
        + "</p>\n"
        f"<h3>Members ({len(ring.members)})</h3>\n"
        + _table(header, _member_rows(ring), "members", row_cls="member")
        + (
            f"\n<h3>Shared identifiers ({len(idents)})</h3>\n"
            + _table(["kind", "key", "members using it", "users in all"], idents, "idents")
            if idents
            else ""
        )
        + (
            f"\n<h3>Transfers and referrals among members ({len(links)})</h3>\n"
            + _table(["from", "to", "type", "asset", "count", "total"], links, "links")
            if links
            else ""
        )
        + "\n</section>\n"
    )


_CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0 auto;max-width:1200px;
 padding:1.5rem 2rem;color:#222;line-height:1.4}
h1{margin-bottom:.2rem}h2{margin-top:2rem;border-bottom:2px solid #ddd;padding-bottom:.2rem}
code{font-family:ui-monospace,Menlo,Consolas,monospace;font-size:.9em;overflow-wrap:anywhere}
table.toc td:first-child,.nowrap{white-space:nowrap}
table.members td:first-child{min-width:9em}table.members td:last-child{min-width:24em}
td ul{overflow-wrap:anywhere}
table{border-collapse:collapse;margin:.6rem 0;font-size:.85rem;width:100%}
th,td{border:1px solid #ddd;padding:.25rem .45rem;text-align:left;vertical-align:top}
th{background:#f3f3f3}tbody tr:nth-child(even){background:#fafafa}
td ul{margin:0;padding-left:1rem}
dl.facts{display:grid;grid-template-columns:max-content 1fr max-content 1fr;gap:.2rem 1rem;margin:.5rem 0}
dl.facts dt{font-weight:600;color:#555}dl.facts dd{margin:0}
.note{background:#fff6dd;border-left:4px solid #e0b000;padding:.4rem .8rem}
.empty{font-size:1.1rem;background:#eef5ff;border-left:4px solid #4a90d9;padding:.8rem 1rem}
.picture{display:block;max-width:100%;height:auto;border:1px solid #e5e5e5;margin:.6rem 0}
.label{padding:0 .35rem;border-radius:3px;background:#eee}
.label.collusion{background:#fdd}.label.promo_abuse{background:#ffe7c2}.label.bot_farm{background:#e5dcff}
a.top{font-size:.8rem;font-weight:normal;margin-left:.6rem}
.muted{color:#777;font-size:.85rem}
"""


def render_report(
    rings: list[RingView],
    pictures: list[str],
    run: dict[str, Any] | None,
    total_rings: int,
    metrics: dict[str, Any] | None = None,
    generated_at: datetime | None = None,
    picture_files: list[str] | None = None,
    promotions: list[dict[str, Any]] | None = None,
    gates: dict[str, dict[str, Any]] | None = None,
) -> str:
    """The whole page.

    Args:
        rings: the rings to show, best first.
        pictures: the ``src`` of each ring's picture, in the same order.
        run: the latest completed scoring run's properties (times in epoch ms), or None.
        total_rings: active rings in all (the page shows ``len(rings)`` of them).
        metrics: a ``metrics.json`` of ``ringwatch evaluate``, or None.
        generated_at: when the page was made (default now).
        picture_files: each picture's path relative to the page (linked for a full-size view), or None.
        promotions: the promotion audit trail, newest first (model governance section).
        gates: model version → its validation gate report (the run's champion and challenger).

    Returns:
        A complete HTML document; every value from the graph or metrics is escaped.
    """
    if len(pictures) != len(rings):
        raise ValueError(f"pictures must match rings: {len(pictures)} pictures for {len(rings)} rings")
    stamp = (generated_at or datetime.now(UTC)).strftime("%Y-%m-%d %H:%M UTC")
    if rings:
        files: list[str | None] = list(picture_files) if picture_files else [None] * len(rings)
        body = _toc(rings) + "".join(
            render_ring(r, i, p, f) for i, (r, p, f) in enumerate(zip(rings, pictures, files), 1)
        )
    else:
        body = (
            '<p class="empty">No active rings in the graph. Run <code>ringwatch score</code> and then '
            "<code>ringwatch rings</code> to find some.</p>"
        )
    shown = f"top {len(rings)} of {total_rings:,} active rings" if rings else "no active rings"
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>ringwatch report — {shown}</title>\n<style>{_CSS}</style></head>\n"
        f'<body><a id="top"></a><h1>ringwatch report</h1>\n<p class="muted">{shown}; generated {stamp}</p>\n'
        "<h2>Scoring run</h2>\n"
        + _run_section(run, rings, total_rings)
        + "\n"
        + _metrics_section(metrics)
        + "\n"
        + _governance_section(run, promotions or [], gates or {})
        + body
        + "</body></html>\n"
    )


def _picture_name(rank: int, ring_id: str) -> str:
    return f"{rank:03d}-{re.sub(r'[^A-Za-z0-9_-]', '_', ring_id)[:60]}.svg"


def build_report(
    driver: neo4j.Driver,
    database: str,
    out_dir: Path,
    top: int = TOP_RINGS,
    metrics_file: Path | None = None,
    gate_of: Callable[[str], dict[str, Any] | None] | None = None,
) -> Path:
    """Write the report of the ``top`` active rings into ``out_dir`` (see the module docstring).

    Args:
        driver: a driver for the graph.
        database: the Neo4j database.
        out_dir: folder for ``index.html`` and ``rings/``; created when missing. Pictures in ``rings/`` that
            this report does not use (from an earlier report) are removed.
        top: how many rings to show.
        metrics_file: a ``metrics.json`` of ``ringwatch evaluate --out`` to show, or None.
        gate_of: model version → its stored validation gate report (or None); called for the latest run's
            champion and shadow challenger (``ringwatch report`` reads them from the registry).

    Returns:
        The path of ``index.html``.

    Raises:
        ReportError: the metrics file is unreadable or the folder cannot be written.
    """
    if top < 1:
        raise ValueError(f"top must be at least 1, got {top}")
    metrics = read_metrics(metrics_file) if metrics_file is not None else None
    rings, total = read_rings(driver, database, top)
    run = latest_completed_run(driver, database)
    audit = promotions(driver, database)
    gates: dict[str, dict[str, Any]] = {}
    for version in (run or {}).get("model_version"), (run or {}).get("shadow_challenger_model_version"):
        found = gate_of(str(version)) if gate_of is not None and version else None
        if found is not None:
            gates[str(version)] = found
    pictures_dir = out_dir / PICTURES_DIR
    try:
        pictures_dir.mkdir(parents=True, exist_ok=True)
        paths = [draw_ring(r, pictures_dir / _picture_name(i, r.ring_id)) for i, r in enumerate(rings, 1)]
        for stale in set(pictures_dir.glob("*.svg")) - set(paths):
            stale.unlink()
        sources = ["data:image/svg+xml;base64," + base64.b64encode(p.read_bytes()).decode("ascii") for p in paths]
        index = out_dir / INDEX_FILE
        files = [f"{PICTURES_DIR}/{p.name}" for p in paths]
        index.write_text(
            render_report(rings, sources, run, total, metrics, picture_files=files, promotions=audit, gates=gates),
            encoding="utf-8",
        )
    except OSError as e:
        raise ReportError(f"cannot write the report into {out_dir}: {e}") from e
    return index
