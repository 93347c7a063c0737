"""Product recommendation in the graph: fan segments, the ranker, recommendations.

The pure work is in ml/fans.py and ml/ranker.py, the reads in warehouse/fan_inputs.py (and the
checks' in warehouse/serving_checks.py); these assets read, call it, write, and describe what
happened.
"""

import datetime as dt
import functools
import time
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import pandas as pd

from assets.metadata import frame_md, image, table_metadata
from assets.partitions import partition_label
from assets.promotion import promotion_steps, store_candidate
from assets.publishing import Units, dated_asset
from assets.resources import LandingZone, ModelStore, Pseudonymizer, Warehouse
from contract.layout import marked_dates
from contract.localtime import local_midnight_utc
from ml import ranker, registry
from ml.fans import PICK_DAYS, fans_as_of, history_of, history_start
from warehouse import model_registry
from warehouse.exported import first_session_day
from warehouse.fan_inputs import (
    ALL_FANS,
    BUCKETS,
    fan_input_buckets,
    planned_lineups,
    read_fan_inputs,
)
from warehouse.ingest import viewer_keys
from warehouse.money import yuan
from warehouse.schema import fan_segments as segments_table
from warehouse.schema import product_recommendations as recommendations_table
from warehouse.store import write_partition_chunks

MODEL = "product_ranker"
RANKER_KEY = dg.AssetKey(["ml", "ranker_challenger"])
# Generations of picks older than this go when a new one is written: every plan's last picks
# before its session stay four weeks for review, and the table stays bounded (a generation is
# each planned lineup for every recent fan of its room: millions of rows a night).
KEEP_DAYS = 28
HISTORY_DEPS = [
    dg.AssetKey(["clean", name])
    for name in ("sessions", "lineups", "orders", "products", "viewer_activity")
]


@dated_asset(
    per_platform=True,
    cascade=True,
    key=["serving", "fan_segments"],
    group_name="serving",
    deps=HISTORY_DEPS,
    kinds={"sql"},
    description=(
        "`fan_segments`: every fan of every room as of the run's last date, with the tier "
        "(core, active, potential, dormant; the rule is in `ml/fans.py` and the README). A "
        "nightly run writes its date; a backfill writes the last date of its window (a "
        "snapshot per past date would be the fan base again for every day)."
    ),
)
def fan_segments(
    context: dg.AssetExecutionContext, units: Units, warehouse: Warehouse
) -> dg.MaterializeResult:
    days = units.days
    day = days[-1]
    platforms = units.ready_on(day)
    engine = warehouse.get_engine()
    counts: list[pd.DataFrame] = []

    def chunks() -> Iterator[pd.DataFrame]:
        for bucket, inputs in fan_input_buckets(engine, day, history_start(day), products=False):
            fans = fans_as_of(history_of(inputs), day)
            fans = fans[fans["platform"].isin(platforms)]
            counts.append(fans.groupby(["platform", "room_id", "segment"]).size().rename("fans"))
            yield pd.DataFrame(
                {
                    "as_of_date": day,
                    "platform": fans["platform"],
                    "room_id": fans["room_id"],
                    "viewer_key": fans["viewer_key"],
                    "segment": fans["segment"],
                    "last_seen_days": fans["last_seen_days"].astype("int64"),
                    "sessions_28d": fans["sessions_28d"],
                    "orders_365d": fans["orders_365d"],
                    "spend_365d": yuan(fans["spend_365d_fen"]),
                    "run_id": context.run.run_id,
                }
            )
            context.log.debug(f"fan_segments: bucket {bucket}: {len(fans):,} fans")

    written, _ = write_partition_chunks(
        engine, segments_table, chunks(), "as_of_date", [day], scope={"platform": platforms}
    )
    tiers = (
        pd.concat(counts).groupby(level=[0, 1, 2]).sum().unstack(fill_value=0)
        if counts
        else pd.DataFrame()
    )
    context.log.info(f"fan_segments: {written:,} fans of {len(tiers)} rooms as of {day}")
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": written,
            "partition": partition_label(days),
            "as_of_date": str(day),
            "fans_by_room_and_tier": frame_md(tiers.reset_index()) if len(tiers) else "none",
        }
    )


