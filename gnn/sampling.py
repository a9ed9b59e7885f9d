"""Mini-batch neighbour sampling for the risk graph, with or without PyG's compiled extensions.

PyG's :class:`~torch_geometric.loader.NeighborLoader` samples through ``pyg-lib`` or ``torch-sparse``,
neither of which has wheels for our torch. :class:`TorchNeighborSampler` is a drop-in
:class:`~torch_geometric.sampler.NeighborSampler` whose ``_sample`` is vectorised PyTorch, so
``NeighborLoader(data, ..., neighbor_sampler=TorchNeighborSampler(data, ...))`` works on a bare install, on
CPU or CUDA, for ``Data`` and ``HeteroData`` (and so for ``to_hetero`` models). :func:`make_neighbor_loader`
picks PyG's own sampler when an extension is importable and ours otherwise.

What is sampled (the semantics of PyG's default, ``subgraph_type="directional"``, ``disjoint=False``):
    * Hop ``h`` expands every node first reached in hop ``h - 1`` (hop 0: the seeds). For each such node
      and each edge type pointing into it, ``k`` in-neighbours are drawn uniformly *without replacement*,
      ``k = num_neighbors[edge type][h]``; all of them when the degree is ``<= k`` or ``k == -1``.
    * Nodes are deduplicated per node type across hops; the seeds come first, in the given order, then
      each hop's new nodes in order of first appearance. Every node is expanded at most once.
    * The output is PyG's :class:`SamplerOutput` / :class:`HeteroSamplerOutput`: ``node`` (global ids),
      ``row``/``col`` (local source/destination ids), ``edge`` (CSC edge positions, mapped back through the
      sampler's ``edge_permutation`` by the loader), ``num_sampled_nodes`` (per hop, seeds included) and
      ``num_sampled_edges`` (per hop).
    * Randomness comes from ``generator`` (or the device's default generator, so ``torch.manual_seed``
      governs it): the same seed gives the same subgraphs on a given device (CPU and CUDA draw different
      streams).

How (see :mod:`gnn.sampling_kernels`): all edge types' CSC arrays are fused into one, so a hop is a fixed
number of tensor operations whatever the number of seeds or edge types — the only Python loops are over
hops and over the fan-out width inside Floyd's subset sampling. Nodes are deduplicated through a
global-id → local-id table the size of the graph, reset entry by entry after each batch. On the
200k-account synthetic exchange (1.3M nodes, 3.9M edges, fan-out [10, 10], 1024 seeds) a batch of ~76k
nodes and ~102k edges takes ~10 ms of one CPU core, about a third of torch-sparse's C++ sampler on the
same seeds (``bench/sampler.py``); batch sizes agree with it to 0.01 %.

Super-nodes:
    A carrier-grade NAT IP, a public Wi-Fi, an exchange's deposit wallet is shared by thousands of
    accounts. Through it every one of them is "two hops" from every other, so a plain sampler spends its
    fan-out on a random handful of strangers: that sample says nothing about a ring (it is a draw from
    the whole population), dilutes the signal from the devices and cards a ring really shares, and lets
    fraudsters hide behind a busy carrier. Fan-out alone bounds the *cost*, not this noise.

    The rule, with ``supernode_cap=c``: an identifier node (a node type of
    :data:`graph.schema.IDENTIFIER_NODES`, or those named in ``supernode_types``) used by more than ``c``
    distinct accounts becomes a **leaf**. It is still sampled as a neighbour of the accounts that use it,
    with its own features (so the model can learn "this account sits behind a shared IP"), but it is never
    expanded: no edge *into* it is sampled, so no other account's message passes through it. Accounts are
    never capped.

    Why this rule rather than a smaller fan-out for big identifiers: it is deterministic and a pure
    function of the graph, so full-graph inference can apply exactly the same rule by deleting the edges
    into super-nodes (:func:`drop_supernode_in_edges`) — a 2-layer model then computes the same account
    embeddings from a ``num_neighbors=[-1, -1]`` sample as from the whole graph. It matches the
    gradient-boosted baseline (:func:`gnn.baseline.neighbourhood_features`), which keeps super-nodes in
    the 1-hop mean and leaves them out of the 2-hop one. Dropping super-nodes altogether would hide
    the fact of sharing a busy identifier, which is itself informative. With PyG's own sampler the rule
    is applied the same way: :func:`make_neighbor_loader` hands it the graph without those edges.
"""

from __future__ import annotations

import threading
import warnings
from typing import Any, Literal

