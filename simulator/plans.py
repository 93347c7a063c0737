"""The plans room: the operators' planned sessions (made up front, revised or cancelled a few
days out), the lineups and prices they put on, and the plan export of each evening."""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from dataclasses import dataclass

import numpy as np

from contract.enums import PLAN_DAYS
from contract.layout import mark_success
from contract.localtime import LOCAL_TIMEZONE
from simulator.behaviour import MINUTE_MS, Lineup, SessionPlan, expected_viewers
from simulator.context import Context, local_midnight_ms
from simulator.exports import write_brand_file
from simulator.world import Room, promotion_effect


@dataclass
class Plan:
    plan_id: str
    room: Room
    day: dt.date
    start_ms: int
    minutes: int
    versions: list[tuple[dt.date, str, Lineup]]  # (effective from export date, host, lineup)
    reservations: float
    cancelled_on: dt.date | None = None
    session_key: str | None = None

    def version_at(self, export_day: dt.date) -> tuple[str, Lineup]:
        current = self.versions[0]
        for v in self.versions:
            if v[0] <= export_day:
                current = v
        return current[1], current[2]


class Plans:
    def __init__(self, ctx: Context):
        self.ctx = ctx
        self.by_id: dict[str, Plan] = {}
        self.by_day: dict[dt.date, list[Plan]] = defaultdict(list)

    def make(self) -> None:
        """Every room's planned sessions over the window and a week beyond."""
        preset = self.ctx.preset
        days = [preset.start + dt.timedelta(days=i) for i in range(preset.days + PLAN_DAYS)]
        for day in days:
            for room in self.ctx.world.rooms:
                for slot_no, slot in enumerate(room.schedule[day.weekday()]):
                    if self.ctx.rng.random() < self.ctx.rates.slot_unplanned:
                        continue
                    plan = self._plan(room, day, slot_no, slot)
                    self.by_id[plan.plan_id] = plan
                    self.by_day[day].append(plan)

    def _plan(self, room: Room, day: dt.date, slot_no: int, slot: tuple[int, int, int]) -> Plan:
        rng, rates = self.ctx.rng, self.ctx.rates
        hour, minute, minutes = slot
        start = local_midnight_ms(day) + (hour * 60 + minute) * MINUTE_MS
        plan_id = f"PL-{day:%Y%m%d}-{room.index:03d}-{slot_no}"
        host = str(rng.choice(room.hosts, p=room.host_weights))
        lineup = self.lineup(room, day)
        first = day - dt.timedelta(days=rates.plan_lead_days)
        plan = Plan(plan_id, room, day, start, minutes, [(first, host, lineup)], 0.0)
        if rng.random() < rates.plan_revised:
            changed = dt.date.fromordinal(
                day.toordinal() - int(rng.integers(*rates.plan_revised_days))
            )
            new_host = (
                str(rng.choice(room.hosts)) if rng.random() < rates.revised_new_host else host
            )
            plan.versions.append((changed, new_host, self._revise(lineup)))
        if rng.random() < rates.plan_cancelled:
            plan.cancelled_on = dt.date.fromordinal(
                day.toordinal() - int(rng.integers(*rates.plan_cancelled_days))
            )
        host_final, lineup_final = plan.version_at(day)
        mu = expected_viewers(
            self.ctx.world, SessionPlan(room, host_final, day, start, minutes, lineup_final)
        )
        noise = float(rng.lognormal(0, rates.reservation_sigma))
        plan.reservations = mu * rates.reservations_per_viewer * noise
        return plan

    def lineup(self, room: Room, day: dt.date) -> Lineup:
        """Products the room puts on `day` (by its focus, among those launched), priced."""
        cat, rng = self.ctx.world.catalogue, self.ctx.rng
        available = np.array([d <= day for d in cat.launch_date])
        weights = room.focus[cat.category_index()] * available
        size = int(min(available.sum(), rng.integers(*self.ctx.rates.lineup_size)))
        products = rng.choice(len(cat), size=size, replace=False, p=weights / weights.sum())
        return self._price(products, day)

    def _price(self, products: np.ndarray, day: dt.date) -> Lineup:
        cat, rng, rates, n = self.ctx.world.catalogue, self.ctx.rng, self.ctx.rates, len(products)
        _, _, promo_disc = promotion_effect(day)
        strike = cat.list_price_fen[products]
        disc = np.clip(rng.uniform(*rates.discount, n) + promo_disc, 0, rates.max_discount)
        # Whole yuan ending in 9 (below 100 yuan: in 0).
        live = np.maximum(
            (strike * (1 - disc) / 100).astype(np.int64) * 100 - 100 + 100 * (strike < 10000),
            rates.min_live_price_fen,
        )
        live = np.minimum(live, strike)
        faces = np.array(rates.coupon_faces_fen)
        coupon = np.where(rng.random(n) < rates.coupon, rng.choice(faces, n), 0)
        coupon = np.where(coupon > live * rates.coupon_max_share, 0, coupon)
        stock = rng.integers(*rates.stock, n)
        return Lineup(
            products, live.astype(np.int64), strike.astype(np.int64), coupon.astype(np.int64), stock
        )

    def _revise(self, lineup: Lineup) -> Lineup:
        """The lineup with one product's live price cut (an operator's revision)."""
        rates = self.ctx.rates
        live = lineup.live_price_fen.copy()
        k = int(self.ctx.rng.integers(len(live)))
        live[k] = max(rates.min_live_price_fen, int(live[k] * rates.revised_price) // 100 * 100)
        return Lineup(
            lineup.product, live, lineup.strike_price_fen, lineup.coupon_fen, lineup.stock
        )

    def export(self, day: dt.date) -> None:
        """The plan export of `day` (landing-zone.md, "The plan"): the sessions planned for the
        next PLAN_DAYS days as they stand that evening, with their reservations so far."""
        rates, catalogue = self.ctx.rates, self.ctx.world.catalogue
        hour, minute = rates.plan_exported_at
        exported_at = dt.datetime(day.year, day.month, day.day, hour, minute, tzinfo=LOCAL_TIMEZONE)
        sessions, lineups = [], []
        for ahead in range(1, PLAN_DAYS + 1):
            target = day + dt.timedelta(days=ahead)
            for plan in self.by_day.get(target, []):
                if plan.cancelled_on is not None and plan.cancelled_on <= day:
                    continue
                host, lineup = plan.version_at(day)
                growth = 1 - rates.reservation_shortfall * (ahead - 1)
                noise = self.ctx.rng.uniform(*rates.reservation_noise)
                reservations = int(plan.reservations * growth * noise)
                start = dt.datetime.fromtimestamp(plan.start_ms / 1000, LOCAL_TIMEZONE)
                sessions.append(
                    {
                        "plan_id": plan.plan_id,
                        "platform": plan.room.platform,
                        "room_id": plan.room.room_id,
                        "host_id": host,
                        "planned_start": start.isoformat(),
                        "planned_minutes": plan.minutes,
                        "reservations": max(0, reservations),
                        "exported_at": exported_at.isoformat(),
                    }
                )
                for i, p in enumerate(lineup.product):
                    coupon = lineup.coupon_fen[i]
                    lineups.append(
                        {
                            "plan_id": plan.plan_id,
                            "sku": str(catalogue.sku[p]),
                            "planned_price": f"{lineup.live_price_fen[i] / 100:.2f}",
                            "coupon": f"{coupon / 100:.2f}" if coupon else "",
                        }
                    )
        write_brand_file(self.ctx.landing, "planned_sessions", day, sessions)
        mark_success(write_brand_file(self.ctx.landing, "planned_lineup", day, lineups))
