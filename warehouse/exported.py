"""Clean rows as the exports up to a date showed them: every exported version of each row, for
point-in-time history (what was known on a date is what the exports up to it said).

The forecaster's and the ranker's inputs share these reads. `export_date` comes back as
datetime64 (the local date at midnight, `ml.history.dated`), so "exported by D" is a fast
comparison with `pd.Timestamp(D)`.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

import pandas as pd
from sqlalchemy import Engine

from contract.localtime import local_day, local_midnight_start_utc
from ml.history import dated
from warehouse.store import hex_prefix, read_frame


def started_since(since: dt.date | None, alias: str = "") -> tuple[str, dict]:
    """The SQL condition "the row's session (`session_key`) started on or after the local date
    `since`", by any export of the session, with its bound parameter (`:since_utc`, 00:00
    local of `since` in UTC); `alias` qualifies the column ("l." for a table aliased l). No
    condition ("1 = 1") when `since` is None. A read bounded by it is the window a rule needs
    (a fan's 365 days), so a night's cost stops growing with the length of history."""
    if since is None:
        return "1 = 1", {}
    return (
        f"{alias}session_key IN (SELECT session_key FROM clean_sessions "
        "WHERE start_time >= :since_utc)",
        {"since_utc": local_midnight_start_utc(since).to_pydatetime()},
    )


def _exported_by(
    engine: Engine,
    table: str,
    columns: Sequence[str],
    last: dt.date,
    where: str = "",
    params: dict | None = None,
) -> pd.DataFrame:
    rows = read_frame(
        engine,
        f"SELECT {', '.join(columns)} FROM {table} WHERE export_date <= :last{where}",
        {"last": last.isoformat(), **(params or {})},
    )
    rows["export_date"] = dated(rows["export_date"])
    return rows


def sessions_exported_by(
    engine: Engine, last: dt.date, since: dt.date | None = None
) -> pd.DataFrame:
    """Every export of every session dated `last` (a local date) or before: session_key,
    export_date, source_line, platform, room_id, host_id, start_time (UTC), viewers, is_test;
    one row per session and export (the latest per key: `contract.exports.latest_export`).
    `since`: only the sessions that started on or after that local date (`started_since`)."""
    columns = [
        "session_key", "export_date", "source_line", "platform", "room_id", "host_id",
        "start_time", "viewers", "is_test",
    ]  # fmt: skip
    started, params = started_since(since)
    return _exported_by(engine, "clean_sessions", columns, last, f" AND {started}", params)


def first_session_day(engine: Engine, last: dt.date) -> dt.date | None:
    """The local date the earliest real (not test) session exported by `last` started on, or
    None before any: whether a history is long enough to learn from, without reading it."""
    first = read_frame(
        engine,
        "SELECT MIN(start_time) AS start_time FROM clean_sessions "
        "WHERE export_date <= :last AND NOT is_test",
        {"last": last.isoformat()},
    )["start_time"]
    return None if first.isna().all() else local_day(pd.to_datetime(first)).iloc[0].date()


def paid_lines_exported_by(
    engine: Engine,
    last: dt.date,
    keep: Sequence[str] = (),
    viewer_prefix: str | None = None,
    since: dt.date | None = None,
) -> pd.DataFrame:
    """Every export, dated `last` or before, of the order lines that have a `paid_at`:
    order_key, export_date, session_key, the columns to `keep` (viewer_key, sku), paid_fen
    (fen), paid_at (UTC); one row per line and export (`ml.history.paid_increments` counts
    each line once, from the first export that shows it paid). `viewer_prefix`: only the
    lines of viewers whose viewer_key starts with it (a bucket of fans); `since`: only the
    lines of sessions that started on or after that local date (`started_since`)."""
    columns = ["order_key", "export_date", "session_key", *keep, "paid_fen", "paid_at"]
    started, params = started_since(since)
    where = f" AND paid_at IS NOT NULL AND {started}"
    if viewer_prefix is not None:
        condition, bounds = hex_prefix("viewer_key", viewer_prefix)
        where += f" AND {condition}"
        params.update(bounds)
    return _exported_by(engine, "clean_orders", columns, last, where, params)


def products_exported_by(engine: Engine, last: dt.date) -> pd.DataFrame:
    """Every export of the catalogue dated `last` or before: sku, export_date, category,
    list_price_fen (fen), energy_grade; one row per SKU and export (a feature dated D takes
    each SKU's latest export up to D)."""
    columns = ["sku", "export_date", "category", "list_price_fen", "energy_grade"]
    return _exported_by(engine, "clean_products", columns, last)
