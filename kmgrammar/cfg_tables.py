"""RTN x vocabulary -> the precomputed mask tables of a grammar artifact.

For every position p, the vocabulary trie is walked along byte edges (numba,
`kernels.walk_cfg_nd`): tokens that stay on byte edges are allowed whatever the stack holds,
and form p's mask row (stored like a regular automaton's rows). Where a token, after >= 1 byte,
could also enter a call or complete p's rule (an "exit" at state u), the rest of the token (its
*remainder*) is classified ahead of time by the Earley recognizer from item (u, unknown caller):
valid whatever the caller (added to p's row), invalid whatever the caller (dropped), or
context-dependent: it completes u's rule and goes on in the caller. Only those are checked at run
time, against the real charts, per distinct remainder (many tokens share one: `abc",` and
`xyz",` both leave `,` after the string's closing quote).

Arrays (besides the regular row arrays): cfg_* RTN arrays, and per position the groups
(exit state u, token ids, remainder indices), per state u its sorted context-dependent remainders.
"""

from __future__ import annotations

import threading
import weakref
from collections import OrderedDict

import numpy as np

from .cfg_rtn import Rtn, actions, byte_sets, follow2, shared_keys
from .earley import Network, classify_sorted, stack_tables
from .token_automaton import SPLIT, _encode_rows, clean_columns, full_row_bits, split_tries, vocab_trie, words_for

_CHUNK = 256
_EXIT_CAP = 1 << 12  # exits room per kernel call (doubled when a state needs more)
_STEPS = 1 << 23  # pushdown-walk steps per kernel call (~10-50 ms) between time-limit checks


