"""Schema, atomic partition writes and the serving contract, on a throwaway SQLite file."""

from __future__ import annotations

import datetime as dt
import threading

import pandas as pd
import pytest
from sqlalchemy import inspect
from sqlalchemy.exc import IntegrityError

from warehouse.schema import (
    clean_sessions,
    ops_ingest_ledger,
    product_recommendations,
    session_scorecard,
)
from warehouse.store import (
    create_schema,
    hex_prefix,
    make_engine,
    read_frame,
    replace_newer,
    write_partition,
    write_partition_chunks,
)

# shared/contract/serving-tables.md, column for column.
SERVING_CONTRACT = {
    "session_gmv_forecast": "plan_id platform room_id host_id planned_start forecast_made_at "
    "horizon_days gmv_p10 gmv_p50 gmv_p90 model_version run_id",
    "product_recommendations": "plan_id viewer_key sku rank score model_version generated_at "
    "run_id",
    "session_scorecard": "session_key platform room_id host_id plan_id start_time end_time "
    "duration_min viewers views peak_online avg_watch_s comments likes new_followers orders buyers "
    "gmv refunded net_gmv aov conversion gpm platform_gmv gmv_gap as_of_date run_id",
    "fan_segments": "as_of_date platform room_id viewer_key segment last_seen_days sessions_28d "
    "orders_365d spend_365d run_id",
    "forecast_accuracy": "plan_id session_key forecast_made_at horizon_days gmv_p10 gmv_p50 "
    "gmv_p90 actual_gmv abs_error in_interval model_version as_of_date run_id",
}


@pytest.fixture
def engine(tmp_path):
    engine = make_engine(f"sqlite:///{tmp_path / 'wh.db'}")
    create_schema(engine)
    return engine


def ledger_rows(day: dt.date, n: int, run: str) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "source_file": [f"douyin/{day}/orders-{i}.csv" for i in range(n)],
            "export_date": day,
            "platform": "douyin",
            "table_name": "orders",
            "raw_rows": 10,
            "clean_rows": 10,
            "duplicate_rows": 0,
            "quarantined_rows": 0,
            "extra_columns": "",
            "run_id": run,
        }
    )


def test_serving_tables_and_views_match_the_contract(engine):
    inspector = inspect(engine)
    for table, columns in SERVING_CONTRACT.items():
        assert [c["name"] for c in inspector.get_columns(table)] == columns.split()
    views = set(inspector.get_view_names())
    assert {"session_gmv_forecast_latest", "product_recommendations_latest"} <= views
    for view in ("session_gmv_forecast_latest", "product_recommendations_latest"):
        base = view.removesuffix("_latest")
        assert [c["name"] for c in inspector.get_columns(view)] == SERVING_CONTRACT[base].split()
    create_schema(engine)  # idempotent


def test_write_partition_replaces_only_its_partition(engine):
    d1, d2 = dt.date(2026, 11, 1), dt.date(2026, 11, 2)
    write_partition(engine, ops_ingest_ledger, ledger_rows(d1, 3, "a"), "export_date", [d1])
    write_partition(engine, ops_ingest_ledger, ledger_rows(d2, 2, "a"), "export_date", [d2])
    write_partition(engine, ops_ingest_ledger, ledger_rows(d1, 1, "b"), "export_date", [d1])
    got = read_frame(engine, "SELECT export_date, run_id FROM ops_ingest_ledger ORDER BY 1")
    assert got.values.tolist() == [["2026-11-01", "b"], ["2026-11-02", "a"], ["2026-11-02", "a"]]


def test_a_failed_write_leaves_the_previous_rows(engine):
    day = dt.date(2026, 11, 1)
    write_partition(engine, ops_ingest_ledger, ledger_rows(day, 3, "good"), "export_date", [day])
    broken = ledger_rows(day, 3, "bad")
    broken.loc[2, "raw_rows"] = None  # NOT NULL: the insert fails after the delete ran
    with pytest.raises(IntegrityError):
        write_partition(engine, ops_ingest_ledger, broken, "export_date", [day])
    got = read_frame(engine, "SELECT run_id FROM ops_ingest_ledger")
    assert got["run_id"].tolist() == ["good"] * 3


def test_rows_outside_the_partition_are_refused(engine):
    rows = ledger_rows(dt.date(2026, 11, 2), 1, "a")
    with pytest.raises(ValueError, match="outside the partitions"):
        write_partition(engine, ops_ingest_ledger, rows, "export_date", [dt.date(2026, 11, 1)])


def scorecard_row(key: str, as_of: str, gmv: float) -> dict:
    return {
        "session_key": key, "platform": "jd", "room_id": "r", "host_id": "h",
        "start_time": pd.Timestamp("2026-11-01 12:00"), "viewers": 1, "views": 1,
        "peak_online": 1, "comments": 0, "likes": 0, "new_followers": 0, "orders": 1,
        "buyers": 1, "gmv": gmv, "refunded": 0.0, "net_gmv": gmv, "platform_gmv": gmv,
        "gmv_gap": 0.0, "as_of_date": dt.date.fromisoformat(as_of), "run_id": "r",
    }  # fmt: skip


def test_replace_newer_never_rolls_a_row_back(engine):
    newer = pd.DataFrame(
        [scorecard_row("jd:1", "2026-11-05", 100.0), scorecard_row("jd:2", "2026-11-05", 7.0)]
    )
    replace_newer(engine, session_scorecard, newer, ["session_key"], "as_of_date")
    older = pd.DataFrame(
        [scorecard_row("jd:1", "2026-11-03", 50.0), scorecard_row("jd:2", "2026-11-06", 8.0)]
    )
    written = replace_newer(engine, session_scorecard, older, ["session_key"], "as_of_date")
    got = read_frame(engine, "SELECT session_key, gmv FROM session_scorecard ORDER BY 1")
    assert written == 1
    assert got.values.tolist() == [["jd:1", 100.0], ["jd:2", 8.0]]


