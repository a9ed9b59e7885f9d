"""Read an account's receptive field — everything its score depends on — for online scoring.

A model of ``hops`` layers scores an account from the raw features of the nodes within ``hops`` hops of it
(identifiers and accounts; a hop follows any domain relationship, either way). Those features in turn read each
node's own relationships, the number of accounts using each of its identifiers, its transfer counterparties'
transfers (triangles) and its referral chain. So the read goes in rounds, in one read transaction:

1. rounds ``0 … hops``: every relationship of the nodes at that distance (the *complete* nodes), which finds
   the next distance; an identifier with more than ``supernode_cap`` distinct accounts is not expanded (the
   training sampler's rule, :data:`graph.supernodes.MODEL_SUPERNODE_CAP`), so a hub's cost stays bounded;
2. the closure: every relationship into the identifiers one hop further (their user counts), the transfers of
   the complete accounts' counterparties, and the referrals up the complete accounts' referral chains;
3. the rows of every node any of those relationships touches.

The frames have the export's columns (:mod:`graph.queries.export`), not yet its dtypes or order.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import neo4j
import numpy as np
import pandas as pd

from graph import schema as s
from graph.queries import receptive_field as q
from graph.queries.export import NODE_EXPORTS_BY_LABEL, REL_EXPORTS_BY_TYPE

_METADATA = {"app": "ringwatch", "job": "online"}


@dataclass
class ReceptiveField:
    """The relationships and nodes an account's features and score depend on.

    Attributes:
        node_rows: label → rows as read, each a list in the export's column order (every domain label present).
        rel_rows: relationship type → rows as read, the same way.
        complete: account ids whose every relationship was read (within ``hops`` of a seed).
    """

    node_rows: dict[str, list[list[Any]]]
    rel_rows: dict[str, list[list[Any]]]
    complete: set[str] = field(default_factory=set)

    @functools.cached_property
    def nodes(self) -> dict[str, pd.DataFrame]:
        """label → frame with the export's columns (every domain label present, possibly empty)."""
        return {label: _frame(self.node_rows[label], export.columns) for label, export in NODE_EXPORTS_BY_LABEL.items()}

    @functools.cached_property
    def rels(self) -> dict[str, pd.DataFrame]:
        """relationship type → frame with the export's columns."""
        return {
            rel.type: _frame(self.rel_rows[rel.type], REL_EXPORTS_BY_TYPE[rel.type].columns) for rel in s.DOMAIN_RELS
        }


def _frame(rows: list[list[Any]], columns: Iterable[Any]) -> pd.DataFrame:
    names = [c.name for c in columns]
    return pd.DataFrame(rows, columns=names) if rows else pd.DataFrame(columns=names)


def _key(rel: s.RelSpec, row: list[Any]) -> tuple[Any, ...]:
    return (row[0], row[1], row[2]) if rel.discriminator else (row[0], row[1])


class _Reader:
    """Accumulates relationship rows across rounds, deduplicated by their keys."""

    def __init__(self, tx: neo4j.ManagedTransaction | neo4j.Transaction, cap: int) -> None:
        self.tx, self.cap = tx, cap
        self.edges: dict[str, dict[tuple[Any, ...], list[Any]]] = {r.type: {} for r in s.DOMAIN_RELS}

    def read(self, out: dict[str, list[str]], into: dict[str, list[str]]) -> list[tuple[s.RelSpec, list[Any]]]:
        """Relationships out of / into the given keys; returns the ones not seen before."""
        if not any(out.values()) and not any(into.values()):
            return []
        fresh = []
        for record in self.tx.run(q.INCIDENT_EDGES, out=out, cap=self.cap, **{"in": into}):
            rel = REL_EXPORTS_BY_TYPE[record["type"]].rel
            for row in record["rows"]:
                key = _key(rel, row)
                if key not in self.edges[rel.type]:
                    self.edges[rel.type][key] = row
                    fresh.append((rel, row))
        return fresh


def _ends(found: Iterable[tuple[s.RelSpec, list[Any]]]) -> tuple[set[str], dict[str, set[str]]]:
    accounts: set[str] = set()
    idents: dict[str, set[str]] = {}
    for rel, row in found:
        accounts.add(row[0])
        if rel.target == s.ACCOUNT:
            accounts.add(row[1])
        else:
            idents.setdefault(rel.target.label, set()).add(row[1])
    return accounts, idents


def _requests(accounts: set[str], idents: dict[str, set[str]]) -> tuple[dict[str, list[str]], dict[str, list[str]]]:
    out = {r.type: sorted(accounts) for r in s.DOMAIN_RELS}
    into = {
        r.type: sorted(accounts if r.target == s.ACCOUNT else idents.get(r.target.label, set())) for r in s.DOMAIN_RELS
    }
    return out, into


def read_incident(
    tx: neo4j.ManagedTransaction | neo4j.Transaction, account_ids: list[str]
) -> dict[str, list[list[Any]]]:
    """Every relationship of ``account_ids`` — out of them, and into them for account-to-account types — with
    the export's columns: the accounts' neighbourhood one hop out (the online API's feature store holds
    everything further, :mod:`serving.feature_store`). One query, no cap: an account's own relationships are
    few (its devices, IPs, cards, counterparties), whatever their other ends' degrees.

    Returns:
        relationship type → rows, each a list in the export's column order (``src``, ``dst``, …; datetimes as
        epoch milliseconds); every domain type present, possibly empty. Lists, not frames: a request reads a
        few dozen rows, and a frame per type costs more than the read.
    """
    reader = _Reader(tx, 0)
    reader.read(*_requests(set(account_ids), {}))
    return {t: list(edges.values()) for t, edges in reader.edges.items()}


