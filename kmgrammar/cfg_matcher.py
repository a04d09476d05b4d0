"""GrammarMatcher: the `Matcher` API for context-free ("cfg") artifacts.

State: the Earley charts of the bytes accepted so far (`earley.py`); rollback truncates them and
copies share them. A mask is the OR of the precomputed rows of the positions in the last chart
(tokens that stay on byte edges, or were classified valid ahead of time), plus the
context-dependent tokens whose remainders are viable on the real stack. Remainder verdicts come,
in order, from: an exact cache by (exit state, full signature of the caller chart); the verdicts
precomputed for the real one- and two-level callers (`cfg_pre_*`); a cache by the caller
signature truncated to the levels each verdict read; and a walk against the real charts. Whole
masks are cached by the last chart's key, {(position, caller signature)}. A chart's signature is
the interned structure of everything below it, so equal keys mean equal masks.
"""

from __future__ import annotations

import numpy as np

from .artifact import row_token_ids
from .earley import _FAR, DEFAULT_MAX_DEPTH, Network, check_sorted_levels, lcp_list
from .errors import MatcherError
from .matcher import Matcher, _numpy_view

_MASK_CACHE = 2048  # whole masks kept per grammar (12.5 KB each at 100k tokens)
_REM_CACHE = 8192
_LEVEL = 3  # caller levels in remainder-cache keys (deeper verdicts are re-checked each time)


