"""Which plan each session came from (`clean/session_plans`), restated as exports arrive."""

import datetime as dt

import dagster as dg
import pandas as pd
from sqlalchemy import Engine

from assets.gates import require_upstream_passed
from assets.metadata import table_metadata
from assets.partitions import daily_partitions, partition_dates, partition_label, single_run
from assets.resources import Warehouse
from warehouse.ingest import latest_per_key
from warehouse.matching import match_sessions_to_plans
from warehouse.schema import clean_session_plans
from warehouse.store import read_frame, replace_newer

NEIGHBOURHOOD = pd.Timedelta(days=1)  # sessions this close in one room compete for plans


def _rooms_frame(
    engine: Engine, table: str, time_column: str, rooms: pd.DataFrame, start, end, last: dt.date
) -> pd.DataFrame:
    """Rows of `table` in the given (platform, room) pairs with `time_column` in [start, end],
    exported by `last`."""
    frames = []
    for (platform, room), _ in rooms.groupby(["platform", "room_id"]):
        frames.append(
            read_frame(
                engine,
                f"SELECT * FROM {table} WHERE platform = :p AND room_id = :r "
                f"AND {time_column} BETWEEN :start AND :end AND export_date <= :last",
                {
                    "p": platform,
                    "r": room,
                    "start": str(start),
                    "end": str(end),
                    "last": last.isoformat(),
                },
            )
        )
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


@dg.asset(
    key=["clean", "session_plans"],
    group_name="clean",
    deps=[dg.AssetKey(["clean", "sessions"]), dg.AssetKey(["clean", "plans"])],
    partitions_def=daily_partitions,
    backfill_policy=single_run,
    kinds={"python", "sql"},
    description=(
        "`clean_session_plans`: the plan each real session was matched to by the contract's rule "
        "(same platform and room, the plan's last snapshot before the start, at most three hours "
        "away, one to one, closest first), null when none; the unmatched on both sides are counted."
    ),
)
def session_plans(context: dg.AssetExecutionContext, warehouse: Warehouse) -> dg.MaterializeResult:
    require_upstream_passed(context, warehouse)
    days = partition_dates(context)
    engine = warehouse.get_engine()
    last = days[-1]
    touched = read_frame(
        engine,
        "SELECT session_key, platform, room_id, start_time, export_date FROM clean_sessions "
        "WHERE export_date BETWEEN :first AND :last",
        {"first": days[0].isoformat(), "last": last.isoformat()},
    )
    if touched.empty:
        return dg.MaterializeResult(
            metadata={"dagster/row_count": 0, "partition": partition_label(days)}
        )
    touched["start_time"] = pd.to_datetime(touched["start_time"])
    touched["export_date"] = pd.to_datetime(touched["export_date"]).dt.date
    start, end = (
        touched["start_time"].min() - NEIGHBOURHOOD,
        touched["start_time"].max() + NEIGHBOURHOOD,
    )
    rooms = touched[["platform", "room_id"]].drop_duplicates()
    sessions = latest_per_key(
        _rooms_frame(engine, "clean_sessions", "start_time", rooms, start, end, last),
        ["session_key"],
    )
    snapshots = _rooms_frame(
        engine,
        "clean_plans",
        "planned_start",
        rooms,
        start - pd.Timedelta(hours=3),
        end + pd.Timedelta(hours=3),
        last,
    )
    matches = match_sessions_to_plans(sessions, snapshots)
    # A session is restated as of the last date that touched it or a neighbour it competes with.
    pairs = matches[["session_key", "platform", "room_id", "start_time"]].merge(
        touched[["platform", "room_id", "start_time", "export_date"]],
        on=["platform", "room_id"],
        suffixes=("", "_touched"),
    )
    near = (pairs["start_time"] - pairs["start_time_touched"]).abs() <= NEIGHBOURHOOD
    as_of = pairs[near].groupby("session_key")["export_date"].max()
    matches = matches.assign(
        as_of_date=matches["session_key"].map(as_of), run_id=context.run.run_id
    )
    matches = matches.dropna(subset=["as_of_date"])
    written = replace_newer(engine, clean_session_plans, matches, ["session_key"], "as_of_date")
    window_plans = latest_per_key(snapshots, ["plan_id"]) if len(snapshots) else snapshots
    planned_in_window = (
        window_plans[pd.to_datetime(window_plans["planned_start"]).dt.date.between(days[0], last)]
        if len(window_plans)
        else window_plans
    )
    matched_ids = set(
        read_frame(engine, "SELECT plan_id FROM clean_session_plans WHERE plan_id IS NOT NULL")[
            "plan_id"
        ]
    )
    unmatched_plans = sorted(set(planned_in_window.get("plan_id", [])) - matched_ids)
    return dg.MaterializeResult(
        metadata={
            **table_metadata(clean_session_plans, matches, partition_label(days)),
            "rows_written": written,
            "sessions_matched": int(matches["plan_id"].notna().sum()),
            "sessions_unmatched": int(matches["plan_id"].isna().sum()),
            "plans_unmatched": len(unmatched_plans),
            "unmatched_plan_examples": ", ".join(unmatched_plans[:10]) or "none",
        }
    )
