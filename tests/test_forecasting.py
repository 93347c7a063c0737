"""The GMV forecaster's mechanics on the tiny preset: point-in-time features, determinism, the
promotion gate, and the serving tables' contract. Never its accuracy (that is `make demo`)."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import shutil
from pathlib import Path

import dagster as dg
import numpy as np
import pandas as pd
import pytest
from sqlalchemy import text

from assets.forecasting import FEATURES_DATASET, MODEL
from contract.localtime import local_day, local_midnight_start_utc
from ml import gmv, registry
from ml.features import build_features
from ml.history import dated, sessions_as_of
from tests.conftest import (
    STORY_FIRST,
    STORY_LAST,
    STORY_MIDDLE,
    STORY_TRAINED,
    lake_for,
    run_assets,
    sqlite_url,
)
from warehouse import model_registry
from warehouse.forecast_inputs import history_inputs
from warehouse.lake import read_partition_files, write_partition_file
from warehouse.schema import forecast_accuracy, session_gmv_forecast
from warehouse.store import make_engine, read_frame

FIRST, MIDDLE, TRAINED, LAST = STORY_FIRST, STORY_MIDDLE, STORY_TRAINED, STORY_LAST


def q(url: str, sql: str) -> pd.DataFrame:
    return read_frame(make_engine(url), sql)


@pytest.fixture(scope="module")
def forecast_run(tiny_story) -> str:
    """The tiny dirty world's story (conftest `tiny_story`): forecasters trained and promoted
    on MIDDLE and TRAINED, a third rejected on LAST."""
    return tiny_story.url


def test_models_are_registered_promoted_and_serve_from_the_next_day(forecast_run):
    models = q(
        forecast_run,
        f"SELECT * FROM model_registry WHERE model_name = '{MODEL}' ORDER BY trained_for",
    )
    assert list(models["trained_for"].astype(str)) == [MIDDLE, TRAINED, LAST]
    assert list(models["status"]) == ["retired", "champion", "rejected"]
    assert list(models["promoted_on"].iloc[:2].astype(str)) == [MIDDLE, TRAINED]
    assert pd.isna(models["promoted_on"].iloc[2])
    card = json.loads(models.iloc[0]["metrics"])
    assert {"wmape", "coverage", "naive_wmape", "ratio_to_naive", "oracle_wmape"} <= set(card)
    folder = lake_for(forecast_run).with_suffix(".models") / MODEL / models.iloc[0]["version"]
    assert {p.name for p in folder.iterdir()} >= {"card.json", "importance.png"}
    assert len(list(folder.glob("booster_*.txt"))) == 6

    forecasts = q(forecast_run, "SELECT * FROM session_gmv_forecast")
    # Made on 2026-11-07 … 2026-11-13 by the model promoted on MIDDLE, none before it, and on
    # LAST by the one promoted on TRAINED.
    stamps = pd.to_datetime(forecasts["forecast_made_at"])
    assert stamps.min() == pd.Timestamp("2026-11-07 16:00")  # 24:00 local of 11-07
    assert stamps.max() == pd.Timestamp("2026-11-14 16:00")
    by_model = forecasts.groupby("model_version")["forecast_made_at"].agg(["min", "max"])
    assert by_model.index.tolist() == sorted(models["version"].iloc[:2])
    served = {models.iloc[k]["version"]: k for k in range(2)}
    spans = {served[v]: (pd.Timestamp(a), pd.Timestamp(b)) for v, (a, b) in by_model.iterrows()}
    assert spans[0] == (pd.Timestamp("2026-11-07 16:00"), pd.Timestamp("2026-11-13 16:00"))
    assert spans[1] == (pd.Timestamp("2026-11-14 16:00"), pd.Timestamp("2026-11-14 16:00"))


def test_forecast_tables_keep_the_contract(forecast_run, tiny_dirty):
    forecasts = q(forecast_run, "SELECT * FROM session_gmv_forecast")
    assert list(forecasts.columns) == [c.name for c in session_gmv_forecast.columns]
    assert not forecasts.duplicated(["plan_id", "forecast_made_at"]).any()
    assert forecasts["horizon_days"].between(1, 7).all()
    assert (forecasts["gmv_p10"] <= forecasts["gmv_p50"]).all()
    assert (forecasts["gmv_p50"] <= forecasts["gmv_p90"]).all()
    # Every plan of the last plan export has a forecast made that night.
    plans = pd.read_csv(tiny_dirty / "landing" / "plan" / LAST / "planned_sessions.csv")
    latest = q(forecast_run, "SELECT * FROM session_gmv_forecast_latest")
    last_night = latest[pd.to_datetime(latest["forecast_made_at"]) == pd.Timestamp(f"{LAST} 16:00")]
    assert set(plans["plan_id"]) == set(last_night["plan_id"])

    accuracy = q(forecast_run, "SELECT * FROM forecast_accuracy")
    assert list(accuracy.columns) == [c.name for c in forecast_accuracy.columns]
    scored = accuracy.merge(forecasts[["plan_id", "forecast_made_at", "planned_start"]])
    cutoff = pd.Timestamp(f"{LAST} 16:00") - pd.Timedelta(hours=3)
    assert (pd.to_datetime(scored["planned_start"]) <= cutoff).all() and len(scored) > 50
    card = q(forecast_run, "SELECT session_key, gmv FROM session_scorecard")
    joined = accuracy.dropna(subset=["session_key"]).merge(card, on="session_key")
    assert np.allclose(joined["actual_gmv"], joined["gmv"])
    expected = (joined["gmv_p10"] <= joined["gmv"]) & (joined["gmv"] <= joined["gmv_p90"])
    assert (joined["in_interval"].astype(bool) == expected).all()


def test_a_challenger_worse_than_the_champion_is_rejected_and_the_champion_serves(
    tiny_story,
):
    # The night's challenger would have had to be 99 % better than the champion.
    result = tiny_story.nightly
    assert not result.success
    (verdict,) = [
        e
        for e in result.get_asset_check_evaluations()
        if not e.passed
        and e.severity.value == "ERROR"
        and e.asset_key.to_user_string() == "ml/gmv_challenger"
    ]
    assert verdict.check_name == "beats_champion"
    assert "rejected" in verdict.description and "worse by more than" in verdict.description
    # The champion still serves: every plan of the night's export is forecast, in order.
    checks = {
        e.check_name: e
        for e in result.get_asset_check_evaluations()
        if e.asset_key.to_user_string() == "serving/session_gmv_forecast"
    }
    assert checks["valid"].passed and checks["valid"].metadata["forecasts_checked"].value > 20
    assert checks["served"].passed
    models = q(
        tiny_story.url,
        "SELECT version, status, promoted_on FROM model_registry "
        f"WHERE model_name = '{MODEL}' ORDER BY trained_for",
    )
    assert list(models["status"]) == ["retired", "champion", "rejected"]
    assert models["promoted_on"].isna().tolist() == [False, False, True]
    # The champion made the night's forecasts.
    forecasts = q(
        tiny_story.url,
        "SELECT DISTINCT model_version FROM session_gmv_forecast "
        f"WHERE forecast_made_at >= '{LAST}'",
    )
    assert forecasts["model_version"].tolist() == [models.iloc[1]["version"]]


def warehouse_inputs(url: str, last: dt.date) -> dict[str, pd.DataFrame]:
    engine = make_engine(url)
    sessions, increments = history_inputs(engine, last)
    frames = {"sessions": sessions, "increments": increments}
    for name, table in (("plans", "clean_plans"), ("plan_lineups", "clean_plan_lineups"),
                        ("products", "clean_products")):  # fmt: skip
        frames[name] = read_frame(engine, f"SELECT * FROM {table}")
        frames[name]["export_date"] = dated(frames[name]["export_date"])
    return frames


def features_of(day: dt.date, f: dict[str, pd.DataFrame]) -> pd.DataFrame:
    return build_features(
        day, f["plans"], f["plan_lineups"], f["products"], f["sessions"], f["increments"]
    )


def test_no_feature_dated_before_a_cutoff_changes_when_the_future_does(forecast_run):
    last = dt.date.fromisoformat(LAST)
    cutoff = dt.date(2026, 11, 5)
    real = warehouse_inputs(forecast_run, last)
    after = pd.Timestamp(cutoff)
    future = {name: frame.copy() for name, frame in real.items()}
    s, i = future["sessions"], future["increments"]
    late = s["export_date"] > after
    # Later exports say something else entirely: bigger audiences, test flags, other hosts.
    s.loc[late, "viewers"] = s.loc[late, "viewers"] * 10 + 7
    s.loc[late, "host_id"] = "H999"
    # Later orders: ten times the money, and late lines for sessions long past.
    i.loc[i["known_date"] > after, "gmv_fen"] *= 10
    extra = i.sample(50, random_state=1).assign(known_date=after + pd.Timedelta(days=2))
    future["increments"] = pd.concat([i, extra], ignore_index=True)
    # Later plan exports: other reservations and prices.
    p, lp = future["plans"], future["plan_lineups"]
    p.loc[p["export_date"] > after, "reservations"] += 1000
    lp.loc[lp["export_date"] > after, "planned_price_fen"] //= 2
    assert not features_of(last, future).equals(features_of(last, real))  # the change is seen
    for k in range(11):
        day = cutoff - dt.timedelta(days=k)
        pd.testing.assert_frame_equal(features_of(day, future), features_of(day, real))


def story_inputs(url: str):
    """The story's 21 days of features, its plan matches and its history as of LAST."""
    last = dt.date.fromisoformat(LAST)
    days = [dt.date.fromisoformat(FIRST) + dt.timedelta(days=k) for k in range(21)]
    features = read_partition_files(lake_for(url), FEATURES_DATASET, days)
    features["forecast_date"] = pd.to_datetime(features["forecast_date"]).dt.date
    matches = q(url, "SELECT session_key, plan_id FROM clean_session_plans")
    sessions, increments = history_inputs(make_engine(url), last)
    return last, features, matches, sessions, increments


