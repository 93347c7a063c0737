"""What the fan tiers and the product ranker read: the clean rows a fan history is made of, as
exported by a date, and the planned lineups of a night's plan export.

"As exported by `last`" (a local date): the rows of the exports dated `last` or before; the
activity tables (restated per session and viewer, not per export) keep the rows of the sessions
such an export knows. Every read is bounded to the sessions that started on or after a local
date `since` (`ml.fans.history_start`: the window the rules look back over), so a night's cost
follows that window, not the length of the history. Fans are read a sixteenth at a time
(`BUCKETS`: the first hex digit of viewer_key), so memory is bounded by a bucket's history, not
the whole fan base; what does not depend on the viewer is read once for all buckets
(`shared_inputs`). While the fan inputs are small (`ONE_BUCKET_ROWS`) they are read at once:
sixteen passes would cost more than they save.

Two depths: the fan tiers need what viewers did per session (`products=False`: sessions,
viewer_sessions, paid); the ranker needs it per product too (lineups, clicks and carts, the
catalogue, the rooms' product popularity).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

import pandas as pd
from sqlalchemy import Engine

from contract.exports import latest_export
from contract.localtime import local_day
from ml.history import paid_increments
from warehouse.exported import paid_lines_exported_by, products_exported_by, started_since
from warehouse.store import hex_prefix, read_frame

BUCKETS = "0123456789abcdef"
# Below this many rows of viewer activity and order lines, every fan is read in one bucket.
ONE_BUCKET_ROWS = 200_000
ALL_FANS = "*"  # the name of that one bucket
BUYER = ("viewer_key", "sku")  # what a fan's paid line keeps beyond the session and the money


def _known(since: dt.date, alias: str = "") -> tuple[str, dict]:
    """The rows of the sessions exported by :last that started on or after `since`."""
    started, params = started_since(since, alias)
    exported = (
        f"{alias}session_key IN (SELECT session_key FROM clean_sessions WHERE export_date <= :last)"
    )
    return f"{exported} AND {started}", params


def read_fan_inputs(
    engine: Engine,
    last: dt.date,
    since: dt.date,
    bucket: str | None = None,
    shared: dict[str, pd.DataFrame] | None = None,
    products: bool = True,
) -> dict[str, pd.DataFrame]:
    """The clean rows the fan history is made of (`ml.fans.history_of`), as exported by `last`,
    of the sessions that started on or after `since` (local dates).

    The frames of `shared_inputs`, and: `viewer_sessions` (session_key, viewer_key, watch_s in
    seconds, is_bot), `paid` (each paid line once: session_key, known_date as datetime64,
    gmv_fen in fen, viewer_key, sku) and, with `products`, `viewer_products` (session_key,
    viewer_key, sku, clicks, carts). With `bucket` (a hex digit), only the viewers whose key
    starts with it; `shared`: the frames of `shared_inputs` for the same arguments, read once
    for every bucket. Raises ValueError for a bucket that is not a hex digit."""
    if bucket is not None and bucket not in BUCKETS:
        raise ValueError(f"not a bucket: {bucket!r}")
    known, params = _known(since)
    params["last"] = last.isoformat()
    viewers = ""
    if bucket is not None:
        condition, bounds = hex_prefix("viewer_key", bucket, "bucket")
        viewers = f" AND {condition}"
        params.update(bounds)
    shared = shared or shared_inputs(engine, last, since, products)
    orders = paid_lines_exported_by(engine, last, BUYER, bucket, since)
    inputs = {
        **shared,
        "viewer_sessions": read_frame(
            engine,
            "SELECT session_key, viewer_key, watch_s, is_bot FROM clean_viewer_sessions "
            f"WHERE {known}{viewers}",
            params,
        ),
        "paid": paid_increments(orders, keep=BUYER),
    }
    if products:
        inputs["viewer_products"] = read_frame(
            engine,
            "SELECT session_key, viewer_key, sku, clicks, carts FROM clean_viewer_products "
            f"WHERE {known}{viewers}",
            params,
        )
    return inputs


def shared_inputs(
    engine: Engine, last: dt.date, since: dt.date, products: bool = True
) -> dict[str, pd.DataFrame]:
    """What the fan history needs of everyone, as exported by `last`, of the sessions that
    started on or after `since`: `sessions` (the latest export of each: session_key,
    export_date, source_line, platform, room_id, start_time in UTC, is_test) and, with
    `products`, `lineups` (the current lineup of each: session_key, sku, live_price_fen and
    coupon_fen in fen), `session_products` (`session_products`) and `products` (every export
    of the catalogue: `warehouse.exported.products_exported_by`)."""
    started, params = started_since(since)
    params["last"] = last.isoformat()
    shared = {
        "sessions": latest_export(
            read_frame(
                engine,
                "SELECT session_key, export_date, source_line, platform, room_id, start_time, "
                f"is_test FROM clean_sessions WHERE export_date <= :last AND {started}",
                params,
            ),
            "session_key",
        )
    }
    if products:
        known, params = _known(since)
        shared["lineups"] = read_frame(
            engine,
            "SELECT session_key, sku, live_price_fen, coupon_fen FROM clean_lineups_current "
            f"WHERE {known}",
            {**params, "last": last.isoformat()},
        )
        shared["session_products"] = session_products(engine, last, since)
        shared["products"] = products_exported_by(engine, last)
    return shared


def session_products(engine: Engine, last: dt.date, since: dt.date) -> pd.DataFrame:
    """What all human viewers did per (session, SKU), as exported by `last`, of the sessions
    that started on or after `since`, aggregated in the database; three kinds of rows stacked:
    the lineup's audience (session_key, sku, exposed: human viewers of the session), their
    clicks and carts (session_key, sku, clicks, carts), and paid lines by the export that first
    showed them paid (session_key, sku, known_date: a local date, orders)."""
    lineup_known, params = _known(since, "l.")
    acted_known, _ = _known(since, "p.")
    orders_started, _ = started_since(since)
    params["last"] = last.isoformat()
    exposed = read_frame(
        engine,
        "SELECT l.session_key, l.sku, COUNT(v.viewer_key) AS exposed "
        "FROM clean_lineups_current l JOIN clean_viewer_sessions v "
        f"ON v.session_key = l.session_key AND NOT v.is_bot WHERE {lineup_known} "
        "GROUP BY l.session_key, l.sku",
        params,
    )
    acted = read_frame(
        engine,
        "SELECT p.session_key, p.sku, SUM(p.clicks) AS clicks, SUM(p.carts) AS carts "
        "FROM clean_viewer_products p JOIN clean_viewer_sessions v "
        "ON v.session_key = p.session_key AND v.viewer_key = p.viewer_key AND NOT v.is_bot "
        f"WHERE {acted_known} GROUP BY p.session_key, p.sku",
        params,
    )
    paid = read_frame(
        engine,
        "SELECT session_key, sku, known_date, COUNT(*) AS orders FROM ("
        "SELECT order_key, MIN(session_key) AS session_key, MIN(sku) AS sku, "
        "MIN(export_date) AS known_date FROM clean_orders "
        f"WHERE paid_at IS NOT NULL AND export_date <= :last AND {orders_started} "
        "GROUP BY order_key) lines GROUP BY session_key, sku, known_date",
        params,
    )
    return pd.concat([exposed, acted, paid], ignore_index=True)


def fan_input_buckets(
    engine: Engine, last: dt.date, since: dt.date, products: bool = True
) -> Iterator[tuple[str, dict]]:
    """Each bucket of `BUCKETS` with its `read_fan_inputs` (same arguments), the shared frames
    read once; one bucket, `ALL_FANS`, while the inputs are under `ONE_BUCKET_ROWS` rows."""
    shared = shared_inputs(engine, last, since, products)
    if _input_rows(engine, last, since) < ONE_BUCKET_ROWS:
        yield ALL_FANS, read_fan_inputs(engine, last, since, None, shared, products)
        return
    for bucket in BUCKETS:
        yield bucket, read_fan_inputs(engine, last, since, bucket, shared, products)


def _input_rows(engine: Engine, last: dt.date, since: dt.date) -> int:
    """Rows of viewer activity and order lines of a fan history: the size of its inputs."""
    known, params = _known(since)
    started, _ = started_since(since)
    counts = read_frame(
        engine,
        f"SELECT COUNT(*) AS n FROM clean_viewer_sessions WHERE {known} "
        f"UNION ALL SELECT COUNT(*) AS n FROM clean_orders WHERE export_date <= :last "
        f"AND {started}",
        {**params, "last": last.isoformat()},
    )
    return int(counts["n"].sum())


def planned_lineups(engine: Engine, day: dt.date, horizon_days: int) -> pd.DataFrame:
    """The lineups of the plans exported on `day` (a local date) and planned for a local date
    within `day` + 1 … `day` + `horizon_days` (the picks horizon), with each plan's room and
    planned prices: plan_id, platform, room_id, sku, price_fen and coupon_fen (fen)."""
    rows = read_frame(
        engine,
        "SELECT l.plan_id, p.platform, p.room_id, l.sku, l.planned_price_fen AS price_fen, "
        "l.coupon_fen, p.planned_start "
        "FROM clean_plan_lineups l JOIN clean_plans p "
        "ON p.plan_id = l.plan_id AND p.export_date = l.export_date WHERE l.export_date = :day",
        {"day": day.isoformat()},
    )
    ahead = (local_day(pd.to_datetime(rows["planned_start"])) - pd.Timestamp(day)).dt.days
    within = rows[ahead.between(1, horizon_days)]
    return within.drop(columns="planned_start").reset_index(drop=True)
