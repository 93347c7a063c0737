"""Clean tracking events: typed, deduplicated across folders, pseudonymised, in Parquet."""

import datetime as dt

import dagster as dg
import pandas as pd

from assets.gates import require_upstream_passed
from assets.metadata import counts_table, table_metadata
from assets.partitions import daily_partitions, partition_dates, partition_label, single_run
from assets.resources import Lake, LandingZone, Pseudonymizer, Warehouse
from warehouse.activity import (
    bot_viewer_days,
    viewer_products,
    viewer_profiles,
    viewer_sessions,
)
from warehouse.events import LATE_FOLDERS, clean_event_folder
from warehouse.ingest import LandingNotReady, latest_per_key
from warehouse.lake import partition_path, read_partition_files, write_partition_file
from warehouse.schema import (
    clean_bot_viewers,
    clean_viewer_products,
    clean_viewer_sessions,
    clean_viewers,
    ops_ingest_ledger,
    ops_quarantine,
)
from warehouse.store import read_frame, replace_newer, write_partition

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
    require_upstream_passed(context, warehouse)
    days = partition_dates(context)
    engine = warehouse.get_engine()
    totals = {"rows": 0, "duplicates": 0, "quarantined": 0, "raw": 0}
    reasons: list[pd.Series] = []
    last_rows = pd.DataFrame()
    recent: dict[dt.date, pd.Series] = {}  # event ids of the folders just processed
    for n, day in enumerate(days, start=1):
        before = [day - dt.timedelta(days=k) for k in range(1, LATE_FOLDERS + 1)]
        for earlier_day in before:
            if earlier_day not in recent:
                ids = read_partition_files(lake.path, EVENTS, [earlier_day], ["event_id"])
                recent[earlier_day] = ids["event_id"].astype(str)
        earlier = pd.concat([recent[d] for d in before], ignore_index=True)
        try:
            batch = clean_event_folder(
                landing_zone.path, day, sessions_known_by(engine, day), earlier,
                pseudonymizer.secret, context.run.run_id,
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
        recent[day] = batch.rows["event_id"].astype(str)
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
            "parquet": str(partition_path(lake.path, EVENTS, days[-1])),
            "preview": dg.MetadataValue.md(last_rows.head(5).astype(str).to_markdown(index=False)),
        }
    )


def _touched(lake: Lake, days: list[dt.date], column: str) -> pd.Series:
    """Values of `column` in the window's event folders, with the last folder date holding each."""
    frames = [
        read_partition_files(lake.path, EVENTS, [day], [column]).assign(folder=day) for day in days
    ]
    seen = pd.concat(frames, ignore_index=True)
    if seen.empty:
        return pd.Series(dtype=object)
    seen[column] = seen[column].astype(str)
    return seen.groupby(column)["folder"].max()


@dg.asset(
    key=["clean", "bot_viewers"],
    group_name="clean",
    deps=[dg.AssetKey(["clean", "events"])],
    partitions_def=daily_partitions,
    backfill_policy=single_run,
    kinds={"python", "sql"},
    description=(
        "`clean_bot_viewers`: viewer-days with more than 60 events in some 60 seconds (a human "
        "never sends more than 20). Bots stay in the events and are left out of features."
    ),
)
def bot_viewers(
    context: dg.AssetExecutionContext, warehouse: Warehouse, lake: Lake
) -> dg.MaterializeResult:
    require_upstream_passed(context, warehouse)
    days = partition_dates(context)
    touched = _touched(lake, days, "event_date")
    if touched.empty:
        return dg.MaterializeResult(
            metadata={"dagster/row_count": 0, "partition": partition_label(days)}
        )
    dates = sorted(dt.date.fromisoformat(d) for d in touched.index)
    folders = [dates[0] + dt.timedelta(days=k) for k in range((days[-1] - dates[0]).days + 1)]
    columns = ["platform", "viewer_key", "event_date", "ts"]
    loaded = read_partition_files(lake.path, EVENTS, folders, columns)
    loaded = loaded[loaded["event_date"].isin(dates)]
    bots = bot_viewer_days(loaded)
    bots["as_of_date"] = bots["event_date"].astype(str).map(touched)
    bots["run_id"] = context.run.run_id
    # Every touched date is restated, also the ones that now have no bot.
    restated = pd.DataFrame({"event_date": dates, "as_of_date": [touched[str(d)] for d in dates]})
    written = replace_newer(
        warehouse.get_engine(), clean_bot_viewers, bots, ["event_date"], "as_of_date", restated
    )
    return dg.MaterializeResult(
        metadata={
            **table_metadata(clean_bot_viewers, bots, partition_label(days)),
            "event_dates_restated": len(dates),
            "rows_written": written,
            "bot_viewer_days": len(bots),
            "max_events_in_60s": int(bots["peak_events_60s"].max()) if len(bots) else 0,
        }
    )