def test_training_twice_gives_the_same_forecasts(forecast_run):
    last, features, matches, sessions, increments = story_inputs(forecast_run)
    rows = gmv.labelled(features, matches, sessions_as_of(sessions, increments, last), last)
    one, two = gmv.fit(rows, 60), gmv.fit(rows, 60)
    pd.testing.assert_frame_equal(one.predict(features), two.predict(features))
    assert one.predict(features)["p50"].nunique() > 10  # a real model, not a constant


def test_a_backtest_loads_the_windows_an_earlier_run_fitted_and_scores_the_same(
    forecast_run, tmp_path
):
    last, features, matches, sessions, increments = story_inputs(forecast_run)
    config = gmv.BacktestConfig(windows=3, window_days=1, min_train_days=5, num_rounds=40)

    def run(cache, **changes):
        return gmv.backtest(
            features, matches, lambda d: sessions_as_of(sessions, increments, d), last,
            dataclasses.replace(config, **changes), log=lambda _: None, cache=cache,
        )  # fmt: skip

    first, again = gmv.FitCache(tmp_path), gmv.FitCache(tmp_path)
    fitted = run(first)
    assert (first.hits, first.misses) == (0, 3)
    pd.testing.assert_frame_equal(run(again), fitted)
    assert (again.hits, again.misses) == (3, 0)
    # Four windows share three origins with it; with other rounds, no window is the same fit.
    later = gmv.FitCache(tmp_path)
    run(later, windows=4)
    assert (later.hits, later.misses) == (3, 1)
    other = gmv.FitCache(tmp_path, keep=2)
    run(other, num_rounds=41)
    assert (other.hits, other.misses) == (0, 3)
    assert len(list(tmp_path.iterdir())) == 2  # the least recently used folders went
    pd.testing.assert_frame_equal(run(None), fitted)  # the cache changes no figure


