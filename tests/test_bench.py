"""`make bench-history`'s reading of its runs: what it calls flat, and what it names as grown."""

from __future__ import annotations

import datetime as dt

from scripts.bench.history import landing_as_of, side_by_side, timed_dates, verdict
from scripts.bench.nightly import TRAINING as MODELS


def run(seconds: dict[str, tuple]) -> dict:
    """A run's figures from {step: (stage, seconds[, rows written])}."""
    steps = [
        {"step": k, "stage": v[0], "seconds": v[1], "rows": v[2] if len(v) > 2 else 0}
        for k, v in seconds.items()
    ]
    stages = {}
    for step in steps:
        stage = stages.setdefault(step["stage"], {"seconds": 0.0})
        stage["seconds"] += step["seconds"]
    return {"wall_s": sum(s["seconds"] for s in steps), "steps": steps, "stages": stages,
            "peak_rss_mib": 100.0, "success": True}  # fmt: skip


def test_the_timed_dates_end_on_the_last_day_after_each_length_of_history():
    got = timed_dates(dt.date(2026, 11, 10), (30, 180, 365))
    assert got == {30: dt.date(2025, 12, 10), 180: dt.date(2026, 5, 9), 365: dt.date(2026, 11, 10)}


def test_a_step_outside_training_that_grows_is_named_and_training_is_not():
    short = run({"clean__events": ("ingest and clean", 10.0), "ml__ranker": (MODELS, 5.0),
                 "serving__fan_segments": ("serving writes", 2.0)})  # fmt: skip
    flat = run({"clean__events": ("ingest and clean", 11.0), "ml__ranker": (MODELS, 50.0),
                "serving__fan_segments": ("serving writes", 2.5)})  # fmt: skip
    grown = run({"clean__events": ("ingest and clean", 11.0), "ml__ranker": (MODELS, 50.0),
                 "serving__fan_segments": ("serving writes", 9.0)})  # fmt: skip
    assert verdict({30: short, 365: flat}).startswith("flat")
    said = verdict({30: short, 365: grown})
    assert said.startswith("NOT flat") and "serving__fan_segments" in said
    assert "ml__ranker" not in said
    failed = {**grown, "success": False}
    assert verdict({30: short, 365: failed}).startswith("NOT measured")
    table = side_by_side({30: short, 365: grown})
    (line,) = [x for x in table if "serving__fan_segments" in x]
    assert line.endswith("4.50x *")


def test_a_step_whose_time_grows_with_its_rows_only_is_flat_per_row():
    # fan_segments writes every fan of the 365 days to the date: ten times the fans after a
    # year as after a month, at the same cost per fan.
    short = run({"serving__fan_segments": ("serving writes", 2.0, 10_000)})
    window = run({"serving__fan_segments": ("serving writes", 20.0, 100_000)})
    slower = run({"serving__fan_segments": ("serving writes", 40.0, 100_000)})
    said = verdict({30: short, 365: window})
    assert said.startswith("flat") and "(marked +): serving__fan_segments" in said
    assert verdict({30: short, 365: slower}).startswith("NOT flat")
    (line,) = [x for x in side_by_side({30: short, 365: window}) if "fan_segments" in x]
    assert line.endswith("10.00x +")


def test_the_timed_night_sees_the_landing_zone_as_it_stood_that_night(tmp_path):
    landing = tmp_path / "landing"
    for folder in ("douyin/2026-11-09", "douyin/2026-11-10", "plan/2026-11-10", "plan/2026-11-11"):
        (landing / folder).mkdir(parents=True)
        (landing / folder / "_SUCCESS").touch()
    (landing / "catalog").mkdir()
    view = landing_as_of(landing, tmp_path / "view", dt.date(2026, 11, 10))
    seen = sorted(str(p.relative_to(view)) for p in view.glob("*/*/_SUCCESS"))
    assert seen == ["douyin/2026-11-09/_SUCCESS", "douyin/2026-11-10/_SUCCESS",
                    "plan/2026-11-10/_SUCCESS"]  # fmt: skip
