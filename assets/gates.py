"""Glue between Dagster's blocking checks and `warehouse.gates` (verdicts kept across runs)."""

import dagster as dg

from assets.metadata import preview
from assets.partitions import partition_dates
from assets.resources import Warehouse
from warehouse.gates import failed_checks, record_check


def recorded(
    context: dg.AssetCheckExecutionContext, warehouse: Warehouse, result: dg.AssetCheckResult
) -> dg.AssetCheckResult:
    """Remember a blocking check's verdict for each date of the partition range, then return it."""
    (spec,) = context.check_specs
    record_check(
        warehouse.get_engine(),
        spec.asset_key.to_user_string(),
        spec.name,
        partition_dates(context),
        result.passed,
        result.description or "",
        context.run.run_id,
    )
    return result


def require_upstream_passed(context: dg.AssetExecutionContext, warehouse: Warehouse) -> None:
    """Refuse to publish dates whose upstream tables failed a blocking check, in this run or an
    earlier one: the failure names the checks and dates; the published rows stay as they were."""
    days = partition_dates(context)
    upstream = sorted(key.to_user_string() for key in context.assets_def.dependency_keys)
    failed = failed_checks(warehouse.get_engine(), upstream, days[0], days[-1])
    if failed.empty:
        return
    first = failed.iloc[0]
    raise dg.Failure(
        description=(
            f"{len(failed)} blocking check verdicts failed upstream of "
            f"{context.asset_key.to_user_string()}, e.g. {first['asset_key']} "
            f"{first['check_name']} on {first['partition_date']}: {first['description'][:300]}. "
            "Fix the data and re-materialize the upstream asset; its checks will run again."
        ),
        metadata={"failed_checks": preview(failed, rows=20)},
    )
