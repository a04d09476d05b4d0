"""JSON Schema leaves -> byte automata: canonical serialization, numbers, strings, formats.

The supported serialization (what `jsonschema.compile_json_schema` accepts, and what
`serialize` writes) gives every JSON value exactly one spelling per whitespace style, so that
`not`, `oneOf` and `if`/`else` can be computed exactly as automaton differences:

- strings: `json.dumps(s, ensure_ascii=False)`: only `"`, `\\` and U+0000..U+001F are escaped,
  as `\\"`, `\\\\`, `\\b \\f \\n \\r \\t` or `\\u00XX` (lowercase hex); everything else is literal UTF-8.
- numbers: canonical decimal, no exponent: `0`, `-?[1-9][0-9]*`, or with a fraction that does
  not end in `0` (`1.5`, `-0.25`). An integer value (also `1.0`) is written as an integer; `-0`
  is written `0`.
- `true`, `false`, `null`; object keys in schema order (see `jsonschema`).
"""

from __future__ import annotations

import json
import math
import threading
from collections import OrderedDict
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from functools import lru_cache

import numpy as np

from . import grammar as g
from .automaton import (ByteDFA, DfaMemo, Limits, _Budget, _complete, _determinize, _empty_dfa, _NFA, _product,
                        literal_trie, literals_dfa, minimize)
from .errors import CompileError, CompileLimitError

# ---------------------------------------------------------------------------------------------
# Serialization


def canonical_number(v) -> str:
    """The canonical decimal spelling of a JSON number (see module doc)."""
    if isinstance(v, bool):
        raise TypeError("bool is not a number")
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        if not math.isfinite(v):
            raise ValueError(f"{v!r} is not a JSON number")
        d = Decimal(repr(v))
    else:
        d = Decimal(v)
    if d == d.to_integral_value():
        return str(int(d))
    return format(d.normalize(), "f")


def serialize(value, *, whitespace: str = "compact", indent: int | None = None,
              separators: tuple | None = None, _depth: int = 0) -> str:
    """Write `value` in the supported serialization (keys in the dict's own order).

    `whitespace="flexible"` writes the compact form (one of the accepted spellings)."""
    item, key = separators or (",", ":")
    if indent is not None:
        item, key = ",", ": "
    rec = lambda v, d: serialize(v, whitespace=whitespace, indent=indent, separators=separators, _depth=d)  # noqa: E731
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, (int, float, Decimal)):
        return canonical_number(value)
    if isinstance(value, (list, tuple)):
        if not value:
            return "[]"
        if indent is not None:
            pad, pad0 = "\n" + " " * (indent * (_depth + 1)), "\n" + " " * (indent * _depth)
            return "[" + pad + (item + pad).join(rec(v, _depth + 1) for v in value) + pad0 + "]"
        return "[" + item.join(rec(v, _depth + 1) for v in value) + "]"
    if isinstance(value, dict):
        if not value:
            return "{}"
        parts = [json.dumps(k, ensure_ascii=False) + key + rec(v, _depth + 1) for k, v in value.items()]
        if indent is not None:
            pad, pad0 = "\n" + " " * (indent * (_depth + 1)), "\n" + " " * (indent * _depth)
            return "{" + pad + (item + pad).join(parts) + pad0 + "}"
        return "{" + item.join(parts) + "}"
    raise TypeError(f"not a JSON value: {type(value).__name__}")


# ---------------------------------------------------------------------------------------------
# Whitespace styles

# Longest whitespace run allowed between two tokens with whitespace="flexible": long enough for
# pretty-printing 10 levels deep with 2-space indents, short enough that output cannot run away.
MAX_FLEXIBLE_WS = 24

_WS = g.Repeat(g.ByteSet(((9, 10), (13, 13), (32, 32))), 0, MAX_FLEXIBLE_WS)


@dataclass(frozen=True)
class Style:
    """How tokens are separated: compact/custom separators, indent=N, or flexible whitespace."""

    kind: str = "compact"  # compact | indent | flexible
    item: str = ","
    key: str = ":"
    indent: int = 0

    def depth_matters(self) -> bool:
        return self.kind == "indent"

    def key_sep(self):
        return g.seq(_WS, g.text(":"), _WS) if self.kind == "flexible" else g.text(self.key)

    def item_sep(self, depth: int):
        if self.kind == "flexible":
            return g.seq(_WS, g.text(","), _WS)
        if self.kind == "indent":
            return g.text(",\n" + " " * (self.indent * (depth + 1)))
        return g.text(self.item)

    def open(self, bracket: str, depth: int):
        """Opening bracket plus whatever precedes the first member."""
        if self.kind == "flexible":
            return g.seq(g.text(bracket), _WS)
        if self.kind == "indent":
            return g.text(bracket + "\n" + " " * (self.indent * (depth + 1)))
        return g.text(bracket)

    def close(self, bracket: str, depth: int):
        if self.kind == "flexible":
            return g.seq(_WS, g.text(bracket))
        if self.kind == "indent":
            return g.text("\n" + " " * (self.indent * depth) + bracket)
        return g.text(bracket)

    def empty(self, pair: str):
        if self.kind == "flexible":
            return g.seq(g.text(pair[0]), _WS, g.text(pair[1]))
        return g.text(pair)

    def outer(self, node):
        return g.seq(_WS, node, _WS) if self.kind == "flexible" else node


# Objects and arrays with counters are `grammar.Graph`s (built straight into the Thompson NFA).
Graph = g.Graph


