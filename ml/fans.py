"""The fans of a room and what they did before a date: increments, sums as of a date, segments.

Everything a viewer did is an increment stamped with the local day it became known: activity
(entering, watching, clicks, carts) on the day of its session, a paid line on the later of its
session's day and the export that first showed it paid. Sums as of a day D add the increments
of days up to D, so one function gives training rows (D = the day before a past session) and
serving rows (D = the date of the plan export), and nothing after D can change them.

Fan tiers (the serving contract's rule, `fan_segments`): a fan of a room is a non-bot viewer
who entered, or paid in, a real session of the room in the 365 days ending D; the tier is the
first that holds: core (orders_365d ≥ 2 and last_seen_days ≤ 28), active (sessions_28d ≥ 2),
potential (last_seen_days ≤ 28), dormant.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd

from contract.localtime import local_day

SEGMENTS = ("core", "active", "potential", "dormant")
FAN_DAYS = 365
RECENT_DAYS = 28
PICK_DAYS = 90  # product_recommendations go to the room's fans seen in the 90 days to the date
VIEWER_SUMS = ["sessions", "watch_s", "clicks", "carts", "orders", "spend_fen", "click_log_price"]
ACTION_SUMS = ["clicks", "carts", "orders"]
ROOM_SKU_SUMS = ["exposed", "clicks", "carts", "orders"]
POPULARITY_DAYS = 56  # a product's conversion in the room over the last eight weeks


@dataclass
class FanHistory:
    """Increments, one row per key and day (`day`: local date as datetime64)."""

    viewer: pd.DataFrame  # room_id, viewer_key, day, VIEWER_SUMS
    category: pd.DataFrame  # room_id, viewer_key, category, day, ACTION_SUMS
    sku: pd.DataFrame  # room_id, viewer_key, sku, day, ACTION_SUMS
    room_sku: pd.DataFrame  # room_id, sku, day, ROOM_SKU_SUMS
    rooms: pd.DataFrame  # room_id, platform


def fan_history(
    sessions: pd.DataFrame,
    viewer_sessions: pd.DataFrame,
    paid: pd.DataFrame,
    viewer_products: pd.DataFrame | None = None,
    lineups: pd.DataFrame | None = None,
    products: pd.DataFrame | None = None,
    session_products: pd.DataFrame | None = None,
) -> FanHistory:
    """Increments from the clean tables.

    sessions: session_key, platform, room_id, start_time (UTC), is_test (latest export);
    viewer_sessions: session_key, viewer_key, watch_s, is_bot; paid: paid order lines, each
    once (session_key, viewer_key, sku, gmv_fen, known_date: `ml.history.paid_increments`);
    viewer_products: session_key, viewer_key, sku, clicks, carts; lineups: session_key, sku,
    live_price_fen (latest export); products: sku, category (latest export);
    session_products: what every human viewer did per (session, sku): session_key, sku,
    known_date, exposed (the session's human viewers, on the row of its lineup's export),
    clicks, carts, orders. The viewer tables may hold a subset of the viewers (a bucket of
    fans); `session_products` always holds everyone, so the room's popularity is the same.
    Without the four product-level frames (the fan tiers need none of them) the history has
    the viewers' sessions, watch time, orders and spend, and no product-level increments.
    """
    if viewer_products is None:
        viewer_products = pd.DataFrame(
            columns=["session_key", "viewer_key", "sku", "clicks", "carts"]
        )
        lineups = pd.DataFrame(columns=["session_key", "sku", "live_price_fen"])
        products = pd.DataFrame(columns=["sku", "category"])
        session_products = pd.DataFrame(
            columns=["session_key", "sku", "known_date", *ROOM_SKU_SUMS]
        )
    real = sessions.loc[~sessions["is_test"].astype(bool), ["session_key", "room_id"]].assign(
        day=local_day(sessions.loc[~sessions["is_test"].astype(bool), "start_time"])
    )
    category = products.drop_duplicates("sku", keep="last").set_index("sku")["category"]
    humans = viewer_sessions.loc[~viewer_sessions["is_bot"].astype(bool)]
    watched = humans[["session_key", "viewer_key", "watch_s"]].merge(real, on="session_key")
    price = lineups[["session_key", "sku", "live_price_fen"]]
    acted = viewer_products.merge(real, on="session_key").merge(
        price, on=["session_key", "sku"], how="left"
    )
    # Bot activity stays out: a (session, viewer) pair flagged as a bot leaves no increments.
    acted = acted.merge(humans[["session_key", "viewer_key"]], on=["session_key", "viewer_key"])
    acted["category"] = acted["sku"].map(category)
    price_fen = acted["live_price_fen"].astype(float)
    acted["click_log_price"] = np.log(price_fen / 100) * acted["clicks"].where(price_fen.notna(), 0)
    bought = paid.merge(real, on="session_key")
    bought = bought.assign(
        day=np.maximum(bought["day"], pd.to_datetime(bought["known_date"])),
        category=bought["sku"].map(category),
        orders=1,
        spend_fen=bought["gmv_fen"].astype("int64"),
    )
    viewer = pd.concat(
        [
            watched.assign(sessions=1)[["room_id", "viewer_key", "day", "sessions", "watch_s"]],
            acted[["room_id", "viewer_key", "day", "clicks", "carts", "click_log_price"]],
            bought[["room_id", "viewer_key", "day", "orders", "spend_fen"]],
        ],
        ignore_index=True,
    )
    actions = pd.concat(
        [
            acted[["room_id", "viewer_key", "sku", "category", "day", "clicks", "carts"]],
            bought[["room_id", "viewer_key", "sku", "category", "day", "orders"]],
        ],
        ignore_index=True,
    ).fillna({"category": "unknown"})
    room_sku = session_products.merge(real, on="session_key")
    known = pd.to_datetime(room_sku["known_date"])
    room_sku["day"] = np.maximum(room_sku["day"], known.fillna(room_sku["day"]))
    rooms = sessions[["room_id", "platform"]].drop_duplicates("room_id")
    return FanHistory(
        viewer=_daily(viewer, ["room_id", "viewer_key"], VIEWER_SUMS),
        category=_daily(actions, ["room_id", "viewer_key", "category"], ACTION_SUMS),
        sku=_daily(actions, ["room_id", "viewer_key", "sku"], ACTION_SUMS),
        room_sku=_daily(room_sku, ["room_id", "sku"], ROOM_SKU_SUMS),
        rooms=rooms.reset_index(drop=True),
    )


def history_of(inputs: Mapping[str, pd.DataFrame]) -> FanHistory:
    """`fan_history` of the frames read for it, by name (`sessions`, `viewer_sessions`, `paid`
    and, for a history with products, `viewer_products`, `lineups`, `products`,
    `session_products`: what `warehouse.fan_inputs.read_fan_inputs` returns), the catalogue
    in export order."""
    if "viewer_products" not in inputs:
        return fan_history(inputs["sessions"], inputs["viewer_sessions"], inputs["paid"])
    return fan_history(
        inputs["sessions"],
        inputs["viewer_sessions"],
        inputs["paid"],
        inputs["viewer_products"],
        inputs["lineups"],
        inputs["products"].sort_values("export_date"),
        inputs["session_products"],
    )


def history_start(first_as_of: dt.date) -> dt.date:
    """The first local date a fan history must hold for profiles as of `first_as_of` or later:
    every figure of a fan looks back over the `FAN_DAYS` ending its as-of day, so the reads
    start there (`warehouse.fan_inputs`) and a night's cost follows that window."""
    return first_as_of - dt.timedelta(days=FAN_DAYS - 1)


