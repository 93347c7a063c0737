"""Blocking quality checks remembered across runs: write, audit, then publish.

Dagster skips what depends on a failed blocking check in the same run. A later run that selects
only downstream assets would not know; so each blocking check records its verdict per partition
date in `ops_check_results`, and downstream assets refuse the dates whose latest verdict failed.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

import pandas as pd
from sqlalchemy import Engine

from warehouse.schema import ops_check_results
from warehouse.store import read_frame, write_partition


def record_check(
    engine: Engine,
    asset_key: str,
    check_name: str,
    dates: Sequence[dt.date],
    passed: bool,
    description: str,
    run_id: str,
) -> None:
    """Replace the verdict of `check_name` on `asset_key` for each of `dates`."""
    now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    rows = pd.DataFrame(
        {
            "asset_key": asset_key,
            "check_name": check_name,
            "partition_date": list(dates),
            "passed": passed,
            "description": description or ("passed" if passed else "failed"),
            "checked_at": now,
            "run_id": run_id,
        }
    )
    write_partition(
        engine,
        ops_check_results,
        rows,
        "partition_date",
        dates,
        scope={"asset_key": asset_key, "check_name": check_name},
    )


def failed_checks(
    engine: Engine, asset_keys: Sequence[str], first: dt.date, last: dt.date
) -> pd.DataFrame:
    """Blocking checks of `asset_keys` whose latest verdict on a date in [first, last] failed."""
    if not asset_keys:
        return pd.DataFrame(columns=["asset_key", "check_name", "partition_date", "description"])
    names = ", ".join(f":a{i}" for i in range(len(asset_keys)))
    return read_frame(
        engine,
        "SELECT asset_key, check_name, partition_date, description FROM ops_check_results "
        f"WHERE NOT passed AND asset_key IN ({names}) "
        "AND partition_date BETWEEN :first AND :last ORDER BY partition_date, asset_key",
        {
            **{f"a{i}": key for i, key in enumerate(asset_keys)},
            "first": first.isoformat(),
            "last": last.isoformat(),
        },
    )