def build(node, limits: Limits) -> ByteDFA:
    """Minimal byte DFA of an IR node that may contain `Graph` nodes."""
    budget = _Budget(limits)
    if type(node) is g.Alt and all(type(x) is g.Bytes for x in node.items):
        return literals_dfa([x.data for x in node.items], budget)  # a big enum: its trie
    big = _big_leaves(node, limits)  # [(id of the node or DFA replaced, DFA)]
    while big:
        subs = dict(zip(_MARKERS, big))
        nfa = _NFA(budget)
        s, e = nfa.build(_mark(node, {key: m for m, (key, _d) in subs.items()}, {}))
        if _foreign_markers(nfa.byte_edges()):
            break
        got, bad = _splice(_determinize(nfa, s, e, budget), {m: d for m, (_k, d) in subs.items()}, budget)
        if got is not None:
            return got
        big.remove(subs[bad])
    nfa = _NFA(budget)
    s, e = nfa.build(node)
    return _determinize(nfa, s, e, budget)


# Big sub-automata are spliced in, not determinised again: a value DFA of thousands of states (a
# long counted string, a nested object) would otherwise be walked state by state by the subset
# construction of every enclosing object. Each one becomes a marker byte that UTF-8 never holds,
# the small skeleton is determinised, and every marker edge q -M-> r is replaced by a copy of the
# DFA entered from q whose accepting states are r. That is exact when the DFA is end-marked
# (accepting states have no edges, as JSON strings, objects, arrays and literals) and its first
# bytes are not also taken by q's other edges (else that DFA is embedded the usual way).
_MARKERS = (0xC0, 0xC1) + tuple(range(0xF5, 0xFE))  # 0xFE/0xFF are the pattern anchor markers
SPLICE_MIN_STATES = 128
SPLICE_MIN_NODES = 64


def _big_leaves(node, limits: Limits) -> list:
    """What is worth splicing, biggest first (at most one per marker): end-marked DFA leaves of
    SPLICE_MIN_STATES or more, and compound sub-trees used more than once that expand to
    SPLICE_MIN_NODES nodes or more (the Thompson construction copies a shared sub-tree at every
    use: nested shared objects multiply). Returns [(id of the DFA or sub-tree, its DFA)]."""
    order, parents, stack = [], {}, [node]  # distinct nodes, parents first; references per node
    while stack:
        x = stack.pop()
        if id(x) in parents:
            parents[id(x)] += 1
            continue
        parents[id(x)] = 1
        order.append(x)
        stack.extend(_children(x))
    size: dict = {}
    for root in reversed(order):  # post-order: children before parents
        work = [(root, False)]
        while work:
            x, ready = work.pop()
            if id(x) in size:
                continue
            kids = _children(x)
            if ready:  # the nodes the Thompson construction makes for x
                copies = (x.max if x.max is not None else x.min + 1) if type(x) is g.Repeat else 1
                size[id(x)] = 1 + copies * sum(size[id(c)] for c in kids)
            else:
                work.append((x, True))
                work.extend((c, False) for c in kids if id(c) not in size)
    found: dict = {}
    for x in order:
        t = type(x)
        if t is g.Dfa:
            if x.dfa.n_states >= SPLICE_MIN_STATES and _end_marked(x.dfa):
                found[id(x.dfa)] = (x.dfa.n_states, x)
        elif x is not node and parents[id(x)] > 1 and size[id(x)] >= SPLICE_MIN_NODES and t is not g.Bytes:
            found[id(x)] = (size[id(x)] * parents[id(x)], x)
    out = []
    for key, (_w, x) in sorted(found.items(), key=lambda kv: -kv[1][0]):
        if len(out) == len(_MARKERS):
            break
        if type(x) is not g.Dfa:
            d = x.__dict__.get("_dfa")
            if d is None:
                d = build(x, limits)
                object.__setattr__(x, "_dfa", d)
            if d.n_states == 0 or not _end_marked(d):
                continue
            out.append((key, d))
        else:
            out.append((key, x.dfa))
    return out


def _children(x) -> list:
    t = type(x)
    if t is g.Seq or t is g.Alt:
        return list(x.items)
    if t is g.Repeat:
        return [x.item] if x.max != 0 else []
    if t is Graph:
        return x.labels()
    return []


def _end_marked(d: ByteDFA) -> bool:
    return not d.accept[0] and bool((d.trans[d.accept] < 0).all())


def _mark(node, marker: dict, memo: dict):
    """`node` with the DFA leaves in `marker` (id -> byte) replaced by their marker byte."""
    got = memo.get(id(node))
    if got is not None:
        return got
    t = type(node)
    m = marker.get(id(node.dfa) if t is g.Dfa else id(node))
    if m is not None:
        got = g.Bytes(bytes([m]))
    elif t in (g.Seq, g.Alt):
        got = t(tuple(_mark(x, marker, memo) for x in node.items))
    elif t is g.Repeat:
        got = g.Repeat(_mark(node.item, marker, memo), node.min, node.max)
    elif t is Graph:
        got = node.map(lambda lab: _mark(lab, marker, memo))
    else:
        got = node
    memo[id(node)] = got
    return got


def _foreign_markers(edges: list) -> bool:
    """Does an NFA edge other than a marker's own single byte cover a marker byte?"""
    return any(lo < hi and any(lo <= m <= hi for m in _MARKERS) for out in edges for lo, hi, _t in out if lo < hi)


