"""Every warehouse table, defined once, grouped by layer.

Layers: `clean_*` (typed exports, one row per key and export date), `ops_*` (quarantine and the
reconciliation ledger), `serving` (the public tables of shared/contract/serving-tables.md).
Money is integer fen in the clean layer (exact) and NUMERIC(14,2) yuan in serving tables.

Longer than the house's ~400 lines on purpose: it is declarations only, and one MetaData in one
file is the schema a reader (or a migration) compares against, layer after layer.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Date,
    DateTime,
    Float,
    Integer,
    MetaData,
    Numeric,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
)

metadata = MetaData()

Money = Numeric(14, 2, asdecimal=False)


def _source_columns() -> list[Column]:
    """Where a clean row came from, so every row can be traced to its file and line."""
    return [
        Column("source_file", Text, nullable=False),
        Column("source_line", Integer, nullable=False),
        Column("run_id", String(64), nullable=False),
    ]


# --- clean layer: one row per key per export date; the `*_current` views pick the latest ---

clean_sessions = Table(
    "clean_sessions",
    metadata,
    Column("session_key", String(96), nullable=False),
    Column("export_date", Date, nullable=False),
    Column("platform", String(16), nullable=False),
    Column("session_id", String(64), nullable=False),
    Column("room_id", String(64), nullable=False),
    Column("room_name", Text),
    Column("host_id", String(64), nullable=False),
    Column("title", Text),
    Column("start_time", DateTime, nullable=False),
    Column("end_time", DateTime),
    Column("viewers", BigInteger, nullable=False),
    Column("views", BigInteger, nullable=False),
    Column("peak_online", BigInteger, nullable=False),
    Column("avg_watch_s", Float, nullable=False),
    Column("new_followers", BigInteger, nullable=False),
    Column("comments", BigInteger, nullable=False),
    Column("likes", BigInteger, nullable=False),
    Column("gmv_fen", BigInteger, nullable=False),
    Column("orders", BigInteger, nullable=False),
    Column("is_test", Boolean, nullable=False),
    *_source_columns(),
    PrimaryKeyConstraint("session_key", "export_date"),
)

clean_lineups = Table(
    "clean_lineups",
    metadata,
    Column("session_key", String(96), nullable=False),
    Column("sku", String(64), nullable=False),
    Column("export_date", Date, nullable=False),
    Column("platform", String(16), nullable=False),
    Column("session_id", String(64), nullable=False),
    Column("listed_at", DateTime, nullable=False),
    Column("live_price_fen", BigInteger, nullable=False),
    Column("strike_price_fen", BigInteger, nullable=False),
    Column("coupon_fen", BigInteger),
    Column("stock", BigInteger, nullable=False),
    *_source_columns(),
    PrimaryKeyConstraint("session_key", "sku", "export_date"),
)

clean_orders = Table(
    "clean_orders",
    metadata,
    Column("order_key", String(96), nullable=False),
    Column("export_date", Date, nullable=False, index=True),
    Column("platform", String(16), nullable=False),
    Column("order_id", String(64), nullable=False),
    Column("session_key", String(96), nullable=False, index=True),
    Column("sku", String(64), nullable=False),
    Column("viewer_key", String(64), nullable=False, index=True),
    Column("province", Text),
    Column("city", Text),
    Column("quantity", BigInteger, nullable=False),
    Column("unit_price_fen", BigInteger, nullable=False),
    Column("paid_fen", BigInteger, nullable=False),
    Column("created_at", DateTime, nullable=False),
    Column("paid_at", DateTime),
    Column("status", String(16), nullable=False),
    *_source_columns(),
    PrimaryKeyConstraint("order_key", "export_date"),
)

clean_refunds = Table(
    "clean_refunds",
    metadata,
    Column("refund_key", String(96), nullable=False),
    Column("export_date", Date, nullable=False),
    Column("platform", String(16), nullable=False),
    Column("refund_id", String(64), nullable=False),
    Column("order_key", String(96), nullable=False, index=True),
    Column("amount_fen", BigInteger, nullable=False),
    Column("refunded_at", DateTime, nullable=False),
    Column("reason", Text),
    *_source_columns(),
    PrimaryKeyConstraint("refund_key", "export_date"),
)

clean_products = Table(
    "clean_products",
    metadata,
    Column("sku", String(64), nullable=False),
    Column("export_date", Date, nullable=False),  # the catalogue snapshot's date
    Column("brand", Text),
    Column("category", String(32), nullable=False),
    Column("subcategory", String(64)),
    Column("list_price_fen", BigInteger, nullable=False),
    Column("energy_grade", Integer),
    Column("launch_date", Date),
    *_source_columns(),
    PrimaryKeyConstraint("sku", "export_date"),
)

clean_plans = Table(
    "clean_plans",
    metadata,
    Column("plan_id", String(64), nullable=False),
    Column("export_date", Date, nullable=False),  # every snapshot is kept
    Column("platform", String(16), nullable=False),
    Column("room_id", String(64), nullable=False),
    Column("host_id", String(64), nullable=False),
    Column("planned_start", DateTime, nullable=False),
    Column("planned_minutes", Integer, nullable=False),
    Column("reservations", BigInteger, nullable=False),
    Column("exported_at", DateTime, nullable=False),
    *_source_columns(),
    PrimaryKeyConstraint("plan_id", "export_date"),
)

clean_plan_lineups = Table(
    "clean_plan_lineups",
    metadata,
    Column("plan_id", String(64), nullable=False),
    Column("sku", String(64), nullable=False),
    Column("export_date", Date, nullable=False),
    Column("planned_price_fen", BigInteger, nullable=False),
    Column("coupon_fen", BigInteger),
    *_source_columns(),
    PrimaryKeyConstraint("plan_id", "sku", "export_date"),
)

# Which plan each real session came from (the contract's matching rule), restated as exports
# arrive; plan_id is null for a session no plan matched.
clean_session_plans = Table(
    "clean_session_plans",
    metadata,
    Column("session_key", String(96), primary_key=True),
    Column("platform", String(16), nullable=False),
    Column("room_id", String(64), nullable=False),
    Column("start_time", DateTime, nullable=False),
    Column("plan_id", String(64), index=True),
    Column("planned_start", DateTime),
    Column("start_diff_min", Float),
    Column("as_of_date", Date, nullable=False),
    Column("run_id", String(64), nullable=False),
)

# Viewer activity per session, from the events; restated as late events arrive.
clean_viewer_sessions = Table(
    "clean_viewer_sessions",
    metadata,
    Column("session_key", String(96), nullable=False),
    Column("viewer_key", String(64), nullable=False, index=True),
    Column("platform", String(16), nullable=False),
    Column("first_seen", DateTime, nullable=False),
    Column("last_seen", DateTime, nullable=False),
    Column("enters", Integer, nullable=False),
    Column("watch_s", Float, nullable=False),
    Column("comments", Integer, nullable=False),
    Column("likes", Integer, nullable=False),
    Column("follows", Integer, nullable=False),
    Column("shares", Integer, nullable=False),
    Column("product_clicks", Integer, nullable=False),
    Column("carts", Integer, nullable=False),
    Column("is_bot", Boolean, nullable=False),
    Column("as_of_date", Date, nullable=False, index=True),
    Column("run_id", String(64), nullable=False),
    PrimaryKeyConstraint("session_key", "viewer_key"),
)

clean_viewer_products = Table(
    "clean_viewer_products",
    metadata,
    Column("session_key", String(96), nullable=False),
    Column("viewer_key", String(64), nullable=False),
    Column("sku", String(64), nullable=False),
    Column("clicks", Integer, nullable=False),
    Column("carts", Integer, nullable=False),
    # Indexed: the night's checks read the rows restated that date, not the whole history.
    Column("as_of_date", Date, nullable=False, index=True),
    Column("run_id", String(64), nullable=False),
    PrimaryKeyConstraint("session_key", "viewer_key", "sku"),
)

# Viewers that fired more than 60 events in some 60 seconds of a local day: bots that day.
clean_bot_viewers = Table(
    "clean_bot_viewers",
    metadata,
    Column("platform", String(16), nullable=False),
    Column("viewer_key", String(64), nullable=False),
    Column("event_date", Date, nullable=False),
    Column("events", Integer, nullable=False),
    Column("peak_events_60s", Integer, nullable=False),
    Column("as_of_date", Date, nullable=False),
    Column("run_id", String(64), nullable=False),
    PrimaryKeyConstraint("platform", "viewer_key", "event_date"),
)

# One row per pseudonymised viewer: when and how much they were seen, bought, and where from.
clean_viewers = Table(
    "clean_viewers",
    metadata,
    Column("viewer_key", String(64), primary_key=True),
    Column("platform", String(16), nullable=False),
    Column("first_seen", DateTime),
    Column("last_seen", DateTime),
    Column("sessions", Integer, nullable=False),
    Column("rooms", Integer, nullable=False),
    Column("paid_lines", Integer, nullable=False),
    Column("spend_fen", BigInteger, nullable=False),
    Column("province", Text),
    Column("city", Text),
    Column("bot_days", Integer, nullable=False),
    Column("as_of_date", Date, nullable=False, index=True),  # as clean_viewer_products'
    Column("run_id", String(64), nullable=False),
)

# The key of each clean table, and the view that keeps its latest export per key.
CLEAN_KEYS: dict[str, tuple[str, ...]] = {
    "clean_products": ("sku",),
    "clean_sessions": ("session_key",),
    "clean_lineups": ("session_key", "sku"),
    "clean_orders": ("order_key",),
    "clean_refunds": ("refund_key",),
    "clean_plans": ("plan_id",),
    "clean_plan_lineups": ("plan_id", "sku"),
}
# What "the later export wins" replaces as a whole: a lineup is replaced with its session's (or
# plan's) later export, so a product dropped from it disappears; other rows key by key.
CURRENT_BY: dict[str, tuple[str, ...]] = {
    **CLEAN_KEYS,
    "clean_lineups": ("session_key",),
    "clean_plan_lineups": ("plan_id",),
}

# --- ops layer ---

ops_quarantine = Table(
    "ops_quarantine",
    metadata,
    Column("export_date", Date, nullable=False, index=True),
    Column("platform", String(16), nullable=False),
    Column("table_name", String(32), nullable=False),
    Column("source_file", Text, nullable=False),
    Column("source_line", Integer, nullable=False),
    Column("field", String(64)),
    # format: the record could not be split into fields; value: a field could not be typed;
    # reference: what it refers to is unknown by its date; rule: a business rule is broken.
    Column("kind", String(16), nullable=False),
    Column("reason", Text, nullable=False),
    Column("raw", Text, nullable=False),
    Column("run_id", String(64), nullable=False),
)

ops_ingest_ledger = Table(
    "ops_ingest_ledger",
    metadata,
    Column("source_file", String(255), primary_key=True),
    Column("export_date", Date, nullable=False, index=True),
    Column("platform", String(16), nullable=False),
    Column("table_name", String(32), nullable=False),
    Column("raw_rows", Integer, nullable=False),
    Column("clean_rows", Integer, nullable=False),
    Column("duplicate_rows", Integer, nullable=False),
    Column("quarantined_rows", Integer, nullable=False),
    # Lines sharing a key with different values in one file (quarantined too, kind conflict).
    Column("conflict_rows", Integer, nullable=False, server_default="0"),
    # Values normalised at the door, by kind, and page headers dropped (warehouse/door.py).
    Column("unwrapped_values", Integer, nullable=False, server_default="0"),
    Column("unicode_values", Integer, nullable=False, server_default="0"),
    Column("control_chars_removed", Integer, nullable=False, server_default="0"),
    Column("repeated_headers", Integer, nullable=False, server_default="0"),
    Column("extra_columns", Text, nullable=False),
    Column("run_id", String(64), nullable=False),
)

# The latest result of each blocking quality check per asset and partition date. Dagster stops
# what depends on a failed check within one run; this table lets a later run see it too.
ops_check_results = Table(
    "ops_check_results",
    metadata,
    Column("asset_key", String(64), nullable=False),
    Column("check_name", String(64), nullable=False),
    Column("partition_date", Date, nullable=False),
    Column("passed", Boolean, nullable=False),
    Column("description", Text, nullable=False),
    Column("checked_at", DateTime, nullable=False),
    Column("run_id", String(64), nullable=False),
    PrimaryKeyConstraint("asset_key", "check_name", "partition_date"),
)

# What each partitioned asset published, per platform and local date ("*": a unit that is not
# one platform's, such as the catalogue or a model), or why not: the unit of failure is the
# platform-date (landing-zone.md, "Schema drift"), and nothing downstream claims a unit that
# is not published.
ops_publications = Table(
    "ops_publications",
    metadata,
    Column("asset_key", String(64), nullable=False),
    Column("platform", String(16), nullable=False),
    Column("partition_date", Date, nullable=False),
    Column("status", String(16), nullable=False),  # published | failed | held
    Column("reason", Text, nullable=False),
    Column("recorded_at", DateTime, nullable=False),
    Column("run_id", String(64), nullable=False),
    PrimaryKeyConstraint("asset_key", "platform", "partition_date"),
)

# Every trained model (both the forecaster and the recommender): what it was trained on, how it
# did in its backtest, and whether it went into service. Files: <data>/models/<name>/<version>.
model_registry = Table(
    "model_registry",
    metadata,
    Column("model_name", String(32), nullable=False),
    Column("version", String(64), nullable=False),
    Column("trained_for", Date, nullable=False),
    Column("train_first", Date, nullable=False),
    Column("train_last", Date, nullable=False),
    Column("features", Text, nullable=False),
    Column("params", Text, nullable=False),
    Column("data_fingerprint", String(64), nullable=False),
    Column("metrics", Text, nullable=False),
    Column("gate_metric", String(32), nullable=False),
    Column("gate_value", Float),
    # candidate (trained, not judged), champion (in service), retired (was), rejected
    Column("status", String(16), nullable=False),
    Column("decision", Text),
    Column("promoted_on", Date),
    Column("artifact_path", Text, nullable=False),
    Column("created_at", DateTime, nullable=False),
    Column("run_id", String(64), nullable=False),
    PrimaryKeyConstraint("model_name", "version"),
)

# --- serving layer: names and columns are public (shared/contract/serving-tables.md) ---

session_gmv_forecast = Table(
    "session_gmv_forecast",
    metadata,
    Column("plan_id", String(64), nullable=False),
    Column("platform", String(16), nullable=False),
    Column("room_id", String(64), nullable=False),
    Column("host_id", String(64), nullable=False),
    Column("planned_start", DateTime, nullable=False),
    Column("forecast_made_at", DateTime, nullable=False),
    Column("horizon_days", Integer, nullable=False),
    Column("gmv_p10", Money, nullable=False),
    Column("gmv_p50", Money, nullable=False),
    Column("gmv_p90", Money, nullable=False),
    Column("model_version", String(64), nullable=False),
    Column("run_id", String(64), nullable=False),
    PrimaryKeyConstraint("plan_id", "forecast_made_at"),
)

product_recommendations = Table(
    "product_recommendations",
    metadata,
    Column("plan_id", String(64), nullable=False),
    Column("viewer_key", String(64), nullable=False),
    Column("sku", String(64), nullable=False),
    Column("rank", Integer, nullable=False),
    Column("score", Float, nullable=False),
    Column("model_version", String(64), nullable=False),
    Column("generated_at", DateTime, nullable=False),
    Column("run_id", String(64), nullable=False),
    # Millions of rows a generation: the key, led by (plan_id, generated_at), is also the only
    # index (the `_latest` view finds each plan's last generation on it), and on SQLite the
    # table is stored in that key's order (WITHOUT ROWID): one B-tree instead of three.
    PrimaryKeyConstraint("plan_id", "generated_at", "viewer_key", "sku"),
    sqlite_with_rowid=False,
)

session_scorecard = Table(
    "session_scorecard",
    metadata,
    Column("session_key", String(96), primary_key=True),
    Column("platform", String(16), nullable=False),
    Column("room_id", String(64), nullable=False),
    Column("host_id", String(64), nullable=False),
    Column("plan_id", String(64)),
    Column("start_time", DateTime, nullable=False),
    Column("end_time", DateTime),
    Column("duration_min", Float),
    Column("viewers", BigInteger, nullable=False),
    Column("views", BigInteger, nullable=False),
    Column("peak_online", BigInteger, nullable=False),
    Column("avg_watch_s", Float),
    Column("comments", BigInteger, nullable=False),
    Column("likes", BigInteger, nullable=False),
    Column("new_followers", BigInteger, nullable=False),
    Column("orders", BigInteger, nullable=False),
    Column("buyers", BigInteger, nullable=False),
    Column("gmv", Money, nullable=False),
    Column("refunded", Money, nullable=False),
    Column("net_gmv", Money, nullable=False),
    Column("aov", Money),
    Column("conversion", Float),
    Column("gpm", Money),
    Column("platform_gmv", Money, nullable=False),
    Column("gmv_gap", Money, nullable=False),
    Column("as_of_date", Date, nullable=False),
    Column("run_id", String(64), nullable=False),
)

fan_segments = Table(
    "fan_segments",
    metadata,
    Column("as_of_date", Date, nullable=False),
    Column("platform", String(16), nullable=False),
    Column("room_id", String(64), nullable=False),
    Column("viewer_key", String(64), nullable=False),
    Column("segment", String(16), nullable=False),
    Column("last_seen_days", Integer, nullable=False),
    Column("sessions_28d", Integer, nullable=False),
    Column("orders_365d", Integer, nullable=False),
    Column("spend_365d", Money, nullable=False),
    Column("run_id", String(64), nullable=False),
    PrimaryKeyConstraint("as_of_date", "platform", "room_id", "viewer_key"),
)

forecast_accuracy = Table(
    "forecast_accuracy",
    metadata,
    Column("plan_id", String(64), nullable=False),
    Column("session_key", String(96)),
    Column("forecast_made_at", DateTime, nullable=False),
    Column("horizon_days", Integer, nullable=False),
    Column("gmv_p10", Money, nullable=False),
    Column("gmv_p50", Money, nullable=False),
    Column("gmv_p90", Money, nullable=False),
    Column("actual_gmv", Money),
    Column("abs_error", Money),
    Column("in_interval", Boolean),
    Column("model_version", String(64), nullable=False),
    Column("as_of_date", Date, nullable=False),
    Column("run_id", String(64), nullable=False),
    PrimaryKeyConstraint("plan_id", "forecast_made_at"),
)

SERVING_TABLES = (
    session_gmv_forecast,
    product_recommendations,
    session_scorecard,
    fan_segments,
    forecast_accuracy,
)

# `_latest` views of the serving contract: for each plan_id, the rows of its greatest stamp.
SERVING_VIEWS: dict[str, tuple[str, str]] = {
    "session_gmv_forecast_latest": ("session_gmv_forecast", "forecast_made_at"),
    "product_recommendations_latest": ("product_recommendations", "generated_at"),
}

LAYERS: dict[str, tuple[Table, ...]] = {
    "clean": (
        clean_products,
        clean_sessions,
        clean_lineups,
        clean_orders,
        clean_refunds,
        clean_plans,
        clean_plan_lineups,
        clean_session_plans,
        clean_viewer_sessions,
        clean_viewer_products,
        clean_bot_viewers,
        clean_viewers,
    ),
    "ops": (ops_quarantine, ops_ingest_ledger, ops_check_results, ops_publications),
    "ml": (model_registry,),
    "serving": SERVING_TABLES,
}
