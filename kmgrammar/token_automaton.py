"""Byte DFA x vocabulary -> token automaton: for every DFA state, the exact set of allowed tokens.

The vocabulary trie is walked against the DFA (numba, `kernels.walk_masks`) from one state of
each class of states that behave alike on its tokens; a token is allowed iff its bytes stay
inside the trimmed DFA, i.e. iff they can still be extended to a complete output. A token's
successor is the DFA state its bytes lead to, so the successor table is the byte DFA itself
plus the token bytes: O(len(token)) per step and no per-(state, token) storage. Masks are
packed bitmask rows (int32, bit i % 32 of word i // 32).

Rows are stored compactly: identical rows are shared, and each distinct row is kept either
dense or as a fill word (0 or all-ones) plus the few words that differ from it.
"""

from __future__ import annotations

import weakref

import numpy as np

from .automaton import ByteDFA, refine_blocks
from .errors import VocabError

_CHUNK = 256  # states per kernel call: bounds the scratch rows to 256 x vocab/8 bytes
# Bytes after which states that otherwise behave alike usually part ways (a string's closing
# quote, then a different key): tokens holding one are walked from finer classes of states.
SPLIT = b'"'
_MAX_TOKEN_BYTES = 4000

_TRIES: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()


def words_for(vocab_size: int) -> int:
    return (vocab_size + 31) // 32


def vocab_trie(vocab) -> tuple:
    """The vocabulary's byte trie (computed once per Vocabulary object)."""
    got = _TRIES.get(vocab)
    if got is not None:
        return got
    from . import kernels

    tb = vocab.token_bytes
    special = vocab.special_token_ids
    ids = [i for i in range(len(tb)) if tb[i] and i not in special]
    if any(len(tb[i]) > _MAX_TOKEN_BYTES for i in ids):
        raise VocabError(f"a token is longer than {_MAX_TOKEN_BYTES} bytes; not a real tokenizer vocabulary?")
    ids.sort(key=tb.__getitem__)
    lengths = np.fromiter((len(b) for b in tb), np.int64, len(tb))
    offsets = np.zeros(len(tb) + 1, np.int64)
    np.cumsum(lengths, out=offsets[1:])
    data = np.frombuffer(b"".join(tb), np.uint8) if offsets[-1] else np.zeros(0, np.uint8)
    order = np.array(ids, np.int32)
    got = kernels.build_trie(data, offsets, order) + (order,)
    _TRIES[vocab] = got
    return got


_SPLIT_TRIES: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()


def split_tries(vocab, split: bytes) -> tuple:
    """Two tries (same layout as `vocab_trie`) over the vocabulary's tokens: those without any
    byte of `split`, and those with one. Computed once per (vocabulary, split)."""
    per_vocab = _SPLIT_TRIES.get(vocab)
    if per_vocab is None:
        per_vocab = _SPLIT_TRIES[vocab] = {}
    got = per_vocab.get(split)
    if got is not None:
        return got
    from . import kernels

    order = vocab_trie(vocab)[5]
    tb = vocab.token_bytes
    lengths = np.fromiter((len(b) for b in tb), np.int64, len(tb))
    offsets = np.zeros(len(tb) + 1, np.int64)
    np.cumsum(lengths, out=offsets[1:])
    data = np.frombuffer(b"".join(tb), np.uint8) if offsets[-1] else np.zeros(0, np.uint8)
    has = np.zeros(256, bool)
    has[list(split)] = True
    # token id -> holds a split byte: count split bytes through the concatenated data
    cum = np.zeros(len(data) + 1, np.int64)
    np.cumsum(has[data], out=cum[1:])
    dirty = (cum[offsets[1:]] - cum[offsets[:-1]]) > 0
    got = tuple(kernels.build_trie(data, offsets, part) + (part,)
                for part in (order[~dirty[order]], order[dirty[order]]))
    per_vocab[split] = got
    return got


def clean_columns(classes: np.ndarray) -> np.ndarray:
    """The byte classes (transition columns) that hold some byte outside SPLIT, ascending."""
    split = np.zeros(256, bool)
    split[list(SPLIT)] = True
    return np.unique(classes[~split])


def _pack_ids(ids, n_words: int) -> np.ndarray:
    row = np.zeros(n_words, np.uint32)
    for t in ids:
        row[t >> 5] |= np.uint32(1 << (t & 31))
    return row