def _splice(skel: ByteDFA, subs: dict, budget: _Budget):
    """(spliced minimal DFA, None), or (None, marker) when that marker's DFA cannot be spliced."""
    markers = list(subs)
    dfas = [subs[m] for m in markers]
    own = np.zeros(256, np.int64)
    own[markers] = 1 + np.arange(len(markers))
    key = np.stack([skel.classes.astype(np.int64), own] + [d.classes.astype(np.int64) for d in dfas], axis=1)
    _u, first, cls = np.unique(key, axis=0, return_index=True, return_inverse=True)
    cls = cls.reshape(-1)
    mcols = cls[markers]
    sk = skel.trans[:, skel.classes[first]]
    base = sk.copy()
    base[:, mcols] = -1
    rows, accept, n = [base], [skel.accept], skel.n_states
    for m, d, c in zip(markers, dfas, mcols):
        dt = d.trans[:, d.classes[first]]
        into_accept = (dt >= 0) & d.accept[np.maximum(dt, 0)]
        first_bytes = dt[0] >= 0
        for q in np.flatnonzero(sk[:, c] >= 0):
            if (base[q] >= 0)[first_bytes].any():
                return None, m
            copy = np.where(dt >= 0, dt + n, -1)
            copy[into_accept] = sk[q, c]
            copy[:, mcols] = -1
            base[q, first_bytes] = copy[0, first_bytes]
            rows.append(copy)
            accept.append(np.zeros(d.n_states, bool))
            n += d.n_states
            budget.check_states(n)
    table = np.vstack(rows).astype(np.int32)
    return minimize(ByteDFA(table, cls.astype(np.uint8), np.concatenate(accept)), budget), None


def difference(a: ByteDFA, b: ByteDFA, limits: Limits) -> ByteDFA:
    return _product(_complete(a), _complete(b), lambda x, y: bool(x) and not y, _Budget(limits))


def without_literals(a: ByteDFA, literals: list, limits: Limits) -> ByteDFA:
    """`difference(a, the byte strings literals)`, built directly from the literals' trie: a
    state of the product is a trie node (a prefix of some literal, read by `a` into one state)
    or, once off the trie, a state of `a` alone; then minimised. An open object's other keys
    (any key but the declared names) cost ~4x less than through the generic product."""
    from .kernels import trie_parents

    budget = _Budget(limits)
    node_byte, node_depth, _end, node_lo, node_hi = literal_trie(literals)
    n_t, n_a = len(node_byte), a.n_states
    budget.check_states(n_t + n_a)
    parent = trie_parents(node_depth)
    # classes: a's, with every byte on a trie edge in a class of its own
    on_edge = np.zeros(256, bool)
    on_edge[node_byte[1:]] = True
    _u, first, cls = np.unique(a.classes.astype(np.int64) * 257 + np.where(on_edge, np.arange(1, 257), 0),
                               return_index=True, return_inverse=True)
    cls = cls.reshape(-1)
    ta = a.trans[:, a.classes[first]] if n_a else np.zeros((0, len(first)), np.int32)
    # a's state after each node's prefix (-1: a rejects it), parents before children (DFS order)
    at = np.full(n_t, -1, np.int64)
    at[0] = 0 if n_a else -1
    par, col, at_l = parent.tolist(), cls[node_byte].tolist(), at.tolist()
    for i in range(1, n_t):
        q = at_l[par[i]]
        at_l[i] = int(ta[q, col[i]]) if q >= 0 else -1
    at = np.array(at_l, np.int64)
    table = np.full((n_t + n_a, len(first)), -1, np.int32)
    table[n_t:] = np.where(ta >= 0, ta + n_t, -1)
    live = np.flatnonzero(at >= 0)
    table[live] = table[n_t + at[live]]  # leaving the trie: a alone
    child = np.arange(1, n_t)
    table[parent[child], cls[node_byte[child]]] = np.where(at[child] >= 0, child, -1)
    accept = np.concatenate([(at >= 0) & a.accept[np.maximum(at, 0)] & ~(node_hi > node_lo), a.accept]) \
        if n_a else np.zeros(n_t, bool)
    return minimize(ByteDFA(table, cls.astype(np.uint8), accept), budget)


def intersection(a: ByteDFA, b: ByteDFA, limits: Limits) -> ByteDFA:
    return _product(_complete(a), _complete(b), lambda x, y: bool(x) and bool(y), _Budget(limits))


def union(a: ByteDFA, b: ByteDFA, limits: Limits) -> ByteDFA:
    return _product(_complete(a), _complete(b), lambda x, y: bool(x) or bool(y), _Budget(limits))


def explicit_dfa(start, step, accept, alphabet: bytes, limits: Limits) -> ByteDFA:
    """DFA from an explicit step function over hashable states (None = dead)."""
    budget = _Budget(limits)
    index, order, rows = {start: 0}, [start], []
    k = 0
    while k < len(order):
        if k % 512 == 0:
            budget.check_time()
        st = order[k]
        k += 1
        row = {}
        for b in alphabet:
            nxt = step(st, b)
            if nxt is None:
                continue
            j = index.get(nxt)
            if j is None:
                j = index[nxt] = len(order)
                order.append(nxt)
                budget.check_states(len(order))
            row[b] = j
        rows.append(row)
    col = {b: i + 1 for i, b in enumerate(alphabet)}  # one class per alphabet byte; class 0: the rest
    classes = np.zeros(256, np.uint8)
    classes[list(alphabet)] = np.arange(1, len(alphabet) + 1)
    table = np.full((len(order), len(alphabet) + 1), -1, np.int32)
    for i, row in enumerate(rows):
        for b, j in row.items():
            table[i, col[b]] = j
    acc = np.array([bool(accept(s)) for s in order], bool)
    return minimize(ByteDFA(table, classes, acc), budget)


# ---------------------------------------------------------------------------------------------
# Strings

_SPECIAL = list(range(0x20)) + [0x22, 0x5C]
_SHORT = {0x22: '"', 0x5C: "\\", 8: "b", 12: "f", 10: "n", 13: "r", 9: "t"}


