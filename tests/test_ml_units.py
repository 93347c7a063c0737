"""Pure ML helpers: the calendar, metrics, drift, the history known on a date."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest

from contract.localtime import local_midnight_utc
from ml.calendar import days_to_next_big_day, promotion_phase
from ml.drift import PSI_ALERT, psi
from ml.history import paid_increments, sessions_as_of
from ml.metrics import forecast_metrics, pinball, wmape


@pytest.mark.parametrize(
    ("day", "phase", "to_big_day"),
    [
        (dt.date(2026, 11, 11), "d11_day", 0),
        (dt.date(2026, 11, 5), "d11", 6),
        (dt.date(2026, 10, 25), "d11_presale", 17),
        (dt.date(2026, 6, 18), "618_day", 0),
        (dt.date(2026, 7, 1), "none", 133),
        (dt.date(2026, 12, 13), "none", 187),
        (dt.date(2027, 2, 6), "spring_festival", 132),
    ],
)
def test_calendar(day, phase, to_big_day):
    assert promotion_phase(day) == phase
    assert days_to_next_big_day(day) == to_big_day


def test_forecast_metrics():
    frame = pd.DataFrame(
        {"actual": [100.0, 200.0, 0.0], "p50": [110.0, 150.0, 10.0],
         "p10": [50.0, 160.0, 5.0], "p90": [150.0, 250.0, 20.0]}
    )  # fmt: skip
    m = forecast_metrics(frame, "p50", "p10", "p90")
    assert m["wmape"] == pytest.approx(70 / 300)
    assert m["mae"] == pytest.approx(70 / 3)
    assert m["bias"] == pytest.approx(-30 / 300)
    assert m["coverage"] == pytest.approx(2 / 3)  # 0 lies below [5, 20]
    assert pinball(np.array([10.0]), np.array([0.0]), 0.9) == pytest.approx(9.0)
    assert pinball(np.array([0.0]), np.array([10.0]), 0.9) == pytest.approx(1.0)
    assert wmape(np.zeros(2), np.ones(2)) != wmape(np.zeros(2), np.ones(2))  # NaN: no actuals
    assert forecast_metrics(frame.iloc[0:0], "p50", "p10", "p90")["n"] == 0


def test_psi_is_small_for_the_same_distribution_and_large_for_a_shift():
    rng = np.random.default_rng(3)
    before = rng.normal(0, 1, 5000)
    assert psi(before, rng.normal(0, 1, 2000)) < 0.05
    assert psi(before, rng.normal(1.5, 1, 2000)) > PSI_ALERT
    assert np.isnan(psi(before, before[:5]))


def test_a_paid_line_counts_from_the_export_that_first_shows_it_paid():
    d = pd.Timestamp
    orders = pd.DataFrame(
        {
            "order_key": ["o1", "o1", "o2", "o3"],
            "export_date": [d("2026-11-01"), d("2026-11-02"), d("2026-11-03"), d("2026-11-01")],
            "session_key": ["s1", "s1", "s1", "s1"],
            "paid_fen": [1000, 1000, 500, 300],
            "paid_at": [None, d("2026-11-01 20:00"), d("2026-11-01 21:00"), None],
        }
    )
    inc = paid_increments(orders)
    sessions = pd.DataFrame(
        {
            "session_key": ["s1"], "export_date": [d("2026-11-01")], "source_line": [2],
            "platform": ["jd"], "room_id": ["r"], "host_id": ["h"],
            "start_time": [d("2026-11-01 12:00")], "viewers": [100], "is_test": [False],
        }
    )  # fmt: skip
    gmv = [
        sessions_as_of(sessions, inc, day)["gmv"].iloc[0]
        for day in (dt.date(2026, 11, 1), dt.date(2026, 11, 2), dt.date(2026, 11, 3))
    ]
    assert gmv == [0.0, 10.0, 15.0]
    assert sessions_as_of(sessions, inc, None)["start_local"].iloc[0] == d("2026-11-01 20:00")
    assert local_midnight_utc(dt.date(2026, 11, 1)) == d("2026-11-01 16:00")


def test_ranking_bench_scores_every_fan_for_the_whole_lineup() -> None:
    """`make bench`'s ranking stage: every fan of its synthetic room gets the whole lineup."""
    from scripts.bench_ranking import score_fans

    result = score_fans(fans=400, products=5)
    assert result["fans"] == 400
    assert result["rows"] == result["fans"] * 5


def test_the_ranker_learns_from_the_most_recent_queries_at_most():
    from ml.ranker import latest_queries

    day = pd.Timestamp
    # Three queries (session, viewer), each a lineup of two products.
    examples = pd.DataFrame(
        {
            "session_day": [day("2026-11-02")] * 2 + [day("2026-11-01")] * 2
            + [day("2026-11-03")] * 2,
            "session_key": ["s2", "s2", "s1", "s1", "s3", "s3"],
            "viewer_key": ["a", "a", "b", "b", "a", "a"],
            "sku": ["p", "q"] * 3,
        }
    )  # fmt: skip
    kept = latest_queries(examples, 2)
    assert kept["session_key"].tolist() == ["s2", "s2", "s3", "s3"]  # s1 is the oldest
    assert latest_queries(examples, 3) is examples


def test_the_gmv_history_features_look_back_a_year_and_no_further():
    from ml.history import history_features

    as_of = dt.date(2026, 11, 10)

    def sessions(*starts: str) -> pd.DataFrame:
        return pd.DataFrame(
            {
                "session_key": [f"jd:{i}" for i in range(len(starts))],
                "platform": "jd", "room_id": "r", "host_id": "h",
                "start_local": pd.to_datetime(list(starts)), "viewers": 100.0,
                "gmv": [1000.0 * (i + 1) for i in range(len(starts))], "paid_lines": 3,
            }
        )  # fmt: skip

    recent = ["2026-11-01 20:00", "2026-11-08 20:00"]
    # 23:59 local the day before the first of the 365 days ending `as_of`: outside.
    outside = sessions("2025-11-10 23:59", *recent)
    older = history_features(outside, as_of)
    without = history_features(outside.iloc[1:].reset_index(drop=True), as_of)
    for name, frame in without.items():
        pd.testing.assert_frame_equal(older[name], frame, check_exact=False, obj=name)
    # 00:00 local on that first day: inside, so the room's figures move.
    edge = history_features(sessions("2025-11-11 00:00", *recent), as_of)
    assert edge["rooms"]["room_mean20_gmv"].iloc[0] != without["rooms"]["room_mean20_gmv"].iloc[0]
