"""End to end: the real asset graph materialized on the tiny preset into throwaway warehouses."""

from __future__ import annotations

import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import dagster as dg
import pandas as pd
import pytest

from tests.conftest import TINY, lake_for, run_assets, sqlite_url
from warehouse.store import make_engine, read_frame

FIRST, LAST = TINY.start.isoformat(), TINY.end.isoformat()
TABLES = (
    "clean_products", "clean_plans", "clean_plan_lineups", "clean_sessions", "clean_lineups",
    "clean_orders", "clean_refunds", "clean_session_plans", "clean_viewer_sessions",
    "clean_viewer_products", "clean_bot_viewers", "clean_viewers", "ops_quarantine",
    "ops_ingest_ledger",
    "session_scorecard",
)  # fmt: skip


# The assets that write TABLES (the clean layer and the scorecard) with their checks: what a
# re-run test compares, without training models it does not look at.
THROUGH_SCORECARD = dg.AssetSelection.groups("clean") | dg.AssetSelection.assets(
    ["serving", "session_scorecard"]
)


def snapshot(url: str) -> dict[str, pd.DataFrame]:
    """Every table's rows without run ids, in a stable order: what two runs must agree on."""
    engine = make_engine(url)
    out = {}
    for table in TABLES:
        frame = read_frame(engine, f"SELECT * FROM {table}").drop(columns="run_id")
        out[table] = frame.sort_values(list(frame.columns)).reset_index(drop=True)
    return out


def assert_same(a: dict[str, pd.DataFrame], b: dict[str, pd.DataFrame]) -> None:
    for table in TABLES:
        pd.testing.assert_frame_equal(a[table], b[table], obj=table)


def failure_text(result) -> str:
    """What the data team reads in the UI for a failed step: the error and its description."""
    parts = []
    for event in result.get_step_failure_events():
        data = event.step_failure_data
        parts.append(data.error.message if data.error else "")
        if data.user_failure_data:
            parts.append(data.user_failure_data.description or "")
    return " ".join(parts)


def copy_sqlite(source_url: str, target_url: str) -> None:
    """A consistent copy of a SQLite warehouse (WAL included, through SQLite's backup API) and
    of its lake."""
    with (
        sqlite3.connect(source_url.removeprefix("sqlite:///")) as src,
        sqlite3.connect(target_url.removeprefix("sqlite:///")) as dst,
    ):
        src.backup(dst)
    if lake_for(source_url).exists():  # the warehouse's Parquet half goes with it
        shutil.copytree(lake_for(source_url), lake_for(target_url))


def scorecard_vs_truth(url: str, truth_dir) -> pd.DataFrame:
    card = read_frame(
        make_engine(url), "SELECT session_key, gmv, platform_gmv FROM session_scorecard"
    )
    truth = pd.read_csv(truth_dir / "sessions.csv")
    return truth.merge(card, on="session_key", how="outer", indicator=True)


@pytest.fixture(scope="module")
def clean_run(tiny_clean, tmp_path_factory) -> str:
    url = sqlite_url(tmp_path_factory.mktemp("wh") / "clean.db")
    result = run_assets(tiny_clean / "landing", url, FIRST, LAST)
    assert result.success
    return url


def test_scorecard_equals_the_simulators_totals(clean_run, tiny_clean):
    both = scorecard_vs_truth(clean_run, tiny_clean / "truth")
    real = both[~both["is_test"].astype(bool)]
    assert (both.loc[both["is_test"].astype(bool), "_merge"] == "left_only").all()  # tests excluded
    assert (real["_merge"] == "both").all() and len(real) > 150
    assert (real["gmv"] - real["paid_gmv_landed"]).abs().max() < 0.005


def test_sessions_are_matched_to_the_plans_they_came_from(clean_run, tiny_clean):
    got = read_frame(make_engine(clean_run), "SELECT session_key, plan_id FROM session_scorecard")
    truth = pd.read_csv(tiny_clean / "truth" / "sessions.csv")
    both = truth.merge(got, on="session_key", suffixes=("_true", "_got"))
    # Plans of the first day were exported before the data begins: nothing can match them.
    later = both[pd.to_datetime(both["start_time"]).dt.date > TINY.start]
    assert len(later) > 150
    assert (later["plan_id_true"].fillna("-") == later["plan_id_got"].fillna("-")).all()


def test_ledger_adds_up_and_nothing_is_quarantined_without_faults(clean_run):
    ledger = read_frame(make_engine(clean_run), "SELECT * FROM ops_ingest_ledger")
    exports = ledger[ledger["table_name"] != "events"]
    assert len(exports[exports["platform"].isin(["douyin", "taobao", "jd"])]) == 21 * 3 * 4
    parts = ["clean_rows", "duplicate_rows", "conflict_rows", "quarantined_rows"]
    assert (ledger["raw_rows"] == ledger[parts].sum(axis=1)).all()
    assert ledger["quarantined_rows"].sum() == 0 and ledger["duplicate_rows"].sum() == 0