def card(version: str, day: str, wmape: float, coverage: float = 0.8) -> dict:
    return {
        "name": "m", "version": version, "trained_for": dt.date.fromisoformat(day),
        "train_first": dt.date(2026, 1, 1), "train_last": dt.date.fromisoformat(day),
        "features": ["a"], "params": {}, "data_fingerprint": version,
        "metrics": {"wmape": wmape, "coverage": coverage},
    }  # fmt: skip


@pytest.mark.parametrize(
    ("challenger", "champion", "promote", "reason"),
    [
        ({"wmape": 0.40, "coverage": 0.8}, None, True, "no model in service"),
        ({"wmape": 0.40, "coverage": 0.8}, {"wmape": 0.45}, True, "within 5% or better"),
        ({"wmape": 0.47, "coverage": 0.8}, {"wmape": 0.45}, True, "within 5% or better"),
        ({"wmape": 0.48, "coverage": 0.8}, {"wmape": 0.45}, False, "worse by more than 5%"),
        ({"wmape": 0.30, "coverage": 0.95}, {"wmape": 0.45}, False, "outside [0.7, 0.9]"),
        ({"wmape": float("nan"), "coverage": 0.8}, None, False, "has no wmape"),
    ],
)
def test_promotion_rule(challenger, champion, promote, reason):
    gate = registry.Gate("wmape", higher_is_better=False, coverage_bounds=(0.7, 0.9))
    decided, why = registry.decide(challenger, champion, gate)
    assert decided is promote and reason in why


def test_the_model_in_service_is_the_last_promoted_before_the_date(tmp_path):
    engine = make_engine(sqlite_url(tmp_path / "r.db"))
    from warehouse.store import create_schema

    create_schema(engine)
    for version, day, wmape in (("v1", "2026-11-01", 0.5), ("v2", "2026-11-08", 0.4)):
        model_registry.register(engine, card(version, day, wmape), "wmape", "/x", "run")
    model_registry.promote(engine, "m", "v1", dt.date(2026, 11, 1))
    assert model_registry.champion_before(engine, "m", dt.date(2026, 11, 1)) is None
    assert model_registry.champion_before(engine, "m", dt.date(2026, 11, 2))["version"] == "v1"
    model_registry.promote(engine, "m", "v2", dt.date(2026, 11, 8))
    assert model_registry.champion_before(engine, "m", dt.date(2026, 11, 5))["version"] == "v1"
    assert model_registry.champion_before(engine, "m", dt.date(2026, 11, 9))["version"] == "v2"
    # Re-running the old promotion does not take v2 out of service.
    model_registry.promote(engine, "m", "v1", dt.date(2026, 11, 1))
    status = model_registry.models(engine, "m").set_index("version")["status"]
    assert status.to_dict() == {"v1": "retired", "v2": "champion"}
    # Re-registering (a re-run trains the same version) keeps the verdict and promotion.
    model_registry.register(engine, card("v2", "2026-11-08", 0.4), "wmape", "/x", "run2")
    assert model_registry.champion_before(engine, "m", dt.date(2026, 11, 9))["version"] == "v2"


