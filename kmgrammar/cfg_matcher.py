"""GrammarMatcher: the `Matcher` API for context-free ("cfg") artifacts.

State: the Earley charts of the bytes accepted so far (`earley.py`); rollback truncates them and
copies share them. A mask is the OR of the precomputed rows of the positions in the last chart
(tokens that stay on byte edges, or were classified valid ahead of time), plus the
context-dependent tokens whose remainders are viable on the real stack.

Remainder verdicts without walking the real stack. A remainder s read from item (u, o) is viable
iff u's rule instance reads all of s by itself, or completes after s[:j] (a "pop") and some caller
waiting for it at chart o reads s[j:] in the same way, recursively down the stack. What one rule
instance does with a string depends only on its position and the string: `earley.stack_tables`
computes it ahead of time (cfg_loc_* arrays; on first use for artifacts without them) for the
remainders from each exit state u and, closed under pops, for the suffixes that reach a caller's
return position r. What the stack below chart o does with each such suffix is a boolean vector
W(o)[M] (M: the rule being completed): the OR over the callers (r, o') waiting for M at o of
"r reads it locally, or pops to W(o')". W is computed per rule on demand (for the rules a mask
needs, and below only where a caller's return can pop), memoised on the chart, bottom-up (a
fixpoint where callers sit at o itself, as with left recursion), interned by content, and cached by
(rule, caller position, id of the caller's own W) per waiter, so stacks that differ only deeper
than any suffix reaches share it: a stack shape never seen before costs a dictionary lookup per
new stack level, a few vector operations at worst, never a walk. A mask depends only on the
items' positions, accepting, and the W ids of the rules of positions with context-dependent
tokens: cached by those, then by the verdicts of each group's remainders, and memoised on the
last chart. A mask not cached costs a handful of vector operations whatever the number of groups:
per set of positions, the OR of their rows and all their groups' tokens in one sorted array are
kept, so the verdicts (laid end to end) select the tokens in one gather and one OR per word; the
mask is kept as those words over the shared rows (`_Patch`: no new 12.5 KB array per mask).
Within reach of `max_depth` (where predictions are cut) every verdict is walked against the real
charts instead: exact there too.
"""

from __future__ import annotations

import gc
import itertools
from bisect import bisect_left
from collections import OrderedDict

import numpy as np

from .artifact import row_token_ids, write_stored
from .earley import DEFAULT_MAX_CHART_ITEMS, DEFAULT_MAX_DEPTH, Lazy, Network, check_sorted, stack_tables
from .errors import ArtifactError, MatcherError
from .matcher import Matcher, _numpy_view

_MASK_CACHE = 2048  # masks kept per grammar (up to 12.5 KB each at 100k tokens; most share their rows)
_PROMOTE = 16  # fills after which a mask kept as a patch is kept whole too (see _Patch)
_POSITION_SETS = 256  # position sets with context-dependent tokens kept (few distinct sets occur)
_W_CACHE = 8192  # stack vectors and verdicts kept per grammar
_SMALL = 4096  # positions up to which a grammar's per-position tables are built up front (else on first use)
_EAGER = 1 << 16  # pop pairs up to which a grammar's stack tables are converted up front (see _Tables)
_GATHER = 64  # position sets over this many find their distinct rows by a numpy gather (see rows_or)
_FEW_ITEMS = 8  # charts with more scanned items look for items with groups by a set operation
_ACCEPTING = frozenset([-1])  # what accepting adds to a mask key
_BIT = np.left_shift(np.uint32(1), np.arange(32, dtype=np.uint32)).view(np.int32)  # a token's bit in its word
_NONE = (-2, None)  # W of a rule nobody waits for (the start rule at offset 0): reads nothing
# What a waiter's caller contributes to a W cache key instead of the id of its own W:
_LOCAL = -1  # the caller's return position never completes its rule: its W is not read
_SAME = -3  # the caller started at the same chart: its W is part of the same computation


class _Tokens:
    """Context-dependent tokens (of one position's groups, or of a position set's), sorted by id:
    token k is allowed iff verdict slot[k] is set, the slots numbering the remainders of each
    group's exit state, group after group; bit[k] its bit in its mask word (int32, as masks are),
    `words` the distinct words and `starts` where each word's tokens begin, or None when no two
    tokens share a word (then each token's bit is its word's whole change: no OR per word)."""

    __slots__ = ("slot", "n_slots", "toks", "bit", "words", "starts")

    def __init__(self, toks: np.ndarray, slot: np.ndarray, n_slots: int, bit: np.ndarray,
                 words: np.ndarray, starts: np.ndarray):
        self.toks, self.slot, self.n_slots, self.bit, self.words = toks, slot, n_slots, bit, words
        self.starts = None if len(starts) == len(toks) else starts

    @staticmethod
    def of(toks: np.ndarray, slot: np.ndarray, n_slots: int) -> "_Tokens":
        """From tokens in any order (ties keep their order)."""
        order = np.argsort(toks, kind="stable")
        toks = toks[order]
        word = toks >> 5
        starts = np.flatnonzero(np.diff(word, prepend=-1))
        return _Tokens(toks, slot[order], n_slots, _BIT[toks & 31], word[starts], starts)

    @staticmethod
    def join(parts: list) -> "_Tokens":
        """The tokens of several lists, each one's slots after the previous ones'."""
        slots, off = [], 0
        for p in parts:
            slots.append(p.slot + off)
            off += p.n_slots
        return _Tokens.of(np.concatenate([p.toks for p in parts]), np.concatenate(slots), off)


