"""RTN x vocabulary -> the precomputed mask tables of a grammar artifact.

For every position p, the vocabulary trie is walked along byte edges (numba,
`kernels.walk_cfg_masks`): tokens that stay on byte edges are allowed whatever the stack holds,
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

import numpy as np

from .cfg_rtn import Rtn, actions, byte_sets, follow2
from .earley import Chart, Network, classify_sorted
from .token_automaton import _encode_rows, vocab_trie, words_for

_CHUNK = 256


def build_cfg_tables(rtn: Rtn, vocab, budget) -> tuple:
    """Returns (arrays, stats) for a "cfg" artifact."""
    from . import kernels

    node_byte, node_depth, node_end, node_lo, node_hi, order = vocab_trie(vocab)
    n_words = words_for(vocab.vocab_size)
    sets = byte_sets(rtn)
    follow = sets["follow"]
    flags, call_start, call_ret, call_first, call_skip = actions(rtn, sets)
    f2 = follow2(rtn, sets)
    owner = np.ascontiguousarray(rtn.owner.astype(np.int32))
    n = rtn.n_pos
    trans = np.ascontiguousarray(rtn.trans)
    classes = np.ascontiguousarray(rtn.classes)
    rows = np.zeros((n, n_words), np.uint32)
    ex_kind, ex_p, ex_n, ex_u, ex_o = [], [], [], [], []
    cap = 1 << 15
    for lo in range(0, n, _CHUNK):
        budget.check_time()
        states = np.arange(lo, min(n, lo + _CHUNK), dtype=np.int32)
        while True:
            out = np.zeros((len(states), n_words), np.uint32)
            ekind, ek, en, eu, eo = (np.zeros(cap, np.int32) for _ in range(5))
            got = kernels.walk_cfg_nd(trans, classes, flags, rtn.call_ptr, call_start, call_ret, call_first,
                                      call_skip, owner, f2, states, node_byte, node_depth, node_end, node_lo,
                                      node_hi, order, out, ekind, ek, en, eu, eo)
            if got <= cap:
                break
            cap = 2 * got
        rows[lo: lo + len(states)] = out
        ex_kind.append(ekind[:got])
        ex_p.append(states[ek[:got]])
        ex_n.append(en[:got])
        ex_u.append(eu[:got])
        ex_o.append(eo[:got])
    cat = np.concatenate
    ex_kind, ex_p, ex_n, ex_u, ex_o = ((cat(x) if x else np.zeros(0, np.int32)) for x in (ex_kind, ex_p, ex_n, ex_u, ex_o))

    # Remainders of the tokens under each exit (vectorised expansion), deduplicated per
    # (kind, exit state). Kind 3 covers only the tokens ending at its node; it is a kind 1.
    counts = (node_hi - node_lo).astype(np.int64)
    first_tok = np.zeros(len(counts) + 1, np.int64)
    np.cumsum(counts, out=first_tok[1:])
    only = ex_kind == 3
    ex_kind = np.where(only, 1, ex_kind)
    a = np.where(only, node_lo[ex_n], first_tok[ex_n]).astype(np.int64)
    b = np.where(only, node_hi[ex_n], first_tok[node_end[ex_n]]).astype(np.int64)
    lens = np.maximum(b - a, 0)
    ex_idx = np.repeat(np.arange(len(a)), lens)
    starts = np.cumsum(lens) - lens
    tokpos = a[ex_idx] + (np.arange(int(lens.sum())) - starts[ex_idx])
    toks = order[tokpos].astype(np.int64)
    pp = ex_p[ex_idx]
    in_row = (rows[pp, toks >> 5] >> (toks & 31).astype(np.uint32)) & 1
    keep = in_row == 0
    tb = vocab.token_bytes
    rem_ids: dict = {}  # (kind, u) -> {remainder: id}
    groups: dict = {}  # (p, kind, u) -> ([tokens], [remainder ids])
    ek_l, eu_l, eo_l, ep_l = ex_kind.tolist(), ex_u.tolist(), ex_o.tolist(), ex_p.tolist()
    for e, t in zip(ex_idx[keep].tolist(), toks[keep].tolist()):
        kind, u = ek_l[e], eu_l[e]
        ids = rem_ids.get((kind, u))
        if ids is None:
            ids = rem_ids[(kind, u)] = {}
        r = tb[t][eo_l[e]:]
        k = ids.get(r)
        if k is None:
            k = ids[r] = len(ids)
        g = groups.get((ep_l[e], kind, u))
        if g is None:
            g = groups[(ep_l[e], kind, u)] = ([], [])
        g[0].append(t)
        g[1].append(k)
    budget.check_time()

    # Classify each remainder from (u, unknown caller).
    net = Network(rtn.trans, rtn.classes, rtn.final_nt, rtn.call_ptr, rtn.call_nt, rtn.call_next,
                  rtn.nt_start, rtn.nullable, rtn.top)
    status: dict = {}  # (kind, u) -> np.int8 [n_rem] by remainder id
    dep_index: dict = {}  # (kind, u) -> {remainder id: remainder} of the context-dependent ones
    dep_lists: dict = {}  # u -> {context-dependent remainder: first-seen index}
    n_checked = 0
    for (kind, u), ids in rem_ids.items():
        budget.check_time()
        strings = sorted(ids)
        if kind == 1:  # the starting rule completes: context-dependent by construction
            st = [2] * len(strings)
        else:
            charts = [net.close([], 0, [(u, -1)])]
            st = classify_sorted(net, charts, strings, follow[int(rtn.owner[u])])
            n_checked += len(strings)
        status[(kind, u)] = np.array([st[k] for k in np.argsort(np.array([ids[x] for x in strings]))], np.int8) \
            if strings else np.zeros(0, np.int8)
        for x, v in zip(strings, st):
            if v == 2:
                dl = dep_lists.setdefault(u, {})
                if x not in dl:
                    dl[x] = len(dl)
        dep_index[(kind, u)] = {ids[x]: x for x, v in zip(strings, st) if v == 2}

    grp_ptr = [0]
    grp_state, grp_tok_ptr, grp_tok, grp_rem = [], [0], [], []
    n_valid = n_dep = 0
    by_p: dict = {}
    # Each state's context-dependent remainders, sorted (the run-time walk shares prefixes).
    dep_sorted = {u: sorted(dl) for u, dl in dep_lists.items()}
    dep_pos = {u: {x: k for k, x in enumerate(lst)} for u, lst in dep_sorted.items()}
    merged: dict = {}
    for (p, kind, u), (toks, rems) in groups.items():
        toks = np.array(toks, np.int64)
        rems = np.array(rems, np.int64)
        st = status[(kind, u)][rems] if len(rems) else np.zeros(0, np.int8)
        valid = toks[st == 1]
        if len(valid):
            np.bitwise_or.at(rows[p], valid >> 5, np.left_shift(np.uint32(1), (valid & 31).astype(np.uint32)))
            n_valid += len(valid)
        keep = np.flatnonzero(st == 2)
        if len(keep):
            names = dep_index[(kind, u)]
            m = merged.setdefault((p, u), ([], []))
            m[0].extend(toks[keep].tolist())
            m[1].extend(dep_pos[u][names[int(r)]] for r in rems[keep])
    for (p, u), (toks, rems) in merged.items():
        by_p.setdefault(p, []).append((u, toks, rems))
    for p in range(n):
        for u, toks, rems in by_p.get(p, ()):
            grp_state.append(u)
            grp_tok.append(np.array(toks, np.int32))
            grp_rem.append(np.array(rems, np.int32))
            grp_tok_ptr.append(grp_tok_ptr[-1] + len(toks))
            n_dep += len(toks)
        grp_ptr.append(len(grp_state))
    pre = _precompute_callers(rtn, net, dep_sorted, follow, budget)
    rem_ptr = [0]
    rem_off = [0]
    data = []
    for u in range(n):
        for x in dep_sorted.get(u, ()):
            data.append(x)
            rem_off.append(rem_off[-1] + len(x))
        rem_ptr.append(len(rem_off) - 1)

    # Mask rows, deduplicated and compressed like a regular automaton's.
    index: dict = {}
    uniq: list = []
    state_row = np.zeros(n, np.int32)
    for p in range(n):
        key = rows[p].tobytes()
        r = index.get(key)
        if r is None:
            r = index[key] = len(uniq)
            uniq.append(rows[p])
        state_row[p] = r
    arrays = _encode_rows(uniq, n_words)
    cat = np.concatenate
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
        cfg_grp_ptr=np.array(grp_ptr, np.int32),
        cfg_grp_state=np.array(grp_state, np.int32),
        cfg_grp_tok_ptr=np.array(grp_tok_ptr, np.int64),
        cfg_grp_tok=cat(grp_tok) if grp_tok else np.zeros(0, np.int32),
        cfg_grp_rem=cat(grp_rem).astype(np.int32) if grp_rem else np.zeros(0, np.int32),
        cfg_rem_ptr=np.array(rem_ptr, np.int32),
        cfg_rem_off=np.array(rem_off, np.int64),
        cfg_rem_data=np.frombuffer(b"".join(data), np.uint8).copy() if data else np.zeros(0, np.uint8),
        **pre,
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
        "caller_verdicts": int(len(pre["cfg_pre_u"])),
    }
    return arrays, stats


CFG_ARRAYS = (
    "cfg_final_nt", "cfg_call_ptr", "cfg_call_nt", "cfg_call_next", "cfg_nt_start", "cfg_nullable",
    "cfg_grp_ptr", "cfg_grp_state", "cfg_grp_tok_ptr", "cfg_grp_tok", "cfg_grp_rem", "cfg_rem_ptr",
    "cfg_rem_off", "cfg_rem_data",
)


# Remainder walks spent ahead of time on one-level caller contexts (JSON: ~500, arithmetic: ~1k).
_PRECOMPUTE_BUDGET = 20_000


def _precompute_callers(rtn: Rtn, net: Network, dep_sorted: dict, follow, budget) -> dict:
    """Verdicts of each state's context-dependent remainders when its rule returns to call site r1
    (the caller's next position) and, where many still depend, that caller's rule returns to r2,
    whatever lies deeper: 1 valid, 0 invalid, 2 still depends. At run time the real charts'
    waiters pick these rows, so a stack shape never seen before needs a walk only for the
    remainders that pop deeper than that."""
    sites: dict = {}
    for q in range(rtn.n_pos):
        for m, r in rtn.calls_of(q):
            sites.setdefault(m, set()).add(r)
    us, r1s, r2s, off, st = [], [], [], [0], []
    spent = 0

    def run(u, r1, r2, rems) -> list:
        m = int(rtn.owner[u])
        if r2 < 0:
            charts = [Chart([], {m: [(r1, -1)]}, False, False, True, 0, False)]
            charts.append(net.close(charts, 1, [(u, 0)]))
            top = int(rtn.owner[r1])
        else:
            charts = [Chart([], {int(rtn.owner[r1]): [(r2, -1)]}, False, False, True, 0, False),
                      Chart([], {m: [(r1, 0)]}, False, False, True, 0, False)]
            charts.append(net.close(charts, 2, [(u, 1)]))
            top = int(rtn.owner[r2])
        got = classify_sorted(net, charts, rems, follow[top])
        us.append(u)
        r1s.append(r1)
        r2s.append(r2)
        st.extend(got)
        off.append(len(st))
        return got

    for u in sorted(dep_sorted):
        rems = dep_sorted[u]
        for r1 in sorted(sites.get(int(rtn.owner[u]), ())):
            if spent + len(rems) > _PRECOMPUTE_BUDGET:
                break
            budget.check_time()
            spent += len(rems)
            got = run(u, r1, -1, rems)
            if sum(1 for x in got if x == 2) * 5 < len(rems):
                continue
            for r2 in sorted(sites.get(int(rtn.owner[r1]), ())):
                if spent + len(rems) > _PRECOMPUTE_BUDGET:
                    break
                spent += len(rems)
                run(u, r1, r2, rems)
    return {"cfg_pre_u": np.array(us, np.int32), "cfg_pre_r": np.array(r1s, np.int32),
            "cfg_pre_r2": np.array(r2s, np.int32), "cfg_pre_off": np.array(off, np.int64),
            "cfg_pre_st": np.array(st, np.int8)}
