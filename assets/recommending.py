"""Product recommendation in the graph: fan segments, the ranker, recommendations.

The pure work is in ml/fans.py and ml/ranker.py; these assets read the clean tables, call it,
write, and describe what happened.
"""

import datetime as dt
import functools
import time
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import pandas as pd
from sqlalchemy import Engine

from assets.checks import problems_result, served_result
from assets.gates import recorded
from assets.metadata import frame_md, image, table_metadata
from assets.partitions import daily_partitions, partition_dates, partition_label
from assets.promotion import promotion_steps, store_candidate
from assets.publishing import Units, dated_asset
from assets.resources import LandingZone, ModelStore, Pseudonymizer, Warehouse
from contract.exports import latest_export
from contract.layout import marked_dates
from contract.localtime import local_midnight_utc
from ml import ranker, registry
from ml.fans import FanHistory, fan_history, fans_as_of
from ml.history import dated, paid_increments
from warehouse import registry as model_registry
from warehouse import serving_checks
from warehouse.ingest import viewer_keys
from warehouse.publications import published_platforms
from warehouse.schema import fan_segments as segments_table
from warehouse.schema import product_recommendations as recommendations_table
from warehouse.store import read_frame, write_partition_chunks

MODEL = "product_ranker"
RANKER_KEY = dg.AssetKey(["ml", "ranker_challenger"])
GATE = registry.Gate(metric=f"ndcg@{ranker.K}", higher_is_better=True)
FAN_SEEN_DAYS = 90  # recommendations go to the room's fans seen in the last 90 days
# Fans are scored a sixteenth at a time (the first hex digit of viewer_key): memory is bounded
# by a bucket's history, not the whole fan base.
BUCKETS = "0123456789abcdef"
# Generations of picks older than this go when a new one is written: every plan's last picks
# before its session stay four weeks for review, and the table stays bounded (a generation is
# each planned lineup for every recent fan of its room: millions of rows a night).
KEEP_DAYS = 28
HISTORY_DEPS = [
    dg.AssetKey(["clean", name])
    for name in ("sessions", "lineups", "orders", "products", "viewer_activity")
]


def known_sessions(last: dt.date) -> str:
    """The SQL condition for rows of sessions exported by `last`."""
    return f"session_key IN (SELECT session_key FROM clean_sessions WHERE export_date <= '{last}')"


def read_fan_inputs(
    engine: Engine,
    last: dt.date,
    bucket: str | None = None,
    shared: dict | None = None,
) -> dict:
    """The clean rows the fan history is made of, as exported by `last`; with `bucket` (a hex
    digit), only the viewers whose key starts with it (a sixteenth of the fans: bounded
    memory when scoring). `shared`: the inputs that do not depend on the bucket, read once."""
    if bucket is not None and bucket not in BUCKETS:
        raise ValueError(f"not a bucket: {bucket!r}")
    day = {"last": last.isoformat()}
    viewers = "" if bucket is None else f" AND viewer_key LIKE '{bucket}%'"
    known = known_sessions(last)
    shared = shared or shared_inputs(engine, last, known)
    orders = read_frame(
        engine,
        "SELECT order_key, export_date, session_key, viewer_key, sku, paid_fen, paid_at "
        f"FROM clean_orders WHERE export_date <= :last AND paid_at IS NOT NULL{viewers}",
        day,
    )
    orders["export_date"] = dated(orders["export_date"])
    return {
        **shared,
        "viewer_sessions": read_frame(
            engine,
            "SELECT session_key, viewer_key, watch_s, is_bot FROM clean_viewer_sessions "
            f"WHERE {known}{viewers}",
        ),
        "viewer_products": read_frame(
            engine,
            "SELECT session_key, viewer_key, sku, clicks, carts FROM clean_viewer_products "
            f"WHERE {known}{viewers}",
        ),
        "paid": paid_increments(orders, keep=("viewer_key", "sku")),
    }


def shared_inputs(engine: Engine, last: dt.date, known: str) -> dict:
    """Sessions, lineups, the catalogue and per-(session, SKU) totals as exported by `last`."""
    day = {"last": last.isoformat()}
    sessions = latest_export(
        read_frame(
            engine,
            "SELECT session_key, export_date, source_line, platform, room_id, start_time, "
            "is_test FROM clean_sessions WHERE export_date <= :last",
            day,
        ),
        "session_key",
    )
    return {
        "sessions": sessions,
        "lineups": read_frame(
            engine,
            "SELECT session_key, sku, live_price_fen, coupon_fen FROM clean_lineups_current "
            f"WHERE {known}",
        ),
        "session_products": session_products(engine, last, known),
        "products": read_frame(
            engine,
            "SELECT sku, export_date, category, list_price_fen, energy_grade FROM clean_products "
            "WHERE export_date <= :last",
            day,
        ),
    }


