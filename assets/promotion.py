"""One registry and one promotion rule for every model: store a candidate, judge it against the
model in service (a blocking check), put it in service from the next date."""

import dataclasses
import datetime as dt
import json
from pathlib import Path

import dagster as dg
import lightgbm as lgb
import pandas as pd

from assets.gates import recorded
from assets.partitions import daily_partitions, partition_dates
from assets.publishing import Units, dated_asset
from assets.resources import ModelStore, Warehouse
from ml import registry
from ml.plots import importance_png
from warehouse import model_registry


def store_candidate(
    context: dg.AssetExecutionContext,
    warehouse: Warehouse,
    models: ModelStore,
    card: registry.ModelCard,
    boosters: dict[str, lgb.Booster],
    gate: registry.Gate,
) -> tuple[Path, bytes]:
    """Save the boosters, card and importance plot under the model store and list the version in
    `model_registry` as a candidate; return the artifact folder and the plot."""
    png = importance_png(
        registry.importance_frame(boosters), f"{card.version}: feature importance (gain)"
    )
    path = registry.save(models.path, card, boosters, png)
    model_registry.register(
        warehouse.get_engine(), dataclasses.asdict(card), gate.metric, str(path), context.run.run_id
    )
    return path, png


def gate_result(
    warehouse: Warehouse, models: ModelStore, name: str, gate: registry.Gate, day: dt.date
) -> dg.AssetCheckResult:
    """Judge the candidate trained for `day` against the model in service; record the verdict."""
    engine = warehouse.get_engine()
    table = model_registry.models(engine, name)
    candidate = table[pd.to_datetime(table["trained_for"]).dt.date == day]
    if candidate.empty:
        return dg.AssetCheckResult(
            passed=True, description="no challenger was trained for this date (too little data)"
        )
    candidate = candidate.iloc[-1]
    champion = model_registry.champion_before(engine, name, day + dt.timedelta(days=1))
    if champion is not None and champion["version"] == candidate["version"]:
        champion = model_registry.champion_before(engine, name, day)
    rule = models.gate(gate)
    promote, why = registry.decide(
        json.loads(candidate["metrics"]),
        None if champion is None else json.loads(champion["metrics"]),
        rule,
    )
    model_registry.judge(engine, name, candidate["version"], promote, why)
    return dg.AssetCheckResult(
        passed=promote,
        severity=dg.AssetCheckSeverity.ERROR,
        description=f"{candidate['version']}: {'promoted' if promote else 'rejected'}: {why}",
        metadata={
            "challenger": candidate["version"],
            "champion": "none" if champion is None else champion["version"],
            "challenger_metric": float(candidate["gate_value"]),
            "champion_metric": float(champion["gate_value"]) if champion is not None else 0.0,
            "tolerance": rule.tolerance,
            "coverage_bounds": "none"
            if rule.coverage_bounds is None
            else str(rule.coverage_bounds),
        },
    )


def promote_candidate(
    context: dg.AssetExecutionContext, warehouse: Warehouse, name: str, day: dt.date
) -> dg.MaterializeResult:
    """Put the candidate trained for `day` that passed its gate in service from the next date."""
    engine = warehouse.get_engine()
    table = model_registry.models(engine, name)
    judged = table[(pd.to_datetime(table["trained_for"]).dt.date == day)]
    judged = judged[judged["status"].isin(["candidate", "champion", "retired"])]
    if judged.empty:
        return dg.MaterializeResult(metadata={"promoted": False, "in_service": "unchanged"})
    version = judged.iloc[-1]["version"]
    model_registry.promote(engine, name, version, day)
    context.log.info(f"{name}: {version} serves from {day + dt.timedelta(days=1)}")
    return dg.MaterializeResult(
        metadata={
            "promoted": True,
            "in_service": version,
            "serves_from": str(day + dt.timedelta(days=1)),
        }
    )


def gate_description(gate: registry.Gate, measured: str) -> str:
    """What `beats_champion` decides, in words, with the settings' defaults (`ModelStore`'s,
    taken from the same place); a deployment's own values are in each verdict."""
    defaults = ModelStore.model_fields
    rule = (
        f"The challenger's {measured} is at most `tolerance` worse than the champion's "
        f"(relative; the models resource's setting, {defaults['tolerance'].default:.0%} by "
        "default)"
    )
    if gate.coverage_bounds is not None:
        low, high = defaults["coverage_low"].default, defaults["coverage_high"].default
        rule += (
            " and its [p10, p90] covers between `coverage_low` and `coverage_high` of the "
            f"actuals ({low:.0%}–{high:.0%} by default)"
        )
    return f"{rule}; otherwise it is rejected, the champion keeps serving, and this check says why."


def promotion_steps(
    name: str, challenger: dg.AssetKey, champion: dg.AssetKey, gate: registry.Gate, measured: str
) -> tuple[dg.AssetChecksDefinition, dg.AssetsDefinition]:
    """The blocking `beats_champion` check of a model's challenger (`measured`: what its `gate`
    compares, for the UI) and the asset that puts a passing challenger in service from the next
    date."""

    @dg.asset_check(
        asset=challenger,
        name="beats_champion",
        blocking=True,
        partitions_def=daily_partitions,
        description=gate_description(gate, measured),
    )
    def beats_champion(
        context: dg.AssetCheckExecutionContext, warehouse: Warehouse, models: ModelStore
    ) -> dg.AssetCheckResult:
        day = partition_dates(context)[-1]
        return recorded(context, warehouse, gate_result(warehouse, models, name, gate, day))

    @dated_asset(
        per_platform=False,
        cascade=True,
        key=champion,
        group_name="ml",
        deps=[challenger],
        kinds={"python"},
        description=(
            "Puts the challenger that passed `beats_champion` in service from the next date; "
            "skipped when the check fails, so the champion keeps serving."
        ),
    )
    def in_service(
        context: dg.AssetExecutionContext, units: Units, warehouse: Warehouse
    ) -> dg.MaterializeResult:
        return promote_candidate(context, warehouse, name, units.ready_days()[-1])

    return beats_champion, in_service
