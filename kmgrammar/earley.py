"""Earley recognizer over bytes on an RTN (`cfg_rtn.Rtn`), with explicit charts and no recursion.

An item is (position, origin): a nonterminal's automaton sits at `position`, having started at
byte offset `origin`; it is kept as one int, origin << shift | position (`Network.item`), not a
tuple: fewer objects for the garbage collector, whose passes were about half of a JSON Schema
step (MaskBench: gen-0 passes inside steps 983 -> 646). Chart i holds the closed item set after
i bytes:
  scan     items whose position has byte edges (the only ones a next byte can move),
  wait     M -> [items (next position, origin)] for items that called M at offset i (completions of M
           started here advance these),
  accepting  the start nonterminal is complete over the whole input.
Nullable callees are skipped at prediction time (Aycock & Horspool), so completions never need
to revisit the chart being built. Origin -1 is the "unknown context" used ahead of time:
completing into it only sets `popped` (the caller is not known).

Every item is viable (all nonterminals are productive), so a byte string is a viable prefix
iff its last chart is non-empty. Charts are immutable once closed and shared by copies.
"""

from __future__ import annotations

import bisect
import threading
from collections import OrderedDict

from .errors import MatcherError

DEFAULT_MAX_DEPTH = 10_000
DEFAULT_MAX_CHART_ITEMS = 100_000


class ChartLimitError(MatcherError):
    """One chart would hold more than `max_chart_items` Earley items (a very ambiguous grammar
    on a long input): refused instead of growing time and memory without bound."""

    def __init__(self, limit: int):
        super().__init__(f"an Earley chart exceeded max_chart_items={limit} items "
                         f"(a very ambiguous grammar on this input; raise it with "
                         f"Matcher(compiled, max_chart_items=...))")
        self.limit = limit


class Lazy(dict):
    """A dict that fills a missing key from `make(key)` (per-position tables of big grammars: a
    run touches few of their positions)."""

    __slots__ = ("make",)

    def __init__(self, make):
        super().__init__()
        self.make = make

    def __missing__(self, key):
        v = self[key] = self.make(key)
        return v


class Chart:
    """One closed item set. `size` counts its items; `w` and `mask` are memos filled
    by the run-time mask code (cfg_matcher.py): charts are immutable, so they never go stale."""

    __slots__ = ("scan", "wait", "accepting", "popped", "alive", "depth", "truncated", "size",
                 "w", "mask")

    def __init__(self, scan, wait, accepting, popped, alive, depth, truncated, size=0):
        self.scan = scan
        self.wait = wait
        self.accepting = accepting
        self.popped = popped
        self.alive = alive
        self.depth = depth
        self.truncated = truncated
        self.size = size
        self.w = None
        self.mask = None