def session_products(engine: Engine, last: dt.date, known: str) -> pd.DataFrame:
    """What all human viewers did per (session, SKU), aggregated in the database: the lineup's
    audience, clicks and carts, and paid lines by the export that first showed them paid."""
    exposed = read_frame(
        engine,
        "SELECT l.session_key, l.sku, COUNT(v.viewer_key) AS exposed "
        "FROM clean_lineups_current l JOIN clean_viewer_sessions v "
        f"ON v.session_key = l.session_key AND NOT v.is_bot WHERE l.{known} "
        "GROUP BY l.session_key, l.sku",
    )
    acted = read_frame(
        engine,
        "SELECT p.session_key, p.sku, SUM(p.clicks) AS clicks, SUM(p.carts) AS carts "
        "FROM clean_viewer_products p JOIN clean_viewer_sessions v "
        "ON v.session_key = p.session_key AND v.viewer_key = p.viewer_key AND NOT v.is_bot "
        f"WHERE p.{known} GROUP BY p.session_key, p.sku",
    )
    paid = read_frame(
        engine,
        "SELECT session_key, sku, known_date, COUNT(*) AS orders FROM ("
        "SELECT order_key, MIN(session_key) AS session_key, MIN(sku) AS sku, "
        "MIN(export_date) AS known_date FROM clean_orders "
        "WHERE paid_at IS NOT NULL AND export_date <= :last GROUP BY order_key) lines "
        "GROUP BY session_key, sku, known_date",
        {"last": last.isoformat()},
    )
    return pd.concat([exposed, acted, paid], ignore_index=True)


def history_of(inputs: dict) -> FanHistory:
    return fan_history(
        inputs["sessions"],
        inputs["viewer_sessions"],
        inputs["viewer_products"],
        inputs["paid"],
        inputs["lineups"],
        inputs["products"].sort_values("export_date"),
        inputs["session_products"],
    )


def bucket_histories(engine: Engine, day: dt.date) -> Iterator[tuple[str, dict, FanHistory]]:
    """Each sixteenth of the fans with its history as exported by `day`."""
    shared = shared_inputs(engine, day, known_sessions(day))
    for bucket in BUCKETS:
        inputs = read_fan_inputs(engine, day, bucket, shared)
        yield bucket, inputs, history_of(inputs)


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
        for bucket, _, history in bucket_histories(engine, day):
            fans = fans_as_of(history, day)
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
                    "spend_365d": fans["spend_365d_fen"] / 100,
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
    platform = truth["session_key"].str.split(":").str[0]
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
    inputs = read_fan_inputs(engine, day)
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
        context, warehouse, models, card, {"ranker": evaluation.booster}, GATE
    )
    context.log.info(
        f"{card.version}: NDCG@{ranker.K} {metrics[GATE.metric]:.3f} "
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
    GATE,
    f"The challenger's NDCG@{ranker.K} in the temporal evaluation is at most the tolerance "
    "worse than the champion's (the same rule and registry as the forecaster)",
)


@functools.cache
def _load(path: str):
    _, boosters = registry.load(Path(path))
    return boosters["ranker"]


def newest_plan_export(landing: LandingZone) -> dt.date | None:
    return max(marked_dates(landing.path, "plan"), default=None)


def planned_lineups(engine: Engine, day: dt.date) -> pd.DataFrame:
    """The lineups of the plans exported on `day`, with each plan's room and planned prices."""
    return read_frame(
        engine,
        "SELECT l.plan_id, p.platform, p.room_id, l.sku, l.planned_price_fen AS price_fen, "
        "l.coupon_fen "
        "FROM clean_plan_lineups l JOIN clean_plans p "
        "ON p.plan_id = l.plan_id AND p.export_date = l.export_date WHERE l.export_date = :day",
        {"day": day.isoformat()},
    )


