"""The serving tables' checks, each passing on good rows and failing on hand-broken ones; and the
publication rules they share with every asset."""

from __future__ import annotations

import datetime as dt

import pandas as pd
import pytest

from assets.publishing import Units, describe
from warehouse import publications, serving_checks
from warehouse.publications import ALL
from warehouse.settings import parse_platforms, picks_horizon_setting
from warehouse.store import create_schema, make_engine

STAMP = pd.Timestamp("2026-11-01 16:00:00")


def forecasts(**changes) -> pd.DataFrame:
    rows = pd.DataFrame(
        {
            "plan_id": ["P1", "P2"],
            "forecast_made_at": [STAMP, STAMP],
            "gmv_p10": [100.0, 50.0],
            "gmv_p50": [200.0, 80.0],
            "gmv_p90": [400.0, 90.0],
        }
    )
    for column, value in changes.items():
        rows.loc[0, column] = value
    return rows


EXPECTED = pd.DataFrame({"plan_id": ["P1", "P2"], "forecast_made_at": [STAMP, STAMP]})


def test_forecast_check_passes_good_rows():
    assert serving_checks.forecast_problems(forecasts(), EXPECTED).empty


@pytest.mark.parametrize(
    ("changes", "problem"),
    [
        ({"gmv_p50": 500.0}, "quantiles out of order"),
        ({"gmv_p10": -1.0}, "negative GMV"),
        ({"plan_id": "P2"}, "more than one row per plan and date"),
    ],
)
def test_forecast_check_fails_broken_rows(changes, problem):
    found = serving_checks.forecast_problems(forecasts(**changes), EXPECTED)
    assert problem in set(found["problem"])


def test_forecast_check_fails_a_plan_left_without_forecast():
    found = serving_checks.forecast_problems(forecasts().iloc[:1], EXPECTED)
    assert found["problem"].tolist() == ["plan of the night's export not forecast"]
    assert found["key"].iloc[0].startswith("P2@")


LINEUPS = pd.DataFrame(
    {"plan_id": ["P1", "P1", "P1"], "room_id": ["R"] * 3, "sku": ["A", "B", "C"]}
)
FANS = pd.DataFrame({"room_id": ["R", "R"], "viewer_key": ["0aa", "0bb"]})


def picks() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "plan_id": ["P1"] * 6,
            "viewer_key": ["0aa"] * 3 + ["0bb"] * 3,
            "sku": ["A", "B", "C", "C", "A", "B"],
            "rank": [1, 2, 3, 1, 2, 3],
        }
    )


def test_recommendation_check_passes_good_rows():
    assert serving_checks.recommendation_problems(picks(), LINEUPS, FANS).empty


@pytest.mark.parametrize(
    ("breaking", "problem"),
    [
        (lambda p: p.assign(rank=[1, 1, 3, 1, 2, 3]), "ranks are not 1 … n without ties"),
        (lambda p: p.drop(index=2), "not the whole lineup"),
        (lambda p: p.assign(sku=["A", "B", "Z", "C", "A", "B"]), "SKU not in the plan's lineup"),
        (lambda p: p[p["viewer_key"] == "0aa"], "a fan of the room left out"),
        (
            lambda p: pd.concat([p, p.head(3).assign(viewer_key="0cc")]),
            "not a recent fan of the room",
        ),
        (
            lambda p: pd.concat([p, p.head(3).assign(plan_id="P-next-week")]),
            "a plan outside the picks horizon",
        ),
    ],
)
def test_recommendation_check_fails_broken_rows(breaking, problem):
    found = serving_checks.recommendation_problems(breaking(picks()), LINEUPS, FANS)
    assert problem in set(found["problem"])


def fans(**changes) -> pd.DataFrame:
    rows = pd.DataFrame(
        {
            "platform": ["jd", "jd"],
            "room_id": ["R", "R"],
            "viewer_key": ["0aa", "0bb"],
            "segment": ["core", "dormant"],
            "last_seen_days": [3, 200],
            "sessions_28d": [1, 0],
            "orders_365d": [2, 1],
            "spend_365d_fen": [199900, 9900],
        }
    )
    for column, value in changes.items():
        rows.loc[0, column] = value
    return rows


def stored(rows: pd.DataFrame) -> pd.DataFrame:
    return rows.assign(spend_365d=rows["spend_365d_fen"] / 100).drop(columns="spend_365d_fen")


def test_fan_segment_check_passes_rows_that_follow_the_rule():
    assert serving_checks.fan_segment_problems(stored(fans()), fans()).empty


@pytest.mark.parametrize(
    ("changes", "problem"),
    [
        ({"segment": "active"}, "segment differs from the rule"),
        ({"last_seen_days": 4}, "last_seen_days differs from the rule"),
        ({"spend_365d_fen": 100}, "spend_365d_fen differs from the rule"),
        ({"viewer_key": "0zz"}, "not a fan of the room by the rule"),
    ],
)
def test_fan_segment_check_fails_rows_that_do_not(changes, problem):
    found = serving_checks.fan_segment_problems(stored(fans(**changes)), fans())
    assert problem in set(found["problem"])


D0, D1, D2 = (dt.date(2026, 11, 1) + dt.timedelta(days=k) for k in range(3))
PLATFORMS = ("douyin", "jd")