def _position_tokens(a: dict, n: int):
    """tokens_of(p): the `_Tokens` of position p's groups, or None. Every position's tokens are
    sorted in one go here (by position, then id, stable: as `_Tokens.of` would order them), so a
    position's `_Tokens` is a few slices (made one by one with numpy, ~45 us inside the first
    mask that needed them)."""
    gp, gtp, rp, gs = a["cfg_grp_ptr"], a["cfg_grp_tok_ptr"], a["cfg_rem_ptr"], a["cfg_grp_state"]
    grp_of = np.repeat(np.arange(len(gs)), np.diff(gtp))  # each token entry's group
    pos_of = np.repeat(np.arange(n), np.diff(gp))  # each group's position
    n_rem = (rp[gs + 1] - rp[gs]).astype(np.int64)  # remainders (verdict slots) of each group
    cum = np.concatenate([[0], np.cumsum(n_rem)])
    # slots: a group's remainders numbered after those of the earlier groups of its position
    slot = a["cfg_grp_rem"].astype(np.intp) + (cum[:-1] - cum[gp[pos_of]])[grp_of]
    tok = a["cfg_grp_tok"].astype(np.int64)
    order = np.lexsort((tok, pos_of[grp_of]))
    tok, slot = tok[order], slot[order]
    word = tok >> 5
    bit = _BIT[tok & 31]
    ptr = gtp[gp]  # each position's token entries, in the same place after the sort
    heads = np.zeros(len(tok), bool)  # first entry of each word within each position
    heads[ptr[:-1][np.diff(ptr) > 0]] = True
    heads[1:] |= word[1:] != word[:-1]
    at = np.flatnonzero(heads)
    hp = np.searchsorted(at, ptr)
    slots = cum[gp[1:]] - cum[gp[:-1]]
    # (arrays read with .item(): lists over a big schema's positions would cost megabytes)

    def tokens_of(p: int):
        if gp.item(p) == gp.item(p + 1):
            return None
        lo, hi, h = ptr.item(p), ptr.item(p + 1), at[hp.item(p): hp.item(p + 1)]
        return _Tokens(tok[lo:hi], slot[lo:hi], slots.item(p), bit[lo:hi], word[h], h - lo)

    return tokens_of


class _PositionSet:
    """What a set of positions (with `accepting`) brings to every mask it appears in: the OR of
    their rows (and EOS), and the context-dependent tokens of all their groups (`tokens`, slots
    in `gids` order, or None), so that a mask's verdicts become its bits in a few vector
    operations whatever the number of groups."""

    __slots__ = ("rows", "gids", "tokens", "rows_at")

    def __init__(self, rt: "_Runtime", positions, accepting: bool):
        self.rows = rt.rows_or(positions, accepting)  # read only: shared by masks without groups
        with_groups = sorted(pos for pos in positions if rt.pos_tokens[pos] is not None)
        self.gids = [gid for pos in with_groups for gid in rt.pos_groups[pos]]
        self.tokens = tk = (None if not with_groups else rt.pos_tokens[with_groups[0]] if len(with_groups) == 1
                            else _Tokens.join([rt.pos_tokens[pos] for pos in with_groups]))
        if tk is not None:
            self.rows_at = self.rows[tk.words]

    def verdicts(self, parts: dict) -> bytes:
        """The verdicts of every group laid end to end in `gids` order (parts: gid -> (bytes, bool
        vector over the remainders of its exit state); the bytes are the vector's): with the
        position set, they determine the mask."""
        gids = self.gids
        return parts[gids[0]][0] if len(gids) == 1 else b"".join([parts[g][0] for g in gids])

    def mask(self, parts: dict) -> np.ndarray:
        """The mask (int32) given the verdicts of every group (see `patch`)."""
        if self.tokens is None:
            return self.rows
        return self.patch(self.verdicts(parts)).write(np.empty(len(self.rows), np.int32))

    def patch(self, verdicts: bytes) -> "_Patch":
        """The mask given `verdicts` (see `verdicts`), as a `_Patch` of the rows."""
        tk = self.tokens
        add = tk.bit * np.frombuffer(verdicts, bool)[tk.slot]
        if tk.starts is not None:  # an OR per word, not a sum: a token may appear twice (two exits)
            add = np.bitwise_or.reduceat(add, tk.starts)
        return _Patch(self.rows, tk.words, self.rows_at | add)


class _Patch:
    """A mask kept as the shared rows of its position set and the words its context-dependent
    tokens change: a cold walk makes a new mask every ~9 masks (arithmetic), and a new 12.5 KB
    array costs ~3 page faults (~11 us on this virtual machine), more than writing the words after
    the rows adds to each fill of it (~0.5 us) for most masks. The few filled often (in a cold
    arithmetic walk, 29 of 247 masks take 40% of its fills after their 16th) are kept whole too
    (`full`) from their `_PROMOTE`-th fill on, copied from that fill's output."""

    __slots__ = ("rows", "idx", "words", "full", "fills")

    def __init__(self, rows: np.ndarray, idx: np.ndarray, words: np.ndarray):
        self.rows, self.idx, self.words = rows, idx, words
        self.full = None
        self.fills = 0  # a race between threads only moves the fill at which `full` is made

    def write(self, out: np.ndarray) -> np.ndarray:
        if self.full is not None:
            out[...] = self.full
        else:
            out[...] = self.rows
            out[self.idx] = self.words
            self.fills += 1
            if self.fills == _PROMOTE:
                self.full = out.copy()
        return out