import torch
import torch_geometric.typing
from torch import Tensor
from torch_geometric.data import Data, HeteroData
from torch_geometric.loader import NeighborLoader
from torch_geometric.sampler import HeteroSamplerOutput, NeighborSampler, SamplerOutput
from torch_geometric.sampler.base import SubgraphType

from gnn.sampling_kernels import ABSENT, MAP_DTYPE, Subgraph, distinct_in_degree, fuse_csc, sample_subgraph
from graph.schema import IDENTIFIER_NODES, EdgeType, NodeType

SamplerBackend = Literal["auto", "pyg", "torch"]

#: NeighborLoader arguments that configure the sampler rather than the data loader.
_SAMPLER_ARGS = ("subgraph_type", "replace", "disjoint", "time_attr", "weight_attr", "is_sorted", "share_memory")


def _identifier_types(data: HeteroData, node_types: list[NodeType] | None) -> list[NodeType]:
    if node_types is None:
        return [spec.label for spec in IDENTIFIER_NODES if spec.label in data.node_types]
    unknown = sorted(set(node_types) - set(data.node_types))
    if unknown:
        raise ValueError(f"supernode_types names node types not in the graph: {unknown}")
    return list(node_types)


def supernode_mask(data: HeteroData, cap: int, node_types: list[NodeType] | None = None) -> dict[NodeType, Tensor]:
    """Which identifier nodes are super-nodes: more than ``cap`` distinct accounts (in-neighbours).

    Args:
        data: the graph. A node's degree sums distinct sources over every edge type pointing into it.
        cap: the largest degree a node may have and still be expanded.
        node_types: node types that may be super-nodes; default: the schema's identifier types present in
            the graph.

    Returns:
        node type → ``[N_t]`` bool, for the eligible node types only.
    """
    if cap < 0:
        raise ValueError(f"cap must be >= 0, got {cap}")
    types = _identifier_types(data, node_types)
    edges: dict[NodeType, list[Tensor]] = {t: [] for t in types}
    for (_, _, dst), store in data.edge_items():
        if dst in edges:
            edges[dst].append(store.edge_index.cpu())
    return {t: _over_cap(edges[t], data[t].num_nodes, cap) for t in types}


def _homogeneous_supernode_mask(data: Data, cap: int) -> Tensor:
    """:func:`supernode_mask` for a homogeneous graph: every node may be a super-node."""
    if cap < 0:
        raise ValueError(f"cap must be >= 0, got {cap}")
    return _over_cap([data.edge_index.cpu()], data.num_nodes, cap)


def _over_cap(edge_indices: list[Tensor], num_nodes: int, cap: int) -> Tensor:
    """``[num_nodes]`` bool: more than ``cap`` distinct sources, summed over the given edge indices."""
    raw = torch.zeros(num_nodes, dtype=torch.long)
    for src_dst in edge_indices:
        raw += torch.bincount(src_dst[1], minlength=num_nodes)
    maybe = raw > cap  # parallel edges only lower the count: only these need the (sorting) distinct count
    if not bool(maybe.any()):
        return maybe
    distinct = torch.zeros(num_nodes, dtype=torch.long)
    for src_index, dst_index in edge_indices:
        keep = maybe[dst_index]
        distinct += distinct_in_degree(src_index[keep], dst_index[keep], num_nodes)
    return distinct > cap


def drop_supernode_in_edges(
    data: Data | HeteroData, cap: int, node_types: list[NodeType] | None = None
) -> Data | HeteroData:
    """The graph without the edges into super-nodes: the full-graph form of the sampler's leaf rule.

    Edge attributes are filtered alongside; nodes and their features are shared, not copied.

    Args:
        data: the graph.
        cap: see :func:`supernode_mask`.
        node_types: see :func:`supernode_mask`.

    Returns:
        A new graph object of the same type.
    """
    if isinstance(data, HeteroData):
        masks = supernode_mask(data, cap, node_types)
        keep = {et: ~masks[et[2]][store.edge_index[1].cpu()] for et, store in data.edge_items() if et[2] in masks}
        return data.edge_subgraph({et: k.nonzero().view(-1) for et, k in keep.items()})
    mask = _homogeneous_supernode_mask(data, cap)
    return data.edge_subgraph((~mask[data.edge_index[1].cpu()]).nonzero().view(-1))


