"""The forecaster's quality gates: its features' GX suite and drift, the served forecasts'
contract and accuracy, and the dates left without a model (the gate `beats_champion` is
`assets/promotion.py`'s)."""

import datetime as dt
import json

import dagster as dg
import numpy as np
import pandas as pd

from assets.checks import problems_result, served_result, suite_checks
from assets.forecasting import (
    FEATURES_KEY,
    MODEL,
    beats_champion,
    read_features,
)
from assets.gates import recorded
from assets.metadata import frame_md
from assets.partitions import daily_partitions, partition_dates
from assets.resources import Lake, Warehouse
from contract.localtime import local_midnight_utc
from ml.drift import DRIFT_DAYS, PSI_ALERT, drift_table
from ml.features import MAX_HORIZON, NUMERIC
from warehouse import model_registry, quality, serving_checks
from warehouse.forecasts import (
    ACCURACY_DAYS,
    DRIFT_FACTOR,
    MIN_SCORED,
    accuracy_frame,
    forecasts_made_on,
    recent_accuracy,
)
from warehouse.publications import published_platforms

(features_valid,) = suite_checks(
    FEATURES_KEY,
    "gmv_features",
    lambda context, warehouse, lake: read_features(lake, partition_dates(context)),
    "Great Expectations suite `gmv_features_blocking`: one row per plan and date, the plan's "
    f"own fields never null, horizons 1–{MAX_HORIZON}; a model must not train or score on broken "
    "rows.",
)


@dg.asset_check(
    asset=FEATURES_KEY,
    name="stable",
    blocking=False,
    partitions_def=daily_partitions,
    description=(
        f"Each numeric feature's distribution against the {DRIFT_DAYS} days before (PSI above "
        f"{PSI_ALERT} warns: a promotion, a new room, or a broken upstream export); and the "
        "warning suite `gmv_features_warnings` (plans without a lineup, rooms without history)."
    ),
)
def features_stable(context: dg.AssetCheckExecutionContext, lake: Lake) -> dg.AssetCheckResult:
    days = partition_dates(context)
    current = read_features(lake, days)
    before = [days[0] - dt.timedelta(days=k) for k in range(DRIFT_DAYS, 0, -1)]
    previous = read_features(lake, before)
    numeric = [c for c in NUMERIC if c not in ("horizon_days", "weekday", "hour")]
    # A date whose features were all held back (a bad plan file) has nothing to compare.
    both = len(previous) and len(current)
    table = drift_table(previous, current, numeric) if both else pd.DataFrame()
    moved = table[table["psi"] > PSI_ALERT] if len(table) else table
    warnings = quality.validate("gmv_features", current, blocking=False)
    problems = [f"{len(moved)} features moved (PSI > {PSI_ALERT})"] if len(moved) else []
    problems += [warnings.summary()] if not warnings.passed else []
    return dg.AssetCheckResult(
        passed=not problems,
        severity=dg.AssetCheckSeverity.WARN,
        description="; ".join(problems)[:1000] if problems else None,
        metadata={
            "rows_now": len(current),
            "rows_before": len(previous),
            "largest_psi": float(table["psi"].max()) if len(table) else 0.0,
            "drift": frame_md(table.head(15)),
            "suite_failures": frame_md(warnings.failures_frame()),
        },
    )


@dg.asset_check(
    asset=dg.AssetKey(["serving", "forecast_accuracy"]),
    name="accuracy_holds",
    blocking=False,
    partitions_def=daily_partitions,
    description=(
        f"The WMAPE of the forecasts scored over the last {ACCURACY_DAYS} days is within "
        f"{DRIFT_FACTOR}× the "
        "backtest WMAPE of the models that made them (a warning: the world may have changed)."
    ),
)
def accuracy_holds(
    context: dg.AssetCheckExecutionContext, warehouse: Warehouse
) -> dg.AssetCheckResult:
    engine = warehouse.get_engine()
    recent = accuracy_frame(engine, partition_dates(context)[-1])
    figures = recent_accuracy(recent)
    if figures["recent/scored"] < MIN_SCORED:
        return dg.AssetCheckResult(
            passed=True,
            severity=dg.AssetCheckSeverity.WARN,
            description=f"{figures['recent/scored']} forecasts scored: too few to judge",
            metadata=figures,
        )
    table = model_registry.models(engine, MODEL).set_index("version")
    used = recent["model_version"].unique()
    expected = float(
        np.mean([json.loads(table.loc[v, "metrics"])["wmape"] for v in used if v in table.index])
    )
    limit = DRIFT_FACTOR * expected
    passed = figures["recent/wmape"] <= limit
    return dg.AssetCheckResult(
        passed=passed,
        severity=dg.AssetCheckSeverity.WARN,
        description=(
            f"recent WMAPE {figures['recent/wmape']:.3f} vs backtest {expected:.3f} "
            f"(limit {limit:.3f})"
        ),
        metadata={**figures, "backtest_wmape": expected, "limit": limit},
    )


FORECAST_KEY = dg.AssetKey(["serving", "session_gmv_forecast"])


@dg.asset_check(
    asset=FORECAST_KEY,
    name="valid",
    blocking=True,
    partitions_def=daily_partitions,
    description=(
        "The contract of `session_gmv_forecast`: p10 ≤ p50 ≤ p90, none negative, one row per "
        "plan and forecast date, and every plan of the night's export (of the platforms "
        "published) forecast on each date a model was in service."
    ),
)
def forecasts_valid(
    context: dg.AssetCheckExecutionContext, warehouse: Warehouse
) -> dg.AssetCheckResult:
    engine = warehouse.get_engine()
    days = partition_dates(context)
    forecasts = forecasts_made_on(engine, days[0], days[-1])
    expected = pd.concat(
        [
            serving_checks.plans_exported(
                engine, [day], published_platforms(engine, FORECAST_KEY.to_user_string(), day)
            )
            for day in days
            if model_registry.champion_before(engine, MODEL, day) is not None
        ]
        or [pd.DataFrame(columns=["plan_id", "forecast_made_at"])],
        ignore_index=True,
    )
    problems = serving_checks.forecast_problems(forecasts, expected)
    return recorded(context, warehouse, problems_result(problems, len(forecasts), "forecasts"))


@dg.asset_check(
    asset=FORECAST_KEY,
    name="served",
    blocking=False,
    partitions_def=daily_partitions,
    description=(
        "Warns when a date's plans got no forecast because no forecaster was in service yet "
        "(the asset then finishes green with no rows: this check says so)."
    ),
)
def forecasts_served(
    context: dg.AssetCheckExecutionContext, warehouse: Warehouse
) -> dg.AssetCheckResult:
    engine = warehouse.get_engine()
    days = partition_dates(context)
    planned = set(pd.to_datetime(serving_checks.plans_exported(engine, days)["forecast_made_at"]))
    without = [
        day
        for day in days
        if local_midnight_utc(day) in planned
        and model_registry.champion_before(engine, MODEL, day) is None
    ]
    return served_result("forecaster", without, len(days), "forecast")


forecasting_checks = [
    features_valid,
    features_stable,
    beats_champion,
    accuracy_holds,
    forecasts_valid,
    forecasts_served,
]
