"""Session-GMV forecasting in the graph: features, challenger, promotion, forecasts, accuracy.

The pure work is in ml/ (features, model, backtest, promotion rule) and warehouse/registry.py,
the reads in warehouse/forecast_inputs.py and warehouse/forecasts.py; these assets read, call
it, write, and describe what happened.
"""

import datetime as dt
import functools
import json
import time
from pathlib import Path

import dagster as dg
import numpy as np
import pandas as pd

from assets.checks import problems_result, served_result, verdict_result
from assets.gates import recorded
from assets.metadata import frame_md, image, preview, table_metadata
from assets.partitions import daily_partitions, partition_dates, partition_label
from assets.promotion import promotion_steps, store_candidate
from assets.publishing import Units, dated_asset
from assets.resources import Lake, ModelStore, Warehouse
from contract.localtime import local_midnight_utc
from ml import gmv, registry
from ml.drift import PSI_ALERT, drift_table
from ml.features import FEATURES, ID_COLUMNS, NUMERIC, build_features
from ml.history import sessions_as_of
from ml.plots import forecasts_png
from warehouse import quality, serving_checks
from warehouse import registry as model_registry
from warehouse.exported import products_exported_by
from warehouse.forecast_inputs import history_inputs, plan_lineups_between, plans_between
from warehouse.forecasts import (
    accuracy_frame,
    forecasts_made_on,
    forecasts_planned_between,
    half_up,
    recent_accuracy,
    score_forecasts,
)
from warehouse.lake import read_partition_files, write_partition_file
from warehouse.matching import matched_plans
from warehouse.publications import held_since, published_platforms
from warehouse.schema import forecast_accuracy as accuracy_table
from warehouse.schema import session_gmv_forecast as forecast_table
from warehouse.scorecard import session_gmv
from warehouse.settings import partition_days_through
from warehouse.store import replace_newer, write_partition

FEATURES_DATASET = "gmv_features"
MODEL = "gmv_forecaster"
FEATURES_KEY = dg.AssetKey(["features", "gmv_features"])
CHALLENGER_KEY = dg.AssetKey(["ml", "gmv_challenger"])
GATE = registry.Gate(metric="wmape", higher_is_better=False, coverage_bounds=(0.7, 0.9))
SCORED_AFTER = pd.Timedelta(hours=3)  # a forecast is scored 3 hours after its planned start
RESTATE_DAYS = 14  # late orders and matches restate the accuracy of this many days back
DRIFT_DAYS = 28  # features are compared with those of the four weeks before


def read_features(lake: Lake, days: list[dt.date]) -> pd.DataFrame:
    rows = read_partition_files(lake.path, FEATURES_DATASET, days)
    if len(rows):
        rows["forecast_date"] = pd.to_datetime(rows["forecast_date"]).dt.date
    return rows


@dated_asset(
    per_platform=True,
    cascade=True,
    key=FEATURES_KEY,
    group_name="features",
    deps=[
        dg.AssetKey(["clean", name])
        for name in ("plans", "plan_lineups", "products", "sessions", "orders")
    ],
    kinds={"python", "parquet"},
    description=(
        "One row per plan exported on the date (horizon 1–7 days), described only by what was "
        "known that evening: the plan and its lineup, the catalogue, the calendar, the room's "
        "and host's history. Training rows and scoring rows come from this one function "
        "(`ml/features.py`). Parquet: `lake/gmv_features/export_date=<date>/`."
    ),
)
def gmv_features(
    context: dg.AssetExecutionContext, units: Units, warehouse: Warehouse, lake: Lake
) -> dg.MaterializeResult:
    days = units.days
    engine = warehouse.get_engine()
    last = days[-1]
    cuts = held_since(engine, units.platforms, last)
    for platform in units.platforms:  # held from a date in the window (a same-date cause)
        held = [d for d in days if not units.is_ready(platform, d)]
        if held and (platform not in cuts or held[0] < cuts[platform]):
            cuts[platform] = held[0]
    sessions, increments = history_inputs(engine, last, cuts)
    plans = plans_between(engine, days[0], last)
    lineups = plan_lineups_between(engine, days[0], last)
    products = products_exported_by(engine, last)
    written = []
    for n, day in enumerate(days, start=1):
        ready = units.ready_on(day)
        if not ready:
            continue
        rows = build_features(day, plans, lineups, products, sessions, increments)
        rows = rows[rows["platform"].isin(ready)]
        write_partition_file(lake.path, FEATURES_DATASET, day, rows, ready)
        written.append(rows)
        if n % 30 == 0 or n == len(days):
            context.log.info(
                f"gmv_features: {n}/{len(days)} dates, {sum(map(len, written)):,} rows"
            )
    frame = pd.concat(written, ignore_index=True) if written else pd.DataFrame()
    history = [c for c in FEATURES if c.startswith(("room_", "host_", "slot_", "hour_"))]
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": len(frame),
            "partition": partition_label(days),
            "plans": int(frame["plan_id"].nunique()) if len(frame) else 0,
            "rows_by_horizon": frame_md(
                frame["horizon_days"]
                .value_counts()
                .sort_index()
                .rename_axis("horizon")
                .reset_index()
            )
            if len(frame)
            else "none",
            "history_missing_share": float(frame[history].isna().mean().mean())
            if len(frame)
            else 0.0,
            "preview": preview(
                frame[[*ID_COLUMNS, "horizon_days", "reservations", "seasonal_naive"]]
            )
            if len(frame)
            else preview(frame),
        }
    )


