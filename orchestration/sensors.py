"""A sensor that runs a date once all its folders have landed, and again when one lands late."""

from __future__ import annotations

import datetime as dt
import json

import dagster as dg

from assets.partitions import RANGE_END, RANGE_START
from assets.resources import LandingZone
from contract.layout import landed_dates

# A late folder can restore orphans of the dates after it: those are re-run with it.
FOLLOWING_DAYS = 3


def build_landing_sensor(
    job: dg.UnresolvedAssetJobDefinition, first_date: str
) -> dg.SensorDefinition:
    start = dt.date.fromisoformat(first_date)

    @dg.sensor(
        name="landing_sensor",
        job=job,
        minimum_interval_seconds=300,
        default_status=dg.DefaultSensorStatus.STOPPED,
        description=(
            "Runs a date once the folders of its platforms (LIVECOMMERCE_PLATFORMS), events and "
            "plan all have _SUCCESS; when a "
            "folder lands late (after the nightly run), re-runs that date and the "
            f"{FOLLOWING_DAYS} after it."
        ),
    )
    def landing_sensor(context: dg.SensorEvaluationContext, landing_zone: LandingZone):
        seen: dict[str, float] = json.loads(context.cursor) if context.cursor else {}
        landed = {
            d: t
            for d, t in landed_dates(landing_zone.path, landing_zone.platform_list).items()
            if d >= start
        }
        if not seen:
            # First tick: what is there now is the nightly schedule's and the backfills' work.
            context.update_cursor(json.dumps({d.isoformat(): t for d, t in landed.items()}))
            return dg.SkipReason(f"recorded {len(landed)} landed dates; waiting for new folders")
        requests = []
        for day, stamp in sorted(landed.items()):
            if seen.get(day.isoformat()) == stamp:
                continue
            last = max(d for d in landed if d <= day + dt.timedelta(days=FOLLOWING_DAYS))
            requests.append(
                dg.RunRequest(
                    run_key=f"{day.isoformat()}@{stamp}",
                    tags={RANGE_START: day.isoformat(), RANGE_END: last.isoformat()},
                )
            )
            seen[day.isoformat()] = stamp
        context.update_cursor(json.dumps(seen))
        return requests or dg.SkipReason("no folder landed since the last tick")

    return landing_sensor
