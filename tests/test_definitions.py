"""The code location loads, and its graph is what we meant (a snapshot, reviewed on change)."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import dagster as dg

from assets.publishing import COMPLETE, PER_DATE, PER_PLATFORM, UNITS_TAG
from orchestration.definitions import defs

ASSETS = {
    "clean/bot_viewers",
    "clean/events",
    "clean/viewer_activity",
    "clean/viewers",
    "clean/lineups",
    "clean/orders",
    "clean/plan_lineups",
    "clean/plans",
    "clean/products",
    "clean/session_plans",
    "clean/refunds",
    "clean/sessions",
    "serving/session_scorecard",
    "features/gmv_features",
    "ml/gmv_challenger",
    "ml/gmv_champion",
    "serving/session_gmv_forecast",
    "serving/forecast_accuracy",
    "serving/fan_segments",
    "serving/product_recommendations",
    "ml/ranker_challenger",
    "ml/ranker_champion",
    "ops/douyin",
    "ops/taobao",
    "ops/jd",
}


def test_graph_snapshot():
    graph = defs.resolve_asset_graph()
    assert {k.to_user_string() for k in graph.get_all_asset_keys()} == ASSETS
    assert {job.name for job in defs.resolve_all_job_defs()} >= {"nightly"}
    assert [s.name for s in defs.schedules] == ["nightly_schedule"]


def test_assets_are_daily_partitioned_in_china_time_and_backfill_in_one_run():
    for key in defs.resolve_asset_graph().get_all_asset_keys():
        node = defs.resolve_assets_def(key)
        partitions = node.partitions_def
        assert isinstance(partitions, dg.DailyPartitionsDefinition)
        assert partitions.timezone == "Asia/Shanghai"
        assert partitions.start.strftime("%Y-%m-%d") == "2026-05-25"
        assert node.backfill_policy == dg.BackfillPolicy.single_run()
        assert node.descriptions_by_key[key]


def test_nightly_schedule_runs_yesterday_at_0230_china_time():
    schedule = defs.resolve_schedule_def("nightly_schedule")
    assert schedule.cron_schedule == "30 2 * * *"
    assert schedule.execution_timezone == "Asia/Shanghai"
    assert schedule.job_name == "nightly"
    tick = dt.datetime(2026, 11, 12, 2, 30, tzinfo=ZoneInfo("Asia/Shanghai"))
    context = dg.build_schedule_context(scheduled_execution_time=tick)
    requests = list(schedule.evaluate_tick(context).run_requests or [])
    assert [r.partition_key for r in requests] == ["2026-11-11"]


def test_every_data_asset_publishes_through_dated_asset():
    """One mechanism holds back what lacks its inputs: no asset can forget it."""
    for key in defs.resolve_asset_graph().get_all_asset_keys():
        node = defs.resolve_assets_def(key)
        if key.path[0] == "ops":  # the per-platform reports read what the others recorded
            continue
        assert node.tags_by_key[key].get(UNITS_TAG) in (PER_PLATFORM, PER_DATE), key
        assert dg.AssetCheckKey(key, COMPLETE) in node.check_keys, key
