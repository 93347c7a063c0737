"""Clean tracking events: typed, deduplicated across folders, pseudonymised, in Parquet."""

import datetime as dt

import dagster as dg
import pandas as pd

from assets.metadata import counts_table
from assets.partitions import daily_partitions, partition_dates, partition_label, single_run
from assets.resources import Lake, LandingZone, Pseudonymizer, Warehouse
from warehouse.events import LATE_FOLDERS, clean_event_folder
from warehouse.ingest import LandingNotReady, latest_per_key
from warehouse.lake import partition_path, read_partition_files, write_partition_file
from warehouse.schema import ops_ingest_ledger, ops_quarantine
from warehouse.store import read_frame, write_partition

EVENTS = "events"


def sessions_known_by(engine, day: dt.date) -> pd.DataFrame:
    """Sessions that can own events of this folder (started in the days before it), as known
    by its date."""
    rows = read_frame(
        engine,
        "SELECT session_key, start_time, end_time, export_date, source_line FROM clean_sessions "
        "WHERE export_date <= :day AND start_time BETWEEN :start AND :end",
        {
            "day": day.isoformat(),
            "start": (day - dt.timedelta(days=LATE_FOLDERS + 2)).isoformat(),
            "end": (day + dt.timedelta(days=1)).isoformat(),
        },
    )
    return latest_per_key(rows, ["session_key"])


@dg.asset(
    key=["clean", "events"],
    group_name="clean",
    deps=[dg.AssetKey(["clean", "sessions"])],
    partitions_def=daily_partitions,
    backfill_policy=single_run,
    kinds={"python", "parquet"},
    description=(
        "The tracking events of each folder, typed (UTC `ts`, local `event_date`), checked "
        "against their session (known, within 10 minutes of its time), deduplicated by event_id "
        "across the folder and the two before it, pseudonymised, stored as Parquet "
        "(`lake/events/export_date=<date>/part.parquet`). Rejected lines go to `ops_quarantine`."
    ),
)
def events(
    context: dg.AssetExecutionContext,
    warehouse: Warehouse,
    lake: Lake,
    landing_zone: LandingZone,
    pseudonymizer: Pseudonymizer,
) -> dg.MaterializeResult:
    days = partition_dates(context)
    engine = warehouse.get_engine()
    totals = {"rows": 0, "duplicates": 0, "quarantined": 0, "raw": 0}
    reasons: list[pd.Series] = []
    last_rows = pd.DataFrame()
    for n, day in enumerate(days, start=1):
        earlier = read_partition_files(
            lake.path,
            EVENTS,
            [day - dt.timedelta(days=k) for k in range(1, LATE_FOLDERS + 1)],
            ["event_id"],
        )
        try:
            batch = clean_event_folder(
                landing_zone.path, day, sessions_known_by(engine, day), set(earlier["event_id"]),
                pseudonymizer.secret, context.run_id,
            )  # fmt: skip
        except LandingNotReady as exc:
            raise dg.Failure(description=str(exc)) from exc
        with engine.begin() as conn:
            scope = {"table_name": EVENTS}
            write_partition(
                engine, ops_quarantine, batch.quarantine, "export_date", [day], conn, scope
            )
            write_partition(
                engine, ops_ingest_ledger, batch.ledger, "export_date", [day], conn, scope
            )
            write_partition_file(lake.path, EVENTS, day, batch.rows)
        totals["rows"] += len(batch.rows)
        totals["duplicates"] += int(batch.ledger["duplicate_rows"].sum())
        totals["quarantined"] += len(batch.quarantine)
        totals["raw"] += int(batch.ledger["raw_rows"].sum())
        reasons.append(batch.quarantine["reason"])
        last_rows = batch.rows
        if n % 30 == 0 or n == len(days):
            context.log.info(
                f"events: {n}/{len(days)} folders, {totals['rows']:,} clean events so far"
            )
    reason_counts = pd.concat(reasons).value_counts() if reasons else pd.Series(dtype=int)
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": totals["rows"],
            "partition": partition_label(days),
            "raw_events": totals["raw"],
            "duplicate_events": totals["duplicates"],
            "quarantined_events": totals["quarantined"],
            "quarantined_by_reason": counts_table(reason_counts, "reason"),
            "parquet": str(partition_path(lake.path, EVENTS, days[-1])),
            "preview": dg.MetadataValue.md(last_rows.head(5).astype(str).to_markdown(index=False)),
        }
    )
