"""All numba kernels, typed by plain numpy arrays. Everything around them is plain Python.

numba is imported here only, and this module is imported only when compiling: loading a cached
artifact and serving masks never pays numba's import or JIT time.
"""

from __future__ import annotations

import numba as nb
import numpy as np


@nb.njit(cache=True, nogil=True)
def build_trie(data, offsets, order):
    """Byte trie of the tokens `order` (ids sorted by their bytes), nodes in DFS preorder.

    data/offsets: concatenated token bytes (uint8) and int64 offsets, indexed by token id.
    Returns node_byte, node_depth, node_end (index just past the node's subtree),
    node_lo/node_hi (range of positions in `order` of tokens ending exactly at the node).
    """
    cap = 1
    for k in range(order.shape[0]):
        t = order[k]
        cap += offsets[t + 1] - offsets[t]
    node_byte = np.zeros(cap, np.uint8)
    node_depth = np.zeros(cap, np.int32)
    node_end = np.zeros(cap, np.int32)
    node_lo = np.zeros(cap, np.int32)
    node_hi = np.zeros(cap, np.int32)
    path = np.zeros(4096, np.int32)  # node index per depth on the current root path
    n = 1
    depth = 0
    prev = -1
    for k in range(order.shape[0]):
        t = order[k]
        a, b = offsets[t], offsets[t + 1]
        length = b - a
        lcp = 0
        if prev >= 0:
            pa, pb = offsets[prev], offsets[prev + 1]
            while lcp < length and lcp < pb - pa and data[a + lcp] == data[pa + lcp]:
                lcp += 1
        if prev >= 0 and lcp == length and length == offsets[prev + 1] - offsets[prev]:
            node_hi[path[length]] = k + 1  # same bytes as the previous token
            prev = t
            continue
        for d in range(depth, lcp, -1):
            node_end[path[d]] = n
        for d in range(lcp + 1, length + 1):
            node_byte[n] = data[a + d - 1]
            node_depth[n] = d
            path[d] = n
            n += 1
        node_lo[path[length]] = k
        node_hi[path[length]] = k + 1
        depth = length
        prev = t
    for d in range(depth, 0, -1):
        node_end[path[d]] = n
    node_end[0] = n
    return node_byte[:n], node_depth[:n], node_end[:n], node_lo[:n], node_hi[:n]


@nb.njit(cache=True, nogil=True)
def walk_masks(trans, classes, states, node_byte, node_depth, node_end, node_lo, node_hi, order, out, counts):
    """For each DFA state in `states`, set in out[k] (uint32 words) the bit of every token whose
    bytes stay inside the DFA from that state, and count them in counts[k]. A dead prefix skips
    its whole trie subtree."""
    n_nodes = node_byte.shape[0]
    stack = np.zeros(4097, np.int32)
    for k in range(states.shape[0]):
        stack[0] = states[k]
        row = out[k]
        c = 0
        i = 1
        while i < n_nodes:
            d = node_depth[i]
            s = trans[stack[d - 1], classes[node_byte[i]]]
            if s < 0:
                i = node_end[i]
                continue
            stack[d] = s
            for j in range(node_lo[i], node_hi[i]):
                t = order[j]
                row[t >> 5] |= np.uint32(1) << np.uint32(t & 31)
                c += 1
            i += 1
        counts[k] = c


@nb.njit(cache=True, nogil=True)
def refine_partition(t, part, max_rounds):
    """Moore refinement: split blocks of `part` (values in 0..n) until every block's members agree on the block of
    each successor (t[i, c]), or `max_rounds` rounds. Blocks are found by hashing each state's
    signature and then comparing signatures exactly, so a hash collision never merges states.
    Returns the dense block id per state and the number of rounds run."""
    n, n_cls = t.shape
    seen = np.zeros(n + 1, np.bool_)
    n_part = 0
    for i in range(n):
        if not seen[part[i]]:
            seen[part[i]] = True
            n_part += 1
    h = np.empty(n, np.uint64)
    new = np.empty(n, np.int64)
    reps = np.empty(n, np.int64)
    rounds = 0
    while rounds < max_rounds:
        rounds += 1
        for i in range(n):
            x = np.uint64(part[i]) * np.uint64(0x9E3779B97F4A7C15) + np.uint64(1)
            for c in range(n_cls):
                x = (x ^ np.uint64(part[t[i, c]])) * np.uint64(0x100000001B3)
                x ^= x >> np.uint64(29)
            h[i] = x
        order = np.argsort(h)
        next_id = 0
        i = 0
        while i < n:
            j = i
            while j < n and h[order[j]] == h[order[i]]:
                j += 1
            n_reps = 0
            for a in range(i, j):
                s = order[a]
                found = -1
                for b in range(n_reps):
                    r = reps[b]
                    same = part[s] == part[r]
                    c = 0
                    while same and c < n_cls:
                        same = part[t[s, c]] == part[t[r, c]]
                        c += 1
                    if same:
                        found = new[r]
                        break
                if found < 0:
                    found = next_id
                    next_id += 1
                    reps[n_reps] = s
                    n_reps += 1
                new[s] = found
            i = j
        stable = next_id == n_part
        for k in range(n):
            part[k] = new[k]
        n_part = next_id
        if stable:
            break
    return part, rounds


@nb.njit(cache=True, nogil=True)
def walk_cfg_masks(trans, classes, exits, states, node_byte, node_depth, node_end, node_lo, node_hi,
                   order, out, ex_k, ex_node, ex_state):
    """`walk_masks` for grammar positions: out[k] gets every token whose bytes follow byte edges
    only from states[k]. Where a position after at least one byte could also take a non-byte route
    (exits[state, byte]: enter a call or complete its rule), the trie node is recorded once per
    path as (k, node, state) in ex_*; its whole subtree is checked later by the parser.
    Returns the number of exits found (may exceed the ex_* capacity: then call again, larger)."""
    n_nodes = node_byte.shape[0]
    stack = np.zeros(4097, np.int32)
    cap = ex_node.shape[0]
    n_ex = 0
    for k in range(states.shape[0]):
        stack[0] = states[k]
        row = out[k]
        exd = 0
        i = 1
        while i < n_nodes:
            d = node_depth[i]
            if exd >= d:
                exd = 0
            u = stack[d - 1]
            b = node_byte[i]
            if exd == 0 and d >= 2 and exits[u, b] != 0:
                if n_ex < cap:
                    ex_k[n_ex] = k
                    ex_node[n_ex] = i
                    ex_state[n_ex] = u
                n_ex += 1
                exd = d
            s = trans[u, classes[b]]
            if s < 0:
                i = node_end[i]
                continue
            stack[d] = s
            for j in range(node_lo[i], node_hi[i]):
                t = order[j]
                row[t >> 5] |= np.uint32(1) << np.uint32(t & 31)
            i += 1
    return n_ex
