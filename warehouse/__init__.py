"""Storage: table schemas, engines, atomic partition writes, the platform dialects and the ingest."""