class Network:
    """The RTN as Python tuples for fast scalar stepping (built once per compiled grammar)."""

    __slots__ = ("n", "rows", "cls", "calls", "final_nt", "has_bytes", "start", "nullable", "top", "max_depth",
                 "shift", "mask")

    def __init__(self, trans, classes, final_nt, call_ptr, call_nt, call_next, nt_start, nullable,
                 top: int = 0, max_depth: int = DEFAULT_MAX_DEPTH, lazy: bool = False):
        # Tuples, not lists: the garbage collector stops tracking tuples of ints, so a big grammar's
        # tables (millions of entries) do not lengthen every full collection (as lists of lists,
        # 80 ms per gen-2 pass at 43k positions, paid inside some mask or step). `lazy`: rows and
        # calls made per position on first use (converting all of a 44k-position JSON schema's
        # took ~0.25 s before its first matcher could start).
        self.n = n = trans.shape[0]
        cp, cn, cx = call_ptr.tolist(), call_nt.tolist(), call_next.tolist()
        if lazy:
            self.rows = Lazy(lambda p: tuple(trans[p].tolist()))
            self.calls = Lazy(lambda p: tuple(zip(cn[cp[p]: cp[p + 1]], cx[cp[p]: cp[p + 1]])))
        else:
            self.rows = tuple(map(tuple, trans.tolist()))
            self.calls = tuple(tuple(zip(cn[cp[p]: cp[p + 1]], cx[cp[p]: cp[p + 1]])) for p in range(n))
        self.cls = tuple(classes.tolist())
        self.final_nt = tuple(final_nt.tolist())
        self.has_bytes = tuple((trans >= 0).any(axis=1).tolist())
        self.start = tuple(nt_start.tolist())
        self.nullable = tuple(bool(x) for x in nullable)
        self.top = top
        self.max_depth = max_depth
        self.shift = max(1, n.bit_length())  # an item: origin << shift | position
        self.mask = (1 << self.shift) - 1

    def item(self, pos: int, origin: int) -> int:
        """The item (pos, origin) as kept in charts (origin >= -1; read back as it & mask,
        it >> shift)."""
        return origin << self.shift | pos

    def close(self, charts: list, i: int, kernel, limit: int = 0) -> Chart:
        """Close `kernel` (items at offset i) under prediction and completion. More than `limit`
        items (when > 0) raises ChartLimitError before the work grows further."""
        calls, final_nt, has_bytes, start, nullable = self.calls, self.final_nt, self.has_bytes, self.start, self.nullable
        shift, mask = self.shift, self.mask
        here = i << shift  # origin i: the items predicted in this chart
        seen = set(kernel)
        work = list(seen)
        depth = 1 << 30
        for it in work:
            o = it >> shift
            d = charts[o].depth if 0 <= o < i else 0
            if d < depth:
                depth = d
        depth = depth + 1 if work else 0
        allow = depth <= self.max_depth
        truncated = False
        scan, wait = [], {}
        accepting = popped = False
        top = self.top
        while work:
            if limit and len(seen) > limit:
                raise ChartLimitError(limit)
            it = work.pop()
            pos = it & mask
            if has_bytes[pos]:
                scan.append(it)
            cl = calls[pos]
            if cl:
                at = it - pos  # origin << shift
                for m, nxt in cl:
                    lst = wait.get(m)
                    if lst is None:
                        wait[m] = lst = []
                        if allow:
                            s_it = here | start[m]
                            if s_it not in seen:
                                seen.add(s_it)
                                work.append(s_it)
                        else:
                            truncated = True
                    n_it = at | nxt
                    lst.append(n_it)
                    if nullable[m] and allow:
                        if n_it not in seen:
                            seen.add(n_it)
                            work.append(n_it)
            n = final_nt[pos]
            if n >= 0:
                o = it >> shift
                if o < 0:
                    popped = True
                    continue
                if o == 0 and n == top:
                    accepting = True
                if o == i:
                    waiters = wait.get(n, ())
                else:
                    waiters = charts[o].wait.get(n, ())
                for w in waiters:
                    if w not in seen:
                        seen.add(w)
                        work.append(w)
        if limit and len(seen) > limit:
            raise ChartLimitError(limit)
        return Chart(scan, wait, accepting, popped, bool(seen), depth, truncated, len(seen))

    def step(self, charts: list, byte: int, limit: int = 0) -> Chart:
        """The chart after one more byte (its `alive` is False when the byte is not viable)."""
        c = self.cls[byte]
        rows, mask = self.rows, self.mask
        kernel = []
        for it in charts[-1].scan:
            pos = it & mask
            nxt = rows[pos][c]
            if nxt >= 0:
                kernel.append(it - pos | nxt)
        if not kernel:
            return _DEAD
        if len(kernel) == 1:
            # Fast path: one item inside a rule, no call and no completion possible here.
            it = kernel[0]
            pos = it & mask
            if not self.calls[pos] and self.final_nt[pos] < 0:
                i = len(charts)
                o = it >> self.shift
                depth = (charts[o].depth if 0 <= o < i else 0) + 1
                return Chart(kernel, {}, False, False, True, depth, False, 1)
        return self.close(charts, len(charts), kernel, limit)

    def initial(self) -> Chart:
        return self.close([], 0, [self.item(self.start[self.top], 0)])


_DEAD = Chart([], {}, False, False, False, 0, False)


def _lcp(a: bytes, b: bytes) -> int:
    n = min(len(a), len(b))
    k = 0
    while k < n and a[k] == b[k]:
        k += 1
    return k


def lcp_list(strings: list) -> list:
    """lcp_list(strings)[k]: length of the common prefix of strings[k - 1] and strings[k]."""
    out, prev = [], b""
    for s in strings:
        out.append(_lcp(s, prev))
        prev = s
    return out


