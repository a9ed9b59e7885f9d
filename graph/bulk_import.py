"""Files and arguments for Neo4j's offline importer (``neo4j-admin database import full``).

The importer builds a new store from CSV files far faster than transactional writes, but only into an
empty, stopped database. It is given exactly the rows online ingestion would write (including the ledger
of batches), so the graph it builds is the one online ingestion builds, and a later online run of the same
folder is a no-op.
"""

from __future__ import annotations

import csv
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from graph import schema as s
from graph.private_files import open_private, private_dir
from graph.queries.ingest import WRITES_BY_NAME, Prop, WriteKind

_TYPES = {"string": "", "long": ":long", "double": ":double", "boolean": ":boolean", "datetime": ":datetime"}


@dataclass(frozen=True)
class ImportFiles:
    nodes: list[tuple[str, Path]]
    relationships: list[tuple[str, Path]]

    def admin_args(self, database: str) -> list[str]:
        """Arguments for ``neo4j-admin`` (after the program name)."""
        args = [
            "database",
            "import",
            "full",
            database,
            "--overwrite-destination=true",
            "--multiline-fields=true",
            "--skip-duplicate-nodes=false",
            "--bad-tolerance=0",
        ]
        args += [f"--nodes={label}={path}" for label, path in self.nodes]
        args += [f"--relationships={rel}={path}" for rel, path in self.relationships]
        return args


def iso_millis(millis: pd.Series) -> pd.Series:
    """Epoch milliseconds → ISO-8601 UTC text with milliseconds (missing stays missing)."""
    stamps = pd.to_datetime(millis, unit="ms", utc=True)
    return stamps.dt.strftime("%Y-%m-%dT%H:%M:%S.%fZ").str.slice(0, 23) + "Z"


def _column(prop: Prop, values: pd.Series) -> pd.Series:
    if prop.kind == "datetime":
        return iso_millis(values).where(values.notna())
    if prop.kind == "boolean":
        return values.map({True: "true", False: "false"}).where(values.notna())
    return values


def _write_csv(frame: pd.DataFrame, path: Path) -> Path:
    with open_private(path) as f:  # the whole graph's data: owner-only
        frame.to_csv(f, index=False, quoting=csv.QUOTE_MINIMAL, lineterminator="\n", na_rep="")
    return path


def _account_frame(rows: Mapping[str, pd.DataFrame]) -> pd.DataFrame:
    """Accounts, stub accounts and known labels folded into one node file (one row per account)."""
    parts = [rows[n] for n in ("Account", "Account.stub") if n in rows]
    accounts = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame({s.ACCOUNT.key: []})
    if "Account.label" in rows:
        accounts = accounts.merge(rows["Account.label"], on=s.ACCOUNT.key, how="outer")
    return accounts


def _props_of(names: Sequence[str]) -> list[Prop]:
    props: dict[str, Prop] = {}
    for name in names:
        for p in WRITES_BY_NAME[name].props:
            props.setdefault(p.name, p)
    return list(props.values())


def write_import_files(rows: Mapping[str, pd.DataFrame], ledger: pd.DataFrame, out_dir: Path) -> ImportFiles:
    """Write one CSV per node label and relationship type for the importer.

    Args:
        rows: the rows of each write kind, as built for online ingestion.
        ledger: the ledger chunks online ingestion would record: columns batch_id, kind, part_id, chunk, rows,
            run_id, committed_at (epoch ms).
        out_dir: where the files go (the importer reads them from there).
    """
    private_dir(out_dir)
    nodes: list[tuple[str, Path]] = []
    rels: list[tuple[str, Path]] = []

    accounts = _account_frame(rows)
    if len(accounts):
        props = _props_of([n for n in ("Account", "Account.stub", "Account.label") if n in rows])
        nodes.append((s.ACCOUNT.label, _write_csv(_node_frame(s.ACCOUNT, accounts, props), out_dir / "Account.csv")))
    for spec in s.IDENTIFIER_NODES:
        if spec.label in rows:
            write = WRITES_BY_NAME[spec.label]
            frame = _node_frame(spec, rows[spec.label], list(write.props))
            nodes.append((spec.label, _write_csv(frame, out_dir / f"{spec.label}.csv")))
    if len(ledger):
        ledger_props = [
            Prop("kind"),
            Prop("part_id"),
            Prop("chunk", kind="long"),
            Prop("rows", kind="long"),
            Prop("run_id"),
            Prop("committed_at", kind="datetime"),
        ]
        nodes.append(
            (
                s.INGEST_BATCH.label,
                _write_csv(_node_frame(s.INGEST_BATCH, ledger, ledger_props), out_dir / "IngestBatch.csv"),
            )
        )
    for rel in s.DOMAIN_RELS:
        if rel.type in rows:
            rels.append(
                (
                    rel.type,
                    _write_csv(_rel_frame(WRITES_BY_NAME[rel.type], rows[rel.type]), out_dir / f"{rel.type}.csv"),
                )
            )
    return ImportFiles(nodes, rels)


def _node_frame(spec: s.NodeSpec, frame: pd.DataFrame, props: Sequence[Prop]) -> pd.DataFrame:
    out = {f"{spec.key}:ID({spec.label})": frame[spec.key]}
    for p in props:
        if p.name in frame:
            out[f"{p.name}{_TYPES[p.kind]}"] = _column(p, frame[p.name])
    return pd.DataFrame(out)


def _rel_frame(write: WriteKind, frame: pd.DataFrame) -> pd.DataFrame:
    rel = write.rel
    if rel is None:
        raise ValueError(f"write kind {write.name!r} is not a relationship write")
    out = {f":START_ID({rel.source.label})": frame["src"], f":END_ID({rel.target.label})": frame["dst"]}
    if rel.discriminator:
        out[rel.discriminator] = frame[rel.discriminator]
    for p in write.props:
        out[f"{p.name}{_TYPES[p.kind]}"] = _column(p, frame[p.name])
    return pd.DataFrame(out)
