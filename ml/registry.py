"""Model cards, their files, and the promotion rule: one mechanism for every model.

A trained model is a folder `<models>/<name>/<version>/` with its boosters, a `card.json`
(training window, features, parameters, data fingerprint, backtest metrics) and a
feature-importance plot. The warehouse's `model_registry` lists them (warehouse/model_registry.py).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import shutil
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path

import lightgbm as lgb
import pandas as pd


@dataclass
class ModelCard:
    name: str
    version: str
    trained_for: dt.date  # the local date whose data it was trained through
    train_first: dt.date
    train_last: dt.date
    features: list[str]
    params: dict
    data_fingerprint: str
    metrics: dict  # headline backtest metrics (plain numbers)
    extra: dict = field(default_factory=dict)  # model-specific state (e.g. conformal offsets)

    def to_json(self) -> str:
        return json.dumps(asdict(self), default=str, indent=2, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> ModelCard:
        data = json.loads(text)
        for key in ("trained_for", "train_first", "train_last"):
            data[key] = dt.date.fromisoformat(data[key])
        return cls(**data)


TOLERANCE = 0.05  # how much worse than the champion a challenger may be (relative)


@dataclass
class Gate:
    """Promotion rule: the challenger's `metric` may be worse than the champion's by at most
    `tolerance` (relative), and `coverage` (when bounded) must lie within `coverage_bounds`."""

    metric: str
    higher_is_better: bool
    tolerance: float = TOLERANCE
    coverage_bounds: tuple[float, float] | None = None


def decide(challenger: dict, champion: dict | None, gate: Gate) -> tuple[bool, str]:
    """(promote?, why) from the two models' backtest metrics."""
    value = challenger.get(gate.metric)
    if value is None or value != value:
        return False, f"the challenger has no {gate.metric}"
    if gate.coverage_bounds is not None:
        low, high = gate.coverage_bounds
        coverage = challenger.get("coverage")
        if coverage is None or not low <= coverage <= high:
            return False, (
                f"interval coverage {coverage:.3f} outside [{low}, {high}]"
                if coverage is not None
                else "the challenger has no interval coverage"
            )
    if champion is None:
        return True, f"no model in service; {gate.metric} {value:.4f}"
    best = champion[gate.metric]
    limit = best * (1 - gate.tolerance) if gate.higher_is_better else best * (1 + gate.tolerance)
    worse = value < limit if gate.higher_is_better else value > limit
    comparison = f"{gate.metric} {value:.4f} vs the champion's {best:.4f}"
    if worse:
        return False, f"{comparison}: worse by more than {gate.tolerance:.0%}"
    return True, f"{comparison}: within {gate.tolerance:.0%} or better"


def fingerprint(frame: pd.DataFrame) -> str:
    """A digest of the training data (rows in a stable order, columns by name)."""
    ordered = frame[sorted(frame.columns)]
    ordered = ordered.sort_values(list(ordered.columns[:3])).reset_index(drop=True)
    hashed = pd.util.hash_pandas_object(ordered.astype(str), index=False).to_numpy()
    return hashlib.sha256(hashed.tobytes()).hexdigest()


def version_of(name: str, day: dt.date, digest: str) -> str:
    return f"{name}-{day:%Y%m%d}-{digest[:8]}"


def save(root: Path, card: ModelCard, boosters: dict[str, lgb.Booster], plot_png: bytes) -> Path:
    """Write the model's folder atomically (a temporary folder renamed into place)."""
    final = root / card.name / card.version
    final.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{card.version}-", dir=final.parent))
    write_boosters(staging, boosters)
    (staging / "card.json").write_text(card.to_json())
    (staging / "importance.png").write_bytes(plot_png)
    if final.exists():
        shutil.rmtree(final)
    os.replace(staging, final)
    return final


def write_boosters(folder: Path, boosters: dict[str, lgb.Booster]) -> None:
    """Each booster as `booster_<label>.txt` (LightGBM's text, doubles at full precision)."""
    for label, booster in boosters.items():
        booster.save_model(str(folder / f"booster_{label}.txt"))


def read_boosters(folder: Path) -> dict[str, lgb.Booster]:
    """The boosters `write_boosters` wrote, by label."""
    return {
        p.stem.removeprefix("booster_"): lgb.Booster(model_file=str(p))
        for p in sorted(folder.glob("booster_*.txt"))
    }


def load(path: Path) -> tuple[ModelCard, dict[str, lgb.Booster]]:
    card = ModelCard.from_json((path / "card.json").read_text())
    return card, read_boosters(path)


def importance_frame(boosters: dict[str, lgb.Booster]) -> pd.DataFrame:
    """Gain importance per feature, summed over the boosters, as a share of the total."""
    frames = [
        pd.Series(b.feature_importance("gain"), index=b.feature_name()) for b in boosters.values()
    ]
    total = pd.concat(frames, axis=1).sum(axis=1)
    share = (total / total.sum()).sort_values(ascending=False)
    return share.rename("gain_share").rename_axis("feature").reset_index()
