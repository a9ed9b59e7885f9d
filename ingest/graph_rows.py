"""Validated event tables → the rows of each graph write (nodes, aggregated relationships, labels).

Events are aggregated here, once per run: one ``USED_DEVICE`` row per (account, device) with its count and
first/last time, one ``TRANSFERRED_TO`` row per (sender, receiver, asset) with count and total, and so on.
Personal data is replaced by keyed hashes before anything leaves this module.

Accounts referenced by events (or as referrers) but missing from this run's ``accounts`` table become
*stub* accounts (``stub = true``) unless the graph already holds them; a later ``accounts`` row fills them
in and clears the flag. Nothing is dropped for referencing an unknown account.

The rows come as *parts*: what one input table contributes to one write kind (signups and logins both give
``USED_DEVICE`` rows, as two parts). A part depends only on its table's accepted rows, which is what lets
:mod:`ingest.load` give it an identity that no other folder, batch size or retry changes.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from graph.errors import ConfigurationError
from graph.queries.ingest import WRITE_ORDER, WRITES_BY_NAME
from ingest.contract import TABLES_BY_NAME
from ingest.privacy import Hasher, card_digits, email_domain, normalise_email, normalise_phone
from ingest.rules import FULL_IPV6

Tables = Mapping[str, pd.DataFrame]
#: The source name of the stub-account part, which comes from every table's account references.
REFERENCES = "account references"


@dataclass(frozen=True)
class GraphPart:
    """The rows one input table contributes to one write kind: unique keys, sorted by them.

    Attributes:
        kind: the write kind's name (:data:`graph.queries.ingest.WRITES_BY_NAME`).
        source: the input table (or :data:`REFERENCES`).
        rows: the write's key columns then its properties.
    """

    kind: str
    source: str
    rows: pd.DataFrame


def epoch_millis(values: pd.Series) -> pd.Series:
    """UTC timestamps → int64 milliseconds since the epoch."""
    return values.astype("datetime64[ms, UTC]").astype("int64")


def needs_hash_key(tables: Tables) -> list[str]:
    """The personal-data columns present in ``tables`` that need a hash key (card, email, phone)."""
    needed = []
    if "card_events" in tables and len(tables["card_events"]):
        needed.append("card_events.card_number")
    accounts = tables.get("accounts")
    if accounts is not None:
        for column in ("email", "phone"):
            if accounts[column].notna().any():
                needed.append(f"accounts.{column}")
    return needed


def build_graph_rows(tables: Tables, hasher: Hasher | None) -> dict[str, pd.DataFrame]:
    """Aggregate validated tables into the rows of every write kind, keyed by write name.

    Args:
        tables: accepted, typed tables by name (any subset of the contract's tables).
        hasher: keyed hasher for cards, emails and phones; required when any are present.

    Returns:
        One frame per write kind in :data:`graph.queries.ingest.WRITE_ORDER` that has rows; columns are the
        write's key columns then its properties; rows sorted by key. It is what writing every part of
        :func:`build_graph_parts` to an empty graph leaves there.

    Raises:
        ConfigurationError: personal data is present and no hasher was given.
    """
    return combine_parts(build_graph_parts(tables, hasher))


def build_graph_parts(tables: Tables, hasher: Hasher | None) -> list[GraphPart]:
    """The rows each table contributes to each write kind, in write order (then table order).

    Raises:
        ConfigurationError: personal data is present and no hasher was given.
    """
    needed = needs_hash_key(tables)
    if needed and hasher is None:
        raise ConfigurationError(
            f"{', '.join(needed)} can only be ingested with a hash key: set RINGWATCH_HASH_KEY "
            "(at least 16 characters; keep it secret and stable, since it keys every card, email and phone)"
        )
    out: list[GraphPart] = []

    def adder(source: str) -> Callable[[str, pd.DataFrame], None]:
        def add(name: str, frame: pd.DataFrame) -> None:
            if len(frame):
                out.append(GraphPart(name, source, _finish_part(name, frame)))

        return add

    accounts = tables.get("accounts")
    if accounts is not None and len(accounts):
        _account_rows(accounts, hasher, adder("accounts"))
    if (logins := tables.get("logins")) is not None and len(logins):
        add = adder("logins")
        add("USED_DEVICE", _seen(logins, "account_id", "device_id", "ts").assign(signup=False))
        add("USED_IP", _seen(logins, "account_id", "ip", "ts").assign(signup=False))
        # The latest user agent seen on each device (a login without one does not erase it).
        agent = logins.sort_values("ts", kind="stable").groupby("device_id", sort=False)["user_agent"].last()
        add("Device", pd.DataFrame({"device_id": agent.index, "user_agent": agent.to_numpy()}))
        add("IP", _ip_rows(logins["ip"]))
    if (cards := tables.get("card_events")) is not None and len(cards):
        _card_rows(cards, hasher, adder("card_events"))  # type: ignore[arg-type]
    if (transfers := tables.get("transfers")) is not None and len(transfers):
        adder("transfers")("TRANSFERRED_TO", _flow(transfers, "from_account_id", "to_account_id", "asset"))
    if (withdrawals := tables.get("withdrawals")) is not None and len(withdrawals):
        add = adder("withdrawals")
        add("WITHDREW_TO", _flow(withdrawals, "account_id", "address", "asset"))
        add("Wallet", pd.DataFrame({"address": withdrawals["address"].unique()}))
    if (promos := tables.get("promo_redemptions")) is not None and len(promos):
        add = adder("promo_redemptions")
        add("REDEEMED", _flow(promos, "account_id", "promo_code"))
        add("Promo", pd.DataFrame({"code": promos["promo_code"].unique()}))
    if (labels := tables.get("labels")) is not None and len(labels):
        adder("labels")("Account.label", _label_rows(labels))
    adder(REFERENCES)("Account.stub", _stub_rows(tables))
    order = {w.name: i for i, w in enumerate(WRITE_ORDER)}
    return sorted(out, key=lambda part: order[part.kind])  # stable: table order within a kind


def combine_parts(parts: list[GraphPart]) -> dict[str, pd.DataFrame]:
    """One frame per write kind from its parts, merged by the write's rules (see :func:`build_graph_rows`)."""
    by_kind: dict[str, list[pd.DataFrame]] = {}
    for part in parts:
        by_kind.setdefault(part.kind, []).append(part.rows)
    out: dict[str, pd.DataFrame] = {}
    for w in WRITE_ORDER:
        frames = by_kind.get(w.name)
        if not frames:
            continue
        if len(frames) == 1:
            out[w.name] = frames[0]
            continue
        frame = pd.concat(frames, ignore_index=True)
        if w.rel is not None:
            frame = _combine_rel_parts(frame, w.keys)
        else:
            frame = frame.drop_duplicates(subset=list(w.keys), keep="last")
        out[w.name] = frame.loc[:, list(w.columns)].sort_values(list(w.keys), kind="stable").reset_index(drop=True)
    return out


def _finish_part(name: str, frame: pd.DataFrame) -> pd.DataFrame:
    write = WRITES_BY_NAME[name]
    frame = frame.drop_duplicates(subset=list(write.keys), keep="last").loc[:, list(write.columns)]
    return frame.sort_values(list(write.keys), kind="stable").reset_index(drop=True)


def _combine_rel_parts(frame: pd.DataFrame, keys: tuple[str, ...]) -> pd.DataFrame:
    """Merge rows of one relationship coming from two tables (signup + logins) with the same rules."""
    agg: dict[str, str] = {}
    for column in frame.columns:
        if column in keys:
            continue
        agg[column] = {"first_seen": "min", "last_seen": "max", "signup": "max"}.get(column, "sum")
    return frame.groupby(list(keys), as_index=False, sort=False).agg(agg)


def _account_rows(accounts: pd.DataFrame, hasher: Hasher | None, add: Callable[[str, pd.DataFrame], None]) -> None:
    created = epoch_millis(accounts["created_at"])
    email = normalise_email(accounts["email"])
    add(
        "Account",
        pd.DataFrame(
            {
                "account_id": accounts["account_id"],
                "created_at": created,
                "country": accounts["country"],
                "kyc_level": accounts["kyc_level"].astype("int64"),
                "email_domain": email_domain(email),
                "stub": False,
            }
        ),
    )
    signup = pd.DataFrame(
        {"src": accounts["account_id"], "first_seen": created, "last_seen": created, "count": 1, "signup": True}
    )
    add("USED_DEVICE", signup.assign(dst=accounts["signup_device_id"]))
    add("USED_IP", signup.assign(dst=accounts["signup_ip"]))
    add("Device", pd.DataFrame({"device_id": accounts["signup_device_id"].unique(), "user_agent": pd.NA}))
    add("IP", _ip_rows(accounts["signup_ip"]))
    has_email = email.notna()
    if has_email.any():
        hashed = hasher.digest_series("email", email[has_email])  # type: ignore[union-attr]
        add("Email", pd.DataFrame({"email_hash": hashed, "domain": email_domain(email[has_email])}))
        add(
            "HAS_EMAIL",
            pd.DataFrame({"src": accounts["account_id"][has_email], "dst": hashed, "since": created[has_email]}),
        )
    phone = normalise_phone(accounts["phone"])
    has_phone = phone.notna() & (phone.str.len() > 0)
    if has_phone.any():
        hashed = hasher.digest_series("phone", phone[has_phone])  # type: ignore[union-attr]
        add("Phone", pd.DataFrame({"phone_hash": hashed}))
        add(
            "HAS_PHONE",
            pd.DataFrame({"src": accounts["account_id"][has_phone], "dst": hashed, "since": created[has_phone]}),
        )
    referred = accounts["referrer_id"].notna()
    if referred.any():
        add(
            "REFERRED",
            pd.DataFrame(
                {
                    "src": accounts["referrer_id"][referred],
                    "dst": accounts["account_id"][referred],
                    "at": created[referred],
                }
            ),
        )


def _seen(events: pd.DataFrame, src: str, dst: str, ts: str) -> pd.DataFrame:
    millis = epoch_millis(events[ts])
    grouped = (
        pd.DataFrame({"src": events[src], "dst": events[dst], "t": millis})
        .groupby(["src", "dst"], sort=False)["t"]
        .agg(count="size", first_seen="min", last_seen="max")
        .reset_index()
    )
    return grouped


def _flow(events: pd.DataFrame, src: str, dst: str, disc: str | None = None) -> pd.DataFrame:
    keys = ["src", "dst"] + ([disc] if disc else [])
    frame = pd.DataFrame(
        {"src": events[src], "dst": events[dst], "t": epoch_millis(events["ts"]), "amount": events["amount"]}
    )
    if disc:
        frame[disc] = events[disc]
    return (
        frame.groupby(keys, sort=False)
        .agg(count=("t", "size"), total=("amount", "sum"), first_seen=("t", "min"), last_seen=("t", "max"))
        .reset_index()
    )


def _card_rows(cards: pd.DataFrame, hasher: Hasher, add: Callable[[str, pd.DataFrame], None]) -> None:
    digits = card_digits(cards["card_number"])
    card_hash = hasher.digest_series("card", digits)
    kind = cards["event_type"]
    frame = pd.DataFrame(
        {
            "src": cards["account_id"],
            "dst": card_hash,
            "t": epoch_millis(cards["ts"]),
            "deposit": (kind == "deposit").astype("int64"),
            "deposit_amount": cards["amount"].where(kind == "deposit", 0.0),
            "chargeback": (kind == "chargeback").astype("int64"),
            "chargeback_amount": cards["amount"].where(kind == "chargeback", 0.0),
        }
    )
    add(
        "USED_CARD",
        frame.groupby(["src", "dst"], sort=False)
        .agg(
            count=("t", "size"),
            first_seen=("t", "min"),
            last_seen=("t", "max"),
            deposit_count=("deposit", "sum"),
            deposit_total=("deposit_amount", "sum"),
            chargeback_count=("chargeback", "sum"),
            chargeback_total=("chargeback_amount", "sum"),
        )
        .reset_index(),
    )
    first = pd.DataFrame({"card_hash": card_hash, "digits": digits}).drop_duplicates("card_hash")
    add(
        "Card",
        pd.DataFrame(
            {"card_hash": first["card_hash"], "bin": first["digits"].str[:6], "last4": first["digits"].str[-4:]}
        ),
    )


def _ip_rows(ips: pd.Series) -> pd.DataFrame:
    uniques = pd.Series(ips.dropna().unique(), dtype="string")
    return pd.DataFrame(
        {
            "ip": uniques,
            "version": uniques.map(_ip_version).astype("int64"),
            "prefix": ip_prefixes(uniques),
        }
    )


def _ip_version(ip: str) -> int:
    return 6 if ":" in ip else 4


@lru_cache(maxsize=1_000_000)  # signups and logins each give IP rows, mostly of the same addresses
def ip_prefix(ip: str) -> str:
    """The network an address sits in for grouping: its /24 (IPv4) or /48 (IPv6)."""
    bits = 24 if ":" not in ip else 48
    return str(ipaddress.ip_network(f"{ip}/{bits}", strict=False))


def ip_prefixes(ips: pd.Series) -> pd.Series:
    """:func:`ip_prefix` of every canonical address, vectorised: an IPv4 address's /24 is its text with the
    last octet replaced (``1.2.3.4`` → ``1.2.3.0/24``); an IPv6 address written out in eight hextets keeps its
    first three, less trailing zero hextets, then ``::/48`` (the five zero hextets after them are the longest
    run, which ``ipaddress`` compresses); other IPv6 addresses go through :func:`ip_prefix`."""
    text = ips.astype("string")
    v6 = text.str.contains(":", regex=False).fillna(False).astype(bool)
    full = v6 & text.str.fullmatch(FULL_IPV6).fillna(False).astype(bool)
    v4 = text.str.replace(r"\.[0-9]+$", ".0/24", regex=True)
    network = text[full].str.replace(r"^([^:]+:[^:]+:[^:]+):.*$", r"\1", regex=True)
    network = network.str.replace(r"(?::0)+$", "", regex=True).str.replace(r"^0$", "", regex=True) + "::/48"
    prefixes = v4.where(~v6, network.reindex(text.index))
    return prefixes.where(~(v6 & ~full), text[v6 & ~full].map(ip_prefix)).astype("string")


def _label_rows(labels: pd.DataFrame) -> pd.DataFrame:
    """Each account's latest known label (ties broken by label and source, so order never matters)."""
    frame = pd.DataFrame(
        {
            "account_id": labels["account_id"],
            "known_label": labels["label"],
            "known_label_source": labels["source"],
            "known_label_at": epoch_millis(labels["ts"]),
        }
    )
    frame = frame.sort_values(["account_id", "known_label_at", "known_label", "known_label_source"], kind="stable")
    return frame.drop_duplicates("account_id", keep="last")


def _stub_rows(tables: Tables) -> pd.DataFrame:
    known = tables["accounts"]["account_id"] if "accounts" in tables else pd.Series(dtype="string")
    referenced: list[pd.Series] = []
    for name, frame in tables.items():
        for column in TABLES_BY_NAME[name].account_refs:
            referenced.append(frame[column].dropna())
    if not referenced:
        return pd.DataFrame({"account_id": pd.Series(dtype="string"), "stub": pd.Series(dtype=bool)})
    ids = pd.Series(pd.concat(referenced).unique(), dtype="string")
    # pyarrow's set lookup: pandas' isin on Arrow text builds a Python list of the known ids first.
    is_known = pc.is_in(pa.array(ids, type=pa.string()), value_set=pa.array(known.dropna(), type=pa.string()))
    ids = ids[~is_known.to_numpy(zero_copy_only=False)]
    return pd.DataFrame({"account_id": ids, "stub": np.True_})
