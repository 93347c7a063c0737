"""Every kind of bad input of the contract, on files the test writes, through the real graph.

Longer than ~400 lines on purpose: one test per kind of the contract's "What real exports do",
each on a few files of its own through the graph: the clean layer, the scorecard and the
operators' reports, whose tables are all these tests read (the empty day runs the whole graph)."""

from __future__ import annotations

import datetime as dt

import dagster as dg
import numpy as np
import pandas as pd
import pytest

from tests.conftest import lake_for, run_assets, sqlite_url
from tests.landing_builder import (
    SKUS,
    event,
    lineup,
    order,
    refund,
    session,
    write_catalog,
    write_day,
    write_events,
)
from tests.test_pipeline import THROUGH_SCORECARD, failure_text
from warehouse.gates import record_check
from warehouse.store import make_engine, read_frame

D1, D2, D3 = "2026-11-01", "2026-11-02", "2026-11-03"


@pytest.fixture
def landing(tmp_path):
    root = tmp_path / "landing"
    write_catalog(root, D1)
    return root


@pytest.fixture
def url(tmp_path) -> str:
    return sqlite_url(tmp_path / "w.db")


# What a fault can reach that these tests read; the features and models downstream see only
# what the door let through, and the graph runs whole on the tiny preset's dirt (test_pipeline).
DOOR_TO_REPORTS = THROUGH_SCORECARD | dg.AssetSelection.groups("ops")


def run(landing, url: str, first: str, last: str | None = None, selection=DOOR_TO_REPORTS):
    return run_assets(landing, url, first, last, selection)


def q(url: str, sql: str) -> pd.DataFrame:
    return read_frame(make_engine(url), sql)


def base_day(landing, **overrides) -> None:
    tables = {
        "sessions": [session("S1", f"{D1} 20:00:00", f"{D1} 22:00:00")],
        "lineup": [lineup("S1"), lineup("S1", SKUS[1])],
        "orders": [
            order("O1", "S1", f"{D1} 20:10:00", f"{D1} 20:11:00", "paid"),
            order("O2", "S1", f"{D1} 20:20:00", None, "closed"),
        ],
    }
    tables.update(overrides)
    write_day(landing, D1, **tables)


def test_clean_day_scorecard(landing, url):
    base_day(landing)
    assert run(landing, url, D1).success
    card = q(url, "SELECT * FROM session_scorecard")
    assert card[["session_key", "orders", "gmv", "aov"]].values.tolist() == [
        ["douyin:S1", 1, 999.0, 999.0]
    ]


def test_same_row_twice_is_one_clean_row_and_a_counted_duplicate(landing, url):
    o1 = order("O1", "S1", f"{D1} 20:10:00", f"{D1} 20:11:00", "paid")
    base_day(landing, orders=[o1, o1])
    assert run(landing, url, D1).success
    ledger = q(
        url, "SELECT * FROM ops_ingest_ledger WHERE source_file = 'douyin/2026-11-01/orders.csv'"
    )
    assert ledger[
        ["raw_rows", "clean_rows", "duplicate_rows", "quarantined_rows"]
    ].values.tolist() == [[2, 1, 1, 0]]


def test_reexported_key_with_changed_values_later_export_wins(landing, url):
    base_day(landing)
    write_day(landing, D2, sessions=[session("S1", f"{D1} 20:00:00", f"{D1} 22:00:00", views=999)],
              lineup=[lineup("S1")])  # fmt: skip
    assert run(landing, url, D1, D2).success
    current = q(url, "SELECT views, export_date FROM clean_sessions_current")
    assert current.values.tolist() == [[999, D2]]
    assert q(url, "SELECT views FROM session_scorecard")["views"].tolist() == [999]


def test_still_live_session_is_upserted_when_finished(landing, url):
    base_day(landing, sessions=[session("S1", f"{D1} 22:00:00", None)])
    assert run(landing, url, D1).success
    assert q(url, "SELECT end_time FROM session_scorecard")["end_time"].isna().all()
    write_day(
        landing,
        D2,
        sessions=[session("S1", f"{D1} 22:00:00", f"{D2} 00:40:00")],
        lineup=[lineup("S1")],
    )
    assert run(landing, url, D2).success
    card = q(url, "SELECT end_time, duration_min, as_of_date FROM session_scorecard")
    assert card.values.tolist() == [["2026-11-01 16:40:00.000000", 160.0, D2]]


