"""``ringwatch report`` against the real Neo4j (a scored 2 500-account exchange, grouped into rings), and the
page's rendering on hand-made rings (escaping, the empty report)."""

from __future__ import annotations

import base64
import json
import re
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest
from typer.testing import CliRunner

from graph import schema as s
from serving.cli import app
from serving.report import ReportError, build_report, render_report
from serving.ring_grouping import SharedIdentifier
from serving.ring_picture import draw_ring
from serving.ring_view import MoneyLink, RingMember, RingView
from serving.rings import run_rings
from serving.score import write_scores
from tests.conftest import connect, wipe
from tests.scored_graph import scored_exchange

TOP = 6  # at most; fewer when the graph has no more rings than this
HOSTILE = '<script>alert("x")</script>&$x^2$'
SVG = "{http://www.w3.org/2000/svg}svg"


@dataclass
class Built:
    index: Path
    html: str
    empty_html: str
    run_id: str
    rings: dict[str, list[str]]  # ring id → members, best first, every active ring
    top: int  # rings the report shows (fewer than the graph has)
    metrics: Path


@pytest.fixture(scope="module")
def built(neo4j_server, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Built]:
    """An empty graph's report; then a scored, grouped exchange and its report (top rings, metrics)."""
    folder = tmp_path_factory.mktemp("report")
    driver = connect(neo4j_server)
    try:
        wipe(driver)
        empty = build_report(driver, "neo4j", folder / "empty")
        sx = scored_exchange(driver, folder)
        write_scores(driver, "neo4j", sx.run, sx.plan)
        summary = run_rings(driver, "neo4j")
        records, _, _ = driver.execute_query(
            "MATCH (a:Account)-[:MEMBER_OF]->(r:Ring {status: 'active'}) "
            "RETURN r.ring_id AS ring_id, r.score AS score, r.size AS size, collect(a.account_id) AS members "
            "ORDER BY score DESC, size DESC, ring_id",
            database_="neo4j",
        )
        metrics = folder / "metrics.json"
        metrics.write_text(
            json.dumps(
                {
                    "model_version": "rule/1",
                    "evaluated_accounts": 1234,
                    "scope": "test",
                    "threats": {
                        t: {
                            "auroc": 0.9 + i / 100,
                            "auprc": 0.5,
                            "recall_at_k": 0.61,
                            "fpr": 0.012,
                            "precision": 0.7,
                            "recall": 0.8,
                            "threshold": 0.5,
                            "positives": 40,
                        }
                        for i, t in enumerate(s.THREATS)
                    },
                    "overall": {"auroc": 0.95, "auprc": 0.6, "recall_at_k": 0.7, "fpr": 0.02},
                    "rings": {"planted": 9, "recovered": 7, "purity": {"mean": 0.875}},
                }
            )
        )
        assert summary["rings"] == len(records) >= 2, "the planted exchange should give several rings"
        top = min(TOP, len(records) - 1)  # so the report leaves some out
        index = build_report(driver, "neo4j", folder / "report", top=top, metrics_file=metrics)
        yield Built(
            index,
            index.read_text(encoding="utf-8"),
            empty.read_text(encoding="utf-8"),
            sx.run.run_id,
            {r["ring_id"]: r["members"] for r in records},
            top,
            metrics,
        )
    finally:
        driver.close()


def ring_sections(page: str) -> dict[str, str]:
    """Ring id → its section's HTML."""
    parts = re.split(r'(?=<section class="ring")', page)[1:]
    return {re.search(r'data-ring-id="([^"]*)"', p).group(1): p for p in parts}


def test_report_shows_the_top_rings_with_their_members(built: Built) -> None:
    top = list(built.rings)[: built.top]
    sections = ring_sections(built.html)
    assert list(sections) == top  # best first, and only the top ones
    for ring_id in top:
        assert f'<a href="#ring-{top.index(ring_id) + 1}">{ring_id}</a>' in built.html  # table of contents
        rows = re.findall(r'<tr class="member"><td><code>([^<]*)</code>', sections[ring_id])
        assert sorted(rows) == sorted(built.rings[ring_id])
    assert built.run_id in built.html
    assert f"top {built.top} of {len(built.rings):,} active rings" in built.html
    assert "rule/1" in built.html and "Shared identifiers" in built.html
    assert "<dt>thresholds</dt><dd>the model’s: collusion 0.5, promo_abuse 0.5, bot_farm 0.5</dd>" in built.html
    assert "<dt>flagged as ring members</dt>" in built.html