@dg.asset_check(
    asset=FEATURES_KEY,
    name="valid",
    blocking=True,
    partitions_def=daily_partitions,
    description=(
        "Great Expectations suite `gmv_features_blocking`: one row per plan and date, the plan's "
        "own fields never null, horizons 1–7; a model must not train or score on broken rows."
    ),
)
def features_valid(
    context: dg.AssetCheckExecutionContext, warehouse: Warehouse, lake: Lake
) -> dg.AssetCheckResult:
    rows = read_features(lake, partition_dates(context))
    verdict = quality.validate("gmv_features", rows, blocking=True)
    return recorded(context, warehouse, verdict_result(verdict, dg.AssetCheckSeverity.ERROR))


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


def oracle_frame(models: ModelStore) -> pd.DataFrame | None:
    """The simulator's oracle p10/p50/p90 per plan (only where a truth/ folder exists)."""
    if models.truth is None or not (models.truth / "plans.csv").exists():
        return None
    plans = pd.read_csv(models.truth / "plans.csv")
    return plans.rename(
        columns={"gmv_p10": "oracle_p10", "gmv_p50": "oracle_p50", "gmv_p90": "oracle_p90"}
    )


@dated_asset(
    per_platform=False,
    cascade=True,
    key=CHALLENGER_KEY,
    group_name="ml",
    deps=[FEATURES_KEY, dg.AssetKey(["clean", "session_plans"])],
    kinds={"python", "lightgbm"},
    description=(
        "Trains a forecaster on what was known on the partition's (last) date, after a "
        "rolling-origin backtest with the same features against the seasonal-naive and "
        "recent-mean baselines and, on simulated data, the oracle; stores it under "
        "`models/gmv_forecaster/<version>/` and lists it in `model_registry` as a candidate."
    ),
)
def gmv_challenger(
    context: dg.AssetExecutionContext,
    units: Units,
    warehouse: Warehouse,
    lake: Lake,
    models: ModelStore,
) -> dg.MaterializeResult:
    day = units.ready_days()[-1]
    engine = warehouse.get_engine()
    started = time.perf_counter()
    features = read_features(lake, partition_days_through(day))
    matches = matched_plans(engine)
    sessions, increments = history_inputs(engine, day)
    history_at = functools.cache(lambda d: sessions_as_of(sessions, increments, d))
    train = gmv.labelled(features, matches, history_at(day), day, gmv.SETTLE_DAYS)
    if len(train) < gmv.MIN_TRAINING_ROWS:
        context.log.warning(f"{len(train)} labelled forecasts by {day}: too few to train")
        return dg.MaterializeResult(metadata={"trained": False, "training_rows": len(train)})
    config = gmv.BacktestConfig(
        windows=models.backtest_windows,
        window_days=models.window_days,
        min_train_days=models.min_train_days,
        num_rounds=models.num_rounds,
    )
    result = gmv.backtest(
        features, matches, history_at, day, config, oracle_frame(models), log=context.log.info
    )
    if result.empty:
        context.log.warning("no backtest window has both training and test forecasts yet")
        return dg.MaterializeResult(metadata={"trained": False, "training_rows": len(train)})
    summary = gmv.summarize(result)
    model = gmv.fit(train, config.num_rounds)
    model.interval = gmv.choose_interval(summary)
    metrics = {**gmv.headline(summary, model.interval), "seconds": time.perf_counter() - started}
    columns = [*ID_COLUMNS, *FEATURES, "actual"]
    digest = registry.fingerprint(train[columns])
    card = registry.ModelCard(
        name=MODEL,
        version=registry.version_of(MODEL, day, digest),
        trained_for=day,
        train_first=min(train["forecast_date"]),
        train_last=max(train["forecast_date"]),
        features=list(FEATURES),
        params={**gmv.PARAMS, "num_rounds": config.num_rounds, "members": list(gmv.MEMBERS)},
        data_fingerprint=digest,
        metrics=metrics,
        extra=gmv.model_state(model),
    )
    path, png = store_candidate(context, warehouse, models, card, model.boosters, GATE)
    context.log.info(
        f"{card.version}: WMAPE {metrics['wmape']:.3f} "
        f"({metrics['ratio_to_naive']:.2f}× seasonal naive), coverage {metrics['coverage']:.2f} "
        f"({model.interval}), {metrics['seconds']:.0f} s"
    )
    return dg.MaterializeResult(
        metadata={
            "trained": True,
            "version": card.version,
            "training_rows": len(train),
            "train_window": f"{card.train_first} … {card.train_last}",
            "interval_method": model.interval,
            **{f"backtest/{k}": round(v, 4) for k, v in metrics.items()},
            "by_platform": frame_md(summary["by_platform"]),
            "by_horizon": frame_md(summary["by_horizon"]),
            "feature_importance": image(png, "feature importance"),
            "artifact": dg.MetadataValue.path(str(path)),
        }
    )