def _daily(frame: pd.DataFrame, keys: list[str], values: list[str]) -> pd.DataFrame:
    for column in values:
        if column not in frame:
            frame[column] = 0.0
    out = frame.groupby([*keys, "day"], observed=True)[values].sum(min_count=0).reset_index()
    return out.fillna({v: 0.0 for v in values})


def sums_as_of(
    increments: pd.DataFrame,
    keys: list[str],
    values: list[str],
    queries: pd.DataFrame,
    days: int | None = None,
) -> pd.DataFrame:
    """For each row of `queries` (its `keys` and `as_of`), the sums of `values` over the
    increments of its keys dated in (as_of − days, as_of] (every day up to as_of when `days` is
    None), and `last_day`: the last day with an increment up to as_of. Aligned to `queries`."""
    codes, table = _coded(increments, queries, keys)
    cumulative = table[values].astype("float64").groupby(table["_key"]).cumsum()
    table = pd.concat([table[["_key", "day"]], cumulative], axis=1)
    asked = pd.DataFrame({"_key": codes, "as_of": pd.to_datetime(queries["as_of"]).to_numpy()})
    out = _asof(asked, table, "as_of").rename(columns={"day": "last_day"})
    if days is not None:
        earlier = asked.assign(as_of=asked["as_of"] - pd.Timedelta(days=days))
        before = _asof(earlier, table, "as_of")
        out[values] = out[values].to_numpy() - before[values].to_numpy()
        # A last day older than the window is no increment in it.
        out.loc[out["last_day"] <= earlier["as_of"].to_numpy(), "last_day"] = pd.NaT
    return out[[*values, "last_day"]].set_index(queries.index)


