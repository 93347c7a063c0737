"""The scorecard's arithmetic on small frames written here."""

from __future__ import annotations

import datetime as dt

import pandas as pd

from warehouse.money import ratio_half_up
from warehouse.scorecard import build_session_scorecard, gmv_disagreements, kpi_anomalies


def sessions(**overrides) -> pd.DataFrame:
    base = {
        "session_key": ["jd:1", "jd:2", "jd:3"],
        "platform": "jd",
        "room_id": "r1",
        "host_id": "H001",
        "start_time": pd.to_datetime(["2026-11-11 12:00"] * 3),
        "end_time": pd.to_datetime(["2026-11-11 14:30", None, "2026-11-11 12:03"]),
        "viewers": [200, 0, 5],
        "views": [300, 3, 6],
        "peak_online": [50, 1, 2],
        "avg_watch_s": [100.0, 5.0, 30.0],
        "comments": [1, 0, 0],
        "likes": [2, 0, 0],
        "new_followers": [3, 0, 0],
        "gmv_fen": [300000, 0, 100],
        "orders": [3, 0, 1],
        "is_test": [False, False, True],
    }
    base.update(overrides)
    return pd.DataFrame(base)


def orders() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "order_key": ["jd:a", "jd:b", "jd:c", "jd:d", "jd:e"],
            "session_key": ["jd:1", "jd:1", "jd:1", "jd:1", "jd:3"],
            "viewer_key": ["v1", "v1", "v2", "v3", "v9"],
            "paid_fen": [100000, 50001, 149999, 70000, 100],
            # d was never paid (closed before payment); c was paid, then closed after a refund.
            "paid_at": pd.to_datetime(
                [
                    "2026-11-11 12:10",
                    "2026-11-11 12:20",
                    "2026-11-11 12:30",
                    None,
                    "2026-11-11 12:01",
                ]
            ),
            "status": ["finished", "shipped", "closed", "closed", "paid"],
        }
    )


def test_scorecard_counts_paid_lines_refunds_and_ratios():
    refunds = pd.DataFrame(
        {
            "refund_key": ["jd:r1", "jd:r2"],
            "order_key": ["jd:c", "jd:c"],
            "amount_fen": [100000, 49999],
        }
    )
    as_of = pd.Series([dt.date(2026, 11, 12)] * 3, index=["jd:1", "jd:2", "jd:3"])
    card = build_session_scorecard(sessions(), orders(), refunds, as_of, "run-1").set_index(
        "session_key"
    )
    assert list(card.index) == ["jd:1", "jd:2"]  # the test session is left out
    one = card.loc["jd:1"]
    assert one["orders"] == 3 and one["buyers"] == 2
    assert one["gmv"] == 3000.00 and one["refunded"] == 1499.99 and one["net_gmv"] == 1500.01
    assert one["aov"] == 1000.00  # 300000 fen / 3
    assert one["gpm"] == 10000.00  # 3000 yuan * 1000 / 300 views
    assert one["conversion"] == 2 / 200
    assert one["duration_min"] == 150.0
    assert one["platform_gmv"] == 3000.00 and one["gmv_gap"] == 0.0
    two = card.loc["jd:2"]
    assert two["orders"] == 0 and two["gmv"] == 0.0
    assert pd.isna(two["aov"]) and pd.isna(two["conversion"])  # zero denominators give null
    assert pd.isna(two["end_time"]) and pd.isna(two["duration_min"])  # still live
    assert (card["run_id"] == "run-1").all() and (card["as_of_date"] == dt.date(2026, 11, 12)).all()


def test_ratio_rounds_half_up():
    got = ratio_half_up(pd.Series([5, 15, 14, 7, 1]), pd.Series([2, 10, 10, 0, 3]))
    assert got.tolist()[:3] == [3, 2, 1] and pd.isna(got.iloc[3]) and got.iloc[4] == 0


def test_gmv_disagreements_list_sessions_beyond_tolerance():
    card = pd.DataFrame(
        {
            "session_key": ["a", "b", "c"],
            "start_time": pd.to_datetime(["2026-11-11 12:00"] * 3),
            "gmv": [1000.0, 1000.0, 0.0],
            "platform_gmv": [1005.0, 1020.0, 0.5],
            "gmv_gap": [5.0, 20.0, 0.5],
        }
    )
    assert gmv_disagreements(card)["session_key"].tolist() == ["b"]  # 1 % of 1000 = 10 yuan


def test_kpi_anomalies_compare_a_day_with_the_rooms_recent_median():
    days = pd.date_range("2026-11-01", periods=11).date
    gmv = [1000.0] * 10 + [9000.0]  # the last day sells 9x the usual
    card = pd.DataFrame(
        {
            "platform": "jd",
            "room_id": "r1",
            "start_time": [pd.Timestamp(d) + pd.Timedelta(hours=12) for d in days],
            "gmv": gmv,
            "viewers": 100,
            "buyers": 10,
        }
    )
    flagged = kpi_anomalies(card, [days[-1]])
    assert flagged[["day", "metric", "value", "typical"]].values.tolist() == [
        [days[-1], "gmv", 9000.0, 1000.0]
    ]
    assert kpi_anomalies(card, [days[5]]).empty  # five days of history are not enough