@dg.asset(
    key=["clean", "viewer_activity"],
    group_name="clean",
    deps=[dg.AssetKey(["clean", "events"]), dg.AssetKey(["clean", "bot_viewers"])],
    partitions_def=daily_partitions,
    backfill_policy=single_run,
    kinds={"python", "sql"},
    description=(
        "What each viewer did in each session: `clean_viewer_sessions` (watch seconds, enters, "
        "comments, likes, follows, shares, product clicks, carts, bot flag) and "
        "`clean_viewer_products` (clicks and carts per SKU), recomputed for every session a "
        "folder's events touch, from all the folders that hold its events."
    ),
)
def viewer_activity(
    context: dg.AssetExecutionContext, warehouse: Warehouse, lake: Lake
) -> dg.MaterializeResult:
    require_upstream_passed(context, warehouse)
    days = partition_dates(context)
    engine = warehouse.get_engine()
    touched = _touched(lake, days, "session_key")
    if touched.empty:
        return dg.MaterializeResult(
            metadata={"dagster/row_count": 0, "partition": partition_label(days)}
        )
    # A session's events lie in the folders from its start to two days after its end.
    first = days[0] - dt.timedelta(days=LATE_FOLDERS + 2)
    folders = [first + dt.timedelta(days=k) for k in range((days[-1] - first).days + 1)]
    loaded = read_partition_files(lake.path, EVENTS, folders)
    loaded = loaded[loaded["session_key"].astype(str).isin(touched.index)]
    bots = read_frame(engine, "SELECT platform, viewer_key, event_date FROM clean_bot_viewers")
    bots["event_date"] = pd.to_datetime(bots["event_date"]).dt.date
    sessions = viewer_sessions(loaded, bots)
    products = viewer_products(loaded)
    for frame in (sessions, products):
        frame["as_of_date"] = frame["session_key"].astype(str).map(touched)
        frame["run_id"] = context.run.run_id
    written = replace_newer(engine, clean_viewer_sessions, sessions, ["session_key"], "as_of_date")
    replace_newer(engine, clean_viewer_products, products, ["session_key"], "as_of_date")
    context.log.info(f"viewer_activity: {len(touched)} sessions, {len(sessions):,} viewer-sessions")
    return dg.MaterializeResult(
        metadata={
            **table_metadata(clean_viewer_sessions, sessions, partition_label(days)),
            "sessions_recomputed": len(touched),
            "viewer_sessions_written": written,
            "viewer_product_rows": len(products),
            "bot_viewer_sessions": int(sessions["is_bot"].sum()),
        }
    )


@dg.asset(
    key=["clean", "viewers"],
    group_name="clean",
    deps=[dg.AssetKey(["clean", n]) for n in ("viewer_activity", "orders", "bot_viewers")],
    partitions_def=daily_partitions,
    backfill_policy=single_run,
    kinds={"python", "sql"},
    description=(
        "`clean_viewers`: one row per pseudonymised viewer: first and last seen, sessions and "
        "rooms watched, paid lines and spend, province and city of their latest order, bot days. "
        "Restated for every viewer a partition's activity or orders touch."
    ),
)
def viewers(context: dg.AssetExecutionContext, warehouse: Warehouse) -> dg.MaterializeResult:
    require_upstream_passed(context, warehouse)
    days = partition_dates(context)
    engine = warehouse.get_engine()
    window = {"first": days[0].isoformat(), "last": days[-1].isoformat()}
    touched = (
        "SELECT viewer_key FROM clean_viewer_sessions WHERE as_of_date BETWEEN :first AND :last "
        "UNION SELECT viewer_key FROM clean_orders WHERE export_date BETWEEN :first AND :last"
    )
    activity = read_frame(
        engine,
        "SELECT session_key, viewer_key, platform, first_seen, last_seen "
        f"FROM clean_viewer_sessions WHERE viewer_key IN ({touched})",
        window,
    )
    # A session's room never changes between its exports: any export of it will do.
    rooms = read_frame(engine, "SELECT DISTINCT session_key, room_id FROM clean_sessions")
    activity = activity.merge(rooms.drop_duplicates("session_key"), on="session_key", how="left")
    orders = read_frame(
        engine,
        "SELECT viewer_key, platform, paid_at, paid_fen, province, city, created_at "
        f"FROM clean_orders_current WHERE viewer_key IN ({touched})",
        window,
    )
    bots = read_frame(
        engine,
        f"SELECT viewer_key, platform FROM clean_bot_viewers WHERE viewer_key IN ({touched})",
        window,
    )
    touched_on = (
        read_frame(
            engine,
            "SELECT viewer_key, as_of_date AS day FROM clean_viewer_sessions "
            "WHERE as_of_date BETWEEN :first AND :last "
            "UNION ALL SELECT viewer_key, export_date AS day FROM clean_orders "
            "WHERE export_date BETWEEN :first AND :last",
            window,
        )
        .groupby("viewer_key")["day"]
        .max()
    )
    profiles = viewer_profiles(activity, orders, bots)
    # As of the last date that touched the viewer: a backfill writes what nightly runs would.
    profiles = profiles.assign(
        as_of_date=profiles["viewer_key"].map(touched_on), run_id=context.run.run_id
    )
    written = replace_newer(engine, clean_viewers, profiles, ["viewer_key"], "as_of_date")
    return dg.MaterializeResult(
        metadata={
            **table_metadata(clean_viewers, profiles, partition_label(days)),
            "viewers_restated": written,
            "buyers": int((profiles["paid_lines"] > 0).sum()),
            "bots": int((profiles["bot_days"] > 0).sum()),
        }
    )
