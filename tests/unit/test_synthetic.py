"""Unit tests of the synthetic exchange generator (small, seeded exchanges)."""

from __future__ import annotations

import ipaddress
import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy.stats import chi2_contingency

from graph.schema import BENIGN, BOT_FARM, COLLUSION, KNOWN_LABELS, PROMO_ABUSE, THREATS
from ingest.contract import CARD_EVENT_TYPES, TABLES, TRUTH_COLUMNS, TRUTH_FILE
from ingest.synthetic import MIN_ACCOUNTS, ExchangeParams, generate_exchange

N = 2000
N_RINGS_CHECK = 6000
SEED = 7
TS_PATTERN = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(Z|[+-]\d{2}:\d{2})$")
TS_COLUMNS = {"accounts": ("created_at",), "labels": ("ts",)}


def _read(folder: Path, name: str) -> pd.DataFrame:
    path = folder / f"{name}.parquet"
    if path.exists():
        return pd.read_parquet(path)
    return pd.read_csv(folder / f"{name}.csv", dtype=str, keep_default_na=False)


def _blank(series: pd.Series) -> pd.Series:
    return series.isna() | series.astype(str).eq("")


def _seconds(series: pd.Series) -> pd.Series:
    return pd.to_datetime(series, utc=True, format="ISO8601").dt.as_unit("s").astype("int64")


@pytest.fixture(scope="module")
def exchange(tmp_path_factory: pytest.TempPathFactory) -> dict[str, pd.DataFrame]:
    out = tmp_path_factory.mktemp("synth")
    generate_exchange(N, SEED, out)
    tables = {t.name: _read(out, t.name) for t in TABLES}
    tables["truth"] = pd.read_csv(out / TRUTH_FILE, dtype=str, keep_default_na=False)
    tables["_meta"] = pd.DataFrame([json.loads((out / "generation.json").read_text())])
    return tables


@pytest.fixture(scope="module")
def ring_of(exchange: dict[str, pd.DataFrame]) -> pd.Series:
    return exchange["truth"].set_index("account_id")["ring_id"]


def _rings(exchange: dict[str, pd.DataFrame], label: str) -> list[str]:
    truth = exchange["truth"]
    return sorted(truth.loc[truth["label"] == label, "ring_id"].unique())


def test_same_seed_writes_identical_bytes(tmp_path: Path) -> None:
    generate_exchange(MIN_ACCOUNTS, 3, tmp_path / "a")
    generate_exchange(MIN_ACCOUNTS, 3, tmp_path / "b")
    files = sorted(p.name for p in (tmp_path / "a").iterdir())
    assert len(files) == len(TABLES) + 2
    for name in files:
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name


def test_different_seed_differs(tmp_path: Path) -> None:
    generate_exchange(MIN_ACCOUNTS, 3, tmp_path / "a")
    generate_exchange(MIN_ACCOUNTS, 4, tmp_path / "b")
    a, b = _read(tmp_path / "a", "accounts"), _read(tmp_path / "b", "accounts")
    assert (a["signup_device_id"] != b["signup_device_id"]).all()
    assert not a["created_at"].equals(b["created_at"])


def test_csv_matches_parquet(tmp_path: Path) -> None:
    generate_exchange(MIN_ACCOUNTS, 5, tmp_path / "pq")
    generate_exchange(MIN_ACCOUNTS, 5, tmp_path / "csv", fmt="csv")
    assert not list((tmp_path / "csv").glob("*.parquet"))
    for name in ("accounts", "logins", "transfers"):
        pq, csv = _read(tmp_path / "pq", name), _read(tmp_path / "csv", name)
        assert len(pq) == len(csv)
        for col in pq.columns:
            if pq[col].dtype.kind in "if":
                np.testing.assert_allclose(pq[col].to_numpy(float), csv[col].astype(float).to_numpy())
            else:
                assert pq[col].fillna("").astype(str).tolist() == csv[col].tolist(), (name, col)


def test_every_contract_column_present(exchange: dict[str, pd.DataFrame]) -> None:
    for table in TABLES:
        assert tuple(exchange[table.name].columns) == table.columns
        assert len(exchange[table.name]) > 0, table.name
        required = [c for c in table.columns if c not in table.nullable]
        assert not exchange[table.name][required].isna().any().any(), table.name
    assert tuple(exchange["truth"].columns) == TRUTH_COLUMNS


