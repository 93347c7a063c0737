"""Quality gates of the clean layer, run as Dagster asset checks after each write.

Blocking checks (ERROR) stop everything downstream in the run: broken keys, a ledger that does
not add up (a value one row can break is the door's: the row is quarantined with its reason; a
file whose rows are mostly broken fails its platform-date at the door,
`warehouse/ingest.broken_files`). Warnings (WARN) show in the UI and let the run go on. The
README's "Quality gates" says why each is which.
"""

import datetime as dt
from collections.abc import Callable

import dagster as dg
import pandas as pd

from assets.clean import CLEAN_ASSET_NAMES
from assets.gates import recorded
from assets.memory import release_memory
from assets.metadata import counts_table, frame_md
from assets.partitions import daily_partitions, partition_dates
from assets.resources import Lake, Warehouse
from warehouse import quality, scorecard
from warehouse.ingest import CLEAN_TABLE
from warehouse.lake import read_partition_files
from warehouse.ledger import ledger_report, stored_per_file
from warehouse.store import read_dates

VALID = "valid"
LOOKS_NORMAL = "looks_normal"
LEDGER_ADDS_UP = "ledger_adds_up"


def _window(context) -> tuple[dt.date, dt.date]:
    days = partition_dates(context)
    return days[0], days[-1]


def verdict_result(
    verdict: quality.Verdict, severity: dg.AssetCheckSeverity
) -> dg.AssetCheckResult:
    failures = verdict.failures_frame()
    return dg.AssetCheckResult(
        passed=verdict.passed,
        severity=severity,
        description=verdict.summary()[:1000],
        metadata={
            "suite": verdict.suite,
            "rows_checked": verdict.rows,
            "failed_expectations": len(failures),
            "failing_rows": int(failures["rows"].fillna(0).sum()) if len(failures) else 0,
            "failures": dg.MetadataValue.md(failures.to_markdown(index=False))
            if len(failures)
            else "none",
        },
    )


def problems_result(
    problems: pd.DataFrame,
    checked: int,
    what: str,
    severity: dg.AssetCheckSeverity = dg.AssetCheckSeverity.ERROR,
) -> dg.AssetCheckResult:
    """A check's verdict from the problems a `warehouse.serving_checks` function found: passes
    when there are none; otherwise counts them by kind and shows examples."""
    kinds = problems["problem"].value_counts()
    return dg.AssetCheckResult(
        passed=problems.empty,
        severity=severity,
        description=(
            "; ".join(f"{n} {kind}" for kind, n in kinds.items()) + f" (of {checked} {what})"
        )[:1000]
        if len(problems)
        else None,
        metadata={
            f"{what}_checked": checked,
            "problems": len(problems),
            "by_kind": counts_table(kinds, "problem"),
            "examples": frame_md(problems.groupby("problem").head(3)),
        },
    )


def served_result(model: str, missed: list[dt.date], dates: int, what: str) -> dg.AssetCheckResult:
    """The warning of a model's serving table: the dates whose plans got no `what` because no
    `model` was in service yet (the asset is green and empty then; this says why)."""
    return dg.AssetCheckResult(
        passed=not missed,
        severity=dg.AssetCheckSeverity.WARN,
        description=(
            f"no {model} in service on {len(missed)} of {dates} dates "
            f"({missed[0]} … {missed[-1]}): their plans got no {what}"
        )
        if missed
        else None,
        metadata={"dates": dates, "dates_without_model": len(missed)},
    )


def ledger_result(
    warehouse: Warehouse, table: str, window: tuple[dt.date, dt.date], stored: pd.Series
) -> dg.AssetCheckResult:
    """Per file: raw = clean + duplicates + conflicts + quarantined, and the ledger's clean,
    conflict and quarantined counts are the rows really stored (`stored`: clean rows per source
    file) and quarantined (`warehouse/ledger.py`)."""
    report = ledger_report(warehouse.get_engine(), table, *window, stored)
    bad = report[~report["adds_up"]].drop(columns="adds_up").reset_index(names="file")
    return dg.AssetCheckResult(
        passed=bad.empty,
        severity=dg.AssetCheckSeverity.ERROR,
        description=f"{len(bad)} of {len(report)} files do not add up" if len(bad) else None,
        metadata={
            "files": len(report),
            "raw_rows": int(report["raw"].fillna(0).sum()),
            "files_not_adding_up": len(bad),
            "examples": dg.MetadataValue.md(bad.head(10).to_markdown(index=False))
            if len(bad)
            else "none",
        },
    )


