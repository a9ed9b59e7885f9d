"""``ringwatch verdict``: an investigator records that a flagged account is confirmed fraud or a false positive.

The next training run reads verdicts as labels (:func:`gnn.build.training_labels`): a confirmed account is
a positive of its threat, a false positive a benign account, whatever the review team's label said.
"""

from __future__ import annotations

import getpass
import uuid
from typing import Any

import neo4j

from graph import schema as s
from graph.errors import RingwatchError
from graph.queries import verdicts as q


class VerdictError(RingwatchError):
    """A verdict cannot be recorded (unknown account, verdict or threat)."""


def record_verdict(
    driver: neo4j.Driver,
    database: str,
    account_id: str,
    verdict: str,
    note: str = "",
    by: str | None = None,
    threat: str | None = None,
) -> dict[str, Any]:
    """Record a verdict (see the module docstring).

    Args:
        account_id: the account.
        verdict: ``confirmed`` or ``false_positive``.
        note: the investigator's note (free text, stored as given).
        by: who decided; default: the operating-system user.
        threat: for ``confirmed``, the threat confirmed; default: the account's risk label or known label.

    Raises:
        VerdictError: unknown verdict or threat, no such account, or a confirmation without a threat.
    """
    if verdict not in s.VERDICTS:
        raise VerdictError(f"verdict must be one of {', '.join(s.VERDICTS)}, got {verdict!r}")
    if threat is not None and threat not in s.THREATS:
        raise VerdictError(f"threat must be one of {', '.join(s.THREATS)}, got {threat!r}")
    records, _, _ = driver.execute_query(
        q.ACCOUNT_FOR_VERDICT, account_id=account_id, database_=database, routing_=neo4j.RoutingControl.READ
    )
    if not records:
        raise VerdictError(f"no account {account_id!r} in the graph")
    current = records[0]
    if (
        verdict == s.CONFIRMED
        and threat is None
        and current["risk_label"] not in s.THREATS
        and current["known_label"] not in s.THREATS
    ):
        raise VerdictError(
            f"account {account_id} is neither flagged nor labelled with a threat: "
            f"say which with --threat ({', '.join(s.THREATS)})"
        )
    records, _, _ = driver.execute_query(
        q.RECORD_VERDICT,
        account_id=account_id,
        verdict=verdict,
        threat=threat,
        threats=list(s.THREATS),
        note=note,
        by=by or getpass.getuser(),
        verdict_id=f"verdict-{uuid.uuid4().hex}",
        database_=database,
    )
    return dict(records[0])