def test_truth_covers_exactly_the_accounts(exchange: dict[str, pd.DataFrame]) -> None:
    accounts, truth = exchange["accounts"], exchange["truth"]
    assert accounts["account_id"].is_unique and truth["account_id"].is_unique
    assert set(accounts["account_id"]) == set(truth["account_id"])
    assert set(truth["label"]) == set(KNOWN_LABELS)
    assert (truth["ring_id"].eq("") == truth["label"].eq(BENIGN)).all()
    assert accounts["account_id"].str.fullmatch(r"acc_\d{6}").all()


def test_event_references_and_values(exchange: dict[str, pd.DataFrame]) -> None:
    known = set(exchange["accounts"]["account_id"])
    for table in TABLES:
        for col in table.account_refs:
            values = exchange[table.name][col]
            assert set(values[~_blank(values)]) <= known, (table.name, col)
        if "amount" in table.columns:
            assert (exchange[table.name]["amount"].astype(float) >= 0).all()
    accounts = exchange["accounts"]
    assert accounts["kyc_level"].astype(int).between(0, 3).all()
    assert accounts["country"].str.fullmatch(r"[A-Z]{2}").all()
    assert set(exchange["card_events"]["event_type"]) == set(CARD_EVENT_TYPES)
    ips = exchange["logins"]["ip"]
    assert ips.str.contains(":").any() and ips.str.fullmatch(r"\d+\.\d+\.\d+\.\d+").any()
    assert exchange["withdrawals"]["address"].str.match(r"^(0x[0-9a-f]{40}|bc1q[a-z0-9]{38})$").all()


def test_card_numbers_are_luhn_valid(exchange: dict[str, pd.DataFrame]) -> None:
    cards = exchange["card_events"]["card_number"].unique()
    assert all(re.fullmatch(r"\d{16}", c) for c in cards)
    digits = np.array([[int(ch) for ch in c] for c in cards])
    doubled = digits[:, -2::-2] * 2
    total = digits[:, -1::-2].sum(axis=1) + np.where(doubled > 9, doubled - 9, doubled).sum(axis=1)
    assert (total % 10 == 0).all()


def test_no_card_like_digit_runs_outside_card_numbers(exchange: dict[str, pd.DataFrame]) -> None:
    # Ingest hashes card numbers and scans for Luhn-valid digit runs; ids must not look like cards.
    for table in TABLES:
        df = exchange[table.name]
        for col in df.columns:
            if col != "card_number" and df[col].dtype.kind not in "if":
                assert not df[col].fillna("").astype(str).str.contains(r"\d{16}").any(), (table.name, col)


def test_timestamps_carry_a_zone_and_fit_the_window(exchange: dict[str, pd.DataFrame]) -> None:
    params = ExchangeParams()
    created = _seconds(exchange["accounts"].set_index("account_id")["created_at"])
    for table in TABLES:
        for col in TS_COLUMNS.get(table.name, ("ts",)):
            text = exchange[table.name][col]
            assert text.str.fullmatch(TS_PATTERN).all(), (table.name, col)
            ts = _seconds(text)
            assert (ts <= params.end_ts).all(), table.name
            if col == "ts":
                assert (ts >= params.window_start_ts).all(), table.name
                # Nobody acts (or is labelled) before the account exists.
                for ref in table.account_refs:
                    assert (ts.to_numpy() >= created[exchange[table.name][ref]].to_numpy()).all(), (table.name, ref)


def test_fraud_rate_and_rings(exchange: dict[str, pd.DataFrame]) -> None:
    truth = exchange["truth"]
    rate = truth["label"].ne(BENIGN).mean()
    assert 0.025 <= rate <= 0.06
    meta = exchange["_meta"].iloc[0]
    assert set(meta["rings"]) == set(THREATS) and all(v >= 1 for v in meta["rings"].values())
    assert meta["counts"]["accounts"] == N
    assert meta["counts"]["logins"] == len(exchange["logins"])
    sizes = truth[truth["ring_id"] != ""].groupby("ring_id").size()
    assert sizes.min() >= ExchangeParams().collusion_size[0]


def test_collusion_rings_circulate_funds(exchange: dict[str, pd.DataFrame], ring_of: pd.Series) -> None:
    tr = exchange["transfers"]
    inside = tr[
        tr["from_account_id"].map(ring_of).eq(tr["to_account_id"].map(ring_of))
        & tr["from_account_id"].map(ring_of).ne("")
    ]
    internal = inside.groupby(inside["from_account_id"].map(ring_of)).size()
    rings = _rings(exchange, COLLUSION)
    assert internal.reindex(rings).fillna(0).gt(0).mean() >= 0.9


