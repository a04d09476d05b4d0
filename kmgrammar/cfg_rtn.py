"""`Cfg` -> recursive transition network (RTN) over bytes, or a plain regular IR node.

Nonterminals outside every cycle of the call graph (and all terminals) are inlined, so only
recursive nonterminals keep an automaton of their own and a stack is paid for only where the
grammar nests. Each kept nonterminal becomes a minimal DFA whose alphabet is bytes plus
"call M" symbols. All DFAs share one numbering of *positions* and one byte-class table:

    trans[pos, classes[byte]] -> next position or -1        (byte edges)
    calls[pos] = ((M, next position), ...)                  (call edges)
    final_nt[pos] = owning nonterminal if pos completes it, else -1

A grammar with no recursion at all has no call edges left: `to_regular` returns its IR node
and it compiles through the regular token-automaton path (O(1) masks).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass

import numpy as np

from . import grammar as g
from .automaton import Limits, _Budget, _NFA, subsets
from .cfg import Cfg, Ref


def recursive_rules(cfg: Cfg) -> set:
    """Nonterminals that can reach themselves through the call graph."""
    from .cfg import refs

    edges = {n: refs(rhs) for n, rhs in cfg.rules.items()}
    return _cyclic(edges, set(edges))


def _cyclic(edges: dict, nodes: set) -> set:
    """Nodes of `nodes` on a cycle of the graph restricted to `nodes`: members of a strongly
    connected component with two or more nodes, or with a self-loop (Tarjan, iterative)."""
    index: dict = {}
    low: dict = {}
    on_stack: set = set()
    stack: list = []
    out: set = set()
    for root in nodes:
        if root in index:
            continue
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        work = [(root, iter([m for m in edges[root] if m in nodes]))]
        while work:
            v, it = work[-1]
            for w in it:
                if w not in index:
                    index[w] = low[w] = len(index)
                    stack.append(w)
                    on_stack.add(w)
                    work.append((w, iter([m for m in edges[w] if m in nodes])))
                    break
                if w in on_stack:
                    low[v] = min(low[v], index[w])
            else:
                work.pop()
                if work:
                    u = work[-1][0]
                    low[u] = min(low[u], low[v])
                if low[v] == index[v]:
                    comp = []
                    while True:
                        w = stack.pop()
                        on_stack.discard(w)
                        comp.append(w)
                        if w == v:
                            break
                    if len(comp) > 1 or v in edges[v]:
                        out.update(comp)
    return out


def call_targets(edges: dict, recursive: set) -> set:
    """A small set of nonterminals to keep as calls so that inlining every other one terminates
    (a greedy feedback vertex set: JSON keeps only `value`). edges: rule -> rules it references."""
    keep: set = set()
    rest = set(recursive)
    while True:
        cyc = _cyclic(edges, rest)
        if not cyc:
            return keep
        indeg = {n: 0 for n in cyc}
        for n in cyc:
            for m in edges[n]:
                if m in indeg:
                    indeg[m] += 1
        pick = max(sorted(cyc), key=lambda n: (n in edges[n], indeg[n] * sum(1 for m in edges[n] if m in cyc)))
        keep.add(pick)
        rest.discard(pick)


def _size(node, sizes: dict, keep: set) -> int:
    t = type(node)
    if t is Ref:
        return 1 if node.name in keep else sizes[node.name]
    if t is g.Seq or t is g.Alt:
        return 1 + sum(_size(x, sizes, keep) for x in node.items)
    if t is g.Repeat:
        k = node.max if node.max is not None else max(node.min, 1)
        return 1 + max(k, 1) * _size(node.item, sizes, keep)
    if t is g.Dfa:
        return node.dfa.n_states
    if t is g.Bytes:
        return len(node.data) + 1
    if t is g.Graph:
        return node.n + sum(_size(lab, sizes, keep) for lab in node.labels())
    return 2


def _large_shared(cfg: Cfg, edges: dict, keep: set) -> set:
    """Non-kept rules referenced more than once whose inlined size exceeds `cfg.inline_limit`."""
    uses: dict = {}
    stack = list(cfg.rules.values())
    while stack:
        n = stack.pop()
        if type(n) is Ref:
            uses[n.name] = uses.get(n.name, 0) + 1
        elif type(n) in (g.Seq, g.Alt):
            stack.extend(n.items)
        elif type(n) is g.Repeat:
            stack.append(n.item)
        elif type(n) is g.Graph:
            stack.extend(n.labels())
    keep = set(keep)
    sizes: dict = {}
    done: set = set()
    for root in cfg.rules:  # post-order over the call DAG of non-kept rules
        work = [(root, False)]
        while work:
            n, expanded = work.pop()
            if n in done:
                continue
            if not expanded:
                work.append((n, True))
                work.extend((m, False) for m in edges[n] if m not in keep and m not in done)
                continue
            done.add(n)
            sizes[n] = _size(cfg.rules[n], sizes, keep)
            if sizes[n] > cfg.inline_limit and uses.get(n, 0) > 1 and n != cfg.start:
                keep.add(n)
    return keep


def to_regular(cfg: Cfg, recursive: set, budget: _Budget):
    """The whole grammar as one regular IR node (only when nothing reachable is recursive)."""
    if recursive:
        return None
    memo: dict = {}

    def inline(node):
        t = type(node)
        if t is Ref:
            got = memo.get(node.name)
            if got is None:
                got = memo[node.name] = inline(cfg.rules[node.name])
            return got
        if t is g.Seq:
            return g.Seq(tuple(inline(x) for x in node.items))
        if t is g.Alt:
            return g.Alt(tuple(inline(x) for x in node.items))
        if t is g.Repeat:
            return g.Repeat(inline(node.item), node.min, node.max)
        if t is g.Graph:
            return node.map(inline)
        return node

    return inline(cfg.rules[cfg.start])


class _CallNFA(_NFA):
    """Thompson NFA with call edges; non-recursive references are inlined."""

    __slots__ = ("calls", "rules", "keep")

    def __init__(self, budget: _Budget, rules: dict, keep: dict):
        super().__init__(budget)
        self.calls: dict = {}  # state -> [(callee id, next state)]
        self.rules = rules
        self.keep = keep

    def build(self, node) -> tuple:
        if type(node) is Ref:
            if node.name in self.keep:
                s, e = self.state(), self.state()
                self.calls[s] = [(self.keep[node.name], e)]
                return s, e
            return self.build(self.rules[node.name])
        return super().build(node)


def _automaton(nfa: _CallNFA, start: int, end: int, budget: _Budget) -> tuple:
    """The minimal DFA over byte classes + call symbols of one rule's NFA, states in BFS order:
    ((classes, trans [n, n_cls], callees (ascending ids), calls [n, len(callees)] (next state or
    -1), accept), states of the subset construction).

    Only the rule's own callees are symbols (a grammar of 600 kept rules would otherwise give every
    rule's subset construction and minimisation 600 call columns). They keep their global order,
    so the result is the same as over all symbols."""
    from .kernels import minimal_rule

    callees = sorted({c for xs in nfa.calls.values() for c, _ in xs})
    local = {c: k for k, c in enumerate(callees)}
    calls = {s: [(local[c], e) for c, e in xs] for s, xs in nfa.calls.items()}
    n_sym = len(callees)
    classes, trans, accept, (ck, cs, cd) = subsets(nfa, calls, start, end, n_sym, budget)
    n, n_cls = trans.shape
    q, m_accept = minimal_rule(trans, ck, cs, cd, n_sym, accept)
    return (classes, q[:, :n_cls].astype(np.int32), np.array(callees, np.int64), q[:, n_cls:], m_accept), n


@dataclass
class Rtn:
    """The network: global positions, shared byte classes, call edges, per-nonterminal data."""

    names: list  # nonterminal id -> name
    trans: np.ndarray  # int32 [n_pos, n_cls]
    classes: np.ndarray  # uint8 [256]
    final_nt: np.ndarray  # int32 [n_pos]: owner nonterminal if the position completes it, else -1
    owner: np.ndarray  # int32 [n_pos]
    call_ptr: np.ndarray  # int32 [n_pos + 1]
    call_nt: np.ndarray  # int32
    call_next: np.ndarray  # int32
    nt_start: np.ndarray  # int32 [n_nt]
    nullable: np.ndarray  # bool [n_nt]
    top: int
    shared: list | None = None  # per nonterminal: the process-wide automaton it was built from, or None

    @property
    def n_pos(self) -> int:
        return int(self.trans.shape[0])

    def calls_of(self, pos: int) -> list:
        a, b = int(self.call_ptr[pos]), int(self.call_ptr[pos + 1])
        return list(zip(self.call_nt[a:b].tolist(), self.call_next[a:b].tolist()))

    def call_lists(self) -> list:
        """calls_of(p) for every position p."""
        ptr, nt, nxt = self.call_ptr.tolist(), self.call_nt.tolist(), self.call_next.tolist()
        return [list(zip(nt[ptr[p]: ptr[p + 1]], nxt[ptr[p]: ptr[p + 1]])) for p in range(len(ptr) - 1)]


# Automata of rules that reference kept rules only, per process, by the identity of the rule's body
# (kept alive here): such an automaton depends on the body and on its callees' order alone, and a
# frontend may hand every compile the same body (JSON Schema's `json_value`). Only small automata
# are kept (a big rule is one grammar's own); least recently used first out.
_RULES: "OrderedDict[int, tuple]" = OrderedDict()
_RULES_LOCK = threading.Lock()
_RULES_SIZE = 64
_RULES_MAX_POSITIONS = 1000


def _rule_automaton(rules: dict, name: str, refs: set, keep: dict, keep_names: list, budget: _Budget) -> tuple:
    """(`_automaton` of kept rule `name`, or the one built before for the same body; the
    process-wide entry it is (its arrays and callee names), or None)."""
    body = rules[name]
    order = tuple(sorted(refs, key=keep.__getitem__)) if refs <= keep.keys() else None
    if order is not None:
        with _RULES_LOCK:
            hit = _RULES.get(id(body))
            if hit is not None:
                _RULES.move_to_end(id(body))
        # (a build that went past this compile's max_states is built again, to raise as it did)
        if (hit is not None and hit[0] is body and hit[1] == order and hit[3] <= budget.limits.max_states
                and hit[4] <= budget.nfa_cap()):
            classes, trans, callee_names, calls, accept = hit[2]
            budget.check_time()
            return (classes, trans, np.array([keep[c] for c in callee_names], np.int64), calls, accept), hit[2]
    nfa = _CallNFA(budget, rules, keep)
    s, e = nfa.build(body)
    part, n_sub = _automaton(nfa, s, e, budget)
    budget.check_time()
    entry = None
    if order is not None and part[1].shape[0] <= _RULES_MAX_POSITIONS:
        classes, trans, callees, calls, accept = part
        for a in (classes, trans, calls, accept):
            a.flags.writeable = False
        entry = (classes, trans, tuple(keep_names[c] for c in callees.tolist()), calls, accept)
        with _RULES_LOCK:
            _RULES[id(body)] = (body, order, entry, n_sub, len(nfa.eps))
            while len(_RULES) > _RULES_SIZE:
                _RULES.popitem(last=False)
    return part, entry


def build_rtn(cfg: Cfg, recursive: set, limits: Limits) -> Rtn:
    """Lower a grammar with recursion to an `Rtn`.

    Raises
    ------
    CompileLimitError
        More than `limits.max_states` positions, or over `limits.time_limit`.
    """
    from .cfg import refs

    budget = _Budget(limits)
    edges = {n: refs(rhs) for n, rhs in cfg.rules.items()}
    targets = _large_shared(cfg, edges, call_targets(edges, recursive) | (cfg.calls & cfg.rules.keys()))
    keep_names = [cfg.start] + sorted(n for n in targets if n != cfg.start)
    keep = {n: k for k, n in enumerate(keep_names)}
    parts, shared = zip(*[_rule_automaton(cfg.rules, name, edges[name], keep, keep_names, budget)
                          for name in keep_names])
    n_pos = sum(p[1].shape[0] for p in parts)
    budget.check_states(n_pos)
    # One byte-class table for all nonterminals: bytes no automaton distinguishes share a class,
    # numbered in the order of their vectors of per-rule classes (ids < 256, so byte strings
    # compare like the vectors; ~5x cheaper than np.unique(axis=0)).
    vecs = np.ascontiguousarray(np.stack([p[0] for p in parts]).T.astype(np.uint8))
    keys = [v.tobytes() for v in vecs]
    ids = {k: j for j, k in enumerate(sorted(set(keys)))}
    gcls = np.fromiter(map(ids.__getitem__, keys), np.uint8, 256)
    n_g = int(gcls.max()) + 1
    rep = np.zeros(n_g, np.int64)
    rep[gcls] = np.arange(256)
    trans = np.full((n_pos, n_g), -1, np.int32)
    final_nt = np.full(n_pos, -1, np.int32)
    owner = np.zeros(n_pos, np.int32)
    nt_start = np.zeros(len(parts), np.int32)
    call_nt, call_next, call_cnt = [], [], []
    base = 0
    for k, (classes, t, callees, calls, acc) in enumerate(parts):
        n = t.shape[0]
        local = t[:, classes[rep]]
        trans[base: base + n] = np.where(local >= 0, local + base, -1)
        final_nt[base: base + n] = np.where(acc, k, -1)
        owner[base: base + n] = k
        nt_start[k] = base
        rows, syms = np.nonzero(calls >= 0)  # by position, then callee id
        call_nt.append(callees[syms])
        call_next.append(calls[rows, syms] + base)
        call_cnt.append(np.bincount(rows, minlength=n))
        base += n
    call_ptr = np.zeros(n_pos + 1, np.int64)
    np.cumsum(np.concatenate(call_cnt), out=call_ptr[1:])
    rtn = Rtn(keep_names, trans, gcls, final_nt, owner, call_ptr.astype(np.int32),
              np.concatenate(call_nt).astype(np.int32), np.concatenate(call_next).astype(np.int32), nt_start,
              np.zeros(len(parts), bool), 0, list(shared))
    rtn.nullable = _nullable(rtn)
    return rtn


# A sub-network bigger than this is not keyed: its key would cost as much to build as the walks
# it saves, and computing every rule's key eagerly was quadratic (12 s of a 23 s compile on a
# schema with 3,650 rules, each reaching most of the others).
SHARED_NET_MAX = 32


def shared_keys(rtn: Rtn):
    """A lookup nonterminal -> (key, entries) or None, for the nonterminals whose automaton and
    every automaton they reach through calls (at most SHARED_NET_MAX) are process-wide ones
    (`_rule_automaton`): the key (those entries' ids and how their calls connect them, numbered
    from M breadth first) is the same in every grammar of the process that has this sub-network,
    and only there while `entries` (kept alive by whoever keeps the key) exist. What a rule
    instance does with a string depends on its sub-network alone (`earley.local_table`), so such
    results may be kept per process under these keys. Keys are built on first lookup."""
    if not rtn.shared:
        return None
    index = {name: k for k, name in enumerate(rtn.names)}
    memo: dict = {}

    def key_of(m: int):
        if m in memo:
            return memo[m]
        got = None
        if rtn.shared[m] is not None:
            order, seen, sig = [m], {m: 0}, []
            for x in order:  # (grows while it is read)
                e = rtn.shared[x]
                if e is None or len(order) > SHARED_NET_MAX:
                    break
                callees = [index[c] for c in e[2]]
                for c in callees:
                    if c not in seen:
                        seen[c] = len(order)
                        order.append(c)
                sig.append((id(e), tuple(seen[c] for c in callees)))
            else:
                got = (tuple(sig), tuple(rtn.shared[x] for x in order))
        memo[m] = got
        return got

    return key_of


def _nullable(rtn: Rtn) -> np.ndarray:
    """nullable[M]: M's automaton reaches a final position through calls to nullable M' only."""
    n_nt = len(rtn.names)
    nullable = np.zeros(n_nt, bool)
    calls = {p: rtn.calls_of(p) for p in np.flatnonzero(np.diff(rtn.call_ptr)).tolist()}
    changed = True
    while changed:
        changed = False
        for m in range(n_nt):
            if nullable[m]:
                continue
            start = int(rtn.nt_start[m])
            seen, stack = {start}, [start]
            while stack:
                p = stack.pop()
                if rtn.final_nt[p] >= 0:
                    nullable[m] = changed = True
                    break
                for c, nxt in calls.get(p, ()):
                    if nullable[c] and nxt not in seen:
                        seen.add(nxt)
                        stack.append(nxt)
    return nullable


def _bool_rows(bits: list) -> np.ndarray:
    """Python int bitsets (bit b = byte b) -> bool [len, 256]."""
    raw = b"".join(int(x).to_bytes(32, "little") for x in bits)
    return np.unpackbits(np.frombuffer(raw, np.uint8), bitorder="little").reshape(len(bits), 256).astype(bool)


def byte_sets(rtn: Rtn) -> dict:
    """FIRST/FOLLOW byte sets of the network (bool [.., 256] arrays):
    own[p]  bytes of p's own byte edges;  first_nt[M]  bytes M can start with;
    first[p]  bytes that can come next at p through byte edges or calls (not completion);
    follow[M]  bytes that can come right after a completed M;  eps_final[p]  p can complete its
    rule through nullable calls only;  nullable_calls[p]  p has a call to a nullable M.
    Sets are Python ints (bit b = byte b) while they are computed; positions without calls (most
    of them) need no loop: their first set is their own bytes."""
    n, n_nt = rtn.n_pos, len(rtn.names)
    own_b = (rtn.trans >= 0)[:, rtn.classes]
    nullable = rtn.nullable
    fin = rtn.final_nt >= 0
    callers = np.flatnonzero(np.diff(rtn.call_ptr) > 0).tolist()
    calls = {p: rtn.calls_of(p) for p in callers}
    # eps[p]: p and the returns reached from it through nullable calls (only callers have more)
    eps = {}
    for p in callers:
        seen, stack = {p}, [p]
        while stack:
            x = stack.pop()
            for c, nxt in calls.get(x, ()):
                if nullable[c] and nxt not in seen:
                    seen.add(nxt)
                    stack.append(nxt)
        eps[p] = seen
    # own bits of the positions the loops below read (rule starts, call returns, and the eps sets),
    # packed for those rows only (a big grammar has 10^4-10^5 positions, few of them read)
    need = set(rtn.nt_start.tolist()) | set(rtn.call_next.tolist())
    for seen in eps.values():
        need |= seen
    need = sorted(need)
    packed = np.packbits(own_b[need], axis=1, bitorder="little")
    own_of = dict(zip(need, (int.from_bytes(x.tobytes(), "little") for x in packed))).__getitem__
    eps_final = fin.copy()
    for p, seen in eps.items():
        eps_final[p] = any(fin[x] for x in seen)
    first_nt = [0] * n_nt
    changed = True
    while changed:
        changed = False
        for m in range(n_nt):
            bits = first_nt[m]
            st = int(rtn.nt_start[m])
            for x in eps.get(st, (st,)):
                bits |= own_of(x)
                for c, _ in calls.get(x, ()):
                    bits |= first_nt[c]
            if bits != first_nt[m]:
                first_nt[m] = bits
                changed = True
    first_b = own_b.copy()
    first_p = {}
    for p in callers:
        bits = 0
        for x in eps[p]:
            bits |= own_of(x)
            for c, _ in calls.get(x, ()):
                bits |= first_nt[c]
        first_p[p] = bits
    if first_p:
        first_b[list(first_p)] = _bool_rows(list(first_p.values()))

    def first_of(x: int) -> int:
        got = first_p.get(x)
        return own_of(x) if got is None else got

    edges = [(p, c, nxt) for p in callers for c, nxt in calls[p]]
    owner = rtn.owner.tolist()
    follow = [0] * n_nt
    changed = True
    while changed:
        changed = False
        for p, c, nxt in edges:
            bits = follow[c] | first_of(nxt)
            if eps_final[nxt]:
                bits |= follow[owner[p]]
            if bits != follow[c]:
                follow[c] = bits
                changed = True
    nullable_calls = np.zeros(n, bool)
    for p in callers:
        nullable_calls[p] = any(nullable[c] for c, _ in calls[p])
    return {
        "own": own_b, "first_nt": _bool_rows(first_nt), "first": first_b,
        "follow": _bool_rows(follow), "eps_final": eps_final, "nullable_calls": nullable_calls,
    }


# follow2 keeps (rule starts + call returns) x (byte classes)^2 booleans of scratch: above this the 2-byte filter is skipped.
_FOLLOW2_MAX_CELLS = 50_000_000


def follow2(rtn: Rtn, sets: dict) -> np.ndarray:
    """uint8 [n_nt, 256, 256]: over-approximation of the byte pairs that can come right after a
    completed nonterminal (all ones when the grammar is too large to compute it cheaply).

    Computed over the network's byte classes (every FIRST/FOLLOW set is a union of them, since
    they are made of byte edges) and expanded to bytes at the end."""
    n_nt = len(rtn.names)
    n_g = rtn.trans.shape[1]
    n_rows = len(set(rtn.nt_start.tolist()) | set(rtn.call_next.tolist()))
    if (n_rows + n_nt) * n_g * n_g > _FOLLOW2_MAX_CELLS:
        return np.ones((n_nt, 256, 256), np.uint8)
    rep = np.zeros(n_g, np.int64)
    rep[rtn.classes[::-1]] = np.arange(255, -1, -1)  # a byte of each class
    first = sets["first"][:, rep]
    follow = sets["follow"][:, rep]
    eps_final = sets["eps_final"]
    # Sets are Python ints: bit c of a class set, bit c1 * n_g + c2 of a pair set.
    def bits(rows) -> list:
        packed = np.packbits(rows, axis=-1, bitorder="little")
        return [int.from_bytes(x.tobytes(), "little") for x in packed]

    def outer(a: int, b: int) -> int:  # pairs (c1 in a, c2 in b)
        got = 0
        while a:
            low = a & -a
            got |= b << (n_g * (low.bit_length() - 1))
            a ^= low
        return got

    # Only rule starts and call returns are ever read: sets for those positions only.
    callers = np.flatnonzero(np.diff(rtn.call_ptr) > 0).tolist()
    calls = {p: rtn.calls_of(p) for p in callers}
    need = sorted(set(rtn.nt_start.tolist()) | set(rtn.call_next.tolist()))
    first_b, follow_b = dict(zip(need, bits(first[need]))), bits(follow)
    trans = rtn.trans[need]
    live = trans >= 0
    tgt = np.where(live, trans, 0)
    # f2[p]: pairs c1 c2 that can come next at p, within p's rule and its callees;
    # one[p]: classes c1 after which p's rule can complete.
    f2 = dict(zip(need, bits((first[tgt] & live[:, :, None]).reshape(len(need), -1))))
    one = dict(zip(need, bits(live & eps_final[tgt])))
    start = [int(x) for x in rtn.nt_start.tolist()]
    nullable = rtn.nullable.tolist()
    eps_l = eps_final.tolist()
    changed = True
    while changed:
        changed = False
        for p in callers:
            if p not in f2:
                continue
            for m, r in calls[p]:
                st = start[m]
                new = f2[st] | outer(one[st], first_b[r])
                new_one = one[st] if eps_l[r] else 0
                if nullable[m]:
                    new |= f2[r]
                    new_one |= one[r]
                if new & ~f2[p]:
                    f2[p] |= new
                    changed = True
                if new_one & ~one[p]:
                    one[p] |= new_one
                    changed = True
    out = [0] * n_nt
    owner = rtn.owner.tolist()
    changed = True
    while changed:
        changed = False
        for q in callers:
            o = owner[q]
            for m, r in calls[q]:
                new = f2[r] | outer(one[r], follow_b[o])
                if eps_l[r]:
                    new |= out[o]
                if new & ~out[m]:
                    out[m] |= new
                    changed = True
    size = (n_g * n_g + 7) // 8
    raw = b"".join(x.to_bytes(size, "little") for x in out)
    pairs = np.unpackbits(np.frombuffer(raw, np.uint8), bitorder="little").reshape(n_nt, -1)
    pairs = pairs[:, : n_g * n_g].reshape(n_nt, n_g, n_g)
    cls = rtn.classes.astype(np.int64)
    # second class first: the intermediate is [n_nt, n_g, 256], not [n_nt, 256, n_g] (unpackbits: uint8)
    return np.take(np.take(pairs, cls, axis=2), cls, axis=1)


def actions(rtn: Rtn, sets: dict) -> tuple:
    """Tables for `kernels.walk_cfg_nd`: flags [n_pos, 256] (1 byte edge, 2 the rule may complete
    before this byte) and per call edge its callee start, return position, bytes that can enter
    the callee (call_first) and bytes that can follow when a nullable callee is skipped (call_skip)."""
    own, first_nt, follow, first = sets["own"], sets["first_nt"], sets["follow"], sets["first"]
    fin = rtn.final_nt >= 0
    flags = own.astype(np.uint8)
    done = np.flatnonzero(fin)  # only positions that complete their rule may pop
    flags[done] |= follow[rtn.owner[done]].astype(np.uint8) << 1
    cnt = np.diff(rtn.call_ptr)
    caller = np.repeat(np.arange(rtn.n_pos), cnt)
    call_start = rtn.nt_start[rtn.call_nt].astype(np.int32)
    call_first = first_nt[rtn.call_nt].astype(np.uint8)
    skip = np.zeros((len(rtn.call_nt), 256), bool)
    for k, (m, nxt) in enumerate(zip(rtn.call_nt.tolist(), rtn.call_next.tolist())):
        if rtn.nullable[m]:
            skip[k] = first[nxt] | (follow[int(rtn.owner[caller[k]])] if sets["eps_final"][nxt] else False)
    return flags, call_start, rtn.call_next.astype(np.int32), call_first, skip.astype(np.uint8)
