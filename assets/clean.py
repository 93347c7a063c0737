"""Clean layer: the catalogue and each platform export table, typed and keyed, with its
quarantine and ledger, and the referential rules between them."""

import datetime as dt

import dagster as dg
import pandas as pd
from sqlalchemy import Engine

from assets.metadata import counts_table, door_metadata, table_metadata
from assets.partitions import partition_label
from assets.publishing import Units, dated_asset
from assets.resources import LandingZone, Pseudonymizer, Warehouse
from contract.dialects import BRAND_FIELDS
from warehouse.ingest import CLEAN_TABLE, CleanBatch, clean_brand_files, clean_platform_exports
from warehouse.integrity import enforce_known, enforce_refund_rules
from warehouse.publications import ALL
from warehouse.schema import metadata, ops_ingest_ledger, ops_quarantine
from warehouse.store import first_export_dates, read_where_in, write_partition

# Landing file name -> asset name (the clean layer speaks in plurals): the brand's files first.
CLEAN_ASSET_NAMES = {
    "products": "products",
    "planned_sessions": "plans",
    "planned_lineup": "plan_lineups",
    "sessions": "sessions",
    "lineup": "lineups",
    "orders": "orders",
    "refunds": "refunds",
}
# What each platform table refers to, so it runs after what it checks against.
REFERENCES = {
    "sessions": [],
    "lineup": ["products", "sessions"],
    "orders": ["products", "sessions"],
    "refunds": ["orders"],
}


def publish(
    engine: Engine, table: str, batch: CleanBatch, days: dict[str | None, list[dt.date]]
) -> None:
    """Rows, quarantine and ledger of the published dates, replaced together in one transaction:
    `days` per platform (None: the brand's files), so the other platforms' rows of those dates
    stay as they are."""
    clean_table = metadata.tables[CLEAN_TABLE[table]]
    with engine.begin() as conn:
        for platform, dates in days.items():
            if not dates:
                continue
            own = {} if platform is None else {"platform": platform}
            scope = {"table_name": table, **own}
            for target, frame, narrow in (
                (clean_table, batch.rows, own),
                (ops_quarantine, batch.quarantine, scope),
                (ops_ingest_ledger, batch.ledger, scope),
            ):
                mine = frame if platform is None else frame[frame["platform"] == platform]
                write_partition(engine, target, mine, "export_date", dates, conn, narrow)


def batch_metadata(table: str, batch: CleanBatch, days: list[dt.date]) -> dict[str, object]:
    reasons = batch.quarantine["reason"].str.replace(r":.*", "", regex=True).value_counts()
    extra = sorted({c for cols in batch.ledger["extra_columns"] for c in cols.split(",") if c})
    return {
        **table_metadata(metadata.tables[CLEAN_TABLE[table]], batch.rows, partition_label(days)),
        "raw_rows": int(batch.ledger["raw_rows"].sum()),
        "duplicate_rows": int(batch.ledger["duplicate_rows"].sum()),
        "quarantined_rows": len(batch.quarantine),
        "quarantined_by_reason": counts_table(reasons, "reason"),
        **door_metadata([batch.ledger]),
        "extra_columns_tolerated": ", ".join(extra) or "none",
        "files_read": len(batch.ledger),
    }


def merge(table: str, batches: list[CleanBatch]) -> CleanBatch:
    return CleanBatch(
        table,
        pd.concat([b.rows for b in batches], ignore_index=True),
        pd.concat([b.quarantine for b in batches], ignore_index=True),
        pd.concat([b.ledger for b in batches], ignore_index=True),
    )


def apply_references(engine: Engine, table: str, batch: CleanBatch) -> CleanBatch:
    """Quarantine the rows whose session, order or product no export up to their own date had."""
    rows = batch.rows
    if table in ("lineup", "orders"):
        skus = first_export_dates(engine, "clean_products", "sku", rows["sku"])
        batch = enforce_known(batch, "sku", skus, "sku not in the catalogue")
        sessions = first_export_dates(
            engine, "clean_sessions", "session_key", batch.rows["session_key"]
        )
        what = "lineup" if table == "lineup" else "order"
        batch = enforce_known(
            batch, "session_key", sessions, f"{what} of a session unknown by its date"
        )
    if table == "planned_lineup":
        skus = first_export_dates(engine, "clean_products", "sku", rows["sku"])
        batch = enforce_known(batch, "sku", skus, "sku not in the catalogue")
        known = first_export_dates(engine, "clean_plans", "plan_id", batch.rows["plan_id"])
        batch = enforce_known(batch, "plan_id", known, "lineup of a plan unknown by its date")
    if table == "refunds":
        orders = first_export_dates(engine, "clean_orders", "order_key", rows["order_key"])
        batch = enforce_known(batch, "order_key", orders, "refund of an order unknown by its date")
        keys = batch.rows["order_key"]
        states = read_where_in(engine, "clean_orders", "order_key", keys)[
            ["order_key", "export_date", "paid_at", "paid_fen"]
        ]
        earlier = read_where_in(engine, "clean_refunds", "order_key", keys)
        first_day = min(batch.rows["export_date"]) if len(batch.rows) else None
        earlier = (
            earlier[pd.to_datetime(earlier["export_date"]) < pd.Timestamp(first_day)]
            if first_day
            else earlier
        )
        batch = enforce_refund_rules(batch, states, earlier)
    return batch


