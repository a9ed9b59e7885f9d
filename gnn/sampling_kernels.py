"""Tensor kernels of the pure-PyTorch neighbour sampler (:mod:`gnn.sampling`).

Everything here works on whole frontiers at once, on whatever device the tensors live on: there is no
Python loop over seeds or nodes, only over the fan-out width (at most ``k`` iterations of Floyd's
algorithm) and over hops in the caller.

Conventions:
    * Node types are numbered ``0..T-1`` and every node has a *global* id ``node_offset[t] + i`` so one
      lookup table covers all types.
    * All edge types' CSC arrays are laid end to end (:class:`FusedCSC`): a *segment* is one
      ``(edge type, destination node)`` pair and owns the slice ``row[seg_start : seg_start + seg_deg]``
      of its in-neighbours.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import torch
from torch import Tensor

#: dtype of the global-id → local-id table: int32 halves the memory the random accesses touch.
MAP_DTYPE = torch.int32
#: Marker for "node not yet in the sampled subgraph" in that table: the largest value, so that
#: ``scatter_reduce(..., "amin")`` over it keeps the smallest value written.
ABSENT = torch.iinfo(MAP_DTYPE).max
#: Local ids stay below this; during :func:`add_nodes` a new node's entry holds ``PENDING + position``.
PENDING = 1 << 30


@dataclass(frozen=True)
class FusedCSC:
    """The CSC arrays of every edge type, concatenated, plus the bookkeeping to address them.

    Attributes:
        row: ``[E_total]`` global id of the source of every edge, edge types end to end (int32 when the
            ids fit).
        seg: ``[S_total]`` per segment, ``start << 32 | deg``: where its in-neighbours start in ``row`` and
            how many it may sample from (0 for a capped super-node). Packed so that one gather (the most
            cache-hostile access of a hop) fetches both; see :func:`unpack_segments`.
        seg_offset: ``[R]`` first segment of each edge type (segment = ``seg_offset[r] + dst``).
        row_offset: ``[R]`` first position of each edge type in ``row`` (edge id = position - offset).
        src_type: ``[R]`` node-type index of each edge type's source.
        dst_type: ``[R]`` node-type index of each edge type's destination.
    """

    row: Tensor
    seg: Tensor
    seg_offset: Tensor
    row_offset: Tensor
    src_type: Tensor
    dst_type: Tensor


def fuse_csc(
    colptrs: list[Tensor],
    rows: list[Tensor],
    src_type: list[int],
    dst_type: list[int],
    node_offset: list[int],
    num_nodes: int,
    device: torch.device,
    leaves: list[Tensor | None] | None = None,
) -> FusedCSC:
    """Concatenate per-edge-type CSC arrays into one :class:`FusedCSC` on ``device``.

    Args:
        colptrs: per edge type, ``[N_dst + 1]`` column pointers.
        rows: per edge type, ``[E_r]`` source indices in CSC order.
        src_type: per edge type, the node-type index of its source.
        dst_type: per edge type, the node-type index of its destination.
        node_offset: first global id of each node type.
        num_nodes: total number of nodes (all types).
        device: where the fused arrays (and therefore sampling) live.
        leaves: per edge type, None or a ``[N_dst]`` bool mask of destination nodes that must not be
            expanded through it (their segment degree is set to 0).

    Returns:
        The fused arrays.
    """
    if not colptrs:
        raise ValueError("fuse_csc needs at least one edge type, got none")
    if sum(int(r.numel()) for r in rows) >= 2**31:
        raise ValueError(f"too many edges for the packed segment table: {sum(int(r.numel()) for r in rows)}")
    num_edges = [int(r.numel()) for r in rows]
    num_segs = [int(c.numel()) - 1 for c in colptrs]
    row_offset = torch.tensor([0, *num_edges[:-1]], dtype=torch.long).cumsum(0)
    seg_offset = torch.tensor([0, *num_segs[:-1]], dtype=torch.long).cumsum(0)
    # Global source ids, int32 when they fit: the row gather is the largest memory stream per hop.
    row_dtype = torch.int32 if num_nodes < 2**31 else torch.long
    row = torch.cat([(r + node_offset[t]).to(row_dtype) for r, t in zip(rows, src_type)])
    seg_start = torch.cat([c[:-1] + off for c, off in zip(colptrs, row_offset.tolist())])
    seg_deg = torch.cat(
        [
            (c[1:] - c[:-1]).masked_fill(leaf, 0) if leaf is not None else c[1:] - c[:-1]
            for c, leaf in zip(colptrs, leaves or [None] * len(colptrs))
        ]
    )
    return FusedCSC(
        row=row.to(device),
        seg=((seg_start << 32) | seg_deg).to(device),
        seg_offset=seg_offset.to(device),
        row_offset=row_offset.to(device),
        src_type=torch.tensor(src_type, dtype=torch.long, device=device),
        dst_type=torch.tensor(dst_type, dtype=torch.long, device=device),
    )


def unpack_segments(packed: Tensor) -> tuple[Tensor, Tensor]:
    """``(start, deg)`` from :attr:`FusedCSC.seg` entries."""
    return packed >> 32, packed & 0xFFFFFFFF


def distinct_in_degree(src: Tensor, dst: Tensor, num_dst: int) -> Tensor:
    """Number of *distinct* source nodes of each destination node of one edge type.

    Parallel edges (one transfer edge per asset, say) count once, so a wallet's degree is the number of
    accounts that use it.

    Shapes:
        - **src, dst:** ``[E]``
        - **output:** ``[num_dst]``
    """
    if src.numel() == 0:
        return torch.zeros(num_dst, dtype=torch.long, device=dst.device)
    stride = int(src.max()) + 1
    pairs = torch.unique(dst.long() * stride + src.long())
    return torch.bincount(torch.div(pairs, stride, rounding_mode="floor"), minlength=num_dst)


def segment_ids(counts: Tensor, starts: Tensor, total: int) -> Tensor:
    """``repeat_interleave(arange(S), counts)``, several times faster on CPU: mark where each segment
    starts, then count marks.

    Args:
        counts: ``[S]`` elements per segment.
        starts: ``[S]`` exclusive prefix sum of ``counts``.
        total: ``counts.sum()``.

    Returns:
        ``[total]`` the segment of each element.
    """
    marks = torch.zeros(total + 1, dtype=torch.long, device=counts.device)
    marks.scatter_add_(0, starts, torch.ones_like(starts))  # empty segments at the end land in the spare slot
    return marks[:total].cumsum(0) - 1


def floyd_subsets(deg: Tensor, k: Tensor, width: int, generator: torch.Generator | None, uniform_k: bool) -> Tensor:
    """Draw, for every row, ``k`` distinct offsets out of ``range(deg)`` uniformly at random.

    Robert Floyd's algorithm, run for all rows in lock-step: for ``j`` from ``deg - k`` to ``deg - 1``
    draw ``t`` uniform in ``[0, j]`` and keep ``t``, or ``j`` when ``t`` was already kept. Every
    ``k``-subset is equally likely, and the loop has ``width`` iterations however many rows there are.

    Args:
        deg: ``[P]`` degrees, each > its ``k``.
        k: ``[P]`` how many to draw per row (``0 <= k <= width``).
        width: the largest ``k``.
        generator: random source (None: the device's default generator).
        uniform_k: every row has ``k == width`` (skips masking).

    Returns:
        ``[P, width]`` offsets, rows padded with -1 after their first ``k`` entries.
    """
    steps = torch.arange(width, device=deg.device)
    u = torch.rand((deg.numel(), width), generator=generator, dtype=torch.float64, device=deg.device)
    j = (deg - k).unsqueeze(1) + steps  # [P, width]: j_i = deg - k + i
    chosen = torch.minimum((u * (j + 1)).long(), j)  # t_i, uniform in [0, j_i]
    for i in range(1, width):  # t_0 is always kept
        taken = (chosen[:, :i] == chosen[:, i : i + 1]).any(1)
        chosen[:, i] = torch.where(taken, j[:, i], chosen[:, i])
    if not uniform_k:  # steps i >= k of a row are only compared with later steps, never earlier ones
        chosen = torch.where(steps < k.unsqueeze(1), chosen, -1)
    return chosen


def sample_segments(
    seg_start: Tensor, seg_deg: Tensor, k: Tensor, generator: torch.Generator | None, width: int
) -> tuple[Tensor, Tensor]:
    """Uniform sampling without replacement of up to ``k`` in-edges per segment.

    A segment with ``deg <= k`` (or ``k < 0``) keeps all its edges; one with ``deg > k`` keeps a uniform
    random ``k``-subset (:func:`floyd_subsets`).

    Args:
        seg_start: ``[S]`` first position of each segment in the fused ``row`` array.
        seg_deg: ``[S]`` degree of each segment.
        k: ``[S]`` fan-out of each segment (-1: all).
        generator: random source.
        width: the largest non-negative ``k`` (0 when all are -1).

    Returns:
        ``(out_seg, pos)``: for each sampled edge, the segment it belongs to and its position in the fused
        ``row`` array, grouped by segment in segment order.
    """
    device = seg_deg.device
    take_all = (k < 0) | (seg_deg <= k)
    n_out = torch.where(take_all, seg_deg, k)
    first = n_out.cumsum(0) - n_out
    total = int(n_out.sum())
    out_seg = segment_ids(n_out, first, total)
    # Take-all segments: the i-th output of a segment is its i-th edge, at seg_start + i. One spare slot
    # at the end absorbs the writes of padding entries below.
    pos = torch.empty(total + 1, dtype=torch.long, device=device)
    pos[:total] = torch.arange(total, device=device) + (seg_start - first).index_select(0, out_seg)
    partial = (~take_all).nonzero().view(-1)
    if partial.numel() > 0:
        k_partial = k.index_select(0, partial)
        uniform_k = bool((k_partial == width).all())
        chosen = floyd_subsets(seg_deg.index_select(0, partial), k_partial, width, generator, uniform_k)
        slots = first.index_select(0, partial).unsqueeze(1) + torch.arange(width, device=device)
        if not uniform_k:
            slots = torch.where(chosen >= 0, slots, total)
        pos.scatter_(0, slots.view(-1), (chosen + seg_start.index_select(0, partial).unsqueeze(1)).view(-1))
    return out_seg, pos[:total]


def add_nodes(
    node_map: Tensor, cand: Tensor, cand_type: Tensor, type_count: Tensor, num_types: int
) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
    """Give candidate nodes not yet in the subgraph their local ids, in order of first appearance.

    Local ids count per node type: a new node of type ``t`` gets the next free id of type ``t``.
    ``node_map`` (global id → local id, :data:`ABSENT` when not in the subgraph) and ``type_count`` are
    updated in place.

    Args:
        node_map: ``[N_total]`` global id → local id table (:data:`MAP_DTYPE`).
        cand: ``[C]`` candidate global ids (duplicates allowed), grouped by node type.
        cand_type: ``[C]`` their node-type indices, non-decreasing.
        type_count: ``[T]`` nodes of each type in the subgraph so far.
        num_types: ``T``.

    Returns:
        ``(local, new_global, new_type, new_local, new_count)``: the local id of every candidate; the
        newly added nodes' global ids, types and local ids, grouped by type (first appearance order within
        a type); and ``[T]`` how many were added per type.
    """
    device = cand.device
    if cand.numel() >= PENDING:
        raise ValueError(f"too many candidates for one hop: {cand.numel()} (at most {PENDING - 1})")
    pos = torch.arange(cand.numel(), device=device, dtype=MAP_DTYPE)
    # One scatter and one gather over the (large) table: a node already in the subgraph keeps its local id,
    # which is below PENDING; a new one ends up holding PENDING + its first position (`amin` is
    # deterministic on every device, unlike a plain scatter with duplicates).
    node_map.scatter_reduce_(0, cand, pos + PENDING, reduce="amin")
    is_first = node_map.index_select(0, cand) - PENDING == pos
    at = is_first.nonzero().view(-1)  # first appearances: grouped by type, as the candidates are
    new_global, new_type = cand.index_select(0, at), cand_type.index_select(0, at)
    new_count = torch.bincount(new_type, minlength=num_types)
    type_start = new_count.cumsum(0) - new_count
    new_local = (
        torch.arange(at.numel(), device=device)
        - type_start.index_select(0, new_type)
        + type_count.index_select(0, new_type)
    )
    node_map.index_copy_(0, new_global, new_local.to(MAP_DTYPE))  # replaces every PENDING entry written above
    type_count += new_count
    return node_map.index_select(0, cand).long(), new_global, new_type, new_local, new_count


class Subgraph(NamedTuple):
    """One sampled subgraph, listed per node type and per edge type (in the fused order)."""

    #: per node type, the nodes' ids within the type, in local-id order (seeds first)
    nodes: list[Tensor]
    #: per edge type, ``(row, col, edge)``: local source and destination ids, position in the type's CSC
    edges: list[tuple[Tensor, Tensor, Tensor]]
    #: per node type, nodes added per hop (hop 0: the seeds)
    nodes_per_hop: list[list[int]]
    #: per edge type, edges added per hop
    edges_per_hop: list[list[int]]


def sample_subgraph(
    csc: FusedCSC,
    node_offset: Tensor,
    node_map: Tensor,
    seeds: list[Tensor],
    fanout: list[Tensor],
    width: list[int],
    generator: torch.Generator | None,
) -> Subgraph:
    """Directional, non-disjoint multi-hop neighbour sampling around ``seeds``.

    Each hop expands the nodes first reached in the previous one: segments are every (edge type,
    frontier node of its destination type), edge types in fused order; the frontier is grouped by node
    type, so each edge type takes a contiguous slice of it.

    Args:
        csc: the fused graph.
        node_offset: ``[T]`` first global id of each node type.
        node_map: ``[N_total]`` all :data:`ABSENT`; used as scratch, and all :data:`ABSENT` again on return
            (after an error its content is undefined: drop it).
        seeds: per node type, ``[B_t]`` seed ids within the type (possibly empty).
        fanout: per hop, ``[R]`` fan-out of each edge type (-1: all, 0: none).
        width: per hop, the largest fan-out.
        generator: random source.

    Returns:
        The subgraph.
    """
    dev, offset = node_map.device, node_offset
    num_types, num_rels = node_offset.numel(), csc.src_type.numel()
    type_count = torch.tensor([s.numel() for s in seeds], dtype=torch.long, device=dev)
    frontier_type = torch.repeat_interleave(torch.arange(num_types, device=dev), type_count)
    frontier = torch.cat(seeds) + offset.index_select(0, frontier_type)
    frontier_local = torch.cat([torch.arange(s.numel(), device=dev) for s in seeds])
    node_map.scatter_reduce_(0, frontier, frontier_local.to(MAP_DTYPE), reduce="amin")  # repeated seed: first id
    all_global, all_type, all_local = [frontier], [frontier_type], [frontier_local]
    once = node_map.index_select(0, frontier) == frontier_local
    frontier, frontier_type, frontier_local = frontier[once], frontier_type[once], frontier_local[once]
    frontier_count = torch.bincount(frontier_type, minlength=num_types)
    hop_counts = [type_count.clone()]
    hop_edges: list[tuple[Tensor, Tensor, Tensor, Tensor, Tensor]] = []
    for hop, k in enumerate(fanout):
        per_rel = frontier_count.index_select(0, csc.dst_type) * (k != 0)
        rel_first = per_rel.cumsum(0) - per_rel
        seg_rel = segment_ids(per_rel, rel_first, int(per_rel.sum()))
        type_first = frontier_count.cumsum(0) - frontier_count
        slice_shift = type_first.index_select(0, csc.dst_type) - rel_first
        at = torch.arange(seg_rel.numel(), device=dev) + slice_shift.index_select(0, seg_rel)
        seg_shift = csc.seg_offset - offset.index_select(0, csc.dst_type)
        seg = frontier.index_select(0, at) + seg_shift.index_select(0, seg_rel)
        start, deg = unpack_segments(csc.seg.index_select(0, seg))
        out_seg, pos = sample_segments(start, deg, k.index_select(0, seg_rel), generator, width[hop])
        rel = seg_rel.index_select(0, out_seg)
        src_type = csc.src_type.index_select(0, rel)
        src = csc.row.index_select(0, pos).long()
        row, new_global, new_type, new_local, new_count = add_nodes(node_map, src, src_type, type_count, num_types)
        col = frontier_local.index_select(0, at).index_select(0, out_seg)
        edge = pos - csc.row_offset.index_select(0, rel)
        hop_edges.append((rel, torch.bincount(rel, minlength=num_rels), row, col, edge))
        all_global.append(new_global)
        all_type.append(new_type)
        all_local.append(new_local)
        hop_counts.append(new_count)
        frontier, frontier_type, frontier_local, frontier_count = new_global, new_type, new_local, new_count
    node_map.index_fill_(0, torch.cat(all_global), ABSENT)  # only touched entries: O(subgraph), not O(graph)
    return _assemble(node_offset, num_rels, all_global, all_type, all_local, hop_counts, hop_edges, type_count)


def _assemble(
    node_offset: Tensor,
    num_rels: int,
    all_global: list[Tensor],
    all_type: list[Tensor],
    all_local: list[Tensor],
    hop_counts: list[Tensor],
    hop_edges: list[tuple[Tensor, Tensor, Tensor, Tensor, Tensor]],
    type_count: Tensor,
) -> Subgraph:
    """Lay nodes out per type (by local id) and edges per edge type (hop by hop), without sorting."""
    dev = node_offset.device
    node_type = torch.cat(all_type)
    type_base = type_count.cumsum(0) - type_count
    flat = torch.empty(int(type_count.sum()), dtype=torch.long, device=dev)
    flat.scatter_(
        0,
        type_base.index_select(0, node_type) + torch.cat(all_local),
        torch.cat(all_global) - node_offset.index_select(0, node_type),
    )
    nodes = list(flat.split(type_count.tolist()))

    # Within a hop, edges already come grouped by edge type in edge-type order; each one's place in the
    # output is an arithmetic shift of its place in the hop, looked up per (hop, edge type).
    num_hops = len(hop_edges)
    per_hop = (
        torch.stack([e[1] for e in hop_edges]) if hop_edges else torch.zeros(0, num_rels, dtype=torch.long, device=dev)
    )  # [H, R]
    totals = per_hop.sum(0)
    rel_base = totals.cumsum(0) - totals
    hop_base = per_hop.cumsum(0) - per_hop
    in_hop_start = per_hop.cumsum(1) - per_hop
    shift = rel_base.unsqueeze(0) + hop_base - in_hop_start  # [H, R]
    num_edges = int(totals.sum())
    out = [torch.empty(num_edges, dtype=torch.long, device=dev) for _ in range(3)]
    for h, (rel, _, *values) in enumerate(hop_edges):
        dest = torch.arange(rel.numel(), device=dev) + shift[h].index_select(0, rel)
        for target, value in zip(out, values):
            target.scatter_(0, dest, value)
    sizes = totals.tolist()
    parts = [t.split(sizes) for t in out]
    edges = [(parts[0][r], parts[1][r], parts[2][r]) for r in range(num_rels)]
    n_edges = per_hop.t().tolist() if num_hops else [[] for _ in range(num_rels)]
    return Subgraph(nodes, edges, torch.stack(hop_counts, 1).tolist(), n_edges)