def test_late_orders_and_refunds_restate_the_earlier_session(landing, url):
    base_day(landing)
    write_day(
        landing, D2,
        orders=[order("O3", "S1", f"{D2} 00:05:00", f"{D2} 00:06:00", "paid", paid=50000)],
        refunds=[refund("R1", "O1", 20000, f"{D2} 10:00:00")],
    )  # fmt: skip
    assert run(landing, url, D1, D2).success
    card = q(url, "SELECT orders, gmv, refunded, net_gmv, as_of_date FROM session_scorecard")
    assert card.values.tolist() == [[2, 1499.0, 200.0, 1299.0, D2]]


# Each kind of malformed order line, as an edit of a good line's text (written for order O1),
# on a line of its own: one run quarantines each with its file, line, field and reason, and
# keeps the good lines after them.
MALFORMED_ORDERS = [
    (",已支付", ",已支付,多余", None, "wrong field count"),
    ("2026-11-01 20:10:00", "2026-11-01 25:10:00", "created_at", "created_at unparseable"),
    ("999.00,999.00", "999.00,9x9.00", "paid", "paid unparseable"),
    (
        "杭州市,西湖区文三路100号,1,",
        "杭州市,西湖区文三路100号,-1,",
        "quantity",
        "quantity negative",
    ),
    ("O1,S1,LS-KT1000", "O1,S1,LS-XX9999", "sku", "sku not in the catalogue"),
    ("O1,S1,", "O1,S404,", "session_key", "order of a session"),
]


@pytest.fixture(scope="module")
def malformed_orders_run(tmp_path_factory) -> str:
    root = tmp_path_factory.mktemp("malformed_orders")
    landing, url = root / "landing", sqlite_url(root / "w.db")
    write_catalog(landing, D1)
    paid = (f"{D1} 20:10:00", f"{D1} 20:11:00", "paid")
    broken = [order(f"B{n}", "S1", *paid) for n in range(len(MALFORMED_ORDERS))]
    base_day(landing, orders=[*broken, order("O1", "S1", *paid), order("O2", "S1", *paid)])
    path = landing / "douyin" / D1 / "orders.csv"
    lines = path.read_text(encoding="utf-8-sig").split("\n")
    for n, (old, new, _, _) in enumerate(MALFORMED_ORDERS):
        line = lines[n + 1]  # after the header
        old, new = old.replace("O1,", f"B{n},"), new.replace("O1,", f"B{n},")
        assert line.startswith(f"B{n},") and old in line, line
        lines[n + 1] = line.replace(old, new, 1)
    path.write_text("\n".join(lines), encoding="utf-8-sig")
    assert run(landing, url, D1).success
    return url


def test_malformed_order_lines_are_quarantined_and_the_good_ones_kept(malformed_orders_run):
    quarantine = q(malformed_orders_run, "SELECT * FROM ops_quarantine")
    assert sorted(quarantine["source_line"]) == list(range(2, len(MALFORMED_ORDERS) + 2))
    assert set(quarantine["source_file"]) == {"douyin/2026-11-01/orders.csv"}
    assert set(quarantine["table_name"]) == {"orders"}
    clean = q(malformed_orders_run, "SELECT order_id FROM clean_orders ORDER BY order_id")
    assert clean["order_id"].tolist() == ["O1", "O2"]


@pytest.mark.parametrize(("line", "case"), enumerate(MALFORMED_ORDERS, start=2))
def test_a_malformed_order_line_is_quarantined_with_field_and_reason(
    malformed_orders_run, line, case
):
    _, _, field, reason = case
    row = q(malformed_orders_run, f"SELECT * FROM ops_quarantine WHERE source_line = {line}")
    assert len(row) == 1
    row = row.iloc[0]
    assert row["reason"].startswith(reason) and (field is None or row["field"] == field)
    assert "13800138000" not in row["raw"] and "文三路" not in row["raw"]  # masked


def test_negative_price_and_unknown_sku_in_lineup(landing, url):
    base_day(landing, lineup=[lineup("S1", live_price=-100), lineup("S1", "LS-NOPE")])
    assert run(landing, url, D1).success
    reasons = sorted(q(url, "SELECT reason FROM ops_quarantine")["reason"])
    assert reasons[0].startswith("live_price negative") and reasons[1] == "sku not in the catalogue"


