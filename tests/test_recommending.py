"""The product recommender's mechanics on the tiny preset: query groups, point-in-time features,
determinism, the promotion gate, bucketed scoring, and the serving tables' contract. Never its
accuracy (that is `make demo`)."""

from __future__ import annotations

import datetime as dt
from types import SimpleNamespace

import lightgbm as lgb
import numpy as np
import pandas as pd
import pytest

from assets.recommending import MODEL, RANKER_KEY
from contract.localtime import local_day
from ml import ranker
from ml.fans import PICK_DAYS, fans_as_of, history_of, segment
from ml.metrics import ranking_metrics
from scripts.demo import scoring_figures
from tests.conftest import STORY_LAST, STORY_MIDDLE, STORY_TRAINED, run_assets, sqlite_url
from tests.test_pipeline import copy_sqlite
from warehouse import model_registry
from warehouse.fan_inputs import BUCKETS, planned_lineups, read_fan_inputs
from warehouse.store import make_engine, read_frame

MIDDLE, TRAINED, LAST = STORY_MIDDLE, STORY_TRAINED, STORY_LAST
DAY = dt.date.fromisoformat(LAST)


def q(url: str, sql: str) -> pd.DataFrame:
    return read_frame(make_engine(url), sql)


@pytest.fixture(scope="module")
def rec_run(tiny_story) -> SimpleNamespace:
    """The tiny dirty world's story (conftest `tiny_story`): two backfills train and promote
    rankers on MIDDLE and TRAINED, the day before the newest plan export; the nightly run of
    the newest date serves its picks, and its own challenger (the gate asks for 99 % better)
    is rejected."""
    return tiny_story


def test_a_backfill_pushes_no_picks_and_the_newest_export_gets_them(rec_run):
    stamps = q(rec_run.url, "SELECT DISTINCT generated_at FROM product_recommendations")
    assert pd.to_datetime(stamps["generated_at"]).tolist() == [pd.Timestamp("2026-11-14 16:00")]


def test_the_serving_checks_pass_on_the_tables_the_run_wrote(rec_run):
    checks = {
        (e.asset_key.to_user_string(), e.check_name): e
        for e in rec_run.nightly.get_asset_check_evaluations()
    }
    picks = checks[("serving/product_recommendations", "valid")]
    fans = checks[("serving/fan_segments", "valid")]
    assert picks.passed and picks.metadata["sampled_rows_checked"].value > 100
    assert fans.passed and fans.metadata["sampled_fans_checked"].value > 10
    assert checks[("serving/product_recommendations", "served")].passed


def test_every_plan_is_ranked_for_every_recent_fan_of_its_room(rec_run):
    recs = q(rec_run.url, "SELECT * FROM product_recommendations")
    plans = q(
        rec_run.url,
        "SELECT l.plan_id, p.room_id, l.sku, p.planned_start FROM clean_plan_lineups l "
        "JOIN clean_plans p ON p.plan_id = l.plan_id AND p.export_date = l.export_date "
        f"WHERE l.export_date = '{LAST}'",
    )
    # The picks horizon: the plans of the night's export planned for the next day only.
    tomorrow = pd.Timestamp(LAST) + pd.Timedelta(days=1)
    plans = plans[local_day(pd.to_datetime(plans.pop("planned_start"))) == tomorrow]
    fans = q(
        rec_run.url,
        # Seen in the 90 days ending the date (as the 365 of a fan): 0 … 89 days ago.
        f"SELECT room_id, viewer_key FROM fan_segments WHERE as_of_date = '{LAST}' "
        f"AND last_seen_days < {PICK_DAYS}",
    )
    expected = fans.merge(plans, on="room_id")[["plan_id", "viewer_key", "sku"]]
    got = recs[["plan_id", "viewer_key", "sku"]]
    assert len(got) == len(expected) > 1000
    both = got.merge(expected, how="outer", indicator=True)
    assert (both["_merge"] == "both").all()
    assert not recs.duplicated(["plan_id", "viewer_key", "sku", "generated_at"]).any()
    # Ranks 1 … n per (plan, fan), no ties, in the order of the scores.
    ranked = recs.sort_values(["plan_id", "viewer_key", "rank"])
    by_fan = ranked.groupby(["plan_id", "viewer_key"], sort=False)
    assert (ranked["rank"].to_numpy() == by_fan.cumcount().to_numpy() + 1).all()
    assert (by_fan["score"].diff().dropna() <= 0).all()
    latest = q(rec_run.url, "SELECT COUNT(*) AS n FROM product_recommendations_latest")
    assert latest["n"].iloc[0] == len(recs)
    # What `make demo` prints of the run comes from the asset's own metadata.
    printed = scoring_figures(rec_run.nightly)
    assert printed.startswith(f"product_recommendations: {len(recs):,} rows for ")
    assert f"{recs['viewer_key'].nunique():,} fans scored" in printed


