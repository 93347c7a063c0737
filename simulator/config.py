"""Presets and fault rates of the landing-zone simulator."""

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

    @property
    def end(self) -> dt.date:
        return self.start + dt.timedelta(days=self.days - 1)

    @property
    def dates(self) -> list[dt.date]:
        return [self.start + dt.timedelta(days=i) for i in range(self.days)]


PRESETS: dict[str, Preset] = {
    # Tests: 2 rooms per platform, three weeks around Double 11.
    "tiny": Preset("tiny", dt.date(2026, 10, 25), 21, 2, 500, 0.35, 40),
    # make demo: 3 rooms per platform, 180 days crossing 618 and Double 11 (~3M events).
    "demo": Preset("demo", dt.date(2026, 5, 25), 180, 3, 3000, 0.65, 120),
    # Benchmarks: one Double 11 day of a large operation (~10M events).
    "bench": Preset("bench", dt.date(2026, 11, 11), 1, 40, 20000, 9.8, 200, propensity_sample=20),
}
