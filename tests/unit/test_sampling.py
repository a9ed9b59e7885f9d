"""The pure-PyTorch neighbour sampler: validity, fan-out, ordering, determinism, super-nodes, end to end."""

from __future__ import annotations

import itertools

import pytest
import torch
import torch_geometric.typing
from torch_geometric.data import Data, HeteroData
from torch_geometric.nn import SAGEConv, to_hetero
from torch_geometric.sampler import NeighborSampler, NodeSamplerInput

from gnn.sampling import (
    TorchNeighborSampler,
    drop_supernode_in_edges,
    make_neighbor_loader,
    supernode_mask,
)
from gnn.sampling_kernels import floyd_subsets

N_ACC, N_DEV, N_IP = 80, 30, 6
SUPER_IP = 0  # used by the first 50 accounts: a carrier NAT
USED_DEVICE = ("Account", "USED_DEVICE", "Device")
USED_IP = ("Account", "USED_IP", "IP")
TRANSFERRED = ("Account", "TRANSFERRED_TO", "Account")


def _rev(et: tuple[str, str, str]) -> tuple[str, str, str]:
    return (et[2], f"rev_{et[1]}", et[0])


def risk_graph(seed: int = 0) -> HeteroData:
    """Accounts, devices and IPs (forward and reverse edges), transfers between accounts, one super IP."""
    g = torch.Generator().manual_seed(seed)
    data = HeteroData()
    for t, n, f in (("Account", N_ACC, 5), ("Device", N_DEV, 3), ("IP", N_IP, 2)):
        data[t].x = torch.randn(n, f, generator=g)
    dev = torch.stack([torch.arange(N_ACC).repeat(2), torch.randint(0, N_DEV, (2 * N_ACC,), generator=g)])
    ip_src = torch.cat([torch.arange(50), torch.arange(N_ACC), torch.tensor([60, 60])])
    ip_dst = torch.cat(
        [torch.full((50,), SUPER_IP), torch.randint(1, N_IP, (N_ACC,), generator=g), torch.tensor([3, 3])]
    )  # a parallel edge: counts once towards IP 3's degree
    transfers = torch.randint(0, N_ACC, (2, 120), generator=g)
    for et, ei in ((USED_DEVICE, dev), (USED_IP, torch.stack([ip_src, ip_dst])), (TRANSFERRED, transfers)):
        data[et].edge_index = ei
        data[_rev(et)].edge_index = ei.flip(0)
    return data


def homogeneous_graph(seed: int = 0, n: int = 60) -> Data:
    g = torch.Generator().manual_seed(seed)
    ei = torch.cat(
        [
            torch.randint(0, n, (2, 300), generator=g),
            torch.stack([torch.arange(1, n), torch.zeros(n - 1, dtype=torch.long)]),
        ],
        1,
    )  # hub 0
    return Data(x=torch.randn(n, 4, generator=g), edge_index=ei, num_nodes=n)


def sample(sampler: TorchNeighborSampler, seeds: torch.Tensor, input_type: str | None = "Account"):
    return sampler.sample_from_nodes(NodeSamplerInput(input_id=None, node=seeds, input_type=input_type))


def as_hetero(out, data):
    """(node, row, col, edge, num_sampled_nodes, num_sampled_edges) per type, for both output kinds."""
    if isinstance(data, HeteroData):
        return out.node, out.row, out.col, out.edge, out.num_sampled_nodes, out.num_sampled_edges
    et = ("n", "e", "n")
    return (
        {"n": out.node},
        {et: out.row},
        {et: out.col},
        {et: out.edge},
        {"n": out.num_sampled_nodes},
        {et: out.num_sampled_edges},
    )


def edge_stores(data):
    if isinstance(data, HeteroData):
        return dict(data.edge_items())
    return {("n", "e", "n"): data}