def test_the_champion_serves_and_a_worse_challenger_is_rejected(rec_run):
    models = model_registry.models(make_engine(rec_run.url), MODEL)
    assert list(models["trained_for"].astype(str)) == [MIDDLE, TRAINED, LAST]
    assert list(models["status"]) == ["retired", "champion", "rejected"]
    assert "worse by more than" in models.iloc[2]["decision"]
    recs = q(rec_run.url, "SELECT DISTINCT model_version FROM product_recommendations")
    assert recs["model_version"].tolist() == [models.iloc[1]["version"]]


def test_fan_segments_follow_the_contract_rule(rec_run):
    fans = q(rec_run.url, f"SELECT * FROM fan_segments WHERE as_of_date = '{LAST}'")
    assert len(fans) > 1000 and not fans.duplicated(["room_id", "viewer_key"]).any()
    rule = segment(fans["orders_365d"], fans["last_seen_days"], fans["sessions_28d"])
    assert (fans["segment"] == rule).all()
    assert {"core", "active", "potential"} <= set(fans["segment"])
    # Bots are no fans: a viewer seen only as a bot is absent.
    bots_only = q(
        rec_run.url,
        "SELECT viewer_key FROM clean_viewer_sessions GROUP BY viewer_key "
        "HAVING MIN(CAST(is_bot AS INTEGER)) = 1",
    )
    assert len(bots_only) and not set(bots_only["viewer_key"]) & set(fans["viewer_key"])


@pytest.fixture(scope="module")
def inputs(rec_run) -> dict:
    return read_fan_inputs(make_engine(rec_run.url), DAY, ranker.training_start(DAY))


def examples_of(inputs: dict) -> pd.DataFrame:
    return ranker.labelled_examples(
        inputs["sessions"],
        inputs["viewer_sessions"],
        inputs["viewer_products"],
        inputs["paid"],
        inputs["lineups"],
    )


def test_a_query_is_one_session_and_viewer_with_the_whole_lineup(inputs):
    examples = examples_of(inputs)
    lineup_sizes = inputs["lineups"].groupby("session_key").size()
    per_query = examples.groupby(["session_key", "viewer_key"]).size()
    assert (per_query.to_numpy() == lineup_sizes.reindex(per_query.index.get_level_values(0))).all()
    # Every query showed interest; the grades are none < click < cart < paid.
    assert (examples.groupby(["session_key", "viewer_key"])["label"].max() >= 1).all()
    assert set(examples["label"]) == {0, 1, 2, 3}
    rows = examples.assign(query=ranker.query_ids(examples, ["session_key", "viewer_key"]))
    groups = rows["query"].value_counts(sort=False).reindex(rows["query"].unique())
    assert groups.sum() == len(rows) and (np.diff(rows["query"].to_numpy()) >= 0).all()


