"""The door: what each kind of damage real exports carry gets, before a value is typed.

One home for the rules of landing-zone.md, "Damage that real exports carry, and what each kind
gets". Exports pass through spreadsheets, other encodings and other programs; here the raw text
of a field is normalised where the change is unambiguous (a spreadsheet's `="…"` wrapper,
full-width digits, a NUL in a title), counted by kind for the ledger, and flagged for
quarantine where information is lost (an id in scientific notation, a control character inside
a key, a time outside any plausible range). Pure functions over pandas Series; the readers in
`warehouse/parsing.py` and `warehouse/events.py` call them.
"""

from __future__ import annotations

import datetime as dt
import re
import unicodedata
from dataclasses import dataclass

import numpy as np
import pandas as pd

from contract.localtime import local_midnight_start_utc

# Values normalised, by kind: the ledger's columns (ops_ingest_ledger), in this order.
NORMALISED_KINDS = {
    "unwrapped": "unwrapped_values",  # a spreadsheet's text wrapper around an id removed
    "unicode": "unicode_values",  # full-width or other compatibility forms read as NFKC
    "control": "control_chars_removed",  # C0 control characters removed from free text
}
REPEATED_HEADERS = "repeated_headers"  # page headers repeated inside a file, dropped
CONFLICT_ROWS = "conflict_rows"  # lines sharing a key with different values, quarantined

# C0 control characters other than tab, line feed and carriage return (which free text may
# hold); in a key or a number any C0 character is damage.
_C0_IN_TEXT = r"[\x00-\x08\x0b\x0c\x0e-\x1f]"
_C0 = r"[\x00-\x1f]"
OFFSET = r"(?:[+-]\d{2}:?\d{2}|Z)$"  # an ISO 8601 time's offset, at its end
_SCIENTIFIC = r"[0-9](?:\.[0-9]+)?[eE]\+[0-9]+"
# A spreadsheet keeps 15 significant digits: a longer numeric id comes back zero-filled.
SPREADSHEET_DIGITS = 15


_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


def lone_surrogate(values) -> bool:
    """Whether a decoded JSON value holds half an emoji (an escape like `\\ud83d` alone): no
    UTF-8 can store it, so its line is malformed."""
    return any(isinstance(v, str) and _LONE_SURROGATE.search(v) for v in values)


# Rules across the fields of one row, implied by what the fields mean (a session cannot end
# before it starts): (table, field named in the reason, broken(typed rows) -> mask, reason).
ROW_RULES = (
    (
        "sessions",
        "end_time",
        lambda r: r["end_time"] < r["start_time"],
        "end_time before start_time",
    ),
)


@dataclass
class FieldDamage:
    """One field's raw text after the door: the normalised text, per row how many values were
    normalised by kind (0 or 1 each), and per row why it must be quarantined (None: fine)."""

    text: pd.Series
    counts: dict[str, np.ndarray]
    problem: np.ndarray | None  # per row a reason or None; None when no row has one


