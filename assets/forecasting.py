"""Session-GMV forecasting in the graph: features, challenger, promotion, forecasts, accuracy.

The pure work is in ml/ (features, model, backtest, promotion rule) and warehouse/model_registry.py,
the reads in warehouse/forecast_inputs.py and warehouse/forecasts.py; these assets read, call
it, write, and describe what happened.
"""

import datetime as dt
import functools
import time
from pathlib import Path

import dagster as dg
import pandas as pd

from assets.metadata import frame_md, image, preview, table_metadata
from assets.partitions import partition_label
from assets.promotion import promotion_steps, store_candidate
from assets.publishing import Units, dated_asset
from assets.resources import Lake, ModelStore, Warehouse
from contract.localtime import local_midnight_utc
from ml import gmv, registry
from ml.features import FEATURES, ID_COLUMNS, MAX_HORIZON, build_features
from ml.history import feature_history_start, sessions_as_of
from ml.plots import forecasts_png
from warehouse import model_registry
from warehouse.exported import products_exported_by
from warehouse.forecast_inputs import history_inputs, plan_lineups_between, plans_between
from warehouse.forecasts import (
    ACCURACY_DAYS,
    RESTATE_DAYS,
    SCORED_AFTER,
    accuracy_frame,
    forecasts_planned_between,
    recent_accuracy,
    score_forecasts,
)
from warehouse.lake import read_partition_files, write_partition_file
from warehouse.matching import matched_plans
from warehouse.money import yuan_half_up
from warehouse.publications import held_since
from warehouse.schema import forecast_accuracy as accuracy_table
from warehouse.schema import session_gmv_forecast as forecast_table
from warehouse.scorecard import session_gmv
from warehouse.settings import partition_days_through
from warehouse.store import replace_newer, write_partition

FEATURES_DATASET = "gmv_features"
MODEL = "gmv_forecaster"
FEATURES_KEY = dg.AssetKey(["features", "gmv_features"])
CHALLENGER_KEY = dg.AssetKey(["ml", "gmv_challenger"])


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
        f"One row per plan exported on the date (horizon 1–{MAX_HORIZON} days), described only "
        "by what was "
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
    sessions, increments = history_inputs(engine, last, cuts, feature_history_start(days[0]))
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
    # Windows fitted by an earlier run on the same rows are loaded, not trained again.
    cache = gmv.FitCache(models.path / "backtest-fits" / MODEL)
    result = gmv.backtest(
        features, matches, history_at, day, config, oracle_frame(models), context.log.info, cache
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
    path, png = store_candidate(context, warehouse, models, card, model.boosters, gmv.GATE)
    context.log.info(
        f"{card.version}: WMAPE {metrics['wmape']:.3f} "
        f"({metrics['ratio_to_naive']:.2f}× seasonal naive), coverage {metrics['coverage']:.2f} "
        f"({model.interval}), {metrics['seconds']:.0f} s, {cache.hits} of "
        f"{cache.hits + cache.misses} backtest windows fitted by an earlier run"
    )
    return dg.MaterializeResult(
        metadata={
            "trained": True,
            "version": card.version,
            "training_rows": len(train),
            "backtest_windows_reused": cache.hits,
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
    gmv.GATE,
    "backtest WMAPE",
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
                gmv_p10=yuan_half_up(predicted["p10"]),
                gmv_p50=yuan_half_up(predicted["p50"]),
                gmv_p90=yuan_half_up(predicted["p90"]),
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
        "`forecast_accuracy`: every forecast whose planned start + "
        f"{SCORED_AFTER.total_seconds() / 3600:g} h has passed by the end of "
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
                recent.dropna(subset=["actual_gmv"]),
                f"last {ACCURACY_DAYS} days: p10–p90, p50, actual",
            ),
            "forecasts against actuals per room",
        )
    return dg.MaterializeResult(metadata=metadata)


forecasting_assets = [
    gmv_features,
    gmv_challenger,
    gmv_champion,
    session_gmv_forecast,
    forecast_accuracy,
]
