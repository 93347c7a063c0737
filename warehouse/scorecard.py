"""The post-session review (复盘) numbers of `session_scorecard`, from clean rows, and the
reads they are made of.

Money is summed in integer fen and rounded half-up only when a ratio is taken, so totals are
exact; the serving table gets yuan with two decimals.
"""

from __future__ import annotations

import datetime as dt

import pandas as pd
from sqlalchemy import Engine

from contract.exports import latest_export
from contract.localtime import local_day, local_midnight_start_utc
from warehouse.money import ratio_half_up, yuan
from warehouse.store import read_frame, read_where_in

SCORECARD_COLUMNS = [
    "session_key", "platform", "room_id", "host_id", "plan_id", "start_time", "end_time",
    "duration_min", "viewers", "views", "peak_online", "avg_watch_s", "comments", "likes",
    "new_followers", "orders", "buyers", "gmv", "refunded", "net_gmv", "aov", "conversion", "gpm",
    "platform_gmv", "gmv_gap", "as_of_date", "run_id",
]  # fmt: skip


def paid_gmv_by_session(orders: pd.DataFrame) -> pd.DataFrame:
    """Paid lines per session: a line counts when it has a paid_at, whatever its later status."""
    paid = orders[orders["paid_at"].notna()]
    grouped = paid.groupby("session_key")
    return pd.DataFrame(
        {
            "orders": grouped.size(),
            "buyers": grouped["viewer_key"].nunique(),
            "gmv_fen": grouped["paid_fen"].sum(),
        }
    )


def build_session_scorecard(
    sessions: pd.DataFrame,
    orders: pd.DataFrame,
    refunds: pd.DataFrame,
    as_of_date: pd.Series,
    run_id: str,
    plan_ids: pd.Series | None = None,
) -> pd.DataFrame:
    """One row per real (non-test) session.

    `sessions`, `orders`, `refunds`: the latest clean row per key, as known at `as_of_date`
    (indexed by session_key). Refunds count against the session of their order.
    """
    real = sessions[~sessions["is_test"].astype(bool)].set_index("session_key")
    paid = paid_gmv_by_session(orders).reindex(real.index)
    refund_session = refunds.merge(
        orders[["order_key", "session_key"]], on="order_key", how="inner"
    )
    refunded = refund_session.groupby("session_key")["amount_fen"].sum().reindex(real.index)
    gmv = paid["gmv_fen"].fillna(0).astype("Int64")
    orders_n = paid["orders"].fillna(0).astype("Int64")
    refunded_fen = refunded.fillna(0).astype("Int64")
    platform_gmv = real["gmv_fen"].astype("Int64")
    duration = (real["end_time"] - real["start_time"]).dt.total_seconds() / 60
    card = pd.DataFrame(
        {
            "platform": real["platform"],
            "room_id": real["room_id"],
            "host_id": real["host_id"],
            "plan_id": plan_ids.reindex(real.index) if plan_ids is not None else None,
            "start_time": real["start_time"],
            "end_time": real["end_time"],
            "duration_min": duration.round(2),
            "viewers": real["viewers"],
            "views": real["views"],
            "peak_online": real["peak_online"],
            "avg_watch_s": real["avg_watch_s"],
            "comments": real["comments"],
            "likes": real["likes"],
            "new_followers": real["new_followers"],
            "orders": orders_n,
            "buyers": paid["buyers"].fillna(0).astype("Int64"),
            "gmv": yuan(gmv),
            "refunded": yuan(refunded_fen),
            "net_gmv": yuan(gmv - refunded_fen),
            "aov": yuan(ratio_half_up(gmv, orders_n)),
            "conversion": (
                paid["buyers"].fillna(0) / real["viewers"].where(real["viewers"] > 0)
            ).astype("Float64"),
            "gpm": yuan(ratio_half_up(gmv * 1000, real["views"])),
            "platform_gmv": yuan(platform_gmv),
            "gmv_gap": yuan(platform_gmv - gmv),
            "as_of_date": as_of_date.reindex(real.index),
            "run_id": run_id,
        }
    )
    return card.rename_axis("session_key").reset_index()[SCORECARD_COLUMNS]


# `platform_gmv_agrees`: a platform's GMV may differ from the paid lines by this share (and yuan).
GMV_GAP_SHARE = 0.01
GMV_GAP_FLOOR = 1.0
# `kpi_in_range`: a room-day's KPI within KPI_FACTOR× of its median over the KPI_HISTORY_DAYS
# before, judged once it has KPI_MIN_HISTORY earlier days with sessions.
KPI_HISTORY_DAYS = 28
KPI_FACTOR = 4.0
KPI_MIN_HISTORY = 7