def normalise_field(text: pd.Series, name: str, kind: str) -> FieldDamage:
    """The door for one field of raw text (one value per row, "" for none).

    `kind` is the contract's field kind (`Field.kind`): free `text` keeps its characters
    but loses C0 controls (counted); every other kind is read as its NFKC form (counted when it
    changes), an `id` is unwrapped from a spreadsheet's `="…"` or leading `'` and stripped of
    control characters around it (counted), and a control character left in a key or a number
    flags the row. Ids in scientific notation are flagged here; zero-filled ones need the whole
    file (`lost_digits`). Only values that can need it are looked at one by one (each distinct
    value once), so clean columns pass at C speed.
    """
    import pyarrow as pa
    import pyarrow.compute as pc

    n = len(text)
    counts = {k: np.zeros(n, dtype=np.int64) for k in NORMALISED_KINDS}
    problem = None
    arrow = pa.array(text, from_pandas=True)
    if kind == "text":
        suspect = pc.match_substring_regex(arrow, _C0_IN_TEXT)
    else:  # outside printable ASCII, or a spreadsheet's leading `=` or `'`
        suspect = pc.or_(
            pc.invert(pc.ascii_is_printable(arrow)),
            pc.or_(pc.starts_with(arrow, "="), pc.starts_with(arrow, "'")),
        )
        if kind == "id" and _has_byte(arrow, "+"):  # a spreadsheet's 3.71235E+18
            suspect = pc.or_(suspect, pc.match_substring(arrow, "E+", ignore_case=True))
        if kind == "id" and _has_byte(arrow, '"'):  # a stray quote the CSV reader kept
            suspect = pc.or_(suspect, pc.match_substring(arrow, '"'))
    if not pc.any(suspect).as_py():
        return FieldDamage(text, counts, problem)
    mask = pc.fill_null(suspect, False).to_numpy(zero_copy_only=False)
    sub = text[mask]
    seen = {v: _one_value(v, name, kind) for v in pd.unique(sub)}
    out = text.copy()
    out[mask] = sub.map({v: r[0] for v, r in seen.items()})
    for k in NORMALISED_KINDS:
        hit = {v for v, r in seen.items() if k in r[1]}
        if hit:
            counts[k][mask] = sub.isin(hit).to_numpy(dtype=np.int64)
    reasons = {v: r[2] for v, r in seen.items() if r[2] is not None}
    if reasons:
        problem = np.full(n, None, dtype=object)
        problem[mask] = sub.map(reasons).to_numpy(dtype=object)
        problem[pd.isna(problem)] = None
    return FieldDamage(out, counts, problem)


def _has_byte(arrow, char: str) -> bool:
    """Whether the ASCII `char` occurs anywhere in the column's text: one byte comparison over
    its data buffers without a copy (ids almost never hold one), instead of a search per
    value."""
    import pyarrow as pa

    for chunk in arrow.chunks if isinstance(arrow, pa.ChunkedArray) else [arrow]:
        data = chunk.buffers()[2]
        if data is not None and (np.frombuffer(data, dtype=np.uint8) == ord(char)).any():
            return True
    return False


_CONTROLS = "".join(chr(c) for c in range(0x20))
_SPACES = " \t\r\n\u3000"


def _one_value(value: str, name: str, kind: str) -> tuple[str, tuple[str, ...], str | None]:
    """(normalised value, kinds of normalisation applied, reason to quarantine or None)."""
    if kind == "text":
        return re.sub(_C0_IN_TEXT, "", value), ("control",), None
    changed: list[str] = []
    # A byte-order mark inside a value (files pasted together) is ignored, like one before a line.
    folded = unicodedata.normalize("NFKC", value).replace("\ufeff", "")
    if folded != value:
        changed.append("unicode")
    value = folded.strip(" ")
    if kind == "id":
        inner = value.strip(_CONTROLS + " ")
        if inner.startswith('="') and inner.endswith('"') and len(inner) >= 3:
            inner = inner[2:-1]
        elif inner.startswith("'"):
            inner = inner[1:]
        inner = inner.strip(_CONTROLS + " ")
        if inner != value:
            changed.append("unwrapped")
        value = inner
        if re.fullmatch(_SCIENTIFIC, value):
            reason = f"{name} mangled by a spreadsheet ({value}): the true id is gone"
            return value, tuple(changed), reason
        if '"' in value:
            return value, tuple(changed), f"{name} has a stray quote: {value[:40]}"
    else:
        value = value.strip(_SPACES)
    if re.search(_C0, value):
        return value, tuple(changed), f"{name} has a control character: {value!r:.60}"
    return value, tuple(changed), None


