"""The recommender's quality gates: the fan tiers and a generation of picks against the
contract (re-derived from the clean layer on a sample of fans), and the dates left without a
ranker (the gate `beats_champion` is `assets/promotion.py`'s)."""

import dagster as dg

from assets.checks import problems_result, served_result
from assets.gates import recorded
from assets.partitions import daily_partitions, partition_dates
from assets.recommending import MODEL, newest_plan_export, ranker_beats_champion
from assets.resources import LandingZone, ModelStore, Warehouse
from ml.fans import PICK_DAYS
from warehouse import model_registry, serving_checks
from warehouse.fan_inputs import planned_lineups
from warehouse.publications import published_platforms

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
    stored = serving_checks.sampled_segments(engine, day)
    derived = serving_checks.fans_from_clean_layer(engine, day)
    stored = stored[stored["platform"].isin(platforms)]
    derived = derived[derived["platform"].isin(platforms)]
    problems = serving_checks.fan_segment_problems(stored, derived)
    return recorded(context, warehouse, problems_result(problems, len(derived), "sampled_fans"))


@dg.asset_check(
    asset=RECOMMENDATIONS_KEY,
    name="valid",
    blocking=True,
    partitions_def=daily_partitions,
    description=(
        "The contract of the date's generation of picks, on a sample of fans (viewer keys "
        f"starting with '{serving_checks.SAMPLE_PREFIX}'): the plans are exactly those within the "
        "picks horizon, each (plan, fan) ranks the plan's whole lineup 1 … n without ties and no "
        f"other SKU, and the fans are exactly the room's fans seen in the {PICK_DAYS} days "
        "ending the date (re-derived from the clean tables)."
    ),
)
def recommendations_valid(
    context: dg.AssetCheckExecutionContext, warehouse: Warehouse, models: ModelStore
) -> dg.AssetCheckResult:
    engine = warehouse.get_engine()
    day = partition_dates(context)[-1]
    picks = serving_checks.sampled_generation(engine, day)
    if picks.empty:
        return recorded(
            context,
            warehouse,
            dg.AssetCheckResult(passed=True, description=f"no picks generated for {day}"),
        )
    lineups = planned_lineups(engine, day, models.picks_horizon_days)
    platforms = published_platforms(engine, RECOMMENDATIONS_KEY.to_user_string(), day)
    lineups = lineups[lineups["platform"].isin(platforms)]
    fans = serving_checks.fans_from_clean_layer(engine, day)
    fans = fans[fans["last_seen_days"] < PICK_DAYS][["room_id", "viewer_key"]]
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
    context: dg.AssetCheckExecutionContext,
    warehouse: Warehouse,
    landing_zone: LandingZone,
    models: ModelStore,
) -> dg.AssetCheckResult:
    engine = warehouse.get_engine()
    day = partition_dates(context)[-1]
    newest = newest_plan_export(landing_zone)
    due = newest is None or newest <= day  # picks are pushed for the newest export only
    idle = (
        due
        and not planned_lineups(engine, day, models.picks_horizon_days).empty
        and model_registry.champion_before(engine, MODEL, day) is None
    )
    return served_result("ranker", [day] if idle else [], 1, "picks")


recommending_checks = [
    ranker_beats_champion,
    segments_valid,
    recommendations_valid,
    recommendations_served,
]