@dated_asset(
    per_platform=True,
    cascade=True,
    key=["serving", "product_recommendations"],
    group_name="serving",
    deps=[dg.AssetKey(["clean", "plans"]), dg.AssetKey(["clean", "plan_lineups"]), *HISTORY_DEPS],
    kinds={"sql"},
    description=(
        "`product_recommendations`: for every plan of the latest plan export, its lineup ranked "
        f"for each fan of its room seen in the last {FAN_SEEN_DAYS} days, by the ranker in "
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
    lineups = planned_lineups(engine, day)
    # Only the plans of platforms whose data of the date is published are ranked and replaced.
    lineups = lineups[lineups["platform"].isin(units.ready_on(day))]
    stamp = local_midnight_utc(day)
    started, scored, sample = time.perf_counter(), {"fans": 0, "rows": 0}, []

    def chunks() -> Iterator[pd.DataFrame]:
        for bucket, inputs, history in bucket_histories(engine, day):
            fans = fans_as_of(history, day, FAN_SEEN_DAYS)
            ranked = ranker.rank_for_fans(history, lineups, fans, day, inputs["products"], booster)
            scored["fans"] += len(fans)
            scored["rows"] += len(ranked)
            context.log.info(
                f"product_recommendations: bucket {bucket}/{BUCKETS[-1]}: {len(fans):,} fans, "
                f"{scored['rows']:,} rows so far"
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


SEGMENTS_KEY = dg.AssetKey(["serving", "fan_segments"])
RECOMMENDATIONS_KEY = dg.AssetKey(["serving", "product_recommendations"])


@dg.asset_check(
    asset=SEGMENTS_KEY,
    name="valid",
    blocking=True,
    partitions_def=daily_partitions,
    description=(
        "The contract's fan rule re-derived from the clean tables for a sample of fans (viewer "
        f"keys starting with '{serving_checks.SAMPLE_PREFIX}'): the same fans of each room, "
        "with the same last_seen_days, sessions_28d, orders_365d, spend and tier."
    ),
)
def segments_valid(
    context: dg.AssetCheckExecutionContext, warehouse: Warehouse
) -> dg.AssetCheckResult:
    engine = warehouse.get_engine()
    day = partition_dates(context)[-1]
    platforms = published_platforms(engine, SEGMENTS_KEY.to_user_string(), day)
    stored = read_frame(
        engine,
        "SELECT platform, room_id, viewer_key, segment, last_seen_days, sessions_28d, "
        "orders_365d, spend_365d FROM fan_segments WHERE as_of_date = :day "
        "AND viewer_key LIKE :prefix",
        {"day": day.isoformat(), "prefix": f"{serving_checks.SAMPLE_PREFIX}%"},
    )
    derived = serving_checks.fans_from_clean_layer(engine, day)
    stored = stored[stored["platform"].isin(platforms)]
    derived = derived[derived["platform"].isin(platforms)]
    problems = serving_checks.fan_segment_problems(stored, derived)
    return recorded(context, warehouse, problems_result(problems, len(derived), "sampled_fans"))


def _sampled_generation(engine: Engine, day: dt.date) -> pd.DataFrame:
    """The picks of the date's generation for the sample of fans."""
    stamp = local_midnight_utc(day)
    # A half-open range, not equality: SQLite stores the stamp as text with microseconds.
    return read_frame(
        engine,
        "SELECT plan_id, viewer_key, sku, rank FROM product_recommendations "
        "WHERE generated_at >= :stamp AND generated_at < :after AND viewer_key LIKE :prefix",
        {
            "stamp": stamp.to_pydatetime(),
            "after": (stamp + pd.Timedelta(seconds=1)).to_pydatetime(),
            "prefix": f"{serving_checks.SAMPLE_PREFIX}%",
        },
    )


@dg.asset_check(
    asset=RECOMMENDATIONS_KEY,
    name="valid",
    blocking=True,
    partitions_def=daily_partitions,
    description=(
        "The contract of the date's generation of picks, on a sample of fans (viewer keys "
        f"starting with '{serving_checks.SAMPLE_PREFIX}'): each (plan, fan) ranks the plan's "
        "whole lineup 1 … n without ties and no other SKU, and the fans are exactly the room's "
        f"fans seen in the {serving_checks.SEEN_DAYS} days ending the date (re-derived from the "
        "clean tables)."
    ),
)
def recommendations_valid(
    context: dg.AssetCheckExecutionContext, warehouse: Warehouse
) -> dg.AssetCheckResult:
    engine = warehouse.get_engine()
    day = partition_dates(context)[-1]
    picks = _sampled_generation(engine, day)
    if picks.empty:
        return recorded(
            context,
            warehouse,
            dg.AssetCheckResult(passed=True, description=f"no picks generated for {day}"),
        )
    lineups = planned_lineups(engine, day)
    lineups = lineups[lineups["plan_id"].isin(set(picks["plan_id"]))]
    fans = serving_checks.fans_from_clean_layer(engine, day)
    fans = fans[fans["last_seen_days"] < serving_checks.SEEN_DAYS][["room_id", "viewer_key"]]
    problems = serving_checks.recommendation_problems(picks, lineups, fans)
    return recorded(context, warehouse, problems_result(problems, len(picks), "sampled_rows"))


@dg.asset_check(
    asset=RECOMMENDATIONS_KEY,
    name="served",
    blocking=False,
    partitions_def=daily_partitions,
    description=(
        "Warns when the date's plans got no picks because no ranker was in service yet (the "
        "asset then finishes green with no rows: this check says so)."
    ),
)
def recommendations_served(
    context: dg.AssetCheckExecutionContext, warehouse: Warehouse, landing_zone: LandingZone
) -> dg.AssetCheckResult:
    engine = warehouse.get_engine()
    day = partition_dates(context)[-1]
    newest = newest_plan_export(landing_zone)
    due = newest is None or newest <= day  # picks are pushed for the newest export only
    idle = (
        due
        and not planned_lineups(engine, day).empty
        and model_registry.champion_before(engine, MODEL, day) is None
    )
    return served_result("ranker", [day] if idle else [], 1, "picks")


recommending_assets = [fan_segments, ranker_challenger, ranker_champion, product_recommendations]
recommending_checks = [
    ranker_beats_champion,
    segments_valid,
    recommendations_valid,
    recommendations_served,
]
