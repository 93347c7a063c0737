"""What each partitioned asset published, per platform-date, and what it may publish next.

The unit of failure is the platform-date (landing-zone.md, "Schema drift": a bad file fails
*that platform-date*). Every partitioned asset records, for each unit of its window, whether it
was published, failed (its own input was bad) or held (an upstream unit was not published), in
`ops_publications`. Before it computes, it asks `blocked_units` which of its units it must hold:

- a unit needs each upstream asset's unit of the same date published (a platform's own unit, or
  the whole date's: the catalogue, the plan, a model);
- an asset whose rows are "as of" a date (a scorecard row counts every export of its session up
  to `as_of_date`) also needs every export of its platform, and the brand's files, of that date
  and every date before it to have been read: a failed unit anywhere at the door holds the
  platform's "as of" units from its date on. All "as of" assets of a platform so stop at the
  same date, so none reads another's rows from a later date than its own, and a backfill
  writes what the nightly runs would;
- a failed blocking check of an upstream asset on that date holds every unit of the date;
- a date never run between the platform's first recorded date and the step's window holds it
  (a date run before the one before it would quarantine orphans and claim data it lacks).

A held unit's reason names the root cause (the upstream asset, platform, date and what was
wrong), so a report can say why without walking the graph.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence

import pandas as pd
from sqlalchemy import Engine

from warehouse.gates import failed_checks
from warehouse.schema import ops_publications
from warehouse.store import read_frame, write_partition

ALL = "*"  # a unit that is the whole date, not one platform's
PUBLISHED, FAILED, HELD = "published", "failed", "held"

Unit = tuple[str, dt.date]  # (platform or ALL, local date)


def record(engine: Engine, asset_key: str, units: pd.DataFrame, run_id: str) -> None:
    """Replace the statuses of `asset_key` on the dates of `units` (columns platform,
    partition_date, status, reason) in one transaction."""
    now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    rows = units.assign(asset_key=asset_key, recorded_at=now, run_id=run_id)
    dates = sorted(set(rows["partition_date"]))
    write_partition(
        engine, ops_publications, rows, "partition_date", dates, scope={"asset_key": asset_key}
    )


def _root(row: pd.Series) -> str:
    """The root cause a unit's status stands for: a held unit already carries one."""
    if row["status"] == HELD:
        return row["reason"]
    return f"{row['asset_key']} {row['platform']} {row['partition_date']}: {row['reason']}"


def blocked_units(
    engine: Engine,
    upstream: Sequence[str],
    units: Iterable[Unit],
    platforms: Sequence[str],
    cascade: bool,
) -> dict[Unit, str]:
    """The units that must be held, each with the root cause that holds it.

    `upstream`: the asset keys the units are computed from; `platforms`: the deployment's
    (a whole-date unit needs every one of them); `cascade`: whether a failed unit of the
    platform (or of the brand's files) on that date or before, in any asset, holds it too
    (rows "as of" a date)."""
    units = sorted(set(units), key=lambda u: (u[1], u[0]))
    if not units or not upstream:
        return {}
    first, last = min(d for _, d in units), max(d for _, d in units)
    names = ", ".join(f":a{i}" for i in range(len(upstream)))
    params = {f"a{i}": key for i, key in enumerate(upstream)}
    rows = read_frame(
        engine,
        "SELECT asset_key, platform, partition_date, status, reason FROM ops_publications "
        f"WHERE asset_key IN ({names}) AND partition_date BETWEEN :first AND :last",
        {**params, "first": first.isoformat(), "last": last.isoformat()},
    )
    rows["partition_date"] = pd.to_datetime(rows["partition_date"]).dt.date
    state = {(r.asset_key, r.platform, r.partition_date): r for r in rows.itertuples(index=False)}
    columns = ["asset_key", "platform", "partition_date", "status", "reason"]
    failures = (
        read_frame(
            engine,
            f"SELECT {', '.join(columns)} FROM ops_publications "
            f"WHERE status = '{FAILED}' AND partition_date <= :last ORDER BY partition_date",
            {"last": last.isoformat()},
        )
        if cascade
        else pd.DataFrame(columns=columns)
    )
    failures["partition_date"] = pd.to_datetime(failures["partition_date"]).dt.date
    gaps = _first_gaps(engine, first, [*platforms, ALL])
    checks = failed_checks(engine, list(upstream), first, last)
    checks["partition_date"] = pd.to_datetime(checks["partition_date"]).dt.date
    blocked: dict[Unit, str] = {}
    for platform, day in units:
        failed_check = checks[checks["partition_date"] == day]
        if len(failed_check):
            c = failed_check.iloc[0]
            blocked[(platform, day)] = (
                f"{c['asset_key']} {c['check_name']} on {day}: the blocking check failed: "
                f"{str(c['description'])[:200]}"
            )
            continue
        names = [platform] if platform != ALL else [*platforms, ALL]
        reason = next((gaps[p] for p in names if p in gaps), None)
        reason = reason or _same_date(state, upstream, platform, day, platforms)
        if reason is None and cascade:
            reason = _failed_by(failures, platform, day, platforms)
        if reason is not None:
            blocked[(platform, day)] = reason
    return blocked


