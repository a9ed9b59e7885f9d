"""Model variants to compare in the protocol: the example of swapping the GNN.

Any ``torch.nn.Module`` called as ``module(x_dict, edge_index_dict)`` that returns ``[N_target, num_outputs]``
logits can be trained by :class:`gnn.graph_model.GraphRiskModel` and compared by
:func:`gnn.research.protocol.run_bench`: pass a factory ``f(data, num_outputs, target_type) -> module``::

    from gnn.research.variants import hetero_gat
    run_bench(ds, "semi", 5, variants={"gat": hetero_gat})
"""

from __future__ import annotations

from typing import cast

import torch
from torch import Tensor, nn
from torch_geometric.data import HeteroData
from torch_geometric.nn import GATConv, HeteroConv
from torch_geometric.typing import EdgeType, NodeType


class HeteroGAT(nn.Module):
    """A heterogeneous GAT: per edge type a :class:`GATConv` (``heads`` heads, concatenated), summed per node
    type, with residual connections and layer norm, and a linear head on the target nodes.

    Args:
        metadata: ``(node_types, edge_types)`` of the graph.
        in_channels: input feature width per node type.
        num_outputs: logits per target node.
        target_type: the node type scored.
        hidden: hidden width (divisible by ``heads``).
        heads: attention heads.
        num_layers: message-passing layers.

    Shapes:
        - **input:** ``x_dict[t]`` ``[N_t, in_channels[t]]``; ``edge_index_dict[r]`` ``[2, E_r]``
        - **output:** ``[N_target, num_outputs]`` logits
    """

    def __init__(
        self,
        metadata: tuple[list[NodeType], list[EdgeType]],
        in_channels: dict[NodeType, int],
        num_outputs: int,
        target_type: NodeType,
        hidden: int = 64,
        heads: int = 4,
        num_layers: int = 2,
    ) -> None:
        super().__init__()
        if hidden % heads:
            raise ValueError(f"hidden ({hidden}) must be divisible by heads ({heads})")
        node_types, edge_types = metadata
        self.target_type = target_type
        self.encoders = nn.ModuleDict({t: nn.Linear(in_channels[t], hidden) for t in node_types})
        self.convs = nn.ModuleList(
            HeteroConv(
                {e: GATConv((hidden, hidden), hidden // heads, heads=heads, add_self_loops=False) for e in edge_types},
                aggr="sum",
            )
            for _ in range(num_layers)
        )
        self.norms = nn.ModuleList(
            nn.ModuleDict({t: nn.LayerNorm(hidden) for t in node_types}) for _ in range(num_layers)
        )
        self.head = nn.Linear(hidden, num_outputs)

    def forward(self, x_dict: dict[NodeType, Tensor], edge_index_dict: dict[EdgeType, Tensor]) -> Tensor:
        h = {t: torch.relu(self.encoders[t](x)) for t, x in x_dict.items()}
        for conv, norms in zip(self.convs, self.norms):
            out = conv(h, {e: ei for e, ei in edge_index_dict.items() if ei.numel() > 0})
            norm = cast(nn.ModuleDict, norms)
            h = {t: norm[t](h[t] + torch.relu(out[t])) if t in out else h[t] for t in h}
        return self.head(h[self.target_type])


def hetero_gat(data: HeteroData, num_outputs: int, target_type: str) -> nn.Module:
    """A :class:`HeteroGAT` for ``data`` (a :data:`gnn.graph_model.GnnFactory`)."""
    in_channels = {t: int(data[t].x.shape[1]) for t in data.node_types}
    node_types, edge_types = data.metadata()
    return HeteroGAT((list(node_types), list(edge_types)), in_channels, num_outputs, target_type)
