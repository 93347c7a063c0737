"""What each viewer did in each session, from clean events: the grain the recommender uses.

Bots: a viewer firing more than 60 events in any 60 seconds is a bot for that local day (a
human never sends more than 20). Bots stay in the events; their activity is flagged so that
features leave them out.

The warehouse reads of the events, activity and viewer steps are at the end: the sessions a
folder's events may belong to, the bot days found so far, and the viewers a window touched.
"""

from __future__ import annotations

import datetime as dt

import duckdb
import pandas as pd
from sqlalchemy import Engine

from contract.exports import latest_export
from warehouse.events import SESSIONS_REACH_DAYS, SKU_EVENTS
from warehouse.schema import clean_viewer_sessions, clean_viewers
from warehouse.store import read_frame

BOT_WINDOW_MS = 60_000
BOT_MIN_EVENTS = 61  # more than 60 events in a window make a bot

# The columns a step computes: the table's, without the stamps the asset adds.
STAMPS = ("as_of_date", "run_id")
SESSION_COLUMNS = [c.name for c in clean_viewer_sessions.columns if c.name not in STAMPS]
COUNTED = {
    "enter": "enters",
    "comment": "comments",
    "like": "likes",
    "follow": "follows",
    "share": "shares",
    "product_click": "product_clicks",
    "add_to_cart": "carts",
}


# The rules below are DuckDB SQL over a view `events` of clean events (warehouse.lake's
# `partition_view`, or a registered frame in tests) with at least the columns each reads:
# platform, viewer_key, session_key, type, sku, ts (UTC), event_date (local), and for a stable
# order of events at the same millisecond export_date, source_file and source_line.

_PEAKS = f"""
WITH days AS (  -- a viewer-day needs more than 60 events to have 61 in a minute
    SELECT platform, viewer_key, event_date, count(*) AS events
      FROM events GROUP BY ALL HAVING count(*) >= {{least}}
), windows AS (
    SELECT e.platform, e.viewer_key, e.event_date,
           count(*) OVER (
               PARTITION BY e.platform, e.viewer_key, e.event_date ORDER BY epoch_ms(e.ts)
               RANGE BETWEEN CURRENT ROW AND {BOT_WINDOW_MS - 1} FOLLOWING
           ) AS in_window
      FROM events e SEMI JOIN days USING (platform, viewer_key, event_date)
)
SELECT platform, viewer_key, event_date, any_value(events) AS events,
       max(in_window) AS peak_events_60s
  FROM windows JOIN days USING (platform, viewer_key, event_date)
 GROUP BY ALL
"""


def peak_events_per_minute(con: duckdb.DuckDBPyConnection, least: int = 1) -> pd.DataFrame:
    """Per (platform, viewer_key, event_date) with at least `least` events: the events and the
    most of them in any 60-second window of that local day (a window starting just before
    local midnight does not count the next day's events). `event_date` as `datetime.date`."""
    peaks = con.execute(_PEAKS.format(least=least)).df()
    peaks["event_date"] = pd.to_datetime(peaks["event_date"]).dt.date
    for column in ("events", "peak_events_60s"):
        peaks[column] = peaks[column].astype("int64")
    return peaks.sort_values(["platform", "viewer_key", "event_date"], ignore_index=True)


def bot_viewer_days(con: duckdb.DuckDBPyConnection) -> pd.DataFrame:
    """The viewer-days of `events` with more than 60 events in some 60 seconds."""
    peaks = peak_events_per_minute(con, least=BOT_MIN_EVENTS)
    return peaks[peaks["peak_events_60s"] >= BOT_MIN_EVENTS].reset_index(drop=True)


# The (session, viewer) pairs a window restates, over two views: `window_events` (the events of
# the window's folders) and `reach_events` (every folder that can hold events of the sessions
# those folders touch). A pair is restated when its viewer has an event in the window on a local
# date the pair has events on: its own late events change its counts and watch time, and any
# event of the viewer that day may change the bot flag of that viewer-day. As of the last
# window folder holding such an event.
_RESTATED_PAIRS = """
WITH touched AS (
    SELECT platform, viewer_key, event_date, max(export_date) AS folder
      FROM window_events WHERE platform IN (SELECT unnest($platforms)) GROUP BY ALL
)
SELECT e.session_key, e.viewer_key, max(t.folder) AS as_of_date
  FROM reach_events e JOIN touched t USING (platform, viewer_key, event_date)
 GROUP BY ALL
"""