def test_refund_of_unpaid_line_and_refund_above_paid_are_malformed(landing, url):
    base_day(landing)
    write_day(
        landing, D2,
        refunds=[
            refund("R1", "O2", 100, f"{D2} 09:00:00"),  # O2 was never paid
            refund("R2", "O1", 90000, f"{D2} 09:00:00"),
            refund("R3", "O1", 10000, f"{D2} 10:00:00"),  # 900 + 100 > 999 paid
            refund("R4", "O9", 100, f"{D2} 10:00:00"),  # no such order
        ],
    )  # fmt: skip
    assert run(landing, url, D1, D2).success
    got = q(url, "SELECT raw, reason FROM ops_quarantine ORDER BY source_line")
    assert got["reason"].tolist() == [
        "refund of an unpaid order line",
        "refunds above the order line's paid amount",
        "refund of an order unknown by its date",
    ]
    assert q(url, "SELECT refund_id FROM clean_refunds")["refund_id"].tolist() == ["R2"]


def test_test_sessions_are_kept_flagged_and_left_out_of_the_scorecard(landing, url):
    base_day(
        landing,
        sessions=[
            session("S1", f"{D1} 20:00:00", f"{D1} 22:00:00"),
            session("T1", f"{D1} 09:00:00", f"{D1} 10:00:00", title="推流测试"),
            session("T2", f"{D1} 09:00:00", f"{D1} 09:04:00"),
            session("T3", f"{D1} 11:00:00", f"{D1} 12:00:00", viewers=0),
            session("T4", f"{D1} 13:00:00", f"{D1} 14:00:00", title="TEST stream"),
        ],
        orders=[order("O1", "T1", f"{D1} 09:10:00", f"{D1} 09:11:00", "paid")],
    )
    assert run(landing, url, D1).success
    flags = q(url, "SELECT session_id, is_test FROM clean_sessions ORDER BY session_id")
    assert flags.values.tolist() == [["S1", 0], ["T1", 1], ["T2", 1], ["T3", 1], ["T4", 1]]
    assert q(url, "SELECT order_id FROM clean_orders")["order_id"].tolist() == ["O1"]  # kept
    assert q(url, "SELECT session_key FROM session_scorecard")["session_key"].tolist() == [
        "douyin:S1"
    ]


def test_platform_gmv_gap_is_reported(landing, url):
    base_day(
        landing, sessions=[session("S1", f"{D1} 20:00:00", f"{D1} 22:00:00", gmv=150000, orders=2)]
    )
    assert run(landing, url, D1).success
    card = q(url, "SELECT gmv, platform_gmv, gmv_gap FROM session_scorecard")
    assert card.values.tolist() == [[999.0, 1500.0, 501.0]]


def test_extra_column_is_tolerated_and_reported(landing, url):
    base_day(landing)
    path = landing / "douyin" / D1 / "sessions.csv"
    lines = path.read_text(encoding="utf-8-sig").splitlines()
    path.write_text(
        "\n".join([lines[0] + ",备注"] + [x + ",见附件" for x in lines[1:]]) + "\n",
        encoding="utf-8-sig",
    )
    result = run(landing, url, D1)
    assert result.success
    meta = result.asset_materializations_for_node("clean__sessions")[0].metadata
    assert meta["extra_columns_tolerated"].value == "备注"


def complete_check(result):
    (evaluation,) = [e for e in result.get_asset_check_evaluations() if e.check_name == "complete"]
    return evaluation


def test_an_empty_day_is_a_normal_day(landing, url):
    """Header-only files on every platform, a plan export without plans, an events folder with
    only `_SUCCESS`: everything runs green with zero rows and says so."""
    write_day(landing, D1)
    events = landing / "events" / D1
    for part in events.glob("*.jsonl.gz"):
        part.unlink()
    result = run(landing, url, D1, selection=None)
    assert result.success, failure_text(result)
    for node in ("clean__sessions", "clean__orders", "clean__plans", "clean__events"):
        meta = result.asset_materializations_for_node(node)[0].metadata
        assert meta["dagster/row_count"].value == 0, node
        assert meta["units_published"].value >= 1, node
    assert all(e.passed for e in result.get_asset_check_evaluations() if e.check_name == "complete")
    assert q(url, "SELECT COUNT(*) AS n FROM session_scorecard")["n"].iloc[0] == 0


