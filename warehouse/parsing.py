"""Records of an export typed into logical columns (fen, UTC, ids as text), each value
through the door first (`warehouse/door.py`); the values that cannot be typed go to
quarantine with their reason."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from contract.dialects import DIALECTS, LOGICAL_FIELDS, Dialect, Field
from contract.enums import CATEGORIES, PLAN_DAYS, PLATFORMS
from contract.localtime import LOCAL_OFFSET
from warehouse import door
from warehouse.records import QUARANTINE_COLUMNS, mask_record, read_raw


@dataclass
class ParsedFile:
    """One export read: typed rows, the rows that could not be typed, and what else was seen."""

    rows: pd.DataFrame  # logical columns + `line`
    quarantine: pd.DataFrame  # line, field, reason, raw (personal fields masked)
    raw_rows: int
    extra_columns: list[str]
    normalised: dict[str, int]  # values normalised at the door, by ledger column
    repeated_headers: int


def read_platform_file(path: Path | str, platform: str, table: str) -> ParsedFile:
    """Read one platform export into typed logical columns; bad rows go to quarantine."""
    raw = read_raw(path, platform, table)
    rows, bad_values, normalised = type_rows(raw.rows, platform, table)
    quarantine = pd.concat([raw.bad, bad_values[QUARANTINE_COLUMNS]], ignore_index=True)
    return ParsedFile(
        rows,
        quarantine.sort_values("line", ignore_index=True),
        len(raw.rows) + len(raw.bad),
        raw.extra_columns,
        {k: int(v) for k, v in normalised.sum().items()},
        raw.repeated_headers,
    )


# ASCII digits only: `\d` would take Arabic-Indic or Devanagari digits that no parser reads.
_MONEY_PLAIN = r"[0-9]{1,16}\.[0-9]{2}"
_MONEY_THOUSANDS = r"[0-9]{1,3}(?:,[0-9]{3}){0,5}\.[0-9]{2}|[0-9]{1,16}\.[0-9]{2}"
_INT = r"[0-9]{1,18}"
_EPOCH_MS = r"[0-9]{1,14}"  # up to the year 5138: later is implausible, never an overflow
_NUMBER = r"[0-9]{1,15}(?:\.[0-9]+)?"


def type_rows(
    raw: pd.DataFrame, platform: str, table: str, first_date: dt.date | None = None
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Type raw records (any number of files of one platform at once, for speed).

    Every field passes the door first (`warehouse/door.py`). Columns other than the logical
    fields (line, source file…) pass through. With `first_date` and an `export_date` column,
    times outside the plausible window are quarantined too. Returns the typed rows, the rows
    that failed (with `field`, `reason` and the masked `raw` record), and per raw row the values
    normalised at the door, by ledger column (door.NORMALISED_KINDS).
    """
    dialect = DIALECTS[platform]
    logical = [f.name for f in LOGICAL_FIELDS[table]]
    passthrough = [c for c in raw.columns if c not in logical]
    raw = raw.reset_index(drop=True)
    out = raw[passthrough].copy()
    n = len(raw)
    reason = np.full(n, None, dtype=object)
    field_of = np.full(n, None, dtype=object)
    is_json = dialect.file_format == "jsonl"
    counts = {k: np.zeros(n, dtype=np.int64) for k in door.NORMALISED_KINDS}
    files = raw["source_file"] if "source_file" in raw else pd.Series("", index=raw.index)

    def flag(mask: pd.Series | np.ndarray, name: str, describe) -> None:
        if isinstance(mask, pd.Series):
            mask = mask.to_numpy(dtype=bool, na_value=False)
        new = mask & pd.isna(reason)
        if new.any():
            reason[new] = [describe(t) for t in text.to_numpy()[new]]
            field_of[new] = name

    for f in LOGICAL_FIELDS[table]:
        values = raw[f.name]
        damage = door.normalise_field(
            _as_text(values), f.name, f.kind if f.kind in ("text", "id") else "value"
        )
        text = damage.text
        for k, c in damage.counts.items():
            counts[k] += c
        if damage.problem is not None:
            new = pd.notna(damage.problem) & pd.isna(reason)
            reason[new] = damage.problem[new]
            field_of[new] = f.name
        if f.kind == "id":
            lost = door.lost_digits(text.str.strip(), files)
            flag(lost, f.name, lambda t, name=f.name: f"{name} lost its digits in a spreadsheet "
                 f"({t.strip()}): the true id is gone")  # fmt: skip
        empty = text.str.strip() == ""
        if not f.optional and f.kind != "text":
            flag(empty, f.name, lambda _t, name=f.name: f"{name} is empty")
        if f.kind == "isotime":  # never read as UTC (landing-zone.md, "without an offset")
            naive = ~text.str.strip().str.contains(door.OFFSET, regex=True) & ~empty
            flag(naive, f.name, lambda t, name=f.name: f"{name} without offset: {t[:40]}")
        typed, invalid, negative = _convert(f, text, values, empty, dialect, is_json)
        flag(invalid, f.name, lambda t, name=f.name: f"{name} unparseable: {t[:40]}")
        flag(negative, f.name, lambda t, name=f.name: f"{name} negative: {t}")
        if f.kind in ("time", "isotime") and first_date is not None and "export_date" in raw:
            ahead = PLAN_DAYS + 1 if f.name == "planned_start" else 1
            odd = door.implausible_times(typed, raw["export_date"], first_date, ahead)
            flag(odd, f.name, lambda t, name=f.name: f"{name} implausible: {t[:40]}")
        out[f.name] = typed
    for rule_table, name, broken, why in door.ROW_RULES:
        if rule_table == table and n:
            new = broken(out).to_numpy(dtype=bool, na_value=False) & pd.isna(reason)
            reason[new] = why
            field_of[new] = name
    bad_mask = ~pd.isna(reason)
    bad = raw.loc[bad_mask, passthrough].copy()
    bad["field"] = field_of[bad_mask]
    bad["kind"] = "value"
    bad["reason"] = reason[bad_mask]
    records = raw.loc[bad_mask, logical].astype(object).to_dict("records")
    bad["raw"] = [mask_record({k: _jsonable(v) for k, v in r.items()}) for r in records]
    normalised = pd.DataFrame({door.NORMALISED_KINDS[k]: c for k, c in counts.items()})
    return out[~bad_mask].reset_index(drop=True), bad.reset_index(drop=True), normalised


