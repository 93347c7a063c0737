"""Clean tracking events: typed, deduplicated across folders, pseudonymised, in Parquet."""

import datetime as dt

import dagster as dg
import pandas as pd

from assets.metadata import counts_table, door_metadata, table_metadata
from assets.partitions import partition_label
from assets.publishing import Units, dated_asset
from assets.resources import Lake, LandingZone, Pseudonymizer, Warehouse
from contract.layout import LandingNotReady
from warehouse.activity import (
    bot_viewer_days,
    known_bot_days,
    restate_pairs,
    sessions_known_by,
    viewer_products,
    viewer_profiles_of,
    viewer_sessions,
)
from warehouse.events import LATE_FOLDERS, SESSIONS_REACH_DAYS, clean_event_folder
from warehouse.lake import (
    connect,
    partition_path,
    partition_view,
    read_partition_files,
    sql_list,
    write_partition_file,
)
from warehouse.schema import (
    clean_bot_viewers,
    clean_viewer_products,
    clean_viewer_sessions,
    clean_viewers,
    ops_ingest_ledger,
    ops_quarantine,
)
from warehouse.store import replace_newer, write_partition

EVENTS = "events"


@dated_asset(
    per_platform=True,
    cascade=False,
    key=["clean", "events"],
    group_name="clean",
    deps=[dg.AssetKey(["clean", "sessions"])],
    kinds={"python", "parquet"},
    description=(
        "The tracking events of each folder, typed (UTC `ts`, local `event_date`), checked "
        "against their session (known, within 10 minutes of its time), deduplicated by event_id "
        "across the folder and the two before it, pseudonymised, stored as Parquet "
        "(`lake/events/export_date=<date>/part.parquet`). Rejected lines go to `ops_quarantine`. "
        "A platform's parts are read once its sessions of the date are published."
    ),
)
def events(
    context: dg.AssetExecutionContext,
    units: Units,
    warehouse: Warehouse,
    lake: Lake,
    landing_zone: LandingZone,
    pseudonymizer: Pseudonymizer,
) -> dg.MaterializeResult:
    days = units.days
    engine = warehouse.get_engine()
    totals = {"rows": 0, "duplicates": 0, "quarantined": 0, "raw": 0}
    reasons: list[pd.Series] = []
    ledgers: list[pd.DataFrame] = []
    last_rows = pd.DataFrame()
    recent: dict[dt.date, pd.Series] = {}  # event ids of the folders just processed
    for n, day in enumerate(days, start=1):
        platforms = units.ready_on(day)
        if not platforms:
            continue
        before = [day - dt.timedelta(days=k) for k in range(1, LATE_FOLDERS + 1)]
        for earlier_day in before:
            if earlier_day not in recent:
                ids = read_partition_files(lake.path, EVENTS, [earlier_day], ["event_id"])
                recent[earlier_day] = ids["event_id"].astype(str)
        earlier = pd.concat([recent[d] for d in before], ignore_index=True)
        try:
            batch = clean_event_folder(
                landing_zone.path, day, sessions_known_by(engine, day), earlier,
                pseudonymizer.secret, context.run.run_id, platforms,
            )  # fmt: skip
        except LandingNotReady as exc:
            for platform in platforms:
                units.fail(platform, day, str(exc))
            continue
        for platform, reason in batch.failed.items():
            units.fail(platform, day, reason)
        platforms = units.ready_on(day)
        if not platforms:
            continue
        with engine.begin() as conn:
            scope = {"table_name": EVENTS, "platform": platforms}
            write_partition(
                engine, ops_quarantine, batch.quarantine, "export_date", [day], conn, scope
            )
            write_partition(
                engine, ops_ingest_ledger, batch.ledger, "export_date", [day], conn, scope
            )
            write_partition_file(lake.path, EVENTS, day, batch.rows, platforms)
        totals["rows"] += len(batch.rows)
        totals["duplicates"] += int(batch.ledger["duplicate_rows"].sum())
        totals["quarantined"] += len(batch.quarantine)
        totals["raw"] += int(batch.ledger["raw_rows"].sum())
        reasons.append(batch.quarantine["reason"])
        ledgers.append(batch.ledger)
        last_rows = batch.rows
        whole = len(platforms) == len(units.platforms)  # else the file kept others' rows
        ids = batch.rows if whole else read_partition_files(lake.path, EVENTS, [day], ["event_id"])
        recent[day] = ids["event_id"].astype(str)
        recent.pop(day - dt.timedelta(days=LATE_FOLDERS), None)
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
            **door_metadata(ledgers),
            "parquet": str(partition_path(lake.path, EVENTS, days[-1])),
            "preview": dg.MetadataValue.md(last_rows.head(5).astype(str).to_markdown(index=False))
            if len(last_rows)
            else "_no rows_",
        }
    )


