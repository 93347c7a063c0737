"""Which plan a real session came from: the contract's matching rule.

A non-test session is matched to the last snapshot of a plan exported before the session's
start, with the same platform and room and a planned start at most three hours away. Matching
is one to one, smallest time difference first, ties to the earlier planned start, then the
smaller plan_id.
A plan missing from the last export before the session that covers its day (exports cover the
seven days after their date) was cancelled and is not matched.
"""

from __future__ import annotations

import pandas as pd

from contract.localtime import local_day, local_midnight_start_utc

MAX_GAP = pd.Timedelta(hours=3)
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