def run_check(url: str, landing, name: str, asset: str, day: str = LAST):
    """Run one check of the real graph alone on `day`; its evaluation."""
    key = dg.AssetCheckKey(dg.AssetKey(asset.split("/")), name)
    result = run_assets(landing, url, day, selection=dg.AssetSelection.checks(key))
    (evaluation,) = [e for e in result.get_asset_check_evaluations() if e.check_name == name]
    return evaluation


STAMP = "%Y-%m-%d %H:%M:%S.%f"  # how SQLite stores the warehouse's timestamps


def private_copy(url: str, tmp_path) -> str:
    """A copy of a run's warehouse, lake and models folder, to break without harm."""
    source = Path(url.removeprefix("sqlite:///")).parent
    shutil.copytree(source, tmp_path / "broken")
    return sqlite_url(tmp_path / "broken" / "w.db")


def test_accuracy_holds_warns_when_served_forecasts_miss_far_more_than_the_backtest(
    forecast_run, tiny_dirty, tmp_path
):
    landing = tiny_dirty / "landing"
    check = ("accuracy_holds", "serving/forecast_accuracy")
    assert run_check(forecast_run, landing, *check).passed
    url = private_copy(forecast_run, tmp_path)
    with make_engine(url).begin() as conn:
        conn.execute(text("UPDATE forecast_accuracy SET actual_gmv = actual_gmv / 10"))
    broken = run_check(url, landing, *check)
    assert not broken.passed
    assert broken.severity == dg.AssetCheckSeverity.WARN
    assert broken.metadata["recent/wmape"].value > broken.metadata["limit"].value


def test_kpi_in_range_warns_on_a_room_day_far_from_its_recent_median(
    forecast_run, tiny_dirty, tmp_path
):
    landing = tiny_dirty / "landing"
    check = ("kpi_in_range", "serving/session_scorecard")
    quiet = "2026-11-10"  # no room-day of the tiny world is out of range on it
    assert run_check(forecast_run, landing, *check, day=quiet).passed
    url = private_copy(forecast_run, tmp_path)
    card = q(url, "SELECT room_id, start_time FROM session_scorecard")
    day = dt.date.fromisoformat(quiet)
    room = card.loc[local_day(card["start_time"]).dt.date == day, "room_id"].iloc[0]
    since, until = (local_midnight_start_utc(day + dt.timedelta(days=k)) for k in (0, 1))
    with make_engine(url).begin() as conn:
        conn.execute(
            text(
                "UPDATE session_scorecard SET gmv = gmv * 10 "
                "WHERE room_id = :r AND start_time >= :since AND start_time < :until"
            ),
            {"r": room, "since": since.strftime(STAMP), "until": until.strftime(STAMP)},
        )
    broken = run_check(url, landing, *check, day=quiet)
    assert not broken.passed
    assert broken.severity == dg.AssetCheckSeverity.WARN
    assert broken.description == "1 room-day KPIs far outside their recent range"
    assert room in broken.metadata["flagged"].value


def test_features_stable_passes_a_steady_day_and_warns_when_the_features_jump(
    forecast_run, tiny_dirty, tmp_path
):
    """On the tiny world the calendar features move every day; the check's two verdicts are
    shown on a day made steady (the four weeks before, replayed) and the same day shifted."""
    landing = tiny_dirty / "landing"
    check = ("stable", "features/gmv_features")
    url = private_copy(forecast_run, tmp_path)
    lake = lake_for(url)
    day = dt.date.fromisoformat(LAST)
    before = [day - dt.timedelta(days=k) for k in range(28, 0, -1)]
    steady = read_partition_files(lake, FEATURES_DATASET, before).assign(forecast_date=day)
    write_partition_file(lake, FEATURES_DATASET, day, steady)
    assert run_check(url, landing, *check).passed
    numeric = ["planned_minutes", "n_skus", "mean_price"]
    steady[numeric] = steady[numeric] * 50 + 1000
    write_partition_file(lake, FEATURES_DATASET, day, steady)
    broken = run_check(url, landing, *check)
    assert not broken.passed
    assert broken.severity == dg.AssetCheckSeverity.WARN
    assert broken.description.startswith("3 features moved (PSI > 0.25)")