def check_subgraph(data, sampler, out, seeds, fanout, leaves=None):
    """Every property the sampler promises, for one sampled subgraph."""
    node, row, col, edge, n_nodes, n_edges = as_hetero(out, data)
    perm = sampler.edge_permutation if isinstance(data, HeteroData) else {("n", "e", "n"): sampler.edge_permutation}
    seed_type = "Account" if isinstance(data, HeteroData) else "n"
    assert torch.equal(node[seed_type][: len(seeds)], seeds)  # seeds first, in order
    for t, ids in node.items():
        # Deduplicated per type across hops; a repeated seed keeps its place but is expanded once.
        distinct = torch.cat([ids[: len(seeds)].unique(), ids[len(seeds) :]]) if t == seed_type else ids
        assert distinct.unique().numel() == distinct.numel()
        assert sum(n_nodes[t]) == ids.numel()
    leaves = leaves or {}
    for et, store in edge_stores(data).items():
        src_t, _, dst_t = et
        assert row[et].numel() == col[et].numel() == edge[et].numel() == sum(n_edges[et])
        original = perm[et][edge[et]] if perm[et] is not None else edge[et]
        # Every sampled edge is an edge of the graph, between the nodes the local ids name.
        assert torch.equal(store.edge_index[0, original], node[src_t][row[et]])
        assert torch.equal(store.edge_index[1, original], node[dst_t][col[et]])
        assert original.unique().numel() == original.numel()  # without replacement
        in_deg = torch.bincount(store.edge_index[1], minlength=len(node[dst_t]) and int(node[dst_t].max()) + 1)
        start = 0
        node_start = [0, *itertools.accumulate(n_nodes[dst_t])]
        hops = fanout[et] if isinstance(fanout, dict) else fanout
        assert len(n_edges[et]) == len(hops)
        for hop, (k, count) in enumerate(zip(hops, n_edges[et])):
            hop_col = col[et][start : start + count]
            start += count
            lo, hi = node_start[hop], node_start[hop + 1]
            # Directional: hop h expands exactly the nodes first reached in hop h - 1.
            assert bool(((hop_col >= lo) & (hop_col < hi)).all())
            got = torch.bincount(hop_col - lo, minlength=hi - lo)
            frontier = node[dst_t][lo:hi]
            deg = in_deg[frontier]
            if dst_t in leaves:
                deg = torch.where(leaves[dst_t][frontier], 0, deg)
            if hop == 0 and dst_t == seed_type:
                repeat = torch.tensor([bool((frontier[:i] == v).any()) for i, v in enumerate(frontier.tolist())])
                deg = torch.where(repeat, 0, deg)
            want = deg if k < 0 else deg.clamp(max=k)
            assert torch.equal(got, want), (et, hop)  # min(k, degree) per node, edge type and hop


@pytest.mark.parametrize("fanout", [[3, 2], [2, -1], [1, 1, 1]])
def test_hetero_subgraph_is_valid(fanout):
    data = risk_graph()
    sampler = TorchNeighborSampler(data, fanout, generator=torch.Generator().manual_seed(1))
    seeds = torch.tensor([5, 0, 77, 12, 5 + 1, 49])
    out = sample(sampler, seeds)
    check_subgraph(data, sampler, out, seeds, fanout)
    assert out.num_sampled_nodes["Account"][0] == len(seeds)
    assert out.num_sampled_nodes["IP"][0] == 0


def test_homogeneous_subgraph_is_valid():
    data = homogeneous_graph()
    sampler = TorchNeighborSampler(data, [4, 3], generator=torch.Generator().manual_seed(0))
    seeds = torch.tensor([3, 0, 17])
    out = sample(sampler, seeds, input_type=None)
    assert out.batch is None
    check_subgraph(data, sampler, out, seeds, [4, 3])


def test_per_edge_type_fanout():
    data = risk_graph()
    fanout = {et: [2, 1] for et in data.edge_types}
    fanout[_rev(USED_IP)] = [0, 0]  # never reach IPs
    sampler = TorchNeighborSampler(data, fanout)
    out = sample(sampler, torch.arange(10))
    assert out.node["IP"].numel() == 0
    assert out.num_sampled_edges[_rev(USED_IP)] == [0, 0]
    assert out.num_sampled_edges[USED_IP] == [0, 0]  # no IP was reached, so none is expanded
    check_subgraph(data, sampler, out, torch.arange(10), fanout)
    for _et, hops in out.num_sampled_edges.items():
        assert len(hops) == 2