def check_sorted(net: Network, charts: list, strings: list, lcps: list | None = None) -> list:
    """Which of `strings` (sorted, non-empty) are viable continuations of `charts`: one walk that
    resumes from the common prefix with the previous string and skips strings under a dead prefix.
    `lcps` (see `lcp_list`) may be passed precomputed. `charts` is restored before returning."""
    base = len(charts) - 1
    out = []
    dead_at = -1
    if lcps is None:
        lcps = lcp_list(strings)
    for s, lcp in zip(strings, lcps):
        if 0 < dead_at <= lcp:
            out.append(False)
            continue
        keep = min(lcp, len(charts) - base - 1)
        del charts[base + 1 + keep:]
        ok = True
        dead_at = -1
        for j in range(keep, len(s)):
            ch = net.step(charts, s[j])
            if not ch.alive:
                ok = False
                dead_at = j + 1
                break
            charts.append(ch)
        out.append(ok)
    del charts[base + 1:]
    return out


def classify_sorted(net: Network, charts: list, strings: list, follow) -> list:
    """Ahead-of-time status of each sorted string from `charts[-1]`, whose items have origin -1:
    1 valid whatever the context, 0 invalid whatever the context, 2 depends on the context
    (the owner completed into the unknown caller after j bytes and s[j] can follow it).
    Strings under an already-dead prefix inherit its status without a walk."""
    base = len(charts) - 1
    out = []
    prev = b""
    dead_at, dead_status = -1, 0
    for s in strings:
        lcp = _lcp(s, prev)
        prev = s
        if 0 < dead_at <= lcp:
            out.append(dead_status)
            continue
        dead_at = -1
        keep = min(lcp, len(charts) - base - 1)
        del charts[base + 1 + keep:]
        status = 1
        for j in range(keep, len(s)):
            ch = net.step(charts, s[j])
            if not ch.alive:
                status = 0
                for jj in range(j + 1):
                    if charts[base + jj].popped and follow[s[jj]]:
                        status = 2
                        break
                dead_at, dead_status = j + 1, status
                break
            charts.append(ch)
        out.append(status)
    del charts[base + 1:]
    return out


def _after_prefix(p: bytes) -> bytes | None:
    """The least byte string above every string that starts with `p` (None: there is none)."""
    p = p.rstrip(b"\xff")
    return p[:-1] + bytes([p[-1] + 1]) if p else None


def local_table(net: Network, r: int, strings: list) -> tuple:
    """For each of `strings` (sorted), walked from item (r, unknown caller): whether the whole
    string is viable without leaving r's rule instance (calls it makes inside the string are
    followed), and the offsets j < len(s) after which that instance can complete (return to its
    caller with s[j:] still to read). Both are properties of r and s alone, whatever the stack;
    one walk shares prefixes with the previous string, and the run of strings under a dead prefix
    is answered at once (they read the same charts; their offset lists are one shared list)."""
    charts = [net.close([], 0, [net.item(r, -1)])]
    at = [0] if charts[0].popped else []  # the offsets j of the charts that popped, ascending
    oks, pops = [], []
    prev = b""
    k, n = 0, len(strings)
    while k < n:
        s = strings[k]
        keep = min(_lcp(s, prev), len(charts) - 1)
        del charts[1 + keep:]
        while at and at[-1] > keep:
            at.pop()
        for j in range(keep, len(s)):
            ch = net.step(charts, s[j])
            if not ch.alive:
                break
            charts.append(ch)
            if ch.popped:
                at.append(j + 1)
        else:
            oks.append(True)
            pops.append(at[:-1] if at and at[-1] == len(s) else at[:])  # offsets j < len(s)
            prev = s
            k += 1
            continue
        dead, end = s[:j + 1], k + 1
        if end < n and strings[end].startswith(dead):  # a run: bisect to its end
            above = _after_prefix(dead)
            end = n if above is None else bisect.bisect_left(strings, above, end, n)
        js = at[:]
        oks.extend([False] * (end - k))
        pops.extend([js] * (end - k))
        prev = strings[end - 1]
        k = end
    return oks, pops


class _Cycle(Exception):
    """A rule instance's answers would need themselves on the same strings (left recursion, a
    chain of nullable calls back to the same rule) or nest too deep: the Earley walk answers."""


_MAX_NESTED = 64  # callee tables computed inside one another before the Earley walk takes over


