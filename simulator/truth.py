"""The truth room: what the pipeline never reads and is judged against. Each session's latent
facts and oracle, the interested viewers' true propensities, when each folder landed, every
fault injected, and each plan's oracle, written to `<out>/truth` at the end."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from simulator.behaviour import PAY_RATE, SessionOutcome, SessionPlan, oracle_gmv
from simulator.context import Context, local_midnight_ms, utc_naive

if TYPE_CHECKING:
    from simulator.plans import Plan
    from simulator.sessions import Session


class Truth:
    def __init__(self, ctx: Context, root: Path):
        self.ctx = ctx
        self.root = root
        self.sessions: list[dict] = []
        self.propensities: list[pd.DataFrame] = []
        self.folders: list[dict] = []  # each platform folder: when it landed, whether late

    def add_session(self, session: Session, oracle: dict[str, float]) -> None:
        """A session as it happened, with the oracle of its plan (none for a test session)."""
        self.sessions.append(
            {
                "session_key": session.key,
                "platform": session.room.platform,
                "session_id": session.session_id,
                "room_id": session.room.room_id,
                "host_id": session.host_id,
                "plan_id": session.plan_id,
                "start_time": utc_naive(session.start_ms),
                "end_time": utc_naive(session.end_ms),
                "is_test": session.is_test,
                **oracle,
            }
        )

    def add_propensities(self, session: Session, outcome: SessionOutcome) -> None:
        """The propensities of the viewers who showed interest (the recommender's examples)."""
        pick = outcome.interested[: self.ctx.preset.propensity_sample]
        if not len(pick):
            return
        pool = self.ctx.world.pools[session.room.index]
        pc, pa, pp = (p[pick] for p in outcome.propensity)
        j = len(session.lineup.product)
        skus = self.ctx.world.catalogue.sku[session.lineup.product]
        self.propensities.append(
            pd.DataFrame(
                {
                    "session_key": session.key,
                    "viewer_id": np.repeat(
                        np.array(pool.ids, dtype=object)[outcome.viewers[pick]], j
                    ),
                    "sku": np.tile(skus, len(pick)),
                    "p_click": pc.ravel().round(6),
                    "p_cart": (pc * pa).ravel().round(6),
                    "p_buy": (pc * pa * pp * PAY_RATE).ravel().round(6),  # a paid order
                }
            )
        )

    def write(self, plans: Iterable[Plan], sessions: dict[str, Session], events: int) -> None:
        """Write the truth; `events` is how many events were written."""
        preset, root = self.ctx.preset, self.root
        root.mkdir(parents=True, exist_ok=True)
        end_cut = local_midnight_ms(preset.end + dt.timedelta(days=1))
        frame = pd.DataFrame(self.sessions)
        landed = {}
        for s in sessions.values():
            # What the landed exports can show: lines whose paid_at landed by the last folder.
            landed[s.key] = sum(ln["paid"] for ln in s.lines if 0 <= ln["paid_ms"] < end_cut) / 100
        frame["paid_gmv"] = frame["session_key"].map(
            {
                k: sum(ln["paid"] for ln in s.lines if ln["paid_ms"] >= 0) / 100
                for k, s in sessions.items()
            }
        )
        frame["paid_gmv_landed"] = frame["session_key"].map(landed)
        _csv(frame, root / "sessions.csv")
        _csv(pd.DataFrame([self._plan_row(plan) for plan in plans]), root / "plans.csv")
        if self.propensities:
            pd.concat(self.propensities, ignore_index=True).to_parquet(
                root / "propensities.parquet", index=False
            )
        faults = self.ctx.fault_log.frame()
        _csv(faults, root / "faults.csv")
        _csv(pd.DataFrame(self.folders), root / "folders.csv")
        manifest = {
            "preset": preset.name,
            "start": preset.start.isoformat(),
            "end": preset.end.isoformat(),
            "sessions": len(sessions),
            "events": events,
            "faults": faults["kind"].value_counts().sort_index().to_dict(),
        }
        (root / "manifest.json").write_text(
            json.dumps(manifest, indent=2, ensure_ascii=False) + "\n"
        )

    def _plan_row(self, plan: Plan) -> dict:
        """A plan as it stood on its day, with its oracle (drawn now, in plan order)."""
        host, lineup = plan.version_at(plan.day)
        oracle = oracle_gmv(
            self.ctx.world,
            SessionPlan(plan.room, host, plan.day, plan.start_ms, plan.minutes, lineup),
            self.ctx.rng,
        )
        return {
            "plan_id": plan.plan_id,
            "platform": plan.room.platform,
            "room_id": plan.room.room_id,
            "host_id": host,
            "planned_start": utc_naive(plan.start_ms),
            "cancelled": plan.cancelled_on is not None,
            "session_key": plan.session_key,
            **oracle,
        }


def _csv(frame: pd.DataFrame, path: Path) -> None:
    frame.to_csv(path, index=False, lineterminator="\n")
