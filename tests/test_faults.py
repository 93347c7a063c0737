"""Every kind of bad input of the contract, on files the test writes, through the real graph."""

from __future__ import annotations

import pandas as pd
import pytest

from tests.conftest import run_assets, sqlite_url
from tests.landing_builder import (
    SKUS,
    edit_text,
    lineup,
    order,
    refund,
    session,
    write_catalog,
    write_day,
)
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
    assert run_assets(landing, url, D1).success
    card = q(url, "SELECT * FROM session_scorecard")
    assert card[["session_key", "orders", "gmv", "aov"]].values.tolist() == [
        ["douyin:S1", 1, 999.0, 999.0]
    ]


def test_same_row_twice_is_one_clean_row_and_a_counted_duplicate(landing, url):
    o1 = order("O1", "S1", f"{D1} 20:10:00", f"{D1} 20:11:00", "paid")
    base_day(landing, orders=[o1, o1])
    assert run_assets(landing, url, D1).success
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
    assert run_assets(landing, url, D1, D2).success
    current = q(url, "SELECT views, export_date FROM clean_sessions_current")
    assert current.values.tolist() == [[999, D2]]
    assert q(url, "SELECT views FROM session_scorecard")["views"].tolist() == [999]


def test_still_live_session_is_upserted_when_finished(landing, url):
    base_day(landing, sessions=[session("S1", f"{D1} 22:00:00", None)])
    assert run_assets(landing, url, D1).success
    assert q(url, "SELECT end_time FROM session_scorecard")["end_time"].isna().all()
    write_day(
        landing,
        D2,
        sessions=[session("S1", f"{D1} 22:00:00", f"{D2} 00:40:00")],
        lineup=[lineup("S1")],
    )
    assert run_assets(landing, url, D2).success
    card = q(url, "SELECT end_time, duration_min, as_of_date FROM session_scorecard")
    assert card.values.tolist() == [["2026-11-01 16:40:00.000000", 160.0, D2]]


def test_late_orders_and_refunds_restate_the_earlier_session(landing, url):
    base_day(landing)
    write_day(
        landing, D2,
        orders=[order("O3", "S1", f"{D2} 00:05:00", f"{D2} 00:06:00", "paid", paid=50000)],
        refunds=[refund("R1", "O1", 20000, f"{D2} 10:00:00")],
    )  # fmt: skip
    assert run_assets(landing, url, D1, D2).success
    card = q(url, "SELECT orders, gmv, refunded, net_gmv, as_of_date FROM session_scorecard")
    assert card.values.tolist() == [[2, 1499.0, 200.0, 1299.0, D2]]


@pytest.mark.parametrize(
    ("old", "new", "field", "reason"),
    [
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
    ],
)
def test_malformed_order_rows_are_quarantined_with_file_line_field_reason(
    landing, url, old, new, field, reason
):
    base_day(landing)
    edit_text(landing / "douyin" / D1 / "orders.csv", old, new)
    assert run_assets(landing, url, D1).success
    quarantine = q(url, "SELECT * FROM ops_quarantine")
    assert len(quarantine) == 1
    row = quarantine.iloc[0]
    assert (row["source_file"], row["source_line"], row["table_name"]) == (
        "douyin/2026-11-01/orders.csv",
        2,
        "orders",
    )
    assert row["reason"].startswith(reason) and (field is None or row["field"] == field)
    assert "13800138000" not in row["raw"] and "文三路" not in row["raw"]  # masked
    assert q(url, "SELECT order_id FROM clean_orders")["order_id"].tolist() == ["O2"]


def test_negative_price_and_unknown_sku_in_lineup(landing, url):
    base_day(landing, lineup=[lineup("S1", live_price=-100), lineup("S1", "LS-NOPE")])
    assert run_assets(landing, url, D1).success
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
    assert run_assets(landing, url, D1, D2).success
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
    assert run_assets(landing, url, D1).success
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
    assert run_assets(landing, url, D1).success
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
    result = run_assets(landing, url, D1)
    assert result.success
    meta = result.asset_materializations_for_node("clean__sessions")[0].metadata
    assert meta["extra_columns_tolerated"].value == "备注"


def test_a_blocking_check_keeps_the_published_scorecard(landing, url):
    base_day(landing)
    assert run_assets(landing, url, D1).success
    before = q(url, "SELECT * FROM session_scorecard")
    # The export is redone broken: every order line garbled but the first.
    many = [order(f"O{i}", "S1", f"{D1} 20:10:00", f"{D1} 20:11:00", "paid") for i in range(1, 12)]
    base_day(landing, orders=many)
    path = landing / "douyin" / D1 / "orders.csv"
    text = path.read_text(encoding="utf-8-sig").replace(",999.00,999.00,", ",999.00,??,")
    path.write_text(text.replace(",??,", ",999.00,", 1), encoding="utf-8-sig")
    result = run_assets(landing, url, D1)
    assert not result.success
    failed = [e for e in result.get_asset_check_evaluations() if not e.passed]
    assert [(e.asset_key.to_user_string(), e.check_name) for e in failed] == [
        ("clean/orders", "quarantine_rate")
    ]
    assert "douyin/2026-11-01/orders.csv" in failed[0].description
    pd.testing.assert_frame_equal(q(url, "SELECT * FROM session_scorecard"), before)
