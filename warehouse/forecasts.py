"""The forecaster's serving rows: `session_gmv_forecast` and `forecast_accuracy`, how they are
rounded and scored, and the reads of them (the accuracy step, its metadata and the checks).

Forecasts and actuals are yuan with two decimals, rounded half-up (the serving contract);
`forecast_made_at` is 24:00 local of the plan export's date and `planned_start` the planned
session start, both naive UTC.
"""

from __future__ import annotations

import datetime as dt

import pandas as pd
from sqlalchemy import Engine

from contract.localtime import local_midnight_utc
from warehouse.money import yuan_half_up
from warehouse.store import read_frame

SCORED_AFTER = pd.Timedelta(hours=3)  # a forecast is scored 3 hours after its planned start
RESTATE_DAYS = 14  # late orders and matches restate the accuracy of this many days back
# `accuracy_holds`: the forecasts served over the last ACCURACY_DAYS may miss by at most
# DRIFT_FACTOR × their models' backtest WMAPE, judged once MIN_SCORED of them are scored.
ACCURACY_DAYS = 28
DRIFT_FACTOR = 1.5
MIN_SCORED = 30


def score_forecasts(
    forecasts: pd.DataFrame, matches: pd.DataFrame, card: pd.DataFrame, as_of: dt.date, run_id: str
) -> pd.DataFrame:
    """`forecast_accuracy` rows: each forecast with the actual paid GMV of the session its plan
    was matched to (null when none), its error and whether the interval held it.

    `forecasts`: `session_gmv_forecast` rows; `matches`: session_key, plan_id
    (`warehouse.matching.matched_plans`); `card`: session_key, gmv in yuan
    (`warehouse.scorecard.session_gmv`); `as_of`: the local date the rows are scored as of."""
    rows = forecasts.merge(matches, on="plan_id", how="left").merge(
        card[["session_key", "gmv"]], on="session_key", how="left"
    )
    actual = rows["gmv"].where(rows["session_key"].notna())
    return pd.DataFrame(
        {
            "plan_id": rows["plan_id"],
            "session_key": rows["session_key"],
            "forecast_made_at": pd.to_datetime(rows["forecast_made_at"]),
            "horizon_days": rows["horizon_days"],
            "gmv_p10": rows["gmv_p10"],
            "gmv_p50": rows["gmv_p50"],
            "gmv_p90": rows["gmv_p90"],
            "actual_gmv": actual,
            "abs_error": yuan_half_up((actual - rows["gmv_p50"]).abs()).where(actual.notna()),
            "in_interval": ((rows["gmv_p10"] <= actual) & (actual <= rows["gmv_p90"])).where(
                actual.notna()
            ),
            "model_version": rows["model_version"],
            "as_of_date": as_of,
            "run_id": run_id,
        }
    )


def forecasts_planned_between(
    engine: Engine, start: pd.Timestamp, end: pd.Timestamp
) -> pd.DataFrame:
    """Every `session_gmv_forecast` row (all columns) whose planned_start lies in [start, end]
    (naive UTC, both ends included): the forecasts whose sessions may be scored by then."""
    return read_frame(
        engine,
        "SELECT * FROM session_gmv_forecast WHERE planned_start BETWEEN :since AND :cutoff",
        {"since": start.to_pydatetime(), "cutoff": end.to_pydatetime()},
    )


def forecasts_made_on(engine: Engine, first: dt.date, last: dt.date) -> pd.DataFrame:
    """The forecasts made on the local dates [first, last] (stamped 24:00 local of each):
    plan_id, forecast_made_at (naive UTC), gmv_p10, gmv_p50, gmv_p90 (yuan)."""
    # A half-open range: SQLite stores the stamps as text with microseconds.
    return read_frame(
        engine,
        "SELECT plan_id, forecast_made_at, gmv_p10, gmv_p50, gmv_p90 FROM session_gmv_forecast "
        "WHERE forecast_made_at >= :first AND forecast_made_at < :after",
        {
            "first": local_midnight_utc(first).to_pydatetime(),
            "after": (local_midnight_utc(last) + pd.Timedelta(days=1)).to_pydatetime(),
        },
    )


def accuracy_frame(engine: Engine, last: dt.date, days: int = ACCURACY_DAYS) -> pd.DataFrame:
    """Scored forecasts of the sessions planned in the `days` days before 24:00 local of `last`
    (planned_start in that range, both ends included): every `forecast_accuracy` column as it
    stands now, with the forecast's room_id and planned_start (naive UTC)."""
    end = local_midnight_utc(last)
    return read_frame(
        engine,
        "SELECT a.*, f.room_id, f.planned_start FROM forecast_accuracy a "
        "JOIN session_gmv_forecast f "
        "ON f.plan_id = a.plan_id AND f.forecast_made_at = a.forecast_made_at "
        "WHERE f.planned_start BETWEEN :start AND :end",
        {"start": (end - pd.Timedelta(days=days)).to_pydatetime(), "end": end.to_pydatetime()},
    )


def recent_accuracy(frame: pd.DataFrame) -> dict[str, float]:
    """Of the rows of `accuracy_frame` that have an actual: how many (`recent/scored`), their
    WMAPE of p50 (`recent/wmape`) and the share inside [p10, p90] (`recent/coverage`); only
    the count when none has."""
    scored = frame.dropna(subset=["actual_gmv"])
    if scored.empty:
        return {"recent/scored": 0}
    actual, p50 = scored["actual_gmv"].astype(float), scored["gmv_p50"].astype(float)
    return {
        "recent/scored": len(scored),
        "recent/wmape": float((actual - p50).abs().sum() / actual.sum()) if actual.sum() else 0.0,
        "recent/coverage": float(scored["in_interval"].astype(float).mean()),
    }