def escape_of(b: int) -> str:
    """The canonical escape (without the leading backslash) of a special byte."""
    return _SHORT.get(b) or f"u{b:04x}"


_CACHE_LIMITS = Limits(max_states=1_000_000, time_limit=3600.0)


@lru_cache(maxsize=None)
def _any_content() -> ByteDFA:
    return build(length_node(0, None), _CACHE_LIMITS)


@lru_cache(maxsize=512)
def _string_dfa(min_len: int, max_len: int | None) -> ByteDFA:
    return string_dfa(_any_content(), min_len, max_len, _CACHE_LIMITS)


def string_node(min_len: int = 0, max_len: int | None = None, limits: Limits | None = None):
    """A JSON string of min..max code points, no other constraint (shared DFAs for short bounds)."""
    if (max_len if max_len is not None else min_len) <= 256:
        return g.Dfa(_string_dfa(min_len, max_len))
    return g.Dfa(string_dfa(_any_content(), min_len, max_len, limits or Limits()))


# Bytes that begin a code point (not UTF-8 continuation bytes 0x80-0xBF).
_LEAD = np.array([not 0x80 <= b <= 0xBF for b in range(256)])


def counted_dfa(content: ByteDFA, lo: int, hi: int | None, budget: _Budget) -> ByteDFA:
    """The strings of `content` (a DFA over UTF-8) with lo..hi code points (not minimised).

    A layered product built with numpy: layer i holds the content states reachable after i code
    points. Once a layer repeats the previous one, every later layer does too and is stamped out
    in one step: a maxLength of 10,000 costs a few array operations, not 10,000 copies of a
    character run through a subset construction."""
    n = content.n_states
    if n == 0 or (hi is not None and lo > hi):
        return _empty_dfa()
    cls, first = _split_classes(content.classes, _LEAD)
    trans = content.trans[:, content.classes[first]]  # [n, k]: classes split by lead/continuation
    lead = _LEAD[first]
    n_layers = (hi + 1) if hi is not None else lo + 1  # without hi, the last layer is "lo or more"

    def close(entry, mask):  # the states reachable from `entry` on the byte classes in `mask`
        got = entry
        while True:
            nxt = trans[got][:, mask].ravel()
            new = np.union1d(got, nxt[nxt >= 0])
            if len(new) == len(got):
                return got
            got = new

    cont = ~lead
    layers = [close(np.array([0]), cont)]
    while len(layers) < n_layers:
        nxt = trans[layers[-1]][:, lead].ravel()
        nxt = close(np.unique(nxt[nxt >= 0]), cont)
        if not len(nxt):
            n_layers = len(layers)
            break
        if np.array_equal(nxt, layers[-1]):
            break  # a fixpoint: every later layer is a copy of the last one
        layers.append(nxt)
        if len(layers) % 256 == 0:
            budget.check_states(sum(map(len, layers)))
            budget.check_time()
    if hi is None and len(layers) == n_layers:
        layers[-1] = close(layers[-1], np.ones(len(lead), bool))
    n_explicit = len(layers)
    sizes = [len(x) for x in layers] + [len(layers[-1])] * (n_layers - n_explicit)
    offsets = np.zeros(n_layers + 1, np.int64)
    np.cumsum(sizes, out=offsets[1:])
    budget.check_states(int(offsets[-1]))
    rank = np.full((n_explicit, n), -1, np.int64)  # a content state's index within its layer
    for i, x in enumerate(layers):
        rank[i, x] = np.arange(len(x))
    table = np.full((int(offsets[-1]), trans.shape[1]), -1, np.int32)
    accept = np.zeros(int(offsets[-1]), bool)
    for i, x in enumerate(layers):
        copies = n_layers - n_explicit + 1 if i == n_explicit - 1 else 1
        layer = i + np.arange(copies)[:, None]  # the layer index of each copy
        src = offsets[layer] + np.arange(len(x))[None, :]
        rows = trans[x]
        for c in range(rows.shape[1]):
            t = rows[:, c]
            to = layer + int(lead[c])
            if hi is None:
                to = np.minimum(to, n_layers - 1)  # "lo or more" loops on itself
            r = rank[min(i + int(lead[c]), n_explicit - 1), np.maximum(t, 0)]
            ok = (t >= 0)[None, :] & (to < n_layers)
            dst = offsets[np.minimum(to, n_layers - 1)] + r[None, :]
            table[src[ok], c] = dst[ok]
        accept[src.ravel()] = (content.accept[x][None, :] & (layer >= lo)).ravel()
    return ByteDFA(table, cls, accept)


def string_dfa(content: ByteDFA, lo: int, hi: int | None, limits: Limits) -> ByteDFA:
    """The JSON strings (quotes included) whose decoded contents are in `content` and have lo..hi
    code points."""
    budget = _Budget(limits)
    if lo or hi is not None:
        content = counted_dfa(content, lo, hi, budget)
    return _quoted(_escaped(content), budget)  # minimised once, at the end


def _split_classes(classes: np.ndarray, key: np.ndarray):
    """Byte classes refined by a per-byte key: (new classes, a representative byte per class)."""
    _u, first, cls = np.unique(classes.astype(np.int64) * 512 + key, return_index=True, return_inverse=True)
    return cls.reshape(-1).astype(np.uint8), first


_ESCAPE_BYTES = np.zeros(256, np.int64)  # bytes an escaped string treats apart: specials and escape letters
_ESCAPE_BYTES[_SPECIAL + [ord(c) for c in "bfnrtu0123456789abcdef"]] = 1 + np.arange(len(_SPECIAL) + 22)


