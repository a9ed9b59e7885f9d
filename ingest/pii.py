"""Personal data where it does not belong: card numbers, email addresses and phone numbers in any field.

Only ``card_number``, ``email`` and ``phone`` may hold personal data, and those are stored as keyed hashes
(:mod:`ingest.privacy`). Every other field of every table is scanned, and a row holding personal data in one is
*rejected* (``<field>: must not hold a card number`` …), like any other bad value, rather than stopping the run:
the rest of the folder is still good evidence, and the reject file says which rows to fix. Rejected rows are
redacted before they are kept anywhere (:func:`redact_rejects`), so a value is never written raw: not to Neo4j
(it was rejected), not to reject files, the quality report or messages.

What counts, after Unicode NFKC normalisation (full-width digits, ``＠``, no-break spaces are folded):

- a **card number** is 13–19 decimal digits passing the Luhn check, written as one group or as groups separated
  by up to two spaces, dashes, line breaks or invisible characters; every stretch of whole groups is checked,
  so other digit groups around one do not hide it, nor do glued letters. A single group of more than 19 digits
  is not taken for one (a random 20+-digit number nearly always holds a Luhn-valid window);
- an **email address** is ``local@domain.tld`` anywhere in the text;
- a **phone number** is ``+`` followed by 7–15 digits (spaces, dots, dashes, slashes, parentheses between), or
  the North-American ``(555) 010-2000``, ``555-010-2000``, ``555.010.2000`` shapes. A bare run of digits is not
  taken for a phone number: ids and amounts look the same.

The ``phone`` column is not scanned for card numbers (a 13–15-digit phone number passes the Luhn check one time
in ten, and the column is hashed whole anyway), nor ``email`` for phone numbers.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable
from typing import Final

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from ingest.contract import TableContract
from ingest.privacy import luhn_valid, mask_card

CARD: Final = "card number"
EMAIL: Final = "email address"
PHONE: Final = "phone number"
KINDS: Final = (CARD, EMAIL, PHONE)

#: Columns that hold personal data by contract, and the kinds they may hold (they are hashed, never stored raw).
EXPECTED: Final[dict[str, frozenset[str]]] = {
    "card_number": frozenset({CARD}),
    "email": frozenset({EMAIL, PHONE}),
    "phone": frozenset({PHONE, CARD}),
}

# Characters that may separate the digits of one card number (after NFKC): spaces, line breaks, dashes and
# invisible characters. Written out, because Python's \s and RE2's \s do not mean the same set.
_SEP_CHARS = " \t\r\n\\-\u2010-\u2015\u00ad\u200b-\u200f\u2060\ufeff"
_CARD_RUN = re.compile(rf"\d(?:[{_SEP_CHARS}]{{0,2}}\d)*")
_GROUP = re.compile(r"\d+")
_EMAIL = re.compile(r"[\w.+%'-]+@[\w-]+(?:\.[\w-]+)*\.[^\W\d_]{2,}")
_PHONE_INTL = re.compile(r"\+[ \t(]{0,2}\d(?:[ \t\-\u2010-\u2015()./]{0,3}\d)*")
_PHONE_NANP = re.compile(r"(?<!\d)(?:\(\d{3}\) ?|\d{3}[ .\-])\d{3}[ .\-]\d{4}(?!\d)")


def _re2(chars: str) -> str:
    return "".join(f"\\x{{{ord(c):x}}}" if ord(c) > 0x7E or c in "\t\r\n" else c for c in chars)


def _prefilters(digit: str, sep_chars: str) -> dict[str, str]:
    """The pre-filters, written once for both engines: ``digit`` is a decimal digit of any script (RE2 ``\\p{Nd}``,
    Python's ``\\d`` on text), ``sep_chars`` :data:`_SEP_CHARS` as the engine reads it inside a class."""
    return {
        CARD: rf"{digit}(?:[{sep_chars}]{{0,2}}{digit}){{12}}",
        EMAIL: "@",
        PHONE: rf"\+|{digit}{{3}}[ .\-]{digit}{{4}}",
    }


# Vectorised pre-filters (RE2, through pyarrow): every value the exact matchers below would flag matches them.
_PREFILTER: Final = _prefilters(r"\p{Nd}", _re2(_SEP_CHARS))


def _card_spans(text: str) -> list[tuple[int, int, str]]:
    """Card numbers in ``text``: within each run of separated digit groups, every stretch of whole groups
    holding 13–19 digits is checked, so digits put in front (``+1 4111 1111 1111 1111``) do not hide one."""
    found = []
    for run in _CARD_RUN.finditer(text):
        groups = [(run.start() + g.start(), run.start() + g.end(), g.group()) for g in _GROUP.finditer(run.group())]
        for i in range(len(groups)):
            digits = ""
            for j in range(i, len(groups)):
                digits += "".join(str(int(c)) for c in groups[j][2])
                if len(digits) > 19:
                    break
                if len(digits) >= 13 and luhn_valid(digits):
                    found.append((groups[i][0], groups[j][1], mask_card(digits)))
    return found


def _email_spans(text: str) -> list[tuple[int, int, str]]:
    return [(m.start(), m.end(), mask_email(m.group())) for m in _EMAIL.finditer(text)]


def _phone_spans(text: str) -> list[tuple[int, int, str]]:
    found = []
    for m in _PHONE_INTL.finditer(text):
        if 7 <= sum(c.isdecimal() for c in m.group()) <= 15:
            found.append((m.start(), m.end(), _star_digits(m.group())))
    found += [(m.start(), m.end(), _star_digits(m.group())) for m in _PHONE_NANP.finditer(text)]
    return found


_FINDERS: Final[dict[str, Callable[[str], list[tuple[int, int, str]]]]] = {
    CARD: _card_spans,
    EMAIL: _email_spans,
    PHONE: _phone_spans,
}


def _normalised_text(value: str) -> str:
    return value if value.isascii() else unicodedata.normalize("NFKC", value)


def _normalised(values: pd.Series) -> pa.Array:
    arr = pa.array(values.astype("string"), type=pa.string(), from_pandas=True)
    ascii_ = pc.fill_null(pc.string_is_ascii(arr), True)
    if pc.all(ascii_).as_py() in (True, None):
        return arr  # NFKC leaves ASCII as it is
    # Not pc.utf8_normalize: pyarrow's "NFKC" leaves text decomposed ("é" → "e" + U+0301), and a combining mark
    # before the "@" hid josé@example.com from the e-mail pattern. Python's NFKC, for the values that need it.
    others = pc.invert(ascii_)
    texts = pc.filter(arr, others).to_pylist()
    return pc.replace_with_mask(arr, others, pa.array([_normalised_text(t) for t in texts], type=pa.string()))


#: Every value any kind's pre-filter matches matches this one (one pass over a column instead of one per kind).
_ANY_PREFILTER: Final = "|".join(f"(?:{_PREFILTER[kind]})" for kind in KINDS)

#: The same pre-filters compiled once for Python's engine, for a few values (an online event's row): pyarrow
#: compiles its pattern on every call (~0.3-0.9 ms each, more than scanning a handful of short values).
_PY_PREFILTER: Final = {kind: re.compile(pattern) for kind, pattern in _prefilters(r"\d", _SEP_CHARS).items()}
_PY_ANY_PREFILTER: Final = re.compile("|".join(f"(?:{_PY_PREFILTER[kind].pattern})" for kind in KINDS))
#: Up to this many values are scanned with Python's compiled patterns; more, with pyarrow's (per-call cost, then
#: vectorised).
FEW_VALUES: Final = 32


def _few(values: pd.Series) -> list[str | None]:
    """Up to :data:`FEW_VALUES` values as NFKC-normalised text (None where missing), as :func:`_normalised`."""
    return [None if v is None or v is pd.NA or v != v else _normalised_text(str(v)) for v in values.tolist()]


def personal_data_candidates(values: pd.Series) -> pd.Series:
    """Which values may hold personal data of some kind (every value :func:`holds` flags, for any kind, is one);
    missing → False. One pass of the kinds' pre-filters joined, to hand to :func:`holds` for each kind."""
    result = np.zeros(len(values), dtype=bool)
    if 0 < len(values) <= FEW_VALUES:
        result[:] = [text is not None and _PY_ANY_PREFILTER.search(text) is not None for text in _few(values)]
    elif len(values):
        found = pc.fill_null(pc.match_substring_regex(_normalised(values), _ANY_PREFILTER), False)
        result = found.to_numpy(zero_copy_only=False)
    return pd.Series(result, index=values.index)


def holds(values: pd.Series, kind: str, candidates: np.ndarray | None = None) -> pd.Series:
    """Which values hold personal data of ``kind`` (:data:`CARD`, :data:`EMAIL` or :data:`PHONE`); missing → False.

    Args:
        values: the text values.
        kind: the kind of personal data.
        candidates: optional, :func:`personal_data_candidates` of ``values`` as a boolean array: only these
            values are looked at (the same answer, without a pass over the whole column per kind).

    Raises:
        ValueError: an unknown ``kind``, or ``candidates`` of another length than ``values``.
    """
    if kind not in _FINDERS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    if candidates is not None and len(candidates) != len(values):
        raise ValueError(f"candidates must have one entry per value ({len(values)}), got {len(candidates)}")
    result = np.zeros(len(values), dtype=bool)
    positions = np.arange(len(values)) if candidates is None else np.flatnonzero(candidates)
    if 0 < len(positions) <= FEW_VALUES:
        shape, find = _PY_PREFILTER[kind], _FINDERS[kind]
        for i, text in zip(positions, _few(values.iloc[positions])):
            result[i] = text is not None and shape.search(text) is not None and bool(find(text))
    elif len(positions):
        norm = _normalised(values.iloc[positions])
        shaped = pc.fill_null(pc.match_substring_regex(norm, _PREFILTER[kind]), False)
        find = _FINDERS[kind]
        for i in np.flatnonzero(shaped.to_numpy(zero_copy_only=False)):
            result[positions[i]] = bool(find(norm[int(i)].as_py()))
    return pd.Series(result, index=values.index)


def forbidden(column: str) -> tuple[str, ...]:
    """The kinds of personal data that ``column`` must not hold (every kind, but for the PII columns' own)."""
    return tuple(k for k in KINDS if k not in EXPECTED.get(column, frozenset()))


def redact_text(text: str) -> str:
    """``text`` with every card number masked to BIN and last four, and emails and phone numbers masked.

    Text that holds none is returned unchanged; text that does is returned NFKC-normalised around the masks.
    """
    norm = unicodedata.normalize("NFKC", text)
    spans = sorted(s for find in _FINDERS.values() for s in find(norm))
    if not spans:
        return text
    out, pos = [], 0
    for start, stop, mask in spans:
        if start < pos:  # overlapping finds (a phone inside a card run): the first one's mask covers it
            continue
        out += [norm[pos:start], mask]
        pos = stop
    out.append(norm[pos:])
    return "".join(out)


def mask_email(value: str) -> str:
    """An email address with its local part reduced to its first character (``j***@example.com``)."""
    local, at, domain = value.rpartition("@")
    if not at:
        return value[:1] + "***"
    return local[:1] + "***@" + redact_text(domain)


def mask_phone(value: str) -> str:
    """A phone number with every digit but the last two starred, and anything else in it redacted."""
    return redact_text(_star_digits(value))


def _star_digits(value: str) -> str:
    digits = [i for i, c in enumerate(value) if c.isdecimal()]
    keep = set(digits[-2:])
    return "".join("*" if c.isdecimal() and i not in keep else c for i, c in enumerate(value))


def redact_rejects(rows: pd.DataFrame, contract: TableContract) -> pd.DataFrame:
    """Rejected rows as they may be kept: card numbers masked (BIN and last four), emails and phones masked, and
    personal data found in any other field masked in place."""
    out = rows.copy()
    for column in contract.columns:
        values = out[column]
        present = values.notna()
        if not present.any():
            continue
        mask: Callable[[str], str] = {"card_number": mask_card, "email": mask_email, "phone": mask_phone}.get(
            column, redact_text
        )
        uniques = values[present].unique()
        out[column] = values.map({v: mask(v) for v in uniques}).astype("string")
    return out
