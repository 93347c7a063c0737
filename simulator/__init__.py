"""Simulator of the landing zone: a brand's live rooms on three platforms, with dirt and a truth."""

from simulator.config import PRESETS, FaultRates, Preset, WorldRates
from simulator.simulate import simulate

__all__ = ["PRESETS", "FaultRates", "Preset", "WorldRates", "simulate"]
