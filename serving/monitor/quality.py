"""Data quality over time: each ingest's ``quality.json`` (:mod:`ingest.quality`) as one point of a series.

An ingest writes ``quality.json`` next to its reject files, by default in ``<data dir>/rejects/<folder>/``;
every such file is one point, dated by when it was written. Per point: the reject rate of each table
(rejected ÷ read), the highest null rate of each table's columns, the unknown-account references, and the
count of flagged sharing outliers of each kind. A *jump* is the newest point's figure at least ``factor``
times the median of the earlier points, and at least a floor (:data:`JUMP_FLOOR` for rates,
:data:`COUNT_FLOOR` for counts), so one stray reject or stub is no jump.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

import numpy as np

from graph.logs import logger
from graph.settings import Settings
from ingest.rejects import QUALITY_FILE

#: A rate below this is never a jump (2 %); a count below :data:`COUNT_FLOOR` neither.
JUMP_FLOOR: Final = 0.02
COUNT_FLOOR: Final = 5.0

log = logger(__name__)


@dataclass(frozen=True)
class QualityPoint:
    """One ingest's data-quality figures (see the module docstring)."""

    ingest: str
    at: str
    reject_rate: dict[str, float]
    max_null_rate: dict[str, float]
    unknown_account_references: int
    outliers: dict[str, int]

    def figures(self) -> dict[str, float]:
        """Every figure under one flat name (``reject_rate.accounts``, ``outliers.accounts_per_ip`` …)."""
        out = {f"reject_rate.{k}": v for k, v in self.reject_rate.items()}
        out.update({f"max_null_rate.{k}": v for k, v in self.max_null_rate.items()})
        out["unknown_account_references"] = float(self.unknown_account_references)
        out.update({f"outliers.{k}": float(v) for k, v in self.outliers.items()})
        return out


def quality_point(path: Path) -> QualityPoint:
    """Read one ``quality.json`` (its folder's name is the ingest's name, its modification time the date)."""
    data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    tables = data.get("tables", {})
    return QualityPoint(
        ingest=path.parent.name,
        at=datetime.fromtimestamp(path.stat().st_mtime, UTC).isoformat(timespec="seconds"),
        reject_rate={t: round(v["rejected"] / v["read"], 6) if v.get("read") else 0.0 for t, v in tables.items()},
        max_null_rate={t: max(v.get("null_rates", {}).values(), default=0.0) for t, v in tables.items()},
        unknown_account_references=int(data.get("unknown_account_references", 0)),
        outliers={k: int(v.get("flagged", 0)) for k, v in data.get("outliers", {}).items()},
    )


def quality_series(settings: Settings, folders: tuple[Path, ...] = ()) -> list[QualityPoint]:
    """Every ingest's quality point under ``<data dir>/rejects`` (and ``folders``), oldest first.

    An unreadable file is logged and left out (one bad report must not hide the others).
    """
    roots = (settings.data_dir.resolve() / "rejects", *folders)
    paths = {p.resolve() for root in roots if root.is_dir() for p in root.glob(f"*/{QUALITY_FILE}")}
    points = []
    for path in sorted(paths, key=lambda p: (p.stat().st_mtime, str(p))):
        try:
            points.append(quality_point(path))
        except (OSError, ValueError, KeyError, TypeError, ZeroDivisionError) as e:
            log.warning("data-quality report %s left out: %s", path, e)
    return points


def quality_jumps(points: list[QualityPoint], factor: float) -> dict[str, tuple[float, float]]:
    """Figures of the newest point at least ``factor`` × the median of the earlier points' (and at least the
    floor): ``{name: (observed, median)}``. Empty with fewer than two points or ``factor`` 0."""
    if len(points) < 2 or factor <= 0:
        return {}
    latest = points[-1].figures()
    earlier = [p.figures() for p in points[:-1]]
    jumps = {}
    for name, value in latest.items():
        median = float(np.median([e.get(name, 0.0) for e in earlier]))
        floor = JUMP_FLOOR if "rate" in name else COUNT_FLOOR
        if value >= floor and value >= factor * median:
            jumps[name] = (value, median)
    return jumps