def test_a_mostly_broken_file_fails_its_platform_date_at_the_door(landing, url):
    base_day(landing)
    assert run(landing, url, D1).success
    before = q(url, "SELECT * FROM session_scorecard")
    # The export is redone broken: every order line garbled but the first.
    many = [order(f"O{i}", "S1", f"{D1} 20:10:00", f"{D1} 20:11:00", "paid") for i in range(1, 12)]
    base_day(landing, orders=many)
    path = landing / "douyin" / D1 / "orders.csv"
    text = path.read_text(encoding="utf-8-sig").replace(",999.00,999.00,", ",999.00,??,")
    path.write_text(text.replace(",??,", ",999.00,", 1), encoding="utf-8-sig")
    result = run(landing, url, D1)
    assert not result.success  # the douyin report fails the run; nothing else does
    assert {e.step_key for e in result.get_step_failure_events()} == {"ops__douyin"}
    text = failure_text(result)
    assert "douyin/2026-11-01/orders.csv: 10 of 11 records are broken (paid" in text
    units = q(url, "SELECT platform, status FROM ops_publications WHERE asset_key = 'clean/orders'")
    assert dict(units.itertuples(index=False)) == {
        "douyin": "failed", "taobao": "published", "jd": "published"
    }  # fmt: skip
    pd.testing.assert_frame_equal(q(url, "SELECT * FROM session_scorecard"), before)

    # A later run of only the scorecard holds douyin's date too, and says why.
    later = run(landing, url, D1, selection=[dg.AssetKey(["serving", "session_scorecard"])])
    complete = complete_check(later)
    assert not complete.passed and complete.severity == dg.AssetCheckSeverity.ERROR
    assert "clean/orders douyin 2026-11-01: douyin/2026-11-01/orders.csv" in complete.description
    pd.testing.assert_frame_equal(q(url, "SELECT * FROM session_scorecard"), before)

    # The export is fixed and re-run: everything is published again.
    base_day(landing, orders=many)
    assert run(landing, url, D1).success
    assert q(url, "SELECT gmv FROM session_scorecard")["gmv"].tolist() == [999.0 * 11]


def test_a_file_of_garbage_fails_its_platform_date_and_no_other(landing, url):
    base_day(landing)
    noise = np.random.default_rng(5).integers(0, 256, 6000, dtype=np.uint8).tobytes()
    noise = noise.replace(b"\n", b"").replace(b"\r", b"")[:4000]
    lines = [noise[i : i + 200] for i in range(0, 4000, 200)]  # 20 lines of random bytes
    (landing / "jd" / D1 / "orders.jsonl").write_bytes(b"\n".join(lines))
    result = run(landing, url, D1)
    assert {e.step_key for e in result.get_step_failure_events()} == {"ops__jd"}
    assert (
        "jd/2026-11-01/orders.jsonl: 20 of 20 records are broken (bytes that are not UTF-8 (20))"
        in (failure_text(result))
    )
    assert q(url, "SELECT gmv FROM session_scorecard")["gmv"].tolist() == [999.0]  # douyin's


def test_a_failed_blocking_verdict_holds_later_runs_until_it_passes(landing, url):
    base_day(landing)
    assert run(landing, url, D1).success
    before = q(url, "SELECT * FROM session_scorecard")
    day = [dt.date.fromisoformat(D1)]
    record_check(make_engine(url), "clean/orders", "valid", day, False, "2 keys twice", "r1")
    scorecard = [dg.AssetKey(["serving", "session_scorecard"])]
    complete = complete_check(run(landing, url, D1, selection=scorecard))
    assert not complete.passed
    assert "clean/orders valid on 2026-11-01: the blocking check failed: 2 keys twice" in (
        complete.description
    )
    pd.testing.assert_frame_equal(q(url, "SELECT * FROM session_scorecard"), before)
    record_check(make_engine(url), "clean/orders", "valid", day, True, "", "r2")
    assert complete_check(run(landing, url, D1, selection=scorecard)).passed