def test_current_view_keeps_the_latest_export(engine):
    base = {
        "platform": "douyin", "session_id": "1", "room_id": "r", "host_id": "h",
        "start_time": pd.Timestamp("2026-11-01 12:00"), "viewers": 1, "views": 1,
        "peak_online": 1, "avg_watch_s": 1.0, "new_followers": 0, "comments": 0, "likes": 0,
        "orders": 0, "is_test": False, "source_file": "f", "source_line": 2, "run_id": "r",
        "session_key": "douyin:1",
    }  # fmt: skip
    for day, gmv in ((dt.date(2026, 11, 1), 100), (dt.date(2026, 11, 2), 250)):
        row = pd.DataFrame([{**base, "export_date": day, "gmv_fen": gmv}])
        write_partition(engine, clean_sessions, row, "export_date", [day])
    got = read_frame(engine, "SELECT export_date, gmv_fen FROM clean_sessions_current")
    assert got.values.tolist() == [["2026-11-02", 250]]


def _concurrent_writes(engine) -> pd.DataFrame:
    day = dt.date(2026, 11, 1)
    errors: list[BaseException] = []

    def write(run: str) -> None:
        try:
            for _ in range(5):
                write_partition(
                    engine, ops_ingest_ledger, ledger_rows(day, 300, run), "export_date", [day]
                )
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(run,)) for run in ("a", "b")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    return read_frame(engine, "SELECT run_id, COUNT(*) AS n FROM ops_ingest_ledger GROUP BY run_id")


def test_two_writers_of_one_partition_are_serialized_on_sqlite(engine):
    got = _concurrent_writes(engine)
    assert len(got) == 1 and got["n"].iloc[0] == 300  # one writer's rows, whole, never a mix


@pytest.mark.postgres
def test_two_writers_of_one_partition_are_serialized_on_postgresql(postgres_url):
    from sqlalchemy import text

    engine = make_engine(postgres_url)
    with engine.begin() as conn:
        conn.execute(text("DROP TABLE IF EXISTS ops_ingest_ledger CASCADE"))
    create_schema(engine)
    got = _concurrent_writes(engine)
    assert len(got) == 1 and got["n"].iloc[0] == 300


def test_chunked_write_replaces_its_generation_and_prunes_older_ones(engine):
    def picks(stamp: str, plan: str, n: int) -> pd.DataFrame:
        return pd.DataFrame(
            {
                "plan_id": plan,
                "viewer_key": [f"v{i}" for i in range(n)],
                "sku": "S1",
                "rank": 1,
                "score": 0.5,
                "model_version": "m",
                "generated_at": pd.Timestamp(stamp),
                "run_id": stamp,
            }
        )

    def write(stamp: str, chunks: list[pd.DataFrame], keep_days: int = 28) -> tuple[int, int]:
        at = pd.Timestamp(stamp)
        return write_partition_chunks(
            engine,
            product_recommendations,
            iter(chunks),
            "generated_at",
            [at],
            prune_before=at - pd.Timedelta(days=keep_days),
        )

    assert write("2026-10-01 16:00", [picks("2026-10-01 16:00", "P1", 3)]) == (3, 0)
    assert write("2026-10-20 16:00", [picks("2026-10-20 16:00", "P2", 2)]) == (2, 0)
    # A re-run of a generation replaces it, chunk by chunk; the first is past retention.
    again = [picks("2026-10-30 16:00", "P2", 2), picks("2026-10-30 16:00", "P3", 4)]
    assert write("2026-10-30 16:00", again) == (6, 3)
    assert write("2026-10-30 16:00", again) == (6, 0)
    got = read_frame(
        engine,
        "SELECT plan_id, COUNT(*) AS n FROM product_recommendations_latest GROUP BY plan_id",
    )
    assert dict(zip(got["plan_id"], got["n"], strict=True)) == {"P2": 2, "P3": 4}
    stamps = read_frame(engine, "SELECT DISTINCT run_id FROM product_recommendations ORDER BY 1")
    assert stamps["run_id"].tolist() == ["2026-10-20 16:00", "2026-10-30 16:00"]


def test_hex_prefix_is_a_range_an_index_can_seek(engine):
    keys = pd.DataFrame({"viewer_key": ["0f", "8e", "9a", "9f", "a0", "fe", "ff"]})
    with engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE k (viewer_key TEXT PRIMARY KEY)")
        conn.exec_driver_sql("INSERT INTO k VALUES (?)", [(k,) for k in keys["viewer_key"]])
    for prefix, expected in (("9", ["9a", "9f"]), ("f", ["fe", "ff"]), ("0f", ["0f"])):
        condition, bounds = hex_prefix("viewer_key", prefix)
        got = read_frame(engine, f"SELECT viewer_key FROM k WHERE {condition} ORDER BY 1", bounds)
        assert got["viewer_key"].tolist() == expected
    condition, bounds = hex_prefix("viewer_key", "9")
    plan = read_frame(engine, f"EXPLAIN QUERY PLAN SELECT * FROM k WHERE {condition}", bounds)
    assert plan["detail"].str.contains("SEARCH").any()  # a seek, not a scan
    with pytest.raises(ValueError, match="not a hex prefix"):
        hex_prefix("viewer_key", "G")