def test_deterministic_under_a_seed_and_not_across_seeds():
    data = risk_graph()
    seeds = torch.arange(0, 80, 7)

    def draw(generator=None):
        out = sample(TorchNeighborSampler(data, [3, 3], generator=generator), seeds)
        return [out.node[t] for t in data.node_types] + [out.edge[et] for et in data.edge_types]

    same = [draw(torch.Generator().manual_seed(42)) for _ in range(2)]
    other = draw(torch.Generator().manual_seed(43))
    assert all(torch.equal(a, b) for a, b in zip(*same))
    assert not all(a.shape == b.shape and torch.equal(a, b) for a, b in zip(same[0], other))
    torch.manual_seed(7)
    first = draw()
    torch.manual_seed(7)
    assert all(torch.equal(a, b) for a, b in zip(first, draw()))


def test_floyd_draws_uniform_subsets():
    rows, deg, k = 30000, 5, 2
    chosen = floyd_subsets(
        torch.full((rows,), deg), torch.full((rows,), k), k, torch.Generator().manual_seed(0), uniform_k=True
    )
    assert bool((chosen >= 0).all()) and bool((chosen < deg).all())
    assert bool((chosen[:, 0] != chosen[:, 1]).all())
    pair = chosen.min(1).values * deg + chosen.max(1).values
    pairs = torch.tensor([a * deg + b for a, b in itertools.combinations(range(deg), 2)])
    counts = torch.bincount(pair, minlength=deg * deg)[pairs]
    assert int(counts.sum()) == rows
    expected = rows / len(pairs)  # each of the C(5, 2) pairs equally likely
    assert float((counts - expected).abs().max()) < 5 * expected**0.5


def test_supernode_becomes_a_leaf():
    data = risk_graph()
    mask = supernode_mask(data, cap=20)
    assert mask["IP"].nonzero().view(-1).tolist() == [SUPER_IP]
    assert set(mask) == {"Device", "IP"}  # accounts are never capped
    # Distinct accounts: the parallel (60, IP 3) edge counts once.
    src, dst = data[USED_IP].edge_index
    users = src[dst == 3]
    distinct = users.unique().numel()
    assert users.numel() > distinct
    assert not bool(supernode_mask(data, cap=distinct)["IP"][3])
    assert bool(supernode_mask(data, cap=distinct - 1)["IP"][3])

    seeds = torch.tensor([1, 2, 3])  # all behind the super IP
    capped = TorchNeighborSampler(data, [5, 5], supernode_cap=20, generator=torch.Generator().manual_seed(0))
    out = sample(capped, seeds)
    check_subgraph(data, capped, out, seeds, [5, 5], leaves=mask)
    ip_local = (out.node["IP"] == SUPER_IP).nonzero().view(-1)
    assert ip_local.numel() == 1  # still a neighbour of its accounts ...
    assert bool((out.row[_rev(USED_IP)] == ip_local).any())
    assert not bool((out.col[USED_IP] == ip_local).any())  # ... but never expanded
    free = TorchNeighborSampler(data, [5, 5], generator=torch.Generator().manual_seed(0))
    out = sample(free, seeds)
    ip_local = (out.node["IP"] == SUPER_IP).nonzero().view(-1)
    assert int((out.col[USED_IP] == ip_local).sum()) == 5


def test_drop_supernode_in_edges_matches_mask():
    data = risk_graph()
    dropped = drop_supernode_in_edges(data, cap=20)
    assert int((dropped[USED_IP].edge_index[1] == SUPER_IP).sum()) == 0
    assert int((dropped[_rev(USED_IP)].edge_index[0] == SUPER_IP).sum()) == 50  # out-edges stay
    assert dropped[USED_IP].num_edges == data[USED_IP].num_edges - 50
    assert dropped[USED_DEVICE].num_edges == data[USED_DEVICE].num_edges