RowReader = Callable[[dg.AssetCheckExecutionContext, Warehouse, Lake], pd.DataFrame]


def suite_checks(
    key: dg.AssetKey,
    suite: str,
    rows: RowReader,
    blocking_description: str,
    warnings_description: str | None = None,
    prefix: str = "",
) -> list[dg.AssetChecksDefinition]:
    """The Great Expectations suites of one table (`warehouse/quality.py`) as checks of the
    asset `key` over the rows `rows` reads for the partitions checked: `<prefix>valid`, the
    blocking suite (its failed verdicts hold downstream dates, `assets/gates.py`), and, with a
    `warnings_description`, `<prefix>looks_normal`, the warning suite."""

    @dg.asset_check(
        asset=key,
        name=f"{prefix}{VALID}",
        blocking=True,
        partitions_def=daily_partitions,
        description=blocking_description,
    )
    def valid(
        context: dg.AssetCheckExecutionContext, warehouse: Warehouse, lake: Lake
    ) -> dg.AssetCheckResult:
        verdict = quality.validate(suite, rows(context, warehouse, lake), blocking=True)
        release_memory()
        return recorded(context, warehouse, verdict_result(verdict, dg.AssetCheckSeverity.ERROR))

    if warnings_description is None:
        return [valid]

    @dg.asset_check(
        asset=key,
        name=f"{prefix}{LOOKS_NORMAL}",
        blocking=False,
        partitions_def=daily_partitions,
        description=warnings_description,
    )
    def looks_normal(
        context: dg.AssetCheckExecutionContext, warehouse: Warehouse, lake: Lake
    ) -> dg.AssetCheckResult:
        verdict = quality.validate(suite, rows(context, warehouse, lake), blocking=False)
        release_memory()
        return verdict_result(verdict, dg.AssetCheckSeverity.WARN)

    return [valid, looks_normal]


def _table_rows(table: str) -> RowReader:
    """The rows of a warehouse table dated in the partitions checked."""
    return lambda context, warehouse, lake: read_dates(
        warehouse.get_engine(), table, *_window(context)
    )


def build_checks(table: str) -> list[dg.AssetChecksDefinition]:
    key = dg.AssetKey(["clean", CLEAN_ASSET_NAMES[table]])
    clean_table = CLEAN_TABLE[table]

    gx = suite_checks(
        key,
        clean_table,
        _table_rows(clean_table),
        f"Great Expectations suite `{clean_table}_blocking`: one row per key and export "
        "date. Rules one row can break are the door's: the row is quarantined with its reason.",
        f"Great Expectations suite `{clean_table}_warnings`: odd but possible values a "
        "person should look at.",
    )

    @dg.asset_check(
        asset=key,
        name=LEDGER_ADDS_UP,
        blocking=True,
        partitions_def=daily_partitions,
        description=(
            "Per file: raw rows = clean + duplicates + conflicts + quarantined, and the ledger's "
            "counts are the rows really in the clean table and the quarantine."
        ),
    )
    def ledger_adds_up(
        context: dg.AssetCheckExecutionContext, warehouse: Warehouse
    ) -> dg.AssetCheckResult:
        window = _window(context)
        stored = stored_per_file(warehouse.get_engine(), clean_table, *window)
        return recorded(context, warehouse, ledger_result(warehouse, table, window, stored))

    return [*gx, ledger_adds_up]


clean_checks = [check for table in CLEAN_ASSET_NAMES for check in build_checks(table)]


EVENTS_KEY = dg.AssetKey(["clean", "events"])
EVENT_COLUMNS = ["event_id", "ts", "platform", "session_key", "viewer_key", "type"]


def _event_rows(
    context: dg.AssetCheckExecutionContext, warehouse: Warehouse, lake: Lake
) -> pd.DataFrame:
    rows = read_partition_files(lake.path, "events", partition_dates(context), EVENT_COLUMNS)
    for column in ("platform", "session_key", "viewer_key", "type"):
        rows[column] = rows[column].astype(str)
    return rows


@dg.asset_check(
    asset=EVENTS_KEY,
    name=LEDGER_ADDS_UP,
    blocking=True,
    partitions_def=daily_partitions,
    description=(
        "Per part file: raw lines = clean + duplicates + conflicts + quarantined, as in the "
        "Parquet."
    ),
)
def events_ledger(
    context: dg.AssetCheckExecutionContext, warehouse: Warehouse, lake: Lake
) -> dg.AssetCheckResult:
    days = partition_dates(context)
    stored = read_partition_files(lake.path, "events", days, ["source_file"])["source_file"]
    result = ledger_result(warehouse, "events", _window(context), stored.astype(str).value_counts())
    return recorded(context, warehouse, result)