def read_receptive_field(
    tx: neo4j.ManagedTransaction | neo4j.Transaction, account_ids: list[str], hops: int, supernode_cap: int
) -> ReceptiveField:
    """Read the receptive field of ``account_ids`` (see the module docstring) in the transaction ``tx``.

    Args:
        tx: an open read transaction (the caller sets its timeout).
        account_ids: the accounts to score.
        hops: the model's layers.
        supernode_cap: identifiers with more distinct accounts are not expanded.

    Raises:
        ValueError: ``hops`` or ``supernode_cap`` is negative.
    """
    if hops < 0 or supernode_cap < 0:
        raise ValueError(f"hops and supernode_cap must be >= 0, got {hops} and {supernode_cap}")
    reader = _Reader(tx, supernode_cap)
    seen_accounts: set[str] = set(account_ids)
    seen_idents: dict[str, set[str]] = {}
    frontier: tuple[set[str], dict[str, set[str]]] = (set(account_ids), {})
    complete: set[str] = set()
    for _ in range(hops + 1):
        accounts, idents = frontier
        complete |= accounts
        found_accounts, found_idents = _ends(reader.read(*_requests(accounts, idents)))
        new_idents = {label: keys - seen_idents.get(label, set()) for label, keys in found_idents.items()}
        for label, keys in new_idents.items():
            seen_idents.setdefault(label, set()).update(keys)
        frontier = (found_accounts - seen_accounts, new_idents)
        seen_accounts |= found_accounts
    # The closure: user counts of the next identifiers, counterparties' transfers, referral chains.
    _, idents = frontier
    transfers = reader.edges[s.TRANSFERRED_TO.type]
    counterparties = {k[1] for k in transfers if k[0] in complete} | {k[0] for k in transfers if k[1] in complete}
    counterparties -= complete
    record = tx.run(q.REFERRAL_ANCESTORS, accounts=sorted(complete)).single()
    ancestors = set(record["ancestors"]) if record else set()
    out: dict[str, list[str]] = {r.type: [] for r in s.DOMAIN_RELS}
    into = {r.type: sorted(idents.get(r.target.label, set())) for r in s.DOMAIN_RELS if r.target != s.ACCOUNT}
    out[s.TRANSFERRED_TO.type] = sorted(counterparties)
    into[s.TRANSFERRED_TO.type] = sorted(counterparties)
    into[s.REFERRED.type] = sorted(ancestors)
    reader.read(out, into)
    return _with_node_rows(tx, reader, set(account_ids), complete)


def _with_node_rows(
    tx: neo4j.ManagedTransaction | neo4j.Transaction, reader: _Reader, seeds: set[str], complete: set[str]
) -> ReceptiveField:
    keys: dict[str, set[str]] = {label: set() for label in NODE_EXPORTS_BY_LABEL}
    keys[s.ACCOUNT.label] |= seeds
    for rel in s.DOMAIN_RELS:
        rows = reader.edges[rel.type].values()
        keys[rel.source.label].update(r[0] for r in rows)
        keys[rel.target.label].update(r[1] for r in rows)
    rows_by_label: dict[str, list[list[Any]]] = {label: [] for label in NODE_EXPORTS_BY_LABEL}
    for record in tx.run(q.NODE_ROWS, keys={label: sorted(k) for label, k in keys.items()}):
        rows_by_label[record["label"]].extend(record["rows"])
    rel_rows = {rel.type: list(reader.edges[rel.type].values()) for rel in s.DOMAIN_RELS}
    return ReceptiveField(rows_by_label, rel_rows, complete)


def read_population(session: neo4j.Session, label_prefixes: tuple[str, ...]) -> dict[str, Any]:
    """The whole graph's tallies for :class:`gnn.features.Population` (whole-graph scans: seconds at 1M accounts).

    Returns:
        ``accounts``, ``cards`` (ints); ``countries``, ``email_domains``, ``card_bins`` (value → count);
        ``typical_amount`` (type → asset → median per-event amount); ``created_ms`` (sorted int64 array);
        ``signup_prefix_created_ms`` (prefix → sorted int64 array); ``latest_ms`` (int, 0 when no time).
    """
    queries = q.population_queries(label_prefixes)

    def run(name: str) -> list[neo4j.Record]:
        return list(session.run(neo4j.Query(queries[name], metadata={**_METADATA, "stage": name})))

    def tally(name: str) -> dict[str, int]:
        return {r["value"]: int(r["n"]) for r in run(name)}

    def sorted_ms(values: list[int]) -> np.ndarray:
        return np.sort(np.asarray(values, dtype=np.int64))

    latest = run("latest")[0]["latest"]
    return {
        "accounts": int(run("accounts")[0]["n"]),
        "cards": int(run("cards")[0]["n"]),
        "countries": tally("countries"),
        "email_domains": tally("email_domains"),
        "card_bins": tally("card_bins"),
        "typical_amount": {
            rel.type: {r["asset"]: float(r["median"]) for r in run(f"typical_{rel.type}")}
            for rel in (s.TRANSFERRED_TO, s.WITHDREW_TO)
        },
        "created_ms": sorted_ms(run("created")[0]["created"]),
        "signup_prefix_created_ms": {r["prefix"]: sorted_ms(r["created"]) for r in run("signup_prefixes")},
        "latest_ms": int(latest or 0),
    }