def test_no_feature_before_a_cutoff_changes_when_the_future_does(inputs):
    cutoff = pd.Timestamp("2026-11-06")
    examples = examples_of(inputs)
    past = examples[examples["as_of"] < cutoff]
    assert len(past) and (examples["as_of"] >= cutoff).any()

    def features(frames: dict) -> pd.DataFrame:
        rows = past.assign(query=ranker.query_ids(past, ["session_key", "viewer_key"]))
        return ranker.rank_features(
            history_of(frames), rows[[*ranker.CANDIDATE_COLUMNS, "query"]], frames["products"]
        )

    before = features(inputs)
    # Everything after the cutoff changes: sessions, activity, orders, refunds' effect on paid
    # lines, lineups, the catalogue.
    sessions = inputs["sessions"]
    later = set(sessions.loc[pd.to_datetime(sessions["start_time"]) >= cutoff, "session_key"])
    changed = dict(inputs)
    vp = inputs["viewer_products"].copy()
    vp.loc[vp["session_key"].isin(later), "clicks"] *= 7
    changed["viewer_products"] = vp
    vs = inputs["viewer_sessions"].copy()
    vs.loc[vs["session_key"].isin(later), "watch_s"] += 999
    changed["viewer_sessions"] = vs
    paid = inputs["paid"]
    changed["paid"] = paid[paid["known_date"] < cutoff]
    sp = inputs["session_products"].copy()
    sp.loc[sp["session_key"].isin(later), ["clicks", "orders"]] = 50
    late = pd.to_datetime(sp["known_date"]) >= cutoff
    sp.loc[late, "orders"] = 99
    changed["session_products"] = sp
    products = inputs["products"].copy()
    products.loc[pd.to_datetime(products["export_date"]) > cutoff, "list_price_fen"] = 1
    changed["products"] = products
    pd.testing.assert_frame_equal(before, features(changed))
    # ... and the cutoff is not vacuous: the same change before it does move the features.
    earlier = dict(changed, paid=paid.iloc[: len(paid) // 2])
    assert not before.equals(features(earlier))


def test_training_twice_gives_the_same_ranker(inputs):
    examples = examples_of(inputs)
    rows = examples.assign(query=ranker.query_ids(examples, ["session_key", "viewer_key"]))
    history = history_of(inputs)
    features = ranker.rank_features(
        history, rows[[*ranker.CANDIDATE_COLUMNS, "query"]], inputs["products"]
    )
    labels = rows["label"].to_numpy()
    first = ranker.fit(features, labels, 30).predict(features[ranker.FEATURES])
    second = ranker.fit(features, labels, 30).predict(features[ranker.FEATURES])
    np.testing.assert_array_equal(first, second)


def test_scoring_a_sixteenth_at_a_time_gives_the_same_ranks(rec_run, inputs):
    engine = make_engine(rec_run.url)
    booster = ranker.fit(*_small_training(inputs), 20)
    lineups = planned_lineups(engine, DAY, ranker.PICKS_HORIZON_DAYS)
    history = history_of(inputs)
    fans = fans_as_of(history, DAY, PICK_DAYS)
    whole = ranker.rank_for_fans(history, lineups, fans, DAY, inputs["products"], booster)
    parts = []
    for bucket in BUCKETS:
        part = read_fan_inputs(engine, DAY, ranker.training_start(DAY), bucket)
        assert part["viewer_sessions"]["viewer_key"].str.startswith(bucket).all()
        bucket_history = history_of(part)
        bucket_fans = fans_as_of(bucket_history, DAY, PICK_DAYS)
        parts.append(
            ranker.rank_for_fans(
                bucket_history, lineups, bucket_fans, DAY, part["products"], booster
            )
        )
    pieces = pd.concat(parts).sort_values(["plan_id", "viewer_key", "rank"])
    whole = whole.sort_values(["plan_id", "viewer_key", "rank"])
    pd.testing.assert_frame_equal(
        pieces.reset_index(drop=True), whole.reset_index(drop=True), check_exact=False
    )


def test_a_ranker_of_other_features_is_refused_by_name(rec_run, inputs):
    features, labels = _small_training(inputs)
    columns = [c for c in ranker.FEATURES if c != "v_orders_365d"]
    sizes = features["query"].value_counts(sort=False).reindex(features["query"].unique())
    data = lgb.Dataset(features[columns], label=labels, group=sizes.to_numpy())
    older = lgb.train(ranker.PARAMS, data, num_boost_round=5)
    lineups = planned_lineups(make_engine(rec_run.url), DAY, ranker.PICKS_HORIZON_DAYS)
    history = history_of(inputs)
    fans = fans_as_of(history, DAY, PICK_DAYS)
    with pytest.raises(ValueError, match=r"other features .*'v_orders_365d'"):
        ranker.rank_for_fans(history, lineups, fans, DAY, inputs["products"], older)


def test_a_history_shorter_than_the_evaluation_trains_no_ranker(rec_run, tmp_path):
    # The story starts on 2026-10-25: by 10-27 there are three days, all of them inside the
    # seven evaluation days the tests' model store asks for.
    url = sqlite_url(tmp_path / "w.db")
    copy_sqlite(rec_run.url, url)
    result = run_assets(rec_run.landing, url, "2026-10-27", selection=[RANKER_KEY])
    assert result.success
    (written,) = result.asset_materializations_for_node("ml__ranker_challenger")
    assert written.metadata["trained"].value is False
    assert written.metadata["history_from"].value == "2026-10-25"


def _small_training(inputs: dict) -> tuple[pd.DataFrame, np.ndarray]:
    examples = examples_of(inputs)
    rows = examples.assign(query=ranker.query_ids(examples, ["session_key", "viewer_key"]))
    features = ranker.rank_features(
        history_of(inputs), rows[[*ranker.CANDIDATE_COLUMNS, "query"]], inputs["products"]
    )
    return features, rows["label"].to_numpy()


def test_ranking_metrics_by_hand():
    # One query, three products: the paid one ranked second, the carted one first.
    frame = pd.DataFrame({"query": 0, "label": [2, 3, 0], "score": [0.9, 0.5, 0.1]})
    metrics = ranking_metrics(frame, "score", 2, ranker.LABELS["paid"])
    dcg = 3 / np.log2(2) + 7 / np.log2(3)
    ideal = 7 / np.log2(2) + 3 / np.log2(3)
    assert metrics["ndcg@2"] == pytest.approx(dcg / ideal)
    assert metrics["hitrate@2"] == 1.0 and metrics["recall@2"] == 1.0
    assert metrics["map@2"] == pytest.approx(0.5)  # the hit is at rank 2
    # A query without a paid product is not counted.
    other = pd.DataFrame({"query": 1, "label": [1, 0], "score": [0.2, 0.3]})
    assert (
        ranking_metrics(pd.concat([frame, other]), "score", 2, ranker.LABELS["paid"])["queries"]
        == 1
    )
