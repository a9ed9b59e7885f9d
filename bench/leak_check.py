"""Honesty check of the synthetic exchange: can an account's *own* data tell fraud from benign?

Builds per-account tabular features that never look at the graph — the account's attributes and
statistics of its own events (counts, amounts, timing, how many distinct devices/IPs/cards/wallets it
used, never how many *other* accounts share them) — and trains a `HistGradientBoostingClassifier` per
threat (threat vs rest) on a random 70 % of accounts. Test AUROCs near 0.5 (goal: <= 0.60) mean the
planted fraud lives only in the structure.

Creation time enters as hour of day, weekday and whether the account was created inside the event
window; event timing is measured from the start of the account's activity in the window. The absolute
creation date is left out on purpose: creation bursts are planted structure (ring-mates created the
same week), and with a random split a tree would just memorise the weeks of the rings it saw.

It also reports the same classifier on a split that keeps every ring on one side (what transfers to
unseen rings: a check of the per-account distributions alone), and, for contrast, a graph-aware feature
— the most other accounts sharing one of the account's devices, cards or wallets, super-nodes excluded —
which should do clearly better, plus the classifier on tabular and graph features together.

Usage::

    python bench/leak_check.py --accounts 100000 --seed 7          # generate, then check
    python bench/leak_check.py --data data/synth                    # check an existing folder

Prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import GroupShuffleSplit, train_test_split

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from graph.schema import THREATS
from ingest.contract import TABLES, TRUTH_FILE

#: Identifiers shared by more accounts than this are infrastructure (NAT, Wi-Fi, hot wallets, popular promos).
SUPER_NODE = 50


def load(folder: Path) -> dict[str, pd.DataFrame]:
    """Read every contract table (parquet or csv) and the truth file; timestamps become Unix seconds."""
    frames: dict[str, pd.DataFrame] = {}
    for table in TABLES:
        pq_path, csv_path = folder / f"{table.name}.parquet", folder / f"{table.name}.csv"
        df = pd.read_parquet(pq_path) if pq_path.exists() else pd.read_csv(csv_path, dtype=str, keep_default_na=False)
        for col in ("ts", "created_at"):
            if col in df:
                df[col] = pd.to_datetime(df[col], utc=True, format="ISO8601").dt.as_unit("s").astype("int64")
        for col in ("amount", "kyc_level"):
            if col in df:
                df[col] = pd.to_numeric(df[col])
        frames[table.name] = df
    frames["truth"] = pd.read_csv(folder / TRUTH_FILE, dtype=str, keep_default_na=False)
    return frames


def _gap_stats(df: pd.DataFrame, key: str, prefix: str) -> pd.DataFrame:
    df = df.sort_values([key, "ts"])
    gap = df.groupby(key)["ts"].diff()
    g = gap.groupby(df[key])
    out = pd.DataFrame(
        {
            f"{prefix}_gap_mean": g.mean(),
            f"{prefix}_gap_std": g.std(),
            f"{prefix}_gap_min": g.min(),
            f"{prefix}_gap_med": g.median(),
        }
    )
    out[f"{prefix}_gap_cv"] = out[f"{prefix}_gap_std"] / out[f"{prefix}_gap_mean"]
    return out


def _hour_stats(df: pd.DataFrame, key: str, prefix: str) -> pd.DataFrame:
    angle = (df["ts"] % 86400) / 86400 * 2 * np.pi
    tmp = pd.DataFrame({key: df[key], "s": np.sin(angle), "c": np.cos(angle), "h": (df["ts"] % 86400) // 3600})
    g = tmp.groupby(key)
    out = pd.DataFrame({f"{prefix}_hour_sin": g["s"].mean(), f"{prefix}_hour_cos": g["c"].mean()})
    out[f"{prefix}_hour_conc"] = np.hypot(out[f"{prefix}_hour_sin"], out[f"{prefix}_hour_cos"])
    modal = tmp.groupby([key, "h"]).size().groupby(level=0).max()
    out[f"{prefix}_modal_hour_frac"] = modal / g.size()
    return out


def tabular_features(t: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """Per-account features from the account's own attributes and own events only."""
    acc = t["accounts"].set_index("account_id")
    end = max(int(t[name]["ts"].max()) for name in ("logins", "transfers", "card_events"))
    window_start = min(int(t[name]["ts"].min()) for name in ("logins", "transfers", "card_events"))
    f = pd.DataFrame(index=acc.index)
    f["kyc"] = acc["kyc_level"]
    f["country"] = acc["country"].astype("category").cat.codes
    email = acc["email"].fillna("").astype(str)
    f["email_domain"] = email.str.split("@").str[-1].astype("category").cat.codes
    f["has_email"] = email.ne("")
    f["has_phone"] = acc["phone"].fillna("").astype(str).ne("")
    f["has_referrer"] = acc["referrer_id"].fillna("").astype(str).ne("")
    f["created_hour"] = acc["created_at"] % 86400 // 3600
    f["created_dow"] = acc["created_at"] // 86400 % 7
    start = np.maximum(acc["created_at"], window_start)
    f["created_in_window"] = acc["created_at"] >= window_start
    f["signup_ipv6"] = acc["signup_ip"].astype(str).str.contains(":")

    lg = t["logins"]
    g = lg.groupby("account_id")
    f["logins"] = g.size()
    f["login_devices"] = g["device_id"].nunique()
    f["login_ips"] = g["ip"].nunique()
    f["login_uas"] = g["user_agent"].nunique()
    f["login_ipv6_frac"] = lg["ip"].astype(str).str.contains(":").groupby(lg["account_id"]).mean()
    f["login_first_delay"] = g["ts"].min() - start
    f["login_last_gap"] = end - g["ts"].max()
    f = f.join(_gap_stats(lg, "account_id", "login")).join(_hour_stats(lg, "account_id", "login"))

    ce = t["card_events"]
    for kind in ("add", "deposit", "chargeback"):
        f[f"card_{kind}s"] = ce[ce["event_type"] == kind].groupby("account_id").size()
    dep = ce[ce["event_type"] == "deposit"].groupby("account_id")["amount"]
    f["deposit_sum"], f["deposit_mean"], f["deposit_max"] = dep.sum(), dep.mean(), dep.max()
    f["cards"] = ce.groupby("account_id")["card_number"].nunique()

    tr = t["transfers"].assign(log_amount=lambda d: np.log1p(d["amount"]))
    out, inc = tr.groupby("from_account_id"), tr.groupby("to_account_id")
    f["transfers_out"], f["transfers_in"] = out.size(), inc.size()
    f["transfer_out_amount"], f["transfer_in_amount"] = out["log_amount"].mean(), inc["log_amount"].mean()
    f["transfer_out_amount_std"] = out["log_amount"].std()
    f["transfer_out_assets"] = out["asset"].nunique()
    f["transfer_out_first"] = out["ts"].min() - start
    f = f.join(_gap_stats(tr.rename(columns={"from_account_id": "a"}), "a", "transfer_out"))
    f = f.join(_hour_stats(tr.rename(columns={"from_account_id": "a"}), "a", "transfer_out"))

    pr = t["promo_redemptions"].groupby("account_id")
    f["promos"], f["promo_amount"], f["promo_codes"] = pr.size(), pr["amount"].sum(), pr["promo_code"].nunique()
    f["promo_first_delay"] = pr["ts"].min() - start

    wd = t["withdrawals"].assign(log_amount=lambda d: np.log1p(d["amount"]))
    w = wd.groupby("account_id")
    f["withdrawals"], f["withdrawal_wallets"] = w.size(), w["address"].nunique()
    f["withdrawal_amount"] = w["log_amount"].mean()
    f["withdrawal_btc_frac"] = (wd["asset"] == "BTC").groupby(wd["account_id"]).mean()
    f = f.join(_gap_stats(wd, "account_id", "withdrawal"))
    return f.astype(float)


