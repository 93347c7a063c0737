"""The day-by-day simulation: plans are exported, sessions happen, exports and events land.

`simulate(preset, out, seed)` writes `<out>/landing` (the contract's layout) and `<out>/truth`
(the ground truth the pipeline never reads). The same seed and preset give the same bytes.

The work is done in rooms, each owning its part of the state: `plans.py` (planned sessions,
the plan export), `sessions.py` (sessions, order lines, refunds), `events.py` (tracking
events), `exports.py` (platform exports, folders landing, the catalogue) and `truth.py`; they
share a `context.Context` (preset, generator, world, fault log). The day loop is here.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from pathlib import Path

import numpy as np

from simulator.config import Preset
from simulator.context import HOUR_MS, Context, local_midnight_ms
from simulator.events import Events
from simulator.exports import Exports
from simulator.landing import FaultLog
from simulator.plans import Plans
from simulator.sessions import Sessions
from simulator.truth import Truth
from simulator.world import build_world

log = logging.getLogger("simulator")


class Simulation:
    def __init__(self, preset: Preset, out: Path, seed: int, as_of: dt.datetime | None = None):
        self.preset = preset
        rng = np.random.default_rng(seed)
        self.ctx = Context(preset, rng, build_world(preset, rng), FaultLog(), out / "landing")
        end_of_data = (
            local_midnight_ms(preset.end + dt.timedelta(days=1))
            + preset.world_rates.settled_h * HOUR_MS
        )
        as_of_ms = int(as_of.timestamp() * 1000) if as_of else end_of_data
        self.truth = Truth(self.ctx, out / "truth")
        self.plans = Plans(self.ctx)
        self.events = Events(self.ctx)
        self.exports = Exports(self.ctx, self.truth, as_of_ms)
        self.sessions = Sessions(self.ctx, self.plans, self.events, self.exports, self.truth)

    def run(self) -> dict:
        t0 = time.perf_counter()
        self.plans.make()
        for i, day in enumerate(self.preset.dates):
            self.exports.catalogue(day, first=i == 0)
            self.events.open(day)
            self.sessions.realise_day(day)
            self.events.close()
            self.exports.land_day(day)
            self.plans.export(day)
            if (i + 1) % 30 == 0 or i + 1 == self.preset.days:
                log.info(
                    "simulated %s (%d/%d days, %d events so far)",
                    day,
                    i + 1,
                    self.preset.days,
                    self.events.count,
                )
        self.truth.write(self.plans.by_id.values(), self.sessions.by_key, self.events.count)
        return {
            "days": self.preset.days,
            "sessions": len(self.sessions.by_key),
            "events": self.events.count,
            "seconds": round(time.perf_counter() - t0, 1),
        }


def simulate(preset: Preset, out: Path, seed: int = 7, as_of: dt.datetime | None = None) -> dict:
    """Write the landing zone and the truth for `preset` under `out`; return a summary."""
    return Simulation(preset, Path(out), seed, as_of).run()
