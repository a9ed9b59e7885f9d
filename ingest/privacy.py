"""Keyed hashing and masking of personal data, so card numbers, emails and phones never reach the graph.

A card is kept as ``HMAC-SHA256(key, digits)`` plus its BIN (first six digits) and last four; an email or
phone as the keyed hash of its normalised form (plus the email's domain). The key comes from
``RINGWATCH_HASH_KEY``; without one, card, email and phone data cannot be ingested (the demo makes and keeps
a local key).
"""

from __future__ import annotations

import base64
import hmac
import re
import secrets
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from graph.errors import ConfigurationError
from graph.private_files import private_dir, write_private

_NON_DIGITS = re.compile(r"\D")
_PHONE_KEEP = re.compile(r"[^\d+]")
MIN_KEY_BYTES = 16


def digest_text(digest: bytes) -> str:
    """A digest as lower-case base32 text.

    Not hex: hex digests hold long digit runs that a data-loss scan for card numbers flags; base32 (letters
    and 2-7) practically never does, so such a scan of the graph stays meaningful.
    """
    return base64.b32encode(digest).decode("ascii").rstrip("=").lower()


_BASE32 = np.frombuffer(b"abcdefghijklmnopqrstuvwxyz234567", dtype=np.uint8)


def digest_texts(digests: list[bytes]) -> list[str]:
    """:func:`digest_text` of many equal-length digests at once (the standard library's base32 is pure Python:
    it took three quarters of the time of hashing card numbers, emails and phones)."""
    if not digests:
        return []
    width = len(digests[0])
    if any(len(d) != width for d in digests):
        raise ValueError("digests must all have the same length")
    chars = -(-width * 8 // 5)  # base32 characters before padding
    raw = np.frombuffer(b"".join(digests), dtype=np.uint8).reshape(len(digests), width)
    padded = np.zeros((len(digests), -(-width // 5) * 5), dtype=np.uint8)
    padded[:, :width] = raw
    bits = np.unpackbits(padded, axis=1).reshape(len(digests), -1, 5)[:, :chars]
    values = bits @ np.array([16, 8, 4, 2, 1], dtype=np.uint8)
    text = _BASE32[values].tobytes().decode("ascii")
    return [text[i : i + chars] for i in range(0, len(text), chars)]


class Hasher:
    """Keyed hashes of personal identifiers.

    Args:
        key: the secret key (at least 16 bytes once encoded as UTF-8).
    """

    def __init__(self, key: str) -> None:
        encoded = key.encode("utf-8")
        if len(encoded) < MIN_KEY_BYTES:
            raise ConfigurationError(
                f"RINGWATCH_HASH_KEY is too short ({len(encoded)} bytes); use at least {MIN_KEY_BYTES}"
            )
        self._key = encoded

    def digest(self, kind: str, value: str) -> str:
        """Keyed hash of one normalised value; ``kind`` separates namespaces (card vs email vs phone)."""
        message = f"{kind}\x1f{value}".encode()
        return digest_text(hmac.digest(self._key, message, "sha256"))

    def digest_series(self, kind: str, values: pd.Series) -> pd.Series:
        """Keyed hash of every non-null value (computed once per distinct value), as :meth:`digest` gives it."""
        codes, uniques = pd.factorize(values)  # missing values get code -1: the None appended below
        if len(uniques) == 0:
            return values.map({})
        prefix = f"{kind}\x1f"
        digests = [hmac.digest(self._key, f"{prefix}{v}".encode(), "sha256") for v in uniques.tolist()]
        texts = np.array([*digest_texts(digests), None], dtype=object)
        return pd.Series(texts[codes], index=values.index, name=values.name)

    def __repr__(self) -> str:  # never show the key
        return "Hasher(key=***)"


def card_digits(values: pd.Series) -> pd.Series:
    """Card numbers reduced to their digits (spaces and dashes dropped; a digit is what Python's ``\\d`` takes,
    other scripts' digits included)."""
    text = values.astype("string")
    if bool(text.str.isascii().all()):  # ASCII only: one vectorised pass (RE2's [0-9] is Python's \d here)
        return text.str.replace(r"[^0-9]", "", regex=True)
    return text.str.replace(_NON_DIGITS, "", regex=True)


def luhn_valid(digits: str) -> bool:
    """True when a digit string passes the Luhn checksum (as every real card number does)."""
    if not digits.isdigit():
        return False
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch)
        if i % 2 == 1:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return total % 10 == 0


def text_matrix(values: pd.Series, width: int) -> np.ndarray:
    """Values of exactly ``width`` bytes each (ASCII text, none missing) as one ``(n, width)`` array of their bytes,
    read from the column's buffer (no Python string per value).

    Raises:
        ValueError: a value is missing or not ``width`` bytes long.
    """
    arr = pa.array(values, type=pa.large_string(), from_pandas=True)
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks()
    if len(arr) == 0:
        return np.empty((0, width), dtype=np.uint8)
    if arr.null_count or not pc.all(pc.equal(pc.binary_length(arr), width)).as_py():
        raise ValueError(f"every value must be {width} bytes long and present")
    offsets = np.frombuffer(arr.buffers()[1], dtype=np.int64)[arr.offset : arr.offset + len(arr) + 1]
    return np.frombuffer(arr.buffers()[2], dtype=np.uint8)[offsets[0] : offsets[-1]].reshape(len(arr), width)


def luhn_valid_series(digits: pd.Series) -> pd.Series:
    """Vectorised Luhn check over digit strings of any length (non-digit or empty → False)."""
    text = digits.fillna("").astype(str)
    ok = text.str.fullmatch(r"\d+").fillna(False).to_numpy(dtype=bool)
    result = np.zeros(len(text), dtype=bool)
    if not ok.any():
        return pd.Series(result, index=digits.index)
    lengths = text.str.len().to_numpy()
    # Group by length so each group is one dense digit matrix.
    for length in np.unique(lengths[ok]):
        rows = np.flatnonzero(ok & (lengths == length))
        mat = (text_matrix(text.iloc[rows], int(length)) - ord("0")).astype(np.int64)[:, ::-1]
        doubled = mat[:, 1::2] * 2
        doubled = np.where(doubled > 9, doubled - 9, doubled)
        result[rows] = (mat[:, 0::2].sum(axis=1) + doubled.sum(axis=1)) % 10 == 0
    return pd.Series(result, index=digits.index)


def mask_card(value: object) -> str:
    """A card number as it may appear in reject files and messages: BIN and last four, rest starred."""
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return ""
    digits = _NON_DIGITS.sub("", str(value))
    if len(digits) < 10:
        return "*" * len(digits)
    return digits[:6] + "*" * (len(digits) - 10) + digits[-4:]


def normalise_email(values: pd.Series) -> pd.Series:
    """Lower-cased, trimmed emails; gmail-style dots and ``+tags`` in the local part are dropped.

    ``J.Doe+promo@Gmail.com`` and ``jdoe@gmail.com`` are one mailbox, and abusers rely on the difference.
    The domain is what follows the last ``@``; a value without ``@`` gives a missing value (unless no value
    has one: then the trimmed, lower-cased text is returned). Vectorised string operations only.
    """
    text = values.astype("string").str.strip().str.lower()
    has_at = text.str.contains("@", regex=False).fillna(False).astype(bool)
    if not has_at.any():
        return text
    local = text.str.replace(r"(?s)@[^@]*$", "", regex=True)
    domain = email_domain(text).astype("string")
    local = local.str.replace(r"(?s)\+.*$", "", regex=True)
    gmail = domain.isin(["gmail.com", "googlemail.com"])
    local = local.where(~gmail, local.str.replace(".", "", regex=False))
    domain = domain.where(~gmail, "gmail.com")
    return (local + "@" + domain).where(has_at)


def email_domain(normalised: pd.Series) -> pd.Series:
    """What follows the last ``@`` (the whole value when it has none), as Python objects (text or ``pd.NA``)."""
    return normalised.astype("string").str.replace(r"(?s)^.*@", "", regex=True).astype(object)


def normalise_phone(values: pd.Series) -> pd.Series:
    """Phones reduced to ``+`` and digits (``+1 (555) 010-2000`` → ``+15550102000``)."""
    return values.astype("string").str.replace(_PHONE_KEEP, "", regex=True)


def load_or_create_demo_key(path: Path) -> str:
    """The demo's local hash key: read from ``path``, or generated once and kept there (mode 0600)."""
    if path.exists():
        return path.read_text(encoding="utf-8").strip()
    private_dir(path.parent)
    key = secrets.token_urlsafe(32)
    write_private(path, key + "\n")  # created 0600: never readable by others, not even for a moment
    return key
