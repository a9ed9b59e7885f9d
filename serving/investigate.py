"""``ringwatch investigate ACCOUNT_ID``: why an account is flagged, and its ring, in the terminal.

It runs the query pack's own questions (:mod:`graph.queries.investigator`), so what the terminal shows is
what the same query shows in Neo4j Browser. Every value from the graph is shown as plain text (rich ``Text``,
control characters escaped: :func:`graph.logs.printable`), never parsed as markup: ids and fingerprints are
attacker-chosen.
"""

from __future__ import annotations

from typing import Any

import neo4j
from rich.console import Group
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from gnn.thresholds import describe_thresholds
from graph import schema as s
from graph.errors import RingwatchError
from graph.logs import printable as plain
from graph.queries.governance import CHALLENGER_OF_ACCOUNT
from graph.queries.investigator import RING_OF_ACCOUNT, WHY_FLAGGED


class UnknownAccountError(RingwatchError):
    """The account is not in the graph."""


def investigate(driver: neo4j.Driver, database: str, account_id: str) -> dict[str, Any]:
    """The account's risk, label, reasons, live shared identifiers, its ring's members, and — when a challenger
    scored its latest run in shadow (``ringwatch score --challenger``) — the challenger's scores and label.

    Raises:
        UnknownAccountError: no such account.
    """
    read: dict[str, Any] = {"database_": database, "routing_": neo4j.RoutingControl.READ}
    records, _, _ = driver.execute_query(WHY_FLAGGED.cypher, account_id=account_id, **read)
    if not records:
        raise UnknownAccountError(f"no account {account_id!r} in the graph")
    account = dict(records[0])
    account["shared"] = sorted(account["shared"], key=lambda x: (-len(x["risky_peers"]), x["users"]))
    members, _, _ = driver.execute_query(RING_OF_ACCOUNT.cypher, account_id=account_id, **read)
    account["ring_members"] = [dict(m) for m in members]
    challenger, _, _ = driver.execute_query(CHALLENGER_OF_ACCOUNT, account_id=account_id, **read)
    account["challenger"] = dict(challenger[0]) if challenger else None
    return account


def render(view: dict[str, Any]) -> Group:
    """A rich renderable of :func:`investigate`'s result."""
    label = plain(view["label"] or "not scored")
    style = "bold green" if label == s.CLEAR else ("dim" if view["label"] is None else "bold red")
    head = Text.assemble(("account ", "bold"), (plain(view["account_id"]), "bold cyan"), "  label ", (label, style))
    if view["score"] is not None:
        head.append(f"  risk {view['score']:.3f}  (" + ", ".join(f"{t} {view[t]:.3f}" for t in s.THREATS) + ")")
    facts = [f"model {view['model_version']}, run {view['run_id']}" if view["run_id"] else "never scored"]
    if view.get("flagged_by") == s.FLAGGED_BY_RING and view["label"] != s.CLEAR:
        facts.append("flagged as a member of its ring (its own score is under the threshold)")
    if view.get("policy"):
        thresholds = describe_thresholds({t: view.get(f"threshold_{t}") for t in s.THREATS})
        facts.append(f"thresholds: {view['policy']} ({thresholds})")
    if view["known_label"]:
        facts.append(f"known label: {view['known_label']}")
    if view["verdict"]:
        facts.append(f"verdict: {view['verdict']}")
    parts: list[Any] = [head, Text(plain("; ".join(facts)), style="dim")]
    shadow = view.get("challenger")
    if shadow:
        parts.append(
            Text(
                plain(
                    f"challenger {shadow['model_version']} (in shadow, decides nothing): label {shadow['label']}"
                    f"  risk {shadow['score']:.3f}  ("
                    + ", ".join(f"{t} {shadow[t]:.3f}" for t in s.THREATS)
                    + ")"
                    + ("  — disagrees with the champion" if shadow["disagrees"] else "")
                ),
                style="magenta",
            )
        )
    reasons = view["reasons"] or []
    parts.append(Text("\nreasons (at scoring time):", style="bold"))
    parts += [Text(f"  {i}. {plain(r)}") for i, r in enumerate(reasons, 1)] or [Text("  none stored")]
    shared = Table(title="shares now with risky accounts", title_justify="left", expand=False)
    for column in ("identifier", "users", "risky peers"):
        shared.add_column(column)
    for row in view["shared"][:15]:
        peers = row["risky_peers"]
        shared.add_row(
            Text(plain(row["identifier"])),
            str(row["users"]),
            Text(f"{len(peers)}: " + ", ".join(map(plain, peers[:5])) + (" …" if len(peers) > 5 else "")),
        )
    parts.append(shared if view["shared"] else Text("shares no identifier with a risky account", style="dim"))
    members = view["ring_members"]
    if members:
        ring = Table(
            title=Text(plain(f"ring {members[0]['ring_id']} — {members[0]['kind']}, {members[0]['size']} members")),
            title_justify="left",
        )
        for column in ("member", "label", "score", "shares with other members", "transfer partners"):
            ring.add_column(column)
        for m in members:
            mark = "bold cyan" if m["member"] == view["account_id"] else ""
            ring.add_row(
                Text(plain(m["member"]), style=mark),
                Text(plain(m["label"])),
                f"{m['score']:.3f}",
                Text(", ".join(map(plain, m["shares"][:4])) + (" …" if len(m["shares"]) > 4 else "")),
                str(m["transfer_partners_in_ring"]),
            )
        parts.append(ring)
    else:
        parts.append(Text("in no active ring", style="dim"))
    return Group(*parts)


def panel(view: dict[str, Any]) -> Panel:
    return Panel(render(view), title="ringwatch investigate", expand=False)
