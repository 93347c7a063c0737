"""A finished step gives its memory back (assets/memory.py): the steps of a run share one
process, so what one step held must not stay the size of the process for the next."""

from __future__ import annotations

import numpy as np
import pandas as pd

from assets.memory import release_memory


def _rss_mib() -> float:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * 4096 / 2**20


def test_release_memory_returns_what_freed_string_columns_held():
    release_memory()
    before = _rss_mib()
    parts = [
        pd.DataFrame({"key": pd.Series(np.arange(2_000_000).astype(str), dtype="str")})
        for _ in range(8)
    ]
    frame = pd.concat(parts, ignore_index=True)
    del parts
    assert _rss_mib() - before > 200  # 16 million strings held
    del frame
    freed = _rss_mib()  # Arrow's pool keeps what the frame held, for reuse
    release_memory()
    assert freed - _rss_mib() > 200
    assert _rss_mib() - before < 100
