"""The Great Expectations suites: each passes on good rows and fails, with examples, on bad."""

from __future__ import annotations

import datetime as dt
import gc

import pandas as pd
import pytest

from warehouse import quality

DAY = dt.date(2026, 11, 11)


def orders(**changes) -> pd.DataFrame:
    base = {
        "order_key": ["jd:1", "jd:2"],
        "export_date": [DAY, DAY],
        "platform": ["jd", "jd"],
        "session_key": ["jd:s", "jd:s"],
        "sku": ["LS-KT1000", "LS-KT1000"],
        "viewer_key": ["a" * 64, "b" * 64],
        "quantity": [1, 2],
        "unit_price_fen": [129900, 9900],
        "paid_fen": [124900, 19800],
        "created_at": pd.to_datetime(["2026-11-11 12:00", "2026-11-11 12:05"]),
        "paid_at": pd.to_datetime(["2026-11-11 12:01", None]),
        "status": ["paid", "unpaid"],
    }
    base.update(changes)
    return pd.DataFrame(base)


def sessions(**changes) -> pd.DataFrame:
    base = {
        "session_key": ["jd:s"], "export_date": [DAY], "platform": ["jd"], "room_id": ["r"],
        "host_id": ["H001"], "start_time": pd.to_datetime(["2026-11-11 12:00"]),
        "end_time": pd.to_datetime(["2026-11-11 15:00"]), "viewers": [100], "views": [120],
        "peak_online": [40], "avg_watch_s": [300.0], "gmv_fen": [1000], "orders": [1],
    }  # fmt: skip
    base.update(changes)
    return pd.DataFrame(base)


def test_good_rows_pass_both_suites():
    for table, frame in (("clean_orders", orders()), ("clean_sessions", sessions())):
        assert quality.validate(table, frame, blocking=True).passed
        assert quality.validate(table, frame, blocking=False).passed


def test_a_validated_frame_is_not_kept_by_great_expectations():
    size = 4321  # no other frame of the suite has this many rows
    frame = pd.concat([orders()] * (size // 2) + [orders().head(1)], ignore_index=True)
    frame["order_key"] = [f"jd:{i}" for i in range(size)]
    assert quality.validate("clean_orders", frame, blocking=True).passed
    del frame
    gc.collect()
    alive = [o for o in gc.get_objects() if isinstance(o, pd.DataFrame) and len(o) == size]
    assert alive == []


def test_blocking_suite_names_the_failing_rows():
    verdict = quality.validate("clean_orders", orders(order_key=["jd:1", "jd:1"]), blocking=True)
    assert not verdict.passed
    (failure,) = verdict.failures
    assert failure.expectation == "expect_compound_columns_to_be_unique"
    assert failure.unexpected_count == 2
    assert any("jd:1" in str(e) for e in failure.examples)
    assert failure.expectation in verdict.summary()


@pytest.mark.parametrize(
    ("table", "frame", "column"),
    [
        ("clean_orders", orders(quantity=[1, 0], paid_fen=[124900, 0]), "quantity"),
        ("clean_sessions", sessions(end_time=pd.to_datetime(["2026-11-12 04:00"])), "duration_min"),
        (
            "clean_products",
            pd.DataFrame(
                {"sku": ["A"], "export_date": [DAY], "list_price_fen": [0], "launch_date": [DAY]}
            ),
            "list_price_fen",
        ),
        (
            "clean_plans",
            pd.DataFrame(
                {
                    "plan_id": ["P1"],
                    "export_date": [DAY],
                    "planned_minutes": [850],
                    "planned_start": pd.to_datetime(["2026-11-12 12:00"]),
                    "exported_at": pd.to_datetime(["2026-11-11 13:00"]),
                }
            ),
            "planned_minutes",
        ),
    ],
    ids=["quantity-0", "session-16h", "list-price-0", "plan-850-min"],
)
def test_rows_the_contract_allows_warn_and_never_block(table, frame, column):
    """A zero list price, a zero quantity, a long session or plan: odd, not impossible
    (landing-zone.md sets no bound), so a warning names them and nothing is held."""
    assert quality.validate(table, frame, blocking=True).passed
    verdict = quality.validate(table, frame, blocking=False)
    assert [f.column for f in verdict.failures] == [column]


def test_warnings_flag_odd_but_possible_rows():
    odd = orders(paid_fen=[124900, 30000])  # paid more than 2 x 99.00: a warning, not a block
    assert quality.validate("clean_orders", odd, blocking=True).passed
    verdict = quality.validate("clean_orders", odd, blocking=False)
    assert not verdict.passed and verdict.failures[0].examples[0]["order_key"] == "jd:2"


def test_empty_partition_passes_column_rules():
    assert quality.validate("clean_orders", orders().iloc[0:0], blocking=True).passed


def test_every_checked_table_has_a_blocking_suite_and_warnings_only_where_checked():
    from assets.checks import DERIVED_ASSETS
    from assets.clean import CLEAN_ASSET_NAMES
    from warehouse.ingest import CLEAN_TABLE

    suites = quality._suites()
    warned = (
        {CLEAN_TABLE[t] for t in CLEAN_ASSET_NAMES}
        | {"gmv_features"}
        | {table for tables in DERIVED_ASSETS.values() for table, warns in tables if warns}
    )
    checked = warned | {table for tables in DERIVED_ASSETS.values() for table, _ in tables}
    assert checked | {"events", "gmv_features"} == set(suites)
    for table, (blocking, warnings) in suites.items():
        assert blocking, table
        assert bool(warnings) == (table in warned), table


def test_derived_tables_block_on_broken_invariants():
    t0 = pd.Timestamp("2026-11-11 12:00")
    plans = pd.DataFrame(
        {
            "session_key": ["jd:a", "jd:b"], "platform": ["jd", "jd"], "room_id": ["r", "r"],
            "start_time": [t0, t0], "plan_id": ["P1", "P1"], "start_diff_min": [5.0, 200.0],
        }
    )  # fmt: skip
    failed = quality.validate("clean_session_plans", plans, blocking=True).failures
    assert {(f.expectation, f.column) for f in failed} == {
        ("expect_column_values_to_be_unique", "plan_id"),
        ("expect_column_values_to_be_between", "start_diff_min"),
    }
    bots = pd.DataFrame(
        {
            "platform": ["jd"], "viewer_key": ["c" * 64], "event_date": [DAY],
            "events": [40], "peak_events_60s": [30],
        }
    )  # fmt: skip
    (failure,) = quality.validate("clean_bot_viewers", bots, blocking=True).failures
    assert failure.column == "peak_events_60s"
