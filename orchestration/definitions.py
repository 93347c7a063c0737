"""The code location: every asset, the resources for this environment, jobs and schedules."""

from __future__ import annotations

import os

import dagster as dg

from assets.checks import clean_checks, serving_checks
from assets.clean import clean_assets
from assets.events import bot_viewers, events, viewer_activity, viewers
from assets.forecasting import forecasting_assets
from assets.forecasting_checks import forecasting_checks
from assets.matching import session_plans
from assets.publishing import build_platform_report
from assets.recommending import recommending_assets
from assets.recommending_checks import recommending_checks
from assets.resources import Lake, LandingZone, ModelStore, Pseudonymizer, Warehouse
from assets.serving import session_scorecard
from orchestration.sensors import build_landing_sensor
from warehouse.settings import (
    DEV_VIEWER_KEY_SECRET,
    FIRST_DATE,
    lake_dir,
    landing_dir,
    models_dir,
    parse_platforms,
    picks_horizon_setting,
    platforms_setting,
    truth_dir,
    viewer_key_secret_is_set,
    warehouse_url,
)

NIGHTLY_JOB = "nightly"

data_assets = [
    *clean_assets,
    events,
    bot_viewers,
    viewer_activity,
    viewers,
    session_plans,
    session_scorecard,
    *forecasting_assets,
    *recommending_assets,
]
# One report per platform the deployment sells on, after every table it can hold back (the
# models' steps may be skipped by their gate and are whole-date units anyway).
platform_reports = [
    build_platform_report(
        platform, [a.key for a in data_assets if a.group_names_by_key[a.key] != "ml"]
    )
    for platform in parse_platforms(platforms_setting())
]
all_assets = [*data_assets, *platform_reports]
all_checks = [*clean_checks, *serving_checks, *forecasting_checks, *recommending_checks]

# One run per date for the nightly schedule; a backfill over a range is one run per asset
# (single-run backfill policy), each asset body handling the whole window.
nightly_job = dg.define_asset_job(
    NIGHTLY_JOB,
    selection=dg.AssetSelection.all(),
    description="Everything for one local date: clean layer, then the serving tables.",
)

# 02:30 Asia/Shanghai, for yesterday's partition (the exports land by 02:00).
nightly_schedule = dg.build_schedule_from_partitioned_job(
    nightly_job,
    hour_of_day=2,
    minute_of_hour=30,
    name="nightly_schedule",
    default_status=(
        dg.DefaultScheduleStatus.RUNNING
        if os.environ.get("LIVECOMMERCE_SCHEDULE_RUNNING") == "1"
        else dg.DefaultScheduleStatus.STOPPED
    ),
)


landing_sensor = build_landing_sensor(nightly_job, FIRST_DATE)


def _secret() -> str | dg.EnvVar:
    # The secret comes from the environment in production and is then shown only by name.
    if viewer_key_secret_is_set():
        return dg.EnvVar("VIEWER_KEY_SECRET")
    return DEV_VIEWER_KEY_SECRET


def build_resources() -> dict[str, dg.ConfigurableResource]:
    return {
        "landing_zone": LandingZone(root=str(landing_dir()), platforms=platforms_setting()),
        "warehouse": Warehouse(url=warehouse_url()),
        "lake": Lake(root=str(lake_dir())),
        "pseudonymizer": Pseudonymizer(secret=_secret()),
        "models": ModelStore(
            root=str(models_dir()), truth_dir=truth_dir(), **picks_horizon_setting()
        ),
    }


defs = dg.Definitions(
    assets=all_assets,
    asset_checks=all_checks,
    jobs=[nightly_job],
    schedules=[nightly_schedule],
    sensors=[landing_sensor],
    resources=build_resources(),
    # Each step re-importing pandas and friends costs seconds; the steps are sequential anyway.
    executor=dg.in_process_executor,
)