def build_cfg_tables(rtn: Rtn, vocab, budget) -> tuple:
    """Returns (arrays, stats) for a "cfg" artifact."""
    n_words = words_for(vocab.vocab_size)
    sets = byte_sets(rtn)
    follow = sets["follow"]
    flags, call_start, call_ret, call_first, call_skip = actions(rtn, sets)
    f2 = follow2(rtn, sets)
    n = rtn.n_pos
    net_args = (np.ascontiguousarray(rtn.trans), np.ascontiguousarray(rtn.classes), flags, rtn.call_ptr,
                call_start, call_ret, call_first, call_skip, np.ascontiguousarray(rtn.owner.astype(np.int32)), f2)
    # Tokens without a SPLIT byte are walked once per class of positions (`position_classes`),
    # the others (a small trie) from every position; a token's walk depends only on its bytes, so
    # the two walks together give each position's row and exits.
    clean, dirty = split_tries(vocab, SPLIT)
    horizon = int(vocab_trie(vocab)[1].max()) if vocab_trie(vocab)[1].size else 0
    cls = position_classes(rtn, flags, horizon, budget)
    n_cls = int(cls.max()) + 1 if n else 0
    by_cls = np.argsort(cls, kind="stable")
    size = np.bincount(cls, minlength=n_cls)
    cls_start = np.cumsum(size) - size
    reps = by_cls[cls_start].astype(np.int32)
    # Rows are kept deduplicated (`_Rows`), never as an n_pos x vocabulary matrix.
    rows_c = _Rows(n_cls, n_words)
    # Classes that meet no call or completion on any quote-free token walk with the plain
    # regular kernel (same rows, no exits, ~2.5x cheaper per trie node); the others with the
    # pushdown walk.
    pure = _pure(rtn, flags, int(clean[1].max()) if clean[1].size else 0)[reps]
    plain = np.flatnonzero(pure)
    _plain_rows(clean, reps[plain], net_args, vocab, n_words, budget,
                lambda ids, out, fps=None, owned=False: rows_c.add_at(plain[ids], out, fps, owned))
    mixed = np.flatnonzero(~pure)
    # (a walk's chunk of rows is fresh and never written again: its distinct rows are kept as
    # views of it, not copied one by one; a fresh 12.5 KB copy costs page faults)
    _, ex_c = _walk(clean, reps[mixed], net_args, n_words, budget,
                    keep=lambda lo, out: rows_c.add_at(mixed[lo: lo + len(out)], out, owned=True))
    # The dirty walk sets bits of the dirty trie's tokens only: it writes them compactly (bit j
    # for the trie's j-th token), and each distinct (class row, dirty bits) pair becomes one row.
    d_order = dirty[5]
    d_keys: dict = {}
    d_of = np.zeros(n, np.int64)

    def keep_dirty(lo, out):
        # one key per distinct row of the chunk (most positions share a few rows)
        if out.shape[1] == 0:
            d_of[lo: lo + len(out)] = d_keys.setdefault(b"", 0)
            return
        _, first, inv = np.unique(out.view(np.dtype((np.void, 4 * out.shape[1]))).ravel(),
                                  return_index=True, return_inverse=True)
        ids = np.array([d_keys.setdefault(out[f].tobytes(), len(d_keys)) for f in first.tolist()], np.int64)
        d_of[lo: lo + len(out)] = ids[inv.ravel()]

    _, ex_d = _walk(dirty[:5] + (np.arange(len(d_order), dtype=np.int32),), np.arange(n, dtype=np.int32),
                    net_args, words_for(len(d_order)), budget, keep=keep_dirty)
    d_bits = full_row_bits(list(d_keys), d_order, n_words)
    rows = _Rows(n, n_words)
    crow = rows_c.row_of[cls]
    _, first, inv = np.unique(crow * max(len(d_keys), 1) + d_of, return_index=True, return_inverse=True)
    made = np.zeros(len(first), np.int64)
    pairs = list(zip(crow[first].tolist(), d_of[first].tolist()))  # each distinct pair once
    with_bits = [j for j, (_, d) in enumerate(pairs) if len(d_bits[d][0])]
    both = np.empty((len(with_bits), n_words), np.uint32)  # those rows, fingerprinted at once
    for k, j in enumerate(with_bits):
        c, d = pairs[j]
        w, v = d_bits[d]
        both[k] = rows_c.uniq[c]
        both[k, w] |= v
    for k, fp in enumerate(rows.hashes(both)):
        made[with_bits[k]] = rows.id_of(both[k], owned=True, fp=fp)
    for j, (c, d) in enumerate(pairs):
        if not len(d_bits[d][0]):  # no quoted token: the class row itself (never written in place)
            made[j] = rows.id_of(rows_c.uniq[c], owned=True, fp=rows_c.fps[c])
    rows.row_of[:] = made[inv.ravel()]
    # A class's exits belong to each of its members.
    kind_c, k_c, node_c, u_c, off_c = ex_c
    c_of = mixed[k_c]
    rep_n = size[c_of]
    e_idx = np.repeat(np.arange(len(k_c)), rep_n)
    member = cls_start[c_of][e_idx] + (np.arange(int(rep_n.sum())) - (np.cumsum(rep_n) - rep_n)[e_idx])
    ex_c = (kind_c[e_idx], by_cls[member].astype(np.int32), node_c[e_idx], u_c[e_idx], off_c[e_idx])
    kind_d, k_d, node_d, u_d, off_d = ex_d
    ex_d = (kind_d, k_d, node_d, u_d, off_d)  # states were arange(n): k is the position

    # Remainders of the tokens under each exit (vectorised expansion), deduplicated per
    # (kind, exit state). Kind 3 covers only the tokens ending at its node; it is a kind 1.
    parts = []
    n_before = 0
    for trie, (kind, p, node, u, off) in ((clean, ex_c), (dirty, ex_d)):
        ex_idx, toks = _expand(trie, kind, node)
        parts.append((np.where(kind == 3, 1, kind), p, u, off, ex_idx + n_before, toks))
        n_before += len(kind)
    cat = np.concatenate
    ex_kind, ex_p, ex_u, ex_o, ex_idx, toks = (cat([x[j] for x in parts]) for j in range(6))
    pp = ex_p[ex_idx]
    # (only the rows of positions with exits are stacked)
    used, local = np.unique(rows.row_of[pp], return_inverse=True)
    mat = np.stack([rows.uniq[r] for r in used.tolist()]) if len(used) else np.zeros((1, n_words), np.uint32)
    in_row = (mat[local.ravel(), toks >> 5] >> (toks & 31).astype(np.uint32)) & 1
    keep = np.flatnonzero(in_row == 0)
    e_k, t_k = ex_idx[keep], toks[keep]
    kind_k, u_k, p_k = ex_kind[e_k].astype(np.int64), ex_u[e_k].astype(np.int64), ex_p[e_k].astype(np.int64)
    # One remainder id per distinct byte string, found once per distinct (token, offset) pair.
    off_k = ex_o[e_k].astype(np.int64)
    span = int(off_k.max()) + 1 if len(off_k) else 1
    to_pair, to_inv = np.unique(t_k * span + off_k, return_inverse=True)
    tb = vocab.token_bytes
    rem_id: dict = {}  # remainder -> id
    ids = [rem_id.setdefault(tb[x // span][x % span:], len(rem_id)) for x in to_pair.tolist()]
    gid = np.array(ids, np.int64)[to_inv.ravel()]
    rem_str = list(rem_id)
    n_g = max(len(rem_str), 1)
    budget.check_time()

    # Classify each remainder once per (kind, exit state u) from (u, unknown caller). The
    # recognizer visits the exit states' surroundings only: its per-position tables are made on
    # first use (lazy).
    net = Network(rtn.trans, rtn.classes, rtn.final_nt, rtn.call_ptr, rtn.call_nt, rtn.call_next,
                  rtn.nt_start, rtn.nullable, rtn.top, lazy=True)
    triple, tr_inv = np.unique((kind_k * n + u_k) * n_g + gid, return_inverse=True)
    tr_status = np.zeros(len(triple), np.int8)
    n_checked = 0
    for lo, hi in _runs(triple // n_g):
        budget.check_time()
        kind, u = divmod(int(triple[lo] // n_g), n)
        order, strings = _sorted_strings(rem_str, triple[lo:hi] % n_g)
        if kind == 1:  # the starting rule completes: context-dependent by construction
            st = [2] * len(strings)
        else:
            charts = [net.close([], 0, [net.item(u, -1)])]
            st = classify_sorted(net, charts, strings, follow[int(rtn.owner[u])])
            n_checked += len(strings)
        tr_status[lo + order] = st
    status = tr_status[tr_inv.ravel()]

    # Tokens valid whatever the caller join their position's row.
    valid = status == 1
    n_valid = int(valid.sum())
    pv, tv = p_k[valid], t_k[valid]
    o = np.argsort(pv, kind="stable")
    pv, tv = pv[o], tv[o]
    for lo, hi in _runs(pv):
        p = int(pv[lo])
        row = rows.row(p).copy()
        tt = tv[lo:hi]
        np.bitwise_or.at(row, tt >> 5, np.left_shift(np.uint32(1), (tt & 31).astype(np.uint32)))
        rows.row_of[p] = rows.id_of(row, owned=True)
    # Context-dependent ones form groups (position p, exit state u): their tokens (by id) and
    # the index of each one's remainder in u's sorted context-dependent remainders.
    dep = status == 2
    pd, ud, td, gd = p_k[dep], u_k[dep], t_k[dep], gid[dep]
    n_dep = len(td)
    ug, ug_inv = np.unique(ud * n_g + gd, return_inverse=True)
    ug_index = np.zeros(len(ug), np.int64)
    dep_sorted: dict = {}  # u -> its context-dependent remainders, sorted
    for lo, hi in _runs(ug // n_g):
        order, strings = _sorted_strings(rem_str, ug[lo:hi] % n_g)
        dep_sorted[int(ug[lo] // n_g)] = strings
        ug_index[lo + order] = np.arange(hi - lo)
    rd = ug_index[ug_inv.ravel()]
    o = np.lexsort((td, ud, pd))
    pd, ud, td, rd = pd[o], ud[o], td[o], rd[o]
    heads = np.flatnonzero(np.r_[True, (pd[1:] != pd[:-1]) | (ud[1:] != ud[:-1])]) if n_dep else np.zeros(0, np.int64)
    grp_state = ud[heads]
    grp_tok_ptr = np.r_[heads, n_dep]
    grp_ptr = np.searchsorted(pd[heads], np.arange(n + 1))
    # what each rule instance does with the suffixes that reach it (run-time verdicts)
    same = local_classes(rtn, sorted(set(rtn.call_next.tolist()) | dep_sorted.keys()))
    key_of = shared_keys(rtn)  # (JSON Schema's json_value: its walks are the same in every grammar)

    def shared(p: int):
        m = int(rtn.owner[p])
        got = key_of(m)
        return None if got is None else ((got[0], p - int(rtn.nt_start[m])), got[1])

    loc = stack_tables(net, [dep_sorted.get(u, ()) for u in range(n)], budget.check_time,
                       (rtn.call_nt, rtn.call_next), same, shared if key_of else None)
    by_u = sorted(dep_sorted)
    data = [x for u in by_u for x in dep_sorted[u]]
    rem_ptr = np.zeros(n + 1, np.int32)
    rem_ptr[np.array(by_u, np.int64) + 1] = [len(dep_sorted[u]) for u in by_u]
    np.cumsum(rem_ptr, out=rem_ptr)
    rem_off = np.zeros(len(data) + 1, np.int64)
    np.cumsum([len(x) for x in data], out=rem_off[1:])

    # Mask rows, deduplicated and compressed like a regular automaton's.
    uniq, state_row = rows.final()
    arrays = _encode_rows(uniq, n_words)
    arrays.update(
        state_row=state_row,
        forced=np.full(n, -1, np.int16),
        dfa_trans=rtn.trans,
        dfa_classes=rtn.classes,
        dfa_accept=rtn.final_nt >= 0,
        cfg_final_nt=rtn.final_nt,
        cfg_call_ptr=rtn.call_ptr,
        cfg_call_nt=rtn.call_nt,
        cfg_call_next=rtn.call_next,
        cfg_nt_start=rtn.nt_start,
        cfg_nullable=rtn.nullable.astype(np.uint8),
        cfg_grp_ptr=grp_ptr.astype(np.int32),
        cfg_grp_state=grp_state.astype(np.int32),
        cfg_grp_tok_ptr=grp_tok_ptr.astype(np.int64),
        cfg_grp_tok=td.astype(np.int32),
        cfg_grp_rem=rd.astype(np.int32),
        cfg_rem_ptr=rem_ptr,
        cfg_rem_off=rem_off,
        cfg_rem_data=np.frombuffer(b"".join(data), np.uint8).copy() if data else np.zeros(0, np.uint8),
        **loc,
    )
    stats = {
        "positions": n,
        "nonterminals": len(rtn.names),
        "distinct_rows": len(uniq),
        "exits": len(ex_p),
        "ambiguous_exits": int((ex_kind == 2).sum()),
        "remainders_classified": n_checked,
        "tokens_valid_by_classification": n_valid,
        "context_dependent_tokens": n_dep,
        "context_dependent_remainders": len(data),
    }
    return arrays, stats


def _runs(keys: np.ndarray):
    """(lo, hi) of each run of equal values in `keys` (sorted)."""
    if not len(keys):
        return []
    heads = np.flatnonzero(np.r_[True, keys[1:] != keys[:-1]])
    return zip(heads.tolist(), np.r_[heads[1:], len(keys)].tolist())


def _sorted_strings(strings: list, ids: np.ndarray) -> tuple:
    """(order, sorted strings) of strings[ids]: sorted = [strings[ids[k]] for k in order]."""
    got = [strings[g] for g in ids.tolist()]
    order = sorted(range(len(got)), key=got.__getitem__)
    return np.array(order, np.int64), [got[k] for k in order]


class _Rows:
    """Mask rows per position, stored deduplicated (row_of[p] indexes the distinct rows), found
    by fingerprint (`kernels.row_hashes`, many rows per call) and compared exactly."""

    def __init__(self, n: int, n_words: int):
        self.row_of = np.zeros(n, np.int64)
        self.uniq: list = []
        self.fps: list = []  # fingerprint of uniq[r]
        self.index: dict = {}  # fingerprint -> ids of the distinct rows with it
        self.keys = _hash_keys(n_words)

    def hashes(self, rows: np.ndarray) -> list:
        from .kernels import row_hashes

        return row_hashes(rows, self.keys).tolist()

    def id_of(self, row, owned: bool = False, fp: int | None = None) -> int:
        """The id of `row`'s content (added if new; kept as is if `owned`, else copied); `fp`:
        its fingerprint if the caller has it."""
        if fp is None:
            fp = self.hashes(row.reshape(1, -1))[0]
        same = self.index.get(fp)
        if same is None:
            same = self.index[fp] = []
        else:
            data = None
            for r in same:
                u = self.uniq[r]
                if u is row:
                    return r
                if data is None:
                    data = row.tobytes()
                if u.tobytes() == data:
                    return r
        r = len(self.uniq)
        same.append(r)
        self.uniq.append(row if owned else row.copy())
        self.fps.append(fp)
        return r

    def add_at(self, ids, rows, fps: list | None = None, owned: bool = False) -> None:
        """Rows for positions `ids` (a matrix, or with `fps` a list); `owned`: kept as they are
        (the row cache's read-only rows), else copied."""
        if fps is None:
            fps = self.hashes(rows)
        for k, p in enumerate(ids.tolist()):
            self.row_of[p] = self.id_of(rows[k], owned, fps[k])

    def row(self, p: int) -> np.ndarray:
        return self.uniq[self.row_of[p]]

    def final(self) -> tuple:
        """(distinct rows in use, numbered by first position using them; row index per position)."""
        used, first = np.unique(self.row_of, return_index=True)
        used = used[np.argsort(first)]
        rank = np.zeros(len(self.uniq), np.int32)
        rank[used] = np.arange(len(used), dtype=np.int32)
        return [self.uniq[r] for r in used.tolist()], rank[self.row_of]


def _walk(trie: tuple, states: np.ndarray, net_args: tuple, n_words: int, budget, keep=None,
          regular: bool = False) -> tuple:
    """`kernels.walk_cfg_nd` over `trie` from each of `states`, in chunks: rows [len(states),
    n_words] and exits (kind, index into states, node, exit state, remainder offset).
    keep(lo, rows): consume each chunk's rows instead of returning them (then rows is None).
    regular: `kernels.walk_masks` (byte edges only, no exits), for states whose walks meet no
    call or completion.
    The pushdown kernel runs at most _STEPS steps per call (a state that needs more is walked
    again with twice as many), so the time limit is checked however costly one chunk is."""
    from . import kernels

    node_byte, node_depth, node_end, node_lo, node_hi, order = trie
    rows = None if keep else np.zeros((len(states), n_words), np.uint32)
    found = [[] for _ in range(5)]
    cap = _EXIT_CAP
    for lo in range(0, len(states), _CHUNK):
        budget.check_time()
        chunk = states[lo: lo + _CHUNK]
        hi = lo + len(chunk)
        out = rows[lo: hi] if keep is None else np.empty((len(chunk), n_words), np.uint32)
        out[:] = 0  # the kernels OR bits into these rows
        if regular:
            kernels.walk_masks(net_args[0], net_args[1], chunk, node_byte, node_depth, node_end, node_lo,
                               node_hi, order, out, np.zeros(len(chunk), np.int64))
        else:
            done, steps = 0, _STEPS
            while done < len(chunk):
                ex = [np.empty(cap, np.int32) for _ in range(5)]
                got, n_done, why = kernels.walk_cfg_nd(*net_args, chunk[done:], node_byte, node_depth, node_end,
                                                       node_lo, node_hi, order, out[done:], *ex, steps)
                ex[1] += lo + done
                for acc, x in zip(found, ex):
                    acc.append(x[:got])
                done += n_done
                if why == 0:
                    break
                out[done] = 0  # the unfinished state's partial row
                if why == 2:
                    cap *= 2
                else:
                    budget.check_time()
                    if n_done == 0:
                        steps *= 2
        if keep is not None:
            keep(lo, out)
    return rows, tuple(np.concatenate(x) if x else np.zeros(0, np.int32) for x in found)


# Rows of regular class walks, per vocabulary, by the code of the class's byte structure
# (`kernels.closure_codes` over the quote-free bytes): the same sub-networks (a string's content,
# a number) recur in every grammar a process compiles. Only rows keeping many tokens are kept
# (their walks are the costly ones), read-only, with their `_Rows` fingerprints; least recently
# used first out.
_ROW_CACHE: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()
_ROW_CACHE_LOCK = threading.Lock()
_ROW_CACHE_SIZE = 512
_ROW_CACHE_MIN_WORDS = 64  # nonzero words of a row worth keeping
_CODE_MAX_NODES = 48  # larger closures are walked, not looked up (codes fit int8)
_HASH_KEYS: dict = {}  # n_words -> the multipliers of `kernels.row_hashes` (fixed seed: cached rows keep theirs)


def _hash_keys(n_words: int) -> np.ndarray:
    with _ROW_CACHE_LOCK:
        keys = _HASH_KEYS.get(n_words)
        if keys is None:
            if len(_HASH_KEYS) >= 8:
                _HASH_KEYS.clear()
            rng = np.random.default_rng(0x6B6D)
            keys = _HASH_KEYS[n_words] = rng.integers(0, 1 << 63, n_words, dtype=np.uint64) * np.uint64(2) + np.uint64(1)
            keys.flags.writeable = False
        return keys


def _plain_rows(clean: tuple, states: np.ndarray, net_args: tuple, vocab, n_words: int, budget, keep) -> None:
    """Regular walks (`_walk(..., regular=True)`) of the clean trie from `states`, or their rows
    from the cache: keep(indices into states, rows, fingerprints, owned) receives every row once,
    owned, with its `_Rows` fingerprint (cached rows: read-only; walked ones: a fresh matrix,
    never written again)."""
    from . import kernels

    trans, classes = net_args[0], net_args[1]
    cols = np.array([b for b in range(256) if b not in SPLIT], np.uint8)
    code = np.empty(len(states) * _CODE_MAX_NODES * len(cols), np.int8)
    ptr = np.zeros(len(states) + 1, np.int64)
    kernels.closure_codes(trans, classes, cols, states, _CODE_MAX_NODES, code, ptr)
    keys = [code[a:b].tobytes() if b > a else None for a, b in zip(ptr[:-1].tolist(), ptr[1:].tolist())]
    with _ROW_CACHE_LOCK:
        cache = _ROW_CACHE.get(vocab)
        if cache is None:
            cache = _ROW_CACHE[vocab] = OrderedDict()
        got = []
        for k, key in enumerate(keys):
            hit = cache.get(key) if key is not None else None
            if hit is not None:
                cache.move_to_end(key)
                got.append((k, hit))
    if got:
        keep(np.array([k for k, _ in got]), [row for _, (row, _) in got], [fp for _, (_, fp) in got], True)
    miss = np.ones(len(states), bool)
    miss[[k for k, _ in got]] = False
    miss = np.flatnonzero(miss)

    def store(lo, out):
        ids = miss[lo: lo + len(out)]
        fps = kernels.row_hashes(out, _hash_keys(n_words)).tolist()
        keep(ids, out, fps, True)
        big = np.flatnonzero(np.count_nonzero(out, axis=1) >= _ROW_CACHE_MIN_WORDS)
        with _ROW_CACHE_LOCK:
            for j in big.tolist():
                key = keys[ids[j]]
                if key is not None:
                    row = out[j].copy()
                    row.flags.writeable = False
                    cache[key] = (row, fps[j])
                    while len(cache) > _ROW_CACHE_SIZE:
                        cache.popitem(last=False)

    _walk(clean, states[miss], net_args, n_words, budget, regular=True, keep=store)


def _expand(trie: tuple, kind: np.ndarray, node: np.ndarray) -> tuple:
    """Tokens under each exit: (exit index, token id) pairs. Kind 3 covers only the tokens ending
    at its node, the others the node's whole subtree."""
    node_byte, node_depth, node_end, node_lo, node_hi, order = trie
    first_tok = _first_tok(node_lo, node_hi)
    only = kind == 3
    a = np.where(only, node_lo[node], first_tok[node]).astype(np.int64)
    b = np.where(only, node_hi[node], first_tok[node_end[node]]).astype(np.int64)
    lens = np.maximum(b - a, 0)
    ex_idx = np.repeat(np.arange(len(a)), lens)
    starts = np.cumsum(lens) - lens
    tokpos = a[ex_idx] + (np.arange(int(lens.sum())) - starts[ex_idx])
    return ex_idx, order[tokpos].astype(np.int64)


# Per trie (a vocabulary's, kept as long as it is): index in `order` of the first token of each
# node's subtree. Computing it costs a pass over the whole trie (~0.5 ms at 100k tokens), once.
_FIRST_TOK: "OrderedDict[int, tuple]" = OrderedDict()
_FIRST_TOK_SIZE = 8


def _first_tok(node_lo: np.ndarray, node_hi: np.ndarray) -> np.ndarray:
    with _ROW_CACHE_LOCK:
        got = _FIRST_TOK.get(id(node_lo))
    if got is not None and got[0] is node_lo and got[1] is node_hi:
        return got[2]
    first_tok = np.zeros(len(node_lo) + 1, np.int64)
    np.cumsum((node_hi - node_lo).astype(np.int64), out=first_tok[1:])
    first_tok.flags.writeable = False
    with _ROW_CACHE_LOCK:
        _FIRST_TOK[id(node_lo)] = (node_lo, node_hi, first_tok)
        while len(_FIRST_TOK) > _FIRST_TOK_SIZE:
            _FIRST_TOK.popitem(last=False)
    return first_tok


def _pure(rtn: Rtn, flags, depth: int) -> np.ndarray:
    """Positions from which no byte string of at most `depth` bytes without a SPLIT byte reaches
    a position with a call or a completion (nor the position itself has one)."""
    from .kernels import reach_within

    special = (np.diff(rtn.call_ptr) > 0) | (flags & 2).any(axis=1)
    reach = reach_within(rtn.trans, clean_columns(rtn.classes).astype(np.int64), special, depth)
    return ~reach


def position_classes(rtn: Rtn, flags, horizon: int, budget) -> np.ndarray:
    """Dense class per position such that positions of one class walk every token without a
    SPLIT byte alike (same row, same exits).

    Positions with a call or a completion ("special": their walk depends on the stack and exits
    name them) each get a class of their own. The others only follow byte edges, so two of them
    walk a string alike iff they agree, byte by byte, on liveness and on which special position
    they reach (after which both walks are the same walk): Moore refinement for `horizon` rounds
    (the longest token) over the byte classes that hold some byte outside SPLIT. A walk's first
    byte follows byte edges only, so the start position's own calls do not matter there, but it
    may be reached again later, so specials stay alone."""
    from .automaton import refine_blocks

    n = rtn.n_pos
    if n == 0:
        return np.zeros(0, np.int64)
    special = (np.diff(rtn.call_ptr) > 0) | (flags & 2).any(axis=1)
    kept_col = np.zeros(rtn.trans.shape[1], bool)
    kept_col[clean_columns(rtn.classes)] = True
    t = rtn.trans[:, kept_col]
    t = np.vstack([np.where(t >= 0, t, n), np.full((1, t.shape[1]), n)])
    part = np.zeros(n + 1, np.int64)
    part[n] = 1
    sp = np.flatnonzero(special)
    part[sp] = 2 + np.arange(len(sp))
    part = refine_blocks(t, part, max(horizon, 1), budget)[:n]
    _, dense = np.unique(part, return_inverse=True)
    return dense.reshape(-1)


_SAME_TRIES = 8  # representatives a position is compared with (bounds the cost on big grammars)


def local_classes(rtn: Rtn, positions: list) -> dict:
    """position -> representative, for `positions`: positions with one representative read every
    string alike within their rule instances (`earley.local_table`), as the parts of the network
    they reach through their own rules' edges are isomorphic (`kernels.same_local`; the callees'
    positions are shared). Return positions of different rules often are (`}` closing objects)."""
    from .kernels import same_local

    n = rtn.n_pos
    final = (rtn.final_nt >= 0).astype(np.int8)
    scratch = (np.full(n, -1, np.int64), np.full(n, -1, np.int64), np.zeros(n, np.int64))
    args = (rtn.trans, final, rtn.call_ptr, rtn.call_nt, rtn.call_next)
    live = rtn.trans >= 0
    nt, ptr = rtn.call_nt.tolist(), rtn.call_ptr.tolist()
    reps: dict = {}  # quick signature (completes, byte edges, callees) -> representatives
    out = {}
    for p in positions:
        sig = (int(final[p]), live[p].tobytes(), tuple(nt[ptr[p]: ptr[p + 1]]))
        cands = reps.setdefault(sig, [])
        out[p] = next((r for r in cands[:_SAME_TRIES] if same_local(*args, p, r, *scratch)), p)
        if out[p] == p:
            cands.append(p)
    return out
