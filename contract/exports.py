"""Which export wins (landing-zone.md, "Which export wins"): rows are read in order of folder
date, then line; for the same key the later row wins."""

from __future__ import annotations

import datetime as dt

import pandas as pd


def latest_export(
    rows: pd.DataFrame, key: str | list[str], as_of: dt.date | None = None
) -> pd.DataFrame:
    """Per key, the row of the latest export (then the latest line), among exports dated on or
    before `as_of` when given.

    `rows` has `export_date` (local date, as dates or datetime64) and, where the table has it,
    `source_line`; the result keeps the columns, one row per key, with a fresh index.
    """
    if as_of is not None:
        rows = rows[pd.to_datetime(rows["export_date"]) <= pd.Timestamp(as_of)]
    if rows.empty:
        return rows.reset_index(drop=True)
    order = ["export_date", "source_line"] if "source_line" in rows else ["export_date"]
    ordered = rows.sort_values(order, kind="stable")
    return ordered.drop_duplicates(subset=key, keep="last").reset_index(drop=True)
