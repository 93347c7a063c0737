"""The code location loads, and its graph is what we meant (a snapshot, reviewed on change)."""

from __future__ import annotations

import ast
import datetime as dt
import json
import os
from pathlib import Path
from zoneinfo import ZoneInfo

import dagster as dg

from assets.publishing import COMPLETE, PER_DATE, PER_PLATFORM, UNITS_TAG
from orchestration.definitions import defs

SNAPSHOT = Path(__file__).with_name("graph_snapshot.json")


def graph_snapshot() -> dict:
    """What a reviewer reads of the graph: assets and what they read, checks (blocking or not,
    and the description the UI shows), jobs, schedules and sensors."""
    graph = defs.resolve_asset_graph()
    assets = {}
    for key in sorted(graph.get_all_asset_keys()):
        node = graph.get(key)
        assets[key.to_user_string()] = {
            "group": node.group_name,
            "deps": sorted(k.to_user_string() for k in node.parent_keys),
        }
    checks = {}
    for check in graph.asset_check_keys:
        spec = graph.get_check_spec(check)
        checks[f"{check.asset_key.to_user_string()}:{check.name}"] = {
            "blocking": spec.blocking,
            "description": spec.description,
        }
    return {
        "assets": assets,
        "checks": dict(sorted(checks.items())),
        "jobs": sorted(job.name for job in defs.resolve_all_job_defs()),
        "schedules": {
            name: {"cron": s.cron_schedule, "job": s.job_name, "timezone": s.execution_timezone}
            for name in sorted(s.name for s in defs.schedules or [])
            for s in [defs.resolve_schedule_def(name)]
        },
        "sensors": {
            name: {"job": s.job_name, "description": s.description}
            for name in sorted(s.name for s in defs.sensors or [])
            for s in [defs.resolve_sensor_def(name)]
        },
    }


def test_graph_snapshot():
    """The graph as reviewed. After a deliberate change, rewrite the file with
    `UPDATE_GRAPH_SNAPSHOT=1 pytest tests/test_definitions.py` and review its diff."""
    snapshot = graph_snapshot()
    if os.environ.get("UPDATE_GRAPH_SNAPSHOT") == "1":
        SNAPSHOT.write_text(json.dumps(snapshot, indent=1, ensure_ascii=False) + "\n")
    assert snapshot == json.loads(SNAPSHOT.read_text())


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


# What each room may import of ours (docs/architecture.md), and whether it may import Dagster.
ROOMS = {
    "contract": ({"contract"}, False),
    "ml": ({"contract", "ml"}, False),
    "warehouse": ({"contract", "ml", "warehouse"}, False),
    "simulator": ({"contract", "simulator"}, False),
    "assets": ({"contract", "ml", "warehouse", "assets"}, True),
    "orchestration": ({"contract", "ml", "warehouse", "assets", "orchestration"}, True),
}


def test_rooms_import_in_one_direction():
    root = Path(__file__).resolve().parents[1]
    crossings = []
    for room, (allowed, dagster) in ROOMS.items():
        for path in sorted((root / room).glob("*.py")):
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.Import):
                    names = [alias.name for alias in node.names]
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    names = [node.module]
                else:
                    continue
                for top in {name.split(".")[0] for name in names}:
                    ours = top in {*ROOMS, "scripts", "tests"}
                    if (ours and top not in allowed) or (top == "dagster" and not dagster):
                        crossings.append(f"{path.relative_to(root)} imports {top}")
    assert crossings == []
