"""Presets, fault rates and world rates of the landing-zone simulator."""

from __future__ import annotations

import dataclasses
import datetime as dt
from dataclasses import dataclass, field


@dataclass(frozen=True)
class FaultRates:
    """How often each kind of dirt of the contract is injected (a probability per unit)."""

    duplicate_row: float = 0.003  # per platform-file row: the same row exported twice
    changed_reexport: float = 0.004  # per session: re-exported next day with revised values
    malformed_row: float = 0.002  # per row: wrong field count, broken JSON, absent jd key
    bad_time: float = 0.001  # per row: unparseable time
    bad_amount: float = 0.001  # per money row: unparseable amount
    negative_value: float = 0.001  # per lineup/order row: negative quantity or price
    unknown_sku: float = 0.001  # per lineup/order row: SKU missing from the catalogue
    orphan_order: float = 0.0005  # per order row: session in no export
    partial_orders: float = 0.002  # per order line: held back from its creation folder
    test_session: float = 0.01  # per room-day: a test session (title, < 300 s or 0 viewers)
    extra_column: float = 0.004  # per platform file: an extra column nobody asked for
    # Per platform file: a required column renamed. It fails its platform-date by contract, so
    # the presets keep it off and the tests switch it on where they want that failure.
    missing_column: float = 0.0
    late_folder: float = 0.003  # per platform-date: lands up to 3 days late
    event_duplicate: float = 0.005
    event_late: float = 0.01  # arrives in the next or the one after folder
    event_out_of_window: float = 0.002
    event_unknown_type: float = 0.001
    event_no_viewer: float = 0.001
    bot_session: float = 0.03  # per session: a bot viewer firing hundreds of events a minute
    # Damage that real exports carry (landing-zone.md, "Damage that real exports carry"), put
    # in by the simulator's own generator per file, so the rest of the world stays the same.
    spreadsheet_wrapper: float = 0.002  # per row: its key as ="…", '… or after a tab
    unicode_variant: float = 0.002  # per row: full-width digits in an amount (jd: in its key)
    control_char: float = 0.001  # per row with free text: a NUL inside it
    line_separator: float = 0.002  # per jd row with free text: a raw U+2028 inside it
    mangled_id: float = 0.0005  # per order row: its id in a spreadsheet's scientific notation
    implausible_time: float = 0.0005  # per row: a time in 1999
    key_conflict: float = 0.001  # per row: the same key again on the next line, other values
    broken_quote: float = 0.02  # per CSV orders file: one unbalanced quote in an address
    repeated_header: float = 0.02  # per CSV file: the header again inside the file
    bom_line: float = 0.02  # per jd file: a byte-order mark before one line
    event_naive_ts: float = 0.0005  # per event: its ts without an offset

    @classmethod
    def none(cls) -> FaultRates:
        return cls(**{f.name: 0.0 for f in dataclasses.fields(cls)})

    def with_overrides(self, overrides: dict[str, float]) -> FaultRates:
        unknown = set(overrides) - {f.name for f in dataclasses.fields(self)}
        if unknown:
            raise ValueError(f"unknown fault kind(s): {sorted(unknown)}")
        return dataclasses.replace(self, **overrides)


