"""Checks of the serving tables against the consumers' contract (serving-tables.md), each
re-deriving what it can from the clean layer rather than trusting the code that wrote the rows.

Every `*_problems` function returns the problems it found, one row each (empty when all is
well), so the asset checks can say what and where; the `sampled_*` reads fetch the stored rows
of the checks' sample of fans.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

import pandas as pd
from sqlalchemy import Engine

from contract.exports import latest_export
from contract.localtime import local_day, local_midnight_utc
from ml.fans import FAN_DAYS, RECENT_DAYS, segment
from warehouse.exported import started_since
from warehouse.store import hex_prefix, read_frame

PROBLEM_COLUMNS = ["key", "problem"]
# Fans whose viewer_key starts with this hex digit are the checks' sample (a sixteenth).
SAMPLE_PREFIX = "0"


def _problems(keys: pd.Series, problem: str) -> pd.DataFrame:
    return pd.DataFrame({"key": keys.astype(str).to_numpy(), "problem": problem})


def forecast_problems(forecasts: pd.DataFrame, expected_plans: pd.DataFrame) -> pd.DataFrame:
    """`session_gmv_forecast` rows (plan_id, forecast_made_at, gmv_p10/p50/p90) against the
    contract: p10 ≤ p50 ≤ p90, none negative, one row per plan and forecast date, and a row
    for every plan in `expected_plans` (plan_id, forecast_made_at: the plans of each night's
    export, where a model was in service)."""
    key = forecasts["plan_id"].astype(str) + "@" + forecasts["forecast_made_at"].astype(str)
    p10, p50, p90 = (forecasts[c].astype(float) for c in ("gmv_p10", "gmv_p50", "gmv_p90"))
    found = [
        _problems(key[~((p10 <= p50) & (p50 <= p90))], "quantiles out of order"),
        _problems(key[(p10 < 0) | (p50 < 0) | (p90 < 0)], "negative GMV"),
        _problems(key[key.duplicated(keep=False)], "more than one row per plan and date"),
    ]
    stamps = pd.to_datetime(forecasts["forecast_made_at"])
    have = set(zip(forecasts["plan_id"].astype(str), stamps, strict=True))
    wanted = zip(
        expected_plans["plan_id"].astype(str),
        pd.to_datetime(expected_plans["forecast_made_at"]),
        strict=True,
    )
    missing = [f"{plan}@{stamp}" for plan, stamp in wanted if (plan, stamp) not in have]
    found.append(
        _problems(pd.Series(missing, dtype=str), "plan of the night's export not forecast")
    )
    return pd.concat(found, ignore_index=True)


def plans_exported(
    engine: Engine, days: Sequence[dt.date], platforms: Sequence[str] | None = None
) -> pd.DataFrame:
    """(plan_id, forecast_made_at) of the plans exported on `days` (of `platforms`; all when
    None)."""
    rows = read_frame(
        engine,
        "SELECT plan_id, platform, export_date FROM clean_plans "
        "WHERE export_date BETWEEN :first AND :last",
        {"first": min(days).isoformat(), "last": max(days).isoformat()},
    )
    if platforms is not None:
        rows = rows[rows["platform"].isin(list(platforms))]
    days_of = pd.to_datetime(rows["export_date"]).dt.date
    return pd.DataFrame(
        {"plan_id": rows["plan_id"], "forecast_made_at": days_of.map(local_midnight_utc)}
    )


def sampled_generation(engine: Engine, day: dt.date, prefix: str = SAMPLE_PREFIX) -> pd.DataFrame:
    """The picks of the generation stamped 24:00 local of `day` for the fans whose viewer_key
    starts with `prefix`: plan_id, viewer_key, sku, rank (1 = first)."""
    stamp = local_midnight_utc(day)
    sampled, bounds = hex_prefix("viewer_key", prefix)
    # A half-open range, not equality: SQLite stores the stamp as text with microseconds.
    return read_frame(
        engine,
        "SELECT plan_id, viewer_key, sku, rank FROM product_recommendations "
        f"WHERE generated_at >= :stamp AND generated_at < :after AND {sampled}",
        {
            "stamp": stamp.to_pydatetime(),
            "after": (stamp + pd.Timedelta(seconds=1)).to_pydatetime(),
            **bounds,
        },
    )


def recommendation_problems(
    picks: pd.DataFrame, lineups: pd.DataFrame, fans: pd.DataFrame
) -> pd.DataFrame:
    """`product_recommendations` rows of one generation (plan_id, viewer_key, sku, rank) against
    the contract: the plans are exactly those of `lineups` (the picks horizon's), each (plan,
    fan) ranks the plan's whole lineup 1 … n without ties, only its SKUs, and the fans are
    exactly those of the plan's room seen in the `PICK_DAYS` days ending the date.
    `lineups`: plan_id, room_id, sku; `fans`: room_id, viewer_key (the same sample of fans)."""
    found = []
    size = lineups.groupby("plan_id")["sku"].nunique()
    groups = picks.groupby(["plan_id", "viewer_key"])["rank"]
    shape = groups.agg(["count", "nunique", "min", "max"]).reset_index()
    shape["n"] = shape["plan_id"].map(size)
    key = shape["plan_id"] + "/" + shape["viewer_key"].str[:12]
    ranks_ok = (
        (shape["min"] == 1)
        & (shape["max"] == shape["count"])
        & (shape["nunique"] == shape["count"])
    )
    found.append(_problems(key[~ranks_ok], "ranks are not 1 … n without ties"))
    found.append(_problems(key[ranks_ok & (shape["count"] != shape["n"])], "not the whole lineup"))
    outside = sorted(set(picks["plan_id"]) - set(lineups["plan_id"]))
    found.append(_problems(pd.Series(outside, dtype=object), "a plan outside the picks horizon"))
    listed = picks.merge(
        lineups[["plan_id", "sku"]], on=["plan_id", "sku"], how="left", indicator=True
    )
    stray = listed[listed["_merge"] == "left_only"]
    found.append(_problems(stray["plan_id"] + "/" + stray["sku"], "SKU not in the plan's lineup"))
    expected = lineups[["plan_id", "room_id"]].drop_duplicates().merge(fans, on="room_id")
    got = picks[["plan_id", "viewer_key"]].drop_duplicates()
    both = expected.merge(got, on=["plan_id", "viewer_key"], how="outer", indicator=True)
    fan_key = both["plan_id"] + "/" + both["viewer_key"].str[:12]
    found.append(_problems(fan_key[both["_merge"] == "left_only"], "a fan of the room left out"))
    found.append(_problems(fan_key[both["_merge"] == "right_only"], "not a recent fan of the room"))
    return pd.concat(found, ignore_index=True)


def fans_from_clean_layer(
    engine: Engine, day: dt.date, prefix: str = SAMPLE_PREFIX
) -> pd.DataFrame:
    """The fans of every room as of `day` whose viewer_key starts with `prefix`, re-derived from
    the clean tables as exported by `day` by the contract's rule (fan_segments): platform,
    room_id, viewer_key, last_seen_days, sessions_28d, orders_365d, spend_365d_fen, segment.

    A fan entered (as a human, not a bot) or paid in a real session of the room in the 365 days
    ending `day`; a paid line counts from the later of its session's day and the export that
    first showed it paid. Only the sessions that started in those 365 days are read."""
    sampled, bounds = hex_prefix("viewer_key", prefix)
    started, since = started_since(day - dt.timedelta(days=FAN_DAYS - 1))
    last = {"last": day.isoformat(), **bounds, **since}
    sessions = latest_export(
        read_frame(
            engine,
            "SELECT session_key, export_date, source_line, platform, room_id, start_time, is_test "
            f"FROM clean_sessions WHERE export_date <= :last AND {started}",
            last,
        ),
        ["session_key"],
    )
    real = sessions[~sessions["is_test"].astype(bool)].assign(
        day=local_day(sessions["start_time"])
    )[["session_key", "platform", "room_id", "day"]]
    watched = read_frame(
        engine,
        "SELECT session_key, viewer_key FROM clean_viewer_sessions "
        f"WHERE {sampled} AND NOT is_bot AND {started}",
        last,
    ).merge(real, on="session_key")
    paid = read_frame(
        engine,
        "SELECT order_key, MIN(export_date) AS known, MIN(session_key) AS session_key, "
        "MIN(viewer_key) AS viewer_key, MIN(paid_fen) AS paid_fen FROM clean_orders "
        f"WHERE {sampled} AND paid_at IS NOT NULL AND export_date <= :last AND {started} "
        "GROUP BY order_key",
        last,
    ).merge(real, on="session_key")
    known = pd.to_datetime(paid["known"])
    paid["day"] = paid["day"].where(paid["day"] >= known, known)
    as_of = pd.Timestamp(day)
    window = as_of - pd.Timedelta(days=FAN_DAYS)
    watched = watched[(watched["day"] <= as_of) & (watched["day"] > window)]
    paid = paid[(paid["day"] <= as_of) & (paid["day"] > window)]
    keys = ["platform", "room_id", "viewer_key"]
    seen = pd.concat([watched[[*keys, "day"]], paid[[*keys, "day"]]], ignore_index=True)
    fans = seen.groupby(keys)["day"].max().rename("last_day").reset_index()
    recent = watched[watched["day"] > as_of - pd.Timedelta(days=RECENT_DAYS)]
    fans = fans.merge(recent.groupby(keys).size().rename("sessions_28d").reset_index(), how="left")
    bought = paid.groupby(keys).agg(
        orders_365d=("order_key", "size"), spend_365d_fen=("paid_fen", "sum")
    )
    fans = fans.merge(bought.reset_index(), how="left").fillna(
        {"sessions_28d": 0, "orders_365d": 0, "spend_365d_fen": 0}
    )
    fans["last_seen_days"] = (as_of - fans["last_day"]).dt.days
    fans["segment"] = segment(fans["orders_365d"], fans["last_seen_days"], fans["sessions_28d"])
    return fans.drop(columns="last_day")


def sampled_segments(engine: Engine, day: dt.date, prefix: str = SAMPLE_PREFIX) -> pd.DataFrame:
    """The `fan_segments` rows as of `day` (a local date) of the fans whose viewer_key starts
    with `prefix`: platform, room_id, viewer_key, segment, last_seen_days, sessions_28d,
    orders_365d, spend_365d (yuan)."""
    sampled, bounds = hex_prefix("viewer_key", prefix)
    return read_frame(
        engine,
        "SELECT platform, room_id, viewer_key, segment, last_seen_days, sessions_28d, "
        "orders_365d, spend_365d FROM fan_segments WHERE as_of_date = :day "
        f"AND {sampled}",
        {"day": day.isoformat(), **bounds},
    )


FAN_FIGURES = ["segment", "last_seen_days", "sessions_28d", "orders_365d", "spend_365d_fen"]


def fan_segment_problems(stored: pd.DataFrame, derived: pd.DataFrame) -> pd.DataFrame:
    """`fan_segments` rows (the sample; spend in yuan) against the same fans re-derived from the
    clean layer: the same fans, and the same tier and figures for each."""
    keys = ["platform", "room_id", "viewer_key"]
    stored = stored.assign(spend_365d_fen=(stored["spend_365d"].astype(float) * 100).round())
    both = stored[[*keys, *FAN_FIGURES]].merge(
        derived[[*keys, *FAN_FIGURES]], on=keys, how="outer", suffixes=("", "_rule"), indicator=True
    )
    key = both["room_id"].astype(str) + "/" + both["viewer_key"].astype(str).str[:12]
    found = [
        _problems(key[both["_merge"] == "right_only"], "a fan of the room is missing"),
        _problems(key[both["_merge"] == "left_only"], "not a fan of the room by the rule"),
    ]
    matched = both["_merge"] == "both"
    for column in FAN_FIGURES:
        a, b = both[column], both[f"{column}_rule"]
        if column != "segment":
            a, b = a.astype(float).round(), b.astype(float).round()
        found.append(_problems(key[matched & (a != b)], f"{column} differs from the rule"))
    return pd.concat(found, ignore_index=True)
