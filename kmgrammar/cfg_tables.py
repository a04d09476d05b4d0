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

from .cfg_rtn import Rtn, exit_bytes
from .earley import Network, classify_sorted
from .token_automaton import _encode_rows, vocab_trie, words_for

_CHUNK = 256


def build_cfg_tables(rtn: Rtn, vocab, budget) -> tuple:
    """Returns (arrays, stats) for a "cfg" artifact."""
    from . import kernels

    node_byte, node_depth, node_end, node_lo, node_hi, order = vocab_trie(vocab)
    n_words = words_for(vocab.vocab_size)
    exits, follow = exit_bytes(rtn)
    n = rtn.n_pos
    trans = np.ascontiguousarray(rtn.trans)
    classes = np.ascontiguousarray(rtn.classes)
    rows = np.zeros((n, n_words), np.uint32)
    ex_p, ex_n, ex_u = [], [], []
    cap = 1 << 15
    for lo in range(0, n, _CHUNK):
        budget.check_time()
        states = np.arange(lo, min(n, lo + _CHUNK), dtype=np.int32)
        while True:
            out = np.zeros((len(states), n_words), np.uint32)
            ek, en, eu = (np.zeros(cap, np.int32) for _ in range(3))
            got = kernels.walk_cfg_masks(trans, classes, exits, states, node_byte, node_depth, node_end,
                                         node_lo, node_hi, order, out, ek, en, eu)
            if got <= cap:
                break
            cap = 2 * got
        rows[lo: lo + len(states)] = out
        ex_p.append(states[ek[:got]])
        ex_n.append(en[:got])
        ex_u.append(eu[:got])
    ex_p = np.concatenate(ex_p).tolist() if ex_p else []
    ex_n = np.concatenate(ex_n).tolist() if ex_n else []
    ex_u = np.concatenate(ex_u).tolist() if ex_u else []

    # Remainders of the tokens under each exit, deduplicated per exit state.
    counts = (node_hi - node_lo).astype(np.int64)
    first_tok = np.zeros(len(counts) + 1, np.int64)
    np.cumsum(counts, out=first_tok[1:])
    tb = vocab.token_bytes
    order_l = order.tolist()
    rem_ids: dict = {}  # u -> {remainder: id}
    groups: dict = {}  # (p, u) -> ([tokens], [remainder ids])
    for p, node, u in zip(ex_p, ex_n, ex_u):
        d = int(node_depth[node]) - 1
        a, b = int(first_tok[node]), int(first_tok[node_end[node]])
        ids = rem_ids.setdefault(u, {})
        toks, rems = groups.setdefault((p, u), ([], []))
        row = rows[p]
        for j in range(a, b):
            t = order_l[j]
            if (row[t >> 5] >> (t & 31)) & 1:
                continue
            r = tb[t][d:]
            k = ids.get(r)
            if k is None:
                k = ids[r] = len(ids)
            toks.append(t)
            rems.append(k)
    budget.check_time()

    # Classify each remainder from (u, unknown caller).
    net = Network(rtn.trans, rtn.classes, rtn.final_nt, rtn.call_ptr, rtn.call_nt, rtn.call_next,
                  rtn.nt_start, rtn.nullable, rtn.top)
    status: dict = {}  # u -> np.int8 [n_rem] by remainder id
    dep_index: dict = {}  # u -> np.int32 [n_rem]: index among u's sorted context-dependent ones, or -1
    dep_lists: dict = {}  # u -> sorted context-dependent remainders
    n_checked = 0
    for u, ids in rem_ids.items():
        budget.check_time()
        strings = sorted(ids)
        charts = [net.close([], 0, [(u, -1)])]
        st = classify_sorted(net, charts, strings, follow[int(rtn.owner[u])])
        n_checked += len(strings)
        by_id = np.zeros(len(ids), np.int8)
        dep = np.full(len(ids), -1, np.int32)
        deps = []
        for s, v in zip(strings, st):
            by_id[ids[s]] = v
            if v == 2:
                dep[ids[s]] = len(deps)
                deps.append(s)
        status[u], dep_index[u], dep_lists[u] = by_id, dep, deps

    grp_ptr = [0]
    grp_state, grp_tok_ptr, grp_tok, grp_rem = [], [0], [], []
    n_valid = n_dep = 0
    by_p: dict = {}
    for (p, u), (toks, rems) in groups.items():
        by_p.setdefault(p, []).append((u, toks, rems))
    for p in range(n):
        for u, toks, rems in by_p.get(p, ()):
            toks = np.array(toks, np.int64)
            rems = np.array(rems, np.int64)
            st = status[u][rems]
            valid = toks[st == 1]
            if len(valid):
                np.bitwise_or.at(rows[p], valid >> 5, (np.uint32(1) << (valid & 31).astype(np.uint32)))
                n_valid += len(valid)
            keep = st == 2
            if keep.any():
                grp_state.append(u)
                grp_tok.append(toks[keep].astype(np.int32))
                grp_rem.append(dep_index[u][rems[keep]])
                grp_tok_ptr.append(grp_tok_ptr[-1] + int(keep.sum()))
                n_dep += int(keep.sum())
        grp_ptr.append(len(grp_state))
    rem_ptr = [0]
    rem_off = [0]
    data = []
    for u in range(n):
        for s in dep_lists.get(u, ()):
            data.append(s)
            rem_off.append(rem_off[-1] + len(s))
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
    )
    stats = {
        "positions": n,
        "nonterminals": len(rtn.names),
        "distinct_rows": len(uniq),
        "exits": len(ex_p),
        "remainders_classified": n_checked,
        "tokens_valid_by_classification": n_valid,
        "context_dependent_tokens": n_dep,
        "context_dependent_remainders": len(data),
    }
    return arrays, stats


CFG_ARRAYS = (
    "cfg_final_nt", "cfg_call_ptr", "cfg_call_nt", "cfg_call_next", "cfg_nt_start", "cfg_nullable",
    "cfg_grp_ptr", "cfg_grp_state", "cfg_grp_tok_ptr", "cfg_grp_tok", "cfg_grp_rem", "cfg_rem_ptr",
    "cfg_rem_off", "cfg_rem_data",
)