def _coded(
    increments: pd.DataFrame, queries: pd.DataFrame, keys: list[str]
) -> tuple[np.ndarray, pd.DataFrame]:
    """One integer key for the composite `keys`, shared by increments and queries."""
    both = pd.concat([increments[keys], queries[keys]], ignore_index=True)
    code = both.groupby(keys, sort=False, observed=True).ngroup().to_numpy()
    table = increments.assign(_key=code[: len(increments)]).sort_values(["_key", "day"])
    return code[len(increments) :], table.reset_index(drop=True)


def _asof(asked: pd.DataFrame, table: pd.DataFrame, on: str) -> pd.DataFrame:
    """Row-aligned backward as-of join on `_key` (zeros where a key has nothing yet)."""
    order = np.argsort(asked[on].to_numpy(), kind="stable")
    left = asked.iloc[order].reset_index(drop=True)
    left[on] = left[on].astype("datetime64[ns]")
    right = table.sort_values("day", kind="stable")
    right["day"] = right["day"].astype("datetime64[ns]")
    joined = pd.merge_asof(left, right, left_on=on, right_on="day", by="_key")
    joined.index = order
    joined = joined.sort_index()
    numeric = [c for c in table.columns if c not in ("_key", "day")]
    joined[numeric] = joined[numeric].fillna(0.0)
    return joined


def segment(
    orders_365d: pd.Series, last_seen_days: pd.Series, sessions_28d: pd.Series
) -> pd.Series:
    """The contract's tiers, the first rule that holds."""
    recent = last_seen_days <= RECENT_DAYS
    core, active, potential, dormant = SEGMENTS
    return pd.Series(
        np.select(
            [(orders_365d >= 2) & recent, sessions_28d >= 2, recent],
            [core, active, potential],
            default=dormant,
        ),
        index=orders_365d.index,
    )


def fan_profiles(history: FanHistory, queries: pd.DataFrame) -> pd.DataFrame:
    """What each (room_id, viewer_key) of `queries` was as a fan on its `as_of` day: the sums of
    `VIEWER_SUMS` over the `FAN_DAYS` ending it (`<sum>_365d`; orders and spend_fen as integers),
    sessions over the last `RECENT_DAYS`, days since last seen and the tier (None: not a fan
    on that day). Aligned to `queries`."""
    keys = ["room_id", "viewer_key"]
    year = sums_as_of(history.viewer, keys, VIEWER_SUMS, queries, FAN_DAYS)
    month = sums_as_of(history.viewer, keys, ["sessions"], queries, RECENT_DAYS)
    last_seen = (pd.to_datetime(queries["as_of"]) - year["last_day"]).dt.days
    out = pd.DataFrame(
        {
            **{f"{c}_365d": year[c] for c in VIEWER_SUMS},
            "sessions_28d": month["sessions"].round().astype("int64"),
            "last_seen_days": last_seen,
        },
        index=queries.index,
    )
    out = out.rename(columns={"spend_fen_365d": "spend_365d_fen"})
    for column in ("orders_365d", "spend_365d_fen"):
        out[column] = out[column].round().astype("int64")
    out["segment"] = segment(out["orders_365d"], out["last_seen_days"], out["sessions_28d"])
    out.loc[out["last_seen_days"].isna(), "segment"] = None  # not a fan on that day
    return out


def fans_as_of(history: FanHistory, day: dt.date, seen_within: int = FAN_DAYS) -> pd.DataFrame:
    """Every fan of every room on `day` (seen, or paid, within `seen_within` days), with profile:
    platform, room_id, viewer_key, as_of and the columns of `fan_profiles`."""
    as_of = pd.Timestamp(day)
    recent = history.viewer[
        (history.viewer["day"] <= as_of)
        & (history.viewer["day"] > as_of - pd.Timedelta(days=seen_within))
    ]
    keys = recent[["room_id", "viewer_key"]].drop_duplicates().reset_index(drop=True)
    keys["as_of"] = as_of
    profiles = fan_profiles(history, keys)
    out = pd.concat([keys, profiles], axis=1).merge(history.rooms, on="room_id", how="left")
    return out.sort_values(["room_id", "viewer_key"]).reset_index(drop=True)
