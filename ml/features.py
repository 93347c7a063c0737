"""Features of planned sessions, point in time: one function for training and for scoring.

A feature row describes a plan as exported on local date D (the forecast date) for a session
planned on D+1 … D+7, using only exports of dates up to D: the plan snapshot and its lineup,
the catalogue, the calendar, and the room's and host's history as known on D. Rows of past
dates, joined with what the sessions then sold, are the training examples; rows of the latest
date are what gets scored.
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd

from contract.enums import CATEGORIES, PLAN_DAYS
from contract.exports import latest_export
from contract.localtime import to_local
from ml.calendar import calendar_features
from ml.history import dated, history_features, sessions_as_of

ID_COLUMNS = ["plan_id", "forecast_date", "platform", "room_id", "host_id", "planned_start"]
# Hosts are not categorical: a new host would be unknown; their lift generalises.
CATEGORICAL = ["platform", "room_id"]
NUMERIC = [
    "horizon_days", "weekday", "hour", "planned_minutes", "reservations", "log_reservations",
    "reservations_per_viewer", "days_to_big_day", "promo_stage", "is_presale",
    "n_skus", "mean_price", "max_price", "mean_discount", "coupon_share", "mean_coupon",
    *(f"share_{c}" for c in CATEGORIES),
    "room_last_gmv", "room_mean5_gmv", "room_mean20_gmv", "room_std5_log_gmv", "room_mean28d_gmv",
    "room_sessions_28d", "room_mean5_viewers", "room_conv5", "room_days_since_last", "room_trend",
    "slot_last_gmv", "hour_mean4_gmv", "host_mean5_gmv", "host_sessions",
    "room_mean10_log_gmv", "host_lift", "hour_lift", "weekday_lift", "room_recent_stage",
    "stage_change", "room_base_log_gmv",
    "seasonal_naive", "recent_mean",
]  # fmt: skip
FEATURES = [*CATEGORICAL, *NUMERIC]
MAX_HORIZON = PLAN_DAYS  # a plan is forecast on each evening it is exported


def lineup_features(lineup: pd.DataFrame, products: pd.DataFrame) -> pd.DataFrame:
    """Per plan: size, prices (yuan), discount against list price, coupons, category mix."""
    rows = lineup.merge(
        products[["sku", "category", "list_price_fen"]], on="sku", how="left"
    ).assign(
        price=lambda d: d["planned_price_fen"] / 100,
        discount=lambda d: 1 - d["planned_price_fen"] / d["list_price_fen"].replace(0, np.nan),
        has_coupon=lambda d: d["coupon_fen"].fillna(0) > 0,
        coupon=lambda d: d["coupon_fen"].fillna(0) / 100,
    )
    g = rows.groupby("plan_id")
    out = pd.DataFrame(
        {
            "n_skus": g.size(),
            "mean_price": g["price"].mean(),
            "max_price": g["price"].max(),
            "mean_discount": g["discount"].mean(),
            "coupon_share": g["has_coupon"].mean(),
            "mean_coupon": g["coupon"].mean(),
        }
    )
    counts = rows.groupby(["plan_id", "category"]).size().unstack(fill_value=0)
    shares = counts.div(counts.sum(axis=1), axis=0)
    for category in CATEGORIES:
        out[f"share_{category}"] = shares.get(category, pd.Series(dtype=float)).reindex(out.index)
    return out.fillna({f"share_{c}": 0.0 for c in CATEGORIES})


def build_features(
    day: dt.date,
    plans: pd.DataFrame,
    plan_lineups: pd.DataFrame,
    products: pd.DataFrame,
    sessions: pd.DataFrame,
    increments: pd.DataFrame,
) -> pd.DataFrame:
    """Feature rows of the plans exported on `day` (one per plan, horizon 1…7).

    Inputs may hold more than what was known on `day` (every export): only exports up to `day`
    are used, so the rows of `day` never change when later data arrives (tested).
    """
    snap = plans[dated(plans["export_date"]) == pd.Timestamp(day)].copy()
    local_start = to_local(snap["planned_start"])
    snap["horizon_days"] = (local_start.dt.normalize() - pd.Timestamp(day)).dt.days
    snap = snap[snap["horizon_days"].between(1, MAX_HORIZON)]
    if snap.empty:
        return pd.DataFrame(columns=[*ID_COLUMNS, *NUMERIC, "promo_phase"])
    local_start = to_local(snap["planned_start"])
    on_day = dated(plan_lineups["export_date"]) == pd.Timestamp(day)
    lineup = plan_lineups[on_day & plan_lineups["plan_id"].isin(snap["plan_id"])]
    catalogue = latest_export(products, "sku", as_of=day)
    out = snap[["plan_id", "platform", "room_id", "host_id", "planned_start"]].assign(
        forecast_date=day,
        horizon_days=snap["horizon_days"],
        hour=local_start.dt.hour,
        planned_minutes=snap["planned_minutes"].astype(float),
        reservations=snap["reservations"].astype(float),
        log_reservations=np.log1p(snap["reservations"].astype(float)),
    )
    out = out.join(calendar_features(local_start.dt.date))
    out = out.merge(lineup_features(lineup, catalogue), left_on="plan_id", right_index=True,
                    how="left")  # fmt: skip
    stats = history_features(sessions_as_of(sessions, increments, day), day)
    out = out.merge(stats["rooms"], left_on="room_id", right_index=True, how="left")
    out = out.merge(
        stats["slots"], left_on=["room_id", "weekday", "hour"], right_index=True, how="left"
    )
    out = out.merge(stats["hours"], left_on=["room_id", "hour"], right_index=True, how="left")
    out = out.merge(stats["hosts"], left_on="host_id", right_index=True, how="left")
    out = out.merge(stats["hour_lift"], left_on="hour", right_index=True, how="left")
    out = out.merge(stats["weekday_lift"], left_on="weekday", right_index=True, how="left")
    out["reservations_per_viewer"] = out["reservations"] / out["room_mean5_viewers"].replace(
        0, np.nan
    )
    out["stage_change"] = out["promo_stage"] - out["room_recent_stage"]
    # The two baselines, also features: the room's last session of the same weekday and hour
    # (falling back to the same hour, then its last session), and its recent mean.
    out["seasonal_naive"] = (
        out["slot_last_gmv"].fillna(out["hour_mean4_gmv"]).fillna(out["room_last_gmv"])
    )
    out["recent_mean"] = out["room_mean28d_gmv"].fillna(out["room_mean5_gmv"])
    return out[[*ID_COLUMNS, *NUMERIC, "promo_phase"]].reset_index(drop=True)
