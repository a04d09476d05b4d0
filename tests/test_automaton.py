"""automaton.py internals: partition refinement."""

import random

import numpy as np

from kmgrammar.automaton import refine_blocks
from kmgrammar.kernels import refine_partition


def _canon(p) -> list:
    ids: dict = {}
    return [ids.setdefault(x if isinstance(x, tuple) else int(x), len(ids)) for x in p]


def _moore(t, part, rounds: int) -> list:
    """Reference: `rounds` plain Moore rounds (a state's block and its successors' blocks)."""
    p = _canon(part)
    for _ in range(rounds):
        q = _canon([(p[i],) + tuple(p[j] for j in t[i]) for i in range(len(p))])
        if max(q) == max(p):  # stable from here on
            return q
        p = q
    return p


def _chains(rnd, longest: int = 40):
    # counted chains (a string of at most N characters) and copies of one chain (inlined rules)
    # need many rounds; the rest of the table is random
    n_chain, copies, k = rnd.randint(1, longest), rnd.randint(1, 4), rnd.randint(1, 4)
    n = n_chain * copies + rnd.randint(0, 10)
    t = np.array([[rnd.randrange(n + 1) for _ in range(k)] for _ in range(n + 1)], np.int64)
    for c in range(copies):
        for i in range(n_chain - 1):
            t[c * n_chain + i, 0] = c * n_chain + i + 1
    t[n] = n  # the sink
    part = np.array([rnd.random() < 0.2 for _ in range(n)] + [2], np.int64)
    return t, part


def test_refine_partition_is_moore_round_by_round():
    rnd = random.Random(3)
    for trial in range(150):
        t, part = _chains(rnd)
        for rounds in (1, 2, 3, 5, 9, 30, len(part)):
            got, ran = refine_partition(t, part.copy(), rounds)
            assert _canon(got) == _moore(t, part, rounds), (trial, rounds)
            assert ran <= rounds


def test_refine_blocks_in_batches_is_plain_moore():
    # bounded rounds run in batches of 256 kernel rounds; fixpoints use Hopcroft
    rnd = random.Random(7)
    for trial in range(12):
        t, part = _chains(rnd, 400)
        for rounds in (1, 3, 9, 30, 256, 257, 300, len(part) - 1, len(part)):
            assert _canon(refine_blocks(t, part.copy(), rounds)) == _moore(t, part, rounds), (trial, rounds)


def test_products_accept_exactly_the_combined_languages():
    from kmgrammar.automaton import ByteDFA, intersect, minimize, union

    rnd = random.Random(11)

    def rand_dfa():
        n = rnd.randint(1, 12)
        classes = np.array([rnd.randrange(3) for _ in range(256)], np.uint8)
        classes[ord("a")], classes[ord("b")], classes[ord("c")] = 0, 1, 2
        t = np.array([[rnd.randrange(-1, n) for _ in range(3)] for _ in range(n)], np.int32)
        return minimize(ByteDFA(t, classes, np.array([rnd.random() < 0.4 for _ in range(n)])))

    for _ in range(100):
        a, b = rand_dfa(), rand_dfa()
        both, either = intersect(a, b), union(a, b)
        for _ in range(50):
            s = "".join(rnd.choice("abc") for _ in range(rnd.randint(0, 8))).encode()
            assert both.matches(s) == (a.matches(s) and b.matches(s))
            assert either.matches(s) == (a.matches(s) or b.matches(s))
