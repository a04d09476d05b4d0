"""automaton.py internals: partition refinement."""

import random

import numpy as np

from kmgrammar.automaton import refine_blocks
from kmgrammar.kernels import refine_partition


def _canon(p) -> list:
    ids: dict = {}
    return [ids.setdefault(int(x), len(ids)) for x in p]


def test_bounded_refinement_on_the_quotient_is_plain_moore():
    # refine_blocks switches to the Hopcroft quotient after a few rounds; counted chains (a
    # string of at most N characters) and copies of one chain (inlined rules) need many rounds
    rnd = random.Random(7)
    for trial in range(60):
        n_chain, copies, k = rnd.randint(5, 40), rnd.randint(1, 4), rnd.randint(1, 4)
        n = n_chain * copies + rnd.randint(0, 10)
        t = np.array([[rnd.randrange(n + 1) for _ in range(k)] for _ in range(n + 1)], np.int64)
        for c in range(copies):  # chain i -> i + 1 on column 0, exits into the random part
            base = c * n_chain
            for i in range(n_chain - 1):
                t[base + i, 0] = base + i + 1
        t[n] = n  # the sink
        part = np.array([rnd.random() < 0.2 for _ in range(n)] + [2], np.int64)
        for rounds in (1, 3, 8, 9, 12, 30, n):
            want, _ = refine_partition(t, part.copy(), rounds)
            assert _canon(refine_blocks(t, part.copy(), rounds)) == _canon(want), (trial, rounds)