def restate_pairs(con: duckdb.DuckDBPyConnection, platforms: list[str]) -> int:
    """Create the temporary table `pairs` (session_key, viewer_key, as_of_date) of the pairs
    the window restates (`_RESTATED_PAIRS`) and the view `events` of their events from
    `reach_events`, for `viewer_sessions` and `viewer_products`. Returns the pairs."""
    con.execute(
        f"CREATE OR REPLACE TEMP TABLE pairs AS {_RESTATED_PAIRS}", {"platforms": platforms}
    )
    con.execute(
        "CREATE OR REPLACE TEMP VIEW events AS "
        "SELECT * FROM reach_events SEMI JOIN pairs USING (session_key, viewer_key)"
    )
    return con.execute("SELECT count(*) FROM pairs").fetchone()[0]


_COUNTS = ",\n".join(
    f"count(*) FILTER (type = '{kind}') AS {column}" for kind, column in COUNTED.items()
)
# Watch seconds: each leave paired with the latest enter at or before it, unless a leave
# already closed that enter; a viewer still inside at the end counts nothing more.
_VIEWER_SESSIONS = f"""
WITH ordered AS (
    SELECT session_key, viewer_key, platform, event_date, type, ts,
           max(ts) FILTER (type = 'enter') OVER upto AS last_enter,
           max(ts) FILTER (type = 'leave') OVER before AS previous_leave
      FROM events
    WINDOW viewer AS (PARTITION BY session_key, viewer_key
                      ORDER BY ts, export_date, source_file, source_line),
           upto AS (viewer ROWS UNBOUNDED PRECEDING),
           before AS (viewer ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING)
), flagged AS (
    SELECT o.*, b.viewer_key IS NOT NULL AS bot_day
      FROM ordered o LEFT JOIN bots b USING (platform, viewer_key, event_date)
)
SELECT session_key, viewer_key, any_value(platform) AS platform,
       min(ts) AS first_seen, max(ts) AS last_seen,
       {_COUNTS},
       coalesce(sum(epoch_ms(ts) - epoch_ms(last_enter)) FILTER (
           type = 'leave' AND last_enter IS NOT NULL
           AND NOT coalesce(previous_leave >= last_enter, false)), 0) AS watch_ms,
       bool_or(bot_day) AS is_bot
  FROM flagged GROUP BY session_key, viewer_key
"""


def viewer_sessions(con: duckdb.DuckDBPyConnection, bots: pd.DataFrame) -> pd.DataFrame:
    """Per (session, viewer) of `events`: first and last seen (UTC), counts by type, watch
    seconds (rounded to 0.1 s) and whether any of its events fell on one of the viewer's
    `bots` days (platform, viewer_key, event_date). Columns SESSION_COLUMNS."""
    known = bots[["platform", "viewer_key", "event_date"]].drop_duplicates()
    known = known.assign(event_date=pd.to_datetime(known["event_date"]))
    con.register("bots", known)
    try:
        out = con.execute(_VIEWER_SESSIONS).df()
    finally:
        con.unregister("bots")
    out["watch_s"] = (out.pop("watch_ms").astype("float64") / 1000).round(1)
    for column in ("first_seen", "last_seen"):
        out[column] = pd.to_datetime(out[column]).astype("datetime64[ms]")
    for column in COUNTED.values():
        out[column] = out[column].astype("int64")
    out["is_bot"] = out["is_bot"].astype(bool)
    return out[SESSION_COLUMNS].sort_values(["session_key", "viewer_key"], ignore_index=True)


_VIEWER_PRODUCTS = f"""
SELECT session_key, viewer_key, sku,
       count(*) FILTER (type = '{SKU_EVENTS[0]}') AS clicks,
       count(*) FILTER (type = '{SKU_EVENTS[1]}') AS carts
  FROM events WHERE type IN {SKU_EVENTS} GROUP BY ALL
"""


def viewer_products(con: duckdb.DuckDBPyConnection) -> pd.DataFrame:
    """Per (session, viewer, SKU) of `events`: product clicks and add-to-carts."""
    out = con.execute(_VIEWER_PRODUCTS).df()
    for column in ("clicks", "carts"):
        out[column] = out[column].astype("int64")
    return out.sort_values(["session_key", "viewer_key", "sku"], ignore_index=True)


VIEWER_COLUMNS = [c.name for c in clean_viewers.columns if c.name not in STAMPS]