@pytest.fixture
def engine(tmp_path):
    engine = make_engine(f"sqlite:///{tmp_path / 'w.db'}")
    create_schema(engine)
    return engine


def record(engine, asset: str, rows: list[tuple[str, dt.date, str, str]]) -> None:
    frame = pd.DataFrame(rows, columns=["platform", "partition_date", "status", "reason"])
    publications.record(engine, asset, frame, "run")


def test_a_unit_waits_for_its_own_platforms_upstream_only(engine):
    record(engine, "clean/orders", [("douyin", D0, "published", ""), ("jd", D0, "failed", "bad")])
    held = publications.blocked_units(
        engine, ["clean/orders"], [("douyin", D0), ("jd", D0)], PLATFORMS, cascade=False
    )
    assert held == {("jd", D0): "clean/orders jd 2026-11-01: bad"}


def test_a_unit_never_run_upstream_is_held(engine):
    held = publications.blocked_units(engine, ["clean/orders"], [("jd", D0)], PLATFORMS, False)
    assert held == {("jd", D0): "clean/orders jd 2026-11-01: never published"}


def test_as_of_units_wait_for_every_earlier_failure_of_their_platform(engine):
    record(engine, "clean/orders", [("jd", D0, "failed", "bad"), ("douyin", D0, "published", "")])
    for day in (D1, D2):
        record(engine, "clean/sessions", [("jd", day, "published", ""),
                                          ("douyin", day, "published", "")])  # fmt: skip
    units = [(p, d) for p in PLATFORMS for d in (D1, D2)]
    held = publications.blocked_units(engine, ["clean/sessions"], units, PLATFORMS, cascade=True)
    assert set(held) == {("jd", D1), ("jd", D2)}
    assert publications.blocked_units(engine, ["clean/sessions"], units, PLATFORMS, False) == {}
    # A whole-date unit (a model) needs every platform.
    whole = publications.blocked_units(engine, ["clean/sessions"], [(ALL, D1)], PLATFORMS, True)
    assert set(whole) == {(ALL, D1)}


def test_a_failed_brand_file_holds_every_platform(engine):
    record(engine, "clean/plans", [(ALL, D0, "failed", "plan/2026-11-01 has not landed")])
    held = publications.blocked_units(
        engine, ["clean/plans"], [("douyin", D0), ("jd", D0)], PLATFORMS, False
    )
    assert set(held) == {("douyin", D0), ("jd", D0)}
    report = publications.platform_dates(engine, ["douyin"], D0, D0)
    assert report["status"].tolist() == ["failed"]
    assert "plan/2026-11-01 has not landed" in report["causes"].iloc[0]


def test_units_give_each_platform_its_window():
    units = Units([D0, D1, D2], PLATFORMS, {("jd", D1): "x", ("jd", D2): "x"})
    assert units.windows() == [([D0, D1, D2], ("douyin",)), ([D0], ("jd",))]
    gap = Units([D0, D1, D2], PLATFORMS, {("douyin", D1): "x", ("jd", D1): "x"})
    assert gap.windows() == [([D0], PLATFORMS), ([D2], PLATFORMS)]
    units.fail("douyin", D2, "unreadable")
    assert units.ready_on(D2) == []
    frame = units.frame()
    assert frame["status"].value_counts().to_dict() == {"published": 3, "held": 2, "failed": 1}
    assert describe({("jd", D1): "x", ("jd", D2): "x"}) == "x (jd 2026-11-02, jd 2026-11-03)"


def test_platforms_are_configuration():
    assert parse_platforms(" jd, douyin ,jd") == ("jd", "douyin")
    for wrong in ("", "jd,kuaishou"):
        with pytest.raises(ValueError, match="LIVECOMMERCE_PLATFORMS"):
            parse_platforms(wrong)


def test_the_picks_horizon_is_configuration(monkeypatch):
    monkeypatch.delenv("LIVECOMMERCE_PICKS_HORIZON_DAYS", raising=False)
    assert picks_horizon_setting() == {}  # the model's default (1) holds
    monkeypatch.setenv("LIVECOMMERCE_PICKS_HORIZON_DAYS", "3")
    assert picks_horizon_setting() == {"picks_horizon_days": 3}
    for wrong in ("0", "8", "two", "-1"):
        monkeypatch.setenv("LIVECOMMERCE_PICKS_HORIZON_DAYS", wrong)
        with pytest.raises(ValueError, match="LIVECOMMERCE_PICKS_HORIZON_DAYS"):
            picks_horizon_setting()


def test_a_date_never_run_holds_the_dates_after_it(engine):
    record(engine, "clean/sessions", [("jd", D0, "published", "")])
    held = publications.blocked_units(
        engine, ["clean/sessions"], [("jd", D2)], PLATFORMS, cascade=False
    )
    assert held == {
        ("jd", D2): "jd 2026-11-02: never run; run the dates from 2026-11-02 on, in order"
    }
    # The window itself is being run: no gap inside it.
    record(engine, "clean/sessions", [("jd", D1, "published", ""), ("jd", D2, "published", "")])
    assert (
        publications.blocked_units(
            engine, ["clean/sessions"], [("jd", D1), ("jd", D2)], PLATFORMS, cascade=False
        )
        == {}
    )
