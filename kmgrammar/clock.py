"""The clock that compile time limits run on: monotonic wall time less numba's one-off costs.

The first compile in a process imports numba and loads every kernel it calls from numba's disk
cache (about a second); without a usable cache (a fresh install, a new kmgrammar version) it
JIT-compiles them (20-30 s on a slow machine). Those costs are paid once per process or per
install, not per constraint, so they must not spend a compile's `time_limit`: a fresh install's
first compile would otherwise fail with a time-limit error it would never hit again.
"""

from __future__ import annotations

import threading
import time
from contextlib import contextmanager

_excluded = 0.0  # finished one-off holds
_holding: dict = {}  # hold id -> start of a hold in progress (numba's lock, a one_off block)
_lock = threading.Lock()


def now() -> float:
    """Seconds on the compile clock; only differences are meaningful. A hold in progress counts
    as excluded already: a compile in another thread waits on numba's lock meanwhile."""
    t = time.monotonic()
    with _lock:
        return t - _excluded - sum(t - s for s in _holding.values())


def excluded_seconds() -> float:
    """Seconds this process has spent importing numba and compiling or loading kernels."""
    with _lock:
        t = time.monotonic()
        return _excluded + sum(t - s for s in _holding.values())


def _begin(key) -> None:  # with _lock held
    _holding[key] = time.monotonic()


def _end(key) -> None:  # with _lock held
    global _excluded
    _excluded += time.monotonic() - _holding.pop(key)


@contextmanager
def one_off():
    """Leave the time spent in the block out of the compile clock."""
    key = object()
    with _lock:
        _begin(key)
    try:
        yield
    finally:
        with _lock:
            _end(key)


def watch_numba() -> None:
    """From now on, leave out the time numba spends compiling kernels or loading them from its
    cache (`kernels` calls this once on import: no kernel can be compiled before that)."""
    from numba.core import event

    class _Timer(event.Listener):
        # numba holds its (reentrant) compiler lock for a kernel's first call, nested when a
        # kernel compiles its callees, and serialises threads on it: time the outermost hold
        depth = 0

        def on_start(self, ev) -> None:
            with _lock:
                self.depth += 1
                if self.depth == 1:
                    _begin(self)

        def on_end(self, ev) -> None:
            with _lock:
                self.depth -= 1
                if self.depth == 0:
                    _end(self)

    event.register("numba:compiler_lock", _Timer())
