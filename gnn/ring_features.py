"""Small-group structure around an account: the signal that separates rings from ordinary sharing.

Households, offices and carrier NATs share identifiers too; what sets a ring apart is a *small group*
whose members also move money among themselves, or share several kinds of identifier at once. The
features are listed and explained with all the others in :mod:`gnn.features`; all are label-free.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from graph import schema as s
from graph.supernodes import SMALL_GROUP_MAX

_KINDS = {
    "device": s.USED_DEVICE,
    "ip": s.USED_IP,
    "card": s.USED_CARD,
    "wallet": s.WITHDREW_TO,
    "email": s.HAS_EMAIL,
    "phone": s.HAS_PHONE,
}
FEATURE_NAMES = [
    *(f"small_group_{k}_log" for k in ("device", "ip", "card", "wallet")),
    "small_group_kinds",
    "group_peers_log",
    "group_peers_multi_log",
    "peer_counterparties_log",
    "peer_counterparty_share",
    "peer_transfer_density",
    "transfer_triangles_log",
    "reciprocal_counterparties_log",
]


def _incidence(edge_index: np.ndarray, n_accounts: int, n_targets: int) -> sp.csr_matrix:
    m = sp.csr_matrix(
        (np.ones(edge_index.shape[1], np.float32), (edge_index[0], edge_index[1])), shape=(n_accounts, n_targets)
    )
    m.data[:] = 1.0
    return m


def _scale_columns(m: sp.csr_matrix, scale: np.ndarray) -> sp.csr_matrix:
    """``m @ diags(scale)`` without the product's overhead (it dominates on a small graph): each entry times its
    column's scale, the zeros dropped, as the product stores them."""
    out = m.copy()
    out.data = out.data * scale[out.indices]
    out.eliminate_zeros()
    return out


def ring_structure_features(
    edges: dict[str, np.ndarray], counts: dict[str, int], n_accounts: int, small_cap: int = SMALL_GROUP_MAX
) -> np.ndarray:
    """Compute the table above.

    Args:
        edges: relationship type → ``[2, E]`` (account index, target index) for the schema's account→
            identifier types and ``TRANSFERRED_TO`` (account → account).
        counts: node label → number of nodes.
        n_accounts: number of accounts.
        small_cap: largest group still "small".

    Returns:
        ``[n_accounts, len(FEATURE_NAMES)]`` float32.
    """
    out = np.zeros((n_accounts, len(FEATURE_NAMES)), dtype=np.float32)
    peers = sp.csr_matrix((n_accounts, n_accounts), dtype=np.float32)
    kinds_shared = np.zeros(n_accounts, dtype=np.float32)
    for col, (_kind, rel) in enumerate(_KINDS.items()):
        ei = edges.get(rel.type)
        if ei is None or ei.shape[1] == 0:
            continue
        inc = _incidence(ei, n_accounts, counts[rel.target.label])
        users = np.asarray(inc.sum(axis=0)).ravel()
        small = (users >= 2) & (users <= small_cap)
        inc_small = _scale_columns(inc, small.astype(np.float32))
        group = _scale_columns(inc_small, np.maximum(users - 1, 0).astype(np.float32))
        largest = group.max(axis=1).toarray().ravel()
        if col < 4:
            out[:, col] = np.log1p(largest)
        kinds_shared += largest > 0
        peers = peers + inc_small @ inc_small.T
    peers = peers.tocsr()
    peers.setdiag(0)
    peers.eliminate_zeros()
    multi = peers.copy()
    multi.data = (multi.data >= 2).astype(np.float32)
    multi.eliminate_zeros()
    peer_bin = peers.copy()
    peer_bin.data[:] = 1.0
    n_peers = np.asarray(peer_bin.sum(axis=1)).ravel()
    out[:, 4] = kinds_shared
    out[:, 5] = np.log1p(n_peers)
    out[:, 6] = np.log1p(np.asarray(multi.sum(axis=1)).ravel())

    ei = edges.get(s.TRANSFERRED_TO.type)
    if ei is not None and ei.shape[1]:
        sent = _incidence(ei, n_accounts, n_accounts)
        sent.setdiag(0)
        sent.eliminate_zeros()
        both = sent + sent.T
        both.data[:] = 1.0
        counterparties = np.asarray(both.sum(axis=1)).ravel()
        peer_cp = np.asarray(both.multiply(peer_bin).sum(axis=1)).ravel()
        out[:, 7] = np.log1p(peer_cp)
        out[:, 8] = peer_cp / np.maximum(counterparties, 1)
        out[:, 9] = peer_cp / np.maximum(n_peers, 1)
        triangles = np.asarray((both @ both).multiply(both).sum(axis=1)).ravel() / 2
        out[:, 10] = np.log1p(triangles)
        reciprocal = sent.multiply(sent.T)
        out[:, 11] = np.log1p(np.asarray(reciprocal.sum(axis=1)).ravel())
    return out
