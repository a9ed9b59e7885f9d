"""The graph's vocabulary: every node label, relationship type, key property and threat, in one place.

Ingestion, export, training and write-back all name graph elements through this module; Cypher builders
interpolate only these constants (never user input) and pass every value as a ``$parameter``.

The graph model (see the README for the picture)::

    (:Account)-[:USED_DEVICE]->(:Device)        first_seen, last_seen, count, signup
    (:Account)-[:USED_IP]->(:IP)                first_seen, last_seen, count, signup
    (:Account)-[:USED_CARD]->(:Card)            first_seen, last_seen, count, deposit_count, deposit_total,
                                                chargeback_count, chargeback_total
    (:Account)-[:HAS_EMAIL]->(:Email)           since
    (:Account)-[:HAS_PHONE]->(:Phone)           since
    (:Account)-[:REFERRED]->(:Account)          at
    (:Account)-[:TRANSFERRED_TO {asset}]->(:Account)   count, total, first_seen, last_seen
    (:Account)-[:WITHDREW_TO {asset}]->(:Wallet)       count, total, first_seen, last_seen
    (:Account)-[:REDEEMED]->(:Promo)            count, total, first_seen, last_seen
    (:IngestBatch)                              one per committed ingest batch (resumability ledger)

Written by the scoring job and by investigators (see the README's "Investigating" section)::

    (:Account)  risk_collusion, risk_promo_abuse, risk_bot_farm, risk_score, risk_label, risk_reasons,
                risk_model_version, risk_run_id, risk_scored_at, prev_risk_* (the run before), verdict, …
    (:ScoringRun {run_id})                      one per scoring run: model, counts, start/end, status
    (:ScoreBatch {batch_id})                    one per committed write-back batch (resumability ledger)
    (:Account)-[:MEMBER_OF]->(:Ring {ring_id})  rings of risky accounts: kind, size, score, evidence
    (:Verdict {verdict_id})-[:ABOUT]->(:Account)  an investigator's verdict (history; the latest is on Account)
    (:Erasure {account_hash})                   the tombstone of an erased account (``ringwatch erase``)
    (:MonitorRun {run_id})                      one per monitoring run: drift, efficacy, alert counts
    (:Alert {alert_id})                         a monitoring alert: rule, severity, observed, threshold, status
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final, TypeAlias

NodeType: TypeAlias = str
RelType: TypeAlias = str
EdgeType: TypeAlias = tuple[NodeType, RelType, NodeType]
AccountId: TypeAlias = str

SCHEMA_VERSION: Final = 1


@dataclass(frozen=True)
class NodeSpec:
    """A node label and the business key that identifies its nodes (unique, constrained)."""

    label: NodeType
    key: str


@dataclass(frozen=True)
class RelSpec:
    """A relationship type between two node labels.

    ``discriminator`` names a property that is part of the relationship's identity (for example the asset
    of a transfer: one ``TRANSFERRED_TO`` per pair *and asset*), or None when one per pair.
    """

    type: RelType
    source: NodeSpec
    target: NodeSpec
    discriminator: str | None = None

    @property
    def edge_type(self) -> EdgeType:
        return (self.source.label, self.type, self.target.label)


ACCOUNT: Final = NodeSpec("Account", "account_id")
DEVICE: Final = NodeSpec("Device", "device_id")
CARD: Final = NodeSpec("Card", "card_hash")
IP: Final = NodeSpec("IP", "ip")
EMAIL: Final = NodeSpec("Email", "email_hash")
PHONE: Final = NodeSpec("Phone", "phone_hash")
WALLET: Final = NodeSpec("Wallet", "address")
PROMO: Final = NodeSpec("Promo", "code")
INGEST_BATCH: Final = NodeSpec("IngestBatch", "batch_id")
SCORING_RUN: Final = NodeSpec("ScoringRun", "run_id")
SCORE_BATCH: Final = NodeSpec("ScoreBatch", "batch_id")
RING: Final = NodeSpec("Ring", "ring_id")
VERDICT: Final = NodeSpec("Verdict", "verdict_id")
#: The tombstone of an erased account: the keyed hash of its id, when, why (``ringwatch erase``).
ERASURE: Final = NodeSpec("Erasure", "account_hash")
#: A monitoring run (``ringwatch monitor``, after every scoring run) and the alerts it raised.
MONITOR_RUN: Final = NodeSpec("MonitorRun", "run_id")
ALERT: Final = NodeSpec("Alert", "alert_id")
#: The audit record of a model promotion, or of a refused one (``ringwatch promote``): who, why, the gate.
PROMOTION: Final = NodeSpec("Promotion", "promotion_id")

#: Identifier nodes an account can share with others; rings hide behind these.
IDENTIFIER_NODES: Final = (DEVICE, CARD, IP, EMAIL, PHONE, WALLET, PROMO)
#: Identifiers that can point at a person; erasing an account deletes those only it uses (a promo code can't).
PERSONAL_IDENTIFIER_NODES: Final = (DEVICE, CARD, IP, EMAIL, PHONE, WALLET)
DOMAIN_NODES: Final = (ACCOUNT, *IDENTIFIER_NODES)
#: Nodes the jobs and investigators write (not exported for training, except verdicts through Account).
JOB_NODES: Final = (SCORING_RUN, SCORE_BATCH, RING, VERDICT, ERASURE, MONITOR_RUN, ALERT, PROMOTION)
ALL_NODES: Final = (*DOMAIN_NODES, INGEST_BATCH, *JOB_NODES)

USED_DEVICE: Final = RelSpec("USED_DEVICE", ACCOUNT, DEVICE)
USED_IP: Final = RelSpec("USED_IP", ACCOUNT, IP)
USED_CARD: Final = RelSpec("USED_CARD", ACCOUNT, CARD)
HAS_EMAIL: Final = RelSpec("HAS_EMAIL", ACCOUNT, EMAIL)
HAS_PHONE: Final = RelSpec("HAS_PHONE", ACCOUNT, PHONE)
REFERRED: Final = RelSpec("REFERRED", ACCOUNT, ACCOUNT)
TRANSFERRED_TO: Final = RelSpec("TRANSFERRED_TO", ACCOUNT, ACCOUNT, discriminator="asset")
WITHDREW_TO: Final = RelSpec("WITHDREW_TO", ACCOUNT, WALLET, discriminator="asset")
REDEEMED: Final = RelSpec("REDEEMED", ACCOUNT, PROMO)

DOMAIN_RELS: Final = (
    USED_DEVICE,
    USED_IP,
    USED_CARD,
    HAS_EMAIL,
    HAS_PHONE,
    REFERRED,
    TRANSFERRED_TO,
    WITHDREW_TO,
    REDEEMED,
)

MEMBER_OF: Final = RelSpec("MEMBER_OF", ACCOUNT, RING)
ABOUT: Final = RelSpec("ABOUT", VERDICT, ACCOUNT)
JOB_RELS: Final = (MEMBER_OF, ABOUT)

# Threats the models score, and the labels the `labels` table may carry.
COLLUSION: Final = "collusion"
PROMO_ABUSE: Final = "promo_abuse"
BOT_FARM: Final = "bot_farm"
BENIGN: Final = "benign"
THREATS: Final = (COLLUSION, PROMO_ABUSE, BOT_FARM)
KNOWN_LABELS: Final = (*THREATS, BENIGN)
#: The risk label of an account that crosses no threat's threshold.
CLEAR: Final = "clear"
RISK_LABELS: Final = (*THREATS, CLEAR)

# Investigator verdicts: a confirmed account becomes a positive of its threat in the next training run,
# a false positive a benign one (they override the review team's known labels).
CONFIRMED: Final = "confirmed"
FALSE_POSITIVE: Final = "false_positive"
VERDICTS: Final = (CONFIRMED, FALSE_POSITIVE)


def risk_property(threat: str) -> str:
    """The Account property holding the calibrated score of ``threat`` (``risk_collusion`` …)."""
    if threat not in THREATS:
        raise ValueError(f"unknown threat {threat!r}; known: {THREATS}")
    return f"risk_{threat}"


#: Account properties written by the scoring job (the ``prev_`` ones keep the run before, for audit) and,
#: for the ring members it flags, by ring grouping (``risk_flagged_by``, ``risk_rings_run_id``).
RISK_PROPERTIES: Final = (
    *(f"risk_{t}" for t in THREATS),
    "risk_score",
    "risk_label",
    "risk_reasons",
    "risk_model_version",
    "risk_run_id",
    "risk_scored_at",
    "risk_flagged_by",
    "risk_rings_run_id",
    "prev_risk_score",
    "prev_risk_label",
    "prev_risk_run_id",
)
#: ``risk_flagged_by``: the account's label comes from its own score, or from the ring it is a member of.
FLAGGED_BY_SCORE: Final = "score"
FLAGGED_BY_RING: Final = "ring"
#: Account properties written by a challenger in shadow (``ringwatch score --challenger``): its scores and label
#: beside the champion's, never instead of them (``risk_*`` and rings are the champion's alone).
CHALLENGER_PROPERTIES: Final = (
    *(f"challenger_{t}" for t in THREATS),
    "challenger_score",
    "challenger_label",
    "challenger_disagrees",
    "challenger_model_version",
    "challenger_run_id",
)
#: Account properties written by ``ringwatch verdict`` (the latest verdict; the history is in Verdict nodes).
VERDICT_PROPERTIES: Final = ("verdict", "verdict_threat", "verdict_at", "verdict_note", "verdict_by")

# Account properties exported for training: ingestion's, and the verdict that overrides a known label.
ACCOUNT_PROPERTIES: Final = (
    "account_id",
    "created_at",
    "country",
    "kyc_level",
    "email_domain",
    "stub",
    "known_label",
    "known_label_source",
    "known_label_at",
    "verdict",
    "verdict_threat",
)

_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def node_by_label(label: str) -> NodeSpec:
    """Return the spec of a node label, raising ValueError for a label the schema does not know."""
    for spec in ALL_NODES:
        if spec.label == label:
            return spec
    raise ValueError(f"unknown node label {label!r}; known: {[s.label for s in ALL_NODES]}")


def rel_by_type(rel_type: str) -> RelSpec:
    """Return the spec of a relationship type, raising ValueError for one the schema does not know."""
    for spec in (*DOMAIN_RELS, *JOB_RELS):
        if spec.type == rel_type:
            return spec
    raise ValueError(f"unknown relationship type {rel_type!r}; known: {[s.type for s in (*DOMAIN_RELS, *JOB_RELS)]}")


def _check_identifiers() -> None:
    # Labels and types are interpolated into Cypher; keep them plain identifiers so that is always safe.
    names = [s.label for s in ALL_NODES] + [s.key for s in ALL_NODES] + [r.type for r in (*DOMAIN_RELS, *JOB_RELS)]
    names += [*RISK_PROPERTIES, *VERDICT_PROPERTIES, *CHALLENGER_PROPERTIES]
    bad = [n for n in names if not _IDENTIFIER.match(n)]
    if bad:
        raise ValueError(f"schema names must be plain identifiers: {bad}")


_check_identifiers()