def oracle_propensities(models: ModelStore, secret: str) -> pd.DataFrame | None:
    """The simulator's true propensities per (session, viewer, SKU), keyed like the warehouse
    (viewer_key from the raw id with the same secret); None for real data."""
    path = None if models.truth is None else models.truth / "propensities.parquet"
    if path is None or not path.exists():
        return None
    truth = pd.read_parquet(path)
    # `partition`, not `split(":").str[0]`, over millions of keys (the whole read: 9.7 s with
    # split on 2.0 million rows; 3.3 s with partition on the demo's 1.8 million).
    platform = truth["session_key"].str.partition(":")[0]
    truth["viewer_key"] = pd.concat(
        [viewer_keys(name, rows["viewer_id"], secret) for name, rows in truth.groupby(platform)]
    ).reindex(truth.index)
    return truth.drop(columns=["viewer_id"])


@dated_asset(
    per_platform=False,
    cascade=True,
    key=RANKER_KEY,
    group_name="ml",
    deps=HISTORY_DEPS,
    kinds={"python", "lightgbm"},
    description=(
        "Trains the product ranker (LambdaRank, a query per session × viewer) on what was known "
        f"by the run's last date, after a temporal evaluation on the last {ranker.EVAL_DAYS} "
        "days against room popularity, the viewer's own affinity and, on simulated data, the "
        "oracle's propensities; stores it under `models/product_ranker/<version>/` and lists "
        "it in `model_registry` as a candidate."
    ),
)
def ranker_challenger(
    context: dg.AssetExecutionContext,
    units: Units,
    warehouse: Warehouse,
    models: ModelStore,
    pseudonymizer: Pseudonymizer,
) -> dg.MaterializeResult:
    day = units.ready_days()[-1]
    engine = warehouse.get_engine()
    started = time.perf_counter()
    first = first_session_day(engine, day)
    if first is None or first >= ranker.evaluation_start(day, models.ranker_eval_days):
        # Millions of rows would be read to find the training side of the split empty.
        context.log.warning(
            f"history from {first} by {day}: shorter than the {models.ranker_eval_days} "
            "evaluation days and a day to train on; no ranker trained"
        )
        return dg.MaterializeResult(metadata={"trained": False, "history_from": str(first)})
    inputs = read_fan_inputs(engine, day, ranker.training_start(day, models.ranker_eval_days))
    history = history_of(inputs)
    examples = ranker.labelled_examples(
        inputs["sessions"],
        inputs["viewer_sessions"],
        inputs["viewer_products"],
        inputs["paid"],
        inputs["lineups"],
    )
    evaluation = ranker.train_and_evaluate(
        history,
        examples,
        inputs["products"],
        day,
        oracle_propensities(models, pseudonymizer.secret),
        num_rounds=models.ranker_rounds,
        eval_days=models.ranker_eval_days,
        log=context.log.info,
    )
    if evaluation is None:
        context.log.warning(f"too few sessions with buyers by {day} to train and evaluate")
        return dg.MaterializeResult(metadata={"trained": False, "examples": len(examples)})
    metrics = {**evaluation.metrics, "seconds": time.perf_counter() - started}
    digest = registry.fingerprint(examples[["session_key", "viewer_key", "sku", "label"]])
    card = registry.ModelCard(
        name=MODEL,
        version=registry.version_of(MODEL, day, digest),
        trained_for=day,
        train_first=evaluation.train_first,
        train_last=evaluation.train_last,
        features=list(ranker.FEATURES),
        params={**ranker.PARAMS, "num_rounds": models.ranker_rounds},
        data_fingerprint=digest,
        metrics=metrics,
    )
    path, png = store_candidate(
        context, warehouse, models, card, {"ranker": evaluation.booster}, ranker.GATE
    )
    context.log.info(
        f"{card.version}: NDCG@{ranker.K} {metrics[ranker.GATE.metric]:.3f} "
        f"({metrics['ratio_to_best_heuristic']:.2f}× the better heuristic), "
        f"{metrics['seconds']:.0f} s"
    )
    return dg.MaterializeResult(
        metadata={
            "trained": True,
            "version": card.version,
            "training_rows": evaluation.train_rows,
            "train_window": f"{card.train_first} … {card.train_last}",
            **{f"evaluation/{k}": round(float(v), 4) for k, v in metrics.items()},
            "evaluation": frame_md(evaluation.table.round(4)),
            "feature_importance": image(png, "feature importance"),
            "artifact": dg.MetadataValue.path(str(path)),
        }
    )


ranker_beats_champion, ranker_champion = promotion_steps(
    MODEL,
    RANKER_KEY,
    dg.AssetKey(["ml", "ranker_champion"]),
    ranker.GATE,
    f"NDCG@{ranker.K} in the temporal evaluation",
)


