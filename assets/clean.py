"""Clean layer: each platform export table, typed and keyed, with its quarantine and ledger."""

import dagster as dg
import pandas as pd

from assets.metadata import counts_table, table_metadata
from assets.partitions import daily_partitions, partition_dates, partition_label, single_run
from assets.resources import LandingZone, Pseudonymizer, Warehouse
from warehouse.dialects import PLATFORMS
from warehouse.ingest import (
    CLEAN_TABLE,
    LandingNotReady,
    SchemaDriftError,
    clean_platform_exports,
    require_ready,
)
from warehouse.schema import metadata, ops_ingest_ledger, ops_quarantine
from warehouse.store import write_partition

# Landing file name -> asset name (the clean layer speaks in plurals).
CLEAN_ASSET_NAMES = {
    "sessions": "sessions",
    "lineup": "lineups",
    "orders": "orders",
    "refunds": "refunds",
}


def build_clean_asset(table: str) -> dg.AssetsDefinition:
    clean_table = metadata.tables[CLEAN_TABLE[table]]

    @dg.asset(
        name=CLEAN_ASSET_NAMES[table],
        key_prefix="clean",
        group_name="clean",
        partitions_def=daily_partitions,
        backfill_policy=single_run,
        kinds={"python", "sql"},
        description=(
            f"The platforms' `{table}` exports of each date, typed (UTC times, integer fen), "
            "keyed and pseudonymised, one row per key per export date "
            f"(table `{clean_table.name}`, latest export per key in `{clean_table.name}_current`). "
            "Rows that cannot be typed "
            "go to `ops_quarantine`; `ops_ingest_ledger` adds every file up."
        ),
    )
    def clean_asset(
        context: dg.AssetExecutionContext,
        landing_zone: LandingZone,
        warehouse: Warehouse,
        pseudonymizer: Pseudonymizer,
    ) -> dg.MaterializeResult:
        days = partition_dates(context)
        batches = []
        for platform in PLATFORMS:
            try:
                for day in days:
                    require_ready(landing_zone.path, platform, day)
                batch = clean_platform_exports(
                    landing_zone.path, platform, table, days, pseudonymizer.secret, context.run_id
                )
            except (LandingNotReady, SchemaDriftError) as exc:
                raise dg.Failure(description=str(exc), metadata={"platform": platform}) from exc
            batches.append(batch)
            context.log.info(
                f"{table}/{platform}: {len(days)} dates, "
                f"{int(batch.ledger['raw_rows'].sum())} raw rows, {len(batch.rows)} clean, "
                f"{len(batch.quarantine)} quarantined"
            )
        rows = pd.concat([b.rows for b in batches], ignore_index=True)
        quarantine = pd.concat([b.quarantine for b in batches], ignore_index=True)
        ledger = pd.concat([b.ledger for b in batches], ignore_index=True)
        engine = warehouse.get_engine()
        with engine.begin() as conn:  # rows, quarantine and ledger are published together
            write_partition(engine, clean_table, rows, "export_date", days, conn)
            scope = {"table_name": table}
            write_partition(engine, ops_quarantine, quarantine, "export_date", days, conn, scope)
            write_partition(engine, ops_ingest_ledger, ledger, "export_date", days, conn, scope)
        extra = sorted({c for cols in ledger["extra_columns"] for c in cols.split(",") if c})
        return dg.MaterializeResult(
            metadata={
                **table_metadata(clean_table, rows, partition_label(days)),
                "raw_rows": int(ledger["raw_rows"].sum()),
                "duplicate_rows": int(ledger["duplicate_rows"].sum()),
                "quarantined_rows": len(quarantine),
                "quarantined_by_reason": counts_table(
                    quarantine["reason"].str.replace(r":.*", "", regex=True).value_counts(),
                    "reason",
                ),
                "extra_columns_tolerated": ", ".join(extra) or "none",
                "files_read": len(ledger),
            }
        )

    return clean_asset


clean_assets = [build_clean_asset(table) for table in CLEAN_ASSET_NAMES]
