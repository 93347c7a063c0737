"""The post-session review (复盘) numbers of `session_scorecard`, from clean rows.

Money is summed in integer fen and rounded half-up only when a ratio is taken, so totals are
exact; the serving table gets yuan with two decimals.
"""

from __future__ import annotations

import pandas as pd

SCORECARD_COLUMNS = [
    "session_key", "platform", "room_id", "host_id", "plan_id", "start_time", "end_time",
    "duration_min", "viewers", "views", "peak_online", "avg_watch_s", "comments", "likes",
    "new_followers", "orders", "buyers", "gmv", "refunded", "net_gmv", "aov", "conversion", "gpm",
    "platform_gmv", "gmv_gap", "as_of_date", "run_id",
]  # fmt: skip


def ratio_half_up(numerator: pd.Series, denominator: pd.Series) -> pd.Series:
    """Integer numerator / positive integer denominator, rounded half-up; null where den <= 0."""
    num = numerator.astype("Int64")
    den = denominator.astype("Int64")
    valid = den > 0
    safe = den.where(valid, 1)
    sign = num.where(num >= 0, -1).where(num < 0, 1)
    result = sign * ((2 * num.abs() + safe) // (2 * safe))
    return result.where(valid)


def yuan(fen: pd.Series) -> pd.Series:
    """Integer fen -> yuan (exact to two decimals as a float; NUMERIC(14,2) in the warehouse)."""
    return fen.astype("Float64") / 100


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
