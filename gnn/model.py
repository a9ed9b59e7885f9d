"""Heterogeneous GraphSAGE with three risk heads (collusion, promotion abuse, bot farm).

A plain ``nn.Module``: the training loop, data loading and checkpointing live elsewhere.
"""

from __future__ import annotations

import functools
import warnings
from collections.abc import Callable
from typing import cast

import torch
from torch import Tensor, nn
from torch_geometric.nn import HeteroConv, SAGEConv
from torch_geometric.typing import EdgeType, Metadata, NodeType

from graph.schema import ACCOUNT, THREATS


class RiskSAGE(nn.Module):
    r"""Heterogeneous GraphSAGE over the account–identifier graph, scoring accounts for each threat.

    Every node type is first projected to ``hidden`` dimensions. Each layer is a :class:`HeteroConv` of
    one mean-aggregating :class:`SAGEConv` per edge type (forward and reverse), summed per destination
    type, followed by a residual connection, :class:`LayerNorm` and dropout:

    .. math::
        h^{(l+1)}_v = \mathrm{Dropout}\big(\mathrm{LN}(h^{(l)}_v + \mathrm{ReLU}(\textstyle\sum_{r}
        \mathrm{SAGE}_r(h^{(l)})_v))\big)

    The head reads the account's input projection and its last layer side by side (a jumping-knowledge
    skip), so what the account is and what surrounds it both reach the logits.

    Args:
        metadata: ``(node_types, edge_types)`` of the graph (``HeteroData.metadata()``).
        in_channels: input feature width per node type.
        hidden: hidden width.
        num_layers: message-passing layers (2 reaches accounts sharing an identifier).
        dropout: dropout after each layer.
        num_threats: output logits per scored node.
        target_type: the node type scored (the exchange: ``Account``; any graph's node type for research).

    Shapes:
        - **input:** ``x_dict[t]`` ``[N_t, in_channels[t]]``; ``edge_index_dict[r]`` ``[2, E_r]``
        - **output:** ``[N_target, num_threats]`` logits (``N_Account`` on the exchange)

    :meth:`inference` gives the same logits for a whole graph layer by layer, in bounded memory.
    """

    def __init__(
        self,
        metadata: Metadata,
        in_channels: dict[NodeType, int],
        hidden: int = 64,
        num_layers: int = 2,
        dropout: float = 0.2,
        num_threats: int = len(THREATS),
        target_type: NodeType = ACCOUNT.label,
    ) -> None:
        super().__init__()
        node_types, edge_types = metadata
        if target_type not in node_types:
            raise ValueError(f"metadata must include the {target_type!r} node type, got {node_types}")
        self.target_type = target_type
        if num_layers < 1:
            raise ValueError(f"num_layers must be >= 1, got {num_layers}")
        self.node_types = list(node_types)
        self.edge_types: list[EdgeType] = [(e[0], e[1], e[2]) for e in edge_types]
        self.encoders = nn.ModuleDict({t: nn.Linear(in_channels[t], hidden) for t in self.node_types})
        self.convs = nn.ModuleList(
            HeteroConv({e: SAGEConv((hidden, hidden), hidden, aggr="mean") for e in self.edge_types}, aggr="sum")
            for _ in range(num_layers)
        )
        self.norms = nn.ModuleList(
            nn.ModuleDict({t: nn.LayerNorm(hidden) for t in self.node_types}) for _ in range(num_layers)
        )
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Sequential(nn.Linear(2 * hidden, hidden), nn.ReLU(), nn.Linear(hidden, num_threats))

    def forward(self, x_dict: dict[NodeType, Tensor], edge_index_dict: dict[EdgeType, Tensor]) -> Tensor:
        """Logits per account (every account in ``x_dict``; slice the seeds out for mini-batches)."""
        h = {t: torch.relu(self.encoders[t](x)) for t, x in x_dict.items()}
        h0 = h[self.target_type]
        for conv, norms in zip(self.convs, self.norms):
            edges = {e: ei for e, ei in edge_index_dict.items() if ei.numel() > 0}
            out: dict[NodeType, Tensor] = conv(h, edges)
            norm = cast(nn.ModuleDict, norms)
            h = {t: self.dropout(norm[t](h[t] + torch.relu(out[t]) if t in out else h[t])) for t in h}
        return self.head(torch.cat([h0, h[self.target_type]], dim=-1))

    @torch.no_grad()
    def inference(
        self,
        x_dict: dict[NodeType, Tensor],
        edge_index_dict: dict[EdgeType, Tensor],
        chunk: int = 200_000,
        on_layer: Callable[[int, dict[NodeType, Tensor]], None] | None = None,
    ) -> Tensor:
        """:meth:`forward` in eval mode over a whole graph, one layer at a time, each layer over chunks of
        ``chunk`` destination nodes (as PyG's layer-wise ``inference`` examples do).

        Memory holds two layers' embeddings of every node and one chunk's messages, instead of every edge
        type's messages and outputs of the whole graph at once (the one-pass forward was killed by memory at
        1M accounts on a 24 GiB machine). The logits equal :meth:`forward`'s up to float summation order.
        ``on_layer(l, h)``, when given, sees every node's embeddings after the input projection (``l = 0``) and
        after each layer ``l = 1 … num_layers`` (the online API's feature store keeps the inner layers).

        Shapes:
            - **input:** as :meth:`forward`
            - **output:** ``[N_Account, num_threats]`` logits, on the inputs' device
        """
        if chunk < 1:
            raise ValueError(f"chunk must be >= 1, got {chunk}")
        was_training = self.training
        self.eval()
        try:
            edges = {e: _by_destination(ei, len(x_dict[e[2]])) for e, ei in edge_index_dict.items() if ei.numel() > 0}
            h = {t: _chunked(self._encode(t), x, chunk) for t, x in x_dict.items()}
            h0 = h[self.target_type]
            if on_layer is not None:
                on_layer(0, h)
            for layer, (conv, norms) in enumerate(zip(self.convs, self.norms), start=1):
                norm = cast(nn.ModuleDict, norms)
                h = {t: self._layer(conv, norm, h, t, edges, chunk) for t in h}
                if on_layer is not None:
                    on_layer(layer, h)
            both = torch.cat([h0, h[self.target_type]], dim=-1)
            return _chunked(self.head, both, chunk)
        finally:
            self.train(was_training)

    def _encode(self, t: NodeType) -> Callable[[Tensor], Tensor]:
        return lambda x: torch.relu(self.encoders[t](x))

    @staticmethod
    def _layer(
        conv: HeteroConv,
        norm: nn.ModuleDict,
        h: dict[NodeType, Tensor],
        t: NodeType,
        edges: dict[EdgeType, tuple[Tensor, Tensor, Tensor]],
        chunk: int,
    ) -> Tensor:
        """One layer's output for node type ``t``, chunk by chunk of destination nodes.

        A mean-aggregating :class:`SAGEConv` gets the chunk's edges as a CSR adjacency (rows: destinations):
        PyG then aggregates with one sparse-dense product instead of gathering a message per edge and
        scattering them back (the same mean, summed in the same edge order per destination)."""
        incoming = [(e, c) for e, c in conv.convs.items() if tuple(e) in edges and e[2] == t]
        if not incoming:
            return h[t]
        out = torch.empty_like(h[t])
        for lo in range(0, len(h[t]), chunk):
            hi = min(len(h[t]), lo + chunk)
            messages = []
            for e, c in incoming:
                src, dst, ptr = edges[tuple(e)]
                a, b = int(ptr[lo]), int(ptr[hi])
                pair = (h[e[0]], h[t][lo:hi])
                if isinstance(c, SAGEConv) and str(c.aggr) == "mean":
                    messages.append(c(pair, _csr(ptr[lo : hi + 1] - a, src[a:b], len(h[e[0]]), h[t].dtype)))
                else:
                    local = torch.stack([src[a:b], dst[a:b] - lo])
                    messages.append(c(pair, local, size=(len(h[e[0]]), hi - lo)))
            out[lo:hi] = norm[t](h[t][lo:hi] + torch.relu(functools.reduce(torch.add, messages)))
        return out