def _sage(data: HeteroData) -> torch.nn.Module:
    class Net(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv1 = SAGEConv((-1, -1), 8)
            self.conv2 = SAGEConv((-1, -1), 3)

        def forward(self, x, edge_index):
            return self.conv2(self.conv1(x, edge_index).relu(), edge_index)

    torch.manual_seed(0)
    return to_hetero(Net(), data.metadata(), aggr="sum").eval()


@pytest.mark.parametrize("cap", [None, 20])
def test_loader_end_to_end_with_to_hetero_matches_full_graph(cap):
    """With fan-out -1 a 2-layer model sees exactly its full-graph 2-hop neighbourhood (minus super-node
    in-edges when capped), so sampled and full-graph logits agree."""
    data = risk_graph()
    full_graph = drop_supernode_in_edges(data, cap) if cap is not None else data
    model = _sage(data)
    with torch.no_grad():
        full = model(full_graph.x_dict, full_graph.edge_index_dict)["Account"]
    loader = make_neighbor_loader(
        data,
        [-1, -1],
        ("Account", torch.arange(N_ACC)),
        batch_size=16,
        shuffle=True,
        seed=3,
        supernode_cap=cap,
        backend="torch",
    )
    assert isinstance(loader.node_sampler, TorchNeighborSampler)
    seen = []
    with torch.no_grad():
        for batch in loader:
            n = batch["Account"].batch_size
            out = model(batch.x_dict, batch.edge_index_dict)["Account"][:n]
            ids = batch["Account"].n_id[:n]
            torch.testing.assert_close(out, full[ids], atol=1e-5, rtol=1e-5)
            seen.append(ids)
    assert sorted(torch.cat(seen).tolist()) == list(range(N_ACC))


def test_loader_sampled_forward_and_backward():
    data = risk_graph()
    model = _sage(data).train()
    with torch.no_grad():
        model(data.x_dict, data.edge_index_dict)
    loader = make_neighbor_loader(
        data,
        [3, 2],
        ("Account", torch.arange(N_ACC)),
        batch_size=32,
        shuffle=True,
        seed=0,
        supernode_cap=20,
        backend="torch",
    )
    batch = next(iter(loader))
    out = model(batch.x_dict, batch.edge_index_dict)["Account"][: batch["Account"].batch_size]
    assert out.shape == (32, 3) and bool(torch.isfinite(out).all())
    out.sum().backward()
    # Every first-layer relation carried messages that reached the seeds (second-layer relations into
    # devices and IPs do not reach accounts, so they get no gradient by design).
    first_layer = {name: p for name, p in model.named_parameters() if name.startswith("conv1")}
    assert len(first_layer) > 0 and all(p.grad is not None for p in first_layer.values())
    e_id = batch[USED_IP].e_id
    src, dst = data[USED_IP].edge_index[:, e_id]
    assert torch.equal(src, batch["Account"].n_id[batch[USED_IP].edge_index[0]])
    assert torch.equal(dst, batch["IP"].n_id[batch[USED_IP].edge_index[1]])


def test_loader_is_reproducible_and_works_in_worker_processes():
    data = risk_graph()

    def batches(seed, workers=0):
        loader = make_neighbor_loader(
            data,
            [3, 2],
            ("Account", torch.arange(N_ACC)),
            batch_size=20,
            shuffle=True,
            seed=seed,
            backend="torch",
            num_workers=workers,
        )
        return [b["Account"].n_id for b in loader]

    a, b, c = batches(5), batches(5), batches(6)
    assert len(a) == 4 and all(torch.equal(x, y) for x, y in zip(a, b))
    assert not all(x.shape == y.shape and torch.equal(x, y) for x, y in zip(a, c))
    w1, w2 = batches(5, workers=2), batches(5, workers=2)
    assert all(torch.equal(x, y) for x, y in zip(w1, w2))
    assert all(torch.equal(x[:20], y[:20]) for x, y in zip(a, w1))  # same shuffle, seeds first


def test_homogeneous_loader_with_sage():
    data = homogeneous_graph()
    torch.manual_seed(0)
    conv = SAGEConv(4, 2)
    full = conv(data.x, data.edge_index)
    loader = make_neighbor_loader(data, [-1], torch.arange(60), batch_size=25, shuffle=False, seed=0, backend="torch")
    for batch in loader:
        out = conv(batch.x, batch.edge_index)[: batch.batch_size]
        torch.testing.assert_close(out, full[batch.n_id[: batch.batch_size]], atol=1e-5, rtol=1e-5)


def test_backend_choice(monkeypatch):
    data = risk_graph()
    args = (data, [2, 2], ("Account", torch.arange(10)), 4, False, 0)
    monkeypatch.setattr(torch_geometric.typing, "WITH_PYG_LIB", False)
    monkeypatch.setattr(torch_geometric.typing, "WITH_TORCH_SPARSE", False)
    assert isinstance(make_neighbor_loader(*args).node_sampler, TorchNeighborSampler)
    with pytest.raises(ValueError, match="backend='pyg'"):
        make_neighbor_loader(*args, backend="pyg")
    monkeypatch.setattr(torch_geometric.typing, "WITH_TORCH_SPARSE", True)
    pyg = make_neighbor_loader(*args, supernode_cap=20)
    assert type(pyg.node_sampler) is NeighborSampler
    assert int((pyg.data[USED_IP].edge_index[1] == SUPER_IP).sum()) == 0  # same rule, as dropped edges
    assert isinstance(make_neighbor_loader(*args, backend="torch").node_sampler, TorchNeighborSampler)


def test_lookup_table_is_clean_between_batches_and_threads_are_restored():
    data = risk_graph()
    sampler = TorchNeighborSampler(data, [3, 3], supernode_cap=20, num_threads=1)
    before = torch.get_num_threads()
    for seeds in (torch.arange(0, 40), torch.arange(40, 80), torch.tensor([7, 7, 3])):
        out = sample(sampler, seeds)
        check_subgraph(data, sampler, out, seeds, [3, 3], leaves=supernode_mask(data, 20))
        assert bool((sampler._node_map == sampler._node_map.max()).all())  # every entry back to "absent"
    assert torch.get_num_threads() == before


@pytest.mark.parametrize(
    "kwargs",
    [
        {"replace": True},
        {"disjoint": True},
        {"time_attr": "t"},
        {"subgraph_type": "induced"},
        {"supernode_cap": -1},
        {"num_threads": 0},
    ],
)
def test_rejects_unsupported_options(kwargs):
    with pytest.raises(ValueError):
        TorchNeighborSampler(risk_graph(), [2], **kwargs)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_subgraph_is_valid_and_deterministic():
    data = risk_graph()
    seeds = torch.tensor([5, 0, 77, 12, 49])

    def draw():
        sampler = TorchNeighborSampler(
            data, [3, 2], supernode_cap=20, device="cuda", generator=torch.Generator("cuda").manual_seed(0)
        )
        return sampler, sample(sampler, seeds.cuda())

    sampler, out = draw()
    assert out.node["Account"].is_cuda
    cpu = type(out)(
        node={k: v.cpu() for k, v in out.node.items()},
        row={k: v.cpu() for k, v in out.row.items()},
        col={k: v.cpu() for k, v in out.col.items()},
        edge={k: v.cpu() for k, v in out.edge.items()},
        num_sampled_nodes=out.num_sampled_nodes,
        num_sampled_edges=out.num_sampled_edges,
    )
    sampler.perm = {k: v.cpu() if v is not None else None for k, v in sampler.perm.items()}
    check_subgraph(data, sampler, cpu, seeds, [3, 2], leaves=supernode_mask(data, 20))
    _, again = draw()
    assert all(torch.equal(out.node[t], again.node[t]) for t in data.node_types)
