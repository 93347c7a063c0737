"""Serving layer: the public tables consumers read with SQL."""

import dagster as dg
import pandas as pd

from assets.gates import require_upstream_passed
from assets.metadata import table_metadata
from assets.partitions import daily_partitions, partition_dates, partition_label, single_run
from assets.resources import Warehouse
from warehouse.ingest import latest_per_key
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


@dg.asset(
    key=["serving", "session_scorecard"],
    group_name="serving",
    deps=[
        dg.AssetKey(["clean", name]) for name in ("sessions", "orders", "refunds", "session_plans")
    ],
    partitions_def=daily_partitions,
    backfill_policy=single_run,
    kinds={"sql"},
    description=(
        "`session_scorecard`: one row per real (non-test) session, restated whenever late "
        "orders or refunds arrive. A partition recomputes every session its exports touch."
    ),
)
def session_scorecard(
    context: dg.AssetExecutionContext, warehouse: Warehouse
) -> dg.MaterializeResult:
    require_upstream_passed(context, warehouse)
    days = partition_dates(context)
    engine = warehouse.get_engine()
    last = days[-1]
    as_of = touched_sessions(engine, days[0].isoformat(), last.isoformat())
    keys = list(as_of.index)
    sessions = latest_per_key(
        known_through(read_where_in(engine, "clean_sessions", "session_key", keys), last),
        ["session_key"],
    )
    orders = latest_per_key(
        known_through(read_where_in(engine, "clean_orders", "session_key", keys), last),
        ["order_key"],
    )
    refunds = latest_per_key(
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
    card = build_session_scorecard(sessions, orders, refunds, as_of, context.run.run_id, plan_ids)
    # Every touched session is restated, also one now known to be a test: it loses its row.
    restated = pd.DataFrame({"session_key": as_of.index, "as_of_date": as_of.to_numpy()})
    written = replace_newer(engine, scorecard_table, card, ["session_key"], "as_of_date", restated)
    context.log.info(f"session_scorecard: {len(card)} sessions recomputed, {written} rows written")
    return dg.MaterializeResult(
        metadata={
            **table_metadata(scorecard_table, card, partition_label(days)),
            "sessions_recomputed": len(card),
            "rows_written": written,
            "test_sessions_excluded": int(sessions["is_test"].astype(bool).sum())
            if len(sessions)
            else 0,
            "gmv_yuan": float(card["gmv"].sum()) if len(card) else 0.0,
        }
    )
