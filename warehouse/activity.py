"""What each viewer did in each session, from clean events: the grain the recommender uses.

Bots: a viewer firing more than 60 events in any 60 seconds is a bot for that local day (a
human never sends more than 20). Bots stay in the events; their activity is flagged so that
features leave them out.

The warehouse reads of the events, activity and viewer steps are at the end: the sessions a
folder's events may belong to, the bot days found so far, and the viewers a window touched.
"""

from __future__ import annotations

import datetime as dt

import numpy as np
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


def peak_events_per_minute(events: pd.DataFrame) -> pd.DataFrame:
    """Per (platform, viewer_key, event_date): the most events in any 60-second window."""
    if events.empty:
        return pd.DataFrame(
            columns=["platform", "viewer_key", "event_date", "events", "peak_events_60s"]
        )
    frame = events[["platform", "viewer_key", "event_date", "ts"]].copy()
    # A window belongs to the viewer-day it is reported for: one starting just before local
    # midnight must not count the next day's events (the peak would exceed the day's events).
    frame["viewer"] = frame.groupby(
        ["platform", "viewer_key", "event_date"], observed=True
    ).ngroup()
    ms = pd.to_datetime(frame["ts"]).astype("datetime64[ms]").astype("int64").to_numpy()
    # One sorted key per viewer-day and time: a 60 s window never spills into the next one.
    key = (frame["viewer"].to_numpy().astype(np.int64) << 42) + (ms - ms.min())
    order = np.argsort(key, kind="stable")
    sorted_key = key[order]
    in_window = np.searchsorted(sorted_key, sorted_key + BOT_WINDOW_MS, side="left") - np.arange(
        len(key)
    )
    frame = frame.iloc[order].assign(in_window=in_window)
    grouped = frame.groupby(["platform", "viewer_key", "event_date"], observed=True)
    return grouped.agg(events=("ts", "size"), peak_events_60s=("in_window", "max")).reset_index()


def bot_viewer_days(events: pd.DataFrame) -> pd.DataFrame:
    peaks = peak_events_per_minute(events)
    return peaks[peaks["peak_events_60s"] >= BOT_MIN_EVENTS].reset_index(drop=True)


def viewer_sessions(events: pd.DataFrame, bots: pd.DataFrame) -> pd.DataFrame:
    """Per (session, viewer): first and last seen, counts by type, and watch seconds (each
    leave paired with the enter before it; a viewer still inside at the end counts to their
    last event)."""
    if events.empty:
        return pd.DataFrame(columns=SESSION_COLUMNS)
    ev = events.sort_values(["session_key", "viewer_key", "ts"], kind="stable")
    ev = ev.assign(ts=pd.to_datetime(ev["ts"]), type=ev["type"].astype(str))
    keys = ["session_key", "viewer_key"]
    grouped = ev.groupby(keys, observed=True, sort=False)
    out = grouped.agg(
        platform=("platform", "first"), first_seen=("ts", "min"), last_seen=("ts", "max")
    )
    counts = (
        ev.groupby(["session_key", "viewer_key", "type"], observed=True)
        .size()
        .unstack(fill_value=0)
        .reindex(columns=list(COUNTED), fill_value=0)
    )
    out = out.join(counts.rename(columns=COUNTED), how="left")
    by = [ev["session_key"], ev["viewer_key"]]
    entered = ev["ts"].where(ev["type"] == "enter")
    left = ev["ts"].where(ev["type"] == "leave")
    last_enter = entered.groupby(by, observed=True).ffill()
    previous_leave = left.groupby(by, observed=True).ffill().groupby(by, observed=True).shift()
    paired = (ev["type"] == "leave") & last_enter.notna() & ~(previous_leave >= last_enter)
    spans = (ev["ts"] - last_enter).dt.total_seconds().where(paired, 0.0)
    watch = spans.groupby(by, observed=True).sum()
    out["watch_s"] = watch.reindex(out.index).fillna(0.0).round(1)
    out = out.reset_index()
    out["is_bot"] = False
    if len(bots):
        days = ev[["session_key", "viewer_key", "platform", "event_date"]].drop_duplicates()
        flagged = days.merge(
            bots[["platform", "viewer_key", "event_date"]],
            on=["platform", "viewer_key", "event_date"],
        )
        bot_pairs = set(zip(flagged["session_key"], flagged["viewer_key"], strict=True))
        out["is_bot"] = [
            pair in bot_pairs for pair in zip(out["session_key"], out["viewer_key"], strict=True)
        ]
    for column in COUNTED.values():
        out[column] = out[column].fillna(0).astype("int64")
    return out[SESSION_COLUMNS]


def viewer_products(events: pd.DataFrame) -> pd.DataFrame:
    """Per (session, viewer, SKU): product clicks and add-to-carts."""
    product = events[events["type"].astype(str).isin(SKU_EVENTS)]
    columns = ["session_key", "viewer_key", "sku", "clicks", "carts"]
    if product.empty:
        return pd.DataFrame(columns=columns)
    product = product.assign(
        session_key=product["session_key"].astype(str),
        viewer_key=product["viewer_key"].astype(str),
        sku=product["sku"].astype(str),
        type=product["type"].astype(str),
    )
    counts = (
        product.groupby(["session_key", "viewer_key", "sku", "type"]).size().unstack(fill_value=0)
    )
    counts = counts.reindex(columns=list(SKU_EVENTS), fill_value=0)
    counts = counts.rename(columns={"product_click": "clicks", "add_to_cart": "carts"})
    return counts.reset_index()[columns]


VIEWER_COLUMNS = [c.name for c in clean_viewers.columns if c.name not in STAMPS]


def viewer_profiles(
    activity: pd.DataFrame, orders: pd.DataFrame, bots: pd.DataFrame
) -> pd.DataFrame:
    """One row per viewer from their sessions (`activity`: session_key, viewer_key, platform,
    room_id, first_seen, last_seen), their order lines (latest state: viewer_key, platform,
    paid_at, paid_fen, province, city, created_at) and their bot days."""
    seen = activity.groupby(["viewer_key", "platform"]).agg(
        first_seen=("first_seen", "min"),
        last_seen=("last_seen", "max"),
        sessions=("session_key", "nunique"),
        rooms=("room_id", "nunique"),
    )
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


def known_bot_days(engine: Engine) -> pd.DataFrame:
    """Every bot viewer-day `clean_bot_viewers` holds now: platform, viewer_key, event_date (the
    local date, as a `dt.date`)."""
    bots = read_frame(engine, "SELECT platform, viewer_key, event_date FROM clean_bot_viewers")
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
    activity = read_frame(
        engine,
        "SELECT session_key, viewer_key, platform, first_seen, last_seen "
        f"FROM clean_viewer_sessions WHERE viewer_key IN ({_TOUCHED_VIEWERS})",
        window,
    )
    # A session's room never changes between its exports: any export of it will do.
    rooms = read_frame(engine, "SELECT DISTINCT session_key, room_id FROM clean_sessions")
    activity = activity.merge(rooms.drop_duplicates("session_key"), on="session_key", how="left")
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
    profiles = viewer_profiles(activity, orders, bots)
    return profiles.assign(as_of_date=profiles["viewer_key"].map(touched_on))
