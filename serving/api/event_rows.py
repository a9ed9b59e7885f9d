"""One event as batch ingestion sees it, without the per-table machinery: its rule check and its graph parts.

Batch ingestion validates a table with pandera (:func:`ingest.validate.validate_table`) and aggregates it with
group-bys (:func:`ingest.graph_rows.build_graph_parts`): right for a million rows, ~50 ms of fixed cost for one.
Here the same work is done for the one row of ``POST /v1/events``:

- :func:`row_passes` runs the contract's own checks (:data:`ingest.rules.SCHEMAS`: each column's checks, its
  nullability, and the cross-field rules of :mod:`ingest.validate`) on the row's cells; a row they refuse is
  then validated by :func:`~ingest.validate.validate_table` itself, so the 422 names the rule batch ingestion
  would name (the refused path need not be fast; the accepted one is);
- :func:`event_parts` builds the row's :class:`~ingest.graph_rows.GraphPart` s — for one row every aggregate is
  the row itself (a count of 1, first = last seen, the total its amount) — with the values batch ingestion
  gives them (the same normalising and hashing helpers), so :func:`ingest.load.part_id`, the content hash that
  makes a write land once, is the batch ingestion's id of the same one-row table (tested for every table).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pandas as pd

from graph.errors import ConfigurationError
from graph.queries.ingest import WRITE_ORDER, WRITES_BY_NAME
from ingest.contract import TableContract
from ingest.graph_rows import REFERENCES, GraphPart, epoch_millis, ip_prefix, needs_hash_key
from ingest.privacy import Hasher, card_digits, email_domain, normalise_email, normalise_phone
from ingest.read import ROW
from ingest.rules import SCHEMAS, canonical_ip, column_memo, parse_amounts, parse_timestamps
from ingest.validate import cross_field_problems

Cells = dict[str, str | None]


def row_cells(contract: TableContract, row: dict[str, Any]) -> Cells:
    """The row as a file holding it reads: every column's text, stripped, empty or missing as None.

    Raises:
        ValueError: ``row`` names a column the table does not have (the caller answers 422).
    """
    unknown = sorted(set(row) - set(contract.columns))
    if unknown:
        raise ValueError(f"{unknown[0]}: not a column of {contract.name} ({', '.join(contract.columns)})")
    cells: Cells = {}
    for column in contract.columns:
        value = row.get(column)
        if value is None:
            cells[column] = None
            continue
        text = ("true" if value else "false") if isinstance(value, bool) else str(value)
        cells[column] = text.strip() or None
    return cells


def _run(check: Any, values: pd.Series) -> bool:
    fn: Callable[[pd.Series], Any] | None = getattr(check, "_check_fn", None)
    out = fn(values) if fn is not None else check(values).check_output
    return bool(pd.Series(out).all()) if not isinstance(out, bool) else out


def row_passes(contract: TableContract, cells: Cells) -> bool:
    """True when batch validation accepts the one-row table ``cells`` (the contract's checks, run directly).

    A rule that several columns share (the personal-data guard's, the id length: a check of the same name) runs
    once, over those columns' values side by side: every rule here judges each value on its own, so that is the
    answer column by column.
    """
    schema = SCHEMAS[contract.name]
    by_check: dict[str, tuple[Any, list[str], list[str]]] = {}
    for name in contract.columns:
        column = schema.columns[name]
        value = cells[name]
        if value is None:
            if not column.nullable:
                return False
            continue  # pandera runs a nullable column's checks on its present values only
        for check in column.checks:
            _, values, names = by_check.setdefault(str(check.name), (check, [], []))
            values.append(value)
            names.append(name)
    frame = pd.DataFrame({c: pd.array([v], dtype="string") for c, v in cells.items()})
    # A check of one column gets the column's name, so the rules' costly per-value functions (a timestamp's parse,
    # shared by two checks) run once per column, as in batch validation.
    with column_memo(frame):
        for check, values, names in by_check.values():
            if not _run(check, pd.Series(values, dtype="string", name=names[0] if len(names) == 1 else None)):
                return False
    return not any(len(p) for p in cross_field_problems(frame, contract))


def event_table(contract: TableContract, cells: Cells) -> pd.DataFrame:
    """The one-row text table (with ``_row``) that :func:`ingest.validate.validate_table` takes."""
    frame = pd.DataFrame({c: pd.array([v], dtype="string") for c, v in cells.items()})
    frame.insert(0, ROW, [1])
    return frame


def _millis(text: str) -> int:
    return int(epoch_millis(parse_timestamps(pd.Series([text], dtype="string"))).iloc[0])


def _amount(text: str) -> float:
    return float(parse_amounts(pd.Series([text], dtype="string")).iloc[0])


def _frame(kind: str, values: dict[str, Any], strings: tuple[str, ...]) -> pd.DataFrame:
    """One row of write ``kind`` in its column order; ``strings`` are the columns batch ingestion holds as
    pandas' ``string`` dtype (the others as pandas infers them from Python values, as its group-bys leave them)."""
    write = WRITES_BY_NAME[kind]
    return pd.DataFrame(
        {c: pd.array([values[c]], dtype="string") if c in strings else [values[c]] for c in write.columns}
    )


def _ip_part(ip: str) -> dict[str, Any]:
    return {"ip": ip, "version": 6 if ":" in ip else 4, "prefix": ip_prefix(ip)}


def _seen(src: str, dst: str, t: int, **extra: Any) -> dict[str, Any]:
    return {"src": src, "dst": dst, "count": 1, "first_seen": t, "last_seen": t, **extra}


def event_parts(contract: TableContract, cells: Cells, hasher: Hasher | None) -> list[GraphPart]:
    """The graph parts batch ingestion makes of the accepted one-row table ``cells`` (write order).

    Raises:
        ConfigurationError: the row holds a card, email or phone and no hash key is set.
    """
    name = contract.name
    present = {c: v for c, v in cells.items() if v is not None}
    if hasher is None and needs_hash_key({name: pd.DataFrame({c: [v] for c, v in cells.items()})}):
        raise ConfigurationError(
            f"{name} events with personal data can only be ingested with a hash key: set RINGWATCH_HASH_KEY"
        )
    out: list[tuple[str, pd.DataFrame]] = []
    add = out.append
    ids = ("src", "dst")
    t = _millis(cells["created_at" if name == "accounts" else "ts"])  # type: ignore[arg-type]
    if name == "accounts":
        account = str(cells["account_id"])
        email = normalise_email(pd.Series([cells["email"]], dtype="string"))
        domain = email_domain(email).iloc[0]
        add(
            (
                "Account",
                _frame(
                    "Account",
                    {
                        "account_id": account,
                        "created_at": t,
                        "country": str(cells["country"]).upper() if cells["country"] is not None else None,
                        "kyc_level": int(str(cells["kyc_level"])),
                        "email_domain": None if pd.isna(domain) else domain,
                        "stub": False,
                    },
                    ("account_id", "country"),
                ),
            )
        )
        signup_ip = canonical_ip(str(cells["signup_ip"]))
        device = str(cells["signup_device_id"])
        add(("USED_DEVICE", _frame("USED_DEVICE", _seen(account, device, t, signup=True), ids)))
        add(("USED_IP", _frame("USED_IP", _seen(account, str(signup_ip), t, signup=True), ids)))
        add(("Device", _frame("Device", {"device_id": device, "user_agent": None}, ("device_id",))))
        add(("IP", _frame("IP", _ip_part(str(signup_ip)), ("ip", "prefix"))))
        if email.notna().iloc[0]:
            hashed = hasher.digest_series("email", email).iloc[0]  # type: ignore[union-attr]
            add(("Email", _frame("Email", {"email_hash": hashed, "domain": domain}, ())))
            add(("HAS_EMAIL", _frame("HAS_EMAIL", {"src": account, "dst": hashed, "since": t}, ("src",))))
        phone = normalise_phone(pd.Series([cells["phone"]], dtype="string"))
        if phone.notna().iloc[0] and len(phone.iloc[0]) > 0:
            hashed = hasher.digest_series("phone", phone).iloc[0]  # type: ignore[union-attr]
            add(("Phone", _frame("Phone", {"phone_hash": hashed}, ())))
            add(("HAS_PHONE", _frame("HAS_PHONE", {"src": account, "dst": hashed, "since": t}, ("src",))))
        if cells["referrer_id"] is not None:
            add(("REFERRED", _frame("REFERRED", {"src": cells["referrer_id"], "dst": account, "at": t}, ids)))
    elif name == "logins":
        account, device, ip = str(cells["account_id"]), str(cells["device_id"]), canonical_ip(str(cells["ip"]))
        add(("USED_DEVICE", _frame("USED_DEVICE", _seen(account, device, t, signup=False), ids)))
        add(("USED_IP", _frame("USED_IP", _seen(account, str(ip), t, signup=False), ids)))
        add(("Device", _frame("Device", {"device_id": device, "user_agent": cells["user_agent"]}, ("device_id",))))
        add(("IP", _frame("IP", _ip_part(str(ip)), ("ip", "prefix"))))
    elif name == "card_events":
        digits = card_digits(pd.Series([cells["card_number"]], dtype="string"))
        card = hasher.digest_series("card", digits).iloc[0]  # type: ignore[union-attr]
        amount, kind = _amount(str(cells["amount"])), cells["event_type"]
        deposit, chargeback = kind == "deposit", kind == "chargeback"
        seen = _seen(
            str(cells["account_id"]),
            card,
            t,
            deposit_count=int(deposit),
            deposit_total=amount if deposit else 0.0,
            chargeback_count=int(chargeback),
            chargeback_total=amount if chargeback else 0.0,
        )
        add(("USED_CARD", _frame("USED_CARD", seen, ("src",))))
        text = str(digits.iloc[0])
        add(("Card", _frame("Card", {"card_hash": card, "bin": text[:6], "last4": text[-4:]}, ("bin", "last4"))))
    elif name in ("transfers", "withdrawals", "promo_redemptions"):
        src, dst, kind = {
            "transfers": ("from_account_id", "to_account_id", "TRANSFERRED_TO"),
            "withdrawals": ("account_id", "address", "WITHDREW_TO"),
            "promo_redemptions": ("account_id", "promo_code", "REDEEMED"),
        }[name]
        flow = {**_seen(str(cells[src]), str(cells[dst]), t), "total": _amount(str(cells["amount"]))}
        keys: tuple[str, ...] = ids
        if "asset" in contract.columns:
            flow["asset"] = str(cells["asset"]).upper()
            keys = (*ids, "asset")
        add((kind, _frame(kind, flow, keys)))
        if name == "withdrawals":
            add(("Wallet", _frame("Wallet", {"address": cells["address"]}, ("address",))))
        elif name == "promo_redemptions":
            add(("Promo", _frame("Promo", {"code": cells["promo_code"]}, ("code",))))
    else:
        raise ValueError(f"{name} is not an event table")
    known = {cells["account_id"]} if name == "accounts" else set()
    refs = sorted({str(present[c]) for c in contract.account_refs if c in present} - known)
    if refs:
        stubs = pd.DataFrame({"account_id": pd.array(refs, dtype="string"), "stub": [True] * len(refs)})
        out.append(("Account.stub", stubs))
    order = {w.name: i for i, w in enumerate(WRITE_ORDER)}
    parts = [GraphPart(kind, REFERENCES if kind == "Account.stub" else name, rows) for kind, rows in out]
    return sorted(parts, key=lambda p: order[p.kind])