# Key DFAs of extra properties by their content DFA's arrays, per process: most objects that
# allow extra keys allow any key, and that DFA (escaping, then its subset construction) is the
# same every time. Kept read-only; least recently used first out.
_KEYS: "OrderedDict[tuple, ByteDFA]" = OrderedDict()
_KEYS_LOCK = threading.Lock()
_KEYS_SIZE = 64


def quoted_key(content: ByteDFA, limits: Limits) -> ByteDFA:
    """The property names (quotes included) whose decoded text is in `content`, built as
    `"` escape_dfa(content) `"`."""
    tag = (content.trans.shape, content.trans.tobytes(), content.classes.tobytes(), content.accept.tobytes())
    with _KEYS_LOCK:
        got = _KEYS.get(tag)
        if got is not None:
            _KEYS.move_to_end(tag)
    if got is not None:
        if got.n_states > limits.max_states:  # what building it again would have raised
            raise CompileLimitError.states(limits.max_states)
        return got
    got = build(g.seq(g.text('"'), g.Dfa(escape_dfa(content)), g.text('"')), limits)
    for a in (got.trans, got.classes, got.accept):
        a.flags.writeable = False
    with _KEYS_LOCK:
        _KEYS[tag] = got
        while len(_KEYS) > _KEYS_SIZE:
            _KEYS.popitem(last=False)
    return got


def escape_dfa(content: ByteDFA, budget: _Budget | None = None) -> ByteDFA:
    """From a DFA over decoded string contents (UTF-8) to the minimal DFA of its canonical JSON
    escaping (without the quotes): bytes `"`, `\\` and controls become their escape sequences."""
    return minimize(_escaped(content), budget)


def _escaped(content: ByteDFA) -> ByteDFA:
    """`escape_dfa` before minimisation.

    Every state with an edge on a special byte gets its own small trie of escape sequences
    (after the backslash: short escapes, u, u0, u00, u000, u001); branches that lead nowhere are
    trimmed by the minimisation."""
    n = content.n_states
    if n == 0:
        return content
    cls, first = _split_classes(content.classes, _ESCAPE_BYTES)
    full = content.trans[:, content.classes[first]]  # [n, k]
    col = lambda b: int(cls[b])  # noqa: E731
    special = full[:, [col(b) for b in _SPECIAL]]
    src = np.flatnonzero((special >= 0).any(axis=1))
    m = len(src)
    base = n + 6 * np.arange(m)  # trie nodes: "", u, u0, u00, u000, u001
    table = np.full((n + 6 * m, len(first)), -1, np.int32)
    table[:n] = full
    table[:n, [col(b) for b in _SPECIAL]] = -1
    table[src, col(0x5C)] = base
    for b in _SPECIAL:
        esc = escape_of(b)
        if len(esc) == 1:
            table[base, col(ord(esc))] = full[src, col(b)]
        else:  # u00XX
            table[base + (4 if b < 0x10 else 5), col(ord(esc[-1]))] = full[src, col(b)]
    for node, ch in ((0, "u"), (1, "0"), (2, "0"), (3, "0")):
        table[base + node, col(ord(ch))] = base + node + 1
    table[base + 3, col(ord("1"))] = base + 5
    accept = np.zeros(n + 6 * m, bool)
    accept[:n] = content.accept
    return ByteDFA(table, cls, accept)


def _quoted(content: ByteDFA, budget: _Budget) -> ByteDFA:
    """`"` content `"` for escaped contents (which never hold a bare `"`)."""
    n = content.n_states
    if n == 0:
        return content
    quote = np.zeros(256, np.int64)
    quote[0x22] = 1
    cls, first = _split_classes(content.classes, quote)
    q = int(cls[0x22])
    table = np.full((n + 2, len(first)), -1, np.int32)
    full = content.trans[:, content.classes[first]]
    table[1:n + 1] = np.where(full >= 0, full + 1, -1)
    table[0, q] = 1
    table[1 + np.flatnonzero(content.accept), q] = n + 1
    accept = np.zeros(n + 2, bool)
    accept[n + 1] = True
    return minimize(ByteDFA(table, cls, accept), budget)


def length_node(min_len: int, max_len: int | None):
    return g.Repeat(g.CharSet(((0, g.MAX_CODE_POINT),)), min_len, max_len)


# ---------------------------------------------------------------------------------------------
# Numbers: one explicit DFA over "-.0123456789" = canonical syntax x lower bound x upper bound x
# multipleOf remainder. Never enumerates values: states are O(digits of the bounds) x O(step).

_NUM_ALPHABET = b"-.0123456789"
MAX_BOUND_DIGITS = 2000
MAX_MULTIPLE_STATES = 200_000


def _syntax_step(st, ch, integer: bool):
    # states: S start, M after '-', Z '0' (non-negative zero), I int digits, D after '.', F frac
    # digits ending non-zero, F0 frac digits ending zero
    d = 48 <= ch <= 57
    if st == "S":
        return "M" if ch == 45 else "Z" if ch == 48 else "I" if d else None
    if st == "M":
        return "MZ" if ch == 48 else "I" if d else None
    if st in ("Z", "MZ", "I"):
        if st == "I" and d:
            return "I"
        if ch == 46 and not integer:
            return "MD" if st == "MZ" else "D"
        return None
    if st in ("D", "F", "F0", "MD", "MF", "MF0"):
        if not d:
            return None
        neg = st.startswith("M")
        return ("MF" if neg else "F") if ch != 48 else ("MF0" if neg else "F0")
    return None


def _syntax_accept(st) -> bool:
    return st in ("Z", "I", "F", "MF")