# The clean events' columns as DuckDB reads them from the lake (warehouse.lake.partition_view).
EVENT_TYPES_SQL = {
    "event_id": "VARCHAR", "ts": "TIMESTAMP", "event_date": "DATE", "platform": "VARCHAR",
    "session_key": "VARCHAR", "viewer_key": "VARCHAR", "type": "VARCHAR", "sku": "VARCHAR",
    "source_file": "VARCHAR", "source_line": "BIGINT",
}  # fmt: skip


def _touched(con, lake: Lake, days: list[dt.date], column: str, platforms: tuple[str, ...]):
    """(platform, value of `column`) pairs in the window's event folders of `platforms`, with
    the last folder date holding each: what the window restates, and as of when."""
    partition_view(con, "window_events", lake.path, EVENTS, days, EVENT_TYPES_SQL)
    seen = con.execute(
        f"SELECT platform, {column}::VARCHAR AS {column}, max(export_date) AS folder "
        "FROM window_events WHERE platform IN (SELECT unnest($1)) GROUP BY ALL",
        [list(platforms)],
    ).df()
    seen["folder"] = pd.to_datetime(seen["folder"]).dt.date
    return seen


@dated_asset(
    per_platform=True,
    cascade=True,
    key=["clean", "bot_viewers"],
    group_name="clean",
    deps=[dg.AssetKey(["clean", "events"])],
    kinds={"python", "sql"},
    description=(
        "`clean_bot_viewers`: viewer-days with more than 60 events in some 60 seconds (a human "
        "never sends more than 20). Bots stay in the events and are left out of features."
    ),
)
def bot_viewers(
    context: dg.AssetExecutionContext, units: Units, warehouse: Warehouse, lake: Lake
) -> dg.MaterializeResult:
    found, restated_dates, written = [], 0, 0
    con = connect(lake.path)
    for days, platforms in units.windows():
        touched = _touched(con, lake, days, "event_date", platforms)
        if touched.empty:
            continue
        dates = sorted({dt.date.fromisoformat(d) for d in touched["event_date"]})
        folders = [dates[0] + dt.timedelta(days=k) for k in range((days[-1] - dates[0]).days + 1)]
        where = f"event_date IN ({sql_list(dates)}) AND platform IN ({sql_list(platforms)})"
        partition_view(con, "events", lake.path, EVENTS, folders, EVENT_TYPES_SQL, where)
        bots = bot_viewer_days(con)
        # As of the last folder that touched the platform's date; every touched platform-date is
        # restated, also the ones that now have no bot.
        restated = touched.rename(columns={"folder": "as_of_date"})
        restated["event_date"] = restated["event_date"].map(dt.date.fromisoformat)
        bots = bots.astype({"platform": str}).merge(restated, on=["platform", "event_date"])
        bots["run_id"] = context.run.run_id
        written += replace_newer(
            warehouse.get_engine(),
            clean_bot_viewers,
            bots,
            ["platform", "event_date"],
            "as_of_date",
            restated,
        )
        found.append(bots)
        restated_dates += len(restated)
    bots = pd.concat(found, ignore_index=True) if found else pd.DataFrame()
    return dg.MaterializeResult(
        metadata={
            **table_metadata(clean_bot_viewers, bots, partition_label(units.days)),
            "platform_dates_restated": restated_dates,
            "rows_written": written,
            "bot_viewer_days": len(bots),
            "max_events_in_60s": int(bots["peak_events_60s"].max()) if len(bots) else 0,
        }
    )


