"""The session-GMV forecaster: LightGBM quantile models on the point-in-time features, with a
rolling-origin backtest against the baselines and (on simulated data) the oracle.

One model for all horizons, the horizon being a feature: the horizons share almost all their
structure (room, host, slot, lineup, calendar); what differs (the reservations so far, how stale
the history is) is in the features, and one model sees seven times the examples.

The target is log(1 + GMV): quantiles survive a monotone transform, so the p10/p50/p90 of the
log are those of the GMV, and the skew of GMV (promotion days, big rooms) stops dominating.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import shutil
import tempfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import lightgbm as lgb
import numpy as np
import pandas as pd

from ml.features import CATEGORICAL, FEATURES
from ml.metrics import forecast_metrics
from ml.registry import Gate, read_boosters, write_boosters

SEED = 7
QUANTILES = (0.1, 0.5, 0.9)
PARAMS = {
    # Small trees, slow learning: the backtest preferred them to 15 leaves (README). 300 rounds
    # at 0.05 over 63 bins score as 500 at 0.03 over 255 did on the demo (WMAPE 0.4625 against
    # 0.4614, 1.144 x the oracle against 1.141, coverage 0.813 against 0.811) in half the time
    # (the demo's backtest 18 s against 36 s; docs/performance.md).
    "learning_rate": 0.05,
    "num_leaves": 7,
    "max_bin": 63,
    "min_data_in_leaf": 20,
    "feature_fraction": 0.8,
    "bagging_fraction": 0.8,
    "bagging_freq": 1,
    "lambda_l2": 1.0,
    "cat_smooth": 10,
    # Deterministic: the same data gives the same trees, bit for bit (tested). One OpenMP thread
    # per booster: `fit` trains boosters side by side instead (`FIT_WORKERS`).
    "deterministic": True,
    "force_row_wise": True,
    "num_threads": 1,
    "seed": SEED,
    "verbose": -1,
}
NUM_ROUNDS = 300
# Labels settle: late order lines of a session mostly land within a few days, so training
# uses sessions that started at least this many days before what was known.
SETTLE_DAYS = 3
MIN_TRAINING_ROWS = 50
MEMBERS = ("absolute", "relative")
CALIBRATION_DAYS = 28  # split conformal: residuals of the last 4 weeks of the training window
# Boosters trained at once, each on one thread. On a few thousand rows a booster's 500 rounds
# are mostly per-round overhead that a second OpenMP thread barely shortens; two boosters side
# by side (LightGBM releases the GIL while it trains) finish a fit about a quarter sooner on 2
# cores, and OMP_WAIT_POLICY=passive no longer slows it (docs/performance.md).
FIT_WORKERS = 2


# Promotion: a challenger's backtest WMAPE may be worse than the champion's by the gate's
# tolerance at most, and its [p10, p90] must cover between 70 % and 90 % of the actuals (an 80 %
# interval, honestly calibrated). The deployment may set both (`ModelStore`).
GATE = Gate(metric="wmape", higher_is_better=False, coverage_bounds=(0.7, 0.9))


@dataclass
class BacktestConfig:
    windows: int = 8
    window_days: int = 14
    min_train_days: int = 28
    num_rounds: int = NUM_ROUNDS


@dataclass
class GmvModel:
    """Two members of three quantile boosters each, averaged in log space, and the conformal
    offsets (log scale) of the averaged p50.

    `absolute` learns log GMV itself; `relative` learns it against the room's recent level, so
    it follows a room that grows, or a promotion that lifts every room, beyond the levels it was
    trained on (trees cannot extrapolate); `absolute` does not over-trust a level inflated by a
    promotion just over. Their average beat both in the backtest (README, "Forecasting")."""

    boosters: dict[str, lgb.Booster]  # "<member>_p10" … "<member>_p90"
    conformal: tuple[float, float]
    fallback: float  # log GMV level of a room without history (the training median)
    interval: str = "quantile"  # or "conformal": p50 + calibrated offsets
    features: list[str] = field(default_factory=lambda: list(FEATURES))

    def log_quantiles(self, rows: pd.DataFrame) -> dict[float, np.ndarray]:
        x, base = design_matrix(rows), level(rows, self.fallback)
        threads = PARAMS["num_threads"]
        return {
            q: np.mean(
                [
                    self.boosters[f"{member}_{label(q)}"].predict(x, num_threads=threads)
                    + (base if member == "relative" else 0.0)
                    for member in MEMBERS
                ],
                axis=0,
            )
            for q in QUANTILES
        }

    def predict(self, rows: pd.DataFrame, interval: str | None = None) -> pd.DataFrame:
        """p10 / p50 / p90 in yuan, non-crossing."""
        logs = self.log_quantiles(rows)
        if (interval or self.interval) == "conformal":
            logs[0.1] = logs[0.5] + self.conformal[0]
            logs[0.9] = logs[0.5] + self.conformal[1]
        stacked = np.sort(np.column_stack([logs[q] for q in QUANTILES]), axis=1)
        values = np.clip(np.expm1(stacked), 0, None)
        return pd.DataFrame(values, columns=["p10", "p50", "p90"], index=rows.index)


def label(q: float) -> str:
    return f"p{round(q * 100)}"


def design_matrix(rows: pd.DataFrame) -> pd.DataFrame:
    x = rows[FEATURES].copy()
    for column in CATEGORICAL:
        x[column] = x[column].astype(str).astype("category")
    for column in x.columns.difference(CATEGORICAL):
        x[column] = x[column].astype(float)
    return x


def level(rows: pd.DataFrame, fallback: float) -> np.ndarray:
    """The room's recent log GMV level: the model learns the session's ratio to it, so a room
    that grows is not held to the level of the sessions it was trained on."""
    return rows["room_mean10_log_gmv"].astype(float).fillna(fallback).to_numpy(float)


def labelled(
    features: pd.DataFrame,
    matches: pd.DataFrame,
    history: pd.DataFrame,
    cutoff: dt.date,
    settle_days: int = 0,
) -> pd.DataFrame:
    """Feature rows of plans whose session started `settle_days` or more before `cutoff`, with
    its paid GMV as known on `cutoff` (`history`: sessions_as_of(..., cutoff)) in `actual`."""
    gmv = history.set_index("session_key")["gmv"]
    started = history.set_index("session_key")["start_local"].dt.normalize()
    rows = features.merge(matches[["plan_id", "session_key"]], on="plan_id", how="inner")
    latest = pd.Timestamp(cutoff - dt.timedelta(days=settle_days))
    # A session not in the history (exported after `cutoff`) maps to NaT: not a label yet.
    start = pd.Series(started.reindex(rows["session_key"].astype(object)).to_numpy())
    rows = rows[start.le(latest).to_numpy(bool)]
    return rows.assign(actual=rows["session_key"].map(gmv).to_numpy())


def fit(rows: pd.DataFrame, num_rounds: int = NUM_ROUNDS) -> GmvModel:
    """Both members' quantile boosters on `rows` (with `actual`), and split-conformal offsets
    from members fitted without the last CALIBRATION_DAYS of forecast dates."""
    log_gmv = np.log1p(rows["actual"].to_numpy(float))
    fallback = float(np.median(log_gmv))
    x, base = design_matrix(rows), level(rows, fallback)
    targets = {"absolute": log_gmv, "relative": log_gmv - base}
    dates = pd.to_datetime(rows["forecast_date"])
    early = (dates <= dates.max() - pd.Timedelta(days=CALIBRATION_DAYS)).to_numpy()
    calibrate = early.sum() >= 50 and (~early).sum() >= 20

    def booster(job: tuple[float, str, bool]) -> lgb.Booster:
        alpha, member, early_only = job
        params = {**PARAMS, "objective": "quantile", "alpha": alpha}
        keep = early if early_only else np.ones(len(rows), bool)
        data = lgb.Dataset(x[keep], targets[member][keep], categorical_feature=CATEGORICAL,
                           free_raw_data=False)  # fmt: skip
        return lgb.train(params, data, num_boost_round=num_rounds)

    jobs = [(q, m, False) for m in MEMBERS for q in QUANTILES]
    jobs += [(0.5, m, True) for m in MEMBERS] if calibrate else []
    with ThreadPoolExecutor(FIT_WORKERS) as pool:
        trained = dict(zip(jobs, pool.map(booster, jobs), strict=True))
    boosters = {f"{m}_{label(q)}": trained[(q, m, False)] for m in MEMBERS for q in QUANTILES}
    offsets = (float("nan"), float("nan"))
    if calibrate:
        held = x[~early]
        p50 = np.mean(
            [
                trained[(0.5, m, True)].predict(held, num_threads=PARAMS["num_threads"])
                + (base[~early] if m == "relative" else 0.0)
                for m in MEMBERS
            ],
            axis=0,
        )
        residual = log_gmv[~early] - p50
        offsets = (float(np.quantile(residual, 0.1)), float(np.quantile(residual, 0.9)))
    return GmvModel(boosters=boosters, conformal=offsets, fallback=fallback)


class FitCache:
    """Backtest fits kept by what determines them: the training rows in their order, the
    parameters, the rounds, the feature list and LightGBM's version. A fit of the same rows is
    the same model bit for bit (`deterministic`), so a window already fitted by an earlier run
    is loaded instead of trained again: the demo's second run shares six of its eight origins
    with the first, and so does any retraining a multiple of `window_days` later.

    One folder per fit under `root` (the boosters as `registry.write_boosters` writes them,
    and `state.json`), written atomically; at most `keep` folders,
    the least recently used removed first. A folder that cannot be read is fitted again."""

    def __init__(self, root: Path, keep: int = 32):
        self.root, self.keep = Path(root), keep
        self.hits = self.misses = 0

    @staticmethod
    def key(rows: pd.DataFrame, num_rounds: int) -> str:
        columns = [*FEATURES, "actual", "forecast_date"]
        hashed = pd.util.hash_pandas_object(rows[columns], index=False).to_numpy()
        about = json.dumps(
            {"params": PARAMS, "rounds": num_rounds, "members": MEMBERS, "quantiles": QUANTILES,
             "calibration_days": CALIBRATION_DAYS, "features": FEATURES,
             "lightgbm": lgb.__version__},
            sort_keys=True, default=str,
        )  # fmt: skip
        return hashlib.sha256(hashed.tobytes() + about.encode()).hexdigest()[:32]

    def fit(self, rows: pd.DataFrame, num_rounds: int) -> GmvModel:
        """`fit(rows, num_rounds)`, from the cache when this very fit is in it."""
        folder = self.root / self.key(rows, num_rounds)
        try:
            state = json.loads((folder / "state.json").read_text())
            boosters = read_boosters(folder)
            if len(boosters) != len(MEMBERS) * len(QUANTILES):
                raise ValueError(f"{folder}: {len(boosters)} boosters")
        except (OSError, ValueError, lgb.basic.LightGBMError):
            model = fit(rows, num_rounds)
            self._store(folder, model)
            self.misses += 1
            return model
        os.utime(folder)
        self.hits += 1
        return from_state(boosters, state)

    def _store(self, folder: Path, model: GmvModel) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=".fit-", dir=self.root))
        write_boosters(staging, model.boosters)
        (staging / "state.json").write_text(json.dumps(model_state(model)))
        shutil.rmtree(folder, ignore_errors=True)
        try:
            os.replace(staging, folder)
        except OSError:  # another run stored the same fit meanwhile
            shutil.rmtree(staging, ignore_errors=True)
        kept = sorted(
            (p for p in self.root.iterdir() if p.is_dir() and not p.name.startswith(".")),
            key=lambda p: p.stat().st_mtime,
            reverse=True,
        )
        for old in kept[self.keep :]:
            shutil.rmtree(old, ignore_errors=True)


def backtest_origins(last: dt.date, first: dt.date, config: BacktestConfig) -> list[dt.date]:
    """Origins of the rolling windows, oldest first: window k tests forecasts made in
    (origin_k, origin_k + window_days]; the last window ends on `last`."""
    origins = [
        last - dt.timedelta(days=config.window_days * k) for k in range(config.windows, 0, -1)
    ]
    return [o for o in origins if (o - first).days >= config.min_train_days]


def backtest(
    features: pd.DataFrame,
    matches: pd.DataFrame,
    history_at,
    evaluated_on: dt.date,
    config: BacktestConfig,
    oracle: pd.DataFrame | None = None,
    log=print,
    cache: FitCache | None = None,
) -> pd.DataFrame:
    """Rolling-origin backtest. `history_at(date)` gives the sessions as known on a date.

    For each origin T the model is trained on what was known on T and forecasts every plan
    exported in (T, T + window] whose session has happened by `evaluated_on`, with the very
    features the nightly run computed on each of those dates. Returns one row per forecast:
    window, ids, horizon, actual (as known on `evaluated_on`), the model's p10/p50/p90 by both
    interval methods, the two baselines and (when given) the oracle's p10/p50/p90. With a
    `cache`, a window fitted before on the same rows is loaded, not trained again."""
    first = pd.to_datetime(features["forecast_date"]).dt.date.min()
    last = min(evaluated_on - dt.timedelta(days=1), features["forecast_date"].max())
    origins = backtest_origins(last, first, config)
    final = labelled(features, matches, history_at(evaluated_on), evaluated_on)
    forecast_date = pd.to_datetime(final["forecast_date"]).dt.date
    pieces = []
    for k, origin in enumerate(origins, start=1):
        known = history_at(origin)
        past = features[pd.to_datetime(features["forecast_date"]).dt.date <= origin]
        train = labelled(past, matches, known, origin, SETTLE_DAYS)
        end = origin + dt.timedelta(days=config.window_days)
        test = final[(forecast_date > origin) & (forecast_date <= end)]
        if train.empty or test.empty:
            continue
        model = cache.fit(train, config.num_rounds) if cache else fit(train, config.num_rounds)
        quantile = model.predict(test, "quantile")
        conformal = model.predict(test, "conformal")
        pieces.append(
            test[["plan_id", "forecast_date", "platform", "room_id", "horizon_days", "actual",
                  "seasonal_naive", "recent_mean"]].assign(
                window=k,
                origin=origin,
                p10=quantile["p10"], p50=quantile["p50"], p90=quantile["p90"],
                c10=conformal["p10"], c90=conformal["p90"],
            )
        )  # fmt: skip
        log(f"backtest window {k}/{len(origins)}: trained on {len(train):,} forecasts up to "
            f"{origin}, tested on {len(test):,}")  # fmt: skip
    result = pd.concat(pieces, ignore_index=True) if pieces else pd.DataFrame()
    if oracle is not None and len(result):
        result = result.merge(
            oracle[["plan_id", "oracle_p10", "oracle_p50", "oracle_p90"]], on="plan_id",
            how="left",
        )  # fmt: skip
    return result


def summarize(result: pd.DataFrame) -> dict[str, object]:
    """Headline metrics of a backtest, the baselines' on the same forecasts, and per platform
    and horizon tables."""
    rows = result.dropna(subset=["seasonal_naive", "recent_mean"])
    model = forecast_metrics(rows, "p50", "p10", "p90")
    conformal = forecast_metrics(rows.dropna(subset=["c10", "c90"]), "p50", "c10", "c90")
    out: dict[str, object] = {
        "model": model,
        "conformal": {k: conformal[k] for k in ("coverage", "pinball")},
        "seasonal_naive": forecast_metrics(rows, "seasonal_naive"),
        "recent_mean": forecast_metrics(rows, "recent_mean"),
        "windows": int(rows["window"].nunique()),
    }
    if "oracle_p50" in rows and rows["oracle_p50"].notna().any():
        with_oracle = rows.dropna(subset=["oracle_p50"])
        out["oracle"] = forecast_metrics(with_oracle, "oracle_p50", "oracle_p10", "oracle_p90")
        out["model_on_oracle_rows"] = forecast_metrics(with_oracle, "p50", "p10", "p90")
    out["by_platform"] = _table(rows, "platform")
    out["by_horizon"] = _table(rows, "horizon_days")
    return out


def _table(rows: pd.DataFrame, by: str) -> pd.DataFrame:
    return pd.DataFrame(
        [
            {
                by: key,
                **{k: round(v, 4) for k, v in forecast_metrics(group, "p50", "p10", "p90").items()},
                "naive_wmape": round(forecast_metrics(group, "seasonal_naive")["wmape"], 4),
            }
            for key, group in rows.groupby(by)
        ]
    )


def choose_interval(summary: dict) -> str:
    """The interval method whose backtest coverage of [p10, p90] is nearer the nominal 80 %."""
    quantile = summary["model"].get("coverage", float("nan"))
    conformal = summary["conformal"].get("coverage", float("nan"))
    if conformal != conformal:
        return "quantile"
    return "conformal" if abs(conformal - 0.8) < abs(quantile - 0.8) else "quantile"


def headline(summary: dict, interval: str) -> dict[str, float]:
    """The backtest in plain numbers (the registry's `metrics`, the gate's input): the model's
    figures with the chosen interval, the baselines', and the ratios the targets are stated in."""
    model = summary["model"]
    coverage = summary["conformal"]["coverage"] if interval == "conformal" else model["coverage"]
    pinball = summary["conformal"]["pinball"] if interval == "conformal" else model["pinball"]
    out = {
        "wmape": model["wmape"],
        "mae": model["mae"],
        "bias": model["bias"],
        "coverage": coverage,
        "pinball": pinball,
        "coverage_quantile": model["coverage"],
        "coverage_conformal": summary["conformal"]["coverage"],
        "naive_wmape": summary["seasonal_naive"]["wmape"],
        "recent_mean_wmape": summary["recent_mean"]["wmape"],
        "ratio_to_naive": model["wmape"] / summary["seasonal_naive"]["wmape"],
        "ratio_to_recent_mean": model["wmape"] / summary["recent_mean"]["wmape"],
        "backtest_forecasts": model["n"],
        "windows": summary["windows"],
    }
    if "oracle" in summary:
        oracle, same_rows = summary["oracle"], summary["model_on_oracle_rows"]
        out |= {
            "oracle_wmape": oracle["wmape"],
            "oracle_coverage": oracle["coverage"],
            "ratio_to_oracle": same_rows["wmape"] / oracle["wmape"],
        }
    return {k: float(v) for k, v in out.items()}


def model_state(model: GmvModel) -> dict:
    """What a card must keep besides the boosters to rebuild the model."""
    return {"conformal": list(model.conformal), "fallback": model.fallback,
            "interval": model.interval}  # fmt: skip


def from_state(boosters: dict[str, lgb.Booster], state: dict) -> GmvModel:
    return GmvModel(
        boosters=boosters,
        conformal=tuple(state["conformal"]),
        fallback=state["fallback"],
        interval=state["interval"],
    )