def _split(d: Decimal):
    """|d| as (integer digits without leading zeros, fraction digits without trailing zeros)."""
    s = format(abs(d).normalize(), "f")
    i, _, f = s.partition(".")
    return i.lstrip("0") or "0", f.rstrip("0")


def _cmp_step(st, ch, di: str, df: str):
    """Magnitude comparison of the number being read with the constant (di, df).
    st: ('i', n, rel) reading integer digits; ('f', k, rel) reading fraction; rel in -1,0,1."""
    phase, n, rel = st
    if ch == 45:  # sign: handled by the caller
        return st
    if phase == "i":
        if ch == 46:
            if n < len(di):
                return ("f", 0, -1)
            if n > len(di):
                return ("f", 0, 1)
            return ("f", 0, rel)
        dg = chr(ch)
        if n >= len(di):
            return ("i", len(di) + 1, 1)
        if rel == 0:
            rel = (dg > di[n]) - (dg < di[n])
        return ("i", n + 1, rel)
    # fraction
    if rel != 0:
        return ("f", -1, rel)
    dg = chr(ch)
    if n < len(df):
        r = (dg > df[n]) - (dg < df[n])
        return ("f", n + 1, r) if r == 0 else ("f", -1, r)
    return ("f", len(df), 1) if dg != "0" else ("f", len(df), 0)


def _cmp_final(st, di: str, df: str) -> int:
    phase, n, rel = st
    if phase == "i":
        if n < len(di):
            return -1
        if n > len(di):
            return 1
        if rel != 0:
            return rel
        return -1 if df else 0
    if rel != 0:
        return rel
    return -1 if n < len(df) else 0


# number_dfa results per process, by the exact spelling of their bounds (str of each Decimal:
# equal strings are equal Decimals, digits and exponent alike): the same bounds (minimum 0,
# maximum 100, int32/int64 limits) recur within a schema and across schemas, and a wide bound's
# step-by-step construction costs up to seconds (see `DfaMemo`).
_NUMBERS = DfaMemo(256, keep=lambda dfa: dfa.n_states > 0)  # (the shared empty DFA is not kept)


def number_dfa(*, integer: bool, lower=None, lower_excl=False, upper=None, upper_excl=False,
               multiple=None, limits: Limits) -> ByteDFA:
    """Canonical numbers (see module doc) with value in the bounds and a multiple of `multiple`.

    Bounds and `multiple` are Decimals (None = absent)."""
    key = (bool(integer), None if lower is None else str(lower), bool(lower_excl),
           None if upper is None else str(upper), bool(upper_excl), None if multiple is None else str(multiple))
    return _NUMBERS.get(key, limits, lambda lim: _number_dfa(integer, lower, lower_excl, upper, upper_excl,
                                                             multiple, lim))


def _number_dfa(integer: bool, lower, lower_excl, upper, upper_excl, multiple, limits: Limits) -> ByteDFA:
    bounds = []
    for b, excl, is_lower in ((lower, lower_excl, True), (upper, upper_excl, False)):
        if b is None:
            continue
        di, df = _split(b)
        if len(di) + len(df) > MAX_BOUND_DIGITS:
            raise CompileLimitError(f"numeric bound {b} has more than {MAX_BOUND_DIGITS} digits")
        bounds.append((di, df, b < 0, excl, is_lower))
    p, k = 1, 0
    if multiple is not None:
        sign, digits, exp = multiple.normalize().as_tuple()
        p = int("".join(map(str, digits)) or "0")
        if exp >= 0:
            p *= 10 ** exp
        else:
            k = -exp
        if p * (k + 1) > MAX_MULTIPLE_STATES:
            raise CompileLimitError(f"multipleOf {multiple} needs {p * (k + 1)} automaton states "
                                    f"(more than {MAX_MULTIPLE_STATES})")

    def step(st, ch):
        syn, neg, cmps, rem = st
        syn2 = _syntax_step(syn, ch, integer)
        if syn2 is None:
            return None
        if ch == 45:
            return (syn2, True, cmps, rem)
        cmps2 = tuple(_cmp_step(c, ch, di, df) for c, (di, df, *_r) in zip(cmps, bounds))
        if p != 1 or k:
            r, j = rem
            if ch == 46:
                rem2 = (r, 0)
            elif j is None:
                rem2 = ((r * 10 + ch - 48) % p, None)
            elif j < k:
                rem2 = ((r * 10 + ch - 48) % p, j + 1)
            else:
                return None  # a fraction digit past the step's precision: never a multiple
        else:
            rem2 = rem
        return (syn2, neg, cmps2, rem2)

    def accept(st):
        syn, neg, cmps, rem = st
        if not _syntax_accept(syn):
            return False
        for c, (di, df, bneg, excl, is_lower) in zip(cmps, bounds):
            mag = _cmp_final(c, di, df)
            if not neg:  # x >= 0 ("-0" is not canonical)
                rel = 1 if bneg else mag
            else:
                rel = -mag if bneg else -1
            if is_lower and (rel < 0 or (excl and rel == 0)):
                return False
            if not is_lower and (rel > 0 or (excl and rel == 0)):
                return False
        if p != 1 or k:
            r, j = rem
            used = 0 if j is None else j
            if (r * pow(10, k - used, p)) % p != 0:
                return False
        return True

    start = ("S", False, tuple(("i", 0, 0) for _ in bounds), (0, None))
    return explicit_dfa(start, step, accept, _NUM_ALPHABET, limits)