def _first_gaps(engine: Engine, first: dt.date, names: Sequence[str]) -> dict[str, str]:
    """Per platform (or ALL), the first date never run between its first recorded date and
    `first` (the window being run), said as a root cause. A date counts as run when some unit
    of it was computed (published, or failed at the door), not only held."""
    rows = read_frame(
        engine,
        "SELECT DISTINCT platform, partition_date FROM ops_publications "
        f"WHERE partition_date < :first AND status <> '{HELD}'",
        {"first": first.isoformat()},
    )
    gaps = {}
    for name, dates in rows.groupby("platform")["partition_date"]:
        if name not in names:
            continue
        ran = {dt.date.fromisoformat(str(d)[:10]) for d in dates}
        day = min(ran)
        while day < first and day in ran:
            day += dt.timedelta(days=1)
        if day < first:
            gaps[name] = f"{name} {day}: never run; run the dates from {day} on, in order"
    return gaps


def _same_date(
    state: dict, upstream: Sequence[str], platform: str, day: dt.date, platforms: Sequence[str]
) -> str | None:
    for key in upstream:
        whole = state.get((key, ALL, day))
        if whole is not None and whole.status == PUBLISHED:
            continue
        needed = platforms if platform == ALL else [platform]
        for p in needed:
            own = state.get((key, p, day)) or whole
            if own is None:
                return f"{key} {p} {day}: never published"
            if own.status != PUBLISHED:
                return _root(pd.Series(own._asdict()))
    return None


def _failed_by(
    failures: pd.DataFrame, platform: str, day: dt.date, platforms: Sequence[str]
) -> str | None:
    """The first failure of the platform (or of the brand's files; of any deployed platform,
    for a whole-date unit) dated `day` or before."""
    ours = failures["platform"].isin([platform, ALL] if platform != ALL else [*platforms, ALL])
    found = failures[ours & (failures["partition_date"] <= day)]
    return _root(found.iloc[0]) if len(found) else None


def statuses(
    engine: Engine, platforms: Sequence[str], first: dt.date, last: dt.date
) -> pd.DataFrame:
    """Every recorded unit of [first, last] that concerns `platforms`: their own units, and the
    whole-date units (catalogue, plan) that failed, since those fail every platform."""
    rows = read_frame(
        engine,
        "SELECT asset_key, platform, partition_date, status, reason FROM ops_publications "
        "WHERE partition_date BETWEEN :first AND :last ORDER BY partition_date, asset_key",
        {"first": first.isoformat(), "last": last.isoformat()},
    )
    rows["partition_date"] = pd.to_datetime(rows["partition_date"]).dt.date
    own = rows["platform"].isin(list(platforms))
    brand_failure = (rows["platform"] == ALL) & (rows["status"] == FAILED)
    return rows[own | brand_failure].reset_index(drop=True)


def platform_dates(
    engine: Engine, platforms: Sequence[str], first: dt.date, last: dt.date
) -> pd.DataFrame:
    """One row per platform and date of [first, last]: `status` (published, failed, held, or
    not run), assets published, and the distinct root causes of what was not."""
    rows = statuses(engine, platforms, first, last)
    days = [first + dt.timedelta(days=k) for k in range((last - first).days + 1)]
    out = []
    for platform in platforms:
        for day in days:
            units = rows[(rows["partition_date"] == day) & rows["platform"].isin([platform, ALL])]
            failed = units[units["status"] == FAILED]
            held = units[units["status"] == HELD]
            causes = [_root(r) for _, r in failed.iterrows()]
            causes += [c for c in dict.fromkeys(held["reason"]) if c not in causes]
            status = (
                FAILED
                if len(failed)
                else HELD
                if len(held)
                else PUBLISHED
                if len(units)
                else "not run"
            )
            out.append(
                {
                    "platform": platform,
                    "date": day,
                    "status": status,
                    "published": int((units["status"] == PUBLISHED).sum()),
                    "not_published": len(failed) + len(held),
                    "causes": "; ".join(causes),
                }
            )
    return pd.DataFrame(
        out, columns=["platform", "date", "status", "published", "not_published", "causes"]
    )


def published_platforms(engine: Engine, asset_key: str, day: dt.date) -> list[str]:
    """The platforms whose unit of `day` `asset_key` published (what a check of it may judge)."""
    rows = read_frame(
        engine,
        "SELECT platform FROM ops_publications WHERE asset_key = :key "
        f"AND partition_date = :day AND status = '{PUBLISHED}'",
        {"key": asset_key, "day": day.isoformat()},
    )
    return sorted(rows["platform"])


def held_since(engine: Engine, platforms: Sequence[str], last: dt.date) -> dict[str, dt.date]:
    """Per platform, the first date on or before `last` with a failed unit at the door (its or
    the brand's files'): its "as of" data stops the day before."""
    rows = read_frame(
        engine,
        "SELECT platform, MIN(partition_date) AS first FROM ops_publications "
        f"WHERE status = '{FAILED}' AND partition_date <= :last GROUP BY platform",
        {"last": last.isoformat()},
    )
    first = {r.platform: dt.date.fromisoformat(str(r.first)[:10]) for r in rows.itertuples()}
    brand = first.get(ALL)
    out = {}
    for platform in platforms:
        known = [d for d in (first.get(platform), brand) if d is not None]
        if known:
            out[platform] = min(known)
    return out