def test_report_pictures_are_files_and_inline(built: Built) -> None:
    pictures = sorted((built.index.parent / "rings").glob("*.svg"))
    assert len(pictures) == built.top
    inline = re.findall(r'<img class="picture" src="data:image/svg\+xml;base64,([^"]+)"', built.html)
    assert len(inline) == built.top
    for picture, data in zip(pictures, inline):
        assert picture.stat().st_size > 10_000
        assert ET.parse(picture).getroot().tag == SVG
        assert base64.b64decode(data) == picture.read_bytes()
    assert 'src="rings/' not in built.html and "<link" not in built.html  # self-contained


def test_report_shows_the_metrics_file(built: Built) -> None:
    assert "AUROC" in built.html and "Recall@K" in built.html
    assert "<td>collusion</td><td>0.900</td><td>0.500</td><td>0.610</td>" in built.html
    assert "<td>purity.mean</td><td>0.875</td>" in built.html


def test_empty_graph_report_says_so(built: Built) -> None:
    assert "No active rings in the graph" in built.empty_html
    assert "No completed scoring run" in built.empty_html
    assert '<section class="ring"' not in built.empty_html


def test_report_command(built: Built, graph_env: dict[str, str], tmp_path: Path) -> None:
    result = CliRunner().invoke(
        app, ["report", "--out", str(tmp_path / "r"), "--top", "1", "--metrics", str(built.metrics)]
    )
    assert result.exit_code == 0, result.output
    assert (tmp_path / "r" / "index.html").as_uri() in result.output.replace("\n", "")
    assert list(ring_sections((tmp_path / "r" / "index.html").read_text(encoding="utf-8"))) == list(built.rings)[:1]
    missing = CliRunner().invoke(app, ["report", "--out", str(tmp_path / "r"), "--metrics", str(tmp_path / "no")])
    assert missing.exit_code != 0 and isinstance(missing.exception, ReportError)


def hostile_ring() -> RingView:
    members = [
        RingMember(
            account_id=f"{HOSTILE}{i}",
            scores={t: 0.2 * i for t in s.THREATS},
            risk_score=0.3 * i,
            risk_label=s.COLLUSION,
            reasons=(f"shares Device {HOSTILE}",),
            known_label=None,
            verdict=None,
            created_at=1_700_000_000_000,
        )
        for i in range(3)
    ]
    ids = tuple(m.account_id for m in members)
    return RingView(
        props={
            "ring_id": f"R-{HOSTILE}",
            "kind": s.COLLUSION,
            "size": 3,
            "score": 0.5,
            "evidence": HOSTILE,
            "first_seen": 1_700_000_000_000,
            "last_seen": 1_701_000_000_000,
            "scoring_run_id": HOSTILE,
        },
        members=members,
        identifiers=[SharedIdentifier("Device", HOSTILE, ids, 4)],
        links=[
            MoneyLink(ids[0], ids[1], s.TRANSFERRED_TO.type, HOSTILE, 2, 10.0),
            MoneyLink(ids[2], ids[0], s.REFERRED.type, None, 1, None),
        ],
    )


def test_rendering_escapes_graph_values(tmp_path: Path) -> None:
    ring = hostile_ring()
    run = {"run_id": HOSTILE, "model_version": HOSTILE, "started_at": 0, "finished_at": 1000}
    metrics = {"threats": {HOSTILE: {"auroc": HOSTILE}}, "rings": {HOSTILE: HOSTILE}}
    page = render_report([ring], ["data:,"], run, 1, metrics, datetime(2024, 1, 1, tzinfo=UTC))
    assert "<script" not in page
    assert page.count("&lt;script&gt;") >= 10
    assert len(re.findall(r'<tr class="member">', page)) == 3
    picture = draw_ring(ring, tmp_path / "hostile.svg")  # `$…$` in ids must not be read as mathtext
    assert ET.parse(picture).getroot().tag == SVG
    assert draw_ring(ring, tmp_path / "again.svg").read_bytes() == picture.read_bytes()  # deterministic


def test_empty_rendering_and_bad_input(tmp_path: Path) -> None:
    page = render_report([], [], None, 0)
    assert "No active rings" in page and "<section" not in page
    with pytest.raises(ValueError, match="pictures"):
        render_report([hostile_ring()], [], None, 1)
    bad = tmp_path / "metrics.json"
    bad.write_text("{not json")
    with pytest.raises(ReportError, match="cannot read"):
        build_report(None, "neo4j", tmp_path / "out", metrics_file=bad)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="top"):
        build_report(None, "neo4j", tmp_path / "out", top=0)  # type: ignore[arg-type]