class TorchNeighborSampler(NeighborSampler):
    r"""PyG's neighbour sampler with a vectorised pure-PyTorch ``_sample`` (no pyg-lib or torch-sparse).

    Uniform sampling without replacement, ``directional`` subgraphs, not disjoint (see the module
    docstring for the exact semantics and the super-node rule). Pass it to
    :class:`~torch_geometric.loader.NeighborLoader` as ``neighbor_sampler=``.

    Args:
        data: the graph (``Data`` or ``HeteroData``). The CSC conversion is PyG's own.
        num_neighbors: fan-out per hop, as for ``NeighborLoader`` (a list, or a dict per edge type);
            -1 takes all neighbours.
        supernode_cap: make identifier nodes with more than this many distinct accounts leaves (None: off).
        supernode_types: node types the cap applies to; default the schema's identifier types. For
            ``Data`` the cap applies to every node.
        generator: random source; its device must be ``device``. None: the device's default generator.
            In ``DataLoader`` worker processes a per-worker generator is derived from its seed.
        device: where sampling runs and the output lives (default CPU). Seeds are moved there.
        num_threads: torch intra-op threads while sampling on CPU (restored afterwards); None leaves
            torch's setting. Default 1: the kernels run many mid-sized operations, which gain little from
            threads and lose badly when the cores are busy (an OpenMP team waiting on a descheduled
            thread turned a 10 ms batch into 200 ms on a loaded 2-core machine).
        subgraph_type: ``"directional"`` (default) or ``"bidirectional"``; ``"induced"`` is not supported.
        replace: must be False (sampling is without replacement).
        disjoint: must be False.
        time_attr: must be None (no temporal sampling).
        weight_attr: must be None (no weighted sampling).
        is_sorted: edges are already sorted by destination (passed to PyG's CSC conversion).
        share_memory: put the CSC arrays in shared memory (passed to PyG).
    """

    def __init__(
        self,
        data: Data | HeteroData,
        num_neighbors: Any,
        *,
        supernode_cap: int | None = None,
        supernode_types: list[NodeType] | None = None,
        generator: torch.Generator | None = None,
        device: torch.device | str | None = None,
        num_threads: int | None = 1,
        subgraph_type: SubgraphType | str = "directional",
        replace: bool = False,
        disjoint: bool = False,
        time_attr: str | None = None,
        weight_attr: str | None = None,
        is_sorted: bool = False,
        share_memory: bool = False,
    ) -> None:
        if not isinstance(data, (Data, HeteroData)):
            raise ValueError(f"data must be a Data or HeteroData, got {type(data).__name__}")
        for name, value, allowed in (
            ("replace", replace, False),
            ("disjoint", disjoint, False),
            ("time_attr", time_attr, None),
            ("weight_attr", weight_attr, None),
        ):
            if value != allowed:
                raise ValueError(f"TorchNeighborSampler does not support {name}={value!r}")
        if SubgraphType(subgraph_type) == SubgraphType.induced:
            raise ValueError("TorchNeighborSampler does not support subgraph_type='induced'")
        if supernode_cap is not None and supernode_cap < 0:
            raise ValueError(f"supernode_cap must be >= 0 or None, got {supernode_cap}")
        if num_threads is not None and num_threads < 1:
            raise ValueError(f"num_threads must be >= 1 or None, got {num_threads}")
        self.device = torch.device(device) if device is not None else torch.device("cpu")
        if generator is not None and generator.device.type != self.device.type:
            raise ValueError(f"generator is on {generator.device}, but device is {self.device}")
        with warnings.catch_warnings():  # PyG warns that sampling without pyg-lib is deprecated
            warnings.filterwarnings("ignore", message=".*without a 'pyg-lib' installation.*")
            super().__init__(
                data, num_neighbors, subgraph_type=subgraph_type, is_sorted=is_sorted, share_memory=share_memory
            )
        self.supernode_cap = supernode_cap
        self.num_threads = num_threads
        self._generator = generator
        self._worker_generator: torch.Generator | None = None
        self._lock = threading.Lock()
        self._node_map: Tensor | None = None
        self._build_fused(data, supernode_types)

    def _build_fused(self, data: Data | HeteroData, supernode_types: list[NodeType] | None) -> None:
        if isinstance(data, HeteroData):
            index = {t: i for i, t in enumerate(self.node_types)}
            # Edge types ordered by source type: each hop's candidates then come grouped by node type.
            edge_types: list[EdgeType] = sorted(self.edge_types, key=lambda et: index[et[0]])
            self._edge_names: list[EdgeType | None] = list(edge_types)
            sizes = [int(self.num_nodes[t]) for t in self.node_types]
            rels = [self.to_rel_type[et] for et in edge_types]
            # PyG's CSC attributes (assigned from untyped helpers, hence getattr for the type checker).
            colptr_dict: dict[str, Tensor] = getattr(self, "colptr_dict")  # noqa: B009
            row_dict: dict[str, Tensor] = getattr(self, "row_dict")  # noqa: B009
            colptrs, rows = [colptr_dict[r] for r in rels], [row_dict[r] for r in rels]
            src_type = [index[et[0]] for et in edge_types]
            dst_type = [index[et[2]] for et in edge_types]
            fanout = self.num_neighbors.get_values(self.edge_types)
            per_hop = [list(hops) for hops in zip(*(fanout[et] for et in edge_types))]
            masks: dict[NodeType, Tensor] = (
                supernode_mask(data, self.supernode_cap, supernode_types) if self.supernode_cap is not None else {}
            )
            leaves = [masks.get(et[2]) for et in edge_types]
        else:
            self._edge_names = [None]
            colptr: Tensor = getattr(self, "colptr")  # noqa: B009
            row: Tensor = getattr(self, "row")  # noqa: B009
            sizes, colptrs, rows, src_type, dst_type = [int(self.num_nodes)], [colptr], [row], [0], [0]
            per_hop = [[k] for k in self.num_neighbors.get_values()]
            leaves = [_homogeneous_supernode_mask(data, self.supernode_cap) if self.supernode_cap is not None else None]
        self._sizes = sizes
        self._node_offset = torch.tensor([0, *sizes[:-1]], dtype=torch.long).cumsum(0).to(self.device)
        self._csc = fuse_csc(
            colptrs, rows, src_type, dst_type, self._node_offset.tolist(), sum(sizes), self.device, leaves
        )
        # PyG's per-type CSC arrays are folded into the fused ones (`perm` stays: the loader maps edge ids
        # through it); dropping them keeps the edges in memory once.
        if isinstance(data, HeteroData):
            self.colptr_dict: dict[str, Tensor] = {}
            self.row_dict: dict[str, Tensor] = {}
        else:
            self.colptr = torch.empty(0, dtype=torch.long)
            self.row = torch.empty(0, dtype=torch.long)
        self._fanout = [torch.tensor(ks, dtype=torch.long, device=self.device) for ks in per_hop]
        self._width = [max([0, *ks]) for ks in per_hop]

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        for transient in ("_lock", "_node_map", "_worker_generator"):
            state[transient] = None
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()

    def _rng(self) -> torch.Generator | None:
        info = torch.utils.data.get_worker_info()
        if self._generator is None or info is None:
            return self._generator
        if self._worker_generator is None:  # workers must not replay one another's random stream
            self._worker_generator = torch.Generator(self.device)
            self._worker_generator.manual_seed(self._generator.initial_seed() + 7919 * (info.id + 1))
        return self._worker_generator

    def _sample(
        self, seed: Tensor | dict[NodeType, Tensor], seed_time: Any = None, **kwargs: Any
    ) -> SamplerOutput | HeteroSamplerOutput:
        if seed_time is not None:
            raise ValueError("TorchNeighborSampler does not support temporal sampling (seed_time given)")
        if isinstance(seed, dict):
            unknown = sorted(set(seed) - set(self.node_types))
            if unknown:
                raise ValueError(f"seed names node types not in the graph: {unknown}")
            seeds = [seed.get(t) for t in self.node_types]
        else:
            seeds = [seed]
        threads, wanted = torch.get_num_threads(), self.num_threads
        switch = wanted is not None and self.device.type == "cpu" and wanted != threads
        with self._lock:
            if wanted is not None and switch:
                torch.set_num_threads(wanted)
            try:
                nodes, edges, n_nodes, n_edges = self._sample_subgraph(seeds)
            finally:
                if switch:
                    torch.set_num_threads(threads)
        if not isinstance(seed, dict):
            ((row, col, edge),) = edges
            return SamplerOutput(
                node=nodes[0],
                row=row,
                col=col,
                edge=edge,
                batch=None,
                num_sampled_nodes=n_nodes[0],
                num_sampled_edges=n_edges[0],
            )
        by_type = {et: (e, n) for et, e, n in zip(self._edge_names, edges, n_edges)}
        ets = self.edge_types  # the graph's order, not the internal one
        return HeteroSamplerOutput(
            node=dict(zip(self.node_types, nodes)),
            row={et: by_type[et][0][0] for et in ets},
            col={et: by_type[et][0][1] for et in ets},
            edge={et: by_type[et][0][2] for et in ets},
            batch=None,
            num_sampled_nodes=dict(zip(self.node_types, n_nodes)),
            num_sampled_edges={et: by_type[et][1] for et in ets},
        )

    def _sample_subgraph(self, seeds: list[Tensor | None]) -> Subgraph:
        """Sample around ``seeds`` (per node type index; None: no seeds of that type)."""
        dev = self.device
        if self._node_map is None:
            self._node_map = torch.full((sum(self._sizes),), ABSENT, dtype=MAP_DTYPE, device=dev)
        seed_local = [
            torch.as_tensor(s, device=dev).long().view(-1)
            if s is not None
            else torch.empty(0, dtype=torch.long, device=dev)
            for s in seeds
        ]
        try:
            return sample_subgraph(
                self._csc, self._node_offset, self._node_map, seed_local, self._fanout, self._width, self._rng()
            )
        except BaseException:
            self._node_map = None  # may hold half-written entries: rebuilt clean on the next call
            raise