def _shared_within(df: pd.DataFrame, key: str, ring_of: pd.Series, rings: list[str]) -> pd.Series:
    """Per ring: the most ring members using one value of ``key``."""
    used = df.assign(ring=df["account_id"].map(ring_of))
    used = used[used["ring"].isin(rings)].drop_duplicates(["account_id", key])
    return used.groupby(["ring", key]).size().groupby(level=0).max().reindex(rings).fillna(0)


def test_bot_farms_share_devices_subnets_and_agent(exchange: dict[str, pd.DataFrame], ring_of: pd.Series) -> None:
    farms = _rings(exchange, BOT_FARM)
    device = _shared_within(exchange["logins"], "device_id", ring_of, farms)
    accounts = exchange["accounts"].assign(subnet=lambda d: d["signup_ip"].str.rsplit(".", n=1).str[0])
    subnet = _shared_within(accounts, "subnet", ring_of, farms)
    agents = _shared_within(exchange["logins"].dropna(subset=["user_agent"]), "user_agent", ring_of, farms)
    sizes = exchange["truth"].groupby("ring_id").size()[farms]
    assert ((device >= 3) & (subnet >= 3)).all()
    assert (agents >= sizes / 2).all()


def test_promo_rings_redeem_the_same_codes(exchange: dict[str, pd.DataFrame], ring_of: pd.Series) -> None:
    rings = _rings(exchange, PROMO_ABUSE)
    codes = _shared_within(exchange["promo_redemptions"], "promo_code", ring_of, rings)
    assert (codes >= 2).all()
    created = _seconds(exchange["accounts"].set_index("account_id")["created_at"])
    spread = created.groupby(ring_of).agg(lambda s: s.max() - s.min())[rings]
    assert (spread <= (ExchangeParams().burst_days + 1) * 86400).all()


def test_tight_bursts_create_ring_mates_within_the_hour(tmp_path: Path) -> None:
    generate_exchange(N, SEED, tmp_path, ExchangeParams(tight_burst_hours=1.0))
    truth = pd.read_csv(tmp_path / TRUTH_FILE, dtype=str, keep_default_na=False).set_index("account_id")
    created = _seconds(_read(tmp_path, "accounts").set_index("account_id")["created_at"])
    bursty = truth[truth["label"].isin([PROMO_ABUSE, BOT_FARM])]
    spread = created[bursty.index].groupby(bursty["ring_id"]).agg(lambda s: s.max() - s.min())
    assert len(spread) >= 2 and (spread <= 3600).all()


def test_labels_are_a_consistent_subset(exchange: dict[str, pd.DataFrame]) -> None:
    labels, truth = exchange["labels"], exchange["truth"].set_index("account_id")
    assert labels["account_id"].is_unique
    assert (truth.loc[labels["account_id"], "label"].to_numpy() == labels["label"].to_numpy()).all()
    fraud = truth[truth["label"] != BENIGN]
    labelled = fraud.index.isin(labels["account_id"])
    assert 0 < labelled.mean() < 0.6
    benign_share = labels["label"].eq(BENIGN).sum() / truth["label"].eq(BENIGN).sum()
    assert 0.02 < benign_share < 0.1
    created = _seconds(exchange["accounts"].set_index("account_id")["created_at"])
    assert (_seconds(labels["ts"]).to_numpy() > created[labels["account_id"]].to_numpy()).all()


def test_legitimate_super_nodes_exist(exchange: dict[str, pd.DataFrame]) -> None:
    per_ip = exchange["logins"].groupby("ip")["account_id"].nunique()
    assert per_ip.max() >= 50
    per_wallet = exchange["withdrawals"].groupby("address")["account_id"].nunique()
    assert per_wallet.max() >= 50
    per_device = exchange["logins"].groupby("device_id")["account_id"].nunique()
    assert (per_device.between(2, 5)).sum() >= 20  # households


def test_own_attributes_share_one_distribution(tmp_path: Path) -> None:
    generate_exchange(20_000, 11, tmp_path)
    accounts = _read(tmp_path, "accounts")
    fraud = pd.read_csv(tmp_path / TRUTH_FILE, dtype=str, keep_default_na=False)["label"].ne(BENIGN).to_numpy()
    domain = accounts["email"].fillna("").str.split("@").str[-1]
    hour = _seconds(accounts["created_at"]) % 86400 // 3600 // 6
    for attribute in (accounts["kyc_level"], domain, hour):
        table = pd.crosstab(attribute, fraud)
        share = table / table.sum()
        assert 0.5 * (share[True] - share[False]).abs().sum() < 0.1
        assert chi2_contingency(table).pvalue > 0.001


