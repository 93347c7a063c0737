"""Which plan a real session came from: the contract's matching rule, and the reads it needs.

A non-test session is matched to the last snapshot of a plan exported before the session's
start, with the same platform and room and a planned start at most three hours away. Matching
is one to one, smallest time difference first, ties to the earlier planned start, then the
smaller plan_id.
A plan missing from the last export before the session that covers its day (exports cover the
seven days after their date) was cancelled and is not matched.
"""

from __future__ import annotations

import datetime as dt

import pandas as pd
from sqlalchemy import Engine

from contract.exports import latest_export
from contract.localtime import local_day, local_midnight_start_utc
from warehouse.schema import clean_session_plans
from warehouse.store import read_frame

MAX_GAP = pd.Timedelta(hours=3)
NEIGHBOURHOOD = pd.Timedelta(days=1)  # sessions this close in one room compete for plans
MATCH_COLUMNS = ["session_key", "plan_id", "planned_start", "start_diff_min"]


def match_sessions_to_plans(sessions: pd.DataFrame, snapshots: pd.DataFrame) -> pd.DataFrame:
    """`sessions`: session_key, platform, room_id, start_time (UTC), is_test.
    `snapshots`: every plan snapshot: plan_id, platform, room_id, planned_start, exported_at.
    Returns one row per non-test session with its plan (plan_id null when none matched)."""
    real = sessions[~sessions["is_test"].astype(bool)][
        ["session_key", "platform", "room_id", "start_time"]
    ]
    real = real.assign(start_time=pd.to_datetime(real["start_time"]))
    snaps = snapshots.assign(
        planned_start=pd.to_datetime(snapshots["planned_start"]),
        exported_at=pd.to_datetime(snapshots["exported_at"]),
    )
    # Candidates share the room and lie within a day of each other (a day key on both sides
    # keeps the join small; the three-hour rule is applied exactly below).
    real = real.assign(day=real["start_time"].dt.floor("D"))
    snaps = pd.concat(
        [
            snaps.assign(day=snaps["planned_start"].dt.floor("D") + pd.Timedelta(days=k))
            for k in (-1, 0, 1)
        ],
        ignore_index=True,
    )
    pairs = real.merge(snaps, on=["platform", "room_id", "day"], how="inner")
    pairs = pairs[pairs["exported_at"] < pairs["start_time"]]
    # The plan as it was last exported before this session started.
    pairs = pairs.sort_values("exported_at").drop_duplicates(
        ["session_key", "plan_id"], keep="last"
    )
    pairs = _still_planned(pairs, snapshots)
    pairs = pairs.assign(gap=(pairs["start_time"] - pairs["planned_start"]).abs())
    pairs = pairs[pairs["gap"] <= MAX_GAP].sort_values(
        ["gap", "planned_start", "plan_id", "session_key"]
    )
    taken_sessions: set[str] = set()
    taken_plans: set[str] = set()
    chosen = []
    for row in pairs.itertuples(index=False):
        if row.session_key in taken_sessions or row.plan_id in taken_plans:
            continue
        taken_sessions.add(row.session_key)
        taken_plans.add(row.plan_id)
        chosen.append(
            (
                row.session_key,
                row.plan_id,
                row.planned_start,
                (row.start_time - row.planned_start).total_seconds() / 60,
            )
        )
    matches = pd.DataFrame(chosen, columns=MATCH_COLUMNS)
    out = real.merge(matches, on="session_key", how="left")
    return out[["session_key", "platform", "room_id", "start_time", *MATCH_COLUMNS[1:]]]


def _still_planned(pairs: pd.DataFrame, snapshots: pd.DataFrame) -> pd.DataFrame:
    """Keep the pairs whose plan snapshot is in the last export, before the session started,
    that covers the planned day: an export of date E covers E+1 … E+7."""
    if pairs.empty:
        return pairs
    exports = (
        pd.DataFrame({"last_export": pd.to_datetime(snapshots["exported_at"]).unique()})
        .sort_values("last_export")
        .reset_index(drop=True)
    )
    # The evening before the planned day, 24:00 local, in UTC: no later export covers it.
    day_before_ends = local_midnight_start_utc(local_day(pairs["planned_start"]))
    bound = pairs["start_time"].where(pairs["start_time"] < day_before_ends, day_before_ends)
    probe = pairs.assign(bound=bound, position=range(len(pairs))).sort_values("bound")
    probe = pd.merge_asof(
        probe, exports, left_on="bound", right_on="last_export", direction="backward",
        allow_exact_matches=False,
    ).sort_values("position")  # fmt: skip
    keep = (probe["exported_at"] == probe["last_export"]).to_numpy()
    return pairs[keep]


def match_window(
    engine: Engine, first: dt.date, last: dt.date, platforms: tuple[str, ...]
) -> tuple[pd.DataFrame, set[str]]:
    """The matches of the sessions of `platforms` that the exports of [first, last] (local
    dates) touch, or whose neighbours in the room (within a day) they touch, by the rule above
    on the sessions and plan snapshots exported by `last`: `clean_session_plans` rows without
    run_id (session_key, platform, room_id, start_time and planned_start in UTC, plan_id null
    when none matched, start_diff_min in minutes, as_of_date: the last local date that touched
    the session or a neighbour). And the plan_ids planned (UTC date of planned_start) in the
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


def matched_plans(engine: Engine) -> pd.DataFrame:
    """Every session matched to a plan, as `clean_session_plans` holds it now: session_key,
    plan_id (sessions matched to no plan are left out)."""
    return read_frame(
        engine, "SELECT session_key, plan_id FROM clean_session_plans WHERE plan_id IS NOT NULL"
    )