def composed_table(net: Network, r: int, strings: list, callee) -> tuple:
    """`local_table`'s answers in short, read from r's own rule and the answers of the rules it
    calls. callee(m, suffixes): the same short answers of an instance of m on `suffixes` (the
    strings under a trie node, minus its bytes: sorted, distinct, non-empty).
    A rule instance reads a string as its own byte edges interleaved with callee instances, each
    reading some substring by itself; so the Earley walk of r over the strings is the walk of r's
    rule over their trie, a call at a trie node continuing at the nodes where the callee completes.
    Callees' answers are a property of the callee and the suffixes alone, which the caller
    memoizes: the 2^n positions of an any-order object call the same member rules on the same
    suffixes, and each costs a few steps instead of an Earley walk of its own.
    Returns (ok bits, sorted (lo, d) nodes where r's rule instance can complete): a trie node
    (lo, d) stands for the strings from strings[lo] on that share its first d bytes, found by
    bisection as the walk reaches it (use `spread_table` for per-string answers)."""
    rows, cls, calls, final_nt = net.rows, net.cls, net.calls, net.final_nt
    n = len(strings)
    bits = 0
    completes = set()
    seen = {(r, 0, 0)}
    work = [(r, 0, n, 0)]
    while work:
        p, v, hi, d = work.pop()
        lo = v
        if len(strings[lo]) == d:  # (the shortest string under the node comes first)
            bits |= 1 << lo
            lo += 1
        if final_nt[p] >= 0:
            completes.add((v, d))
        row = rows[p]
        k = lo
        while k < hi:  # the children, one byte at a time
            s = strings[k]
            c = s[d]
            nxt = bisect.bisect_left(strings, s[:d] + bytes([c + 1]), k, hi) if c < 255 else hi
            q = row[cls[c]]
            if q >= 0 and (q, k, d + 1) not in seen:
                seen.add((q, k, d + 1))
                work.append((q, k, nxt, d + 1))
            k = nxt
        cl = calls[p]
        if not cl or lo == hi:
            continue
        sub = tuple(x[d:] for x in strings[lo:hi])
        for m, after in cl:
            got, ends = callee(m, sub)
            bits |= got << lo
            for k, j in ends:  # the callee's node (k, j) is this walk's (lo + k, d + j), or v itself
                a, e = (lo + k, d + j) if j else (v, d)
                if (after, a, e) not in seen:
                    seen.add((after, a, e))
                    above = _after_prefix(strings[a][:e]) if e else None
                    work.append((after, a, hi if above is None else bisect.bisect_left(strings, above, a, hi), e))
    return bits, tuple(sorted(completes))


def spread_table(strings: list, bits: int, completes: tuple) -> tuple:
    """`composed_table`'s answers per string: (oks, pops) as `local_table` gives them."""
    oks = [bits >> k & 1 == 1 for k in range(len(strings))]
    pops = [[] for _ in strings]
    for lo, d in completes:
        s = strings[lo][:d]
        above = _after_prefix(s) if d else None
        for i in range(lo, len(strings) if above is None else bisect.bisect_left(strings, above, lo)):
            if len(strings[i]) > d:
                pops[i].append(d)
    return oks, pops


def short_table(strings: list, oks: list, pops: list) -> tuple:
    """Per-string answers (`local_table`'s) in `composed_table`'s short form: the inverse of
    `spread_table`."""
    bits = 0
    for k, ok in enumerate(oks):
        if ok:
            bits |= 1 << k
    nodes = {(bisect.bisect_left(strings, strings[k][:j]), j) for k, js in enumerate(pops) for j in js}
    return bits, tuple(sorted(nodes))


def _walked(strings: tuple, oks: list, pops: list) -> tuple:
    """What a stack-table walk keeps: (oks, pop counts, the suffixes left after each pop)."""
    return oks, list(map(len, pops)), [s[j:] for s, js in zip(strings, pops) for j in js]


# What `local_table` found per process, for positions of sub-networks every grammar of the process
# may share (JSON Schema's `json_value`): (sub-network key, position in its first rule) ->
# (entries that keep the key's ids valid, {string: (ok, pops)}). Bounded: least recently used
# keys first out, and a key's strings stop growing at _LOCAL_STRINGS.
_LOCAL: "OrderedDict[tuple, tuple]" = OrderedDict()
_LOCAL_LOCK = threading.Lock()
_LOCAL_SIZE = 256
_LOCAL_STRINGS = 4096


