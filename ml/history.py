"""What was known about past sessions on a given local date: the point-in-time history.

Orders and sessions arrive in daily exports and are restated later (late lines, revised
counts). A feature dated D may only use exports of dates up to D, so the history is kept as
increments stamped with the export date that revealed them, and summed as of any date.
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd

from contract.exports import latest_export
from contract.localtime import to_local
from ml.calendar import STAGE, promotion_phase


def dated(series: pd.Series) -> pd.Series:
    """Export dates as datetime64 (a no-op when they already are), for fast comparisons."""
    return pd.to_datetime(series)


def paid_increments(orders: pd.DataFrame, keep: tuple[str, ...] = ()) -> pd.DataFrame:
    """Each paid order line counted once, on the first export date that shows it paid.

    `orders`: every exported version of every line (order_key, export_date, session_key,
    paid_fen, paid_at, and the columns to `keep`). Paid GMV counts a line with a `paid_at`
    whatever its later status."""
    paid = orders[orders["paid_at"].notna()]
    first = paid.sort_values(["export_date", "order_key"]).drop_duplicates("order_key")
    return pd.DataFrame(
        {
            "session_key": first["session_key"].to_numpy(),
            "known_date": dated(first["export_date"]).to_numpy(),
            "gmv_fen": first["paid_fen"].astype("int64").to_numpy(),
            **{column: first[column].to_numpy() for column in keep},
        }
    )


def sessions_as_of(
    sessions: pd.DataFrame, increments: pd.DataFrame, as_of: dt.date | None
) -> pd.DataFrame:
    """Real sessions as known on `as_of` (all exports when None): platform, room, host, local
    start, viewers as last reported, paid GMV and paid lines counted so far."""
    day = None if as_of is None else pd.Timestamp(as_of)
    rows = sessions if day is None else sessions[dated(sessions["export_date"]) <= day]
    latest = latest_export(rows, "session_key")
    latest = latest[~latest["is_test"].astype(bool)]
    inc = increments if day is None else increments[increments["known_date"] <= day]
    totals = inc.groupby("session_key")["gmv_fen"].agg(["sum", "size"])
    out = pd.DataFrame(
        {
            "session_key": latest["session_key"].to_numpy(),
            "platform": latest["platform"].to_numpy(),
            "room_id": latest["room_id"].to_numpy(),
            "host_id": latest["host_id"].to_numpy(),
            "start_local": to_local(latest["start_time"]).to_numpy(),
            "viewers": latest["viewers"].astype(float).to_numpy(),
        }
    )
    out["gmv"] = out["session_key"].map(totals["sum"]).fillna(0).to_numpy() / 100
    out["paid_lines"] = out["session_key"].map(totals["size"]).fillna(0).to_numpy()
    return out.sort_values(["start_local", "session_key"]).reset_index(drop=True)


# The session history a GMV feature looks back over, in days before its forecast date: long
# enough for a room's last 20 sessions and a year of weekday and hour lifts, and the bound
# that keeps a night's cost flat in the length of the history.
HISTORY_DAYS = 365


def feature_history_start(first_day: dt.date) -> dt.date:
    """The first local date whose sessions the features of `first_day` or later can use."""
    return first_day - dt.timedelta(days=HISTORY_DAYS - 1)


def _last(frame: pd.DataFrame, by: str | list[str], n: int) -> pd.DataFrame:
    """The last `n` rows of each group of `frame` (in its order): what `groupby(by).tail(n)`
    gives, from one count per row instead of a grouping per statistic."""
    return frame[frame.groupby(by).cumcount(ascending=False).to_numpy() < n]


def history_features(history: pd.DataFrame, as_of: dt.date) -> dict[str, pd.DataFrame]:
    """Per room, per (room, weekday, hour) and per host: statistics of the sessions known on
    `as_of` (history from `sessions_as_of(..., as_of)`) that started in the `HISTORY_DAYS`
    ending it, indexed for joining onto plans."""
    history = history[history["start_local"] >= pd.Timestamp(feature_history_start(as_of))]
    h = history.assign(
        weekday=history["start_local"].dt.weekday,
        hour=history["start_local"].dt.hour,
        log_gmv=np.log1p(history["gmv"]),
        day=history["start_local"].dt.date,
    )
    # How promotional the recent sessions were: with the planned session's own stage, the model
    # sees a ramp into (or out of) a promotion that the recent history does not reflect yet.
    stages = {d: STAGE[promotion_phase(d)] for d in h["day"].unique()}
    h["stage"] = h["day"].map(stages)
    recent = h[h["day"] > as_of - dt.timedelta(days=28)]
    room = h.groupby("room_id")
    last5 = _last(h, "room_id", 5).groupby("room_id")
    rooms = pd.DataFrame(
        {
            "room_last_gmv": room["gmv"].last(),
            "room_mean5_gmv": last5["gmv"].mean(),
            "room_mean20_gmv": _last(h, "room_id", 20).groupby("room_id")["gmv"].mean(),
            "room_std5_log_gmv": last5["log_gmv"].std(),
            "room_mean28d_gmv": recent.groupby("room_id")["gmv"].mean(),
            "room_sessions_28d": recent.groupby("room_id").size(),
            "room_mean5_viewers": last5["viewers"].mean(),
            "room_conv5": last5["paid_lines"].sum() / last5["viewers"].sum().replace(0, np.nan),
            "room_days_since_last": room["day"].max().map(lambda d: (as_of - d).days),
        }
    )
    rooms["room_trend"] = rooms["room_mean5_gmv"] / rooms["room_mean20_gmv"].replace(0, np.nan)
    rooms["room_mean10_log_gmv"] = _last(h, "room_id", 10).groupby("room_id")["log_gmv"].mean()
    rooms["room_recent_stage"] = last5["stage"].mean()
    # The room's everyday level: its last 10 sessions outside any promotion.
    everyday = _last(h[h["stage"] == 0], "room_id", 10)
    rooms["room_base_log_gmv"] = everyday.groupby("room_id")["log_gmv"].mean()
    # Lifts: how a host, an hour or a weekday does against the room's usual level (log ratio),
    # pooled over rooms, so a host's pull is not confused with the room they usually host.
    h["lift"] = h["log_gmv"] - room["log_gmv"].transform("mean")
    slots = pd.DataFrame({"slot_last_gmv": h.groupby(["room_id", "weekday", "hour"])["gmv"].last()})
    hour_last4 = _last(h, ["room_id", "hour"], 4).groupby(["room_id", "hour"])
    hours = pd.DataFrame({"hour_mean4_gmv": hour_last4["gmv"].mean()})
    hosts = pd.DataFrame(
        {
            "host_mean5_gmv": _last(h, "host_id", 5).groupby("host_id")["gmv"].mean(),
            "host_sessions": h.groupby("host_id").size(),
            "host_lift": _last(h, "host_id", 20).groupby("host_id")["lift"].mean(),
        }
    )
    hour_lift = pd.DataFrame({"hour_lift": h.groupby("hour")["lift"].mean()})
    weekday_lift = pd.DataFrame({"weekday_lift": h.groupby("weekday")["lift"].mean()})
    return {
        "rooms": rooms, "slots": slots, "hours": hours, "hosts": hosts,
        "hour_lift": hour_lift, "weekday_lift": weekday_lift,
    }  # fmt: skip
