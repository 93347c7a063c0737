"""Storage: table schemas, engines, atomic partition writes, platform dialects, the ingest."""
