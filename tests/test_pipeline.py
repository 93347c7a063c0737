"""End to end: the real asset graph materialized on the tiny preset into throwaway warehouses."""

from __future__ import annotations

import os
import re
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
from sqlalchemy import inspect

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


@pytest.fixture(scope="module")
def dirty_run(tiny_story) -> str:
    """The tiny dirty world's whole story (conftest `tiny_story`): every date of it, every layer."""
    return tiny_story.url


# Bounded by non-alphanumerics, so that hex pseudonyms and ids do not count as phone numbers.
PHONE = re.compile(r"(?<![0-9A-Za-z])1[3-9]\d{9}(?![0-9A-Za-z])")
STREET = re.compile(r"(?:路|街|大道)\d+号")
RAW_VIEWER_ID = re.compile(r"\bdy7\d{9}\b|\btb_[0-9a-f]{8}\b|\bjd_\d{6,}\b")


def as_text(values: pd.Series) -> pd.Series:
    """Values as a person would read them; a number with a fraction is no phone number, an
    integral one (even stored as a float) might be."""
    if pd.api.types.is_float_dtype(values):
        values = values[values == values.round()].astype("int64")
    return values.astype(str)


def test_no_personal_data_anywhere_in_the_warehouse_or_the_lake(dirty_run, tiny_dirty):
    engine = make_engine(dirty_run)
    frames = {
        t: read_frame(engine, f"SELECT * FROM {t}") for t in inspect(engine).get_table_names()
    }
    frames.update({str(p): pd.read_parquet(p) for p in lake_for(dirty_run).rglob("*.parquet")})
    # The landing zone really holds such values, so the patterns are not vacuous.
    orders = (tiny_dirty / "landing" / "douyin" / "2026-11-11" / "orders.csv").read_text(
        "utf-8-sig"
    )
    assert PHONE.search(orders) and STREET.search(orders) and RAW_VIEWER_ID.search(orders)
    scanned = 0
    for name, frame in frames.items():
        for column in frame.columns:
            values = as_text(frame[column].dropna())
            scanned += len(values)
            for pattern in (PHONE, STREET, RAW_VIEWER_ID):
                hits = values[values.str.contains(pattern)]
                assert hits.empty, f"{name}.{column}: {pattern.pattern} in {hits.iloc[0]!r}"
    assert len(frames) >= 15 and scanned > 1_000_000


def test_dirty_exports_are_quarantined_and_accounted_for(dirty_run, tiny_dirty):
    url = dirty_run
    engine = make_engine(url)
    ledger = read_frame(engine, "SELECT * FROM ops_ingest_ledger")
    parts = ["clean_rows", "duplicate_rows", "conflict_rows", "quarantined_rows"]
    assert (ledger["raw_rows"] == ledger[parts].sum(axis=1)).all()
    quarantine = read_frame(engine, "SELECT * FROM ops_quarantine")
    faults = pd.read_csv(tiny_dirty / "truth" / "faults.csv")
    row_faults = faults[
        faults["kind"].isin(["malformed_row", "bad_time", "bad_amount", "negative_value"])
    ]
    found = set(zip(quarantine["source_file"], quarantine["source_line"], strict=True))
    assert set(zip(row_faults["file"], row_faults["line"].astype(int), strict=True)) <= found
    assert quarantine["reason"].str.len().gt(0).all() and quarantine["source_line"].ge(1).all()
    both = scorecard_vs_truth(url, tiny_dirty / "truth")
    real = both[both["_merge"] == "both"]
    off = real[(real["gmv"] - real["paid_gmv_landed"]).abs() > 0.005]
    # Only sessions that lost an order line to quarantine, or to an injected unknown SKU or
    # orphan rewrite, may differ from the truth; the rest match to the fen.
    assert len(off) < 0.1 * len(real)
    assert (off["gmv"] < off["paid_gmv_landed"]).all()


def test_rerunning_a_partition_replaces_it(clean_run, tiny_clean, tmp_path):
    url = sqlite_url(tmp_path / "rerun.db")
    copy_sqlite(clean_run, url)
    before = snapshot(url)
    for _ in range(2):
        assert run_assets(
            tiny_clean / "landing", url, "2026-11-11", None, THROUGH_SCORECARD
        ).success
    after = snapshot(url)
    for table in TABLES:
        assert len(after[table]) == len(before[table]), table
    assert_same(before, after)


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


def test_a_run_killed_mid_write_then_rerun_equals_one_clean_run(tiny_clean, tmp_path):
    landing = tiny_clean / "landing"
    first, last = TINY.dates[0].isoformat(), TINY.dates[2].isoformat()
    victim = sqlite_url(tmp_path / "victim.db")
    assert run_assets(landing, victim, first, last, THROUGH_SCORECARD).success
    one_clean_run = snapshot(victim)
    orders_before = one_clean_run["clean_orders"]
    script = tmp_path / "killed_run.py"
    script.write_text(KILLED_RUN)
    flag = tmp_path / "writing"
    root = Path(__file__).resolve().parents[1]
    proc = subprocess.Popen(
        [sys.executable, str(script), str(landing), victim, str(flag), first, last],
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
    # The killed transaction left the previous rows, whole.
    pd.testing.assert_frame_equal(snapshot(victim)["clean_orders"], orders_before)
    assert run_assets(landing, victim, first, last, THROUGH_SCORECARD).success
    assert_same(one_clean_run, snapshot(victim))