@functools.cache
def _load(path: str):
    _, boosters = registry.load(Path(path))
    return boosters["ranker"]


def newest_plan_export(landing: LandingZone) -> dt.date | None:
    return max(marked_dates(landing.path, "plan"), default=None)


@dated_asset(
    per_platform=True,
    cascade=True,
    key=["serving", "product_recommendations"],
    group_name="serving",
    deps=[dg.AssetKey(["clean", "plans"]), dg.AssetKey(["clean", "plan_lineups"]), *HISTORY_DEPS],
    kinds={"sql"},
    description=(
        "`product_recommendations`: for every plan of the latest plan export planned within the "
        "picks horizon (D+1 … D+h, `picks_horizon_days` of the models resource, "
        f"{ranker.PICKS_HORIZON_DAYS} by default), its lineup ranked for each fan of its room "
        f"seen in the last {PICK_DAYS} days, by the ranker in "
        "service, stamped 24:00 local of the export date. Written for the newest plan export "
        "that has landed only: picks for sessions already past are never pushed, so a backfill "
        f"of past dates writes none. Generations stamped over {KEEP_DAYS} days before the new "
        "one are deleted in the same transaction."
    ),
)
def product_recommendations(
    context: dg.AssetExecutionContext,
    units: Units,
    warehouse: Warehouse,
    landing_zone: LandingZone,
    models: ModelStore,
) -> dg.MaterializeResult:
    days = units.days
    day = days[-1]
    newest = newest_plan_export(landing_zone)
    if newest is not None and newest > day:
        context.log.info(f"the newest plan export is {newest}: no picks to push for {day}")
        return dg.MaterializeResult(
            metadata={"generated": False, "newest_plan_export": str(newest)}
        )
    engine = warehouse.get_engine()
    champion = model_registry.champion_before(engine, MODEL, day)
    if champion is None:
        context.log.warning(f"no ranker in service on {day}: no recommendations")
        return dg.MaterializeResult(metadata={"generated": False, "model": "none"})
    booster = _load(champion["artifact_path"])
    lineups = planned_lineups(engine, day, models.picks_horizon_days)
    # Only the plans of platforms whose data of the date is published are ranked and replaced.
    lineups = lineups[lineups["platform"].isin(units.ready_on(day))]
    stamp = local_midnight_utc(day)
    plans = lineups["plan_id"].nunique()
    started, scored, sample = time.perf_counter(), {"fans": 0, "rows": 0, "buckets": 0}, []

    def chunks() -> Iterator[pd.DataFrame]:
        for bucket, inputs in fan_input_buckets(engine, day, history_start(day)):
            history = history_of(inputs)
            fans = fans_as_of(history, day, PICK_DAYS)
            ranked = ranker.rank_for_fans(history, lineups, fans, day, inputs["products"], booster)
            scored["fans"] += len(fans)
            scored["rows"] += len(ranked)
            scored["buckets"] += 1
            done = (
                "all fans"
                if bucket == ALL_FANS
                else f"{scored['buckets']} of {len(BUCKETS)} buckets"
            )
            context.log.info(
                f"product_recommendations: {plans} plans ranked for {done} "
                f"({scored['fans']:,} fans, {scored['rows']:,} rows so far)"
            )
            rows = ranked.assign(
                model_version=champion["version"], generated_at=stamp, run_id=context.run.run_id
            )
            if not sample:
                sample.append(rows.head(10))
            yield rows

    written, pruned = write_partition_chunks(
        engine,
        recommendations_table,
        chunks(),
        "generated_at",
        [stamp],
        prune_before=stamp - dt.timedelta(days=KEEP_DAYS),
        scope={"plan_id": sorted(set(lineups["plan_id"]))},
    )
    seconds = time.perf_counter() - started
    return dg.MaterializeResult(
        metadata={
            **table_metadata(
                recommendations_table,
                pd.concat(sample) if sample else pd.DataFrame(),
                partition_label(days),
            ),
            "dagster/row_count": written,
            "generated": True,
            "plans": int(lineups["plan_id"].nunique()),
            "fans_scored": scored["fans"],
            "pruned_rows": pruned,
            "model_version": champion["version"],
            "seconds": round(seconds, 1),
            "rows_per_second": round(written / seconds) if seconds else 0,
        }
    )


recommending_assets = [fan_segments, ranker_challenger, ranker_champion, product_recommendations]
