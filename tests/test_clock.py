"""The compile clock leaves numba's one-off costs (import, kernel JIT or cache load) out of time limits."""

import time

import numba
import pytest

from kmgrammar import CompileLimitError, clock, kernels  # noqa: F401  (importing kernels starts the watch)
from kmgrammar.automaton import Limits, _Budget


def test_a_kernels_first_call_is_left_out_of_the_compile_clock():
    @numba.njit  # not cached: its first call always compiles
    def twice(x):
        return 2 * x

    excluded, wall, on_clock = clock.excluded_seconds(), time.monotonic(), clock.now()
    assert twice(21) == 42
    compiling = clock.excluded_seconds() - excluded
    assert compiling > 0
    assert clock.now() - on_clock < time.monotonic() - wall - 0.9 * compiling

    excluded = clock.excluded_seconds()
    assert twice(4) == 8  # compiled: nothing more to leave out
    assert clock.excluded_seconds() == excluded


def test_one_off_blocks_are_left_out_even_when_they_raise():
    excluded = clock.excluded_seconds()
    try:
        with clock.one_off():
            time.sleep(0.05)
            raise KeyError("x")
    except KeyError:
        pass
    assert clock.excluded_seconds() - excluded >= 0.05


def test_time_limits_run_on_the_compile_clock():
    budget = _Budget(Limits(time_limit=0.1))
    with clock.one_off():  # e.g. numba compiling a kernel for the first time
        time.sleep(0.2)
    budget.check_time()
    assert 0 < budget.left().time_limit <= 0.1
    time.sleep(0.12)
    with pytest.raises(CompileLimitError, match="time_limit=0.1s"):
        budget.check_time()


def test_a_hold_in_progress_is_already_left_out():
    """While numba holds its lock in one thread (JIT), a compile in another thread waits: its
    clock must not run meanwhile, nor jump back when the hold ends."""
    import threading

    inside, release = threading.Event(), threading.Event()

    def hold():
        with clock.one_off():
            inside.set()
            release.wait(10)

    t = threading.Thread(target=hold)
    t.start()
    inside.wait(10)
    on_clock = clock.now()
    time.sleep(0.2)
    assert clock.now() - on_clock < 0.1
    release.set()
    t.join()
    assert clock.now() - on_clock < 0.1
