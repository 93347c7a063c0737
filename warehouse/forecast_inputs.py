"""What the GMV forecaster reads: the sessions' and paid lines' history as exported by a date,
and the plans and planned lineups exported in a window (`ml/features.py` builds its rows from
them; the catalogue is `warehouse.exported.products_exported_by`)."""

from __future__ import annotations

import datetime as dt

import pandas as pd
from sqlalchemy import Engine

from ml.history import dated, paid_increments
from warehouse.exported import paid_lines_exported_by, sessions_exported_by
from warehouse.store import read_dates


def history_inputs(
    engine: Engine,
    last: dt.date,
    cuts: dict[str, dt.date] | None = None,
    since: dt.date | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Every export of the sessions (`sessions_exported_by`), and the paid order lines as
    increments (`ml.history.paid_increments`: session_key, known_date, gmv_fen in fen), as
    exported by `last` (a local date); with `cuts`, a platform's exports only before its cut
    date (a platform held back from that date: the others' features pool hosts and hours
    across platforms, and see its history as it was known, whole, up to the day before);
    with `since`, only those of the sessions that started on or after that local date."""
    sessions = sessions_exported_by(engine, last, since)
    orders = paid_lines_exported_by(engine, last, since=since)
    for platform, cut in (cuts or {}).items():
        sessions = sessions[
            (sessions["platform"] != platform) | (sessions["export_date"] < pd.Timestamp(cut))
        ]
        mine = orders["session_key"].str.startswith(f"{platform}:")
        orders = orders[~mine | (orders["export_date"] < pd.Timestamp(cut))]
    return sessions, paid_increments(orders)


def plans_between(engine: Engine, first: dt.date, last: dt.date) -> pd.DataFrame:
    """Every row of the plan exports dated [first, last] (local dates): all `clean_plans`
    columns (planned_start and exported_at in UTC), export_date as datetime64; one row per plan
    and export."""
    plans = read_dates(engine, "clean_plans", first, last)
    plans["export_date"] = dated(plans["export_date"])
    return plans


def plan_lineups_between(engine: Engine, first: dt.date, last: dt.date) -> pd.DataFrame:
    """The planned lineups of the plan exports dated [first, last]: plan_id, sku,
    planned_price_fen and coupon_fen (fen), export_date as datetime64; one row per plan, SKU and
    export."""
    columns = ["plan_id", "sku", "planned_price_fen", "coupon_fen", "export_date"]
    lineups = read_dates(engine, "clean_plan_lineups", first, last, columns)
    lineups["export_date"] = dated(lineups["export_date"])
    return lineups