def _bools(a: np.ndarray) -> np.ndarray:
    return a.view(bool) if a.dtype == np.uint8 else a.astype(bool)


class _Tables:
    """Local tables (see the module doc and `earley.stack_tables`) as vectors: per return
    position r, ok[r] (reads suffix t locally, over T) and pop[r] (pairs t -> t after a pop,
    indices into T); per exit state u the same over u's remainders (pops land in T). Sliced on
    first use, key by key: a run touches few of a big grammar's positions, and building them all
    was most of the cost of a grammar's first mask."""

    def __init__(self, a: dict, rem_ptr: list):
        self.n = int(a["cfg_loc_n"][0])
        self._ret, self._ptr = a["cfg_loc_ret"], a["cfg_loc_pop_ptr"]  # ret: ascending
        if len(self._ret) > 1 and not (np.diff(self._ret) > 0).all():
            raise ArtifactError("corrupt cfg artifact: stack table return positions out of order")
        self._ok, self._src, self._dst = _bools(a["cfg_loc_ok"]), a["cfg_loc_pop_src"], a["cfg_loc_pop_dst"]
        self._rem_ptr = rem_ptr
        self._uok, self._uptr, self._udst = _bools(a["cfg_loc_uok"]), a["cfg_loc_upop_ptr"], a["cfg_loc_upop_dst"]
        # by return position r: does r ever complete its rule (1) or not (0). Bytes over all
        # positions: built in one vector operation (~0.1 ms at 87k positions, with the first
        # matcher) and read as fast as a tuple (as a Lazy, first reads cost ~10 us inside masks).
        can_pop = np.zeros(len(rem_ptr) - 1, np.uint8)
        can_pop[self._ret] = np.diff(self._ptr) > 0
        self.can_pop = can_pop.tobytes()
        self.ok, self.pop = Lazy(self._ok_of), Lazy(self._pop_of)
        self.ok_u, self.pop_u = Lazy(self._ok_u_of), Lazy(self._pop_u_of)
        self._span = Lazy(self._span_of)  # one binary search per return position, not one per table
        # Pop tables of up to _EAGER pairs are converted once, here, with the first matcher (as
        # intp, see _pop_of; and each exit state's pairs numbered from its first remainder): a
        # first use is then two slices, not a handful of numpy calls inside some mask.
        self._converted = max(len(self._src), len(self._udst), len(self._uok)) <= _EAGER
        if self._converted:
            self._src, self._dst, self._udst = (x.astype(np.intp) for x in (self._src, self._dst, self._udst))
            self._usrc = np.repeat(np.arange(len(self._uok)), np.diff(self._uptr))  # each pair's remainder
        self._ret_t = self._ptr_t = None  # small tables: r's row found by bisect on tuples
        if len(self._ret) <= _SMALL:
            self._ret_t, self._ptr_t = tuple(self._ret.tolist()), tuple(self._ptr.tolist())

    def _span_of(self, r: int) -> tuple:
        """(k, lo, hi): r's row in the tables and its pops' range."""
        ret = self._ret_t
        if ret is not None:
            k = bisect_left(ret, r)
            if k == len(ret) or ret[k] != r:
                raise ArtifactError(f"corrupt cfg artifact: no stack table for return position {r}")
            return k, self._ptr_t[k], self._ptr_t[k + 1]
        ret = self._ret
        k = int(ret.searchsorted(r))
        if k == len(ret) or ret[k] != r:
            raise ArtifactError(f"corrupt cfg artifact: no stack table for return position {r}")
        return k, int(self._ptr[k]), int(self._ptr[k + 1])

    def _ok_of(self, r: int) -> np.ndarray:
        k, n = self._span[r][0], self.n
        return self._ok[k * n: (k + 1) * n]

    def _pop_of(self, r: int) -> tuple:
        # as intp: int32 indices cost numpy a conversion per gather (~4 us of a W on small tables)
        _, lo, hi = self._span[r]
        if self._converted:
            return self._src[lo:hi], self._dst[lo:hi]
        return self._src[lo:hi].astype(np.intp), self._dst[lo:hi].astype(np.intp)

    def _ok_u_of(self, u: int) -> np.ndarray:
        return self._uok[self._rem_ptr[u]: self._rem_ptr[u + 1]]

    def _pop_u_of(self, u: int) -> tuple:
        lo, hi = self._rem_ptr[u], self._rem_ptr[u + 1]
        uptr = self._uptr
        if self._converted:
            a, b = uptr.item(lo), uptr.item(hi)
            return self._usrc[a:b] - lo, self._udst[a:b]
        counts = uptr[lo + 1: hi + 1] - uptr[lo: hi]
        return np.repeat(np.arange(hi - lo), counts), self._udst[uptr[lo]: uptr[hi]].astype(np.intp)