def test_arguments_are_checked(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="n_accounts"):
        generate_exchange(MIN_ACCOUNTS - 1, 1, tmp_path)
    with pytest.raises(ValueError, match="seed"):
        generate_exchange(MIN_ACCOUNTS, -1, tmp_path)
    with pytest.raises(ValueError, match="fmt"):
        generate_exchange(MIN_ACCOUNTS, 1, tmp_path, fmt="json")
    with pytest.raises(ValueError, match="fraud_rate"):
        ExchangeParams(fraud_rate=1.5)
    with pytest.raises(ValueError, match="end_date"):
        ExchangeParams(end_date="2026-03-01T00:00:00")


def _ring_tie_components(tables: dict[str, pd.DataFrame]) -> pd.Series:
    """Component per ring member over ring-specific ties read from the written tables (an independent check
    of ``ingest.synthetic.connecting``): identifiers (device, IP, /24 or /64 block, card, wallet) used by two or more
    members of one ring and mostly by them, transfers and referrals between members."""
    import networkx as nx

    truth = tables["truth"]
    ring_of = truth.set_index("account_id")["ring_id"].replace("", np.nan)
    uses = [
        tables["logins"][["account_id", "device_id"]].set_axis(["account_id", "key"], axis=1).assign(kind="d"),
        tables["logins"][["account_id", "ip"]].set_axis(["account_id", "key"], axis=1).assign(kind="i"),
        tables["accounts"][["account_id", "signup_device_id"]].set_axis(["account_id", "key"], axis=1).assign(kind="d"),
        tables["accounts"][["account_id", "signup_ip"]].set_axis(["account_id", "key"], axis=1).assign(kind="i"),
        tables["card_events"][["account_id", "card_number"]].set_axis(["account_id", "key"], axis=1).assign(kind="c"),
        tables["withdrawals"][["account_id", "address"]].set_axis(["account_id", "key"], axis=1).assign(kind="w"),
    ]
    ips = pd.concat([u for u in uses if u["kind"].iloc[0] == "i"])
    blocks = ips.assign(
        key=ips["key"].map(lambda ip: str(ipaddress.ip_network(f"{ip}/{24 if '.' in ip else 64}", strict=False))),
        kind="b",
    )
    used = pd.concat([*uses, blocks]).drop_duplicates().assign(ring=lambda d: d["account_id"].map(ring_of))
    users = used.groupby(["kind", "key"]).size().rename("users")
    mates = used.dropna(subset=["ring"]).groupby(["kind", "key", "ring"]).size().rename("mates").reset_index()
    mates = mates.join(users, on=["kind", "key"])
    ties = mates[(mates["mates"] >= 2) & (mates["mates"] >= 0.5 * mates["users"])]
    g = nx.Graph()
    g.add_nodes_from(ring_of.dropna().index)
    member_uses = used.merge(ties[["kind", "key", "ring"]], on=["kind", "key", "ring"])
    g.add_edges_from(zip(member_uses["account_id"], "id:" + member_uses["kind"] + ":" + member_uses["key"]))
    t = tables["transfers"]
    pairs = [
        (t["from_account_id"], t["to_account_id"]),
        (tables["accounts"]["account_id"], tables["accounts"]["referrer_id"]),
    ]
    for a, b in pairs:
        same = a.map(ring_of).notna() & (a.map(ring_of) == b.map(ring_of))
        g.add_edges_from(zip(a[same], b[same]))
    return pd.Series({a: i for i, comp in enumerate(nx.connected_components(g)) for a in comp}).reindex(
        ring_of.dropna().index
    )


@pytest.mark.parametrize("weak_tie_rate", [0.25, 0.8])
def test_every_ring_member_is_reachable_from_its_ring(tmp_path: Path, weak_tie_rate: float) -> None:
    generate_exchange(N_RINGS_CHECK, SEED, tmp_path, ExchangeParams(weak_tie_rate=weak_tie_rate))
    tables = {t.name: _read(tmp_path, t.name) for t in TABLES}
    tables["truth"] = pd.read_csv(tmp_path / TRUTH_FILE, dtype=str, keep_default_na=False)
    comp = _ring_tie_components(tables)
    ring_of = tables["truth"].set_index("account_id")["ring_id"]
    pieces = comp.groupby(ring_of.reindex(comp.index)).nunique()
    assert len(pieces) > 10
    assert (pieces == 1).all(), pieces[pieces > 1].to_dict()