def test_a_folder_without_success_marker_fails_the_date(tiny_clean, tmp_path):
    landing = tmp_path / "landing"
    shutil.copytree(tiny_clean / "landing" / "jd" / "2026-11-01", landing / "jd" / "2026-11-01")
    for platform in ("douyin", "taobao"):
        shutil.copytree(
            tiny_clean / "landing" / platform / "2026-11-01", landing / platform / "2026-11-01"
        )
    (landing / "jd" / "2026-11-01" / "_SUCCESS").unlink()
    result = run_assets(landing, sqlite_url(tmp_path / "w.db"), "2026-11-01")
    assert not result.success
    messages = failure_text(result)
    assert "jd/2026-11-01" in messages and "_SUCCESS" in messages and "not empty" in messages


def test_a_renamed_required_column_fails_the_platform_date(tiny_clean, tmp_path):
    landing = tmp_path / "landing"
    for platform in ("douyin", "taobao", "jd"):
        shutil.copytree(
            tiny_clean / "landing" / platform / "2026-11-01", landing / platform / "2026-11-01"
        )
    orders = landing / "douyin" / "2026-11-01" / "orders.csv"
    orders.write_bytes(orders.read_bytes().replace("实付金额(元)".encode(), "实付金额".encode(), 1))
    result = run_assets(landing, sqlite_url(tmp_path / "w.db"), "2026-11-01")
    assert not result.success
    messages = failure_text(result)
    assert "douyin/2026-11-01/orders.csv" in messages and "'实付金额(元)'" in messages


@pytest.mark.postgres
def test_the_same_graph_on_postgresql(tiny_clean, postgres_url, clean_run):
    from sqlalchemy import text

    engine = make_engine(postgres_url)
    with engine.begin() as conn:  # a fresh schema each time the test runs against a server
        conn.execute(text("DROP SCHEMA public CASCADE; CREATE SCHEMA public"))
    from assets.resources import _engine

    _engine.cache_clear()
    assert run_assets(tiny_clean / "landing", postgres_url, FIRST, LAST).success
    both = scorecard_vs_truth(postgres_url, tiny_clean / "truth")
    real = both[~both["is_test"].astype(bool)]
    assert (real["_merge"] == "both").all()
    assert (real["gmv"].astype(float) - real["paid_gmv_landed"]).abs().max() < 0.005
    pg, lite = snapshot(postgres_url), snapshot(clean_run)
    for table in TABLES:
        assert len(pg[table]) == len(lite[table]), table
    numeric = read_frame(engine, "SELECT pg_typeof(gmv)::text AS t FROM session_scorecard LIMIT 1")
    assert numeric["t"].iloc[0] == "numeric"


KILLED_RUN = """
import pathlib, sys, time
import warehouse.store as store

real_insert = store._insert


def insert_then_hang(conn, table, df):
    real_insert(conn, table, df)
    if table.name == "clean_orders":  # inside the transaction, before it commits
        pathlib.Path(sys.argv[3]).write_text("writing")
        time.sleep(600)


store._insert = insert_then_hang
from tests.conftest import run_assets

run_assets(pathlib.Path(sys.argv[1]), sys.argv[2], sys.argv[4], sys.argv[5])
"""


def test_a_run_killed_mid_write_leaves_the_rows_and_a_rerun_replaces_them(
    clean_run, tiny_clean, tmp_path
):
    """A run killed inside its write transaction leaves the previous rows, whole; re-running
    the partition then replaces its rows by the same ones, neither doubled nor lost."""
    landing, day = tiny_clean / "landing", "2026-11-11"
    victim = sqlite_url(tmp_path / "victim.db")
    copy_sqlite(clean_run, victim)
    before = snapshot(victim)
    script = tmp_path / "killed_run.py"
    script.write_text(KILLED_RUN)
    flag = tmp_path / "writing"
    root = Path(__file__).resolve().parents[1]
    proc = subprocess.Popen(
        [sys.executable, str(script), str(landing), victim, str(flag), day, day],
        cwd=root, env={**os.environ, "PYTHONPATH": str(root)},
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    deadline = time.monotonic() + 120
    while not flag.exists():
        assert proc.poll() is None and time.monotonic() < deadline, (
            "the run never reached the write"
        )
        time.sleep(0.1)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    pd.testing.assert_frame_equal(snapshot(victim)["clean_orders"], before["clean_orders"])
    assert run_assets(landing, victim, day, None, THROUGH_SCORECARD).success
    after = snapshot(victim)
    for table in TABLES:
        assert len(after[table]) == len(before[table]), table
    assert_same(before, after)
