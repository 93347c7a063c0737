"""Serving layer: the public tables consumers read with SQL."""

import dagster as dg
import pandas as pd

from assets.metadata import table_metadata
from assets.partitions import partition_label
from assets.publishing import Units, dated_asset
from assets.resources import Warehouse
from warehouse.schema import session_scorecard as scorecard_table
from warehouse.scorecard import scorecard_window
from warehouse.store import replace_newer


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