def build_token_automaton(dfa: ByteDFA, vocab, budget=None) -> tuple:
    """Masks for every state of `dfa` over `vocab`.

    Returns (arrays, stats): arrays is a dict of numpy arrays stored in the artifact
    (state_row, row_fill, row_dense, row_start, exc_idx, exc_val, dense, forced);
    stats counts states, distinct rows and (state, token) transitions.
    """
    n_words = words_for(vocab.vocab_size)
    eos_row = _pack_ids(vocab.eos_token_ids, n_words)
    n = dfa.n_states
    trans = np.ascontiguousarray(dfa.trans)
    classes = np.ascontiguousarray(dfa.classes)
    node_depth = vocab_trie(vocab)[1]
    horizon = int(node_depth.max()) if len(node_depth) else 0
    # A token's bit depends only on which byte strings of at most `horizon` bytes stay alive, so
    # one state per horizon class is walked (`horizon_classes`). Tokens without a SPLIT byte are
    # walked once per coarser class, alike on SPLIT-free strings only: the copies of a value that
    # an object makes per set of keys written differ only past the value's closing quote.
    clean, dirty = split_tries(vocab, SPLIT)
    cls_dirty = horizon_classes(dfa.trans, horizon, budget)
    cls_clean = horizon_classes(dfa.trans[:, clean_columns(dfa.classes)], horizon, budget)
    clean_of, rows_clean, t_clean = _walk_classes(trans, classes, cls_clean, clean, n_words, budget)
    # (the dirty walk sets bit j for the dirty trie's j-th token: rows of a few words)
    d_order = dirty[5]
    dirty_of, rows_dirty, t_dirty = _walk_classes(trans, classes, cls_dirty,
                                                  dirty[:5] + (np.arange(len(d_order), dtype=np.int32),),
                                                  words_for(len(d_order)), budget)
    d_bits = full_row_bits([r.tobytes() for r in rows_dirty], d_order, n_words)
    # A state's row: its two walks, plus EOS where it accepts; identical rows are stored once.
    n_dirty = len(rows_dirty)
    key = (clean_of[cls_clean] * n_dirty + dirty_of[cls_dirty]) * 2 + dfa.accept
    combos, state_combo = np.unique(key, return_inverse=True)
    index: dict = {}
    uniq: list = []
    combo_row = np.zeros(len(combos), np.int32)
    for k, c in enumerate(combos.tolist()):
        row = rows_clean[c // 2 // n_dirty].copy()
        w, v = d_bits[c // 2 % n_dirty]
        row[w] |= v
        if c & 1:
            row |= eos_row
        r = index.setdefault(row.tobytes(), len(uniq))
        if r == len(uniq):
            uniq.append(row)
        combo_row[k] = r
    arrays = _encode_rows(uniq, n_words)
    arrays["state_row"] = combo_row[state_combo.reshape(-1)]
    arrays["forced"] = forced_bytes_table(dfa)
    stats = {
        "states": n,
        "walked_states": len(t_clean) + len(t_dirty),
        "distinct_rows": len(uniq),
        "token_transitions": int(t_clean[cls_clean].sum() + t_dirty[cls_dirty].sum()),
        "eos_states": int(dfa.accept.sum()),
    }
    return arrays, stats


def _walk_classes(trans, classes, cls_of, trie, n_words: int, budget) -> tuple:
    """Walk `trie` from the first state of each class. Returns each class's row number, the
    distinct rows (bits of the trie's token ids), and each class's count of allowed tokens."""
    from . import kernels

    node_byte, node_depth, node_end, node_lo, node_hi, order = trie
    n = len(cls_of)
    reps = np.full(int(cls_of.max()) + 1 if n else 0, -1, np.int64)
    reps[cls_of[::-1]] = np.arange(n - 1, -1, -1)
    row_of = np.zeros(len(reps), np.int64)
    counts = np.zeros(len(reps), np.int64)
    index: dict = {}
    uniq: list = []
    for lo in range(0, len(reps), _CHUNK):
        if budget is not None:
            budget.check_time()
        hi = min(len(reps), lo + _CHUNK)
        out = np.zeros((hi - lo, n_words), np.uint32)
        kernels.walk_masks(trans, classes, reps[lo:hi].astype(np.int32), node_byte, node_depth, node_end,
                           node_lo, node_hi, order, out, counts[lo:hi])
        for k in range(hi - lo):
            r = index.setdefault(out[k].tobytes(), len(uniq))
            if r == len(uniq):
                uniq.append(out[k].copy())
            row_of[lo + k] = r
    if not uniq:
        uniq.append(np.zeros(n_words, np.uint32))
    return row_of, uniq, counts


def full_row_bits(compact: list, order: np.ndarray, n_words: int) -> list:
    """Per compact row (bytes of uint32 words, bit j for token order[j]): the nonzero words of
    the same row over the whole vocabulary, as (word indices ascending, words)."""
    from .kernels import spread_rows

    if not compact:
        return []
    m = np.frombuffer(b"".join(compact), np.uint32).reshape(len(compact), words_for(len(order)))
    ptr, idx, val = spread_rows(m, order, n_words)
    ptr = ptr.tolist()
    return [(idx[a:b], val[a:b]) for a, b in zip(ptr[:-1], ptr[1:])]


def horizon_classes(trans: np.ndarray, horizon: int, budget=None) -> np.ndarray:
    """Group states that keep exactly the same byte strings alive up to `horizon` bytes.

    Every state of a trimmed DFA is live, so a token (at most `horizon` bytes) is allowed from
    a state iff its bytes stay alive; two states that agree on every string up to that length
    have the same mask (EOS aside). Counted repeats such as `.{0,300}` collapse from hundreds
    of states to about `horizon` walks. Refinement stops early once the partition is stable.
    """
    n = trans.shape[0]
    if n == 0:
        return np.zeros(0, np.int64)
    t = np.vstack([np.where(trans >= 0, trans, n), np.full((1, trans.shape[1]), n)])
    part = np.zeros(n + 1, np.int64)
    part[n] = 1
    part = refine_blocks(t, part, max(horizon, 1), budget)
    # Renumber classes of real states densely, in order of their first state: rows are numbered
    # by class, and the artifact should not depend on the refinement kernel's block ids.
    _, first, dense = np.unique(part[:n], return_index=True, return_inverse=True)
    rank = np.empty(len(first), np.int64)
    rank[np.argsort(first)] = np.arange(len(first))
    return rank[dense.reshape(-1)]


_ENCODE_BATCH = 256  # rows per `kernels.encode_rows` call (bounds the stacked copy)


def _encode_rows(rows: list, n_words: int) -> dict:
    """The artifact's row arrays: each distinct row dense or as fill + exceptions (`kernels.encode_rows`)."""
    from . import kernels

    parts = []
    for lo in range(0, len(rows), _ENCODE_BATCH):
        parts.append(kernels.encode_rows(np.stack(rows[lo: lo + _ENCODE_BATCH])))
    if not parts:
        parts.append(kernels.encode_rows(np.zeros((0, n_words), np.uint32)))
    # batches numbered their dense rows and pairs from 0: shift them past the batches before
    n_dense = np.cumsum([0] + [len(p[5]) for p in parts])
    n_pairs = np.cumsum([0] + [int(p[2][-1]) for p in parts])
    cat = np.concatenate
    return {
        "row_fill": cat([p[0] for p in parts]),
        "row_dense": cat([np.where(p[1] >= 0, p[1] + n_dense[k], -1).astype(np.int32) for k, p in enumerate(parts)]),
        "row_start": cat([parts[0][2][:1]] + [p[2][1:] + n_pairs[k] for k, p in enumerate(parts)]),
        "exc_idx": cat([p[3] for p in parts]),
        "exc_val": cat([p[4] for p in parts]).view(np.int32),
        "dense": cat([p[5] for p in parts]).view(np.int32),
    }


def forced_bytes_table(dfa: ByteDFA) -> np.ndarray:
    """Per state: the only byte that can follow (int16), or -1 when there is a choice or an end."""
    n = dfa.n_states
    counts = np.bincount(dfa.classes, minlength=dfa.trans.shape[1])
    live = dfa.trans >= 0
    n_bytes = (live * counts).sum(axis=1)
    out = np.full(n, -1, np.int16)
    single = np.flatnonzero((n_bytes == 1) & ~dfa.accept)
    if len(single):
        cls = live[single].argmax(axis=1)
        first_byte = np.full(dfa.trans.shape[1], -1, np.int64)
        first_byte[dfa.classes[::-1]] = np.arange(255, -1, -1)
        out[single] = first_byte[cls]
    return out
