"""Vectorised text forms of the exchange's identifiers: ids, timestamps, IPs, cards, wallets.

Everything here turns numpy arrays into Arrow string arrays without a per-row Python loop: fixed-width
strings are written byte by byte into one buffer, variable-width ones are joined by Arrow kernels.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

_HEX = np.frombuffer(b"0123456789abcdef", dtype=np.uint8)
_BECH32 = np.frombuffer(b"qpzry9x8gf2tvdw0s3jn54khce6mua7l", dtype=np.uint8)


def fixed_width(chars: np.ndarray) -> pa.Array:
    """Build a string array from an ``(n, width)`` uint8 matrix of ASCII codes, one row per string."""
    chars = np.ascontiguousarray(chars, dtype=np.uint8)
    n, width = chars.shape
    offsets = np.arange(0, width * (n + 1), width, dtype=np.int64)
    large = pa.Array.from_buffers(pa.large_string(), n, [None, pa.py_buffer(offsets), pa.py_buffer(chars)])
    return large.cast(pa.string())


def digit_matrix(values: np.ndarray, width: int) -> np.ndarray:
    """Zero-padded decimal digits of non-negative integers as an ``(n, width)`` matrix of ASCII codes."""
    values = np.asarray(values, dtype=np.int64).copy()
    out = np.empty((values.size, width), dtype=np.uint8)
    for col in range(width - 1, -1, -1):
        values, digit = np.divmod(values, 10)
        out[:, col] = 48 + digit
    return out


def with_prefix(prefix: bytes, body: np.ndarray) -> pa.Array:
    """Fixed-width strings ``prefix + body`` where ``body`` is an ``(n, width)`` ASCII matrix."""
    head = np.broadcast_to(np.frombuffer(prefix, dtype=np.uint8), (body.shape[0], len(prefix)))
    return fixed_width(np.hstack([head, body]))


def account_ids(n: int) -> pa.Array:
    """Account ids ``acc_000000`` … in creation order, zero-padded to at least six digits."""
    width = max(6, len(str(max(n - 1, 0))))
    return with_prefix(b"acc_", digit_matrix(np.arange(n), width))


def account_id_width(n: int) -> int:
    """Number of digits in the account ids of an exchange with ``n`` accounts."""
    return max(6, len(str(max(n - 1, 0))))


def random_hex(rng: np.random.Generator, n: int, nbytes: int) -> np.ndarray:
    """``(n, 2 * nbytes)`` ASCII matrix of random lowercase hex digits."""
    raw = rng.integers(0, 256, size=(n, nbytes), dtype=np.uint8)
    out = np.empty((n, 2 * nbytes), dtype=np.uint8)
    out[:, 0::2] = _HEX[raw >> 4]
    out[:, 1::2] = _HEX[raw & 15]
    return out


def _break_digit_runs(rng: np.random.Generator, chars: np.ndarray, every: int = 6) -> np.ndarray:
    """Put a hex letter at every ``every``-th position so no long run of decimal digits appears.

    Random hex holds a 16-digit decimal run (which card-number scanners flag) about once in a hundred
    ids; a letter every few characters rules that out at almost no cost in entropy.
    """
    chars[:, every - 1 :: every] = _HEX[rng.integers(10, 16, size=chars[:, every - 1 :: every].shape)]
    return chars


def device_fingerprints(rng: np.random.Generator, n: int) -> pa.Array:
    """Device ids as 32-hex-digit fingerprints."""
    return fixed_width(_break_digit_runs(rng, random_hex(rng, n, 16)))


def wallet_addresses(rng: np.random.Generator, is_btc: np.ndarray) -> pa.Array:
    """Withdrawal addresses: ``bc1q`` + 38 bech32 characters where ``is_btc``, else ``0x`` + 40 hex."""
    n = is_btc.size
    eth_body = _break_digit_runs(rng, random_hex(rng, n, 20))
    eth = np.hstack([np.broadcast_to(np.frombuffer(b"0x", np.uint8), (n, 2)), eth_body])
    btc_body = _BECH32[rng.integers(0, 32, size=(n, 38))]
    btc = np.hstack([np.broadcast_to(np.frombuffer(b"bc1q", np.uint8), (n, 4)), btc_body])
    return fixed_width(np.where(is_btc[:, None], btc, eth))


def luhn_cards(rng: np.random.Generator, n: int) -> pa.Array:
    """16-digit Luhn-valid card numbers with Visa (4…) and Mastercard (51–55…) prefixes."""
    digits = rng.integers(0, 10, size=(n, 16), dtype=np.int64)
    mastercard = rng.random(n) < 0.4
    digits[:, 0] = np.where(mastercard, 5, 4)
    digits[mastercard, 1] = rng.integers(1, 6, size=int(mastercard.sum()))
    # Luhn: from the check digit leftwards, double every second digit (positions 14, 12, …, 0).
    body = digits[:, :15].copy()
    doubled = body[:, 0::2] * 2
    body[:, 0::2] = np.where(doubled > 9, doubled - 9, doubled)
    digits[:, 15] = (10 - body.sum(axis=1) % 10) % 10
    return fixed_width((48 + digits).astype(np.uint8))


def ipv4_text(addresses: np.ndarray) -> pa.Array:
    """Dotted-quad text of 32-bit IPv4 addresses."""
    addresses = np.asarray(addresses, dtype=np.uint64)
    octets = [pc.cast(pa.array((addresses >> s) & 255), pa.string()) for s in (24, 16, 8, 0)]
    return pc.binary_join_element_wise(*octets, ".")


@lru_cache(maxsize=1)
def _hex_groups() -> pa.Array:
    return pa.array([format(g, "x") for g in range(65536)])


def ipv6_text(prefix: np.ndarray, interface: np.ndarray) -> pa.Array:
    """Full (uncompressed, leading zeros dropped) text of IPv6 addresses from two 64-bit halves."""
    table = _hex_groups()
    groups = []
    for half in (np.asarray(prefix, np.uint64), np.asarray(interface, np.uint64)):
        for shift in (48, 32, 16, 0):
            groups.append(table.take(pa.array(((half >> np.uint64(shift)) & np.uint64(0xFFFF)).astype(np.int64))))
    return pc.binary_join_element_wise(*groups, ":")


@lru_cache(maxsize=1)
def _time_of_day() -> np.ndarray:
    sec = np.arange(86400)
    table = np.empty((86400, 8), dtype=np.uint8)
    table[:] = np.frombuffer(b"00:00:00", np.uint8)
    for col, value in ((0, sec // 3600), (3, sec // 60 % 60), (6, sec % 60)):
        table[:, col] = 48 + value // 10
        table[:, col + 1] = 48 + value % 10
    return table


def iso_timestamps(ts: np.ndarray) -> pa.Array:
    """ISO-8601 UTC text (``2026-03-01T12:34:56Z``) of Unix-second timestamps."""
    ts = np.asarray(ts, dtype=np.int64)
    out = np.empty((ts.size, 20), dtype=np.uint8)
    if ts.size:
        days = ts // 86400
        seconds = ts - days * 86400
        first = int(days.min())
        all_days = np.arange(first, int(days.max()) + 1).astype("datetime64[D]")
        dates = np.frombuffer(np.datetime_as_string(all_days).astype("S10").tobytes(), np.uint8)
        out[:, :10] = dates.reshape(-1, 10)[days - first]
        out[:, 10] = ord("T")
        out[:, 11:19] = _time_of_day()[seconds]
        out[:, 19] = ord("Z")
    return fixed_width(out)
