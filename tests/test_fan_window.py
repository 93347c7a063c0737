"""The fan history is read over the window its rules look back on (serving-tables.md,
"fan_segments": 365 days ending the as-of date), so a night's cost follows the window, not the
length of the history; the edges of that window are local dates."""

from __future__ import annotations

import datetime as dt

import pandas as pd
import pytest

from ml.fans import FAN_DAYS, fans_as_of, history_of, history_start
from warehouse import serving_checks
from warehouse.fan_inputs import read_fan_inputs
from warehouse.schema import clean_orders, clean_sessions, clean_viewer_sessions
from warehouse.store import create_schema, make_engine

AS_OF = dt.date(2026, 11, 12)
SINCE = history_start(AS_OF)  # 2025-11-13: the first of the 365 local dates ending AS_OF
# Session starts in UTC: "old" is 23:30 local the day before the window, "edge" 00:30 local on
# its first day (16:30 UTC the day before), "new" two days before the as-of date.
STARTS = {
    "jd:old": pd.Timestamp("2025-11-12 15:30"),
    "jd:edge": pd.Timestamp("2025-11-12 16:30"),
    "jd:new": pd.Timestamp("2026-11-10 12:00"),
}
SOURCE = {"source_file": "f", "source_line": 2, "run_id": "r"}


def _session(key: str, start: pd.Timestamp) -> dict:
    return {
        "session_key": key, "export_date": start.date(), "platform": "jd",
        "session_id": key[3:], "room_id": "room", "host_id": "h", "start_time": start,
        "viewers": 1, "views": 1, "peak_online": 1, "avg_watch_s": 1.0, "new_followers": 0,
        "comments": 0, "likes": 0, "gmv_fen": 0, "orders": 0, "is_test": False, **SOURCE,
    }  # fmt: skip


def _visit(session: str, viewer: str) -> dict:
    start = STARTS[session]
    return {
        "session_key": session, "viewer_key": viewer, "platform": "jd", "first_seen": start,
        "last_seen": start, "enters": 1, "watch_s": 60.0, "comments": 0, "likes": 0,
        "follows": 0, "shares": 0, "product_clicks": 0, "carts": 0, "is_bot": False,
        "as_of_date": start.date(), "run_id": "r",
    }  # fmt: skip


def _paid(order: str, session: str, viewer: str, export_date: dt.date) -> dict:
    start = STARTS[session]
    return {
        "order_key": order, "export_date": export_date, "platform": "jd", "order_id": order,
        "session_key": session, "sku": "sku1", "viewer_key": viewer, "quantity": 1,
        "unit_price_fen": 10_000, "paid_fen": 10_000, "created_at": start, "paid_at": start,
        "status": "paid", **SOURCE,
    }  # fmt: skip


@pytest.fixture
def engine(tmp_path):
    engine = make_engine(f"sqlite:///{tmp_path / 'wh.db'}")
    create_schema(engine)
    with engine.begin() as conn:
        conn.execute(clean_sessions.insert(), [_session(k, s) for k, s in STARTS.items()])
        conn.execute(
            clean_viewer_sessions.insert(),
            [
                _visit("jd:old", "a1"),  # seen only the day before the window: no fan
                _visit("jd:edge", "a2"),  # seen on the window's first day: a dormant fan
                _visit("jd:old", "a3"),  # paid, late, for a session before the window
                _visit("jd:edge", "a4"),
                _visit("jd:new", "a4"),  # two lines paid two days ago: a core fan
            ],
        )
        conn.execute(
            clean_orders.insert(),
            [
                _paid("o1", "jd:old", "a3", dt.date(2025, 11, 20)),
                _paid("o2", "jd:new", "a4", dt.date(2026, 11, 10)),
                _paid("o3", "jd:new", "a4", dt.date(2026, 11, 10)),
            ],
        )
    return engine


def test_a_fan_history_reads_only_the_sessions_of_its_window(engine):
    inputs = read_fan_inputs(engine, AS_OF, SINCE, products=False)
    assert set(inputs["sessions"]["session_key"]) == {"jd:edge", "jd:new"}
    assert set(inputs["viewer_sessions"]["viewer_key"]) == {"a2", "a4"}
    assert sorted(inputs["paid"]["session_key"]) == ["jd:new", "jd:new"]
    assert "viewer_products" not in inputs  # the tiers need no product-level rows

    fans = fans_as_of(history_of(inputs), AS_OF).set_index("viewer_key")
    assert list(fans.index) == ["a2", "a4"]
    assert fans.loc["a2", ["segment", "last_seen_days"]].tolist() == ["dormant", FAN_DAYS - 1]
    assert fans.loc["a4", ["segment", "orders_365d", "spend_365d_fen"]].tolist() == [
        "core",
        2,
        20_000,
    ]


def test_the_rule_re_derived_by_the_check_agrees_on_the_window(engine):
    inputs = read_fan_inputs(engine, AS_OF, SINCE, products=False)
    stored = fans_as_of(history_of(inputs), AS_OF)
    stored = stored.assign(spend_365d=stored["spend_365d_fen"] / 100)
    derived = serving_checks.fans_from_clean_layer(engine, AS_OF, prefix="a")
    assert sorted(derived["viewer_key"]) == ["a2", "a4"]
    assert serving_checks.fan_segment_problems(stored, derived).empty
    # The check fails when the tiers read from a day earlier: a3's line, paid late for the
    # session before the window, would make a fan of a3.
    everything = read_fan_inputs(engine, AS_OF, SINCE - dt.timedelta(days=1), products=False)
    too_wide = fans_as_of(history_of(everything), AS_OF)
    too_wide = too_wide.assign(spend_365d=too_wide["spend_365d_fen"] / 100)
    problems = serving_checks.fan_segment_problems(too_wide, derived)
    assert "not a fan of the room by the rule" in set(problems["problem"])
