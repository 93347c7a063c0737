"""Features, models and metrics (pure code, no Dagster)."""
