"""Money: integer fen in the clean layer (exact), yuan with two decimals rounded half-up in the
serving tables (serving-tables.md, "Conventions": NUMERIC(14,2) yuan, rounded half-up)."""

from __future__ import annotations

import numpy as np
import pandas as pd


def yuan(fen: pd.Series) -> pd.Series:
    """Integer fen -> yuan (exact to two decimals as a float; NUMERIC(14,2) in the warehouse)."""
    return fen.astype("Float64") / 100


def ratio_half_up(numerator: pd.Series, denominator: pd.Series) -> pd.Series:
    """Integer numerator / positive integer denominator, rounded half-up (away from zero on a
    tie); null where the denominator is not positive. Exact: integer arithmetic only."""
    num = numerator.astype("Int64")
    den = denominator.astype("Int64")
    valid = den > 0
    safe = den.where(valid, 1)
    sign = num.where(num >= 0, -1).where(num < 0, 1)
    result = sign * ((2 * num.abs() + safe) // (2 * safe))
    return result.where(valid)


def yuan_half_up(values: pd.Series) -> pd.Series:
    """Yuan of any precision (a model's forecast, an error) -> yuan to two decimals, rounded
    half-up, as a float."""
    return np.floor(values.astype(float) * 100 + 0.5) / 100