def build_platform_asset(table: str) -> dg.AssetsDefinition:
    clean_table = metadata.tables[CLEAN_TABLE[table]]

    @dated_asset(
        per_platform=True,
        cascade=False,
        name=CLEAN_ASSET_NAMES[table],
        key_prefix="clean",
        group_name="clean",
        deps=[dg.AssetKey(["clean", CLEAN_ASSET_NAMES.get(ref, ref)]) for ref in REFERENCES[table]],
        kinds={"python", "sql"},
        description=(
            f"The platforms' `{table}` exports of each date, typed (UTC times, integer fen), "
            "keyed and pseudonymised, one row per key per export date "
            f"(table `{clean_table.name}`, latest export per key in `{clean_table.name}_current`). "
            "Rows that cannot be typed or whose references are unknown go to `ops_quarantine`; "
            "`ops_ingest_ledger` adds every file up. A platform-date whose folder has not landed "
            "or whose file cannot be read fails alone, named in `ops_publications`."
        ),
    )
    def clean_asset(
        context: dg.AssetExecutionContext,
        units: Units,
        landing_zone: LandingZone,
        warehouse: Warehouse,
        pseudonymizer: Pseudonymizer,
    ) -> dg.MaterializeResult:
        engine = warehouse.get_engine()
        batches, published = [], {}
        for platform in units.platforms:
            batch, failures = clean_platform_exports(
                landing_zone.path,
                platform,
                table,
                units.ready_days(platform),
                pseudonymizer.secret,
                context.run.run_id,
            )
            for day, reason in failures.items():
                units.fail(platform, day, reason)
            batches.append(apply_references(engine, table, batch))
            published[platform] = units.ready_days(platform)
            context.log.info(
                f"{table}/{platform}: {len(published[platform])} dates, "
                f"{int(batch.ledger['raw_rows'].sum())} raw rows, {len(batch.rows)} clean, "
                f"{len(batch.quarantine)} quarantined, {len(failures)} dates failed"
            )
        batch = merge(table, batches)
        publish(engine, table, batch, published)
        return dg.MaterializeResult(metadata=batch_metadata(table, batch, units.days))

    return clean_asset


def build_brand_asset(table: str, references: list[str], description: str) -> dg.AssetsDefinition:
    """Assets of the brand's own files: the catalogue and the plan exports (whole-date units:
    a bad plan file holds every platform's plan matching and forecasts of its date)."""

    @dated_asset(
        per_platform=False,
        cascade=False,
        key=["clean", CLEAN_ASSET_NAMES[table]],
        group_name="clean",
        deps=[dg.AssetKey(["clean", ref]) for ref in references],
        kinds={"python", "sql"},
        description=description,
    )
    def brand_asset(
        context: dg.AssetExecutionContext,
        units: Units,
        landing_zone: LandingZone,
        warehouse: Warehouse,
    ) -> dg.MaterializeResult:
        engine = warehouse.get_engine()
        batch, failures = clean_brand_files(
            landing_zone.path, table, units.ready_days(), context.run.run_id
        )
        for day, reason in failures.items():
            units.fail(ALL, day, reason)
        batch = apply_references(engine, table, batch)
        publish(engine, table, batch, {None: units.ready_days()})
        files = sorted(batch.ledger["source_file"])
        return dg.MaterializeResult(
            metadata={
                **batch_metadata(table, batch, units.days),
                "files": ", ".join(files[-5:]) or "none",
            }
        )

    return brand_asset


products = build_brand_asset(
    "products",
    [],
    "The catalogue snapshots (`catalog/<date>/products.csv`), one row per SKU per snapshot date "
    "(`clean_products`); data of date D uses the latest snapshot dated on or before D. A "
    "snapshot lands only on dates the catalogue changed, so most dates add no rows.",
)
plans = build_brand_asset(
    "planned_sessions",
    [],
    "Every snapshot of the session plan (`plan/<date>/planned_sessions.csv`), keyed by plan_id "
    "and export date (`clean_plans`): reservations and hosts change from one evening to the next, "
    "and a plan missing from an export that covers its day was cancelled.",
)
plan_lineups = build_brand_asset(
    "planned_lineup",
    ["products", "plans"],
    "The planned lineup of each plan snapshot (`clean_plan_lineups`); `clean_plan_lineups_current` "
    "keeps each plan's latest exported lineup.",
)

clean_assets = [
    products,
    plans,
    plan_lineups,
    *(build_platform_asset(table) for table in CLEAN_ASSET_NAMES if table not in BRAND_FIELDS),
]