class _Runtime:
    """Per-compiled-grammar run-time data and caches (built on first use, shared by matchers)."""

    def __init__(self, compiled):
        a = compiled._arrays
        max_depth = int(compiled.options.get("max_depth") or DEFAULT_MAX_DEPTH)
        self.net = Network(a["dfa_trans"], a["dfa_classes"], a["cfg_final_nt"], a["cfg_call_ptr"],
                           a["cfg_call_nt"], a["cfg_call_next"], a["cfg_nt_start"], a["cfg_nullable"],
                           0, max_depth)
        self.compiled = compiled
        self.n_words = compiled.n_words
        n = len(self.net.rows)
        gp, gs, gtp = a["cfg_grp_ptr"].tolist(), a["cfg_grp_state"].tolist(), a["cfg_grp_tok_ptr"].tolist()
        tok, rem = a["cfg_grp_tok"], a["cfg_grp_rem"]
        self.groups = [tuple(_group(gs[k], tok[gtp[k]: gtp[k + 1]], rem[gtp[k]: gtp[k + 1]])
                             for k in range(gp[p], gp[p + 1])) for p in range(n)]
        self.final: dict = {}  # (u, signature of o, depth) -> verdicts (whole stack: exact)
        rp, ro = a["cfg_rem_ptr"].tolist(), a["cfg_rem_off"].tolist()
        data = a["cfg_rem_data"].tobytes()
        self.rems = [[data[ro[k]: ro[k + 1]] for k in range(rp[u], rp[u + 1])] for u in range(n)]
        # positions are numbered rule by rule, so a position's rule is the last start <= it
        self.owner = (np.searchsorted(a["cfg_nt_start"], np.arange(n), side="right") - 1).tolist()
        self.pre: dict = {}  # (u, caller next position) -> verdicts (1 valid, 0 invalid, 2 depends)
        if "cfg_pre_u" in a:
            po = a["cfg_pre_off"].tolist()
            for k, (u, r, r2) in enumerate(zip(a["cfg_pre_u"].tolist(), a["cfg_pre_r"].tolist(),
                                               a["cfg_pre_r2"].tolist())):
                self.pre[(u, r) if r2 < 0 else (u, r, r2)] = a["cfg_pre_st"][po[k]: po[k + 1]]
        self.lcps = [lcp_list(r) if r else [] for r in self.rems]
        self.masks: dict = {}
        self.rem_cache: dict = {}
        self.intern: dict = {}
        eos = np.zeros(self.n_words, np.uint32)
        for t in compiled.vocab.eos_token_ids:
            eos[t >> 5] |= np.uint32(1 << (t & 31))
        self.eos = eos
        self.near = max_depth - 4200  # a token (<= 4000 bytes) can reach the depth limit from here

    def row(self, pos: int) -> np.ndarray:
        return self.compiled.mask_row(pos).view(np.uint32)

    def sig(self, charts: list, o: int) -> int:
        c = charts[o]
        if c.sig is not None:
            return c.sig
        stack = [o]
        intern = self.intern
        while stack:
            j = stack[-1]
            cj = charts[j]
            if cj.sig is not None:
                stack.pop()
                continue
            missing = {o2 for lst in cj.wait.values() for _, o2 in lst if o2 != j and charts[o2].sig is None}
            if missing:
                stack.extend(missing)
                continue
            key = frozenset((m, nxt, -1 if o2 == j else charts[o2].sig)
                            for m, lst in cj.wait.items() for nxt, o2 in lst)
            got = intern.get(key)
            if got is None:
                got = intern[key] = len(intern)
            cj.sig = got
            stack.pop()
        return c.sig

    def key(self, charts: list):
        ch = charts[-1]
        if ch.key is None:
            depth = ch.depth if ch.depth > self.near else -1
            ch.key = (frozenset((pos, self.sig(charts, o)) for pos, o in ch.scan), ch.accepting, depth)
        return ch.key

    def mask(self, charts: list) -> np.ndarray:
        key = self.key(charts)
        got = self.masks.get(key)
        if got is None:
            got = self._compute(charts)
            if len(self.masks) >= _MASK_CACHE:
                for k in list(self.masks)[: _MASK_CACHE // 2]:
                    self.masks.pop(k, None)  # another thread may have evicted it
            self.masks[key] = got
        return got

    def _compute(self, charts: list) -> np.ndarray:
        ch = charts[-1]
        positions = sorted({pos for pos, _ in ch.scan})
        if len(positions) == 1:
            words = self.row(positions[0]).copy()
        else:
            words = np.zeros(self.n_words, np.uint32)
            for pos in positions:
                words |= self.row(pos)
        for pos, o in ch.scan:
            for u, word, bit, rems in self.groups[pos]:
                valid = self._final(charts, u, o)[rems]
                if valid.any():
                    w, b = word[valid], bit[valid]
                    starts = np.flatnonzero(np.r_[True, w[1:] != w[:-1]])
                    words[w[starts]] |= np.bitwise_or.reduceat(b, starts)
        if ch.accepting:
            words |= self.eos
        return words

    def sig_h(self, charts: list, o: int, h: int) -> int:
        """Signature of chart o truncated to h levels of callers (0: nothing)."""
        if h == 0:
            return -2
        c = charts[o]
        if c.sigs is None:
            c.sigs = {}
        got = c.sigs.get(h)
        if got is None:
            key = (h, frozenset((m, nxt, -1 if o2 == o else self.sig_h(charts, o2, h - 1))
                                for m, lst in c.wait.items() for nxt, o2 in lst))
            got = self.intern.get(key)
            if got is None:
                got = self.intern[key] = len(self.intern)
            c.sigs[h] = got
        return got

    @staticmethod
    def _levels(charts: list, o: int, h: int) -> dict:
        """Chart index -> caller level (o is level 0), for charts within h levels of o."""
        out, level = {o: 0}, [o]
        for k in range(1, h):
            nxt = []
            for x in level:
                for lst in charts[x].wait.values():
                    for _, o2 in lst:
                        if o2 not in out:
                            out[o2] = k
                            nxt.append(o2)
            if not nxt:
                break
            level = nxt
        return out

    def _final(self, charts: list, u: int, o: int) -> np.ndarray:
        depth = charts[o].depth if charts[o].depth > self.near else -1
        key = (u, self.sig(charts, o), depth)
        got = self.final.get(key)
        if got is None:
            got = self._remainders(charts, u, o)
            if len(self.final) >= _REM_CACHE:
                self.final.clear()
            self.final[key] = got
        return got

    def _remainders(self, charts: list, u: int, o: int) -> np.ndarray:
        # A remainder's verdict depends on the caller stack only as deep as its walk read it: it
        # is cached under (u, L, signature of chart o truncated to L levels) for the smallest
        # such L <= _LEVEL, so most verdicts are shared by every context that agrees near the top
        # of the stack. Verdicts that read deeper are recomputed against the real charts.
        depth = charts[o].depth if charts[o].depth > self.near else -1
        rems = self.rems[u]
        n = len(rems)
        known = np.zeros(n, bool)
        valid = np.zeros(n, bool)
        cache = self.rem_cache
        keys = [(u, lv, self.sig_h(charts, o, lv), depth) for lv in range(1, _LEVEL + 1)]
        for key in keys:
            got = cache.get(key)
            if got is not None:
                k_mask, v_mask = got
                valid[k_mask] = v_mask[k_mask]
                known |= k_mask
        todo = np.flatnonzero(~known)
        if not len(todo):
            return valid
        st = self._caller_verdicts(charts, u, o)
        if st is not None:
            st = st[todo]
            valid[todo[st == 1]] = True
            todo = todo[st == 2]
            if not len(todo):
                return valid
        strings = [rems[k] for k in todo.tolist()]
        lcps = self.lcps[u] if len(todo) == n else lcp_list(strings)
        ok, levels = self._walk(charts, u, o, strings, lcps, self._levels(charts, o, _LEVEL))
        ok = np.array(ok, bool)
        levels = np.array(levels)
        valid[todo] = ok
        if len(cache) >= _REM_CACHE:
            cache.clear()
        for lv, key in enumerate(keys, 1):
            sel = todo[levels < lv]  # read only levels 0 .. lv - 1
            levels_sel = levels < lv
            if not len(sel):
                continue
            got = cache.get(key)
            k_mask = got[0].copy() if got is not None else np.zeros(n, bool)
            v_mask = got[1].copy() if got is not None else np.zeros(n, bool)
            k_mask[sel] = True
            v_mask[sel] = ok[levels_sel]
            cache[key] = (k_mask, v_mask)  # replaced, never mutated: readers see old or new
            todo, ok, levels = todo[~levels_sel], ok[~levels_sel], levels[~levels_sel]
        return valid

    def _caller_verdicts(self, charts: list, u: int, o: int):
        """Verdicts (1 valid, 0 invalid, 2 unknown) of u's remainders from the ahead-of-time rows
        of the callers that really wait on u's rule (one or two levels), or None."""
        pre = self.pre
        if not pre:
            return None
        out = None
        for r1, o1 in set(charts[o].wait.get(self.owner[u], ())):
            row = pre.get((u, r1))
            if row is None:
                return None
            if (row == 2).any() and o1 >= 0:
                rows2 = [pre.get((u, r1, r2)) for r2 in {r2 for r2, _ in charts[o1].wait.get(self.owner[r1], ())}]
                if rows2 and all(x is not None for x in rows2):
                    st2 = np.stack(rows2)
                    comb = np.where((st2 == 1).any(axis=0), 1, np.where((st2 == 0).all(axis=0), 0, 2))
                    row = np.where(row == 2, comb, row)
            if out is None:
                out = row.astype(np.int8)
            else:
                out = np.where((out == 1) | (row == 1), 1, np.where((out == 0) & (row == 0), 0, 2)).astype(np.int8)
        return out

    def _walk(self, charts: list, u: int, o: int, strings: list, lcps: list, level_of: dict | None = None):
        i = len(charts)
        touched: set = set()
        charts.append(self.net.close(charts, i, [(u, o)], touched))
        level_of = level_of if level_of is not None else {}
        base_level = max((level_of.get(x, _FAR) for x in touched if x < i), default=-1)
        try:
            return check_sorted_levels(self.net, charts, strings, lcps, level_of, i, base_level)
        finally:
            del charts[i:]


def _group(u: int, toks: np.ndarray, rems: np.ndarray) -> tuple:
    """(exit state, word index, bit, remainder index) per token, sorted by token id so that the
    bits of one word are adjacent (one reduceat per mask instead of a scatter)."""
    order = np.argsort(toks, kind="stable")
    toks = toks[order].astype(np.int64)
    return u, toks >> 5, np.left_shift(np.uint32(1), (toks & 31).astype(np.uint32)), rems[order]


def runtime(compiled) -> _Runtime:
    rt = getattr(compiled, "_cfg_runtime", None)
    if rt is None:
        rt = compiled._cfg_runtime = _Runtime(compiled)
    return rt


class GrammarMatcher(Matcher):
    """`Matcher` for context-free grammars; `Matcher(compiled)` returns one for "cfg" artifacts.

    Same API and guarantees as `Matcher`: masks are exact (a token is allowed iff the bytes so far
    plus the token are a prefix of some string of the grammar), whatever the tokenization.
    Nesting deeper than the artifact's `max_depth` option is refused (MatcherError on accept).
    """

    __slots__ = ("_rt", "_charts", "_steps")

    def __init__(self, compiled):
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
        for b in data:
            ch = net.step(charts, b)
            if not ch.alive:
                deep = any(c.truncated for c in charts[n - 1:])
                del charts[n:]
                if deep:
                    raise MatcherError(f"input nests deeper than max_depth={net.max_depth} "
                                       f"(compile with a larger max_depth=...)")
                return False
            charts.append(ch)
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
        words = self._rt.eos if self._terminated else self._rt.mask(self._charts)
        out[:] = words.view(np.int32)

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
                for pos, _ in charts[-1].scan:
                    row = net.rows[pos]
                    cand.update(b for b in range(256) if row[net.cls[b]] >= 0)
                alive = []
                for b in sorted(cand):
                    ch = net.step(charts, b)
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
        m._charts = list(self._charts)
        m._steps = list(self._steps)
        m._terminated = self._terminated
        return m

    @property
    def num_steps(self) -> int:
        return len(self._steps)
