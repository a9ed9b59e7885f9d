"""The picture of a ring's subgraph: members coloured by risk score, the identifiers two or more of them
share (diamonds, coloured by kind), transfers and referrals among them; deterministic layout, labels placed
where they collide with nothing, mathtext off (ids are user data).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import matplotlib as mpl
import networkx as nx
import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.transforms import Bbox

from graph import schema as s
from graph.queries import report as q
from graph.supernodes import EVIDENCE_CAP
from serving.ring_view import RingView

#: Layout seed, so the same ring is drawn the same way every time.
LAYOUT_SEED = 0
#: Rings with more members are drawn without their super-node identifiers (they would hide the rest).
SUPERNODES_DRAWN_UP_TO = 30
SCORE_COLORMAP = "YlOrRd"
IDENTIFIER_COLORS = {
    s.DEVICE.label: "#1f77b4",
    s.CARD.label: "#9467bd",
    s.IP.label: "#17becf",
    q.IP_BLOCK: "#9ec9e2",
    s.EMAIL.label: "#2ca02c",
    s.PHONE.label: "#8c564b",
    s.WALLET.label: "#e377c2",
    s.PROMO.label: "#7f7f7f",
}
#: What the page calls a label that is not a node label of the schema.
IDENTIFIER_NAMES = {q.IP_BLOCK: "network block"}
#: Colour, line style, legend text and curvature per money link (curved apart where a pair has both).
MONEY_STYLE = {
    s.TRANSFERRED_TO.type: ("#08306b", "solid", "transfer", 0.12),
    s.REFERRED.type: ("#238b45", "dashed", "referral", 0.3),
}


def _short(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def ring_graph(ring: RingView, super_nodes: bool = True) -> nx.MultiDiGraph:
    """The ring's subgraph: members, shared identifiers, member→identifier uses and money links.

    A network block is left out when one shared IP of the ring has the same users among the members (the IP
    already says it); super-nodes (more than :data:`graph.supernodes.EVIDENCE_CAP` users) only when
    ``super_nodes``.
    """
    g = nx.MultiDiGraph()
    for m in sorted(ring.members, key=lambda m: m.account_id):
        g.add_node(("member", m.account_id), score=m.risk_score)
    ip_users = {frozenset(i.members) for i in ring.identifiers if i.label == s.IP.label}
    for ident in ring.identifiers:
        supernode = ident.users > EVIDENCE_CAP
        if (supernode and not super_nodes) or (ident.label == q.IP_BLOCK and frozenset(ident.members) in ip_users):
            continue
        node = ("identifier", ident.label, ident.key)
        g.add_node(node, label=ident.label, users=ident.users, supernode=supernode)
        for account in ident.members:
            g.add_edge(("member", account), node, kind="uses")
    for link in ring.links:  # one edge per direction and type, whatever the assets
        src, dst = ("member", link.src), ("member", link.dst)
        if g.has_edge(src, dst, key=link.type):
            g.edges[src, dst, link.type]["count"] += link.count
        else:
            g.add_edge(src, dst, key=link.type, kind=link.type, count=link.count)
    return g


def _layout(g: nx.MultiDiGraph) -> dict[Any, tuple[float, float]]:
    """Positions: Kamada–Kawai, then a seeded spring pass; deterministic for a given graph.

    Super-nodes take no part (they would pull every member into one knot); each sits near its users' centre.
    """
    supers = [v for v, sn in g.nodes(data="supernode") if sn]
    core = nx.Graph(g.to_undirected())
    core.remove_nodes_from(supers)
    nodes = list(core)
    if len(nodes) <= 2:
        xy = np.array([[float(i), 0.0] for i in range(len(nodes))]).reshape(-1, 2)
    else:
        # Kamada–Kawai puts disconnected parts a million hops apart; a few hops keeps them on the picture.
        dist = dict(nx.all_pairs_shortest_path_length(core))
        far = max(max(d.values()) for d in dist.values()) + 2
        dist = {a: {b: dist[a].get(b, far) for b in nodes} for a in nodes}
        start = nx.kamada_kawai_layout(core, dist=dist)
        pos = nx.spring_layout(core, pos=start, k=2.4 / math.sqrt(len(nodes)), iterations=100, seed=LAYOUT_SEED)
        xy = np.array([pos[v] for v in nodes], dtype=float)
        # The longest spread horizontal (the picture is wide), and a flat layout stretched a little in height,
        # so chains of transfers do not squeeze their labels together along a diagonal.
        xy -= xy.mean(axis=0)
        xy = xy @ np.linalg.svd(xy, full_matrices=False)[2].T
        width, height = np.ptp(xy, axis=0)
        if height < 0.55 * width:
            xy[:, 1] *= min(3.0, 0.55 * width / max(height, 1e-9))
        xy = _spread(xy, gap=0.045 * float(np.ptp(xy[:, 0])))
    out = {v: (float(x), float(y)) for v, (x, y) in zip(nodes, xy)}
    scale = float(np.ptp(xy, axis=0).max()) if len(nodes) > 1 else 1.0
    for i, v in enumerate(supers):
        users = [out[u] for u in g.predecessors(v) if u in out] or [(0.0, 0.0)]
        angle = 2.4 * i  # golden-angle steps keep super-nodes with the same users apart
        out[v] = (
            float(np.mean([p[0] for p in users])) + 0.06 * scale * math.cos(angle),
            float(np.mean([p[1] for p in users])) + 0.06 * scale * math.sin(angle),
        )
    return out


def _spread(xy: np.ndarray, gap: float, rounds: int = 80) -> np.ndarray:
    """Push apart points closer than ``gap`` (leaves of one hub otherwise pile up on each other)."""
    xy = xy.copy()
    # A fixed nudge per point, so that points in the same place get a direction (deterministic).
    nudge = np.stack([np.cos(np.arange(len(xy)) * 2.4), np.sin(np.arange(len(xy)) * 2.4)], axis=1) * gap * 1e-3
    for _ in range(rounds):
        diff = (xy + nudge)[:, None, :] - (xy + nudge)[None, :, :]
        dist = np.linalg.norm(diff, axis=2)
        np.fill_diagonal(dist, np.inf)
        overlap = np.clip(gap - dist, 0.0, None)
        if not overlap.any():
            break
        xy += 0.5 * (overlap[..., None] * diff / np.maximum(dist, 1e-12)[..., None]).sum(axis=1)
    return xy


#: Label offsets (points) tried in turn: below, above, right, left of the node.
_LABEL_SPOTS = (
    (0, -10, "center", "top"),
    (0, 9, "center", "bottom"),
    (9, 0, "left", "center"),
    (-9, 0, "right", "center"),
)


def _place_labels(
    fig: Figure,
    ax: Any,
    pos: dict[Any, tuple[float, float]],
    labels: list[tuple[Any, str, dict[str, Any], bool]],
    sizes: dict[Any, float],
) -> None:
    """Annotate nodes, each at the first spot where its label overlaps no node, label or the picture's edge.

    ``labels``: ``(node, text, style, required)``; a label with no free spot is drawn below its node when
    required (members: the reader needs every account) and left out otherwise (identifiers: the table has them).
    """
    renderer = FigureCanvasAgg(fig).get_renderer()
    frame = ax.get_window_extent(renderer)
    to_px = fig.dpi / 72.0
    node_boxes: dict[Any, Bbox] = {}
    for v, (x, y) in pos.items():
        cx, cy = ax.transData.transform((x, y))
        r = math.sqrt(sizes[v]) / 2 * to_px
        node_boxes[v] = Bbox.from_extents(cx - r, cy - r, cx + r, cy + r)
    placed: list[Bbox] = []

    def annotate(v: Any, text: str, style: dict[str, Any], spot: tuple[float, float, str, str]) -> Any:
        dx, dy, ha, va = spot
        return ax.annotate(
            text,
            pos[v],
            xytext=(dx, dy),
            textcoords="offset points",
            ha=ha,
            va=va,
            parse_math=False,
            annotation_clip=False,
            **style,
        )

    for v, text, style, required in labels:
        obstacles = placed + [b for u, b in node_boxes.items() if u != v]
        for spot in _LABEL_SPOTS:
            t = annotate(v, text, style, spot)
            box = t.get_window_extent(renderer)
            inside = frame.x0 <= box.x0 and box.x1 <= frame.x1 and frame.y0 <= box.y0 and box.y1 <= frame.y1
            if inside and not any(box.overlaps(b) for b in obstacles):
                placed.append(box)
                break
            t.remove()
        else:
            if required:
                placed.append(annotate(v, text, style, _LABEL_SPOTS[0]).get_window_extent(renderer))


def draw_ring(ring: RingView, path: Path) -> Path:
    """Draw ``ring``'s subgraph (see :func:`ring_graph`) to an SVG file; returns ``path``.

    Members are circles coloured by risk score, shared identifiers diamonds coloured by kind (super-nodes
    faint, and left out of rings above :data:`SUPERNODES_DRAWN_UP_TO` members), transfers and referrals arrows.
    """
    g = ring_graph(ring, super_nodes=len(ring.members) <= SUPERNODES_DRAWN_UP_TO)
    pos = _layout(g)
    members = [v for v in g if v[0] == "member"]
    idents = [v for v in g if v[0] == "identifier"]
    supers = {v for v in idents if g.nodes[v]["supernode"]}
    n = g.number_of_nodes()
    width = min(15.0, max(7.0, 5.0 + 0.2 * n))
    fig = Figure(figsize=(width, width * (0.62 if n < 40 else 0.75)))
    ax = fig.add_axes((0.01, 0.01, 0.98 - 2.1 / width, 0.98))  # the legend takes the 2 inches on the right
    ax.set_axis_off()
    member_size, ident_size = (320, 110) if len(members) <= 30 else (200, 80)
    uses = [(a, b) for a, b, k in g.edges(data="kind") if k == "uses"]
    nx.draw_networkx_edges(
        g, pos, edgelist=[e for e in uses if e[1] not in supers], ax=ax, edge_color="#a0a0a0", width=0.9, arrows=False
    )
    nx.draw_networkx_edges(
        g,
        pos,
        edgelist=[e for e in uses if e[1] in supers],
        ax=ax,
        edge_color="#d0d0d0",
        width=0.7,
        style="dotted",
        arrows=False,
    )
    for kind, (color, style, _, rad) in MONEY_STYLE.items():
        links = [(a, b, c) for a, b, k, c in g.edges(keys=True, data="count") if k == kind]
        if links:
            nx.draw_networkx_edges(
                g,
                pos,
                edgelist=[(a, b) for a, b, _ in links],
                ax=ax,
                edge_color=color,
                style=style,
                width=[min(4.0, 1.5 + 0.5 * math.log2(c)) for _, _, c in links],
                arrows=True,
                arrowstyle="-|>",
                arrowsize=16,
                node_size=member_size,
                connectionstyle=f"arc3,rad={rad}",
            )
    cmap, norm = mpl.colormaps[SCORE_COLORMAP], mpl.colors.Normalize(0.0, 1.0)
    scores = [g.nodes[v]["score"] for v in members]
    nx.draw_networkx_nodes(
        g,
        pos,
        nodelist=members,
        ax=ax,
        node_size=member_size,
        edgecolors="#333333",
        linewidths=0.8,
        node_color=[cmap(norm(x)) if x is not None else "#cccccc" for x in scores],
    )
    for group, alpha in ((sorted(set(idents) - supers), 1.0), (sorted(supers), 0.35)):
        nx.draw_networkx_nodes(
            g,
            pos,
            nodelist=group,
            ax=ax,
            node_size=ident_size,
            node_shape="D",
            linewidths=0.5,
            edgecolors="#333333",
            alpha=alpha,
            node_color=[IDENTIFIER_COLORS.get(v[1], "#bbbbbb") for v in group],
        )
    xs, ys = [p[0] for p in pos.values()] or [0.0], [p[1] for p in pos.values()] or [0.0]
    pad_x, pad_y = 0.14 * (max(xs) - min(xs) or 1.0), 0.1 * (max(ys) - min(ys) or 1.0)
    ax.set_xlim(min(xs) - pad_x, max(xs) + pad_x)
    ax.set_ylim(min(ys) - pad_y, max(ys) + pad_y)
    bar = fig.colorbar(
        mpl.cm.ScalarMappable(norm=norm, cmap=cmap), ax=ax, fraction=0.03, pad=0.01, shrink=0.45, anchor=(0.0, 0.95)
    )
    bar.set_label("member risk score", fontsize=9)
    handles = [Line2D([], [], marker="o", ls="", mfc=cmap(0.8), mec="#333333", ms=9, label="member")]
    handles += [
        Line2D(
            [],
            [],
            marker="D",
            ls="",
            mfc=IDENTIFIER_COLORS.get(lab, "#bbbbbb"),
            mec="#333333",
            ms=6,
            label=f"shared {IDENTIFIER_NAMES.get(lab, lab).lower()}",
        )
        for lab in sorted({v[1] for v in idents if v not in supers})
    ]
    if supers:
        handles.append(
            Line2D(
                [],
                [],
                marker="D",
                ls=":",
                color="#c0c0c0",
                mfc="#dddddd",
                mec="#999999",
                ms=6,
                label=f"super-node (> {EVIDENCE_CAP} users)",
            )
        )
    handles += [Line2D([], [], color=c, ls=st, lw=2.0, label=lab) for c, st, lab, _ in MONEY_STYLE.values()]
    fig.legend(
        handles=handles,
        loc="lower right",
        fontsize=8,
        frameon=False,
        bbox_to_anchor=(0.995, 0.02),
        title="(n): accounts using it",
        title_fontsize=7,
    )
    box = {"boxstyle": "round,pad=0.1", "fc": "white", "ec": "none", "alpha": 0.8}
    member_style = {"fontsize": 8 if len(members) <= 30 else 7, "bbox": box, "zorder": 5}
    labels: list[tuple[Any, str, dict[str, Any], bool]] = [
        (v, _short(v[1], 18), member_style, True) for v in sorted(members, key=lambda v: -(g.nodes[v]["score"] or 0.0))
    ]
    for v in sorted(idents, key=lambda v: (v in supers, -g.in_degree(v), v)):
        ident_style = {"fontsize": 7, "color": "#999999" if v in supers else "#333333", "bbox": box, "zorder": 4}
        labels.append(
            (v, f"{IDENTIFIER_NAMES.get(v[1], v[1])} {_short(v[2], 16)} ({g.nodes[v]['users']})", ident_style, False)
        )
    _place_labels(fig, ax, pos, labels, {v: member_size if v[0] == "member" else ident_size for v in g})
    path.parent.mkdir(parents=True, exist_ok=True)
    with mpl.rc_context({"svg.hashsalt": "ringwatch", "svg.fonttype": "path"}):
        fig.savefig(path, format="svg", metadata={"Date": None})
    return path