class _Runtime:
    """Per-compiled-grammar run-time data and caches (built on first use, shared by matchers)."""

    def __init__(self, compiled):
        a = compiled._arrays
        max_depth = int(compiled.options.get("max_depth") or DEFAULT_MAX_DEPTH)
        n = a["dfa_trans"].shape[0]
        # per-position tables of big grammars are made on first use (building all of them was
        # most of the first matcher's cost: ~0.4 s at 44k positions)
        lazy = n > _SMALL
        self.net = Network(a["dfa_trans"], a["dfa_classes"], a["cfg_final_nt"], a["cfg_call_ptr"],
                           a["cfg_call_nt"], a["cfg_call_next"], a["cfg_nt_start"], a["cfg_nullable"],
                           0, max_depth, lazy)
        self.compiled = compiled
        self.n_words = compiled.n_words
        self.shift, self.pos_mask = self.net.shift, self.net.mask  # a chart item: origin << shift | position
        gp_a, gs_a = a["cfg_grp_ptr"], a["cfg_grp_state"]
        gp, gs = gp_a.tolist(), gs_a.tolist()
        # positions are numbered rule by rule, so a position's rule is the last start <= it
        owner = np.searchsorted(a["cfg_nt_start"], np.arange(n), side="right") - 1
        # an exit is reached inside the token without leaving its position's rule
        bad = np.nonzero(owner[gs_a] != np.repeat(owner, np.diff(gp_a)))[0]
        if len(bad):
            p = int(np.searchsorted(gp_a, bad[0], side="right") - 1)
            raise ArtifactError(f"corrupt cfg artifact: exit state outside the rule of position {p}")
        has_groups = np.diff(gp_a) > 0
        # tuples throughout (untracked by the garbage collector, see earley.Network)
        self.owner = tuple(owner.tolist())
        self.group_u = tuple(gs)
        # per position the rule whose W its context-dependent tokens read, or -1 (none)
        self.group_rule = tuple(np.where(has_groups, owner, -1).tolist())
        self.group_positions = frozenset(np.nonzero(has_groups)[0].tolist())
        self.rem_ptr = rp = tuple(a["cfg_rem_ptr"].tolist())
        ro = a["cfg_rem_off"].tolist()
        data = a["cfg_rem_data"].tobytes()

        def groups_of(p: int) -> tuple:
            return tuple(range(gp[p], gp[p + 1]))

        def rems_of(u: int) -> tuple:
            return tuple(data[ro[k]: ro[k + 1]] for k in range(rp[u], rp[u + 1]))

        tokens_of = _position_tokens(a, n)

        if lazy:
            self.pos_groups, self.rems, self.pos_tokens = Lazy(groups_of), Lazy(rems_of), Lazy(tokens_of)
        else:
            self.pos_groups = tuple(map(groups_of, range(n)))
            self.rems = tuple(map(rems_of, range(n)))
            self.pos_tokens = tuple(map(tokens_of, range(n)))
        # Stored stack tables are indexed now, with the first matcher, not inside the first mask
        # that reads them (~50 us per grammar: ~1% of MaskBench masks are a grammar's first).
        self._tables = _Tables(a, rp) if self.group_positions and "cfg_loc_n" in a else None
        self._can_pop = None if self._tables is None else self._tables.can_pop  # (read by every W)
        self.n_pos = n
        nn = n * len(a["cfg_nt_start"])  # see _w_at
        self.waiter_codes = (n, nn, (_LOCAL + 3) * nn, (_SAME + 3) * nn, (_NONE[0] + 3) * nn)
        self.masks = OrderedDict()  # by the chart's item codes (see stored_mask)
        self.masks_v = OrderedDict()  # by (position set, its verdicts): see _PositionSet.verdicts
        self.position_sets = OrderedDict()  # (positions, accepting) -> _PositionSet
        self.row_sets = OrderedDict()  # (distinct row ids, accepting) -> OR of those rows (and EOS)
        compiled.index_rows()  # new masks read rows for the first time all along a first document
        self.state_row = compiled._state_row
        self.state_row_a = a["state_row"].astype(np.intp)  # (see rows_or; int32 indices cost numpy a conversion)
        self.n_rows = len(a["row_fill"])
        self.w_cache = OrderedDict()  # (rule, caller position, id of its W) per waiter, as ints -> W
        self.v_cache = OrderedDict()  # (exit state, W id) -> verdicts
        self.w_ids = OrderedDict()  # W vector bytes -> (id, vector)
        self._ids = itertools.count()
        eos = np.zeros(self.n_words, np.uint32)
        for t in compiled.vocab.eos_token_ids:
            eos[t >> 5] |= np.uint32(1 << (t & 31))
        self.eos = eos
        self.near = max_depth - 4200  # a token (<= 4000 bytes) can reach the depth limit from here

    @property
    def tables(self) -> _Tables:
        t = self._tables
        if t is None:  # another thread may build them too: the same tables, one kept
            a = self.compiled._arrays
            if "cfg_loc_n" not in a:  # an artifact compiled before the tables were stored
                a = stack_tables(self.net, [self.rems[u] for u in range(self.n_pos)])
            t = self._tables = _Tables(a, self.rem_ptr)
        return t

    def rows_or(self, positions, accepting: bool, stored: bool = False):
        """The OR of the positions' rows (any collection, repeats allowed), and EOS if `accepting`,
        as an int32 row (read only), or with `stored` and a single row, that row as the artifact
        keeps it (see `stored_mask`). It is the whole mask of charts without context-dependent
        tokens.
        Charts in big JSON schemas hold ~40 positions sharing ~12 distinct rows, and position
        sets differ more often than their rows: ORed once per distinct row
        (`CompiledGrammar.rows_or`: one new array at most, none for a single row), cached by the
        set of rows."""
        if len(positions) > _GATHER:
            # distinct rows by one gather into flags: looked up position by position they cost
            # ~80 ns per position (big JSON Schema charts: 100-200 positions, ~12 distinct rows)
            flags = np.zeros(self.n_rows, bool)
            flags[self.state_row_a[np.fromiter(positions, np.intp, len(positions))]] = True
            rows = frozenset(flags.nonzero()[0].tolist())
        else:
            rows = frozenset(map(self.state_row.__getitem__, positions))
        if stored and not accepting and len(rows) == 1:
            for r in rows:
                return self.compiled.stored_row(r)
        key = (rows, accepting)
        got = self.row_sets.get(key)
        if got is None:
            got = self.compiled.rows_or(rows, self.eos if accepting else None).view(np.int32)
            _put(self.row_sets, key, got)
        return got

    # -- stack vectors ----------------------------------------------------------------------

    def _intern(self, vec: np.ndarray) -> tuple:
        """(id, vec): equal contents get one id (ids are never reused, so caches keyed by ids
        stay valid when entries are evicted; two threads may give one content two ids)."""
        b = vec.tobytes()
        got = self.w_ids.get(b)
        if got is None:
            got = (next(self._ids), vec)
            _put(self.w_ids, b, got, _W_CACHE)
        return got

    def w(self, charts: list, o: int, rule: int) -> tuple:
        """W(o)[rule]: (id, vector) of which suffixes (indices into T) the stack below chart o
        reads after an instance of `rule` started at o completes. Computed on demand, per rule:
        a mask needs it only for the rules of its positions with groups, and W(o)[rule] needs a
        caller's own W only where the caller's return position can pop, so the charts below are
        visited only as far as some suffix reaches (a chart waits for ~50 rules in big JSON
        schemas; computing them all, chart after chart down a deep stack, took up to 0.3 s).
        Memoised on the chart, charts below first (explicit stack), cached by what each waiter
        reads: stacks that differ only deeper than any suffix reaches share one entry."""
        c = charts[o]
        waiters = c.wait.get(rule)
        if waiters is None:
            return _NONE
        memo = c.w
        if memo is None:
            memo = c.w = {}
        else:
            got = memo.get(rule)
            if got is not None:
                return got
        if len(waiters) == 1:  # most rule instances: one caller, whose code alone is the key
            it = waiters[0]
            code = self._code(charts, o, rule, it & self.pos_mask, it >> self.shift)
            got = self.w_cache.get(code) if code is not None else None
            if got is not None:
                memo.update(got)
                return got[rule]
        got = self._w_at(charts, o, rule)
        if type(got) is list:  # some callers' own W below is not known yet: those first
            stack = got
            while stack:
                j, m0 = stack[-1]
                cj = charts[j]
                if cj.w is None:
                    cj.w = {}
                elif m0 in cj.w:
                    stack.pop()
                    continue
                below = self._w_at(charts, j, m0)
                if type(below) is list:
                    stack.extend(below)
                    continue
                cj.w.update(below)
                stack.pop()
            got = self._w_at(charts, o, rule)
        memo.update(got)
        return got[rule]

    def _code(self, charts: list, j: int, m: int, r: int, o2: int):
        """What waiter (r, o2) of rule m at chart j reads, as one int: r + n_pos * (m + n_rules *
        (what its caller adds + 3)), the caller adding the id of its own W (None while that is
        not known) or a constant where its W is not read (r never completes its rule, nobody
        waits for it) or is part of this computation (the caller started at j too)."""
        n_pos, nn, local, same, none = self.waiter_codes
        can_pop = self._can_pop
        if can_pop is None:
            can_pop = self._can_pop = self.tables.can_pop
        base = r + m * n_pos
        if not can_pop[r]:
            return base + local
        if o2 == j:
            return base + same
        n, below = self.owner[r], charts[o2]
        if n not in below.wait:
            return base + none
        e = below.w.get(n) if below.w is not None else None
        return None if e is None else base + (e[0] + 3) * nn

    def _w_at(self, charts: list, j: int, rule: int):
        """W(j) of `rule` and of the rules it depends on at chart j (callers that started at j
        too and can pop: left recursion), as {rule: (id, vector)}; or, if some caller's own W
        below is not known yet, the list of those (chart, rule) pairs. One pass builds the rule
        group and the cache key (each waiter's `_code`), so a stack shape seen before costs this
        pass and one lookup."""
        owner, code_of, shift, pos_mask = self.owner, self._code, self.shift, self.pos_mask
        wait = charts[j].wait
        group, key, missing = [rule], [], None
        for m in group:  # grows while it is walked
            for it in wait[m]:
                r, o2 = it & pos_mask, it >> shift
                code = code_of(charts, j, m, r, o2)
                if code is None:
                    if missing is None:
                        missing = []
                    missing.append((o2, owner[r]))
                    continue
                key.append(code)
                if o2 == j and self._can_pop[r]:  # the caller started here too: same computation
                    n = owner[r]
                    if n in wait and n not in group:
                        group.append(n)
        if missing is not None:
            return missing
        key = key[0] if len(key) == 1 else frozenset(key)
        got = self.w_cache.get(key)
        if got is None:
            got = self._w_of(charts, j, group)
            _put(self.w_cache, key, got, _W_CACHE)
        return got

    def _w_of(self, charts: list, j: int, group: list) -> dict:
        t = self.tables
        owner, can_pop, ok, pop = self.owner, t.can_pop, t.ok, t.pop
        shift, pos_mask = self.shift, self.pos_mask
        wait = charts[j].wait
        out, owned, loops = {}, set(), []
        for m in group:
            acc = None
            waiters = wait[m]
            for it in (waiters if len(waiters) == 1 else set(waiters)):
                r, o2 = it & pos_mask, it >> shift
                if acc is None:
                    acc = ok[r]  # shared until written: most rules have one waiter
                elif m in owned:
                    acc |= ok[r]
                else:
                    acc = acc | ok[r]
                    owned.add(m)
                if not can_pop[r]:
                    continue
                src, dst = pop[r]
                if o2 == j:  # the caller started here too: what it pops to is this chart's W
                    loops.append((m, owner[r], src, dst))
                    continue
                n, below = owner[r], charts[o2]
                if n in below.wait:
                    hit = src[below.w[n][1][dst]]
                    if len(hit):
                        if m not in owned:
                            acc = acc.copy()
                            owned.add(m)
                        acc[hit] = True
            out[m] = acc
        changed = bool(loops)
        while changed:  # monotone fixpoint over the callers that sit at this chart
            changed = False
            for m, rule, src, dst in loops:
                wb = out.get(rule)
                if wb is not None:
                    hit = src[wb[dst]]
                    acc = out[m]
                    if len(hit) and b"\0" in acc[hit].tobytes():  # some suffix not read yet
                        if m not in owned:
                            acc = out[m] = acc.copy()
                            owned.add(m)
                        acc[hit] = True
                        changed = True
        return {m: self._intern(v) for m, v in out.items()}

    def verdicts(self, u: int, below: tuple) -> tuple:
        """(bytes, vector): which remainders of exit state u are viable from item (u, o) on the
        real stack: a function of u and W(o) of u's rule (`below`: its (id, vector)), cached by
        them."""
        key = (u, below[0])
        got = self.v_cache.get(key)
        if got is None:
            wb = below[1]
            t = self.tables
            v = t.ok_u[u]
            src, dst = t.pop_u[u]
            if wb is not None and len(src):
                hit = src[wb[dst]]
                if len(hit):
                    v = v.copy()
                    v[hit] = True
            got = (v.tobytes(), v)
            _put(self.v_cache, key, got, _W_CACHE)
        return got

    # -- masks ------------------------------------------------------------------------------

    def mask(self, charts: list) -> np.ndarray:
        """The mask after `charts` as an int32 row (read only): `stored_mask` written out, for
        tests and inspection (the matcher writes the stored form into the caller's buffer)."""
        return _dense(self.stored_mask(charts), self.n_words)

    def stored_mask(self, charts: list):
        """The mask as kept: an int32 row (read only), a row stored sparse as it is in the
        artifact, (fill, word indices, words) (see `artifact.write_stored`), or a `_Patch`."""
        ch = charts[-1]
        got = ch.mask
        if got is not None:
            return got
        near = self.near
        # depth grows by at most one per byte, so short inputs are never near max_depth
        shift = self.shift
        if len(charts) > near and (ch.depth > near or any(charts[it >> shift].depth > near for it in ch.scan)):
            got = ch.mask = self._compute_walked(charts)
            return got
        # The mask is a function of the items' positions and, where a position has
        # context-dependent tokens, of what the stack below reads after its rule (W ids): keyed
        # by one int per item, its position plus (W id + 3) * n_pos where it has groups (ids are
        # >= -2), and -1 if accepting (no tuples to build, hash and compare).
        group_rule, n_pos, scan, pos_mask = self.group_rule, self.n_pos, ch.scan, self.pos_mask
        if len(scan) == 1 and not ch.accepting:
            # one item and no context-dependent tokens (inside a string or a number, two thirds
            # of a JSON Schema walk's charts): its row as stored, as a regular matcher serves it
            pos = scan[0] & pos_mask
            if group_rule[pos] < 0:
                got = ch.mask = self.compiled.stored_row(self.state_row[pos])
                return got
        if len(scan) > _FEW_ITEMS:  # big charts (JSON Schema: 100-200 items, seldom with groups)
            positions = frozenset(map(pos_mask.__and__, scan))
            if positions.isdisjoint(self.group_positions):  # the key the loop below would build
                # no context-dependent tokens (as below), but first by the positions already
                # gathered: finding a big set's distinct rows costs a few numpy calls
                key = positions | _ACCEPTING if ch.accepting else positions
                got = self.masks.get(key)
                if got is None:
                    got = self.rows_or(positions, ch.accepting, stored=True)
                    _put(self.masks, key, got)
                ch.mask = got
                return got
        items = []
        plain = True
        for it in scan:
            pos = it & pos_mask
            m = group_rule[pos]
            if m < 0:
                items.append(pos)
                continue
            plain = False
            o = it >> shift
            w = charts[o].w
            e = w.get(m) if w is not None else None
            if e is None:
                e = self.w(charts, o, m)
            items.append(pos + (e[0] + 3) * n_pos)
        if plain:
            # no context-dependent tokens: the mask is the OR of the positions' rows, cached by
            # the set of rows (JSON Schema: a third of the charts of a first document hold a
            # combination of positions never seen before, over rows seen many times)
            got = ch.mask = self.rows_or(items, ch.accepting, stored=True)
            return got
        if ch.accepting:
            items.append(-1)
        key = items[0] if len(items) == 1 else frozenset(items)
        got = self.masks.get(key)
        if got is None:
            got = self._new_mask(charts, key)
        ch.mask = got
        return got

    def _new_mask(self, charts: list, key):
        """The mask of a chart with context-dependent tokens (some item's position has groups)."""
        ch = charts[-1]
        shift, pos_mask = self.shift, self.pos_mask
        positions = frozenset(map(pos_mask.__and__, ch.scan))
        parts: dict = {}  # group id -> verdicts of its remainders (OR over the items' origins)
        group_rule, pos_groups, group_u, v_cache = self.group_rule, self.pos_groups, self.group_u, self.v_cache
        for it in ch.scan:
            pos = it & pos_mask
            m = group_rule[pos]
            if m >= 0:
                o = it >> shift
                w = charts[o].w  # known for every such item (stored_mask), unless the rule is not waited for
                e = w.get(m) if w is not None else None
                if e is None:
                    e = self.w(charts, o, m)
                for gid in pos_groups[pos]:
                    vb = v_cache.get((group_u[gid], e[0]))
                    if vb is None:
                        vb = self.verdicts(group_u[gid], e)
                    prev = parts.get(gid)
                    if prev is None:
                        parts[gid] = vb
                    elif prev[0] != vb[0]:
                        v = prev[1] | vb[1]
                        parts[gid] = (v.tobytes(), v)
        # different stacks often agree on every verdict: the same mask
        ps = self._position_set(positions, ch.accepting)
        verdicts = ps.verdicts(parts)
        key2 = (ps, verdicts)
        got = self.masks_v.get(key2)
        if got is None:
            got = ps.patch(verdicts)
            _put(self.masks_v, key2, got)
        _put(self.masks, key, got)
        return got

    def _position_set(self, positions, accepting: bool) -> _PositionSet:
        key = (positions, accepting)
        ps = self.position_sets.get(key)
        if ps is None:
            ps = _PositionSet(self, positions, accepting)
            _put(self.position_sets, key, ps, _POSITION_SETS)
        return ps

    def _compute_walked(self, charts: list) -> np.ndarray:
        """Near max_depth: every remainder walked against the real charts (which cut predictions
        at the limit exactly as accepting the token would)."""
        ch = charts[-1]
        parts: dict = {}
        for it in ch.scan:
            pos, o = it & self.pos_mask, it >> self.shift
            for gid in self.pos_groups[pos]:
                v = self._walk(charts, self.group_u[gid], o)
                prev = parts.get(gid)
                if prev is not None:
                    v |= prev[1]
                parts[gid] = (v.tobytes(), v)
        return self._position_set(frozenset(map(self.pos_mask.__and__, ch.scan)), ch.accepting).mask(parts)

    def _walk(self, charts: list, u: int, o: int) -> np.ndarray:
        i = len(charts)
        charts.append(self.net.close(charts, i, [self.net.item(u, o)]))
        try:
            return np.array(check_sorted(self.net, charts, self.rems[u]), bool)
        finally:
            del charts[i:]


