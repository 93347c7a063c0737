"""Resources the assets use; orchestration/ decides their values per environment."""

from __future__ import annotations

import dataclasses
import functools
from pathlib import Path

import dagster as dg
from sqlalchemy import Engine

from contract.enums import PLATFORMS
from ml import gmv, ranker, registry
from warehouse.settings import parse_platforms
from warehouse.store import create_schema, make_engine

_BACKTEST = gmv.BacktestConfig()


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

    platforms: str = ",".join(PLATFORMS)

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

    # The defaults are the models' own (`ml/`); a deployment or a test sets its values here.

    # The simulator's truth/ (oracle forecasts), compared with in backtests; empty for real data.
    truth_dir: str = ""
    # The forecaster's rolling-origin backtest (`ml.gmv.BacktestConfig`).
    backtest_windows: int = _BACKTEST.windows
    window_days: int = _BACKTEST.window_days
    min_train_days: int = _BACKTEST.min_train_days
    # A challenger may be at most this much worse than the champion (relative), both models ...
    tolerance: float = registry.TOLERANCE
    # ... and the forecaster's [p10, p90] must cover between these shares of the actuals.
    coverage_low: float = gmv.GATE.coverage_bounds[0]
    coverage_high: float = gmv.GATE.coverage_bounds[1]
    # Boosting rounds per model (tests use fewer: the mechanics, not the accuracy).
    num_rounds: int = gmv.NUM_ROUNDS
    # The product ranker: boosting rounds, and the last days it is evaluated on.
    ranker_rounds: int = ranker.NUM_ROUNDS
    ranker_eval_days: int = ranker.EVAL_DAYS
    # The picks horizon h: the plans planned for D+1 … D+h get picks on date D.
    picks_horizon_days: int = ranker.PICKS_HORIZON_DAYS

    def gate(self, gate: registry.Gate) -> registry.Gate:
        """A model's promotion rule with this deployment's tolerance and coverage bounds (the
        metric, its direction and whether coverage is bounded are the model's)."""
        bounds = None if gate.coverage_bounds is None else (self.coverage_low, self.coverage_high)
        return dataclasses.replace(gate, tolerance=self.tolerance, coverage_bounds=bounds)

    @property
    def truth(self) -> Path | None:
        path = Path(self.truth_dir) if self.truth_dir else None
        return path if path is not None and path.is_dir() else None
