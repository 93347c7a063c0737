"""Great Expectations suites of the clean tables, defined in code, and a plain-data verdict.

Each clean table has a blocking suite (bad data that must stop what depends on it: keys that
are not unique; a value one row can break is quarantined at the door) and a warning suite (odd
but possible data a person should look at). Why each rule is where it is: README, "Quality
gates".
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from dataclasses import dataclass, field

import pandas as pd

from contract.enums import PLAN_DAYS, PLATFORMS
from warehouse.activity import BOT_MIN_EVENTS
from warehouse.matching import MAX_GAP

MAX_PRICE_FEN = 100_000 * 100  # a price above 100,000 yuan is worth a look (a warning)
MAX_SESSION_MINUTES = 12 * 60
EXAMPLES = 5
MAX_MATCH_MINUTES = MAX_GAP.total_seconds() / 60
MIN_MATCHED_SHARE = 0.8  # most sessions are planned; fewer matches mean a plan export is missing
MAX_BOT_SHARE = 0.05  # more bot viewer-sessions than this: an attack, or the rule is off


@dataclass
class Failure:
    expectation: str
    column: str
    unexpected_count: int | None
    unexpected_percent: float | None
    examples: list[dict]


@dataclass
class Verdict:
    suite: str
    rows: int
    failures: list[Failure] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return not self.failures

    def summary(self) -> str:
        if self.passed:
            return f"{self.suite}: all expectations met on {self.rows} rows"
        parts = [
            f"{f.expectation}({f.column}): {f.unexpected_count} rows, e.g. {f.examples[:2]}"
            for f in self.failures
        ]
        return f"{self.suite}: " + "; ".join(parts)

    def failures_frame(self) -> pd.DataFrame:
        return pd.DataFrame(
            [
                {
                    "expectation": f.expectation,
                    "column": f.column,
                    "rows": f.unexpected_count,
                    "percent": None
                    if f.unexpected_percent is None
                    else round(f.unexpected_percent, 3),
                    "examples": "; ".join(str(e) for e in f.examples[:3]),
                }
                for f in self.failures
            ],
            columns=["expectation", "column", "rows", "percent", "examples"],
        )


def _suites() -> dict[str, tuple[list, list]]:
    """table -> (blocking expectations, warning expectations)."""
    import great_expectations.expectations as gxe

    def not_null(*columns: str) -> list:
        return [gxe.ExpectColumnValuesToNotBeNull(column=c) for c in columns]

    def non_negative(*columns: str) -> list:
        return [gxe.ExpectColumnValuesToBeBetween(column=c, min_value=0) for c in columns]

    def unique(*columns: str) -> object:
        return gxe.ExpectCompoundColumnsToBeUnique(column_list=[*columns, "export_date"])

    platforms = gxe.ExpectColumnValuesToBeInSet(column="platform", value_set=list(PLATFORMS))
    # The clean tables' blocking suites hold only what no single row shows: a key twice in one
    # partition. Every rule one row can break (a required field, a negative amount, an unknown
    # status, a time outside the plausible window) is the door's, which quarantines that row
    # with its reason (warehouse/door.py, warehouse/parsing.py); ranges the contract does not
    # set are warnings (README, "Quality gates").
    return {
        "events": ([gxe.ExpectColumnValuesToBeUnique(column="event_id")], []),
        "clean_products": (
            [unique("sku")],
            [
                gxe.ExpectColumnValuesToNotBeNull(column="launch_date"),
                gxe.ExpectColumnValuesToBeBetween(
                    column="list_price_fen", min_value=1, max_value=MAX_PRICE_FEN
                ),
            ],
        ),
        "clean_plans": (
            [unique("plan_id")],
            [
                gxe.ExpectColumnPairValuesAToBeGreaterThanB(
                    column_A="planned_start", column_B="exported_at"
                ),
                gxe.ExpectColumnValuesToBeBetween(
                    column="planned_minutes", min_value=1, max_value=MAX_SESSION_MINUTES
                ),
            ],
        ),
        "clean_plan_lineups": (
            [unique("plan_id", "sku")],
            [
                gxe.ExpectColumnPairValuesAToBeGreaterThanB(
                    column_A="planned_price_fen", column_B="coupon_fen",
                    ignore_row_if="either_value_is_missing",
                ),
                gxe.ExpectColumnValuesToBeBetween(
                    column="planned_price_fen", min_value=1, max_value=MAX_PRICE_FEN
                ),
            ],
        ),
        "clean_sessions": (
            [unique("session_key")],
            [
                gxe.ExpectColumnPairValuesAToBeGreaterThanB(
                    column_A="views", column_B="viewers", or_equal=True
                ),
                gxe.ExpectColumnValuesToBeBetween(
                    column="duration_min", max_value=MAX_SESSION_MINUTES
                ),
            ],
        ),
        "clean_lineups": (
            [unique("session_key", "sku")],
            [
                gxe.ExpectColumnPairValuesAToBeGreaterThanB(
                    column_A="strike_price_fen", column_B="live_price_fen", or_equal=True
                ),
                gxe.ExpectColumnValuesToBeBetween(column="live_price_fen", max_value=MAX_PRICE_FEN),
            ],
        ),
        "clean_orders": (
            [unique("order_key")],
            [
                gxe.ExpectColumnPairValuesAToBeGreaterThanB(
                    column_A="paid_at", column_B="created_at", or_equal=True,
                    ignore_row_if="either_value_is_missing",
                ),
                gxe.ExpectColumnPairValuesAToBeGreaterThanB(
                    column_A="list_amount_fen", column_B="paid_fen", or_equal=True
                ),
                gxe.ExpectColumnValuesToBeBetween(column="quantity", min_value=1),
            ],
        ),
        "clean_refunds": (
            [unique("refund_key")],
            # After-sales needs the reason to act on; a few blank ones are normal.
            [
                gxe.ExpectColumnValuesToNotBeNull(column="reason", mostly=0.95),
                gxe.ExpectColumnValuesToBeBetween(column="amount_fen", min_value=1),
            ],
        ),
        # Point-in-time features of the plans exported on a date (ml/features.py).
        "gmv_features": (
            [
                gxe.ExpectCompoundColumnsToBeUnique(column_list=["plan_id", "forecast_date"]),
                platforms,
                *not_null("plan_id", "forecast_date", "room_id", "host_id", "planned_start",
                          "hour", "weekday", "planned_minutes", "reservations"),
                gxe.ExpectColumnValuesToBeBetween(
                    column="horizon_days", min_value=1, max_value=PLAN_DAYS
                ),
                *non_negative("reservations", "n_skus"),
            ],
            # A plan without a lineup, or a room without history, is possible but worth a look;
            # so is a session planned longer than 12 hours (the contract sets no bound).
            [
                gxe.ExpectColumnValuesToNotBeNull(column="n_skus", mostly=0.99),
                gxe.ExpectColumnValuesToNotBeNull(column="room_mean5_gmv", mostly=0.9),
                gxe.ExpectColumnValuesToBeBetween(
                    column="planned_minutes", min_value=1, max_value=MAX_SESSION_MINUTES
                ),
            ],
        ),
        # Derived tables: one row per key (no export date), restated as of a date.
        "clean_session_plans": (
            [
                gxe.ExpectColumnValuesToBeUnique(column="session_key"),
                gxe.ExpectColumnValuesToBeUnique(column="plan_id"),  # one session per plan
                platforms,
                *not_null("session_key", "room_id", "start_time"),
                gxe.ExpectColumnValuesToBeBetween(
                    column="start_diff_min", min_value=-MAX_MATCH_MINUTES,
                    max_value=MAX_MATCH_MINUTES,
                ),
            ],
            [gxe.ExpectColumnValuesToNotBeNull(column="plan_id", mostly=MIN_MATCHED_SHARE)],
        ),
        "clean_viewer_sessions": (
            [
                gxe.ExpectCompoundColumnsToBeUnique(column_list=["session_key", "viewer_key"]),
                platforms,
                *not_null("session_key", "viewer_key", "first_seen", "last_seen"),
                gxe.ExpectColumnValueLengthsToEqual(column="viewer_key", value=64),
                *non_negative("enters", "comments", "likes", "follows", "shares",
                              "product_clicks", "carts"),
                *non_negative("watch_s"),
                gxe.ExpectColumnPairValuesAToBeGreaterThanB(
                    column_A="last_seen", column_B="first_seen", or_equal=True
                ),
            ],
            [gxe.ExpectColumnValuesToBeInSet(column="is_bot", value_set=[False],
                                             mostly=1 - MAX_BOT_SHARE),
             gxe.ExpectColumnValuesToBeBetween(column="watch_s",
                                               max_value=MAX_SESSION_MINUTES * 60)],
        ),
        "clean_viewer_products": (
            [
                gxe.ExpectCompoundColumnsToBeUnique(
                    column_list=["session_key", "viewer_key", "sku"]
                ),
                *not_null("session_key", "viewer_key", "sku"),
                *non_negative("clicks", "carts"),
            ],
            [],
        ),
        "clean_bot_viewers": (
            [
                gxe.ExpectCompoundColumnsToBeUnique(
                    column_list=["platform", "viewer_key", "event_date"]
                ),
                platforms,
                # The documented rule: more than 60 events within some 60 seconds.
                gxe.ExpectColumnValuesToBeBetween(
                    column="peak_events_60s", min_value=BOT_MIN_EVENTS
                ),
                gxe.ExpectColumnPairValuesAToBeGreaterThanB(
                    column_A="events", column_B="peak_events_60s", or_equal=True
                ),
            ],
            [],
        ),
        "clean_viewers": (
            [
                gxe.ExpectColumnValuesToBeUnique(column="viewer_key"),
                platforms,
                gxe.ExpectColumnValueLengthsToEqual(column="viewer_key", value=64),
                *non_negative("sessions", "rooms", "paid_lines", "spend_fen", "bot_days"),
                gxe.ExpectColumnPairValuesAToBeGreaterThanB(
                    column_A="last_seen", column_B="first_seen", or_equal=True,
                    ignore_row_if="either_value_is_missing",
                ),
            ],
            [],
        ),
    }  # fmt: skip


# Columns derived for the expectations only (GX compares columns, not expressions).
_DERIVED: dict[str, Callable[[pd.DataFrame], pd.DataFrame]] = {
    "clean_sessions": lambda df: df.assign(
        duration_min=(
            pd.to_datetime(df["end_time"]) - pd.to_datetime(df["start_time"])
        ).dt.total_seconds()
        / 60
    ),
    "clean_orders": lambda df: df.assign(list_amount_fen=df["unit_price_fen"] * df["quantity"]),
}
_INDEX_COLUMNS = {
    "events": ["event_id"],
    "clean_plans": ["plan_id"],
    "clean_plan_lineups": ["plan_id", "sku"],
    "clean_products": ["sku"],
    "clean_sessions": ["session_key"],
    "clean_lineups": ["session_key", "sku"],
    "clean_orders": ["order_key"],
    "clean_refunds": ["refund_key"],
    "gmv_features": ["plan_id", "forecast_date"],
    "clean_session_plans": ["session_key"],
    "clean_viewer_sessions": ["session_key", "viewer_key"],
    "clean_viewer_products": ["session_key", "viewer_key", "sku"],
    "clean_bot_viewers": ["viewer_key", "event_date"],
    "clean_viewers": ["viewer_key"],
}


@functools.cache
def _context():
    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig

    logging.getLogger("great_expectations").setLevel(logging.WARNING)
    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False)
    return context


@functools.cache
def _batch_definition(table: str):
    context = _context()
    source = context.data_sources.add_pandas(f"{table}_source")
    return source.add_dataframe_asset(table).add_batch_definition_whole_dataframe("partition")


def validate(table: str, df: pd.DataFrame, blocking: bool) -> Verdict:
    """Run the table's blocking or warning suite on `df` and say what failed, with examples."""
    import great_expectations as gx

    expectations = _suites()[table][0 if blocking else 1]
    suite_name = f"{table}_{'blocking' if blocking else 'warnings'}"
    verdict = Verdict(suite_name, len(df))
    if not expectations or df.empty:
        return verdict
    frame = _DERIVED.get(table, lambda d: d)(df.reset_index(drop=True))
    suite = gx.ExpectationSuite(name=suite_name, expectations=expectations)
    batch = _batch_definition(table).get_batch(batch_parameters={"dataframe": frame})
    try:
        result = batch.validate(
            suite,
            result_format={
                "result_format": "SUMMARY",
                "unexpected_index_column_names": _INDEX_COLUMNS[table],
            },
        )
    finally:
        # The datasource's execution engine keeps the batch's frame until the table's next
        # validation: on the bench day, every big table's last partition at once (about 4 GiB
        # of the run's 6.2 GiB peak, docs/performance.md). The next validation loads its own.
        manager = batch.data.execution_engine.batch_manager
        manager.batch_data_cache.clear()
        manager.reset_batch_cache()
    for item in result.results:
        if item.success:
            continue
        kwargs = item.expectation_config.kwargs
        column = kwargs.get("column") or ",".join(
            str(kwargs[k]) for k in ("column_A", "column_B", "column_list") if k in kwargs
        )
        examples = [
            {k: str(v) for k, v in example.items()}
            for example in (item.result.get("partial_unexpected_index_list") or [])[:EXAMPLES]
        ]
        verdict.failures.append(
            Failure(
                expectation=item.expectation_config.type,
                column=column,
                unexpected_count=item.result.get("unexpected_count"),
                unexpected_percent=item.result.get("unexpected_percent"),
                examples=examples,
            )
        )
    return verdict