def lost_digits(ids: pd.Series, files: pd.Series) -> pd.Series:
    """Numeric ids a spreadsheet zero-filled past its 15 significant digits.

    A single such id cannot be told from a real one that ends in zeros, so a file's ids of one
    field are judged together: when it holds at least two distinct digit ids longer than 15 and
    every one of them ends in zeros from the 16th digit on, all of them lost their digits.
    Returns a boolean mask aligned to `ids`.
    """
    long = ids.str.fullmatch(r"[0-9]{16,}").to_numpy(dtype=bool, na_value=False)
    if not long.any():
        return pd.Series(False, index=ids.index)
    frame = pd.DataFrame({"id": ids[long], "file": files[long]})
    frame["filled"] = frame["id"].str[SPREADSHEET_DIGITS:].str.fullmatch("0+")
    per_file = frame.drop_duplicates(["file", "id"]).groupby("file")["filled"].agg(["all", "size"])
    damaged = per_file.index[per_file["all"] & (per_file["size"] >= 2)]
    out = pd.Series(False, index=ids.index)
    out[frame.index[frame["file"].isin(damaged) & frame["filled"]]] = True
    return out


def plausible_window(first_date: dt.date) -> dt.date:
    """The earliest plausible local date of any time: one year before the first partition."""
    return (pd.Timestamp(first_date) - pd.DateOffset(years=1)).date()


def implausible_times(
    utc: pd.Series, export_dates: pd.Series | dt.date, first_date: dt.date, ahead_days: int = 1
) -> pd.Series:
    """Times (UTC naive) whose local date lies outside [first partition date − 1 year, the
    export date (one for all, or one per row) + `ahead_days`] (landing-zone.md, "implausible
    times"; a plan's start is due up to seven days ahead of its export, so plans pass
    `ahead_days=8`). Null times pass."""
    # The window's local midnights as UTC instants: no per-row date arithmetic.
    low = local_midnight_start_utc(plausible_window(first_date))
    high = local_midnight_start_utc(export_dates) + pd.Timedelta(days=ahead_days + 1)
    when = pd.to_datetime(utc)
    return ((when < low) | (when >= high)).fillna(False).astype(bool)


def conflicts(rows: pd.DataFrame, key: list[str], values: list[str]) -> pd.Series:
    """Rows whose key appears again in the same file with different `values`: a conflict, not
    a duplicate (landing-zone.md: both lines are quarantined). `key` includes the file."""
    shared = rows.duplicated(key, keep=False)
    if not shared.any():
        return pd.Series(False, index=rows.index)
    group = rows.loc[shared, list(dict.fromkeys([*key, *values]))]
    distinct = group.drop_duplicates().groupby(key, dropna=False).size()
    clashing = distinct[distinct > 1].index
    if len(clashing) == 0:
        return pd.Series(False, index=rows.index)
    marked = pd.MultiIndex.from_frame(rows[key]) if len(key) > 1 else pd.Index(rows[key[0]])
    return pd.Series(marked.isin(clashing), index=rows.index)


def beyond_columns(rows: pd.DataFrame, table) -> pd.Series:
    """Per row, why a value does not fit its warehouse column (a text longer than its
    `String(n)`, a number beyond its `Integer`), or None: such a row is quarantined at the door
    instead of failing the database's insert (PostgreSQL enforces both; SQLite neither).
    `table` is the SQLAlchemy Table the rows are written to."""
    from sqlalchemy import BigInteger, Integer, String

    reasons = pd.Series(None, index=rows.index, dtype=object)
    for column in table.columns:
        if column.name not in rows:
            continue
        values = rows[column.name]
        if isinstance(column.type, String) and column.type.length:
            over = values.astype("str").str.len() > column.type.length
            why = f"{column.name} longer than {column.type.length} characters"
        elif isinstance(column.type, Integer) and not isinstance(column.type, BigInteger):
            over = pd.to_numeric(values, errors="coerce").abs() > 2**31 - 1
            why = f"{column.name} beyond the range of a 32-bit integer"
        else:
            continue
        over = over.fillna(False).astype(bool) & reasons.isna()
        reasons[over] = why
    return reasons