_FRACTION_IR = g.seq(g.text("."), g.Repeat(g.ByteSet(((48, 57),)), 0, None), g.ByteSet(((49, 57),)))
# Canonical numbers only, as number_dfa: no "-0" (the value 0 would have two spellings, and a
# difference such as not/minimum 0 would let "-0" through)
_ANY_NUMBER_IR = g.alt(
    g.seq(g.Repeat(g.text("-"), 0, 1), g.ByteSet(((49, 57),)), g.Repeat(g.ByteSet(((48, 57),)), 0, None),
          g.Repeat(_FRACTION_IR, 0, 1)),
    g.seq(g.text("0"), g.Repeat(_FRACTION_IR, 0, 1)),
    g.seq(g.text("-0"), _FRACTION_IR),
)


@lru_cache(maxsize=None)
def any_number() -> g.Dfa:
    """Any JSON number, as a shared DFA leaf (built on first use: importing stays cheap for cached loads)."""
    return g.Dfa(build(_ANY_NUMBER_IR, _CACHE_LIMITS))


def to_decimal(v, what: str) -> Decimal:
    if isinstance(v, bool) or not isinstance(v, (int, float, Decimal)):
        raise CompileError(f"{what} must be a number, not {json.dumps(v, default=str)[:40]}")
    try:
        d = Decimal(repr(v)) if isinstance(v, float) else Decimal(v)
    except InvalidOperation:
        raise CompileError(f"{what} is not a finite number: {v!r}") from None
    if not d.is_finite():
        raise CompileError(f"{what} is not a finite number: {v!r}")
    return d


# ---------------------------------------------------------------------------------------------
# Formats: exact regexes (Python syntax, full match) over the decoded string.

_D = "[0-9]"


def _date(year: str, leap: str) -> str:
    return (rf"(?:{year}-(?:(?:0[13578]|1[02])-(?:0[1-9]|[12][0-9]|3[01])|(?:0[469]|11)-(?:0[1-9]|[12][0-9]|30)"
            rf"|02-(?:0[1-9]|1[0-9]|2[0-8]))|{leap}-02-29)")


# Year 0000 is RFC 3339 syntax, but Python's datetime (the `jsonschema` package's format checker)
# has no year 0: dates are 0001-9999 here, and any four digits where a superset is needed.
_LEAP = r"(?:[0-9]{2}(?:0[48]|[2468][048]|[13579][26])|(?:0[48]|[2468][048]|[13579][26])00)"
_DATE = _date(r"(?:[1-9][0-9]{3}|0[1-9][0-9]{2}|00[1-9][0-9]|000[1-9])", _LEAP)
_DATE_UPPER = _date("[0-9]{4}", r"(?:[0-9]{2}(?:0[48]|[2468][048]|[13579][26])|(?:[02468][048]|[13579][26])00)")
_HM = r"(?:[01][0-9]|2[0-3]):[0-5][0-9]"
_OFFSET = r"(?:[Zz]|[+-](?:[01][0-9]|2[0-3]):[0-5][0-9])"
_FRAC = r"(?:\.[0-9]+)?"


def _leap_second_times() -> str:
    # A leap second (:60) is valid only when the time is 23:59 UTC. Exact for offsets in whole
    # hours (all real-world leap-second offsets); other offsets with :60 are rejected.
    alts = []
    for sign in "+-":
        for oh in range(24):
            local = (23 + (oh if sign == "+" else -oh)) % 24
            alts.append(f"{local:02d}:59:60{_FRAC}[{sign}]{oh:02d}:00")
    alts.append(f"23:59:60{_FRAC}[Zz]")
    return "(?:" + "|".join(alts) + ")"


_TIME = f"(?:{_HM}:[0-5][0-9]{_FRAC}{_OFFSET}|{_leap_second_times()})"
_DUR_TIME = r"T(?:[0-9]+H(?:[0-9]+M(?:[0-9]+S)?)?|[0-9]+M(?:[0-9]+S)?|[0-9]+S)"
_DURATION = (r"P(?:(?:[0-9]+Y(?:[0-9]+M(?:[0-9]+D)?)?|[0-9]+M(?:[0-9]+D)?|[0-9]+D)(?:" + _DUR_TIME + r")?"
             r"|" + _DUR_TIME + r"|[0-9]+W)")
_OCTET = r"(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9][0-9]|[0-9])"
_IPV4 = rf"{_OCTET}(?:\.{_OCTET}){{3}}"
_H16 = r"[0-9A-Fa-f]{1,4}"
_LS32 = rf"(?:{_H16}:{_H16}|{_IPV4})"
_IPV6 = "(?:" + "|".join([
    rf"(?:{_H16}:){{6}}{_LS32}",
    rf"::(?:{_H16}:){{5}}{_LS32}",
    rf"(?:{_H16})?::(?:{_H16}:){{4}}{_LS32}",
    rf"(?:(?:{_H16}:){{0,1}}{_H16})?::(?:{_H16}:){{3}}{_LS32}",
    rf"(?:(?:{_H16}:){{0,2}}{_H16})?::(?:{_H16}:){{2}}{_LS32}",
    rf"(?:(?:{_H16}:){{0,3}}{_H16})?::{_H16}:{_LS32}",
    rf"(?:(?:{_H16}:){{0,4}}{_H16})?::{_LS32}",
    rf"(?:(?:{_H16}:){{0,5}}{_H16})?::{_H16}",
    rf"(?:(?:{_H16}:){{0,6}}{_H16})?::",
]) + ")"
# RFC 5891 4.2.3.1: no "--" in the 3rd and 4th positions. That also rules out "xn--" A-labels,
# whose Punycode validity is not checked: IDN host names in A-label form are rejected.
def _label(n: int) -> str:
    a, m = "[A-Za-z0-9]", "[A-Za-z0-9-]"
    return rf"(?:{a}(?:{m}?{a})?|{a}{m}(?:{m}{a}|(?:{a}{m}|-{a}){m}{{0,{n - 5}}}{a}))"