@dataclass(frozen=True)
class WorldRates:
    """How the operators, the platforms and the buyers behave around a session (what a session
    itself does is `behaviour.py`'s model). Each field says its unit; a pair (low, high) is
    a range drawn uniformly, integers from low up to but not including high. How often dirt is
    injected is `FaultRates`; the shape of some of that dirt (how late, how far) is here."""

    # The plan
    plan_lead_days: int = 30  # days: a plan's first version is written this long before its day
    slot_unplanned: float = 0.06  # per room-slot-day: no session planned in the slot that week
    plan_revised: float = 0.1  # per plan: an operator changes host or prices a few days out
    plan_revised_days: tuple[int, int] = (1, 6)  # days before the session it is revised
    revised_new_host: float = 0.5  # per revision: the host changes (a price always does)
    revised_price: float = 0.95  # a revised product's live price, times the old one
    plan_cancelled: float = 0.03  # per plan: cancelled
    plan_cancelled_days: tuple[int, int] = (1, 7)  # days before the session it is cancelled
    reservations_per_viewer: float = 0.25  # final reservations per expected viewer
    reservation_sigma: float = 0.2  # log-normal noise of a plan's final reservations (log scale)
    reservation_shortfall: float = 0.12  # per day ahead beyond the first: share not yet made
    reservation_noise: tuple[float, float] = (0.95, 1.05)  # factor on each export's count
    plan_exported_at: tuple[int, int] = (21, 5)  # local (hour, minute) the plan is exported
    catalogue_lead_days: int = 14  # days: a product is in the catalogue this long before launch
    # Lineups and prices
    lineup_size: tuple[int, int] = (8, 21)  # products per lineup (fewer if fewer launched)
    discount: tuple[float, float] = (0.03, 0.25)  # share off the list price, before promotions
    max_discount: float = 0.6  # share off the list price, promotions included
    min_live_price_fen: int = 900  # fen: no live price below
    coupon: float = 0.3  # per lineup product: it has a coupon
    coupon_faces_fen: tuple[int, ...] = (2000, 5000, 10000, 20000, 30000)  # fen, drawn uniformly
    coupon_max_share: float = 0.15  # of the live price: a larger coupon is dropped
    stock: tuple[int, int] = (50, 2000)  # units per lineup product
    # Sessions
    start_jitter_min: float = 6.0  # minutes (standard deviation) a start is off its plan
    length_factor: tuple[float, float] = (0.9, 1.1)  # realised minutes per planned minute
    unplanned_session: float = 0.02  # per room-day: an unplanned session
    unplanned_start_hours: tuple[int, int] = (9, 22)  # local hours it starts in
    unplanned_minutes: int = 90  # minutes
    listed_before_min: int = 10  # minutes before the start a product can be listed (up to mid)
    title_flash_sale: float = 0.1  # per title: '"限时"秒杀' at its end
    revised_views: float = 1.03  # a re-export's views, times the first export's (plus one)
    revised_likes: float = 1.05  # a re-export's likes, times the first export's (plus one)
    # Test sessions (how often: FaultRates.test_session)
    test_start_hours: tuple[int, int] = (8, 9)  # local hours it starts in
    test_minutes: int = 30  # minutes (a short test: short_test_s)
    short_test_s: tuple[int, int] = (60, 280)  # seconds a short test lasts
    test_viewers: tuple[int, int] = (3, 30)  # viewers (one test kind has none)
    test_watch_s: float = 60.0  # seconds: its average watch time
    test_peak_online: int = 3  # viewers: its peak online (at most its viewers)
    test_repeat_views: int = 2  # views beyond its viewers
    test_comments: int = 1  # comments
    test_likes: int = 2  # likes
    test_order_lines: tuple[int, int] = (0, 3)  # order lines a test session gets
    test_order_after_s: int = 30  # seconds after the start a test order is created
    test_paid_after_s: int = 20  # seconds after its creation a test order is paid
    # Orders and refunds
    shipped_after_h: tuple[int, int] = (12, 48)  # hours from payment to shipping
    finished_after_days: tuple[int, int] = (3, 7)  # days from shipping to finished
    unpaid_closed_after_min: int = 30  # minutes: an unpaid order closes
    refunded: float = 0.07  # per paid order line: refunded
    refund_after_h: tuple[int, int] = (6, 240)  # hours from payment to the (first) refund
    refund_full: float = 0.7  # per refunded line: the whole amount (the order closes)
    refund_part: tuple[float, float] = (0.1, 0.5)  # share of what is left that a part refunds
    second_refund: float = 0.2  # per part-refunded line: a second part refund
    second_refund_after_h: tuple[int, int] = (12, 72)  # hours after the first refund
    # Events (how often a bot comes: FaultRates.bot_session)
    bot_events: tuple[int, int] = (300, 900)  # events a bot fires
    bot_burst_min: int = 3  # minutes the bot's events span
    bot_start_margin_min: int = 5  # minutes before the end the bot starts at the latest
    bot_event_mix: tuple[float, float, float] = (0.6, 0.3, 0.1)  # likes, product clicks, comments
    out_of_window_min: tuple[int, int] = (15, 90)  # minutes an out-of-window event is off
    out_of_window_early: float = 0.5  # per out-of-window event: before the start (else after)
    event_late_days: tuple[int, int] = (1, 3)  # days (folders) a late event is late
    # Landing
    landed_after_min: tuple[int, int] = (30, 110)  # minutes after local midnight a day lands
    late_folder_days: tuple[int, int] = (1, 4)  # days a late platform folder is late
    settled_h: int = 3  # hours after the last day's midnight: the default 'now' (--as-of)


@dataclass(frozen=True)
class Preset:
    name: str
    start: dt.date
    days: int
    rooms_per_platform: int
    fans_per_room: int  # the room's viewer pool at the start
    viewer_scale: float  # multiplies every session's expected viewers
    n_products: int
    faults: FaultRates = field(default_factory=FaultRates)
    propensity_sample: int = 60  # interested viewers per session whose true propensities are kept
    events_per_part: int = 1_000_000
    world_rates: WorldRates = field(default_factory=WorldRates)

    @property
    def end(self) -> dt.date:
        return self.start + dt.timedelta(days=self.days - 1)

    @property
    def dates(self) -> list[dt.date]:
        return [self.start + dt.timedelta(days=i) for i in range(self.days)]


PRESETS: dict[str, Preset] = {
    # Tests: 2 rooms per platform, three weeks around Double 11.
    "tiny": Preset("tiny", dt.date(2026, 10, 25), 21, 2, 500, 0.35, 40),
    # make demo: 3 rooms per platform, 180 days crossing 618 and Double 11 (~2M events).
    "demo": Preset("demo", dt.date(2026, 5, 25), 180, 3, 2000, 0.45, 120),
    # Benchmarks: one Double 11 day of a large operation (~10M events).
    "bench": Preset("bench", dt.date(2026, 11, 11), 1, 40, 20000, 9.8, 200, propensity_sample=20),
}
