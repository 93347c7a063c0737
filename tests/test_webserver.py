"""A real Dagster webserver over the project's code location: what `make ui` shows."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import dagster as dg
import pytest

from tests.conftest import _free_port
from tests.test_definitions import SNAPSHOT

ROOT = Path(__file__).resolve().parents[1]
QUERY = """
{
  assetNodes { assetKey { path } groupName isPartitioned partitionDefinition { description } }
  repositoriesOrError {
    ... on RepositoryConnection {
      nodes { name schedules { name cronSchedule executionTimezone scheduleState { status } } }
    }
  }
}
"""


def test_project_instance_has_telemetry_and_first_visit_modal_off(tmp_path):
    shutil.copy(ROOT / "dagster.yaml", tmp_path / "dagster.yaml")
    with dg.DagsterInstance.from_config(str(tmp_path)) as instance:
        assert instance.telemetry_enabled is False
        assert instance.nux_enabled is False
        # Two runs of the same partition are queued one after the other.
        limits = instance.get_concurrency_config().run_queue_config.tag_concurrency_limits
        assert {
            "key": "dagster/partition",
            "value": {"applyLimitPerUniqueValue": True},
            "limit": 1,
        } in limits


@pytest.mark.slow
def test_webserver_serves_the_asset_graph_partitions_and_schedule(tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    shutil.copy(ROOT / "dagster.yaml", home / "dagster.yaml")
    port = _free_port()
    env = {
        **os.environ,
        "DAGSTER_HOME": str(home),
        "LIVECOMMERCE_DATA_DIR": str(tmp_path / "data"),
    }
    webserver = Path(sys.executable).with_name("dagster-webserver")
    cmd = [webserver, "-m", "orchestration.definitions", "-h", "127.0.0.1", "-p", str(port)]
    proc = subprocess.Popen(
        cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/server_info", timeout=2):
                    break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    output = proc.stdout.read().decode(errors="replace") if proc.stdout else ""
                    pytest.fail(f"webserver did not come up: {output[-2000:]}")
                time.sleep(0.5)
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/graphql",
            data=json.dumps({"query": QUERY}).encode(),
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            data = json.loads(response.read())["data"]
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    nodes = {"/".join(n["assetKey"]["path"]): n for n in data["assetNodes"]}
    assert set(nodes) == set(json.loads(SNAPSHOT.read_text())["assets"])
    assert all(n["isPartitioned"] for n in nodes.values())
    assert "Asia/Shanghai" in nodes["clean/orders"]["partitionDefinition"]["description"]
    assert nodes["serving/session_scorecard"]["groupName"] == "serving"
    schedules = [s for repo in data["repositoriesOrError"]["nodes"] for s in repo["schedules"]]
    assert [(s["name"], s["cronSchedule"], s["executionTimezone"]) for s in schedules] == [
        ("nightly_schedule", "30 2 * * *", "Asia/Shanghai")
    ]