clean_checks += [
    *suite_checks(
        EVENTS_KEY,
        "events",
        _event_rows,
        "Great Expectations suite `events_blocking`: one row per event id (types and pseudonyms "
        "are the door's: a bad event is quarantined with its reason).",
    ),
    events_ledger,
]


# Tables derived from the clean exports (restated as of a date, one row per key), per asset:
# (table, whether its suite has warnings as well).
DERIVED_ASSETS = {
    "session_plans": [("clean_session_plans", True)],
    "bot_viewers": [("clean_bot_viewers", False)],
    "viewer_activity": [("clean_viewer_sessions", True), ("clean_viewer_products", False)],
    "viewers": [("clean_viewers", False)],
}


def build_derived_checks(asset: str, table: str, warns: bool) -> list[dg.AssetChecksDefinition]:
    # An asset writing two tables gets one check of each kind per table.
    prefix = "" if len(DERIVED_ASSETS[asset]) == 1 else f"{table.removeprefix('clean_')}_"
    return suite_checks(
        dg.AssetKey(["clean", asset]),
        table,
        _table_rows(table),
        f"Great Expectations suite `{table}_blocking` on the rows restated.",
        f"Great Expectations suite `{table}_warnings` on the rows restated." if warns else None,
        prefix=prefix,
    )


clean_checks += [
    check
    for asset, tables in DERIVED_ASSETS.items()
    for table, warns in tables
    for check in build_derived_checks(asset, table, warns)
]


SCORECARD_KEY = dg.AssetKey(["serving", "session_scorecard"])
PLATFORM_GMV_AGREES = "platform_gmv_agrees"
KPI_IN_RANGE = "kpi_in_range"


@dg.asset_check(
    asset=SCORECARD_KEY,
    name=PLATFORM_GMV_AGREES,
    blocking=False,
    partitions_def=daily_partitions,
    description=(
        "Cross-source: the platform-reported GMV of each session restated in this partition "
        f"agrees with the sum of its paid order lines (within {scorecard.GMV_GAP_SHARE:.0%}, and "
        f"{scorecard.GMV_GAP_FLOOR:g} yuan)."
    ),
)
def platform_gmv_agrees(
    context: dg.AssetCheckExecutionContext, warehouse: Warehouse
) -> dg.AssetCheckResult:
    card = read_dates(warehouse.get_engine(), "session_scorecard", *_window(context))
    off = scorecard.gmv_disagreements(card)
    return dg.AssetCheckResult(
        passed=off.empty,
        severity=dg.AssetCheckSeverity.WARN,
        description=f"{len(off)} of {len(card)} sessions disagree with the platform"
        if len(off)
        else None,
        metadata={
            "sessions_checked": len(card),
            "sessions_disagreeing": len(off),
            "largest_gaps": dg.MetadataValue.md(off.head(10).to_markdown(index=False))
            if len(off)
            else "none",
        },
    )


@dg.asset_check(
    asset=SCORECARD_KEY,
    name=KPI_IN_RANGE,
    blocking=False,
    partitions_def=daily_partitions,
    description=(
        f"Daily GMV, viewers and conversion of each room within {scorecard.KPI_FACTOR:g}x of its "
        f"median over the {scorecard.KPI_HISTORY_DAYS} days before (promotion days can trip it: "
        "a person looks)."
    ),
)
def kpi_in_range(
    context: dg.AssetCheckExecutionContext, warehouse: Warehouse
) -> dg.AssetCheckResult:
    days = partition_dates(context)
    since = days[0] - dt.timedelta(days=scorecard.KPI_HISTORY_DAYS + 1)
    card = scorecard.cards_since(warehouse.get_engine(), since)
    anomalies = scorecard.kpi_anomalies(card, days)
    return dg.AssetCheckResult(
        passed=anomalies.empty,
        severity=dg.AssetCheckSeverity.WARN,
        description=f"{len(anomalies)} room-day KPIs far outside their recent range"
        if len(anomalies)
        else None,
        metadata={
            "room_days_flagged": len(anomalies),
            "flagged": dg.MetadataValue.md(anomalies.head(20).to_markdown(index=False))
            if len(anomalies)
            else "none",
        },
    )


serving_checks = [platform_gmv_agrees, kpi_in_range]
