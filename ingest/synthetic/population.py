"""The accounts themselves: creation time, country, KYC, email, phone and referrer.

Every attribute is drawn from one distribution for all accounts. Rings only share latents: a
promo-abuse ring or bot farm shares its creation anchor day (members are created within
``burst_days``, each at its own hour of the day), some members take their ring's country (one draw
from the country distribution), and promo rings may chain referrals. Accounts are numbered in
creation order, as an exchange's sequential ids would be. Every account is created at least a day
before the window ends.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ingest.synthetic.formats import digit_matrix, fixed_width
from ingest.synthetic.params import ExchangeParams
from ingest.synthetic.rings import BOT_CODE, PROMO_CODE, PROMO_REFERRAL, RingPlan, groups_from_labels

#: (ISO-3166 alpha-2, calling code, weight) of the countries the exchange serves.
COUNTRIES: tuple[tuple[str, str, float], ...] = (
    ("US", "1", 14),
    ("GB", "44", 7),
    ("DE", "49", 7),
    ("FR", "33", 5),
    ("TR", "90", 6),
    ("BR", "55", 6),
    ("IN", "91", 6),
    ("NG", "234", 4),
    ("VN", "84", 4),
    ("ID", "62", 4),
    ("PH", "63", 3),
    ("KR", "82", 3),
    ("JP", "81", 3),
    ("CA", "1", 3),
    ("AU", "61", 2),
    ("ES", "34", 3),
    ("IT", "39", 3),
    ("NL", "31", 2),
    ("PL", "48", 2),
    ("UA", "380", 2),
    ("AR", "54", 2),
    ("MX", "52", 2),
    ("ZA", "27", 1),
    ("AE", "971", 1),
    ("SG", "65", 1),
    ("TH", "66", 1),
    ("KE", "254", 1),
    ("CH", "41", 1),
)
EMAIL_DOMAINS: tuple[tuple[str, float], ...] = (
    ("gmail.com", 45),
    ("yahoo.com", 8),
    ("outlook.com", 8),
    ("hotmail.com", 6),
    ("icloud.com", 6),
    ("proton.me", 4),
    ("gmx.de", 2),
    ("mail.ru", 2),
    ("yandex.ru", 1),
    ("qq.com", 2),
    ("naver.com", 1),
    ("aol.com", 1),
    ("web.de", 1),
    ("zoho.com", 1),
    ("tutanota.com", 1),
    ("fastmail.com", 1),
)
_NAMES = (
    "alex ana andrei ben carlos chen chris david diego elena emma fatima hana ivan james jin john kemal "
    "laura lee li lucas maria mehmet mike mohamed nguyen olga omar paul priya rafael sam sara sofia tom "
    "wei yuki zoe ahmed bruno daniel eva felix grace hugo isabel jack kim leo"
).split()
KYC_P: tuple[float, ...] = (0.2, 0.35, 0.33, 0.12)
#: Relative signup / activity rate per UTC hour.
DIURNAL: np.ndarray = np.array(
    [2, 1.5, 1, 0.8, 0.7, 0.8, 1.2, 2, 3, 3.5, 3.8, 4, 4, 4, 4, 4.2, 4.5, 5, 5.5, 6, 6, 5.5, 4.5, 3], float
)
EMAIL_PRESENT_P = 0.93
PHONE_PRESENT_P = 0.8


@dataclass
class Population:
    """Per-account attributes, index = account number (creation order).

    Attributes:
        created_at: Unix seconds, ascending.
        country: Index into `COUNTRIES`.
        kyc_level: 0–3.
        email: Email text or null.
        phone: Phone text or null.
        referrer: Index of the referring account, -1 when none.
        threat: Threat code (see `rings.THREAT_NAMES`).
        ring: Ring index, -1 for benign.
        weak: Member tied to its ring through one mechanism only.
        n_rings: Number of rings (ring indices run from 0 to ``n_rings - 1``).
    """

    created_at: np.ndarray
    country: np.ndarray
    kyc_level: np.ndarray
    email: pa.Array
    phone: pa.Array
    referrer: np.ndarray
    threat: np.ndarray
    ring: np.ndarray
    weak: np.ndarray
    n_rings: int

    @property
    def n(self) -> int:
        """Number of accounts."""
        return int(self.created_at.size)


def hour_of_day(rng: np.random.Generator, n: int) -> np.ndarray:
    """Seconds into the day, following the exchange's diurnal activity profile."""
    hours = rng.choice(24, size=n, p=DIURNAL / DIURNAL.sum())
    return hours * 3600 + rng.integers(0, 3600, size=n)


def _anchor_days(rng: np.random.Generator, n: int, params: ExchangeParams) -> np.ndarray:
    """Days (fractional, from the start of the signup history) on which creation bursts are centred."""
    # Linear growth of signups: density ∝ 1 + (g - 1) x on [0, 1]; inverse-CDF sampling.
    g = params.signup_growth
    u = rng.random(n)
    x = u if abs(g - 1) < 1e-9 else (np.sqrt(1 + (g * g - 1) * u) - 1) / (g - 1)
    return x * (params.signup_history_days - 2 - params.burst_days)


