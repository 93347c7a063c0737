"""Giving a finished step's memory back to the system.

The in-process executor runs every step of a run in one process. Arrow's memory pool
(mimalloc, which pandas' string columns use) and glibc's heap keep what a step freed for
reuse, so without this a big step's high-water mark stays the process's size for the steps
after it: on the bench day, 2.9 GiB were still held after the events' 9 million rows were
freed, 0.4 GiB after `release_unused` and 0.3 GiB after `malloc_trim` (docs/performance.md).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools

import pyarrow as pa


@functools.cache
def _malloc_trim():
    name = ctypes.util.find_library("c")
    libc = ctypes.CDLL(name) if name else None
    return getattr(libc, "malloc_trim", None)  # glibc only


def release_memory() -> None:
    """Return the free memory of Arrow's pool and of the C heap to the system. No garbage
    collection: a step's frames are freed when their last reference goes, and a full
    collection over the definitions' objects costs a tenth of a second a step."""
    pa.default_memory_pool().release_unused()
    trim = _malloc_trim()
    if trim is not None:
        trim(0)
