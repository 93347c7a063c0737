"""The landing sensor: a date runs once all its folders landed, again when one lands late."""

from __future__ import annotations

import os
import time

import dagster as dg

from assets.partitions import RANGE_END, RANGE_START
from assets.resources import LandingZone
from orchestration.definitions import defs
from tests.landing_builder import write_catalog, write_day

D1, D2, D3 = "2026-11-01", "2026-11-02", "2026-11-03"


def tick(root, cursor):
    sensor = defs.resolve_sensor_def("landing_sensor")
    context = dg.build_sensor_context(
        cursor=cursor, resources={"landing_zone": LandingZone(root=str(root))}
    )
    result = sensor.evaluate_tick(context)
    return result, result.cursor


def test_late_folder_triggers_a_rerun_of_its_date_and_the_following(tmp_path):
    root = tmp_path / "landing"
    write_catalog(root, D1)
    write_day(root, D1)
    write_day(root, D2)
    late = root / "jd" / D2 / "_SUCCESS"
    late.unlink()  # jd's export of D2 has not landed: D2 is not complete
    first, cursor = tick(root, None)
    assert first.run_requests == [] and "recorded 1 landed dates" in first.skip_message
    again, cursor = tick(root, cursor)
    assert again.run_requests == []  # nothing new
    write_day(root, D3)
    time.sleep(0.01)
    late.write_bytes(b"")  # now it lands, after the nightly run
    os.utime(late, (time.time() + 5, time.time() + 5))
    result, _ = tick(root, cursor)
    ranges = [(r.tags[RANGE_START], r.tags[RANGE_END]) for r in result.run_requests]
    assert ranges == [(D2, D3), (D3, D3)]
