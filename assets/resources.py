"""Resources the assets use; orchestration/ decides their values per environment."""

from __future__ import annotations

import functools
from pathlib import Path

import dagster as dg
from sqlalchemy import Engine

from warehouse.settings import KNOWN_PLATFORMS, parse_platforms
from warehouse.store import create_schema, make_engine


@functools.cache
def _engine(url: str) -> Engine:
    engine = make_engine(url)
    create_schema(engine)
    return engine


class Folder(dg.ConfigurableResource):
    """A folder the assets read or write, at `root`."""

    root: str

    @property
    def path(self) -> Path:
        return Path(self.root)


class LandingZone(Folder):
    """The folder where the platforms' exports, the events and the plans land every night, and
    the platforms this deployment sells on (comma-separated): only theirs are waited for."""

    platforms: str = ",".join(KNOWN_PLATFORMS)

    @property
    def platform_list(self) -> tuple[str, ...]:
        return parse_platforms(self.platforms)


class Warehouse(dg.ConfigurableResource):
    """The SQL warehouse (any SQLAlchemy URL); its schema is created on first use."""

    url: str

    def get_engine(self) -> Engine:
        return _engine(self.url)


class Lake(Folder):
    """The folder of Parquet files beside the warehouse (event-level data, features)."""


class Pseudonymizer(dg.ConfigurableResource):
    """The secret of viewer_key = HMAC-SHA256(secret, "<platform>:<viewer_id>")."""

    secret: str


class ModelStore(Folder):
    """Where trained models live, how they are backtested and when a challenger is promoted."""

    # The simulator's truth/ (oracle forecasts), compared with in backtests; empty for real data.
    truth_dir: str = ""
    backtest_windows: int = 8
    window_days: int = 14
    min_train_days: int = 28
    # A challenger may be at most this much worse than the champion (relative) ...
    tolerance: float = 0.05
    # ... and its [p10, p90] must cover between these shares of the actuals in the backtest.
    coverage_low: float = 0.7
    coverage_high: float = 0.9
    # Boosting rounds per model (tests use fewer: the mechanics, not the accuracy).
    num_rounds: int = 500
    # The product ranker: boosting rounds, and the last days it is evaluated on.
    ranker_rounds: int = 300
    ranker_eval_days: int = 21

    @property
    def truth(self) -> Path | None:
        path = Path(self.truth_dir) if self.truth_dir else None
        return path if path is not None and path.is_dir() else None
