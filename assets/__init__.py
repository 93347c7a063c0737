"""Thin Dagster glue: each asset loads, calls a pure function, writes, and reports metadata."""

import warnings

import dagster as dg

# `backfill_policy` is marked beta; the single-run backfill is a deliberate choice here.
warnings.filterwarnings("ignore", category=dg.BetaWarning)
