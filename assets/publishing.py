"""The one way a partitioned asset is defined: `dated_asset`.

It gives every asset the daily partitions and the single-run backfill policy, and wraps its body
so that it publishes only the units (platform-dates, or whole dates) whose inputs are complete:
before the body runs, the units an upstream asset did not publish (failed, held, never run) or
whose upstream failed a blocking check are held, with their root cause; the body is handed the
rest (`Units`) and may fail units of its own (a file that cannot be read); afterwards every unit
is recorded in `ops_publications`, and the asset's `complete` check fails when a unit was not
published. The step itself does not fail for data it holds back, so one bad platform-date never
stops the other platforms downstream in the same run; the per-platform report assets
(`ops/<platform>`) then fail the run naming every platform-date not published.
The rules themselves are in `warehouse/publications.py`.
"""

import datetime as dt
import inspect
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import dagster as dg
import pandas as pd

from assets.memory import release_memory
from assets.metadata import frame_md
from assets.partitions import daily_partitions, partition_dates, partition_label, single_run
from assets.resources import LandingZone, Warehouse
from warehouse import publications
from warehouse.publications import ALL, FAILED, HELD, PUBLISHED, Unit

UNITS_TAG = "livecommerce/units"
COMPLETE = "complete"
PER_PLATFORM, PER_DATE = "platform-date", "date"


@dataclass
class Units:
    """The units of one step: its dates × its platforms (or ALL), which are held and why, and
    which the body failed."""

    days: list[dt.date]
    platforms: tuple[str, ...]
    held: dict[Unit, str]
    failed: dict[Unit, str] = field(default_factory=dict)

    def is_ready(self, platform: str, day: dt.date) -> bool:
        return (platform, day) not in self.held and (platform, day) not in self.failed

    def ready_on(self, day: dt.date) -> list[str]:
        """The platforms whose unit of `day` may be published."""
        return [p for p in self.platforms if self.is_ready(p, day)]

    def ready_days(self, platform: str = ALL) -> list[dt.date]:
        return [d for d in self.days if self.is_ready(platform, d)]

    def windows(self) -> list[tuple[list[dt.date], tuple[str, ...]]]:
        """Runs of consecutive ready dates, each with the platforms that share it: one window in
        a healthy run; a platform held from some date on gets its own, shorter window, and a
        date held in the middle splits the window, as nightly runs would have."""
        groups: dict[tuple[dt.date, ...], list[str]] = {}
        for platform in self.platforms:
            days = tuple(self.ready_days(platform))
            if days:
                groups.setdefault(days, []).append(platform)
        out = []
        for days, names in groups.items():
            run = [days[0]]
            for day in days[1:]:
                if day - run[-1] > dt.timedelta(days=1):
                    out.append((run, tuple(names)))
                    run = []
                run.append(day)
            out.append((run, tuple(names)))
        return out

    def fail(self, platform: str, day: dt.date, reason: str) -> None:
        """Mark a unit failed by the body (its own input cannot be read): not published."""
        self.failed[(platform, day)] = reason

    def frame(self) -> pd.DataFrame:
        rows = []
        for day in self.days:
            for platform in self.platforms:
                unit = (platform, day)
                status, reason = (
                    (FAILED, self.failed[unit])
                    if unit in self.failed
                    else (HELD, self.held[unit])
                    if unit in self.held
                    else (PUBLISHED, "")
                )
                rows.append((platform, day, status, reason))
        return pd.DataFrame(rows, columns=["platform", "partition_date", "status", "reason"])


def describe(problems: dict[Unit, str], limit: int = 6) -> str:
    """Units grouped by cause: `cause (jd 2026-11-02, jd 2026-11-03)`; every cause is named up
    to `limit`, then counted."""
    by_cause: dict[str, list[str]] = {}
    for (platform, day), cause in sorted(problems.items(), key=lambda kv: (kv[0][1], kv[0][0])):
        by_cause.setdefault(cause, []).append(f"{platform} {day}")
    parts = [f"{cause} ({', '.join(units)})" for cause, units in by_cause.items()]
    more = f"; and {len(parts) - limit} more causes" if len(parts) > limit else ""
    return "; ".join(parts[:limit]) + more


def _units_metadata(units: Units) -> dict[str, object]:
    frame = units.frame()
    not_published = frame[frame["status"] != PUBLISHED]
    return {
        "units_published": int((frame["status"] == PUBLISHED).sum()),
        "units_held": int((frame["status"] == HELD).sum()),
        "units_failed": int((frame["status"] == FAILED).sum()),
        "not_published": frame_md(not_published.head(30)),
    }


def _complete(units: Units, metadata: dict[str, object]) -> dg.AssetCheckResult:
    problems = {**units.held, **units.failed}
    return dg.AssetCheckResult(
        check_name=COMPLETE,
        passed=not problems,
        severity=dg.AssetCheckSeverity.ERROR,
        description=(
            f"{len(units.failed)} failed, {len(units.held)} held: {describe(problems)}"[:1000]
            if problems
            else None
        ),
        metadata=metadata,
    )