def make_neighbor_loader(
    data: Data | HeteroData,
    num_neighbors: Any,
    input_nodes: Any,
    batch_size: int,
    shuffle: bool,
    seed: int,
    supernode_cap: int | None = None,
    *,
    backend: SamplerBackend = "auto",
    supernode_types: list[NodeType] | None = None,
    device: torch.device | str | None = None,
    sampler_threads: int | None = 1,
    **kw: Any,
) -> NeighborLoader:
    """A :class:`~torch_geometric.loader.NeighborLoader` with the best sampler available.

    Args:
        data: the graph.
        num_neighbors: fan-out per hop (list, or dict per edge type); -1 for all.
        input_nodes: seeds, as for ``NeighborLoader`` (e.g. ``("Account", index_tensor)``).
        batch_size: seeds per mini-batch.
        shuffle: shuffle the seeds each pass (driven by ``seed``).
        seed: seeds the shuffle and, with our sampler, the neighbour draws: same seed, same batches.
        supernode_cap: identifiers with more distinct accounts than this become leaves (module docstring);
            None: no cap.
        backend: ``"auto"`` (PyG's sampler when ``pyg-lib`` or ``torch-sparse`` is importable, else ours),
            ``"pyg"`` or ``"torch"`` (force ours). PyG's sampler draws from its own random state, so
            ``seed`` then fixes only the shuffle; with a cap it is handed the graph without the edges into
            super-nodes, so the batches' ``e_id`` then index that graph's edges.
        supernode_types: node types the cap applies to (default: the schema's identifier types).
        device: where our sampler runs (``"torch"`` backend only).
        sampler_threads: intra-op threads our sampler uses (see :class:`TorchNeighborSampler`).
        **kw: further ``NeighborLoader`` / ``DataLoader`` arguments (``num_workers``, ``subgraph_type``,
            ``neighbor_sampler`` to reuse a sampler built earlier, …).

    Returns:
        The loader; each batch is a ``Data``/``HeteroData`` whose first ``batch_size`` nodes of the input
        type are the seeds.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if backend not in ("auto", "pyg", "torch"):
        raise ValueError(f"backend must be 'auto', 'pyg' or 'torch', got {backend!r}")
    has_extension = torch_geometric.typing.WITH_PYG_LIB or torch_geometric.typing.WITH_TORCH_SPARSE
    if backend == "pyg" and not has_extension:
        raise ValueError(
            "backend='pyg' needs pyg-lib or torch-sparse, and neither is importable; use backend='torch' or 'auto'"
        )
    use_ours = backend == "torch" or (backend == "auto" and not has_extension)
    kw.setdefault("generator", torch.Generator().manual_seed(seed))  # the DataLoader's shuffle
    if use_ours and kw.get("neighbor_sampler") is None:
        sampler_args = {name: kw.pop(name) for name in _SAMPLER_ARGS if name in kw}
        dev = torch.device(device) if device is not None else torch.device("cpu")
        kw["neighbor_sampler"] = TorchNeighborSampler(
            data,
            num_neighbors,
            supernode_cap=supernode_cap,
            supernode_types=supernode_types,
            generator=torch.Generator(dev).manual_seed(seed),
            device=dev,
            num_threads=sampler_threads,
            **sampler_args,
        )
    elif not use_ours and supernode_cap is not None:
        data = drop_supernode_in_edges(data, supernode_cap, supernode_types)
    return NeighborLoader(
        data, num_neighbors=num_neighbors, input_nodes=input_nodes, batch_size=batch_size, shuffle=shuffle, **kw
    )
