"""Every knob of the synthetic exchange, in one documented, frozen dataclass.

Counts of rings scale with the number of accounts (through ``fraud_rate``); pool sizes of shared
infrastructure (carrier NAT, public Wi-Fi) scale through their ``*_accounts_per_ip`` knobs. Per-account
activity distributions are the same for every account whatever its threat: fraud differs only in how
accounts are tied together.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from datetime import datetime
from typing import Any

IntRange = tuple[int, int]


@dataclass(frozen=True, kw_only=True)
class ExchangeParams:
    """Parameters of `generate_exchange`. All defaults give a realistic, honest exchange.

    Time:
        end_date: Last instant of the event window (ISO-8601 with zone). Fixed, never the wall clock.
        window_days: Days of events before ``end_date``; events before the window are not written.
        signup_history_days: Accounts are created over this many days before ``end_date``.
        signup_growth: Signup rate at ``end_date`` divided by the rate ``signup_history_days`` earlier.
        burst_days: Every account is created on an anchor day plus a uniform jitter of up to this many
            days, at its own time of day; benign accounts draw their own anchor day, promo-abuse rings
            and bot farms share one (a creation burst, paced to stay under velocity rules), so the
            marginal ``created_at`` distribution is the same for all. With the default of a week, a
            member's hour and weekday of creation say nothing about its ring either.
        tight_burst_hours: When > 0, promo-abuse and bot-farm members are instead created within this
            many hours after a shared anchor instant (scripted sign-ups). Ring-mates then share hour and
            weekday of creation, which a tabular model trained on a random split of accounts memorises
            (see ``bench/leak_check.py``); graph features such as sign-up bursts see them plainly.

    Fraud:
        fraud_rate: Fraction of accounts planted in rings.
        collusion_share, promo_share, bot_share: How the fraud accounts split among the threats.
        collusion_size, promo_size, bot_size: Inclusive ring size ranges.
        ring_country_share: Probability that a member takes its ring's country (drawn from the same
            country distribution) rather than its own.
        weak_tie_rate: Fraction of members tied to their ring through a single mechanism (camouflage).
        collusion_internal_share: Fraction of a collusion member's transfers that circulate in the ring.
        collusion_device_p, collusion_ip_p, collusion_wallet_p: Probability that a (strongly tied)
            collusion member uses one of the ring's shared devices / IPs / cash-out wallets.
        promo_mechanism_p: Probability that a promo ring uses each optional sharing mechanism
            (referral chain, shared cards, shared devices, shared wallets); at least one is used.
        promo_member_p: Probability that a member of a promo ring uses a mechanism the ring has.
        bot_accounts_per_device: A bot farm has about ``size / bot_accounts_per_device`` devices.
        bot_subnets: Inclusive range of /24 blocks (one /64 for IPv6) a farm signs up from.

    Labels (partial truth, like a real exchange's review queue):
        label_rate: Fraction of a labelled ring's members carrying their threat label.
        unlabelled_ring_rate: Fraction of rings without any labelled member.
        benign_label_rate: Fraction of benign accounts labelled ``benign``.

    Legitimate sharing:
        household_rate: Fraction of accounts living in households (one home IP, often one device).
        household_size: Inclusive household size range.
        household_device_p: Probability that a household shares its first member's device.
        household_transfer_share: Fraction of a household member's transfers that stay in the family.
        referral_rate: Fraction of accounts with a referrer (benign chains emerge naturally).
        nat_ip_p, wifi_ip_p: Probability that a secondary IP is a carrier-NAT / public Wi-Fi address.
        nat_accounts_per_ip, wifi_accounts_per_ip: Target accounts per NAT / Wi-Fi address (super-nodes).
        company_card_rate: Fraction of card holders using a company card shared with colleagues.
        company_size: Inclusive range of employees per company card.
        hot_wallet_p: Probability that a withdrawal wallet is a popular exchange hot wallet.
        n_hot_wallets: Number of such hot wallets (Zipf-popular).
        ipv6_rate: Fraction of personal IP addresses that are IPv6.

    Activity (same distributions for every account):
        logins_mean: Mean logins per account in the window besides the signup login.
        scheduled_rate: Fraction of login habits (an account has several; a farm shares one) that
            follow a regular schedule rather than random days.
        transfer_active_rate, transfers_mean: Fraction of accounts sending transfers; mean when active.
        deposits_mean: Mean card deposits of an account holding a card.
        chargeback_rate: Probability that a deposit is charged back.
        promo_active_rate, promos_mean: Fraction redeeming promos; mean redemptions when active.
        withdrawals_mean: Mean withdrawals of an account holding a wallet.
        device_slots_p, ip_extra_mean, card_slots_p, wallet_slots_p: Distributions of how many distinct
            devices, IPs (1 + Poisson), cards and withdrawal wallets an account uses.
    """

    end_date: str = "2026-03-01T00:00:00Z"
    window_days: int = 180
    signup_history_days: int = 540
    signup_growth: float = 3.0
    burst_days: float = 7.0
    tight_burst_hours: float = 0.0

    fraud_rate: float = 0.04
    collusion_share: float = 0.35
    promo_share: float = 0.35
    bot_share: float = 0.30
    collusion_size: IntRange = (4, 15)
    promo_size: IntRange = (5, 40)
    bot_size: IntRange = (10, 80)
    ring_country_share: float = 0.15
    weak_tie_rate: float = 0.25
    collusion_internal_share: float = 0.6
    collusion_device_p: float = 0.5
    collusion_ip_p: float = 0.4
    collusion_wallet_p: float = 0.8
    promo_mechanism_p: float = 0.5
    promo_member_p: float = 0.7
    bot_accounts_per_device: float = 12.0
    bot_subnets: IntRange = (1, 3)

    label_rate: float = 0.3
    unlabelled_ring_rate: float = 0.2
    benign_label_rate: float = 0.05

    household_rate: float = 0.08
    household_size: IntRange = (2, 5)
    household_device_p: float = 0.7
    household_transfer_share: float = 0.3
    referral_rate: float = 0.35
    nat_ip_p: float = 0.4
    wifi_ip_p: float = 0.15
    nat_accounts_per_ip: float = 600.0
    wifi_accounts_per_ip: float = 150.0
    company_card_rate: float = 0.03
    company_size: IntRange = (3, 10)
    hot_wallet_p: float = 0.5
    n_hot_wallets: int = 40
    ipv6_rate: float = 0.15

    logins_mean: float = 7.0
    scheduled_rate: float = 0.15
    transfer_active_rate: float = 0.6
    transfers_mean: float = 4.0
    deposits_mean: float = 4.0
    chargeback_rate: float = 0.01
    promo_active_rate: float = 0.5
    promos_mean: float = 1.5
    withdrawals_mean: float = 3.0
    device_slots_p: tuple[float, ...] = (0.0, 0.55, 0.30, 0.10, 0.05)
    ip_extra_mean: float = 1.5
    card_slots_p: tuple[float, ...] = (0.35, 0.45, 0.15, 0.05)
    wallet_slots_p: tuple[float, ...] = (0.45, 0.35, 0.15, 0.05)

    def __post_init__(self) -> None:
        self.validate()

    @property
    def end_ts(self) -> int:
        """``end_date`` as Unix seconds."""
        return int(datetime.fromisoformat(self.end_date.replace("Z", "+00:00")).timestamp())

    @property
    def window_start_ts(self) -> int:
        """First instant of the event window, as Unix seconds."""
        return self.end_ts - self.window_days * 86400

    def validate(self) -> None:
        """Check every knob, raising ValueError naming the first bad one and its value."""
        try:
            parsed = datetime.fromisoformat(self.end_date.replace("Z", "+00:00"))
        except ValueError as e:
            raise ValueError(f"end_date must be ISO-8601, got {self.end_date!r}") from e
        if parsed.tzinfo is None:
            raise ValueError(f"end_date must carry a zone, got {self.end_date!r}")
        if not 0.0 <= self.tight_burst_hours <= 24.0:
            raise ValueError(f"tight_burst_hours must be in [0, 24], got {self.tight_burst_hours}")
        if self.burst_days > self.signup_history_days - 3:
            raise ValueError(f"burst_days must leave room in the signup history, got {self.burst_days}")
        if not 1 <= self.window_days <= self.signup_history_days:
            raise ValueError(
                f"window_days must be in [1, signup_history_days={self.signup_history_days}], got {self.window_days}"
            )
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name.endswith(("_rate", "_share", "_p")) and isinstance(value, float):
                if not 0.0 <= value <= 1.0:
                    raise ValueError(f"{f.name} must be in [0, 1], got {value}")
            elif f.name.endswith(("_size", "_subnets")):
                lo, hi = value
                if not 1 <= lo <= hi:
                    raise ValueError(f"{f.name} must be (lo, hi) with 1 <= lo <= hi, got {value}")
            elif f.name.endswith("_slots_p"):
                if abs(sum(value) - 1.0) > 1e-6 or min(value) < 0:
                    raise ValueError(f"{f.name} must be probabilities summing to 1, got {value}")
            elif isinstance(value, float) and value < 0:
                raise ValueError(f"{f.name} must be >= 0, got {value}")
        if self.collusion_size[0] < 2 or self.promo_size[0] < 2 or self.bot_size[0] < 2:
            raise ValueError("ring sizes must start at 2 or more")
        shares = self.collusion_share + self.promo_share + self.bot_share
        if shares <= 0:
            raise ValueError(f"threat shares must sum to > 0, got {shares}")
        if self.device_slots_p[0] != 0.0:
            raise ValueError("device_slots_p[0] must be 0: every account signs up from a device")
        if self.n_hot_wallets < 1:
            raise ValueError(f"n_hot_wallets must be >= 1, got {self.n_hot_wallets}")
        if self.bot_accounts_per_device < 1:
            raise ValueError(f"bot_accounts_per_device must be >= 1, got {self.bot_accounts_per_device}")

    def to_dict(self) -> dict[str, Any]:
        """The parameters as plain JSON-ready values (tuples become lists)."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}
