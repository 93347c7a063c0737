"""Which plan each session came from (`clean/session_plans`), restated as exports arrive."""

import datetime as dt

import dagster as dg
import pandas as pd
from sqlalchemy import Engine

from assets.metadata import table_metadata
from assets.partitions import partition_label
from assets.publishing import Units, dated_asset
from assets.resources import Warehouse
from contract.exports import latest_export
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


@dated_asset(
    per_platform=True,
    cascade=True,
    key=["clean", "session_plans"],
    group_name="clean",
    deps=[dg.AssetKey(["clean", "sessions"]), dg.AssetKey(["clean", "plans"])],
    kinds={"python", "sql"},
    description=(
        "`clean_session_plans`: the plan each real session was matched to by the contract's rule "
        "(same platform and room, the plan's last snapshot before the start, at most three hours "
        "away, one to one, closest first), null when none; the unmatched on both sides are counted."
    ),
)
def session_plans(
    context: dg.AssetExecutionContext, units: Units, warehouse: Warehouse
) -> dg.MaterializeResult:
    engine = warehouse.get_engine()
    found, written, planned = [], 0, set()
    for days, platforms in units.windows():
        matches, plans = match_window(engine, days[0], days[-1], platforms)
        matches = matches.assign(run_id=context.run.run_id)
        written += replace_newer(
            engine, clean_session_plans, matches, ["session_key"], "as_of_date"
        )
        found.append(matches)
        planned |= plans
    matched = read_frame(
        engine, "SELECT plan_id FROM clean_session_plans WHERE plan_id IS NOT NULL"
    )["plan_id"]
    unmatched_plans = sorted(planned - set(matched))
    matches = pd.concat(found, ignore_index=True) if found else pd.DataFrame()
    return dg.MaterializeResult(
        metadata={
            **table_metadata(clean_session_plans, matches, partition_label(units.days)),
            "rows_written": written,
            "sessions_matched": int(matches["plan_id"].notna().sum()) if len(matches) else 0,
            "sessions_unmatched": int(matches["plan_id"].isna().sum()) if len(matches) else 0,
            "plans_unmatched": len(unmatched_plans),
            "unmatched_plan_examples": ", ".join(unmatched_plans[:10]) or "none",
        }
    )


def match_window(
    engine: Engine, first: dt.date, last: dt.date, platforms: tuple[str, ...]
) -> tuple[pd.DataFrame, set[str]]:
    """The matches of the sessions of `platforms` that the exports of [first, last] touch (or
    whose neighbours they touch), as of the last such date; and the plans planned in the
    window."""
    touched = read_frame(
        engine,
        "SELECT session_key, platform, room_id, start_time, export_date FROM clean_sessions "
        "WHERE export_date BETWEEN :first AND :last",
        {"first": first.isoformat(), "last": last.isoformat()},
    )
    touched = touched[touched["platform"].isin(platforms)]
    if touched.empty:
        return pd.DataFrame(columns=[c.name for c in clean_session_plans.columns]), set()
    touched["start_time"] = pd.to_datetime(touched["start_time"])
    touched["export_date"] = pd.to_datetime(touched["export_date"]).dt.date
    start, end = (
        touched["start_time"].min() - NEIGHBOURHOOD,
        touched["start_time"].max() + NEIGHBOURHOOD,
    )
    rooms = touched[["platform", "room_id"]].drop_duplicates()
    sessions = latest_export(
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
    matches = matches.assign(as_of_date=matches["session_key"].map(as_of))
    matches = matches.dropna(subset=["as_of_date"])
    window_plans = latest_export(snapshots, ["plan_id"]) if len(snapshots) else snapshots
    planned_in_window = (
        window_plans[pd.to_datetime(window_plans["planned_start"]).dt.date.between(first, last)]
        if len(window_plans)
        else window_plans
    )
    return matches, set(planned_in_window.get("plan_id", []))