def events_day(landing, events, day=D1, part="douyin-000"):
    base_day(landing)
    write_events(landing, day, events, part)


def lake_events(url: str) -> pd.DataFrame:
    frames = [pd.read_parquet(p) for p in sorted(lake_for(url).glob("events/*/part.parquet"))]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def test_duplicate_and_late_events_land_once(landing, url):
    e1 = event("e1", "S1", "v1", "enter", f"{D1} 20:05:00")
    e2 = event("e2", "S1", "v1", "like", f"{D1} 20:06:00")
    events_day(landing, [e1, e2, e1])
    write_day(landing, D2)
    write_events(landing, D2, [e2, event("e3", "S1", "v2", "enter", f"{D1} 21:00:00")])  # late
    assert run(landing, url, D1, D2).success
    got = lake_events(url)
    assert sorted(got["event_id"]) == ["e1", "e2", "e3"]
    ledger = q(
        url,
        "SELECT source_file, raw_rows, clean_rows, duplicate_rows FROM ops_ingest_ledger "
        "WHERE table_name = 'events' ORDER BY source_file",
    )
    assert ledger.values.tolist() == [
        ["events/2026-11-01/douyin-000.jsonl.gz", 3, 2, 1],
        ["events/2026-11-02/douyin-000.jsonl.gz", 2, 1, 1],
    ]


# Each kind of bad event on a line of its own, all in one file after a good line: one run
# quarantines each with its own kind and reason, and lets the good line through.
BAD_EVENTS = [
    (event("x1", "S1", "v1", "enter", f"{D1} 19:40:00"), "rule", "out of its session's window"),
    (event("x2", "S1", "v1", "enter", f"{D1} 22:11:00"), "rule", "out of its session's window"),
    (event("x3", "S1", "v1", "gift_sent", f"{D1} 20:30:00"), "value", "unknown event type"),
    (event("x4", "S1", None, "like", f"{D1} 20:30:00"), "value", "no viewer_id"),
    (
        event("x5", "S404", "v1", "like", f"{D1} 20:30:00"),
        "reference",
        "event of a session unknown",
    ),
    (
        event("x6", "S1", "v1", "product_click", f"{D1} 20:30:00"),
        "value",
        "product event without sku",
    ),
    ('{"event_id": "x0", "ts": "2026-11-01T20:3', "format", "malformed JSON line"),
    # Without an offset, never read as UTC: 12:30 would pass as 20:30 local, 20:30 would be
    # called out of window (landing-zone.md, "Damage that real exports carry").
    (
        {**event("x7", "S1", "v1", "like", f"{D1} 20:30:00"), "ts": f"{D1}T12:30:00.000"},
        "value",
        "ts without offset",
    ),
    (
        {**event("x8", "S1", "v1", "like", f"{D1} 20:30:00"), "ts": f"{D1}T20:30:00.000"},
        "value",
        "ts without offset",
    ),
    (
        {**event("x9", "S1", "v1", "like", f"{D1} 20:30:00"), "ts": f"{D1}T20:3x:00.000+08:00"},
        "value",
        "ts unparseable",
    ),
]
GOOD_EVENT = event("ok", "S1", "v1", "enter", f"{D1} 19:51:00")  # 9 minutes early: inside


@pytest.fixture(scope="module")
def bad_events_run(tmp_path_factory) -> str:
    root = tmp_path_factory.mktemp("bad_events")
    landing, url = root / "landing", sqlite_url(root / "w.db")
    write_catalog(landing, D1)
    events_day(landing, [GOOD_EVENT, *(bad for bad, _, _ in BAD_EVENTS)])
    assert run(landing, url, D1).success
    return url


def test_bad_events_are_quarantined_and_the_good_one_lands(bad_events_run):
    quarantine = q(
        bad_events_run, "SELECT source_line FROM ops_quarantine WHERE table_name = 'events'"
    )
    # One row each, none a duplicate of another (each has an event_id of its own).
    assert sorted(quarantine["source_line"]) == list(range(2, len(BAD_EVENTS) + 2))
    assert lake_events(bad_events_run)["event_id"].tolist() == ["ok"]


