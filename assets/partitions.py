"""The daily partitions (local dates in Asia/Shanghai) every partitioned asset shares."""

from __future__ import annotations

import datetime as dt

import dagster as dg

from contract.localtime import LOCAL_TZ
from warehouse.settings import FIRST_DATE

daily_partitions = dg.DailyPartitionsDefinition(start_date=FIRST_DATE, timezone=LOCAL_TZ)

# A backfill over many days runs as one run per asset: the asset body handles the whole window.
single_run = dg.BackfillPolicy.single_run()
# The tags of a run over a range of partitions (how a single-run backfill, the sensor and
# `make run` say which dates a run covers).
RANGE_START = "dagster/asset_partition_range_start"
RANGE_END = "dagster/asset_partition_range_end"


def partition_dates(context: dg.AssetExecutionContext) -> list[dt.date]:
    """The local dates this run covers: one for a nightly run, many for a backfill."""
    window = context.partition_time_window
    first, end = window.start.date(), window.end.date()
    return [first + dt.timedelta(days=i) for i in range((end - first).days)]


def partition_label(dates: list[dt.date]) -> str:
    return dates[0].isoformat() if len(dates) == 1 else f"{dates[0]}…{dates[-1]}"
