"""Parquet files beside the SQL warehouse, for event-level data (one file per dataset and date).

A partition file is written to a temporary name and renamed over the old one, so a re-run
replaces it atomically and a crash leaves the previous file.
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Iterable
from pathlib import Path

import duckdb
import pandas as pd


def partition_path(root: Path | str, dataset: str, day: dt.date) -> Path:
    return Path(root) / dataset / f"export_date={day.isoformat()}" / "part.parquet"


def write_partition_file(
    root: Path | str,
    dataset: str,
    day: dt.date,
    frame: pd.DataFrame,
    platforms: Iterable[str] | None = None,
) -> Path:
    """Replace the partition file of `day` by `frame`; with `platforms`, only those platforms'
    rows are replaced and the others' rows already in the file are kept (a platform held back
    keeps what it had)."""
    path = partition_path(root, dataset, day)
    path.parent.mkdir(parents=True, exist_ok=True)
    if platforms is not None and path.exists():
        old = pd.read_parquet(path)
        kept = old[~old["platform"].astype(str).isin(list(platforms))]
        if len(kept):
            categorical = [
                c for c in frame.columns if isinstance(frame[c].dtype, pd.CategoricalDtype)
            ]
            frame = pd.concat([frame, kept[frame.columns]], ignore_index=True)
            for column in categorical:
                frame[column] = frame[column].astype(str).astype("category")
    tmp = path.with_name(f".part-{os.getpid()}.parquet.tmp")
    frame.to_parquet(tmp, index=False)
    os.replace(tmp, path)
    return path


def read_partition_files(
    root: Path | str,
    dataset: str,
    days: Iterable[dt.date],
    columns: list[str] | None = None,
    filters: list | None = None,
) -> pd.DataFrame:
    """The partitions of `days` that exist, concatenated (missing days are simply absent)."""
    frames = []
    for day in days:
        path = partition_path(root, dataset, day)
        if path.exists():
            frames.append(pd.read_parquet(path, columns=columns, filters=filters))
    if not frames:
        return pd.DataFrame(columns=columns or [])
    return pd.concat(frames, ignore_index=True)


# DuckDB over the lake: event-level work (bots, viewer activity) is SQL over the Parquet files,
# in this process, within a bounded memory; beyond it DuckDB spills to disk under the lake.
DUCKDB_MEMORY_LIMIT = "2GB"


def connect(root: Path | str) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB connection for queries over the lake at `root`: memory bounded by
    DUCKDB_MEMORY_LIMIT (spilling to `<root>/.spill`), no progress bar."""
    spill = Path(root) / ".spill"
    spill.mkdir(parents=True, exist_ok=True)
    con = duckdb.connect()
    con.execute(f"SET memory_limit = '{DUCKDB_MEMORY_LIMIT}'")
    con.execute(f"SET temp_directory = '{spill}'")
    con.execute("SET enable_progress_bar = false")
    con.execute("SET preserve_insertion_order = false")
    return con


def partition_view(
    con: duckdb.DuckDBPyConnection,
    name: str,
    root: Path | str,
    dataset: str,
    days: Iterable[dt.date],
    columns: dict[str, str],
    where: str = "",
) -> int:
    """Create the temporary view `name` over the partition files of `days` that exist, with
    `columns` (name -> DuckDB type) and `export_date` (DATE, the folder's date), keeping the
    rows that satisfy the SQL condition `where` (none: all). With no file, the view is empty.
    Returns how many files it reads."""
    paths = [str(p) for p in (partition_path(root, dataset, d) for d in days) if p.exists()]
    listed = ", ".join(f'"{c}"::{t} AS "{c}"' for c, t in columns.items())
    if paths:
        files = ", ".join(f"'{p}'" for p in paths)
        source = f"read_parquet([{files}], hive_partitioning = true)"
        con.execute(
            f"CREATE OR REPLACE TEMP VIEW {name} AS "
            f"SELECT {listed}, export_date::DATE AS export_date FROM {source}"
            + (f" WHERE {where}" if where else "")
        )
    else:
        nulls = ", ".join(f'NULL::{t} AS "{c}"' for c, t in columns.items())
        con.execute(
            f"CREATE OR REPLACE TEMP VIEW {name} AS "
            f"SELECT {nulls}, NULL::DATE AS export_date WHERE false"
        )
    return len(paths)


def sql_list(values: Iterable[object]) -> str:
    """Values as the items of an SQL `IN (...)` list: quoted text ('' for a quote), dates as
    ISO text. An empty list is `NULL` (matches nothing)."""
    items = ["'" + str(v).replace("'", "''") + "'" for v in values]
    return ", ".join(items) if items else "NULL"
