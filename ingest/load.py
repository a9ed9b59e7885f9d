"""One ingestion run: read a folder of exchange events, validate, write rejects and the quality summary,
then write the graph in batches, exactly once.

Exactly once, whatever the batch size: the rows each input table contributes to each write kind (a *part*,
see :mod:`ingest.graph_rows`) are identified by the hash of their content (schema version, write kind, source
table and rows), and cut into fixed chunks of :data:`CHUNK_ROWS` rows — fixed, so a chunk's identity is
``(part, chunk number)`` and does not depend on ``--batch-size``. A batch is a few whole chunks of one part
written in one transaction with one ledger node per chunk; the ledger's uniqueness constraint lets each chunk
land once. Hence rerunning the same folder (with any batch size, after any kill, or while another run of it
is under way) writes each row exactly once, and a newer folder's parts are new and add to the graph.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from graph.errors import GraphWriteError
from graph.queries.ingest import WRITES_BY_NAME
from graph.runs import Progress
from graph.schema import SCHEMA_VERSION
from graph.writer import BatchWriter, columns, split
from ingest.graph_rows import GraphPart, build_graph_parts, combine_parts
from ingest.privacy import Hasher, digest_text
from ingest.quality import null_rates, quality_summary
from ingest.read import ROW, find_tables, read_table
from ingest.rejects import write_rejects_folder
from ingest.validate import TableValidation, validate_table

DEFAULT_BATCH_SIZE = 10_000
#: Rows per ledger chunk: a batch is a whole number of chunks, so ``--batch-size`` is rounded up to a multiple.
CHUNK_ROWS = 100


@dataclass(frozen=True)
class Chunk:
    """A fixed slice ``[start, stop)`` of one part's rows: the unit of the write ledger.

    Attributes:
        part: index of the part in :attr:`PreparedRun.parts`.
        chunk_id: ``<part id>-<chunk number>``, the ledger key.
        index: the chunk number within its part.
    """

    part: int
    chunk_id: str
    index: int
    start: int
    stop: int

    @property
    def rows(self) -> int:
        return self.stop - self.start


@dataclass
class PreparedRun:
    """Everything a run writes, computed before any write: validated tables, graph rows, parts and chunks."""

    folder: Path
    validations: dict[str, TableValidation]
    parts: list[GraphPart]
    part_ids: list[str]
    chunks: list[Chunk]
    batch_size: int
    quality: dict[str, Any]
    graph_rows: dict[str, pd.DataFrame] = field(repr=False, default_factory=dict)
    #: Rows not to write, per part index (a boolean mask over the part's rows): the rows of erased accounts
    #: (:mod:`ingest.erasure`). They stay in the part, so its identity and chunks are those of the folder as
    #: read, and a chunk committed before the erasure is still recognised as committed.
    withheld: dict[int, np.ndarray] = field(repr=False, default_factory=dict)

    def chunk_rows(self, chunk: Chunk) -> np.ndarray:
        """Positions (in its part) of the rows of ``chunk`` that are written: all but the withheld ones."""
        positions = np.arange(chunk.start, chunk.stop)
        mask = self.withheld.get(chunk.part)
        return positions if mask is None else positions[~mask[positions]]

    @property
    def accounted_for(self) -> bool:
        return all(v.read == len(v.accepted) + len(v.rejects) for v in self.validations.values())

    @property
    def chunks_per_batch(self) -> int:
        return max(1, math.ceil(self.batch_size / CHUNK_ROWS))

    @property
    def batches(self) -> list[list[Chunk]]:
        """The transactions of a run that finds nothing committed."""
        return list(_group(self.chunks, self.chunks_per_batch))


def part_id(part: GraphPart) -> str:
    """Content id of one part: the same rows of the same kind from the same table always get the same id.

    Floats are hashed at single precision, so that the same events in another row order (whose sums may
    differ in the last bit) are still the same part.
    """
    frame = part.rows
    floats = frame.select_dtypes(include="floating").columns
    if len(floats):
        frame = frame.astype({c: "float32" for c in floats})
    digest = hashlib.sha256(
        f"{SCHEMA_VERSION}\x1f{part.kind}\x1f{part.source}\x1f{','.join(frame.columns)}\x1f".encode()
    )
    digest.update(pd.util.hash_pandas_object(frame, index=False).to_numpy().tobytes())
    return digest_text(digest.digest())


def plan_chunks(parts: list[GraphPart], ids: list[str]) -> list[Chunk]:
    """Every part cut into :data:`CHUNK_ROWS`-row chunks, in write order."""
    return [
        Chunk(i, f"{ids[i]}-{n}", n, start, stop)
        for i, part in enumerate(parts)
        for n, (start, stop) in enumerate(split(len(part.rows), CHUNK_ROWS))
    ]


def prepare(
    folder: Path, hasher: Hasher | None, batch_size: int = DEFAULT_BATCH_SIZE, progress: Progress | None = None
) -> PreparedRun:
    """Read, validate and aggregate a folder; plan its chunks. Touches no database.

    Raises:
        ValueError: ``batch_size`` is not positive.
    """
    if batch_size <= 0:
        raise ValueError(f"batch_size must be positive, got {batch_size}")
    tables = find_tables(folder)
    validations: dict[str, TableValidation] = {}
    nulls: dict[str, dict[str, float]] = {}
    for i, table in enumerate(tables):
        if progress:
            progress(f"validating {table.path.name}", i, len(tables))
        raw = read_table(table)
        nulls[table.contract.name] = null_rates(raw, table.contract.columns)
        validations[table.contract.name] = validate_table(raw, table.contract)
    if progress:
        progress("aggregating events", len(tables), len(tables))
    accepted = {name: v.accepted.drop(columns=[ROW]) for name, v in validations.items()}
    parts = build_graph_parts(accepted, hasher)
    ids = [part_id(p) for p in parts]
    graph_rows = combine_parts(parts)
    quality = quality_summary(validations, nulls, graph_rows)
    return PreparedRun(folder, validations, parts, ids, plan_chunks(parts, ids), batch_size, quality, graph_rows)


def write_rejects(run: PreparedRun, rejects_dir: Path) -> None:
    """One CSV of rejected rows per table (header only when none), plus ``quality.json`` (see
    :mod:`ingest.rejects`)."""
    write_rejects_folder(run.validations, run.quality, rejects_dir)


def write_graph(
    run: PreparedRun, writer: BatchWriter, progress: Progress | None = None
) -> tuple[int, int, dict[str, int]]:
    """Write every chunk not yet committed, a few whole chunks per transaction.

    Returns:
        (chunks written now, chunks already committed, rows written per kind). A chunk that a concurrent run
        commits while this one writes counts as already committed.

    Raises:
        GraphWriteError: a batch failed; the message says how far the run got and that a rerun resumes.
    """
    writer.ensure_constraints()
    done = writer.committed([c.chunk_id for c in run.chunks])
    pending = [c for c in run.chunks if c.chunk_id not in done]
    written, skipped = 0, len(run.chunks) - len(pending)
    rows_written: dict[str, int] = {}
    total = len(run.chunks)
    for batch in _group(pending, run.chunks_per_batch):
        part = run.parts[batch[0].part]
        if progress:
            progress(f"writing {part.kind}", written + skipped, total)
        try:
            landed = _write_batch(run, writer, batch)
        except GraphWriteError as e:
            raise GraphWriteError(
                f"{e} — {written + skipped} of {total} chunks are committed; rerun the command (with any "
                "--batch-size) to resume: committed chunks are skipped"
            ) from e
        written += len(landed)
        skipped += len(batch) - len(landed)
        if landed:
            rows_written[part.kind] = rows_written.get(part.kind, 0) + sum(len(run.chunk_rows(c)) for c in landed)
    if progress:
        progress("done", total, total)
    return written, skipped, rows_written


def _write_batch(run: PreparedRun, writer: BatchWriter, batch: list[Chunk]) -> list[Chunk]:
    """Write one batch; returns the chunks it wrote. When another run commits some of them first, the
    transaction fails on the ledger and rolls back: the rest are written again without them."""
    part = run.parts[batch[0].part]
    kind = WRITES_BY_NAME[part.kind]
    while batch:
        positions = [run.chunk_rows(c) for c in batch]
        rows = part.rows.iloc[np.concatenate(positions)]
        chunks = [{"id": c.chunk_id, "index": c.index, "rows": len(p)} for c, p in zip(batch, positions)]
        if writer.write_chunks(kind, columns(rows), run.part_ids[batch[0].part], chunks):
            return batch
        done = writer.committed([c.chunk_id for c in batch])
        if not done:
            raise GraphWriteError(f"{part.kind}: the ledger refused a batch none of whose chunks is committed")
        batch = [c for c in batch if c.chunk_id not in done]
    return []


def _group(chunks: list[Chunk], size: int) -> Iterator[list[Chunk]]:
    """Consecutive chunks of the same part, ``size`` at most per group."""
    group: list[Chunk] = []
    for chunk in chunks:
        if group and (len(group) == size or chunk.part != group[0].part):
            yield group
            group = []
        group.append(chunk)
    if group:
        yield group
