"""Serving layer: the public tables consumers read with SQL."""

import datetime as dt

import dagster as dg
import pandas as pd

from assets.metadata import table_metadata
from assets.partitions import partition_label
from assets.publishing import Units, dated_asset
from assets.resources import Warehouse
from contract.exports import latest_export
from warehouse.schema import session_scorecard as scorecard_table
from warehouse.scorecard import build_session_scorecard
from warehouse.store import read_frame, read_where_in, replace_newer


def touched_sessions(engine, first: str, last: str) -> pd.Series:
    """Sessions whose numbers the exports of [first, last] can change, with the last such date."""
    between = {"first": first, "last": last}
    touched = read_frame(
        engine,
        """
        SELECT session_key, export_date FROM clean_sessions
        WHERE export_date BETWEEN :first AND :last
        UNION ALL
        SELECT session_key, export_date FROM clean_orders
        WHERE export_date BETWEEN :first AND :last
        UNION ALL
        SELECT o.session_key, r.export_date FROM clean_refunds r
        JOIN clean_orders_current o ON o.order_key = r.order_key
        WHERE r.export_date BETWEEN :first AND :last
        UNION ALL
        SELECT session_key, as_of_date FROM clean_session_plans
        WHERE as_of_date BETWEEN :first AND :last
        """,
        between,
    )
    touched["export_date"] = pd.to_datetime(touched["export_date"]).dt.date
    return touched.groupby("session_key")["export_date"].max()


def known_through(df: pd.DataFrame, last) -> pd.DataFrame:
    """Only what had landed by the date `last` (a run for date D uses the data through D)."""
    if df.empty:
        return df
    return df[pd.to_datetime(df["export_date"]).dt.date <= last]


@dated_asset(
    per_platform=True,
    cascade=True,
    key=["serving", "session_scorecard"],
    group_name="serving",
    deps=[
        dg.AssetKey(["clean", name]) for name in ("sessions", "orders", "refunds", "session_plans")
    ],
    kinds={"sql"},
    description=(
        "`session_scorecard`: one row per real (non-test) session, restated whenever late "
        "orders or refunds arrive. A partition recomputes every session its exports touch; a "
        "platform whose exports of a date (or an earlier one) were not published keeps its "
        "rows as they were, so no `as_of_date` claims data that is missing."
    ),
)
def session_scorecard(
    context: dg.AssetExecutionContext, units: Units, warehouse: Warehouse
) -> dg.MaterializeResult:
    engine = warehouse.get_engine()
    cards, written, tests = [], 0, 0
    for days, platforms in units.windows():
        card, restated, test_sessions = scorecard_window(
            engine, days[0], days[-1], platforms, context.run.run_id
        )
        written += replace_newer(
            engine, scorecard_table, card, ["session_key"], "as_of_date", restated
        )
        cards.append(card)
        tests += test_sessions
    card = pd.concat(cards, ignore_index=True) if cards else pd.DataFrame()
    context.log.info(f"session_scorecard: {len(card)} sessions recomputed, {written} rows written")
    return dg.MaterializeResult(
        metadata={
            **table_metadata(scorecard_table, card, partition_label(units.days)),
            "sessions_recomputed": len(card),
            "rows_written": written,
            "test_sessions_excluded": tests,
            "gmv_yuan": float(card["gmv"].sum()) if len(card) else 0.0,
        }
    )


def scorecard_window(
    engine, first: dt.date, last: dt.date, platforms: tuple[str, ...], run_id: str
) -> tuple[pd.DataFrame, pd.DataFrame, int]:
    """The scorecard rows of the sessions of `platforms` that the exports of [first, last]
    touch, from the data known through `last`; the keys restated (a session now known to be a
    test loses its row); and how many test sessions were left out."""
    as_of = touched_sessions(engine, first.isoformat(), last.isoformat())
    as_of = as_of[as_of.index.str.split(":").str[0].isin(platforms)]
    keys = list(as_of.index)
    sessions = latest_export(
        known_through(read_where_in(engine, "clean_sessions", "session_key", keys), last),
        ["session_key"],
    )
    orders = latest_export(
        known_through(read_where_in(engine, "clean_orders", "session_key", keys), last),
        ["order_key"],
    )
    refunds = latest_export(
        known_through(
            read_where_in(engine, "clean_refunds", "order_key", orders["order_key"]), last
        ),
        ["refund_key"],
    )
    for frame, columns in ((sessions, ["start_time", "end_time"]), (orders, ["paid_at"])):
        for column in columns:
            frame[column] = pd.to_datetime(frame[column])
    plans = read_where_in(engine, "clean_session_plans", "session_key", keys)
    plan_ids = plans.set_index("session_key")["plan_id"] if len(plans) else None
    card = build_session_scorecard(sessions, orders, refunds, as_of, run_id, plan_ids)
    restated = pd.DataFrame({"session_key": as_of.index, "as_of_date": as_of.to_numpy()})
    tests = int(sessions["is_test"].astype(bool).sum()) if len(sessions) else 0
    return card, restated, tests