beats_champion, gmv_champion = promotion_steps(
    MODEL,
    CHALLENGER_KEY,
    dg.AssetKey(["ml", "gmv_champion"]),
    GATE,
    f"The challenger's backtest WMAPE is at most {GATE.tolerance:.0%} worse than the "
    "champion's and its [p10, p90] coverage is within bounds",
)


@functools.cache
def _load(path: str) -> gmv.GmvModel:
    card, boosters = registry.load(Path(path))
    return gmv.from_state(boosters, card.extra)


@dated_asset(
    per_platform=True,
    cascade=True,
    key=["serving", "session_gmv_forecast"],
    group_name="serving",
    deps=[FEATURES_KEY],
    kinds={"sql"},
    description=(
        "`session_gmv_forecast`: p10/p50/p90 of paid GMV for every plan of the date's plan "
        "export, by the model in service that date (the last promoted before it), stamped "
        "24:00 local of the date. A date with no model in service yet gets no rows."
    ),
)
def session_gmv_forecast(
    context: dg.AssetExecutionContext, units: Units, warehouse: Warehouse, lake: Lake
) -> dg.MaterializeResult:
    days = units.days
    engine = warehouse.get_engine()
    frames, without_model, versions, written = [], [], set(), 0
    for day in days:
        ready = units.ready_on(day)
        champion = model_registry.champion_before(engine, MODEL, day)
        rows = read_features(lake, [day])
        rows = rows[rows["platform"].isin(ready)] if len(rows) else rows
        if champion is None or rows.empty:
            without_model += [day] if champion is None else []
            continue
        model = _load(champion["artifact_path"])
        predicted = model.predict(rows)
        versions.add(champion["version"])
        frames.append(
            rows[
                ["plan_id", "platform", "room_id", "host_id", "planned_start", "horizon_days"]
            ].assign(
                planned_start=pd.to_datetime(rows["planned_start"]),
                forecast_made_at=local_midnight_utc(day),
                gmv_p10=half_up(predicted["p10"]),
                gmv_p50=half_up(predicted["p50"]),
                gmv_p90=half_up(predicted["p90"]),
                model_version=champion["version"],
                run_id=context.run.run_id,
            )
        )
    out = (
        pd.concat(frames, ignore_index=True)
        if frames
        else pd.DataFrame(columns=[c.name for c in forecast_table.columns])
    )
    # Each platform's forecasts of its published dates are replaced; the others' stay.
    for platform in units.platforms:
        stamps = [local_midnight_utc(day) for day in units.ready_days(platform)]
        mine = out[out["platform"] == platform]
        written += write_partition(
            engine, forecast_table, mine, "forecast_made_at", stamps, scope={"platform": platform}
        )
    if without_model:
        context.log.warning(
            f"no model in service on {len(without_model)} dates ({without_model[0]} …): "
            "no forecasts for them"
        )
    return dg.MaterializeResult(
        metadata={
            **table_metadata(forecast_table, out, partition_label(days)),
            "rows_written": written,
            "model_versions": ", ".join(sorted(versions)) or "none",
            "dates_without_model": len(without_model),
            "gmv_p50_total": float(out["gmv_p50"].sum()) if len(out) else 0.0,
        }
    )


