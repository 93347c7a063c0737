"""How far a feature's distribution moved: the population stability index (PSI)."""

from __future__ import annotations

import numpy as np
import pandas as pd

# The usual reading: below 0.1 stable, 0.1–0.25 a shift worth a look, above 0.25 a real change.
PSI_ALERT = 0.25
DRIFT_DAYS = 28  # a date's features are compared with those of the four weeks before
MIN_ROWS = 20


def psi(expected: np.ndarray, actual: np.ndarray, bins: int = 10) -> float:
    """PSI of `actual` against `expected`, on the deciles of `expected` (NaN when too few)."""
    e = expected[~np.isnan(expected)]
    a = actual[~np.isnan(actual)]
    if len(e) < MIN_ROWS or len(a) < MIN_ROWS:
        return float("nan")
    edges = np.unique(np.quantile(e, np.linspace(0, 1, bins + 1)))
    if len(edges) < 2:
        return 0.0 if np.all(a == e[0]) else float("inf")
    edges[0], edges[-1] = -np.inf, np.inf
    pe = np.clip(np.histogram(e, edges)[0] / len(e), 1e-4, None)
    pa = np.clip(np.histogram(a, edges)[0] / len(a), 1e-4, None)
    return float(np.sum((pa - pe) * np.log(pa / pe)))


def drift_table(previous: pd.DataFrame, current: pd.DataFrame, columns: list[str]) -> pd.DataFrame:
    """Per feature: PSI, means and null shares before and now, largest PSI first."""
    rows = []
    for column in columns:
        before = pd.to_numeric(previous[column], errors="coerce").to_numpy(float)
        now = pd.to_numeric(current[column], errors="coerce").to_numpy(float)
        rows.append(
            {
                "feature": column,
                "psi": round(psi(before, now), 4),
                "mean_before": _mean(before),
                "mean_now": _mean(now),
                "null_before": round(float(np.isnan(before).mean()), 4) if len(before) else None,
                "null_now": round(float(np.isnan(now).mean()), 4) if len(now) else None,
            }
        )
    return pd.DataFrame(rows).sort_values("psi", ascending=False, na_position="last")


def _mean(values: np.ndarray) -> float | None:
    """The mean of the known values, None when there are none."""
    known = values[~np.isnan(values)]
    return round(float(known.mean()), 4) if len(known) else None
