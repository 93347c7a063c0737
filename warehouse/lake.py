"""Parquet files beside the SQL warehouse, for event-level data (one file per dataset and date).

A partition file is written to a temporary name and renamed over the old one, so a re-run
replaces it atomically and a crash leaves the previous file.
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Iterable
from pathlib import Path

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
