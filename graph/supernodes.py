"""Super-node limits: when an identifier used by many accounts stops counting, one name per concept.

A carrier-NAT address, a public Wi-Fi, an exchange's hot wallet or a popular promo code is shared by hundreds
of accounts that have nothing to do with each other. Four different questions draw a line on "how many
accounts use it", and they are kept apart on purpose — each number is measured where it is used, and changing
one changes that stage's output (features change the model; evidence changes what investigators read):

=========================  =====  ==========================================================================
name                       value  what it decides
=========================  =====  ==========================================================================
``EVIDENCE_CAP``           100    an identifier with more users is never shown as *evidence*: not a reason
                                  (:mod:`serving.reasons`), not in the investigator's "what they share"
                                  answers (:mod:`graph.queries.investigator`), drawn but not linked in ring
                                  pictures and the report, and not a path of ``score --since``'s
                                  neighbourhood (:func:`serving.score.neighbourhood`). Strict, because a
                                  person reads it.
``FEATURE_SHARED_CAP``     200    the sharing *features* (:mod:`gnn.features`: accounts per shared device,
                                  card, IP, wallet …) leave such identifiers out, or their counts would drown
                                  a ring's. Recorded in every snapshot's manifest (``shared_cap``).
``MODEL_SUPERNODE_CAP``    500    the *model's* neighbourhood: the neighbour sampler does not expand such an
                                  identifier (:mod:`gnn.sampling`) and the baseline's neighbour means skip it
                                  (:mod:`gnn.baseline`). Loose, because the model learns how much a shared
                                  identifier weighs; the cap bounds the work per mini-batch.
``KNOWN_TIES_CAP``         10     *known-fraud ties* (:mod:`gnn.known_ties`): an account counts the accounts with a
                                  known fraud label it shares an identifier of at most this many users with (or
                                  a transfer, or a referral) — a household's or a ring's device, not a café's
                                  Wi-Fi; the same size as the identifiers ring expansion follows
                                  (``GroupingPolicy.expand_max_users``).
``SMALL_GROUP_MAX``        30     ring-structure features (:mod:`gnn.ring_features`): a group of co-users up
                                  to this size is "small", the size of a ring rather than of a crowd.
=========================  =====  ==========================================================================

Ring grouping (:mod:`serving.ring_grouping`) uses none of them: it weighs an identifier by the share of its
users that are risky (``GroupingPolicy``), so a large identifier used mostly by risky accounts still ties them.
"""

from __future__ import annotations

from typing import Final

KNOWN_TIES_CAP: Final = 10
EVIDENCE_CAP: Final = 100
FEATURE_SHARED_CAP: Final = 200
MODEL_SUPERNODE_CAP: Final = 500
SMALL_GROUP_MAX: Final = 30