def _creation_times(rng: np.random.Generator, plan: RingPlan, params: ExchangeParams) -> np.ndarray:
    """Creation instants of all account slots; promo-abuse rings and bot farms share their anchor."""
    n = plan.ring_of.size
    bursty = np.isin(plan.threat_of(), (PROMO_CODE, BOT_CODE))
    ring = plan.ring_of[bursty]
    anchor = _anchor_days(rng, n, params)
    anchor[bursty] = _anchor_days(rng, plan.n_rings, params)[ring]
    first_day = params.end_ts - params.signup_history_days * 86400
    if params.tight_burst_hours <= 0:
        day = np.floor(anchor + rng.random(n) * params.burst_days).astype(np.int64)
        return first_day + day * 86400 + hour_of_day(rng, n)
    # Tight bursts: ring-mates share the anchor instant (day and time of day), each a little after it.
    seconds = hour_of_day(rng, n)
    seconds[bursty] = hour_of_day(rng, plan.n_rings)[ring]
    created = first_day + np.floor(anchor).astype(np.int64) * 86400 + seconds
    created += np.floor(rng.random(n) * params.tight_burst_hours * 3600).astype(np.int64)
    return np.minimum(created, params.end_ts - 86401)


def _emails(rng: np.random.Generator, n: int) -> pa.Array:
    names = pa.array(_NAMES).take(pa.array(rng.integers(0, len(_NAMES), n)))
    letters = (97 + rng.integers(0, 26, size=(n, 2))).astype(np.uint8)
    tag = fixed_width(np.hstack([letters, digit_matrix(rng.integers(0, 10000, n), 4)]))
    weights = np.array([w for _, w in EMAIL_DOMAINS])
    domain = pa.array([d for d, _ in EMAIL_DOMAINS]).take(
        pa.array(rng.choice(len(EMAIL_DOMAINS), size=n, p=weights / weights.sum()))
    )
    email = pc.binary_join_element_wise(names, ".", tag, "@", domain, "")
    return pc.if_else(pa.array(rng.random(n) < EMAIL_PRESENT_P), email, pa.nulls(n, pa.string()))


def _phones(rng: np.random.Generator, country: np.ndarray) -> pa.Array:
    n = country.size
    codes = pa.array(["+" + c for _, c, _ in COUNTRIES]).take(pa.array(country))
    phone = pc.binary_join_element_wise(codes, fixed_width(digit_matrix(rng.integers(0, 10**10, n), 10)), "")
    return pc.if_else(pa.array(rng.random(n) < PHONE_PRESENT_P), phone, pa.nulls(n, pa.string()))


def _referrers(rng: np.random.Generator, plan: RingPlan, params: ExchangeParams) -> np.ndarray:
    n = plan.ring_of.size
    referrer = np.full(n, -1, dtype=np.int64)
    rings = groups_from_labels(plan.ring_of, plan.n_rings)
    ring_of_member = rings.group_of_member()
    in_chain = (
        plan.promo_mechanisms[ring_of_member, PROMO_REFERRAL]
        & (rings.position_of_member() > 0)
        & ~plan.weak[rings.members]
    )
    chained = rings.members[in_chain]
    promo = plan.threat_of() == PROMO_CODE
    # Chain links are frequent inside referral rings; the other promo members are referred less often,
    # so that the fraction of promo members with a referrer equals `referral_rate` like everyone's.
    p_chain = min(0.9, 2 * params.referral_rate)
    n_promo, n_chain = int(promo.sum()), chained.size
    rest = max(n_promo - n_chain, 1)
    p_rest = float(np.clip((params.referral_rate * n_promo - p_chain * n_chain) / rest, 0.0, 1.0))
    linked = np.flatnonzero(in_chain)[rng.random(n_chain) < p_chain]
    referrer[rings.members[linked]] = rings.members[linked - 1]
    p_general = np.where(promo, p_rest, params.referral_rate)
    general = (rng.random(n) < p_general) & (referrer < 0)
    general[chained] = False
    general[0] = False
    # Referrers are earlier accounts, weighted by a heavy-tailed popularity (influencers refer many).
    cum = np.cumsum(rng.lognormal(0.0, 1.2, size=n))
    who = np.flatnonzero(general)
    referrer[who] = np.minimum(np.searchsorted(cum, rng.random(who.size) * cum[who - 1], side="right"), who - 1)
    return referrer


def draw_population(rng: np.random.Generator, plan: RingPlan, params: ExchangeParams) -> Population:
    """Draw every account's own attributes and put accounts in creation order.

    Args:
        rng: Random generator of this stage.
        plan: The ring plan; its per-account arrays are re-ordered in place to creation order.
        params: Generation parameters.

    Returns:
        The population, indexed by account number.
    """
    n = plan.ring_of.size
    created = _creation_times(rng, plan, params)
    order = np.argsort(created, kind="stable")
    created = created[order]
    plan.reorder(order)
    member = plan.ring_of >= 0

    weights = np.array([w for _, _, w in COUNTRIES], dtype=float)
    country = rng.choice(len(COUNTRIES), size=n, p=weights / weights.sum())
    ring_country = rng.choice(len(COUNTRIES), size=plan.n_rings, p=weights / weights.sum())
    takes = member & (rng.random(n) < params.ring_country_share)
    country[takes] = ring_country[plan.ring_of[takes]]

    return Population(
        created_at=created,
        country=country.astype(np.int16),
        kyc_level=rng.choice(len(KYC_P), size=n, p=KYC_P).astype(np.int8),
        email=_emails(rng, n),
        phone=_phones(rng, country),
        referrer=_referrers(rng, plan, params),
        threat=plan.threat_of(),
        ring=plan.ring_of,
        weak=plan.weak,
        n_rings=plan.n_rings,
    )