def gmv_disagreements(
    card: pd.DataFrame, share: float = GMV_GAP_SHARE, floor: float = GMV_GAP_FLOOR
) -> pd.DataFrame:
    """Sessions whose platform-reported GMV differs from the paid orders by more than `share`
    of it (and more than `floor` yuan): an orders file late or partial, or a platform
    restating its numbers."""
    gap = card["gmv_gap"].astype(float).abs()
    limit = (card["gmv"].astype(float).abs() * share).clip(lower=floor)
    cols = ["session_key", "start_time", "gmv", "platform_gmv", "gmv_gap"]
    return card.loc[gap > limit, cols].sort_values("gmv_gap", key=abs, ascending=False)


def kpi_anomalies(
    card: pd.DataFrame,
    days: list,
    history_days: int = KPI_HISTORY_DAYS,
    factor: float = KPI_FACTOR,
    min_history: int = KPI_MIN_HISTORY,
) -> pd.DataFrame:
    """Room-days of `days` whose GMV, viewers or conversion lie more than `factor` times away
    (either way, on a log scale) from the room's median over the `history_days` before, given
    at least `min_history` earlier days with sessions."""
    local_date = local_day(card["start_time"]).dt.date
    daily = (
        card.assign(day=local_date)
        .groupby(["platform", "room_id", "day"])
        .agg(gmv=("gmv", "sum"), viewers=("viewers", "sum"), buyers=("buyers", "sum"))
        .reset_index()
    )
    daily["conversion"] = daily["buyers"] / daily["viewers"].where(daily["viewers"] > 0)
    out = []
    for (platform, room), rows in daily.groupby(["platform", "room_id"]):
        rows = rows.set_index("day").sort_index()
        for day in days:
            if day not in rows.index:
                continue
            past = rows[(rows.index < day) & (rows.index >= day - pd.Timedelta(days=history_days))]
            if len(past) < min_history:
                continue
            for metric in ("gmv", "viewers", "conversion"):
                typical = float(past[metric].median())
                value = float(rows.loc[day, metric])
                if (
                    typical > 0
                    and value >= 0
                    and not (typical / factor <= value <= typical * factor)
                ):
                    out.append((platform, room, day, metric, round(value, 4), round(typical, 4)))
    return pd.DataFrame(out, columns=["platform", "room_id", "day", "metric", "value", "typical"])


def cards_since(engine: Engine, first_day: dt.date) -> pd.DataFrame:
    """`session_scorecard` rows of the sessions started on or after local midnight of
    `first_day` (the history a room's KPIs are judged against)."""
    return read_frame(
        engine,
        "SELECT * FROM session_scorecard WHERE start_time >= :start",
        {"start": local_midnight_start_utc(first_day)},
    )


def touched_sessions(engine: Engine, first: dt.date, last: dt.date) -> pd.Series:
    """The sessions whose numbers the exports of [first, last] (local dates) can change: a
    session's own export, an order line of it, a refund of one of its orders, or its plan
    match. Indexed by session_key; the value is the last such date (a `dt.date`), the date the
    session's row is then "as of"."""
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
        {"first": first.isoformat(), "last": last.isoformat()},
    )
    touched["export_date"] = pd.to_datetime(touched["export_date"]).dt.date
    return touched.groupby("session_key")["export_date"].max()


def _known_through(df: pd.DataFrame, last: dt.date) -> pd.DataFrame:
    """Only what had landed by the date `last` (a run for date D uses the data through D)."""
    if df.empty:
        return df
    return df[pd.to_datetime(df["export_date"]).dt.date <= last]


def scorecard_window(
    engine: Engine, first: dt.date, last: dt.date, platforms: tuple[str, ...], run_id: str
) -> tuple[pd.DataFrame, pd.DataFrame, int]:
    """The `session_scorecard` rows (SCORECARD_COLUMNS: money in yuan, times UTC, `as_of_date`
    a local date) of the sessions of `platforms` that the exports of [first, last] touch
    (`touched_sessions`), each from its session's sessions, orders and refunds as exported by
    `last` (the latest export per key); the keys restated (session_key, as_of_date: a session
    now known to be a test loses its row); and how many test sessions were left out."""
    as_of = touched_sessions(engine, first, last)
    as_of = as_of[as_of.index.str.split(":").str[0].isin(platforms)]
    keys = list(as_of.index)
    sessions = latest_export(
        _known_through(read_where_in(engine, "clean_sessions", "session_key", keys), last),
        ["session_key"],
    )
    orders = latest_export(
        _known_through(read_where_in(engine, "clean_orders", "session_key", keys), last),
        ["order_key"],
    )
    refunds = latest_export(
        _known_through(
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


def session_gmv(engine: Engine) -> pd.DataFrame:
    """Every row of `session_scorecard` as it stands: session_key and gmv (paid GMV in yuan,
    two decimals, as of the row's own `as_of_date`)."""
    return read_frame(engine, "SELECT session_key, gmv FROM session_scorecard")
