"""`make run FROM=YYYY-MM-DD TO=YYYY-MM-DD`: the nightly job over those local dates in one run,
as an operator launches it after fixing a file, into the instance `make ui` shows; then, per
platform-date, what was published or why not. Exits 1 when any platform-date was not
published in full."""

from __future__ import annotations

import argparse
import datetime as dt
import logging

import dagster as dg
import pandas as pd

from assets.partitions import RANGE_END, RANGE_START
from orchestration.definitions import NIGHTLY_JOB
from warehouse.publications import PUBLISHED, platform_dates
from warehouse.settings import parse_platforms, platforms_setting, warehouse_url
from warehouse.store import make_engine


def run_window(first: str, last: str) -> dg.ExecuteInProcessResult:
    """One run of the nightly job over [first, last] (local dates), as a backfill launches it
    (single-run policy), recorded in the instance of `$DAGSTER_HOME`."""
    from orchestration.definitions import defs

    job = defs.resolve_job_def(NIGHTLY_JOB)
    with dg.DagsterInstance.get() as instance:
        return job.execute_in_process(
            instance=instance,
            tags={RANGE_START: first, RANGE_END: last},
            run_config={"loggers": {"console": {"config": {"log_level": "INFO"}}}},
            raise_on_error=False,
        )


def publication_report(url: str, first: dt.date, last: dt.date) -> pd.DataFrame:
    """Per platform-date of the window: status, assets published and not, root causes."""
    platforms = parse_platforms(platforms_setting())
    return platform_dates(make_engine(url), platforms, first, last)


def format_report(report: pd.DataFrame, problems_only: bool = False) -> str:
    """The report as an operator reads it: a count, then a line per platform-date (with
    `problems_only`, only those not published in full)."""
    ok = report["status"] == PUBLISHED
    lines = [f"\n{int(ok.sum())} of {len(report)} platform-dates published in full"]
    for row in (report[~ok] if problems_only else report).itertuples():
        line = f"  {row.platform:7s} {row.date}  {row.status:9s} {row.published:3d} assets"
        lines.append(line + (f"  {row.causes}" if row.causes else ""))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("first", type=dt.date.fromisoformat, help="first local date")
    parser.add_argument("last", type=dt.date.fromisoformat, help="last local date")
    args = parser.parse_args(argv)
    if args.last < args.first:
        parser.error("the last date is before the first")
    logging.basicConfig(level=logging.WARNING)
    print(f"running the '{NIGHTLY_JOB}' job over {args.first} … {args.last} in one run ...")
    result = run_window(args.first.isoformat(), args.last.isoformat())
    report = publication_report(warehouse_url(), args.first, args.last)
    print(f"run {result.run_id}: {'succeeded' if result.success else 'failed'}")
    print(format_report(report))
    if not result.success or not (report["status"] == PUBLISHED).all():
        print("\nFix the files named above, then run the same dates again.")
        raise SystemExit(1)


if __name__ == "__main__":
    main()