def _dense(got, n_words: int) -> np.ndarray:
    """A mask as kept (see `stored_mask`) as an int32 row."""
    if type(got) is _Patch:
        return got.write(np.empty(n_words, np.int32))
    if type(got) is tuple:
        return write_stored(got, np.empty(n_words, np.int32))
    return got


def _put(cache: OrderedDict, key, value, cap: int = _MASK_CACHE) -> None:
    # the oldest entry, one per insertion: evicting half at once cost one mask ~4 ms
    while len(cache) >= cap:
        try:
            cache.popitem(last=False)
        except KeyError:  # another thread emptied it meanwhile
            break
    cache[key] = value


def runtime(compiled) -> _Runtime:
    rt = getattr(compiled, "_cfg_runtime", None)
    if rt is None:
        rt = compiled._cfg_runtime = _Runtime(compiled)
        # The young collections that first visit its tables (outer tuples over every position,
        # untracked once seen) happen now rather than inside some later mask: 0.3-5 ms in the
        # first masks of big JSON schemas.
        gc.collect(1)
    return rt


class GrammarMatcher(Matcher):
    """`Matcher` for context-free grammars; `Matcher(compiled)` returns one for "cfg" artifacts.

    Same API and guarantees as `Matcher`: masks are exact (a token is allowed iff the bytes so far
    plus the token are a prefix of some string of the grammar), whatever the tokenization.
    Nesting deeper than the artifact's `max_depth` option is refused (MatcherError on accept).
    `max_chart_items` (default 100,000) bounds the Earley items of one chart, i.e. the work and
    memory of one byte: an input that needs more (only very ambiguous grammars on long inputs do)
    raises `earley.ChartLimitError` (a MatcherError naming the option) and leaves the state as it
    was before the token.
    """

    __slots__ = ("_rt", "_charts", "_steps", "_max_items")

    def __init__(self, compiled, max_chart_items: int | None = None):
        limit = DEFAULT_MAX_CHART_ITEMS if max_chart_items is None else int(max_chart_items)
        if limit < 1:
            raise MatcherError(f"max_chart_items must be at least 1, got {limit}")
        self._max_items = limit
        self._g = compiled
        self._rt = runtime(compiled)
        self._tb = compiled.vocab.token_bytes
        self._eos = frozenset(compiled.vocab.eos_token_ids)
        self._special = compiled.vocab.special_token_ids
        self._charts = [self._rt.net.initial()]
        self._terminated = False
        self._steps: list = []

    def _advance(self, data: bytes) -> bool:
        charts, net = self._charts, self._rt.net
        n = len(charts)
        limit = self._max_items
        for b in data:
            try:
                ch = net.step(charts, b, limit)
            except MatcherError:
                del charts[n:]
                raise
            if not ch.alive:
                deep = any(c.truncated for c in charts[n - 1:])
                del charts[n:]
                if deep:
                    raise MatcherError(f"input nests deeper than max_depth={net.max_depth} "
                                       f"(compile with a larger max_depth=...)")
                return False
            charts.append(ch)
        # Only the last chart keeps its mask memo: masks evicted from the caches would otherwise
        # stay alive through every chart of a long document (12.5 KB each at 100k tokens).
        if data:
            charts[n - 1].mask = None
        return True

    def accept_token(self, token_id: int) -> bool:
        """Advance by one token. Returns False (state unchanged) if the token is not allowed."""
        if self._terminated:
            return False
        if token_id in self._eos:
            if not self._charts[-1].accepting:
                return False
            self._steps.append(len(self._charts))
            self._terminated = True
            return True
        if token_id in self._special or not 0 <= token_id < len(self._tb):
            return False
        n = len(self._charts)
        if not self._advance(self._tb[token_id]):
            return False
        self._steps.append(n)
        return True

    def accept_string(self, text) -> bool:
        """Advance by the bytes of `text` (str or bytes) as one step; False leaves the state unchanged."""
        if self._terminated:
            return False
        data = text.encode("utf-8") if isinstance(text, str) else bytes(text)
        n = len(self._charts)
        if not self._advance(data):
            return False
        self._steps.append(n)
        return True

    def fill_next_token_bitmask(self, bitmask, index: int = 0) -> None:
        """Write the allowed-token mask into row `index` of `bitmask` (see `Matcher`)."""
        if not isinstance(bitmask, np.ndarray):
            bitmask = _numpy_view(bitmask)
        out = bitmask[index] if bitmask.ndim == 2 else bitmask
        n = self._rt.n_words
        if out.shape[0] != n:
            out[n:] = 0
            out = out[:n]
        if self._terminated:
            out[...] = self._rt.eos.view(np.int32)
            return
        row = self._charts[-1].mask
        if row is None:
            row = self._rt.stored_mask(self._charts)
        t = type(row)
        if t is _Patch:
            row.write(out)
        elif t is tuple:
            write_stored(row, out)
        else:
            out[...] = row

    def allowed_token_ids(self) -> np.ndarray:
        """The allowed token ids (EOS included when the output is complete), ascending int32."""
        words = np.zeros(self._g.n_words, np.int32)
        self.fill_next_token_bitmask(words)
        return row_token_ids(words, self._g.vocab_size)

    def is_accepting(self) -> bool:
        return self._terminated or self._charts[-1].accepting

    def forced_bytes(self) -> bytes:
        """The bytes every valid continuation must start with (empty when there is a choice or an end)."""
        if self._terminated:
            return b""
        net = self._rt.net
        out = bytearray()
        charts = self._charts
        base = len(charts)
        try:
            while not charts[-1].accepting and len(out) < 256:
                cand = set()
                for it in charts[-1].scan:
                    row = net.rows[it & net.mask]
                    cand.update(b for b in range(256) if row[net.cls[b]] >= 0)
                alive = []
                for b in sorted(cand):
                    ch = net.step(charts, b, self._max_items)
                    if ch.alive:
                        alive.append((b, ch))
                        if len(alive) > 1:
                            break
                if len(alive) != 1:
                    break
                out.append(alive[0][0])
                charts.append(alive[0][1])
        finally:
            del charts[base:]
        return bytes(out)

    def rollback(self, n: int = 1) -> None:
        """Undo the last `n` accepted steps (tokens or strings)."""
        if n < 0 or n > len(self._steps):
            raise MatcherError(f"cannot roll back {n} steps: only {len(self._steps)} were accepted")
        if n == 0:
            return
        del self._charts[self._steps[-n]:]
        del self._steps[-n:]
        self._terminated = False

    def reset(self) -> None:
        del self._charts[1:]
        self._steps.clear()
        self._terminated = False

    def copy(self) -> "GrammarMatcher":
        m = GrammarMatcher.__new__(GrammarMatcher)
        m._g, m._rt, m._tb, m._eos, m._special = self._g, self._rt, self._tb, self._eos, self._special
        m._max_items = self._max_items
        m._charts = list(self._charts)
        m._steps = list(self._steps)
        m._terminated = self._terminated
        return m

    @property
    def num_steps(self) -> int:
        return len(self._steps)