def graph_features(t: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """Most other accounts sharing one device / card / wallet / IP with the account (super-nodes excluded)."""
    uses = {
        "device": t["logins"][["account_id", "device_id"]].rename(columns={"device_id": "key"}),
        "ip": t["logins"][["account_id", "ip"]].rename(columns={"ip": "key"}),
        "card": t["card_events"][["account_id", "card_number"]].rename(columns={"card_number": "key"}),
        "wallet": t["withdrawals"][["account_id", "address"]].rename(columns={"address": "key"}),
    }
    f = pd.DataFrame(index=t["accounts"]["account_id"])
    for name, df in uses.items():
        df = df.drop_duplicates()
        sharing = df.groupby("key")["account_id"].transform("size") - 1
        df = df.assign(sharing=sharing.where(sharing < SUPER_NODE, 0))
        f[f"shared_{name}"] = df.groupby("account_id")["sharing"].max()
    f = f.fillna(0.0)
    f["shared_any"] = f[["shared_device", "shared_card", "shared_wallet"]].max(axis=1)
    return f


def auroc_per_threat(x: pd.DataFrame, truth: pd.Series, seed: int, groups: pd.Series | None = None) -> dict[str, float]:
    """Test AUROC of one gradient-boosted classifier per threat (threat vs rest), 70/30 split.

    Args:
        x: Features, one row per account.
        truth: True label of each account.
        seed: Seed of the split and the classifier.
        groups: When given, the split keeps each group (a ring; a benign account alone) on one side,
            so the score measures what transfers to *unseen* rings rather than ring-mates' shared
            latents (creation week, farm login habit) memorised from the training side.
    """
    if groups is None:
        train, test = train_test_split(np.arange(len(x)), test_size=0.3, random_state=seed, stratify=truth)
    else:
        splitter = GroupShuffleSplit(n_splits=1, test_size=0.3, random_state=seed)
        train, test = next(splitter.split(x, groups=groups))
    scores = {}
    for threat in THREATS:
        y = (truth == threat).to_numpy()
        model = HistGradientBoostingClassifier(random_state=seed).fit(x.iloc[train], y[train])
        scores[threat] = round(float(roc_auc_score(y[test], model.predict_proba(x.iloc[test])[:, 1])), 4)
    return scores


def main(argv: list[str] | None = None) -> None:
    """Parse arguments, generate or read the exchange, print the AUROCs as JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--accounts", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--data", type=Path, help="existing folder of contract tables (skips generation)")
    args = parser.parse_args(argv)
    report: dict[str, object] = {}
    with tempfile.TemporaryDirectory() as tmp:
        folder = args.data
        if folder is None:
            from ingest.synthetic import generate_exchange

            summary = generate_exchange(args.accounts, args.seed, Path(tmp))
            folder = Path(tmp)
            report["generation_seconds"] = round(summary.seconds, 2)
        tables = load(folder)
    truth_table = tables["truth"].set_index("account_id")
    truth = truth_table["label"]
    ring_or_self = truth_table["ring_id"].where(truth_table["ring_id"] != "", truth_table.index.to_series())
    tab = tabular_features(tables).reindex(truth.index)
    graph = graph_features(tables).reindex(truth.index)
    y_any = truth.ne("benign")
    report.update(
        {
            "accounts": int(len(truth)),
            "fraud_rate": round(float(y_any.mean()), 4),
            "tabular_features": tab.shape[1],
            "tabular_auroc": auroc_per_threat(tab, truth, args.seed),
            "tabular_auroc_ring_grouped_split": auroc_per_threat(tab, truth, args.seed, groups=ring_or_self),
            "graph_feature_auroc": {
                threat: round(float(roc_auc_score(truth == threat, graph["shared_any"])), 4) for threat in THREATS
            },
            "tabular_plus_graph_auroc": auroc_per_threat(tab.join(graph), truth, args.seed),
        }
    )
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
