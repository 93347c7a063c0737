"""The DuckDB peer: the clean layer's event work as a data engineer who reached for DuckDB would
write it, in SQL over the same files. Parse the day's `.jsonl.gz` parts, type, deduplicate by
`event_id`, drop events out of their session's window (sessions from the day's exports), then
aggregate per (session, viewer) and per (session, viewer, SKU). Only the bench installs duckdb
(the `bench` extra)."""

from __future__ import annotations

import datetime as dt
import tempfile
import time
from pathlib import Path

SLACK = "INTERVAL 10 MINUTE"


def sessions_sql(landing: Path, day: dt.date, taobao_utf8: Path) -> str:
    """The day's sessions of the three platforms: session key, start and end in UTC.
    `taobao_utf8`: taobao's GB18030 export transcoded (DuckDB reads GB18030 only through its
    `encodings` extension, a download this machine cannot make)."""
    folder = day.isoformat()
    csv = "read_csv('{}', header=true, all_varchar=true, encoding='{}', ignore_errors=true)"
    local = "(try_strptime({}, '{}') - INTERVAL 8 HOUR)"
    return f"""
    SELECT 'douyin:' || "直播场次ID" AS session_key,
           {local.format('"开播时间"', "%Y-%m-%d %H:%M:%S")} AS start_time,
           {local.format('"关播时间"', "%Y-%m-%d %H:%M:%S")} AS end_time
      FROM {csv.format(landing / "douyin" / folder / "sessions.csv", "utf-8")}
    UNION ALL
    SELECT 'taobao:' || "场次ID",
           {local.format('"开始时间"', "%Y/%m/%d %H:%M:%S")},
           {local.format('"结束时间"', "%Y/%m/%d %H:%M:%S")}
      FROM {csv.format(taobao_utf8, "utf-8")}
    UNION ALL
    SELECT 'jd:' || live_id,
           make_timestamp(try_cast(start_ms AS BIGINT) * 1000),
           make_timestamp(try_cast(end_ms AS BIGINT) * 1000)
      FROM read_json('{landing / "jd" / folder / "sessions.jsonl"}',
                     format='newline_delimited', ignore_errors=true,
                     columns={{live_id: 'VARCHAR', start_ms: 'VARCHAR', end_ms: 'VARCHAR'}})
    """


def clean_events(landing: Path, day: dt.date, threads: int = 2) -> dict:
    import duckdb

    con = duckdb.connect()
    con.execute(f"SET threads = {threads}")
    con.execute("SET enable_progress_bar = false")
    parts = landing / "events" / day.isoformat() / "*.jsonl.gz"
    started = time.perf_counter()
    taobao = landing / "taobao" / day.isoformat() / "sessions.csv"
    taobao_utf8 = Path(tempfile.mkdtemp()) / "taobao-sessions.csv"
    taobao_utf8.write_bytes(taobao.read_bytes().decode("gb18030", "replace").encode("utf-8"))
    con.execute(f"CREATE TEMP TABLE sessions AS {sessions_sql(landing, day, taobao_utf8)}")
    # One session key may be exported twice (revisions): keep its latest known window.
    con.execute("""
        CREATE TEMP TABLE windows AS
        SELECT session_key, min(start_time) AS start_time, max(end_time) AS end_time
          FROM sessions WHERE start_time IS NOT NULL GROUP BY session_key
    """)
    con.execute(f"""
        CREATE TEMP TABLE events AS
        WITH raw AS (
            SELECT event_id, platform, platform || ':' || session_id AS session_key,
                   viewer_id, type, sku,
                   try_strptime(ts, '%Y-%m-%dT%H:%M:%S.%g%z') AT TIME ZONE 'UTC' AS ts
              FROM read_json('{parts}', format='newline_delimited', ignore_errors=true,
                             columns={{event_id: 'VARCHAR', ts: 'VARCHAR', platform: 'VARCHAR',
                                       session_id: 'VARCHAR', viewer_id: 'VARCHAR',
                                       type: 'VARCHAR', sku: 'VARCHAR'}})
             WHERE event_id IS NOT NULL
        )
        SELECT raw.* FROM raw JOIN windows USING (session_key)
         WHERE raw.ts IS NOT NULL
           AND raw.ts >= windows.start_time - {SLACK}
           AND (windows.end_time IS NULL OR raw.ts <= windows.end_time + {SLACK})
        QUALIFY row_number() OVER (PARTITION BY event_id ORDER BY raw.ts) = 1
    """)
    cleaned = con.execute("SELECT count(*) FROM events").fetchone()[0]
    clean_s = time.perf_counter() - started
    # Watch seconds as the pipeline counts them: each leave paired with the enter before it,
    # unless a leave already closed that enter.
    con.execute("""
        CREATE TEMP TABLE viewer_sessions AS
        WITH marked AS (
            SELECT *,
                   max(ts) FILTER (type = 'enter') OVER seen AS last_enter,
                   max(ts) FILTER (type = 'leave') OVER before AS previous_leave
              FROM events
            WINDOW seen AS (PARTITION BY session_key, viewer_id ORDER BY ts
                            ROWS UNBOUNDED PRECEDING),
                   before AS (PARTITION BY session_key, viewer_id ORDER BY ts
                              ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING)
        )
        SELECT session_key, viewer_id, any_value(platform) AS platform,
               min(ts) AS first_seen, max(ts) AS last_seen,
               count(*) FILTER (type = 'enter') AS enters,
               count(*) FILTER (type = 'comment') AS comments,
               count(*) FILTER (type = 'like') AS likes,
               count(*) FILTER (type = 'follow') AS follows,
               count(*) FILTER (type = 'share') AS shares,
               count(*) FILTER (type = 'product_click') AS product_clicks,
               count(*) FILTER (type = 'add_to_cart') AS carts,
               round(coalesce(sum(epoch(ts - last_enter)) FILTER (
                   type = 'leave' AND last_enter IS NOT NULL
                   AND NOT coalesce(previous_leave >= last_enter, false)), 0), 1) AS watch_s
          FROM marked GROUP BY session_key, viewer_id
    """)
    con.execute("""
        CREATE TEMP TABLE viewer_products AS
        SELECT session_key, viewer_id, sku,
               count(*) FILTER (type = 'product_click') AS clicks,
               count(*) FILTER (type = 'add_to_cart') AS carts
          FROM events WHERE type IN ('product_click', 'add_to_cart') AND sku IS NOT NULL
         GROUP BY session_key, viewer_id, sku
    """)
    total_s = time.perf_counter() - started
    counts = {
        name: con.execute(f"SELECT count(*) FROM {name}").fetchone()[0]
        for name in ("sessions", "viewer_sessions", "viewer_products")
    }
    return {
        "rows": cleaned,
        "clean_s": clean_s,
        "aggregate_s": total_s - clean_s,
        "seconds": total_s,
        "duckdb": duckdb.__version__,
        **counts,
    }
