"""Resources the assets use; orchestration/ decides their values per environment."""

from __future__ import annotations

import functools
from pathlib import Path

import dagster as dg
from sqlalchemy import Engine

from warehouse.store import create_schema, make_engine


@functools.cache
def _engine(url: str) -> Engine:
    engine = make_engine(url)
    create_schema(engine)
    return engine


class LandingZone(dg.ConfigurableResource):
    """The folder where the platforms' exports, the events and the plans land every night."""

    root: str

    @property
    def path(self) -> Path:
        return Path(self.root)


class Warehouse(dg.ConfigurableResource):
    """The SQL warehouse (any SQLAlchemy URL); its schema is created on first use."""

    url: str

    def get_engine(self) -> Engine:
        return _engine(self.url)


class Lake(dg.ConfigurableResource):
    """The folder of Parquet files beside the warehouse (event-level data)."""

    root: str

    @property
    def path(self) -> Path:
        return Path(self.root)


class Pseudonymizer(dg.ConfigurableResource):
    """The secret of viewer_key = HMAC-SHA256(secret, "<platform>:<viewer_id>")."""

    secret: str