@dated_asset(
    per_platform=True,
    cascade=True,
    key=["serving", "forecast_accuracy"],
    group_name="serving",
    deps=[
        dg.AssetKey(["serving", "session_gmv_forecast"]),
        dg.AssetKey(["serving", "session_scorecard"]),
        dg.AssetKey(["clean", "session_plans"]),
    ],
    kinds={"sql"},
    description=(
        "`forecast_accuracy`: every forecast whose planned start + 3 h has passed by the end of "
        "the date, with the actual paid GMV of its matched session (null if none matched); "
        f"forecasts of the {RESTATE_DAYS} days before are restated as late orders and matches "
        "arrive."
    ),
)
def forecast_accuracy(
    context: dg.AssetExecutionContext, units: Units, warehouse: Warehouse
) -> dg.MaterializeResult:
    days = units.days
    engine = warehouse.get_engine()
    matches = matched_plans(engine)
    card = session_gmv(engine)
    scored_windows, written = [], 0
    for window, platforms in units.windows():
        cutoff = local_midnight_utc(window[-1]) - SCORED_AFTER
        since = local_midnight_utc(window[0] - dt.timedelta(days=RESTATE_DAYS + 1))
        forecasts = forecasts_planned_between(engine, since, cutoff)
        forecasts = forecasts[forecasts["platform"].isin(platforms)]
        scored = score_forecasts(forecasts, matches, card, window[-1], context.run.run_id)
        written += replace_newer(
            engine, accuracy_table, scored, ["plan_id", "forecast_made_at"], "as_of_date"
        )
        scored_windows.append(scored)
    scored = pd.concat(scored_windows, ignore_index=True) if scored_windows else pd.DataFrame()
    recent = accuracy_frame(engine, days[-1])
    metadata = {
        **table_metadata(accuracy_table, scored, partition_label(days)),
        "forecasts_scored": len(scored),
        "rows_written": written,
        "unmatched_plans": int(scored["session_key"].isna().sum()) if len(scored) else 0,
        **recent_accuracy(recent),
    }
    if len(recent):
        metadata["forecasts_vs_actuals"] = image(
            forecasts_png(
                recent.dropna(subset=["actual_gmv"]), "last 28 days: p10–p90, p50, actual"
            ),
            "forecasts against actuals per room",
        )
    return dg.MaterializeResult(metadata=metadata)


DRIFT_FACTOR = 1.5
MIN_SCORED = 30


@dg.asset_check(
    asset=dg.AssetKey(["serving", "forecast_accuracy"]),
    name="accuracy_holds",
    blocking=False,
    partitions_def=daily_partitions,
    description=(
        f"The WMAPE of the forecasts scored over the last 28 days is within {DRIFT_FACTOR}× the "
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


forecasting_assets = [
    gmv_features,
    gmv_challenger,
    gmv_champion,
    session_gmv_forecast,
    forecast_accuracy,
]
forecasting_checks = [
    features_valid,
    features_stable,
    beats_champion,
    accuracy_holds,
    forecasts_valid,
    forecasts_served,
]
