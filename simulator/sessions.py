"""The sessions room: each day's sessions happen (the planned ones, a few unplanned, the odd
test stream), and their order lines and refunds follow. What a session yields goes to the
events room, its rows to the exports room's queues, its latent facts to the truth."""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from dataclasses import dataclass, field

import numpy as np

from contract.enums import CATEGORIES
from simulator.behaviour import (
    EVENT_CODE,
    MINUTE_MS,
    Lineup,
    SessionOutcome,
    SessionPlan,
    oracle_gmv,
    peak_online,
    run_session,
)
from simulator.context import DAY_MS, HOUR_MS, Context, local_date, local_midnight_ms
from simulator.events import Events
from simulator.exports import Exports
from simulator.plans import Plans
from simulator.truth import Truth
from simulator.world import BRAND, STREETS, Room

REFUND_REASONS = ("七天无理由退货", "商品破损", "价格保护", "不想要了", "发错货", "质量问题")
PROMO_TITLES = {(11, 11): "双11狂欢夜", (6, 18): "618年中大促"}  # (month, day) -> in the title
CATEGORY_TITLES = {
    "kitchen": "厨房好物",
    "large_appliance": "大家电焕新",
    "small_appliance": "小家电专场",
    "personal_care": "个护精选",
    "smart_home": "智能家居",
}
TEST_TITLES = ("测试直播-勿下单", "Test stream 推流测试", "test")
# The kinds of test session the contract names: a test title, under 300 s, or no viewers.
TEST_KINDS = range(3)
TEST_TITLED, TEST_SHORT, TEST_EMPTY = TEST_KINDS
ID_STYLES = {
    "session": {
        "douyin": lambda k: f"73{k * 7919 + 10**15:017d}",
        "taobao": lambda k: f"{400_000_000 + k * 37}",
        "jd": lambda k: f"{80_000_000 + k * 13}",
    },
    "order": {
        "douyin": lambda k: f"69{k * 104723 + 10**16:018d}",
        "taobao": lambda k: f"{3 * 10**17 + k * 7:018d}",
        "jd": lambda k: f"{2 * 10**11 + k * 3}",
    },
    "refund": {
        "douyin": lambda k: f"6{k * 9973 + 10**17:018d}",
        "taobao": lambda k: f"R{10**14 + k * 11}",
        "jd": lambda k: f"{5 * 10**9 + k}",
    },
}


@dataclass
class Session:
    key: str
    session_id: str
    room: Room
    host_id: str
    title: str
    start_ms: int
    end_ms: int
    lineup: Lineup
    listed_ms: np.ndarray
    plan_id: str | None
    is_test: bool
    stats: dict[str, float]
    lines: list[dict] = field(default_factory=list)  # order lines (latent)


