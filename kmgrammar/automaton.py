"""IR -> byte automata: Thompson NFA over bytes, subset construction, minimisation, trimming.

A `ByteDFA` is the exact language of a constraint over UTF-8 bytes. Bytes are grouped into classes
(bytes no transition distinguishes), so a table is `n_states x n_classes` instead of x 256.
Every state of a built DFA is live: it can still reach acceptance. That is what makes token
masks exact: a byte string is a viable prefix iff walking it never falls off the table.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from functools import lru_cache
from itertools import repeat

import numpy as np

from . import clock
from . import grammar as g
from .errors import CompileError, CompileLimitError

DEAD = -1

# Defaults for `Limits`; measured: the 568-way choice list makes ~1.9k states, the email regex ~300.
DEFAULT_MAX_STATES = 200_000
DEFAULT_TIME_LIMIT = 30.0


@dataclass(frozen=True)
class Limits:
    """Bounds on compilation. Exceeding one raises `CompileLimitError` naming it.

    max_states: DFA states (default 200,000; each costs one vocabulary-trie walk when token-compiling).
    time_limit: seconds of wall time for one compile (default 30).
    """

    max_states: int = DEFAULT_MAX_STATES
    time_limit: float = DEFAULT_TIME_LIMIT


class _Budget:
    def __init__(self, limits: Limits):
        self.limits = limits
        self.deadline = clock.now() + limits.time_limit

    def check_time(self) -> None:
        if clock.now() > self.deadline:
            raise CompileLimitError.time(self.limits.time_limit)

    def nfa_cap(self) -> int:
        """NFA states past which building stops with the `max_states` error (an NFA has several
        states per DFA state it leads to; a bigger one would not determinise within the limit)."""
        return 8 * self.limits.max_states + 100_000

    def left(self) -> Limits:
        """The limits for a next phase: the same state cap, what remains of the time."""
        return Limits(self.limits.max_states, max(0.0, self.deadline - clock.now()))

    def work_bound(self, rate: float) -> int:
        """Units of kernel work allowed in the time left, at `rate` units per second."""
        return int(max(0.0, self.deadline - clock.now()) * rate) + 1

    def check_states(self, n: int) -> None:
        if n > self.limits.max_states:
            raise CompileLimitError.states(self.limits.max_states)


@dataclass(frozen=True, eq=False)
class ByteDFA:
    """A trimmed deterministic automaton over bytes. State 0 is the start state.

    trans[state, classes[byte]] is the next state, or -1 when the byte leaves the language.
    """

    trans: np.ndarray  # int32 [n_states, n_classes]
    classes: np.ndarray  # uint8 [256]
    accept: np.ndarray  # bool [n_states]
    _table: list = field(default=None, repr=False, compare=False)
    _cls: list = field(default=None, repr=False, compare=False)

    def _class_list(self) -> list:
        if self._cls is None:
            object.__setattr__(self, "_cls", self.classes.tolist())  # Python ints: no uint8 wrap
        return self._cls

    @property
    def n_states(self) -> int:
        return int(self.trans.shape[0])

    def table(self) -> list:
        """The table as one flat Python list of *offsets*: entry `off + classes[b]` is the next
        state's offset (state * n_classes) or -1. One list of ints, not a list per state, so the
        garbage collector has a single object to look at, and stepping needs no multiply."""
        if self._table is None:
            nc = self.trans.shape[1]
            flat = np.where(self.trans >= 0, self.trans.astype(np.int64) * nc, -1).ravel().tolist()
            object.__setattr__(self, "_table", flat)
        return self._table

    def step(self, state: int, data: bytes) -> int:
        """The state after `data` from `state`, or -1 if `data` leaves the language."""
        table, cls, nc = self.table(), self._class_list(), self.trans.shape[1]
        off = state * nc
        for b in data:
            off = table[off + cls[b]]
            if off < 0:
                return DEAD
        return off // nc

    def matches(self, data: bytes) -> bool:
        if self.n_states == 0:
            return False
        s = self.step(0, data)
        return s >= 0 and bool(self.accept[s])

    def is_empty(self) -> bool:
        return self.n_states == 0


EMPTY_DFA_CLASSES = np.zeros(256, np.uint8)


def _empty_dfa() -> ByteDFA:
    return ByteDFA(np.zeros((0, 1), np.int32), EMPTY_DFA_CLASSES, np.zeros(0, bool))


# ---------------------------------------------------------------------------------------------
# UTF-8 encoding of code point ranges


def _encode(cp: int) -> bytes:
    return chr(cp).encode("utf-8", "surrogatepass")


def utf8_sequences(lo: int, hi: int) -> list:
    """Split code points lo..hi (surrogates excluded) into lists of byte ranges, one per byte."""
    out = []
    stack = [(lo, hi)]
    while stack:
        lo, hi = stack.pop()
        if lo > hi:
            continue
        if lo <= 0xDFFF and hi >= 0xD800:
            stack.append((lo, 0xD7FF))
            stack.append((0xE000, hi))
            continue
        split = False
        for boundary in (0x7F, 0x7FF, 0xFFFF):
            if lo <= boundary < hi:
                stack.append((lo, boundary))
                stack.append((boundary + 1, hi))
                split = True
                break
        if split:
            continue
        if hi <= 0x7F:
            out.append([(lo, hi)])
            continue
        for i in range(1, 4):
            m = (1 << (6 * i)) - 1
            if lo & ~m != hi & ~m:
                if lo & m != 0:
                    stack.append((lo, lo | m))
                    stack.append(((lo | m) + 1, hi))
                    split = True
                    break
                if hi & m != m:
                    stack.append((lo, (hi & ~m) - 1))
                    stack.append((hi & ~m, hi))
                    split = True
                    break
        if split:
            continue
        a, b = _encode(lo), _encode(hi)
        out.append(list(zip(a, b)))
    return out


# ---------------------------------------------------------------------------------------------
# Thompson construction


_COMPOUND = (g.Seq, g.Alt, g.Repeat, g.Graph)

# Literal alternatives beyond this many are built as a minimal DFA first (then embedded).
_BIG_ALT = 256


class _NFA:
    __slots__ = ("eps", "edges", "blocks", "budget")

    def __init__(self, budget: _Budget):
        self.eps: list[list[int]] = []
        self.edges: list[list[tuple]] = []  # per state: (lo, hi, target)
        self.blocks: list = []  # embedded DFAs' byte edges as arrays: (base, src, lo, hi, dst), local ids
        self.budget = budget

    def state(self) -> int:
        self.eps.append([])
        self.edges.append([])
        n = len(self.eps)
        if n & 0x1FFF == 0:  # every 8k states: NFA building is the first place a huge repeat hurts
            self.budget.check_time()
            if n > self.budget.nfa_cap():
                self.budget.check_states(n // 8)
        return n - 1

    def states(self, k: int, sealed: bool = False) -> int:
        """k new states (an embedded automaton's); returns the first. `sealed`: states that never
        get edges of their own (a DFA block's: its edges are the block's arrays), all sharing one
        empty tuple instead of two fresh lists each (a 57k-state string DFA embedded in a rule
        made 115k lists, and their garbage-collector passes)."""
        base = len(self.eps)
        if sealed:
            self.eps.extend(repeat((), k))
            self.edges.extend(repeat((), k))
        else:
            self.eps.extend([] for _ in range(k))
            self.edges.extend([] for _ in range(k))
        n = base + k
        if n >> 13 != base >> 13:  # passed a multiple of 8k states: as in `state`
            self.budget.check_time()
            if n > self.budget.nfa_cap():
                self.budget.check_states(n // 8)
        return base

    def byte_edges(self) -> list:
        """Every byte edge (lo, hi, target), as lists: the states' own, then one per embedded DFA."""
        return self.edges + [list(zip(lo.tolist(), hi.tolist(), (dst + base).tolist()))
                             for base, _src, lo, hi, dst in self.blocks]

    def build(self, node) -> tuple:
        """Add `node`; return its (start, end) fragment."""
        kind = type(node)
        if kind is g.Bytes:
            s = cur = self.state()
            for b in node.data:
                nxt = self.state()
                self.edges[cur].append((b, b, nxt))
                cur = nxt
            return s, cur
        if kind is g.ByteSet:
            s, e = self.state(), self.state()
            for lo, hi in node.ranges:
                self.edges[s].append((lo, hi, e))
            return s, e
        if kind is g.CharSet:
            return self._charset(node.ranges)
        if kind is g.Seq:
            s = cur = self.state()
            for item in node.items:
                a, b = self.build(item)
                self.eps[cur].append(a)
                cur = b
            return s, cur
        if kind is g.Alt:
            s, e = self.state(), self.state()
            items = node.items
            seqs = [item.items for item in items if type(item) is g.Seq]
            if len(seqs) > 1:  # Lark expands every `x?` into two alternatives: 2^k sequences
                items = [item for item in items if type(item) is not g.Seq]
                a, b = self._sequences(seqs)
                self.eps[s].append(a)
                self.eps[b].append(e)
            literals = [item.data for item in items if type(item) is g.Bytes]
            if len(literals) > 1:  # big enums, keyword lists: shared prefixes, no epsilon fan-out
                items = [item for item in items if type(item) is not g.Bytes]
                a, b = (self._embed(literals_dfa(literals, self.budget)) if len(literals) > _BIG_ALT
                        else self._trie(literals))
                self.eps[s].append(a)
                self.eps[b].append(e)
            for item in items:
                a, b = self.build(item)
                self.eps[s].append(a)
                self.eps[b].append(e)
            return s, e
        if kind is g.Repeat:
            return self._repeat(node)
        if kind is g.Dfa:
            return self._embed(node.dfa)
        if kind is g.Graph:
            s, e = self.state(), self.state()
            ids = [self.state() for _ in range(node.n)]
            self.eps[s].append(ids[node.start])
            for f in node.finals:
                self.eps[ids[f]].append(e)
            for u, v, lab in node.edges:
                if lab is None:
                    self.eps[ids[u]].append(ids[v])
                    continue
                a, b = self.build(lab)
                self.eps[ids[u]].append(a)
                self.eps[b].append(ids[v])
            return s, e
        raise TypeError(f"not a grammar node: {node!r}")

    def _sequences(self, seqs: list) -> tuple:
        """Alternative sequences of items as a fragment (start, end) shaped like the minimal
        acyclic automaton over items (shared prefixes and suffixes), each item built once per
        edge of that automaton instead of once per sequence."""
        # Leaves compare by value (a rule reference, a terminal's DFA node); compound items by
        # identity (hashing a big subtree per use would cost more than it shares).
        ids: dict = {}
        sym: list = []
        words = set()
        for items in seqs:
            word = []
            for item in items:
                key = id(item) if type(item) in _COMPOUND else item
                k = ids.get(key)
                if k is None:
                    k = ids[key] = len(sym)
                    sym.append(item)
                word.append(k)
            words.add(tuple(word))
        # Trie, then hash-consing of equivalent nodes from the leaves up.
        children: list = [{}]
        final = [False]
        for w in sorted(words):
            cur = 0
            for k in w:
                nxt = children[cur].get(k)
                if nxt is None:
                    nxt = children[cur][k] = len(children)
                    children.append({})
                    final.append(False)
                cur = nxt
            final[cur] = True
        canon: dict = {}
        rep = [0] * len(children)
        for v in range(len(children) - 1, -1, -1):  # children come after their parent
            sig = (final[v], tuple(sorted((k, rep[c]) for k, c in children[v].items())))
            rep[v] = canon.setdefault(sig, v)
        state = {}
        for v in sorted(set(rep)):
            state[v] = self.state()
        end = self.state()
        for v in state:
            if final[v]:
                self.eps[state[v]].append(end)
            for k, c in sorted(children[v].items()):
                a, b = self.build(sym[k])
                self.eps[state[v]].append(a)
                self.eps[b].append(state[rep[c]])
        return state[0], end

    def _trie(self, literals: list) -> tuple:
        """Literal alternatives as a trie fragment (start, end)."""
        root, end = self.state(), self.state()
        children: dict = {}
        for data in literals:
            cur = root
            for b in data:
                nxt = children.get((cur, b))
                if nxt is None:
                    nxt = children[(cur, b)] = self.state()
                    self.edges[cur].append((b, b, nxt))
                cur = nxt
            if end not in self.eps[cur]:
                self.eps[cur].append(end)
        return root, end

    def _charset(self, ranges) -> tuple:
        # The UTF-8 byte trie of a class is computed once and stamped out for every copy.
        n_local, edges = _charset_template(ranges)
        base = self.states(n_local)
        for a, lo, hi, b in edges:
            self.edges[base + a].append((lo, hi, base + b))
        return base, base + 1

    def _repeat(self, node: g.Repeat) -> tuple:
        s = cur = self.state()
        for _ in range(node.min):
            a, b = self.build(node.item)
            self.eps[cur].append(a)
            cur = b
        if node.max is None:
            a, b = self.build(node.item)
            loop = self.state()
            self.eps[cur].append(loop)
            self.eps[loop].append(a)
            self.eps[b].append(loop)
            return s, loop
        e = self.state()
        self.eps[cur].append(e)
        for _ in range(node.max - node.min):
            a, b = self.build(node.item)
            self.eps[cur].append(a)
            self.eps[b].append(e)
            cur = b
        return s, e

    def _embed(self, dfa: ByteDFA) -> tuple:
        s, e = self.state(), self.state()
        if dfa.n_states == 0:
            return s, e  # no path from s to e: the empty language
        src, lo, hi, dst, finals = _dfa_edges(dfa)
        base = self.states(dfa.n_states, sealed=True)
        self.blocks.append((base, src, lo, hi, dst))
        for q in finals:
            self.eps[base + q] = [e]
        self.eps[s].append(base)
        return s, e


_EDGES: dict = {}


def _dfa_edges(dfa: ByteDFA) -> tuple:
    """A DFA's byte edges over byte spans as arrays (src, lo, hi, dst) and its accepting states;
    computed once per DFA (a terminal is embedded wherever it is used)."""
    got = _EDGES.get(id(dfa))
    if got is not None and got[0] is dfa:
        return got[1]
    n_sp, lo, hi = _class_spans(dfa.classes)
    q, c = np.nonzero(dfa.trans >= 0)
    t = dfa.trans[q, c].astype(np.int64)
    k = n_sp[c]  # one edge per span of the class
    first = np.repeat(np.cumsum(n_sp)[c] - k, k) + np.arange(int(k.sum())) - np.repeat(np.cumsum(k) - k, k)
    got = (np.repeat(q, k), lo[first], hi[first], np.repeat(t, k), np.flatnonzero(dfa.accept).tolist())
    if len(_EDGES) > 4096:
        _EDGES.clear()
    _EDGES[id(dfa)] = (dfa, got)
    return got


@lru_cache(maxsize=512)
def _charset_template(ranges: tuple) -> tuple:
    """A class's UTF-8 automaton as (state count, edges); local state 0 starts, 1 ends."""
    edges, trie, n = [], {}, 2
    for lo, hi in ranges:
        for sq in utf8_sequences(lo, hi):
            cur = 0
            for k, (blo, bhi) in enumerate(sq):
                if k == len(sq) - 1:
                    edges.append((cur, blo, bhi, 1))
                else:
                    key = (cur, blo, bhi)
                    nxt = trie.get(key)
                    if nxt is None:
                        nxt = trie[key] = n
                        n += 1
                        edges.append((cur, blo, bhi, nxt))
                    cur = nxt
    return n, tuple(edges)


def _class_spans(classes: np.ndarray) -> tuple:
    """The bytes of each class as maximal contiguous spans: (spans per class, lo, hi), the spans
    listed class by class, ascending within a class."""
    classes = classes.astype(np.int64)
    cut = np.flatnonzero(classes[1:] != classes[:-1]) + 1
    lo = np.concatenate(([0], cut))
    hi = np.concatenate((cut - 1, [255]))
    order = np.argsort(classes[lo], kind="stable")
    return np.bincount(classes[lo], minlength=int(classes.max()) + 1), lo[order], hi[order]


# Work units (NFA states visited, class cells bucketed) per second assumed for
# `kernels.subset_construction`: its work bound is the time left times this. A kernel that runs
# out of work before the deadline is rerun with a 4x bound (the machine is faster than assumed).
_SUBSET_RATE = 1e8


def subsets(nfa: _NFA, calls: dict, start: int, end: int, n_sym: int, budget: _Budget) -> tuple:
    """Subset construction of a Thompson NFA (byte edges as lists and embedded blocks; `calls`:
    state -> call edges (symbol, target)) in one kernel. DFA states are the epsilon closures kept
    to the states that matter (with byte or call edges, or `end`): subsets that differ only in
    pure epsilon states are the same DFA state; state 0 is the start.

    Returns (classes, trans [n, n_classes], accept, call triples (state, symbol, target))."""
    from itertools import chain

    from .kernels import nfa_byte_edges, subset_construction

    eps = nfa.eps
    n = len(eps)
    own = np.fromiter(chain.from_iterable(chain.from_iterable(nfa.edges)), np.int64)
    blocks = [(b_src + base, b_lo, b_hi, b_dst + base) for base, b_src, b_lo, b_hi, b_dst in nfa.blocks]
    blocks = [np.concatenate(x) for x in zip(*blocks)] if blocks else [np.zeros(0, np.int64)] * 4
    e_ptr, lo, hi, dst, classes, n_cls = nfa_byte_edges(np.fromiter(map(len, nfa.edges), np.int64, n), own, *blocks)
    c_cnt = np.zeros(n, np.int64)
    c_cnt[list(calls)] = [len(x) for x in calls.values()]
    cflat = np.array([x for _, xs in sorted(calls.items()) for x in xs], np.int64).reshape(-1, 2)

    def ptr(cnt):
        out = np.zeros(n + 1, np.int64)
        np.cumsum(cnt, out=out[1:])
        return out

    args = (ptr(np.fromiter(map(len, eps), np.int64, n)), np.fromiter(chain.from_iterable(eps), np.int64),
            e_ptr, lo, hi, dst, ptr(c_cnt), cflat[:, 0].copy(), cflat[:, 1].copy(), n_sym, start, end, n_cls,
            budget.limits.max_states)
    rate = _SUBSET_RATE
    while True:
        trans, accept, ck, cs, cd, n_calls, status = subset_construction(*args, budget.work_bound(rate))
        if status == 1:
            budget.check_states(budget.limits.max_states + 1)
        budget.check_time()
        if status == 0:
            break
        rate *= 4
    return classes, trans, accept, (ck[:n_calls], cs[:n_calls], cd[:n_calls])


def _determinize(nfa: _NFA, start: int, end: int, budget: _Budget) -> ByteDFA:
    classes, trans, accept, _ = subsets(nfa, {}, start, end, 0, budget)
    return minimize(ByteDFA(trans, classes, accept), budget)


# ---------------------------------------------------------------------------------------------
# Minimisation and trimming


def refine_blocks(t: np.ndarray, part: np.ndarray, max_rounds: int, budget: _Budget | None = None) -> np.ndarray:
    """Moore refinement of `part` under transitions `t` (complete, sink included), at most
    `max_rounds` rounds, checking the time budget between batches of rounds."""
    from .kernels import hopcroft_partition, refine_partition

    t = np.ascontiguousarray(t, dtype=np.int64)
    part = part.astype(np.int64)
    if max_rounds >= len(part):  # to the fixpoint: Hopcroft, not O(rounds) Moore (counters need n rounds)
        return hopcroft_partition(t, part)
    done = 0
    while done < max_rounds:
        if budget is not None:
            budget.check_time()
        batch = min(256, max_rounds - done)  # rounds are cheap past the first: few calls
        part, rounds = refine_partition(t, part, batch)
        done += rounds
        if rounds < batch:  # stable
            break
    return part


def minimize(dfa: ByteDFA, budget: _Budget | None = None, *, refine: bool = True) -> ByteDFA:
    """The minimal trimmed DFA of the same language, byte classes with identical columns merged
    (states numbered by their first original state: the start stays 0), in one kernel
    (`kernels.minimal_dfa`: Hopcroft's refinement; `budget` is not consulted).

    refine=False skips the partition refinement for DFAs already minimal (acyclic, hash-consed)."""
    from .kernels import minimal_dfa

    if dfa.trans.shape[0] == 0:
        return _empty_dfa()
    out, accept, inverse, first = minimal_dfa(dfa.trans, dfa.accept, refine)
    if out.shape[0] == 0:
        return _empty_dfa()
    if len(first) == out.shape[1]:
        return ByteDFA(out, dfa.classes, accept)
    return ByteDFA(np.ascontiguousarray(out[:, first]), inverse[dfa.classes].astype(np.uint8), accept)


# ---------------------------------------------------------------------------------------------
# Public builders and operations


class DfaMemo:
    """Byte DFAs kept per process under exact keys (read-only, least recently used out first).
    An entry keeps the smallest max_states it was built under: a build that fits under M fits
    under any larger M, and below M it is built afresh (to raise as it would have)."""

    def __init__(self, size: int, keep=lambda dfa: True):
        self.size, self.keep = size, keep  # keep(dfa): whether a build is worth keeping
        self.entries: "OrderedDict[object, tuple]" = OrderedDict()
        self.lock = threading.Lock()

    def get(self, key, limits: Limits, build) -> ByteDFA:
        """build(limits), or the DFA built before for `key` under at most limits.max_states."""
        with self.lock:
            got = self.entries.get(key)
            if got is not None:
                self.entries.move_to_end(key)
        if got is not None and got[0] <= limits.max_states:
            return got[1]
        dfa = build(limits)
        if self.keep(dfa):
            for a in (dfa.trans, dfa.classes, dfa.accept):
                a.flags.writeable = False
            with self.lock:
                old = self.entries.get(key)
                self.entries[key] = (min(limits.max_states, old[0]) if old is not None else limits.max_states, dfa)
                while len(self.entries) > self.size:
                    self.entries.popitem(last=False)
        return dfa

    def clear(self) -> None:
        with self.lock:
            self.entries.clear()

    def __len__(self) -> int:
        return len(self.entries)


def literal_trie(literals: list) -> tuple:
    """The trie of byte strings `literals` (`kernels.build_trie`): node_byte, node_depth, end,
    node_lo, node_hi."""
    from .kernels import build_trie

    lengths = np.fromiter(map(len, literals), np.int64, len(literals))
    offsets = np.zeros(len(literals) + 1, np.int64)
    np.cumsum(lengths, out=offsets[1:])
    data = np.frombuffer(b"".join(literals), np.uint8) if offsets[-1] else np.zeros(1, np.uint8)
    order = np.array(sorted(range(len(literals)), key=literals.__getitem__), np.int32)
    return build_trie(data, offsets, order)


def literals_dfa(encoded: list, budget: _Budget) -> ByteDFA:
    """The minimal byte DFA accepting exactly the given byte strings, built from their trie
    (numba) instead of a subset construction: big enums and choice lists stay fast."""
    from .kernels import trie_parents

    node_byte, node_depth, _end, node_lo, node_hi = literal_trie(encoded)
    n = len(node_byte)
    budget.check_states(n)

    parent = trie_parents(node_depth)
    idx = np.arange(n)

    used = np.unique(node_byte[1:])
    classes = np.zeros(256, np.uint8)
    if len(used) == 256:
        classes[:] = np.arange(256)
    else:
        classes[used] = np.arange(1, len(used) + 1)  # class 0: bytes no option uses
    trans = np.full((n, int(classes.max()) + 1), -1, np.int32)
    trans[parent[1:], classes[node_byte[1:]]] = idx[1:]
    return minimize(ByteDFA(trans, classes, node_hi > node_lo), budget)


def build_dfa(node, limits: Limits | None = None) -> ByteDFA:
    """The minimal trimmed byte DFA of an IR node.

    Raises
    ------
    CompileLimitError
        When `limits.max_states` or `limits.time_limit` is exceeded.
    """
    budget = _Budget(limits or Limits())
    if type(node) is g.Alt and all(type(x) is g.Bytes for x in node.items):
        return literals_dfa([x.data for x in node.items], budget)
    nfa = _NFA(budget)
    s, e = nfa.build(node)
    return _determinize(nfa, s, e, budget)


def _joint_classes(a: ByteDFA, b: ByteDFA):
    pair = a.classes.astype(np.int64) * 256 + b.classes
    _, classes = np.unique(pair, return_inverse=True)
    classes = classes.reshape(-1).astype(np.uint8)
    n = int(classes.max()) + 1
    rep = np.zeros(n, np.int64)
    rep[classes] = np.arange(256)
    return classes, a.classes[rep].astype(np.int64), b.classes[rep].astype(np.int64)


# Table cells per second assumed for `kernels.product_bfs` (its work bound, as `_SUBSET_RATE`).
_PRODUCT_RATE = 1e8


def _product(a: ByteDFA, b: ByteDFA, accept_fn, budget: _Budget) -> ByteDFA:
    """Product automaton of two *complete* DFAs (no dead entries).

    Pairs are numbered in the order a breadth-first queue meets them (row by row, class by
    class), in one kernel."""
    from .kernels import product_bfs

    classes, ca, cb = _joint_classes(a, b)
    ta = np.ascontiguousarray(a.trans[:, ca], dtype=np.int64)
    tb = np.ascontiguousarray(b.trans[:, cb], dtype=np.int64)
    nb = max(tb.shape[0], 1)
    rate = _PRODUCT_RATE
    while True:
        trans, code, count, status = product_bfs(ta, tb, budget.limits.max_states, budget.work_bound(rate))
        if status == 1:
            budget.check_states(count)
        budget.check_time()
        if status == 0:
            break
        rate *= 4
    table = np.array([[bool(accept_fn(x, y)) for y in (False, True)] for x in (False, True)])
    accept = table[a.accept[code // nb].astype(np.int64), b.accept[code % nb].astype(np.int64)]
    return minimize(ByteDFA(trans, classes, accept), budget)


def _complete(d: ByteDFA) -> ByteDFA:
    """Add an explicit non-accepting sink so every entry is defined."""
    n = d.n_states
    if n:
        trans = np.full((n + 1, d.trans.shape[1]), n, np.int32)
        np.copyto(trans[:n], d.trans, where=d.trans >= 0)
    else:
        trans = np.zeros((1, 1), np.int32)
    classes = d.classes if n else EMPTY_DFA_CLASSES
    return ByteDFA(trans, classes, np.append(d.accept, False))


def intersect(a: ByteDFA, b: ByteDFA, limits: Limits | None = None) -> ByteDFA:
    """The language of both `a` and `b`."""
    return _product(_complete(a), _complete(b), lambda x, y: x and y, _Budget(limits or Limits()))


def union(a: ByteDFA, b: ByteDFA, limits: Limits | None = None) -> ByteDFA:
    """The language of `a` or `b`."""
    return _product(_complete(a), _complete(b), lambda x, y: x or y, _Budget(limits or Limits()))


_ANY_UTF8: list = []


def any_utf8() -> ByteDFA:
    """All valid UTF-8 strings (no surrogates)."""
    if not _ANY_UTF8:
        _ANY_UTF8.append(build_dfa(g.Repeat(g.CharSet(((0, g.MAX_CODE_POINT),)), 0, None)))
    return _ANY_UTF8[0]


def complement(a: ByteDFA, limits: Limits | None = None) -> ByteDFA:
    """Every valid UTF-8 string not in `a`."""
    c = _complete(a)
    flipped = ByteDFA(c.trans, c.classes, ~c.accept)
    return _product(flipped, _complete(any_utf8()), lambda x, y: x and y, _Budget(limits or Limits()))


def require_nonempty(dfa: ByteDFA, what: str) -> ByteDFA:
    if dfa.is_empty():
        raise CompileError(f"{what} matches no string at all (empty language)")
    return dfa
