"""`make bench-history`'s reading of its runs: what it calls flat, and what it names as grown."""

from __future__ import annotations

import datetime as dt

from scripts.bench.history import side_by_side, timed_dates, verdict
from scripts.bench.nightly import STAGES

MODELS = STAGES[3]


def run(seconds: dict[str, tuple[str, float]]) -> dict:
    steps = [{"step": k, "stage": stage, "seconds": s} for k, (stage, s) in seconds.items()]
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