@dated_asset(
    per_platform=True,
    cascade=True,
    key=["clean", "viewer_activity"],
    group_name="clean",
    deps=[dg.AssetKey(["clean", "events"]), dg.AssetKey(["clean", "bot_viewers"])],
    kinds={"python", "sql"},
    description=(
        "What each viewer did in each session: `clean_viewer_sessions` (watch seconds, enters, "
        "comments, likes, follows, shares, product clicks, carts, bot flag) and "
        "`clean_viewer_products` (clicks and carts per SKU), recomputed for every (session, "
        "viewer) whose viewer has events in the folder on a date the pair has events on, from "
        "all the folders that hold its events."
    ),
)
def viewer_activity(
    context: dg.AssetExecutionContext, units: Units, warehouse: Warehouse, lake: Lake
) -> dg.MaterializeResult:
    engine = warehouse.get_engine()
    all_sessions, written, products_n = [], 0, 0
    con = connect(lake.path)
    for days, platforms in units.windows():
        first = days[0] - dt.timedelta(days=SESSIONS_REACH_DAYS)
        reach = [first + dt.timedelta(days=k) for k in range((days[-1] - first).days + 1)]
        partition_view(con, "window_events", lake.path, EVENTS, days, EVENT_TYPES_SQL)
        partition_view(con, "reach_events", lake.path, EVENTS, reach, EVENT_TYPES_SQL)
        if not restate_pairs(con, list(platforms)):
            continue
        pairs = con.execute("SELECT * FROM pairs").df()
        pairs["as_of_date"] = pd.to_datetime(pairs["as_of_date"]).dt.date
        sessions = viewer_sessions(con, known_bot_days(engine, first))
        products = viewer_products(con)
        stamps = {"run_id": context.run.run_id}
        sessions = sessions.merge(pairs, on=["session_key", "viewer_key"]).assign(**stamps)
        products = products.merge(pairs, on=["session_key", "viewer_key"]).assign(**stamps)
        key = ["session_key", "viewer_key"]
        written += replace_newer(
            engine, clean_viewer_sessions, sessions, key, "as_of_date", restated=pairs
        )
        products_n += replace_newer(
            engine, clean_viewer_products, products, key, "as_of_date", restated=pairs
        )
        all_sessions.append(sessions)
    sessions = pd.concat(all_sessions, ignore_index=True) if all_sessions else pd.DataFrame()
    recomputed = sessions["session_key"].nunique() if len(sessions) else 0
    context.log.info(
        f"viewer_activity: {len(sessions):,} viewer-sessions restated in {recomputed} sessions"
    )
    return dg.MaterializeResult(
        metadata={
            **table_metadata(clean_viewer_sessions, sessions, partition_label(units.days)),
            "sessions_recomputed": recomputed,
            "viewer_sessions_written": written,
            "viewer_product_rows_written": products_n,
            "bot_viewer_sessions": int(sessions["is_bot"].sum()) if len(sessions) else 0,
        }
    )


@dated_asset(
    per_platform=True,
    cascade=True,
    key=["clean", "viewers"],
    group_name="clean",
    deps=[dg.AssetKey(["clean", n]) for n in ("viewer_activity", "orders", "bot_viewers")],
    kinds={"python", "sql"},
    description=(
        "`clean_viewers`: one row per pseudonymised viewer: first and last seen, sessions and "
        "rooms watched, paid lines and spend, province and city of their latest order, bot days. "
        "Restated for every viewer a partition's activity or orders touch."
    ),
)
def viewers(
    context: dg.AssetExecutionContext, units: Units, warehouse: Warehouse
) -> dg.MaterializeResult:
    engine = warehouse.get_engine()
    restated, written = [], 0
    for days, platforms in units.windows():
        profiles = viewer_profiles_of(engine, days[0], days[-1])
        profiles = profiles[profiles["platform"].isin(platforms)].assign(run_id=context.run.run_id)
        written += replace_newer(engine, clean_viewers, profiles, ["viewer_key"], "as_of_date")
        restated.append(profiles)
    profiles = pd.concat(restated, ignore_index=True) if restated else pd.DataFrame()
    return dg.MaterializeResult(
        metadata={
            **table_metadata(clean_viewers, profiles, partition_label(units.days)),
            "viewers_restated": written,
            "buyers": int((profiles["paid_lines"] > 0).sum()) if len(profiles) else 0,
            "bots": int((profiles["bot_days"] > 0).sum()) if len(profiles) else 0,
        }
    )
