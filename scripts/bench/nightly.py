"""The nightly run of one date through the real asset graph, timed step by step.

Per step: seconds from the instance's step stats, rows from each materialization's
`dagster/row_count`, and the peak RSS of the process while the step ran (sampled from /proc
every 0.2 s; the whole run's peak is `getrusage`). Steps are grouped into the stages an
operator reads: ingest and clean, quality checks, features, models, scoring, serving writes.
"""

from __future__ import annotations

import datetime as dt
import os
import resource
import threading
import time
from pathlib import Path

import dagster as dg

from assets.partitions import RANGE_END, RANGE_START
from assets.resources import Lake, LandingZone, ModelStore, Pseudonymizer, Warehouse

TRAINING = "models (train, judge, promote)"  # reads its own bounded window: may grow
STAGES = (
    "ingest and clean",
    "quality checks",
    "features",
    TRAINING,
    "scoring (forecasts, picks)",
    "serving writes",
    "ops reports",
)
SCORING = {
    dg.AssetKey(["serving", "session_gmv_forecast"]),
    dg.AssetKey(["serving", "product_recommendations"]),
}
BY_GROUP = {
    "clean": STAGES[0],
    "features": STAGES[2],
    "ml": TRAINING,
    "serving": STAGES[5],
    "ops": STAGES[6],
}


def resources(landing: Path, work: Path) -> dict:
    """Production's model settings; a throwaway SQLite warehouse, lake and model store."""
    return {
        "landing_zone": LandingZone(root=str(landing)),
        "warehouse": Warehouse(url=f"sqlite:///{work / 'warehouse.db'}"),
        "lake": Lake(root=str(work / "lake")),
        "pseudonymizer": Pseudonymizer(secret="bench-secret"),
        "models": ModelStore(root=str(work / "models")),
    }


class RssSampler(threading.Thread):
    """(time, RSS bytes) of this process every `every` seconds until stopped."""

    def __init__(self, every: float = 0.2):
        super().__init__(daemon=True)
        self.every = every
        self.samples: list[tuple[float, int]] = []
        self.done = threading.Event()
        self.page = os.sysconf("SC_PAGE_SIZE")

    def run(self) -> None:
        while not self.done.is_set():
            with open("/proc/self/statm") as fh:
                rss = int(fh.read().split()[1]) * self.page
            self.samples.append((time.time(), rss))
            self.done.wait(self.every)

    def peak(self, start: float, end: float) -> int:
        """The highest sample while a step ran, counting the last one before it started (a
        step shorter than the interval has no sample of its own)."""
        before = [rss for when, rss in self.samples if when < start][-1:]
        inside = [rss for when, rss in self.samples if start <= when <= end]
        return max(before + inside, default=0)


def stage_of(step_key: str, assets: dict[str, set[dg.AssetKey]], groups: dict) -> str:
    keys = assets.get(step_key)
    if not keys:
        return STAGES[1]  # a step that only evaluated checks
    if keys & SCORING:
        return STAGES[4]
    return BY_GROUP.get(groups[next(iter(keys))], STAGES[5])


def selection(without: tuple[str, ...]) -> dg.AssetSelection | None:
    if not without:
        return None
    left_out = dg.AssetSelection.assets(*(dg.AssetKey.from_user_string(k) for k in without))
    return dg.AssetSelection.all() - left_out.downstream()


def run(
    landing: Path, work: Path, first: dt.date, last: dt.date, without: tuple[str, ...] = ()
) -> dict:
    """One run of every asset and check over [first, last]; per stage and per step figures.
    `without`: asset keys ("ml/ranker_challenger") left out of the run with everything
    downstream of them (a step this machine cannot afford)."""
    from orchestration.definitions import all_assets, all_checks

    groups = {key: a.group_names_by_key[key] for a in all_assets for key in a.keys}
    sampler = RssSampler()
    sampler.start()
    started = time.perf_counter()
    with dg.DagsterInstance.ephemeral() as instance:
        result = dg.materialize(
            [*all_assets, *all_checks],
            resources=resources(landing, work),
            instance=instance,
            tags={RANGE_START: first.isoformat(), RANGE_END: last.isoformat()},
            selection=selection(without),
            raise_on_error=False,
        )
        wall = time.perf_counter() - started
        stats = instance.get_run_step_stats(result.run_id)
    sampler.done.set()
    sampler.join()
    assets: dict[str, set[dg.AssetKey]] = {}
    rows: dict[str, int] = {}
    for event in result.get_asset_materialization_events():
        assets.setdefault(event.step_key, set()).add(event.asset_key)
        count = event.materialization.metadata.get("dagster/row_count")
        rows[event.step_key] = rows.get(event.step_key, 0) + int(count.value if count else 0)
    steps = []
    for stat in stats:
        start, end = stat.start_time or 0.0, stat.end_time or 0.0
        steps.append(
            {
                "step": stat.step_key,
                "stage": stage_of(stat.step_key, assets, groups),
                "status": stat.status.value if stat.status else "?",
                "seconds": max(end - start, 0.0),
                "rows": rows.get(stat.step_key, 0),
                "peak_rss_mib": sampler.peak(start, end) / 2**20,
            }
        )
    stages = {}
    for name in STAGES:
        mine = [s for s in steps if s["stage"] == name]
        if mine:
            stages[name] = {
                "steps": len(mine),
                "seconds": sum(s["seconds"] for s in mine),
                "rows": sum(s["rows"] for s in mine),
                "peak_rss_mib": max(s["peak_rss_mib"] for s in mine),
                "failed": [s["step"] for s in mine if s["status"] != "SUCCESS"],
            }
    return {
        "without": list(without),
        "success": result.success,
        "wall_s": wall,
        "stages": stages,
        "steps": steps,
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }
