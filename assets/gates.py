"""Glue between Dagster's blocking checks and `warehouse.gates`: verdicts kept across runs, which
`assets/publishing.dated_asset` reads before it publishes."""

import dagster as dg

from assets.partitions import partition_dates
from assets.resources import Warehouse
from warehouse.gates import record_check


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