@pytest.mark.parametrize(("line", "case"), enumerate(BAD_EVENTS, start=2))
def test_a_bad_event_is_quarantined_with_its_kind_and_reason(bad_events_run, line, case):
    _, kind, reason = case
    row = q(
        bad_events_run,
        "SELECT kind, reason FROM ops_quarantine "
        f"WHERE table_name = 'events' AND source_line = {line}",
    )
    assert row["kind"].tolist() == [kind]
    assert row["reason"].iloc[0].startswith(reason)


def test_an_event_time_in_utc_with_z_is_read_as_such(landing, url):
    at_z = {**event("z", "S1", "v1", "like", f"{D1} 20:30:00"), "ts": f"{D1}T12:30:00.000Z"}
    events_day(landing, [at_z])
    assert run(landing, url, D1).success
    assert lake_events(url)["ts"].tolist() == [pd.Timestamp(f"{D1} 12:30:00")]


def test_a_viewer_firing_more_than_60_events_a_minute_is_a_bot(landing, url):
    burst = [event(f"b{i}", "S1", "bot", "like", f"{D1} 20:10:{i % 60:02d}") for i in range(61)]
    calm = [event(f"h{i}", "S1", "human", "like", f"{D1} 20:{10 + i}:00") for i in range(20)]
    events_day(landing, [*burst, *calm])
    assert run(landing, url, D1).success
    bots = q(url, "SELECT viewer_key, peak_events_60s FROM clean_bot_viewers")
    assert len(bots) == 1 and bots["peak_events_60s"].iloc[0] == 61
    flags = q(url, "SELECT viewer_key, likes, is_bot FROM clean_viewer_sessions ORDER BY likes")
    assert flags[["likes", "is_bot"]].values.tolist() == [[20, 0], [61, 1]]
    assert (flags["viewer_key"].str.len() == 64).all() and "bot" not in set(flags["viewer_key"])


def test_viewer_activity_pairs_enters_and_leaves(landing, url):
    events_day(
        landing,
        [
            event("a", "S1", "v1", "enter", f"{D1} 20:00:00"),
            event("b", "S1", "v1", "product_click", f"{D1} 20:01:00", SKUS[0]),
            event("c", "S1", "v1", "add_to_cart", f"{D1} 20:02:00", SKUS[0]),
            event("d", "S1", "v1", "leave", f"{D1} 20:10:00"),
            event("e", "S1", "v1", "enter", f"{D1} 21:00:00"),
            event("f", "S1", "v1", "leave", f"{D1} 21:05:00"),
        ],
    )
    assert run(landing, url, D1).success
    row = q(url, "SELECT enters, watch_s, product_clicks, carts FROM clean_viewer_sessions")
    assert row.values.tolist() == [[2, 900.0, 1, 1]]
    sku = q(url, "SELECT sku, clicks, carts FROM clean_viewer_products")
    assert sku.values.tolist() == [[SKUS[0], 1, 1]]


def test_local_midnight_separates_partitions(landing, url):
    base_day(landing, sessions=[session("S1", f"{D1} 23:00:00", f"{D2} 01:00:00")])
    write_events(landing, D1, [event("late", "S1", "v1", "like", f"{D1} 23:59:59")])
    write_day(
        landing,
        D2,
        sessions=[session("S1", f"{D1} 23:00:00", f"{D2} 01:00:00")],
        lineup=[lineup("S1")],
    )
    write_events(landing, D2, [event("early", "S1", "v1", "like", f"{D2} 00:00:00")])
    assert run(landing, url, D1, D2).success
    got = lake_events(url).set_index("event_id")
    assert str(got.loc["late", "event_date"]) == D1 and str(got.loc["early", "event_date"]) == D2
    assert str(got.loc["late", "ts"]) == "2026-11-01 15:59:59"  # UTC


def test_a_session_restated_as_a_test_leaves_the_scorecard(landing, url):
    base_day(landing)
    assert run(landing, url, D1).success
    assert q(url, "SELECT session_key FROM session_scorecard")["session_key"].tolist() == [
        "douyin:S1"
    ]
    renamed = session("S1", f"{D1} 20:00:00", f"{D1} 22:00:00", title="推流测试")
    write_day(landing, D2, sessions=[renamed], lineup=[lineup("S1")])
    assert run(landing, url, D2).success
    assert q(url, "SELECT session_key FROM session_scorecard").empty
