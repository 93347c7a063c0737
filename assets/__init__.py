"""Thin Dagster glue: each asset loads, calls a pure function, writes, and reports metadata."""

import warnings

import dagster as dg

# `backfill_policy` is beta and partitioned asset checks are in preview; both are deliberate
# choices here (single-run backfills; checks that look at the partition just written).
warnings.filterwarnings("ignore", category=dg.BetaWarning)
warnings.filterwarnings("ignore", category=dg.PreviewWarning)