def dated_asset(
    *,
    per_platform: bool,
    cascade: bool,
    **asset_kwargs,
) -> Callable[[Callable[..., dg.MaterializeResult]], dg.AssetsDefinition]:
    """Define a daily-partitioned asset whose body takes `(context, units, **resources)`.

    `per_platform`: its units are platform-dates (else whole dates); `cascade`: its rows are "as
    of" a date, so an earlier unit of a platform left unpublished upstream holds the later ones.
    The step never fails for data it holds back: it records every unit, and its `complete`
    check (ERROR, not blocking) fails naming what was held or failed and why; the
    per-platform reports then fail the run. So downstream steps still run and publish what
    they can, and every report runs.
    """

    def decorator(body: Callable[..., dg.MaterializeResult]) -> dg.AssetsDefinition:
        wanted = inspect.signature(body).parameters

        def compute(context: dg.AssetExecutionContext, **resources) -> dg.MaterializeResult:
            warehouse: Warehouse = resources["warehouse"]
            deployed = resources["landing_zone"].platform_list
            engine = warehouse.get_engine()
            asset = context.asset_key.to_user_string()
            days = partition_dates(context)
            names = deployed if per_platform else (ALL,)
            upstream = sorted(k.to_user_string() for k in context.assets_def.dependency_keys)
            held = publications.blocked_units(
                engine, upstream, [(p, d) for d in days for p in names], deployed, cascade
            )
            units = Units(days, names, held)
            if len(held) < len(days) * len(names):
                try:
                    kwargs = {k: v for k, v in resources.items() if k in wanted}
                    result = body(context, units, **kwargs)
                finally:  # the steps after it share the process (in-process executor)
                    release_memory()
            else:  # every unit waits: nothing to compute
                result = dg.MaterializeResult(metadata={"partition": partition_label(days)})
            publications.record(engine, asset, units.frame(), context.run.run_id)
            problems = {**units.held, **units.failed}
            if problems:
                context.log.warning(f"{asset}: not published: {describe(problems)}")
            counts = _units_metadata(units)
            return dg.MaterializeResult(
                metadata={**(result.metadata or {}), **counts},
                check_results=[*(result.check_results or []), _complete(units, counts)],
                data_version=result.data_version,
                tags=result.tags,
            )

        params = [inspect.Parameter("context", inspect.Parameter.POSITIONAL_OR_KEYWORD)]
        params += [p for name, p in wanted.items() if name not in ("context", "units")]
        for name, resource in (("warehouse", Warehouse), ("landing_zone", LandingZone)):
            if name not in wanted:
                params.append(
                    inspect.Parameter(
                        name, inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=resource
                    )
                )
        compute.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
        compute.__name__ = body.__name__
        compute.__doc__ = body.__doc__
        key = dg.AssetKey.from_coercible(
            asset_kwargs.get("key") or [asset_kwargs["key_prefix"], asset_kwargs["name"]]
        )
        return dg.asset(
            partitions_def=daily_partitions,
            backfill_policy=single_run,
            tags={UNITS_TAG: PER_PLATFORM if per_platform else PER_DATE},
            check_specs=[
                dg.AssetCheckSpec(
                    COMPLETE,
                    asset=key,
                    description=(
                        "Fails (without stopping the run) when a platform-date of the partition "
                        "was not published: held because an upstream one was not, or failed "
                        "because its own file could not be read; says which and why."
                    ),
                )
            ],
            **asset_kwargs,
        )(compute)

    return decorator


def build_platform_report(platform: str, deps: Sequence[dg.AssetKey]) -> dg.AssetsDefinition:
    """`ops/<platform>`: runs after the serving tables and fails naming each date of the window
    on which some of the platform's data was not published, with the root causes."""

    @dg.asset(
        key=["ops", platform],
        group_name="ops",
        deps=list(deps),
        partitions_def=daily_partitions,
        backfill_policy=single_run,
        kinds={"sql"},
        description=(
            f"What of {platform}'s exports was published, per local date (`ops_publications`): "
            "fails, naming each date and why (the file and column, the missing folder, the "
            "upstream date it waits for), when any of them was held back or failed. The other "
            "platforms publish regardless."
        ),
    )
    def platform_report(
        context: dg.AssetExecutionContext, warehouse: Warehouse
    ) -> dg.MaterializeResult:
        days = partition_dates(context)
        report = publications.platform_dates(warehouse.get_engine(), [platform], days[0], days[-1])
        bad = report[report["status"].isin([FAILED, HELD])]
        metadata = {
            "dagster/row_count": len(report),
            "dates_published": int((report["status"] == PUBLISHED).sum()),
            "dates_not_published": len(bad),
            "dates": frame_md(report.drop(columns="platform")),
        }
        if len(bad):
            lines = [f"{r.date} {r.status}: {r.causes}" for r in bad.itertuples()]
            raise dg.Failure(
                description=(
                    f"{platform}: {len(bad)} of {len(report)} dates not published in full. "
                    + " | ".join(lines)[:3000]
                ),
                metadata=metadata,
            )
        return dg.MaterializeResult(metadata=metadata)

    return platform_report