class Sessions:
    def __init__(self, ctx: Context, plans: Plans, events: Events, exports: Exports, truth: Truth):
        self.ctx = ctx
        self.plans, self.events, self.exports, self.truth = plans, events, exports, truth
        self.by_key: dict[str, Session] = {}
        self.counters: dict[str, int] = defaultdict(int)

    def new_id(self, kind: str, platform: str) -> str:
        """The next session, order or refund id, in each platform's own style."""
        k = self.counters[f"{kind}:{platform}"] = self.counters[f"{kind}:{platform}"] + 1
        return ID_STYLES[kind][platform](k)

    def realise_day(self, day: dt.date) -> list[Session]:
        ctx, rng, rates = self.ctx, self.ctx.rng, self.ctx.rates
        sessions = []
        for plan in self.plans.by_day[day]:
            if plan.cancelled_on is not None:
                continue
            host, lineup = plan.version_at(day)
            start = plan.start_ms + int(rng.normal(0, rates.start_jitter_min) * MINUTE_MS)
            minutes = int(plan.minutes * rng.uniform(*rates.length_factor))
            sessions.append(
                self.play(plan.room, host, day, start, minutes, lineup, plan.plan_id, False)
            )
            plan.session_key = sessions[-1].key
        for room in ctx.world.rooms:
            if rng.random() < rates.unplanned_session:
                start = local_midnight_ms(day) + ctx.minute_in(rates.unplanned_start_hours)
                host = str(rng.choice(room.hosts))
                lineup = self.plans.lineup(room, day)
                sessions.append(
                    self.play(room, host, day, start, rates.unplanned_minutes, lineup, None, False)
                )
            if rng.random() < ctx.fault_rates.test_session:
                start = local_midnight_ms(day) + ctx.minute_in(rates.test_start_hours)
                kind = int(rng.integers(len(TEST_KINDS)))
                minutes = rates.test_minutes  # a short test's own length is drawn by play
                lineup = self.plans.lineup(room, day)
                sessions.append(
                    self.play(room, room.hosts[0], day, start, minutes, lineup, None, True, kind)
                )
        return sessions

    def play(
        self, room: Room, host: str, day: dt.date, start: int, minutes: int, lineup: Lineup,
        plan_id: str | None, is_test: bool, test_kind: int = TEST_TITLED,
    ) -> Session:  # fmt: skip
        ctx, rng, rates = self.ctx, self.ctx.rng, self.ctx.rates
        platform = room.platform
        sid = self.new_id("session", platform)
        key = f"{platform}:{sid}"
        end = start + minutes * MINUTE_MS
        if is_test and test_kind == TEST_SHORT:
            end = start + int(rng.integers(*rates.short_test_s)) * 1000
        plan = SessionPlan(room, host, day, start, max(1, (end - start) // MINUTE_MS), lineup)
        outcome = None if is_test else run_session(ctx.world, plan, end, rng)
        title = (
            self.title(day, lineup)
            if not is_test or test_kind != TEST_TITLED
            else str(rng.choice(TEST_TITLES))
        )
        listed = start + rng.integers(
            -rates.listed_before_min * MINUTE_MS, max(1, (end - start) // 2), len(lineup.product)
        )
        session = Session(
            key, sid, room, host, title, start, end, lineup, listed, plan_id, is_test, {}
        )
        self.by_key[key] = session
        if outcome is not None:
            self.record_outcome(session, outcome)
            oracle = oracle_gmv(ctx.world, plan, rng)
        else:
            viewers = 0 if test_kind == TEST_EMPTY else int(rng.integers(*rates.test_viewers))
            session.stats = {
                "viewers": viewers,
                "avg_watch_s": rates.test_watch_s,
                "peak_online": min(rates.test_peak_online, viewers),
                "views": viewers + rates.test_repeat_views,
                "new_followers": 0,
                "comments": rates.test_comments,
                "likes": rates.test_likes,
            }
            self.test_orders(session)
            oracle = {}
        self.truth.add_session(session, oracle)
        if is_test:
            ctx.fault_log.add(
                "test_session", f"{platform}/{day.isoformat()}/sessions", None, sid, title
            )
        self.exports.schedule_session(session, day)
        return session

    def title(self, day: dt.date, lineup: Lineup) -> str:
        promo = PROMO_TITLES.get((day.month, day.day), "")
        categories = self.ctx.world.catalogue.category_index()[lineup.product]
        cat = CATEGORIES[int(np.bincount(categories).argmax())]
        extra = ',"限时"秒杀' if self.ctx.rng.random() < self.ctx.rates.title_flash_sale else ""
        return f"{BRAND}{promo}{CATEGORY_TITLES[cat]}{extra}"

    def record_outcome(self, session: Session, outcome: SessionOutcome) -> None:
        n = len(outcome.viewers)
        watch = (outcome.leave_ms - outcome.enter_ms) / 1000
        session.stats = {
            "viewers": n,
            "views": int(n + outcome.rejoin.sum()),
            "peak_online": peak_online(outcome.enter_ms, outcome.leave_ms),
            "avg_watch_s": round(float(watch.mean()) if n else 0.0, 1),
            "new_followers": outcome.new_followers,
            "comments": int((outcome.events["type"] == EVENT_CODE["comment"]).sum()),
            "likes": int((outcome.events["type"] == EVENT_CODE["like"]).sum()),
        }
        self.make_orders(session, outcome)
        self.events.emit(session, outcome)
        self.truth.add_propensities(session, outcome)

    def make_orders(self, session: Session, outcome: SessionOutcome) -> None:
        pool = self.ctx.world.pools[session.room.index]
        o = outcome.orders
        for k in range(len(o["created"])):
            v = int(outcome.viewers[o["viewer"][k]])
            p = int(o["product"][k])
            qty = int(o["qty"][k])
            unit = int(session.lineup.live_price_fen[p])
            paid_amount = max(unit * qty - int(session.lineup.coupon_fen[p]), 1)
            created, paid = int(o["created"][k]), int(o["paid"][k])
            self.add_line(session, pool.ids[v], v, p, qty, unit, paid_amount, created, paid)

    def test_orders(self, session: Session) -> None:
        pool, rng, rates = self.ctx.world.pools[session.room.index], self.ctx.rng, self.ctx.rates
        for _ in range(int(rng.integers(*rates.test_order_lines))):
            v = int(rng.integers(len(pool)))
            p = int(rng.integers(len(session.lineup.product)))
            unit = int(session.lineup.live_price_fen[p])
            created = session.start_ms + rates.test_order_after_s * 1000
            paid = created + rates.test_paid_after_s * 1000
            self.add_line(session, pool.ids[v], v, p, 1, unit, unit, created, paid)

    def add_line(self, session, buyer, v, p, qty, unit, paid_amount, created, paid) -> None:
        """One order line of viewer `v` (pool index) for lineup position `p`; paid -1: unpaid."""
        ctx, rates, world = self.ctx, self.ctx.rates, self.ctx.world
        platform = session.room.platform
        province, city = world.cities[int(world.pools[session.room.index].home[v])]
        timeline = [(created, "unpaid")]
        if paid >= 0:
            shipped = paid + ctx.duration(rates.shipped_after_h, HOUR_MS)
            finished = shipped + ctx.duration(rates.finished_after_days, DAY_MS)
            timeline += [(paid, "paid"), (shipped, "shipped"), (finished, "finished")]
        else:
            timeline.append((created + rates.unpaid_closed_after_min * MINUTE_MS, "closed"))
        line = {
            "order_id": self.new_id("order", platform),
            "session_id": session.session_id,
            "sku": str(world.catalogue.sku[session.lineup.product[p]]),
            "buyer_id": buyer,
            "phone": f"1{3 + v % 7}{(v * 7919 + 12345678) % 10**9:09d}",
            "province": province,
            "city": city,
            "address": f"{city}{STREETS[v % len(STREETS)]}{v % 300 + 1}号"
            f"{v % 20 + 1}栋{v % 30 + 101}室",
            "quantity": qty,
            "unit_price": unit,
            "paid": paid_amount,
            "created_ms": created,
            "paid_ms": paid,
            "timeline": timeline,
            "session_key": session.key,
        }
        if paid >= 0 and ctx.rng.random() < rates.refunded:
            self.make_refunds(line)
        session.lines.append(line)
        self.exports.schedule_line(line)

    def make_refunds(self, line: dict) -> None:
        """A paid line's refund: the whole amount (the order closes) or one or two parts."""
        ctx, rng, rates = self.ctx, self.ctx.rng, self.ctx.rates
        platform = line["session_key"].split(":")[0]
        when = line["paid_ms"] + ctx.duration(rates.refund_after_h, HOUR_MS)
        full = rng.random() < rates.refund_full
        amounts = (
            [line["paid"]]
            if full
            else [max(1, int(line["paid"] * rng.uniform(*rates.refund_part)))]
        )
        if not full and rng.random() < rates.second_refund:
            left = line["paid"] - amounts[0]
            amounts.append(max(1, int(left * rng.uniform(*rates.refund_part))))
        for i, amount in enumerate(amounts):
            at = when + i * ctx.duration(rates.second_refund_after_h, HOUR_MS)
            refund = {
                "refund_id": self.new_id("refund", platform),
                "order_id": line["order_id"],
                "amount": amount,
                "refunded_ms": at,
                "reason": str(rng.choice(REFUND_REASONS)),
                "platform": platform,
            }
            self.exports.schedule_refund(refund, local_date(at))
        if full:
            line["timeline"] = [t for t in line["timeline"] if t[0] < when] + [(when, "closed")]
