"""`make bench`: the nightly run of the `bench` day through the real graph, beside its floor
(pyarrow reads and SQLite's bulk insert) and a DuckDB peer; run with `python -m scripts.bench`."""