def stack_tables(net: Network, rems: list, check=None, calls: tuple | None = None, same=None,
                 shared=None) -> dict:
    """The local tables of the run-time verdicts (cfg_matcher.py) as named arrays (cfg_loc_*).

    rems[u]: the sorted context-dependent remainders of exit state u. T is the set of suffixes
    that reach a caller: s[j:] for each pop j of a remainder, closed under the pops of the
    return positions r (a call's next position) they reach. Stored, with T as an index space:
      cfg_loc_ret          the return positions r
      cfg_loc_ok           [len(ret) * |T|] r reads suffix t without completing its rule (only
                           the suffixes that can pop out of a rule r returns from are walked)
      cfg_loc_pop_ptr/src/dst  per r, pairs (t, t after a pop of r's rule)
      cfg_loc_uok          per remainder (u by u, in rems order): u reads it locally
      cfg_loc_upop_ptr/dst per remainder, the suffixes left after each pop of u's rule
    `check()`, when given, is called between walks (a compile time limit). `calls`: the RTN's
    (call_nt, call_next) arrays, when the caller has them (read instead of every position's
    calls in `net`, which a lazy network would make one by one). `same`: position -> a
    representative position that reads every string alike. `shared`: position -> (key, entries)
    or None, for positions whose walks are kept per process under that key (see `_LOCAL`).
    Walks are composed from the answers of the rules they call (`composed_table`), each rule's
    answers on a set of suffixes computed once."""
    import numpy as np

    # Only what pops out of M can reach the return position of a call of M: walk each r over
    # popped[M] of the rules it returns from, not over every suffix (exact: W vectors are only
    # ever read at those suffixes).
    start = net.start
    owner = (np.searchsorted(start, np.arange(net.n), side="right") - 1).tolist()
    returns_of: dict = {}
    if calls is not None:
        edges = set(zip(calls[0].tolist(), calls[1].tolist()))
    else:
        edges = (e for p in range(net.n) for e in net.calls[p])
    for m, nxt in edges:
        returns_of.setdefault(m, set()).add(nxt)
    returns = sorted({r for rs in returns_of.values() for r in rs})
    popped: dict = {}  # rule -> suffixes that can be left after an instance of it completes
    pending: dict = {}  # return position -> suffixes popped into it, not yet walked from it
    walked_u = []  # (oks, pop counts, suffixes left after the pops) per exit state, in order

    def pop_into(m: int, xs: list) -> None:
        """Suffixes `xs` can be left after an instance of m completes; the new ones are pending at
        m's return positions."""
        got = popped.setdefault(m, set())
        new = set(xs)
        new -= got
        if new:
            got |= new
            for r in returns_of.get(m, ()):
                pending.setdefault(r, set()).update(new)

    known: dict = {}  # representative -> {string: (ok, pops)} walked from a position it stands for
    asked: dict = {}  # (position, suffixes) -> `composed_table` callee answers
    composed: dict = {}  # (representative, strings) -> `composed_table` answers
    spread: dict = {}  # (strings, answers) -> what `walk` returns
    busy: list = []  # (position, strings) being answered, innermost last

    def memo_of(r: int) -> dict:
        """The per-string memo of r's representative (a `_Shared` one for a per-process key)."""
        rep = same.get(r, r) if same else r
        memo = known.get(rep)
        if memo is None:
            # (members of a class read alike: the class may use its first walker's key)
            found = (shared(rep) or shared(r)) if shared else None
            memo = known[rep] = _shared_memo(found) if found is not None else {}
        return memo

    def table(r: int, strings) -> tuple:
        """`composed_table(r, strings)`, or for a rule that needs itself on the same strings
        (left recursion) the Earley walk's answers in short."""
        if (r, strings) in busy or len(busy) >= _MAX_NESTED:
            raise _Cycle
        busy.append((r, strings))
        try:
            return composed_table(net, r, strings, callee)
        except _Cycle:
            return short_table(strings, *local_table(net, r, strings))
        finally:
            busy.pop()

    def answers(r: int, strings: tuple) -> tuple:
        """(oks, pops) of r on `strings`, through r's per-string memo."""
        memo = memo_of(r)
        todo = tuple(s for s in strings if s not in memo)  # (still sorted)
        if todo:
            got = dict(zip(todo, zip(*spread_table(todo, *table(r, todo)))))
            if type(memo) is _Shared:
                memo.add(got)
            memo.update(got)
        return [memo[s][0] for s in strings], [memo[s][1] for s in strings]

    def callee(m: int, suffixes: tuple) -> tuple:
        key = (start[m], suffixes)
        got = asked.get(key)
        if got is None:
            got = asked[key] = short_table(suffixes, *answers(start[m], suffixes))
        return got

    def walk(r: int, strings: list) -> tuple:
        strings = tuple(strings)
        if type(memo_of(r)) is _Shared:
            out = _walked(strings, *answers(r, strings))
        else:
            # walked in short, batch by batch; positions with the same answers share the rest
            rep = same.get(r, r) if same else r
            got = composed.get((rep, strings))
            if got is None:
                got = composed[(rep, strings)] = table(r, strings)
            out = spread.get((strings, got))
            if out is None:
                out = spread[(strings, got)] = _walked(strings, *spread_table(strings, *got))
        pop_into(owner[r], out[2])
        return out

    for u, strings in enumerate(rems):
        if strings:
            if check is not None:
                check()
            walked_u.append(walk(u, strings))
    done_r: dict = {r: set() for r in returns}  # suffixes walked from r
    walked_r: dict = {r: [] for r in returns}  # (batch, oks, pop counts, suffixes left) per walk
    while pending:  # suffixes popped into callers, and what those pop further down, in rounds:
        # a position is walked once per round with everything that reached it (from every rule
        # it returns from), not once per rule
        todo = sorted(pending.items())
        pending.clear()
        for r, new in todo:
            done = done_r[r]
            batch = sorted(new - done)
            if not batch:
                continue
            if check is not None:
                check()
            done.update(batch)
            walked_r[r].append((batch, *walk(r, batch)))
    seen = {x for xs in popped.values() for x in xs}
    tid = {x: k for k, x in enumerate(sorted(seen))}
    n = len(tid)

    def ids(xs: list) -> np.ndarray:
        return np.fromiter(map(tid.__getitem__, xs), np.int64, len(xs))

    # every walk of every r at once (r by r, walks in order), a few numpy calls in all
    walks = [(k, w) for k, r in enumerate(returns) for w in walked_r[r]]
    row = np.repeat(np.array([k for k, _ in walks], np.int64), np.array([len(w[0]) for _, w in walks], np.int64))
    t = ids([x for _, w in walks for x in w[0]])
    ok = np.zeros(len(returns) * n, np.uint8)
    ok[row * n + t] = [good for _, w in walks for good in w[1]]
    src = np.repeat(t, np.array([c for _, w in walks for c in w[2]], np.int64))
    dst = ids([x for _, w in walks for x in w[3]])
    ptr = np.zeros(len(returns) + 1, np.int64)
    np.add.at(ptr, np.array([k + 1 for k, _ in walks], np.int64), np.array([len(w[3]) for _, w in walks], np.int64))
    np.cumsum(ptr, out=ptr)
    uok = [good for oks, _, _ in walked_u for good in oks]
    ucount = [c for _, counts, _ in walked_u for c in counts]
    uleft = [x for _, _, left in walked_u for x in left]
    return {
        "cfg_loc_ret": np.array(returns, np.int32),
        "cfg_loc_n": np.array([n], np.int64),
        "cfg_loc_ok": ok,
        "cfg_loc_pop_ptr": ptr,
        "cfg_loc_pop_src": src.astype(np.int32),
        "cfg_loc_pop_dst": dst.astype(np.int32),
        "cfg_loc_uok": np.array(uok, np.uint8),
        "cfg_loc_upop_ptr": np.cumsum([0] + ucount, dtype=np.int64),
        "cfg_loc_upop_dst": ids(uleft).astype(np.int32),
    }


class _Shared(dict):
    """A walk memo backed by a per-process one (`_LOCAL`): starts as a copy of what the process
    knows; `add` also hands new results to the process (up to _LOCAL_STRINGS per key)."""

    __slots__ = ("box",)

    def add(self, got: dict) -> None:
        with _LOCAL_LOCK:
            if len(self.box) < _LOCAL_STRINGS:
                self.box.update(got)


def _shared_memo(found):
    """The walk memo of a position: a fresh dict, or for `found` = (key, entries) a `_Shared`."""
    if found is None:
        return {}
    key, entries = found
    with _LOCAL_LOCK:
        got = _LOCAL.get(key)
        if got is None:
            got = _LOCAL[key] = (entries, {})
            while len(_LOCAL) > _LOCAL_SIZE:
                _LOCAL.popitem(last=False)
        else:
            _LOCAL.move_to_end(key)
        memo = _Shared(got[1])
    memo.box = got[1]
    return memo