def _csr(crow: Tensor, col: Tensor, num_src: int, dtype: torch.dtype) -> Tensor:
    """A ``[len(crow) - 1, num_src]`` CSR adjacency of ones (rows: destinations; built from valid indices, so
    PyTorch's invariant checks are skipped)."""
    ones = torch.ones(len(col), dtype=dtype, device=col.device)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta")
        return torch.sparse_csr_tensor(crow, col, ones, size=(len(crow) - 1, num_src), check_invariants=False)


def _by_destination(edge_index: Tensor, num_dst: int) -> tuple[Tensor, Tensor, Tensor]:
    """``(src, dst, ptr)``: the edges in destination order (stable; no sort when already in it) and where each
    destination's edges start (``ptr[v] : ptr[v + 1]``, ``num_dst + 1`` entries)."""
    src, dst = edge_index[0], edge_index[1]
    if len(dst) > 1 and not bool((dst[1:] >= dst[:-1]).all()):
        order = torch.argsort(dst, stable=True)
        src, dst = src[order], dst[order]
    ptr = torch.searchsorted(dst, torch.arange(num_dst + 1, device=dst.device, dtype=dst.dtype))
    return src, dst, ptr


def _chunked(fn: Callable[[Tensor], Tensor], x: Tensor, chunk: int) -> Tensor:
    """``fn`` applied row-chunk by row-chunk (an empty input still goes through once, for the output width)."""
    return torch.cat([fn(x[lo : lo + chunk]) for lo in range(0, max(len(x), 1), chunk)])
