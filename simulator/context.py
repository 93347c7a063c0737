"""What the rooms of the simulation share, and the clock they count in.

Every draw comes from the one generator in `Context`, in the order the day loop makes them: that
order is what makes the same seed give the same bytes, so a room never draws for another one.
Times are epoch milliseconds (UTC) until a file is written.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from contract.localtime import LOCAL_TIMEZONE
from simulator.behaviour import MINUTE_MS
from simulator.config import FaultRates, Preset, WorldRates
from simulator.landing import FaultLog
from simulator.world import World

HOUR_MS = 60 * MINUTE_MS
DAY_MS = 24 * HOUR_MS


def local_midnight_ms(day: dt.date) -> int:
    """Epoch ms (UTC) of 00:00 local on `day`."""
    return int(dt.datetime(day.year, day.month, day.day, tzinfo=LOCAL_TIMEZONE).timestamp() * 1000)


def local_date(ms: int) -> dt.date:
    return dt.datetime.fromtimestamp(ms / 1000, LOCAL_TIMEZONE).date()


def utc_naive(ms) -> pd.Series | pd.Timestamp:
    return pd.to_datetime(ms, unit="ms")


@dataclass
class Context:
    """The preset, the generator, the world, the fault log and the landing zone's root."""

    preset: Preset
    rng: np.random.Generator
    world: World
    fault_log: FaultLog  # every fault injected, in the order it was
    landing: Path

    @property
    def rates(self) -> WorldRates:
        return self.preset.world_rates

    @property
    def fault_rates(self) -> FaultRates:
        return self.preset.faults

    def duration(self, span: tuple[int, int], unit_ms: int) -> int:
        """A duration in ms, drawn to the ms between span[0] and span[1] units."""
        return int(self.rng.integers(span[0] * unit_ms, span[1] * unit_ms))

    def minute_in(self, hours: tuple[int, int]) -> int:
        """A whole minute drawn between two local hours, in ms after midnight."""
        return int(self.rng.integers(hours[0] * 60, hours[1] * 60)) * MINUTE_MS
