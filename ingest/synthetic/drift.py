"""Deliberate drift for monitoring tests: shift chosen distributions of a generated exchange.

Applied to the finished tables (the exchange underneath is the same as without drift, seed for seed):

- ``new-country-burst``: the newest :data:`BURST_SHARE` of accounts signed up from one country the exchange
  had never seen (:data:`BURST_COUNTRY`), with the lowest KYC level — a sign-up campaign in a new market.
  Shifts ``country_freq`` and the ``kyc_*`` features.
- ``promo-campaign``: :data:`CAMPAIGN_SHARE` of accounts redeem one new promo code once more, in the last
  week. Shifts ``promo_*`` and ``deg_redeemed_log``, and the sharing of the promo node.
"""

from __future__ import annotations

from typing import Final

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

DRIFTS: Final = ("new-country-burst", "promo-campaign")
BURST_SHARE: Final = 0.3
BURST_COUNTRY: Final = "IS"
CAMPAIGN_SHARE: Final = 0.4
CAMPAIGN_CODE: Final = "SPRINGBOOST"
WEEK_S: Final = 7 * 86_400


def apply_drift(tables: dict[str, pa.Table], drift: str, rng: np.random.Generator, end_s: int) -> dict[str, pa.Table]:
    """The tables with ``drift`` applied (see the module docstring).

    Raises:
        ValueError: an unknown drift.
    """
    if drift not in DRIFTS:
        raise ValueError(f"drift must be one of {', '.join(DRIFTS)}, got {drift!r}")
    out = dict(tables)
    accounts = tables["accounts"]
    n = accounts.num_rows
    if drift == "new-country-burst":
        burst = np.arange(n) >= n - int(round(BURST_SHARE * n))  # accounts are in creation order
        country = pc.if_else(pa.array(burst), BURST_COUNTRY, accounts.column("country").cast(pa.string()))
        kyc = pc.if_else(pa.array(burst), pa.scalar(0, pa.int64()), accounts.column("kyc_level"))
        accounts = accounts.set_column(accounts.schema.get_field_index("country"), "country", country)
        out["accounts"] = accounts.set_column(accounts.schema.get_field_index("kyc_level"), "kyc_level", kyc)
        return out
    promos = tables["promo_redemptions"]
    who = np.flatnonzero(rng.random(n) < CAMPAIGN_SHARE)
    ts = end_s - rng.integers(60, WEEK_S, size=who.size)
    created = pc.strptime(accounts.column("created_at").take(pa.array(who)), "%Y-%m-%dT%H:%M:%SZ", "s")
    ts = np.maximum(ts, created.to_numpy().astype("datetime64[s]").astype(np.int64) + 60)  # never before sign-up
    stamps = pa.array(ts.astype("datetime64[s]")).cast(pa.timestamp("s", "UTC"))
    extra = pa.table(
        {
            "account_id": accounts.column("account_id").take(pa.array(who)),
            "ts": pc.strftime(stamps, "%Y-%m-%dT%H:%M:%SZ"),
            "promo_code": pa.array([CAMPAIGN_CODE] * who.size),
            "amount": pa.array(np.round(rng.uniform(5, 25, size=who.size), 2)),
        }
    )
    extra = extra.cast(promos.schema) if extra.schema != promos.schema else extra
    out["promo_redemptions"] = pa.concat_tables([promos, extra])
    return out
