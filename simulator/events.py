"""The events room: a session's tracking events as JSON Lines, with a bot now and then and the
events' own dirt, streamed into the open events folder of the day or held for a later one."""

from __future__ import annotations

import datetime as dt
import json
import zlib
from collections import defaultdict
from typing import TYPE_CHECKING

import numpy as np

from contract.enums import EVENT_TYPES, PLATFORMS
from contract.layout import mark_success
from contract.localtime import LOCAL_OFFSET_MS, LOCAL_OFFSET_TEXT
from simulator.behaviour import COMMENTS, EVENT_CODE, MINUTE_MS, SessionOutcome
from simulator.context import DAY_MS, Context, local_date
from simulator.landing import EventParts
from simulator.world import OS_NAMES, ViewerPool

if TYPE_CHECKING:
    from simulator.sessions import Session

BOT_COMMENT = COMMENTS.index("666")  # what a bot comments
UNKNOWN_TYPE = "gift_sent"  # an event type the contract does not know
NO_CLIENT = '{"os":"android","app_version":"5.0.0"}'  # the client of an event without a viewer
BOT_CLIENT = '{"os":"android","app_version":"4.9.0"}'
EPOCH = dt.date(1970, 1, 1)


class Events:
    def __init__(self, ctx: Context):
        self.ctx = ctx
        self.today = ctx.preset.start
        self.parts: EventParts | None = None  # the open events folder of `today`
        # folder date -> platform -> (lines, their fault tags) arriving that day
        self.held: dict[dt.date, dict[str, list[tuple[list[str], list]]]] = defaultdict(
            lambda: defaultdict(list)
        )
        self.count = 0  # events written or held, second deliveries included

    def open(self, day: dt.date) -> None:
        """Open the day's event parts; what arrived late from earlier days goes in first."""
        self.today = day
        ctx = self.ctx
        self.parts = EventParts(ctx.landing, day, ctx.preset.events_per_part, ctx.fault_log)
        held = self.held.pop(day, {})
        for platform in PLATFORMS:
            for chunk, tags in held.get(platform, []):
                self.parts.write(platform, chunk, tags)

    def close(self) -> None:
        self.parts.close()
        mark_success(self.parts.folder)

    def emit(self, session: Session, outcome: SessionOutcome) -> None:
        """The session's events, dirt included, to the folder of the day each one arrives."""
        ev = outcome.events
        pool = self.ctx.world.pools[session.room.index]
        rates, rng = self.ctx.fault_rates, self.ctx.rng
        viewer_json, client = _viewers(pool, outcome.viewers)  # the last one: no viewer
        ts, typ, viewer, product, text = (
            ev["ts"],
            ev["type"].astype(np.int64),
            ev["viewer"],
            ev["product"],
            ev["text"],
        )
        if rng.random() < rates.bot_session:
            viewer_json, client, ts, typ, viewer, product, text = self._bot(
                session, viewer_json, client, ts, typ, viewer, product, text
            )
        n = len(ts)
        fault = np.full(n, "", dtype=object)
        u = rng.random((n, 4))
        oow = u[:, 0] < rates.event_out_of_window
        ts = ts.copy()
        shift = rng.integers(*self.ctx.rates.out_of_window_min, oow.sum()) * MINUTE_MS
        early = u[oow, 1] < self.ctx.rates.out_of_window_early
        ts[oow] = np.where(early, session.start_ms - shift, session.end_ms + shift)
        fault[oow] = "event_out_of_window"
        unknown = (u[:, 2] < rates.event_unknown_type) & (fault == "")
        typ = np.where(unknown, len(EVENT_TYPES), typ)
        fault[unknown] = "event_unknown_type"
        no_viewer = (u[:, 3] < rates.event_no_viewer) & (fault == "")
        viewer = np.where(no_viewer, len(viewer_json) - 1, viewer)
        fault[no_viewer] = "event_no_viewer"
        order = np.argsort(ts, kind="stable")
        ts, typ, viewer, product, text, fault = (
            a[order] for a in (ts, typ, viewer, product, text, fault)
        )
        eid = rng.integers(0, 2**63, (n, 2))
        event_ids = [f"{a:016x}{b:016x}" for a, b in eid.tolist()]
        local = (ts + LOCAL_OFFSET_MS).astype("datetime64[ms]")
        # A time without its offset: damage with its own generator (the world stays the same).
        naive = np.random.default_rng(zlib.crc32(session.key.encode())).random(n)
        naive = (naive < rates.event_naive_ts) & (fault == "")
        fault[naive] = "event_naive_ts"
        ts_text = np.char.add(np.datetime_as_string(local, unit="ms"), LOCAL_OFFSET_TEXT).tolist()
        for i in np.flatnonzero(naive):
            ts_text[i] = ts_text[i].removesuffix(LOCAL_OFFSET_TEXT)
        skus = np.array(
            [f'"{s}"' for s in self.ctx.world.catalogue.sku[session.lineup.product]] + ["null"],
            dtype=object,
        )
        texts = np.array(
            [json.dumps(c, ensure_ascii=False) for c in COMMENTS] + ["null"], dtype=object
        )
        type_names = np.array([*EVENT_TYPES, UNKNOWN_TYPE], dtype=object)
        head = f'","platform":"{session.room.platform}","session_id":"{session.session_id}"'
        head += ',"viewer_id":'
        lines = [
            f'{{"event_id":"{e}","ts":"{t}{head}{v},"type":"{ty}","sku":{s},"text":{tx},"client":{c}}}'
            for e, t, v, ty, s, tx, c in zip(
                event_ids,
                ts_text,
                viewer_json[viewer].tolist(),
                type_names[typ].tolist(),
                skus[product].tolist(),
                texts[text].tolist(),
                client[viewer].tolist(),
                strict=True,
            )
        ]
        self._deliver(session.room.platform, lines, ts, fault, event_ids)

    def _bot(self, session, viewer_json, client, ts, typ, viewer, product, text):
        """Add a bot: a viewer of its own firing hundreds of events in a few minutes."""
        rng, rates = self.ctx.rng, self.ctx.rates
        k = int(rng.integers(*rates.bot_events))
        latest = session.end_ms - session.start_ms - rates.bot_start_margin_min * MINUTE_MS
        b_start = session.start_ms + int(rng.integers(0, max(1, latest)))
        bot_pos = len(viewer_json) - 1  # the bot has its own id and client
        bot_id = f'"bot{int(rng.integers(10**8, 10**9))}"'
        viewer_json = np.concatenate([viewer_json[:-1], [bot_id, "null"]]).astype(object)
        client = np.concatenate([client[:-1], [BOT_CLIENT, client[-1]]]).astype(object)
        burst = np.sort(rng.integers(0, rates.bot_burst_min * MINUTE_MS, k))
        ts = np.concatenate([ts, b_start + burst])
        like, click, comment = (EVENT_CODE[t] for t in ("like", "product_click", "comment"))
        typ = np.concatenate([typ, rng.choice([like, click, comment], k, p=rates.bot_event_mix)])
        viewer = np.concatenate([viewer, np.full(k, bot_pos)])
        product = np.concatenate([product, rng.integers(0, len(session.lineup.product), k)])
        product[-k:][typ[-k:] != click] = -1
        text = np.concatenate([text, np.where(typ[-k:] == comment, BOT_COMMENT, -1)])
        self.ctx.fault_log.add(
            "bot_viewer", f"events/{local_date(b_start)}", None, bot_id.strip('"'), session.key
        )
        return viewer_json, client, ts, typ, viewer, product, text

    def _deliver(self, platform, lines, ts, fault, event_ids) -> None:
        """Each line to the folder of its local date, or a later one when it arrives late, and
        some twice; written now when that folder is today's, else held for its day."""
        rates, rng = self.ctx.fault_rates, self.ctx.rng
        n = len(lines)
        day_of = (ts + LOCAL_OFFSET_MS) // DAY_MS
        late = rng.random(n) < rates.event_late
        lateness = np.where(late, rng.integers(*self.ctx.rates.event_late_days, n), 0)
        dup = rng.random(n) < rates.event_duplicate
        folder_day = day_of + lateness
        for fd in np.unique(folder_day):
            sel = np.flatnonzero(folder_day == fd)
            chunk = [lines[i] for i in sel]
            tags = [(k, fault[i], event_ids[i]) for k, i in enumerate(sel) if fault[i]]
            tags += [(k, "event_late", event_ids[i]) for k, i in enumerate(sel) if lateness[i]]
            for i in sel[dup[sel]]:  # a second delivery of the same event, later in the stream
                tags.append((len(chunk), "event_duplicate", event_ids[i]))
                chunk.append(lines[i])
            target = max(EPOCH + dt.timedelta(days=int(fd)), self.today)
            if target == self.today:  # streamed out now: a day's events are never all in memory
                self.parts.write(platform, chunk, tags)
            else:
                self.held[target][platform].append((chunk, tags))
        self.count += n + int(dup.sum())


def _viewers(pool: ViewerPool, viewers: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The viewer_id and client JSON of a session's viewers (pool indexes), and one more of each
    for an event without a viewer."""
    ids = np.array(pool.ids, dtype=object)[viewers]
    viewer_json = np.array([f'"{v}"' for v in ids] + ["null"], dtype=object)
    client = np.array(
        [
            f'{{"os":"{OS_NAMES[o]}","app_version":"5.{2 + o}.{v % 9}"}}'
            for o, v in zip(pool.os[viewers], viewers, strict=True)
        ]
        + [NO_CLIENT],
        dtype=object,
    )
    return viewer_json, client
