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


def fuse_csc(colptrs: list[Tensor], rows: list[Tensor], src_type: list[int], dst_type: list[int],
             node_offset: list[int], num_nodes: int, device: torch.device,
             leaves: list[Tensor | None] | None = None) -> FusedCSC:
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
    seg_deg = torch.cat([
        (c[1:] - c[:-1]).masked_fill(leaf, 0) if leaf is not None else c[1:] - c[:-1]
        for c, leaf in zip(colptrs, leaves or [None] * len(colptrs))
    ])
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


def floyd_subsets(deg: Tensor, k: Tensor, width: int, generator: torch.Generator | None,
                  uniform_k: bool) -> Tensor:
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


def sample_segments(seg_start: Tensor, seg_deg: Tensor, k: Tensor, generator: torch.Generator | None,
                    width: int) -> tuple[Tensor, Tensor]:
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


def add_nodes(node_map: Tensor, cand: Tensor, cand_type: Tensor, type_count: Tensor,
              num_types: int) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
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
    new_local = (torch.arange(at.numel(), device=device) - type_start.index_select(0, new_type)
                 + type_count.index_select(0, new_type))
    node_map.index_copy_(0, new_global, new_local.to(MAP_DTYPE))  # replaces every PENDING entry written above
    type_count += new_count
    return node_map.index_select(0, cand).long(), new_global, new_type, new_local, new_count