_LABEL, _LABEL30 = _label(63), _label(30)
# RFC 1123 also caps the total at 253 characters; counting that against the 63-character label
# limit costs ~24k states, so the format accepts the subset that needs no counter: up to 3 labels
# of up to 63 characters, or up to 8 labels of up to 30 (both stay under 253).
_HOSTNAME = rf"(?:{_LABEL}(?:\.{_LABEL}){{0,2}}|{_LABEL30}(?:\.{_LABEL30}){{0,7}})"
_JSON_POINTER = r"(?:/(?:[^~/]|~[01])*)*"
_ATEXT = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]"
_EMAIL = (rf"(?:{_ATEXT}+(?:\.{_ATEXT}+)*|\"(?:[\x20\x21\x23-\x5b\x5d-\x7e]|\\[\x20-\x7e])*\")@"
          rf"(?:{_HOSTNAME}|\[{_IPV4}\]|\[IPv6:{_IPV6}\])")
_UUID = r"[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}"
_UNRES = r"A-Za-z0-9\-._~"
_SUB = r"!$&'()*+,;="
_PCT = r"%[0-9A-Fa-f]{2}"
_PCHAR = rf"(?:[{_UNRES}{_SUB}:@]|{_PCT})"
_SEG = rf"{_PCHAR}*"
_SEG_NZ = rf"{_PCHAR}+"
_SEG_NZ_NC = rf"(?:[{_UNRES}{_SUB}@]|{_PCT})+"
_IPFUTURE = rf"[vV][0-9A-Fa-f]+\.[{_UNRES}{_SUB}:]+"
_HOST = rf"(?:\[(?:{_IPV6}|{_IPFUTURE})\]|{_IPV4}|(?:[{_UNRES}{_SUB}]|{_PCT})*)"
_AUTH = rf"(?:(?:[{_UNRES}{_SUB}:]|{_PCT})*@)?{_HOST}(?::[0-9]*)?"
_QF = rf"(?:\?(?:{_PCHAR}|[/?])*)?(?:#(?:{_PCHAR}|[/?])*)?"
_HIER = rf"(?://{_AUTH}(?:/{_SEG})*|/(?:{_SEG_NZ}(?:/{_SEG})*)?|{_SEG_NZ}(?:/{_SEG})*|)"
_URI = rf"[A-Za-z][A-Za-z0-9+\-.]*:{_HIER}{_QF}"
_REL = rf"(?://{_AUTH}(?:/{_SEG})*|/(?:{_SEG_NZ}(?:/{_SEG})*)?|{_SEG_NZ_NC}(?:/{_SEG})*|){_QF}"

FORMATS = {
    "date": _DATE,
    "time": _TIME,
    "date-time": f"{_DATE}[Tt]{_TIME}",
    "duration": _DURATION,
    "email": _EMAIL,
    "hostname": _HOSTNAME,
    "ipv4": _IPV4,
    "ipv6": _IPV6,
    "uuid": _UUID,
    "uri": _URI,
    "uri-reference": f"(?:{_URI}|{_REL})",
    "json-pointer": _JSON_POINTER,
    "relative-json-pointer": rf"(?:0|[1-9][0-9]*)(?:#|{_JSON_POINTER})",
}
# Formats whose language above is a strict subset of the valid strings (A-labels, host names past
# the counted subset, leap seconds at offsets that are not whole hours, general address literals,
# lower-case duration designators, year 0000).
# Exact for the strings they accept, but subtracting them (not, oneOf, if, maxContains) would let
# through the valid strings they leave out: there the Lowerer uses these supersets instead.
_HOST_UPPER = r"(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*\.?"
_TIME_UPPER = f"{_HM}:(?:[0-5][0-9]|60){_FRAC}{_OFFSET}"
FORMATS_UPPER = {
    "hostname": _HOST_UPPER,
    # RFC 5321's sub-domain rule has no length limit of its own
    "email": rf"(?:{_ATEXT}+(?:\.{_ATEXT}+)*|\"(?:[\x20\x21\x23-\x5b\x5d-\x7e]|\\[\x20-\x7e])*\")@"
             r"(?:[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*\.?"
             r"|\[[\x21-\x5a\x5e-\x7e]*\])",
    "time": _TIME_UPPER,
    "date": _DATE_UPPER,
    "date-time": f"{_DATE_UPPER}[Tt]{_TIME_UPPER}",
    # ABNF strings are case-insensitive (RFC 5234): "p1d" too
    "duration": "".join(f"[{c}{c.lower()}]" if c in "PYMWDTHS" else c for c in _DURATION),
}
# Standard formats kmgrammar cannot assert exactly: compiling them is an UnsupportedFeatureError.
# Any other format name (int32, double, ...) is an annotation and is ignored, as the spec says.
UNSUPPORTED_FORMATS = frozenset({"regex", "idn-email", "idn-hostname", "iri", "iri-reference", "uri-template"})


@lru_cache(maxsize=None)
def format_dfa(name: str, upper: bool = False) -> ByteDFA:
    """Content DFA (decoded string, UTF-8) of a supported format; `upper`: a superset of the valid
    strings where the format's own language leaves some out (`FORMATS_UPPER`)."""
    from .regex import parse_regex

    lim = Limits(max_states=200_000, time_limit=60.0)
    dfa = build(parse_regex(FORMATS_UPPER.get(name, FORMATS[name]) if upper else FORMATS[name], dialect="python"), lim)
    return dfa