def _jsonable(value: object) -> object:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return None
    return value if isinstance(value, (int, float, str, bool)) else str(value)


def _as_text(values: pd.Series) -> pd.Series:
    if values.dtype == object:
        return values.map(lambda v: "" if v is None else str(v)).astype("str")
    return values.fillna("").astype("str")


def _convert(
    f: Field, text: pd.Series, values: pd.Series, empty: pd.Series, dialect: Dialect, is_json: bool
):
    none = pd.Series(False, index=text.index)
    stripped = text.str.strip()
    if f.kind in ("text", "id"):
        typed = stripped.where(~empty, None).astype("str")
        if is_json and f.kind == "id":
            # jd ids are JSON strings; a number where a string belongs is a malformed row.
            not_str = ~values.map(lambda v: v is None or isinstance(v, str)).astype(bool)
            return typed, not_str & ~empty, none
        return typed, none, none
    if f.kind == "status":
        mapped = stripped.map(dialect.statuses)
        invalid = mapped.isna() & ~empty
        return mapped.astype("str"), invalid, none
    negative = stripped.str.startswith("-") & ~empty
    body = stripped.str.lstrip("-")
    if f.kind in ("int",) or (f.kind == "money" and is_json) or (f.kind == "time" and is_json):
        ok = body.str.fullmatch(_EPOCH_MS if f.kind == "time" else _INT) | empty
        if is_json:
            # JSON numbers must be integers, not strings or floats.
            ok &= values.map(
                lambda v: v is None or (isinstance(v, int) and not isinstance(v, bool))
            ).astype(bool)
        numbers = pd.to_numeric(body.where(ok & ~empty), errors="coerce").astype("Int64")
        numbers = numbers.where(~negative, -numbers)
        if f.kind == "time":
            typed = pd.to_datetime(numbers.astype("float64"), unit="ms")
            return typed.astype("datetime64[us]"), ~ok, negative & ok
        return numbers, ~ok, negative & ok
    if f.kind == "number":
        ok = body.str.fullmatch(_NUMBER) | empty
        numbers = pd.to_numeric(body.where(ok & ~empty), errors="coerce").astype("Float64")
        return numbers, ~ok, negative & ok
    if f.kind == "money":
        pattern = _MONEY_THOUSANDS if dialect.thousands else _MONEY_PLAIN
        ok = body.str.fullmatch(pattern) | empty
        digits = (
            body.where(ok & ~empty)
            .str.replace(",", "", regex=False)
            .str.replace(".", "", regex=False)
        )
        fen = pd.to_numeric(digits, errors="coerce").astype("Int64")
        return fen, ~ok, negative & ok
    if f.kind == "date":
        parsed = pd.to_datetime(stripped.where(~empty), format="%Y-%m-%d", errors="coerce")
        return parsed.dt.date, parsed.isna() & ~empty, none
    if f.kind == "isotime":
        parsed = pd.to_datetime(stripped.where(~empty), format="ISO8601", errors="coerce", utc=True)
        # An offset is required: a time without one is ambiguous (type_rows says so by name).
        invalid = (parsed.isna() | ~stripped.str.contains(door.OFFSET, regex=True)) & ~empty
        return parsed.dt.tz_localize(None).astype("datetime64[us]"), invalid, none
    if f.kind in ("category", "platform", "grade"):
        allowed = {
            "category": CATEGORIES,
            "platform": PLATFORMS,
            "grade": ("1", "2", "3", "4", "5"),
        }[f.kind]
        invalid = ~stripped.isin(allowed) & ~empty
        typed = stripped.where(~empty & ~invalid, None)
        return (typed.astype("Int64") if f.kind == "grade" else typed.astype("str")), invalid, none
    if f.kind == "time":
        parsed = pd.to_datetime(stripped.where(~empty), format=dialect.time_format, errors="coerce")
        invalid = parsed.isna() & ~empty
        return (parsed - LOCAL_OFFSET).astype("datetime64[us]"), invalid, none
    raise ValueError(f"unknown field kind {f.kind}")