def viewer_profiles(seen: pd.DataFrame, orders: pd.DataFrame, bots: pd.DataFrame) -> pd.DataFrame:
    """One row per viewer from what their sessions add up to (`seen`: viewer_key, platform,
    first_seen, last_seen, sessions, rooms), their order lines (latest state: viewer_key,
    platform, paid_at, paid_fen, province, city, created_at) and their bot days."""
    seen = seen.set_index(["viewer_key", "platform"])
    paid = orders[orders["paid_at"].notna()]
    bought = paid.groupby(["viewer_key", "platform"]).agg(
        paid_lines=("paid_fen", "size"), spend_fen=("paid_fen", "sum")
    )
    latest = (
        orders.sort_values("created_at")
        .groupby(["viewer_key", "platform"])[["province", "city"]]
        .last()
    )
    bot_days = bots.groupby(["viewer_key", "platform"]).size().rename("bot_days")
    out = seen.join(bought, how="outer").join(latest, how="left").join(bot_days, how="left")
    for column in ("sessions", "rooms", "paid_lines", "spend_fen", "bot_days"):
        out[column] = out[column].fillna(0).astype("int64")
    return out.reset_index()[VIEWER_COLUMNS]


def sessions_known_by(engine: Engine, day: dt.date) -> pd.DataFrame:
    """The sessions that can own events of the folder of `day` (a local date): those starting
    between SESSIONS_REACH_DAYS before it and the day after it, each as its latest export
    dated `day` or before says. Columns session_key, start_time, end_time (UTC), export_date,
    source_line; one row per session."""
    rows = read_frame(
        engine,
        "SELECT session_key, start_time, end_time, export_date, source_line FROM clean_sessions "
        "WHERE export_date <= :day AND start_time BETWEEN :start AND :end",
        {
            "day": day.isoformat(),
            "start": (day - dt.timedelta(days=SESSIONS_REACH_DAYS)).isoformat(),
            "end": (day + dt.timedelta(days=1)).isoformat(),
        },
    )
    return latest_export(rows, ["session_key"])


def known_bot_days(engine: Engine, since: dt.date) -> pd.DataFrame:
    """The bot viewer-days `clean_bot_viewers` holds now on local dates `since` or later:
    platform, viewer_key, event_date (the local date, as a `dt.date`)."""
    bots = read_frame(
        engine,
        "SELECT platform, viewer_key, event_date FROM clean_bot_viewers WHERE event_date >= :since",
        {"since": since.isoformat()},
    )
    bots["event_date"] = pd.to_datetime(bots["event_date"]).dt.date
    return bots


# The viewers whose activity (as_of_date) or order lines (export_date) the window touched.
_TOUCHED_VIEWERS = (
    "SELECT viewer_key FROM clean_viewer_sessions WHERE as_of_date BETWEEN :first AND :last "
    "UNION SELECT viewer_key FROM clean_orders WHERE export_date BETWEEN :first AND :last"
)


def viewer_profiles_of(engine: Engine, first: dt.date, last: dt.date) -> pd.DataFrame:
    """`clean_viewers` rows (VIEWER_COLUMNS and as_of_date, without run_id) of every viewer
    whose activity or orders the local dates [first, last] touched: first/last seen in UTC,
    spend in fen, province and city of their latest order, from their whole activity, their
    order lines as exported by `last` and their bot days; `as_of_date` is the last date of the
    window that touched each (a backfill writes what nightly runs would)."""
    window = {"first": first.isoformat(), "last": last.isoformat()}
    # Their sessions, added up in the database (a viewer's whole activity never leaves it). A
    # session's room never changes between its exports: any export of it will do.
    seen = read_frame(
        engine,
        "SELECT v.viewer_key, v.platform, MIN(v.first_seen) AS first_seen, "
        "MAX(v.last_seen) AS last_seen, COUNT(DISTINCT v.session_key) AS sessions, "
        "COUNT(DISTINCT r.room_id) AS rooms FROM clean_viewer_sessions v LEFT JOIN ("
        "SELECT session_key, MIN(room_id) AS room_id FROM clean_sessions GROUP BY session_key"
        f") r ON r.session_key = v.session_key WHERE v.viewer_key IN ({_TOUCHED_VIEWERS}) "
        "GROUP BY v.viewer_key, v.platform",
        window,
    )
    # Each order line's latest state as exported by the window's last date.
    orders = latest_export(
        read_frame(
            engine,
            "SELECT order_key, export_date, source_line, viewer_key, platform, paid_at, "
            "paid_fen, province, city, created_at FROM clean_orders "
            f"WHERE export_date <= :last AND viewer_key IN ({_TOUCHED_VIEWERS})",
            window,
        ),
        ["order_key"],
    )
    bots = read_frame(
        engine,
        "SELECT viewer_key, platform FROM clean_bot_viewers "
        f"WHERE viewer_key IN ({_TOUCHED_VIEWERS})",
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
    profiles = viewer_profiles(seen, orders, bots)
    return profiles.assign(as_of_date=profiles["viewer_key"].map(touched_on))
